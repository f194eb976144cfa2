//! The optional push of new registrations to Vinmec's webhook (`api.webhook_url`).
//!
//! Every registration lands in `webhook_outbox` in its own registering transaction (a
//! database trigger, see migration 0003), whichever channel took it. This task sends the
//! due rows oldest first and marks them delivered on a 2xx; anything else (an error, a
//! timeout, a non-2xx) is retried after 2 s, 4 s, 8 s… up to `api.webhook_max_backoff`.
//! A crash between sending and marking means one more delivery: the contract is **at
//! least once**, and the receiver de-duplicates by `X-Tongdai-Event-Id`.
//!
//! Each request carries:
//! - `X-Tongdai-Event-Id: registration-<id>` — the same on every retry;
//! - `X-Tongdai-Timestamp: <unix seconds>` — when this attempt was signed;
//! - `X-Tongdai-Signature: sha256=<hex>` — HMAC-SHA256 with `api.webhook_secret` over
//!   `<timestamp>.<body>`, so a receiver can check the sender and refuse old replays.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sha2::Sha256;

use super::ApiState;
use super::vinmec::QueueItemView;
use crate::store::OutboxItem;

pub const EVENT_ID_HEADER: &str = "x-tongdai-event-id";
pub const TIMESTAMP_HEADER: &str = "x-tongdai-timestamp";
pub const SIGNATURE_HEADER: &str = "x-tongdai-signature";

/// The body of one delivery.
#[derive(Serialize)]
pub struct Delivery<'a> {
    pub id: String,
    pub event: &'static str,
    pub registration: &'a QueueItemView,
}

/// `sha256=<hex>` of `HMAC-SHA256(secret, "<timestamp>.<body>")`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hmac_hex(secret, &[timestamp.to_string().as_bytes(), b".", body])
    )
}

/// HMAC-SHA256 of the concatenated `parts`, hex.
fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        // HMAC accepts keys of any length; unreachable, but never panic here.
        return String::new();
    };
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Wait before attempt `attempts + 1`: 2 s doubled per failure, capped.
pub fn backoff(attempts: u32, max: Duration) -> Duration {
    let secs = 2u64.saturating_mul(1u64 << attempts.min(20));
    Duration::from_secs(secs).min(max)
}

/// Delivers due outbox rows until shutdown.
pub async fn run(state: ApiState) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent("tongdai-webhook")
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook client cannot start; registrations stay in the outbox");
            return;
        }
    };
    tracing::info!(url = %state.settings.webhook_url, "webhook push on");
    loop {
        let now = state.clock.now();
        match state.store.webhook_due(now, 20).await {
            Ok(due) => {
                for row in due {
                    if state.shutdown.is_cancelled() {
                        return;
                    }
                    deliver(&state, &client, row).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhook outbox unreadable"),
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(state.settings.webhook_poll) => {}
        }
    }
}

async fn deliver(state: &ApiState, client: &reqwest::Client, row: OutboxItem) {
    let view = QueueItemView::new(&row.item, &state.program);
    let id = format!("registration-{}", view.registration_id);
    let body = match serde_json::to_vec(&Delivery {
        id: id.clone(),
        event: "registration.created",
        registration: &view,
    }) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "webhook body not serialisable");
            return;
        }
    };
    let now = state.clock.now();
    let ts = now.as_second();
    let sig = signature(state.settings.webhook_secret.as_bytes(), ts, &body);
    let result = client
        .post(&state.settings.webhook_url)
        .header("content-type", "application/json")
        .header(EVENT_ID_HEADER, &id)
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(SIGNATURE_HEADER, sig)
        .body(body)
        .send()
        .await;
    let failure = match result {
        Ok(resp) if resp.status().is_success() => None,
        Ok(resp) => Some(format!("HTTP {}", resp.status())),
        Err(e) => Some(e.to_string()),
    };
    let now = state.clock.now();
    let outcome = match failure {
        None => {
            tracing::info!(
                registration = view.registration_id,
                attempts = row.attempts + 1,
                "registration pushed to the webhook"
            );
            state.store.webhook_delivered(row.outbox_id, now).await
        }
        Some(error) => {
            let wait = backoff(row.attempts, state.settings.webhook_max_backoff);
            let next = SignedDuration::try_from(wait)
                .ok()
                .and_then(|w| now.checked_add(w).ok())
                .unwrap_or(now);
            tracing::warn!(registration = view.registration_id, attempts = row.attempts + 1,
                %error, retry_in = ?wait, "webhook delivery failed");
            state
                .store
                .webhook_failed(row.outbox_id, next, &error)
                .await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "webhook outbox not updated; the row is sent again");
    }
}

/// When the next attempt of a row that failed `attempts` times falls (for tests/docs).
pub fn next_attempt(now: Timestamp, attempts: u32, max: Duration) -> Timestamp {
    SignedDuration::try_from(backoff(attempts, max))
        .ok()
        .and_then(|w| now.checked_add(w).ok())
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(600);
        let waits: Vec<u64> = (0..12).map(|a| backoff(a, max).as_secs()).collect();
        assert_eq!(
            waits,
            vec![2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]
        );
        assert_eq!(backoff(u32::MAX, max).as_secs(), 600);
    }

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_and_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            signature(b"Jefe", 1, b"{}"),
            format!("sha256={}", hmac_hex(b"Jefe", &[b"1.{}"]))
        );
        let sig = signature(b"Jefe", 1, b"{}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        assert_ne!(sig, signature(b"Jefe", 2, b"{}"), "the timestamp is signed");
        assert_ne!(sig, signature(b"Jeff", 1, b"{}"), "the key matters");
    }
}
