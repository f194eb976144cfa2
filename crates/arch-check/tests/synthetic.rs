//! The checker on small crates written to a temporary directory: what it must catch
//! and what it must leave alone.

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tongdai_arch_check::layers::Cycle;
use tongdai_arch_check::workspace::{self, CrateCheck};
use tongdai_arch_check::{check, check_crate};

/// Writes `files` (paths relative to the crate directory) and returns the directory.
fn write(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn crate_check(files: &[(&str, &str)]) -> (TempDir, CrateCheck) {
    let dir = write(files);
    let check = check_crate("demo", &dir.path().join("src/lib.rs")).unwrap();
    (dir, check)
}

fn cycles(files: &[(&str, &str)]) -> Vec<Cycle> {
    crate_check(files).1.cycles
}

fn rel(dir: &Path, file: &Path) -> PathBuf {
    file.strip_prefix(dir).unwrap().to_path_buf()
}

/// `(level, modules)` of each cycle, for compact assertions.
fn shape(cycles: &[Cycle]) -> Vec<(String, Vec<String>)> {
    cycles
        .iter()
        .map(|c| (c.level.clone(), c.modules.clone()))
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn sibling_cycle_with_file_and_line_of_each_edge() {
    let (dir, check) = crate_check(&[
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        ("src/a.rs", "use crate::b::B;\n\npub struct A(pub B);\n"),
        (
            "src/b.rs",
            "pub struct B;\n\npub fn make(a: &crate::a::A) -> usize {\n    std::mem::size_of_val(a)\n}\n",
        ),
    ]);
    assert_eq!(
        shape(&check.cycles),
        vec![("demo".into(), names(&["a", "b"]))]
    );
    let cycle = &check.cycles[0];
    assert_eq!(cycle.loops, vec![names(&["a", "b", "a"])]);
    let evidence: Vec<(String, String, PathBuf, usize, String)> = cycle
        .edges
        .iter()
        .flat_map(|e| {
            e.examples.iter().map(|x| {
                (
                    e.from.clone(),
                    e.to.clone(),
                    rel(dir.path(), &x.file),
                    x.line,
                    x.path.clone(),
                )
            })
        })
        .collect();
    assert_eq!(
        evidence,
        vec![
            (
                "a".into(),
                "b".into(),
                "src/a.rs".into(),
                1,
                "crate::b::B".into()
            ),
            (
                "b".into(),
                "a".into(),
                "src/b.rs".into(),
                3,
                "crate::a::A".into()
            ),
        ]
    );
}

#[test]
fn cycle_through_three_modules() {
    // Each edge written another way: a call, a type through `super::`, a module import.
    let found = cycles(&[
        ("src/lib.rs", "mod a;\nmod b;\nmod c;\nmod d;\n"),
        ("src/a.rs", "pub fn f() -> u8 { crate::b::g() }\n"),
        (
            "src/b.rs",
            "pub fn g() -> u8 { 0 }\npub fn h(_: super::c::C) {}\n",
        ),
        (
            "src/c.rs",
            "use crate::a;\npub struct C;\npub fn k() -> u8 { a::f() }\n",
        ),
        ("src/d.rs", "pub fn free() -> u8 { crate::a::f() }\n"),
    ]);
    assert_eq!(
        shape(&found),
        vec![("demo".into(), names(&["a", "b", "c"]))]
    );
    assert_eq!(found[0].loops, vec![names(&["a", "b", "c", "a"])]);
    assert_eq!(found[0].edges.len(), 3);
}

#[test]
fn cycle_visible_only_through_a_facade_reexport() {
    // `other` only names `super::Thing`, which the facade re-exports from `inner`:
    // resolved to its definition it is `other -> inner`, and `inner -> other` closes it.
    let found = cycles(&[
        ("src/lib.rs", "pub mod facade;\n"),
        (
            "src/facade/mod.rs",
            "mod inner;\nmod other;\npub use inner::{Other, Thing};\npub use other::helper;\n",
        ),
        (
            "src/facade/inner.rs",
            "pub struct Thing;\npub struct Other;\npub fn f() -> u8 { super::other::helper() }\n",
        ),
        (
            "src/facade/other.rs",
            "pub fn helper() -> u8 { 1 }\npub fn make() -> super::Thing { super::Thing }\n",
        ),
    ]);
    assert_eq!(
        shape(&found),
        vec![("demo::facade".into(), names(&["inner", "other"]))]
    );
    let other_to_inner = found[0].edges.iter().find(|e| e.from == "other").unwrap();
    assert_eq!(other_to_inner.examples[0].path, "super::Thing");
}

#[test]
fn nested_level_cycle_store_error_campaign() {
    let found = cycles(&[
        ("src/lib.rs", "pub mod store;\npub mod dialer;\n"),
        (
            "src/store/mod.rs",
            "mod error;\npub mod campaign;\npub use error::StoreError;\npub struct Store;\n",
        ),
        (
            "src/store/error.rs",
            "use crate::store::campaign::AttemptStatus;\n\npub enum StoreError {\n    NotDialing(AttemptStatus),\n}\n",
        ),
        (
            "src/store/campaign.rs",
            "mod types;\npub use types::AttemptStatus;\n",
        ),
        (
            "src/store/campaign/types.rs",
            "use crate::store::error::StoreError;\n\n#[derive(Clone, Copy)]\npub enum AttemptStatus { Dialing }\n\npub fn check(s: AttemptStatus) -> Result<(), StoreError> {\n    let _ = s;\n    Ok(())\n}\n",
        ),
        // Below the store, not in any cycle: references from deep inside make a
        // root-level edge only.
        ("src/dialer.rs", "pub fn f(_: &crate::store::Store) {}\n"),
    ]);
    assert_eq!(
        shape(&found),
        vec![("demo::store".into(), names(&["campaign", "error"]))]
    );
    let edges: Vec<(&str, &str, &str)> = found[0]
        .edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str(), e.examples[0].path.as_str()))
        .collect();
    assert_eq!(
        edges,
        vec![
            ("campaign", "error", "crate::store::error::StoreError"),
            ("error", "campaign", "crate::store::campaign::AttemptStatus"),
        ]
    );
}

#[test]
fn cross_level_references_make_an_edge_where_the_ends_are_siblings() {
    let found = cycles(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        ("src/a/mod.rs", "mod x;\n"),
        ("src/a/x.rs", "pub fn f() { crate::b::y::g() }\n"),
        ("src/b/mod.rs", "pub mod y;\n"),
        (
            "src/b/y.rs",
            "pub fn g() {}\npub fn h() { crate::a::x::f() }\n",
        ),
    ]);
    assert_eq!(shape(&found), vec![("demo".into(), names(&["a", "b"]))]);
}

#[test]
fn child_to_parent_and_parent_to_child_are_not_edges() {
    let found = cycles(&[
        (
            "src/lib.rs",
            "pub mod store;\npub struct Config;\npub fn run() { store::campaign::start(); }\n",
        ),
        (
            "src/store/mod.rs",
            "pub mod campaign;\npub mod error;\npub use error::StoreError;\npub struct Store;\nimpl Store { pub fn go(&self) { campaign::start(); } }\n",
        ),
        (
            "src/store/campaign.rs",
            "use super::Store;\nuse super::StoreError;\npub fn start() {}\npub fn with(_: &Store, _: &crate::Config) -> Result<(), StoreError> { Ok(()) }\n",
        ),
        (
            "src/store/error.rs",
            "pub struct StoreError;\npub fn f(_: &super::Store, _: &crate::Config) {}\n",
        ),
    ]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn test_only_code_is_left_out() {
    // b -> a is real; every a -> b is test code.
    let found = cycles(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        (
            "src/a.rs",
            concat!(
                "pub fn f() {}\n",
                "#[cfg(test)]\nmod tests;\n",
                "#[cfg(test)]\nmod inline_tests {\n    use crate::b::g;\n}\n",
            ),
        ),
        // Never read: a `#[cfg(test)] mod` file (this one does not even parse).
        ("src/a/tests.rs", "use crate::b::g; this is not rust {"),
        ("src/b.rs", "pub fn g() { crate::a::f() }\n"),
    ]);
    assert!(found.is_empty(), "{found:?}");

    let found = cycles(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        (
            "src/a.rs",
            concat!(
                "pub struct A;\n",
                "impl A {\n    #[cfg(test)]\n    pub fn fixture() -> crate::b::B { crate::b::B }\n}\n",
                "#[test]\nfn reaches() { let _ = crate::b::B; }\n",
                "#[cfg(all(test, unix))]\nuse crate::b::B;\n",
                "pub fn real() {\n    #[cfg(test)]\n    let _b = crate::b::B;\n}\n",
            ),
        ),
        ("src/b.rs", "pub struct B;\npub fn g(_: crate::a::A) {}\n"),
    ]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn other_crates_are_ignored_even_when_named_like_a_module() {
    // In `app`, `config::Config` is the `config` crate: `config` is not in scope
    // there (only `crate::config` would be this crate's module).
    let found = cycles(&[
        ("src/lib.rs", "mod app;\nmod config;\n"),
        (
            "src/app.rs",
            "use std::sync::Arc;\nuse tokio::sync::Mutex;\npub fn load() { let _ = config::Config::builder(); let _ = ::config::Value::from(1); }\npub type Shared = Arc<Mutex<u8>>;\n",
        ),
        (
            "src/config.rs",
            "pub fn f() -> crate::app::Shared { todo!() }\n",
        ),
    ]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn reexport_lines_alone_are_not_dependencies() {
    let found = cycles(&[
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        // `a` re-exports `b::B` for its users but never uses it itself.
        (
            "src/a.rs",
            "pub use crate::b::B;\npub(crate) use crate::b::helper;\npub fn f() {}\n",
        ),
        (
            "src/b.rs",
            "pub struct B;\npub fn helper() { crate::a::f() }\n",
        ),
    ]);
    assert!(found.is_empty(), "{found:?}");

    // ... but a module that uses what it re-exports does depend on it.
    let found = cycles(&[
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        ("src/a.rs", "pub use crate::b::B;\npub fn f() -> B { B }\n"),
        (
            "src/b.rs",
            "pub struct B;\npub fn helper() { crate::a::f(); }\n",
        ),
    ]);
    assert_eq!(shape(&found), vec![("demo".into(), names(&["a", "b"]))]);
    let a_to_b = found[0].edges.iter().find(|e| e.from == "a").unwrap();
    assert_eq!(a_to_b.examples[0].line, 2);
}

#[test]
fn use_then_call_counts_once_at_the_use_line() {
    let (_dir, check) = crate_check(&[
        ("src/lib.rs", "pub mod dialer;\npub mod store;\n"),
        (
            "src/store.rs",
            "pub struct Store;\nimpl Store { pub fn new() -> Self { Store } }\n",
        ),
        (
            "src/dialer.rs",
            "use crate::store::Store;\n\npub fn run() {\n    let _s = Store::new();\n    let _t: Store = Store::new();\n}\n",
        ),
    ]);
    let lines: Vec<(usize, &str)> = check
        .refs
        .iter()
        .map(|r| (r.line, r.path.as_str()))
        .collect();
    assert_eq!(lines, vec![(1, "crate::store::Store")]);
}

#[test]
fn paths_in_macros_nested_functions_enum_globs_and_path_attributes() {
    let (dir, check) = crate_check(&[
        (
            "src/lib.rs",
            "mod a;\n#[path = \"elsewhere/bee.rs\"]\nmod b;\nmod c;\nmod d;\nmod e;\n",
        ),
        (
            "src/a.rs",
            concat!(
                "pub fn f() -> String {\n",
                "    format!(\"{}\", crate::b::name())\n", // line 2: macro argument
                "}\n",
                "pub fn g() {\n",
                "    use crate::c::Kind::*;\n", // line 5: block-level glob of an enum
                "    let _ = matches!(Some(1u8), Some(_));\n",
                "    let _k = First;\n",
                "}\n",
                "mod inner {\n",
                "    pub fn h() { crate::d::tick!(); }\n", // line 10: macro path
                "}\n",
                "pub fn log() { tracing::info!(target: \"x\", value = %crate::e::VALUE, \"msg\"); }\n", // line 12: token scan
            ),
        ),
        (
            "src/elsewhere/bee.rs",
            "pub fn name() -> &'static str { \"b\" }\n",
        ),
        ("src/c.rs", "pub enum Kind { First, Second }\n"),
        (
            "src/d.rs",
            "#[macro_export]\nmacro_rules! tick { () => {} }\npub use tick;\n",
        ),
        ("src/e.rs", "pub const VALUE: u8 = 1;\n"),
    ]);
    let refs: Vec<(String, usize, String, String)> = check
        .refs
        .iter()
        .map(|r| {
            (
                rel(dir.path(), &r.file).display().to_string(),
                r.line,
                r.path.clone(),
                check.tree.display(r.to),
            )
        })
        .collect();
    let expect = |file: &str, line: usize, path: &str, to: &str| {
        let want = (file.to_string(), line, path.to_string(), to.to_string());
        assert!(refs.contains(&want), "missing {want:?} in {refs:#?}");
    };
    expect("src/a.rs", 2, "crate::b::name", "demo::b");
    expect("src/a.rs", 5, "crate::c::Kind::*", "demo::c");
    expect("src/a.rs", 10, "crate::d::tick", "demo::d");
    expect("src/a.rs", 12, "crate::e::VALUE", "demo::e");
    // `inner` is a module of its own, with its own references.
    let inner = check
        .tree
        .modules
        .iter()
        .position(|m| m.path == ["a", "inner"])
        .unwrap();
    assert!(check.refs.iter().any(|r| r.from == inner && r.line == 10));
    assert!(
        check
            .tree
            .modules
            .iter()
            .any(|m| m.file.ends_with("elsewhere/bee.rs"))
    );
}

#[test]
fn mod_rs_and_flat_layouts_both_load() {
    let (_dir, check) = crate_check(&[
        ("src/lib.rs", "mod flat;\nmod nested;\n"),
        ("src/flat.rs", "mod leaf;\n"),
        ("src/flat/leaf.rs", "pub fn f() {}\n"),
        ("src/nested/mod.rs", "mod leaf;\n"),
        ("src/nested/leaf.rs", "pub fn g() {}\n"),
    ]);
    let mut paths: Vec<String> = check
        .tree
        .modules
        .iter()
        .map(|m| m.path.join("::"))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec!["", "flat", "flat::leaf", "nested", "nested::leaf"]
    );
}

#[test]
fn a_missing_module_file_is_an_error_naming_the_declaration() {
    let dir = write(&[
        ("src/lib.rs", "pub mod a;\n\npub mod gone;\n"),
        ("src/a.rs", ""),
    ]);
    let err = check_crate("demo", &dir.path().join("src/lib.rs")).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("lib.rs:3"), "{message}");
    assert!(message.contains("gone"), "{message}");
}

#[test]
fn workspace_mode_finds_crates_cycles_and_forbidden_dependencies() {
    let dir = write(&[
        (
            "Cargo.toml",
            "[package]\nname = \"svc\"\nversion = \"0.1.0\"\n\n[dependencies]\ntokio = \"1\"\n\n[workspace]\nmembers = [\"crates/*\"]\n\n[workspace.dependencies]\npoller = { package = \"mio\", version = \"1\" }\n",
        ),
        ("src/lib.rs", "pub mod a;\n"),
        ("src/a.rs", ""),
        ("src/main.rs", "mod x;\nmod y;\nfn main() {}\n"),
        ("src/x.rs", "pub fn f() { crate::y::g() }\n"),
        ("src/y.rs", "pub fn g() {}\npub fn h() { crate::x::f() }\n"),
        (
            "crates/sip/Cargo.toml",
            "[package]\nname = \"svc-sip\"\nversion = \"0.1.0\"\n\n[dependencies]\nbytes = \"1\"\nrt = { package = \"tokio\", version = \"1\" }\npoller = { workspace = true }\n\n[dev-dependencies]\nmio = \"1\"\n\n[target.'cfg(unix)'.dependencies]\nsocket2 = \"0.6\"\n",
        ),
        ("crates/sip/src/lib.rs", ""),
        (
            "crates/arch-check/Cargo.toml",
            "[package]\nname = \"tongdai-arch-check\"\nversion = \"0.1.0\"\n\n[dependencies]\ntokio = \"1\"\n",
        ),
        ("crates/arch-check/src/lib.rs", ""),
    ]);
    let report = check(dir.path()).unwrap();
    let crates: Vec<&str> = report.crates.iter().map(|c| c.tree.name.as_str()).collect();
    // `crates/*` in path order: arch-check before sip.
    assert_eq!(
        crates,
        vec!["svc", "bin:svc", "tongdai_arch_check", "svc_sip"]
    );
    // main.rs's own modules are a crate of their own.
    assert_eq!(
        shape(&report.crates[1].cycles),
        vec![("bin:svc".into(), names(&["x", "y"]))]
    );
    let forbidden: Vec<(String, &str, &str)> = report
        .forbidden
        .iter()
        .map(|f| {
            (
                f.manifest.display().to_string(),
                f.dependency.as_str(),
                f.table.as_str(),
            )
        })
        .collect();
    assert_eq!(
        forbidden,
        vec![
            ("crates/sip/Cargo.toml".to_string(), "mio", "dependencies"),
            ("crates/sip/Cargo.toml".to_string(), "tokio", "dependencies"),
            (
                "crates/sip/Cargo.toml".to_string(),
                "socket2",
                "target.'cfg(unix)'.dependencies"
            ),
        ]
    );
    assert!(!report.is_clean());
    let text = report.to_string();
    assert!(text.contains("src/x.rs:1 crate::y::g"), "{text}");
    assert!(text.contains("svc-sip depends on tokio"), "{text}");
    assert_eq!(workspace::FORBIDDEN.len(), 8);
}
