//! The rule: at every level of the module tree, the parent's direct children form a
//! graph (child A -> child B when code anywhere under A references anything under B),
//! and that graph must be acyclic — a layered architecture at every level, so that
//! each module can be read, tested and moved knowing only what is below it.
//!
//! A reference only makes an edge at the level where its two ends are siblings: from
//! `store::campaign::types` to `store::error` it is `campaign -> error` under `store`,
//! from `api::auth` to `config` it is `api -> config` under the crate root. A
//! reference into one's own ancestor (`super::Store`) or from a parent into its own
//! subtree makes no edge anywhere: a child is part of its parent.

use std::collections::{BTreeMap, BTreeSet};

use crate::refs::Reference;
use crate::tree::{CrateTree, ModId};

/// How many example references are kept per edge in a finding.
pub const EXAMPLES_PER_EDGE: usize = 2;

/// Elementary cycles listed per component, at most: a large knot would list thousands.
pub const MAX_LISTED_CYCLES: usize = 12;

/// The sibling graph under one module.
#[derive(Debug, Clone)]
pub struct Level {
    /// The parent module.
    pub parent: ModId,
    /// Its direct children, in name order.
    pub children: Vec<ModId>,
    /// `(from child, to child)` -> indices into the crate's references, in order.
    pub edges: BTreeMap<(ModId, ModId), Vec<usize>>,
}

/// Every level of a crate with at least two children.
pub fn levels(tree: &CrateTree, refs: &[Reference]) -> Vec<Level> {
    let mut levels: BTreeMap<ModId, Level> = BTreeMap::new();
    for (id, module) in tree.modules.iter().enumerate() {
        if module.children.len() >= 2 {
            levels.insert(
                id,
                Level {
                    parent: id,
                    children: module.children.values().copied().collect(),
                    edges: BTreeMap::new(),
                },
            );
        }
    }
    for (index, r) in refs.iter().enumerate() {
        if let Some((parent, a, b)) = sibling_edge(tree, r.from, r.to)
            && let Some(level) = levels.get_mut(&parent)
        {
            level.edges.entry((a, b)).or_default().push(index);
        }
    }
    levels.into_values().collect()
}

/// The level and the two children of it that a reference `from -> to` connects, or
/// `None` when one end contains the other.
fn sibling_edge(tree: &CrateTree, from: ModId, to: ModId) -> Option<(ModId, ModId, ModId)> {
    let from_chain = tree.ancestry(from);
    let to_chain = tree.ancestry(to);
    // Lowest common ancestor: the first of `to`'s ancestors that also holds `from`.
    let (to_pos, lca) = to_chain
        .iter()
        .enumerate()
        .find(|(_, m)| from_chain.contains(m))
        .map(|(i, &m)| (i, m))?;
    let from_pos = from_chain.iter().position(|&m| m == lca)?;
    if from_pos == 0 || to_pos == 0 {
        return None;
    }
    Some((lca, from_chain[from_pos - 1], to_chain[to_pos - 1]))
}

/// One reference shown as evidence for an edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub file: std::path::PathBuf,
    pub line: usize,
    pub path: String,
}

/// One edge of a cycle, with the first references that make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleEdge {
    pub from: String,
    pub to: String,
    pub examples: Vec<Example>,
}

/// A strongly connected component of more than one sibling: at least one cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The parent module, as `crate::path`.
    pub level: String,
    /// The children in the component, by name.
    pub modules: Vec<String>,
    /// Its elementary cycles (`a -> b -> a`), at most [`MAX_LISTED_CYCLES`].
    pub loops: Vec<Vec<String>>,
    /// Whether there were more elementary cycles than listed.
    pub more_loops: bool,
    /// Every edge inside the component.
    pub edges: Vec<CycleEdge>,
}

/// Every cycle at every level of the crate.
pub fn cycles(tree: &CrateTree, refs: &[Reference]) -> Vec<Cycle> {
    let mut out = Vec::new();
    for level in levels(tree, refs) {
        let n = level.children.len();
        let index_of: BTreeMap<ModId, usize> = level
            .children
            .iter()
            .enumerate()
            .map(|(i, &m)| (m, i))
            .collect();
        let mut adj = vec![BTreeSet::new(); n];
        for &(a, b) in level.edges.keys() {
            if let (Some(&i), Some(&j)) = (index_of.get(&a), index_of.get(&b)) {
                adj[i].insert(j);
            }
        }
        for component in strongly_connected(&adj) {
            if component.len() < 2 {
                continue;
            }
            let members: BTreeSet<usize> = component.iter().copied().collect();
            let name = |i: usize| tree.modules[level.children[i]].name.clone();
            let mut edges = Vec::new();
            for &i in &members {
                for &j in adj[i].intersection(&members) {
                    let key = (level.children[i], level.children[j]);
                    let examples = level.edges.get(&key).map_or_else(Vec::new, |indices| {
                        first_examples(indices.iter().map(|&k| &refs[k]))
                    });
                    edges.push(CycleEdge {
                        from: name(i),
                        to: name(j),
                        examples,
                    });
                }
            }
            let (loops, more_loops) = elementary_cycles(&adj, &members, MAX_LISTED_CYCLES);
            out.push(Cycle {
                level: tree.display(level.parent),
                modules: members.iter().map(|&i| name(i)).collect(),
                loops: loops
                    .into_iter()
                    .map(|l| l.into_iter().map(name).collect())
                    .collect(),
                more_loops,
                edges,
            });
        }
    }
    out
}

/// The first references of an edge, one per line.
fn first_examples<'a>(refs: impl Iterator<Item = &'a Reference>) -> Vec<Example> {
    let mut sorted: Vec<&Reference> = refs.collect();
    sorted.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    sorted.dedup_by(|a, b| a.file == b.file && a.line == b.line);
    sorted
        .into_iter()
        .take(EXAMPLES_PER_EDGE)
        .map(|r| Example {
            file: r.file.clone(),
            line: r.line,
            path: r.path.clone(),
        })
        .collect()
}

/// Tarjan's algorithm; components come out in reverse topological order.
pub fn strongly_connected(adj: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        adj: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.adj[v].iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            component.sort_unstable();
            s.out.push(component);
        }
    }
    let n = adj.len();
    let mut s = State {
        adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The elementary cycles inside `members`, each starting at its smallest node, shortest
/// first, at most `limit` (the second value says whether some were left out).
pub fn elementary_cycles(
    adj: &[BTreeSet<usize>],
    members: &BTreeSet<usize>,
    limit: usize,
) -> (Vec<Vec<usize>>, bool) {
    // Enough to know whether there are more than `limit`; also bounds the search.
    let budget = limit.saturating_mul(50).max(limit + 1);
    let mut found = Vec::new();
    for &start in members {
        let mut path = vec![start];
        let mut on_path = BTreeSet::from([start]);
        search(
            adj,
            members,
            start,
            start,
            &mut path,
            &mut on_path,
            &mut found,
            budget,
        );
        if found.len() >= budget {
            break;
        }
    }
    found.sort_by(|a: &Vec<usize>, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    let more = found.len() > limit;
    found.truncate(limit);
    (found, more)
}

/// Depth-first search for paths back to `start` through nodes greater than `start`
/// (so each cycle is found once, from its smallest node).
#[allow(clippy::too_many_arguments)]
fn search(
    adj: &[BTreeSet<usize>],
    members: &BTreeSet<usize>,
    start: usize,
    v: usize,
    path: &mut Vec<usize>,
    on_path: &mut BTreeSet<usize>,
    found: &mut Vec<Vec<usize>>,
    budget: usize,
) {
    for &w in adj[v].intersection(members) {
        if found.len() >= budget {
            return;
        }
        if w == start {
            let mut cycle = path.clone();
            cycle.push(start);
            found.push(cycle);
        } else if w > start && !on_path.contains(&w) {
            path.push(w);
            on_path.insert(w);
            search(adj, members, start, w, path, on_path, found, budget);
            on_path.remove(&w);
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(usize, usize)], n: usize) -> Vec<BTreeSet<usize>> {
        let mut adj = vec![BTreeSet::new(); n];
        for &(a, b) in edges {
            adj[a].insert(b);
        }
        adj
    }

    #[test]
    fn components_and_loops() {
        // 0 <-> 1, 1 -> 2 -> 3 -> 1, 4 alone.
        let adj = graph(&[(0, 1), (1, 0), (1, 2), (2, 3), (3, 1), (3, 4)], 5);
        let mut comps = strongly_connected(&adj);
        comps.sort();
        assert_eq!(comps, vec![vec![0, 1, 2, 3], vec![4]]);
        let members = BTreeSet::from([0, 1, 2, 3]);
        let (loops, more) = elementary_cycles(&adj, &members, 10);
        assert_eq!(loops, vec![vec![0, 1, 0], vec![1, 2, 3, 1]]);
        assert!(!more);
        let (loops, more) = elementary_cycles(&adj, &members, 1);
        assert_eq!(loops.len(), 1);
        assert!(more);
    }
}
