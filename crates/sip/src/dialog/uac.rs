//! Outbound calls: the UAC side of the dialog over INVITE client transactions.
//!
//! Split of duties, as in RFC 3261 and RFC 6026: the *transaction* retransmits the
//! INVITE, times out, and ACKs non-2xx finals itself; the *leg* here ACKs the 2xx (new
//! branch, route set, remote target, kept to re-ACK a retransmitted 2xx), answers a
//! challenge with a new INVITE (CSeq + 1, same Call-ID and From tag), CANCELs only once a
//! provisional response has arrived (RFC 3261 §9.1; a cancel wanted earlier waits), ACKs
//! and BYEs a 2xx that crossed its CANCEL and a 2xx from a second fork, and gives up
//! 64·T1 after a CANCEL that got no final response. Timer C (3 minutes of ringing with
//! no final answer) is a safety net behind the call layer's own ring timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rsipstack::sip as rsip;
use rsipstack::sip::Method;

use super::{DialogConfig, DialogLayer, Leg, LegEvent, LegId, LegState, TimerRef, request_flow};
use crate::auth::AuthSession;
use crate::flow::Flow;
use crate::message::{
    self, header, host_string, ip_literal_addr, random_token, split_header_list, tag_of, uri_of,
};
use crate::transaction::{ClientRequest, TransactionLayer, TxId};
use crate::trunk::retry_after;

/// Timer C: a call that rings this long without a final response is cancelled, so a
/// leg can never leak even if the call layer forgets its ring timeout.
const TIMER_C: Duration = Duration::from_secs(180);

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
    /// A provisional response arrived for the current INVITE.
    provisional: bool,
    cancel: CancelState,
    cancel_cause: FailCause,
    last_progress: Option<u16>,
    /// Timer C, or the CANCEL give-up.
    deadline: Option<Instant>,
}

/// One of our INVITEs, kept until its client transaction ends: every 2xx it gets (each
/// fork's, and their retransmissions) is ours to ACK (RFC 6026).
pub(super) struct SentInvite {
    leg: LegId,
    cseq: u32,
    /// Our From (with our tag), the Call-ID and the flow: what an ACK and a BYE to a
    /// stray fork need once the leg itself may be gone.
    local: String,
    call_id: String,
    flow: Flow,
    /// 2xx To-tags seen and the ACK sent for each (the dialog's and other forks').
    acks: HashMap<String, (Flow, Vec<u8>)>,
}

impl DialogLayer {
    /// Places an outbound call: sends the INVITE and returns the new leg. Its events
    /// (`Progress`*, then `Answered` or `Failed`, then the dialog events) follow.
    pub fn dial(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        req: DialRequest,
    ) -> Result<Dialed, DialError> {
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
        let from_user = req
            .from_user
            .clone()
            .or_else(|| self.trunk.as_ref().map(|t| t.caller_id.clone()))
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
        let headers = self.invite_headers(&from_user, flow, &req.extra_headers);
        let leg_id = self.new_leg_id();
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
                provisional: false,
                cancel: CancelState::None,
                cancel_cause: FailCause::Cancelled,
                last_progress: None,
                deadline: None,
            })),
            local_cseq: 1,
            remote_cseq: 0,
            state: LegState::Early,
            invite_key: None,
            reinvite_key: None,
            pending_2xx: None,
            hangup_pending: false,
        };
        self.dialogs.insert((call_id.clone(), local_tag), leg_id);
        self.legs.insert(leg_id, leg);
        self.send_invite(now, txns, leg_id);
        Ok(Dialed {
            leg: leg_id,
            call_id,
        })
    }

    /// The INVITE's header lines that stay the same in its authenticated retry: our
    /// Contact, P-Asserted-Identity (the trunk's, as a URI), the caller's extra headers,
    /// Allow.
    fn invite_headers(&self, from_user: &str, flow: Flow, extra: &[(String, String)]) -> String {
        let adv = self.cfg.advertised;
        let host = host_string(adv);
        let tp = if flow.reliable() {
            ";transport=tcp"
        } else {
            ""
        };
        let mut headers = format!(
            "Contact: <sip:{from_user}@{host}:{port}{tp}>\r\n",
            port = adv.port()
        );
        if let Some(pai) = self
            .trunk
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
        for (name, value) in extra {
            headers.push_str(&format!("{name}: {value}\r\n"));
        }
        headers.push_str(&format!("Allow: {}\r\n", message::ALLOW));
        headers
    }

    fn is_current_invite(&self, leg: LegId, key: &TxId) -> bool {
        self.legs
            .get(&leg)
            .is_some_and(|l| l.uac.is_some() && l.invite_key.as_ref() == Some(key))
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
                        .is_some_and(|t| t.host.eq_ignore_ascii_case(&d.to_string())) =>
                {
                    return self
                        .trunk_flow
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
        let flow = self.trunk_flow.ok_or(DialError::TrunkUnresolved)?;
        Ok((trunk.number_uri(target), flow))
    }

    /// Sends the leg's INVITE (first, or the authenticated retry) in a new client
    /// transaction with CSeq `leg.local_cseq`.
    fn send_invite(&mut self, now: Instant, txns: &mut TransactionLayer, leg_id: LegId) {
        let creds = self.trunk.as_ref().and_then(|t| t.credentials.clone());
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(uac) = leg.uac.as_mut() else {
            return;
        };
        uac.auth_header = uac
            .auth
            .header_for(creds.as_ref(), "INVITE", &uac.request_uri);
        let mut headers = String::new();
        if let Some((name, value)) = &uac.auth_header {
            headers.push_str(&format!("{name}: {value}\r\n"));
        }
        headers.push_str(&uac.headers);
        let request = ClientRequest {
            method: Method::Invite,
            uri: uac.request_uri.clone(),
            route: Vec::new(),
            from: leg.local.clone(),
            to: uac.to.clone(),
            call_id: leg.call_id.clone(),
            cseq: leg.local_cseq,
            headers,
            body: (!uac.body.is_empty()).then(|| ("application/sdp", uac.body.clone())),
        };
        uac.provisional = false;
        let flow = leg.flow;
        let id = txns.start_client(now, flow, request);
        leg.invite_key = Some(id.clone());
        self.invites.insert(
            id,
            SentInvite {
                leg: leg_id,
                cseq: leg.local_cseq,
                local: leg.local.clone(),
                call_id: leg.call_id.clone(),
                flow,
                acks: HashMap::new(),
            },
        );
    }

    /// Hangup / Cancel / Reject of an outbound leg.
    pub(super) fn uac_hangup(&mut self, now: Instant, txns: &mut TransactionLayer, leg_id: LegId) {
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
                if uac.provisional {
                    self.send_cancel(now, txns, leg_id);
                } else {
                    // RFC 3261 §9.1: no CANCEL before a provisional response.
                    uac.cancel = CancelState::Wanted;
                }
            }
            LegState::Confirmed | LegState::WaitingAck => self.send_bye(now, txns, leg_id),
            LegState::Terminating => {}
        }
    }

    /// CANCELs the leg's INVITE (its outcome matters to nobody: the INVITE's 487 or the
    /// give-up timer ends the leg).
    fn send_cancel(&mut self, now: Instant, txns: &mut TransactionLayer, leg_id: LegId) {
        let t1 = self.cfg.timers.t1;
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        let Some(invite) = leg.invite_key.as_ref() else {
            return;
        };
        let Some(uac) = leg.uac.as_mut() else {
            return;
        };
        if txns.cancel(now, invite).is_none() {
            return;
        }
        uac.cancel = CancelState::Sent;
        let give_up = now + t1 * 64;
        uac.deadline = Some(give_up);
        self.arm(give_up, TimerRef::Invite(leg_id));
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
        self.emit(LegEvent::Failed {
            leg,
            status,
            cause,
            reason,
            retry_after,
        });
    }

    /// Our INVITE's transaction ended without a final response (Timer B, or the TCP
    /// connection): the leg fails with a local stand-in status.
    pub(super) fn invite_failed(
        &mut self,
        sent: SentInvite,
        id: &TxId,
        status: u16,
        cause: FailCause,
    ) {
        if self.is_current_invite(sent.leg, id) {
            self.uac_fail(sent.leg, status, cause, None, None);
        }
    }

    /// A response to one of our INVITEs.
    pub(super) fn invite_response(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        id: &TxId,
        resp: &rsip::Response,
    ) {
        match resp.status_code.code() {
            100..=199 => self.uac_provisional(now, txns, id, resp),
            200..=299 => self.uac_2xx(now, txns, id, resp),
            _ => self.uac_final(now, txns, id, resp),
        }
    }

    fn uac_provisional(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        id: &TxId,
        resp: &rsip::Response,
    ) {
        let Some(leg_id) = self.invites.get(id).map(|s| s.leg) else {
            return;
        };
        if !self.is_current_invite(leg_id, id) {
            return;
        }
        let status = resp.status_code.code();
        let Some(uac) = self.legs.get_mut(&leg_id).and_then(|l| l.uac.as_mut()) else {
            return;
        };
        uac.provisional = true;
        match uac.cancel {
            CancelState::Wanted => return self.send_cancel(now, txns, leg_id),
            CancelState::Sent => return,
            CancelState::None => {}
        }
        let c = now + TIMER_C;
        uac.deadline = Some(c);
        let sdp = (!resp.body.is_empty()).then(|| resp.body.clone());
        let news = status > 100 && (uac.last_progress != Some(status) || sdp.is_some());
        if news {
            uac.last_progress = Some(status);
        }
        self.arm(c, TimerRef::Invite(leg_id));
        if news {
            self.emit(LegEvent::Progress {
                leg: leg_id,
                status,
                sdp,
            });
        }
    }

    /// A 2xx to the INVITE (first or retransmitted, this fork or another).
    fn uac_2xx(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        id: &TxId,
        resp: &rsip::Response,
    ) {
        let Some(sent) = self.invites.get(id) else {
            return;
        };
        let leg_id = sent.leg;
        let cseq = sent.cseq;
        let to_tag = header(resp, "To")
            .and_then(tag_of)
            .unwrap_or_default()
            .to_string();
        if let Some((flow, ack)) = sent.acks.get(&to_tag).cloned() {
            // RFC 3261 §13.2.2.4: a retransmitted 2xx gets the same ACK again.
            return txns.send_direct(flow, ack);
        }
        let first = sent.acks.is_empty();
        let dialog_leg = self
            .legs
            .get(&leg_id)
            .filter(|l| first && l.state == LegState::Early && l.invite_key.as_ref() == Some(id))
            .is_some();
        if !dialog_leg {
            // A second fork answered (or the leg is gone): ACK it and hang it up.
            return self.ack_and_bye_stray(now, txns, id, to_tag, resp);
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
            uac.auth.on_success();
        }
        if let Some(sent) = self.invites.get_mut(id) {
            sent.acks.insert(to_tag, (flow, ack.clone()));
        }
        txns.send_direct(flow, ack);
        if cancelled {
            // The answer crossed our CANCEL: the call layer no longer wants it.
            self.send_bye(now, txns, leg_id);
            self.emit(LegEvent::Failed {
                leg: leg_id,
                status: resp.status_code.code(),
                cause: FailCause::Cancelled,
                reason: None,
                retry_after: None,
            });
            return;
        }
        self.emit(LegEvent::Answered {
            leg: leg_id,
            sdp: resp.body.clone(),
        });
    }

    /// A 2xx nobody wants (a second fork, or a leg already gone): RFC 3261 §13.2.2.4 —
    /// ACK it, then BYE it, on a short-lived internal leg that reports to nobody.
    fn ack_and_bye_stray(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        id: &TxId,
        to_tag: String,
        resp: &rsip::Response,
    ) {
        let Some(sent) = self.invites.get(id) else {
            return;
        };
        let (leg_id, cseq) = (sent.leg, sent.cseq);
        let (local, call_id, flow) = (sent.local.clone(), sent.call_id.clone(), sent.flow);
        tracing::info!(leg = leg_id, "2xx from another fork: ACK and BYE");
        let stray_id = self.new_leg_id();
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
            invite_key: Some(id.clone()),
            reinvite_key: None,
            pending_2xx: None,
            hangup_pending: false,
        };
        adopt_dialog(&mut stray, resp);
        let (ack_flow, ack) = dialog_ack(&self.cfg, &stray, cseq, None);
        if let Some(sent) = self.invites.get_mut(id) {
            sent.acks.insert(to_tag, (ack_flow, ack.clone()));
        }
        txns.send_direct(ack_flow, ack);
        // Not in `dialogs`: the (Call-ID, tag) pair is the real leg's.
        self.legs.insert(stray_id, stray);
        self.send_bye(now, txns, stray_id);
    }

    /// A final non-2xx (the transaction has ACKed it): a challenge is answered once with
    /// credentials, anything else fails the leg.
    fn uac_final(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        id: &TxId,
        resp: &rsip::Response,
    ) {
        let Some(leg_id) = self.invites.get(id).map(|s| s.leg) else {
            return;
        };
        if !self.is_current_invite(leg_id, id) {
            return;
        }
        let status = resp.status_code.code();
        let creds = self.trunk.as_ref().and_then(|t| t.credentials.clone());
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
            return self.send_invite(now, txns, leg_id);
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
    pub(super) fn invite_timer(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        leg_id: LegId,
    ) {
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
                self.send_cancel(now, txns, leg_id);
            }
            CancelState::Sent => {
                // RFC 3261 §9.1: no final response 64·T1 after our CANCEL: the INVITE
                // transaction is destroyed.
                let cause = uac.cancel_cause;
                if let Some(key) = key {
                    txns.abandon(&key);
                    self.invites.remove(&key);
                }
                self.uac_fail(leg_id, 487, cause, None, None);
            }
        }
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
    cfg: &DialogConfig,
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
