//! Inbound: requests from the far end become legs and leg events; the call layer's
//! answers become responses on their server transactions.

use std::time::Instant;

use rsipstack::sip as rsip;
use rsipstack::sip::{Header, Method};

use super::{
    DialogLayer, EndReason, IncomingCall, Leg, LegEvent, LegId, LegState, Pending2xx, ServerInvite,
    TimerRef, contact_header,
};
use crate::flow::Flow;
use crate::message::{
    self, header, other, random_token, split_header_list, tag_of, uri_of, user_of,
};
use crate::transaction::{TransactionLayer, TxId};

/// Status, extra headers and body of the answer to a non-INVITE request.
type Answer = (u16, Vec<Header>, Option<(&'static str, Vec<u8>)>);

impl DialogLayer {
    // ----- requests -------------------------------------------------------------------

    pub(super) fn handle_invite(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        id: TxId,
        flow: Flow,
        req: rsip::Request,
    ) {
        if header(&req, "To").and_then(tag_of).is_some() {
            return self.handle_reinvite(now, txns, id, flow, req);
        }
        let refuse = if self.draining {
            Some((503, "shutting down"))
        } else if self.legs.len() >= self.cfg.max_legs {
            Some((503, "overloaded"))
        } else {
            None
        };
        if let Some((status, why)) = refuse {
            tracing::info!(why, "refusing a new call with 503");
            let resp = self.response(&req, status, None, vec![other("Retry-After", "5")], None);
            txns.respond(now, &id, &resp);
            return;
        }
        // 100 Trying at once: it stops the caller's INVITE retransmissions.
        let trying = message::response(&req, 100, None, false, vec![], None, &self.cfg.user_agent);
        txns.respond(now, &id, &trying);
        self.open_inbound_leg(id, flow, req);
    }

    /// The leg (an early dialog, our tag chosen) of a new INVITE, and its `Incoming`.
    fn open_inbound_leg(&mut self, id: TxId, flow: Flow, req: rsip::Request) {
        let leg_id = self.new_leg_id();
        let call_id = header(&req, "Call-ID").unwrap_or("").to_string();
        let from = header(&req, "From").unwrap_or("").to_string();
        let to = header(&req, "To").unwrap_or("").to_string();
        let local_tag = random_token(12);
        let remote_target = header(&req, "Contact")
            .map(|c| uri_of(c).to_string())
            .unwrap_or_else(|| uri_of(&from).to_string());
        let route_set = message::headers(&req, "Record-Route")
            .iter()
            .flat_map(|v| split_header_list(v))
            .collect();
        let remote_cseq = message::cseq(&req).map(|(n, _)| n).unwrap_or(0);
        let called = user_of(&req.uri.to_string()).map(str::to_string);
        let caller = header(&req, "P-Asserted-Identity")
            .and_then(|v| user_of(uri_of(v)).map(str::to_string))
            .or_else(|| user_of(uri_of(&from)).map(str::to_string));
        let incoming = IncomingCall {
            leg: leg_id,
            call_id: call_id.clone(),
            called,
            caller,
            from_uri: uri_of(&from).to_string(),
            flow,
            content_type: header(&req, "Content-Type").map(str::to_string),
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
            invite_key: Some(id.clone()),
            reinvite_key: None,
            pending_2xx: None,
            hangup_pending: false,
        };
        self.server_invites.insert(
            id,
            ServerInvite {
                leg: leg_id,
                request: req,
                flow,
            },
        );
        self.dialogs.insert((call_id, local_tag), leg_id);
        self.legs.insert(leg_id, leg);
        self.emit(LegEvent::Incoming(incoming));
    }

    fn handle_reinvite(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        id: TxId,
        flow: Flow,
        req: rsip::Request,
    ) {
        let Some(leg_id) = self.find_dialog(&req) else {
            let resp = self.stateless_response(&req, 481);
            txns.respond(now, &id, &resp);
            return;
        };
        let busy = self
            .legs
            .get(&leg_id)
            .is_none_or(|l| l.reinvite_key.is_some() || l.state != LegState::Confirmed);
        let cseq_ok = self.note_remote_cseq(leg_id, &req);
        let sdp = req.body.clone();
        self.server_invites.insert(
            id.clone(),
            ServerInvite {
                leg: leg_id,
                request: req,
                flow,
            },
        );
        if busy || !cseq_ok {
            // RFC 3261 §14.2: an INVITE while one is pending gets 491 (or 500 with
            // Retry-After when our own offer is outstanding).
            let status = if cseq_ok { 491 } else { 500 };
            self.ist_final(now, txns, &id, status, vec![]);
            return;
        }
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.reinvite_key = Some(id);
        }
        self.emit(LegEvent::Reoffer { leg: leg_id, sdp });
    }

    /// The ACK of a 2xx: the dialog is confirmed (and a hangup that waited for it goes
    /// out).
    pub(super) fn handle_ack(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        req: &rsip::Request,
    ) {
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
            self.emit(LegEvent::Confirmed { leg: leg_id });
            if hangup {
                self.send_bye(now, txns, leg_id);
            }
        }
    }

    /// A CANCEL (RFC 3261 §9.2): 200 for it (481 when its INVITE is unknown), and 487 for
    /// the INVITE if it is still unanswered, which ends the leg.
    pub(super) fn handle_cancel(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        id: &TxId,
        req: &rsip::Request,
        invite: Option<TxId>,
    ) {
        let status = if invite.is_some() { 200 } else { 481 };
        let resp = self.stateless_response(req, status);
        txns.respond(now, id, &resp);
        let Some(invite) = invite else {
            return;
        };
        let Some(leg) = self.server_invites.get(&invite).map(|i| i.leg) else {
            return;
        };
        if self.ist_final(now, txns, &invite, 487, vec![]) {
            self.end_leg(leg, Some(EndReason::Cancelled));
        }
    }

    /// BYE, INFO, OPTIONS, NOTIFY and the methods we know but do not serve.
    pub(super) fn handle_non_invite(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        id: &TxId,
        req: &rsip::Request,
    ) {
        let (status, extra, body) = self.answer_non_invite(now, txns, req);
        let resp = self.response(req, status, None, extra, body);
        txns.respond(now, id, &resp);
    }

    fn answer_non_invite(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        req: &rsip::Request,
    ) -> Answer {
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
                        if let Some(key) = leg.invite_key.clone() {
                            self.final_non2xx(now, txns, &key, 487);
                        }
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
                self.emit(LegEvent::Info {
                    leg: leg_id,
                    content_type,
                    body: req.body.clone(),
                    at: now,
                });
                (200, vec![], None)
            }
            Method::Notify => {
                let Some(leg_id) = in_dialog else {
                    return (481, vec![], None);
                };
                self.note_remote_cseq(leg_id, req);
                (self.handle_notify(leg_id, req), vec![], None)
            }
            _ => (405, vec![other("Allow", message::ALLOW)], None),
        }
    }

    // ----- the call layer's answers ------------------------------------------------------

    pub(super) fn send_provisional(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        leg_id: LegId,
        status: u16,
    ) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.state != LegState::Early {
            return;
        }
        let Some(inv) = leg
            .invite_key
            .as_ref()
            .and_then(|k| self.server_invites.get(k))
        else {
            return;
        };
        let resp = message::response(
            &inv.request,
            status,
            Some(&leg.local_tag),
            true,
            vec![contact_header(&self.cfg, inv.flow, &inv.request)],
            None,
            &self.cfg.user_agent,
        );
        if let Some(key) = &leg.invite_key {
            txns.respond(now, key, &resp);
        }
    }

    pub(super) fn answer(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        leg_id: LegId,
        sdp: Vec<u8>,
    ) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.state != LegState::Early {
            return;
        }
        let Some(key) = leg.invite_key.clone() else {
            return;
        };
        let tag = leg.local_tag.clone();
        if self.send_2xx(now, txns, leg_id, &key, Some(&tag), sdp)
            && let Some(leg) = self.legs.get_mut(&leg_id)
        {
            leg.state = LegState::WaitingAck;
        }
    }

    /// Sends a 2xx with our SDP on the INVITE server transaction `key` (initial or
    /// re-INVITE): the transaction moves to Accepted (RFC 6026) and only absorbs
    /// retransmitted INVITEs, while the dialog retransmits the 2xx until its ACK
    /// (RFC 3261 §13.3.1.4). Returns false when the INVITE has already been answered.
    fn send_2xx(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        leg_id: LegId,
        key: &TxId,
        to_tag: Option<&str>,
        sdp: Vec<u8>,
    ) -> bool {
        let Some(inv) = self.server_invites.get(key) else {
            return false;
        };
        let cseq = message::cseq(&inv.request).map(|(n, _)| n).unwrap_or(0);
        let resp = message::response(
            &inv.request,
            200,
            to_tag,
            to_tag.is_some(),
            vec![
                contact_header(&self.cfg, inv.flow, &inv.request),
                other("Allow", message::ALLOW),
                other("Supported", ""),
            ],
            Some(("application/sdp", sdp)),
            &self.cfg.user_agent,
        );
        if !txns.respond(now, key, &resp) {
            return false;
        }
        self.server_invites.remove(key);
        let t1 = self.cfg.timers.t1;
        if let Some(leg) = self.legs.get_mut(&leg_id) {
            leg.pending_2xx = Some(Pending2xx {
                cseq,
                bytes: resp.to_bytes(),
                next: now + t1,
                interval: t1,
                give_up: now + t1 * 64,
            });
        }
        self.arm(now + t1, TimerRef::Resend2xx(leg_id));
        true
    }

    pub(super) fn reject(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        leg_id: LegId,
        status: u16,
    ) {
        let Some(leg) = self.legs.get(&leg_id) else {
            return;
        };
        if leg.state != LegState::Early {
            return;
        }
        if let Some(key) = leg.invite_key.clone() {
            self.final_non2xx(now, txns, &key, status);
        }
        self.end_leg(leg_id, None);
    }

    pub(super) fn answer_reoffer(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        leg_id: LegId,
        sdp: Vec<u8>,
    ) {
        let Some(key) = self
            .legs
            .get_mut(&leg_id)
            .and_then(|l| l.reinvite_key.take())
        else {
            return;
        };
        // In-dialog: the To already carries our tag, Record-Route is not repeated.
        self.send_2xx(now, txns, leg_id, &key, None, sdp);
    }

    pub(super) fn reject_reoffer(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        leg_id: LegId,
        status: u16,
    ) {
        let Some(key) = self
            .legs
            .get_mut(&leg_id)
            .and_then(|l| l.reinvite_key.take())
        else {
            return;
        };
        self.ist_final(now, txns, &key, status, vec![]);
    }

    /// Hangup of an inbound leg: 480 before the answer, BYE after (once the ACK is in).
    pub(super) fn hangup(&mut self, now: Instant, txns: &mut TransactionLayer, leg_id: LegId) {
        let Some(leg) = self.legs.get_mut(&leg_id) else {
            return;
        };
        match leg.state {
            LegState::Early => {
                if let Some(key) = leg.invite_key.clone() {
                    self.final_non2xx(now, txns, &key, 480);
                }
                self.end_leg(leg_id, None);
            }
            LegState::WaitingAck => leg.hangup_pending = true,
            LegState::Confirmed => self.send_bye(now, txns, leg_id),
            LegState::Terminating => {}
        }
    }

    /// A final non-2xx chosen by the call layer or by us. Our 503s are temporary
    /// (overload, no RTP port): they say when to try again, so a proxy retries elsewhere
    /// or later instead of marking us dead (RFC 3261 §21.5.4).
    fn final_non2xx(&mut self, now: Instant, txns: &mut TransactionLayer, key: &TxId, status: u16) {
        let extra = if status == 503 {
            vec![other("Retry-After", "5")]
        } else {
            vec![]
        };
        self.ist_final(now, txns, key, status, extra);
    }

    /// Answers the unanswered INVITE `key` with a final non-2xx carrying its leg's tag.
    /// Returns whether it went out.
    pub(super) fn ist_final(
        &mut self,
        now: Instant,
        txns: &mut TransactionLayer,
        key: &TxId,
        status: u16,
        extra: Vec<Header>,
    ) -> bool {
        let Some(inv) = self.server_invites.remove(key) else {
            return false;
        };
        let tag = self.legs.get(&inv.leg).map(|l| l.local_tag.clone());
        let resp = self.response(&inv.request, status, tag.as_deref(), extra, None);
        txns.respond(now, key, &resp)
    }

    // ----- our 2xx until its ACK ---------------------------------------------------------

    pub(super) fn resend_2xx(&mut self, now: Instant, txns: &mut TransactionLayer, leg_id: LegId) {
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
                self.send_bye(now, txns, leg_id);
                self.emit(LegEvent::Terminated {
                    leg: leg_id,
                    reason: EndReason::AckTimeout,
                });
            }
            return;
        }
        if pending.next <= now {
            pending.interval = (pending.interval * 2).min(t2);
            pending.next = now + pending.interval;
            let next = pending.next.min(pending.give_up);
            let bytes = pending.bytes.clone();
            let flow = leg.flow;
            self.arm(next, TimerRef::Resend2xx(leg_id));
            txns.send_direct(flow, bytes);
        } else {
            let next = pending.next;
            self.arm(next, TimerRef::Resend2xx(leg_id));
        }
    }
}
