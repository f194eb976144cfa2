//! The HTTP API: the only module that knows HTTP and serialises JSON for the outside
//! world (axum 0.8 on hyper 1).
//!
//! ## Router layout
//! Every route is one row of [`routes`] — method, path, who may call it — and the
//! router is built from that table, so the role check cannot be forgotten on a route,
//! the OpenAPI document is tested against it (`tests/api/api_openapi.rs`), and the role
//! tests walk it (every route × every role).
//!
//! | path | roles |
//! |---|---|
//! | `GET /healthz`, `/readyz`, `/openapi.json`, `/live`, `/live/app.{js,css}` | public |
//! | `GET /metrics` | public (`api.metrics_public`, default) or supervisor/admin |
//! | `GET /api/v1/whoami` | any token |
//! | `GET /calls`, `/api/v1/supervisor/*`, `POST /api/v1/live/ticket`, `GET /api/v1/live/events` | supervisor, admin |
//! | `/api/v1/vinmec/*` (queue, actions, CSV export) | vinmec, admin |
//! | `POST /api/v1/fanpage/registrations` | fanpage, admin |
//! | `GET /api/v1/campaigns[/{id}]`, `/api/v1/do-not-call`, `/api/v1/surveys/results.csv` | supervisor, admin |
//! | `POST /api/v1/campaigns`, `/api/v1/campaigns/{id}/start\|pause\|resume\|stop`, `/api/v1/do-not-call` | admin |
//! | `POST /reload` | admin |
//!
//! The outbound side (`campaigns.rs`, `dnc.rs`, `trunk.rs`, the survey export in
//! `export.rs`) only reads and changes the store; the dialer runtime follows the
//! campaigns' stored state. The supervisors' [`supervisor::Snapshot`] carries
//! `campaigns`, `satisfaction` and `trunk` sections.
//!
//! ## JSON
//! Every JSON object the API sends (answers, the live page's snapshots, webhook bodies,
//! the answers kept under an `Idempotency-Key`) is a view struct of this module, built
//! from the store's or the domain's value: those carry no serde, so a renamed field
//! there never changes the wire. Enums go out by their stable name (`as_str`) and come
//! in through [`names::ByName`]; `wire_tests.rs` holds the JSON to what it was.
//!
//! ## Errors
//! Every non-2xx answer is a JSON object `{"error", "message", "field"?}` (see
//! `error.rs`); unknown paths and methods included.

pub mod auth;
pub mod calls;
pub mod campaigns;
pub mod dnc;
pub mod error;
pub mod export;
pub mod fanpage;
pub mod handbook;
pub mod kept;
pub mod live;
pub mod names;
pub mod supervisor;
pub mod trunk;
pub mod vinmec;
pub mod webhook;
#[cfg(test)]
mod wire_tests;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Json, Router};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

pub use auth::{Caller, Role, hash_token, new_token};
pub use error::ApiError;

use crate::call::CallLog;
use crate::clock::SharedClock;
use crate::config::ApiSettings;
use crate::metrics::{Metrics, Observed};
use crate::sip::transport::SipHandle;
use crate::store::Store;
use tongdai_domain::program::ProgramConfig;

/// Recompiles and swaps the dialplans; returns how many are loaded, or why the running
/// plans stay (the message is the API's answer, e.g. every `FILE:LINE` problem).
pub type ReloadFn =
    Arc<dyn Fn() -> Result<usize, Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// The OpenAPI document served at `/openapi.json` (and checked against [`routes`]).
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// What the API needs from the rest of the service.
pub struct ApiContext {
    pub store: Store,
    pub program: Arc<ProgramConfig>,
    pub calls: CallLog,
    pub sip: SipHandle,
    pub reload: ReloadFn,
    /// How many dialplans are loaded now (readiness).
    pub dialplans: Arc<dyn Fn() -> usize + Send + Sync>,
    /// The `[dialplan] name`s loaded now: a new campaign must name one of them.
    pub dialplan_names: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    /// The line outbound calls are placed from (the trunk's caller id), where the
    /// supervisors' view shows the campaigns' dialling queue; `None` without a trunk.
    pub outbound_line: Option<String>,
    /// How far behind its frame slots RTP is sent (`MediaWorkers::send_lag`).
    pub media_lag: Arc<dyn Fn() -> Duration + Send + Sync>,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    pub settings: ApiSettings,
    pub shutdown: CancellationToken,
}

/// Shared state of every handler (cheap to clone).
#[derive(Clone)]
pub struct ApiState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub program: Arc<ProgramConfig>,
    pub calls: CallLog,
    pub sip: SipHandle,
    pub reload: ReloadFn,
    pub dialplans: Arc<dyn Fn() -> usize + Send + Sync>,
    pub dialplan_names: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    pub outbound_line: Option<String>,
    pub media_lag: Arc<dyn Fn() -> Duration + Send + Sync>,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    pub settings: ApiSettings,
    pub shutdown: CancellationToken,
    pub tokens: auth::Tokens,
    pub tickets: auth::Tickets,
    pub live: live::LiveHub,
}

impl std::ops::Deref for ApiState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl ApiState {
    pub fn new(ctx: ApiContext) -> ApiState {
        let tokens = auth::Tokens::new(&ctx.settings.tokens);
        ApiState(Arc::new(Inner {
            store: ctx.store,
            program: ctx.program,
            calls: ctx.calls,
            sip: ctx.sip,
            reload: ctx.reload,
            dialplans: ctx.dialplans,
            dialplan_names: ctx.dialplan_names,
            outbound_line: ctx.outbound_line,
            media_lag: ctx.media_lag,
            metrics: ctx.metrics,
            clock: ctx.clock,
            settings: ctx.settings,
            shutdown: ctx.shutdown,
            tokens,
            tickets: auth::Tickets::default(),
            live: live::LiveHub::new(),
        }))
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    /// A bearer token of one of these roles (or, where `ticket` is set, a live ticket).
    Roles {
        roles: &'static [Role],
        ticket: bool,
    },
}

impl Access {
    /// Whether a caller of `role` gets in (public routes admit everyone).
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Roles { roles, .. } => roles.contains(&role),
        }
    }
}

const VINMEC: &[Role] = &[Role::Vinmec, Role::Admin];
const FANPAGE: &[Role] = &[Role::Fanpage, Role::Admin];
const SUPERVISORS: &[Role] = &[Role::Supervisor, Role::Admin];
const ADMIN: &[Role] = &[Role::Admin];
const ANY: &[Role] = &Role::ALL;

const fn roles(roles: &'static [Role]) -> Access {
    Access::Roles {
        roles,
        ticket: false,
    }
}

/// One row of the route table.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub method: Method,
    /// axum path syntax (`{id}`), which is also OpenAPI's.
    pub path: &'static str,
    pub access: Access,
}

fn table(settings: &ApiSettings) -> Vec<(RouteSpec, MethodRouter<ApiState>)> {
    let r = |method: Method, path: &'static str, access: Access, h: MethodRouter<ApiState>| {
        (
            RouteSpec {
                method,
                path,
                access,
            },
            h,
        )
    };
    let metrics_access = if settings.metrics_public {
        Access::Public
    } else {
        roles(SUPERVISORS)
    };
    use Method as M;
    vec![
        r(M::GET, "/healthz", Access::Public, get(healthz)),
        r(M::GET, "/readyz", Access::Public, get(readyz)),
        r(M::GET, "/metrics", metrics_access, get(metrics)),
        r(M::GET, "/debug/runtime", metrics_access, get(runtime)),
        r(M::GET, "/openapi.json", Access::Public, get(openapi)),
        r(M::GET, "/live", Access::Public, get(live::index)),
        r(M::GET, "/live/app.js", Access::Public, get(live::app_js)),
        r(M::GET, "/live/app.css", Access::Public, get(live::app_css)),
        r(M::GET, "/calls", roles(SUPERVISORS), get(calls)),
        r(M::POST, "/reload", roles(ADMIN), post(reload)),
        r(M::GET, "/api/v1/whoami", roles(ANY), get(whoami)),
        // Vinmec HP's scheduling queue.
        r(
            M::GET,
            "/api/v1/vinmec/queue",
            roles(VINMEC),
            get(vinmec::list),
        ),
        r(
            M::POST,
            "/api/v1/vinmec/queue/claim",
            roles(VINMEC),
            post(vinmec::claim_next),
        ),
        r(
            M::GET,
            "/api/v1/vinmec/queue/{id}",
            roles(VINMEC),
            get(vinmec::detail),
        ),
        r(
            M::POST,
            "/api/v1/vinmec/queue/{id}/claim",
            roles(VINMEC),
            post(vinmec::claim),
        ),
        r(
            M::POST,
            "/api/v1/vinmec/queue/{id}/renew",
            roles(VINMEC),
            post(vinmec::renew),
        ),
        r(
            M::POST,
            "/api/v1/vinmec/queue/{id}/release",
            roles(VINMEC),
            post(vinmec::release),
        ),
        r(
            M::POST,
            "/api/v1/vinmec/queue/{id}/prescreen",
            roles(VINMEC),
            post(vinmec::prescreen),
        ),
        r(
            M::POST,
            "/api/v1/vinmec/queue/{id}/book",
            roles(VINMEC),
            post(vinmec::book),
        ),
        r(
            M::POST,
            "/api/v1/vinmec/queue/{id}/unreachable",
            roles(VINMEC),
            post(vinmec::unreachable),
        ),
        r(
            M::POST,
            "/api/v1/vinmec/queue/{id}/consulted",
            roles(VINMEC),
            post(vinmec::consulted),
        ),
        r(
            M::POST,
            "/api/v1/vinmec/queue/{id}/cancel",
            roles(VINMEC),
            post(vinmec::cancel),
        ),
        r(
            M::GET,
            "/api/v1/vinmec/registrations.csv",
            roles(VINMEC),
            get(export::registrations_csv),
        ),
        // Group-2 intake.
        r(
            M::POST,
            "/api/v1/fanpage/registrations",
            roles(FANPAGE),
            post(fanpage::intake),
        ),
        // Supervisors (read-only).
        r(
            M::GET,
            "/api/v1/supervisor/snapshot",
            roles(SUPERVISORS),
            get(supervisor::get_snapshot),
        ),
        r(
            M::GET,
            "/api/v1/supervisor/calls/active",
            roles(SUPERVISORS),
            get(supervisor::get_active),
        ),
        r(
            M::GET,
            "/api/v1/supervisor/calls/recent",
            roles(SUPERVISORS),
            get(supervisor::get_recent),
        ),
        r(
            M::GET,
            "/api/v1/supervisor/lines",
            roles(SUPERVISORS),
            get(supervisor::get_lines),
        ),
        r(
            M::GET,
            "/api/v1/supervisor/registrations",
            roles(SUPERVISORS),
            get(supervisor::get_registrations),
        ),
        r(
            M::GET,
            "/api/v1/supervisor/vinmec",
            roles(SUPERVISORS),
            get(supervisor::get_vinmec),
        ),
        r(
            M::GET,
            "/api/v1/supervisor/satisfaction",
            roles(SUPERVISORS),
            get(campaigns::satisfaction),
        ),
        r(
            M::GET,
            "/api/v1/supervisor/handbook",
            roles(SUPERVISORS),
            get(handbook::stats),
        ),
        r(
            M::GET,
            "/api/v1/supervisor/trunk",
            roles(SUPERVISORS),
            get(trunk::get_trunk),
        ),
        // Outbound campaigns: supervisors read, admins create and drive them.
        r(
            M::GET,
            "/api/v1/campaigns",
            roles(SUPERVISORS),
            get(campaigns::list),
        ),
        r(
            M::POST,
            "/api/v1/campaigns",
            roles(ADMIN),
            post(campaigns::create),
        ),
        r(
            M::GET,
            "/api/v1/campaigns/{id}",
            roles(SUPERVISORS),
            get(campaigns::detail),
        ),
        r(
            M::POST,
            "/api/v1/campaigns/{id}/start",
            roles(ADMIN),
            post(campaigns::start),
        ),
        r(
            M::POST,
            "/api/v1/campaigns/{id}/pause",
            roles(ADMIN),
            post(campaigns::pause),
        ),
        r(
            M::POST,
            "/api/v1/campaigns/{id}/resume",
            roles(ADMIN),
            post(campaigns::resume),
        ),
        r(
            M::POST,
            "/api/v1/campaigns/{id}/stop",
            roles(ADMIN),
            post(campaigns::stop),
        ),
        r(
            M::GET,
            "/api/v1/surveys/results.csv",
            roles(SUPERVISORS),
            get(export::survey_results_csv),
        ),
        r(
            M::GET,
            "/api/v1/do-not-call",
            roles(SUPERVISORS),
            get(dnc::list),
        ),
        r(M::POST, "/api/v1/do-not-call", roles(ADMIN), post(dnc::add)),
        r(
            M::POST,
            "/api/v1/live/ticket",
            roles(SUPERVISORS),
            post(live::ticket),
        ),
        r(
            M::GET,
            "/api/v1/live/events",
            Access::Roles {
                roles: SUPERVISORS,
                ticket: true,
            },
            get(live::events),
        ),
    ]
}

/// The route table (what the router serves and who may call each route).
pub fn routes(settings: &ApiSettings) -> Vec<RouteSpec> {
    table(settings).into_iter().map(|(spec, _)| spec).collect()
}

/// The whole HTTP surface.
pub fn router(state: ApiState) -> Router {
    let mut router = Router::new();
    for (spec, handler) in table(&state.settings) {
        let guard = middleware::from_fn_with_state((state.clone(), spec.access), authorize);
        router = router.route(spec.path, handler.route_layer(guard));
    }
    router
        .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see /openapi.json",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .with_state(state)
}

/// Serves until `shutdown` (graceful: open requests finish, event streams end).
pub async fn serve(listener: tokio::net::TcpListener, state: ApiState) {
    if state.tokens.is_empty() {
        tracing::warn!(
            "no API tokens configured: every API endpoint answers 401. Create one with \
             `tongdai token new --name <who> --role admin` and add the printed \
             [[api.tokens]] entry to the configuration"
        );
    }
    let shutdown = state.shutdown.clone();
    tokio::spawn(live::LiveHub::run(state.clone()));
    if !state.settings.webhook_url.is_empty() {
        tokio::spawn(webhook::run(state.clone()));
    }
    let app = router(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "http server failed");
    }
}

/// The role check of one route (see `auth.rs` for the scheme).
async fn authorize(
    State((state, access)): State<(ApiState, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    let Access::Roles { roles, ticket } = access else {
        return next.run(req).await;
    };
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or("")
                .trim()
                .to_owned()
        });
    let caller = match bearer {
        Some(token) => match state.tokens.lookup(&token) {
            Some(c) => c.clone(),
            None if state.tokens.is_empty() => return no_tokens(),
            None => {
                return ApiError::unauthorized("unknown or malformed bearer token").into_response();
            }
        },
        None => {
            let t = ticket
                .then(|| {
                    req.uri().query().and_then(|q| {
                        form_urlencoded::parse(q.as_bytes())
                            .find(|(k, _)| k == "ticket")
                            .map(|(_, v)| v.into_owned())
                    })
                })
                .flatten();
            match t.and_then(|t| state.tickets.redeem(&t, state.clock.now())) {
                Some(c) => c,
                None if state.tokens.is_empty() => return no_tokens(),
                None => {
                    return ApiError::unauthorized(if ticket {
                        "send `Authorization: Bearer <token>` or a live `ticket`"
                    } else {
                        "send `Authorization: Bearer <token>`"
                    })
                    .into_response();
                }
            }
        }
    };
    if !roles.contains(&caller.role) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the {} role may not use this endpoint (allowed: {})",
                caller.role,
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn no_tokens() -> Response {
    ApiError::unauthorized(
        "no API tokens are configured: run `tongdai token new --name <who> --role admin` \
         and add the printed [[api.tokens]] entry to the configuration",
    )
    .into_response()
}

async fn count_request(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    state
        .metrics
        .http_request(&route, response.status().as_u16());
    response
}

/// The program's time zone (validated at start; UTC only if the bundle lacks it).
pub fn zone(cfg: &ProgramConfig) -> TimeZone {
    jiff::tz::TimeZoneDatabase::bundled()
        .get(&cfg.timezone)
        .unwrap_or(TimeZone::UTC)
}

/// `YYYY-MM-DD HH:MM` in the program's zone.
pub fn local_text(t: Timestamp, cfg: &ProgramConfig) -> String {
    t.to_zoned_datetime(zone(cfg))
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// `+84903123678` → `0903123678` (how Vietnamese staff dial and read numbers).
pub fn national(e164: &str) -> String {
    match e164.strip_prefix("+84") {
        Some(rest) => format!("0{rest}"),
        None => e164.to_owned(),
    }
}

/// Task and call counts, for the load harness (`benches/load/run.sh`): after a load run
/// both must return to their baseline. Same access as `/metrics` (counts only).
async fn runtime(State(s): State<ApiState>) -> Json<serde_json::Value> {
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    Json(serde_json::json!({
        "tasks_alive": tasks,
        "calls_active": s.calls.active_count(),
        "media_send_lag_ms": (s.media_lag)().as_secs_f64() * 1000.0,
    }))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    sip: bool,
    store: bool,
    dialplans: usize,
}

/// Ready when SIP is bound and its driver answers, the store answers a query and at
/// least one dialplan is loaded.
async fn readyz(State(s): State<ApiState>) -> Response {
    let sip = s.sip.census().await.is_some();
    let store = match s.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store not answering");
            false
        }
    };
    let dialplans = (s.dialplans)();
    let ready = sip && store && dialplans > 0;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            sip,
            store,
            dialplans,
        }),
    )
        .into_response()
}

async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let now = s.clock.now();
    let registrations = s.store.registration_stats().await?;
    let queue = s.store.queue_stats(now).await?;
    let active = s.calls.active();
    let oldest = queue
        .oldest_waiting_since
        .map(|t| now.duration_since(t).as_secs_f64().max(0.0))
        .unwrap_or(0.0);
    s.metrics.observe(&Observed {
        active_calls: &active,
        cap: s.program.cap,
        registrations: &registrations,
        queue: &queue,
        oldest_waiting_seconds: oldest,
        media_send_lag_seconds: (s.media_lag)().as_secs_f64(),
    });
    let lines = s.store.campaign_lines(now).await?;
    let mut per_campaign = Vec::new();
    for line in &lines {
        if line.campaign.kind == tongdai_domain::dialer::CampaignKind::Survey {
            let report = s.store.satisfaction_report(Some(line.campaign.id)).await?;
            per_campaign.push((line.campaign.name.clone(), report));
        }
    }
    let overall = s.store.satisfaction_report(None).await?;
    s.metrics.observe_campaigns(&lines, &overall, &per_campaign);
    let trunk = s.sip.trunk_state().borrow().clone();
    s.metrics
        .observe_trunk(&trunk, trunk::health(&trunk) == trunk::TrunkHealth::Up);
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        s.metrics.encode(),
    )
        .into_response())
}

async fn openapi() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        OPENAPI_JSON,
    )
        .into_response()
}

#[derive(Serialize)]
pub(crate) struct WhoAmI {
    name: String,
    role: &'static str,
}

impl From<Caller> for WhoAmI {
    fn from(caller: Caller) -> Self {
        WhoAmI {
            name: caller.name,
            role: caller.role.as_str(),
        }
    }
}

async fn whoami(Extension(caller): Extension<Caller>) -> Json<WhoAmI> {
    Json(WhoAmI::from(caller))
}

/// `tongdai reload` posts here (admin token).
async fn reload(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match (s.reload)() {
        Ok(n) => {
            tracing::info!(actor = %caller.name, dialplans = n, "reload requested over HTTP");
            Ok(Json(serde_json::json!({ "reloaded": n })))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_refused",
            e.to_string(),
        )),
    }
}

/// The call log (recent and active records, numbers masked): the first supervisors'
/// view, kept for scripts that use it.
async fn calls(State(state): State<ApiState>) -> Json<calls::CallsView> {
    Json(calls::calls_view(
        state.calls.active(),
        state.calls.finished(),
    ))
}
