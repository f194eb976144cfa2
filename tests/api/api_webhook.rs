//! The optional Vinmec webhook against a small real HTTP receiver, on SQLite and
//! PostgreSQL: every new registration is pushed, signed with HMAC-SHA256; a receiver
//! that fails gets retries with backoff (on the service's clock); a restart loses
//! nothing (the outbox is in the database); the receiver de-duplicates by event id.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support;
use crate::support::api::{Api, Db};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use jiff::SignedDuration;
use sha2::Sha256;
use tongdai::app::App;
use tongdai::clock::ManualClock;

const SECRET: &str = "vinmec-shared-secret-2021";

#[derive(Clone, Debug)]
struct Received {
    event_id: String,
    timestamp: String,
    signature: String,
    body: Bytes,
    answered: u16,
}

#[derive(Clone, Default)]
struct Receiver {
    up: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn seen(&self) -> Vec<Received> {
        self.seen.lock().expect("lock").clone()
    }

    async fn wait_for(&self, what: &str, ok: impl Fn(&[Received]) -> bool) {
        for _ in 0..1000 {
            if ok(&self.seen()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("receiver never saw {what}: {:?}", self.seen());
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let status = if r.up.load(Ordering::SeqCst) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    r.seen.lock().expect("lock").push(Received {
        event_id: h("x-tongdai-event-id"),
        timestamp: h("x-tongdai-timestamp"),
        signature: h("x-tongdai-signature"),
        body,
        answered: status.as_u16(),
    });
    status
}

/// What a receiver computes to check a delivery.
fn expected_signature(timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn attempts(seen: &[Received], id: &str) -> usize {
    seen.iter().filter(|r| r.event_id == id).count()
}

api_on_both_backends!(registrations_are_pushed_at_least_once_across_restarts);

async fn registrations_are_pushed_at_least_once_across_restarts(db: Db) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let webhook = format!(
        "[api]\nwebhook_url = \"{hook_url}\"\nwebhook_secret = \"{SECRET}\"\nwebhook_poll = \"50ms\"\nwebhook_max_backoff = \"1m\"\n"
    );
    let api = Api::start(db, &webhook).await;
    let a = api.fanpage("0903123001").await;
    let b = api.fanpage("0903123002").await;
    let (ida, idb) = (format!("registration-{a}"), format!("registration-{b}"));
    // The receiver is down: first attempts at once, the second only after the backoff
    // (2 s on the service's clock, which the test moves).
    receiver
        .wait_for("first attempts", |s| {
            attempts(s, &ida) >= 1 && attempts(s, &idb) >= 1
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        attempts(&receiver.seen(), &ida),
        1,
        "no retry before the backoff"
    );
    api.clock.advance(SignedDuration::from_secs(2));
    receiver
        .wait_for("second attempts", |s| {
            attempts(s, &ida) >= 2 && attempts(s, &idb) >= 2
        })
        .await;
    assert_eq!(
        api.svc.app.store.webhook_pending().await.expect("pending"),
        2
    );

    // A restart on the same database: the outbox survives, and the receiver is back.
    let dir = tempfile::tempdir().expect("tmp");
    let db_url = match db {
        Db::Sqlite => format!("sqlite://{}/tongdai.db", api.svc.dir.path().display()),
        Db::Postgres => api.db_url().expect("pg url"),
    };
    let Api { svc, pg, .. } = api;
    let kept_dir = svc.dir;
    svc.app.shutdown().await;
    receiver.up.store(true, Ordering::SeqCst);
    let toml = support::merge_toml(
        &support::api::tokens_toml(),
        &format!("{webhook}\n[database]\nurl = \"{db_url}\"\n[program]\ntoday = \"2021-11-27\"\n"),
    );
    let clock = Arc::new(ManualClock::new(
        "2021-11-27T04:00:00Z".parse().expect("ts"),
    ));
    let app = App::start_with_clock(support::settings(dir.path(), &toml), clock)
        .await
        .expect("restarts");
    receiver
        .wait_for("deliveries after the restart", |s| {
            [&ida, &idb]
                .iter()
                .all(|id| s.iter().any(|r| &&r.event_id == id && r.answered == 200))
        })
        .await;
    for _ in 0..100 {
        if app.store.webhook_pending().await.expect("pending") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.store.webhook_pending().await.expect("pending"), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // What the receiver saw: signed deliveries, the same id on every retry, one
    // successful delivery per registration; de-duplicated by id, exactly two.
    let seen = receiver.seen();
    let mut by_id: HashMap<String, Vec<&Received>> = HashMap::new();
    for r in &seen {
        assert_eq!(
            r.signature,
            expected_signature(&r.timestamp, &r.body),
            "{r:?}"
        );
        by_id.entry(r.event_id.clone()).or_default().push(r);
    }
    let unique: HashSet<&String> = by_id.keys().collect();
    assert_eq!(unique, HashSet::from([&ida, &idb]));
    for (id, deliveries) in &by_id {
        assert!(deliveries.len() >= 3, "{id}: two failures then success");
        assert_eq!(
            deliveries.iter().filter(|r| r.answered == 200).count(),
            1,
            "{id}: not sent again once delivered"
        );
        let body: serde_json::Value = serde_json::from_slice(&deliveries[0].body).expect("json");
        assert_eq!(&body["id"], id.as_str());
        assert_eq!(body["event"], "registration.created");
        assert_eq!(body["registration"]["channel"], "fanpage");
        assert!(
            body["registration"]["msisdn"]
                .as_str()
                .is_some_and(|m| m.starts_with("+84903123")),
            "{body}"
        );
    }
    app.shutdown().await;
    drop(kept_dir);
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
}
