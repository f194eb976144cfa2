//! Client transactions (RFC 3261 §17.1 with RFC 6026): our requests out, their
//! retransmission and timeouts, responses matched and passed up.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsipstack::sip as rsip;
use rsipstack::sip::Method;

use super::key::new_branch;
use super::{ClientRequest, TimerRef, TransactionLayer, TxEvent, TxId};
use crate::flow::Flow;
use crate::message::{header, host_string};

/// Timer D: how long a completed INVITE client transaction absorbs retransmitted
/// finals over UDP (RFC 3261: at least 32 s).
const TIMER_D: Duration = Duration::from_secs(32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IctState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
}

/// What of our INVITE the transaction needs again: its ACK of a non-2xx and a CANCEL
/// repeat the Request-URI, top Via, Route, From, Call-ID and CSeq number (RFC 3261
/// §17.1.1.3, §9.1).
struct SentInvite {
    uri: String,
    via: String,
    branch: String,
    route: Vec<String>,
    from: String,
    to: String,
    call_id: String,
    cseq: u32,
}

pub(super) struct InviteClientTxn {
    state: IctState,
    flow: Flow,
    bytes: Vec<u8>,
    sent: SentInvite,
    timer_a: Option<(Instant, Duration)>,
    timer_b: Option<Instant>,
    /// Timer D (Completed) or M (Accepted): the transaction ends.
    done_at: Option<Instant>,
    /// ACK of our non-2xx final.
    ack: Option<Vec<u8>>,
}

/// Non-INVITE client transaction (BYE, REFER, CANCEL, REGISTER, OPTIONS).
pub(super) struct NonInviteClientTxn {
    flow: Flow,
    bytes: Vec<u8>,
    timer_e: Option<(Instant, Duration)>,
    timer_f: Instant,
    /// Timer K once a final response arrived.
    done_at: Option<Instant>,
}

impl TransactionLayer {
    /// Sends `req` to `flow` in a new client transaction (INVITE or non-INVITE by its
    /// method) and returns its id; its responses, its timeout or its end come back as
    /// [`TxEvent`]s with that id. Not for ACK: an ACK of a 2xx is no transaction
    /// ([`TransactionLayer::send_direct`]).
    pub fn start_client(&mut self, now: Instant, flow: Flow, req: ClientRequest) -> TxId {
        let branch = new_branch();
        let via = via(self.cfg.advertised, flow, &branch);
        let bytes = render(&req, &via, &self.cfg.user_agent);
        let method = req.method.to_string();
        let id = TxId::client(&branch, &method);
        if req.method != Method::Invite {
            self.start_nict(now, id.clone(), flow, bytes);
            return id;
        }
        let t1 = self.cfg.timers.t1;
        let timer_b = now + self.timeout_64t1();
        let timer_a = (!flow.reliable()).then_some((now + t1, t1));
        let txn = InviteClientTxn {
            state: IctState::Calling,
            flow,
            bytes: bytes.clone(),
            sent: SentInvite {
                uri: req.uri,
                via,
                branch,
                route: req.route,
                from: req.from,
                to: req.to,
                call_id: req.call_id,
                cseq: req.cseq,
            },
            timer_a,
            timer_b: Some(timer_b),
            done_at: None,
            ack: None,
        };
        self.ict.insert(id.clone(), txn);
        if let Some((at, _)) = timer_a {
            self.arm(at, TimerRef::Ict(id.clone()));
        }
        self.arm(timer_b, TimerRef::Ict(id.clone()));
        self.transmit(flow, bytes);
        id
    }

    /// CANCELs the INVITE client transaction `invite` (RFC 3261 §9.1): a CANCEL with its
    /// Request-URI, top Via (so its branch), Route, From, To, Call-ID and CSeq number,
    /// in a non-INVITE client transaction of its own, whose id is returned. `None`, and
    /// nothing sent, when the INVITE has already had its final response. Whether a
    /// provisional response has arrived (§9.1: no CANCEL before one) is the user's call.
    pub fn cancel(&mut self, now: Instant, invite: &TxId) -> Option<TxId> {
        let txn = self.ict.get(invite)?;
        if !matches!(txn.state, IctState::Calling | IctState::Proceeding) {
            return None;
        }
        let s = &txn.sent;
        let cancel = ClientRequest {
            method: Method::Cancel,
            uri: s.uri.clone(),
            route: s.route.clone(),
            from: s.from.clone(),
            to: s.to.clone(),
            call_id: s.call_id.clone(),
            cseq: s.cseq,
            headers: String::new(),
            body: None,
        };
        let bytes = render(&cancel, &s.via, &self.cfg.user_agent);
        let id = TxId::client(&s.branch, "CANCEL");
        let flow = txn.flow;
        self.start_nict(now, id.clone(), flow, bytes);
        Some(id)
    }

    /// Destroys a client transaction without waiting for it (RFC 3261 §9.1: the INVITE
    /// a CANCEL got no final response for within 64·T1). No event follows.
    pub fn abandon(&mut self, id: &TxId) {
        self.ict.remove(id);
        self.nict.remove(id);
    }

    /// Feeds a response that passed the edge checks. One that matches no client
    /// transaction of ours is dropped (RFC 3261 §18.1.2).
    pub fn handle_response(&mut self, now: Instant, resp: rsip::Response) {
        let Some(id) = TxId::of_response(&resp) else {
            return;
        };
        if self.ict.contains_key(&id) {
            self.ict_response(now, id, resp);
        } else if self.nict.contains_key(&id) {
            self.nict_response(now, id, resp);
        }
    }

    /// The driver could not open, or lost, its TCP connection to `remote`: client
    /// transactions still waiting on it end now with [`TxEvent::TransportError`]
    /// instead of at Timer B/F (RFC 3261 §8.1.3.1: a transport error is treated as a
    /// 503).
    pub fn handle_transport_error(&mut self, remote: SocketAddr) {
        let on_flow = |f: &Flow| f.reliable() && f.remote() == remote;
        let mut failed: VecDeque<TxId> = self
            .ict
            .iter()
            .filter(|(_, t)| {
                on_flow(&t.flow) && matches!(t.state, IctState::Calling | IctState::Proceeding)
            })
            .map(|(id, _)| id.clone())
            .collect();
        failed.extend(
            self.nict
                .iter()
                .filter(|(_, t)| on_flow(&t.flow) && t.done_at.is_none())
                .map(|(id, _)| id.clone()),
        );
        for id in failed {
            self.ict.remove(&id);
            self.nict.remove(&id);
            self.events.push_back(TxEvent::TransportError { id });
        }
    }

    fn start_nict(&mut self, now: Instant, id: TxId, flow: Flow, bytes: Vec<u8>) {
        let t1 = self.cfg.timers.t1;
        let timer_f = now + self.timeout_64t1();
        let timer_e = (!flow.reliable()).then_some((now + t1, t1));
        self.nict.insert(
            id.clone(),
            NonInviteClientTxn {
                flow,
                bytes: bytes.clone(),
                timer_e,
                timer_f,
                done_at: None,
            },
        );
        if let Some((at, _)) = timer_e {
            self.arm(at, TimerRef::Nict(id.clone()));
        }
        self.arm(timer_f, TimerRef::Nict(id));
        self.transmit(flow, bytes);
    }

    fn ict_response(&mut self, now: Instant, id: TxId, resp: rsip::Response) {
        let status = resp.status_code.code();
        let m = now + self.timeout_64t1();
        let Some(txn) = self.ict.get_mut(&id) else {
            return;
        };
        match (status, txn.state) {
            (100..=199, IctState::Calling | IctState::Proceeding) => {
                txn.state = IctState::Proceeding;
                txn.timer_a = None;
                txn.timer_b = None;
            }
            (100..=199, _) => return,
            (200..=299, IctState::Calling | IctState::Proceeding) => {
                // RFC 6026: Accepted; the user ACKs, Timer M absorbs nothing but passes
                // every further 2xx up.
                txn.state = IctState::Accepted;
                txn.timer_a = None;
                txn.timer_b = None;
                txn.done_at = Some(m);
                self.arm(m, TimerRef::Ict(id.clone()));
            }
            (200..=299, IctState::Accepted) => {}
            (200..=299, IctState::Completed) => return,
            (_, IctState::Calling | IctState::Proceeding) => {
                txn.state = IctState::Completed;
                txn.timer_a = None;
                txn.timer_b = None;
                // RFC 3261 §17.1.1.3: the ACK of a non-2xx is the transaction's: same
                // Request-URI, Via and Route as the INVITE, the response's To.
                let ack = ack_of_non_2xx(&txn.sent, header(&resp, "To").unwrap_or_default());
                txn.ack = Some(ack.clone());
                let linger = if txn.flow.reliable() {
                    Duration::ZERO
                } else {
                    TIMER_D
                };
                txn.done_at = Some(now + linger);
                let flow = txn.flow;
                self.arm(now + linger, TimerRef::Ict(id.clone()));
                self.transmit(flow, ack);
            }
            (_, IctState::Completed) => {
                // A retransmitted final: our ACK got lost.
                if let Some(ack) = txn.ack.clone() {
                    let flow = txn.flow;
                    self.transmit(flow, ack);
                }
                return;
            }
            (_, IctState::Accepted) => return,
        }
        self.events
            .push_back(TxEvent::Response { id, response: resp });
    }

    fn nict_response(&mut self, now: Instant, id: TxId, resp: rsip::Response) {
        let status = resp.status_code.code();
        let (t2, t4) = (self.cfg.timers.t2, self.cfg.timers.t4);
        let Some(txn) = self.nict.get_mut(&id) else {
            return;
        };
        if status < 200 {
            // Proceeding: keep retransmitting, at T2 (RFC 3261 §17.1.2.2). Nobody above
            // needs a provisional to a non-INVITE.
            if let Some((_, interval)) = txn.timer_e.as_mut() {
                *interval = t2;
            }
            return;
        }
        if txn.done_at.is_some() {
            // A retransmitted final: absorbed in Completed.
            return;
        }
        let linger = if txn.flow.reliable() {
            Duration::ZERO
        } else {
            t4
        };
        txn.timer_e = None;
        txn.done_at = Some(now + linger);
        self.arm(now + linger, TimerRef::Nict(id.clone()));
        self.events
            .push_back(TxEvent::Response { id, response: resp });
    }

    pub(super) fn ict_timer(&mut self, now: Instant, id: TxId) {
        let Some(txn) = self.ict.get_mut(&id) else {
            return;
        };
        if let Some(done) = txn.done_at {
            if done <= now {
                // Timer D or M.
                self.ict.remove(&id);
                self.events.push_back(TxEvent::Terminated { id });
            }
            return;
        }
        if txn.state == IctState::Calling && txn.timer_b.is_some_and(|b| b <= now) {
            // Timer B: not even a 100 Trying.
            self.ict.remove(&id);
            self.events.push_back(TxEvent::Timeout { id });
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
            self.arm(now + next, TimerRef::Ict(id));
            self.transmit(flow, bytes);
        }
    }

    pub(super) fn nict_timer(&mut self, now: Instant, id: TxId) {
        let t2 = self.cfg.timers.t2;
        let Some(txn) = self.nict.get_mut(&id) else {
            return;
        };
        if let Some(done) = txn.done_at {
            if done <= now {
                // Timer K.
                self.nict.remove(&id);
                self.events.push_back(TxEvent::Terminated { id });
            }
            return;
        }
        if txn.timer_f <= now {
            // Timer F: no final response.
            self.nict.remove(&id);
            self.events.push_back(TxEvent::Timeout { id });
            return;
        }
        if let Some((at, interval)) = txn.timer_e
            && at <= now
        {
            // Timer E: double up to T2.
            let next = (interval * 2).min(t2);
            txn.timer_e = Some((now + next, next));
            let (flow, bytes) = (txn.flow, txn.bytes.clone());
            self.arm(now + next, TimerRef::Nict(id));
            self.transmit(flow, bytes);
        }
    }
}

/// Our top Via: sent-by, the flow's transport, the branch, `rport` (RFC 3581, for NAT).
fn via(advertised: SocketAddr, flow: Flow, branch: &str) -> String {
    format!(
        "SIP/2.0/{} {}:{};branch={branch};rport",
        flow.via_transport(),
        host_string(advertised),
        advertised.port()
    )
}

/// The request on the wire (see [`ClientRequest`] for the header order).
fn render(req: &ClientRequest, via: &str, user_agent: &str) -> Vec<u8> {
    let method = req.method;
    let mut text = format!(
        "{method} {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n",
        uri = req.uri
    );
    for route in &req.route {
        let _ = write!(text, "Route: {route}\r\n");
    }
    let _ = write!(
        text,
        "From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n{headers}\
User-Agent: {user_agent}\r\n",
        from = req.from,
        to = req.to,
        cid = req.call_id,
        cseq = req.cseq,
        headers = req.headers,
    );
    let body: &[u8] = match &req.body {
        Some((content_type, body)) => {
            let _ = write!(text, "Content-Type: {content_type}\r\n");
            body
        }
        None => &[],
    };
    let _ = write!(text, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The ACK of a non-2xx final (RFC 3261 §17.1.1.3).
fn ack_of_non_2xx(s: &SentInvite, to: &str) -> Vec<u8> {
    let mut text = format!(
        "ACK {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n",
        uri = s.uri,
        via = s.via
    );
    for route in &s.route {
        let _ = write!(text, "Route: {route}\r\n");
    }
    let _ = write!(
        text,
        "From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
        from = s.from,
        cid = s.call_id,
        cseq = s.cseq,
    );
    text.into_bytes()
}
