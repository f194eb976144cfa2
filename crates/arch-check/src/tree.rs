//! The module tree of one crate, read from its root file by following `mod` items the
//! way rustc does (`x.rs`, `x/mod.rs`, `#[path]`, inline `mod x { .. }`), with
//! test-only modules and items left out: tests may reach anywhere, so they are not part
//! of the architecture being checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::attrs;
use crate::error::Error;

/// Index of a module in [`CrateTree::modules`]; the crate root is 0.
pub type ModId = usize;

/// Guards against `#[path]` loops: no real crate nests files this deep.
const MAX_DEPTH: usize = 64;

/// One module: a file, or an inline `mod x { .. }` block inside a file.
#[derive(Clone)]
pub struct Module {
    /// The module's own name; the crate's name for the root.
    pub name: String,
    /// Names from the crate root down to this module; empty for the root.
    pub path: Vec<String>,
    pub parent: Option<ModId>,
    pub children: BTreeMap<String, ModId>,
    /// The file holding this module's code (for an inline module, the file around it).
    pub file: PathBuf,
    /// Whether this is an inline `mod x { .. }` block.
    pub inline: bool,
    /// Declared with `#[macro_use]`: its `macro_rules!` stay visible after it.
    pub macro_use: bool,
    /// The module's items with test-only items already removed. Nested modules stay
    /// in the list (as `Item::Mod`) so that namespaces can see them; code walkers skip
    /// them because each module is walked on its own.
    pub items: Vec<syn::Item>,
}

impl std::fmt::Debug for Module {
    /// Without the items: syn's trees print only with its `extra-traits` feature, and
    /// a module's path and file are what a reader of a failed assertion needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("path", &self.path)
            .field("file", &self.file)
            .field("inline", &self.inline)
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

/// Every non-test module of one crate.
#[derive(Debug, Clone)]
pub struct CrateTree {
    pub name: String,
    pub root_file: PathBuf,
    pub modules: Vec<Module>,
}

impl CrateTree {
    /// Reads the crate whose root file (`lib.rs`, `main.rs`, a `src/bin` file) is
    /// `root_file`, following every non-test `mod` declaration.
    pub fn load(name: &str, root_file: &Path) -> Result<Self, Error> {
        let file = parse_file(root_file)?;
        let mut tree = CrateTree {
            name: name.to_string(),
            root_file: root_file.to_path_buf(),
            modules: Vec::new(),
        };
        let dir = root_file.parent().unwrap_or(Path::new(".")).to_path_buf();
        tree.modules.push(Module {
            name: name.to_string(),
            path: Vec::new(),
            parent: None,
            children: BTreeMap::new(),
            file: root_file.to_path_buf(),
            inline: false,
            macro_use: false,
            items: non_test(file.items),
        });
        tree.load_children(0, &dir, 0)?;
        Ok(tree)
    }

    /// Adds the children declared in module `id`, whose `mod x;` files live in `dir`.
    fn load_children(&mut self, id: ModId, dir: &Path, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep {
                file: self.modules[id].file.clone(),
                limit: MAX_DEPTH,
            });
        }
        let decls: Vec<syn::ItemMod> = self.modules[id]
            .items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Mod(m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        for decl in decls {
            let name = ident_string(&decl.ident);
            let parent = &self.modules[id];
            let mut path = parent.path.clone();
            path.push(name.clone());
            let macro_use = attrs::has_marker(&decl.attrs, "macro_use");
            let (child, child_dir) = match decl.content {
                Some((_, items)) => {
                    // Inline: same file; its own `mod y;` children live in `dir/name`
                    // (or where `#[path]` on the block says).
                    let child_dir = match attrs::path_attr(&decl.attrs) {
                        Some(p) => dir.join(p),
                        None => dir.join(&name),
                    };
                    let module = Module {
                        name: name.clone(),
                        path,
                        parent: Some(id),
                        children: BTreeMap::new(),
                        file: parent.file.clone(),
                        inline: true,
                        macro_use,
                        items: non_test(items),
                    };
                    (module, child_dir)
                }
                None => {
                    let (file, child_dir) = self.locate(id, dir, &decl, &name)?;
                    let parsed = parse_file(&file)?;
                    let module = Module {
                        name: name.clone(),
                        path,
                        parent: Some(id),
                        children: BTreeMap::new(),
                        file,
                        inline: false,
                        macro_use,
                        items: non_test(parsed.items),
                    };
                    (module, child_dir)
                }
            };
            let child_id = self.modules.len();
            self.modules.push(child);
            self.modules[id].children.insert(name, child_id);
            self.load_children(child_id, &child_dir, depth + 1)?;
        }
        Ok(())
    }

    /// Finds the file of `mod name;` declared in module `id` and the directory its own
    /// children will be looked up in.
    fn locate(
        &self,
        id: ModId,
        dir: &Path,
        decl: &syn::ItemMod,
        name: &str,
    ) -> Result<(PathBuf, PathBuf), Error> {
        let parent = &self.modules[id];
        if let Some(p) = attrs::path_attr(&decl.attrs) {
            // Relative to the declaring file's directory, or to the inline module's
            // directory when declared inside one. A `#[path]` file owns its directory
            // like a `mod.rs` does.
            let base = if parent.inline {
                dir.to_path_buf()
            } else {
                parent.file.parent().unwrap_or(Path::new(".")).to_path_buf()
            };
            let file = base.join(p);
            if file.is_file() {
                let child_dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
                return Ok((file, child_dir));
            }
            return Err(missing(parent, decl, name, vec![file]));
        }
        let flat = dir.join(format!("{name}.rs"));
        if flat.is_file() {
            return Ok((flat, dir.join(name)));
        }
        let nested = dir.join(name).join("mod.rs");
        if nested.is_file() {
            return Ok((nested, dir.join(name)));
        }
        Err(missing(parent, decl, name, vec![flat, nested]))
    }

    /// The module's path for people: `tongdai::store::campaign`.
    pub fn display(&self, id: ModId) -> String {
        let mut out = self.name.clone();
        for seg in &self.modules[id].path {
            out.push_str("::");
            out.push_str(seg);
        }
        out
    }

    /// Whether `ancestor` is `id` itself or contains it.
    pub fn is_ancestor_or_self(&self, ancestor: ModId, id: ModId) -> bool {
        let mut cur = Some(id);
        while let Some(m) = cur {
            if m == ancestor {
                return true;
            }
            cur = self.modules[m].parent;
        }
        false
    }

    /// `id` and its ancestors, innermost first, ending with the root.
    pub fn ancestry(&self, id: ModId) -> Vec<ModId> {
        let mut out = Vec::new();
        let mut cur = Some(id);
        while let Some(m) = cur {
            out.push(m);
            cur = self.modules[m].parent;
        }
        out
    }

    /// The files holding non-test code of this crate.
    pub fn files(&self) -> BTreeSet<PathBuf> {
        self.modules.iter().map(|m| m.file.clone()).collect()
    }
}

fn missing(parent: &Module, decl: &syn::ItemMod, name: &str, candidates: Vec<PathBuf>) -> Error {
    Error::MissingModule {
        file: parent.file.clone(),
        line: decl.ident.span().start().line,
        name: name.to_string(),
        candidates,
    }
}

fn non_test(items: Vec<syn::Item>) -> Vec<syn::Item> {
    items
        .into_iter()
        .filter(|item| !attrs::is_test_only(attrs::item_attrs(item)))
        .collect()
}

/// An identifier without its raw prefix (`r#type` is the module `type`).
pub fn ident_string(ident: &proc_macro2::Ident) -> String {
    let s = ident.to_string();
    match s.strip_prefix("r#") {
        Some(raw) => raw.to_string(),
        None => s,
    }
}

/// Reads and parses one source file, with the position of a syntax error.
pub fn parse_file(path: &Path) -> Result<syn::File, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    syn::parse_file(&text).map_err(|e| {
        let start = e.span().start();
        Error::Parse {
            path: path.to_path_buf(),
            line: start.line,
            column: start.column + 1,
            message: e.to_string(),
        }
    })
}
