//! The Covid-19 handbook page in a real browser at a small phone's size: Debian's
//! chromium, headless, driven by playwright-core (`tests/browser/handbook_page.mjs`).
//! Runs alone (`support::serial`): chromium takes the box's two cores while it starts.

use std::time::Duration;

use jiff::civil::date;
use tongdai::store::{NewRegistration, RegisterOutcome};
use tongdai_domain::program::{Channel, Group, ProgramConfig};

use crate::support::{self, Service, repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handbook_reads_on_a_phone() {
    let _alone = support::serial::alone().await;
    let svc = Service::start("[program]\ntoday = \"2021-11-27\"\n").await;
    let store = &svc.app.store;
    let now = "2021-11-27T03:00:00Z".parse().expect("ts");
    let RegisterOutcome::Registered(reg) = store
        .register(
            NewRegistration {
                msisdn: "0903123001".into(),
                group: Group::Two,
                channel: Channel::Fanpage,
                specialty: None,
                call_id: None,
                name: Some("Phạm Thị Thu".into()),
                fanpage_ref: Some("post-1".into()),
            },
            &ProgramConfig::default(),
            date(2021, 11, 27),
            now,
        )
        .await
        .expect("register")
    else {
        panic!("registered");
    };
    let token = store.handbook_token(reg.id, now).await.expect("token");
    let url = format!("http://{}/s/{token}", svc.app.handbook_addr);

    let shot = repo().join("target/browser/handbook-page.png");
    let _ = std::fs::remove_file(&shot);
    let node = tokio::process::Command::new("node")
        .arg(repo().join("tests/browser/handbook_page.mjs"))
        .args(["--url", &url])
        .arg("--screenshot")
        .arg(&shot)
        .current_dir(repo().join("tests/browser"))
        .kill_on_drop(true)
        .output();
    let node = tokio::time::timeout(Duration::from_secs(120), node)
        .await
        .expect("the browser run ends")
        .expect("node runs (scripts/install-test-deps.sh installs it and playwright-core)");
    let stdout = String::from_utf8_lossy(&node.stdout);
    let stderr = String::from_utf8_lossy(&node.stderr);
    println!("handbook screenshot: {}", shot.display());
    let seen: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result from the browser:\n{stdout}\n{stderr}"));
    assert!(node.status.success(), "{seen}\n{stderr}");

    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["title"], "Cẩm nang phòng, chống Covid-19", "{seen}");
    assert_eq!(seen["h1"], "Cẩm nang phòng, chống Covid-19 tại nhà");
    assert_eq!(seen["greeting"], "Kính chào Quý khách Thu,");
    assert_eq!(seen["viewport_width"], 360, "{seen}");
    assert!(
        seen["scroll_width"].as_i64().unwrap_or(i64::MAX) <= 360,
        "nothing wider than the phone's screen: {seen}"
    );
    assert!(
        seen["body_font_px"].as_f64().unwrap_or(0.0) >= 16.0,
        "readable without zooming: {seen}"
    );
    let sections = seen["sections"].as_array().expect("sections");
    assert!(
        sections.iter().any(|s| s == "Khi nào cần gọi cấp cứu ngay"),
        "{seen}"
    );
    assert_eq!(
        seen["requests_elsewhere"],
        serde_json::json!([]),
        "no outside asset"
    );
    assert_eq!(seen["page_errors"], serde_json::json!([]));
    assert!(shot.exists(), "screenshot kept at {}", shot.display());
    // The browser's visit is the customer's open.
    let opens = store.handbook_opens(reg.id).await.expect("opens");
    assert_eq!(opens.map(|o| o.2), Some(1));
    svc.app.shutdown().await;
}
