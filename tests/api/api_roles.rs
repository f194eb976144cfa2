//! Every route of the API × every role, on SQLite and PostgreSQL: the roles a route
//! declares get in, every other role gets 403, no token or an unknown one gets 401 —
//! all as JSON errors. Plus what the defaults do: no tokens configured (401 with the
//! way out), health, readiness and metrics.

use crate::support;
use crate::support::api::{Api, Db, PRINCIPALS, token};
use hyper::http::{Method, StatusCode};
use tongdai::api::{Access, routes};

api_on_both_backends!(every_route_admits_exactly_its_roles);

async fn every_route_admits_exactly_its_roles(db: Db) {
    let api = Api::start(db, "").await;
    let id = api.fanpage("0903123001").await;
    let settings = tongdai::config::Settings::from_toml_overrides(&support::api::tokens_toml())
        .expect("settings");
    let table = routes(&settings.api);
    assert!(table.len() >= 30, "{} routes", table.len());
    let mut checked = 0;
    for route in &table {
        let path = route.path.replace("{id}", &id.to_string());
        let body = (route.method == Method::POST).then_some("{}");
        // No token.
        let r = api
            .request(route.method.clone(), &path, None, body, &[])
            .await;
        match route.access {
            Access::Public => assert!(
                r.status.is_success(),
                "{} {path} is public: {r:?}",
                route.method
            ),
            Access::Roles { .. } => {
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{} {path}",
                    route.method
                );
                assert_eq!(r.error().0, "unauthorized");
                assert!(r.headers.contains_key("www-authenticate"));
                // An unknown token.
                let r = api
                    .request(
                        route.method.clone(),
                        &path,
                        None,
                        body,
                        &[("authorization", "Bearer td_not_a_token")],
                    )
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::UNAUTHORIZED,
                    "{} {path}",
                    route.method
                );
            }
        }
        for (name, role) in PRINCIPALS {
            let r = api
                .request(route.method.clone(), &path, Some(name), body, &[])
                .await;
            if route.access.admits(*role) {
                assert!(
                    r.status != StatusCode::UNAUTHORIZED && r.status != StatusCode::FORBIDDEN,
                    "{role} may {} {path}: {r:?}",
                    route.method
                );
                assert!(
                    !r.status.is_server_error(),
                    "{role} {} {path}: {r:?}",
                    route.method
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{role} may not {} {path}: {r:?}",
                    route.method
                );
                assert_eq!(r.error().0, "forbidden", "{path}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, table.len() * PRINCIPALS.len());
    // Specific promises of the issue.
    let r = api.get("/api/v1/supervisor/calls/recent", "vinmec").await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "Vinmec cannot read call records"
    );
    let r = api
        .post(
            &format!("/api/v1/vinmec/queue/{id}/cancel"),
            "supervisor",
            r#"{"reason":"x"}"#,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a supervisor changes nothing"
    );
    let r = api.get("/api/v1/campaigns", "vinmec").await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "Vinmec cannot read campaigns"
    );
    for cmd in ["start", "pause", "resume", "stop"] {
        let r = api
            .post(&format!("/api/v1/campaigns/1/{cmd}"), "supervisor", "")
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "a supervisor cannot {cmd}");
    }
    // The outbound routes are rows of the table the loop above walked.
    for (method, path) in [
        (Method::GET, "/api/v1/campaigns"),
        (Method::POST, "/api/v1/campaigns"),
        (Method::GET, "/api/v1/campaigns/{id}"),
        (Method::POST, "/api/v1/campaigns/{id}/start"),
        (Method::POST, "/api/v1/campaigns/{id}/pause"),
        (Method::POST, "/api/v1/campaigns/{id}/resume"),
        (Method::POST, "/api/v1/campaigns/{id}/stop"),
        (Method::GET, "/api/v1/surveys/results.csv"),
        (Method::GET, "/api/v1/supervisor/satisfaction"),
        (Method::GET, "/api/v1/supervisor/trunk"),
        (Method::GET, "/api/v1/do-not-call"),
        (Method::POST, "/api/v1/do-not-call"),
    ] {
        assert!(
            table.iter().any(|r| r.method == method && r.path == path),
            "{method} {path} in the route table"
        );
    }
    let r = api.post("/reload", "vinmec", "{}").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "reload is admin-only");
    let r = api.post("/reload", "admin", "").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json()["reloaded"], bundled_dialplans());
    let r = api.get("/api/v1/whoami", "vinmec2").await;
    assert_eq!(r.json()["name"], "vinmec2");
    assert_eq!(r.json()["role"], "vinmec");
    // Unknown routes and methods answer JSON too.
    let r = api.get("/api/v1/nope", "admin").await;
    assert_eq!(
        (r.status, r.error().0.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let r = api
        .request(
            Method::DELETE,
            "/api/v1/vinmec/queue",
            Some("admin"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{r:?}");
    assert_eq!(r.error().0, "method_not_allowed");
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_the_api_answers_401_and_says_how_to_add_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let svc = support::Service::start_in(dir, "").await;
    let base = format!("http://{}", svc.app.http_addr);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let get = |path: &str, auth: Option<String>| {
        let mut req = hyper::Request::get(format!("{base}{path}"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        client.request(req.body(Default::default()).expect("req"))
    };
    use http_body_util::BodyExt;
    for auth in [None, Some(format!("Bearer {}", token("admin")))] {
        let r = get("/api/v1/supervisor/snapshot", auth)
            .await
            .expect("http");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body = r.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert!(
            v["message"]
                .as_str()
                .unwrap_or("")
                .contains("tongdai token new"),
            "{v}"
        );
    }
    // Health, readiness and metrics stay open.
    let r = get("/healthz", None).await.expect("http");
    assert_eq!(r.status(), StatusCode::OK);
    let r = get("/readyz", None).await.expect("http");
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.into_body().collect().await.expect("body").to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["ready"], true);
    assert_eq!(v["sip"], true);
    assert_eq!(v["store"], true);
    assert_eq!(v["dialplans"], bundled_dialplans());
    svc.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_which_part_is_not_ready() {
    let api = Api::start(Db::Sqlite, "").await;
    let r = api.request(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // The store stops answering: not ready, and the answer says why.
    api.svc.app.store.close().await;
    let r = api.request(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    let v = r.json();
    assert_eq!(
        (
            v["ready"].as_bool(),
            v["store"].as_bool(),
            v["sip"].as_bool()
        ),
        (Some(false), Some(false), Some(true))
    );
    let r = api.request(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "alive all the same");
    api.stop().await;
}

api_on_both_backends!(metrics_report_registrations_queue_and_calls);

async fn metrics_report_registrations_queue_and_calls(db: Db) {
    let api = Api::start(db, "[program]\ncap = 10\n").await;
    api.fanpage("0903123001").await;
    api.fanpage("0903123002").await;
    api.clock.advance(jiff::SignedDuration::from_mins(5));
    // A call through SIPp lands in the call counters.
    let run = support::sipp(
        "api_metrics_call",
        "uac_info.xml",
        api.svc.sip_addr(),
        support::Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    api.svc.wait_calls(1).await;
    let r = api.request(Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("application/openmetrics-text")
    );
    let text = r.text();
    for line in [
        "tongdai_cap 10",
        "tongdai_cap_used 2",
        "tongdai_cap_left 8",
        "tongdai_registrations{channel=\"fanpage\",status=\"registered\"} 2",
        "tongdai_vinmec_queue_entries{status=\"waiting\"} 2",
        "tongdai_vinmec_queue_oldest_waiting_seconds 300.0",
        "tongdai_calls_total{direction=\"inbound\",disposition=\"answered\"} 1",
        "tongdai_calls_active{direction=\"inbound\"} 0",
        "tongdai_dtmf_digits_total{method=\"info\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    for prefix in [
        "tongdai_tokio_tasks_alive ",
        "tongdai_rtp_packets_sent_total ",
        "tongdai_rtp_packets_received_total ",
        "tongdai_rtp_late_frames_total ",
        "tongdai_ivr_node_visits_total{dialplan=\"demo\"",
        "tongdai_http_requests_total{",
    ] {
        assert!(text.contains(prefix), "{prefix} in\n{text}");
    }
    // The supervisors' views of the same call: masked, on its line, answered.
    let recent = api
        .get("/api/v1/supervisor/calls/recent?limit=5", "supervisor")
        .await
        .json();
    let call = &recent["calls"][0];
    assert_eq!(call["disposition"], "answered", "{recent}");
    assert_eq!(call["line"], "9091");
    assert_eq!(call["direction"], "inbound");
    let number = call["number"].as_str().unwrap_or("");
    assert!(
        number.contains("***") || number.len() <= 5,
        "masked: {number}"
    );
    assert!(call["ivr_path"].as_array().is_some_and(|p| !p.is_empty()));
    let lines = api
        .get("/api/v1/supervisor/lines", "supervisor")
        .await
        .json();
    assert_eq!(lines["lines"][0]["line"], "9091", "{lines}");
    assert_eq!(lines["lines"][0]["today_total"], 1);
    assert_eq!(lines["lines"][0]["today"]["answered"], 1);
    let active = api
        .get("/api/v1/supervisor/calls/active", "supervisor")
        .await
        .json();
    assert_eq!(active["count"], 0);
    let sent: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tongdai_rtp_packets_sent_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rtp sent");
    assert!(sent > 0, "the call's RTP is counted");
    api.stop().await;
}

/// How many dialplans the repository ships (`dialplans/*.toml`): reload and readiness
/// report that many.
fn bundled_dialplans() -> usize {
    std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans"))
        .expect("dialplans dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .count()
}
