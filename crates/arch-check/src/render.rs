//! The module graphs as text or Graphviz DOT, one graph per level, for the docs:
//! the same edges the cycle rule judges, with the edges inside a cycle marked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use crate::layers::{self, Level};
use crate::workspace::{CrateCheck, relative};

/// The edges of one level that lie inside a cycle.
fn cycle_edges(level: &Level) -> BTreeSet<(usize, usize)> {
    let index_of: BTreeMap<usize, usize> = level
        .children
        .iter()
        .enumerate()
        .map(|(i, &m)| (m, i))
        .collect();
    let mut adj = vec![BTreeSet::new(); level.children.len()];
    for &(a, b) in level.edges.keys() {
        if let (Some(&i), Some(&j)) = (index_of.get(&a), index_of.get(&b)) {
            adj[i].insert(j);
        }
    }
    let mut component_of = vec![0; level.children.len()];
    for (c, component) in layers::strongly_connected(&adj).iter().enumerate() {
        for &v in component {
            component_of[v] = c;
        }
    }
    level
        .edges
        .keys()
        .copied()
        .filter(|&(a, b)| match (index_of.get(&a), index_of.get(&b)) {
            (Some(&i), Some(&j)) => component_of[i] == component_of[j],
            _ => false,
        })
        .collect()
}

/// Every level of every crate as indented text: `a -> b (refs)`, `!` on cycle edges.
pub fn text(root: &Path, crates: &[CrateCheck]) -> String {
    let mut out = String::new();
    for krate in crates {
        let tree = &krate.tree;
        let _ = writeln!(
            out,
            "{} ({})",
            tree.name,
            relative(root, &tree.root_file).display()
        );
        for level in layers::levels(tree, &krate.refs) {
            let in_cycle = cycle_edges(&level);
            let names: Vec<&str> = level
                .children
                .iter()
                .map(|&c| tree.modules[c].name.as_str())
                .collect();
            let _ = writeln!(
                out,
                "  {}: {}",
                tree.display(level.parent),
                names.join(", ")
            );
            for &child in &level.children {
                // `children` is in name order, so the targets are too.
                let targets: Vec<String> = level
                    .children
                    .iter()
                    .filter_map(|&b| {
                        let refs = level.edges.get(&(child, b))?;
                        let mark = if in_cycle.contains(&(child, b)) {
                            "!"
                        } else {
                            ""
                        };
                        Some(format!("{}{mark} ({})", tree.modules[b].name, refs.len()))
                    })
                    .collect();
                if !targets.is_empty() {
                    let _ = writeln!(
                        out,
                        "    {} -> {}",
                        tree.modules[child].name,
                        targets.join(", ")
                    );
                }
            }
        }
    }
    out.push_str("(n) = references; ! = edge inside a cycle\n");
    out
}

/// One DOT `digraph` per level with at least one edge; cycle edges in red.
pub fn dot(crates: &[CrateCheck]) -> String {
    let mut out = String::new();
    for krate in crates {
        let tree = &krate.tree;
        for level in layers::levels(tree, &krate.refs) {
            if level.edges.is_empty() {
                continue;
            }
            let in_cycle = cycle_edges(&level);
            let title = tree.display(level.parent);
            let _ = writeln!(out, "digraph {} {{", quote(&title));
            let _ = writeln!(out, "  label={}; labelloc=t; rankdir=TB;", quote(&title));
            let _ = writeln!(out, "  node [shape=box, fontname=\"monospace\"];");
            for &child in &level.children {
                let _ = writeln!(out, "  {};", quote(&tree.modules[child].name));
            }
            for (&(a, b), refs) in &level.edges {
                let colour = if in_cycle.contains(&(a, b)) {
                    ", color=red, fontcolor=red"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  {} -> {} [label=\"{}\"{colour}];",
                    quote(&tree.modules[a].name),
                    quote(&tree.modules[b].name),
                    refs.len()
                );
            }
            out.push_str("}\n");
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Every reference, one per line: `file:line path -> target module`. What the cycle
/// rule judges, for explaining a finding or checking the resolver.
pub fn references(root: &Path, crates: &[CrateCheck]) -> String {
    let mut out = String::new();
    for krate in crates {
        let tree = &krate.tree;
        for r in &krate.refs {
            let _ = writeln!(
                out,
                "{}:{} {} -> {}",
                relative(root, &r.file).display(),
                r.line,
                r.path,
                tree.display(r.to)
            );
        }
    }
    out
}
