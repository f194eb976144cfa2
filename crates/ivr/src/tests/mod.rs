//! Data-driven tests for the compiler and the engine.
//!
//! Engine tests are scripts: lines starting with `>` are inputs, `<` are the outputs
//! expected after that input, `?` are checks whose actual value is written into the
//! transcript. The runner replays the inputs and rebuilds the transcript from what the
//! engine really did; the test compares the two texts, so a failure shows the whole
//! call side by side.
//!
//! Inputs: `> start`, `> digit 1`, `> digits 12#` (one key at a time), `> finished`,
//! `> wait 5000` (milliseconds of virtual time; due timers fire in order),
//! `> result OUTCOME [k=v …]`.
//! Outputs: `< play ID …`, `< stop`, `< action NAME`, `< transfer TO`, `< hangup`.
//! Checks: `? var NAME=VALUE`, `? node NAME`, `? path A B …`, `? digits 12`,
//! `? finished true`, `? error MESSAGE`, `? timeout MS` (next timer, relative).

mod compile_errors;
mod engine_scripts;
mod registration;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CompileContext, CompiledPlan, Engine, Input, Output, compile_str};

/// The prompts of `prompts/vi` that the tests rely on.
pub(super) fn prompt_ids() -> HashSet<String> {
    let mut ids: HashSet<String> = [
        "reg_greeting",
        "reg_not_eligible",
        "reg_window_not_open",
        "reg_window_closed",
        "reg_to_date",
        "reg_cap_full",
        "reg_already_registered",
        "reg_status_waiting",
        "reg_status_booked",
        "reg_status_consulted",
        "reg_main_menu",
        "reg_program_details",
        "reg_choose_specialty",
        "specialty_unsure",
        "reg_you_chose",
        "reg_confirm_menu",
        "reg_success",
        "reg_places_left",
        "invalid_input",
        "no_input",
        "too_many_errors",
        "transfer_agent",
        "system_error",
        "goodbye",
        "digit_star",
        "digit_pound",
        "word_ngay",
        "word_thang",
        "word_nam",
        "num_mot_tone",
        "num_lam",
        "num_linh",
        "num_tram",
        "num_nghin",
        "num_trieu",
        "num_tu_tone",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ids.extend((1..=6).map(|n| format!("specialty_{n}")));
    ids.extend((0..=9).map(|n| format!("digit_{n}")));
    ids.extend((0..=10).map(|n| format!("num_{n}")));
    ids.extend((2..=9).map(|n| format!("num_{}", n * 10)));
    ids
}

pub(super) fn ctx() -> CompileContext {
    let actions: HashMap<String, Vec<String>> = [
        (
            "check_eligibility",
            &[
                "eligible",
                "not_eligible",
                "window_not_open",
                "window_closed",
                "cap_full",
                "already_registered",
                "error",
            ][..],
        ),
        (
            "register",
            &["ok", "cap_full", "already_registered", "error"][..],
        ),
        ("lookup", &["found", "missing"][..]),
    ]
    .iter()
    .map(|(name, outcomes)| {
        (
            name.to_string(),
            outcomes.iter().map(|s| s.to_string()).collect(),
        )
    })
    .collect();
    CompileContext {
        prompts: prompt_ids(),
        actions,
    }
}

pub(super) fn compile(text: &str) -> Arc<CompiledPlan> {
    match compile_str("dialplans/test.toml", text, &ctx()) {
        Ok(plan) => Arc::new(plan),
        Err(errors) => panic!(
            "plan does not compile:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn describe(output: &Output) -> String {
    match output {
        Output::Play(ids) => format!("< play {}", ids.join(" ")),
        Output::StopPlayback => "< stop".into(),
        Output::RunAction { name, .. } => format!("< action {name}"),
        Output::Transfer { to } => format!("< transfer {to}"),
        Output::Hangup => "< hangup".into(),
    }
}

/// Replay `script` against a fresh engine on `plan_text` with these call variables;
/// return the engine and the transcript of what really happened.
pub(super) fn replay(plan_text: &str, vars: &[(&str, &str)], script: &str) -> (Engine, String) {
    let plan = compile(plan_text);
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut engine = Engine::new(plan, vars);
    let base = Instant::now();
    let mut now = base;
    let mut transcript = Vec::new();
    for line in script.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("//") || line.starts_with('<') {
            continue;
        }
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        if verb == "?" {
            let (what, _) = rest.split_once(' ').unwrap_or((rest, ""));
            let actual = match what {
                "var" => {
                    let name = rest[4..].split('=').next().unwrap_or("");
                    format!(
                        "var {name}={}",
                        engine
                            .vars()
                            .get(name)
                            .map(String::as_str)
                            .unwrap_or("<unset>")
                    )
                }
                "node" => format!("node {}", engine.current_node().unwrap_or("<none>")),
                "path" => format!("path {}", engine.path().join(" ")),
                "digits" => format!("digits {}", engine.digits()),
                "finished" => format!("finished {}", engine.is_finished()),
                "error" => format!(
                    "error {}",
                    engine.error().map(|e| e.to_string()).unwrap_or_default()
                ),
                "timeout" => format!(
                    "timeout {}",
                    engine
                        .poll_timeout()
                        .map(|t| (t - now).as_millis().to_string())
                        .unwrap_or_else(|| "none".into())
                ),
                other => panic!("unknown check `{other}`"),
            };
            transcript.push(format!("? {actual}"));
            continue;
        }
        assert_eq!(verb, ">", "script line must start with >, < or ?: {line}");
        transcript.push(line.to_string());
        let (cmd, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        match cmd {
            "start" => engine.start(now),
            "digit" | "digits" => {
                for key in arg.chars() {
                    engine.handle(now, Input::Digit(key));
                }
            }
            "finished" => engine.handle(now, Input::PromptsFinished),
            "wait" => {
                let ms: u64 = arg.parse().expect("wait takes milliseconds");
                let target = now + Duration::from_millis(ms);
                while let Some(due) = engine.poll_timeout() {
                    if due > target {
                        break;
                    }
                    now = due.max(now);
                    engine.handle_timeout(now);
                }
                now = target;
            }
            "result" => {
                let mut words = arg.split_whitespace();
                let outcome = words.next().expect("result needs an outcome").to_string();
                let vars = words
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("result vars are k=v");
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                engine.handle(now, Input::ActionResult { outcome, vars });
            }
            other => panic!("unknown input `{other}`"),
        }
        while let Some(output) = engine.poll_output() {
            transcript.push(describe(&output));
        }
    }
    (engine, transcript.join("\n"))
}

/// The script with its comments and blank lines removed and indentation normalised.
fn normalise(script: &str) -> String {
    script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run a script and require the transcript to be exactly the script.
pub(super) fn check(plan_text: &str, vars: &[(&str, &str)], script: &str) -> Engine {
    let (engine, actual) = replay(plan_text, vars, script);
    let expected = normalise(script);
    assert!(
        actual == expected,
        "transcript differs\n--- expected\n{expected}\n--- actual\n{actual}\n"
    );
    engine
}
