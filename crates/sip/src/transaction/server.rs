//! Server transactions (RFC 3261 §17.2 with RFC 6026): requests in, the user's
//! responses out, retransmissions absorbed.

use std::time::{Duration, Instant};

use rsipstack::sip as rsip;
use rsipstack::sip::Method;

use super::{TimerRef, TransactionLayer, TxEvent, TxId};
use crate::flow::Flow;

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
pub(super) struct InviteServerTxn {
    flow: Flow,
    state: IstState,
    /// Repeated for a retransmitted INVITE (the 100, a 180, the final).
    last_response: Option<Vec<u8>>,
    /// Next Timer G retransmission and its interval.
    timer_g: Option<(Instant, Duration)>,
    /// Timer H / I / L: when the transaction ends (or gives up waiting for ACK).
    deadline: Option<Instant>,
}

/// Non-INVITE server transaction: answered once, kept to absorb retransmissions.
pub(super) struct NonInviteServerTxn {
    flow: Flow,
    /// The final response, once the user gave it.
    last_response: Option<Vec<u8>>,
    /// Timer J once answered. Before that a guard of 64·T1, so a request its user never
    /// answers cannot keep the transaction forever.
    expires: Instant,
}

impl TransactionLayer {
    /// Feeds a request that passed the edge checks.
    pub fn handle_request(&mut self, now: Instant, flow: Flow, req: rsip::Request) {
        let Some(id) = TxId::of_request(&req) else {
            self.events
                .push_back(TxEvent::Unmatched { flow, request: req });
            return;
        };
        match req.method {
            Method::Ack => self.handle_ack(now, id, flow, req),
            Method::Invite => self.handle_invite(id, flow, req),
            _ => self.handle_non_invite(now, id, flow, req),
        }
    }

    /// Answers server transaction `id` (INVITE or not). Returns false, sending nothing,
    /// when there is no such transaction or it has already sent its final response.
    pub fn respond(&mut self, now: Instant, id: &TxId, response: &rsip::Response) -> bool {
        let status = response.status_code.code();
        let t1 = self.cfg.timers.t1;
        let end = now + self.timeout_64t1();
        if let Some(txn) = self.ist.get_mut(id) {
            if txn.state != IstState::Proceeding {
                return false;
            }
            let bytes = response.to_bytes();
            txn.last_response = Some(bytes.clone());
            let flow = txn.flow;
            match status {
                100..=199 => {}
                200..=299 => {
                    // RFC 6026: Accepted until Timer L; the dialog retransmits the 2xx.
                    txn.state = IstState::Accepted;
                    txn.deadline = Some(end);
                    self.arm(end, TimerRef::Ist(id.clone()));
                }
                _ => {
                    // Completed: Timer G (UDP) retransmits until the ACK, Timer H gives up.
                    txn.state = IstState::Completed;
                    txn.deadline = Some(end);
                    if !flow.reliable() {
                        txn.timer_g = Some((now + t1, t1));
                        self.arm(now + t1, TimerRef::Ist(id.clone()));
                    }
                    self.arm(end, TimerRef::Ist(id.clone()));
                }
            }
            self.transmit(flow, bytes);
            return true;
        }
        let Some(txn) = self.nist.get_mut(id) else {
            return false;
        };
        if txn.last_response.is_some() {
            return false;
        }
        let bytes = response.to_bytes();
        let flow = txn.flow;
        if status >= 200 {
            if flow.reliable() {
                // No retransmissions to absorb on a stream: Timer J is zero.
                self.nist.remove(id);
            } else {
                txn.last_response = Some(bytes.clone());
                txn.expires = end;
                self.arm(end, TimerRef::Nist(id.clone()));
            }
        }
        self.transmit(flow, bytes);
        true
    }

    fn handle_invite(&mut self, id: TxId, flow: Flow, req: rsip::Request) {
        if let Some(txn) = self.ist.get(&id) {
            // Retransmitted INVITE: repeat the last response (RFC 3261 §17.2.1) to where
            // this copy came from.
            if let Some(bytes) = txn.last_response.clone() {
                self.transmit(flow, bytes);
            }
            return;
        }
        self.ist.insert(
            id.clone(),
            InviteServerTxn {
                flow,
                state: IstState::Proceeding,
                last_response: None,
                timer_g: None,
                deadline: None,
            },
        );
        self.events.push_back(TxEvent::Request {
            id,
            flow,
            request: req,
        });
    }

    fn handle_ack(&mut self, now: Instant, id: TxId, flow: Flow, req: rsip::Request) {
        let t4 = self.cfg.timers.t4;
        match self.ist.get_mut(&id) {
            Some(txn) if txn.state == IstState::Completed => {
                // ACK of our non-2xx final: stop retransmitting, linger for Timer I.
                txn.state = IstState::Confirmed;
                txn.timer_g = None;
                let linger = if txn.flow.reliable() {
                    Duration::ZERO
                } else {
                    t4
                };
                txn.deadline = Some(now + linger);
                self.arm(now + linger, TimerRef::Ist(id));
            }
            // A retransmitted ACK of that final.
            Some(txn) if txn.state == IstState::Confirmed => {}
            // The ACK of a 2xx (its own branch, or an Accepted transaction's): the dialog's.
            _ => self.events.push_back(TxEvent::Ack { flow, request: req }),
        }
    }

    fn handle_non_invite(&mut self, now: Instant, id: TxId, flow: Flow, req: rsip::Request) {
        if let Some(txn) = self.nist.get(&id) {
            // Retransmission: resend our answer, do not pass it up again. It goes where
            // this copy came from (RFC 3261 §18.2.2), which is also right when a NAT
            // binding changed between the copies.
            if let Some(bytes) = txn.last_response.clone() {
                self.transmit(flow, bytes);
            }
            return;
        }
        let guard = now + self.timeout_64t1();
        self.nist.insert(
            id.clone(),
            NonInviteServerTxn {
                flow,
                last_response: None,
                expires: guard,
            },
        );
        self.arm(guard, TimerRef::Nist(id.clone()));
        let event = if req.method == Method::Cancel {
            let invite = TxId::invite_of(&req).filter(|i| self.ist.contains_key(i));
            TxEvent::Cancel {
                id,
                flow,
                request: req,
                invite,
            }
        } else {
            TxEvent::Request {
                id,
                flow,
                request: req,
            }
        };
        self.events.push_back(event);
    }

    pub(super) fn ist_timer(&mut self, now: Instant, id: TxId) {
        let t2 = self.cfg.timers.t2;
        let Some(txn) = self.ist.get_mut(&id) else {
            return;
        };
        if let Some(deadline) = txn.deadline
            && deadline <= now
        {
            // Timer H (no ACK for our non-2xx), I, or L: the transaction ends.
            self.ist.remove(&id);
            return;
        }
        if let Some((at, interval)) = txn.timer_g
            && at <= now
            && txn.state == IstState::Completed
        {
            // Timer G: retransmit the non-2xx final, doubling up to T2.
            let next_interval = (interval * 2).min(t2);
            txn.timer_g = Some((now + next_interval, next_interval));
            let flow = txn.flow;
            let bytes = txn.last_response.clone();
            self.arm(now + next_interval, TimerRef::Ist(id));
            if let Some(bytes) = bytes {
                self.transmit(flow, bytes);
            }
        }
    }

    pub(super) fn nist_timer(&mut self, now: Instant, id: TxId) {
        if self.nist.get(&id).is_some_and(|t| t.expires <= now) {
            self.nist.remove(&id);
        }
    }
}
