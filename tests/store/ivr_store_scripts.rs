//! Data-driven scripts over the shipped 9090 dialplan, with no sockets: keys, silences
//! and prompt completions go into the IVR engine in virtual time, its actions run
//! against a real registration store, and each script checks the exact prompts played
//! and the rows written. Invalid keys, timeouts, max failures and barge-in included.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tongdai::call::actions::{self, ActionCall, ProgramActions};
use tongdai::store::Store;
use tongdai_domain::program::{Channel, Plan, ProgramConfig, Subscriber};
use tongdai_ivr::{CompileContext, Engine, Input, Output};
use tongdai_media::PromptCache;

#[derive(Clone, Copy)]
enum Step {
    /// The current playback finished.
    Done,
    /// A key, during playback (barge-in) or during the gather.
    Key(char),
    /// The caller stays silent until the engine's next timer.
    Silence,
}
use Step::*;

const CALLER: &str = "0903123678";

async fn setup(eligible: bool) -> (Engine, ProgramActions, tempfile::TempDir) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let prompts = PromptCache::load_dir(&root.join("prompts/vi")).expect("prompts");
    let ctx = CompileContext {
        prompts: prompts.ids().map(str::to_string).collect(),
        actions: actions::catalogue(),
    };
    let plans = tongdai_ivr::load_dir(&root.join("dialplans"), &ctx).expect("dialplans compile");
    let plan = plans.for_number("9090").expect("9090 plan");
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .expect("store");
    if eligible {
        store
            .upsert_subscriber(&Subscriber {
                msisdn: "+84903123678".into(),
                plan: Plan::Postpaid,
                charge_per_cycle_vnd: 300_000,
                list_source: "sms".into(),
                name: None,
                imported_at: jiff::Timestamp::now(),
                import_batch: None,
            })
            .await
            .expect("subscriber");
    }
    let program = ProgramConfig {
        today: Some("2021-12-10".parse().expect("date")),
        ..Default::default()
    };
    let actions = ProgramActions {
        store,
        program: Arc::new(program),
        clock: Arc::new(tongdai::clock::SystemClock),
    };
    (Engine::new(plan, BTreeMap::new()), actions, dir)
}

/// Runs a script; returns the transcript (`play a b`, `stop`, `hangup`, `action x=y`).
async fn run(engine: &mut Engine, actions: &ProgramActions, script: &[Step]) -> Vec<String> {
    let call = ActionCall {
        caller: Some(CALLER.into()),
        call_id: "script-call".into(),
        channel: Channel::Hotline,
        ..Default::default()
    };
    let mut now = Instant::now();
    let mut log = Vec::new();
    engine.start(now);
    let mut steps = script.iter();
    loop {
        // Carry out everything the engine asked for.
        while let Some(out) = engine.poll_output() {
            match out {
                Output::Play(ids) => log.push(format!("play {}", ids.join(" "))),
                Output::StopPlayback => log.push("stop".into()),
                Output::RunAction { name, vars } => {
                    let result = actions.run(&name, &call, &vars).await;
                    log.push(format!("action {name}={}", result.outcome));
                    engine.handle(
                        now,
                        Input::ActionResult {
                            outcome: result.outcome,
                            vars: result.vars,
                        },
                    );
                }
                Output::Transfer { to } => log.push(format!("transfer {to}")),
                Output::Hangup => log.push("hangup".into()),
            }
        }
        if engine.is_finished() {
            return log;
        }
        let Some(step) = steps.next() else {
            panic!("script ended but the call goes on: {log:#?}");
        };
        now += Duration::from_millis(300);
        match step {
            Done => engine.handle(now, Input::PromptsFinished),
            Key(k) => engine.handle(now, Input::Digit(*k)),
            Silence => {
                let at = engine.poll_timeout().expect("a timer is running");
                now = now.max(at);
                engine.handle_timeout(now);
            }
        }
    }
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn invalid_key_then_details_repeat_and_registration_with_a_change_of_mind() {
    let (mut engine, actions, _dir) = setup(true).await;
    let log = run(
        &mut engine,
        &actions,
        &[
            Done,     // greeting
            Done,     // main menu played
            Key('5'), // not an option
            Done,     // invalid + menu replayed
            Key('2'), // details
            Done,     // details played, back to the menu
            Key('9'), // barge-in: repeat
            Done,     // menu
            Key('1'), // register
            Done,     // specialty menu
            Key('7'), // not sure yet
            Key('2'), // barge-in on the confirmation: choose again
            Key('3'), // barge-in on the specialty menu: laboratory
            Done,     // confirmation played
            Key('1'), // confirm
            Done,     // success + places left
            Done,     // goodbye
        ],
    )
    .await;
    assert_eq!(
        log,
        lines(&[
            "play reg_greeting",
            "action check_eligibility=eligible",
            "play reg_main_menu",
            "play invalid_input reg_main_menu",
            "play reg_program_details",
            "play reg_main_menu",
            "stop",
            "play reg_main_menu",
            "play reg_choose_specialty",
            "play reg_you_chose specialty_unsure reg_confirm_menu",
            "stop",
            "play reg_choose_specialty",
            "stop",
            "play reg_you_chose specialty_3 reg_confirm_menu",
            "action register=registered",
            "play reg_success reg_places_left num_4 num_tram num_90 num_9",
            "play goodbye",
            "hangup",
        ])
    );
    let reg = actions
        .store
        .registration_by_msisdn("+84903123678")
        .await
        .expect("q")
        .expect("registered");
    assert_eq!(reg.specialty, Some(3));
    assert_eq!(reg.call_id.as_deref(), Some("script-call"));
    assert_eq!(engine.digits(), "52917231");
}

#[tokio::test]
async fn three_silences_end_with_too_many_errors_and_nothing_written() {
    let (mut engine, actions, _dir) = setup(true).await;
    let log = run(
        &mut engine,
        &actions,
        &[
            Done, Done, Silence, Done, Silence, Done, Silence, Done, Done,
        ],
    )
    .await;
    assert_eq!(
        log,
        lines(&[
            "play reg_greeting",
            "action check_eligibility=eligible",
            "play reg_main_menu",
            "play no_input reg_main_menu",
            "play no_input reg_main_menu",
            "play too_many_errors",
            "play goodbye",
            "hangup",
        ])
    );
    assert_eq!(actions.store.registered_count().await.expect("count"), 0);
}

#[tokio::test]
async fn three_invalid_keys_end_with_too_many_errors() {
    let (mut engine, actions, _dir) = setup(true).await;
    let log = run(
        &mut engine,
        &actions,
        &[
            Done,
            Done,
            Key('4'),
            Done,
            Key('#'),
            Done,
            Key('0'),
            Done,
            Done,
        ],
    )
    .await;
    assert_eq!(
        log,
        lines(&[
            "play reg_greeting",
            "action check_eligibility=eligible",
            "play reg_main_menu",
            "play invalid_input reg_main_menu",
            "play invalid_input reg_main_menu",
            "play too_many_errors",
            "play goodbye",
            "hangup",
        ])
    );
    assert_eq!(actions.store.registered_count().await.expect("count"), 0);
}

#[tokio::test]
async fn keys_during_the_greeting_are_ignored_and_a_second_call_hears_its_status() {
    let (mut engine, actions, _dir) = setup(true).await;
    // Keys during the greeting (a play node) do nothing; then a straight registration.
    let log = run(
        &mut engine,
        &actions,
        &[
            Key('1'),
            Key('1'),
            Done,
            Key('1'),
            Key('5'),
            Key('1'),
            Done,
            Done,
        ],
    )
    .await;
    assert_eq!(log[0], "play reg_greeting");
    assert_eq!(log[1], "action check_eligibility=eligible");
    assert!(
        log.contains(&"action register=registered".to_string()),
        "{log:#?}"
    );
    // The same subscriber calls again.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let prompts = PromptCache::load_dir(&root.join("prompts/vi")).expect("prompts");
    let ctx = CompileContext {
        prompts: prompts.ids().map(str::to_string).collect(),
        actions: actions::catalogue(),
    };
    let plans = tongdai_ivr::load_dir(&root.join("dialplans"), &ctx).expect("dialplans");
    let mut again = Engine::new(plans.for_number("9090").expect("plan"), BTreeMap::new());
    let log = run(&mut again, &actions, &[Done, Done, Done]).await;
    assert_eq!(
        log,
        lines(&[
            "play reg_greeting",
            "action check_eligibility=already_registered",
            "play reg_already_registered reg_status_waiting",
            "play goodbye",
            "hangup",
        ])
    );
    assert_eq!(actions.store.registered_count().await.expect("count"), 1);
}

#[tokio::test]
async fn a_caller_not_on_the_list_is_told_how_group_two_registers() {
    let (mut engine, actions, _dir) = setup(false).await;
    let log = run(&mut engine, &actions, &[Done, Done, Done]).await;
    assert_eq!(
        log,
        lines(&[
            "play reg_greeting",
            "action check_eligibility=not_eligible",
            "play reg_not_eligible",
            "play goodbye",
            "hangup",
        ])
    );
}
