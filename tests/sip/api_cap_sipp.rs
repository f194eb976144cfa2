//! One cap across channels, on SQLite and PostgreSQL: the fanpage intake (HTTP) takes
//! all places but one, a subscriber takes the last one by keypad on 9090 (SIPp, RFC
//! 4733), and the next fanpage registration is refused with `cap_full`.

use crate::support;
use crate::support::api::{Api, Db};
use crate::support::{Transport, prompt_frames, prompt_ids, sipp_to};
use hyper::http::StatusCode;
use tongdai_domain::program::{Plan, Subscriber};

const CALLER: &str = "0903123678";

api_on_both_backends!(the_cap_is_shared_by_fanpage_and_phone);

async fn the_cap_is_shared_by_fanpage_and_phone(db: Db) {
    let api = Api::start(db, "[program]\ncap = 3\n").await;
    api.svc
        .app
        .store
        .upsert_subscriber(&Subscriber {
            msisdn: CALLER.into(),
            plan: Plan::Postpaid,
            charge_per_cycle_vnd: 450_000,
            list_source: "sms".into(),
            name: None,
            imported_at: jiff::Timestamp::now(),
            import_batch: None,
        })
        .await
        .expect("subscriber");
    // cap - 1 through the API.
    api.fanpage("0912000001").await;
    api.fanpage("0912000002").await;
    let cap = api
        .get("/api/v1/supervisor/registrations", "supervisor")
        .await
        .json();
    assert_eq!(
        (cap["used"].as_u64(), cap["left"].as_u64()),
        (Some(2), Some(1))
    );

    // The last place by phone: 1 (register), 2 (diagnostic imaging), 1 (confirm).
    let out = support::repo()
        .join("tests/out")
        .join(format!("api_cap_{db:?}_keys"));
    std::fs::create_dir_all(&out).expect("out dir");
    let keys = support::pcap::key_presses(&out, "121", 101);
    let wait1 = (u64::from(prompt_frames("reg_greeting")) * 20 + 1_500).to_string();
    let k: Vec<String> = keys.iter().map(|p| p.display().to_string()).collect();
    let run = sipp_to(
        "9090",
        &format!("api_cap_{db:?}"),
        "uac_keys_rfc4733.xml",
        api.svc.sip_addr(),
        Transport::Udp,
        &[
            "-set", "caller", CALLER, "-set", "wait1", &wait1, "-set", "wait2", "1500", "-set",
            "wait3", "1500", "-key", "key1", &k[0], "-key", "key2", &k[1], "-key", "key3", &k[2],
        ],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    let calls = api.svc.wait_calls(1).await;
    let ids = prompt_ids(&calls[0]);
    assert!(
        ids.contains(&"reg_success"),
        "the caller took the last place: {ids:?}"
    );

    // The API now gets cap_full, and the supervisors see the cap used up by channel.
    let r = api
        .post(
            "/api/v1/fanpage/registrations",
            "fanpage",
            r#"{"msisdn":"0912000003","name":"Phạm Văn Đức","specialty":1,"fanpage_ref":"post-3"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.error().0, "cap_full");
    let cap = api
        .get("/api/v1/supervisor/registrations", "supervisor")
        .await
        .json();
    assert_eq!(cap["cap"], 3);
    assert_eq!(cap["used"], 3);
    assert_eq!(cap["left"], 0);
    assert_eq!(cap["by_channel"]["fanpage"], 2);
    assert_eq!(cap["by_channel"]["hotline"], 1);
    assert_eq!(cap["by_status"]["registered"], 3);
    // The phone registration is in Vinmec's queue like the others, number in full.
    let q = api
        .get("/api/v1/vinmec/queue?channel=hotline", "vinmec")
        .await
        .json();
    assert_eq!(q["total"], 1);
    assert_eq!(q["items"][0]["msisdn_national"], CALLER);
    assert_eq!(q["items"][0]["specialty"], 2);
    api.stop().await;
}
