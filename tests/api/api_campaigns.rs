//! Outbound campaigns, surveys, the do-not-call list and the trunk through the HTTP API,
//! on SQLite and PostgreSQL: campaigns created and driven through every transition
//! (allowed and refused), their progress after contacts were claimed and attempts
//! finished through the store's own dialer-side functions (`claim_due`,
//! `attempt_started`, `attempt_answered`, `finish_attempt` …), the supervisors'
//! snapshot and metrics of the same, the satisfaction numbers and the survey CSV after
//! registrations went through the Vinmec queue to `consulted`, and the trunk section
//! against SIPp answering OPTIONS (and against nothing at all).

use std::time::Duration;

use crate::support;
use crate::support::api::{Api, Db, invalid, ok, refused};
use hyper::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tongdai::store::{
    AttemptEnd, ClaimHold, ClaimRequest, ClaimedAttempt, FlowOutcome, Store, SurveyQuestion,
};
use tongdai_domain::dialer::CampaignState;
use tongdai_domain::program::ProgramConfig;

api_on_both_backends!(
    campaign_commands_allowed_and_refused,
    progress_snapshot_and_metrics_follow_the_store,
    survey_results_csv_and_satisfaction,
    do_not_call_through_the_api,
);

fn c(id: i64, cmd: &str) -> String {
    format!("/api/v1/campaigns/{id}/{cmd}")
}

/// Imports `n` eligible postpaid numbers `0909000000…` into the target list.
async fn seed_target_list(api: &Api, n: usize) -> Vec<String> {
    let numbers: Vec<String> = (0..n).map(|i| format!("0909{i:06}")).collect();
    let mut csv = String::from("msisdn,plan,charge_per_cycle_vnd,list_source,name\n");
    for m in &numbers {
        csv.push_str(&format!("{m},postpaid,400000,sms,Nguyễn Văn An\n"));
    }
    let path = api.svc.dir.path().join(format!("targets-{n}.csv"));
    std::fs::write(&path, csv).expect("write csv");
    api.svc
        .app
        .store
        .import_subscribers_csv(&path, Timestamp::now())
        .await
        .expect("import");
    numbers
}

async fn create(api: &Api, body: &str) -> Value {
    let r = api.post("/api/v1/campaigns", "admin", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.json()
}

fn call_id() -> String {
    format!("{:032x}@api-test", rand::random::<u128>())
}

async fn claim(store: &Store, id: i64, limit: u32, now: Timestamp) -> Vec<ClaimedAttempt> {
    let program = ProgramConfig {
        today: Some(jiff::civil::date(2021, 11, 27)),
        ..ProgramConfig::default()
    };
    store
        .claim_due(
            &ClaimRequest {
                campaign_id: id,
                instance: "api-test",
                limit,
                now,
                program: &program,
            },
            call_id,
        )
        .await
        .expect("claim")
        .attempts
}

async fn campaign_commands_allowed_and_refused(db: Db) {
    let api = Api::start(db, "").await;
    seed_target_list(&api, 4).await;
    let created = create(
        &api,
        r#"{"name":"Mời đợt 1","kind":"invitation","policy":{"max_concurrent":5,
            "calling_windows":["08:00-11:30","13:30-20:00"],"retry":{"busy":"5m"}}}"#,
    )
    .await;
    assert_eq!(created["contacts"], 4, "{created}");
    let camp = &created["campaign"];
    let id = camp["id"].as_i64().expect("id");
    assert_eq!(camp["state"], "draft");
    assert_eq!(camp["kind"], "invitation");
    assert_eq!(camp["dialplan"], "invite", "the kind's bundled plan");
    assert_eq!(camp["policy"]["max_concurrent"], 5);
    assert_eq!(camp["policy"]["retry"]["busy"], "5m");
    assert_eq!(
        camp["policy"]["ring_timeout"], "30s",
        "defaults fill the rest"
    );
    assert_eq!(
        camp["policy"]["calling_windows"],
        serde_json::json!(["08:00-11:30", "13:30-20:00"])
    );
    assert_eq!(camp["progress"]["waiting"], 4);

    // Refused creations name the field and write nothing.
    let r = api
        .post(
            "/api/v1/campaigns",
            "admin",
            r#"{"name":"Mời đợt 1","kind":"invitation"}"#,
        )
        .await;
    let e = refused(&r, StatusCode::CONFLICT, "campaign_exists");
    assert_eq!(
        (e["field"].as_str(), e["campaign_id"].as_i64()),
        (Some("name"), Some(id))
    );
    for (body, field) in [
        (
            r#"{"name":"x","kind":"invitation","policy":{"max_cps":0}}"#,
            "policy.max_cps",
        ),
        (
            r#"{"name":"x","kind":"invitation","policy":{"dialplan":"nope"}}"#,
            "policy.dialplan",
        ),
        (
            r#"{"name":"x","kind":"survey","policy":{"dialplan":"9090 registration","retry":{"busy":"soon"}}}"#,
            "policy.retry.busy",
        ),
        (
            r#"{"name":"x","kind":"invitation","policy":{"calling_windows":["20:00-08:00"]}}"#,
            "policy.calling_windows[0]",
        ),
        (
            r#"{"name":"x","kind":"invitation","policy":{"kind":"survey"}}"#,
            "policy.kind",
        ),
        (
            r#"{"name":"x","kind":"invitation","policy":{"colour":"red"}}"#,
            "policy.colour",
        ),
        (r#"{"name":"  ","kind":"invitation"}"#, "name"),
        (r#"{"name":"x","kind":"fax"}"#, "kind"),
        (r#"{"kind":"survey"}"#, "name"),
    ] {
        invalid(&api.post("/api/v1/campaigns", "admin", body).await, field);
    }
    let r = api
        .post(
            "/api/v1/campaigns",
            "supervisor",
            r#"{"name":"y","kind":"survey"}"#,
        )
        .await;
    refused(&r, StatusCode::FORBIDDEN, "forbidden");
    let all = ok(&api.get("/api/v1/campaigns", "supervisor").await);
    assert_eq!(all["campaigns"].as_array().map(Vec::len), Some(1), "{all}");

    // Every transition, allowed and refused; repeating one is harmless.
    let step = |cmd: &'static str, want: &'static str, changed: bool| {
        let api = &api;
        async move {
            let r = api.post(&c(id, cmd), "admin", "").await;
            let v = ok(&r);
            assert_eq!(
                (v["campaign"]["state"].as_str(), v["changed"].as_bool()),
                (Some(want), Some(changed)),
                "{cmd}: {v}"
            );
        }
    };
    let refuse = |cmd: &'static str, state: &'static str| {
        let api = &api;
        async move {
            let r = api.post(&c(id, cmd), "admin", "{}").await;
            let e = refused(&r, StatusCode::CONFLICT, "invalid_campaign_state");
            assert_eq!(e["state"], state, "{cmd}");
            assert_eq!(e["command"], cmd);
            e["message"].as_str().unwrap_or("").to_owned()
        }
    };
    refuse("pause", "draft").await;
    assert!(refuse("resume", "draft").await.contains("use start"));
    step("start", "running", true).await;
    step("start", "running", false).await;
    step("resume", "running", false).await;
    step("pause", "paused", true).await;
    step("pause", "paused", false).await;
    assert!(refuse("start", "paused").await.contains("use resume"));
    step("resume", "running", true).await;
    let stopped = api.post(&c(id, "stop"), "admin", "{}").await;
    let stopped = ok(&stopped);
    assert_eq!(stopped["campaign"]["state"], "stopped");
    assert!(stopped["campaign"]["ended_at"].is_string(), "{stopped}");
    step("stop", "stopped", false).await;
    for cmd in ["start", "pause", "resume"] {
        assert!(refuse(cmd, "stopped").await.contains("cannot run again"));
    }
    let row = api
        .svc
        .app
        .store
        .campaign(id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(
        row.state,
        CampaignState::Stopped,
        "the store holds the state"
    );

    // Draft → stopped directly; an empty survey completes when started.
    let b = create(&api, r#"{"name":"Mời đợt 2","kind":"invitation"}"#).await;
    let b = b["campaign"]["id"].as_i64().expect("id");
    let v = ok(&api.post(&c(b, "stop"), "admin", "").await);
    assert_eq!(v["campaign"]["state"], "stopped");
    let empty = create(&api, r#"{"name":"Khảo sát trống","kind":"survey"}"#).await;
    assert_eq!(empty["contacts"], 0);
    assert_eq!(empty["campaign"]["dialplan"], "survey");
    let e = empty["campaign"]["id"].as_i64().expect("id");
    let v = ok(&api.post(&c(e, "start"), "admin", "").await);
    assert_eq!(
        (v["campaign"]["state"].as_str(), v["changed"].as_bool()),
        (Some("completed"), Some(true))
    );
    for cmd in ["start", "pause", "resume", "stop"] {
        let r = api.post(&c(e, cmd), "admin", "").await;
        let err = refused(&r, StatusCode::CONFLICT, "invalid_campaign_state");
        assert_eq!(err["state"], "completed", "{cmd}");
    }

    // Unknown campaigns, malformed ids and bodies, the wrong role.
    for cmd in ["start", "pause", "resume", "stop"] {
        refused(
            &api.post(&c(999_999, cmd), "admin", "").await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        let r = api
            .post(&format!("/api/v1/campaigns/abc/{cmd}"), "admin", "")
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
        invalid(
            &api.post(&c(b, cmd), "admin", r#"{"now":true}"#).await,
            "now",
        );
        refused(
            &api.post(&c(id, cmd), "supervisor", "").await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    refused(
        &api.get("/api/v1/campaigns/999999", "supervisor").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Filters.
    let surveys = ok(&api.get("/api/v1/campaigns?kind=survey", "supervisor").await);
    assert_eq!(surveys["campaigns"].as_array().map(Vec::len), Some(1));
    let stopped = ok(&api
        .get("/api/v1/campaigns?state=stopped", "supervisor")
        .await);
    let names: Vec<&str> = stopped["campaigns"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Mời đợt 2", "Mời đợt 1"], "newest first");
    let r = api
        .get("/api/v1/campaigns?state=asleep", "supervisor")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    api.stop().await;
}

async fn progress_snapshot_and_metrics_follow_the_store(db: Db) {
    // A trunk (with no keepalive) makes 9090 the outbound line of the supervisors' view.
    let port = support::free_port();
    let api = Api::start(
        db,
        &format!("[trunk]\nhost = \"127.0.0.1\"\nport = {port}\noptions_interval = \"0s\"\n"),
    )
    .await;
    seed_target_list(&api, 8).await;
    let created = create(&api, r#"{"name":"mời-1","kind":"invitation"}"#).await;
    let id = created["campaign"]["id"].as_i64().expect("id");
    ok(&api.post(&c(id, "start"), "admin", "").await);
    let s = &api.svc.app.store;
    let t = api.now();
    let a = claim(s, id, 6, t).await;
    assert_eq!(a.len(), 6);
    for x in &a {
        assert!(s.attempt_started(x.attempt_id, t).await.expect("started"));
    }
    let later = |m: i64| t + SignedDuration::from_mins(m);
    // 0 dialing; 1 in call; 2 busy → retry; 3 registered; 4 opted out; 5 603.
    s.attempt_answered(a[1].attempt_id, t)
        .await
        .expect("answered");
    s.finish_attempt(a[2].attempt_id, &AttemptEnd::from_sip(486, false, later(1)))
        .await
        .expect("busy");
    s.attempt_answered(a[3].attempt_id, t)
        .await
        .expect("answered");
    s.record_flow_outcome(a[3].attempt_id, FlowOutcome::Registered, None, t)
        .await
        .expect("outcome");
    s.finish_attempt(a[3].attempt_id, &AttemptEnd::answered(t, later(2)))
        .await
        .expect("finish");
    s.attempt_answered(a[4].attempt_id, t)
        .await
        .expect("answered");
    s.opt_out_attempt(a[4].attempt_id, t)
        .await
        .expect("opt out");
    s.finish_attempt(a[4].attempt_id, &AttemptEnd::answered(t, later(2)))
        .await
        .expect("finish");
    s.finish_attempt(a[5].attempt_id, &AttemptEnd::from_sip(603, false, later(1)))
        .await
        .expect("603");
    api.clock.advance(SignedDuration::from_mins(3));

    let v = ok(&api
        .get(&format!("/api/v1/campaigns/{id}"), "supervisor")
        .await);
    let p = &v["progress"];
    let counts: Vec<i64> = [
        "contacts",
        "waiting",
        "dialing",
        "in_call",
        "retry_pending",
        "done",
    ]
    .iter()
    .map(|k| p[k].as_i64().unwrap_or(-1))
    .collect();
    assert_eq!(counts, [8, 2, 1, 1, 1, 3], "{p}");
    assert_eq!(p["done_by_reason"]["completed"], 1);
    assert_eq!(p["done_by_reason"]["rejected"], 1);
    assert_eq!(p["done_by_reason"]["opted_out"], 1);
    assert_eq!(p["done_by_reason"]["max_attempts"], 0, "zero-filled");
    assert_eq!(p["done_by_disposition"]["answered"], 2);
    assert_eq!(p["done_by_disposition"]["rejected"], 1);
    assert_eq!(p["done_by_disposition"]["busy"], 0);
    assert_eq!(p["attempts"], 4);
    assert_eq!(p["attempts_by_disposition"]["answered"], 2);
    assert_eq!(p["attempts_by_disposition"]["busy"], 1);
    assert_eq!(p["attempts_by_disposition"]["rejected"], 1);
    assert_eq!(p["outcomes"]["registered"], 1);
    assert_eq!(p["outcomes"]["opted_out"], 1);
    assert_eq!(p["outcomes"]["not_interested"], 0);
    assert_eq!(p["answer_rate"], 0.5);
    assert_eq!(
        p["next_due"],
        api.now().to_string(),
        "two contacts are due now"
    );
    // The list carries the same numbers.
    let list = ok(&api.get("/api/v1/campaigns", "supervisor").await);
    assert_eq!(list["campaigns"][0]["progress"], *p);

    // The live view: the campaign, the outbound queue, and the queue on line 9090.
    let snap = ok(&api.get("/api/v1/supervisor/snapshot", "supervisor").await);
    let sc = &snap["campaigns"];
    assert_eq!(sc["running"], 1, "{sc}");
    assert_eq!(sc["campaigns"][0]["name"], "mời-1");
    assert_eq!(sc["campaigns"][0]["state"], "running");
    assert_eq!(sc["campaigns"][0]["progress"], *p);
    let q = &sc["queue"];
    assert_eq!(
        (
            q["campaigns"].as_i64(),
            q["waiting"].as_i64(),
            q["dialing"].as_i64()
        ),
        (Some(1), Some(2), Some(1))
    );
    assert_eq!(
        (
            q["in_call"].as_i64(),
            q["retry_pending"].as_i64(),
            q["done"].as_i64()
        ),
        (Some(1), Some(1), Some(3))
    );
    assert_eq!(q["done_by_disposition"]["answered"], 2);
    let line = snap["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line"] == "9090")
        .unwrap_or_else(|| panic!("line 9090 listed: {}", snap["lines"]));
    assert_eq!(line["outbound_queue"], *q);
    assert_eq!(snap["trunk"]["configured"], true);
    assert_eq!(
        snap["trunk"]["health"], "unknown",
        "no keepalive, no REGISTER"
    );

    // The same in /metrics.
    let text = api
        .request(hyper::http::Method::GET, "/metrics", None, None, &[])
        .await
        .text();
    for want in [
        r#"tongdai_campaign_contacts{campaign="mời-1",kind="invitation",state="waiting"} 2"#,
        r#"tongdai_campaign_contacts{campaign="mời-1",kind="invitation",state="dialing"} 1"#,
        r#"tongdai_campaign_contacts{campaign="mời-1",kind="invitation",state="in_call"} 1"#,
        r#"tongdai_campaign_contacts{campaign="mời-1",kind="invitation",state="retry_pending"} 1"#,
        r#"tongdai_campaign_contacts{campaign="mời-1",kind="invitation",state="done"} 3"#,
        r#"tongdai_campaign_state{campaign="mời-1",kind="invitation",state="running"} 1"#,
        r#"tongdai_campaign_state{campaign="mời-1",kind="invitation",state="paused"} 0"#,
        r#"tongdai_campaign_attempts{campaign="mời-1",disposition="busy"} 1"#,
        r#"tongdai_campaign_attempts{campaign="mời-1",disposition="no_answer"} 0"#,
        r#"tongdai_campaign_contacts_done{campaign="mời-1",reason="opted_out"} 1"#,
        r#"tongdai_campaign_contacts_done_by_disposition{campaign="mời-1",disposition="rejected"} 1"#,
        r#"tongdai_campaign_outcomes{campaign="mời-1",outcome="registered"} 1"#,
        "tongdai_trunk_configured 1",
        "tongdai_trunk_up 0",
        "tongdai_satisfaction_answers 0",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
        // The dialer's hold (written as the dialer runtime writes it) shows on the campaign.
        s.set_campaign_hold(
            id,
            "node-a",
            Some((
                "trunk_unreachable",
                "trunk_unreachable: no answer to OPTIONS",
            )),
            t,
        )
        .await
        .expect("hold");
        let v = ok(&api
            .get(&format!("/api/v1/campaigns/{id}"), "supervisor")
            .await);
        assert_eq!(v["progress"]["hold"]["code"], "trunk_unreachable");
        assert_eq!(v["progress"]["hold"]["instance"], "node-a");
        s.set_campaign_hold(id, "node-a", None, t)
            .await
            .expect("clear");
        let v = ok(&api
            .get(&format!("/api/v1/campaigns/{id}"), "supervisor")
            .await);
        assert!(v["progress"]["hold"].is_null(), "{v}");
    }

    // Paused through the API: the dialer's next claim gets nothing.
    ok(&api.post(&c(id, "pause"), "admin", "").await);
    let held = s
        .claim_due(
            &ClaimRequest {
                campaign_id: id,
                instance: "api-test",
                limit: 5,
                now: api.now(),
                program: &ProgramConfig::default(),
            },
            call_id,
        )
        .await
        .expect("claim");
    assert!(held.attempts.is_empty());
    assert_eq!(
        held.held,
        Some(ClaimHold::NotRunning(CampaignState::Paused))
    );
    let snap = ok(&api.get("/api/v1/supervisor/snapshot", "supervisor").await);
    assert_eq!(snap["campaigns"]["running"], 0);
    assert_eq!(
        snap["campaigns"]["queue"]["campaigns"], 1,
        "paused still queues"
    );
    api.stop().await;
}

/// Registers `msisdn` (fanpage, specialty 5) and takes it through the Vinmec queue to
/// `consulted`; returns the registration id.
async fn consulted(api: &Api, msisdn: &str, name: &str) -> i64 {
    let r = api
        .post(
            "/api/v1/fanpage/registrations",
            "fanpage",
            &serde_json::json!({"msisdn": msisdn, "name": name, "specialty": 5,
                "fanpage_ref": format!("post-1/{msisdn}")})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.json()["registration_id"].as_i64().expect("id");
    let q = |a: &str| format!("/api/v1/vinmec/queue/{id}/{a}");
    ok(&api.post(&q("claim"), "vinmec", "{}").await);
    ok(&api
        .post(
            &q("prescreen"),
            "vinmec",
            r#"{"need":"khám thai","routed_specialty":5}"#,
        )
        .await);
    ok(&api
        .post(
            &q("book"),
            "vinmec",
            r#"{"date":"2021-11-29","time":"09:00","method":"phone","duration_minutes":30}"#,
        )
        .await);
    ok(&api
        .post(
            &q("consulted"),
            "vinmec",
            r#"{"report":"thai kỳ bình thường"}"#,
        )
        .await);
    id
}

async fn survey_results_csv_and_satisfaction(db: Db) {
    let api = Api::start(db, "").await;
    let regs = [
        consulted(&api, "0903123001", "Trần Thị Hoa").await,
        consulted(&api, "0903123002", "=HYPERLINK(\"http://x\")").await,
        consulted(&api, "0903123003", "Lê Văn Bình").await,
        consulted(&api, "0903123004", "Phạm Thu").await,
        consulted(&api, "0903123005", "Đỗ Minh").await,
    ];
    api.clock.advance(SignedDuration::from_hours(1));
    let created = create(&api, r#"{"name":"Khảo sát đợt 1","kind":"survey"}"#).await;
    assert_eq!(created["contacts"], 5, "{created}");
    let id = created["campaign"]["id"].as_i64().expect("id");
    ok(&api.post(&c(id, "start"), "admin", "").await);
    let s = &api.svc.app.store;
    let t = api.now();
    let a = claim(s, id, 5, t).await;
    assert_eq!(a.len(), 5);
    use SurveyQuestion::*;
    let answers: [&[(SurveyQuestion, u8)]; 4] = [
        &[(Satisfaction, 5), (Resolved, 1), (Recommend, 5)],
        &[(Satisfaction, 4), (Resolved, 1), (Recommend, 3)],
        &[(Satisfaction, 2), (Resolved, 2), (Recommend, 2)],
        &[(Satisfaction, 3)], // hung up after the first question
    ];
    let later = |m: i64| t + SignedDuration::from_mins(m);
    for (attempt, given) in a.iter().zip(answers) {
        s.attempt_started(attempt.attempt_id, t)
            .await
            .expect("started");
        s.attempt_answered(attempt.attempt_id, t)
            .await
            .expect("answered");
        for &(q, v) in given {
            s.record_survey_answer(attempt.attempt_id, q, v, later(1))
                .await
                .expect("answer");
        }
        if given.len() == 3 {
            s.complete_survey(attempt.attempt_id, later(2))
                .await
                .expect("complete");
        }
        s.finish_attempt(attempt.attempt_id, &AttemptEnd::answered(t, later(3)))
            .await
            .expect("finish");
    }
    s.attempt_started(a[4].attempt_id, t)
        .await
        .expect("started");
    s.finish_attempt(a[4].attempt_id, &AttemptEnd::from_sip(486, false, later(1)))
        .await
        .expect("busy");
    assert_eq!(a[4].registration_id, Some(regs[4]));

    // The satisfaction rate, overall and for the campaign.
    let sat = ok(&api
        .get("/api/v1/supervisor/satisfaction", "supervisor")
        .await);
    for report in [&sat["overall"], &sat["campaigns"][0]["report"]] {
        assert_eq!(
            (
                report["respondents"].as_i64(),
                report["completed"].as_i64(),
                report["partial"].as_i64()
            ),
            (Some(4), Some(3), Some(1)),
            "{sat}"
        );
        let sc = &report["satisfaction"];
        assert_eq!(sc["answers"], 4);
        assert_eq!(sc["histogram"], serde_json::json!([0, 1, 1, 1, 1]));
        assert_eq!(sc["share_4_5"], 0.5);
        assert_eq!(sc["mean"], 3.5);
        assert_eq!(report["resolved"]["yes"], 2);
        assert_eq!(report["resolved"]["no"], 1);
        assert_eq!(report["recommend"]["answers"], 3);
    }
    assert_eq!(sat["campaigns"][0]["name"], "Khảo sát đợt 1");
    assert_eq!(sat["campaigns"][0]["campaign_id"], id);
    let snap = ok(&api.get("/api/v1/supervisor/snapshot", "supervisor").await);
    assert_eq!(snap["satisfaction"], sat, "the snapshot shows the same");
    let text = api
        .request(hyper::http::Method::GET, "/metrics", None, None, &[])
        .await
        .text();
    for want in [
        "tongdai_satisfaction_mean 3.5",
        "tongdai_satisfaction_share_4_5 0.5",
        "tongdai_satisfaction_answers 4",
        r#"tongdai_campaign_satisfaction_mean{campaign="Khảo sát đợt 1"} 3.5"#,
        r#"tongdai_campaign_outcomes{campaign="Khảo sát đợt 1",outcome="survey_completed"} 3"#,
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }

    // The CSV: BOM, Vietnamese headers, one line per contact with its answers.
    let r = api.get("/api/v1/surveys/results.csv", "admin").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    let cd = r.headers["content-disposition"].to_str().unwrap_or("");
    assert!(cd.contains("khao-sat-20211127.csv"), "{cd}");
    assert!(r.body.starts_with(b"\xEF\xBB\xBF"), "UTF-8 BOM for Excel");
    let rows = parse_csv(&r.body[3..], b',');
    assert_eq!(
        rows[0],
        [
            "Mã chiến dịch",
            "Chiến dịch",
            "Mã đăng ký",
            "Số điện thoại",
            "Họ tên",
            "Chuyên khoa đăng ký",
            "Thời gian tư vấn",
            "Kết quả khảo sát",
            "Số cuộc gọi",
            "Kết quả cuộc gọi gần nhất",
            "Thời gian trả lời",
            "Mức độ hài lòng (1-5)",
            "Bác sĩ giải đáp được vấn đề",
            "Sẵn sàng giới thiệu (1-5)",
        ]
    );
    assert_eq!(rows.len(), 6, "{rows:?}");
    let want: [[&str; 14]; 5] = [
        [
            &id.to_string(),
            "Khảo sát đợt 1",
            &regs[0].to_string(),
            "=\"0903123001\"",
            "Trần Thị Hoa",
            "Khoa sản",
            "27/11/2021 10:00",
            "Hoàn thành",
            "1",
            "Nghe máy",
            "27/11/2021 11:01",
            "5",
            "Có",
            "5",
        ],
        [
            &id.to_string(),
            "Khảo sát đợt 1",
            &regs[1].to_string(),
            "=\"0903123002\"",
            "'=HYPERLINK(\"http://x\")",
            "Khoa sản",
            "27/11/2021 10:00",
            "Hoàn thành",
            "1",
            "Nghe máy",
            "27/11/2021 11:01",
            "4",
            "Có",
            "3",
        ],
        [
            &id.to_string(),
            "Khảo sát đợt 1",
            &regs[2].to_string(),
            "=\"0903123003\"",
            "Lê Văn Bình",
            "Khoa sản",
            "27/11/2021 10:00",
            "Hoàn thành",
            "1",
            "Nghe máy",
            "27/11/2021 11:01",
            "2",
            "Không",
            "2",
        ],
        [
            &id.to_string(),
            "Khảo sát đợt 1",
            &regs[3].to_string(),
            "=\"0903123004\"",
            "Phạm Thu",
            "Khoa sản",
            "27/11/2021 10:00",
            "Trả lời một phần (sẽ gọi lại)",
            "1",
            "Nghe máy",
            "27/11/2021 11:01",
            "3",
            "",
            "",
        ],
        [
            &id.to_string(),
            "Khảo sát đợt 1",
            &regs[4].to_string(),
            "=\"0903123005\"",
            "Đỗ Minh",
            "Khoa sản",
            "27/11/2021 10:00",
            "Chờ gọi lại",
            "1",
            "Máy bận",
            "",
            "",
            "",
            "",
        ],
    ];
    for (got, want) in rows[1..].iter().zip(want) {
        assert_eq!(got, &want, "{rows:?}");
    }
    // Supervisors get masked numbers; `;` for Excel in a `;` locale; one campaign.
    let r = api
        .get(
            &format!("/api/v1/surveys/results.csv?sep=semicolon&campaign={id}"),
            "supervisor",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let rows = parse_csv(&r.body[3..], b';');
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[1][3], "0903***001");
    assert!(
        !r.text().contains("0903123001"),
        "no full number for supervisors"
    );
    // Errors: an invitation campaign, a campaign that does not exist, a bad parameter.
    let inv = create(&api, r#"{"name":"mời","kind":"invitation"}"#).await;
    let inv = inv["campaign"]["id"].as_i64().expect("id");
    let r = api
        .get(
            &format!("/api/v1/surveys/results.csv?campaign={inv}"),
            "admin",
        )
        .await;
    invalid(&r, "campaign");
    let r = api
        .get("/api/v1/surveys/results.csv?campaign=999999", "admin")
        .await;
    refused(&r, StatusCode::NOT_FOUND, "not_found");
    let r = api
        .get("/api/v1/surveys/results.csv?sep=tab", "admin")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    refused(
        &api.get("/api/v1/surveys/results.csv", "vinmec").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    api.stop().await;
}

fn parse_csv(bytes: &[u8], sep: u8) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(sep)
        .from_reader(bytes)
        .records()
        .map(|r| r.expect("csv row").iter().map(str::to_owned).collect())
        .collect()
}

async fn do_not_call_through_the_api(db: Db) {
    let api = Api::start(db, "").await;
    let numbers = seed_target_list(&api, 3).await;
    let created = create(&api, r#"{"name":"mời-dnc","kind":"invitation"}"#).await;
    let id = created["campaign"]["id"].as_i64().expect("id");
    ok(&api.post(&c(id, "start"), "admin", "").await);

    // A complaint: customer care puts the number on the list, no shell needed.
    let r = api
        .post(
            "/api/v1/do-not-call",
            "admin",
            &format!(r#"{{"msisdn":"{}","note":"khiếu nại #123"}}"#, numbers[1]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let v = r.json();
    assert_eq!(v["added"], true);
    assert_eq!(v["entry"]["msisdn"], "+84909000001");
    assert_eq!(v["entry"]["source"], "supervisor");
    assert_eq!(v["entry"]["note"], "khiếu nại #123");
    // Again (any number form): not an error, the first entry stands.
    let v = ok(&api
        .post(
            "/api/v1/do-not-call",
            "admin",
            r#"{"msisdn":"+84 909 000 001","note":"lần 2"}"#,
        )
        .await);
    assert_eq!(
        (v["added"].as_bool(), v["entry"]["note"].as_str()),
        (Some(false), Some("khiếu nại #123"))
    );
    // Its waiting contact is closed at once; the dialer never claims it.
    let p = ok(&api
        .get(&format!("/api/v1/campaigns/{id}"), "supervisor")
        .await);
    assert_eq!(p["progress"]["waiting"], 2, "{p}");
    assert_eq!(p["progress"]["done_by_reason"]["opted_out"], 1);
    let claimed = claim(&api.svc.app.store, id, 10, api.now()).await;
    let dialled: Vec<&str> = claimed.iter().map(|a| a.msisdn.as_str()).collect();
    assert_eq!(dialled, ["+84909000000", "+84909000002"]);

    // Bad requests name the field and write nothing.
    invalid(
        &api.post("/api/v1/do-not-call", "admin", r#"{"msisdn":"12345"}"#)
            .await,
        "msisdn",
    );
    let long = "x".repeat(501);
    invalid(
        &api.post(
            "/api/v1/do-not-call",
            "admin",
            &format!(r#"{{"msisdn":"0909000002","note":"{long}"}}"#),
        )
        .await,
        "note",
    );
    invalid(
        &api.post("/api/v1/do-not-call", "admin", "{}").await,
        "msisdn",
    );
    refused(
        &api.post(
            "/api/v1/do-not-call",
            "supervisor",
            r#"{"msisdn":"0909000002"}"#,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert!(
        !api.svc
            .app
            .store
            .is_do_not_call("0909000002")
            .await
            .expect("read"),
        "nothing written"
    );

    // Supervisors read the list masked; admins in full; one number can be looked up.
    let list = ok(&api.get("/api/v1/do-not-call", "supervisor").await);
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["msisdn"], "0909***001");
    assert_eq!(list["items"][0]["note"], "khiếu nại #123");
    let list = ok(&api.get("/api/v1/do-not-call", "admin").await);
    assert_eq!(list["items"][0]["msisdn"], "+84909000001");
    let one = ok(&api
        .get("/api/v1/do-not-call?msisdn=0909000001", "supervisor")
        .await);
    assert_eq!(one["total"], 1);
    let none = ok(&api
        .get("/api/v1/do-not-call?msisdn=0909000002", "supervisor")
        .await);
    assert_eq!(none["total"], 0);
    let r = api
        .get("/api/v1/do-not-call?msisdn=abc", "supervisor")
        .await;
    assert_eq!(
        (r.status, r.error().1.as_str()),
        (StatusCode::BAD_REQUEST, "msisdn")
    );
    let r = api.get("/api/v1/do-not-call?limit=0", "supervisor").await;
    assert_eq!(
        (r.status, r.error().1.as_str()),
        (StatusCode::BAD_REQUEST, "limit")
    );
    refused(
        &api.get("/api/v1/do-not-call", "vinmec").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    api.stop().await;
}

// ---- the trunk ---------------------------------------------------------------------------

/// Polls the trunk endpoint (bounded) until `f` holds.
async fn wait_trunk(api: &Api, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = ok(&api.get("/api/v1/supervisor/trunk", "supervisor").await);
        if f(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("trunk never {what}: {last}");
}

fn trunk_toml(port: u16) -> String {
    format!(
        "[sip]\nt1 = \"50ms\"\n[trunk]\nhost = \"127.0.0.1\"\nport = {port}\n\
         options_interval = \"500ms\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_answering_options_shows_reachable() {
    let port = support::free_port();
    let _uas = support::sipp::options_uas(port, &support::repo().join("tests/out/api_trunk_up"));
    let api = Api::start(Db::Sqlite, &trunk_toml(port)).await;
    let t = wait_trunk(&api, "reachable", |t| t["reachable"] == true).await;
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["configured"], true);
    assert_eq!(t["transport"], "udp");
    assert_eq!(t["addr"], format!("127.0.0.1:{port}"));
    assert_eq!(t["options_status"], 200);
    assert!(
        t["options_rtt_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{t}"
    );
    assert_eq!(t["register"], false);
    let snap = ok(&api.get("/api/v1/supervisor/snapshot", "supervisor").await);
    assert_eq!(snap["trunk"]["health"], "up");
    let text = api
        .request(hyper::http::Method::GET, "/metrics", None, None, &[])
        .await
        .text();
    for want in [
        "tongdai_trunk_up 1",
        "tongdai_trunk_reachable 1",
        "tongdai_trunk_registered 0",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("tongdai_trunk_options_rtt_seconds ") && !l.ends_with("NaN")),
        "{text}"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_with_nothing_listening_shows_unreachable() {
    let port = support::free_port();
    let api = Api::start(Db::Sqlite, &trunk_toml(port)).await;
    // Timer F (64·T1 = 3.2 s) ends the first unanswered OPTIONS.
    let t = wait_trunk(&api, "unreachable", |t| t["reachable"] == false).await;
    assert_eq!(t["health"], "down", "{t}");
    assert!(
        t["last_error"].as_str().unwrap_or("").contains("OPTIONS"),
        "{t}"
    );
    assert!(t["options_rtt_ms"].is_null());
    let text = api
        .request(hyper::http::Method::GET, "/metrics", None, None, &[])
        .await
        .text();
    for want in [
        "tongdai_trunk_up 0",
        "tongdai_trunk_reachable 0",
        "tongdai_trunk_configured 1",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_trunk_the_section_says_so() {
    let api = Api::start(Db::Sqlite, "").await;
    let t = ok(&api.get("/api/v1/supervisor/trunk", "supervisor").await);
    assert_eq!(
        (t["health"].as_str(), t["configured"].as_bool()),
        (Some("not_configured"), Some(false))
    );
    refused(
        &api.get("/api/v1/supervisor/trunk", "fanpage").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let snap = ok(&api.get("/api/v1/supervisor/snapshot", "supervisor").await);
    assert!(
        snap["lines"]
            .as_array()
            .is_some_and(|l| l.iter().all(|l| l["outbound_queue"].is_null())),
        "{snap}"
    );
    api.stop().await;
}
