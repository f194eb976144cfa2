//! The dialer as part of the running service, against SIPp: SIGTERM (stop claiming,
//! cancel what still rings, let answered calls finish, finish every attempt), a trunk
//! that stops answering (dialling held and shown, resumed when it answers), and two
//! service instances on one PostgreSQL sharing a campaign without ever dialling the
//! same contact twice.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support;
use crate::support::Service;
use crate::support::campaign::{
    Uas, dialled_number, invites, number, overrides, parse_trace, policy_toml, seed_target_list,
    short_prompts,
};
use jiff::Timestamp;
use tongdai::store::{AttemptStatus, ContactState, Store};
use tongdai_domain::dialer::{CampaignKind, CampaignPolicy, CampaignState, Disposition};
use tongdai_domain::program::ProgramConfig;

fn program() -> ProgramConfig {
    ProgramConfig {
        today: Some(jiff::civil::date(2021, 12, 1)),
        ..Default::default()
    }
}

async fn running_campaign(store: &Store, name: &str, numbers: &[String], policy: &str) -> i64 {
    seed_target_list(store, numbers).await;
    let policy =
        CampaignPolicy::from_toml(&policy_toml(policy), CampaignKind::Invitation).expect("policy");
    let created = store
        .create_invitation_campaign(name, policy, &program(), Timestamp::now())
        .await
        .expect("create");
    assert_eq!(created.contacts as usize, numbers.len());
    store
        .start_campaign(created.campaign.id, Timestamp::now())
        .await
        .expect("start");
    created.campaign.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_what_rings_lets_answered_calls_finish_and_finishes_attempts() {
    // Two phones ring forever (99), two answer and talk 3 s (77); two more contacts
    // wait for a free line (max_concurrent 4) and must not be dialled once draining.
    let uas = Uas::start("sigterm", Some(4), 3000, 1000).await;
    let dir = tempfile::tempdir().expect("tmp");
    let prompts = short_prompts(dir.path());
    let db_url = format!("sqlite://{}/tongdai.db", dir.path().display());
    let svc = Service::start_in(
        dir,
        &overrides(uas.addr(), &prompts, "[shutdown]\ngrace = \"10s\"\n"),
    )
    .await;
    let numbers: Vec<String> = [
        (1, "99"),
        (2, "99"),
        (3, "77"),
        (4, "77"),
        (5, "77"),
        (6, "77"),
    ]
    .iter()
    .map(|(i, s)| number("0908", *i, s).1)
    .collect();
    let id = running_campaign(
        &svc.app.store,
        "drain",
        &numbers,
        "max_concurrent = 4\nring_timeout = \"60s\"\n",
    )
    .await;
    // Wait until all four lines are up and the two answering phones have answered.
    for _ in 0..200 {
        let trace = parse_trace(&uas.messages());
        let acks = trace
            .iter()
            .filter(|m| m.received && m.is_request("ACK"))
            .count();
        if invites(&trace).len() == 4 && acks == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Service { app, dir: _dir } = svc;
    app.shutdown().await;

    let run = uas.finish(Duration::from_secs(30)).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
    let trace = parse_trace(&run.messages);
    assert_eq!(invites(&trace).len(), 4, "no new call after SIGTERM");
    let cancels = trace
        .iter()
        .filter(|m| m.received && m.is_request("CANCEL"))
        .count();
    assert_eq!(cancels, 2, "the ringing calls were cancelled");

    let store = Store::connect(&db_url).await.expect("store");
    let attempts = store.campaign_attempts(id).await.expect("attempts");
    assert_eq!(attempts.len(), 4);
    for a in &attempts {
        assert_eq!(a.status, AttemptStatus::Finished, "{a:?}");
        if a.msisdn.ends_with("99") {
            // Our CANCEL at shutdown: not the subscriber's answer, not charged.
            assert_eq!(a.disposition, Some(Disposition::Canceled), "{a:?}");
            assert_eq!(a.sip_code, Some(487));
            assert!(!a.charged);
        } else {
            // Answered before SIGTERM, finished within the grace (the callee hung up).
            assert_eq!(a.disposition, Some(Disposition::Answered), "{a:?}");
            assert!(a.charged);
        }
    }
    for n in &numbers[4..] {
        let c = store
            .campaign_contact(id, n)
            .await
            .expect("q")
            .expect("contact");
        assert_eq!((c.state, c.dials), (ContactState::Waiting, 0), "{c:?}");
    }
    let hold = store.campaign_hold(id).await.expect("q").expect("a hold");
    assert_eq!(hold.code, "stopping");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_trunk_holds_dialling_until_it_answers() {
    let port = support::free_port();
    let trunk = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let dir = tempfile::tempdir().expect("tmp");
    let prompts = short_prompts(dir.path());
    // OPTIONS every second; with T1 = 50 ms an unanswered one fails after 3.2 s.
    let svc = Service::start_in(
        dir,
        &overrides(
            trunk,
            &prompts,
            "[sip]\nt1 = \"50ms\"\nt2 = \"400ms\"\n[trunk]\noptions_interval = \"1s\"\n",
        ),
    )
    .await;
    let mut state = svc.app.sip().trunk_state();
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| s.reachable == Some(false)),
    )
    .await
    .expect("the trunk is seen unreachable")
    .expect("trunk state");
    let store = svc.app.store.clone();
    let numbers: Vec<String> = (0..3).map(|i| number("0909", i, "05").1).collect();
    let id = running_campaign(&store, "held", &numbers, "").await;
    let mut hold = None;
    for _ in 0..100 {
        hold = store.campaign_hold(id).await.expect("q");
        if hold.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hold = hold.expect("the campaign is held");
    assert_eq!(hold.code, "trunk_unreachable");
    assert_eq!(hold.instance, "test-node");
    let progress = store
        .campaign_progress(id, Timestamp::now())
        .await
        .expect("progress");
    assert_eq!(
        progress.hold.map(|h| h.code),
        Some("trunk_unreachable".into())
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(store.campaign_attempts(id).await.expect("q").is_empty());

    // The trunk comes back: the next OPTIONS is answered, dialling resumes.
    let uas = Uas::start_on(port, "trunk_back", None, 1000, 1000).await;
    let mut done = false;
    for _ in 0..300 {
        let c = store.campaign(id).await.expect("q").expect("campaign");
        if c.state == CampaignState::Completed {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let trace = parse_trace(&uas.stop().await);
    assert!(done, "campaign completed once the trunk answered");
    assert_eq!(invites(&trace).len(), 3);
    assert!(trace.iter().any(|m| m.received && m.is_request("OPTIONS")));
    assert_eq!(store.campaign_hold(id).await.expect("q"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_never_dial_a_contact_twice() {
    const N: u32 = 30;
    let uas = Uas::start("two_instances", Some(N), 1500, 1000).await;
    let pg = support::store::postgres().await;
    let mut services = Vec::new();
    for node in ["node-a", "node-b"] {
        let dir = tempfile::tempdir().expect("tmp");
        let prompts = short_prompts(dir.path());
        let extra = format!(
            "[database]\nurl = \"{}\"\n[dialer]\ninstance = \"{node}\"\n",
            pg.url
        );
        services.push(Service::start_in(dir, &overrides(uas.addr(), &prompts, &extra)).await);
    }
    let numbers: Vec<String> = (0..N).map(|i| number("0902", i, "77").1).collect();
    let id = running_campaign(
        &pg.store,
        "shared",
        &numbers,
        "max_concurrent = 4\nmax_cps = 4\nmax_attempts = 1\n",
    )
    .await;
    let run = uas.finish(Duration::from_secs(90)).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
    let trace = parse_trace(&run.messages);
    let invs = invites(&trace);
    assert_eq!(invs.len(), N as usize);
    let mut dialled = BTreeSet::new();
    for (call_id, (_, branches)) in &invs {
        assert_eq!(branches.len(), 1, "{call_id}");
        let inv = trace
            .iter()
            .find(|m| m.received && m.is_request("INVITE") && &m.call_id == call_id)
            .expect("invite");
        assert!(dialled.insert(dialled_number(inv)), "dialled twice");
    }
    let mut attempts = Vec::new();
    for _ in 0..100 {
        attempts = pg.store.campaign_attempts(id).await.expect("attempts");
        if attempts.iter().all(|a| a.status == AttemptStatus::Finished) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(attempts.len(), N as usize, "one attempt per contact");
    let nodes: BTreeSet<&str> = attempts.iter().map(|a| a.claimed_by.as_str()).collect();
    assert_eq!(
        nodes,
        BTreeSet::from(["node-a", "node-b"]),
        "both instances dialled"
    );
    drop(services);
    pg.cleanup().await;
}
