//! Campaign calls: the outbound phase of a call (INVITE → ringing → answer or failure)
//! and [`SipPlacer`], the dialer runtime's way into SIP and media.
//!
//! ```text
//! dialer::runtime ── claim, attempt_started ──▶ SipPlacer::dial ── INVITE (claimed Call-ID,
//!                                                  our offer, From 9090, PAI) ──▶ trunk
//!                                               run_outbound (one task per call)
//!   Progress*  → ringing (the CallLog shows it)
//!   ring_timeout → Command::Cancel → Failed(487) = no_answer
//!   Answered   → accept_answer (no common codec: BYE, failed) → attempt_answered →
//!                run_answered: the CallSession, answered (the campaign's dialplan,
//!                DialplanStart::Now)
//!   Failed     → disposition from the final/cause; Reason kept
//!   → the call record is filed (direction outbound, campaign, attempt, raw code,
//!     disposition) → CallEnd to the runtime, which finishes the attempt
//! ```
//!
//! The call ends — and the runtime hears of it — only after the dialplan's last action
//! result is back (the session waits for running actions), so `finish_attempt` sees
//! every outcome the flow recorded. Times are the service clock's (`CallContext::clock`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::actions::ActionCall;
use super::ports::{RtpPort, RtpPorts};
use super::record::{CallRecord, system_time};
use super::router::SharedDialplans;
use super::runner::{CallContext, CallSetup, file_record, run_answered};
use super::session::DialplanStart;
use crate::dialer::runtime::{CallEnd, Failure, Placer, failed_disposition};
use crate::store::{AttemptEnd, ClaimedAttempt};
use crate::telemetry::mask_number;
use tongdai_domain::dialer::{Disposition, Hold, NotPlaced};
use tongdai_ivr::CompiledPlan;
use tongdai_media::sdp;
use tongdai_sip::{Command, DialError, DialRequest, FailCause, LegEvent, LegId, TrunkState};

/// The trunk's condition for the dialer: `None` when it can take calls. A trunk that is
/// configured to register must be registered; one whose OPTIONS go unanswered (or whose
/// TCP connection failed) is unreachable until it answers again.
pub fn trunk_hold(state: &TrunkState) -> Option<Hold> {
    if !state.configured {
        Some(Hold::NoTrunk)
    } else if state.addr.is_none() {
        Some(Hold::TrunkUnresolved)
    } else if state.register && !state.registered {
        Some(Hold::TrunkNotRegistered)
    } else if state.reachable == Some(false) {
        Some(Hold::TrunkUnreachable)
    } else {
        None
    }
}

/// The number as the trunk wants it in the Request-URI: national form (`0903123678`)
/// for Vietnamese E.164 numbers, otherwise as stored.
pub fn trunk_number(msisdn: &str) -> String {
    match msisdn.strip_prefix("+84") {
        Some(rest) => format!("0{rest}"),
        None => msisdn.to_string(),
    }
}

/// The dialer runtime's [`Placer`] over the real SIP driver, RTP ports and dialplans.
pub struct SipPlacer {
    ctx: Arc<CallContext>,
    dialplans: SharedDialplans,
    ports: Arc<RtpPorts>,
    tracker: TaskTracker,
    trunk: watch::Receiver<TrunkState>,
    /// Our number on the trunk (`trunk.caller_id`), the caller of the call records.
    caller_id: String,
}

impl SipPlacer {
    pub fn new(
        ctx: Arc<CallContext>,
        dialplans: SharedDialplans,
        ports: Arc<RtpPorts>,
        tracker: TaskTracker,
        caller_id: String,
    ) -> SipPlacer {
        let trunk = ctx.sip.trunk_state();
        SipPlacer {
            ctx,
            dialplans,
            ports,
            tracker,
            trunk,
            caller_id,
        }
    }

    fn plan(&self, name: &str) -> Option<Arc<CompiledPlan>> {
        let plans = self
            .dialplans
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        plans.by_name(name)
    }
}

/// A call ready to be dialled.
pub struct Prepared {
    attempt: ClaimedAttempt,
    plan: Arc<CompiledPlan>,
    port: RtpPort,
    offer: String,
}

impl Placer for SipPlacer {
    type Prepared = Prepared;

    fn dialplan_loaded(&self, name: &str) -> bool {
        self.plan(name).is_some()
    }

    fn trunk_hold(&self) -> Option<Hold> {
        trunk_hold(&self.trunk.borrow())
            .or_else(|| self.ctx.media_overloaded().map(|_| Hold::MediaOverloaded))
    }

    fn active_calls(&self) -> u32 {
        u32::try_from(self.ctx.log.active_count()).unwrap_or(u32::MAX)
    }

    fn prepare(&mut self, attempt: &ClaimedAttempt) -> Result<Prepared, NotPlaced> {
        let plan = self.plan(&attempt.dialplan).ok_or(NotPlaced::Dialplan)?;
        let port = self.ports.allocate().map_err(|e| {
            tracing::warn!(error = %e, "no RTP port for a campaign call");
            NotPlaced::NoCapacity
        })?;
        let session = u64::try_from(attempt.attempt_id).unwrap_or_default();
        let offer = sdp::render_offer(&self.ctx.local_media(session, port.port(), 1));
        Ok(Prepared {
            attempt: attempt.clone(),
            plan,
            port,
            offer,
        })
    }

    async fn dial(
        &mut self,
        p: Prepared,
        ends: mpsc::UnboundedSender<CallEnd>,
    ) -> Result<(), NotPlaced> {
        let (tx, rx) = mpsc::unbounded_channel();
        let request = DialRequest {
            target: trunk_number(&p.attempt.msisdn),
            from_user: None, // the trunk's caller_id (9090); PAI from [trunk]
            call_id: Some(p.attempt.call_id.clone()),
            offer_sdp: p.offer.into_bytes(),
            extra_headers: Vec::new(),
        };
        let dialed = match self.ctx.sip.dial(request, tx).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(attempt = p.attempt.attempt_id, error = %e, "INVITE not sent");
                return Err(match e {
                    DialError::Draining => NotPlaced::Stopping,
                    DialError::Overloaded => NotPlaced::NoCapacity,
                    DialError::NoTrunk | DialError::TrunkUnresolved => NotPlaced::Trunk,
                    DialError::BadTarget(_) | DialError::BadHeader(_) => NotPlaced::Invalid,
                });
            }
        };
        let transfer_host = self.trunk.borrow().addr.unwrap_or(self.ctx.sip.local_addr);
        // In the call log at once: the dialer counts calls up from it (the inbound
        // reserve), and the call task may not have run yet.
        let mut record = CallRecord::new(
            p.attempt.call_id.clone(),
            dialed.leg,
            Some(self.caller_id.clone()),
            Some(p.attempt.msisdn.clone()),
            system_time(self.ctx.clock.now()),
        );
        record.direction = "outbound";
        record.dialplan = Some(p.plan.name().to_string());
        record.campaign_id = Some(p.attempt.campaign_id);
        record.attempt_id = Some(p.attempt.attempt_id);
        self.ctx.log.upsert_active(&record);
        let call = OutboundCall {
            attempt: p.attempt,
            leg: dialed.leg,
            plan: p.plan,
            port: p.port,
            events: rx,
            transfer_host,
            record,
        };
        self.tracker
            .spawn(run_outbound(self.ctx.clone(), call, ends));
        Ok(())
    }
}

/// A campaign call whose INVITE is out.
pub struct OutboundCall {
    pub attempt: ClaimedAttempt,
    pub leg: LegId,
    pub plan: Arc<CompiledPlan>,
    pub port: RtpPort,
    pub events: mpsc::UnboundedReceiver<LegEvent>,
    /// Where a transfer to a bare number goes (the trunk).
    pub transfer_host: SocketAddr,
    /// The call's record so far (already in the call log as active): caller 9090,
    /// called the subscriber, direction outbound, campaign and attempt.
    pub record: CallRecord,
}

/// Runs a campaign call to its end, files its record and reports the end to the dialer.
pub async fn run_outbound(
    ctx: Arc<CallContext>,
    call: OutboundCall,
    ends: mpsc::UnboundedSender<CallEnd>,
) {
    let a = &call.attempt;
    let span = tracing::info_span!("call", call_id = %a.call_id, leg = call.leg,
        campaign = a.campaign_id, attempt = a.attempt_id, callee = %mask_number(&a.msisdn),
        direction = "outbound");
    let campaign_id = a.campaign_id;
    let attempt_id = a.attempt_id;
    let clock = ctx.clock.clone();
    let end = run(ctx, call).instrument(span).await;
    let at = clock.monotonic();
    // The runtime outlives every call task it started; a send error means it is gone.
    let _ = ends.send(CallEnd {
        campaign_id,
        attempt_id,
        end,
        at,
    });
}

/// When the record says the call ended (the clock's reading when it was filed).
fn ended_at(ctx: &CallContext, record: &CallRecord) -> Timestamp {
    record
        .ended_at
        .and_then(|t| Timestamp::try_from(t).ok())
        .unwrap_or_else(|| ctx.clock.now())
}

async fn run(ctx: Arc<CallContext>, mut call: OutboundCall) -> AttemptEnd {
    tracing::info!(attempt_no = call.attempt.attempt_no, "INVITE sent");
    let ring_timeout = call.attempt.ring_timeout;
    let (answer, ring_timed_out) = ring(&ctx, call.leg, ring_timeout, &mut call.events).await;
    match answer {
        Ok(sdp) => connect(ctx, call, &sdp).await,
        Err(NotAnswered {
            status,
            cause,
            reason,
        }) => {
            let (disposition, end_reason) = not_answered(status, cause, ring_timed_out);
            tracing::info!(
                status,
                ?cause,
                reason = reason.as_deref().unwrap_or(""),
                disposition = disposition.as_str(),
                "call not answered"
            );
            drop(call.port);
            let mut record = call.record;
            record.final_status = Some(status);
            file_unanswered(&ctx, record, disposition, end_reason, reason).await
        }
    }
}

/// The callee answered with `sdp`: accept it (no common codec: BYE, failed), mark the
/// attempt answered, run the campaign's dialplan in a session.
async fn connect(ctx: Arc<CallContext>, call: OutboundCall, sdp: &[u8]) -> AttemptEnd {
    let OutboundCall {
        attempt,
        leg,
        plan,
        port,
        events,
        transfer_host,
        mut record,
    } = call;
    let answered_at = ctx.clock.now();
    record.answered_at = Some(system_time(answered_at));
    record.final_status = Some(200);
    let negotiated = match sdp::accept_answer(sdp) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "answer without a usable codec: BYE");
            ctx.sip.command(Command::Hangup { leg });
            drop(port);
            let reason = Some(format!("no common codec: {e}"));
            let mut end =
                file_unanswered(&ctx, record, Disposition::Failed, "no_common_codec", reason).await;
            end.answered_at = Some(answered_at);
            return end;
        }
    };
    if let Err(e) = ctx
        .store
        .attempt_answered(attempt.attempt_id, answered_at)
        .await
    {
        // The flow's own writes also mark the answer; the call goes on.
        tracing::error!(error = %e, "attempt_answered failed");
    }
    tracing::info!(
        codec = negotiated.codec.name(),
        "answered: running the dialplan"
    );
    record.disposition = Some(Disposition::Answered.as_str());
    let answered = CallSetup {
        leg,
        negotiated,
        plan,
        action_call: ActionCall::outbound(&attempt),
        record,
        events,
        port,
        sdp_session: u64::try_from(attempt.attempt_id).unwrap_or_default(),
        transfer_host,
        start: DialplanStart::Now,
    };
    let record = run_answered(ctx.clone(), answered).await;
    let mut end = AttemptEnd::answered(answered_at, ended_at(&ctx, &record));
    end.reason = Some(record.end_reason.clone()).filter(|r| !r.is_empty());
    end
}

/// How an outbound leg failed: its final status, the SIP layer's cause, the `Reason`.
struct NotAnswered {
    status: u16,
    cause: FailCause,
    reason: Option<String>,
}

/// Waits for the callee's answer (its SDP) or the leg's failure, cancelling the call at
/// the ring timeout or at shutdown. The flag says whether our ring timeout cancelled it.
async fn ring(
    ctx: &CallContext,
    leg: LegId,
    ring_timeout: Duration,
    events: &mut mpsc::UnboundedReceiver<LegEvent>,
) -> (Result<Vec<u8>, NotAnswered>, bool) {
    let ring_deadline = ctx.clock.monotonic() + ring_timeout;
    let mut ring_timed_out = false;
    let mut cancelled = false;
    let answer = loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(LegEvent::Progress { status, .. }) => {
                    tracing::debug!(status, "ringing");
                }
                Some(LegEvent::Answered { sdp, .. }) => break Ok(sdp),
                Some(LegEvent::Failed { status, cause, reason, .. }) => {
                    break Err(NotAnswered { status, cause, reason });
                }
                Some(_) => {}
                None => break Err(NotAnswered { status: 503, cause: FailCause::Transport, reason: None }),
            },
            () = ctx.sleep_until(Some(ring_deadline)), if !cancelled => {
                tracing::info!(?ring_timeout, "no answer: CANCEL");
                ring_timed_out = true;
                cancelled = true;
                ctx.sip.command(Command::Cancel { leg });
            }
            _ = ctx.shutdown.cancelled(), if !cancelled => {
                tracing::info!("shutting down: CANCEL the ringing call");
                cancelled = true;
                ctx.sip.command(Command::Cancel { leg });
            }
        }
    };
    (answer, ring_timed_out)
}

/// The disposition and the record's end reason of a call that never connected: from
/// the final, the SIP layer's cause and whether our ring timeout sent the CANCEL.
fn not_answered(
    status: u16,
    cause: FailCause,
    ring_timed_out: bool,
) -> (Disposition, &'static str) {
    let failure = match cause {
        FailCause::Rejected => Failure::Final,
        FailCause::Cancelled => Failure::Cancelled,
        FailCause::NoAnswer => Failure::RangTooLong,
        FailCause::Timeout => Failure::NoResponse,
        FailCause::Transport => Failure::Unreachable,
    };
    let disposition = failed_disposition(status, failure, ring_timed_out);
    let end_reason = match failure {
        Failure::Final => disposition.as_str(),
        Failure::Cancelled if ring_timed_out => "ring_timeout",
        Failure::Cancelled => "shutdown",
        Failure::RangTooLong => "ring_timeout",
        Failure::NoResponse => "no_response",
        Failure::Unreachable => "trunk_unreachable",
    };
    (disposition, end_reason)
}

/// Files the record of a call that ended before its dialplan ran; what the dialer hears.
async fn file_unanswered(
    ctx: &CallContext,
    mut record: CallRecord,
    disposition: Disposition,
    end_reason: &str,
    reason: Option<String>,
) -> AttemptEnd {
    record.disposition = Some(disposition.as_str());
    record.end(end_reason, system_time(ctx.clock.now()));
    let record = file_record(ctx, record).await;
    AttemptEnd {
        disposition,
        sip_code: record.final_status,
        reason,
        answered_at: None,
        ended_at: ended_at(ctx, &record),
        throttled: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_form_for_the_trunk() {
        assert_eq!(trunk_number("+84903123678"), "0903123678");
        assert_eq!(trunk_number("9090"), "9090");
    }

    #[test]
    fn trunk_state_holds_dialling() {
        let mut s = TrunkState {
            configured: true,
            addr: Some("127.0.0.1:5060".parse().unwrap()),
            ..TrunkState::default()
        };
        assert_eq!(trunk_hold(&s), None);
        s.reachable = Some(false);
        assert_eq!(trunk_hold(&s), Some(Hold::TrunkUnreachable));
        s.reachable = Some(true);
        s.register = true;
        assert_eq!(trunk_hold(&s), Some(Hold::TrunkNotRegistered));
        s.registered = true;
        assert_eq!(trunk_hold(&s), None);
        s.addr = None;
        assert_eq!(trunk_hold(&s), Some(Hold::TrunkUnresolved));
        assert_eq!(trunk_hold(&TrunkState::default()), Some(Hold::NoTrunk));
    }

    #[test]
    fn unanswered_calls_map_to_dispositions() {
        use Disposition as D;
        let f = failed_disposition;
        assert_eq!(f(486, Failure::Final, false), D::Busy);
        assert_eq!(f(480, Failure::Final, false), D::NoAnswer);
        assert_eq!(f(603, Failure::Final, false), D::Rejected);
        assert_eq!(f(404, Failure::Final, false), D::InvalidNumber);
        assert_eq!(f(503, Failure::Final, false), D::Congested);
        assert_eq!(f(401, Failure::Final, false), D::Failed);
        // Our CANCEL after the ring timeout, and an answer that crossed it.
        assert_eq!(f(487, Failure::Cancelled, true), D::NoAnswer);
        assert_eq!(f(200, Failure::Cancelled, true), D::NoAnswer);
        // Our CANCEL at shutdown: not the subscriber's answer (uncharged).
        assert_eq!(f(487, Failure::Cancelled, false), D::Canceled);
        assert_eq!(f(487, Failure::RangTooLong, false), D::NoAnswer);
        assert_eq!(f(408, Failure::NoResponse, false), D::Congested);
        assert_eq!(f(503, Failure::Unreachable, false), D::Congested);
    }

    #[test]
    fn unanswered_calls_get_an_end_reason() {
        use Disposition as D;
        let n = not_answered;
        assert_eq!(n(486, FailCause::Rejected, false), (D::Busy, "busy"));
        assert_eq!(
            n(487, FailCause::Cancelled, true),
            (D::NoAnswer, "ring_timeout")
        );
        assert_eq!(
            n(487, FailCause::Cancelled, false),
            (D::Canceled, "shutdown")
        );
        assert_eq!(
            n(480, FailCause::NoAnswer, false),
            (D::NoAnswer, "ring_timeout")
        );
        assert_eq!(
            n(408, FailCause::Timeout, false),
            (D::Congested, "no_response")
        );
        assert_eq!(
            n(503, FailCause::Transport, false),
            (D::Congested, "trunk_unreachable")
        );
    }
}
