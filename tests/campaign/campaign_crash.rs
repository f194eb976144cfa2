//! Exactly-once dialling across a crash, with the real binary: the campaign is made
//! and started with the CLI (`tongdai import`, `tongdai campaign create/start`),
//! `tongdai serve` dials it against SIPp, is killed with SIGKILL mid-campaign, is
//! started again on the same store and finishes the campaign. Then the INVITEs SIPp
//! received are compared with the attempts in the store: every Call-ID SIPp saw is one
//! attempt, dialled once (one INVITE transaction); no attempt was dialled twice; a
//! claim released at restart never reached SIPp; and every contact reached its end —
//! none forgotten, none left dialling.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::support;
use crate::support::campaign::{Uas, dialled_number, invites, number, parse_trace, short_prompts};
use crate::support::process::{self, Serve};
use tongdai::store::{AttemptStatus, ContactEnd, ContactState, FlowOutcome, Resolution, Store};
use tongdai_domain::dialer::CampaignState;

const CONTACTS: u32 = 40;

/// `tongdai --config <config> <args>`: (exit code, output).
fn tongdai(config: &Path, args: &[&str]) -> (i32, String) {
    let config = config.to_str().expect("path");
    process::tongdai_code(&[&["--config", config], args].concat(), &[])
}

fn serve(config: &Path, log: &Path) -> Serve {
    Serve::start(Some(config), &[("RUST_LOG", "info,rsipstack=warn")], log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_campaign_then_restart_dials_each_attempt_once_and_finishes() {
    // Each subscriber answers and presses 2 (not interested) after 1 s; the flow
    // ends and the service hangs up: ~2 s per call, 5 lines.
    let uas = Uas::start("crash", None, 1000, 1000).await;
    let dir = tempfile::tempdir().expect("tmp");
    let prompts = short_prompts(dir.path());
    let db = dir.path().join("tongdai.db");
    let config = dir.path().join("tongdai.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [database]\nurl = \"sqlite://{}\"\n[prompts]\ndir = \"{}\"\n\
             [dialplans]\ndir = \"{}\"\n\
             [trunk]\nhost = \"127.0.0.1\"\nport = {}\noptions_interval = \"0s\"\n\
             [program]\ntoday = \"2021-12-01\"\n[rtp]\ninactivity_timeout = \"300s\"\n\
             [dialer]\ninstance = \"crash-node\"\npoll_interval = \"200ms\"\n\
             [shutdown]\ngrace = \"5s\"\n[log]\nformat = \"json\"\n",
            db.display(),
            prompts.display(),
            support::repo().join("dialplans").display(),
            uas.port
        ),
    )
    .expect("config");
    let numbers: Vec<(String, String)> = (0..CONTACTS).map(|i| number("0907", i, "05")).collect();
    let csv = dir.path().join("targets.csv");
    let mut text = String::from("msisdn,plan,charge_per_cycle_vnd,list_source\n");
    for (national, _) in &numbers {
        text.push_str(&format!("{national},postpaid,400000,sms\n"));
    }
    std::fs::write(&csv, text).expect("csv");
    let (code, out) = tongdai(
        &config,
        &["import", "subscribers", csv.to_str().expect("path")],
    );
    assert_eq!(code, 0, "{out}");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "calling_windows = [\"00:00-24:00\"]\nmax_concurrent = 5\nmax_cps = 5\n\
         ring_timeout = \"10s\"\nmax_attempts = 3\n\
         [retry]\nfailed = \"1s\"\nincomplete = \"1s\"\nno_answer = \"1s\"\n",
    )
    .expect("policy");
    let (code, out) = tongdai(
        &config,
        &[
            "campaign",
            "create",
            "--kind",
            "invitation",
            "--name",
            "crash",
            "--policy",
            policy.to_str().expect("path"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{CONTACTS} contacts")), "{out}");
    let (code, out) = tongdai(&config, &["campaign", "start", "crash"]);
    assert_eq!(code, 0, "{out}");

    // First run: kill -9 once a good part of the campaign is in flight.
    let mut first = serve(&config, &dir.path().join("serve1.log"));
    let mut seen = 0;
    for _ in 0..600 {
        seen = invites(&parse_trace(&uas.messages())).len();
        if seen >= 14 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen >= 14, "the service dialled: {seen} INVITEs");
    first.kill();

    // Second run on the same store finishes the campaign.
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("store");
    let mut second = serve(&config, &dir.path().join("serve2.log"));
    let mut state = CampaignState::Running;
    for _ in 0..900 {
        let c = store
            .campaign_by_name("crash")
            .await
            .expect("q")
            .expect("campaign");
        state = c.state;
        if state == CampaignState::Completed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log2 = second.log();
    assert_eq!(state, CampaignState::Completed, "serve2.log:\n{log2}");
    let (code, show) = tongdai(&config, &["campaign", "show", "crash"]);
    assert_eq!(code, 0, "{show}");
    // Graceful stop of the second run.
    let _ = second.terminate();
    let trace = parse_trace(&uas.stop().await);

    let c = store
        .campaign_by_name("crash")
        .await
        .expect("q")
        .expect("campaign");
    let attempts = store.campaign_attempts(c.id).await.expect("attempts");
    let contacts = store.campaign_contacts(c.id).await.expect("contacts");
    let invs = invites(&trace);
    let explain = format!("{show}\nattempts: {attempts:#?}");

    // The restart found the first run's unfinished attempts and resolved them.
    assert!(
        log2.contains("recovered an attempt left dialing"),
        "no recovery in serve2.log:\n{log2}"
    );
    assert!(
        attempts
            .iter()
            .any(|a| a.resolution.is_some_and(|r| r != Resolution::Final)),
        "{explain}"
    );
    // Nothing left dialling; every contact at its end (not interested), none forgotten.
    assert!(
        attempts.iter().all(|a| a.status != AttemptStatus::Dialing),
        "{explain}"
    );
    assert_eq!(contacts.len() as u32, CONTACTS);
    for ct in &contacts {
        assert_eq!(ct.state, ContactState::Done, "{ct:?}");
        assert_eq!(
            ct.done_reason,
            Some(ContactEnd::Completed),
            "{ct:?}\n{explain}"
        );
    }
    // Every Call-ID SIPp received is one attempt, sent as one INVITE transaction.
    let by_call_id: BTreeMap<&str, _> = attempts.iter().map(|a| (a.call_id.as_str(), a)).collect();
    for (call_id, (_, branches)) in &invs {
        let a = by_call_id
            .get(call_id.as_str())
            .unwrap_or_else(|| panic!("SIPp got {call_id}, which no attempt claimed"));
        assert_eq!(branches.len(), 1, "{call_id} dialled twice: {branches:?}");
        assert_ne!(
            a.status,
            AttemptStatus::Released,
            "released yet dialled: {a:?}"
        );
        let inv = trace
            .iter()
            .find(|m| m.received && m.is_request("INVITE") && &m.call_id == call_id)
            .expect("invite");
        assert_eq!(
            dialled_number(inv),
            format!("0{}", &a.msisdn[3..]),
            "the attempt's number"
        );
    }
    // Every attempt the runtime finished itself reached SIPp; the only ones SIPp never
    // saw are released claims and attempts cut by the crash right at the hand-over.
    for a in &attempts {
        if !invs.contains_key(&a.call_id) {
            assert!(
                a.status == AttemptStatus::Released
                    || a.resolution == Some(Resolution::RecoveredAmbiguous),
                "attempt never reached SIPp: {a:?}"
            );
        }
    }
    // Each contact completed exactly once, and only its last attempt says so.
    let mut completed: BTreeSet<&str> = BTreeSet::new();
    for a in &attempts {
        if a.outcome == Some(FlowOutcome::NotInterested) {
            assert!(
                completed.insert(a.msisdn.as_str()),
                "{} completed twice",
                a.msisdn
            );
        }
    }
    assert_eq!(completed.len() as u32, CONTACTS, "{explain}");
    let dialled_after_crash = attempts.iter().filter(|a| a.attempt_no > 1).count();
    eprintln!(
        "crash: {} INVITEs in SIPp's trace, {} attempts ({} released, {} recovered, {} re-dials)",
        invs.len(),
        attempts.len(),
        attempts
            .iter()
            .filter(|a| a.status == AttemptStatus::Released)
            .count(),
        attempts
            .iter()
            .filter(|a| a.resolution.is_some_and(|r| r != Resolution::Final))
            .count(),
        dialled_after_crash
    );
}
