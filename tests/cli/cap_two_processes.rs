//! The 500-place cap is exact across two service *processes* sharing one PostgreSQL
//! (issue 3: "also with two service processes sharing one PostgreSQL").
//!
//! Two `tongdai serve` binaries run on one PostgreSQL schema; 600 different numbers are
//! registered through the fanpage intake at the same time, half on each process. Exactly
//! 500 are created, the other 100 are told `cap_full`, and the store holds exactly 500
//! registrations, 500 Vinmec queue entries and a counter of 500. The store suites prove
//! the same with two connection pools in one process; this one crosses process
//! boundaries, as two 9090 nodes behind one proxy would.

use std::path::Path;

use crate::support;
use crate::support::free_port;
use crate::support::process::Serve;

const CAP: u32 = 500;
const ATTEMPTS: usize = 600;

struct Node {
    child: Serve,
    http: String,
}

impl Node {
    fn start(dir: &Path, name: &str, db_url: &str) -> Node {
        let http_port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[sip]\nlisten = \"127.0.0.1:{sip}\"\n\n[rtp]\nport_min = 40000\nport_max = 40999\n\n\
                 [http]\nlisten = \"127.0.0.1:{http_port}\"\n\n[database]\nurl = \"{db_url}\"\n\n\
                 [program]\ncap = {CAP}\ntoday = \"2021-12-01\"\n\n[log]\nlevel = \"warn\"\n\n{tokens}",
                sip = free_port(),
                tokens = support::api::tokens_toml(),
            ),
        )
        .expect("write config");
        let child = Serve::start(Some(&config), &[], &dir.join(format!("{name}.log")));
        Node {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
        }
    }

    async fn wait_ready(&self) {
        self.child.wait_ready(&self.http).await;
    }

    fn stop(mut self) {
        // SIGTERM: the service drains and exits 0.
        let status = self.child.terminate();
        assert!(
            status.success(),
            "tongdai exited with {status}; log:\n{}",
            self.child.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_is_exact_across_two_service_processes_on_one_postgres() {
    let db = support::store::postgres().await;
    let dir = tempfile::tempdir().expect("tmp");
    let a = Node::start(dir.path(), "a", &db.url);
    let b = Node::start(dir.path(), "b", &db.url);
    let client = reqwest::Client::new();
    a.wait_ready().await;
    b.wait_ready().await;

    let token = support::api::token("fanpage");
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..ATTEMPTS {
        let base = if i % 2 == 0 { &a.http } else { &b.http };
        let url = format!("{base}/api/v1/fanpage/registrations");
        let msisdn = format!("0903{i:06}");
        let body = serde_json::json!({
            "msisdn": msisdn,
            "name": "Nguyễn Văn An",
            "specialty": 1 + (i % 6),
            "fanpage_ref": format!("post-7/comment-{i}"),
        });
        let client = client.clone();
        let token = token.clone();
        requests.spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            let bytes = r.bytes().await.expect("answer body");
            let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json answer");
            (status, json)
        });
    }
    let (mut created, mut cap_full, mut other) = (0, 0, Vec::new());
    while let Some(done) = requests.join_next().await {
        let (status, json) = done.expect("task");
        match (status, json["error"].as_str()) {
            (201, _) => created += 1,
            (409, Some("cap_full")) => cap_full += 1,
            _ => other.push((status, json)),
        }
    }
    assert!(other.is_empty(), "unexpected answers: {other:?}");
    assert_eq!(created, CAP as usize, "exactly the cap is registered");
    assert_eq!(cap_full, ATTEMPTS - CAP as usize, "the rest hear cap_full");

    // What the store holds, read by a third party.
    let store = db.another_store().await;
    assert_eq!(store.registered_count().await.expect("count"), CAP);
    assert_eq!(
        store.registration_rows().await.expect("rows"),
        u64::from(CAP)
    );
    let (queued,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM vinmec_queue")
        .fetch_one(&sqlx::PgPool::connect(&db.url).await.expect("pg"))
        .await
        .expect("queue count");
    assert_eq!(
        queued,
        i64::from(CAP),
        "one Vinmec queue entry per registration"
    );

    a.stop();
    b.stop();
    db.cleanup().await;
}
