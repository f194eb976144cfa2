//! The Vinmec scheduling queue and the fanpage intake through the HTTP API, on SQLite
//! and PostgreSQL: every queue transition allowed and refused, leases that run out on a
//! clock the test sets, idempotent retries (sequential and concurrent), field-level
//! 4xx errors that write nothing, and the CSV export Excel opens.

use crate::support::api::{Api, Db, invalid, ok, refused};
use hyper::http::StatusCode;
use jiff::SignedDuration;
use serde_json::Value;

api_on_both_backends!(
    queue_lifecycle_allowed_and_refused,
    leases_run_out_and_return_the_entry,
    idempotent_retries_write_once,
    fanpage_intake_validates_every_field,
    csv_export_opens_in_excel,
);

fn q(id: i64, action: &str) -> String {
    format!("/api/v1/vinmec/queue/{id}/{action}")
}

async fn events(api: &Api, id: i64) -> Vec<Value> {
    let d = ok(&api
        .get(&format!("/api/v1/vinmec/queue/{id}"), "vinmec")
        .await);
    d["events"].as_array().expect("events").clone()
}

const BOOK: &str = r#"{"date":"2021-11-29","time":"09:00","method":"phone","duration_minutes":30}"#;

async fn queue_lifecycle_allowed_and_refused(db: Db) {
    let api = Api::start(db, "").await;
    let a = api.fanpage("0903123001").await;
    let b = api.fanpage("0903123002").await;
    let c = api.fanpage("0903123003").await;

    let list = ok(&api
        .get("/api/v1/vinmec/queue?status=waiting", "vinmec")
        .await);
    assert_eq!(list["total"], 3);
    let ids: Vec<i64> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["registration_id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, vec![a, b, c], "oldest first");
    assert_eq!(list["items"][0]["msisdn_national"], "0903123001");

    // Claim the oldest: the registration is now Vinmec's.
    let claimed = ok(&api
        .post("/api/v1/vinmec/queue/claim", "vinmec", r#"{"count":1}"#)
        .await);
    let item = &claimed["items"][0];
    assert_eq!(item["registration_id"], a);
    assert_eq!(item["status"], "sent_to_vinmec");
    assert_eq!(item["queue_status"], "claimed");
    assert_eq!(item["claimed_by"], "vinmec");
    assert_eq!(
        item["lease_until"], "2021-11-27T03:15:00Z",
        "15 min default"
    );
    // Two schedulers never get the same customer.
    let r = api.post(&q(a, "claim"), "vinmec2", "{}").await;
    refused(&r, StatusCode::CONFLICT, "lease_held");
    assert_eq!(r.json()["holder"], "vinmec");
    let next = ok(&api
        .post("/api/v1/vinmec/queue/claim", "vinmec2", "{}")
        .await);
    assert_eq!(next["items"][0]["registration_id"], b);

    // Booking needs the pre-screening first; consulting needs the booking.
    refused(
        &api.post(&q(a, "book"), "vinmec", BOOK).await,
        StatusCode::CONFLICT,
        "prescreen_required",
    );
    refused(
        &api.post(&q(a, "consulted"), "vinmec", r#"{"report":"ổn"}"#)
            .await,
        StatusCode::CONFLICT,
        "invalid_transition",
    );
    // Only the holder may work on the entry.
    refused(
        &api.post(
            &q(a, "prescreen"),
            "vinmec2",
            r#"{"need":"đau lưng","routed_specialty":4}"#,
        )
        .await,
        StatusCode::CONFLICT,
        "lease_held",
    );
    // Field by field.
    invalid(
        &api.post(
            &q(a, "prescreen"),
            "vinmec",
            r#"{"need":"đau lưng","routed_specialty":9}"#,
        )
        .await,
        "routed_specialty",
    );
    invalid(
        &api.post(
            &q(a, "prescreen"),
            "vinmec",
            r#"{"need":"  ","routed_specialty":4}"#,
        )
        .await,
        "need",
    );
    invalid(
        &api.post(&q(a, "prescreen"), "vinmec", r#"{"routed_specialty":4}"#)
            .await,
        "need",
    );
    invalid(
        &api.post(
            &q(a, "prescreen"),
            "vinmec",
            r#"{"need":"x","routed_specialty":4,"colour":1}"#,
        )
        .await,
        "colour",
    );
    let r = api.post(&q(a, "prescreen"), "vinmec", r#"{"need":"#).await;
    refused(&r, StatusCode::BAD_REQUEST, "malformed_json");
    let r = api
        .post(
            &q(a, "prescreen"),
            "vinmec",
            r#"{"need":"x","routed_specialty":"four"}"#,
        )
        .await;
    invalid(&r, "routed_specialty");
    let pre = ok(&api
        .post(
            &q(a, "prescreen"),
            "vinmec",
            r#"{"need":"Đau lưng kéo dài","routed_specialty":4}"#,
        )
        .await);
    assert_eq!(pre["need"], "Đau lưng kéo dài");
    assert_eq!(pre["routed_specialty"], 4);
    assert_eq!(pre["status"], "sent_to_vinmec");

    // Booking: every field checked against the program.
    for (body, field) in [
        (
            r#"{"date":"2021-11-29","time":"09:00","method":"phone","duration_minutes":31}"#,
            "duration_minutes",
        ),
        (
            r#"{"date":"2021-11-29","time":"09:00","method":"video","duration_minutes":20}"#,
            "video_reason",
        ),
        (
            r#"{"date":"2021-12-31","time":"09:00","method":"phone","duration_minutes":20}"#,
            "date",
        ),
        (
            r#"{"date":"2021-11-29","time":"09:00","method":"fax","duration_minutes":20}"#,
            "method",
        ),
        (
            r#"{"date":"2021-11-29","time":"25:00","method":"phone","duration_minutes":20}"#,
            "time",
        ),
        (
            r#"{"date":"29/11/2021","time":"09:00","method":"phone","duration_minutes":20}"#,
            "date",
        ),
        (
            r#"{"time":"09:00","method":"phone","duration_minutes":20}"#,
            "date",
        ),
        (
            r#"{"date":"2021-11-27","time":"08:00","method":"phone","duration_minutes":20}"#,
            "date",
        ),
    ] {
        invalid(&api.post(&q(a, "book"), "vinmec", body).await, field);
    }
    let booked = ok(&api.post(&q(a, "book"), "vinmec", BOOK).await);
    assert_eq!(booked["status"], "appointment_booked");
    assert_eq!(booked["queue_status"], "done");
    assert_eq!(booked["appointment_at"], "2021-11-29T02:00:00Z");
    assert_eq!(booked["appointment_local"], "2021-11-29 09:00");
    assert_eq!(booked["appointment_method"], "phone");
    assert_eq!(booked["claimed_by"], Value::Null);
    // Refused and invalid requests wrote nothing: creation, claim, prescreen, book.
    let actions: Vec<String> = events(&api, a)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(actions, vec!["", "claim", "prescreen", "book"]);
    // A video reschedule, then the consultation; a consulted customer stays consulted.
    let moved = ok(&api
        .post(
            &q(a, "book"),
            "vinmec2",
            r#"{"date":"2021-11-30","time":"14:30","method":"video","video_reason":"cần xem vết mổ","duration_minutes":20}"#,
        )
        .await);
    assert_eq!(moved["appointment_local"], "2021-11-30 14:30");
    assert_eq!(moved["status"], "appointment_booked");
    invalid(
        &api.post(&q(a, "consulted"), "vinmec", r#"{"report":""}"#)
            .await,
        "report",
    );
    let done = ok(&api
        .post(
            &q(a, "consulted"),
            "vinmec",
            r#"{"report":"Tư vấn xong, hẹn tái khám"}"#,
        )
        .await);
    assert_eq!(done["status"], "consulted");
    assert_eq!(done["consulted_at"], "2021-11-27T03:00:00Z");
    refused(
        &api.post(&q(a, "consulted"), "vinmec", r#"{"report":"lần 2"}"#)
            .await,
        StatusCode::CONFLICT,
        "invalid_transition",
    );
    refused(
        &api.post(&q(a, "cancel"), "vinmec", r#"{"reason":"x"}"#)
            .await,
        StatusCode::CONFLICT,
        "invalid_transition",
    );
    refused(
        &api.post(&q(a, "claim"), "vinmec", "{}").await,
        StatusCode::CONFLICT,
        "invalid_state",
    );

    // b: unreachable returns it to the queue; a new claim retries it.
    let un = ok(&api
        .post(
            &q(b, "unreachable"),
            "vinmec2",
            r#"{"note":"không nghe máy"}"#,
        )
        .await);
    assert_eq!(un["status"], "unreachable");
    assert_eq!(un["queue_status"], "waiting");
    assert_eq!(un["unreachable_count"], 1);
    let again = ok(&api.post(&q(b, "claim"), "vinmec", "{}").await);
    assert_eq!(again["status"], "sent_to_vinmec");
    // Release gives it back; a lease you no longer hold cannot be renewed.
    let rel = ok(&api.post(&q(b, "release"), "vinmec", "").await);
    assert_eq!(rel["queue_status"], "waiting");
    refused(
        &api.post(&q(b, "renew"), "vinmec", "{}").await,
        StatusCode::CONFLICT,
        "lease_required",
    );
    // Missed appointment: booked → unreachable without a claim.
    ok(&api.post(&q(b, "claim"), "vinmec", "{}").await);
    ok(&api
        .post(
            &q(b, "prescreen"),
            "vinmec",
            r#"{"need":"ho","routed_specialty":1}"#,
        )
        .await);
    ok(&api.post(&q(b, "book"), "vinmec", BOOK).await);
    let missed = ok(&api.post(&q(b, "unreachable"), "vinmec2", "{}").await);
    assert_eq!(missed["status"], "unreachable");
    assert_eq!(missed["unreachable_count"], 2);

    // c: cancelled — nobody books or claims it afterwards.
    invalid(
        &api.post(&q(c, "cancel"), "vinmec", r#"{"reason":""}"#)
            .await,
        "reason",
    );
    let can = ok(&api
        .post(&q(c, "cancel"), "vinmec", r#"{"reason":"khách đổi ý"}"#)
        .await);
    assert_eq!(can["status"], "cancelled");
    assert_eq!(can["queue_status"], "cancelled");
    refused(
        &api.post(&q(c, "claim"), "vinmec", "{}").await,
        StatusCode::CONFLICT,
        "invalid_state",
    );
    refused(
        &api.post(&q(c, "book"), "vinmec", BOOK).await,
        StatusCode::CONFLICT,
        "lease_required",
    );
    // Unknown registration; malformed id.
    refused(
        &api.post(&q(9999, "claim"), "vinmec", "{}").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let r = api.get("/api/v1/vinmec/queue/abc", "vinmec").await;
    refused(&r, StatusCode::BAD_REQUEST, "invalid_path");
    // Filters and paging.
    let l = ok(&api
        .get("/api/v1/vinmec/queue?status=cancelled", "vinmec")
        .await);
    assert_eq!(l["total"], 1);
    let l = ok(&api
        .get(
            "/api/v1/vinmec/queue?registration_status=consulted",
            "vinmec",
        )
        .await);
    assert_eq!(l["items"][0]["registration_id"], a);
    let l = ok(&api
        .get("/api/v1/vinmec/queue?limit=1&offset=1", "vinmec")
        .await);
    assert_eq!(
        (
            l["total"].as_i64(),
            l["items"][0]["registration_id"].as_i64()
        ),
        (Some(3), Some(b))
    );
    let r = api.get("/api/v1/vinmec/queue?limit=0", "vinmec").await;
    assert_eq!(
        (r.status, r.error().1.as_str()),
        (StatusCode::BAD_REQUEST, "limit")
    );
    let r = api.get("/api/v1/vinmec/queue?status=lost", "vinmec").await;
    assert_eq!(
        (r.status, r.error().1.as_str()),
        (StatusCode::BAD_REQUEST, "status")
    );
    // The supervisors' summary agrees.
    let s = ok(&api.get("/api/v1/supervisor/vinmec", "supervisor").await);
    assert_eq!(s["by_status"]["done"], 1);
    assert_eq!(s["by_status"]["waiting"], 1);
    assert_eq!(s["by_status"]["cancelled"], 1);
    assert_eq!(s["by_registration_status"]["consulted"], 1);
    assert_eq!(s["by_registration_status"]["unreachable"], 1);
    api.stop().await;
}

async fn leases_run_out_and_return_the_entry(db: Db) {
    let api = Api::start(db, "").await;
    let a = api.fanpage("0903123001").await;
    let r = ok(&api
        .post(&q(a, "claim"), "vinmec", r#"{"lease_seconds":600}"#)
        .await);
    assert_eq!(r["lease_until"], "2021-11-27T03:10:00Z");
    invalid(
        &api.post(&q(a, "renew"), "vinmec", r#"{"lease_seconds":30}"#)
            .await,
        "lease_seconds",
    );
    invalid(
        &api.post(&q(a, "renew"), "vinmec", r#"{"lease_seconds":86400}"#)
            .await,
        "lease_seconds",
    );

    // One second before the end the entry is still held.
    api.clock.advance(SignedDuration::from_secs(599));
    let none = ok(&api
        .post("/api/v1/vinmec/queue/claim", "vinmec2", "{}")
        .await);
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
    let l = ok(&api
        .get("/api/v1/vinmec/queue?status=claimed", "vinmec")
        .await);
    assert_eq!(l["total"], 1);
    // Renewing pushes the end out.
    let r = ok(&api
        .post(&q(a, "renew"), "vinmec", r#"{"lease_seconds":600}"#)
        .await);
    assert_eq!(r["lease_until"], "2021-11-27T03:19:59Z");
    api.clock.advance(SignedDuration::from_secs(599));
    refused(
        &api.post(&q(a, "claim"), "vinmec2", "{}").await,
        StatusCode::CONFLICT,
        "lease_held",
    );

    // At the end it is waiting again, for everyone.
    api.clock.advance(SignedDuration::from_secs(1));
    let l = ok(&api
        .get("/api/v1/vinmec/queue?status=waiting", "vinmec")
        .await);
    assert_eq!(l["total"], 1);
    assert_eq!(l["items"][0]["queue_status"], "waiting");
    let s = ok(&api.get("/api/v1/supervisor/vinmec", "supervisor").await);
    assert_eq!(s["by_status"]["waiting"], 1);
    assert_eq!(s["by_status"]["claimed"], 0);
    // The old holder is told, and cannot act on it.
    refused(
        &api.post(&q(a, "renew"), "vinmec", "{}").await,
        StatusCode::CONFLICT,
        "lease_expired",
    );
    refused(
        &api.post(
            &q(a, "prescreen"),
            "vinmec",
            r#"{"need":"x","routed_specialty":1}"#,
        )
        .await,
        StatusCode::CONFLICT,
        "lease_expired",
    );
    let taken = ok(&api
        .post("/api/v1/vinmec/queue/claim", "vinmec2", "{}")
        .await);
    assert_eq!(taken["items"][0]["registration_id"], a);
    assert_eq!(taken["items"][0]["claimed_by"], "vinmec2");
    refused(
        &api.post(
            &q(a, "prescreen"),
            "vinmec",
            r#"{"need":"x","routed_specialty":1}"#,
        )
        .await,
        StatusCode::CONFLICT,
        "lease_held",
    );
    // The new holder's claim of an already-sent entry changes no status.
    let ev = events(&api, a).await;
    assert_eq!(ev.len(), 4, "{ev:?}");
    assert_eq!(ev[3]["from_status"], "sent_to_vinmec");
    assert_eq!(ev[3]["to_status"], "sent_to_vinmec");
    assert_eq!(ev[3]["actor"], "vinmec:vinmec2");
    api.stop().await;
}

async fn idempotent_retries_write_once(db: Db) {
    let api = Api::start(db, "").await;
    let a = api.fanpage("0903123001").await;
    let b = api.fanpage("0903123002").await;

    let first = api
        .post_key(
            "/api/v1/vinmec/queue/claim",
            "vinmec",
            r#"{"count":1}"#,
            "k-claim-1",
        )
        .await;
    assert_eq!(ok(&first)["items"][0]["registration_id"], a);
    assert!(!first.headers.contains_key("idempotent-replayed"));
    // The clock moves on; the retry still gets the first answer, and claims nothing.
    api.clock.advance(SignedDuration::from_secs(30));
    let again = api
        .post_key(
            "/api/v1/vinmec/queue/claim",
            "vinmec",
            r#"{"count":1}"#,
            "k-claim-1",
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body, "same answer");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let l = ok(&api
        .get("/api/v1/vinmec/queue?status=waiting", "vinmec")
        .await);
    assert_eq!(
        l["items"][0]["registration_id"], b,
        "b was not claimed by the retry"
    );
    // Same key, other request.
    let r = api
        .post_key(
            "/api/v1/vinmec/queue/claim",
            "vinmec",
            r#"{"count":2}"#,
            "k-claim-1",
        )
        .await;
    refused(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    assert_eq!(r.error().1, "Idempotency-Key");
    let r = api
        .post_key(&q(a, "release"), "vinmec", "{}", "k-claim-1")
        .await;
    refused(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    // Keys belong to their caller: the same key from another scheduler is new.
    let other = api
        .post_key(
            "/api/v1/vinmec/queue/claim",
            "vinmec2",
            r#"{"count":1}"#,
            "k-claim-1",
        )
        .await;
    assert_eq!(ok(&other)["items"][0]["registration_id"], b);
    invalid(
        &api.post_key("/api/v1/vinmec/queue/claim", "vinmec", "{}", "")
            .await,
        "Idempotency-Key",
    );

    // A change retried after success: one event, the same answer.
    ok(&api
        .post(
            &q(a, "prescreen"),
            "vinmec",
            r#"{"need":"mất ngủ","routed_specialty":1}"#,
        )
        .await);
    let booked = api
        .post_key(&q(a, "book"), "vinmec", BOOK, "k-book-a")
        .await;
    ok(&booked);
    let n = events(&api, a).await.len();
    for _ in 0..3 {
        let r = api
            .post_key(&q(a, "book"), "vinmec", BOOK, "k-book-a")
            .await;
        assert_eq!(r.body, booked.body);
        assert_eq!(r.headers["idempotent-replayed"], "true");
    }
    assert_eq!(events(&api, a).await.len(), n, "no second write");
    // Without the key the same request is a new change: a reschedule to the same time.
    ok(&api.post(&q(a, "book"), "vinmec", BOOK).await);
    assert_eq!(events(&api, a).await.len(), n + 1);

    // Concurrent retries of one request: exactly one applies.
    let c = api.fanpage("0903123003").await;
    let replies = futures_util::future::join_all((0..6).map(|_| {
        api.post_key(
            "/api/v1/vinmec/queue/claim",
            "vinmec",
            r#"{"count":1}"#,
            "k-race",
        )
    }))
    .await;
    for r in &replies {
        assert_eq!(ok(r)["items"][0]["registration_id"], c, "{r:?}");
        assert_eq!(r.body, replies[0].body);
    }
    let claims = events(&api, c)
        .await
        .iter()
        .filter(|e| e["action"] == "claim")
        .count();
    assert_eq!(claims, 1);

    // Fanpage intake: a retried POST registers once and answers the same.
    let body =
        r#"{"msisdn":"0912345678","name":"Lê Văn Nam","specialty":null,"fanpage_ref":"msg-77"}"#;
    let first = api
        .request(
            hyper::http::Method::POST,
            "/api/v1/fanpage/registrations",
            Some("fanpage"),
            Some(body),
            &[("idempotency-key", "intake-77")],
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
    let used = ok(&api
        .get("/api/v1/supervisor/registrations", "supervisor")
        .await)["used"]
        .clone();
    let retry = api
        .request(
            hyper::http::Method::POST,
            "/api/v1/fanpage/registrations",
            Some("fanpage"),
            Some(body),
            &[("idempotency-key", "intake-77")],
        )
        .await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(
        ok(&api
            .get("/api/v1/supervisor/registrations", "supervisor")
            .await)["used"],
        used
    );
    // Without the key: one per subscriber.
    let dup = api
        .post("/api/v1/fanpage/registrations", "fanpage", body)
        .await;
    refused(&dup, StatusCode::CONFLICT, "already_registered");
    assert_eq!(
        dup.json()["registration_id"],
        first.json()["registration_id"]
    );
    api.stop().await;
}

async fn fanpage_intake_validates_every_field(db: Db) {
    let api = Api::start(db, "[program]\ncap = 3\n").await;
    let post = |body: &'static str| api.post("/api/v1/fanpage/registrations", "fanpage", body);
    for (body, field) in [
        (
            r#"{"msisdn":"12345","name":"A","specialty":1,"fanpage_ref":"p"}"#,
            "msisdn",
        ),
        (
            r#"{"msisdn":"0243123456","name":"A","specialty":1,"fanpage_ref":"p"}"#,
            "msisdn",
        ),
        (
            r#"{"msisdn":"0903123001","name":" ","specialty":1,"fanpage_ref":"p"}"#,
            "name",
        ),
        (
            r#"{"msisdn":"0903123001","name":"A","specialty":9,"fanpage_ref":"p"}"#,
            "specialty",
        ),
        (
            r#"{"msisdn":"0903123001","name":"A","specialty":-1,"fanpage_ref":"p"}"#,
            "specialty",
        ),
        (
            r#"{"msisdn":"0903123001","name":"A","specialty":1}"#,
            "fanpage_ref",
        ),
        (
            r#"{"msisdn":"0903123001","name":"A","specialty":1,"fanpage_ref":"p","group":1}"#,
            "group",
        ),
        (r#"{"msisdn":0903123001,"name":"A","fanpage_ref":"p"}"#, ""),
    ] {
        let r = post(body).await;
        assert!(r.status.is_client_error(), "{body}: {r:?}");
        assert_eq!(r.error().1, field, "{body}: {r:?}");
    }
    // Nothing was written by any of them.
    let s = ok(&api
        .get("/api/v1/supervisor/registrations", "supervisor")
        .await);
    assert_eq!(s["used"], 0);
    let r = api
        .request(
            hyper::http::Method::POST,
            "/api/v1/fanpage/registrations",
            Some("fanpage"),
            None,
            &[("content-type", "text/plain")],
        )
        .await;
    invalid(&r, "msisdn");

    // The number in any Vietnamese form, stored as E.164.
    let r = post(r#"{"msisdn":"+84 903 123 001","name":"Trần Thị Hoa","specialty":null,"fanpage_ref":"post-9"}"#).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let v = r.json();
    assert_eq!(v["msisdn"], "+84903123001");
    assert_eq!(v["group"], 2);
    assert_eq!(v["channel"], "fanpage");
    assert_eq!(v["places_left"], 2);
    let r = post(r#"{"msisdn":"0903123001","name":"X","specialty":1,"fanpage_ref":"again"}"#).await;
    refused(&r, StatusCode::CONFLICT, "already_registered");
    api.fanpage("0903123002").await;
    api.fanpage("0903123003").await;
    let r = post(r#"{"msisdn":"0903123004","name":"X","specialty":1,"fanpage_ref":"late"}"#).await;
    refused(&r, StatusCode::CONFLICT, "cap_full");
    api.stop().await;

    // Outside the registration period.
    let api = Api::start(db, "[program]\ntoday = \"2021-12-26\"\n").await;
    let r = api
        .post(
            "/api/v1/fanpage/registrations",
            "fanpage",
            r#"{"msisdn":"0903123001","name":"A","specialty":1,"fanpage_ref":"p"}"#,
        )
        .await;
    refused(&r, StatusCode::CONFLICT, "registration_closed");
    api.stop().await;
}

async fn csv_export_opens_in_excel(db: Db) {
    let api = Api::start(db, "").await;
    let a = api.fanpage("0903123001").await;
    let r = api
        .post(
            "/api/v1/fanpage/registrations",
            "fanpage",
            r#"{"msisdn":"0903123002","name":"=HYPERLINK(\"http://x\")","specialty":2,"fanpage_ref":"@comment"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    ok(&api.post(&q(a, "claim"), "vinmec", "{}").await);
    ok(&api
        .post(
            &q(a, "prescreen"),
            "vinmec",
            r#"{"need":"Khám thai định kỳ","routed_specialty":5}"#,
        )
        .await);
    ok(&api.post(&q(a, "book"), "vinmec", BOOK).await);

    let r = api.get("/api/v1/vinmec/registrations.csv", "vinmec").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap_or("")
            .contains("dang-ky-vinmec-20211127.csv")
    );
    assert!(r.body.starts_with(b"\xEF\xBB\xBF"), "UTF-8 BOM for Excel");
    let text = std::str::from_utf8(&r.body[3..]).expect("UTF-8");
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let rows: Vec<Vec<String>> = rows
        .records()
        .map(|r| r.expect("csv row").iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert_eq!(rows[0][1], "Số điện thoại");
    assert_eq!(rows[0][12], "Chuyên khoa tiếp nhận");
    let first = &rows[1];
    assert_eq!(first[0], a.to_string());
    assert_eq!(first[1], "=\"0903123001\"", "leading zero kept in Excel");
    assert_eq!(first[2], "Trần Thị Hoa");
    assert_eq!(first[3], "Nhóm 2");
    assert_eq!(first[4], "Fanpage");
    assert_eq!(first[5], "Khoa sản");
    assert_eq!(first[6], "Đã đặt lịch");
    assert_eq!(first[7], "27/11/2021 10:00", "local time");
    assert_eq!(first[11], "Khám thai định kỳ");
    assert_eq!(first[13], "29/11/2021 09:00");
    assert_eq!(first[15], "Điện thoại");
    let second = &rows[2];
    assert_eq!(second[2], "'=HYPERLINK(\"http://x\")", "formula defused");
    assert_eq!(second[8], "'@comment");
    assert_eq!(second[6], "Đã đăng ký");
    // Semicolons for Excel in locales that use them; a status filter.
    let r = api
        .get(
            "/api/v1/vinmec/registrations.csv?sep=semicolon&status=registered",
            "vinmec",
        )
        .await;
    let text = std::str::from_utf8(&r.body[3..]).expect("UTF-8");
    assert!(text.starts_with("Mã đăng ký;Số điện thoại;"), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    let r = api
        .get("/api/v1/vinmec/registrations.csv?sep=tab", "vinmec")
        .await;
    assert_eq!(
        (r.status, r.error().1.as_str()),
        (StatusCode::BAD_REQUEST, "sep")
    );
    api.stop().await;
}
