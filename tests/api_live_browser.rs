//! The supervisors' live page in a real browser: Debian's chromium, headless, driven by
//! playwright-core (`tests/browser/live_page.mjs`). SIPp places three calls that stay
//! up for a few seconds; the page (signed in with a supervisor token) must show them
//! live — count, masked numbers, line, state — then, without a reload, show them
//! finished and counted. A screenshot is kept under `target/browser/` (path printed).

mod common;
mod common_api;
mod common_store;

use std::process::Stdio;
use std::time::Duration;

use common::{free_port, free_port_pair, repo};

const CALLS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_page_shows_calls_as_they_happen() {
    // The bundled dialplans plus the benchmark's long-call plan (9099 keeps prompting).
    let plans = tempfile::tempdir().expect("tmp");
    for f in [
        "dialplans/9090.toml",
        "dialplans/demo.toml",
        "benches/load/bench_long.toml",
    ] {
        let src = repo().join(f);
        let name = src.file_name().expect("name").to_owned();
        std::fs::copy(&src, plans.path().join(name)).expect("copy plan");
    }
    let svc = common::Service::start(&common_api::merge(
        &common_api::tokens_toml(),
        &format!(
            "[dialplans]\ndir = \"{}\"\n[rtp]\ninactivity_timeout = \"300s\"\n\
             [program]\ntoday = \"2021-11-27\"\n[api]\nlive_refresh = \"250ms\"\n",
            plans.path().display()
        ),
    ))
    .await;
    let url = format!("http://{}", svc.app.http_addr);

    // Three calls held for 8 s (the benchmark scenario, shortened).
    let out = repo().join("tests/out/api_live_browser");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("out dir");
    let scenario = std::fs::read_to_string(repo().join("tests/sipp/bench_long_call.xml"))
        .expect("scenario")
        .replace("timeout=\"30000\"", "timeout=\"8000\"");
    let scenario_path = out.join("long_call_8s.xml");
    std::fs::write(&scenario_path, scenario).expect("write scenario");
    let probe = free_port_pair().to_string();
    let sipp = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(&scenario_path)
        .args([
            "-s",
            "9099",
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
        ])
        .args([
            "-mp",
            &free_port_pair().to_string(),
            "-set",
            "probe_port",
            &probe,
        ])
        .args([
            "-m", "3", "-l", "3", "-r", "10", "-nostdin", "-timeout", "60s",
        ])
        .arg(svc.sip_addr().to_string())
        .current_dir(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (is sip-tester installed?)");
    for _ in 0..500 {
        if svc.app.calls.active_count() == CALLS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(svc.app.calls.active_count(), CALLS, "SIPp's calls are up");

    let shot = repo().join("target/browser/live-page.png");
    let _ = std::fs::remove_file(&shot);
    let node = tokio::process::Command::new("node")
        .arg(repo().join("tests/browser/live_page.mjs"))
        .args(["--url", &url, "--token", &common_api::token("supervisor")])
        .args(["--calls", &CALLS.to_string()])
        .arg("--screenshot")
        .arg(&shot)
        .args(["--then-calls", "0", "--then-today", &CALLS.to_string()])
        .current_dir(repo().join("tests/browser"))
        .kill_on_drop(true)
        .output();
    let node = tokio::time::timeout(Duration::from_secs(120), node)
        .await
        .expect("the browser run ends")
        .expect("node runs (scripts/install-test-deps.sh installs it and playwright-core)");
    let stdout = String::from_utf8_lossy(&node.stdout);
    let stderr = String::from_utf8_lossy(&node.stderr);
    println!("live page screenshot: {}", shot.display());
    let seen: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result from the browser:\n{stdout}\n{stderr}"));
    assert!(node.status.success(), "{seen}\n{stderr}");
    let sipp = sipp.wait_with_output().await.expect("sipp ends");
    assert!(
        sipp.status.success(),
        "sipp: {}",
        String::from_utf8_lossy(&sipp.stderr)
    );

    assert_eq!(seen["active_count"], CALLS, "{seen}");
    let rows = seen["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), CALLS);
    for row in rows {
        // Direction, masked number, line, state, IVR step, duration.
        assert_eq!(row[0], "Gọi vào", "{row}");
        assert_eq!(row[1], "0901***567", "numbers are masked: {row}");
        assert_eq!(row[2], "9099");
        assert_eq!(row[3], "Đang đàm thoại");
        assert!(row[5].as_str().unwrap_or("").contains(':'), "{row}");
    }
    assert_eq!(seen["lines"][0]["line"], "9099");
    assert_eq!(seen["lines"][0]["active"], "3");
    assert_eq!(seen["connection"], "Đang kết nối trực tiếp");
    assert_eq!(seen["wrong_token_message"], "Mã truy cập không đúng.");
    // The page shows Hanoi time although the browser runs in Paris.
    let clock = seen["clock"].as_str().unwrap_or("");
    let hms: Vec<i64> = clock
        .split(':')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    assert_eq!(hms.len(), 3, "{clock}");
    let hanoi = jiff::Timestamp::now().to_zoned_datetime(
        jiff::tz::TimeZoneDatabase::bundled()
            .get("Asia/Ho_Chi_Minh")
            .expect("tz"),
    );
    let shown = hms[0] * 3600 + hms[1] * 60 + hms[2];
    let now =
        i64::from(hanoi.hour()) * 3600 + i64::from(hanoi.minute()) * 60 + i64::from(hanoi.second());
    let diff = (now - shown).rem_euclid(86_400);
    assert!(
        !(180..=86_400 - 180).contains(&diff),
        "clock {clock} vs Hanoi {hanoi}"
    );
    assert_eq!(seen["title_vi"], "Tổng đài 9090 — Giám sát trực tiếp");
    assert_eq!(seen["title_en"], "9090 hotline — live view");
    assert_eq!(seen["header_en"][0], "Direction");
    // The calls ended and were counted, pushed to the open page.
    assert_eq!(seen["then_active"], 0, "{seen}");
    assert!(seen["then_today"].as_u64() >= Some(CALLS as u64), "{seen}");
    assert_eq!(seen["cpm_bars"], 60);
    let drawn = seen["dispositions_drawn"].as_array().expect("bars");
    assert!(
        drawn
            .iter()
            .any(|d| d[0] == "answered" && d[1].as_f64() > Some(0.0)),
        "{seen}"
    );
    assert_eq!(
        seen["page_errors"].as_array().map(Vec::len),
        Some(0),
        "{seen}"
    );
    assert!(shot.exists(), "screenshot at {}", shot.display());
    svc.app.shutdown().await;
}
