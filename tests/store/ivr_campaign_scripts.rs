//! Data-driven scripts over the shipped outbound dialplans (`dialplans/invite.toml`,
//! `dialplans/survey.toml`), with no sockets: a campaign attempt is claimed in a real
//! store, the answered call's keys, silences and prompt completions go into the IVR
//! engine in virtual time, its actions run against the store as the call layer runs
//! them (`ActionCall::outbound`), and each script checks the exact prompts played and
//! the rows written — then finishes the attempt and checks what the campaign does next.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tongdai::call::actions::{self, ActionCall, ProgramActions};
use tongdai::store::{
    AttemptEnd, CallLaterRequest, ClaimRequest, ClaimedAttempt, ContactEnd, ContactState,
    DncSource, FinishedAttempt, FlowOutcome, NewRegistration, RegisterOutcome, Store,
    SurveyQuestion,
};
use tongdai_domain::dialer::{CampaignKind, CampaignPolicy, RetryDecision};
use tongdai_domain::program::{Channel, Group, Plan, ProgramConfig, Status, Subscriber};
use tongdai_ivr::{CompileContext, Dialplans, Engine, Input, Output};
use tongdai_media::PromptCache;

#[derive(Clone, Copy)]
enum Step {
    /// The current playback finished.
    Done,
    /// A key, during playback (barge-in) or during the gather.
    Key(char),
    /// The subscriber stays silent until the engine's next timer.
    Silence,
    /// Someone else registers meanwhile (takes a place of the program).
    OtherRegisters,
    /// The subscriber hangs up: the script ends with the call.
    HangUp,
}
use Step::*;

const SUBSCRIBER: &str = "+84903123678";

/// 2021-12-10 10:00 in Hanoi: inside the registration period and the calling window.
fn ten_am() -> Timestamp {
    TimeZone::fixed(jiff::tz::offset(7))
        .to_timestamp(jiff::civil::date(2021, 12, 10).at(10, 0, 0, 0))
        .expect("valid")
}

fn mins(t: Timestamp, m: i64) -> Timestamp {
    t + jiff::SignedDuration::from_mins(m)
}

struct World {
    plans: Dialplans,
    actions: ProgramActions,
    _dir: tempfile::TempDir,
}

impl World {
    fn store(&self) -> &Store {
        &self.actions.store
    }
}

async fn world(cap: u32) -> World {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let prompts = PromptCache::load_dir(&root.join("prompts/vi")).expect("prompts");
    let ctx = CompileContext {
        prompts: prompts.ids().map(str::to_string).collect(),
        actions: actions::catalogue(),
    };
    let plans = tongdai_ivr::load_dir(&root.join("dialplans"), &ctx).expect("dialplans compile");
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .expect("store");
    for msisdn in [SUBSCRIBER, "+84903000001"] {
        store
            .upsert_subscriber(&Subscriber {
                msisdn: msisdn.into(),
                plan: Plan::Postpaid,
                charge_per_cycle_vnd: 300_000,
                list_source: "sms".into(),
                name: None,
                imported_at: ten_am(),
                import_batch: None,
            })
            .await
            .expect("subscriber");
    }
    let program = ProgramConfig {
        cap,
        today: Some("2021-12-10".parse().expect("date")),
        ..Default::default()
    };
    World {
        plans,
        actions: ProgramActions {
            store,
            program: Arc::new(program),
            clock: Arc::new(tongdai::clock::SystemClock),
        },
        _dir: dir,
    }
}

/// Creates and starts a campaign of `kind` and claims the subscriber's attempt.
async fn claim_subscriber(w: &World, kind: CampaignKind) -> ClaimedAttempt {
    let s = w.store();
    let policy = CampaignPolicy {
        kind,
        dialplan: match kind {
            CampaignKind::Invitation => "invite".into(),
            CampaignKind::Survey => "survey".into(),
        },
        ..CampaignPolicy::default()
    };
    let created = match kind {
        CampaignKind::Invitation => s
            .create_invitation_campaign("mời", policy, &w.actions.program, mins(ten_am(), -60))
            .await
            .expect("create"),
        CampaignKind::Survey => s
            .create_survey_campaign("khảo-sát", policy, mins(ten_am(), -60))
            .await
            .expect("create"),
    };
    s.start_campaign(created.campaign.id, mins(ten_am(), -60))
        .await
        .expect("start");
    let claims = s
        .claim_due(
            &ClaimRequest {
                campaign_id: created.campaign.id,
                instance: "script",
                limit: 10,
                now: ten_am(),
                program: &w.actions.program,
            },
            || format!("{:032x}@script", rand::random::<u128>()),
        )
        .await
        .expect("claim");
    let attempt = claims
        .attempts
        .into_iter()
        .find(|a| a.msisdn == SUBSCRIBER)
        .expect("the subscriber is claimed");
    assert_eq!(attempt.dialplan, policy_dialplan(kind));
    s.attempt_started(attempt.attempt_id, ten_am())
        .await
        .expect("started");
    s.attempt_answered(attempt.attempt_id, mins(ten_am(), 0))
        .await
        .expect("answered");
    attempt
}

fn policy_dialplan(kind: CampaignKind) -> &'static str {
    match kind {
        CampaignKind::Invitation => "invite",
        CampaignKind::Survey => "survey",
    }
}

/// Runs a script on the attempt's plan; returns the transcript (`play a b`, `stop`,
/// `hangup`, `action x=y`, `caller hung up`).
async fn run(w: &World, attempt: &ClaimedAttempt, script: &[Step]) -> Vec<String> {
    let plan = w.plans.by_name(&attempt.dialplan).expect("plan by name");
    assert!(plan.numbers().is_empty(), "outbound plans answer no number");
    let mut engine = Engine::new(plan, BTreeMap::new());
    let call = ActionCall::outbound(attempt);
    assert_eq!(call.channel, Channel::OutboundCall);
    let mut now = Instant::now();
    let mut log = Vec::new();
    let mut others = 0;
    engine.start(now);
    let mut steps = script.iter();
    loop {
        while let Some(out) = engine.poll_output() {
            match out {
                Output::Play(ids) => log.push(format!("play {}", ids.join(" "))),
                Output::StopPlayback => log.push("stop".into()),
                Output::RunAction { name, vars } => {
                    let result = w.actions.run(&name, &call, &vars).await;
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
            assert!(
                steps.next().is_none(),
                "script goes on after the hang-up: {log:#?}"
            );
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
            OtherRegisters => {
                others += 1;
                let outcome = w
                    .store()
                    .register(
                        NewRegistration {
                            msisdn: format!("098800000{others}"),
                            group: Group::Two,
                            channel: Channel::Fanpage,
                            specialty: None,
                            call_id: None,
                            name: None,
                            fanpage_ref: Some("fb".into()),
                        },
                        &w.actions.program,
                        "2021-12-10".parse().expect("date"),
                        ten_am(),
                    )
                    .await
                    .expect("register");
                assert!(matches!(outcome, RegisterOutcome::Registered(_)));
            }
            HangUp => {
                log.push("caller hung up".into());
                assert!(steps.next().is_none(), "nothing after the hang-up");
                return log;
            }
        }
    }
}

/// The call ends two minutes after the answer (BYE); the campaign applies the outcome.
async fn hang_up(w: &World, attempt: &ClaimedAttempt) -> FinishedAttempt {
    w.store()
        .finish_attempt(
            attempt.attempt_id,
            &AttemptEnd::answered(ten_am(), mins(ten_am(), 2)),
        )
        .await
        .expect("finish")
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn done(reason: ContactEnd, f: &FinishedAttempt) {
    assert_eq!(
        (f.contact.state, f.contact.done_reason),
        (ContactState::Done, Some(reason)),
        "{f:#?}"
    );
}

// ---- invitation ---------------------------------------------------------------------

#[tokio::test]
async fn invitation_key_1_registers_through_the_outbound_channel() {
    let w = world(500).await;
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    let log = run(
        &w,
        &a,
        &[
            Done,     // introduction
            Key('1'), // barge-in on the menu: register
            Key('7'), // barge-in on the specialties: not sure yet
            Key('2'), // barge-in on the confirmation: choose again
            Done,     // specialties played
            Key('3'), // laboratory
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
            "play inv_intro",
            "action check_eligibility=eligible",
            "play inv_menu",
            "stop",
            "play reg_choose_specialty",
            "stop",
            "play reg_you_chose specialty_unsure reg_confirm_menu",
            "stop",
            "play reg_choose_specialty",
            "play reg_you_chose specialty_3 reg_confirm_menu",
            "action register=registered",
            "play reg_success reg_places_left num_4 num_tram num_90 num_9",
            "play out_goodbye",
            "hangup",
        ])
    );
    let reg = w
        .store()
        .registration_by_msisdn(SUBSCRIBER)
        .await
        .expect("read")
        .expect("registered");
    assert_eq!(
        (reg.channel, reg.group, reg.specialty, reg.status),
        (
            Channel::OutboundCall,
            Group::One,
            Some(3),
            Status::Registered
        )
    );
    assert_eq!(reg.call_id.as_deref(), Some(a.call_id.as_str()));
    let events = w.store().events(reg.id).await.expect("events");
    assert_eq!(events[0].actor, "outbound_call");
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.outcome, Some(FlowOutcome::Registered));
    done(ContactEnd::Completed, &f);
}

#[tokio::test]
async fn invitation_key_2_not_interested_ends_the_contact() {
    let w = world(500).await;
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    let log = run(&w, &a, &[Done, Done, Key('2'), Done]).await;
    assert_eq!(
        log,
        lines(&[
            "play inv_intro",
            "action check_eligibility=eligible",
            "play inv_menu",
            "action not_interested=recorded",
            "play inv_not_interested",
            "hangup",
        ])
    );
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.outcome, Some(FlowOutcome::NotInterested));
    done(ContactEnd::Completed, &f);
    assert_eq!(w.store().registered_count().await.expect("count"), 0);
}

#[tokio::test]
async fn invitation_key_3_call_me_tomorrow_reschedules_in_the_window() {
    let w = world(500).await;
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    let log = run(&w, &a, &[Done, Key('3'), Done, Key('2'), Done]).await;
    assert_eq!(
        log,
        lines(&[
            "play inv_intro",
            "action check_eligibility=eligible",
            "play inv_menu",
            "stop",
            "play inv_call_later_menu",
            "action call_later=scheduled",
            "play inv_call_later",
            "hangup",
        ])
    );
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.outcome, Some(FlowOutcome::CallLater));
    assert_eq!(f.attempt.call_later, Some(CallLaterRequest::Tomorrow));
    // The next morning's window opening, 08:00 in Hanoi.
    let tomorrow_8 = mins(ten_am(), 22 * 60);
    assert_eq!(
        f.decision,
        RetryDecision::Retry {
            not_before: tomorrow_8
        }
    );
    assert_eq!(f.contact.state, ContactState::Waiting);
}

#[tokio::test]
async fn invitation_call_later_with_no_choice_uses_the_campaign_delay() {
    let w = world(500).await;
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    let log = run(
        &w,
        &a,
        &[Done, Done, Key('3'), Done, Silence, Done, Silence, Done],
    )
    .await;
    assert_eq!(
        log,
        lines(&[
            "play inv_intro",
            "action check_eligibility=eligible",
            "play inv_menu",
            "play inv_call_later_menu",
            "play no_input inv_call_later_menu",
            "action call_later=scheduled",
            "play inv_call_later",
            "hangup",
        ])
    );
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.call_later, None);
    // retry.incomplete = 1h after the end of the call (10:02 → 11:02).
    assert_eq!(
        f.contact.not_before,
        Some(mins(ten_am(), 62)),
        "{:?}",
        f.decision
    );
}

#[tokio::test]
async fn invitation_key_8_opts_out_of_every_campaign() {
    let w = world(500).await;
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    let log = run(&w, &a, &[Done, Key('8'), Done]).await;
    assert_eq!(
        log,
        lines(&[
            "play inv_intro",
            "action check_eligibility=eligible",
            "play inv_menu",
            "stop",
            "action opt_out=opted_out",
            "play inv_opted_out",
            "hangup",
        ])
    );
    // On the list the moment the key was pressed, before the call ends.
    let entry = w
        .store()
        .do_not_call_entry(SUBSCRIBER)
        .await
        .expect("read")
        .expect("listed");
    assert_eq!(entry.source, DncSource::Keypad);
    assert_eq!(entry.attempt_id, Some(a.attempt_id));
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.outcome, Some(FlowOutcome::OptedOut));
    done(ContactEnd::OptedOut, &f);
}

#[tokio::test]
async fn invitation_key_9_repeats_and_invalid_keys_end_politely() {
    let w = world(500).await;
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    let log = run(
        &w,
        &a,
        &[
            Done,     // intro
            Key('9'), // barge-in: hear it again
            Done,     // intro again
            Done,     // menu
            Key('4'), // not an option
            Done,     // invalid + menu
            Key('0'),
            Done,
            Key('#'), // third failure
            Done,     // too many errors
            Done,     // goodbye
        ],
    )
    .await;
    assert_eq!(
        log,
        lines(&[
            "play inv_intro",
            "action check_eligibility=eligible",
            "play inv_menu",
            "stop",
            "play inv_intro",
            "play inv_menu",
            "play invalid_input inv_menu",
            "play invalid_input inv_menu",
            "play too_many_errors",
            "play out_goodbye",
            "hangup",
        ])
    );
    // Answered with no outcome: called back after retry.incomplete, charged.
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.outcome, None);
    assert_eq!(f.contact.state, ContactState::Waiting);
    assert_eq!(f.contact.attempts_charged, 1);
    assert_eq!(f.contact.not_before, Some(mins(ten_am(), 62)));
}

#[tokio::test]
async fn invitation_silence_three_times_ends_the_call() {
    let w = world(500).await;
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    let log = run(
        &w,
        &a,
        &[
            Done, Done, Silence, Done, Silence, Done, Silence, Done, Done,
        ],
    )
    .await;
    assert_eq!(
        log,
        lines(&[
            "play inv_intro",
            "action check_eligibility=eligible",
            "play inv_menu",
            "play no_input inv_menu",
            "play no_input inv_menu",
            "play too_many_errors",
            "play out_goodbye",
            "hangup",
        ])
    );
}

#[tokio::test]
async fn invitation_cap_full_while_the_subscriber_chooses() {
    // Two places; a fanpage registration holds one, the last goes while our
    // subscriber is choosing a specialty.
    let w = world(2).await;
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    let log = run(
        &w,
        &a,
        &[
            OtherRegisters,
            Done,
            Key('1'),
            Key('2'),
            OtherRegisters, // the last place goes now
            Done,
            Key('1'),
            Done, // sorry, full
            Done, // goodbye
        ],
    )
    .await;
    assert_eq!(
        log,
        lines(&[
            "play inv_intro",
            "action check_eligibility=eligible",
            "play inv_menu",
            "stop",
            "play reg_choose_specialty",
            "stop",
            "play reg_you_chose specialty_2 reg_confirm_menu",
            "action register=cap_full",
            "play reg_cap_full",
            "play out_goodbye",
            "hangup",
        ])
    );
    assert!(
        w.store()
            .registration_by_msisdn(SUBSCRIBER)
            .await
            .expect("read")
            .is_none()
    );
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.outcome, Some(FlowOutcome::CapFull));
    done(ContactEnd::Completed, &f);
    let p = w
        .store()
        .campaign_progress(a.campaign_id, mins(ten_am(), 3))
        .await
        .expect("progress");
    assert_eq!(p.outcomes.get(&FlowOutcome::CapFull), Some(&1));
}

#[tokio::test]
async fn invitation_cap_full_or_registered_before_the_answer() {
    // The cap filled between the claim and the answer.
    let w = world(1).await;
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    let log = run(&w, &a, &[OtherRegisters, Done, Done, Done]).await;
    assert_eq!(
        log,
        lines(&[
            "play inv_intro",
            "action check_eligibility=cap_full",
            "play reg_cap_full",
            "play out_goodbye",
            "hangup",
        ])
    );
    assert_eq!(
        hang_up(&w, &a).await.attempt.outcome,
        Some(FlowOutcome::CapFull)
    );

    // Registered through the hotline between the claim and the answer.
    let w = world(500).await;
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    w.store()
        .register(
            NewRegistration {
                msisdn: SUBSCRIBER.into(),
                group: Group::One,
                channel: Channel::Hotline,
                specialty: Some(6),
                call_id: None,
                name: None,
                fanpage_ref: None,
            },
            &w.actions.program,
            "2021-12-10".parse().expect("date"),
            ten_am(),
        )
        .await
        .expect("register");
    let log = run(&w, &a, &[Done, Done, Done]).await;
    assert_eq!(
        log,
        lines(&[
            "play inv_intro",
            "action check_eligibility=already_registered",
            "play reg_already_registered reg_status_waiting",
            "play out_goodbye",
            "hangup",
        ])
    );
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.outcome, Some(FlowOutcome::AlreadyRegistered));
    done(ContactEnd::Completed, &f);
}

#[tokio::test]
async fn outbound_actions_refuse_calls_without_an_attempt() {
    let w = world(500).await;
    // An inbound call running an outbound-only action: error, nothing written.
    let inbound = ActionCall::inbound(Some(SUBSCRIBER.into()), "in-1".into());
    for name in [
        actions::NOT_INTERESTED,
        actions::OPT_OUT,
        actions::CALL_LATER,
        actions::SURVEY_COMPLETE,
    ] {
        let r = w.actions.run(name, &inbound, &BTreeMap::new()).await;
        assert_eq!(r.outcome, "error", "{name}");
    }
    assert!(!w.store().is_do_not_call(SUBSCRIBER).await.expect("read"));
    // An outbound call whose runner left `attempt_id` unset: found by Call-ID.
    let a = claim_subscriber(&w, CampaignKind::Invitation).await;
    let by_call_id = ActionCall {
        caller: Some(SUBSCRIBER.into()),
        call_id: a.call_id.clone(),
        channel: Channel::OutboundCall,
        ..Default::default()
    };
    let vars = BTreeMap::from([("call_later".to_string(), "30m".to_string())]);
    let r = w.actions.run(actions::CALL_LATER, &by_call_id, &vars).await;
    assert_eq!(r.outcome, "scheduled");
    let row = w
        .store()
        .attempt(a.attempt_id)
        .await
        .expect("read")
        .expect("attempt");
    assert_eq!(
        row.call_later,
        Some(CallLaterRequest::After(Duration::from_secs(1800)))
    );
    let bad = BTreeMap::from([("call_later".to_string(), "soon".to_string())]);
    assert_eq!(
        w.actions
            .run(actions::CALL_LATER, &by_call_id, &bad)
            .await
            .outcome,
        "error"
    );
}

// ---- survey -------------------------------------------------------------------------

/// Makes the subscriber a consulted registration (hotline, then Vinmec's steps).
async fn consulted(w: &World) -> i64 {
    let s = w.store();
    let reg = match s
        .register(
            NewRegistration {
                msisdn: SUBSCRIBER.into(),
                group: Group::One,
                channel: Channel::Hotline,
                specialty: Some(5),
                call_id: None,
                name: None,
                fanpage_ref: None,
            },
            &w.actions.program,
            "2021-12-01".parse().expect("date"),
            mins(ten_am(), -9 * 24 * 60),
        )
        .await
        .expect("register")
    {
        RegisterOutcome::Registered(r) => r,
        other => panic!("{other:?}"),
    };
    for to in [
        Status::SentToVinmec,
        Status::AppointmentBooked,
        Status::Consulted,
    ] {
        s.set_status(reg.id, to, "vinmec:test", "", mins(ten_am(), -24 * 60))
            .await
            .expect("status");
    }
    reg.id
}

async fn answers(w: &World, registration: i64) -> Vec<(SurveyQuestion, u8)> {
    w.store()
        .survey_answers(registration)
        .await
        .expect("answers")
        .into_iter()
        .map(|a| (a.question, a.value))
        .collect()
}

#[tokio::test]
async fn survey_all_three_answers_and_the_registration_is_surveyed() {
    let w = world(500).await;
    let reg = consulted(&w).await;
    let a = claim_subscriber(&w, CampaignKind::Survey).await;
    assert_eq!(a.registration_id, Some(reg));
    let log = run(
        &w,
        &a,
        &[
            Done,     // intro
            Key('5'), // barge-in: very satisfied
            Key('1'), // barge-in: yes, resolved
            Done,     // recommendation question played
            Key('4'),
            Done, // thanks
        ],
    )
    .await;
    assert_eq!(
        log,
        lines(&[
            "play survey_intro",
            "play survey_q_satisfaction",
            "stop",
            "action survey_satisfaction=saved",
            "play survey_q_resolved",
            "stop",
            "action survey_resolved=saved",
            "play survey_q_recommend",
            "action survey_recommend=saved",
            "action survey_complete=completed",
            "play survey_thanks",
            "hangup",
        ])
    );
    use SurveyQuestion::*;
    assert_eq!(
        answers(&w, reg).await,
        [(Satisfaction, 5), (Resolved, 1), (Recommend, 4)]
    );
    let r = w
        .store()
        .registration(reg)
        .await
        .expect("read")
        .expect("reg");
    assert_eq!(r.status, Status::Surveyed);
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.outcome, Some(FlowOutcome::SurveyCompleted));
    done(ContactEnd::Completed, &f);
    let report = w
        .store()
        .satisfaction_report(Some(a.campaign_id))
        .await
        .expect("report");
    assert_eq!(report.satisfaction.share_4_5, Some(1.0));
    assert_eq!(report.completed, 1);
}

#[tokio::test]
async fn survey_invalid_keys_and_silence_keep_the_answers_given() {
    let w = world(500).await;
    let reg = consulted(&w).await;
    let a = claim_subscriber(&w, CampaignKind::Survey).await;
    let log = run(
        &w,
        &a,
        &[
            Done,     // intro
            Done,     // question 1 played
            Key('7'), // not 1-5
            Done,
            Key('0'), // not 1-5
            Done,
            Key('2'), // dissatisfied
            Done,     // question 2 played
            Key('3'), // neither yes nor no
            Done,
            Silence,
            Done,
            Silence, // third miss on question 2 (failures and timeouts count apart)
            Done,
            Silence,
            Done, // too many errors + goodbye
        ],
    )
    .await;
    assert_eq!(
        log,
        lines(&[
            "play survey_intro",
            "play survey_q_satisfaction",
            "play invalid_input survey_q_satisfaction",
            "play invalid_input survey_q_satisfaction",
            "action survey_satisfaction=saved",
            "play survey_q_resolved",
            "play invalid_input survey_q_resolved",
            "play no_input survey_q_resolved",
            "play no_input survey_q_resolved",
            "play too_many_errors out_goodbye",
            "hangup",
        ])
    );
    assert_eq!(answers(&w, reg).await, [(SurveyQuestion::Satisfaction, 2)]);
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.outcome, Some(FlowOutcome::SurveyPartial));
    assert_eq!(f.contact.state, ContactState::Waiting, "called back later");
    let r = w
        .store()
        .registration(reg)
        .await
        .expect("read")
        .expect("reg");
    assert_eq!(r.status, Status::Consulted, "not surveyed until complete");
    let report = w.store().satisfaction_report(None).await.expect("report");
    assert_eq!((report.partial, report.completed), (1, 0));
    assert_eq!(report.satisfaction.mean, Some(2.0));
}

#[tokio::test]
async fn survey_hang_up_after_two_answers_is_partial() {
    let w = world(500).await;
    let reg = consulted(&w).await;
    let a = claim_subscriber(&w, CampaignKind::Survey).await;
    let log = run(&w, &a, &[Done, Done, Key('3'), Done, Key('2'), HangUp]).await;
    assert_eq!(
        log,
        lines(&[
            "play survey_intro",
            "play survey_q_satisfaction",
            "action survey_satisfaction=saved",
            "play survey_q_resolved",
            "action survey_resolved=saved",
            "play survey_q_recommend",
            "caller hung up",
        ])
    );
    use SurveyQuestion::*;
    assert_eq!(answers(&w, reg).await, [(Satisfaction, 3), (Resolved, 2)]);
    let f = hang_up(&w, &a).await;
    assert_eq!(f.attempt.outcome, Some(FlowOutcome::SurveyPartial));
    assert_eq!(
        f.contact.not_before,
        Some(mins(ten_am(), 62)),
        "retry.incomplete"
    );
}
