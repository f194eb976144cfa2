//! The supervisors' live page: static HTML/JS/CSS compiled into the binary (no
//! front-end build) and a Server-Sent Events stream of [`Snapshot`]s.
//!
//! One hub task per service rebuilds the snapshot while anyone watches — at most once
//! per `api.live_refresh` when calls change, and at least that often for the clocks
//! and the store's figures — and publishes it on a `watch` channel, so a hundred open
//! pages cost one set of queries, not a hundred. A stream ends when the service shuts
//! down (graceful shutdown waits for open connections).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::ApiState;
use super::auth::Caller;
use super::error::ApiError;
use super::supervisor::{Snapshot, snapshot};

const INDEX_HTML: &str = include_str!("live/index.html");
const APP_JS: &str = include_str!("live/app.js");
const APP_CSS: &str = include_str!("live/app.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[derive(Serialize)]
struct TicketView {
    ticket: String,
    expires_at: Timestamp,
}

/// `POST /api/v1/live/ticket`: a one-time ticket for the event stream.
pub async fn ticket(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let now = s.clock.now();
    let ttl = SignedDuration::try_from(s.settings.live_ticket_ttl).map_err(ApiError::internal)?;
    let expires_at = now.checked_add(ttl).map_err(ApiError::internal)?;
    let ticket = s.tickets.issue(&caller, now, expires_at);
    Ok(Json(TicketView { ticket, expires_at }).into_response())
}

/// `GET /api/v1/live/events`: `snapshot` events, the first one at once.
pub async fn events(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let first = snapshot(&s).await?;
    let rx = s.live.subscribe();
    let stream = snapshot_stream(first, rx, s.shutdown.clone());
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn event(snap: &Snapshot) -> Event {
    Event::default()
        .event("snapshot")
        .json_data(snap)
        .unwrap_or_else(|_| Event::default().comment("snapshot not serialisable"))
}

fn snapshot_stream(
    first: Snapshot,
    rx: watch::Receiver<Option<Arc<Snapshot>>>,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = (Some(first), rx, shutdown);
    futures_util::stream::unfold(start, |(first, mut rx, shutdown)| async move {
        if let Some(first) = first {
            return Some((Ok(event(&first)), (None, rx, shutdown)));
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                changed = rx.changed() => {
                    changed.ok()?;
                    let snap = rx.borrow_and_update().clone();
                    if let Some(snap) = snap {
                        return Some((Ok(event(&snap)), (None, rx, shutdown)));
                    }
                }
            }
        }
    })
}

/// Publishes snapshots while the live stream has subscribers.
pub struct LiveHub {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
}

impl LiveHub {
    pub fn new() -> LiveHub {
        LiveHub {
            tx: watch::channel(None).0,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.tx.subscribe()
    }

    /// Rebuilds on call changes (debounced to `api.live_refresh`) and on every
    /// `api.live_refresh` tick, only while someone is subscribed; ends at shutdown.
    pub async fn run(state: ApiState) {
        let period = state.settings.live_refresh;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = state.calls.changed() => {
                    // Coalesce a burst of changes into one rebuild.
                    tokio::select! {
                        _ = state.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(period / 4) => {}
                    }
                }
            }
            if state.live.tx.receiver_count() == 0 {
                continue;
            }
            match snapshot(&state).await {
                Ok(snap) => {
                    state.live.tx.send_replace(Some(Arc::new(snap)));
                }
                Err(e) => tracing::warn!(error = %e.message, "live snapshot failed"),
            }
        }
    }
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new()
    }
}
