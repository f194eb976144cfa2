//! The 9090 registration line end to end, with SIPp as the subscriber's phone, on SQLite
//! and on PostgreSQL: an eligible caller registers by keypad (RFC 4733), and each refusal
//! path (not on the list, already registered, cap full, outside the window) plays the
//! right prompts and writes nothing but the call record.

use crate::support;
use crate::support::store::Db;
use crate::support::{Service, Transport, prompt_frames, prompt_ids, sipp_to};
use tongdai::store::{Disposition, NewRegistration, QueueStatus, RegisterOutcome, Store};
use tongdai_domain::program::{Channel, Group, Plan, Status, Subscriber};
use tongdai_ivr::say;

const CALLER: &str = "0903123678";
const CALLER_E164: &str = "+84903123678";

/// A service on a fresh database of the given kind; `program` is a TOML `[program]` body.
async fn service(db: Db, program: &str) -> (Service, Option<support::store::TestDb>) {
    // Inside the 2021 registration window unless a test says otherwise.
    let program = if program.contains("today") {
        program.to_string()
    } else {
        format!("today = \"2021-12-01\"\n{program}")
    };
    // SIPp sends no RTP unless it replays a pcap: keep the RTP watchdog out of the way.
    let program = format!("{program}\n[rtp]\ninactivity_timeout = \"300s\"\n");
    let dir = tempfile::tempdir().expect("tmp");
    Service::start_on(db, dir, &format!("[program]\n{program}")).await
}

async fn add_subscriber(store: &Store, msisdn: &str, plan: Plan, charge: u64) {
    store
        .upsert_subscriber(&Subscriber {
            msisdn: msisdn.to_string(),
            plan,
            charge_per_cycle_vnd: charge,
            list_source: "sms".to_string(),
            name: Some("Nguyễn Văn An".to_string()),
            imported_at: jiff::Timestamp::now(),
            import_batch: None,
        })
        .await
        .expect("subscriber");
}

fn ms(frames: u32) -> u64 {
    u64::from(frames) * 20
}

async fn eligible_caller_registers_by_keypad(db: Db) {
    let (svc, pg) = service(db, "cap = 500\n").await;
    add_subscriber(&svc.app.store, CALLER_E164, Plan::Postpaid, 450_000).await;
    // Keys: 1 (register) during the main menu, 2 (diagnostic imaging), 1 (confirm).
    let out = support::repo()
        .join("tests/out")
        .join(format!("register_{db:?}_keys"));
    std::fs::create_dir_all(&out).expect("out dir");
    let keys = support::pcap::key_presses(&out, "121", 101);
    // The greeting is a play node (keys ignored): press 1 once the main menu plays.
    let wait1 = ms(prompt_frames("reg_greeting")) + 1_500;
    let (w1, w2, w3) = (wait1.to_string(), "1500".to_string(), "1500".to_string());
    let k: Vec<String> = keys.iter().map(|p| p.display().to_string()).collect();
    let run = sipp_to(
        "9090",
        &format!("register_{db:?}"),
        "uac_keys_rfc4733.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[
            "-set", "caller", CALLER, "-set", "wait1", &w1, "-set", "wait2", &w2, "-set", "wait3",
            &w3, "-key", "key1", &k[0], "-key", "key2", &k[1], "-key", "key3", &k[2],
        ],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    let calls = svc.wait_calls(1).await;
    let call = &calls[0];
    assert_eq!(call.digits, "121", "{call:?}");
    assert_eq!(call.end_reason, "local_bye");
    let ids = prompt_ids(call);
    // The exact prompts of a successful registration, barge-ins included.
    let mut expected = vec![
        "reg_greeting",
        "reg_main_menu",
        "reg_choose_specialty",
        "reg_you_chose",
        "specialty_2",
        "reg_success",
        "reg_places_left",
    ];
    let places: Vec<String> = say::say_number(499);
    expected.extend(places.iter().map(String::as_str));
    expected.push("goodbye");
    assert_eq!(ids, expected, "{call:?}");

    // The registration, its Vinmec queue entry, its event and the call record.
    let store = &svc.app.store;
    let reg = store
        .registration_by_msisdn(CALLER_E164)
        .await
        .expect("query")
        .expect("registered");
    assert_eq!(reg.group, Group::One);
    assert_eq!(reg.channel, Channel::Hotline);
    assert_eq!(reg.specialty, Some(2));
    assert_eq!(reg.status, Status::Registered);
    assert_eq!(reg.call_id.as_deref(), Some(call.call_id.as_str()));
    let entry = store
        .vinmec_entry(reg.id)
        .await
        .expect("q")
        .expect("queued for Vinmec");
    assert_eq!(entry.queue.status, QueueStatus::Waiting);
    assert_eq!(store.events(reg.id).await.expect("events").len(), 1);
    assert_eq!(store.registered_count().await.expect("count"), 1);
    let row = store
        .call_record(&call.call_id)
        .await
        .expect("q")
        .expect("call record");
    assert_eq!(row.caller.as_deref(), Some(CALLER_E164));
    assert_eq!(row.called.as_deref(), Some("9090"));
    assert_eq!(row.final_status, Some(200));
    assert_eq!(row.disposition, Disposition::Answered);
    assert_eq!(row.digits, "121");
    assert!(row.answered_at.is_some() && row.ended_at.is_some());
    for node in [
        "greet",
        "identify",
        "main_menu",
        "choose_specialty",
        "confirm",
        "register",
        "success",
        "bye",
    ] {
        assert!(
            row.ivr_path.iter().any(|n| n == node),
            "{node} in {:?}",
            row.ivr_path
        );
    }
    assert_eq!(
        row.prompts,
        ids.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
}

/// A call that presses nothing and must hear `expected` and write only its call record.
async fn refused_call(svc: &Service, name: &str, expected: &[String]) {
    let before = svc.app.store.registered_count().await.expect("count");
    // Counted before the call: SIPp may return before the call task has filed its record.
    let finished_before = svc.app.calls.finished_total();
    let run = sipp_to(
        "9090",
        name,
        "uac_no_digit.xml",
        svc.sip_addr(),
        Transport::Udp,
        &["-set", "caller", CALLER],
    )
    .await;
    assert!(run.ok(), "{name}: {}", run.explain());
    let calls = svc.wait_calls(finished_before + 1).await;
    let call = calls.last().expect("a call");
    assert_eq!(prompt_ids(call), expected, "{name}: {call:?}");
    assert_eq!(call.end_reason, "local_bye");
    let row = svc.app.store.call_record(&call.call_id).await.expect("q");
    assert!(row.is_some(), "{name}: the call record is stored");
    assert_eq!(
        svc.app.store.registered_count().await.expect("count"),
        before,
        "{name}: nothing registered"
    );
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn refusal_paths(db: Db) {
    tokio::join!(listed_and_registered(db), cap_full(db), window_closed(db));
}

async fn listed_and_registered(db: Db) {
    // Not on the target list.
    let (svc, pg) = service(db, "cap = 500\n").await;
    refused_call(
        &svc,
        &format!("not_listed_{db:?}"),
        &strings(&["reg_greeting", "reg_not_eligible", "goodbye"]),
    )
    .await;
    assert!(
        svc.app
            .store
            .registration_by_msisdn(CALLER_E164)
            .await
            .expect("q")
            .is_none()
    );
    // On the list but prepaid, or postpaid under the minimum charge: same answer.
    add_subscriber(&svc.app.store, CALLER_E164, Plan::Postpaid, 299_999).await;
    refused_call(
        &svc,
        &format!("low_charge_{db:?}"),
        &strings(&["reg_greeting", "reg_not_eligible", "goodbye"]),
    )
    .await;

    // Already registered (appointment booked): the status is told.
    add_subscriber(&svc.app.store, CALLER_E164, Plan::Postpaid, 300_000).await;
    let program = tongdai_domain::program::ProgramConfig {
        today: Some("2021-12-01".parse().expect("date")),
        ..Default::default()
    };
    let outcome = svc
        .app
        .store
        .register(
            NewRegistration {
                msisdn: CALLER.to_string(),
                group: Group::One,
                channel: Channel::OutboundCall,
                specialty: Some(6),
                call_id: None,
                name: None,
                fanpage_ref: None,
            },
            &program,
            "2021-12-01".parse().expect("date"),
            jiff::Timestamp::now(),
        )
        .await
        .expect("register");
    let RegisterOutcome::Registered(reg) = outcome else {
        panic!("{outcome:?}")
    };
    for to in [Status::SentToVinmec, Status::AppointmentBooked] {
        svc.app
            .store
            .set_status(reg.id, to, "test", "", jiff::Timestamp::now())
            .await
            .expect("status");
    }
    refused_call(
        &svc,
        &format!("duplicate_{db:?}"),
        &strings(&[
            "reg_greeting",
            "reg_already_registered",
            "reg_status_booked",
            "goodbye",
        ]),
    )
    .await;
    assert_eq!(svc.app.store.registered_count().await.expect("count"), 1);
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
}

async fn cap_full(db: Db) {
    // The places are gone: cap 1, taken by someone else.
    let (svc, pg) = service(db, "cap = 1\n").await;
    add_subscriber(&svc.app.store, CALLER_E164, Plan::Postpaid, 500_000).await;
    add_subscriber(&svc.app.store, "+84987654321", Plan::Postpaid, 500_000).await;
    let mut program = tongdai_domain::program::ProgramConfig {
        cap: 1,
        ..Default::default()
    };
    program.today = Some("2021-12-01".parse().expect("date"));
    let taken = svc
        .app
        .store
        .register(
            NewRegistration {
                msisdn: "0987654321".to_string(),
                group: Group::One,
                channel: Channel::Hotline,
                specialty: None,
                call_id: None,
                name: None,
                fanpage_ref: None,
            },
            &program,
            "2021-12-01".parse().expect("date"),
            jiff::Timestamp::now(),
        )
        .await
        .expect("register");
    assert!(matches!(taken, RegisterOutcome::Registered(_)));
    refused_call(
        &svc,
        &format!("cap_full_{db:?}"),
        &strings(&["reg_greeting", "reg_cap_full", "goodbye"]),
    )
    .await;
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
}

async fn window_closed(db: Db) {
    // After the registration window: the dates are spoken from number prompts.
    let (svc, pg) = service(db, "today = \"2021-12-26\"\n").await;
    add_subscriber(&svc.app.store, CALLER_E164, Plan::Postpaid, 500_000).await;
    let mut expected = strings(&["reg_greeting", "reg_window_closed"]);
    expected.extend(say::say_date("2021-11-26").expect("date"));
    expected.push("reg_to_date".into());
    expected.extend(say::say_date("2021-12-25").expect("date"));
    expected.push("goodbye".into());
    refused_call(&svc, &format!("window_closed_{db:?}"), &expected).await;
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
}

// One test per database, each running its calls side by side: the calls wait on prompt
// playback (real time), not on the CPU, and the test harness runs only as many tests at
// once as there are cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_line_sqlite() {
    tokio::join!(
        eligible_caller_registers_by_keypad(Db::Sqlite),
        refusal_paths(Db::Sqlite)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_line_postgres() {
    tokio::join!(
        eligible_caller_registers_by_keypad(Db::Postgres),
        refusal_paths(Db::Postgres)
    );
}
