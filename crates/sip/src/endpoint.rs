//! The SIP user agent, sans-IO: the one object the driver talks to. It owns the layers
//! and routes between them; it decides nothing a layer could.
//!
//! ```text
//! bytes ─▶ ACL ─▶ edge ─▶ TransactionLayer ─TxEvent─▶ DialogLayer ─LegEvent─▶ call layer
//!                          ▲      ▲     └──TxEvent──▶ Trunk ─TrunkState─▶ driver
//!                          │      └──── REGISTER, OPTIONS ───┘
//!                          └─ respond, start_client, cancel (the DialogLayer, on
//!                             received requests, Commands and dials)
//! ```
//!
//! - the **source ACL** (`acl.rs`) is applied before any transaction or dialog exists
//!   for a request: strangers get a bare 403 unless the request concerns a transaction
//!   or dialog we already hold;
//! - the **transaction layer** (`transaction/`) matches and absorbs retransmissions and
//!   runs the RFC 3261 timers;
//! - the **dialog layer** (`dialog/`) turns transactions into legs for the call layer;
//! - the **trunk** (`trunk.rs`) says what to REGISTER and when to probe; its requests
//!   go through the transaction layer like any other, and the client transactions it
//!   started report back to it, not to the dialog layer.
//!
//! The endpoint never reads a clock or touches a socket. The driver (`sip::transport`)
//! feeds it received bytes, commands from calls and `now`; it drains [`Output`]s
//! (datagrams to send, [`LegEvent`]s for the call layer, trunk states) and sleeps until
//! [`Endpoint::poll_timeout`]. That is what lets the tests run Timer H (64·T1 = 32 s)
//! in microseconds.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rsipstack::sip as rsip;
use rsipstack::sip::{Header, Method};
use tongdai_capacity::GiveBack;

use crate::acl::Acl;
use crate::dialog::{DialogConfig, DialogLayer};
use crate::edge::{self, Inbound};
use crate::message::{self, random_token};
use crate::transaction::{TransactionConfig, TransactionLayer, TxEvent, TxId};
use crate::trunk::{Trunk, TrunkConfig, TrunkOutcome, TrunkState, TrunkTxn};

pub use crate::dialog::{
    Command, DialError, DialRequest, Dialed, EndReason, FailCause, IncomingCall, LegEvent, LegId,
};
pub use crate::flow::{Flow, OUTBOUND_CONN};
pub use crate::transaction::Timers;

#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Address written into Via and Contact.
    pub advertised: SocketAddr,
    pub timers: Timers,
    pub user_agent: String,
    /// Legs above this get 503 (overload protection: refuse rather than degrade).
    pub max_legs: usize,
}

/// Who may reach us and where we call out: the source ACL and the trunk. Separate from
/// [`EndpointConfig`] so that an endpoint built with [`Endpoint::new`] keeps the plain
/// inbound behaviour (everyone allowed, no trunk).
#[derive(Clone, Debug)]
pub struct AccessConfig {
    /// Sources allowed to start dialogs (out-of-dialog requests); see `sip::acl`.
    pub acl: Acl,
    /// Where outbound calls go, and our REGISTER/OPTIONS with it.
    pub trunk: Option<TrunkConfig>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            acl: Acl::allow_all(),
            trunk: None,
        }
    }
}

#[derive(Debug)]
pub enum Output {
    Transmit {
        flow: Flow,
        bytes: Vec<u8>,
    },
    Event(LegEvent),
    /// The trunk's state changed (publish it); its moments are the endpoint's `now`s.
    Trunk(TrunkState<Instant>),
}

pub struct Endpoint {
    acl: Acl,
    transactions: TransactionLayer,
    dialogs: DialogLayer,
    trunk: Option<Trunk>,
    /// The client transactions the trunk's requests went out in, and which request.
    trunk_txns: HashMap<TxId, TrunkTxn>,
    /// Trunk states to publish, oldest first.
    trunk_states: VecDeque<TrunkState<Instant>>,
}

impl Endpoint {
    /// An inbound-only endpoint: everyone may call, no trunk.
    pub fn new(cfg: EndpointConfig) -> Self {
        Self::with_access(cfg, AccessConfig::default())
    }

    /// An endpoint with a source ACL and (optionally) a trunk for outbound calls.
    pub fn with_access(cfg: EndpointConfig, access: AccessConfig) -> Self {
        let trunk = access
            .trunk
            .as_ref()
            .map(|t| Trunk::new(t.clone(), cfg.advertised));
        let transactions = TransactionLayer::new(TransactionConfig {
            advertised: cfg.advertised,
            timers: cfg.timers.clone(),
            user_agent: cfg.user_agent.clone(),
        });
        let dialogs = DialogLayer::new(
            DialogConfig {
                advertised: cfg.advertised,
                timers: cfg.timers,
                user_agent: cfg.user_agent,
                max_legs: cfg.max_legs,
            },
            access.trunk,
        );
        Endpoint {
            acl: access.acl,
            transactions,
            dialogs,
            trunk,
            trunk_txns: HashMap::new(),
            trunk_states: VecDeque::new(),
        }
    }

    /// While draining (shutdown), new INVITEs get 503; calls in progress continue.
    pub fn set_draining(&mut self, draining: bool) {
        self.dialogs.set_draining(draining);
    }

    /// Legs that are not finished (including ones waiting for our BYE's answer).
    pub fn active_legs(&self) -> usize {
        self.dialogs.active_legs()
    }

    /// Transactions still alive (for tests and the "back to baseline" checks).
    pub fn transactions(&self) -> usize {
        self.transactions.len()
    }

    /// Datagrams first (in the order the layers queued them), then leg events, then
    /// trunk states.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some((flow, bytes)) = self.transactions.poll_transmit() {
            return Some(Output::Transmit { flow, bytes });
        }
        if let Some(event) = self.dialogs.poll_event() {
            return Some(Output::Event(event));
        }
        self.trunk_states.pop_front().map(Output::Trunk)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let trunk = self.trunk.as_ref().and_then(Trunk::poll_timeout);
        [
            self.transactions.poll_timeout(),
            self.dialogs.poll_timeout(),
            trunk,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Feeds one datagram or one framed stream message.
    pub fn handle_bytes(&mut self, now: Instant, flow: Flow, bytes: &[u8]) {
        let allowed = self.acl.allows(flow.remote().ip());
        match edge::classify(bytes) {
            Inbound::Request(req) if !allowed && !self.belongs_to_known_state(&req) => {
                self.refuse_by_acl(flow, &req)
            }
            Inbound::Request(req) => self.transactions.handle_request(now, flow, req),
            Inbound::Response(resp) => self.transactions.handle_response(now, resp),
            Inbound::Reject { status, reason, .. } if !allowed => {
                tracing::debug!(status, %reason, from = %flow.remote(), "malformed request from outside the ACL dropped");
            }
            Inbound::KeepAlive => {
                // RFC 5626 §4.4.1: a CRLFCRLF ping over a stream gets a CRLF pong.
                if flow.reliable() && bytes.starts_with(b"\r\n\r\n") {
                    self.transactions.send_direct(flow, b"\r\n".to_vec());
                }
            }
            Inbound::Reject {
                status,
                reason,
                reply,
            } => {
                tracing::debug!(status, %reason, from = %flow.remote(), "rejected at the edge");
                if let Some(reply) = reply {
                    self.transactions.send_direct(flow, reply);
                }
            }
            Inbound::Drop { reason } => {
                tracing::debug!(%reason, from = %flow.remote(), "dropped at the edge");
            }
        }
        self.route_events(now);
    }

    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.dialogs
            .handle_command(now, &mut self.transactions, cmd);
        self.route_events(now);
    }

    /// Places an outbound call: sends the INVITE and returns the new leg. Its events
    /// (`Progress`*, then `Answered` or `Failed`, then the dialog events) follow as
    /// outputs.
    pub fn dial(&mut self, now: Instant, req: DialRequest) -> Result<Dialed, DialError> {
        let dialed = self.dialogs.dial(now, &mut self.transactions, req);
        self.route_events(now);
        dialed
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        self.route_events(now);
        self.dialogs.handle_timeout(now, &mut self.transactions);
        self.route_events(now);
        if let Some(trunk) = self.trunk.as_mut() {
            trunk.handle_timeout(now);
        }
        self.flush_trunk(now);
        self.trunk_txns.give_back();
    }

    /// The trunk's host resolved to `addr`: it joins the ACL, numbers can be dialled,
    /// and registration and the keepalive start.
    pub fn set_trunk_addr(&mut self, now: Instant, addr: SocketAddr) {
        self.acl.allow_ip(addr.ip());
        if let Some(trunk) = self.trunk.as_mut() {
            trunk.set_addr(now, addr);
            self.dialogs.set_trunk_flow(trunk.flow());
        }
        self.flush_trunk(now);
    }

    /// Shutdown: remove our REGISTER binding with the trunk (Expires: 0) and stop the
    /// keepalive. Returns whether a removal is on its way (watch the trunk's state).
    pub fn unregister(&mut self, now: Instant) -> bool {
        let sent = self.trunk.as_mut().is_some_and(|t| t.unregister());
        self.flush_trunk(now);
        sent
    }

    /// The trunk's state as of `now` (not configured without a `[trunk]`).
    pub fn trunk_state(&self, now: Instant) -> TrunkState<Instant> {
        match &self.trunk {
            Some(trunk) => trunk.state(now),
            None => TrunkState {
                updated_at: Some(now),
                ..TrunkState::default()
            },
        }
    }

    /// The driver could not open, or lost, its TCP connection to `remote`: client
    /// transactions waiting on it fail now instead of at Timer B/F (RFC 3261 §8.1.3.1:
    /// a transport error is treated as a 503), and a trunk behind it registers again.
    pub fn handle_transport_error(&mut self, now: Instant, remote: SocketAddr) {
        self.transactions.handle_transport_error(remote);
        self.route_events(now);
        if let Some(trunk) = self.trunk.as_mut()
            && trunk
                .flow()
                .is_some_and(|f| f.reliable() && f.remote() == remote)
        {
            trunk.on_connection_lost(now);
        }
        self.flush_trunk(now);
    }

    // ----- routing between the layers ----------------------------------------------------

    /// Hands every event the transaction layer queued to its user: the trunk for the
    /// client transactions it started, the dialog layer for everything else.
    fn route_events(&mut self, now: Instant) {
        while let Some(event) = self.transactions.poll_event() {
            let client = match &event {
                TxEvent::Response { id, .. }
                | TxEvent::Timeout { id }
                | TxEvent::TransportError { id }
                | TxEvent::Terminated { id } => Some(id),
                _ => None,
            };
            match client.and_then(|id| self.trunk_txns.remove(id)) {
                Some(kind) => self.trunk_outcome(now, kind, event),
                None => self
                    .dialogs
                    .handle_event(now, &mut self.transactions, event),
            }
        }
    }

    fn trunk_outcome(&mut self, now: Instant, kind: TrunkTxn, event: TxEvent) {
        let Some(trunk) = self.trunk.as_mut() else {
            return;
        };
        match event {
            TxEvent::Response { response, .. } => {
                trunk.on_outcome(now, kind, TrunkOutcome::Response(&response))
            }
            TxEvent::Timeout { .. } => trunk.on_outcome(now, kind, TrunkOutcome::Timeout),
            TxEvent::TransportError { .. } => {
                trunk.on_outcome(now, kind, TrunkOutcome::TransportError)
            }
            // A final response was already handed over (and its id forgotten).
            _ => {}
        }
        self.flush_trunk(now);
    }

    /// Starts what the trunk wants sent and queues its state if it changed.
    fn flush_trunk(&mut self, now: Instant) {
        let Some(trunk) = self.trunk.as_mut() else {
            return;
        };
        let flow = trunk.flow();
        while let Some(r) = trunk.poll_request() {
            if let Some(flow) = flow {
                let id = self.transactions.start_client(now, flow, r.request);
                self.trunk_txns.insert(id, r.kind);
            }
        }
        if trunk.take_changed() {
            self.trunk_states.push_back(trunk.state(now));
        }
    }

    // ----- the source ACL ----------------------------------------------------------------

    /// Whether a request from outside the ACL still concerns something we hold: a
    /// retransmission of a transaction, a CANCEL/ACK of one, or a request in an existing
    /// dialog (a callee's BYE may come straight from its own address).
    fn belongs_to_known_state(&self, req: &rsip::Request) -> bool {
        self.transactions.matches_server(req) || self.dialogs.knows_dialog(req)
    }

    /// A bare 403 (no Server, Allow, Contact: nothing to fingerprint); ACKs are dropped.
    fn refuse_by_acl(&mut self, flow: Flow, req: &rsip::Request) {
        tracing::info!(from = %flow.remote(), method = %req.method, "request refused by the SIP ACL");
        if req.method == Method::Ack {
            return;
        }
        let mut resp =
            message::response(req, 403, Some(&random_token(10)), false, vec![], None, "");
        resp.headers.retain(|h| !matches!(h, Header::Server(_)));
        self.transactions.send_direct(flow, resp.to_bytes());
    }
}

#[cfg(test)]
mod outbound_tests;
#[cfg(test)]
mod tests;
