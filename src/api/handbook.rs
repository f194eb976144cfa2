//! The Covid-19 handbook page (docs/program.md, benefit b): `GET /s/{token}` on the
//! handbook listener (`[handbook] listen`), apart from the API so that the public link
//! never leads to it. Nothing else is served there.
//!
//! The article is Markdown (`handbook.article`), rendered once at start into a page
//! with its style inline and no outside asset, readable on a small phone. The customer
//! is greeted by their given name when the registration has one, and nothing else
//! personal is shown. After `program.handbook_until` every link answers 410; before,
//! an unknown token 404 — the same page whether or not a number took part.
//! `tongdai_domain::handbook` decides what counts as an open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tongdai_domain::handbook::{Gate, first_name, gate};
use tongdai_domain::program::ProgramConfig;

use crate::clock::SharedClock;
use crate::config::HandbookSettings;
use crate::store::Store;

/// The article could not be read at start.
#[derive(Debug, thiserror::Error)]
#[error("handbook article {}: {source}", path.display())]
pub struct HandbookError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The pages, rendered once.
#[derive(Debug)]
pub struct HandbookPages {
    /// The article as HTML; the greeting goes before it.
    article: String,
}

impl HandbookPages {
    /// Reads and renders `path` (Markdown; raw HTML in it is shown as text).
    pub fn load(path: &Path) -> Result<HandbookPages, HandbookError> {
        let text = std::fs::read_to_string(path).map_err(|source| HandbookError {
            path: path.to_owned(),
            source,
        })?;
        Ok(HandbookPages::from_markdown(&text))
    }

    pub fn from_markdown(text: &str) -> HandbookPages {
        use pulldown_cmark::{Event, Parser};
        // Raw HTML in the file becomes text: the page carries only what Markdown says.
        let events = Parser::new(text).map(|e| match e {
            Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
            other => other,
        });
        let mut article = String::new();
        pulldown_cmark::html::push_html(&mut article, events);
        HandbookPages { article }
    }

    fn article(&self, name: Option<&str>) -> String {
        let greeting = match name {
            Some(n) => format!("<p class=\"hello\">Kính chào Quý khách {},</p>", escape(n)),
            None => "<p class=\"hello\">Kính chào Quý khách,</p>".to_owned(),
        };
        page(
            "Cẩm nang phòng, chống Covid-19",
            &format!("{greeting}\n{}", self.article),
        )
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: phone-first, style inline, no script, no outside asset.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{title}</title>\n\
         <style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

const STYLE: &str = "html{-webkit-text-size-adjust:100%}\
body{margin:0;background:#f6f7f9;color:#1b1f24;font:17px/1.55 system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif}\
main{max-width:40rem;margin:0 auto;padding:1rem 1.1rem 3rem;background:#fff;min-height:100vh;box-sizing:border-box}\
h1{font-size:1.45rem;line-height:1.3;color:#0b5cad;margin:.6rem 0 .4rem}\
h2{font-size:1.15rem;color:#0b5cad;margin:1.6rem 0 .4rem}\
p,li{overflow-wrap:anywhere}ul,ol{padding-left:1.3rem}li{margin:.25rem 0}\
.hello{font-weight:600;margin:.2rem 0 .8rem}\
strong{color:#b3261e}\n";

const GONE: &str = "<h1>Cẩm nang đã hết hạn</h1>\n<p>Cẩm nang phòng, chống Covid-19 của \
chương trình Tư vấn sức khỏe trực tuyến cùng Vinmec Hải Phòng chỉ được đăng đến hết \
ngày {until}. Cảm ơn Quý khách đã quan tâm.</p>\n<p>Cần hỗ trợ, vui lòng gọi tổng đài \
<strong>9090</strong> của MobiFone.</p>";

const NOT_FOUND: &str = "<h1>Không tìm thấy trang</h1>\n<p>Đường dẫn không đúng. Vui lòng \
kiểm tra lại tin nhắn, hoặc gọi tổng đài <strong>9090</strong> của MobiFone.</p>";

/// `GET /api/v1/supervisor/handbook` (supervisor, admin): how the links are used.
#[derive(Debug, serde::Serialize)]
pub struct HandbookStatsView {
    /// Registrations given their link.
    pub links: u64,
    /// Links opened at least once.
    pub opened: u64,
    /// Opens in all (HEAD requests and link previewers are not counted).
    pub opens: u64,
    /// The last local day the page is shown (`program.handbook_until`).
    pub until: String,
    /// After that day: every link answers 410.
    pub gone: bool,
}

pub async fn stats(
    State(s): State<super::ApiState>,
) -> Result<axum::Json<HandbookStatsView>, super::error::ApiError> {
    let st = s.store.handbook_stats().await?;
    let until = s.program.handbook_until;
    let today = program_today(&s.program, s.clock.now());
    Ok(axum::Json(HandbookStatsView {
        links: st.links,
        opened: st.opened,
        opens: st.opens,
        until: until.to_string(),
        gone: today > until,
    }))
}

/// The program's local date: the `program.today` override (demos, replays) when set.
fn program_today(program: &ProgramConfig, now: jiff::Timestamp) -> jiff::civil::Date {
    program
        .today
        .unwrap_or_else(|| super::zone(program).to_datetime(now).date())
}

/// What the handbook listener needs.
#[derive(Clone)]
pub struct HandbookState {
    pub pages: Arc<HandbookPages>,
    pub store: Store,
    pub program: Arc<ProgramConfig>,
    pub clock: SharedClock,
}

/// The link of a token, as sent to the customer.
pub fn link(settings: &HandbookSettings, token: &str) -> String {
    format!("{}/s/{token}", settings.base_url)
}

pub fn router(state: HandbookState) -> Router {
    Router::new()
        .route("/s/{token}", get(visit))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the handbook until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HandbookState,
    shutdown: CancellationToken,
) {
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "handbook server failed");
    }
}

async fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        page("Không tìm thấy trang", NOT_FOUND),
    )
}

/// A token is 22 characters of URL-safe base64 (`store::handbook`); anything else is
/// not one, and is answered without asking the store.
fn plausible(token: &str) -> bool {
    token.len() == 22
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn visit(
    State(s): State<HandbookState>,
    UrlPath(token): UrlPath<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let now = s.clock.now();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let today = program_today(&s.program, now);
    let count_open = match gate(
        today,
        s.program.handbook_until,
        method == Method::HEAD,
        user_agent,
    ) {
        Gate::Gone => {
            let until = s.program.handbook_until.strftime("%d/%m/%Y").to_string();
            return html(
                StatusCode::GONE,
                page("Cẩm nang đã hết hạn", &GONE.replace("{until}", &until)),
            );
        }
        Gate::Lookup { count_open } => count_open,
    };
    if !plausible(&token) {
        return not_found().await;
    }
    match s.store.visit_handbook(&token, count_open, now).await {
        Ok(Some(v)) => html(
            StatusCode::OK,
            s.pages.article(first_name(v.name.as_deref())),
        ),
        Ok(None) => not_found().await,
        Err(e) => {
            tracing::error!(error = %e, "handbook page: store unavailable");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                page(
                    "Tạm thời gián đoạn",
                    "<h1>Tạm thời gián đoạn</h1>\n<p>Vui lòng mở lại đường dẫn sau ít phút.</p>",
                ),
            )
        }
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_article_is_rendered_and_raw_html_stays_text() {
        let p = HandbookPages::from_markdown("# Tiêu đề\n\nGọi **115**.\n\n<script>x()</script>\n");
        let html = p.article(Some("An<b>"));
        assert!(html.contains("<h1>Tiêu đề</h1>"), "{html}");
        assert!(html.contains("<strong>115</strong>"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("Kính chào Quý khách An&lt;b&gt;,"));
        assert!(html.contains("width=device-width"));
    }

    #[test]
    fn only_token_shaped_paths_reach_the_store() {
        assert!(plausible("AAAAAAAAAAAAAAAAAAAA-_"));
        assert!(!plausible("short"));
        assert!(!plausible("AAAAAAAAAAAAAAAAAAAA+/"));
        assert!(!plausible("AAAAAAAAAAAAAAAAAAAAAAA"));
    }
}
