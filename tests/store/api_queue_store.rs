//! The Vinmec queue's store operations under concurrency, on SQLite and PostgreSQL:
//! schedulers claiming at once from two service processes (two stores) never get the
//! same entry, and concurrent changes to one entry apply exactly once.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::date;
use tongdai::store::{
    Idempotent, NewRegistration, QueueAction, RegisterOutcome, Store, StoreError,
};
use tongdai_domain::program::{Channel, Group, ProgramConfig, Status};

use crate::support::store::TestDb;

on_both_backends!(claimers_never_share_an_entry, one_change_wins_a_race);

fn now() -> Timestamp {
    "2021-11-27T03:00:00Z".parse().expect("ts")
}

async fn register(store: &Store, n: usize) -> Vec<i64> {
    let cfg = ProgramConfig::default();
    let mut ids = Vec::new();
    for i in 0..n {
        let outcome = store
            .register(
                NewRegistration {
                    msisdn: format!("0903{i:06}"),
                    group: Group::Two,
                    channel: Channel::Fanpage,
                    specialty: Some(1),
                    call_id: None,
                    name: Some("Khách".into()),
                    fanpage_ref: Some(format!("p{i}")),
                },
                &cfg,
                date(2021, 11, 27),
                now(),
            )
            .await
            .expect("register");
        match outcome {
            RegisterOutcome::Registered(r) => ids.push(r.id),
            other => panic!("{other:?}"),
        }
    }
    ids
}

async fn claimers_never_share_an_entry(db: &TestDb) {
    const ENTRIES: usize = 24;
    let ids = register(&db.store, ENTRIES).await;
    let other = db.another_store().await;
    let lease = Duration::from_secs(900);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = if w % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let Idempotent::Done(got) = store
                    .vinmec_claim_next(2, lease, &format!("s{w}"), now(), None)
                    .await
                    .expect("claim")
                else {
                    panic!("no key: nothing to replay");
                };
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.iter().map(|i| i.registration.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), ENTRIES, "each entry claimed once: {all:?}");
    assert_eq!(unique, ids.into_iter().collect());
    for id in unique {
        let events = db.store.events(id).await.expect("events");
        assert_eq!(events.iter().filter(|e| e.action == "claim").count(), 1);
        assert_eq!(
            events.last().map(|e| e.to_status),
            Some(Status::SentToVinmec)
        );
    }
    other.close().await;
}

async fn one_change_wins_a_race(db: &TestDb) {
    let ids = register(&db.store, 1).await;
    let id = ids[0];
    let other = db.another_store().await;
    // Ten schedulers claim the same entry at the same instant: one holds it.
    let mut tasks = Vec::new();
    for w in 0..10 {
        let store = if w % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            store
                .vinmec_apply(
                    id,
                    &QueueAction::Claim {
                        lease: Duration::from_secs(600),
                    },
                    &format!("s{w}"),
                    now(),
                    None,
                )
                .await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => winners += 1,
            Err(StoreError::Queue(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners, 1);
    let events = db.store.events(id).await.expect("events");
    assert_eq!(events.len(), 2, "creation + one claim");
    other.close().await;
}
