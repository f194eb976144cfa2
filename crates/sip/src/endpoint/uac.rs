//! Outbound calls: the INVITE client transaction (RFC 3261 §17.1.1, with RFC 6026's
//! Accepted state), the UAC side of the dialog, CANCEL, digest authentication, and the
//! glue that sends the trunk's REGISTER/OPTIONS as non-INVITE client transactions.
//!
//! Split of duties, as in RFC 3261:
//! - the **transaction** ([`InviteClientTxn`]) retransmits the INVITE on Timer A (UDP
//!   only), gives up on Timer B (64·T1 without any response), ACKs every non-2xx final
//!   itself (same branch, the response's To) and re-ACKs its retransmissions until
//!   Timer D; on a 2xx it moves to Accepted (RFC 6026) and only hands 2xx
//!   retransmissions to the dialog until Timer M;
//! - the **leg** ([`UacLeg`]) ACKs the 2xx (new branch, route set, remote target, kept
//!   to re-ACK retransmitted 2xx), answers a challenge with a new INVITE (CSeq + 1, same
//!   Call-ID and From tag), CANCELs only once a provisional response has arrived
//!   (RFC 3261 §9.1; a cancel wanted earlier waits), ACKs and BYEs a 2xx that crossed
//!   its CANCEL and a 2xx from a second fork, and gives up 64·T1 after a CANCEL that
//!   got no final response. Timer C (3 minutes of ringing with no final answer) is a
//!   safety net behind the call layer's own ring timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsipstack::sip as rsip;

use super::{
    Endpoint, Flow, Leg, LegEvent, LegId, LegState, NictOwner, NonInviteClientTxn, Output,
    TimerRef, TxKey, host_string, ip_literal_addr, request_flow, split_header_list,
};
use crate::auth::AuthSession;
use crate::message::{self, header, random_token, tag_of, uri_of};
use crate::trunk::{TrunkOutcome, TrunkRequest, TrunkStatus, retry_after};
use std::cmp::Reverse;

/// Timer C: a call that rings this long without a final response is cancelled, so a
/// leg can never leak even if the call layer forgets its ring timeout.
const TIMER_C: Duration = Duration::from_secs(180);
/// Timer D: how long a completed INVITE client transaction absorbs retransmitted
/// finals over UDP (RFC 3261: at least 32 s).
const TIMER_D: Duration = Duration::from_secs(32);

/// An outbound call to place.
#[derive(Clone, Debug, Default)]
pub struct DialRequest {
    /// A number (`0903123678`, `+84903123678`) dialled as `sip:<number>@<trunk>`, or a
    /// full `sip:` URI whose host is the trunk's host or an IP literal (`;transport=tcp`
    /// selects TCP).
    pub target: String,
    /// From user; default: the trunk's `caller_id` (9090).
    pub from_user: Option<String>,
    /// Call-ID to use (e.g. derived from the campaign attempt, so a crash never re-dials
    /// under a new identity unnoticed); default: random.
    pub call_id: Option<String>,
    /// Our SDP offer, sent as `application/sdp` (opaque to the SIP layer).
    pub offer_sdp: Vec<u8>,
    /// Extra header lines (name, value) for the INVITE (e.g. `X-Campaign`).
    pub extra_headers: Vec<(String, String)>,
}

/// A dial that went out: the leg's id and the INVITE's Call-ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialed {
    pub leg: LegId,
    pub call_id: String,
}

/// A dial refused before anything was sent (no events follow).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error("no [trunk] is configured to dial a number through")]
    NoTrunk,
    #[error("the trunk host has not resolved yet")]
    TrunkUnresolved,
    #[error("invalid dial target {0:?}")]
    BadTarget(String),
    #[error("invalid header or identity {0:?}")]
    BadHeader(String),
    #[error("shutting down: no new calls")]
    Draining,
    #[error("too many calls in progress")]
    Overloaded,
}

/// Why an outbound leg ended without being answered (see [`LegEvent::Failed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailCause {
    /// A final response from the far end or the trunk (`status` is theirs).
    Rejected,
    /// We cancelled (`Command::Cancel`/`Hangup`): `status` is the 487 (or 200 when the
    /// answer crossed our CANCEL and we hung it up; 487 too when the far end never sent
    /// a final response within 64·T1 of the CANCEL).
    Cancelled,
    /// Rang for Timer C (3 minutes) without an answer; we cancelled.
    NoAnswer,
    /// No response at all within Timer B (64·T1): `status` 408.
    Timeout,
    /// The trunk could not be reached (TCP connection refused or lost): `status` 503.
    Transport,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CancelState {
    None,
    /// Asked before any provisional response: sent when one arrives.
    Wanted,
    Sent,
}

/// The outbound side of a leg.
pub(super) struct UacLeg {
    request_uri: String,
    /// The INVITE's To (no tag).
    to: String,
    /// Header lines that do not change between the INVITE and its authenticated retry.
    headers: String,
    body: Vec<u8>,
    auth: AuthSession,
    /// Credentials header of the current INVITE (repeated in the 2xx's ACK).
    auth_header: Option<(&'static str, String)>,
    cancel: CancelState,
    cancel_cause: FailCause,
    /// The ACK of the 2xx, re-sent for each retransmitted 2xx.
    ack: Option<(Flow, Vec<u8>)>,
    last_progress: Option<u16>,
    /// Timer C, or the CANCEL give-up.
    deadline: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IctState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
}

pub(super) struct InviteClientTxn {
    leg: LegId,
    state: IctState,
    flow: Flow,
    bytes: Vec<u8>,
    request_uri: String,
    via: String,
    from: String,
    to: String,
    call_id: String,
    cseq: u32,
    timer_a: Option<(Instant, Duration)>,
    timer_b: Option<Instant>,
    /// Timer D (Completed) or M (Accepted): the transaction ends.
    done_at: Option<Instant>,
    /// ACK of our non-2xx final.
    ack: Option<Vec<u8>>,
    /// 2xx To-tags seen and the ACK sent for each (the dialog's and other forks').
    acked: HashMap<String, (Flow, Vec<u8>)>,
    provisional: bool,
}

impl Endpoint {
    // ----- public API ---------------------------------------------------------------

    /// Places an outbound call: sends the INVITE and returns the new leg. Its events
    /// (`Progress`*, then `Answered` or `Failed`, then the dialog events) follow as
    /// outputs.
    pub fn dial(&mut self, now: Instant, req: DialRequest) -> Result<Dialed, DialError> {
        if self.draining {
            return Err(DialError::Draining);
        }
        if self.legs.len() >= self.cfg.max_legs {
            return Err(DialError::Overloaded);
        }
        for (name, value) in &req.extra_headers {
            if !is_token(name) || value.contains(['\r', '\n']) {
                return Err(DialError::BadHeader(format!("{name}: {value}")));
            }
        }
        let (request_uri, flow) = self.dial_target(&req.target)?;
        let trunk_cfg = self.trunk.as_ref().map(|t| t.config().clone());
        let from_user = req
            .from_user
            .clone()
            .or_else(|| trunk_cfg.as_ref().map(|t| t.caller_id.clone()))
            .unwrap_or_else(|| "9090".to_string());
        if !is_user(&from_user) {
            return Err(DialError::BadHeader(from_user));
        }
        let adv = self.cfg.advertised;
        let host = host_string(adv);
        let call_id = match req.call_id {
            Some(c) if !c.is_empty() && c.chars().all(|ch| ch.is_ascii_graphic()) => c,
            Some(c) => return Err(DialError::BadHeader(c)),
            None => format!("{}@{host}", random_token(20)),
        };
        let local_tag = random_token(12);
        let from = format!("<sip:{from_user}@{host}>;tag={local_tag}");
        let to = format!(
            "<{}>",
            request_uri.split(';').next().unwrap_or(&request_uri)
        );
        let tp = if flow.reliable() {
            ";transport=tcp"
        } else {
            ""
        };
        let mut headers = format!(
            "Contact: <sip:{from_user}@{host}:{port}{tp}>\r\n",
            port = adv.port()
        );
        if let Some(pai) = trunk_cfg
            .as_ref()
            .and_then(|t| t.p_asserted_identity.as_ref())
        {
            let value = if pai.starts_with('<') {
                pai.clone()
            } else if pai.contains(':') {
                format!("<{pai}>")
            } else {
                format!("<sip:{pai}@{host}>")
            };
            headers.push_str(&format!("P-Asserted-Identity: {value}\r\n"));
        }
        for (name, value) in &req.extra_headers {
            headers.push_str(&format!("{name}: {value}\r\n"));
        }
        headers.push_str(&format!("Allow: {}\r\n", message::ALLOW));
        let leg_id = self.next_leg;
        self.next_leg += 1;
        let leg = Leg {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            local: from,
            remote: to.clone(),
            remote_target: request_uri.clone(),
            route_set: Vec::new(),
            flow,
            uac: Some(Box::new(UacLeg {
                request_uri,
                to,
                headers,
                body: req.offer_sdp,
                auth: AuthSession::default(),
                auth_header: None,
                cancel: CancelState::None,
                cancel_cause: FailCause::Cancelled,
                ack: None,
                last_progress: None,
                deadline: None,
            })),
            local_cseq: 1,
            remote_cseq: 0,
            state: LegState::Early,
            invite_key: String::new(),
            reinvite_key: None,
            pending_2xx: None,
            hangup_pending: false,
        };
        self.dialogs.insert((call_id.clone(), local_tag), leg_id);
        self.legs.insert(leg_id, leg);
        self.send_invite(now, leg_id);
        Ok(Dialed {
            leg: leg_id,
            call_id,
        })
    }

    /// The trunk's host resolved to `addr`: it joins the ACL, and registration and the
    /// keepalive start.
    pub fn set_trunk_addr(&mut self, now: Instant, addr: SocketAddr) {
        self.acl.allow_ip(addr.ip());
        if let Some(trunk) = self.trunk.as_mut() {
            trunk.set_addr(now, addr);
        }
        self.flush_trunk(now);
    }

    /// Shutdown: remove our REGISTER binding with the trunk (Expires: 0) and stop the
    /// keepalive. Returns whether a removal is on its way (watch `trunk_status`).
    pub fn unregister(&mut self, now: Instant) -> bool {
        let sent = self.trunk.as_mut().is_some_and(|t| t.unregister());
        self.flush_trunk(now);
        sent
    }

    /// The trunk's current status (`None` without a `[trunk]`).
    pub fn trunk_status(&self) -> Option<TrunkStatus> {
        self.trunk.as_ref().map(|t| t.status().clone())
    }

    /// The driver could not open, or lost, its TCP connection to `remote`: client
    /// transactions waiting on it fail now instead of at Timer B/F (RFC 3261 §8.1.3.1:
    /// a transport error is treated as a 503).
    pub fn handle_transport_error(&mut self, now: Instant, remote: SocketAddr) {
        let on_flow = |f: &Flow| f.reliable() && f.remote() == remote;
        let icts: Vec<TxKey> = self
            .ict
            .iter()
            .filter(|(_, t)| {
                on_flow(&t.flow) && matches!(t.state, IctState::Calling | IctState::Proceeding)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in icts {
            if let Some(txn) = self.ict.remove(&key)
                && self.is_current_invite(txn.leg, &key)
            {
                self.uac_fail(txn.leg, 503, FailCause::Transport, None, None);
            }
        }
        let nicts: Vec<TxKey> = self
            .nict
            .iter()
            .filter(|(_, t)| on_flow(&t.flow) && t.done_at.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for key in nicts {
            let Some(txn) = self.nict.remove(&key) else {
                continue;
            };
            match txn.owner {
                NictOwner::Trunk(kind) => {
                    if let Some(trunk) = self.trunk.as_mut() {
                        trunk.on_outcome(now, kind, TrunkOutcome::TransportError);
                    }
                }
                owner => self.nict_done(now, owner, None),
            }
        }
        if let Some(trunk) = self.trunk.as_mut()
            && trunk.flow().is_some_and(|f| on_flow(&f))
        {
            trunk.on_connection_lost(now);
        }
        self.flush_trunk(now);
    }

    // ----- the leg ------------------------------------------------------------------

    pub(super) fn is_outbound(&self, leg: LegId) -> bool {
        self.legs.get(&leg).is_some_and(|l| l.uac.is_some())
    }

    fn is_current_invite(&self, leg: LegId, key: &str) -> bool {
        self.legs
            .get(&leg)
            .is_some_and(|l| l.uac.is_some() && l.invite_key == key)
    }

    /// `sip:…` URI or number → Request-URI and where to send it.
    fn dial_target(&self, target: &str) -> Result<(String, Flow), DialError> {
        let target = target.trim();
        if target.starts_with("sip:") {
            let uri = rsip::Uri::try_from(target)
                .map_err(|_| DialError::BadTarget(target.to_string()))?;
            if target.contains(['\r', '\n', ' ', '<', '>']) {
                return Err(DialError::BadTarget(target.to_string()));
            }
            let tcp = target.to_ascii_lowercase().contains(";transport=tcp");
            let addr = match &uri.host_with_port.host {
                rsip::Host::Domain(d)
                    if self
                        .trunk
                        .as_ref()
                        .is_some_and(|t| t.config().host.eq_ignore_ascii_case(&d.to_string())) =>
                {
                    let trunk = self.trunk.as_ref().ok_or(DialError::NoTrunk)?;
                    return trunk
                        .flow()
                        .map(|f| (target.to_string(), f))
                        .ok_or(DialError::TrunkUnresolved);
                }
                rsip::Host::Domain(_) => return Err(DialError::BadTarget(target.to_string())),
                rsip::Host::IpAddr(_) => ip_literal_addr(target)
                    .ok_or_else(|| DialError::BadTarget(target.to_string()))?,
            };
            let flow = if tcp {
                Flow::tcp_to(addr)
            } else {
                Flow::Udp(addr)
            };
            return Ok((target.to_string(), flow));
        }
        if !is_user(target) {
            return Err(DialError::BadTarget(target.to_string()));
        }
        let trunk = self.trunk.as_ref().ok_or(DialError::NoTrunk)?;
        let flow = trunk.flow().ok_or(DialError::TrunkUnresolved)?;
        Ok((trunk.config().number_uri(target), flow))
    }

    /// Sends the leg's INVITE (first, or the authenticated retry) in a new client
    /// transaction with CSeq `leg.local_cseq`.
    fn send_invite(&mut self, now: Instant, leg_id: LegId) {
        let creds = self
            .trunk
            .as_ref()
            .and_then(|t| t.config().credentials.clone());
        let adv = self.cfg.advertised;
        let ua = self.cfg.user_agent.clone();
        let t1 = self.cfg.timers.t1;
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(uac) = leg.uac.as_mut() else {
            return;
        };
        let branch = format!("z9hG4bK{}", random_token(16));
        let via = format!(
            "SIP/2.0/{} {}:{};branch={branch};rport",
            leg.flow.via_transport(),
            host_string(adv),
            adv.port()
        );
        uac.auth_header = uac
            .auth
            .header_for(creds.as_ref(), "INVITE", &uac.request_uri);
        let mut text = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\n\
To: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\n",
            ruri = uac.request_uri,
            from = leg.local,
            to = uac.to,
            cid = leg.call_id,
            cseq = leg.local_cseq,
        );
        if let Some((name, value)) = &uac.auth_header {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str(&uac.headers);
        text.push_str(&format!("User-Agent: {ua}\r\n"));
        if !uac.body.is_empty() {
            text.push_str("Content-Type: application/sdp\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n", uac.body.len()));
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&uac.body);
        let key = format!("{branch}|INVITE");
        leg.invite_key = key.clone();
        let flow = leg.flow;
        let timer_b = now + t1 * 64;
        let timer_a = (!flow.reliable()).then_some((now + t1, t1));
        let txn = InviteClientTxn {
            leg: leg_id,
            state: IctState::Calling,
            flow,
            bytes: bytes.clone(),
            request_uri: uac.request_uri.clone(),
            via,
            from: leg.local.clone(),
            to: uac.to.clone(),
            call_id: leg.call_id.clone(),
            cseq: leg.local_cseq,
            timer_a,
            timer_b: Some(timer_b),
            done_at: None,
            ack: None,
            acked: HashMap::new(),
            provisional: false,
        };
        self.ict.insert(key.clone(), txn);
        if let Some((at, _)) = timer_a {
            self.timers.push(Reverse((at, TimerRef::Ict(key.clone()))));
        }
        self.timers.push(Reverse((timer_b, TimerRef::Ict(key))));
        self.transmit(flow, bytes);
    }

    /// Hangup / Cancel / Reject of an outbound leg.
    pub(super) fn uac_hangup(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        match leg.state {
            LegState::Early => {
                let Some(uac) = leg.uac.as_mut() else {
                    return;
                };
                if uac.cancel != CancelState::None {
                    return;
                }
                let provisional = self.ict.get(&leg.invite_key).is_some_and(|t| t.provisional);
                if provisional {
                    self.send_cancel(now, leg_id);
                } else {
                    // RFC 3261 §9.1: no CANCEL before a provisional response.
                    uac.cancel = CancelState::Wanted;
                }
            }
            LegState::Confirmed | LegState::WaitingAck => self.send_bye(now, leg_id),
            LegState::Terminating => {}
        }
    }

    fn send_cancel(&mut self, now: Instant, leg_id: LegId) {
        let t1 = self.cfg.timers.t1;
        let ua = self.cfg.user_agent.clone();
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(txn) = self.ict.get(&leg.invite_key) else {
            return;
        };
        if !matches!(txn.state, IctState::Calling | IctState::Proceeding) {
            return;
        }
        let Some(uac) = leg.uac.as_mut() else {
            return;
        };
        // RFC 3261 §9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via
        // (so the same branch) as the INVITE.
        let text = format!(
            "CANCEL {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\n\
To: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} CANCEL\r\nUser-Agent: {ua}\r\n\
Content-Length: 0\r\n\r\n",
            ruri = txn.request_uri,
            via = txn.via,
            from = txn.from,
            to = txn.to,
            cid = txn.call_id,
            cseq = txn.cseq,
        );
        let branch = message::header_param(&txn.via, "branch").unwrap_or_default();
        let key = format!("{branch}|CANCEL");
        let flow = txn.flow;
        uac.cancel = CancelState::Sent;
        let give_up = now + t1 * 64;
        uac.deadline = Some(give_up);
        self.timers.push(Reverse((give_up, TimerRef::Uac(leg_id))));
        self.start_nict(now, NictOwner::Cancel, flow, key, text.into_bytes());
    }

    /// Starts a non-INVITE client transaction (Timer E on UDP, Timer F): in-dialog
    /// requests (BYE, REFER, …), CANCEL, and the trunk's REGISTER/OPTIONS.
    pub(super) fn start_nict(
        &mut self,
        now: Instant,
        owner: NictOwner,
        flow: Flow,
        key: TxKey,
        bytes: Vec<u8>,
    ) {
        let t1 = self.cfg.timers.t1;
        let timer_f = now + t1 * 64;
        let timer_e = (!flow.reliable()).then_some((now + t1, t1));
        self.nict.insert(
            key.clone(),
            NonInviteClientTxn {
                owner,
                flow,
                bytes: bytes.clone(),
                timer_e,
                timer_f,
                done_at: None,
            },
        );
        if let Some((at, _)) = timer_e {
            self.timers.push(Reverse((at, TimerRef::Nict(key.clone()))));
        }
        self.timers.push(Reverse((timer_f, TimerRef::Nict(key))));
        self.transmit(flow, bytes);
    }

    fn uac_fail(
        &mut self,
        leg: LegId,
        status: u16,
        cause: FailCause,
        reason: Option<String>,
        retry_after: Option<Duration>,
    ) {
        if !self.legs.contains_key(&leg) {
            return;
        }
        self.end_leg(leg, None);
        self.outputs.push_back(Output::Event(LegEvent::Failed {
            leg,
            status,
            cause,
            reason,
            retry_after,
        }));
    }

    // ----- the INVITE client transaction ------------------------------------------

    pub(super) fn ict_response(&mut self, now: Instant, key: TxKey, resp: rsip::Response) {
        let status = resp.status_code.code();
        let t1 = self.cfg.timers.t1;
        let Some(txn) = self.ict.get_mut(&key) else {
            return;
        };
        let leg = txn.leg;
        match (status, txn.state) {
            (100..=199, IctState::Calling | IctState::Proceeding) => {
                txn.state = IctState::Proceeding;
                txn.timer_a = None;
                txn.timer_b = None;
                txn.provisional = true;
                self.uac_provisional(now, leg, &key, &resp);
            }
            (100..=199, _) => {}
            (200..=299, IctState::Calling | IctState::Proceeding) => {
                // RFC 6026: Accepted; the dialog ACKs, Timer M absorbs retransmissions.
                txn.state = IctState::Accepted;
                txn.timer_a = None;
                txn.timer_b = None;
                let m = now + t1 * 64;
                txn.done_at = Some(m);
                self.timers.push(Reverse((m, TimerRef::Ict(key.clone()))));
                self.uac_2xx(now, &key, &resp);
            }
            (200..=299, IctState::Accepted) => self.uac_2xx(now, &key, &resp),
            (200..=299, IctState::Completed) => {}
            (_, IctState::Calling | IctState::Proceeding) => {
                txn.state = IctState::Completed;
                txn.timer_a = None;
                txn.timer_b = None;
                let to = header(&resp, "To").unwrap_or_default();
                // RFC 3261 §17.1.1.3: the ACK of a non-2xx is the transaction's.
                let ack = format!(
                    "ACK {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\n\
To: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
                    ruri = txn.request_uri,
                    via = txn.via,
                    from = txn.from,
                    cid = txn.call_id,
                    cseq = txn.cseq,
                )
                .into_bytes();
                txn.ack = Some(ack.clone());
                let linger = if txn.flow.reliable() {
                    Duration::ZERO
                } else {
                    TIMER_D
                };
                txn.done_at = Some(now + linger);
                let flow = txn.flow;
                self.timers
                    .push(Reverse((now + linger, TimerRef::Ict(key.clone()))));
                self.transmit(flow, ack);
                self.uac_final(now, leg, &key, &resp);
            }
            (_, IctState::Completed) => {
                // A retransmitted final: our ACK got lost.
                if let Some(ack) = txn.ack.clone() {
                    let flow = txn.flow;
                    self.transmit(flow, ack);
                }
            }
            (_, IctState::Accepted) => {}
        }
    }

    pub(super) fn ict_timer(&mut self, now: Instant, key: TxKey) {
        let Some(txn) = self.ict.get_mut(&key) else {
            return;
        };
        if let Some(done) = txn.done_at {
            if done <= now {
                self.ict.remove(&key);
            }
            return;
        }
        if txn.state == IctState::Calling && txn.timer_b.is_some_and(|b| b <= now) {
            // Timer B: not even a 100 Trying.
            let leg = txn.leg;
            self.ict.remove(&key);
            if self.is_current_invite(leg, &key) {
                self.uac_fail(leg, 408, FailCause::Timeout, None, None);
            }
            return;
        }
        if let Some((at, interval)) = txn.timer_a
            && at <= now
            && txn.state == IctState::Calling
        {
            // Timer A doubles without the T2 cap (RFC 3261 §17.1.1.2).
            let next = interval * 2;
            txn.timer_a = Some((now + next, next));
            let (flow, bytes) = (txn.flow, txn.bytes.clone());
            self.timers.push(Reverse((now + next, TimerRef::Ict(key))));
            self.transmit(flow, bytes);
        }
    }

    fn uac_provisional(&mut self, now: Instant, leg_id: LegId, key: &str, resp: &rsip::Response) {
        if !self.is_current_invite(leg_id, key) {
            return;
        }
        let status = resp.status_code.code();
        let Some(uac) = self.legs.get_mut(&leg_id).and_then(|l| l.uac.as_mut()) else {
            return;
        };
        match uac.cancel {
            CancelState::Wanted => return self.send_cancel(now, leg_id),
            CancelState::Sent => return,
            CancelState::None => {}
        }
        let c = now + TIMER_C;
        uac.deadline = Some(c);
        self.timers.push(Reverse((c, TimerRef::Uac(leg_id))));
        let sdp = (!resp.body.is_empty()).then(|| resp.body.clone());
        if status > 100 && (uac.last_progress != Some(status) || sdp.is_some()) {
            uac.last_progress = Some(status);
            self.outputs.push_back(Output::Event(LegEvent::Progress {
                leg: leg_id,
                status,
                sdp,
            }));
        }
    }

    /// A 2xx to the INVITE (first or retransmitted, this fork or another).
    fn uac_2xx(&mut self, now: Instant, key: &str, resp: &rsip::Response) {
        let Some(txn) = self.ict.get(key) else {
            return;
        };
        let leg_id = txn.leg;
        let cseq = txn.cseq;
        let to_tag = header(resp, "To")
            .and_then(tag_of)
            .unwrap_or_default()
            .to_string();
        if let Some((flow, ack)) = txn.acked.get(&to_tag).cloned() {
            // RFC 3261 §13.2.2.4: a retransmitted 2xx gets the same ACK again.
            return self.transmit(flow, ack);
        }
        let first = txn.acked.is_empty();
        let dialog_leg = self
            .legs
            .get(&leg_id)
            .filter(|l| first && l.state == LegState::Early && l.invite_key == key)
            .is_some();
        if !dialog_leg {
            // A second fork answered (or the leg is gone): ACK it and hang it up.
            return self.ack_and_bye_stray(now, key, leg_id, cseq, to_tag, resp);
        }
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        adopt_dialog(leg, resp);
        let Some(uac) = leg.uac.as_mut() else {
            return;
        };
        let auth = uac.auth_header.clone();
        let cancelled = uac.cancel != CancelState::None;
        uac.deadline = None;
        leg.state = LegState::Confirmed;
        let (flow, ack) = dialog_ack(&self.cfg, leg, cseq, auth.as_ref());
        if let Some(uac) = leg.uac.as_mut() {
            uac.ack = Some((flow, ack.clone()));
            uac.auth.on_success();
        }
        if let Some(txn) = self.ict.get_mut(key) {
            txn.acked.insert(to_tag, (flow, ack.clone()));
        }
        self.transmit(flow, ack);
        if cancelled {
            // The answer crossed our CANCEL: the call layer no longer wants it.
            self.send_bye(now, leg_id);
            self.outputs.push_back(Output::Event(LegEvent::Failed {
                leg: leg_id,
                status: resp.status_code.code(),
                cause: FailCause::Cancelled,
                reason: None,
                retry_after: None,
            }));
            return;
        }
        self.outputs.push_back(Output::Event(LegEvent::Answered {
            leg: leg_id,
            sdp: resp.body.clone(),
        }));
    }

    /// A 2xx nobody wants (a second fork, or a leg already gone): RFC 3261 §13.2.2.4 —
    /// ACK it, then BYE it, on a short-lived internal leg that reports to nobody.
    fn ack_and_bye_stray(
        &mut self,
        now: Instant,
        key: &str,
        leg_id: LegId,
        cseq: u32,
        to_tag: String,
        resp: &rsip::Response,
    ) {
        let Some(txn) = self.ict.get(key) else {
            return;
        };
        let (local, call_id, flow) = (txn.from.clone(), txn.call_id.clone(), txn.flow);
        tracing::info!(leg = leg_id, "2xx from another fork: ACK and BYE");
        let stray_id = self.next_leg;
        self.next_leg += 1;
        let mut stray = Leg {
            call_id,
            local_tag: tag_of(&local).unwrap_or_default().to_string(),
            local,
            remote: String::new(),
            remote_target: String::new(),
            route_set: Vec::new(),
            flow,
            uac: None,
            local_cseq: cseq,
            remote_cseq: 0,
            state: LegState::Confirmed,
            invite_key: key.to_string(),
            reinvite_key: None,
            pending_2xx: None,
            hangup_pending: false,
        };
        adopt_dialog(&mut stray, resp);
        let (ack_flow, ack) = dialog_ack(&self.cfg, &stray, cseq, None);
        if let Some(txn) = self.ict.get_mut(key) {
            txn.acked.insert(to_tag, (ack_flow, ack.clone()));
        }
        self.transmit(ack_flow, ack);
        // Not in `dialogs`: the (Call-ID, tag) pair is the real leg's.
        self.legs.insert(stray_id, stray);
        self.send_bye(now, stray_id);
    }

    fn uac_final(&mut self, now: Instant, leg_id: LegId, key: &str, resp: &rsip::Response) {
        if !self.is_current_invite(leg_id, key) {
            return;
        }
        let status = resp.status_code.code();
        let creds = self
            .trunk
            .as_ref()
            .and_then(|t| t.config().credentials.clone());
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(uac) = leg.uac.as_mut() else {
            return;
        };
        if matches!(status, 401 | 407)
            && uac.cancel == CancelState::None
            && uac.auth.on_challenge(resp, creds.as_ref()).is_some()
        {
            // RFC 3261 §22.2: the same request again with credentials and CSeq + 1.
            leg.local_cseq += 1;
            uac.last_progress = None;
            uac.deadline = None;
            return self.send_invite(now, leg_id);
        }
        let cause = if uac.cancel != CancelState::None && status == 487 {
            uac.cancel_cause
        } else {
            FailCause::Rejected
        };
        let reason = header(resp, "Reason").map(str::to_string);
        self.uac_fail(leg_id, status, cause, reason, retry_after(resp));
    }

    /// Timer C, or the CANCEL give-up.
    pub(super) fn uac_timer(&mut self, now: Instant, leg_id: LegId) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let key = leg.invite_key.clone();
        let Some(uac) = leg.uac.as_mut() else {
            return;
        };
        if leg.state != LegState::Early || uac.deadline.is_none_or(|d| d > now) {
            return;
        }
        uac.deadline = None;
        match uac.cancel {
            CancelState::None | CancelState::Wanted => {
                tracing::info!(leg = leg_id, "Timer C: no answer after 3 minutes; CANCEL");
                uac.cancel_cause = FailCause::NoAnswer;
                self.send_cancel(now, leg_id);
            }
            CancelState::Sent => {
                // RFC 3261 §9.1: no final response 64·T1 after our CANCEL.
                let cause = uac.cancel_cause;
                self.ict.remove(&key);
                self.uac_fail(leg_id, 487, cause, None, None);
            }
        }
    }

    // ----- the trunk ----------------------------------------------------------------

    /// Sends what the trunk wants sent and publishes its status if it changed.
    pub(super) fn flush_trunk(&mut self, now: Instant) {
        let Some(trunk) = self.trunk.as_mut() else {
            return;
        };
        let mut requests = Vec::new();
        while let Some(r) = trunk.poll_request() {
            requests.push(r);
        }
        let flow = trunk.flow();
        for r in requests {
            if let Some(flow) = flow {
                self.send_trunk_request(now, flow, r);
            }
        }
        if let Some(trunk) = self.trunk.as_mut()
            && trunk.take_changed()
        {
            let status = trunk.status().clone();
            self.outputs.push_back(Output::Trunk(status));
        }
    }

    fn send_trunk_request(&mut self, now: Instant, flow: Flow, r: TrunkRequest) {
        let adv = self.cfg.advertised;
        let branch = format!("z9hG4bK{}", random_token(16));
        let text = format!(
            "{m} {uri} SIP/2.0\r\nVia: SIP/2.0/{tp} {host}:{port};branch={branch};rport\r\n\
Max-Forwards: 70\r\n{headers}User-Agent: {ua}\r\nContent-Length: 0\r\n\r\n",
            m = r.method,
            uri = r.uri,
            tp = flow.via_transport(),
            host = host_string(adv),
            port = adv.port(),
            headers = r.headers,
            ua = self.cfg.user_agent,
        );
        let key = format!("{branch}|{}", r.method);
        self.start_nict(now, NictOwner::Trunk(r.kind), flow, key, text.into_bytes());
    }
}

/// Takes the dialog's remote side from a 2xx (RFC 3261 §12.1.2): To (with the callee's
/// tag), the remote target from Contact, the route set from Record-Route reversed.
fn adopt_dialog(leg: &mut Leg, resp: &rsip::Response) {
    if let Some(to) = header(resp, "To") {
        leg.remote = to.to_string();
    }
    if let Some(contact) = header(resp, "Contact") {
        leg.remote_target = uri_of(contact).to_string();
    }
    let mut routes: Vec<String> = message::headers(resp, "Record-Route")
        .iter()
        .flat_map(|v| split_header_list(v))
        .collect();
    routes.reverse();
    leg.route_set = routes;
}

/// The ACK of a 2xx (RFC 3261 §13.2.2.4): a new transaction-less request in the dialog,
/// CSeq number of the INVITE, the INVITE's credentials.
fn dialog_ack(
    cfg: &crate::endpoint::EndpointConfig,
    leg: &Leg,
    cseq: u32,
    auth: Option<&(&'static str, String)>,
) -> (Flow, Vec<u8>) {
    let flow = request_flow(leg);
    let adv = cfg.advertised;
    let mut text = format!(
        "ACK {target} SIP/2.0\r\nVia: SIP/2.0/{tp} {host}:{port};branch=z9hG4bK{b};rport\r\n\
Max-Forwards: 70\r\n",
        target = leg.remote_target,
        tp = flow.via_transport(),
        host = host_string(adv),
        port = adv.port(),
        b = random_token(16),
    );
    for route in &leg.route_set {
        text.push_str(&format!("Route: {route}\r\n"));
    }
    text.push_str(&format!(
        "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} ACK\r\n",
        leg.local, leg.remote, leg.call_id
    ));
    if let Some((name, value)) = auth {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!(
        "User-Agent: {}\r\nContent-Length: 0\r\n\r\n",
        cfg.user_agent
    ));
    (flow, text.into_bytes())
}

/// A user part we are willing to put into a URI we build (digits, `+`, `*`, `#` and
/// the unreserved characters; nothing that could break the header).
fn is_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#-_.!~".contains(c))
}

/// RFC 3261 `token` (header names).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c))
}

#[cfg(test)]
mod tests;
