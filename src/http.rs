//! HTTP: health and the recent-calls view (the full API comes with the supervisors'
//! milestone). The only module that serialises JSON for the outside world.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::call::{CallLog, CallRecord};
use crate::sip::transport::SipHandle;
use crate::telemetry::mask_number;

#[derive(Clone)]
pub struct HttpState {
    pub calls: CallLog,
    pub sip: SipHandle,
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
