//! Dialplan files → validated [`CompiledPlan`]s.
//!
//! The TOML is walked by hand over `toml::de::DeTable` rather than deserialised with
//! serde, because a dialplan author wants *every* mistake of a file in one run, each
//! with its line, and serde stops at the first. A plan with any error is never
//! returned: the service keeps running the plans it already has (reload = build a new
//! [`Dialplans`] and swap it in; calls in progress keep their `Arc`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::plan::{
    CompiledPlan, Menu, Node, NodeId, NodeKind, Part, PatternChar, PromptItem, Template, is_dtmf,
};
use super::say;

/// What a dialplan may refer to, supplied by the layers that own it: the prompt ids the
/// media layer has loaded and the actions the program layer can run.
#[derive(Debug, Clone, Default)]
pub struct CompileContext {
    /// Prompt ids that exist (file stems in `prompts/vi`).
    pub prompts: HashSet<String>,
    /// Action name → every outcome it can return.
    pub actions: HashMap<String, Vec<String>>,
}

/// One problem in one dialplan file: `FILE:LINE: where: what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialplanError {
    /// The file as named to the compiler (e.g. `dialplans/9090.toml`).
    pub file: String,
    /// 1-based line; `None` when the problem is the file as a whole (unreadable).
    pub line: Option<usize>,
    /// Where in the file: "node `main_menu`", "`[dialplan]`", "`[vars]`".
    pub context: Option<String>,
    pub kind: ErrorKind,
}

impl fmt::Display for DialplanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(context) = &self.context {
            write!(f, ": {context}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for DialplanError {}

/// What is wrong. Each variant names the offending key or value so the message alone
/// is enough to fix the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("TOML syntax error: {0}")]
    Syntax(String),
    #[error("unknown key `{key}` (expected one of: {expected})")]
    UnknownKey { key: String, expected: String },
    #[error("key `{key}` does not belong in a {kind} node")]
    KeyNotForKind { key: String, kind: &'static str },
    #[error("`{key}` must be {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("missing `{0}`")]
    MissingKey(String),
    #[error(
        "node has no kind: give exactly one of play, menu, action, set, goto, transfer, hangup"
    )]
    NoKind,
    #[error("node has several kinds ({}): give exactly one", .0.join(", "))]
    SeveralKinds(Vec<&'static str>),
    #[error("{via} goes to unknown node `{target}`")]
    UnknownNode { via: String, target: String },
    #[error("unknown action `{0}`")]
    UnknownAction(String),
    #[error("action `{action}`: outcome(s) {} not handled and no `default`", quoted(.outcomes))]
    UnhandledOutcomes {
        action: String,
        outcomes: Vec<String>,
    },
    #[error("`on.{outcome}`: `{outcome}` is not an outcome of action `{action}` (it returns {})", quoted(.known))]
    NotAnOutcome {
        action: String,
        outcome: String,
        known: Vec<String>,
    },
    #[error("unknown prompt `{0}`")]
    UnknownPrompt(String),
    #[error("no prompt matches `{0}`")]
    NoMatchingPrompt(String),
    #[error("`{{ {item} = … }}` needs prompts that do not exist: {}", .missing.join(", "))]
    MissingSayPrompts {
        item: &'static str,
        missing: Vec<String>,
    },
    #[error("node is unreachable from start node `{0}`")]
    Unreachable(String),
    #[error("branch \"{key}\" can never be entered: {reason}")]
    UnenterableBranch { key: String, reason: String },
    #[error("menu has no branches")]
    NoBranches,
    #[error("`{key}` = \"{value}\" is not a valid duration: {reason}")]
    InvalidDuration {
        key: String,
        value: String,
        reason: String,
    },
    #[error("`{key}`: {reason}")]
    InvalidValue { key: String, reason: String },
    #[error("number \"{number}\" is already answered by {other}")]
    DuplicateNumber { number: String, other: String },
    #[error("dialplan name \"{name}\" is already used by {other}")]
    DuplicateName { name: String, other: String },
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// All dialplans of a directory, by called number. Immutable on purpose: a reload builds
/// a new one and swaps it, so a call never sees a half-loaded set.
#[derive(Debug, Clone, Default)]
pub struct Dialplans {
    by_number: BTreeMap<String, Arc<CompiledPlan>>,
    by_name: BTreeMap<String, Arc<CompiledPlan>>,
    files: Vec<PathBuf>,
}

impl Dialplans {
    /// Put compiled plans together, rejecting a number or a name used twice (each
    /// number must lead to exactly one plan).
    pub fn from_plans(plans: Vec<CompiledPlan>) -> Result<Dialplans, Vec<DialplanError>> {
        let mut out = Dialplans::default();
        let mut errors = Vec::new();
        for plan in plans {
            let plan = Arc::new(plan);
            if let Some(other) = out.by_name.get(&plan.name) {
                errors.push(DialplanError {
                    file: plan.file.clone(),
                    line: Some(plan.name_line),
                    context: Some("[dialplan]".into()),
                    kind: ErrorKind::DuplicateName {
                        name: plan.name.clone(),
                        other: other.file.clone(),
                    },
                });
            } else {
                out.by_name.insert(plan.name.clone(), plan.clone());
            }
            for (number, line) in plan.numbers.iter().zip(&plan.number_lines) {
                if let Some(other) = out.by_number.get(number) {
                    errors.push(DialplanError {
                        file: plan.file.clone(),
                        line: Some(*line),
                        context: Some("[dialplan]".into()),
                        kind: ErrorKind::DuplicateNumber {
                            number: number.clone(),
                            other: other.file.clone(),
                        },
                    });
                } else {
                    out.by_number.insert(number.clone(), plan.clone());
                }
            }
            out.files.push(PathBuf::from(&plan.file));
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// The plan answering this called number (exact match on the user part).
    pub fn for_number(&self, number: &str) -> Option<Arc<CompiledPlan>> {
        self.by_number.get(number).cloned()
    }

    /// A plan by its `[dialplan] name`: outbound campaigns pick their plan this way
    /// (campaign policy `dialplan = "invite"`). Outbound-only plans declare
    /// `numbers = []` (or no `numbers`) and are reachable only like this.
    pub fn by_name(&self, name: &str) -> Option<Arc<CompiledPlan>> {
        self.by_name.get(name).cloned()
    }

    /// Every plan name, sorted (what a campaign's `dialplan` may name).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Every number answered, sorted.
    pub fn numbers(&self) -> impl Iterator<Item = &str> {
        self.by_number.keys().map(String::as_str)
    }

    /// The files the plans came from, in load order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Compile every `*.toml` in `dir` (sorted by file name). All errors of all files are
/// returned together.
pub fn load_dir(dir: &Path, ctx: &CompileContext) -> Result<Dialplans, Vec<DialplanError>> {
    let io_error = |path: &Path, e: std::io::Error| DialplanError {
        file: path.display().to_string(),
        line: None,
        context: None,
        kind: ErrorKind::Io(e.to_string()),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| vec![io_error(dir, e)])?;
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
                    paths.push(path);
                }
            }
            Err(e) => errors.push(io_error(dir, e)),
        }
    }
    paths.sort();
    let mut plans = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => match compile_str(&name, &text, ctx) {
                Ok(plan) => plans.push(plan),
                Err(e) => errors.extend(e),
            },
            Err(e) => errors.push(io_error(&path, e)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Dialplans::from_plans(plans)
}

/// Compile one dialplan. `file_name` is only used in messages.
pub fn compile_str(
    file_name: &str,
    text: &str,
    ctx: &CompileContext,
) -> Result<CompiledPlan, Vec<DialplanError>> {
    let mut c = Compiler::new(file_name, text, ctx);
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            c.error(span, None, ErrorKind::Syntax(message));
        }
        return Err(c.finish_errors());
    }
    let plan = c.compile(doc.get_ref());
    match plan {
        Some(plan) if c.errors.is_empty() => Ok(plan),
        _ => Err(c.finish_errors()),
    }
}

/// A key/value of a TOML table, in file order.
struct Entry<'a, 'i> {
    key: &'a str,
    key_span: Range<usize>,
    value: &'a Spanned<DeValue<'i>>,
}

fn entries<'a, 'i>(table: &'a DeTable<'i>) -> Vec<Entry<'a, 'i>> {
    let mut out: Vec<Entry<'a, 'i>> = table
        .iter()
        .map(|(k, v): (&'a Spanned<DeString<'i>>, _)| Entry {
            key: k.get_ref().as_ref(),
            key_span: k.span(),
            value: v,
        })
        .collect();
    out.sort_by_key(|e| e.key_span.start);
    out
}

fn find<'b, 'a, 'i>(entries: &'b [Entry<'a, 'i>], key: &str) -> Option<&'b Entry<'a, 'i>> {
    entries.iter().find(|e| e.key == key)
}

/// The kinds, in the order they are named in messages.
const KINDS: [&str; 7] = [
    "play", "menu", "action", "set", "goto", "transfer", "hangup",
];

fn keys_for(kind: &str) -> &'static [&'static str] {
    match kind {
        "play" => &["play", "next"],
        "menu" => &[
            "menu",
            "max_digits",
            "first_digit_timeout",
            "inter_digit_timeout",
            "terminator",
            "barge_in",
            "max_failures",
            "max_timeouts",
            "invalid",
            "timeout",
            "exit",
            "store",
            "branch",
        ],
        "action" => &["action", "on"],
        "set" => &["set", "next"],
        "goto" => &["goto"],
        "transfer" => &["transfer", "play"],
        "hangup" => &["hangup", "play"],
        _ => &[],
    }
}

const MAX_DIGITS_LIMIT: i64 = 32;
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

struct RawNode<'a, 'i> {
    name: &'a str,
    span: Range<usize>,
    value: &'a Spanned<DeValue<'i>>,
}

struct Compiler<'c> {
    file: String,
    line_starts: Vec<usize>,
    ctx: &'c CompileContext,
    errors: Vec<DialplanError>,
    index: HashMap<String, NodeId>,
}

impl<'c> Compiler<'c> {
    fn new(file: &str, text: &str, ctx: &'c CompileContext) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Compiler {
            file: file.to_string(),
            line_starts,
            ctx,
            errors: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    fn error(&mut self, span: Range<usize>, context: Option<String>, kind: ErrorKind) {
        let line = self.line(span.start);
        self.errors.push(DialplanError {
            file: self.file.clone(),
            line: Some(line),
            context,
            kind,
        });
    }

    fn finish_errors(mut self) -> Vec<DialplanError> {
        self.errors.sort_by_key(|e| e.line);
        self.errors.dedup();
        self.errors
    }

    fn compile(&mut self, doc: &DeTable<'_>) -> Option<CompiledPlan> {
        let top = entries(doc);
        let mut dialplan = None;
        let mut vars_table = None;
        let mut node_table = None;
        for e in &top {
            match e.key {
                "dialplan" => dialplan = Some(e),
                "vars" => vars_table = Some(e),
                "node" => node_table = Some(e),
                other => self.error(
                    e.key_span.clone(),
                    None,
                    ErrorKind::UnknownKey {
                        key: other.to_string(),
                        expected: "dialplan, vars, node".into(),
                    },
                ),
            }
        }

        // Nodes first: everything else refers to them.
        let mut raw_nodes = Vec::new();
        if let Some(e) = node_table {
            match e.value.get_ref() {
                DeValue::Table(t) => {
                    for n in entries(t) {
                        raw_nodes.push(RawNode {
                            name: n.key,
                            span: n.key_span.clone(),
                            value: n.value,
                        });
                    }
                }
                _ => self.wrong_type(e, None, "a table of nodes ([node.NAME])"),
            }
        }
        for (id, n) in raw_nodes.iter().enumerate() {
            self.index.insert(n.name.to_string(), id);
        }

        // [dialplan]
        let ctx_dp = Some("[dialplan]".to_string());
        let mut name = None;
        let mut name_line = 1;
        let mut numbers = Vec::new();
        let mut number_lines = Vec::new();
        let mut start = None;
        match dialplan {
            None => self.error(0..0, None, ErrorKind::MissingKey("[dialplan]".into())),
            Some(d) => match d.value.get_ref() {
                DeValue::Table(t) => {
                    let fields = entries(t);
                    for f in &fields {
                        match f.key {
                            "name" => {
                                name = self.string(f, ctx_dp.clone());
                                name_line = self.line(f.key_span.start);
                            }
                            "description" => {
                                self.string(f, ctx_dp.clone());
                            }
                            "numbers" => match f.value.get_ref() {
                                DeValue::Array(items) => {
                                    for item in items.iter() {
                                        match item.get_ref().as_str() {
                                            Some(s) if !s.trim().is_empty() => {
                                                numbers.push(s.trim().to_string());
                                                number_lines.push(self.line(item.span().start));
                                            }
                                            _ => self.error(
                                                item.span(),
                                                ctx_dp.clone(),
                                                ErrorKind::WrongType {
                                                    key: "numbers".into(),
                                                    expected: "a list of non-empty strings",
                                                },
                                            ),
                                        }
                                    }
                                }
                                _ => self.wrong_type(f, ctx_dp.clone(), "a list of strings"),
                            },
                            "start" => {
                                if let Some(target) = self.string(f, ctx_dp.clone()) {
                                    start = self.resolve(
                                        &target,
                                        f.value.span(),
                                        ctx_dp.clone(),
                                        "`start`".into(),
                                    );
                                }
                            }
                            other => self.error(
                                f.key_span.clone(),
                                ctx_dp.clone(),
                                ErrorKind::UnknownKey {
                                    key: other.to_string(),
                                    expected: "name, description, numbers, start".into(),
                                },
                            ),
                        }
                    }
                    if find(&fields, "start").is_none() {
                        self.error(
                            d.key_span.clone(),
                            ctx_dp.clone(),
                            ErrorKind::MissingKey("start".into()),
                        );
                    }
                }
                _ => self.wrong_type(d, None, "a table"),
            },
        }

        // [vars]
        let mut vars = BTreeMap::new();
        if let Some(v) = vars_table {
            let ctx_v = Some("[vars]".to_string());
            match v.value.get_ref() {
                DeValue::Table(t) => {
                    for f in entries(t) {
                        self.var_name(f.key, f.key_span.clone(), ctx_v.clone(), "[vars]");
                        if let Some(s) = self.string(&f, ctx_v.clone()) {
                            vars.insert(f.key.to_string(), s);
                        }
                    }
                }
                _ => self.wrong_type(v, None, "a table of strings"),
            }
        }

        // Nodes.
        let mut nodes = Vec::new();
        for raw in &raw_nodes {
            let kind = self.node(raw);
            nodes.push(kind.map(|kind| Node {
                name: raw.name.to_string(),
                kind,
            }));
        }

        // Reachability, over every reference that names a node (even in nodes that
        // have other errors), so one typo does not cascade into "unreachable" noise.
        if let Some(start) = start {
            let edges: Vec<Vec<NodeId>> = raw_nodes.iter().map(|n| self.edges(n)).collect();
            let mut seen = vec![false; raw_nodes.len()];
            let mut queue = VecDeque::from([start]);
            seen[start] = true;
            while let Some(id) = queue.pop_front() {
                for &to in &edges[id] {
                    if !seen[to] {
                        seen[to] = true;
                        queue.push_back(to);
                    }
                }
            }
            let start_name = raw_nodes[start].name.to_string();
            for (raw, seen) in raw_nodes.iter().zip(seen) {
                if !seen {
                    self.error(
                        raw.span.clone(),
                        node_ctx(raw.name),
                        ErrorKind::Unreachable(start_name.clone()),
                    );
                }
            }
        }

        let start = start?;
        let nodes: Option<Vec<Node>> = nodes.into_iter().collect();
        let nodes = nodes?;
        Some(CompiledPlan {
            name: name.unwrap_or_else(|| file_stem(&self.file)),
            file: self.file.clone(),
            numbers,
            number_lines,
            name_line,
            start,
            vars,
            by_name: self.index.clone(),
            nodes,
            prompts: self.ctx.prompts.clone(),
        })
    }

    /// Targets of `next`, `goto`, `exit`, `on.*` and `branch.*` that name a node.
    fn edges(&self, raw: &RawNode<'_, '_>) -> Vec<NodeId> {
        let mut out = Vec::new();
        let DeValue::Table(t) = raw.value.get_ref() else {
            return out;
        };
        for e in entries(t) {
            match (e.key, e.value.get_ref()) {
                ("next" | "goto" | "exit", DeValue::String(s)) => {
                    out.extend(self.index.get(s.as_ref()));
                }
                ("on" | "branch", DeValue::Table(sub)) => {
                    for (_, v) in sub.iter() {
                        if let Some(s) = v.get_ref().as_str() {
                            out.extend(self.index.get(s));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn node(&mut self, raw: &RawNode<'_, '_>) -> Option<NodeKind> {
        let cx = node_ctx(raw.name);
        let DeValue::Table(t) = raw.value.get_ref() else {
            self.error(
                raw.span.clone(),
                cx,
                ErrorKind::WrongType {
                    key: raw.name.to_string(),
                    expected: "a table",
                },
            );
            return None;
        };
        let fields = entries(t);
        let present = |k: &str| find(&fields, k).is_some();
        let mut kinds: Vec<&'static str> =
            KINDS[1..].iter().copied().filter(|k| present(k)).collect();
        // `play` is a kind of its own only when it is not the prelude of a transfer or
        // a hangup.
        if present("play") && !present("transfer") && !present("hangup") {
            kinds.insert(0, "play");
        }
        let kind = match kinds.as_slice() {
            [] => {
                self.error(raw.span.clone(), cx, ErrorKind::NoKind);
                return None;
            }
            [one] => *one,
            several => {
                self.error(
                    raw.span.clone(),
                    cx,
                    ErrorKind::SeveralKinds(several.to_vec()),
                );
                return None;
            }
        };
        let allowed = keys_for(kind);
        let mut shape_ok = true;
        for f in &fields {
            if allowed.contains(&f.key) {
                continue;
            }
            shape_ok = false;
            let known_elsewhere = KINDS.iter().any(|k| keys_for(k).contains(&f.key));
            let err = if known_elsewhere {
                ErrorKind::KeyNotForKind {
                    key: f.key.to_string(),
                    kind,
                }
            } else {
                ErrorKind::UnknownKey {
                    key: f.key.to_string(),
                    expected: allowed.join(", "),
                }
            };
            self.error(f.key_span.clone(), cx.clone(), err);
        }
        let node = match kind {
            "play" => self.play_node(raw, &fields),
            "menu" => self
                .menu_node(raw, &fields)
                .map(|m| NodeKind::Menu(Box::new(m))),
            "action" => self.action_node(raw, &fields),
            "set" => self.set_node(raw, &fields),
            "goto" => {
                let f = find(&fields, "goto")?;
                self.node_ref(f, &cx, "`goto`".into()).map(NodeKind::Goto)
            }
            "transfer" => {
                let prompts = self.optional_prompts(&fields, "play", &cx);
                let f = find(&fields, "transfer")?;
                let to = self.string(f, cx.clone()).and_then(|s| {
                    if s.trim().is_empty() {
                        self.error(
                            f.value.span(),
                            cx.clone(),
                            ErrorKind::InvalidValue {
                                key: "transfer".into(),
                                reason: "the destination is empty".into(),
                            },
                        );
                        None
                    } else {
                        self.template(&s, f.value.span(), &cx, "transfer")
                    }
                });
                Some(NodeKind::Transfer {
                    prompts: prompts?,
                    to: to?,
                })
            }
            "hangup" => {
                let prompts = self.optional_prompts(&fields, "play", &cx);
                let f = find(&fields, "hangup")?;
                if f.value.get_ref().as_bool() != Some(true) {
                    self.wrong_type(f, cx, "true");
                    return None;
                }
                Some(NodeKind::Hangup { prompts: prompts? })
            }
            _ => None,
        };
        if shape_ok { node } else { None }
    }

    fn play_node(&mut self, raw: &RawNode<'_, '_>, fields: &[Entry<'_, '_>]) -> Option<NodeKind> {
        let cx = node_ctx(raw.name);
        let prompts = self.optional_prompts(fields, "play", &cx);
        let next = self.required_ref(raw, fields, "next");
        Some(NodeKind::Play {
            prompts: prompts?,
            next: next?,
        })
    }

    fn set_node(&mut self, raw: &RawNode<'_, '_>, fields: &[Entry<'_, '_>]) -> Option<NodeKind> {
        let cx = node_ctx(raw.name);
        let mut assign = Vec::new();
        let mut ok = true;
        if let Some(f) = find(fields, "set") {
            match f.value.get_ref() {
                DeValue::Table(t) => {
                    for v in entries(t) {
                        ok &= self.var_name(v.key, v.key_span.clone(), cx.clone(), "set");
                        match self.string(&v, cx.clone()) {
                            Some(s) => {
                                match self.template(
                                    &s,
                                    v.value.span(),
                                    &cx,
                                    &format!("set.{}", v.key),
                                ) {
                                    Some(t) => assign.push((v.key.to_string(), t)),
                                    None => ok = false,
                                }
                            }
                            None => ok = false,
                        }
                    }
                }
                _ => {
                    self.wrong_type(
                        f,
                        cx.clone(),
                        "a table of strings, e.g. { specialty = \"1\" }",
                    );
                    ok = false;
                }
            }
        }
        let next = self.required_ref(raw, fields, "next");
        if !ok {
            return None;
        }
        Some(NodeKind::Set {
            assign,
            next: next?,
        })
    }

    fn action_node(&mut self, raw: &RawNode<'_, '_>, fields: &[Entry<'_, '_>]) -> Option<NodeKind> {
        let cx = node_ctx(raw.name);
        let f = find(fields, "action")?;
        let name = self.string(f, cx.clone())?;
        let outcomes = match self.ctx.actions.get(&name) {
            Some(o) => Some(o.clone()),
            None => {
                self.error(
                    f.value.span(),
                    cx.clone(),
                    ErrorKind::UnknownAction(name.clone()),
                );
                None
            }
        };
        let mut on = HashMap::new();
        let mut default = None;
        let mut ok = true;
        match find(fields, "on").map(|e| (e, e.value.get_ref())) {
            None => {}
            Some((_, DeValue::Table(t))) => {
                for o in entries(t) {
                    let target = self.node_ref(&o, &cx, format!("outcome `{}`", o.key));
                    if o.key == "default" {
                        default = target;
                    } else {
                        if let Some(known) = &outcomes
                            && !known.iter().any(|k| k == o.key)
                        {
                            self.error(
                                o.key_span.clone(),
                                cx.clone(),
                                ErrorKind::NotAnOutcome {
                                    action: name.clone(),
                                    outcome: o.key.to_string(),
                                    known: known.clone(),
                                },
                            );
                            ok = false;
                        }
                        match target {
                            Some(t) => {
                                on.insert(o.key.to_string(), t);
                            }
                            None => ok = false,
                        }
                    }
                }
                ok &= default.is_some() || find(&entries(t), "default").is_none();
            }
            Some((e, _)) => {
                self.wrong_type(e, cx.clone(), "a table of outcome = node");
                ok = false;
            }
        }
        let outcomes = outcomes?;
        // A `default` that names an unknown node was reported already: do not also
        // report every outcome as unhandled.
        let has_default = match find(fields, "on").map(|e| e.value.get_ref()) {
            Some(DeValue::Table(t)) => t.iter().any(|(k, _)| k.get_ref() == "default"),
            _ => false,
        };
        if !has_default {
            let missing: Vec<String> = outcomes
                .iter()
                .filter(|o| !on.contains_key(*o))
                .cloned()
                .collect();
            if !missing.is_empty() {
                let span = find(fields, "on").map_or(f.key_span.clone(), |e| e.key_span.clone());
                self.error(
                    span,
                    cx,
                    ErrorKind::UnhandledOutcomes {
                        action: name.clone(),
                        outcomes: missing,
                    },
                );
                return None;
            }
        }
        if !ok {
            return None;
        }
        Some(NodeKind::Action { name, on, default })
    }

    fn menu_node(&mut self, raw: &RawNode<'_, '_>, fields: &[Entry<'_, '_>]) -> Option<Menu> {
        let cx = node_ctx(raw.name);
        let mut ok = true;
        let prompts = self.optional_prompts(fields, "menu", &cx);
        let invalid = self.optional_prompts(fields, "invalid", &cx);
        let timeout = self.optional_prompts(fields, "timeout", &cx);
        let max_digits = self.int(fields, "max_digits", 1, 1, MAX_DIGITS_LIMIT, &cx);
        let max_failures = self.int(fields, "max_failures", 3, 1, 100, &cx);
        let max_timeouts = self.int(fields, "max_timeouts", 3, 1, 100, &cx);
        let first = self.duration(fields, "first_digit_timeout", Duration::from_secs(5), &cx);
        let inter = self.duration(fields, "inter_digit_timeout", Duration::from_secs(3), &cx);
        let barge_in = match find(fields, "barge_in") {
            None => Some(true),
            Some(f) => match f.value.get_ref().as_bool() {
                Some(b) => Some(b),
                None => {
                    self.wrong_type(f, cx.clone(), "true or false");
                    None
                }
            },
        };
        let terminator = match find(fields, "terminator") {
            None => Some(None),
            Some(f) => {
                let s = self.string(f, cx.clone());
                let mut chars = s.as_deref().unwrap_or("").chars();
                match (
                    s.is_some(),
                    chars.next().map(|c| c.to_ascii_uppercase()),
                    chars.next(),
                ) {
                    (true, Some(c), None) if is_dtmf(c) => Some(Some(c)),
                    (false, ..) => None,
                    _ => {
                        self.error(
                            f.value.span(),
                            cx.clone(),
                            ErrorKind::InvalidValue {
                                key: "terminator".into(),
                                reason: "must be one DTMF key (usually \"#\")".into(),
                            },
                        );
                        None
                    }
                }
            }
        };
        let store = match find(fields, "store") {
            None => Some(None),
            Some(f) => match self.string(f, cx.clone()) {
                Some(s) if self.var_name(&s, f.value.span(), cx.clone(), "store") => Some(Some(s)),
                _ => None,
            },
        };
        let exit = self.required_ref(raw, fields, "exit");

        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        let mut any = None;
        let mut seen_keys: HashMap<String, String> = HashMap::new();
        match find(fields, "branch").map(|e| (e, e.value.get_ref())) {
            Some((_, DeValue::Table(t))) if !t.is_empty() => {
                for b in entries(t) {
                    let target = self.node_ref(&b, &cx, format!("branch \"{}\"", b.key));
                    let key = self.branch_key(
                        &b,
                        max_digits.map(|m| m as usize),
                        terminator.flatten(),
                        &cx,
                    );
                    let (Some(target), Some(key)) = (target, key) else {
                        ok = false;
                        continue;
                    };
                    let norm = match &key {
                        BranchKey::Any => "any".to_string(),
                        BranchKey::Exact(s) => s.clone(),
                        BranchKey::Pattern(_) => format!("_{}", b.key[1..].to_ascii_uppercase()),
                    };
                    if let Some(first) = seen_keys.get(&norm) {
                        self.error(
                            b.key_span.clone(),
                            cx.clone(),
                            ErrorKind::InvalidValue {
                                key: format!("branch \"{}\"", b.key),
                                reason: format!("same key as branch \"{first}\""),
                            },
                        );
                        ok = false;
                        continue;
                    }
                    seen_keys.insert(norm, b.key.to_string());
                    match key {
                        BranchKey::Any => any = Some(target),
                        BranchKey::Exact(s) => {
                            exact.insert(s, target);
                        }
                        BranchKey::Pattern(p) => patterns.push((p, target)),
                    }
                }
            }
            Some((e, DeValue::Table(_))) => {
                self.error(e.key_span.clone(), cx.clone(), ErrorKind::NoBranches);
                ok = false;
            }
            Some((e, _)) => {
                self.wrong_type(e, cx.clone(), "a table of key = node");
                ok = false;
            }
            None => {
                self.error(raw.span.clone(), cx.clone(), ErrorKind::NoBranches);
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        Some(Menu {
            prompts: prompts?,
            max_digits: max_digits? as usize,
            first_digit_timeout: first?,
            inter_digit_timeout: inter?,
            terminator: terminator?,
            barge_in: barge_in?,
            max_failures: max_failures? as u32,
            max_timeouts: max_timeouts? as u32,
            invalid: invalid?,
            timeout: timeout?,
            exit: exit?,
            store: store?,
            exact,
            patterns,
            any,
        })
    }

    /// Check that a branch key can be entered with this menu's settings.
    fn branch_key(
        &mut self,
        b: &Entry<'_, '_>,
        max_digits: Option<usize>,
        terminator: Option<char>,
        cx: &Option<String>,
    ) -> Option<BranchKey> {
        let raw = b.key;
        if raw == "any" {
            return Some(BranchKey::Any);
        }
        let (is_pattern, body) = match raw.strip_prefix('_') {
            Some(body) => (true, body),
            None => (false, raw),
        };
        let mut reason = None;
        let mut pattern = Vec::new();
        let mut exact = String::new();
        for c in body.chars() {
            let up = c.to_ascii_uppercase();
            let item = match up {
                'X' if is_pattern => PatternChar::AnyDigit,
                'Z' if is_pattern => PatternChar::NonZero,
                'N' if is_pattern => PatternChar::TwoToNine,
                k if is_dtmf(k) => PatternChar::Key(k),
                _ => {
                    reason = Some(format!("`{c}` is not a DTMF key"));
                    break;
                }
            };
            if let PatternChar::Key(k) = item
                && Some(k) == terminator
            {
                reason = Some(format!(
                    "it contains the terminator `{k}`, which ends the entry"
                ));
                break;
            }
            pattern.push(item);
            exact.push(up);
        }
        let len = body.chars().count();
        if reason.is_none() {
            if len == 0 {
                reason = Some("the key is empty".into());
            } else if let Some(max) = max_digits
                && len > max
            {
                reason = Some(format!("it has {len} keys but max_digits = {max}"));
            }
        }
        if let Some(reason) = reason {
            self.error(
                b.key_span.clone(),
                cx.clone(),
                ErrorKind::UnenterableBranch {
                    key: raw.to_string(),
                    reason,
                },
            );
            return None;
        }
        Some(if is_pattern {
            BranchKey::Pattern(pattern)
        } else {
            BranchKey::Exact(exact)
        })
    }

    fn int(
        &mut self,
        fields: &[Entry<'_, '_>],
        key: &str,
        default: i64,
        min: i64,
        max: i64,
        cx: &Option<String>,
    ) -> Option<i64> {
        let Some(f) = find(fields, key) else {
            return Some(default);
        };
        let n = match f.value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.error(
                    f.value.span(),
                    cx.clone(),
                    ErrorKind::InvalidValue {
                        key: key.into(),
                        reason: format!("{n} is out of range {min}..={max}"),
                    },
                );
                None
            }
            None => {
                self.wrong_type(f, cx.clone(), "an integer");
                None
            }
        }
    }

    fn duration(
        &mut self,
        fields: &[Entry<'_, '_>],
        key: &str,
        default: Duration,
        cx: &Option<String>,
    ) -> Option<Duration> {
        let Some(f) = find(fields, key) else {
            return Some(default);
        };
        let Some(text) = f.value.get_ref().as_str() else {
            self.wrong_type(
                f,
                cx.clone(),
                "a duration string such as \"5s\" or \"1500ms\"",
            );
            return None;
        };
        let reason = match humantime::parse_duration(text) {
            Ok(d) if d.is_zero() => "it must be longer than zero".to_string(),
            Ok(d) if d > MAX_TIMEOUT => format!(
                "it must be at most {}",
                humantime::format_duration(MAX_TIMEOUT)
            ),
            Ok(d) => return Some(d),
            Err(e) => e.to_string(),
        };
        self.error(
            f.value.span(),
            cx.clone(),
            ErrorKind::InvalidDuration {
                key: key.into(),
                value: text.into(),
                reason,
            },
        );
        None
    }

    fn optional_prompts(
        &mut self,
        fields: &[Entry<'_, '_>],
        key: &str,
        cx: &Option<String>,
    ) -> Option<Vec<PromptItem>> {
        match find(fields, key) {
            None => Some(Vec::new()),
            Some(f) => self.prompts(f, cx),
        }
    }

    fn prompts(&mut self, f: &Entry<'_, '_>, cx: &Option<String>) -> Option<Vec<PromptItem>> {
        const EXPECTED: &str = "a list of prompt ids or { var | number | date | digits = \"VAR\" }";
        let DeValue::Array(items) = f.value.get_ref() else {
            self.wrong_type(f, cx.clone(), EXPECTED);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items.iter() {
            let span = item.span();
            match item.get_ref() {
                DeValue::String(s) => match self.template(s, span.clone(), cx, f.key) {
                    Some(t) => {
                        ok &= self.check_prompt_template(&t, s, span, cx);
                        out.push(PromptItem::Id(t));
                    }
                    None => ok = false,
                },
                DeValue::Table(t) if t.len() == 1 => {
                    let dynamic = entries(t);
                    let d = &dynamic[0];
                    let Some(var) = d.value.get_ref().as_str().map(str::to_string) else {
                        self.wrong_type(d, cx.clone(), "the name of a variable");
                        ok = false;
                        continue;
                    };
                    ok &= self.var_name(&var, d.value.span(), cx.clone(), d.key);
                    let (item, needed, what): (PromptItem, Vec<String>, &'static str) = match d.key
                    {
                        "var" => (PromptItem::Var(var), Vec::new(), "var"),
                        "number" => (PromptItem::Number(var), say::number_prompts(), "number"),
                        "date" => (PromptItem::Date(var), say::date_prompts(), "date"),
                        "digits" => (PromptItem::Digits(var), say::digit_prompts(), "digits"),
                        other => {
                            self.error(
                                d.key_span.clone(),
                                cx.clone(),
                                ErrorKind::UnknownKey {
                                    key: other.to_string(),
                                    expected: "var, number, date, digits".into(),
                                },
                            );
                            ok = false;
                            continue;
                        }
                    };
                    let missing: Vec<String> = needed
                        .into_iter()
                        .filter(|id| !self.ctx.prompts.contains(id))
                        .collect();
                    if !missing.is_empty() {
                        self.error(
                            span,
                            cx.clone(),
                            ErrorKind::MissingSayPrompts {
                                item: what,
                                missing,
                            },
                        );
                        ok = false;
                    }
                    out.push(item);
                }
                _ => {
                    self.error(
                        span,
                        cx.clone(),
                        ErrorKind::WrongType {
                            key: f.key.to_string(),
                            expected: EXPECTED,
                        },
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A static id must exist; an interpolated one must match at least one prompt by its
    /// literal prefix and suffix (`specialty_{{specialty}}` → `specialty_1` …).
    fn check_prompt_template(
        &mut self,
        t: &Template,
        text: &str,
        span: Range<usize>,
        cx: &Option<String>,
    ) -> bool {
        if t.is_static() {
            if self.ctx.prompts.contains(text) {
                return true;
            }
            self.error(span, cx.clone(), ErrorKind::UnknownPrompt(text.to_string()));
            return false;
        }
        fn lit(p: Option<&Part>) -> &str {
            match p {
                Some(Part::Lit(s)) => s.as_str(),
                _ => "",
            }
        }
        let prefix = lit(t.parts.first());
        let suffix = lit(t.parts.last());
        let found = self.ctx.prompts.iter().any(|p| {
            p.len() > prefix.len() + suffix.len() && p.starts_with(prefix) && p.ends_with(suffix)
        });
        if !found {
            self.error(
                span,
                cx.clone(),
                ErrorKind::NoMatchingPrompt(text.to_string()),
            );
        }
        found
    }

    fn template(
        &mut self,
        text: &str,
        span: Range<usize>,
        cx: &Option<String>,
        key: &str,
    ) -> Option<Template> {
        match parse_template(text) {
            Ok(t) => Some(t),
            Err(reason) => {
                self.error(
                    span,
                    cx.clone(),
                    ErrorKind::InvalidValue {
                        key: key.to_string(),
                        reason,
                    },
                );
                None
            }
        }
    }

    fn var_name(&mut self, name: &str, span: Range<usize>, cx: Option<String>, key: &str) -> bool {
        if is_var_name(name) {
            return true;
        }
        self.error(
            span,
            cx,
            ErrorKind::InvalidValue {
                key: key.to_string(),
                reason: format!("`{name}` is not a variable name (letters, digits, _)"),
            },
        );
        false
    }

    fn string(&mut self, f: &Entry<'_, '_>, cx: Option<String>) -> Option<String> {
        match f.value.get_ref().as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.wrong_type(f, cx, "a string");
                None
            }
        }
    }

    fn wrong_type(&mut self, f: &Entry<'_, '_>, cx: Option<String>, expected: &'static str) {
        self.error(
            f.value.span(),
            cx,
            ErrorKind::WrongType {
                key: f.key.to_string(),
                expected,
            },
        );
    }

    fn required_ref(
        &mut self,
        raw: &RawNode<'_, '_>,
        fields: &[Entry<'_, '_>],
        key: &str,
    ) -> Option<NodeId> {
        let cx = node_ctx(raw.name);
        match find(fields, key) {
            Some(f) => self.node_ref(f, &cx, format!("`{key}`")),
            None => {
                self.error(raw.span.clone(), cx, ErrorKind::MissingKey(key.to_string()));
                None
            }
        }
    }

    fn node_ref(&mut self, f: &Entry<'_, '_>, cx: &Option<String>, via: String) -> Option<NodeId> {
        let target = self.string(f, cx.clone())?;
        self.resolve(&target, f.value.span(), cx.clone(), via)
    }

    fn resolve(
        &mut self,
        target: &str,
        span: Range<usize>,
        cx: Option<String>,
        via: String,
    ) -> Option<NodeId> {
        match self.index.get(target) {
            Some(&id) => Some(id),
            None => {
                self.error(
                    span,
                    cx,
                    ErrorKind::UnknownNode {
                        via,
                        target: target.to_string(),
                    },
                );
                None
            }
        }
    }
}

enum BranchKey {
    Any,
    Exact(String),
    Pattern(Vec<PatternChar>),
}

fn node_ctx(name: &str) -> Option<String> {
    Some(format!("node `{name}`"))
}

fn file_stem(file: &str) -> String {
    Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_string())
}

pub(crate) fn is_var_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Split `a_{{b}}_c` into literal and variable parts.
pub(crate) fn parse_template(text: &str) -> Result<Template, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Lit(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!("`{{{{` without `}}}}` in \"{text}\""));
        };
        let name = after[..close].trim();
        if !is_var_name(name) {
            return Err(format!(
                "`{{{{{name}}}}}` is not a variable name in \"{text}\""
            ));
        }
        parts.push(Part::Var(name.to_string()));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    Ok(Template { parts })
}
