//! The registration store, run on SQLite and on PostgreSQL (`<test>::sqlite`,
//! `<test>::postgres`). See `support::store` for how each test gets a fresh database.

use std::path::Path;
use std::time::Instant;

use jiff::Timestamp;
use jiff::civil::{Date, date};
use tongdai::store::{
    CallDirection, CallRecordRow, Disposition, ImportError, NewRegistration, QueueStatus,
    RegisterOutcome, Registration, Store, StoreError,
};
use tongdai_domain::program::{
    Channel, Eligibility, Group, Plan, ProgramConfig, Status, Subscriber, Window,
};

use crate::support::store::TestDb;

on_both_backends!(
    connects_and_migrates_idempotently,
    subscribers_round_trip,
    registers_group_one_and_feeds_vinmec_queue,
    registration_outcomes,
    invalid_requests_are_errors,
    cap_is_exact_under_concurrency,
    cap_is_exact_across_two_stores,
    same_number_race_yields_one_row,
    cancelled_registration_keeps_its_place,
    status_lifecycle_and_events,
    import_sample_then_reimport,
    import_rejects_bad_rows_and_writes_nothing,
    import_bom_and_diacritics,
    call_records_round_trip,
);

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/subscribers-sample.csv"
);

fn now() -> Timestamp {
    "2021-11-27T03:00:00Z".parse().expect("valid timestamp")
}

fn in_window() -> Date {
    date(2021, 11, 27)
}

fn hotline(msisdn: &str) -> NewRegistration {
    NewRegistration {
        msisdn: msisdn.to_owned(),
        group: Group::One,
        channel: Channel::Hotline,
        specialty: Some(1),
        call_id: Some(format!("call-{msisdn}")),
        name: None,
        fanpage_ref: None,
    }
}

fn fanpage(msisdn: &str) -> NewRegistration {
    NewRegistration {
        msisdn: msisdn.to_owned(),
        group: Group::Two,
        channel: Channel::Fanpage,
        specialty: None,
        call_id: None,
        name: Some("Đỗ Thị Mai".into()),
        fanpage_ref: Some("fb-comment-42".into()),
    }
}

fn registered(o: RegisterOutcome) -> Registration {
    match o {
        RegisterOutcome::Registered(r) => r,
        other => panic!("expected Registered, got {other:?}"),
    }
}

/// Writes a CSV of `n` eligible numbers (0909xxxxxx) and imports it.
async fn seed_eligible(store: &Store, dir: &Path, n: usize) -> Vec<String> {
    let numbers: Vec<String> = (0..n).map(|i| format!("0909{i:06}")).collect();
    let mut csv = String::from("msisdn,plan,charge_per_cycle_vnd,list_source\n");
    for m in &numbers {
        csv.push_str(&format!("{m},postpaid,400000,sms\n"));
    }
    let path = dir.join("eligible.csv");
    std::fs::write(&path, csv).expect("write csv");
    let report = store
        .import_subscribers_csv(&path, Timestamp::now())
        .await
        .expect("import");
    assert_eq!(report.inserted, n);
    numbers
}

async fn connects_and_migrates_idempotently(db: &TestDb) {
    if let Some(file) = db.sqlite_file() {
        assert!(file.exists(), "SQLite file and its directory are created");
        assert_eq!(db.store.backend().as_str(), "sqlite");
    } else {
        assert_eq!(db.store.backend().as_str(), "postgres");
    }
    // Connecting again runs the (already applied) migrations again: a no-op.
    let again = db.another_store().await;
    assert_eq!(again.registered_count().await.expect("count"), 0);
    assert_eq!(again.registration_rows().await.expect("rows"), 0);
    again.close().await;
    assert!(matches!(
        Store::connect("mysql://x").await,
        Err(StoreError::InvalidUrl(_))
    ));
}

async fn subscribers_round_trip(db: &TestDb) {
    let s = &db.store;
    let mut sub = Subscriber {
        msisdn: "0903 123 678".into(),
        plan: Plan::Postpaid,
        charge_per_cycle_vnd: 450_000,
        list_source: "sms".into(),
        name: Some("Nguyễn Thị Hồng Nhung".into()),
        imported_at: now(),
        import_batch: Some("manual".into()),
    };
    s.upsert_subscriber(&sub).await.expect("upsert");
    let got = s
        .subscriber("+84903123678")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(got.msisdn, "+84903123678");
    assert_eq!(got.name.as_deref(), Some("Nguyễn Thị Hồng Nhung"));
    assert_eq!(got.imported_at, now());
    assert_eq!(got.charge_per_cycle_vnd, 450_000);
    sub.plan = Plan::Prepaid;
    sub.name = None;
    s.upsert_subscriber(&sub).await.expect("upsert again");
    let got = s
        .subscriber("84903123678")
        .await
        .expect("read")
        .expect("present");
    assert_eq!((got.plan, got.name), (Plan::Prepaid, None));
    assert_eq!(s.subscriber_count().await.expect("count"), 1);
    assert_eq!(s.subscriber("0913000000").await.expect("read"), None);
    assert!(matches!(
        s.subscriber("12").await,
        Err(StoreError::InvalidMsisdn(_))
    ));
}

async fn registers_group_one_and_feeds_vinmec_queue(db: &TestDb) {
    let s = &db.store;
    s.import_subscribers_csv(Path::new(SAMPLE), Timestamp::now())
        .await
        .expect("import sample");
    let cfg = ProgramConfig::default();
    let reg = registered(
        s.register(hotline("0901 000 001"), &cfg, in_window(), now())
            .await
            .expect("register"),
    );
    assert_eq!(reg.msisdn, "+84901000001");
    assert_eq!(
        (reg.group, reg.channel, reg.status),
        (Group::One, Channel::Hotline, Status::Registered)
    );
    assert_eq!(reg.specialty, Some(1));
    assert_eq!(reg.created_at, now());
    let stored = s
        .registration_by_msisdn("+84901000001")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored, reg);

    let entry = s
        .vinmec_entry(reg.id)
        .await
        .expect("read queue")
        .expect("queued");
    assert_eq!(entry.queue.status, QueueStatus::Waiting);
    assert_eq!(entry.enqueued_at, now());
    assert_eq!(entry.queue.appointment_at, None);

    let events = s.events(reg.id).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].from_status, None);
    assert_eq!(events[0].to_status, Status::Registered);
    assert_eq!(events[0].actor, "ivr");
    assert!(
        events[0].detail.contains("call-0901 000 001"),
        "{}",
        events[0].detail
    );
    assert_eq!(s.registered_count().await.expect("count"), 1);

    // Group 2 (fanpage) needs no list entry.
    let reg2 = registered(
        s.register(fanpage("0988 765 432"), &cfg, in_window(), now())
            .await
            .expect("register fanpage"),
    );
    assert_eq!(reg2.group, Group::Two);
    assert_eq!(reg2.name.as_deref(), Some("Đỗ Thị Mai"));
    assert_eq!(reg2.fanpage_ref.as_deref(), Some("fb-comment-42"));
    assert_eq!(
        s.events(reg2.id).await.expect("events")[0].actor,
        "fanpage_staff"
    );
    assert!(s.vinmec_entry(reg2.id).await.expect("queue").is_some());
    assert_eq!(s.registered_count().await.expect("count"), 2);
}

async fn registration_outcomes(db: &TestDb) {
    let s = &db.store;
    s.import_subscribers_csv(Path::new(SAMPLE), Timestamp::now())
        .await
        .expect("import sample");
    let cfg = ProgramConfig::default();
    use Eligibility::*;
    let cases = [
        ("0901000004", RegisterOutcome::NotEligible(ChargeTooLow)),
        ("0901000005", RegisterOutcome::NotEligible(NotPostpaid)),
        ("0771000006", RegisterOutcome::NotEligible(NotOnList)),
        ("0561000008", RegisterOutcome::NotEligible(ChargeTooLow)),
        ("0981000010", RegisterOutcome::NotEligible(NotOnList)),
        ("0912345678", RegisterOutcome::NotEligible(NotOnList)),
    ];
    for (m, want) in cases {
        let got = s
            .register(hotline(m), &cfg, in_window(), now())
            .await
            .expect("register");
        assert_eq!(got, want, "{m}");
    }
    let window_cases = [
        (date(2021, 11, 25), Window::NotOpen),
        (date(2021, 12, 26), Window::Closed),
    ];
    for (day, want) in window_cases {
        let got = s
            .register(hotline("0901000002"), &cfg, day, now())
            .await
            .expect("register");
        assert_eq!(got, RegisterOutcome::OutsideWindow(want), "{day}");
        let got = s
            .register(fanpage("0988000001"), &cfg, day, now())
            .await
            .expect("register");
        assert_eq!(got, RegisterOutcome::OutsideWindow(want), "fanpage {day}");
    }
    assert_eq!(
        s.registered_count().await.expect("count"),
        0,
        "refusals take no place"
    );
    assert_eq!(s.registration_rows().await.expect("rows"), 0);

    // Both ends of the window are inclusive.
    let first = registered(
        s.register(hotline("0901000002"), &cfg, date(2021, 11, 26), now())
            .await
            .expect("register"),
    );
    registered(
        s.register(hotline("0831000009"), &cfg, date(2021, 12, 25), now())
            .await
            .expect("register"),
    );
    // Already registered wins over everything else, in any number format.
    for (req, day) in [
        (hotline("+84 901 000 002"), in_window()),
        (
            NewRegistration {
                channel: Channel::OutboundCall,
                ..hotline("84901000002")
            },
            date(2022, 1, 5),
        ),
    ] {
        match s.register(req, &cfg, day, now()).await.expect("register") {
            RegisterOutcome::AlreadyRegistered(r) => assert_eq!(r, first),
            other => panic!("expected AlreadyRegistered, got {other:?}"),
        }
    }
    let tiny = ProgramConfig {
        cap: 2,
        ..ProgramConfig::default()
    };
    assert_eq!(
        s.register(hotline("0331000007"), &tiny, in_window(), now())
            .await
            .expect("register"),
        RegisterOutcome::CapReached
    );
    assert_eq!(s.registered_count().await.expect("count"), 2);
    assert_eq!(s.registration_rows().await.expect("rows"), 2);
}

async fn invalid_requests_are_errors(db: &TestDb) {
    let s = &db.store;
    let cfg = ProgramConfig::default();
    let bad_msisdn = s.register(hotline("0903"), &cfg, in_window(), now()).await;
    assert!(
        matches!(bad_msisdn, Err(StoreError::InvalidMsisdn(_))),
        "{bad_msisdn:?}"
    );
    let wrong_channel = NewRegistration {
        channel: Channel::Hotline,
        ..fanpage("0988000001")
    };
    assert!(matches!(
        s.register(wrong_channel, &cfg, in_window(), now()).await,
        Err(StoreError::InvalidRequest(_))
    ));
    let wrong_channel = NewRegistration {
        channel: Channel::Fanpage,
        ..hotline("0988000001")
    };
    assert!(matches!(
        s.register(wrong_channel, &cfg, in_window(), now()).await,
        Err(StoreError::InvalidRequest(_))
    ));
    let bad_specialty = NewRegistration {
        specialty: Some(7),
        ..fanpage("0988000001")
    };
    assert!(matches!(
        s.register(bad_specialty, &cfg, in_window(), now()).await,
        Err(StoreError::UnknownSpecialty(7))
    ));
    assert_eq!(s.registration_rows().await.expect("rows"), 0);
}

async fn run_concurrently(
    stores: &[Store],
    numbers: &[String],
    cfg: &ProgramConfig,
) -> (usize, usize) {
    let mut tasks = Vec::new();
    for (i, m) in numbers.iter().enumerate() {
        let store = stores[i % stores.len()].clone();
        let cfg = cfg.clone();
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            store.register(hotline(&m), &cfg, in_window(), now()).await
        }));
    }
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(RegisterOutcome::Registered(_)) => ok += 1,
            Ok(RegisterOutcome::CapReached) => full += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    (ok, full)
}

async fn cap_is_exact_under_concurrency(db: &TestDb) {
    let s = &db.store;
    let dir = db.scratch();
    let numbers = seed_eligible(s, dir.path(), 600).await;
    let cfg = ProgramConfig::default();
    let t0 = Instant::now();
    let (ok, full) = run_concurrently(std::slice::from_ref(s), &numbers, &cfg).await;
    eprintln!(
        "{:?}: 600 concurrent registrations in {:?}",
        s.backend(),
        t0.elapsed()
    );
    assert_eq!((ok, full), (500, 100));
    assert_eq!(s.registered_count().await.expect("count"), 500);
    assert_eq!(s.registration_rows().await.expect("rows"), 500);
}

async fn cap_is_exact_across_two_stores(db: &TestDb) {
    let dir = db.scratch();
    let numbers = seed_eligible(&db.store, dir.path(), 600).await;
    let other = db.another_store().await;
    let cfg = ProgramConfig::default();
    let t0 = Instant::now();
    let (ok, full) = run_concurrently(&[db.store.clone(), other.clone()], &numbers, &cfg).await;
    eprintln!(
        "{:?}: 600 registrations over two stores in {:?}",
        other.backend(),
        t0.elapsed()
    );
    assert_eq!((ok, full), (500, 100));
    assert_eq!(db.store.registered_count().await.expect("count"), 500);
    assert_eq!(other.registration_rows().await.expect("rows"), 500);
    other.close().await;
}

async fn same_number_race_yields_one_row(db: &TestDb) {
    let dir = db.scratch();
    seed_eligible(&db.store, dir.path(), 1).await;
    let other = db.another_store().await;
    let forms = ["0909000000", "+84909000000", "84909000000", "0909 000 000"];
    let cfg = ProgramConfig::default();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        let cfg = cfg.clone();
        let m = forms[i % forms.len()];
        tasks.push(tokio::spawn(async move {
            store.register(hotline(m), &cfg, in_window(), now()).await
        }));
    }
    let (mut ids, mut winners) = (Vec::new(), 0);
    for t in tasks {
        match t.await.expect("task").expect("register") {
            RegisterOutcome::Registered(r) => {
                winners += 1;
                ids.push(r.id);
            }
            RegisterOutcome::AlreadyRegistered(r) => ids.push(r.id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners, 1);
    ids.dedup();
    assert_eq!(ids.len(), 1, "everyone sees the same registration");
    assert_eq!(db.store.registration_rows().await.expect("rows"), 1);
    assert_eq!(
        db.store.registered_count().await.expect("count"),
        1,
        "losers gave their place back"
    );
    other.close().await;
}

async fn cancelled_registration_keeps_its_place(db: &TestDb) {
    let s = &db.store;
    let cfg = ProgramConfig {
        cap: 2,
        ..ProgramConfig::default()
    };
    let a = registered(
        s.register(fanpage("0988000001"), &cfg, in_window(), now())
            .await
            .expect("a"),
    );
    registered(
        s.register(fanpage("0988000002"), &cfg, in_window(), now())
            .await
            .expect("b"),
    );
    s.set_status(a.id, Status::Cancelled, "cskh:lan", "customer asked", now())
        .await
        .expect("cancel");
    assert_eq!(
        s.register(fanpage("0988000003"), &cfg, in_window(), now())
            .await
            .expect("c"),
        RegisterOutcome::CapReached
    );
    assert_eq!(s.registered_count().await.expect("count"), 2);
    // The cancelled number cannot register again either: one registration per number.
    assert!(matches!(
        s.register(fanpage("0988000001"), &cfg, in_window(), now()).await.expect("again"),
        RegisterOutcome::AlreadyRegistered(r) if r.status == Status::Cancelled
    ));
}

async fn status_lifecycle_and_events(db: &TestDb) {
    let s = &db.store;
    let cfg = ProgramConfig::default();
    let r = registered(
        s.register(fanpage("0988000001"), &cfg, in_window(), now())
            .await
            .expect("reg"),
    );
    let later = |min: i64| now() + jiff::SignedDuration::from_mins(min);
    let steps = [
        (Status::SentToVinmec, "cskh:batch", "list of 27/11"),
        (Status::Unreachable, "vinmec:thu", "no answer x3"),
        (Status::SentToVinmec, "vinmec:thu", "retry"),
        (
            Status::AppointmentBooked,
            "vinmec:thu",
            "2021-11-29 09:00 phone",
        ),
        (Status::Consulted, "vinmec:dr.hai", "report sent"),
        (Status::Surveyed, "cskh:survey", "satisfied"),
    ];
    for (i, (to, actor, detail)) in steps.iter().enumerate() {
        let got = s
            .set_status(r.id, *to, actor, detail, later(i as i64 + 1))
            .await
            .expect("transition");
        assert_eq!(got.status, *to);
        assert_eq!(got.updated_at, later(i as i64 + 1));
        assert_eq!(got.created_at, r.created_at);
    }
    let stored = s
        .registration_by_msisdn("0988000001")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(stored.status, Status::Surveyed);

    let events = s.events(r.id).await.expect("events");
    assert_eq!(events.len(), steps.len() + 1);
    let mut from = Status::Registered;
    for (e, (to, actor, detail)) in events[1..].iter().zip(steps.iter()) {
        assert_eq!((e.from_status, e.to_status), (Some(from), *to));
        assert_eq!((e.actor.as_str(), e.detail.as_str()), (*actor, *detail));
        from = *to;
    }
    // Terminal: nothing leaves Surveyed.
    match s
        .set_status(r.id, Status::Cancelled, "x", "", later(99))
        .await
    {
        Err(StoreError::InvalidTransition { from, to, .. }) => {
            assert_eq!((from, to), (Status::Surveyed, Status::Cancelled))
        }
        other => panic!("expected InvalidTransition, got {other:?}"),
    }
    assert_eq!(s.events(r.id).await.expect("events").len(), steps.len() + 1);
    assert!(matches!(
        s.set_status(999_999, Status::SentToVinmec, "x", "", now())
            .await,
        Err(StoreError::NotFound { .. })
    ));

    // Cancelling takes the entry off Vinmec's list.
    let r2 = registered(
        s.register(fanpage("0988000002"), &cfg, in_window(), now())
            .await
            .expect("reg"),
    );
    assert!(matches!(
        s.set_status(r2.id, Status::Consulted, "x", "", now()).await,
        Err(StoreError::InvalidTransition { .. })
    ));
    s.set_status(r2.id, Status::Cancelled, "cskh:lan", "", later(1))
        .await
        .expect("cancel");
    let entry = s
        .vinmec_entry(r2.id)
        .await
        .expect("queue")
        .expect("present");
    assert_eq!(entry.queue.status, QueueStatus::Cancelled);
    assert_eq!(entry.updated_at, later(1));
}

async fn import_sample_then_reimport(db: &TestDb) {
    let s = &db.store;
    let report = s
        .import_subscribers_csv(Path::new(SAMPLE), Timestamp::now())
        .await
        .expect("import");
    assert_eq!((report.rows, report.inserted, report.updated), (10, 10, 0));
    assert!(
        report.batch.starts_with("subscribers-sample.csv@"),
        "{}",
        report.batch
    );
    let sub = s
        .subscriber("0831000009")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(sub.name.as_deref(), Some("Hoàng, Thị Lan"));
    assert_eq!(sub.list_source, "sms");
    assert_eq!(sub.import_batch.as_deref(), Some(report.batch.as_str()));
    assert_eq!(
        s.subscriber("0331000007")
            .await
            .expect("read")
            .expect("present")
            .name,
        None
    );
    let report = s
        .import_subscribers_csv(Path::new(SAMPLE), Timestamp::now())
        .await
        .expect("reimport");
    assert_eq!((report.rows, report.inserted, report.updated), (10, 0, 10));
    assert_eq!(s.subscriber_count().await.expect("count"), 10);
}

async fn import_rejects_bad_rows_and_writes_nothing(db: &TestDb) {
    let s = &db.store;
    s.import_subscribers_csv(Path::new(SAMPLE), Timestamp::now())
        .await
        .expect("import");
    let before = s.subscriber("0901000001").await.expect("read");
    let dir = db.scratch();
    let head = "msisdn,plan,charge_per_cycle_vnd,list_source,name\n";
    // Row 2 would update an existing subscriber, row 3 is new: neither may land.
    let good = "0901000001,prepaid,1,sms,Changed\n0912000001,postpaid,500000,sms,New\n";
    let cases = [
        (
            "0912000002,postpaid,500000,sms,X\n0903,postpaid,1,sms,X\n",
            5,
            "msisdn",
        ),
        ("0912000002,weekly,1,sms,X\n", 4, "plan"),
        ("0912000002,postpaid,-1,sms,X\n", 4, "charge_per_cycle_vnd"),
        ("0912000002,postpaid,abc,sms,X\n", 4, "charge_per_cycle_vnd"),
        ("0912000002,postpaid,1, ,X\n", 4, "list_source"),
        (
            "+84 912 000 001,postpaid,1,sms,Dup\n",
            4,
            "already on line 3",
        ),
        ("0912000002,postpaid\n", 4, "fields"),
    ];
    for (i, (bad, line, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.csv"));
        std::fs::write(&path, format!("{head}{good}{bad}")).expect("write");
        match s.import_subscribers_csv(&path, Timestamp::now()).await {
            Err(ImportError::Row { line: got, problem }) => {
                assert_eq!(got, *line as u64, "{bad}: {problem}");
                assert!(problem.contains(needle), "{bad}: {problem}");
            }
            other => panic!("{bad}: expected a row error, got {other:?}"),
        }
        assert_eq!(s.subscriber_count().await.expect("count"), 10, "{bad}");
        assert_eq!(
            s.subscriber("0901000001").await.expect("read"),
            before,
            "{bad}"
        );
    }
    let path = dir.path().join("header.csv");
    std::fs::write(&path, "phone,plan\n0912000002,postpaid\n").expect("write");
    assert!(matches!(
        s.import_subscribers_csv(&path, Timestamp::now()).await,
        Err(ImportError::Header { .. })
    ));
    assert!(matches!(
        s.import_subscribers_csv(&dir.path().join("missing.csv"), Timestamp::now())
            .await,
        Err(ImportError::Io { .. })
    ));
    assert_eq!(s.subscriber_count().await.expect("count"), 10);
}

async fn import_bom_and_diacritics(db: &TestDb) {
    let s = &db.store;
    let dir = db.scratch();
    let path = dir.path().join("bom.csv");
    let names = [
        "Nguyễn Thị Thúy Hằng",
        "Trịnh Đức Mạnh",
        "Phùng Thị Ngọc Ánh",
    ];
    let mut text = String::from("\u{feff}MSISDN,Plan,Charge_Per_Cycle_VND,List_Source,Name\r\n");
    for (i, n) in names.iter().enumerate() {
        text.push_str(&format!("0932{i:06},postpaid,310000,sms,{n}\r\n"));
    }
    std::fs::write(&path, text).expect("write");
    let report = s
        .import_subscribers_csv(&path, Timestamp::now())
        .await
        .expect("BOM file imports");
    assert_eq!(report.inserted, 3);
    for (i, n) in names.iter().enumerate() {
        let got = s
            .subscriber(&format!("0932{i:06}"))
            .await
            .expect("read")
            .expect("present");
        assert_eq!(got.name.as_deref(), Some(*n));
    }
}

async fn call_records_round_trip(db: &TestDb) {
    let s = &db.store;
    let t = |sec: i64| now() + jiff::SignedDuration::from_secs(sec);
    let full = CallRecordRow {
        call_id: "a84b4c76e66710@pc33.9090".into(),
        direction: CallDirection::Inbound,
        caller: Some("+84901000001".into()),
        called: Some("9090".into()),
        started_at: t(0),
        answered_at: Some(t(2)),
        ended_at: Some(t(95)),
        final_status: Some(200),
        disposition: Disposition::Answered,
        end_reason: "remote_bye".into(),
        digits: "112".into(),
        ivr_path: vec![
            "welcome".into(),
            "menu".into(),
            "specialty".into(),
            "confirm".into(),
        ],
        prompts: vec!["vi/welcome".into(), "vi/menu".into(), "vi/thanks".into()],
        campaign_id: None,
        attempt_id: None,
    };
    let sparse = CallRecordRow {
        call_id: "out-7-1".into(),
        direction: CallDirection::Outbound,
        caller: Some("9090".into()),
        called: Some("anonymous".into()),
        started_at: t(10),
        answered_at: None,
        ended_at: Some(t(40)),
        final_status: Some(486),
        disposition: Disposition::from_sip_status(486),
        end_reason: String::new(),
        digits: String::new(),
        ivr_path: vec![],
        prompts: vec![],
        campaign_id: Some(7),
        attempt_id: Some(1),
    };
    s.insert_call_record(&full).await.expect("insert");
    s.insert_call_record(&sparse).await.expect("insert");
    assert_eq!(
        s.call_record(&full.call_id).await.expect("read"),
        Some(full.clone())
    );
    assert_eq!(
        s.call_record("out-7-1").await.expect("read"),
        Some(sparse.clone())
    );
    assert_eq!(s.call_record("nope").await.expect("read"), None);
    assert_eq!(
        s.call_records(10).await.expect("list"),
        vec![sparse.clone(), full.clone()],
        "newest first"
    );
    assert_eq!(s.call_records(1).await.expect("list"), vec![sparse.clone()]);
    assert!(s.call_records(-5).await.expect("list").is_empty());
    assert!(matches!(
        s.insert_call_record(&full).await,
        Err(StoreError::DuplicateCallRecord(_))
    ));
}
