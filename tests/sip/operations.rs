//! Operator commands against real files and a real service: `tongdai import subscribers`
//! (all-or-nothing, bad rows named by line) and dialplan reload (SIGHUP / `tongdai
//! reload`) that never disturbs calls in progress.

use std::time::Duration;

use crate::support;
use crate::support::client::Client;
use crate::support::process::tongdai;
use crate::support::{Service, Transport, prompt_ids, sipp};

const ADMIN_TOKEN: &str = "td_ops_admin_test_token";

#[tokio::test]
async fn import_subscribers_loads_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let env = [("TONGDAI__DATABASE__URL", url.as_str())];
    let sample = support::repo().join("tests/data/subscribers-sample.csv");
    let (ok, out) = tongdai(&["import", "subscribers", sample.to_str().unwrap()], &env);
    assert!(ok, "{out}");
    assert!(out.contains("10 rows"), "{out}");

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "msisdn,plan,charge_per_cycle_vnd,list_source\n0912000001,postpaid,400000,sms\n0912000002,gold,400000,sms\n",
    )
    .expect("write");
    let (ok, out) = tongdai(&["import", "subscribers", bad.to_str().unwrap()], &env);
    assert!(!ok, "{out}");
    assert!(
        out.contains("line 3"),
        "the bad row is named by its line: {out}"
    );
    let store = tongdai::store::Store::connect(&url).await.expect("store");
    assert_eq!(
        store.subscriber_count().await.expect("count"),
        10,
        "nothing half-loaded"
    );
    assert!(store.subscriber("+84912000001").await.expect("q").is_none());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_dialplans_without_touching_calls_in_progress() {
    let plans = tempfile::tempdir().expect("tmp");
    for f in ["9090.toml", "demo.toml"] {
        std::fs::copy(
            support::repo().join("dialplans").join(f),
            plans.path().join(f),
        )
        .expect("copy");
    }
    // `tongdai reload` needs an admin token (POST /reload is admin-only).
    let svc = Service::start(&format!(
        "[dialplans]\ndir = \"{}\"\n[rtp]\ninactivity_timeout = \"300s\"\n\
         [[api.tokens]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        plans.path().display(),
        tongdai::api::hash_token(ADMIN_TOKEN)
    ))
    .await;
    // A call in progress on the old plan (it waits for a key on the welcome menu).
    let mut old_call = Client::new(svc.sip_addr()).await;
    old_call.call_until_200().await;
    old_call.ack().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // New plan: the demo number now says goodbye at once.
    std::fs::write(
        plans.path().join("demo.toml"),
        "[dialplan]\nname = \"demo v2\"\nnumbers = [\"9091\"]\nstart = \"bye\"\n[node.bye]\nplay = [\"goodbye\"]\nhangup = true\n",
    )
    .expect("write");
    // Through the CLI, as an operator would (POST /reload on http.listen).
    let http = svc.app.http_addr.to_string();
    // Without the token the service refuses.
    let (ok, out) = tongdai(
        &["reload", "--token", "td_wrong"],
        &[("TONGDAI__HTTP__LISTEN", http.as_str())],
    );
    assert!(!ok && out.contains("unauthorized"), "{out}");
    let (ok, out) = tongdai(
        &["reload"],
        &[
            ("TONGDAI__HTTP__LISTEN", http.as_str()),
            ("TONGDAI_TOKEN", ADMIN_TOKEN),
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("\"reloaded\":2"), "{out}");

    let run = sipp(
        "reload_new_call",
        "uac_no_digit.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    let calls = svc.wait_calls(1).await;
    assert_eq!(calls[0].dialplan.as_deref(), Some("demo v2"));
    assert_eq!(prompt_ids(&calls[0]), vec!["goodbye"]);

    // The old call still runs the old plan: a key is read back.
    let info = old_call.in_dialog(
        "INFO",
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=4\r\nDuration=160\r\n",
    );
    old_call.send(&info).await;
    let bye = old_call
        .expect(Duration::from_secs(30), |m| m.is_request("BYE"))
        .await;
    old_call.answer_bye(&bye).await;
    let calls = svc.wait_calls(2).await;
    let old = calls
        .iter()
        .find(|c| c.dialplan.as_deref() == Some("demo"))
        .expect("old call");
    assert_eq!(old.digits, "4");
    assert!(prompt_ids(old).contains(&"digit_4"), "{old:?}");

    // A broken edit is refused and the running plans stay.
    std::fs::write(
        plans.path().join("demo.toml"),
        "[dialplan]\nstart = \"nowhere\"\n",
    )
    .expect("write");
    let err = svc.app.reload().expect_err("broken plan refused");
    assert!(err.to_string().contains("demo.toml"), "{err}");
    let (ok, out) = tongdai(
        &["reload"],
        &[
            ("TONGDAI__HTTP__LISTEN", http.as_str()),
            ("TONGDAI_TOKEN", ADMIN_TOKEN),
        ],
    );
    assert!(!ok && out.contains("demo.toml"), "{out}");
    let run = sipp(
        "reload_after_broken",
        "uac_no_digit.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    let calls = svc.wait_calls(3).await;
    assert_eq!(calls[2].dialplan.as_deref(), Some("demo v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_node_refers_the_caller_and_hangs_up_when_connected() {
    let plans = tempfile::tempdir().expect("tmp");
    std::fs::write(
        plans.path().join("agent.toml"),
        "[dialplan]\nname = \"agent\"\nnumbers = [\"9091\"]\nstart = \"agent\"\n\
[vars]\nagents = \"18001090\"\n\
[node.agent]\nplay = [\"transfer_agent\"]\ntransfer = \"{{agents}}\"\n",
    )
    .expect("write");
    let svc = Service::start(&format!(
        "[dialplans]\ndir = \"{}\"\n[rtp]\ninactivity_timeout = \"300s\"\n",
        plans.path().display()
    ))
    .await;
    let run = sipp(
        "transfer",
        "uac_transfer.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    let refer = run
        .messages
        .split("\n\n")
        .find(|m| m.contains("REFER sip:"))
        .expect("REFER received by SIPp");
    assert!(refer.contains("Refer-To: <sip:18001090@"), "{refer}");
    let calls = svc.wait_calls(1).await;
    assert_eq!(calls[0].end_reason, "transferred", "{:?}", calls[0]);
    assert_eq!(prompt_ids(&calls[0]), vec!["transfer_agent"]);
}
