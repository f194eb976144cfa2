//! The trunk as supervisors see it (`GET /api/v1/supervisor/trunk`, the snapshot's
//! `trunk` section, the `tongdai_trunk_*` gauges): read from the SIP driver's
//! `watch` of [`TrunkState`], so it costs no SIP traffic and is as fresh as the last
//! REGISTER or OPTIONS answer.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::Serialize;

use super::ApiState;
use tongdai_sip::{TrunkState, TrunkTransport};

/// The trunk's condition in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrunkHealth {
    /// No `[trunk]` configured: no outbound calls.
    NotConfigured,
    /// Answering (OPTIONS or REGISTER got a response) and registered when it must be.
    Up,
    /// An OPTIONS or REGISTER went unanswered, the connection failed, or the
    /// registration is refused.
    Down,
    /// Nothing has told us yet (no answer so far, or neither keepalive nor REGISTER).
    Unknown,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrunkView {
    pub health: TrunkHealth,
    pub configured: bool,
    pub host: String,
    pub transport: Option<TrunkTransport>,
    /// The resolved address (`null` until the host resolves).
    pub addr: Option<String>,
    /// Whether we REGISTER with the trunk at all.
    pub register: bool,
    pub registered: bool,
    pub registered_until: Option<Timestamp>,
    pub next_register: Option<Timestamp>,
    pub register_failures: u32,
    pub register_status: Option<u16>,
    /// `null`: no verdict yet (no OPTIONS keepalive answered or timed out so far).
    pub reachable: Option<bool>,
    /// Round trip of the last answered OPTIONS, in milliseconds.
    pub options_rtt_ms: Option<f64>,
    pub options_status: Option<u16>,
    pub last_error: Option<String>,
    /// When the SIP driver last published a change.
    pub updated_at: Option<Timestamp>,
}

fn ts(t: Option<SystemTime>) -> Option<Timestamp> {
    t.and_then(|t| Timestamp::try_from(t).ok())
}

pub fn health(s: &TrunkState) -> TrunkHealth {
    if !s.configured {
        return TrunkHealth::NotConfigured;
    }
    if s.reachable == Some(false) {
        return TrunkHealth::Down;
    }
    if s.register && !s.registered {
        return if s.register_failures > 0 {
            TrunkHealth::Down
        } else {
            TrunkHealth::Unknown
        };
    }
    if s.reachable == Some(true) || s.registered {
        TrunkHealth::Up
    } else {
        TrunkHealth::Unknown
    }
}

pub fn view(s: &TrunkState) -> TrunkView {
    TrunkView {
        health: health(s),
        configured: s.configured,
        host: s.host.clone(),
        transport: s.transport,
        addr: s.addr.map(|a| a.to_string()),
        register: s.register,
        registered: s.registered,
        registered_until: ts(s.registered_until),
        next_register: ts(s.next_register),
        register_failures: s.register_failures,
        register_status: s.register_status,
        reachable: s.reachable,
        options_rtt_ms: s.last_options_rtt.map(|d| d.as_secs_f64() * 1000.0),
        options_status: s.options_status,
        last_error: s.last_error.clone(),
        updated_at: ts(s.updated_at),
    }
}

/// The trunk now.
pub fn current(s: &ApiState) -> TrunkView {
    view(&s.sip.trunk_state().borrow())
}

/// `GET /api/v1/supervisor/trunk`.
pub async fn get_trunk(State(s): State<ApiState>) -> Json<TrunkView> {
    Json(current(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_in_one_word() {
        let mut s = TrunkState::default();
        assert_eq!(health(&s), TrunkHealth::NotConfigured);
        s.configured = true;
        assert_eq!(health(&s), TrunkHealth::Unknown);
        s.reachable = Some(true);
        assert_eq!(health(&s), TrunkHealth::Up);
        s.register = true;
        assert_eq!(health(&s), TrunkHealth::Unknown, "no REGISTER answer yet");
        s.register_failures = 1;
        assert_eq!(health(&s), TrunkHealth::Down, "registration refused");
        s.registered = true;
        s.register_failures = 0;
        assert_eq!(health(&s), TrunkHealth::Up);
        s.reachable = Some(false);
        assert_eq!(health(&s), TrunkHealth::Down);
    }
}
