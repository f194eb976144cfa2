//! The handbook links in the store, on SQLite and PostgreSQL: one token per
//! registration, the same every time it is asked for, unguessable in shape; opens
//! counted only when the caller says they count.

use jiff::Timestamp;
use jiff::civil::date;
use tongdai::store::{HandbookStats, HandbookVisit, NewRegistration, RegisterOutcome, StoreError};
use tongdai_domain::program::{Channel, Group, ProgramConfig};

use crate::support::store::TestDb;

on_both_backends!(
    one_token_per_registration_the_same_each_time,
    opens_are_counted_only_when_they_count,
);

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

async fn register(db: &TestDb, msisdn: &str, name: Option<&str>) -> i64 {
    let outcome = db
        .store
        .register(
            NewRegistration {
                msisdn: msisdn.to_owned(),
                group: Group::Two,
                channel: Channel::Fanpage,
                specialty: None,
                call_id: None,
                name: name.map(str::to_owned),
                fanpage_ref: Some("post-1".into()),
            },
            &ProgramConfig::default(),
            date(2021, 11, 27),
            at("2021-11-27T03:00:00Z"),
        )
        .await
        .expect("register");
    match outcome {
        RegisterOutcome::Registered(r) => r.id,
        other => panic!("expected Registered, got {other:?}"),
    }
}

async fn one_token_per_registration_the_same_each_time(db: &TestDb) {
    let s = &db.store;
    let a = register(db, "0901000001", Some("Đỗ Thị Mai")).await;
    let b = register(db, "0901000002", None).await;
    let now = at("2021-11-27T03:01:00Z");
    let ta = s.handbook_token(a, now).await.expect("token a");
    let tb = s.handbook_token(b, now).await.expect("token b");
    assert_ne!(ta, tb);
    for t in [&ta, &tb] {
        assert_eq!(t.len(), 22, "{t}");
        assert!(
            t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{t}"
        );
    }
    assert_eq!(s.handbook_token(a, now).await.expect("again"), ta);
    assert!(matches!(
        s.handbook_token(9_999, now).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        s.handbook_stats().await.expect("stats"),
        HandbookStats {
            links: 2,
            opened: 0,
            opens: 0
        }
    );
}

async fn opens_are_counted_only_when_they_count(db: &TestDb) {
    let s = &db.store;
    let id = register(db, "0901000003", Some("Nguyễn Văn An")).await;
    let token = s
        .handbook_token(id, at("2021-11-27T03:01:00Z"))
        .await
        .expect("token");
    assert_eq!(
        s.handbook_opens(id).await.expect("opens"),
        Some((None, None, 0))
    );
    // A previewer's fetch: found, not counted.
    let seen = s
        .visit_handbook(&token, false, at("2021-11-27T04:00:00Z"))
        .await
        .expect("visit");
    assert_eq!(
        seen,
        Some(HandbookVisit {
            name: Some("Nguyễn Văn An".into())
        })
    );
    assert_eq!(
        s.handbook_opens(id).await.expect("opens"),
        Some((None, None, 0))
    );
    for t in ["2021-11-28T01:00:00Z", "2021-12-02T09:30:00Z"] {
        s.visit_handbook(&token, true, at(t))
            .await
            .expect("visit")
            .expect("found");
    }
    assert_eq!(
        s.handbook_opens(id).await.expect("opens"),
        Some((
            Some(at("2021-11-28T01:00:00Z")),
            Some(at("2021-12-02T09:30:00Z")),
            2
        ))
    );
    assert_eq!(
        s.visit_handbook("AAAAAAAAAAAAAAAAAAAAAA", true, at("2021-12-03T00:00:00Z"))
            .await
            .expect("visit"),
        None
    );
    assert_eq!(
        s.handbook_stats().await.expect("stats"),
        HandbookStats {
            links: 1,
            opened: 1,
            opens: 2
        }
    );
}
