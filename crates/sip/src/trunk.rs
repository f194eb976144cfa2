//! The 9090 trunk, sans-IO: where outbound calls go, our REGISTER binding with it and
//! the OPTIONS keepalive that tells the rest of the service whether it is reachable.
//!
//! [`Trunk`] decides *what* to send and *when* (initial REGISTER, refresh at 80 % of
//! the granted expiry, exponential backoff with a cap after failures or the server's
//! `Retry-After`, `423` → `Min-Expires`, one digest retry per challenge, an OPTIONS
//! every `options_interval`). Each [`TrunkRequest`] is a [`ClientRequest`] for the
//! transaction layer, which adds Via and branch and runs Timers E/F; the endpoint starts
//! it there and hands the transaction's outcome back ([`Trunk::on_outcome`]). The
//! trunk's condition is one [`TrunkState`]: kept here in monotonic time, published by
//! the SIP driver on the wall clock (`SipHandle::trunk_state`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rsipstack::sip as rsip;
use rsipstack::sip::Method;

use crate::auth::{AuthSession, Credentials};
use crate::flow::Flow;
use crate::message::{
    self, header, header_param, host_string, random_token, split_header_list, uri_of,
};
use crate::transaction::ClientRequest;

/// How we reach the trunk (`[trunk] transport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    Udp,
    Tcp,
}

/// The `[trunk]` section, validated.
#[derive(Clone, Debug)]
pub struct TrunkConfig {
    /// Host as written in Request-URIs (a name or an IP literal).
    pub host: String,
    pub port: u16,
    pub transport: TrunkTransport,
    /// Our number on the trunk: From user of outbound calls, REGISTER user by default.
    pub caller_id: String,
    /// `P-Asserted-Identity` on outbound INVITEs (a URI, or a bare number).
    pub p_asserted_identity: Option<String>,
    pub credentials: Option<Credentials>,
    pub register: bool,
    /// Expiry we ask for; the registrar's answer wins.
    pub register_expires: Duration,
    /// First retry delay after a failed REGISTER; doubles per failure up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// OPTIONS keepalive period; `None` disables it.
    pub options_interval: Option<Duration>,
}

impl TrunkConfig {
    /// The user in REGISTER's From/To/Contact.
    pub fn register_user(&self) -> &str {
        self.credentials
            .as_ref()
            .map(|c| c.username.as_str())
            .unwrap_or(&self.caller_id)
    }

    fn transport_param(&self) -> &'static str {
        match self.transport {
            TrunkTransport::Udp => "",
            TrunkTransport::Tcp => ";transport=tcp",
        }
    }

    /// The host as written in a URI (an IPv6 literal in brackets).
    pub fn uri_host(&self) -> String {
        match self.host.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => format!("[{v6}]"),
            Err(_) => self.host.clone(),
        }
    }

    /// `sip:host:port[;transport=tcp]`: REGISTER and OPTIONS Request-URI.
    pub fn server_uri(&self) -> String {
        format!(
            "sip:{}:{}{}",
            self.uri_host(),
            self.port,
            self.transport_param()
        )
    }

    /// `sip:number@host:port[;transport=tcp]`: where an outbound call to `number` goes.
    pub fn number_uri(&self, number: &str) -> String {
        format!(
            "sip:{number}@{}:{}{}",
            self.uri_host(),
            self.port,
            self.transport_param()
        )
    }
}

/// The trunk's condition: what the dialer holds campaigns on, what supervisors see
/// (the API renders it as its own JSON) and what the metrics gauge.
///
/// One type on two clocks, `T` being the type of its moments: the sans-IO [`Trunk`]
/// keeps it in monotonic `Instant`s (`TrunkState<Instant>`, comparable with the `now`
/// it is fed); the SIP driver publishes it on the wall clock (`TrunkState`, i.e.
/// `TrunkState<SystemTime>`), converted with [`TrunkState::on_wall_clock`] at a moment
/// read from the service's injected clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrunkState<T = SystemTime> {
    /// Whether a `[trunk]` is configured at all.
    pub configured: bool,
    pub host: String,
    pub transport: Option<TrunkTransport>,
    /// The trunk's resolved address (`None` until the host resolves).
    pub addr: Option<SocketAddr>,
    /// Whether we REGISTER with the trunk at all.
    pub register: bool,
    /// A REGISTER binding is valid right now (always false with `register = false`).
    pub registered: bool,
    pub registered_until: Option<T>,
    /// When the next REGISTER (refresh or retry) goes out.
    pub next_register: Option<T>,
    /// Consecutive failed REGISTERs (0 after a success).
    pub register_failures: u32,
    /// Final status of the last REGISTER (200, 403, 408 for a timeout …).
    pub register_status: Option<u16>,
    /// `None`: no verdict yet; `Some(false)` after an OPTIONS or REGISTER timed out or
    /// the connection failed; `Some(true)` after any response from the trunk.
    pub reachable: Option<bool>,
    pub last_options_rtt: Option<Duration>,
    pub options_status: Option<u16>,
    /// The last problem, in words (cleared by the next success of the same kind).
    pub last_error: Option<String>,
    /// The moment this state was read out (and so, for a published one, when it was
    /// published).
    pub updated_at: Option<T>,
}

/// No trunk configured, nothing known.
impl<T> Default for TrunkState<T> {
    fn default() -> Self {
        TrunkState {
            configured: false,
            host: String::new(),
            transport: None,
            addr: None,
            register: false,
            registered: false,
            registered_until: None,
            next_register: None,
            register_failures: 0,
            register_status: None,
            reachable: None,
            last_options_rtt: None,
            options_status: None,
            last_error: None,
            updated_at: None,
        }
    }
}

impl<T> TrunkState<T> {
    /// The same state with every moment converted by `f`.
    pub fn map_time<U>(self, f: impl Fn(T) -> U) -> TrunkState<U> {
        TrunkState {
            configured: self.configured,
            host: self.host,
            transport: self.transport,
            addr: self.addr,
            register: self.register,
            registered: self.registered,
            registered_until: self.registered_until.map(&f),
            next_register: self.next_register.map(&f),
            register_failures: self.register_failures,
            register_status: self.register_status,
            reachable: self.reachable,
            last_options_rtt: self.last_options_rtt,
            options_status: self.options_status,
            last_error: self.last_error,
            updated_at: self.updated_at.map(&f),
        }
    }
}

impl TrunkState<Instant> {
    /// The state on the wall clock, `wall` being the wall-clock reading at `now`.
    /// (A moment `SystemTime` cannot hold saturates rather than panics.)
    pub fn on_wall_clock(self, now: Instant, wall: SystemTime) -> TrunkState<SystemTime> {
        self.map_time(|i| match i.checked_duration_since(now) {
            Some(ahead) => wall.checked_add(ahead).unwrap_or(wall),
            None => wall
                .checked_sub(now.duration_since(i))
                .unwrap_or(SystemTime::UNIX_EPOCH),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrunkTxn {
    Register,
    Options,
}

/// A request to the trunk, for the endpoint to start as a client transaction: the
/// transaction layer adds Via, Max-Forwards, User-Agent and Content-Length.
#[derive(Clone, Debug)]
pub struct TrunkRequest {
    pub kind: TrunkTxn,
    pub request: ClientRequest,
}

/// How a trunk transaction ended.
#[derive(Debug)]
pub enum TrunkOutcome<'a> {
    Response(&'a rsip::Response),
    /// Timer F: no final response.
    Timeout,
    /// The connection could not be opened or broke.
    TransportError,
}

/// Refresh at this share of the granted expiry.
const REFRESH_PERCENT: u32 = 80;
/// Never refresh more often than this (a registrar granting 1 s must not make us spin).
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Retry-After values above this are capped (a broken header must not silence us a day).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

pub struct Trunk {
    cfg: TrunkConfig,
    /// Our advertised address, for Contact and From.
    local: SocketAddr,
    /// The condition (`updated_at` is set when it is read out).
    status: TrunkState<Instant>,
    changed: bool,
    sends: VecDeque<TrunkRequest>,
    // --- registration ---
    reg_call_id: String,
    reg_from_tag: String,
    reg_cseq: u32,
    reg_pending: bool,
    /// Expiry asked for (raised by a 423's Min-Expires).
    reg_expires: Duration,
    /// A 423 was already followed once for this round.
    interval_retry: bool,
    /// Shutting down: the next REGISTER removes the binding (Expires: 0), nothing more
    /// is sent afterwards.
    closing: bool,
    /// The REGISTER in flight is the removal (sent while closing).
    reg_sent_closing: bool,
    auth: AuthSession,
    // --- keepalive ---
    options_next: Option<Instant>,
    options_sent: Option<Instant>,
}

impl Trunk {
    pub fn new(cfg: TrunkConfig, local: SocketAddr) -> Trunk {
        let host = host_string(local);
        let status = TrunkState {
            configured: true,
            host: cfg.host.clone(),
            transport: Some(cfg.transport),
            register: cfg.register,
            ..TrunkState::default()
        };
        Trunk {
            reg_expires: cfg.register_expires,
            cfg,
            local,
            status,
            changed: true,
            sends: VecDeque::new(),
            reg_call_id: format!("{}@{host}", random_token(20)),
            reg_from_tag: random_token(12),
            reg_cseq: 0,
            reg_pending: false,
            interval_retry: false,
            closing: false,
            reg_sent_closing: false,
            auth: AuthSession::default(),
            options_next: None,
            options_sent: None,
        }
    }

    pub fn config(&self) -> &TrunkConfig {
        &self.cfg
    }

    /// The condition as of `now`.
    pub fn state(&self, now: Instant) -> TrunkState<Instant> {
        TrunkState {
            updated_at: Some(now),
            ..self.status.clone()
        }
    }

    /// Where requests to the trunk go (`None` until resolved). Over TCP the driver keeps
    /// one connection to it and reuses it for everything.
    pub fn flow(&self) -> Option<Flow> {
        let addr = self.status.addr?;
        Some(match self.cfg.transport {
            TrunkTransport::Udp => Flow::Udp(addr),
            TrunkTransport::Tcp => Flow::tcp_to(addr),
        })
    }

    /// True once after every change of [`Trunk::state`] (the driver then publishes it).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    pub fn poll_request(&mut self) -> Option<TrunkRequest> {
        self.sends.pop_front()
    }

    /// The host resolved: registration and keepalive start now.
    pub fn set_addr(&mut self, now: Instant, addr: SocketAddr) {
        if self.status.addr == Some(addr) {
            return;
        }
        let first = self.status.addr.is_none();
        self.status.addr = Some(addr);
        self.changed = true;
        if first {
            if self.cfg.register {
                self.status.next_register = Some(now);
            }
            if self.cfg.options_interval.is_some() {
                self.options_next = Some(now);
            }
        }
        self.handle_timeout(now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let reg = if self.reg_pending {
            None
        } else {
            self.status.next_register
        };
        let options = if self.options_sent.is_some() {
            None
        } else {
            self.options_next
        };
        let expiry = self
            .status
            .registered
            .then_some(self.status.registered_until);
        [reg, options, expiry.flatten()].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.status.registered && self.status.registered_until.is_some_and(|u| u <= now) {
            self.status.registered = false;
            self.status.registered_until = None;
            self.status.last_error = Some("registration expired".into());
            self.changed = true;
        }
        if !self.reg_pending && self.status.next_register.is_some_and(|at| at <= now) {
            self.send_register();
        }
        if self.options_sent.is_none() && self.options_next.is_some_and(|at| at <= now) {
            self.send_options(now);
        }
    }

    /// Shutdown: remove our binding (REGISTER with Expires: 0) and stop the keepalive.
    /// Returns false when there is nothing to remove.
    pub fn unregister(&mut self) -> bool {
        self.options_next = None;
        if self.closing || !self.cfg.register || self.status.addr.is_none() {
            return false;
        }
        self.closing = true;
        self.status.next_register = None;
        if !self.status.registered && !self.reg_pending {
            return false;
        }
        if !self.reg_pending {
            self.send_register();
        }
        true
    }

    /// The connection to the trunk broke (TCP): the registrar's binding points at a dead
    /// flow, so register again at once.
    pub fn on_connection_lost(&mut self, now: Instant) {
        self.status.reachable = Some(false);
        self.status.last_error = Some("connection to the trunk lost".into());
        self.changed = true;
        // Only a healthy registration is renewed at once; after a failure (a refused
        // connect is one) the backoff stands, so a dead trunk is not hammered.
        if self.cfg.register && !self.reg_pending && self.status.register_failures == 0 {
            self.status.next_register = Some(now);
        }
    }

    pub fn on_outcome(&mut self, now: Instant, kind: TrunkTxn, outcome: TrunkOutcome<'_>) {
        match kind {
            TrunkTxn::Register => self.register_outcome(now, outcome),
            TrunkTxn::Options => self.options_outcome(now, outcome),
        }
        self.changed = true;
    }

    // ----- REGISTER ---------------------------------------------------------------

    fn send_register(&mut self) {
        self.reg_pending = true;
        self.reg_sent_closing = self.closing;
        self.reg_cseq += 1;
        let uri = self.cfg.server_uri();
        let user = self.cfg.register_user().to_string();
        let host = self.cfg.uri_host();
        let aor = format!("sip:{user}@{host}");
        let mut h = format!(
            "Contact: <sip:{user}@{local}{tp}>\r\nExpires: {exp}\r\n",
            local = host_port(self.local),
            tp = self.cfg.transport_param(),
            exp = if self.closing {
                0
            } else {
                self.reg_expires.as_secs()
            },
        );
        if let Some((name, value)) =
            self.auth
                .header_for(self.cfg.credentials.as_ref(), "REGISTER", &uri)
        {
            h.push_str(&format!("{name}: {value}\r\n"));
        }
        self.sends.push_back(TrunkRequest {
            kind: TrunkTxn::Register,
            request: ClientRequest {
                method: Method::Register,
                uri,
                route: Vec::new(),
                from: format!("<{aor}>;tag={}", self.reg_from_tag),
                to: format!("<{aor}>"),
                call_id: self.reg_call_id.clone(),
                cseq: self.reg_cseq,
                headers: h,
                body: None,
            },
        });
    }

    fn register_outcome(&mut self, now: Instant, outcome: TrunkOutcome<'_>) {
        self.reg_pending = false;
        if self.closing {
            return self.unregister_outcome(outcome);
        }
        let resp = match outcome {
            TrunkOutcome::Response(r) => r,
            TrunkOutcome::Timeout => {
                self.status.reachable = Some(false);
                self.status.register_status = Some(408);
                return self.register_failed(now, "REGISTER timed out".into(), None);
            }
            TrunkOutcome::TransportError => {
                self.status.reachable = Some(false);
                self.status.register_status = Some(503);
                return self.register_failed(now, "REGISTER: transport error".into(), None);
            }
        };
        let status = resp.status_code.code();
        self.status.reachable = Some(true);
        self.status.register_status = Some(status);
        match status {
            200..=299 => {
                let granted = granted_expiry(resp, self.local).unwrap_or(self.reg_expires);
                if granted.is_zero() {
                    return self.register_failed(
                        now,
                        "registrar granted no binding (expires=0)".into(),
                        None,
                    );
                }
                self.auth.on_success();
                self.interval_retry = false;
                self.status.registered = true;
                self.status.registered_until = Some(now + granted);
                self.status.register_failures = 0;
                self.status.last_error = None;
                let refresh = (granted * REFRESH_PERCENT / 100).max(MIN_REFRESH);
                self.status.next_register = Some(now + refresh.min(granted));
                tracing::info!(expires = granted.as_secs(), "registered with the trunk");
            }
            401 | 407 => {
                if self
                    .auth
                    .on_challenge(resp, self.cfg.credentials.as_ref())
                    .is_some()
                {
                    self.send_register();
                } else {
                    let why = if self.cfg.credentials.is_none() {
                        "REGISTER challenged but no credentials configured"
                    } else {
                        "REGISTER: credentials rejected"
                    };
                    self.register_failed(now, why.into(), retry_after(resp));
                }
            }
            423 if !self.interval_retry => {
                let min = header(resp, "Min-Expires")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                match min {
                    Some(min) if min > self.reg_expires => {
                        self.interval_retry = true;
                        self.reg_expires = min;
                        self.send_register();
                    }
                    _ => self.register_failed(
                        now,
                        "REGISTER: 423 without a usable Min-Expires".into(),
                        None,
                    ),
                }
            }
            _ => {
                let why = format!("REGISTER rejected with {status}");
                self.register_failed(now, why, retry_after(resp));
            }
        }
    }

    /// The outcome of a REGISTER sent while closing: the one that removes the binding,
    /// or an earlier refresh still in flight (then the removal goes out now).
    fn unregister_outcome(&mut self, outcome: TrunkOutcome<'_>) {
        let removing = self.reg_sent_closing;
        match outcome {
            TrunkOutcome::Response(resp) => {
                let status = resp.status_code.code();
                self.status.register_status = Some(status);
                if matches!(status, 401 | 407)
                    && self
                        .auth
                        .on_challenge(resp, self.cfg.credentials.as_ref())
                        .is_some()
                {
                    return self.send_register();
                }
                if !removing {
                    return self.send_register();
                }
                if (200..300).contains(&status) {
                    tracing::info!("unregistered from the trunk");
                    self.status.registered = false;
                    self.status.registered_until = None;
                } else {
                    self.status.last_error = Some(format!("un-REGISTER rejected with {status}"));
                }
            }
            TrunkOutcome::Timeout | TrunkOutcome::TransportError => {
                self.status.last_error = Some("un-REGISTER got no answer".into());
            }
        }
        self.status.next_register = None;
    }

    fn register_failed(&mut self, now: Instant, why: String, retry_after: Option<Duration>) {
        tracing::warn!(error = %why, "trunk registration failed");
        self.status.register_failures += 1;
        self.status.last_error = Some(why);
        self.interval_retry = false;
        // A failed round starts the next one afresh: one retry per new challenge.
        self.auth.on_success();
        let delay = retry_after
            .map(|r| r.min(MAX_RETRY_AFTER))
            .unwrap_or_else(|| backoff(&self.cfg, self.status.register_failures));
        self.status.next_register = Some(now + delay);
    }

    // ----- OPTIONS ----------------------------------------------------------------

    fn send_options(&mut self, now: Instant) {
        let Some(interval) = self.cfg.options_interval else {
            return;
        };
        self.options_sent = Some(now);
        self.options_next = Some(now + interval);
        let local = host_string(self.local);
        self.sends.push_back(TrunkRequest {
            kind: TrunkTxn::Options,
            request: ClientRequest {
                method: Method::Options,
                uri: self.cfg.server_uri(),
                route: Vec::new(),
                from: format!(
                    "<sip:{user}@{local}>;tag={tag}",
                    user = self.cfg.caller_id,
                    tag = random_token(10)
                ),
                to: format!("<sip:{}>", self.cfg.uri_host()),
                call_id: format!("{}@{local}", random_token(20)),
                cseq: 1,
                headers: "Accept: application/sdp\r\n".to_string(),
                body: None,
            },
        });
    }

    fn options_outcome(&mut self, now: Instant, outcome: TrunkOutcome<'_>) {
        let sent = self.options_sent.take();
        match outcome {
            TrunkOutcome::Response(resp) => {
                let was_down = self.status.reachable == Some(false);
                self.status.reachable = Some(true);
                self.status.options_status = Some(resp.status_code.code());
                self.status.last_options_rtt = sent.map(|s| now.duration_since(s));
                if was_down {
                    tracing::info!("trunk reachable again");
                    self.status.last_error = None;
                }
            }
            TrunkOutcome::Timeout | TrunkOutcome::TransportError => {
                if self.status.reachable != Some(false) {
                    tracing::warn!("trunk unreachable: OPTIONS got no answer");
                }
                self.status.reachable = Some(false);
                self.status.options_status = None;
                self.status.last_error = Some(match outcome {
                    TrunkOutcome::Timeout => "OPTIONS keepalive timed out".into(),
                    _ => "OPTIONS keepalive: transport error".into(),
                });
            }
        }
        // Never two probes in flight; the next one is due `interval` after the last.
        if let Some(next) = self.options_next
            && next < now
        {
            self.options_next = Some(now);
        }
    }
}

/// Exponential backoff: `retry_min · 2^(failures-1)`, capped at `retry_max`.
pub fn backoff(cfg: &TrunkConfig, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(20);
    cfg.retry_min
        .saturating_mul(1u32 << shift)
        .min(cfg.retry_max)
}

/// `Retry-After: 120 (comment);duration=…` → 120 s.
pub fn retry_after(resp: &rsip::Response) -> Option<Duration> {
    let v = header(resp, "Retry-After")?;
    let secs: String = v
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    secs.parse::<u64>().ok().map(Duration::from_secs)
}

/// The expiry the registrar granted our binding: the `expires` parameter of the Contact
/// naming our address, else the `Expires` header.
fn granted_expiry(resp: &rsip::Response, local: SocketAddr) -> Option<Duration> {
    let ours = host_port(local);
    let from_contact = message::headers(resp, "Contact")
        .into_iter()
        .flat_map(split_header_list)
        .find(|c| uri_of(c).contains(&ours))
        .and_then(|c| header_param(&c, "expires").and_then(|e| e.trim().parse::<u64>().ok()));
    let secs = from_contact
        .or_else(|| header(resp, "Expires").and_then(|v| v.trim().parse::<u64>().ok()))?;
    Some(Duration::from_secs(secs))
}

fn host_port(a: SocketAddr) -> String {
    format!("{}:{}", host_string(a), a.port())
}

#[cfg(test)]
mod tests;
