//! Campaigns end to end: the whole service (in process, loopback, port 0) dials a
//! running campaign through its trunk, and SIPp is the trunk and every subscriber
//! behind it (`tests/sipp/uas/uas_campaign.xml`: behaviour by the number's last two
//! digits). On SQLite and on PostgreSQL:
//!
//! - invitation: one subscriber registers with RFC 4733 keys (1, specialty 2, confirm),
//!   one with SIP INFO keys, one opts out (8), one asks to be called later (3, 1), one
//!   is not interested (2); busy 486, 480, 603, 404, a phone that rings until our
//!   CANCEL, and a trunk that challenges with 401 — each ends in its disposition, raw
//!   code, Reason, call record and next attempt (asserted on the store and on SIPp's
//!   own message trace);
//! - survey: answers 1-5 pressed by SIPp fill `survey_answers` and the satisfaction
//!   rate; completed registrations become `surveyed`; a partial survey keeps its
//!   answers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support;
use crate::support::Service;
use crate::support::campaign::{
    Uas, consulted, invites, number, overrides, parse_trace, policy_toml, seed_target_list,
    short_prompts,
};
use crate::support::store::Db;
use jiff::Timestamp;
use tongdai::store::{
    AttemptRow, AttemptStatus, CallDirection, ContactEnd, ContactState, DncSource, FlowOutcome,
    QueueStatus, Store, SurveyQuestion,
};
use tongdai_domain::dialer::{CampaignKind, CampaignPolicy, Disposition};
use tongdai_domain::program::{Channel, Status};

async fn service(db: Db, uas: &Uas) -> (Service, Option<support::store::TestDb>) {
    let dir = tempfile::tempdir().expect("tmp");
    let prompts = short_prompts(dir.path());
    Service::start_on(db, dir, &overrides(uas.addr(), &prompts, "")).await
}

/// Waits until `n` attempts of the campaign are finished; returns all its attempts.
async fn finished_attempts(store: &Store, campaign: i64, n: usize) -> Vec<AttemptRow> {
    for _ in 0..600 {
        let attempts = store.campaign_attempts(campaign).await.expect("attempts");
        if attempts
            .iter()
            .filter(|a| a.status == AttemptStatus::Finished)
            .count()
            >= n
        {
            return attempts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "attempts not finished: {:#?}",
        store.campaign_attempts(campaign).await
    );
}

fn secs_between(a: Timestamp, b: Timestamp) -> i64 {
    a.duration_until(b).as_secs()
}

async fn invitation_flows_and_dispositions(db: Db) {
    let uas = Uas::start(&format!("invitation_{db:?}"), Some(11), 1000, 1500).await;
    let (svc, pg) = service(db, &uas).await;
    let store = svc.app.store.clone();
    let suffixes = [
        "01", "02", "03", "04", "05", "86", "80", "63", "44", "99", "41",
    ];
    let numbers: BTreeMap<&str, (String, String)> = suffixes
        .iter()
        .map(|s| (*s, number("0903", 1000, s)))
        .collect();
    let e164 = |s: &str| numbers[s].1.clone();
    let all: Vec<String> = suffixes.iter().map(|s| e164(s)).collect();
    seed_target_list(&store, &all).await;
    let program = tongdai_domain::program::ProgramConfig {
        today: Some(jiff::civil::date(2021, 12, 1)),
        ..Default::default()
    };
    let policy = CampaignPolicy::from_toml(
        &policy_toml("ring_timeout = \"5s\"\n"),
        CampaignKind::Invitation,
    )
    .expect("policy");
    assert_eq!(policy.dialplan, "invite");
    // A campaign made earlier over the same list, not started: the opt-out must reach
    // it too.
    let earlier = store
        .create_invitation_campaign("mời-trước", policy.clone(), &program, Timestamp::now())
        .await
        .expect("create");
    let created = store
        .create_invitation_campaign("mời-đợt-1", policy.clone(), &program, Timestamp::now())
        .await
        .expect("create");
    assert_eq!(created.contacts, 11);
    let id = created.campaign.id;
    store
        .start_campaign(id, Timestamp::now())
        .await
        .expect("start");

    let run = uas.finish(Duration::from_secs(90)).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
    let attempts = finished_attempts(&store, id, 11).await;
    let trace = parse_trace(&run.messages);
    let by_number: BTreeMap<String, AttemptRow> = attempts
        .iter()
        .map(|a| (a.msisdn.clone(), a.clone()))
        .collect();
    assert_eq!(attempts.len(), 11, "one attempt each: {attempts:#?}");
    let a = |s: &str| by_number[&e164(s)].clone();
    let contact = |s: &str| {
        let store = store.clone();
        let m = e164(s);
        async move {
            store
                .campaign_contact(id, &m)
                .await
                .expect("q")
                .expect("contact")
        }
    };

    // Every INVITE carried its attempt's Call-ID, From 9090, our PAI, the number in
    // national form; every attempt was dialled once.
    let invs = invites(&trace);
    assert_eq!(invs.len(), 11);
    for att in &attempts {
        let (_, branches) = invs
            .get(&att.call_id)
            .expect("SIPp got the attempt's Call-ID");
        let expected = if att.msisdn == e164("41") { 2 } else { 1 };
        assert_eq!(branches.len(), expected, "{}", att.msisdn);
        let inv = trace
            .iter()
            .find(|m| m.received && m.is_request("INVITE") && m.call_id == att.call_id)
            .expect("invite");
        let national = format!("0{}", &att.msisdn[3..]);
        assert!(
            inv.first_line
                .starts_with(&format!("INVITE sip:{national}@")),
            "{}",
            inv.first_line
        );
        assert!(inv.header("From").is_some_and(|f| f.contains("sip:9090@")));
        assert_eq!(
            inv.header("P-Asserted-Identity"),
            Some("<sip:9090@mobifone.vn>")
        );
        assert!(att.started_at.is_some() && att.started_at <= Some(att.ended_at.expect("ended")));
    }

    // 01: registered by RFC 4733 keys, channel outbound_call, queued for Vinmec.
    // 04: the same by SIP INFO.
    for (s, method) in [("01", "rfc4733"), ("04", "info")] {
        let att = a(s);
        assert_eq!(att.disposition, Some(Disposition::Answered), "{s}");
        assert_eq!(att.sip_code, Some(200));
        assert_eq!(att.outcome, Some(FlowOutcome::Registered), "{s}: {att:?}");
        assert!(att.charged);
        let reg = store
            .registration_by_msisdn(&e164(s))
            .await
            .expect("q")
            .expect("registered");
        assert_eq!(reg.channel, Channel::OutboundCall);
        assert_eq!(reg.specialty, Some(2));
        assert_eq!(reg.status, Status::Registered);
        assert_eq!(reg.call_id.as_deref(), Some(att.call_id.as_str()));
        let q = store
            .vinmec_entry(reg.id)
            .await
            .expect("q")
            .expect("queued");
        assert_eq!(q.queue.status, QueueStatus::Waiting);
        let c = contact(s).await;
        assert_eq!(c.state, ContactState::Done);
        assert_eq!(c.done_reason, Some(ContactEnd::Completed));
        let rec = store
            .call_record(&att.call_id)
            .await
            .expect("q")
            .expect("call record");
        assert_eq!(rec.direction, CallDirection::Outbound);
        assert_eq!(rec.campaign_id, Some(id));
        assert_eq!(rec.attempt_id, Some(att.id));
        assert_eq!(rec.final_status, Some(200));
        assert_eq!(rec.digits, "121");
        assert_eq!(rec.disposition.as_str(), "answered");
        assert_eq!(rec.caller.as_deref(), Some("9090"));
        assert_eq!(rec.called.as_deref(), Some(e164(s).as_str()));
        let log = svc.app.calls.find(&att.call_id).expect("in the call log");
        let counted = match method {
            "rfc4733" => log.digit_methods.rfc4733,
            _ => log.digit_methods.info,
        };
        assert_eq!(counted, 3, "{s}: {:?}", log.digit_methods);
        assert!(
            rec.ivr_path.iter().any(|n| n == "register"),
            "{:?}",
            rec.ivr_path
        );
    }

    // 02: opted out — on the do-not-call list at once, never dialled again by any
    // campaign: its contact in the earlier draft is closed, a later campaign leaves it out.
    let att = a("02");
    assert_eq!(att.outcome, Some(FlowOutcome::OptedOut));
    let dnc = store
        .do_not_call_entry(&e164("02"))
        .await
        .expect("q")
        .expect("on the list");
    assert_eq!(dnc.source, DncSource::Keypad);
    assert_eq!(dnc.campaign_id, Some(id));
    assert_eq!(dnc.attempt_id, Some(att.id));
    assert_eq!(contact("02").await.done_reason, Some(ContactEnd::OptedOut));
    let other = store
        .campaign_contact(earlier.campaign.id, &e164("02"))
        .await
        .expect("q")
        .expect("contact");
    assert_eq!(other.done_reason, Some(ContactEnd::OptedOut));
    let later = store
        .create_invitation_campaign("mời-đợt-2", policy.clone(), &program, Timestamp::now())
        .await
        .expect("create");
    assert!(
        store
            .campaign_contact(later.campaign.id, &e164("02"))
            .await
            .expect("q")
            .is_none()
    );
    assert_eq!(later.skipped.get("do_not_call"), Some(&1));

    // 03: call me later (in about 2 hours): rescheduled, not done.
    let att = a("03");
    assert_eq!(att.outcome, Some(FlowOutcome::CallLater));
    let c = contact("03").await;
    assert_eq!(c.state, ContactState::Waiting);
    let wait = secs_between(att.ended_at.expect("ended"), c.not_before.expect("due"));
    assert_eq!(wait, 2 * 3600, "call later in 2 h");

    // 05: not interested: done.
    assert_eq!(a("05").outcome, Some(FlowOutcome::NotInterested));
    assert_eq!(contact("05").await.done_reason, Some(ContactEnd::Completed));

    // Rejections: disposition, raw code, Reason, next attempt per the policy.
    let retry_after = |s: &str, d: Duration| {
        let att = a(s);
        let store = store.clone();
        let m = e164(s);
        let s = s.to_string();
        async move {
            let c = store
                .campaign_contact(id, &m)
                .await
                .expect("q")
                .expect("contact");
            assert_eq!(c.state, ContactState::Waiting, "{s}: {c:?}");
            assert_eq!(c.attempts_charged, 1, "{s}");
            let wait = secs_between(att.ended_at.expect("ended"), c.not_before.expect("due"));
            assert_eq!(wait, d.as_secs() as i64, "{s}");
        }
    };
    let check = |s: &str, disposition: Disposition, code: u16, cause: &str| {
        let att = a(s);
        assert_eq!(att.disposition, Some(disposition), "{s}: {att:?}");
        assert_eq!(att.sip_code, Some(code), "{s}");
        assert!(
            att.reason.as_deref().unwrap_or("").contains(cause),
            "{s}: {:?}",
            att.reason
        );
    };
    check("86", Disposition::Busy, 486, "cause=17");
    retry_after("86", policy.retry.busy).await;
    check("80", Disposition::NoAnswer, 480, "cause=18");
    retry_after("80", policy.retry.no_answer).await;
    check("63", Disposition::Rejected, 603, "cause=21");
    assert_eq!(contact("63").await.done_reason, Some(ContactEnd::Rejected));
    check("44", Disposition::InvalidNumber, 404, "cause=1");
    assert_eq!(
        contact("44").await.done_reason,
        Some(ContactEnd::InvalidNumber)
    );
    // 99: rang until our CANCEL after the 5 s ring timeout → 487 → no answer.
    check("99", Disposition::NoAnswer, 487, "");
    retry_after("99", policy.retry.no_answer).await;
    let cid = a("99").call_id;
    let invite_at = trace
        .iter()
        .find(|m| m.call_id == cid && m.is_request("INVITE"))
        .expect("invite")
        .at;
    let cancel = trace
        .iter()
        .find(|m| m.call_id == cid && m.received && m.is_request("CANCEL"))
        .expect("SIPp received our CANCEL");
    let rang = cancel.at - invite_at;
    assert!(
        (4.5..15.0).contains(&rang),
        "CANCEL after the ring timeout: {rang} s"
    );
    let rec = store.call_record(&cid).await.expect("q").expect("record");
    assert_eq!(rec.final_status, Some(487));
    assert_eq!(rec.disposition.as_str(), "no_answer");
    assert_eq!(rec.end_reason, "ring_timeout");
    // 41: the trunk challenged; the authenticated INVITE was answered.
    let att = a("41");
    assert_eq!(att.disposition, Some(Disposition::Answered));
    let second = trace
        .iter()
        .filter(|m| m.call_id == att.call_id && m.received && m.is_request("INVITE"))
        .find(|m| m.cseq.starts_with("2 "))
        .expect("the authenticated INVITE");
    assert!(
        second
            .header("Authorization")
            .is_some_and(|h| h.contains("username=\"tongdai\"") && h.contains("qop=auth")),
        "{}",
        second.text
    );
    // Answered, no outcome (the subscriber hung up): called again later, charged.
    retry_after("41", policy.retry.incomplete).await;

    // Every attempt has its call record, outbound, with the attempt's disposition.
    for att in &attempts {
        let rec = store
            .call_record(&att.call_id)
            .await
            .expect("q")
            .expect("record");
        assert_eq!(rec.direction, CallDirection::Outbound);
        assert_eq!(rec.attempt_id, Some(att.id));
        assert_eq!(rec.final_status, att.sip_code, "{}", att.msisdn);
        assert_eq!(
            Some(rec.disposition.as_str()),
            att.disposition.map(|d| d.as_str()),
            "{}",
            att.msisdn
        );
    }
    let progress = store
        .campaign_progress(id, Timestamp::now())
        .await
        .expect("progress");
    assert_eq!(progress.attempts, 11);
    assert_eq!(progress.outcomes.get(&FlowOutcome::Registered), Some(&2));
    assert_eq!(progress.hold, None);
    svc.wait_idle_legs().await;
    drop(svc);
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
}

mod invitation {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::invitation_flows_and_dispositions(super::Db::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::invitation_flows_and_dispositions(super::Db::Postgres).await;
    }
}

async fn survey_run(db: Db) {
    let uas = Uas::start(&format!("survey_{db:?}"), Some(3), 1000, 1500).await;
    let (svc, pg) = service(db, &uas).await;
    let store = svc.app.store.clone();
    let program = tongdai_domain::program::ProgramConfig {
        today: Some(jiff::civil::date(2021, 12, 1)),
        ..Default::default()
    };
    let numbers: Vec<String> = ["51", "52", "53"]
        .iter()
        .map(|s| number("0905", 2000, s).1)
        .collect();
    let regs = consulted(&store, &program, &numbers).await;
    let policy = CampaignPolicy::from_toml(&policy_toml(""), CampaignKind::Survey).expect("policy");
    assert_eq!(policy.dialplan, "survey");
    let created = store
        .create_survey_campaign("khảo-sát-1", policy.clone(), Timestamp::now())
        .await
        .expect("create");
    assert_eq!(created.contacts, 3);
    let id = created.campaign.id;
    store
        .start_campaign(id, Timestamp::now())
        .await
        .expect("start");
    let run = uas.finish(Duration::from_secs(90)).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
    let attempts = finished_attempts(&store, id, 3).await;
    let outcome = |m: &str| {
        attempts
            .iter()
            .find(|a| a.msisdn == m)
            .and_then(|a| a.outcome)
    };
    assert_eq!(outcome(&numbers[0]), Some(FlowOutcome::SurveyCompleted));
    assert_eq!(outcome(&numbers[1]), Some(FlowOutcome::SurveyPartial));
    assert_eq!(outcome(&numbers[2]), Some(FlowOutcome::SurveyCompleted));
    let answers = |i: usize| {
        let store = store.clone();
        let reg = regs[i];
        async move {
            store
                .survey_answers(reg)
                .await
                .expect("answers")
                .into_iter()
                .map(|a| (a.question, a.value))
                .collect::<Vec<_>>()
        }
    };
    use SurveyQuestion::*;
    assert_eq!(
        answers(0).await,
        vec![(Satisfaction, 5), (Resolved, 1), (Recommend, 4)]
    );
    assert_eq!(answers(1).await, vec![(Satisfaction, 4)], "partial kept");
    assert_eq!(
        answers(2).await,
        vec![(Satisfaction, 2), (Resolved, 2), (Recommend, 3)]
    );
    for (i, want) in [
        (0, Status::Surveyed),
        (1, Status::Consulted),
        (2, Status::Surveyed),
    ] {
        let reg = store.registration(regs[i]).await.expect("q").expect("reg");
        assert_eq!(reg.status, want, "{}", numbers[i]);
    }
    // The partial one is called back (the rest of its answers), the others are done.
    let partial = store
        .campaign_contact(id, &numbers[1])
        .await
        .expect("q")
        .expect("contact");
    assert_eq!(partial.state, ContactState::Waiting);
    let report = store.satisfaction_report(Some(id)).await.expect("report");
    assert_eq!(report.respondents, 3);
    assert_eq!((report.completed, report.partial), (2, 1));
    assert_eq!(report.satisfaction.answers, 3);
    assert_eq!(report.satisfaction.histogram, [0, 1, 0, 1, 1]);
    let mean = report.satisfaction.mean.expect("mean");
    assert!((mean - 11.0 / 3.0).abs() < 1e-9, "{mean}");
    let share = report.satisfaction.share_4_5.expect("share");
    assert!((share - 2.0 / 3.0).abs() < 1e-9, "{share}");
    assert_eq!((report.resolved.yes, report.resolved.no), (1, 1));
    assert_eq!(report.recommend.mean, Some(3.5));
    drop(svc);
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
}

mod survey {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::survey_run(super::Db::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::survey_run(super::Db::Postgres).await;
    }
}
