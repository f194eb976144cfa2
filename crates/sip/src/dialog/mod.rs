//! The dialog layer, sans-IO: legs and dialogs on top of the transaction layer.
//!
//! What the call layer sees is a *leg*: one side of a call, identified by a [`LegId`],
//! with plain events ([`LegEvent`]: incoming offer, confirmed, re-offer, INFO digits,
//! terminated …) and plain [`Command`]s (ring, answer, reject, hang up, transfer).
//! Everything SIP-specific (tags, CSeq, route sets, the 2xx and its ACK) stays here;
//! branches, retransmissions of requests and their timers are the transaction layer's
//! ([`TransactionLayer`], handed in with every input: this layer is its *transaction
//! user* and never looks inside it).
//!
//! - `uas.rs` — inbound: an INVITE becomes a leg (or a 503 when draining or over
//!   `max_legs`), 180/2xx/non-2xx answers, our 2xx retransmitted until its ACK (RFC 3261
//!   §13.3.1.4, BYE after 64·T1 without one), CANCEL → 487, re-INVITE (491/500 on glare
//!   or an old CSeq), BYE, INFO, OPTIONS, 405 for what we know but do not serve, 481
//!   outside a dialog.
//! - `uac.rs` — outbound: [`DialogLayer::dial`], digest retry, CANCEL once a
//!   provisional arrived, Timer C, the 2xx ACKed by the dialog, forks.
//! - `refer.rs` — blind transfer: our REFER, the NOTIFYs of its progress (RFC 3515).
//!
//! Answered outbound legs are ordinary dialogs: the callee's BYE, re-INVITE and INFO
//! reach the call layer as the same events an inbound leg gets.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsipstack::sip as rsip;
use rsipstack::sip::{Header, Method};
use tongdai_capacity::GiveBack;

use crate::flow::Flow;
use crate::message::{self, header, host_string, ip_literal_addr, tag_of, uri_of, user_of};
use crate::transaction::{ClientRequest, Timers, TransactionLayer, TxEvent, TxId};
use crate::trunk::TrunkConfig;

mod refer;
mod uac;
mod uas;

pub use uac::{DialError, DialRequest, Dialed, FailCause};

/// Identifies one leg (one SIP dialog, or a dialog-to-be) for the call layer.
pub type LegId = u64;

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

/// What the dialog layer needs to know of us.
#[derive(Clone, Debug)]
pub struct DialogConfig {
    /// Address written into Contact (and the host of our From on outbound calls).
    pub advertised: SocketAddr,
    pub timers: Timers,
    pub user_agent: String,
    /// Legs above this get 503 (overload protection: refuse rather than degrade).
    pub max_legs: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegState {
    /// INVITE received (or sent), no final response yet.
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

/// A dialog (and the early state before it), inbound or outbound.
struct Leg {
    call_id: String,
    local_tag: String,
    /// Our identity in requests we send (with our tag).
    local: String,
    /// Theirs (with their tag once known).
    remote: String,
    remote_target: String,
    route_set: Vec<String>,
    flow: Flow,
    /// Outbound legs only: the INVITE client side (auth, CANCEL, the 2xx's ACK).
    uac: Option<Box<uac::UacLeg>>,
    local_cseq: u32,
    remote_cseq: u32,
    state: LegState,
    /// The INVITE's transaction: inbound, the server transaction that created the leg;
    /// outbound, the current client transaction (a digest retry starts a new one).
    invite_key: Option<TxId>,
    /// A re-INVITE waiting for the call layer's answer.
    reinvite_key: Option<TxId>,
    pending_2xx: Option<Pending2xx>,
    /// Hangup requested before the ACK arrived: BYE goes out on ACK or give-up.
    hangup_pending: bool,
}

/// An INVITE (initial or re-INVITE) the call layer has not answered yet: the request
/// its responses are built from, until its final response.
struct ServerInvite {
    leg: LegId,
    request: rsip::Request,
    flow: Flow,
}

/// Our in-dialog requests that wait for an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientMethod {
    Bye,
    Refer,
}

impl ClientMethod {
    fn method(self) -> Method {
        match self {
            ClientMethod::Bye => Method::Bye,
            ClientMethod::Refer => Method::Refer,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerRef {
    /// Our 2xx's next retransmission, or giving up on its ACK.
    Resend2xx(LegId),
    /// Outbound leg: Timer C (ring too long) or the CANCEL give-up.
    Invite(LegId),
}

pub struct DialogLayer {
    cfg: DialogConfig,
    /// Where outbound calls go: caller id, identity, credentials, the host of `sip:`
    /// targets that mean the trunk.
    trunk: Option<TrunkConfig>,
    /// The trunk's flow once its host resolved.
    trunk_flow: Option<Flow>,
    legs: HashMap<LegId, Leg>,
    /// (Call-ID, our tag) → leg: how in-dialog requests find their dialog.
    dialogs: HashMap<(String, String), LegId>,
    /// Unanswered INVITE server transactions and what they are for.
    server_invites: HashMap<TxId, ServerInvite>,
    /// Our INVITE client transactions, until they end.
    invites: HashMap<TxId, uac::SentInvite>,
    /// Our BYE and REFER client transactions, until their final response.
    requests: HashMap<TxId, (LegId, ClientMethod)>,
    timers: BinaryHeap<Reverse<(Instant, TimerRef)>>,
    events: VecDeque<LegEvent>,
    next_leg: LegId,
    draining: bool,
}

impl DialogLayer {
    pub fn new(cfg: DialogConfig, trunk: Option<TrunkConfig>) -> Self {
        DialogLayer {
            cfg,
            trunk,
            trunk_flow: None,
            legs: HashMap::new(),
            dialogs: HashMap::new(),
            server_invites: HashMap::new(),
            invites: HashMap::new(),
            requests: HashMap::new(),
            timers: BinaryHeap::new(),
            events: VecDeque::new(),
            next_leg: 1,
            draining: false,
        }
    }

    /// While draining (shutdown), new INVITEs get 503 and dials are refused; calls in
    /// progress continue.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// The trunk's flow, once its host resolved: numbers can be dialled from then on.
    pub fn set_trunk_flow(&mut self, flow: Option<Flow>) {
        self.trunk_flow = flow;
    }

    /// Legs that are not finished (including ones waiting for our BYE's answer).
    pub fn active_legs(&self) -> usize {
        self.legs.len()
    }

    /// Whether `req` is a request in one of our dialogs (Call-ID and both tags match).
    pub fn knows_dialog(&self, req: &rsip::Request) -> bool {
        self.find_dialog(req).is_some()
    }

    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// What the transaction layer passed up.
    pub fn handle_event(&mut self, now: Instant, txns: &mut TransactionLayer, event: TxEvent) {
        match event {
            TxEvent::Request { id, flow, request } if request.method == Method::Invite => {
                self.handle_invite(now, txns, id, flow, request)
            }
            TxEvent::Request { id, request, .. } => {
                self.handle_non_invite(now, txns, &id, &request)
            }
            TxEvent::Cancel {
                id,
                request,
                invite,
                ..
            } => self.handle_cancel(now, txns, &id, &request, invite),
            TxEvent::Ack { request, .. } => self.handle_ack(now, txns, &request),
            TxEvent::Unmatched { flow, request } => {
                // Never an answer to an ACK (RFC 3261 §17).
                if request.method != Method::Ack {
                    let resp = self.stateless_response(&request, 400);
                    txns.send_direct(flow, resp.to_bytes());
                }
            }
            TxEvent::Response { id, response } => {
                let status = response.status_code.code();
                if self.invites.contains_key(&id) {
                    self.invite_response(now, txns, &id, &response);
                } else if let Some((leg, method)) = self.requests.remove(&id) {
                    self.client_done(leg, method, Some(status));
                }
            }
            TxEvent::Timeout { id } => {
                if let Some(sent) = self.invites.remove(&id) {
                    self.invite_failed(sent, &id, 408, FailCause::Timeout);
                } else if let Some((leg, method)) = self.requests.remove(&id) {
                    self.client_done(leg, method, None);
                }
            }
            TxEvent::TransportError { id } => {
                if let Some(sent) = self.invites.remove(&id) {
                    self.invite_failed(sent, &id, 503, FailCause::Transport);
                } else if let Some((leg, method)) = self.requests.remove(&id) {
                    self.client_done(leg, method, None);
                }
            }
            TxEvent::Terminated { id } => {
                self.invites.remove(&id);
                self.requests.remove(&id);
            }
        }
    }

    pub fn handle_command(&mut self, now: Instant, txns: &mut TransactionLayer, cmd: Command) {
        match cmd {
            Command::Hangup { leg } | Command::Reject { leg, .. } | Command::Cancel { leg }
                if self.is_outbound(leg) =>
            {
                self.uac_hangup(now, txns, leg)
            }
            Command::Cancel { leg } => self.hangup(now, txns, leg),
            Command::Ringing { leg } => self.send_provisional(now, txns, leg, 180),
            Command::Answer { leg, sdp } => self.answer(now, txns, leg, sdp),
            Command::Reject { leg, status } => self.reject(now, txns, leg, status),
            Command::AnswerReoffer { leg, sdp } => self.answer_reoffer(now, txns, leg, sdp),
            Command::RejectReoffer { leg, status } => self.reject_reoffer(now, txns, leg, status),
            Command::Hangup { leg } => self.hangup(now, txns, leg),
            Command::Refer { leg, target } => self.refer(now, txns, leg, &target),
        }
    }

    /// Runs the dialog timers due at `now`: 2xx retransmission and its give-up, Timer C,
    /// the CANCEL give-up.
    pub fn handle_timeout(&mut self, now: Instant, txns: &mut TransactionLayer) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, target))) = self.timers.pop() else {
                break;
            };
            match target {
                TimerRef::Resend2xx(leg) => self.resend_2xx(now, txns, leg),
                TimerRef::Invite(leg) => self.invite_timer(now, txns, leg),
            }
        }
        self.server_invites.give_back();
        self.invites.give_back();
        self.requests.give_back();
        self.timers.give_back();
    }

    // ----- shared by inbound and outbound legs ---------------------------------------

    fn emit(&mut self, event: LegEvent) {
        self.events.push_back(event);
    }

    fn arm(&mut self, at: Instant, timer: TimerRef) {
        self.timers.push(Reverse((at, timer)));
    }

    fn new_leg_id(&mut self) -> LegId {
        let id = self.next_leg;
        self.next_leg += 1;
        id
    }

    fn is_outbound(&self, leg: LegId) -> bool {
        self.legs.get(&leg).is_some_and(|l| l.uac.is_some())
    }

    /// A response with a fresh To-tag, for a request that creates no dialog.
    fn stateless_response(&self, req: &rsip::Request, status: u16) -> rsip::Response {
        self.response(req, status, None, vec![], None)
    }

    /// A response to `req` with our Server header; `tag` defaults to a fresh one.
    fn response(
        &self,
        req: &rsip::Request,
        status: u16,
        tag: Option<&str>,
        extra: Vec<Header>,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> rsip::Response {
        let fresh;
        let tag = match tag {
            Some(t) => t,
            None => {
                fresh = message::random_token(10);
                &fresh
            }
        };
        message::response(
            req,
            status,
            Some(tag),
            false,
            extra,
            body,
            &self.cfg.user_agent,
        )
    }

    fn end_leg(&mut self, leg_id: LegId, reason: Option<EndReason>) {
        if let Some(leg) = self.legs.remove(&leg_id) {
            let key = (leg.call_id, leg.local_tag);
            // A stray fork's internal leg shares the real leg's (Call-ID, tag).
            if self.dialogs.get(&key) == Some(&leg_id) {
                self.dialogs.remove(&key);
            }
            for invite in [leg.invite_key, leg.reinvite_key].into_iter().flatten() {
                if self
                    .server_invites
                    .get(&invite)
                    .is_some_and(|i| i.leg == leg_id)
                {
                    self.server_invites.remove(&invite);
                }
            }
            self.legs.give_back();
            self.dialogs.give_back();
        }
        if let Some(reason) = reason {
            self.emit(LegEvent::Terminated {
                leg: leg_id,
                reason,
            });
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

    fn send_bye(&mut self, now: Instant, txns: &mut TransactionLayer, leg_id: LegId) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.state = LegState::Terminating;
        leg.pending_2xx = None;
        if let Some(key) = leg.reinvite_key.take() {
            // A re-INVITE still waiting for our answer: close it before the BYE.
            self.ist_final(now, txns, &key, 487, vec![]);
        }
        self.send_in_dialog(
            now,
            txns,
            leg_id,
            ClientMethod::Bye,
            "Reason: Q.850;cause=16;text=\"Normal call clearing\"\r\n",
        );
    }

    /// Sends BYE or REFER in the leg's dialog as a non-INVITE client transaction.
    fn send_in_dialog(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        leg_id: LegId,
        method: ClientMethod,
        extra: &str,
    ) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        leg.local_cseq += 1;
        let request = ClientRequest {
            method: method.method(),
            uri: leg.remote_target.clone(),
            route: leg.route_set.clone(),
            from: leg.local.clone(),
            to: leg.remote.clone(),
            call_id: leg.call_id.clone(),
            cseq: leg.local_cseq,
            headers: extra.to_string(),
            body: None,
        };
        let id = txns.start_client(now, request_flow(leg), request);
        self.requests.insert(id, (leg_id, method));
    }

    /// Our BYE or REFER got its final response (`None`: none came, or the connection
    /// broke).
    fn client_done(&mut self, leg_id: LegId, method: ClientMethod, status: Option<u16>) {
        match method {
            ClientMethod::Bye => {
                if self
                    .legs
                    .get(&leg_id)
                    .is_some_and(|l| l.state == LegState::Terminating)
                {
                    self.end_leg(leg_id, None);
                    self.emit(LegEvent::ByeCompleted {
                        leg: leg_id,
                        status,
                    });
                }
            }
            ClientMethod::Refer => self.emit(LegEvent::ReferAnswered {
                leg: leg_id,
                status,
            }),
        }
    }
}

/// Our Contact: the dialled number at our advertised address.
fn contact_header(cfg: &DialogConfig, flow: Flow, req: &rsip::Request) -> Header {
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

#[cfg(test)]
mod tests;
