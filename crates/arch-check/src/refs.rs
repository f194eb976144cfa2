//! References between the modules of one crate: every path in non-test code, resolved
//! to the module that *defines* what it names.
//!
//! Resolution follows rustc's rules closely enough for architecture work, not for
//! type checking: `crate::`, `self::`, `super::`, child modules, names brought in by
//! `use` (also inside function bodies, also through globs and enum globs), and
//! re-exports followed to their source, so `facade::Thing` counts as a reference to
//! `facade::inner` when the facade only does `pub use inner::Thing`. A name that is not
//! found is taken to be external (the prelude, another crate, a local variable); a name
//! that a macro defines inside a known module is taken to be defined by that module.
//!
//! What is recorded:
//! - a private `use` line, once, at the line of each name it imports (a `use` of a
//!   trait is the only visible trace of the methods called through it);
//! - a path in code whose target is not already covered by the private `use` that
//!   brought its first name into scope (so `use crate::store::Store;` followed by
//!   `Store::new()` counts once), or that goes through a re-export;
//! - paths in macro calls (parsed as expressions when they are, else read token by
//!   token) and in `macro_rules!` bodies (charged to the defining module).
//!
//! Re-export lines (`pub use`, `pub(crate) use`, ...) are namespace plumbing and are not
//! recorded themselves; code that uses a re-exported name is.

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Expr, Item, ItemUse, Token, UseTree, Visibility};

use crate::attrs;
use crate::tree::{CrateTree, ModId, ident_string};

/// Resolution gives up past this depth (re-export chains, glob loops).
const MAX_DEPTH: u32 = 32;

/// One path in one module's code that names something defined in another module of
/// the same crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The module whose code holds the path (an inline module counts as its own).
    pub from: ModId,
    /// The module defining what the path names.
    pub to: ModId,
    pub file: PathBuf,
    pub line: usize,
    /// The path as written (`crate::store::Store`, `Store::new`, `super::endpoint::Flow`).
    pub path: String,
}

/// Every reference in the crate's non-test code, in module order.
pub fn collect(tree: &CrateTree) -> Vec<Reference> {
    let resolver = Resolver::new(tree);
    let mut refs = Vec::new();
    for (id, module) in tree.modules.iter().enumerate() {
        let mut collector = Collector {
            resolver: &resolver,
            module: id,
            file: module.file.clone(),
            scopes: Vec::new(),
            refs: &mut refs,
        };
        for item in &module.items {
            collector.visit_item(item);
        }
    }
    refs
}

/// One name (or glob) brought in by a `use` item.
#[derive(Debug)]
struct Import {
    /// The module the `use` is written in: its path is resolved from there.
    module: ModId,
    /// The imported path; for a glob, the path of what is globbed.
    path: Vec<String>,
    glob: bool,
    /// `pub use` and friends: plumbing, not recorded at the `use` line.
    reexport: bool,
    /// Written inside a block: resolved with the block scopes around it.
    local: bool,
}

#[derive(Debug, Clone)]
enum Binding {
    Module(ModId),
    Item(ModId),
    /// An enum, whose variants a glob import can bring in (index into `enums`).
    Enum(ModId, usize),
    Import(Rc<Import>),
    External,
}

/// The names visible in one module, or in one block of a function body.
#[derive(Debug, Default)]
struct Scope {
    names: HashMap<String, Vec<Binding>>,
    globs: Vec<Rc<Import>>,
}

impl Scope {
    fn bind(&mut self, name: String, binding: Binding) {
        if name != "_" {
            self.names.entry(name).or_default().push(binding);
        }
    }
}

/// What a path resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Module(ModId),
    Item(ModId),
    Enum(ModId, usize),
    External,
}

impl Res {
    /// The defining module, when it is in this crate.
    fn module(self) -> Option<ModId> {
        match self {
            Res::Module(m) | Res::Item(m) | Res::Enum(m, _) => Some(m),
            Res::External => None,
        }
    }
}

/// A name's binding, and the `use` that bound it when it came from one directly.
type Found = (Res, Option<Rc<Import>>);

/// The namespaces of every module of a crate.
struct Resolver<'t> {
    tree: &'t CrateTree,
    scopes: Vec<Scope>,
    /// `(defining module, variants)` of every enum, for `use Enum::*`.
    enums: Vec<(ModId, Vec<String>)>,
    /// `macro_rules!` name -> defining modules (textual scope, not path scope).
    macros: HashMap<String, Vec<ModId>>,
}

impl<'t> Resolver<'t> {
    fn new(tree: &'t CrateTree) -> Self {
        let mut resolver = Resolver {
            tree,
            scopes: Vec::new(),
            enums: Vec::new(),
            macros: HashMap::new(),
        };
        let mut exported = Vec::new();
        for (id, module) in tree.modules.iter().enumerate() {
            let mut scope = Scope::default();
            for item in &module.items {
                resolver.add_item(&mut scope, id, item, &mut exported);
            }
            resolver.scopes.push(scope);
        }
        // `#[macro_export]` puts a macro at the crate root, whatever module defines it.
        if let Some(root) = resolver.scopes.first_mut() {
            for (name, def) in exported {
                root.bind(name, Binding::Item(def));
            }
        }
        resolver
    }

    fn add_item(
        &mut self,
        scope: &mut Scope,
        module: ModId,
        item: &Item,
        exported: &mut Vec<(String, ModId)>,
    ) {
        let def = Binding::Item(module);
        match item {
            Item::Const(i) => scope.bind(ident_string(&i.ident), def),
            Item::Enum(i) => {
                let variants = i.variants.iter().map(|v| ident_string(&v.ident)).collect();
                self.enums.push((module, variants));
                scope.bind(
                    ident_string(&i.ident),
                    Binding::Enum(module, self.enums.len() - 1),
                );
            }
            Item::ExternCrate(i) => {
                let name = match &i.rename {
                    Some((_, rename)) => ident_string(rename),
                    None => ident_string(&i.ident),
                };
                // `extern crate self as name;` names this crate's root.
                let binding = if i.ident == "self" {
                    Binding::Module(0)
                } else {
                    Binding::External
                };
                scope.bind(name, binding);
            }
            Item::Fn(i) => scope.bind(ident_string(&i.sig.ident), def),
            Item::ForeignMod(i) => {
                for foreign in &i.items {
                    let ident = match foreign {
                        syn::ForeignItem::Fn(f) => &f.sig.ident,
                        syn::ForeignItem::Static(s) => &s.ident,
                        syn::ForeignItem::Type(t) => &t.ident,
                        _ => continue,
                    };
                    scope.bind(ident_string(ident), def.clone());
                }
            }
            Item::Macro(i) => {
                if let Some(ident) = &i.ident
                    && i.mac.path.is_ident("macro_rules")
                {
                    let name = ident_string(ident);
                    if attrs::has_marker(&i.attrs, "macro_export") {
                        exported.push((name.clone(), module));
                    }
                    // Also a name of its module, so `pub use name;` (the 2018 way to
                    // give a macro a path) resolves to it.
                    scope.bind(name.clone(), def);
                    self.macros.entry(name).or_default().push(module);
                }
            }
            Item::Mod(i) => {
                let name = ident_string(&i.ident);
                if let Some(&child) = self.tree.modules[module].children.get(&name) {
                    scope.bind(name, Binding::Module(child));
                }
            }
            Item::Static(i) => scope.bind(ident_string(&i.ident), def),
            Item::Struct(i) => scope.bind(ident_string(&i.ident), def),
            Item::Trait(i) => scope.bind(ident_string(&i.ident), def),
            Item::TraitAlias(i) => scope.bind(ident_string(&i.ident), def),
            Item::Type(i) => scope.bind(ident_string(&i.ident), def),
            Item::Union(i) => scope.bind(ident_string(&i.ident), def),
            Item::Use(i) => bind_use(scope, module, i, false),
            _ => {}
        }
    }

    /// Resolves a whole path written in `from` (inside `scopes`, innermost last). The
    /// second value is the `use` that bound the first segment, when one did directly.
    fn resolve_path(
        &self,
        from: ModId,
        scopes: &[Scope],
        segs: &[String],
        depth: u32,
    ) -> (Res, Option<Rc<Import>>) {
        let Some(first) = segs.first() else {
            return (Res::External, None);
        };
        if depth > MAX_DEPTH {
            return (Res::External, None);
        }
        let more = segs.len() > 1;
        let (mut cur, via) = match first.as_str() {
            "crate" => (Res::Module(0), None),
            "self" => (Res::Module(from), None),
            "super" => match self.tree.modules[from].parent {
                Some(parent) => (Res::Module(parent), None),
                None => return (Res::External, None),
            },
            // `Self`, a leading `::` (always another crate): nothing of ours to find.
            "Self" | "::" => return (Res::External, None),
            name => match self.lookup_first(from, scopes, name, more, depth) {
                Some(found) => found,
                None => return (Res::External, None),
            },
        };
        for (i, seg) in segs.iter().enumerate().skip(1) {
            let more = i + 1 < segs.len();
            cur = match cur {
                Res::Module(m) => match seg.as_str() {
                    "self" => Res::Module(m),
                    "super" => match self.tree.modules[m].parent {
                        Some(parent) => Res::Module(parent),
                        None => return (Res::External, via),
                    },
                    // A name the module does not visibly define (macro-made, say) is
                    // still most likely defined there.
                    name => match self.lookup_in_module(m, name, more, depth + 1) {
                        Some((res, _)) => res,
                        None => Res::Item(m),
                    },
                },
                // Associated items, variants, fields: the item's module is the answer.
                Res::Item(_) | Res::Enum(..) | Res::External => break,
            };
        }
        (cur, via)
    }

    /// The first segment of a path: block scopes innermost first, then the module.
    fn lookup_first(
        &self,
        from: ModId,
        scopes: &[Scope],
        name: &str,
        more: bool,
        depth: u32,
    ) -> Option<Found> {
        for (i, scope) in scopes.iter().enumerate().rev() {
            if let Some(binding) = pick(scope.names.get(name), more) {
                return Some(self.binding_res(&scopes[..=i], binding, depth + 1));
            }
            for glob in &scope.globs {
                if let Some(res) = self.glob_lookup(glob, &scopes[..=i], name, more, depth + 1) {
                    return Some((res, None));
                }
            }
        }
        self.lookup_in_module(from, name, more, depth + 1)
    }

    /// A name in module `m`'s own namespace (explicit names first, then its globs).
    fn lookup_in_module(&self, m: ModId, name: &str, more: bool, depth: u32) -> Option<Found> {
        if depth > MAX_DEPTH {
            return None;
        }
        let scope = &self.scopes[m];
        if let Some(binding) = pick(scope.names.get(name), more) {
            return Some(self.binding_res(&[], binding, depth + 1));
        }
        scope
            .globs
            .iter()
            .find_map(|glob| self.glob_lookup(glob, &[], name, more, depth + 1))
            .map(|res| (res, None))
    }

    /// A name looked up through `use path::*`: only names the target really has.
    fn glob_lookup(
        &self,
        glob: &Import,
        scopes: &[Scope],
        name: &str,
        more: bool,
        depth: u32,
    ) -> Option<Res> {
        let scopes = if glob.local { scopes } else { &[] };
        match self
            .resolve_path(glob.module, scopes, &glob.path, depth + 1)
            .0
        {
            Res::Module(target) => self
                .lookup_in_module(target, name, more, depth + 1)
                .map(|(res, _)| res),
            Res::Enum(def, idx) => self.enums[idx]
                .1
                .iter()
                .any(|variant| variant == name)
                .then_some(Res::Item(def)),
            _ => None,
        }
    }

    fn binding_res(&self, scopes: &[Scope], binding: &Binding, depth: u32) -> Found {
        match binding {
            Binding::Module(id) => (Res::Module(*id), None),
            Binding::Item(id) => (Res::Item(*id), None),
            Binding::Enum(id, idx) => (Res::Enum(*id, *idx), None),
            Binding::External => (Res::External, None),
            Binding::Import(import) => {
                let res = self.import_res(import, scopes, depth);
                (res, Some(Rc::clone(import)))
            }
        }
    }

    /// What a (non-glob) import names.
    fn import_res(&self, import: &Import, scopes: &[Scope], depth: u32) -> Res {
        let scopes = if import.local { scopes } else { &[] };
        self.resolve_path(import.module, scopes, &import.path, depth + 1)
            .0
    }

    /// A macro call's path: an imported or `crate::`-qualified macro resolves like any
    /// path; a bare name falls back to the `macro_rules!` visible where it is called
    /// (defined here or in an ancestor, or in a `#[macro_use]` module).
    fn resolve_macro(&self, from: ModId, scopes: &[Scope], segs: &[String]) -> Found {
        let (res, via) = self.resolve_path(from, scopes, segs, 0);
        if res != Res::External || segs.len() != 1 {
            return (res, via);
        }
        let Some(defs) = self.macros.get(&segs[0]) else {
            return (Res::External, None);
        };
        let visible = defs
            .iter()
            .copied()
            .filter(|&def| self.tree.is_ancestor_or_self(def, from))
            .max_by_key(|&def| self.tree.modules[def].path.len())
            .or_else(|| {
                defs.iter().copied().find(|&def| {
                    self.tree
                        .ancestry(def)
                        .iter()
                        .any(|&a| self.tree.modules[a].macro_use)
                })
            });
        (visible.map_or(Res::External, Res::Item), None)
    }
}

/// The binding to use when a name has several (a module and a function may share a
/// name): a path that goes on wants a module, a last segment wants an item.
fn pick(bindings: Option<&Vec<Binding>>, more: bool) -> Option<&Binding> {
    let bindings = bindings?;
    let rank = |b: &Binding| -> u8 {
        match (b, more) {
            (Binding::Module(_), true) => 0,
            (Binding::Module(_), false) => 2,
            (Binding::Import(_), _) => 1,
            (_, true) => 2,
            (_, false) => 0,
        }
    };
    bindings.iter().min_by_key(|b| rank(b))
}

/// One name of a `use` tree, flattened.
struct UseEntry {
    path: Vec<String>,
    /// The name it binds; `None` for a glob or `as _`.
    name: Option<String>,
    glob: bool,
    line: usize,
}

fn flatten_use(tree: &UseTree, prefix: &mut Vec<String>, out: &mut Vec<UseEntry>) {
    match tree {
        UseTree::Path(p) => {
            prefix.push(ident_string(&p.ident));
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(n) => {
            let name = ident_string(&n.ident);
            let line = n.ident.span().start().line;
            if name == "self" {
                // `use a::b::{self}` binds `b` to the module `a::b`.
                out.push(UseEntry {
                    path: prefix.clone(),
                    name: prefix.last().cloned(),
                    glob: false,
                    line,
                });
            } else {
                let mut path = prefix.clone();
                path.push(name.clone());
                out.push(UseEntry {
                    path,
                    name: Some(name),
                    glob: false,
                    line,
                });
            }
        }
        UseTree::Rename(r) => {
            let ident = ident_string(&r.ident);
            let mut path = prefix.clone();
            if ident != "self" {
                path.push(ident);
            }
            let rename = ident_string(&r.rename);
            out.push(UseEntry {
                path,
                name: (rename != "_").then_some(rename),
                glob: false,
                line: r.ident.span().start().line,
            });
        }
        UseTree::Glob(g) => out.push(UseEntry {
            path: prefix.clone(),
            name: None,
            glob: true,
            line: g.star_token.span.start().line,
        }),
        UseTree::Group(g) => {
            for item in &g.items {
                flatten_use(item, prefix, out);
            }
        }
    }
}

fn use_entries(item: &ItemUse) -> Vec<UseEntry> {
    // A leading `::` always names another crate: the `::` segment says so.
    let mut prefix = if item.leading_colon.is_some() {
        vec!["::".to_string()]
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    flatten_use(&item.tree, &mut prefix, &mut out);
    out
}

fn bind_use(scope: &mut Scope, module: ModId, item: &ItemUse, local: bool) {
    let reexport = !matches!(item.vis, Visibility::Inherited);
    for entry in use_entries(item) {
        let import = Rc::new(Import {
            module,
            path: entry.path,
            glob: entry.glob,
            reexport,
            local,
        });
        if import.glob {
            scope.globs.push(import);
        } else if let Some(name) = entry.name {
            scope.bind(name, Binding::Import(import));
        }
    }
}

/// Walks one module's code and records its references.
struct Collector<'r, 't> {
    resolver: &'r Resolver<'t>,
    module: ModId,
    file: PathBuf,
    /// Block scopes of the function bodies being walked, innermost last.
    scopes: Vec<Scope>,
    refs: &'r mut Vec<Reference>,
}

impl Collector<'_, '_> {
    /// Records the path `segs`, written at `line`, if it names another module's item.
    fn record(&mut self, segs: &[String], line: usize, is_macro: bool) {
        let (res, via) = if is_macro {
            self.resolver.resolve_macro(self.module, &self.scopes, segs)
        } else {
            self.resolver
                .resolve_path(self.module, &self.scopes, segs, 0)
        };
        // A lone module name is never a value, type or macro: it is a local variable,
        // a field name in a macro, or an attribute (`#[error(..)]`) that shares the name.
        if segs.len() == 1 && matches!(res, Res::Module(_)) {
            return;
        }
        let Some(to) = res.module() else { return };
        if to == self.module {
            return;
        }
        if let Some(import) = via
            && !import.reexport
            && self.resolver.import_res(&import, &self.scopes, 0).module() == Some(to)
        {
            // The private `use` that brought the name in already stands for this.
            return;
        }
        self.push(to, line, segs.join("::"));
    }

    fn push(&mut self, to: ModId, line: usize, path: String) {
        self.refs.push(Reference {
            from: self.module,
            to,
            file: self.file.clone(),
            line,
            path,
        });
    }

    fn record_path(&mut self, path: &syn::Path, is_macro: bool) {
        if path.leading_colon.is_some() {
            return;
        }
        let segs: Vec<String> = path
            .segments
            .iter()
            .map(|s| ident_string(&s.ident))
            .collect();
        let line = path
            .segments
            .first()
            .map_or(0, |s| s.ident.span().start().line);
        self.record(&segs, line, is_macro);
    }

    /// A `use` item: private ones are recorded at each imported name's line.
    fn use_item(&mut self, item: &ItemUse) {
        if !matches!(item.vis, Visibility::Inherited) {
            return;
        }
        for entry in use_entries(item) {
            let res = self
                .resolver
                .resolve_path(self.module, &self.scopes, &entry.path, 0)
                .0;
            if let Some(to) = res.module()
                && to != self.module
            {
                let mut text = entry.path.join("::");
                if entry.glob {
                    text.push_str("::*");
                }
                self.push(to, entry.line, text);
            }
        }
    }

    /// Reads paths out of tokens that do not parse as expressions (item-like macro
    /// calls, `macro_rules!` bodies): every `a::b::c` and every lone name, skipping
    /// field and method names (after `.`) and macro variables (`$x`, but `$crate`
    /// is `crate`).
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let toks: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < toks.len() {
            let ident = match &toks[i] {
                TokenTree::Group(g) => {
                    self.scan_tokens(g.stream());
                    i += 1;
                    continue;
                }
                TokenTree::Ident(ident) => ident,
                _ => {
                    i += 1;
                    continue;
                }
            };
            let prev = i.checked_sub(1).map(|p| &toks[p]);
            let after = |c: char| matches!(prev, Some(TokenTree::Punct(p)) if p.as_char() == c);
            let leading_colons = i >= 2 && is_path_sep(&toks[i - 2], &toks[i - 1]);
            let mut segs = vec![ident_string(ident)];
            let line = ident.span().start().line;
            let mut j = i + 1;
            while j + 2 < toks.len() && is_path_sep(&toks[j], &toks[j + 1]) {
                match &toks[j + 2] {
                    TokenTree::Ident(next) => {
                        segs.push(ident_string(next));
                        j += 3;
                    }
                    _ => break,
                }
            }
            i = j;
            let skip = after('.') || leading_colons || (after('$') && segs[0] != "crate");
            if !skip {
                self.record(&segs, line, false);
            }
        }
    }

    fn block_scope(&self, stmts: &[syn::Stmt]) -> Scope {
        let mut scope = Scope::default();
        for stmt in stmts {
            let syn::Stmt::Item(item) = stmt else {
                continue;
            };
            if attrs::is_test_only(attrs::item_attrs(item)) {
                continue;
            }
            let def = Binding::Item(self.module);
            match item {
                Item::Use(u) => bind_use(&mut scope, self.module, u, true),
                Item::Const(i) => scope.bind(ident_string(&i.ident), def),
                Item::Enum(i) => scope.bind(ident_string(&i.ident), def),
                Item::Fn(i) => scope.bind(ident_string(&i.sig.ident), def),
                Item::Static(i) => scope.bind(ident_string(&i.ident), def),
                Item::Struct(i) => scope.bind(ident_string(&i.ident), def),
                Item::Trait(i) => scope.bind(ident_string(&i.ident), def),
                Item::Type(i) => scope.bind(ident_string(&i.ident), def),
                Item::Union(i) => scope.bind(ident_string(&i.ident), def),
                _ => {}
            }
        }
        scope
    }
}

fn is_path_sep(a: &TokenTree, b: &TokenTree) -> bool {
    matches!((a, b), (TokenTree::Punct(x), TokenTree::Punct(y))
        if x.as_char() == ':' && x.spacing() == Spacing::Joint && y.as_char() == ':')
}

impl<'ast> Visit<'ast> for Collector<'_, '_> {
    fn visit_item(&mut self, item: &'ast Item) {
        if attrs::is_test_only(attrs::item_attrs(item)) {
            return;
        }
        match item {
            // Each module is walked on its own (and `mod` inside a function is rare
            // enough to leave out).
            Item::Mod(_) => {}
            Item::Use(u) => self.use_item(u),
            Item::Macro(m) if m.ident.is_some() && m.mac.path.is_ident("macro_rules") => {
                // A `macro_rules!` body: its paths are charged to the defining module.
                self.scan_tokens(m.mac.tokens.clone());
            }
            _ => visit::visit_item(self, item),
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Const(i) => &i.attrs[..],
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => &[],
        };
        if !attrs::is_test_only(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        let attrs = match item {
            syn::TraitItem::Const(i) => &i.attrs[..],
            syn::TraitItem::Fn(i) => &i.attrs,
            syn::TraitItem::Type(i) => &i.attrs,
            syn::TraitItem::Macro(i) => &i.attrs,
            _ => &[],
        };
        if !attrs::is_test_only(attrs) {
            visit::visit_trait_item(self, item);
        }
    }

    fn visit_field(&mut self, field: &'ast syn::Field) {
        if !attrs::is_test_only(&field.attrs) {
            visit::visit_field(self, field);
        }
    }

    fn visit_variant(&mut self, variant: &'ast syn::Variant) {
        if !attrs::is_test_only(&variant.attrs) {
            visit::visit_variant(self, variant);
        }
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        if !attrs::is_test_only(&arm.attrs) {
            visit::visit_arm(self, arm);
        }
    }

    fn visit_field_value(&mut self, field: &'ast syn::FieldValue) {
        if !attrs::is_test_only(&field.attrs) {
            visit::visit_field_value(self, field);
        }
    }

    fn visit_block(&mut self, block: &'ast syn::Block) {
        let scope = self.block_scope(&block.stmts);
        self.scopes.push(scope);
        visit::visit_block(self, block);
        self.scopes.pop();
    }

    fn visit_stmt(&mut self, stmt: &'ast syn::Stmt) {
        match stmt {
            syn::Stmt::Local(local) if attrs::is_test_only(&local.attrs) => {}
            syn::Stmt::Macro(m) if attrs::is_test_only(&m.attrs) => {}
            _ => visit::visit_stmt(self, stmt),
        }
    }

    fn visit_expr_path(&mut self, expr: &'ast syn::ExprPath) {
        self.qualified(expr.qself.as_ref(), &expr.path);
    }

    fn visit_type_path(&mut self, ty: &'ast syn::TypePath) {
        self.qualified(ty.qself.as_ref(), &ty.path);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.record_path(path, false);
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.record_path(&mac.path, true);
        visit::visit_path(self, &mac.path);
        match mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            Ok(exprs) => {
                for expr in &exprs {
                    self.visit_expr(expr);
                }
            }
            Err(_) => self.scan_tokens(mac.tokens.clone()),
        }
    }

    /// Attributes name derive macros, lints and tool options, none of them our modules.
    fn visit_attribute(&mut self, _attr: &'ast syn::Attribute) {}

    /// `pub(in crate::a)` grants access; it does not use anything.
    fn visit_vis_restricted(&mut self, _vis: &'ast syn::VisRestricted) {}
}

impl Collector<'_, '_> {
    /// `<T as crate::a::Trait>::X` names the trait (the path before `position`);
    /// `<T>::X` names only the type, walked on its own.
    fn qualified(&mut self, qself: Option<&syn::QSelf>, path: &syn::Path) {
        let Some(qself) = qself else {
            self.visit_path(path);
            return;
        };
        self.visit_type(&qself.ty);
        if qself.position > 0 && path.leading_colon.is_none() {
            let segs: Vec<String> = path
                .segments
                .iter()
                .take(qself.position)
                .map(|s| ident_string(&s.ident))
                .collect();
            let line = path
                .segments
                .first()
                .map_or(0, |s| s.ident.span().start().line);
            self.record(&segs, line, false);
        }
        for seg in &path.segments {
            self.visit_path_arguments(&seg.arguments);
        }
    }
}
