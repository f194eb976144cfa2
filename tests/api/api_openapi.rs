//! The OpenAPI document (`openapi.json`, served at `/openapi.json`) matches what the
//! service serves: every route of the router is documented with its method and every
//! documented operation is routed (Rust), and schemathesis (PyPI) drives every
//! operation with generated requests against a running service with an admin token,
//! checking status codes, content types and response bodies against the document.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::support;

use tongdai::api::{Access, OPENAPI_JSON, routes};

fn document() -> serde_json::Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

fn settings() -> tongdai::config::Settings {
    tongdai::config::Settings::from_toml_overrides("").expect("defaults")
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            documented.insert((method.to_uppercase(), path.clone()));
            // Security in the document agrees with the route's access.
            let public = op["security"].as_array().is_some_and(|s| s.is_empty());
            let route = routes(&settings().api)
                .into_iter()
                .find(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method));
            if let Some(route) = route {
                assert_eq!(
                    public,
                    route.access == Access::Public,
                    "{method} {path}: security in the document vs the router"
                );
                if let Access::Roles { roles, .. } = route.access {
                    let desc = op["description"].as_str().unwrap_or("");
                    for role in roles {
                        assert!(
                            desc.contains(role.as_str()),
                            "{method} {path} names role {role}"
                        );
                    }
                    for code in ["401", "403"] {
                        assert!(
                            op["responses"][code].is_object(),
                            "{method} {path} documents {code}"
                        );
                    }
                }
            }
        }
    }
    let served: BTreeSet<(String, String)> = routes(&settings().api)
        .into_iter()
        .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    // Every $ref resolves.
    let text = OPENAPI_JSON;
    for piece in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap_or("");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "$ref {name}"
        );
    }
}

/// schemathesis from the venv `scripts/install-test-deps.sh` makes.
fn schemathesis() -> PathBuf {
    if let Ok(p) = std::env::var("TONGDAI_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let base = std::env::var("TONGDAI_TEST_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/tongdai-test-deps")
        });
    base.join("venv/bin/schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_service_true_to_its_document() {
    let api = support::api::Api::start(support::api::Db::Sqlite, "").await;
    // Something in the queue, so generated ids sometimes hit real entries.
    for n in 1..=3 {
        api.fanpage(&format!("090312300{n}")).await;
    }
    // Campaigns with ids 1 and 2 (a draft and a running one) and a do-not-call entry,
    // so the campaign operations meet real rows too.
    for (name, kind) in [("mời", "invitation"), ("khảo sát", "survey")] {
        let r = api
            .post(
                "/api/v1/campaigns",
                "admin",
                &format!(r#"{{"name":"{name}","kind":"{kind}"}}"#),
            )
            .await;
        assert_eq!(r.status, hyper::http::StatusCode::CREATED, "{r:?}");
    }
    let r = api.post("/api/v1/campaigns/1/start", "admin", "").await;
    assert_eq!(r.status, hyper::http::StatusCode::OK, "{r:?}");
    let r = api
        .post("/api/v1/do-not-call", "admin", r#"{"msisdn":"0903123009"}"#)
        .await;
    assert_eq!(r.status, hyper::http::StatusCode::CREATED, "{r:?}");
    let bin = schemathesis();
    assert!(
        bin.exists(),
        "{} missing: run scripts/install-test-deps.sh",
        bin.display()
    );
    let out = support::repo().join("tests/out/schemathesis");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("out dir");
    let run = tokio::process::Command::new(&bin)
        .arg("run")
        .arg(format!("{}/openapi.json", api.base))
        .args(["--url", &api.base])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", support::api::token("admin")),
        ])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection",
        ])
        // The event stream never ends: it is tested by the browser test instead.
        .args(["--exclude-path", "/api/v1/live/events"])
        .args(["--max-examples", "30", "--seed", "9090", "--no-color"])
        .args(["--request-timeout", "10"])
        .current_dir(&out)
        .env("SCHEMATHESIS_HOOKS", "")
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(Duration::from_secs(400), run)
        .await
        .expect("schemathesis finishes")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    std::fs::write(out.join("stdout.log"), stdout.as_bytes()).expect("log");
    assert!(
        run.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("passed"), "{stdout}");
    api.stop().await;
}
