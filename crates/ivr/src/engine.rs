//! The per-call dialplan engine: a sans-IO state machine.
//!
//! The call layer feeds it [`Input`]s with the current `now`, drains [`Output`]s with
//! [`Engine::poll_output`] and calls [`Engine::handle_timeout`] when
//! [`Engine::poll_timeout`] is due. It never reads the clock, sleeps or touches a socket,
//! so a whole call ("three invalid keys, then the exit prompt") is tested in
//! microseconds. See the module doc of [`crate`] for the exact semantics.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::plan::{CompiledPlan, Menu, NodeId, NodeKind, PromptItem, is_dtmf};
use super::say;

/// The most node transitions allowed without the caller hearing a prompt or being
/// asked for a key. A dialplan that loops through `goto`/`set`/actions without ever
/// waiting on the caller would otherwise spin forever.
pub const MAX_SILENT_TRANSITIONS: u32 = 100;

/// The variable holding the last complete menu entry (valid or not).
pub const LAST_DIGITS: &str = "last_digits";

/// What happened on the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A DTMF key (RFC 4733, SIP INFO or in-band: the engine does not care).
    Digit(char),
    /// Everything of the last [`Output::Play`] has been played. Not sent for a playback
    /// that was stopped with [`Output::StopPlayback`].
    PromptsFinished,
    /// The result of the last [`Output::RunAction`]. A call layer that fails to run an
    /// action reports the outcome `error`.
    ActionResult {
        outcome: String,
        vars: Vec<(String, String)>,
    },
}

/// What the engine asks the call layer to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Queue these prompt ids (dynamic items already expanded), in order; answer with
    /// one [`Input::PromptsFinished`] when the whole list has played.
    Play(Vec<String>),
    /// Barge-in: flush the playback queue; no `PromptsFinished` is expected for it.
    StopPlayback,
    /// Run a program action with a snapshot of the call variables, then feed
    /// [`Input::ActionResult`].
    RunAction {
        name: String,
        vars: BTreeMap<String, String>,
    },
    /// Blind transfer (SIP REFER in the call layer). The engine is finished.
    Transfer { to: String },
    /// Hang up. The engine is finished.
    Hangup,
}

/// Why the engine ended the call on its own built-in error path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("node `{node}`: action `{action}` returned outcome `{outcome}`, which has no route")]
    UnhandledOutcome {
        node: String,
        action: String,
        outcome: String,
    },
    #[error(
        "more than {MAX_SILENT_TRANSITIONS} transitions without a prompt or a gather (loop at node `{0}`)"
    )]
    Loop(String),
}

/// What the engine is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wait {
    NotStarted,
    /// An `Output::Play` is out; `PromptsFinished` continues with `then`.
    Prompts(AfterPrompts),
    /// Collecting a menu entry until `deadline`.
    Digits {
        deadline: Instant,
    },
    /// A `RunAction` is out.
    Action,
    Finished,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterPrompts {
    Enter(NodeId),
    Transfer(String),
    Hangup,
    /// The menu prompts (or invalid/timeout + menu prompts) are done: start the
    /// first-digit timer.
    Gather,
}

enum Step {
    Enter(NodeId),
    After(AfterPrompts),
    Wait,
}

/// The menu currently being visited: counters live here, so they reset on each visit.
#[derive(Debug, Clone)]
struct Visit {
    node: NodeId,
    failures: u32,
    timeouts: u32,
    entry: String,
}

/// One call's walk through one dialplan.
#[derive(Debug)]
pub struct Engine {
    plan: Arc<CompiledPlan>,
    vars: BTreeMap<String, String>,
    current: Option<NodeId>,
    wait: Wait,
    visit: Option<Visit>,
    outputs: VecDeque<Output>,
    path: Vec<String>,
    digits: String,
    silent_transitions: u32,
    error: Option<EngineError>,
    warnings: Vec<String>,
}

impl Engine {
    /// `vars` are the call's own variables (caller number, campaign id…); they override
    /// the plan's `[vars]` defaults.
    pub fn new(plan: Arc<CompiledPlan>, vars: BTreeMap<String, String>) -> Self {
        let mut all = plan.vars.clone();
        all.extend(vars);
        Engine {
            plan,
            vars: all,
            current: None,
            wait: Wait::NotStarted,
            visit: None,
            outputs: VecDeque::new(),
            path: Vec::new(),
            digits: String::new(),
            silent_transitions: 0,
            error: None,
            warnings: Vec::new(),
        }
    }

    /// The call is answered: enter the start node. Later calls do nothing.
    pub fn start(&mut self, now: Instant) {
        if self.wait == Wait::NotStarted {
            self.run(now, Step::Enter(self.plan.start));
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Digit(key) => self.on_digit(now, key),
            Input::PromptsFinished => {
                if let Wait::Prompts(after) = &self.wait {
                    let after = after.clone();
                    self.run(now, Step::After(after));
                }
            }
            Input::ActionResult { outcome, vars } => {
                if self.wait == Wait::Action {
                    self.on_action_result(now, outcome, vars);
                }
            }
        }
    }

    /// Fire the gather timer if it is due (early calls are ignored).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Wait::Digits { deadline } = self.wait else {
            return;
        };
        if now < deadline {
            return;
        }
        let Some(visit) = self.visit.as_mut() else {
            return;
        };
        if !visit.entry.is_empty() {
            // Inter-digit timeout: what was typed is the entry.
            self.finish_entry(now);
            return;
        }
        visit.timeouts += 1;
        let (node, timeouts) = (visit.node, visit.timeouts);
        let plan = self.plan.clone();
        let NodeKind::Menu(menu) = &plan.nodes[node].kind else {
            return;
        };
        if timeouts >= menu.max_timeouts {
            self.run(now, Step::Enter(menu.exit));
        } else {
            let mut items = menu.timeout.clone();
            items.extend(menu.prompts.iter().cloned());
            let step = self.play(&items, AfterPrompts::Gather);
            self.run(now, step);
        }
    }

    /// When [`Engine::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.wait {
            Wait::Digits { deadline } => Some(deadline),
            _ => None,
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The call variables, including action results and `last_digits`.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    pub fn current_node(&self) -> Option<&str> {
        self.current.map(|id| self.plan.nodes[id].name.as_str())
    }

    /// Node names entered, in order (a menu replay after an invalid key is not a new
    /// entry; a branch back to the same menu is).
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// Every key the caller pressed, in order, including keys the engine ignored.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    pub fn is_finished(&self) -> bool {
        self.wait == Wait::Finished
    }

    /// Set when the call ended on the built-in error path (for the call record).
    pub fn error(&self) -> Option<&EngineError> {
        self.error.as_ref()
    }

    /// Dynamic prompt items that could not be spoken (unset variable, not a number,
    /// unknown prompt id) and were skipped: the call goes on, the record says why.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The plan this call runs (a reload does not change it).
    pub fn plan(&self) -> &Arc<CompiledPlan> {
        &self.plan
    }

    fn menu(&self, id: NodeId) -> Option<&Menu> {
        match &self.plan.nodes[id].kind {
            NodeKind::Menu(m) => Some(m),
            _ => None,
        }
    }

    fn on_digit(&mut self, now: Instant, key: char) {
        let key = key.to_ascii_uppercase();
        // Keys before `start` or after the end are not this engine's to record.
        if !is_dtmf(key) || matches!(self.wait, Wait::NotStarted | Wait::Finished) {
            return;
        }
        self.digits.push(key);
        let Some(node) = self.visit.as_ref().map(|v| v.node) else {
            return;
        };
        let Some(menu) = self.menu(node) else { return };
        let barge_in = menu.barge_in;
        match self.wait {
            Wait::Prompts(AfterPrompts::Gather) if barge_in => {
                self.outputs.push_back(Output::StopPlayback);
                self.collect(now, key);
            }
            Wait::Digits { .. } => self.collect(now, key),
            _ => {}
        }
    }

    fn collect(&mut self, now: Instant, key: char) {
        let Some(visit) = self.visit.as_mut() else {
            return;
        };
        let plan = self.plan.clone();
        let NodeKind::Menu(menu) = &plan.nodes[visit.node].kind else {
            return;
        };
        if menu.terminator == Some(key) {
            self.finish_entry(now);
            return;
        }
        visit.entry.push(key);
        if visit.entry.chars().count() >= menu.max_digits {
            self.finish_entry(now);
        } else {
            self.wait = Wait::Digits {
                deadline: now + menu.inter_digit_timeout,
            };
        }
    }

    fn finish_entry(&mut self, now: Instant) {
        let Some(visit) = self.visit.as_mut() else {
            return;
        };
        let entry = std::mem::take(&mut visit.entry);
        let plan = self.plan.clone();
        let NodeKind::Menu(menu) = &plan.nodes[visit.node].kind else {
            return;
        };
        self.vars.insert(LAST_DIGITS.to_string(), entry.clone());
        if let Some(target) = menu.route(&entry) {
            if let Some(store) = &menu.store {
                self.vars.insert(store.clone(), entry);
            }
            self.run(now, Step::Enter(target));
            return;
        }
        visit.failures += 1;
        if visit.failures >= menu.max_failures {
            self.run(now, Step::Enter(menu.exit));
        } else {
            let mut items = menu.invalid.clone();
            items.extend(menu.prompts.iter().cloned());
            let step = self.play(&items, AfterPrompts::Gather);
            self.run(now, step);
        }
    }

    fn on_action_result(&mut self, now: Instant, outcome: String, vars: Vec<(String, String)>) {
        self.vars.extend(vars);
        let Some(id) = self.current else { return };
        let plan = self.plan.clone();
        let node = &plan.nodes[id];
        let NodeKind::Action { name, on, default } = &node.kind else {
            return;
        };
        match on.get(&outcome).or(default.as_ref()) {
            Some(&target) => self.run(now, Step::Enter(target)),
            None => self.fail(EngineError::UnhandledOutcome {
                node: node.name.clone(),
                action: name.clone(),
                outcome,
            }),
        }
    }

    /// The trampoline: follow transitions until the engine has to wait for the caller,
    /// the media or an action.
    fn run(&mut self, now: Instant, mut step: Step) {
        loop {
            step = match step {
                Step::Wait => return,
                Step::Enter(id) => {
                    self.silent_transitions += 1;
                    if self.silent_transitions > MAX_SILENT_TRANSITIONS {
                        let name = self.plan.nodes[id].name.clone();
                        self.fail(EngineError::Loop(name));
                        return;
                    }
                    self.enter(id)
                }
                Step::After(after) => self.after_prompts(now, after),
            };
        }
    }

    fn enter(&mut self, id: NodeId) -> Step {
        let plan = self.plan.clone();
        let node = &plan.nodes[id];
        self.current = Some(id);
        self.visit = None;
        self.path.push(node.name.clone());
        match &node.kind {
            NodeKind::Play { prompts, next } => self.play(prompts, AfterPrompts::Enter(*next)),
            NodeKind::Menu(menu) => {
                self.visit = Some(Visit {
                    node: id,
                    failures: 0,
                    timeouts: 0,
                    entry: String::new(),
                });
                self.play(&menu.prompts, AfterPrompts::Gather)
            }
            NodeKind::Action { name, .. } => {
                self.outputs.push_back(Output::RunAction {
                    name: name.clone(),
                    vars: self.vars.clone(),
                });
                self.wait = Wait::Action;
                Step::Wait
            }
            NodeKind::Set { assign, next } => {
                // Render every value against the variables as they were before this
                // node, so the order of assignments does not matter.
                let values: Vec<(String, String)> = assign
                    .iter()
                    .map(|(k, t)| (k.clone(), t.render(&self.vars)))
                    .collect();
                self.vars.extend(values);
                Step::Enter(*next)
            }
            NodeKind::Goto(next) => Step::Enter(*next),
            NodeKind::Transfer { prompts, to } => {
                let to = to.render(&self.vars);
                self.play(prompts, AfterPrompts::Transfer(to))
            }
            NodeKind::Hangup { prompts } => self.play(prompts, AfterPrompts::Hangup),
        }
    }

    fn after_prompts(&mut self, now: Instant, after: AfterPrompts) -> Step {
        match after {
            AfterPrompts::Enter(id) => Step::Enter(id),
            AfterPrompts::Transfer(to) => {
                self.outputs.push_back(Output::Transfer { to });
                self.wait = Wait::Finished;
                Step::Wait
            }
            AfterPrompts::Hangup => {
                self.outputs.push_back(Output::Hangup);
                self.wait = Wait::Finished;
                Step::Wait
            }
            AfterPrompts::Gather => {
                let timeout = self
                    .visit
                    .as_ref()
                    .and_then(|v| self.menu(v.node))
                    .map(|m| m.first_digit_timeout);
                match timeout {
                    Some(t) => {
                        self.silent_transitions = 0;
                        self.wait = Wait::Digits { deadline: now + t };
                    }
                    None => self.fail(EngineError::Loop(
                        self.current_node().unwrap_or_default().to_string(),
                    )),
                }
                Step::Wait
            }
        }
    }

    /// Emit the prompts, or continue at once when there is nothing to say.
    fn play(&mut self, items: &[PromptItem], then: AfterPrompts) -> Step {
        let ids = self.resolve(items);
        if ids.is_empty() {
            return Step::After(then);
        }
        self.silent_transitions = 0;
        self.outputs.push_back(Output::Play(ids));
        self.wait = Wait::Prompts(then);
        Step::Wait
    }

    fn fail(&mut self, error: EngineError) {
        self.error = Some(error);
        self.outputs.push_back(Output::Hangup);
        self.wait = Wait::Finished;
    }

    /// Expand dynamic items into prompt ids. Anything that cannot be spoken is skipped
    /// with a warning: a missing word is better than dropping the caller.
    fn resolve(&mut self, items: &[PromptItem]) -> Vec<String> {
        let mut out = Vec::new();
        for item in items {
            let var = |name: &String| self.vars.get(name).map(|v| v.trim().to_string());
            let (ids, problem) = match item {
                PromptItem::Id(t) => (vec![t.render(&self.vars)], None),
                PromptItem::Var(name) => match var(name) {
                    Some(v) => (vec![v], None),
                    None => (
                        vec![],
                        Some(format!("{{ var = \"{name}\" }}: variable not set")),
                    ),
                },
                PromptItem::Number(name) => match var(name).map(|v| (v.parse::<u64>(), v)) {
                    Some((Ok(n), _)) => (say::say_number(n), None),
                    Some((Err(_), v)) => (
                        vec![],
                        Some(format!(
                            "{{ number = \"{name}\" }}: `{v}` is not a non-negative integer"
                        )),
                    ),
                    None => (
                        vec![],
                        Some(format!("{{ number = \"{name}\" }}: variable not set")),
                    ),
                },
                PromptItem::Date(name) => match var(name).map(|v| say::say_date(&v)) {
                    Some(Ok(ids)) => (ids, None),
                    Some(Err(e)) => (vec![], Some(format!("{{ date = \"{name}\" }}: {e}"))),
                    None => (
                        vec![],
                        Some(format!("{{ date = \"{name}\" }}: variable not set")),
                    ),
                },
                PromptItem::Digits(name) => match var(name) {
                    Some(v) => (say::say_digits(&v), None),
                    None => (
                        vec![],
                        Some(format!("{{ digits = \"{name}\" }}: variable not set")),
                    ),
                },
            };
            if let Some(problem) = problem {
                self.warnings.push(problem);
            }
            for id in ids {
                if self.plan.prompts.contains(&id) {
                    out.push(id);
                } else {
                    self.warnings
                        .push(format!("prompt `{id}` does not exist; skipped"));
                }
            }
        }
        out
    }
}
