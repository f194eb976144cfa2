//! Calls under tokio: the only place where a leg (SIP events), a media session (RTP) and
//! a dialplan meet. Everything here is glue: the decisions live in the sans-IO `Engine`
//! and `MediaSession`; a call task feeds the engine events and `now` and carries out its
//! outputs.
//!
//! A call has two phases:
//!
//! * **before answer** — direction-specific. Inbound ([`run_inbound`]): ring, answer after
//!   `sip.answer_delay`, or end on CANCEL/shutdown. Outbound (the dialer milestone): send
//!   the INVITE with [`render_offer`](tongdai_media::sdp::render_offer), accept the answer
//!   with [`accept_answer`](tongdai_media::sdp::accept_answer).
//! * **answered** — the same for both: [`run_answered`] with an [`AnsweredCall`]. It
//!   hands the RTP socket to a media worker, runs the dialplan, the program's actions and
//!   the in-dialog SIP events (re-INVITE, INFO digits, BYE, REFER progress) until the call
//!   ends, then files the [`CallRecord`] ([`file_record`]).
//!
//! The call task does not send RTP: its media session lives in a media worker
//! (`media::worker`) and the task talks to it through a [`MediaHandle`]. So the task
//! wakes only when something happens on the call (a SIP event, a digit, a prompt
//! finished, an action's result, a dialplan timer), not every 20 ms.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::actions::{ActionCall, ActionResult, ProgramActions};
use super::ports::RtpPort;
use super::record::{CallLog, CallRecord, DigitMethod, PromptPlay};
use crate::media::{MediaHandle, MediaWorkers};
use crate::sip::transport::SipHandle;
use crate::store::{CallDirection, CallRecordRow, Disposition, Store};
use crate::telemetry::mask_number;
use tongdai_ivr::{CompiledPlan, Engine, Input, Output};
use tongdai_media::sdp::{self, LocalMedia, Negotiated};
use tongdai_media::{MediaFinal, MediaNotice, PromptCache, SessionParams, parse_info_digit};
use tongdai_sip::{Command, EndReason, IncomingCall, LegEvent, LegId};

/// What every call needs from the service, shared.
#[derive(Clone)]
pub struct CallContext {
    pub sip: SipHandle,
    pub prompts: PromptCache,
    pub log: CallLog,
    pub advertised_ip: std::net::IpAddr,
    pub answer_delay: Duration,
    pub inactivity_timeout: Duration,
    /// `rtp.max_send_lag`: see [`CallContext::media_overloaded`].
    pub max_send_lag: Duration,
    pub actions: ProgramActions,
    pub store: Store,
    pub media: MediaWorkers,
    pub shutdown: CancellationToken,
    pub shutdown_grace: Duration,
}

impl CallContext {
    /// `Some(lag)` while the media workers send further behind their frame slots than
    /// `rtp.max_send_lag`: no new calls then (inbound 503, campaigns hold), so that the
    /// calls already up keep their audio.
    pub fn media_overloaded(&self) -> Option<Duration> {
        let lag = self.media.send_lag();
        (!self.max_send_lag.is_zero() && lag > self.max_send_lag).then_some(lag)
    }

    /// Our side of a leg's SDP. `session` is the `o=` session id, constant for the
    /// dialog (the leg id inbound; the attempt id outbound, whose offer precedes the
    /// leg); `version` is 1 for the first offer or answer and goes up with every later
    /// one. An outbound call renders its offer with `local_media(attempt, port, 1)`.
    pub fn local_media(&self, session: u64, port: u16, version: u64) -> LocalMedia {
        LocalMedia {
            addr: self.advertised_ip,
            port,
            session_id: session,
            session_version: version,
        }
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// When the dialplan of an answered call starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialplanStart {
    /// On the ACK of our 2xx (inbound: media flows from the answer, the menu starts when
    /// the caller's side has confirmed).
    OnAck,
    /// At once (outbound: the callee's 2xx, ACKed by us, confirmed the dialog).
    Now,
}

/// Everything the answered phase of a call needs, whichever side sent the INVITE.
pub struct AnsweredCall {
    pub leg: LegId,
    /// The offer/answer outcome (`sdp::negotiate` of an inbound offer, or
    /// `sdp::accept_answer` of the callee's answer to our offer).
    pub negotiated: Negotiated,
    /// The dialplan to run (the call keeps it across reloads).
    pub plan: Arc<CompiledPlan>,
    /// Who the actions act for (caller number, Call-ID, channel).
    pub action_call: ActionCall,
    /// The record so far (times, numbers, dialplan); completed and filed at the end.
    pub record: CallRecord,
    /// The leg's events from the SIP driver.
    pub events: mpsc::UnboundedReceiver<LegEvent>,
    /// Our RTP port, the one in the SDP we sent (rendered with
    /// `CallContext::local_media(sdp_session, port, 1)`).
    pub port: RtpPort,
    /// The `o=` session id of our SDP: the leg id inbound; outbound the offer went out
    /// before the leg existed, so the attempt id.
    pub sdp_session: u64,
    /// Where a transfer target given as a bare number goes (`sip:NUMBER@host`): the
    /// trunk the call came in on or went out through.
    pub transfer_host: SocketAddr,
    pub start: DialplanStart,
}

/// Runs one inbound call to its end and files its record.
pub async fn run_inbound(
    ctx: Arc<CallContext>,
    call: IncomingCall,
    plan: Arc<CompiledPlan>,
    negotiated: Negotiated,
    port: RtpPort,
    mut events: mpsc::UnboundedReceiver<LegEvent>,
) {
    let caller = call.caller.as_deref().map(mask_number).unwrap_or_default();
    let span = tracing::info_span!("call", call_id = %call.call_id, leg = call.leg, caller = %caller,
        called = call.called.as_deref().unwrap_or(""), direction = "inbound");
    async move {
        tracing::info!("incoming call");
        let mut record = CallRecord::new(
            call.call_id.clone(),
            call.leg,
            call.caller.clone(),
            call.called.clone(),
        );
        record.dialplan = Some(plan.name().to_string());
        ctx.log.upsert_active(&record);
        if let Err(reason) = ring_and_answer(
            &ctx,
            call.leg,
            &negotiated,
            port.port(),
            &mut events,
            &mut record,
        )
        .await
        {
            file_record(&ctx, record, reason).await;
            return;
        }
        let answered = AnsweredCall {
            leg: call.leg,
            negotiated,
            plan,
            action_call: ActionCall::inbound(call.caller.clone(), call.call_id.clone()),
            record,
            events,
            port,
            sdp_session: call.leg,
            transfer_host: call.flow.remote(),
            start: DialplanStart::OnAck,
        };
        run_answered(ctx, answered).await;
    }
    .instrument(span)
    .await
}

/// Rings, then answers after the configured ring time. `Err(end_reason)` when the call
/// ended before (CANCEL, shutdown).
async fn ring_and_answer(
    ctx: &CallContext,
    leg: LegId,
    negotiated: &Negotiated,
    port: u16,
    events: &mut mpsc::UnboundedReceiver<LegEvent>,
    record: &mut CallRecord,
) -> Result<(), &'static str> {
    ctx.sip.command(Command::Ringing { leg });
    let answer_at = tokio::time::Instant::now() + ctx.answer_delay;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(answer_at) => break,
            ev = events.recv() => match ev {
                Some(LegEvent::Terminated { reason, .. }) => {
                    record.final_status = Some(487);
                    return Err(end_reason(&reason));
                }
                None => return Err("shutdown"),
                Some(_) => {}
            },
            _ = ctx.shutdown.cancelled() => {
                ctx.sip.command(Command::Reject { leg, status: 503 });
                record.final_status = Some(503);
                return Err("shutdown");
            }
        }
    }
    let answer = sdp::render_answer(negotiated, &ctx.local_media(leg, port, 1));
    ctx.sip.command(Command::Answer {
        leg,
        sdp: answer.into_bytes(),
    });
    Ok(())
}

/// The answered phase of a call, inbound or outbound: media, dialplan, actions and
/// in-dialog SIP events until the call ends; then the record is filed (store and
/// `CallLog`) and returned. Runs in the caller's tracing span.
pub async fn run_answered(ctx: Arc<CallContext>, call: AnsweredCall) -> CallRecord {
    let AnsweredCall {
        leg,
        negotiated,
        plan,
        action_call,
        mut record,
        events,
        port,
        sdp_session,
        transfer_host,
        start,
    } = call;
    record.final_status.get_or_insert(200);
    record.answered_at.get_or_insert_with(SystemTime::now);
    record.codec = Some(negotiated.codec.name().to_string());
    record.telephone_event_pt = negotiated.telephone_event_pt;
    record
        .dialplan
        .get_or_insert_with(|| plan.name().to_string());
    let port_number = port.port();
    let params = SessionParams::from_negotiated(&negotiated, ctx.inactivity_timeout);
    let (media, notices) = ctx.media.add(params, port.into_socket());
    ctx.log.upsert_active(&record);
    let (action_tx, action_rx) = mpsc::unbounded_channel();
    let mut c = Answered {
        ctx,
        leg,
        action_call,
        transfer_host,
        record,
        plan,
        negotiated,
        port: port_number,
        sdp_session,
        events,
        media: Some(media),
        notices,
        engine: None,
        pending_prompts: 0,
        action_tx,
        action_rx,
        actions_running: 0,
        transferring: false,
        shutdown_deadline: None,
        session_version: 1,
        dirty: false,
    };
    if start == DialplanStart::Now {
        c.start_dialplan(now());
    }
    let reason = match c.pump() {
        Some(reason) => reason,
        None => c.run().await,
    };
    c.finish(reason).await
}

/// Completes a record (end reason, end time) and files it: the store's call records
/// and the in-memory `CallLog`. Also for calls that were never answered.
pub async fn file_record(ctx: &CallContext, mut record: CallRecord, reason: &str) -> CallRecord {
    record.end_reason = reason.to_string();
    record.ended_at = Some(SystemTime::now());
    let row = store_row(&record);
    if let Err(e) = ctx.store.insert_call_record(&row).await {
        tracing::error!(error = %e, "call record not stored");
    }
    tracing::info!(
        reason,
        digits = %record.digits,
        prompts = record.prompts.len(),
        rtp_sent = record.rtp_packets_sent,
        rtp_received = record.rtp_packets_received,
        "call ended"
    );
    ctx.log.finish(record.clone());
    record
}

struct Answered {
    ctx: Arc<CallContext>,
    leg: LegId,
    action_call: ActionCall,
    transfer_host: SocketAddr,
    record: CallRecord,
    plan: Arc<CompiledPlan>,
    negotiated: Negotiated,
    port: u16,
    sdp_session: u64,
    events: mpsc::UnboundedReceiver<LegEvent>,
    /// `None` once closed.
    media: Option<MediaHandle>,
    notices: mpsc::UnboundedReceiver<MediaNotice>,
    engine: Option<Engine>,
    /// Prompts of the engine's last `Play` still to finish (in the media handle's
    /// current epoch).
    pending_prompts: usize,
    action_tx: mpsc::UnboundedSender<ActionResult>,
    action_rx: mpsc::UnboundedReceiver<ActionResult>,
    /// Actions started and not yet answered: the call is not over (nor its record
    /// filed, nor a campaign attempt finished) before their results are back.
    actions_running: usize,
    /// A REFER is out; the call ends when the transfer succeeds or fails.
    transferring: bool,
    shutdown_deadline: Option<Instant>,
    session_version: u64,
    /// The record changed in a way supervisors should see (node, digits).
    dirty: bool,
}

impl Answered {
    async fn run(&mut self) -> &'static str {
        loop {
            let deadline = [
                self.engine.as_ref().and_then(|e| e.poll_timeout()),
                self.shutdown_deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(ev) => {
                        if let Some(reason) = self.on_leg_event(ev) {
                            return reason;
                        }
                    }
                    None => return "shutdown",
                },
                notice = self.notices.recv() => {
                    if let Some(reason) = self.on_media(notice) {
                        return reason;
                    }
                },
                Some(result) = self.action_rx.recv() => {
                    self.actions_running = self.actions_running.saturating_sub(1);
                    tracing::info!(outcome = %result.outcome, "action result");
                    if let Some(engine) = self.engine.as_mut() {
                        engine.handle(now(), Input::ActionResult { outcome: result.outcome, vars: result.vars });
                    }
                },
                _ = sleep => {
                    let t = now();
                    if let Some(engine) = self.engine.as_mut() {
                        engine.handle_timeout(t);
                    }
                    if self.shutdown_deadline.is_some_and(|d| d <= t) {
                        tracing::info!("shutdown grace over; hanging up");
                        self.ctx.sip.command(Command::Hangup { leg: self.leg });
                        return "shutdown";
                    }
                },
                _ = self.ctx.shutdown.cancelled(), if self.shutdown_deadline.is_none() => {
                    self.shutdown_deadline = Some(now() + self.ctx.shutdown_grace);
                },
            }
            if let Some(reason) = self.pump() {
                return reason;
            }
        }
    }

    fn local_media(&self) -> LocalMedia {
        self.ctx
            .local_media(self.sdp_session, self.port, self.session_version)
    }

    fn start_dialplan(&mut self, t: Instant) {
        tracing::debug!(dialplan = self.plan.name(), "starting the dialplan");
        let mut vars = BTreeMap::new();
        if let Some(caller) = &self.action_call.caller {
            vars.insert("caller".to_string(), caller.clone());
        }
        let mut engine = Engine::new(self.plan.clone(), vars);
        engine.start(t);
        self.engine = Some(engine);
    }

    /// Returns `Some(end_reason)` when the leg is gone.
    fn on_leg_event(&mut self, ev: LegEvent) -> Option<&'static str> {
        let t = now();
        match ev {
            LegEvent::Confirmed { .. } => {
                if self.engine.is_none() {
                    self.start_dialplan(t);
                }
            }
            LegEvent::Reoffer { sdp, .. } => {
                self.record.reoffers += 1;
                match sdp::negotiate(&sdp) {
                    Ok(neg) => {
                        self.negotiated = neg;
                        self.session_version += 1;
                        let answer = sdp::render_answer(&self.negotiated, &self.local_media());
                        if let Some(media) = self.media.as_ref() {
                            media.update(SessionParams::from_negotiated(
                                &self.negotiated,
                                self.ctx.inactivity_timeout,
                            ));
                        }
                        tracing::info!(
                            direction = self.negotiated.local_direction.as_str(),
                            "re-INVITE answered"
                        );
                        self.ctx.sip.command(Command::AnswerReoffer {
                            leg: self.leg,
                            sdp: answer.into_bytes(),
                        });
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "re-INVITE offer refused");
                        self.ctx.sip.command(Command::RejectReoffer {
                            leg: self.leg,
                            status: 488,
                        });
                    }
                }
            }
            LegEvent::Info {
                content_type,
                body,
                at,
                ..
            } => {
                if let Some((digit, _)) = parse_info_digit(&content_type, &body) {
                    self.on_digit(at, digit, DigitMethod::Info);
                }
            }
            LegEvent::Terminated { reason, .. } => return Some(end_reason(&reason)),
            LegEvent::ByeCompleted { .. } => return Some("local_bye"),
            LegEvent::ReferAnswered { status, .. } => {
                let accepted = status.is_some_and(|s| (200..300).contains(&s));
                tracing::info!(?status, "REFER answered");
                if !accepted && self.transferring {
                    self.ctx.sip.command(Command::Hangup { leg: self.leg });
                    return Some("transfer_failed");
                }
            }
            LegEvent::TransferProgress { status, .. } => {
                tracing::info!(status, "transfer progress");
                if self.transferring && status >= 200 {
                    // Connected or failed: either way this leg is done (RFC 5589 §6.1).
                    self.ctx.sip.command(Command::Hangup { leg: self.leg });
                    return Some(if status < 300 {
                        "transferred"
                    } else {
                        "transfer_failed"
                    });
                }
            }
            // Outbound-only events: an inbound leg never gets them.
            LegEvent::Incoming(_)
            | LegEvent::Progress { .. }
            | LegEvent::Answered { .. }
            | LegEvent::Failed { .. } => {}
        }
        None
    }

    /// What the media worker said. Returns `Some(end_reason)` when the call must end.
    fn on_media(&mut self, notice: Option<MediaNotice>) -> Option<&'static str> {
        let Some(notice) = notice else {
            // The worker is gone (it only stops after the calls at shutdown).
            tracing::error!("media worker gone; hanging up");
            self.ctx.sip.command(Command::Hangup { leg: self.leg });
            return Some("media_failed");
        };
        match notice {
            MediaNotice::Digit(d) => self.on_digit(d.at, d.digit, DigitMethod::Rfc4733),
            MediaNotice::PromptFinished {
                epoch,
                id,
                frames_sent,
            } => {
                self.record.prompts.push(PromptPlay {
                    id,
                    frames_sent,
                    completed: true,
                });
                // A prompt of an earlier playback finished while our barge-in was on its
                // way to the worker: recorded (it did play out), but not the engine's.
                let current = self.media.as_ref().is_some_and(|m| m.epoch() == epoch);
                if current && self.pending_prompts > 0 {
                    self.pending_prompts -= 1;
                    if self.pending_prompts == 0
                        && let Some(engine) = self.engine.as_mut()
                    {
                        engine.handle(now(), Input::PromptsFinished);
                    }
                }
            }
            MediaNotice::PromptStopped { id, frames_sent } => {
                self.record.prompts.push(PromptPlay {
                    id,
                    frames_sent,
                    completed: false,
                });
            }
            MediaNotice::Inactive => {
                tracing::info!("no RTP received; hanging up");
                self.ctx.sip.command(Command::Hangup { leg: self.leg });
                return Some("rtp_timeout");
            }
            MediaNotice::Failed => {
                tracing::error!("no media session for this call; hanging up");
                self.ctx.sip.command(Command::Hangup { leg: self.leg });
                return Some("media_failed");
            }
        }
        None
    }

    fn on_digit(&mut self, at: Instant, digit: char, method: DigitMethod) {
        tracing::info!(digit = %digit, method = method.as_str(), "DTMF");
        self.record.push_digit(digit, method);
        self.dirty = true;
        if let Some(engine) = self.engine.as_mut() {
            engine.handle(at, Input::Digit(digit));
        }
    }

    /// Carries out the engine's outputs; keeps the active record current. Returns
    /// `Some(end_reason)` when the call ends.
    fn pump(&mut self) -> Option<&'static str> {
        let t = now();
        let mut ended = None;
        while let Some(output) = self.engine.as_mut().and_then(|e| e.poll_output()) {
            match output {
                Output::Play(ids) => self.play(t, ids),
                Output::StopPlayback => {
                    self.pending_prompts = 0;
                    if let Some(media) = self.media.as_mut() {
                        media.stop();
                    }
                }
                Output::RunAction { name, vars } => {
                    tracing::info!(action = %name, "running action");
                    let actions = self.ctx.actions.clone();
                    let call = self.action_call.clone();
                    let tx = self.action_tx.clone();
                    self.actions_running += 1;
                    tokio::spawn(
                        async move {
                            let result = actions.run(&name, &call, &vars).await;
                            let _ = tx.send(result);
                        }
                        .in_current_span(),
                    );
                }
                Output::Transfer { to } => {
                    let target = if to.starts_with("sip:") || to.starts_with("sips:") {
                        to
                    } else {
                        format!("sip:{to}@{}", self.transfer_host)
                    };
                    tracing::info!(%target, "transferring with REFER");
                    self.transferring = true;
                    self.ctx.sip.command(Command::Refer {
                        leg: self.leg,
                        target,
                    });
                }
                Output::Hangup => {
                    if let Some(err) = self.engine.as_ref().and_then(|e| e.error()) {
                        tracing::error!(error = %err, "dialplan ended on its error path");
                    }
                    tracing::info!("dialplan finished; hanging up");
                    self.ctx.sip.command(Command::Hangup { leg: self.leg });
                    ended = Some("local_bye");
                    break;
                }
            }
        }
        let node = self.engine.as_ref().and_then(|e| e.current_node());
        if node.is_some() && node != self.record.ivr_node.as_deref() {
            self.record.ivr_node = node.map(str::to_string);
            self.dirty = true;
        }
        if self.dirty {
            self.dirty = false;
            self.ctx.log.upsert_active(&self.record);
        }
        ended
    }

    /// Queues the engine's prompts on the media session; the engine hears
    /// `PromptsFinished` once all of them have played.
    fn play(&mut self, t: Instant, ids: Vec<String>) {
        let Some(media) = self.media.as_mut() else {
            return;
        };
        let prompts: Vec<_> = ids
            .iter()
            .filter_map(|id| {
                let prompt = self.ctx.prompts.get(id);
                if prompt.is_none() {
                    // Compiled plans only name prompts that exist; a prompt file removed
                    // since start-up is skipped rather than leaving the caller in silence.
                    tracing::error!(prompt = %id, "prompt missing; skipped");
                }
                prompt
            })
            .collect();
        self.pending_prompts = prompts.len();
        if prompts.is_empty() {
            if let Some(engine) = self.engine.as_mut() {
                engine.handle(t, Input::PromptsFinished);
            }
        } else {
            media.play(prompts);
        }
    }

    async fn finish(mut self, reason: &'static str) -> CallRecord {
        // The caller may hang up while an action writes (a registration, an opt-out):
        // its result still belongs to this call.
        while self.actions_running > 0 {
            if self.action_rx.recv().await.is_none() {
                break;
            }
            self.actions_running -= 1;
        }
        if let Some(media) = self.media.take() {
            let fin = media.close().await;
            // The notices sent before the session was removed: prompts that finished or
            // were stopped while the call was ending.
            while let Ok(notice) = self.notices.try_recv() {
                match notice {
                    MediaNotice::PromptFinished {
                        id, frames_sent, ..
                    } => self.record.prompts.push(PromptPlay {
                        id,
                        frames_sent,
                        completed: true,
                    }),
                    MediaNotice::PromptStopped { id, frames_sent } => {
                        self.record.prompts.push(PromptPlay {
                            id,
                            frames_sent,
                            completed: false,
                        })
                    }
                    _ => {}
                }
            }
            if let Some(MediaFinal { stats, cut_short }) = fin {
                if let Some((id, frames_sent)) = cut_short {
                    self.record.prompts.push(PromptPlay {
                        id,
                        frames_sent,
                        completed: false,
                    });
                }
                self.record.absorb_media(&stats);
            }
        }
        if let Some(engine) = self.engine.as_ref() {
            self.record.ivr_path = engine.path().to_vec();
        }
        file_record(&self.ctx, self.record, reason).await
    }
}

fn store_row(r: &CallRecord) -> CallRecordRow {
    let ts = |t: Option<SystemTime>| t.and_then(|t| jiff::Timestamp::try_from(t).ok());
    let disposition = match (r.disposition.and_then(|d| d.parse().ok()), r.final_status) {
        (Some(d), _) => d,
        (None, Some(code)) => Disposition::from_sip_status(code),
        (None, None) => Disposition::Failed,
    };
    CallRecordRow {
        call_id: r.call_id.clone(),
        direction: if r.direction == CallDirection::Outbound.as_str() {
            CallDirection::Outbound
        } else {
            CallDirection::Inbound
        },
        caller: r.caller.as_deref().map(|c| {
            tongdai_domain::program::normalize_msisdn(c).unwrap_or_else(|_| c.to_string())
        }),
        called: r.called.clone(),
        started_at: ts(Some(r.started_at)).unwrap_or_else(jiff::Timestamp::now),
        answered_at: ts(r.answered_at),
        ended_at: ts(r.ended_at),
        final_status: r.final_status,
        disposition,
        end_reason: r.end_reason.clone(),
        digits: r.digits.clone(),
        ivr_path: r.ivr_path.clone(),
        prompts: r.prompts.iter().map(|p| p.id.clone()).collect(),
        campaign_id: r.campaign_id,
        attempt_id: r.attempt_id,
    }
}

fn end_reason(reason: &EndReason) -> &'static str {
    match reason {
        EndReason::Cancelled => "cancelled",
        EndReason::RemoteBye => "remote_bye",
        EndReason::AckTimeout => "ack_timeout",
    }
}
