//! The Covid-19 handbook page on its own listener, on the whole service with the test's
//! clock: the article greets the customer by given name and shows nothing else
//! personal; HEAD requests and link previewers are not opens; supervisors see the
//! counts; unknown tokens 404; after the handbook's last local day every link 410.

use hyper::StatusCode;
use serde_json::json;
use tongdai::api::handbook::link;

use crate::support::api::{Api, ok};
use crate::support::store::Db;

api_on_both_backends!(
    the_handbook_page_from_first_open_to_gone,
    every_link_is_gone_after_the_last_day,
);

const PHONE: &str = "Mozilla/5.0 (Linux; Android 12; SM-A525F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0 Mobile Safari/537.36";

async fn fetch(
    method: reqwest::Method,
    url: &str,
    ua: &str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = reqwest::Client::new()
        .request(method, url)
        .header("user-agent", ua)
        .send()
        .await
        .expect("request");
    let status = StatusCode::from_u16(r.status().as_u16()).expect("status");
    let headers = r.headers().clone();
    (status, headers, r.text().await.expect("body"))
}

async fn the_handbook_page_from_first_open_to_gone(db: Db) {
    let api = Api::start(db, "").await;
    let id = api.fanpage("0903123001").await;
    let store = &api.svc.app.store;
    let token = store.handbook_token(id, api.now()).await.expect("token");
    let mut settings = tongdai::config::Settings::from_toml_overrides("").expect("defaults");
    settings.handbook.base_url = format!("http://{}", api.svc.app.handbook_addr);
    let url = link(&settings.handbook, &token);
    assert_eq!(
        url.len(),
        settings.handbook.base_url.len() + 3 + 22,
        "{url}"
    );

    // A link previewer and a HEAD request see the page; neither is an open.
    let (status, _, body) = fetch(reqwest::Method::GET, &url, "facebookexternalhit/1.1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Cẩm nang phòng, chống Covid-19 tại nhà"),
        "{body}"
    );
    let (status, _, _) = fetch(reqwest::Method::HEAD, &url, PHONE).await;
    assert_eq!(status, StatusCode::OK);
    let stats = ok(&api.get("/api/v1/supervisor/handbook", "supervisor").await);
    assert_eq!(stats["opens"], 0, "{stats}");

    // The customer opens it: greeted by given name, nothing else personal, not cached.
    let (status, headers, body) = fetch(reqwest::Method::GET, &url, PHONE).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Kính chào Quý khách Hoa,"), "{body}");
    for personal in ["0903123001", "903123001", "Trần Thị", "post-1"] {
        assert!(!body.contains(personal), "{personal} on the page");
    }
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(body.contains("width=device-width"));
    assert!(
        !body.contains("<script") && !body.contains("src="),
        "no script, no outside asset"
    );
    let stats = ok(&api.get("/api/v1/supervisor/handbook", "supervisor").await);
    assert_eq!(
        stats,
        json!({"links": 1, "opened": 1, "opens": 1, "until": "2022-04-30", "gone": false})
    );
    assert_eq!(
        api.get("/api/v1/supervisor/handbook", "vinmec")
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Wrong links: 404, the same page whatever the path.
    let base = &settings.handbook.base_url;
    for path in [
        "/s/AAAAAAAAAAAAAAAAAAAAAA",
        "/s/short",
        "/",
        "/api/v1/whoami",
    ] {
        let (status, _, body) = fetch(reqwest::Method::GET, &format!("{base}{path}"), PHONE).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("Không tìm thấy trang"), "{path}: {body}");
    }

    // The clock moves the opens' times; the program's date (here `program.today`)
    // decides when the handbook is over.
    api.clock.set("2021-12-02T09:30:00Z".parse().expect("ts"));
    assert_eq!(
        fetch(reqwest::Method::GET, &url, PHONE).await.0,
        StatusCode::OK
    );
    assert_eq!(
        store.handbook_opens(id).await.expect("opens").map(|o| o.1),
        Some(Some("2021-12-02T09:30:00Z".parse().expect("ts")))
    );
    api.stop().await;
}

/// A service whose program date is `today`, with one registration made on 27/11/2021
/// and its link; returns the service and the link.
async fn on_day(db: Db, today: &str) -> (Api, String) {
    let api = Api::start(db, &format!("[program]\ntoday = \"{today}\"\n")).await;
    let store = &api.svc.app.store;
    let outcome = store
        .register(
            tongdai::store::NewRegistration {
                msisdn: "0903123002".into(),
                group: tongdai_domain::program::Group::Two,
                channel: tongdai_domain::program::Channel::Fanpage,
                specialty: None,
                call_id: None,
                name: Some("Vũ Thị Lan".into()),
                fanpage_ref: Some("post-2".into()),
            },
            &tongdai_domain::program::ProgramConfig::default(),
            jiff::civil::date(2021, 11, 27),
            api.now(),
        )
        .await
        .expect("register");
    let tongdai::store::RegisterOutcome::Registered(reg) = outcome else {
        panic!("registered: {outcome:?}");
    };
    let token = store
        .handbook_token(reg.id, api.now())
        .await
        .expect("token");
    let url = format!("http://{}/s/{token}", api.svc.app.handbook_addr);
    (api, url)
}

async fn every_link_is_gone_after_the_last_day(db: Db) {
    // 30/04/2022, the last day: shown.
    let (api, url) = on_day(db, "2022-04-30").await;
    let (status, _, body) = fetch(reqwest::Method::GET, &url, PHONE).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Kính chào Quý khách Lan,"), "{body}");
    let stats = ok(&api.get("/api/v1/supervisor/handbook", "supervisor").await);
    assert_eq!(stats["gone"], false);
    api.stop().await;
    // 01/05/2022: gone, for a real link and an unknown one alike, and nothing counted.
    let (api, url) = on_day(db, "2022-05-01").await;
    let unknown = format!(
        "http://{}/s/AAAAAAAAAAAAAAAAAAAAAA",
        api.svc.app.handbook_addr
    );
    for u in [&url, &unknown] {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let (status, headers, body) = fetch(method.clone(), u, PHONE).await;
            assert_eq!(status, StatusCode::GONE, "{method} {u}");
            assert_eq!(headers["cache-control"], "no-store");
            if method == reqwest::Method::GET {
                assert!(
                    body.contains("30/04/2022") && body.contains("9090"),
                    "{body}"
                );
                assert!(!body.contains("Lan"), "{body}");
            }
        }
    }
    let stats = ok(&api.get("/api/v1/supervisor/handbook", "supervisor").await);
    assert_eq!(
        stats,
        json!({"links": 1, "opened": 0, "opens": 0, "until": "2022-04-30", "gone": true})
    );
    api.stop().await;
}
