//! The compiled, validated form of one dialplan: what the engine walks.
//!
//! Every node reference is an index (checked once at compile time), so the engine never
//! has to handle "no such node" while a caller is on the line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Index of a node in [`CompiledPlan`]; only valid for the plan that issued it.
pub(crate) type NodeId = usize;

/// One dialplan, validated against the prompts and actions that exist.
#[derive(Debug, Clone)]
pub struct CompiledPlan {
    pub(crate) name: String,
    pub(crate) file: String,
    pub(crate) numbers: Vec<String>,
    /// Line of each number, for "number used twice" errors across files.
    pub(crate) number_lines: Vec<usize>,
    pub(crate) name_line: usize,
    pub(crate) start: NodeId,
    pub(crate) vars: BTreeMap<String, String>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) by_name: HashMap<String, NodeId>,
    /// The prompt ids that existed when the plan was compiled: dynamic items (`{ var }`,
    /// `{{var}}`) are checked against it at run time so the media layer is never asked
    /// for a prompt it does not have.
    pub(crate) prompts: HashSet<String>,
}

impl CompiledPlan {
    /// The `[dialplan] name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file it was compiled from (as given to the compiler), for logs and errors.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The called numbers this plan answers.
    pub fn numbers(&self) -> &[String] {
        &self.numbers
    }

    /// The node a call starts in.
    pub fn start(&self) -> &str {
        &self.nodes[self.start].name
    }

    /// Initial call variables from `[vars]`.
    pub fn initial_vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Node names, in file order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name.as_str())
    }

    /// Whether a node of that name exists.
    pub fn has_node(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    /// Play prompts, then go on.
    Play {
        prompts: Vec<PromptItem>,
        next: NodeId,
    },
    /// Play + gather + branch with retries.
    Menu(Box<Menu>),
    /// Ask the call layer to run a program action and route on its outcome.
    Action {
        name: String,
        on: HashMap<String, NodeId>,
        default: Option<NodeId>,
    },
    /// Assign variables, then go on.
    Set {
        assign: Vec<(String, Template)>,
        next: NodeId,
    },
    /// Jump.
    Goto(NodeId),
    /// Optional prompts, then a blind transfer.
    Transfer {
        prompts: Vec<PromptItem>,
        to: Template,
    },
    /// Optional prompts, then hang up.
    Hangup { prompts: Vec<PromptItem> },
}

#[derive(Debug, Clone)]
pub(crate) struct Menu {
    pub(crate) prompts: Vec<PromptItem>,
    pub(crate) max_digits: usize,
    pub(crate) first_digit_timeout: Duration,
    pub(crate) inter_digit_timeout: Duration,
    pub(crate) terminator: Option<char>,
    pub(crate) barge_in: bool,
    pub(crate) max_failures: u32,
    pub(crate) max_timeouts: u32,
    pub(crate) invalid: Vec<PromptItem>,
    pub(crate) timeout: Vec<PromptItem>,
    pub(crate) exit: NodeId,
    pub(crate) store: Option<String>,
    /// Exact keys: tried first.
    pub(crate) exact: HashMap<String, NodeId>,
    /// `_` patterns, in file order: tried after the exact keys.
    pub(crate) patterns: Vec<(Vec<PatternChar>, NodeId)>,
    /// `any`: a non-empty entry nothing else matched.
    pub(crate) any: Option<NodeId>,
}

impl Menu {
    /// Where a complete entry goes, if anywhere.
    pub(crate) fn route(&self, entry: &str) -> Option<NodeId> {
        if let Some(&id) = self.exact.get(entry) {
            return Some(id);
        }
        for (pattern, id) in &self.patterns {
            if pattern_matches(pattern, entry) {
                return Some(*id);
            }
        }
        if entry.is_empty() { None } else { self.any }
    }
}

/// One position of an Asterisk-style `_` branch pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatternChar {
    /// `X`: 0–9.
    AnyDigit,
    /// `Z`: 1–9.
    NonZero,
    /// `N`: 2–9.
    TwoToNine,
    /// A DTMF key, matched literally.
    Key(char),
}

fn pattern_matches(pattern: &[PatternChar], entry: &str) -> bool {
    let keys: Vec<char> = entry.chars().collect();
    keys.len() == pattern.len()
        && pattern.iter().zip(keys).all(|(p, k)| match p {
            PatternChar::AnyDigit => k.is_ascii_digit(),
            PatternChar::NonZero => ('1'..='9').contains(&k),
            PatternChar::TwoToNine => ('2'..='9').contains(&k),
            PatternChar::Key(c) => *c == k,
        })
}

/// A string with `{{var}}` holes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(String),
    Var(String),
}

impl Template {
    /// Fill the holes; an unset variable becomes the empty string.
    pub(crate) fn render(&self, vars: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => out.push_str(vars.get(v).map(String::as_str).unwrap_or("")),
            }
        }
        out
    }

    pub(crate) fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }
}

/// One entry of a prompt list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PromptItem {
    /// A prompt id, possibly with `{{var}}` holes.
    Id(Template),
    /// The prompt id is the value of this variable.
    Var(String),
    /// Speak the integer in this variable.
    Number(String),
    /// Speak the `YYYY-MM-DD` date in this variable.
    Date(String),
    /// Speak the keys in this variable one by one.
    Digits(String),
}

/// The DTMF keys a caller can press.
pub(crate) fn is_dtmf(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}
