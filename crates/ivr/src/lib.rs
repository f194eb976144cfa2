//! IVR: dialplan files → compiled plans → a sans-IO engine per call.
//!
//! `ivr` knows nothing about SIP, RTP, SQL or sockets (invariant). The call layer maps
//! a called number to a plan ([`Dialplans::for_number`]), runs an [`Engine`] on it, plays
//! what it asks, feeds it digits, prompt completions and action results, and runs the
//! program actions it names (eligibility, registration…) in `program`/`store`.
//!
//! # Dialplan files
//!
//! One dialplan per `dialplans/*.toml` file. Every mistake in a file is reported at
//! once, each as `FILE:LINE: node `x`: what` (see [`DialplanError`]); a file with any
//! error is not loaded.
//!
//! ```toml
//! [dialplan]
//! name = "9090"                 # unique across files (default: the file stem)
//! numbers = ["9090"]            # called numbers this plan answers; unique across files;
//!                               # may be empty for outbound plans picked by name
//! start = "greet"               # the first node
//! description = "optional, free text"
//!
//! [vars]                        # initial call variables, strings only; the call layer's
//! lang = "vi"                   # own variables (msisdn…) override them
//!
//! [node.greet]                  # PLAY: prompts, then `next`
//! play = ["reg_greeting"]
//! next = "identify"
//!
//! [node.identify]               # ACTION: the call layer runs it and answers with an
//! action = "check_eligibility"  # outcome + variables
//! [node.identify.on]            # outcome -> node; every outcome of the action must be
//! eligible = "main_menu"        # routed unless `default` is given; keys that are not
//! not_eligible = "bye"          # outcomes of the action are errors
//! error = "bye"
//! # default = "bye"
//!
//! [node.main_menu]              # MENU: play + gather + branch, with retries
//! menu = ["reg_main_menu"]      # prompts (may be empty: gather at once)
//! max_digits = 1                # 1..=32, default 1
//! first_digit_timeout = "5s"    # default 5s; "500ms", "1m"…; > 0 and <= 60s
//! inter_digit_timeout = "3s"    # default 3s
//! terminator = "#"              # optional; one DTMF key, never part of the entry
//! barge_in = true               # default true
//! max_failures = 3              # default 3, >= 1
//! max_timeouts = 3              # default 3, >= 1
//! invalid = ["invalid_input"]   # default []: played before the menu is replayed
//! timeout = ["no_input"]        # default []
//! exit = "bye"                  # required: where exhausted retries go
//! store = "choice"              # optional: store the valid entry in this variable
//! [node.main_menu.branch]       # required, non-empty
//! "1" = "register"              # exact keys: 0-9 * # A-D (a-d accepted)
//! "9" = "main_menu"             # back to the same menu = a new visit (counters reset)
//! "_1X" = "x"                   # pattern (Asterisk style): X = 0-9, Z = 1-9, N = 2-9,
//!                               # any other char a literal key; exact length
//! "any" = "x"                   # any other non-empty entry
//!
//! [node.register]               # SET: assign (values may use {{var}}), then `next`
//! set = { specialty = "{{choice}}", source = "ivr" }
//! next = "bye"
//!
//! [node.x]                      # GOTO
//! goto = "bye"
//!
//! [node.agent]                  # TRANSFER: optional `play` first; blind transfer (REFER
//! play = ["transfer_agent"]     # in the call layer); the target may use {{var}}
//! transfer = "18001090"
//!
//! [node.bye]                    # HANGUP: optional `play` first; must be `true`
//! play = ["goodbye"]
//! hangup = true
//! ```
//!
//! A node has exactly one kind: `play`, `menu`, `action`, `set`, `goto`, `transfer` or
//! `hangup` (`play` next to `transfer`/`hangup` is their prelude, not a kind). Keys that
//! do not belong to the node's kind are errors.
//!
//! Prompt lists (`play`, `menu`, `invalid`, `timeout`) hold, in order:
//! - `"reg_greeting"`: a prompt id (a file stem in `prompts/vi`); it must exist.
//! - `"specialty_{{specialty}}"`: an id with `{{var}}` holes filled from call variables;
//!   at least one prompt must match its literal prefix and suffix.
//! - `{ var = "status_prompt" }`: the id is the variable's value.
//! - `{ number = "places_left" }`: the integer, read in Vietnamese ([`say`]).
//! - `{ date = "window_start" }`: a `YYYY-MM-DD` date: "ngày D tháng M năm YYYY".
//! - `{ digits = "msisdn" }`: key by key with `digit_0`…`digit_9`, `digit_star`…
//!
//! Dynamic items are resolved when played; anything that cannot be spoken (unset
//! variable, not a number, an id with no prompt) is skipped and noted in
//! [`Engine::warnings`] rather than failing the call.
//!
//! # Compile-time checks
//!
//! TOML syntax (with its line); unknown keys anywhere; keys of another kind; wrong
//! types; a node with no kind or several; references to unknown nodes (`start`, `next`,
//! `goto`, `exit`, `on.*`, `branch.*`); unknown actions; outcomes not routed without a
//! `default`; `on` keys that are not outcomes; unknown prompts (static, interpolated by
//! prefix/suffix, and the number/date/digit prompt sets); nodes unreachable from
//! `start`; branch keys that can never be entered (longer than `max_digits`, containing
//! the terminator, a non-DTMF character, empty); menus without branches; missing
//! `start`/`next`/`exit`; bad durations; out-of-range counts (`max_digits = 0`…); bad
//! variable names and `{{` templates; and, across files ([`load_dir`]), a number or a
//! plan name used twice.
//!
//! # Engine semantics
//!
//! - Every [`Output::Play`] is answered by one [`Input::PromptsFinished`] after the whole
//!   list; a stray `PromptsFinished` (or `ActionResult`) when the engine is not waiting
//!   for one is ignored. After [`Output::StopPlayback`] none is expected.
//! - Menu: the menu prompts play; the first-digit timer starts when they FINISH. Each
//!   key restarts the inter-digit timer. The entry ends on the terminator (not part of
//!   the entry), on `max_digits` keys, or on the inter-digit timeout with at least one
//!   key. The entry is stored in `last_digits` (valid or not; silence leaves it as it
//!   was) and, when valid and `store` is set, in that variable.
//! - Matching: exact keys, then `_` patterns in file order, then `any`. No match, or an
//!   empty entry (the terminator alone), is a failure.
//! - Failures and timeouts (silence until the first-digit timer) are counted
//!   separately, per menu visit. The Nth failure with `max_failures = N` goes straight
//!   to `exit` without the `invalid` prompts (the exit node says why); before that,
//!   `invalid` + the menu prompts play as one list and the gather restarts. Same for
//!   timeouts with `max_timeouts` and `timeout`.
//! - Barge-in: with `barge_in = true` a key while the menu's own prompts play (the menu,
//!   or `invalid`/`timeout` + menu on a retry) emits `StopPlayback` and counts as the
//!   first key of the entry. With `barge_in = false` such keys are ignored, not
//!   buffered. Keys during a `play` node, a transfer/hangup prelude or while an action
//!   runs are ignored too (put an announcement into the menu's own list if callers
//!   should be able to type ahead). [`Engine::digits`] records every key regardless.
//! - Action: `RunAction` carries a snapshot of the variables; the engine then waits,
//!   ignoring keys. The result's variables are merged into the call's, then the outcome
//!   is routed by `on`, else `default`, else the built-in error path: `Hangup` with
//!   [`Engine::error`] set (the compiler makes this rare: it requires every declared
//!   outcome to be routed).
//! - `set` renders every value against the variables as they were on entry, then
//!   assigns them all. An unset variable renders as "".
//! - `Transfer` and `Hangup` end the engine ([`Engine::is_finished`]); what happens if
//!   the REFER fails is the call layer's decision.
//! - Loop guard: more than [`engine::MAX_SILENT_TRANSITIONS`] node entries without a
//!   prompt played or a gather started (actions do not count as waiting on the caller)
//!   → `Hangup` with [`EngineError::Loop`].

pub mod compile;
pub mod engine;
mod plan;
pub mod say;

pub use compile::{CompileContext, DialplanError, Dialplans, ErrorKind, compile_str, load_dir};
pub use engine::{Engine, EngineError, Input, Output};
pub use plan::CompiledPlan;

#[cfg(test)]
mod tests;
