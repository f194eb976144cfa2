//! The supervisors' live page in a real browser: Debian's chromium, headless, driven by
//! playwright-core (`tests/browser/live_page.mjs`). SIPp places three calls that stay
//! up for a few seconds; the page (signed in with a supervisor token) must show them
//! live — count, masked numbers, line, state — then, without a reload, show them
//! finished and counted. Campaigns seeded through the store (an invitation part-way
//! through, a survey with answers) must show in the campaign panel with their progress
//! bars and in the satisfaction panel, and the trunk — a second SIPp answering OPTIONS —
//! must read as up. A screenshot is kept under `target/browser/` (path printed).

use std::process::Stdio;
use std::time::Duration;

use crate::support;
use crate::support::{free_port, free_port_pair, repo};
use jiff::Timestamp;
use jiff::civil::date;
use tongdai::store::{
    AttemptEnd, ClaimRequest, ClaimedAttempt, NewRegistration, RegisterOutcome, Store,
    SurveyQuestion,
};
use tongdai_domain::dialer::{CampaignKind, CampaignPolicy};
use tongdai_domain::program::{Channel, Group, ProgramConfig, Status};

const CALLS: usize = 3;

/// 2021-11-27 10:00 in Hanoi: inside the default calling window and the program.
fn ten_am() -> Timestamp {
    "2021-11-27T03:00:00Z".parse().expect("ts")
}

async fn claim(store: &Store, id: i64, limit: u32) -> Vec<ClaimedAttempt> {
    let program = ProgramConfig {
        today: Some(date(2021, 11, 27)),
        ..ProgramConfig::default()
    };
    store
        .claim_due(
            &ClaimRequest {
                campaign_id: id,
                instance: "browser-test",
                limit,
                now: ten_am(),
                program: &program,
            },
            || format!("{:032x}@browser", rand::random::<u128>()),
        )
        .await
        .expect("claim")
        .attempts
}

/// An invitation campaign of 4 contacts part-way through (1 waiting, 1 in call, 1 busy
/// → retry, 1 rejected → done) and a survey of 2 with answers 5 (completed) and 2 (hung
/// up after the first question: to be called back).
async fn seed_campaigns(store: &Store, dir: &std::path::Path) {
    let t = ten_am();
    let later = t + jiff::SignedDuration::from_mins(1);
    let mut csv = String::from("msisdn,plan,charge_per_cycle_vnd,list_source\n");
    for i in 0..4 {
        csv.push_str(&format!("090900000{i},postpaid,400000,sms\n"));
    }
    let path = dir.join("targets.csv");
    std::fs::write(&path, csv).expect("csv");
    store
        .import_subscribers_csv(&path, Timestamp::now())
        .await
        .expect("import");
    let policy = |kind, dialplan: &str| CampaignPolicy {
        kind,
        dialplan: dialplan.into(),
        ..CampaignPolicy::default()
    };
    let inv = store
        .create_invitation_campaign(
            "Mời đợt 1",
            policy(CampaignKind::Invitation, "invite"),
            &ProgramConfig::default(),
            t,
        )
        .await
        .expect("create")
        .campaign
        .id;
    store.start_campaign(inv, t).await.expect("start");
    let a = claim(store, inv, 3).await;
    for x in &a {
        store
            .attempt_started(x.attempt_id, t)
            .await
            .expect("started");
    }
    store
        .finish_attempt(a[0].attempt_id, &AttemptEnd::from_sip(486, false, later))
        .await
        .expect("busy");
    store
        .attempt_answered(a[1].attempt_id, t)
        .await
        .expect("answered");
    store
        .finish_attempt(a[2].attempt_id, &AttemptEnd::from_sip(603, false, later))
        .await
        .expect("603");

    let cfg = ProgramConfig::default();
    for i in 0..2 {
        let outcome = store
            .register(
                NewRegistration {
                    msisdn: format!("098800000{i}"),
                    group: Group::Two,
                    channel: Channel::Fanpage,
                    specialty: Some(1),
                    call_id: None,
                    name: Some("Khách hàng".into()),
                    fanpage_ref: Some(format!("fb-{i}")),
                },
                &cfg,
                date(2021, 11, 27),
                t,
            )
            .await
            .expect("register");
        let RegisterOutcome::Registered(reg) = outcome else {
            panic!("not registered: {outcome:?}");
        };
        for to in [
            Status::SentToVinmec,
            Status::AppointmentBooked,
            Status::Consulted,
        ] {
            store
                .set_status(reg.id, to, "vinmec:test", "", t)
                .await
                .expect("status");
        }
    }
    let survey = store
        .create_survey_campaign("Khảo sát đợt 1", policy(CampaignKind::Survey, "survey"), t)
        .await
        .expect("survey")
        .campaign
        .id;
    store.start_campaign(survey, t).await.expect("start");
    for (x, score) in claim(store, survey, 2).await.iter().zip([5u8, 2]) {
        store
            .attempt_answered(x.attempt_id, t)
            .await
            .expect("answered");
        store
            .record_survey_answer(x.attempt_id, SurveyQuestion::Satisfaction, score, t)
            .await
            .expect("answer");
        if score == 5 {
            store
                .complete_survey(x.attempt_id, t)
                .await
                .expect("complete");
        }
        store
            .finish_attempt(x.attempt_id, &AttemptEnd::answered(t, later))
            .await
            .expect("finish");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_page_shows_calls_as_they_happen() {
    // Chromium and three calls that must be seen while they are up: alone (support::serial).
    let _alone = support::serial::alone().await;
    // The bundled dialplans plus the benchmark's long-call plan (9099 keeps prompting).
    let plans = tempfile::tempdir().expect("tmp");
    for f in [
        "dialplans/9090.toml",
        "dialplans/demo.toml",
        "dialplans/invite.toml",
        "dialplans/survey.toml",
        "benches/load/bench_long.toml",
    ] {
        let src = repo().join(f);
        let name = src.file_name().expect("name").to_owned();
        std::fs::copy(&src, plans.path().join(name)).expect("copy plan");
    }
    let out = support::sipp::out_dir("api_live_browser");
    // SIPp as the trunk, answering the OPTIONS keepalive.
    let trunk_port = free_port();
    let _trunk = support::sipp::options_uas(trunk_port, &out);
    // The dialer stays off: the seeded campaigns are snapshots for the page, not calls
    // to place (the trunk here is a SIPp that only answers OPTIONS).
    let svc = support::Service::start(&support::merge_toml(
        &support::api::tokens_toml(),
        &format!(
            "[dialplans]\ndir = \"{}\"\n[rtp]\ninactivity_timeout = \"300s\"\n\
             [program]\ntoday = \"2021-11-27\"\n[api]\nlive_refresh = \"250ms\"\n\
             [trunk]\nhost = \"127.0.0.1\"\nport = {trunk_port}\noptions_interval = \"500ms\"\n\
             [dialer]\nenabled = false\n",
            plans.path().display()
        ),
    ))
    .await;
    let url = format!("http://{}", svc.app.http_addr);
    seed_campaigns(&svc.app.store, svc.dir.path()).await;

    // Three calls held for 8 s (the benchmark scenario, shortened).
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
        .args(["--url", &url, "--token", &support::api::token("supervisor")])
        .args(["--calls", &CALLS.to_string()])
        .args(["--trunk-health", "Hoạt động"])
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
    let line = |n: &str| {
        seen["lines"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["line"] == n))
            .unwrap_or_else(|| panic!("line {n} shown: {seen}"))
            .clone()
    };
    assert_eq!(line("9099")["active"], "3");
    assert_eq!(line("9099")["outbound_queue"], "–");
    // The campaigns' queue, added up, sits on the trunk's line (9090).
    assert_eq!(
        line("9090")["outbound_queue"],
        "Chờ gọi 1 · Đang quay số 0 · Đang đàm thoại 1 · Chờ gọi lại 2",
        "{seen}"
    );
    let vi = &seen["vi"];
    assert_eq!(
        vi["outbound_queue"],
        serde_json::json!({"waiting": "1", "dialing": "0", "in-call": "1", "retry": "2", "done": "2"}),
        "{vi}"
    );
    let campaigns = vi["campaigns"].as_array().expect("campaign rows");
    assert_eq!(campaigns.len(), 2, "{vi}");
    // Newest first: the survey (one done, one to call back), then the invitation.
    let (survey, invitation) = (&campaigns[0], &campaigns[1]);
    assert_eq!(survey["cells"][0], "Khảo sát đợt 1");
    assert_eq!(survey["cells"][1], "Khảo sát");
    assert_eq!(survey["cells"][2], "Đang chạy");
    assert_eq!(
        survey["parts"],
        serde_json::json!({"done": 50, "in_call": 0, "dialing": 0, "retry_pending": 50}),
        "{survey}"
    );
    assert_eq!(survey["cells"][9], "100 %", "both answered");
    assert_eq!(invitation["cells"][0], "Mời đợt 1");
    assert_eq!(invitation["cells"][1], "Mời đăng ký");
    assert_eq!(invitation["cells"][2], "Đang chạy");
    assert_eq!(
        invitation["parts"],
        serde_json::json!({"done": 25, "in_call": 25, "dialing": 0, "retry_pending": 25}),
        "progress bar segments: {invitation}"
    );
    assert!(
        invitation["cells"][3]
            .as_str()
            .unwrap_or("")
            .contains("Đã xong 1/4 — Từ chối 1"),
        "done by disposition: {invitation}"
    );
    // waiting, dialling, in call, retry pending, done, answer rate (0 of 2 finished).
    let numbers: Vec<&str> = (4..10)
        .map(|i| invitation["cells"][i].as_str().unwrap_or(""))
        .collect();
    assert_eq!(numbers, ["1", "0", "1", "1", "1", "0 %"], "{invitation}");
    assert_eq!(vi["campaign_headers"][3], "Tiến độ");
    // Satisfaction: answers 5 and 2 → half satisfied, mean 3.5 (Vietnamese comma).
    assert_eq!(vi["sat_share"], "50 %");
    assert_eq!(vi["sat_mean"], "3,5");
    assert_eq!(vi["sat_respondents"], "2");
    let hist: Vec<(u64, u64)> = vi["sat_hist"]
        .as_array()
        .expect("histogram")
        .iter()
        .map(|b| (b[0].as_u64().unwrap_or(0), b[1].as_u64().unwrap_or(0)))
        .collect();
    assert_eq!(hist, [(1, 0), (2, 1), (3, 0), (4, 0), (5, 1)]);
    assert_eq!(
        vi["sat_campaigns"][0],
        serde_json::json!([
            "Khảo sát đợt 1",
            "50 %",
            "3,5",
            "2 người trả lời (1 hoàn thành, 1 một phần)"
        ])
    );
    // The trunk: SIPp answers OPTIONS.
    assert_eq!(vi["trunk_health"], "Hoạt động");
    let options = vi["trunk_rows"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r[0] == "Kiểm tra OPTIONS"))
        .unwrap_or_else(|| panic!("OPTIONS row: {vi}"));
    assert!(
        options[1]
            .as_str()
            .unwrap_or("")
            .starts_with("Liên lạc được · "),
        "{options}"
    );
    // The same panels in English.
    let en = &seen["en"];
    assert_eq!(en["campaigns"][1]["cells"][2], "Running");
    assert_eq!(en["campaigns"][1]["cells"][1], "Invitation");
    assert_eq!(en["sat_mean"], "3.5");
    assert_eq!(en["trunk_health"], "Up");
    assert_eq!(en["campaign_headers"][3], "Progress");
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
