//! Harness for the API tests: the whole service (SIP, store, HTTP) on loopback ports,
//! on SQLite or PostgreSQL, with one token per role, a clock the test sets, and a
//! small real HTTP client (hyper) — requests go over TCP like any client's.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::http::{HeaderMap, Method, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use serde_json::Value;
use tongdai::api::{Role, hash_token};
use tongdai::app::App;
use tongdai::clock::ManualClock;

use crate::support::{self, Service};

pub use crate::support::store::Db;

/// The token of a test principal: its name is the role's name (plus a suffix for the
/// second Vinmec scheduler).
pub fn token(name: &str) -> String {
    format!("test-token-{name}")
}

/// Principals every test service knows: one per role, and a second scheduler.
pub const PRINCIPALS: &[(&str, Role)] = &[
    ("vinmec", Role::Vinmec),
    ("vinmec2", Role::Vinmec),
    ("fanpage", Role::Fanpage),
    ("supervisor", Role::Supervisor),
    ("admin", Role::Admin),
];

pub fn tokens_toml() -> String {
    PRINCIPALS
        .iter()
        .map(|(name, role)| {
            format!(
                "[[api.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
                hash_token(&token(name))
            )
        })
        .collect()
}

/// 2021-11-27 10:00 in Hanoi: inside the registration and consultation periods.
pub const START: &str = "2021-11-27T03:00:00Z";

pub struct Api {
    pub svc: Service,
    pub clock: Arc<ManualClock>,
    pub base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    pub pg: Option<support::store::TestDb>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `error` and `field` of a JSON error.
    pub fn error(&self) -> (String, String) {
        let v = self.json();
        (
            v["error"].as_str().unwrap_or("").to_owned(),
            v["field"].as_str().unwrap_or("").to_owned(),
        )
    }
}

/// The reply is 200 OK; its JSON body.
#[track_caller]
pub fn ok(r: &Reply) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.json()
}

/// The reply is `status` with the JSON error `code`; its JSON body.
#[track_caller]
pub fn refused(r: &Reply, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.error().0, code, "{r:?}");
    r.json()
}

/// The reply is 422 naming `field`.
#[track_caller]
pub fn invalid(r: &Reply, field: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.error().1, field, "{r:?}");
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text())
    }
}

impl Api {
    /// A service with the test tokens, `program.today` inside the registration period,
    /// the clock at [`START`], the campaign dialer off, and `extra` TOML layered on top.
    pub async fn start(db: Db, extra: &str) -> Api {
        let pg = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(support::store::postgres().await),
        };
        // The dialer stays off: these tests drive campaigns through the store and the
        // API by hand, and a dialer claiming the same contacts would race them.
        let mut toml = format!(
            "{}\n[program]\ntoday = \"2021-11-27\"\n[rtp]\ninactivity_timeout = \"300s\"\n\
             [dialer]\nenabled = false\n",
            tokens_toml()
        );
        if let Some(pg) = &pg {
            toml.push_str(&format!("[database]\nurl = \"{}\"\n", pg.url));
        }
        let toml = support::merge_toml(&toml, extra);
        let dir = tempfile::tempdir().expect("tmp");
        let clock = Arc::new(ManualClock::new(START.parse().expect("ts")));
        let app = App::start_with_clock(support::settings(dir.path(), &toml), clock.clone())
            .await
            .expect("service starts");
        let base = format!("http://{}", app.http_addr);
        Api {
            svc: Service { app, dir },
            clock,
            base,
            // A fresh connection per request: a pooled one the server has just closed
            // (after refusing a request without reading its body) fails spuriously.
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
            pg,
        }
    }

    /// The PostgreSQL URL of this service's schema (None on SQLite).
    pub fn db_url(&self) -> Option<String> {
        self.pg.as_ref().map(|pg| pg.url.clone())
    }

    pub fn now(&self) -> Timestamp {
        use tongdai::clock::Clock;
        self.clock.now()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        who: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(who) = who {
            req = req.header("authorization", format!("Bearer {}", token(who)));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .expect("request");
        let resp = self.client.request(req).await.expect("HTTP request");
        let status = resp.status();
        let headers = resp.headers().clone();
        // Event streams never end: read only their head.
        let sse = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let body = if sse {
            Bytes::new()
        } else {
            resp.into_body()
                .collect()
                .await
                .expect("response body")
                .to_bytes()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, who: &str) -> Reply {
        self.request(Method::GET, path, Some(who), None, &[]).await
    }

    pub async fn post(&self, path: &str, who: &str, body: &str) -> Reply {
        self.request(Method::POST, path, Some(who), Some(body), &[])
            .await
    }

    pub async fn post_key(&self, path: &str, who: &str, body: &str, key: &str) -> Reply {
        self.request(
            Method::POST,
            path,
            Some(who),
            Some(body),
            &[("idempotency-key", key)],
        )
        .await
    }

    /// Registers `msisdn` through the fanpage intake and returns its registration id.
    pub async fn fanpage(&self, msisdn: &str) -> i64 {
        let r = self
            .post(
                "/api/v1/fanpage/registrations",
                "fanpage",
                &format!(
                    r#"{{"msisdn":"{msisdn}","name":"Trần Thị Hoa","specialty":5,"fanpage_ref":"post-1/comment-{msisdn}"}}"#
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.json()["registration_id"].as_i64().expect("id")
    }

    pub async fn stop(self) {
        self.svc.app.shutdown().await;
        if let Some(pg) = self.pg {
            pg.cleanup().await;
        }
    }
}

/// Generates `<name>::sqlite` and `<name>::postgres` running `async fn <name>(Db)`.
#[macro_export]
macro_rules! api_on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::api::Db::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::api::Db::Postgres).await;
            }
        }
    )*};
}
