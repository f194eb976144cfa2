//! The trunk as supervisors see it (`GET /api/v1/supervisor/trunk`, the snapshot's
//! `trunk` section, the `tongdai_trunk_*` gauges): read from the SIP driver's
//! `watch` of [`TrunkState`], so it costs no SIP traffic and is as fresh as the last
//! REGISTER or OPTIONS answer.
//!
//! [`TrunkState`] is the SIP layer's domain type and knows nothing of JSON;
//! [`TrunkView`] is the wire shape (`Trunk` in `openapi.json`), built from it here.

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

/// The trunk's transport as the API spells it (the configuration's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportView {
    Udp,
    Tcp,
}

impl From<TrunkTransport> for TransportView {
    fn from(t: TrunkTransport) -> Self {
        match t {
            TrunkTransport::Udp => TransportView::Udp,
            TrunkTransport::Tcp => TransportView::Tcp,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TrunkView {
    pub health: TrunkHealth,
    pub configured: bool,
    pub host: String,
    pub transport: Option<TransportView>,
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
        transport: s.transport.map(TransportView::from),
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

    #[test]
    fn the_view_is_the_documented_json() {
        let at = |secs| Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        let s = TrunkState {
            configured: true,
            host: "trunk.example".into(),
            transport: Some(TrunkTransport::Tcp),
            addr: Some("127.0.0.1:5099".parse().unwrap()),
            register: true,
            registered: true,
            registered_until: at(1_700_003_600),
            next_register: at(1_700_002_880),
            register_failures: 0,
            register_status: Some(200),
            reachable: Some(true),
            last_options_rtt: Some(std::time::Duration::from_millis(12)),
            options_status: Some(200),
            last_error: None,
            updated_at: at(1_700_000_000),
        };
        assert_eq!(
            serde_json::to_string(&view(&s)).unwrap(),
            "{\"health\":\"up\",\"configured\":true,\"host\":\"trunk.example\",\
\"transport\":\"tcp\",\"addr\":\"127.0.0.1:5099\",\"register\":true,\"registered\":true,\
\"registered_until\":\"2023-11-14T23:13:20Z\",\"next_register\":\"2023-11-14T23:01:20Z\",\
\"register_failures\":0,\"register_status\":200,\"reachable\":true,\"options_rtt_ms\":12.0,\
\"options_status\":200,\"last_error\":null,\"updated_at\":\"2023-11-14T22:13:20Z\"}"
        );
        let none = view(&TrunkState::default());
        let json = serde_json::to_value(&none).unwrap();
        assert_eq!(json["health"], "not_configured");
        assert!(json["transport"].is_null() && json["updated_at"].is_null());
    }
}
