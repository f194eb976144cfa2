//! Size figures for the docs: the biggest files and functions, for non-test code and
//! overall, so a restructuring can show a before/after table. Files are counted like
//! `wc -l`; a function runs from its `fn` line to its closing brace.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use syn::spanned::Spanned;
use syn::visit::{self, Visit};

use crate::attrs;
use crate::error::Error;
use crate::tree::{CrateTree, ident_string};
use crate::workspace::{self, relative};

/// Directories of a package that hold Rust sources.
const SOURCE_DIRS: &[&str] = &["src", "tests", "benches", "examples"];

#[derive(Debug, Clone)]
pub struct FileSize {
    pub file: PathBuf,
    /// Like `wc -l`: newline characters.
    pub lines: usize,
    /// Lines outside test-only items (`#[cfg(test)]`, `#[test]`); 0 for a test file.
    pub code_lines: usize,
    /// A test file: not part of any crate's non-test module tree.
    pub test: bool,
}

#[derive(Debug, Clone)]
pub struct FnSize {
    pub file: PathBuf,
    pub line: usize,
    /// `name`, `Type::name` for a method, `Trait::name` for a default method.
    pub name: String,
    pub lines: usize,
    pub test: bool,
}

#[derive(Debug, Clone)]
pub struct Sizes {
    pub root: PathBuf,
    pub files: Vec<FileSize>,
    pub fns: Vec<FnSize>,
    /// Files that did not parse: counted as lines only.
    pub unparsed: Vec<PathBuf>,
}

/// Measures every `.rs` file of every package of the repository at `root`.
pub fn measure(root: &Path) -> Result<Sizes, Error> {
    let root = std::fs::canonicalize(root).map_err(|source| Error::Read {
        path: root.to_path_buf(),
        source,
    })?;
    // The checker is a tool, not service code: counting it would skew the service's
    // before/after figures by its own size.
    let packages: Vec<_> = workspace::packages(&root)?
        .into_iter()
        .filter(|p| p.name != workspace::SELF_PACKAGE)
        .collect();
    let mut code_files = BTreeSet::new();
    let mut sources = BTreeSet::new();
    for package in &packages {
        for krate in workspace::crate_roots(package) {
            code_files.extend(CrateTree::load(&krate.name, &krate.root_file)?.files());
        }
        for dir in SOURCE_DIRS {
            rust_files(&package.dir.join(dir), &mut sources);
        }
    }
    let mut sizes = Sizes {
        root: root.clone(),
        files: Vec::new(),
        fns: Vec::new(),
        unparsed: Vec::new(),
    };
    for file in sources {
        let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
            path: file.clone(),
            source,
        })?;
        let lines = text.bytes().filter(|&b| b == b'\n').count();
        let test_file = !code_files.contains(&file);
        let mut walker = FnWalker {
            file: &file,
            in_test: test_file,
            prefix: Vec::new(),
            test_lines: 0,
            out: &mut sizes.fns,
        };
        match syn::parse_file(&text) {
            Ok(parsed) => walker.visit_file(&parsed),
            Err(_) => sizes.unparsed.push(file.clone()),
        }
        let test_lines = walker.test_lines;
        sizes.files.push(FileSize {
            file,
            lines,
            code_lines: if test_file {
                0
            } else {
                lines.saturating_sub(test_lines)
            },
            test: test_file,
        });
    }
    Ok(sizes)
}

/// Every `.rs` file under `dir`, skipping hidden and `target*` directories.
fn rust_files(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && !name.starts_with("target") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.insert(path);
        }
    }
}

/// Collects functions and the lines of test-only items of one file.
struct FnWalker<'a> {
    file: &'a Path,
    in_test: bool,
    /// Enclosing `impl`/`trait`/`fn` names.
    prefix: Vec<String>,
    /// Lines inside test-only items (outermost ones only, so nothing counts twice).
    test_lines: usize,
    out: &'a mut Vec<FnSize>,
}

impl FnWalker<'_> {
    /// Walks `f` inside a test-only item when `test` says the item is one.
    fn guarded(&mut self, test: bool, span: proc_macro2::Span, f: impl FnOnce(&mut Self)) {
        if test && !self.in_test {
            self.test_lines += span.end().line + 1 - span.start().line;
            self.in_test = true;
            f(self);
            self.in_test = false;
        } else {
            f(self);
        }
    }

    fn record(&mut self, start: usize, name: &syn::Ident, block: &syn::Block, test: bool) {
        let end = block.brace_token.span.close().end().line;
        let mut full = self.prefix.join("::");
        if !full.is_empty() {
            full.push_str("::");
        }
        full.push_str(&ident_string(name));
        self.out.push(FnSize {
            file: self.file.to_path_buf(),
            line: start,
            name: full,
            lines: end + 1 - start.min(end),
            test: self.in_test || test,
        });
    }

    fn nested(&mut self, name: String, f: impl FnOnce(&mut Self)) {
        self.prefix.push(name);
        f(self);
        self.prefix.pop();
    }
}

/// The line a function starts on: its visibility or, without one, its signature.
fn fn_start(vis: Option<&syn::Visibility>, sig: &syn::Signature) -> usize {
    let sig_line = sig.span().start().line;
    match vis {
        Some(v) if !matches!(v, syn::Visibility::Inherited) => v.span().start().line.min(sig_line),
        _ => sig_line,
    }
}

/// The last path segment of an `impl` self type (`Store` for `impl<'a> Store<'a>`).
fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map_or_else(|| "_".to_string(), |s| ident_string(&s.ident)),
        syn::Type::Reference(r) => type_name(&r.elem),
        _ => "_".to_string(),
    }
}

impl<'ast> Visit<'ast> for FnWalker<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let test = attrs::is_test_only(attrs::item_attrs(item));
        self.guarded(test, item.span(), |w| visit::visit_item(w, item));
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let test = match item {
            syn::ImplItem::Const(i) => attrs::is_test_only(&i.attrs),
            syn::ImplItem::Fn(i) => attrs::is_test_only(&i.attrs),
            syn::ImplItem::Type(i) => attrs::is_test_only(&i.attrs),
            _ => false,
        };
        self.guarded(test, item.span(), |w| visit::visit_impl_item(w, item));
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        let start = fn_start(Some(&item.vis), &item.sig);
        self.record(start, &item.sig.ident, &item.block, false);
        let name = ident_string(&item.sig.ident);
        self.nested(name, |w| visit::visit_item_fn(w, item));
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        let name = type_name(&item.self_ty);
        self.nested(name, |w| visit::visit_item_impl(w, item));
    }

    fn visit_item_trait(&mut self, item: &'ast syn::ItemTrait) {
        let name = ident_string(&item.ident);
        self.nested(name, |w| visit::visit_item_trait(w, item));
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        let start = fn_start(Some(&item.vis), &item.sig);
        self.record(start, &item.sig.ident, &item.block, false);
        let name = ident_string(&item.sig.ident);
        self.nested(name, |w| visit::visit_impl_item_fn(w, item));
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        if let Some(block) = &item.default {
            let start = fn_start(None, &item.sig);
            let test = attrs::is_test_only(&item.attrs);
            self.record(start, &item.sig.ident, block, test);
        }
        let name = ident_string(&item.sig.ident);
        self.nested(name, |w| visit::visit_trait_item_fn(w, item));
    }
}

impl Sizes {
    /// The four tables (files and functions; non-test and overall) and the totals.
    pub fn render(&self, top: usize) -> String {
        let rel = |p: &Path| relative(&self.root, p).display().to_string();
        let mut out = String::new();

        let mut code: Vec<&FileSize> = self.files.iter().filter(|f| !f.test).collect();
        code.sort_by(|a, b| b.code_lines.cmp(&a.code_lines).then(a.file.cmp(&b.file)));
        let _ = writeln!(
            out,
            "biggest files, non-test code ({} files; lines without test items / wc -l):",
            code.len()
        );
        for f in code.iter().take(top) {
            let _ = writeln!(
                out,
                "  {:>6} {:>6}  {}",
                f.code_lines,
                f.lines,
                rel(&f.file)
            );
        }

        let mut all: Vec<&FileSize> = self.files.iter().collect();
        all.sort_by(|a, b| b.lines.cmp(&a.lines).then(a.file.cmp(&b.file)));
        let _ = writeln!(
            out,
            "biggest files, overall ({} files, tests included; wc -l):",
            all.len()
        );
        for f in all.iter().take(top) {
            let kind = if f.test { "  (test)" } else { "" };
            let _ = writeln!(out, "  {:>6}  {}{kind}", f.lines, rel(&f.file));
        }

        let fn_table = |out: &mut String, title: &str, fns: Vec<&FnSize>| {
            let mut fns = fns;
            fns.sort_by(|a, b| {
                b.lines
                    .cmp(&a.lines)
                    .then(a.file.cmp(&b.file))
                    .then(a.line.cmp(&b.line))
            });
            let _ = writeln!(out, "{title} ({} functions; lines):", fns.len());
            for f in fns.iter().take(top) {
                let kind = if f.test { "  (test)" } else { "" };
                let _ = writeln!(
                    out,
                    "  {:>6}  {}:{} {}{kind}",
                    f.lines,
                    rel(&f.file),
                    f.line,
                    f.name
                );
            }
        };
        fn_table(
            &mut out,
            "biggest functions, non-test code",
            self.fns.iter().filter(|f| !f.test).collect(),
        );
        fn_table(
            &mut out,
            "biggest functions, overall",
            self.fns.iter().collect(),
        );

        let total: usize = self.files.iter().map(|f| f.lines).sum();
        let code_total: usize = code.iter().map(|f| f.code_lines).sum();
        let code_wc: usize = code.iter().map(|f| f.lines).sum();
        let _ = writeln!(
            out,
            "totals: {} files, {total} lines; non-test: {} files, {code_wc} lines, {code_total} without test items ({} not counted)",
            self.files.len(),
            code.len(),
            workspace::SELF_PACKAGE
        );
        for f in &self.unparsed {
            let _ = writeln!(out, "note: {} did not parse; counted as lines only", rel(f));
        }
        out
    }
}
