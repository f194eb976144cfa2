//! Workspace mode: every crate of the repository (the root package's library and
//! binaries, every `crates/*` package), each checked for module cycles, and the lower
//! crates' manifests checked for I/O dependencies. The lower crates are sans-IO: their
//! `Cargo.toml` is the proof of what they do not know, so a runtime, a socket library
//! or a database driver there is a finding, not a style question.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::layers::{self, Cycle};
use crate::refs::{self, Reference};
use crate::tree::CrateTree;

/// Dependencies a lower crate must not have: I/O runtimes, sockets, databases, HTTP.
pub const FORBIDDEN: &[&str] = &[
    "tokio",
    "tokio-util",
    "mio",
    "sqlx",
    "axum",
    "hyper",
    "reqwest",
    "socket2",
];

/// This crate's package: a tool, not part of the service, so exempt from the list.
pub const SELF_PACKAGE: &str = "tongdai-arch-check";

/// The service: the one package that does I/O, wherever it sits (today the root).
pub const SERVICE_PACKAGE: &str = "tongdai";

/// One package of the workspace.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub dir: PathBuf,
    /// The package at the repository root (the service); the others are lower crates.
    pub is_root: bool,
    pub manifest: toml::Table,
}

/// One crate: a library or a binary of a package.
#[derive(Debug, Clone)]
pub struct CrateRoot {
    /// The library's crate name (`tongdai`), or `bin:NAME` for a binary.
    pub name: String,
    pub root_file: PathBuf,
}

/// A lower crate depending on something on the [`FORBIDDEN`] list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForbiddenDep {
    pub manifest: PathBuf,
    pub package: String,
    pub dependency: String,
    /// The manifest table it is in (`dependencies`, `target.'cfg(unix)'.dependencies`).
    pub table: String,
}

/// One crate's tree, references and cycles.
#[derive(Debug, Clone)]
pub struct CrateCheck {
    pub tree: CrateTree,
    pub refs: Vec<Reference>,
    pub cycles: Vec<Cycle>,
}

/// Reads one crate and finds its cycles.
pub fn check_crate(name: &str, root_file: &Path) -> Result<CrateCheck, Error> {
    let tree = CrateTree::load(name, root_file)?;
    let refs = refs::collect(&tree);
    let cycles = layers::cycles(&tree, &refs);
    Ok(CrateCheck { tree, refs, cycles })
}

/// Everything the workspace check found.
#[derive(Debug, Clone)]
pub struct Report {
    pub root: PathBuf,
    pub crates: Vec<CrateCheck>,
    pub forbidden: Vec<ForbiddenDep>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.forbidden.is_empty() && self.crates.iter().all(|c| c.cycles.is_empty())
    }

    pub fn cycle_count(&self) -> usize {
        self.crates.iter().map(|c| c.cycles.len()).sum()
    }
}

/// The whole check on the repository at `root`.
pub fn check(root: &Path) -> Result<Report, Error> {
    let root = std::fs::canonicalize(root).map_err(|source| Error::Read {
        path: root.to_path_buf(),
        source,
    })?;
    let packages = packages(&root)?;
    let mut crates = Vec::new();
    for package in &packages {
        for krate in crate_roots(package) {
            crates.push(check_crate(&krate.name, &krate.root_file)?);
        }
    }
    let workspace_deps = read_manifest(&root.join("Cargo.toml"))?
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.as_table())
        .cloned()
        .unwrap_or_default();
    let forbidden = packages
        .iter()
        .filter(|p| !p.is_root && p.name != SELF_PACKAGE && p.name != SERVICE_PACKAGE)
        .flat_map(|p| forbidden_deps(p, &root, &workspace_deps))
        .collect();
    Ok(Report {
        root,
        crates,
        forbidden,
    })
}

/// The root package (if the root manifest has one) and every member: `crates/*` and
/// whatever `[workspace] members` lists (literal paths or `dir/*`).
pub fn packages(root: &Path) -> Result<Vec<Package>, Error> {
    let root_manifest_path = root.join("Cargo.toml");
    if !root_manifest_path.is_file() {
        return Err(Error::NotAWorkspace(root.to_path_buf()));
    }
    let root_manifest = read_manifest(&root_manifest_path)?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut add_glob = |pattern: &str| {
        if let Some(parent) = pattern.strip_suffix("/*") {
            let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(parent))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect();
            found.sort();
            dirs.extend(found);
        } else {
            dirs.push(root.join(pattern));
        }
    };
    add_glob("crates/*");
    if let Some(members) = root_manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
    {
        for member in members.iter().filter_map(|m| m.as_str()) {
            add_glob(member.trim_end_matches('/'));
        }
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    if let Some(name) = package_name(&root_manifest) {
        seen.insert(root.to_path_buf());
        out.push(Package {
            name,
            dir: root.to_path_buf(),
            is_root: true,
            manifest: root_manifest,
        });
    }
    for dir in dirs {
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        if !seen.insert(dir.clone()) {
            continue;
        }
        let manifest_path = dir.join("Cargo.toml");
        if !manifest_path.is_file() {
            continue;
        }
        let manifest = read_manifest(&manifest_path)?;
        if let Some(name) = package_name(&manifest) {
            out.push(Package {
                name,
                dir,
                is_root: false,
                manifest,
            });
        }
    }
    Ok(out)
}

fn read_manifest(path: &Path) -> Result<toml::Table, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| Error::Manifest {
        path: path.to_path_buf(),
        source,
    })
}

fn package_name(manifest: &toml::Table) -> Option<String> {
    manifest
        .get("package")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

/// The package's library and binaries, as cargo finds them: `[lib]`/`[[bin]]` paths,
/// else `src/lib.rs`, `src/main.rs`, `src/bin/*.rs` and `src/bin/*/main.rs`.
pub fn crate_roots(package: &Package) -> Vec<CrateRoot> {
    let dir = &package.dir;
    let manifest = &package.manifest;
    let mut out: Vec<CrateRoot> = Vec::new();
    let add = |name: String, file: PathBuf, out: &mut Vec<CrateRoot>| {
        if file.is_file() && !out.iter().any(|c| c.root_file == file) {
            out.push(CrateRoot {
                name,
                root_file: file,
            });
        }
    };

    let lib = manifest.get("lib");
    let lib_name = lib
        .and_then(|l| l.get("name"))
        .and_then(|n| n.as_str())
        .map_or_else(|| package.name.replace('-', "_"), str::to_string);
    let lib_path = lib
        .and_then(|l| l.get("path"))
        .and_then(|p| p.as_str())
        .map_or_else(|| dir.join("src/lib.rs"), |p| dir.join(p));
    add(lib_name, lib_path, &mut out);

    if let Some(bins) = manifest.get("bin").and_then(|b| b.as_array()) {
        for bin in bins {
            let Some(name) = bin.get("name").and_then(|n| n.as_str()) else {
                continue;
            };
            let file = match bin.get("path").and_then(|p| p.as_str()) {
                Some(p) => dir.join(p),
                None if name == package.name => dir.join("src/main.rs"),
                None => dir.join("src/bin").join(format!("{name}.rs")),
            };
            add(format!("bin:{name}"), file, &mut out);
        }
    }
    let autobins = manifest
        .get("package")
        .and_then(|p| p.get("autobins"))
        .and_then(|a| a.as_bool())
        .unwrap_or(true);
    if autobins {
        add(
            format!("bin:{}", package.name),
            dir.join("src/main.rs"),
            &mut out,
        );
        let mut extra: Vec<(String, PathBuf)> = std::fs::read_dir(dir.join("src/bin"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "rs") {
                    let stem = path.file_stem()?.to_str()?.to_string();
                    Some((stem, path))
                } else if path.join("main.rs").is_file() {
                    let name = path.file_name()?.to_str()?.to_string();
                    Some((name, path.join("main.rs")))
                } else {
                    None
                }
            })
            .collect();
        extra.sort();
        for (name, file) in extra {
            add(format!("bin:{name}"), file, &mut out);
        }
    }
    out
}

/// The [`FORBIDDEN`] dependencies of a package, in `[dependencies]` and in every
/// `[target.*.dependencies]` (dev- and build-dependencies are not shipped code).
/// A `{ workspace = true }` entry is looked up in the root's `[workspace.dependencies]`
/// (`workspace_deps`), where a rename may hide the real package.
pub fn forbidden_deps(
    package: &Package,
    root: &Path,
    workspace_deps: &toml::Table,
) -> Vec<ForbiddenDep> {
    let manifest_path = package.dir.join("Cargo.toml");
    let manifest_path = manifest_path
        .strip_prefix(root)
        .map_or(manifest_path.clone(), Path::to_path_buf);
    let mut tables: Vec<(String, &toml::Table)> = Vec::new();
    if let Some(deps) = package
        .manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
    {
        tables.push(("dependencies".to_string(), deps));
    }
    if let Some(targets) = package.manifest.get("target").and_then(|t| t.as_table()) {
        for (target, table) in targets {
            if let Some(deps) = table.get("dependencies").and_then(|d| d.as_table()) {
                tables.push((format!("target.'{target}'.dependencies"), deps));
            }
        }
    }
    let mut out = Vec::new();
    for (table, deps) in tables {
        for (key, value) in deps {
            // `rt = { package = "tokio" }` is still tokio.
            let inherited = value
                .get("workspace")
                .and_then(|w| w.as_bool())
                .unwrap_or(false);
            let source = if inherited {
                workspace_deps.get(key).unwrap_or(value)
            } else {
                value
            };
            let actual = source
                .get("package")
                .and_then(|p| p.as_str())
                .unwrap_or(key);
            if FORBIDDEN.contains(&actual) {
                out.push(ForbiddenDep {
                    manifest: manifest_path.clone(),
                    package: package.name.clone(),
                    dependency: actual.to_string(),
                    table: table.clone(),
                });
            }
        }
    }
    out
}

/// `path` relative to `root` when it is under it.
pub fn relative<'a>(root: &Path, path: &'a Path) -> std::borrow::Cow<'a, Path> {
    match path.strip_prefix(root) {
        Ok(rel) => std::borrow::Cow::Owned(rel.to_path_buf()),
        Err(_) => std::borrow::Cow::Borrowed(path),
    }
}

/// Writes one cycle with its evidence, file paths relative to `root`.
pub fn write_cycle(f: &mut impl fmt::Write, root: &Path, cycle: &Cycle) -> fmt::Result {
    writeln!(
        f,
        "  cycle in {} among {{{}}}",
        cycle.level,
        cycle.modules.join(", ")
    )?;
    for lp in &cycle.loops {
        writeln!(f, "    loop: {}", lp.join(" -> "))?;
    }
    if cycle.more_loops {
        writeln!(f, "    loop: ... (more)")?;
    }
    for edge in &cycle.edges {
        writeln!(f, "    {} -> {}", edge.from, edge.to)?;
        for ex in &edge.examples {
            writeln!(
                f,
                "      {}:{} {}",
                relative(root, &ex.file).display(),
                ex.line,
                ex.path
            )?;
        }
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for krate in &self.crates {
            let tree = &krate.tree;
            write!(
                f,
                "{} ({}): {} modules, {} references: ",
                tree.name,
                relative(&self.root, &tree.root_file).display(),
                tree.modules.len(),
                krate.refs.len()
            )?;
            match krate.cycles.len() {
                0 => writeln!(f, "no cycles")?,
                1 => writeln!(f, "1 cycle")?,
                n => writeln!(f, "{n} cycles")?,
            }
            for cycle in &krate.cycles {
                write_cycle(f, &self.root, cycle)?;
            }
        }
        if self.forbidden.is_empty() {
            writeln!(f, "forbidden dependencies of the lower crates: none")?;
        } else {
            writeln!(f, "forbidden dependencies of the lower crates:")?;
            for dep in &self.forbidden {
                writeln!(
                    f,
                    "  {}: {} depends on {} (in [{}])",
                    dep.manifest.display(),
                    dep.package,
                    dep.dependency,
                    dep.table
                )?;
            }
        }
        writeln!(
            f,
            "{} cycle(s), {} forbidden dependency(ies)",
            self.cycle_count(),
            self.forbidden.len()
        )
    }
}
