//! HTTP: health and the recent-calls view (the full API comes with the supervisors'
//! milestone). The only module that serialises JSON for the outside world.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::call::{CallLog, CallRecord};
use crate::sip::transport::SipHandle;
use crate::telemetry::mask_number;

/// Recompiles and swaps the dialplans; returns how many are loaded.
pub type ReloadFn = Arc<dyn Fn() -> Result<usize, crate::app::AppError> + Send + Sync>;

#[derive(Clone)]
pub struct HttpState {
    pub calls: CallLog,
    pub sip: SipHandle,
    pub reload: ReloadFn,
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/calls", get(calls))
        .route("/reload", post(reload))
        .route("/debug/runtime", get(runtime))
        .with_state(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "http server failed");
    }
}

async fn ready(State(state): State<HttpState>) -> (axum::http::StatusCode, &'static str) {
    match state.sip.census().await {
        Some(_) => (axum::http::StatusCode::OK, "ready\n"),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "sip not running\n",
        ),
    }
}

/// `tongdai reload` posts here. Only reachable on `http.listen` (loopback by default);
/// the role-based API of a later milestone will guard it with an admin token.
async fn reload(State(state): State<HttpState>) -> (StatusCode, Json<serde_json::Value>) {
    match (state.reload)() {
        Ok(n) => (StatusCode::OK, Json(serde_json::json!({ "reloaded": n }))),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "error": e.to_string() })),
        ),
    }
}

/// Task and call counts, read-only: the load harness checks that both return to their
/// baseline after a run (no task or call leaked).
async fn runtime(State(state): State<HttpState>) -> Json<serde_json::Value> {
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    Json(serde_json::json!({
        "tasks_alive": tasks,
        "calls_active": state.calls.active_count(),
    }))
}

#[derive(Serialize)]
struct CallsView {
    active: Vec<CallRecord>,
    recent: Vec<CallRecord>,
}

/// Numbers are masked: this view is for supervisors' screens.
async fn calls(State(state): State<HttpState>) -> Json<CallsView> {
    let mask = |mut r: CallRecord| {
        r.caller = r.caller.as_deref().map(mask_number);
        r
    };
    let mut recent = state.calls.finished();
    recent.reverse();
    recent.truncate(100);
    Json(CallsView {
        active: state.calls.active().into_iter().map(mask).collect(),
        recent: recent.into_iter().map(mask).collect(),
    })
}
