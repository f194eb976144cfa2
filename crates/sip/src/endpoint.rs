//! The SIP user-agent core, sans-IO: transactions (RFC 3261 §17 with RFC 6026) and
//! dialogs for inbound calls.
//!
//! The endpoint never reads a clock or touches a socket. The driver (`sip::transport`)
//! feeds it received bytes, commands from calls and `now`; it drains [`Output`]s
//! (datagrams to send, [`LegEvent`]s for the call layer) and sleeps until
//! [`Endpoint::poll_timeout`]. That is what lets the tests run Timer H (64·T1 = 32 s)
//! in microseconds.
//!
//! What the call layer sees is a *leg*: one side of a call, identified by a [`LegId`],
//! with plain events (incoming offer, confirmed, re-offer, INFO digits, terminated).
//! Everything SIP-specific (branches, tags, CSeq, retransmissions) stays here.
//!
//! Outbound calls (`uac.rs`) are legs too: [`Endpoint::dial`] sends an INVITE (INVITE
//! client transaction, RFC 3261 §17.1.1 with RFC 6026, digest auth, CANCEL) and the
//! leg reports [`LegEvent::Progress`], then [`LegEvent::Answered`] or
//! [`LegEvent::Failed`]; once answered it is an ordinary dialog and receives the same
//! `Info`, `Reoffer`, `Terminated`, `ByeCompleted` events as an inbound leg. The trunk
//! (`trunk.rs`: REGISTER, OPTIONS keepalive) is driven from here too, and the source
//! ACL (`acl.rs`) is applied before any state is created for a request.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsipstack::sip as rsip;
use rsipstack::sip::{Header, Method};

use super::acl::Acl;
use super::edge::{self, Inbound};
use super::message::{self, header, other, random_token, tag_of, uri_of, user_of};
use super::trunk::{Trunk, TrunkConfig, TrunkOutcome, TrunkStatus, TrunkTxn};
use tongdai_capacity::GiveBack;

mod uac;
pub use uac::{DialError, DialRequest, Dialed, FailCause};

/// Identifies one leg (one SIP dialog, or a dialog-to-be) for the call layer.
pub type LegId = u64;

/// Where a message came from / goes to. TCP keeps the connection so that responses and
/// in-dialog requests reuse it (peers behind NAT or proxies expect that).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    Udp(SocketAddr),
    Tcp { conn: u64, remote: SocketAddr },
}

/// `conn` of a [`Flow::Tcp`] that means "the driver's own client connection to
/// `remote`, opened on first use and reopened after a loss" (outbound calls, the
/// trunk). Accepted connections are numbered from 1.
pub const OUTBOUND_CONN: u64 = 0;

impl Flow {
    /// A TCP flow to `remote` over our own (client) connection.
    pub fn tcp_to(remote: SocketAddr) -> Flow {
        Flow::Tcp {
            conn: OUTBOUND_CONN,
            remote,
        }
    }

    pub fn remote(&self) -> SocketAddr {
        match self {
            Flow::Udp(a) => *a,
            Flow::Tcp { remote, .. } => *remote,
        }
    }
    /// Reliable transports need no retransmissions (RFC 3261 §17: Timers E, G off;
    /// I, J, K zero).
    pub fn reliable(&self) -> bool {
        matches!(self, Flow::Tcp { .. })
    }
    fn via_transport(&self) -> &'static str {
        match self {
            Flow::Udp(_) => "UDP",
            Flow::Tcp { .. } => "TCP",
        }
    }
}

/// RFC 3261 timer base values.
#[derive(Clone, Debug)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

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

/// A new inbound call, handed to the call layer to accept or reject.
#[derive(Clone, Debug)]
pub struct IncomingCall {
    pub leg: LegId,
    pub call_id: String,
    /// Request-URI user: the number that was dialled (e.g. `9090`).
    pub called: Option<String>,
    /// Caller identity: P-Asserted-Identity user, else From user.
    pub caller: Option<String>,
    pub from_uri: String,
    pub flow: Flow,
    pub content_type: Option<String>,
    pub sdp: Vec<u8>,
}

/// Why a leg ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// CANCEL before answer (we sent 487).
    Cancelled,
    /// The remote party sent BYE.
    RemoteBye,
    /// Our 2xx was never acknowledged (Timer H equivalent, RFC 3261 §13.3.1.4).
    AckTimeout,
}

#[derive(Clone, Debug)]
pub enum LegEvent {
    Incoming(IncomingCall),
    /// ACK for our 2xx: media may flow both ways.
    Confirmed {
        leg: LegId,
    },
    /// A re-INVITE with a new offer (hold/unhold); answer with
    /// [`Command::AnswerReoffer`] or [`Command::RejectReoffer`].
    Reoffer {
        leg: LegId,
        sdp: Vec<u8>,
    },
    /// INFO in the dialog (already answered 200).
    Info {
        leg: LegId,
        content_type: String,
        body: Vec<u8>,
        at: Instant,
    },
    Terminated {
        leg: LegId,
        reason: EndReason,
    },
    /// Our BYE got its final response (or timed out: `status` None).
    ByeCompleted {
        leg: LegId,
        status: Option<u16>,
    },
    /// Outbound leg: a provisional response (180 Ringing, 183 Session Progress …; never
    /// 100). `sdp` is the early-media answer a 183 may carry. May come several times.
    Progress {
        leg: LegId,
        status: u16,
        sdp: Option<Vec<u8>>,
    },
    /// Outbound leg: the callee answered (2xx) and our ACK is sent; `sdp` is the answer
    /// to our offer (empty if the callee sent none). From here on the leg is a dialog
    /// like an inbound one: `Info`, `Reoffer`, `Terminated`, `Hangup` → `ByeCompleted`.
    Answered {
        leg: LegId,
        sdp: Vec<u8>,
    },
    /// Outbound leg: the call did not connect. Always the last event of the leg.
    /// `status` is the final SIP code: the far end's (486, 603, 404, 487 after our
    /// CANCEL, 401/407 when our credentials were refused, 200 when an answer crossed our
    /// CANCEL — we ACK and BYE it), or a local stand-in: 408 when no response came
    /// (Timer B) and 503 when the trunk could not be reached over TCP; `cause` tells
    /// these apart. `reason` is the `Reason` header (`Q.850;cause=17;text="busy"`),
    /// `retry_after` the `Retry-After`.
    Failed {
        leg: LegId,
        status: u16,
        cause: FailCause,
        reason: Option<String>,
        retry_after: Option<Duration>,
    },
    /// Final response to our REFER (202 = the peer will try; `None` = timed out).
    ReferAnswered {
        leg: LegId,
        status: Option<u16>,
    },
    /// A NOTIFY of the transfer's progress (RFC 3515 sipfrag): the status line of the
    /// new call's INVITE as the transferee sees it (100 trying, 200 connected, 486 …).
    TransferProgress {
        leg: LegId,
        status: u16,
    },
}

#[derive(Clone, Debug)]
pub enum Command {
    Ringing {
        leg: LegId,
    },
    Answer {
        leg: LegId,
        sdp: Vec<u8>,
    },
    Reject {
        leg: LegId,
        status: u16,
    },
    AnswerReoffer {
        leg: LegId,
        sdp: Vec<u8>,
    },
    RejectReoffer {
        leg: LegId,
        status: u16,
    },
    /// Hang up: BYE on an answered leg (deferred until the ACK if it is still missing),
    /// 480 on an unanswered inbound one, CANCEL on an unanswered outbound one.
    Hangup {
        leg: LegId,
    },
    /// Outbound leg not answered yet: CANCEL it (RFC 3261 §9.1; sent once a provisional
    /// response has arrived, so possibly later). The leg ends with `Failed` (487,
    /// `FailCause::Cancelled`) — or, if a 2xx crossed the CANCEL, with the 2xx ACKed, a
    /// BYE sent and `Failed { status: 200, cause: Cancelled }`. On an answered leg it is
    /// a `Hangup`.
    Cancel {
        leg: LegId,
    },
    /// Blind transfer (RFC 3515): REFER the caller to `target` (a SIP URI).
    Refer {
        leg: LegId,
        target: String,
    },
}

#[derive(Debug)]
pub enum Output {
    Transmit {
        flow: Flow,
        bytes: Vec<u8>,
    },
    Event(LegEvent),
    /// The trunk's status changed (publish it).
    Trunk(TrunkStatus),
}

/// Transaction key: top-Via branch + sent-by + method (ACK and CANCEL map onto their
/// INVITE). RFC 2543 peers without the magic cookie fall back to Call-ID/CSeq/From-tag.
type TxKey = String;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IstState {
    Proceeding,
    /// Non-2xx final sent; retransmitted on Timer G until ACK or Timer H.
    Completed,
    /// ACK for the non-2xx received; absorb retransmissions until Timer I.
    Confirmed,
    /// 2xx sent (RFC 6026): absorb INVITE retransmissions until Timer L.
    Accepted,
}

/// INVITE server transaction.
struct InviteServerTxn {
    leg: Option<LegId>,
    request: rsip::Request,
    flow: Flow,
    state: IstState,
    last_response: Option<Vec<u8>>,
    /// Next Timer G retransmission and its interval.
    timer_g: Option<(Instant, Duration)>,
    /// Timer H / I / L: when the transaction ends (or gives up waiting for ACK).
    deadline: Option<Instant>,
}

/// Non-INVITE server transaction: answered at once, kept to absorb retransmissions.
struct NonInviteServerTxn {
    last_response: Vec<u8>,
    expires: Instant,
}

/// Who is waiting for a non-INVITE client transaction's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NictOwner {
    /// BYE or REFER in a leg's dialog.
    Leg(LegId, ClientMethod),
    /// CANCEL of an outbound leg's INVITE: its outcome matters to nobody (the INVITE's
    /// 487 or the CANCEL give-up timer ends the leg).
    Cancel,
    Trunk(TrunkTxn),
}

/// Non-INVITE client transaction (our BYE, REFER, CANCEL, REGISTER, OPTIONS).
struct NonInviteClientTxn {
    owner: NictOwner,
    flow: Flow,
    bytes: Vec<u8>,
    timer_e: Option<(Instant, Duration)>,
    timer_f: Instant,
    /// Timer K once a final response arrived.
    done_at: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientMethod {
    Bye,
    Refer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegState {
    /// INVITE received, no final response yet.
    Early,
    /// 2xx sent, ACK not yet received.
    WaitingAck,
    Confirmed,
    /// We sent BYE.
    Terminating,
}

/// Retransmission of our 2xx until its ACK arrives (RFC 3261 §13.3.1.4).
struct Pending2xx {
    cseq: u32,
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// A UAS dialog (and the early state before it).
struct Leg {
    call_id: String,
    local_tag: String,
    /// Our identity in requests we send (the INVITE's To, with our tag).
    local: String,
    /// Theirs (the INVITE's From, with their tag).
    remote: String,
    remote_target: String,
    route_set: Vec<String>,
    flow: Flow,
    /// Outbound legs only: the INVITE client side (auth, CANCEL, the 2xx's ACK).
    uac: Option<Box<uac::UacLeg>>,
    local_cseq: u32,
    remote_cseq: u32,
    state: LegState,
    invite_key: TxKey,
    reinvite_key: Option<TxKey>,
    pending_2xx: Option<Pending2xx>,
    /// Hangup requested before the ACK arrived: BYE goes out on ACK or give-up.
    hangup_pending: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerRef {
    Ist(TxKey),
    Nist(TxKey),
    Nict(TxKey),
    Leg(LegId),
    Ict(TxKey),
    /// Outbound leg: Timer C (ring too long) or the CANCEL give-up.
    Uac(LegId),
}

pub struct Endpoint {
    cfg: EndpointConfig,
    acl: Acl,
    ist: HashMap<TxKey, InviteServerTxn>,
    nist: HashMap<TxKey, NonInviteServerTxn>,
    nict: HashMap<TxKey, NonInviteClientTxn>,
    ict: HashMap<TxKey, uac::InviteClientTxn>,
    trunk: Option<Trunk>,
    legs: HashMap<LegId, Leg>,
    /// (Call-ID, our tag) → leg: how in-dialog requests find their dialog.
    dialogs: HashMap<(String, String), LegId>,
    timers: BinaryHeap<Reverse<(Instant, TimerRef)>>,
    outputs: VecDeque<Output>,
    next_leg: LegId,
    draining: bool,
}

impl Endpoint {
    /// An inbound-only endpoint: everyone may call, no trunk.
    pub fn new(cfg: EndpointConfig) -> Self {
        Self::with_access(cfg, AccessConfig::default())
    }

    /// An endpoint with a source ACL and (optionally) a trunk for outbound calls.
    pub fn with_access(cfg: EndpointConfig, access: AccessConfig) -> Self {
        let trunk = access.trunk.map(|t| Trunk::new(t, cfg.advertised));
        Endpoint {
            cfg,
            acl: access.acl,
            ist: HashMap::new(),
            nist: HashMap::new(),
            nict: HashMap::new(),
            ict: HashMap::new(),
            trunk,
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
            next_leg: 1,
            draining: false,
        }
    }

    /// While draining (shutdown), new INVITEs get 503; calls in progress continue.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Legs that are not finished (including ones waiting for our BYE's answer).
    pub fn active_legs(&self) -> usize {
        self.legs.len()
    }

    /// Transactions still alive (for tests and the "back to baseline" checks).
    pub fn transactions(&self) -> usize {
        self.ist.len() + self.nist.len() + self.nict.len() + self.ict.len()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let heap = self.timers.peek().map(|Reverse((at, _))| *at);
        let trunk = self.trunk.as_ref().and_then(Trunk::poll_timeout);
        [heap, trunk].into_iter().flatten().min()
    }

    /// Feeds one datagram or one framed stream message.
    pub fn handle_bytes(&mut self, now: Instant, flow: Flow, bytes: &[u8]) {
        let allowed = self.acl.allows(flow.remote().ip());
        match edge::classify(bytes) {
            Inbound::Request(req) if !allowed && !self.belongs_to_known_state(&req) => {
                self.refuse_by_acl(flow, &req)
            }
            Inbound::Request(req) => self.handle_request(now, flow, req),
            Inbound::Response(resp) => self.handle_response(now, resp),
            Inbound::Reject { status, reason, .. } if !allowed => {
                tracing::debug!(status, %reason, from = %flow.remote(), "malformed request from outside the ACL dropped");
            }
            Inbound::KeepAlive => {
                // RFC 5626 §4.4.1: a CRLFCRLF ping over a stream gets a CRLF pong.
                if flow.reliable() && bytes.starts_with(b"\r\n\r\n") {
                    self.transmit(flow, b"\r\n".to_vec());
                }
            }
            Inbound::Reject {
                status,
                reason,
                reply,
            } => {
                tracing::debug!(status, %reason, from = %flow.remote(), "rejected at the edge");
                if let Some(reply) = reply {
                    self.transmit(flow, reply);
                }
            }
            Inbound::Drop { reason } => {
                tracing::debug!(%reason, from = %flow.remote(), "dropped at the edge");
            }
        }
    }

    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Hangup { leg } | Command::Reject { leg, .. } | Command::Cancel { leg }
                if self.is_outbound(leg) =>
            {
                self.uac_hangup(now, leg)
            }
            Command::Cancel { leg } => self.hangup(now, leg),
            Command::Ringing { leg } => self.send_provisional(leg, 180),
            Command::Answer { leg, sdp } => self.answer(now, leg, sdp),
            Command::Reject { leg, status } => self.reject(now, leg, status),
            Command::AnswerReoffer { leg, sdp } => self.answer_reoffer(now, leg, sdp),
            Command::RejectReoffer { leg, status } => self.reject_reoffer(now, leg, status),
            Command::Hangup { leg } => self.hangup(now, leg),
            Command::Refer { leg, target } => self.refer(now, leg, &target),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, target))) = self.timers.pop() else {
                break;
            };
            match target {
                TimerRef::Ist(key) => self.ist_timer(now, key),
                TimerRef::Nist(key) => {
                    if self.nist.get(&key).is_some_and(|t| t.expires <= now) {
                        self.nist.remove(&key);
                    }
                }
                TimerRef::Nict(key) => self.nict_timer(now, key),
                TimerRef::Leg(leg) => self.leg_timer(now, leg),
                TimerRef::Ict(key) => self.ict_timer(now, key),
                TimerRef::Uac(leg) => self.uac_timer(now, leg),
            }
        }
        if let Some(trunk) = self.trunk.as_mut() {
            trunk.handle_timeout(now);
        }
        self.flush_trunk(now);
        // Completed transactions leave here (Timers D, H, I, J, K, after 32 s at most), so
        // this is where the tables of a load peak get their memory back.
        self.ist.give_back();
        self.nist.give_back();
        self.nict.give_back();
        self.ict.give_back();
        self.timers.give_back();
        // Not `outputs`: a transient queue, drained after every input; shrinking it
        // would only reallocate it at the next burst.
    }

    // ----- requests -------------------------------------------------------------

    fn handle_request(&mut self, now: Instant, flow: Flow, req: rsip::Request) {
        let Some(key) = tx_key(&req) else {
            return self.reply_stateless(flow, &req, 400);
        };
        match req.method {
            Method::Ack => self.handle_ack(now, &key, &req),
            Method::Cancel => self.handle_cancel(now, flow, key, &req),
            Method::Invite => self.handle_invite(now, flow, key, req),
            _ => {
                if let Some(txn) = self.nist.get(&key) {
                    // Retransmission: resend our answer, do not process again. It goes
                    // where this copy came from (RFC 3261 §18.2.2), which is also right
                    // when a NAT binding changed between the copies.
                    let bytes = txn.last_response.clone();
                    return self.transmit(flow, bytes);
                }
                let status_and_events = self.handle_non_invite(now, flow, &req);
                let (status, extra, body) = status_and_events;
                let resp = message::response(
                    &req,
                    status,
                    Some(&random_token(10)),
                    false,
                    extra,
                    body,
                    &self.cfg.user_agent,
                );
                let bytes = resp.to_bytes();
                self.transmit(flow, bytes.clone());
                let linger = if flow.reliable() {
                    Duration::ZERO
                } else {
                    self.cfg.timers.t1 * 64
                };
                if !linger.is_zero() {
                    let expires = now + linger;
                    self.nist.insert(
                        key.clone(),
                        NonInviteServerTxn {
                            last_response: bytes,
                            expires,
                        },
                    );
                    self.timers.push(Reverse((expires, TimerRef::Nist(key))));
                }
            }
        }
    }

    /// BYE, INFO, OPTIONS and the methods we know but do not serve. Returns the status,
    /// extra headers and body of the response.
    #[allow(clippy::type_complexity)]
    fn handle_non_invite(
        &mut self,
        now: Instant,
        flow: Flow,
        req: &rsip::Request,
    ) -> (u16, Vec<Header>, Option<(&'static str, Vec<u8>)>) {
        let in_dialog = self.find_dialog(req);
        match req.method {
            Method::Options => (
                200,
                vec![
                    other("Allow", message::ALLOW),
                    other(
                        "Accept",
                        "application/sdp, application/dtmf-relay, application/dtmf",
                    ),
                    other("Supported", ""),
                ],
                None,
            ),
            Method::Bye => {
                let Some(leg_id) = in_dialog else {
                    return (481, vec![], None);
                };
                self.note_remote_cseq(leg_id, req);
                let Some(leg) = self.legs.get(&leg_id) else {
                    return (481, vec![], None);
                };
                match leg.state {
                    LegState::Terminating => {}
                    LegState::Early => {
                        // RFC 3261 §15.2: answer the pending INVITE with 487.
                        let key = leg.invite_key.clone();
                        self.final_non2xx(now, &key, 487);
                        self.end_leg(leg_id, Some(EndReason::RemoteBye));
                    }
                    LegState::WaitingAck | LegState::Confirmed => {
                        self.end_leg(leg_id, Some(EndReason::RemoteBye));
                    }
                }
                (200, vec![], None)
            }
            Method::Info => {
                let Some(leg_id) = in_dialog else {
                    return (481, vec![], None);
                };
                self.note_remote_cseq(leg_id, req);
                let content_type = header(req, "Content-Type").unwrap_or("").to_string();
                self.outputs.push_back(Output::Event(LegEvent::Info {
                    leg: leg_id,
                    content_type,
                    body: req.body.clone(),
                    at: now,
                }));
                (200, vec![], None)
            }
            Method::Notify => {
                // RFC 3515 §2.4.5: progress of a REFER we sent, as a sipfrag body.
                let Some(leg_id) = in_dialog else {
                    return (481, vec![], None);
                };
                self.note_remote_cseq(leg_id, req);
                let is_refer = header(req, "Event")
                    .is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("refer"));
                if !is_refer {
                    return (489, vec![], None);
                }
                let status = std::str::from_utf8(&req.body)
                    .ok()
                    .and_then(|b| b.trim_start().strip_prefix("SIP/2.0 "))
                    .and_then(|r| r.get(..3))
                    .and_then(|c| c.parse::<u16>().ok());
                if let Some(status) = status {
                    self.outputs
                        .push_back(Output::Event(LegEvent::TransferProgress {
                            leg: leg_id,
                            status,
                        }));
                }
                (200, vec![], None)
            }
            _ => {
                let _ = flow;
                (405, vec![other("Allow", message::ALLOW)], None)
            }
        }
    }

    fn handle_invite(&mut self, now: Instant, flow: Flow, key: TxKey, req: rsip::Request) {
        if let Some(txn) = self.ist.get(&key) {
            // Retransmitted INVITE: repeat the last response (RFC 3261 §17.2.1) to where
            // this copy came from.
            if let Some(bytes) = txn.last_response.clone() {
                self.transmit(flow, bytes);
            }
            return;
        }
        let to_tag = header(&req, "To").and_then(tag_of).map(str::to_string);
        if to_tag.is_some() {
            return self.handle_reinvite(now, flow, key, req);
        }
        let refuse = if self.draining {
            Some((503, "shutting down"))
        } else if self.legs.len() >= self.cfg.max_legs {
            Some((503, "overloaded"))
        } else {
            None
        };
        let mut txn = InviteServerTxn {
            leg: None,
            request: req,
            flow,
            state: IstState::Proceeding,
            last_response: None,
            timer_g: None,
            deadline: None,
        };
        if let Some((status, why)) = refuse {
            tracing::info!(why, "refusing a new call with 503");
            self.ist.insert(key.clone(), txn);
            let extra = vec![other("Retry-After", "5")];
            return self.ist_final(now, &key, status, extra);
        }
        // 100 Trying at once: it stops the caller's INVITE retransmissions.
        let trying = message::response(
            &txn.request,
            100,
            None,
            false,
            vec![],
            None,
            &self.cfg.user_agent,
        )
        .to_bytes();
        self.transmit(flow, trying.clone());
        txn.last_response = Some(trying);

        let leg_id = self.next_leg;
        self.next_leg += 1;
        txn.leg = Some(leg_id);
        let req = &txn.request;
        let call_id = header(req, "Call-ID").unwrap_or("").to_string();
        let from = header(req, "From").unwrap_or("").to_string();
        let to = header(req, "To").unwrap_or("").to_string();
        let local_tag = random_token(12);
        let remote_target = header(req, "Contact")
            .map(|c| uri_of(c).to_string())
            .unwrap_or_else(|| uri_of(&from).to_string());
        let route_set = message::headers(req, "Record-Route")
            .iter()
            .flat_map(|v| split_header_list(v))
            .collect();
        let remote_cseq = message::cseq(req).map(|(n, _)| n).unwrap_or(0);
        let called = user_of(&req.uri.to_string()).map(str::to_string);
        let caller = header(req, "P-Asserted-Identity")
            .and_then(|v| user_of(uri_of(v)).map(str::to_string))
            .or_else(|| user_of(uri_of(&from)).map(str::to_string));
        let incoming = IncomingCall {
            leg: leg_id,
            call_id: call_id.clone(),
            called,
            caller,
            from_uri: uri_of(&from).to_string(),
            flow,
            content_type: header(req, "Content-Type").map(str::to_string),
            sdp: req.body.clone(),
        };
        let leg = Leg {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            local: format!("{to};tag={local_tag}"),
            remote: from,
            remote_target,
            route_set,
            flow,
            uac: None,
            local_cseq: 1,
            remote_cseq,
            state: LegState::Early,
            invite_key: key.clone(),
            reinvite_key: None,
            pending_2xx: None,
            hangup_pending: false,
        };
        self.ist.insert(key, txn);
        self.dialogs.insert((call_id, local_tag), leg_id);
        self.legs.insert(leg_id, leg);
        self.outputs
            .push_back(Output::Event(LegEvent::Incoming(incoming)));
    }

    fn handle_reinvite(&mut self, now: Instant, flow: Flow, key: TxKey, req: rsip::Request) {
        let Some(leg_id) = self.find_dialog(&req) else {
            return self.reply_stateless(flow, &req, 481);
        };
        let busy = self
            .legs
            .get(&leg_id)
            .is_none_or(|l| l.reinvite_key.is_some() || l.state != LegState::Confirmed);
        let txn = InviteServerTxn {
            leg: Some(leg_id),
            request: req,
            flow,
            state: IstState::Proceeding,
            last_response: None,
            timer_g: None,
            deadline: None,
        };
        let sdp = txn.request.body.clone();
        let cseq_ok = self.note_remote_cseq(leg_id, &txn.request);
        self.ist.insert(key.clone(), txn);
        if busy || !cseq_ok {
            // RFC 3261 §14.2: an INVITE while one is pending gets 491 (or 500 with
            // Retry-After when our own offer is outstanding).
            let status = if cseq_ok { 491 } else { 500 };
            return self.ist_final(now, &key, status, vec![]);
        }
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.reinvite_key = Some(key);
        }
        self.outputs
            .push_back(Output::Event(LegEvent::Reoffer { leg: leg_id, sdp }));
    }

    fn handle_ack(&mut self, now: Instant, key: &TxKey, req: &rsip::Request) {
        if let Some(txn) = self.ist.get_mut(key)
            && txn.state == IstState::Completed
        {
            // ACK of our non-2xx final: stop retransmitting, linger for Timer I.
            txn.state = IstState::Confirmed;
            txn.timer_g = None;
            let linger = if txn.flow.reliable() {
                Duration::ZERO
            } else {
                self.cfg.timers.t4
            };
            txn.deadline = Some(now + linger);
            self.timers
                .push(Reverse((now + linger, TimerRef::Ist(key.clone()))));
            return;
        }
        let Some(leg_id) = self.find_dialog(req) else {
            return;
        };
        let ack_cseq = message::cseq(req).map(|(n, _)| n);
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        if leg
            .pending_2xx
            .as_ref()
            .is_some_and(|p| Some(p.cseq) == ack_cseq)
        {
            leg.pending_2xx = None;
        }
        if leg.state == LegState::WaitingAck {
            leg.state = LegState::Confirmed;
            let hangup = leg.hangup_pending;
            self.outputs
                .push_back(Output::Event(LegEvent::Confirmed { leg: leg_id }));
            if hangup {
                self.send_bye(now, leg_id);
            }
        }
    }

    fn handle_cancel(&mut self, now: Instant, flow: Flow, key: TxKey, req: &rsip::Request) {
        let invite_key = key.replacen("|CANCEL", "|INVITE", 1);
        let Some(txn) = self.ist.get(&invite_key) else {
            return self.reply_stateless(flow, req, 481);
        };
        let state = txn.state;
        let leg = txn.leg;
        self.reply_stateless(flow, req, 200);
        if state == IstState::Proceeding {
            self.ist_final(now, &invite_key, 487, vec![]);
            if let Some(leg) = leg {
                self.end_leg(leg, Some(EndReason::Cancelled));
            }
        }
    }

    // ----- responses ---------------------------------------------------------------

    fn handle_response(&mut self, now: Instant, resp: rsip::Response) {
        let Some(key) = tx_key_response(&resp) else {
            return;
        };
        if self.ict.contains_key(&key) {
            return self.ict_response(now, key, resp);
        }
        let status = resp.status_code.code();
        let Some(txn) = self.nict.get_mut(&key) else {
            return;
        };
        if status < 200 {
            // Proceeding: keep retransmitting at T2 (RFC 3261 §17.1.2.2).
            if let Some((_, interval)) = txn.timer_e.as_mut() {
                *interval = self.cfg.timers.t2;
            }
            return;
        }
        if txn.done_at.is_some() {
            return;
        }
        let linger = if txn.flow.reliable() {
            Duration::ZERO
        } else {
            self.cfg.timers.t4
        };
        txn.timer_e = None;
        txn.done_at = Some(now + linger);
        let owner = txn.owner;
        self.timers
            .push(Reverse((now + linger, TimerRef::Nict(key))));
        self.nict_done(now, owner, Some(&resp));
    }

    /// A non-INVITE client transaction ended: with a final response, or (`None`) Timer F
    /// or a transport error.
    fn nict_done(&mut self, now: Instant, owner: NictOwner, resp: Option<&rsip::Response>) {
        let status = resp.map(|r| r.status_code.code());
        match owner {
            NictOwner::Leg(leg, method) => self.client_done(leg, method, status),
            NictOwner::Cancel => {}
            NictOwner::Trunk(kind) => {
                let outcome = match resp {
                    Some(r) => TrunkOutcome::Response(r),
                    None => TrunkOutcome::Timeout,
                };
                if let Some(trunk) = self.trunk.as_mut() {
                    trunk.on_outcome(now, kind, outcome);
                }
                self.flush_trunk(now);
            }
        }
    }

    // ----- the source ACL ----------------------------------------------------------

    /// Whether a request from outside the ACL still concerns something we hold: a
    /// retransmission of a transaction, a CANCEL/ACK of one, or a request in an existing
    /// dialog (a callee's BYE may come straight from its own address).
    fn belongs_to_known_state(&self, req: &rsip::Request) -> bool {
        if let Some(key) = tx_key(req) {
            let invite_key = key
                .replacen("|CANCEL", "|INVITE", 1)
                .replacen("|ACK", "|INVITE", 1);
            if self.ist.contains_key(&key)
                || self.nist.contains_key(&key)
                || self.ist.contains_key(&invite_key)
            {
                return true;
            }
        }
        self.find_dialog(req).is_some()
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
        self.transmit(flow, resp.to_bytes());
    }

    // ----- commands --------------------------------------------------------------

    fn send_provisional(&mut self, leg_id: LegId, status: u16) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.state != LegState::Early {
            return;
        }
        let key = leg.invite_key.clone();
        let tag = leg.local_tag.clone();
        let Some(txn) = self.ist.get_mut(&key) else {
            return;
        };
        if txn.state != IstState::Proceeding {
            return;
        }
        let bytes = message::response(
            &txn.request,
            status,
            Some(&tag),
            true,
            vec![contact_header(&self.cfg, txn.flow, &txn.request)],
            None,
            &self.cfg.user_agent,
        )
        .to_bytes();
        txn.last_response = Some(bytes.clone());
        let flow = txn.flow;
        self.transmit(flow, bytes);
    }

    fn answer(&mut self, now: Instant, leg_id: LegId, sdp: Vec<u8>) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.state != LegState::Early {
            return;
        }
        let key = leg.invite_key.clone();
        let tag = leg.local_tag.clone();
        if self.send_2xx(now, leg_id, key, Some(&tag), sdp)
            && let Some(leg) = self.legs.get_mut(&leg_id)
        {
            leg.state = LegState::WaitingAck;
        }
    }

    /// Sends a 2xx with our SDP on the INVITE transaction `key` (initial or re-INVITE):
    /// per RFC 6026 the transaction moves to Accepted and only absorbs retransmitted
    /// INVITEs, while the dialog retransmits the 2xx until its ACK (RFC 3261 §13.3.1.4).
    /// Returns false when the transaction has already answered.
    fn send_2xx(
        &mut self,
        now: Instant,
        leg_id: LegId,
        key: TxKey,
        to_tag: Option<&str>,
        sdp: Vec<u8>,
    ) -> bool {
        let Some(txn) = self.ist.get_mut(&key) else {
            return false;
        };
        if txn.state != IstState::Proceeding {
            return false;
        }
        let cseq = message::cseq(&txn.request).map(|(n, _)| n).unwrap_or(0);
        let contact = contact_header(&self.cfg, txn.flow, &txn.request);
        let bytes = message::response(
            &txn.request,
            200,
            to_tag,
            to_tag.is_some(),
            vec![
                contact,
                other("Allow", message::ALLOW),
                other("Supported", ""),
            ],
            Some(("application/sdp", sdp)),
            &self.cfg.user_agent,
        )
        .to_bytes();
        txn.state = IstState::Accepted;
        txn.last_response = Some(bytes.clone());
        let give_up = now + self.cfg.timers.t1 * 64;
        txn.deadline = Some(give_up);
        let flow = txn.flow;
        self.timers.push(Reverse((give_up, TimerRef::Ist(key))));
        self.transmit(flow, bytes.clone());
        let t1 = self.cfg.timers.t1;
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.pending_2xx = Some(Pending2xx {
                cseq,
                bytes,
                next: now + t1,
                interval: t1,
                give_up,
            });
        }
        self.timers.push(Reverse((now + t1, TimerRef::Leg(leg_id))));
        true
    }

    fn reject(&mut self, now: Instant, leg_id: LegId, status: u16) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.state != LegState::Early {
            return;
        }
        let key = leg.invite_key.clone();
        self.final_non2xx(now, &key, status);
        self.end_leg(leg_id, None);
    }

    fn answer_reoffer(&mut self, now: Instant, leg_id: LegId, sdp: Vec<u8>) {
        let Some(key) = self
            .legs
            .get_mut(&leg_id)
            .and_then(|l| l.reinvite_key.take())
        else {
            return;
        };
        // In-dialog: the To already carries our tag, Record-Route is not repeated.
        self.send_2xx(now, leg_id, key, None, sdp);
    }

    fn reject_reoffer(&mut self, now: Instant, leg_id: LegId, status: u16) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(key) = leg.reinvite_key.take() else {
            return;
        };
        self.ist_final(now, &key, status, vec![]);
    }

    fn hangup(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        match leg.state {
            LegState::Early => {
                let key = leg.invite_key.clone();
                self.final_non2xx(now, &key, 480);
                self.end_leg(leg_id, None);
            }
            LegState::WaitingAck => leg.hangup_pending = true,
            LegState::Confirmed => self.send_bye(now, leg_id),
            LegState::Terminating => {}
        }
    }

    fn send_bye(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.state = LegState::Terminating;
        leg.pending_2xx = None;
        if let Some(key) = leg.reinvite_key.take() {
            // A re-INVITE still waiting for our answer: close it before the BYE.
            if let Some(txn) = self.ist.get(&key)
                && txn.state == IstState::Proceeding
            {
                self.ist_final(now, &key, 487, vec![]);
            }
        }
        self.send_in_dialog(
            now,
            leg_id,
            ClientMethod::Bye,
            "Reason: Q.850;cause=16;text=\"Normal call clearing\"\r\n",
        );
    }

    fn refer(&mut self, now: Instant, leg_id: LegId, target: &str) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.state != LegState::Confirmed {
            self.outputs
                .push_back(Output::Event(LegEvent::ReferAnswered {
                    leg: leg_id,
                    status: None,
                }));
            return;
        }
        let local_uri = uri_of(&leg.local).to_string();
        let extra = format!("Refer-To: <{target}>\r\nReferred-By: <{local_uri}>\r\n");
        self.send_in_dialog(now, leg_id, ClientMethod::Refer, &extra);
    }

    /// Sends BYE or REFER in the leg's dialog as a non-INVITE client transaction.
    fn send_in_dialog(&mut self, now: Instant, leg_id: LegId, method: ClientMethod, extra: &str) {
        let advertised = self.cfg.advertised;
        let ua = self.cfg.user_agent.clone();
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let name = match method {
            ClientMethod::Bye => "BYE",
            ClientMethod::Refer => "REFER",
        };
        leg.local_cseq += 1;
        let branch = format!("z9hG4bK{}", random_token(16));
        let flow = request_flow(leg);
        let mut text = format!(
            "{name} {target} SIP/2.0\r\nVia: SIP/2.0/{tp} {host}:{port};branch={branch};rport\r\n\
Max-Forwards: 70\r\n",
            target = leg.remote_target,
            tp = flow.via_transport(),
            host = host_string(advertised),
            port = advertised.port(),
        );
        for route in &leg.route_set {
            text.push_str(&format!("Route: {route}\r\n"));
        }
        text.push_str(&format!(
            "From: {local}\r\nTo: {remote}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {name}\r\n\
{extra}User-Agent: {ua}\r\nContent-Length: 0\r\n\r\n",
            local = leg.local,
            remote = leg.remote,
            cid = leg.call_id,
            cseq = leg.local_cseq,
        ));
        let key = format!("{branch}|{name}");
        let owner = NictOwner::Leg(leg_id, method);
        self.start_nict(now, owner, flow, key, text.into_bytes());
    }

    // ----- timers ---------------------------------------------------------------

    fn ist_timer(&mut self, now: Instant, key: TxKey) {
        let max = self.cfg.timers.t2;
        let Some(txn) = self.ist.get_mut(&key) else {
            return;
        };
        if let Some(deadline) = txn.deadline
            && deadline <= now
        {
            // Timer H (no ACK for our non-2xx), I, or L: the transaction ends.
            self.ist.remove(&key);
            return;
        }
        if let Some((at, interval)) = txn.timer_g
            && at <= now
            && txn.state == IstState::Completed
        {
            // Timer G: retransmit the non-2xx final, doubling up to T2.
            let next_interval = (interval * 2).min(max);
            txn.timer_g = Some((now + next_interval, next_interval));
            let flow = txn.flow;
            let bytes = txn.last_response.clone();
            self.timers
                .push(Reverse((now + next_interval, TimerRef::Ist(key))));
            if let Some(bytes) = bytes {
                self.transmit(flow, bytes);
            }
        }
    }

    fn nict_timer(&mut self, now: Instant, key: TxKey) {
        let t2 = self.cfg.timers.t2;
        let Some(txn) = self.nict.get_mut(&key) else {
            return;
        };
        if let Some(done) = txn.done_at {
            if done <= now {
                self.nict.remove(&key);
            }
            return;
        }
        if txn.timer_f <= now {
            // Timer F: no final response.
            let owner = txn.owner;
            self.nict.remove(&key);
            self.nict_done(now, owner, None);
            return;
        }
        if let Some((at, interval)) = txn.timer_e
            && at <= now
        {
            let next = (interval * 2).min(t2);
            txn.timer_e = Some((now + next, next));
            let (flow, bytes) = (txn.flow, txn.bytes.clone());
            self.timers.push(Reverse((now + next, TimerRef::Nict(key))));
            self.transmit(flow, bytes);
        }
    }

    fn leg_timer(&mut self, now: Instant, leg_id: LegId) {
        let t2 = self.cfg.timers.t2;
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(pending) = leg.pending_2xx.as_mut() else {
            return;
        };
        if pending.give_up <= now {
            // RFC 3261 §13.3.1.4: no ACK after 64·T1 — confirm, then end with BYE.
            leg.pending_2xx = None;
            if leg.state == LegState::WaitingAck {
                leg.state = LegState::Confirmed;
                self.send_bye(now, leg_id);
                self.outputs.push_back(Output::Event(LegEvent::Terminated {
                    leg: leg_id,
                    reason: EndReason::AckTimeout,
                }));
            }
            return;
        }
        if pending.next <= now {
            pending.interval = (pending.interval * 2).min(t2);
            pending.next = now + pending.interval;
            let next = pending.next.min(pending.give_up);
            let bytes = pending.bytes.clone();
            let flow = leg.flow;
            self.timers.push(Reverse((next, TimerRef::Leg(leg_id))));
            self.transmit(flow, bytes);
        } else {
            let next = pending.next;
            self.timers.push(Reverse((next, TimerRef::Leg(leg_id))));
        }
    }

    // ----- helpers --------------------------------------------------------------

    fn transmit(&mut self, flow: Flow, bytes: Vec<u8>) {
        self.outputs.push_back(Output::Transmit { flow, bytes });
    }

    fn reply_stateless(&mut self, flow: Flow, req: &rsip::Request, status: u16) {
        let tag = random_token(10);
        let resp = message::response(
            req,
            status,
            Some(&tag),
            false,
            vec![],
            None,
            &self.cfg.user_agent,
        );
        self.transmit(flow, resp.to_bytes());
    }

    /// Sends a final response on the INVITE transaction `key` (non-2xx path).
    fn final_non2xx(&mut self, now: Instant, key: &TxKey, status: u16) {
        // Our 503s are temporary (overload, no RTP port): say when to try again, so a
        // proxy retries elsewhere or later instead of marking us dead (RFC 3261 §21.5.4).
        let extra = if status == 503 {
            vec![other("Retry-After", "5")]
        } else {
            vec![]
        };
        self.ist_final(now, key, status, extra);
    }

    fn ist_final(&mut self, now: Instant, key: &TxKey, status: u16, extra: Vec<Header>) {
        let tag = self
            .ist
            .get(key)
            .and_then(|t| t.leg)
            .and_then(|l| self.legs.get(&l))
            .map(|l| l.local_tag.clone())
            .unwrap_or_else(|| random_token(10));
        let t1 = self.cfg.timers.t1;
        let Some(txn) = self.ist.get_mut(key) else {
            return;
        };
        let bytes = message::response(
            &txn.request,
            status,
            Some(&tag),
            false,
            extra,
            None,
            &self.cfg.user_agent,
        )
        .to_bytes();
        txn.state = IstState::Completed;
        txn.last_response = Some(bytes.clone());
        let timer_h = now + t1 * 64;
        txn.deadline = Some(timer_h);
        if !txn.flow.reliable() {
            txn.timer_g = Some((now + t1, t1));
            self.timers
                .push(Reverse((now + t1, TimerRef::Ist(key.clone()))));
        }
        let flow = txn.flow;
        self.timers
            .push(Reverse((timer_h, TimerRef::Ist(key.clone()))));
        self.transmit(flow, bytes);
    }

    fn end_leg(&mut self, leg_id: LegId, reason: Option<EndReason>) {
        if let Some(leg) = self.legs.remove(&leg_id) {
            let key = (leg.call_id, leg.local_tag);
            // A stray fork's internal leg shares the real leg's (Call-ID, tag).
            if self.dialogs.get(&key) == Some(&leg_id) {
                self.dialogs.remove(&key);
            }
            self.legs.give_back();
            self.dialogs.give_back();
        }
        if let Some(reason) = reason {
            self.outputs.push_back(Output::Event(LegEvent::Terminated {
                leg: leg_id,
                reason,
            }));
        }
    }

    fn client_done(&mut self, leg_id: LegId, method: ClientMethod, status: Option<u16>) {
        match method {
            ClientMethod::Bye => self.bye_done(leg_id, status),
            ClientMethod::Refer => self
                .outputs
                .push_back(Output::Event(LegEvent::ReferAnswered {
                    leg: leg_id,
                    status,
                })),
        }
    }

    fn bye_done(&mut self, leg_id: LegId, status: Option<u16>) {
        if self
            .legs
            .get(&leg_id)
            .is_some_and(|l| l.state == LegState::Terminating)
        {
            self.end_leg(leg_id, None);
            self.outputs
                .push_back(Output::Event(LegEvent::ByeCompleted {
                    leg: leg_id,
                    status,
                }));
        }
    }

    fn find_dialog(&self, req: &rsip::Request) -> Option<LegId> {
        let call_id = header(req, "Call-ID")?;
        let to_tag = header(req, "To").and_then(tag_of)?;
        let leg_id = *self
            .dialogs
            .get(&(call_id.to_string(), to_tag.to_string()))?;
        // The remote tag must match too (RFC 3261 §12.2.2).
        let from_tag = header(req, "From").and_then(tag_of);
        let leg = self.legs.get(&leg_id)?;
        (tag_of(&leg.remote) == from_tag).then_some(leg_id)
    }

    /// Records the remote CSeq; false when it goes backwards (RFC 3261 §12.2.2: 500).
    fn note_remote_cseq(&mut self, leg_id: LegId, req: &rsip::Request) -> bool {
        let Some((n, _)) = message::cseq(req) else {
            return false;
        };
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return false;
        };
        if n < leg.remote_cseq {
            return false;
        }
        leg.remote_cseq = n;
        true
    }
}

/// Our Contact: the dialled number at our advertised address.
fn contact_header(cfg: &EndpointConfig, flow: Flow, req: &rsip::Request) -> Header {
    let user = user_of(&req.uri.to_string())
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let a = cfg.advertised;
    let transport = if flow.reliable() {
        ";transport=tcp"
    } else {
        ""
    };
    Header::Contact(format!("<sip:{user}{}:{}{transport}>", host_string(a), a.port()).into())
}

/// Where an in-dialog request goes: over the same TCP connection; over UDP to the first
/// route or the remote target when it is an IP literal, else back to where the INVITE
/// came from.
fn request_flow(leg: &Leg) -> Flow {
    match leg.flow {
        Flow::Tcp { .. } => leg.flow,
        Flow::Udp(source) => {
            let next_hop = leg
                .route_set
                .first()
                .map(|r| uri_of(r).to_string())
                .unwrap_or_else(|| leg.remote_target.clone());
            Flow::Udp(ip_literal_addr(&next_hop).unwrap_or(source))
        }
    }
}

/// `sip:user@1.2.3.4:5070;transport=udp` → 1.2.3.4:5070 (default port 5060).
fn ip_literal_addr(uri: &str) -> Option<SocketAddr> {
    let parsed = rsip::Uri::try_from(uri).ok()?;
    let ip = match parsed.host_with_port.host {
        rsip::Host::IpAddr(ip) => ip,
        rsip::Host::Domain(_) => return None,
    };
    let port = parsed.host_with_port.port.map(u16::from).unwrap_or(5060);
    Some(SocketAddr::new(ip, port))
}

fn host_string(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    }
}

/// Splits a comma-separated header list, respecting `<...>` and quotes.
fn split_header_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut angle, mut quoted, mut start) = (false, false, 0);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(v[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = v[start..].trim();
    if !last.is_empty() {
        out.push(last.to_string());
    }
    out
}

/// The server-transaction key of a request (RFC 3261 §17.2.3).
fn tx_key(req: &rsip::Request) -> Option<TxKey> {
    let via = header(req, "Via")?;
    let (_, cseq_method) = message::cseq(req)?;
    let method = match req.method {
        Method::Ack => "INVITE".to_string(),
        Method::Cancel => "CANCEL".to_string(),
        _ => cseq_method,
    };
    let sent_by = via
        .split(';')
        .next()
        .and_then(|p| p.split_whitespace().nth(1))
        .unwrap_or("")
        .to_ascii_lowercase();
    match message::header_param(via, "branch") {
        Some(branch) if branch.starts_with("z9hG4bK") => {
            Some(format!("{branch}|{sent_by}|{method}"))
        }
        _ => {
            // RFC 2543 matching: Call-ID, CSeq number, From tag, top Via.
            let call_id = header(req, "Call-ID")?;
            let (n, _) = message::cseq(req)?;
            let from_tag = header(req, "From").and_then(tag_of).unwrap_or("");
            Some(format!("2543|{call_id}|{n}|{from_tag}|{via}|{method}"))
        }
    }
}

/// The client-transaction key of a response: our branch + CSeq method.
fn tx_key_response(resp: &rsip::Response) -> Option<TxKey> {
    let via = header(resp, "Via")?;
    let branch = message::header_param(via, "branch")?;
    let (_, method) = message::cseq(resp)?;
    Some(format!("{branch}|{method}"))
}

#[cfg(test)]
mod tests;
