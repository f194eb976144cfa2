//! Pacing, measured by the far end: a campaign of 300 contacts with `max_concurrent`
//! 20 and `max_cps` 5 against SIPp as every subscriber (each answers, talks 4.5 s and
//! hangs up). From SIPp's own message trace — not from the dialer's counters — no
//! one-second window holds more than 5 INVITEs and never more than 20 calls are up at
//! once; the call records agree. 300 calls at ≤ 5/s with 20 lines of 4.5 s take a
//! little over a minute: that is the test's length.

use std::time::Duration;

use crate::support;
use crate::support::Service;
use crate::support::campaign::{
    Uas, invites, number, overrides, parse_trace, policy_toml, seed_target_list, short_prompts,
};
use jiff::Timestamp;
use tongdai::store::AttemptStatus;
use tongdai_domain::dialer::{CampaignKind, CampaignPolicy};

const CONTACTS: usize = 300;

/// Most events within any half-open window `(t − 1 s, t]` over sorted times.
fn max_per_second(times: &[f64]) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= 1.0 {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Most intervals `[start, end)` overlapping at one instant.
fn max_overlap(intervals: &[(f64, f64)]) -> usize {
    let mut events: Vec<(f64, i32)> = Vec::new();
    for &(s, e) in intervals {
        events.push((s, 1));
        events.push((e, -1));
    }
    // Ends before starts at the same instant.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut up, mut best) = (0i32, 0i32);
    for (_, d) in events {
        up += d;
        best = best.max(up);
    }
    best as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_contacts_never_exceed_twenty_lines_or_five_per_second() {
    // Rates as SIPp stamps them: alone (support::serial).
    let _alone = support::serial::alone().await;
    let uas = Uas::start("pacing", Some(CONTACTS as u32), 4500, 1000).await;
    let dir = tempfile::tempdir().expect("tmp");
    let prompts = short_prompts(dir.path());
    let svc = Service::start_in(dir, &overrides(uas.addr(), &prompts, "")).await;
    let store = svc.app.store.clone();
    // Suffix 77: SIPp's default subscriber (answer, talk, hang up).
    let numbers: Vec<String> = (0..CONTACTS as u32)
        .map(|i| number("0906", i, "77").1)
        .collect();
    seed_target_list(&store, &numbers).await;
    let policy = CampaignPolicy::from_toml(
        &policy_toml("max_concurrent = 20\nmax_cps = 5\nmax_attempts = 1\n"),
        CampaignKind::Invitation,
    )
    .expect("policy");
    let program = tongdai_domain::program::ProgramConfig {
        today: Some(jiff::civil::date(2021, 12, 1)),
        ..Default::default()
    };
    let created = store
        .create_invitation_campaign("pacing", policy, &program, Timestamp::now())
        .await
        .expect("create");
    assert_eq!(created.contacts as usize, CONTACTS);
    let id = created.campaign.id;
    store
        .start_campaign(id, Timestamp::now())
        .await
        .expect("start");

    let run = uas.finish(Duration::from_secs(240)).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
    let trace = parse_trace(&run.messages);

    // Every contact dialled exactly once.
    let invs = invites(&trace);
    assert_eq!(invs.len(), CONTACTS);
    assert!(invs.values().all(|(_, branches)| branches.len() == 1));

    // Calls per second, from SIPp's receive timestamps of the INVITEs.
    let mut starts: Vec<f64> = invs.values().map(|(t, _)| *t).collect();
    starts.sort_by(f64::total_cmp);
    let cps = max_per_second(&starts);
    assert!(cps <= 5, "{cps} INVITEs within one second");

    // Calls up at once, from SIPp's view: INVITE received → 200 to its BYE received.
    let intervals: Vec<(f64, f64)> = invs
        .iter()
        .map(|(call_id, (start, _))| {
            let end = trace
                .iter()
                .filter(|m| &m.call_id == call_id && m.received && m.status() == Some(200))
                .filter(|m| m.cseq.ends_with("BYE"))
                .map(|m| m.at)
                .next()
                .expect("the call's BYE was answered");
            (*start, end)
        })
        .collect();
    let lines = max_overlap(&intervals);
    assert!(lines <= 20, "{lines} calls up at once");
    let span = starts[CONTACTS - 1] - starts[0];

    // The call records agree (start → end as the service filed them).
    let mut attempts = Vec::new();
    for _ in 0..100 {
        attempts = store.campaign_attempts(id).await.expect("attempts");
        if attempts.iter().all(|a| a.status == AttemptStatus::Finished) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempts.len(), CONTACTS);
    let mut records = Vec::new();
    for a in &attempts {
        let r = store
            .call_record(&a.call_id)
            .await
            .expect("q")
            .expect("call record");
        let secs = |t: Timestamp| t.as_nanosecond() as f64 / 1e9;
        records.push((secs(r.started_at), secs(r.ended_at.expect("ended"))));
    }
    let record_lines = max_overlap(&records);
    assert!(record_lines <= 20, "{record_lines} call records overlap");
    let mut record_starts: Vec<f64> = records.iter().map(|r| r.0).collect();
    record_starts.sort_by(f64::total_cmp);
    assert!(max_per_second(&record_starts) <= 5);
    // Both limits were really in play (not a test that passes by dialling slowly).
    assert!(cps >= 4, "peak {cps}/s");
    assert!(lines >= 15, "peak {lines} lines");
    eprintln!(
        "pacing: {CONTACTS} calls over {span:.1} s, peak {cps} INVITEs/s, peak {lines} calls up \
         (SIPp trace); records: peak {record_lines}"
    );
    let progress = store
        .campaign_progress(id, Timestamp::now())
        .await
        .expect("progress");
    assert_eq!(progress.done as usize, CONTACTS);
}
