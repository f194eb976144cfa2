//! One inbound call under tokio: the only place where a leg (SIP events), a media
//! session (RTP) and the call flow meet. Everything here is glue: the decisions live in
//! the sans-IO `MediaSession` and `DemoFlow`, this task just feeds them events and `now`
//! and carries out their outputs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::actions::{ActionCall, ActionResult, ProgramActions};
use super::ports::RtpPort;
use super::record::{CallLog, CallRecord, PromptPlay};
use crate::ivr::{CompiledPlan, Engine, Input, Output};
use crate::media::sdp::{self, LocalMedia, Negotiated};
use crate::media::{MediaEvent, MediaSession, PromptCache, SessionParams, parse_info_digit};
use crate::program::Channel;
use crate::sip::transport::SipHandle;
use crate::sip::{Command, EndReason, IncomingCall, LegEvent, LegId};
use crate::store::{CallDirection, CallRecordRow, Disposition, Store};
use crate::telemetry::mask_number;

/// What every call needs from the service, shared.
#[derive(Clone)]
pub struct CallContext {
    pub sip: SipHandle,
    pub prompts: PromptCache,
    pub log: CallLog,
    pub advertised_ip: std::net::IpAddr,
    pub answer_delay: Duration,
    pub inactivity_timeout: Duration,
    pub actions: ProgramActions,
    pub store: Store,
    pub shutdown: CancellationToken,
    pub shutdown_grace: Duration,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs one call to its end and files its record.
pub async fn run_inbound(
    ctx: Arc<CallContext>,
    call: IncomingCall,
    plan: Arc<CompiledPlan>,
    negotiated: Negotiated,
    port: RtpPort,
    events: mpsc::UnboundedReceiver<LegEvent>,
) {
    let caller = call.caller.as_deref().map(mask_number).unwrap_or_default();
    let span = tracing::info_span!("call", call_id = %call.call_id, leg = call.leg, caller = %caller,
        called = call.called.as_deref().unwrap_or(""), direction = "inbound");
    let mut record = CallRecord::new(
        call.call_id.clone(),
        call.leg,
        call.caller.clone(),
        call.called.clone(),
    );
    record.dialplan = Some(plan.name().to_string());
    let (action_tx, action_rx) = mpsc::unbounded_channel();
    let mut c = InboundCall {
        ctx,
        leg: call.leg,
        action_call: ActionCall {
            caller: call.caller.clone(),
            call_id: call.call_id.clone(),
            channel: Channel::Hotline,
            ..Default::default()
        },
        transfer_host: call.flow.remote(),
        record,
        plan,
        negotiated,
        port,
        events,
        media: None,
        engine: None,
        pending_prompts: 0,
        action_tx,
        action_rx,
        transferring: false,
        shutdown_deadline: None,
        session_version: 1,
    };
    async move {
        tracing::info!("incoming call");
        c.ctx.log.upsert_active(&c.record);
        let reason = c.run().await;
        c.finish(reason).await;
    }
    .instrument(span)
    .await
}

struct InboundCall {
    ctx: Arc<CallContext>,
    leg: LegId,
    action_call: ActionCall,
    /// Where the call came from (the trunk): a REFER target without a host goes there.
    transfer_host: SocketAddr,
    record: CallRecord,
    plan: Arc<CompiledPlan>,
    negotiated: Negotiated,
    port: RtpPort,
    events: mpsc::UnboundedReceiver<LegEvent>,
    media: Option<MediaSession>,
    engine: Option<Engine>,
    /// Prompts of the engine's last `Play` still to finish.
    pending_prompts: usize,
    action_tx: mpsc::UnboundedSender<ActionResult>,
    action_rx: mpsc::UnboundedReceiver<ActionResult>,
    /// A REFER is out; the call ends when the transfer succeeds or fails.
    transferring: bool,
    shutdown_deadline: Option<Instant>,
    session_version: u64,
}

impl InboundCall {
    fn local_media(&self) -> LocalMedia {
        LocalMedia {
            addr: self.ctx.advertised_ip,
            port: self.port.port(),
            session_id: self.leg,
            session_version: self.session_version,
        }
    }

    fn session_params(&self) -> SessionParams {
        SessionParams {
            codec: self.negotiated.codec,
            codec_pt: self.negotiated.codec_pt,
            telephone_event_pt: self.negotiated.telephone_event_pt,
            remote: self.negotiated.remote_rtp,
            local_direction: self.negotiated.local_direction,
            inactivity_timeout: self.ctx.inactivity_timeout,
        }
    }

    async fn run(&mut self) -> &'static str {
        // --- ringing, then answer after the configured ring time ----------------------
        self.ctx.sip.command(Command::Ringing { leg: self.leg });
        let answer_at = tokio::time::Instant::now() + self.ctx.answer_delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(answer_at) => break,
                ev = self.events.recv() => match ev {
                    Some(LegEvent::Terminated { reason, .. }) => {
                        self.record.final_status = Some(487);
                        return end_reason(&reason);
                    }
                    None => return "shutdown",
                    Some(_) => {}
                },
                _ = self.ctx.shutdown.cancelled() => {
                    self.ctx.sip.command(Command::Reject { leg: self.leg, status: 503 });
                    self.record.final_status = Some(503);
                    return "shutdown";
                }
            }
        }
        let answer = sdp::render_answer(&self.negotiated, &self.local_media());
        self.ctx.sip.command(Command::Answer {
            leg: self.leg,
            sdp: answer.into_bytes(),
        });
        self.record.final_status = Some(200);
        self.record.answered_at = Some(SystemTime::now());
        self.record.codec = Some(self.negotiated.codec.name().to_string());
        self.record.telephone_event_pt = self.negotiated.telephone_event_pt;
        self.media = Some(MediaSession::new(now(), self.session_params()));
        self.ctx.log.upsert_active(&self.record);

        // --- the call proper ----------------------------------------------------------
        let socket = self.port.socket();
        let mut packet = Vec::with_capacity(256);
        let mut recv_buf = vec![0u8; 2048];
        loop {
            let deadline = self.next_deadline();
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
                Some(result) = self.action_rx.recv() => {
                    tracing::info!(outcome = %result.outcome, "action result");
                    if let Some(engine) = self.engine.as_mut() {
                        engine.handle(now(), Input::ActionResult { outcome: result.outcome, vars: result.vars });
                    }
                },
                r = socket.recv_from(&mut recv_buf) => {
                    if let Ok((n, from)) = r
                        && let Some(media) = self.media.as_mut()
                    {
                        media.handle_rtp(now(), from, recv_buf.get(..n).unwrap_or_default());
                    }
                },
                _ = sleep => {
                    let t = now();
                    if let Some(media) = self.media.as_mut() {
                        media.handle_timeout(t);
                    }
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
            if let Some(reason) = self.pump(&socket, &mut packet).await {
                return reason;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.media.as_ref().and_then(|m| m.poll_timeout()),
            self.engine.as_ref().and_then(|e| e.poll_timeout()),
            self.shutdown_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Returns `Some(end_reason)` when the leg is gone.
    fn on_leg_event(&mut self, ev: LegEvent) -> Option<&'static str> {
        let t = now();
        match ev {
            LegEvent::Confirmed { .. } => {
                tracing::debug!(
                    dialplan = self.plan.name(),
                    "ACK received; starting the dialplan"
                );
                let mut vars = std::collections::BTreeMap::new();
                if let Some(caller) = &self.action_call.caller {
                    vars.insert("caller".to_string(), caller.clone());
                }
                let mut engine = Engine::new(self.plan.clone(), vars);
                engine.start(t);
                self.engine = Some(engine);
            }
            LegEvent::Reoffer { sdp, .. } => {
                self.record.reoffers += 1;
                match sdp::negotiate(&sdp) {
                    Ok(neg) => {
                        self.negotiated = neg;
                        self.session_version += 1;
                        let answer = sdp::render_answer(&self.negotiated, &self.local_media());
                        let params = self.session_params();
                        if let Some(media) = self.media.as_mut() {
                            media.update(t, params);
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
                    self.on_digit(at, digit, "info");
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

    fn on_digit(&mut self, at: Instant, digit: char, method: &'static str) {
        tracing::info!(digit = %digit, method, "DTMF");
        self.record.digits.push(digit);
        if let Some(engine) = self.engine.as_mut() {
            engine.handle(at, Input::Digit(digit));
        }
    }

    /// Sends due RTP, moves media events into the flow and flow actions into media/SIP.
    async fn pump(&mut self, socket: &UdpSocket, packet: &mut Vec<u8>) -> Option<&'static str> {
        loop {
            let t = now();
            let mut progressed = false;
            if let Some(media) = self.media.as_mut() {
                while let Some(dest) = media.poll_transmit(t, packet) {
                    send_rtp(socket, packet, dest).await;
                }
            }
            while let Some(ev) = self.media.as_mut().and_then(|m| m.poll_event()) {
                progressed = true;
                match ev {
                    MediaEvent::Digit(d) => self.on_digit(d.at, d.digit, "rfc4733"),
                    MediaEvent::PromptFinished { id, frames_sent } => {
                        self.record.prompts.push(PromptPlay {
                            id,
                            frames_sent,
                            completed: true,
                        });
                        self.pending_prompts = self.pending_prompts.saturating_sub(1);
                        if self.pending_prompts == 0
                            && let Some(engine) = self.engine.as_mut()
                        {
                            engine.handle(t, Input::PromptsFinished);
                        }
                    }
                    MediaEvent::Inactive => {
                        tracing::info!("no RTP received; hanging up");
                        self.ctx.sip.command(Command::Hangup { leg: self.leg });
                        return Some("rtp_timeout");
                    }
                }
            }
            while let Some(output) = self.engine.as_mut().and_then(|e| e.poll_output()) {
                progressed = true;
                match output {
                    Output::Play(ids) => self.play(t, ids),
                    Output::StopPlayback => {
                        self.pending_prompts = 0;
                        if let Some(media) = self.media.as_mut()
                            && let Some((id, frames_sent)) = media.stop_playback()
                        {
                            self.record.prompts.push(PromptPlay {
                                id,
                                frames_sent,
                                completed: false,
                            });
                        }
                    }
                    Output::RunAction { name, vars } => {
                        tracing::info!(action = %name, "running action");
                        let actions = self.ctx.actions.clone();
                        let call = self.action_call.clone();
                        let tx = self.action_tx.clone();
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
                        return Some("local_bye");
                    }
                }
            }
            if !progressed {
                return None;
            }
        }
    }

    /// Queues the engine's prompts on the media session; the engine hears
    /// `PromptsFinished` once all of them have played.
    fn play(&mut self, t: Instant, ids: Vec<String>) {
        let Some(media) = self.media.as_mut() else {
            return;
        };
        let mut queued = 0;
        for id in &ids {
            match self.ctx.prompts.get(id) {
                Some(prompt) if queued == 0 => {
                    media.play(t, prompt);
                    queued += 1;
                }
                Some(prompt) => {
                    media.enqueue(prompt);
                    queued += 1;
                }
                // Compiled plans only name prompts that exist; a prompt file removed
                // since start-up is skipped rather than leaving the caller in silence.
                None => tracing::error!(prompt = %id, "prompt missing; skipped"),
            }
        }
        self.pending_prompts = queued;
        if queued == 0
            && let Some(engine) = self.engine.as_mut()
        {
            engine.handle(t, Input::PromptsFinished);
        }
    }

    async fn finish(&mut self, reason: &'static str) {
        if let Some(media) = self.media.as_mut() {
            if let Some((id, frames_sent)) = media.stop_playback() {
                self.record.prompts.push(PromptPlay {
                    id,
                    frames_sent,
                    completed: false,
                });
            }
            self.record.absorb_media(media.stats());
        }
        self.record.end_reason = reason.to_string();
        self.record.ended_at = Some(SystemTime::now());
        if let Some(engine) = self.engine.as_ref() {
            self.record.ivr_path = engine.path().to_vec();
        }
        let row = self.store_row();
        if let Err(e) = self.ctx.store.insert_call_record(&row).await {
            tracing::error!(error = %e, "call record not stored");
        }
        tracing::info!(
            reason,
            digits = %self.record.digits,
            prompts = self.record.prompts.len(),
            rtp_sent = self.record.rtp_packets_sent,
            rtp_received = self.record.rtp_packets_received,
            "call ended"
        );
        self.ctx.log.finish(self.record.clone());
    }
}

impl InboundCall {
    fn store_row(&self) -> CallRecordRow {
        let r = &self.record;
        let ts = |t: Option<SystemTime>| t.and_then(|t| jiff::Timestamp::try_from(t).ok());
        let disposition = match r.final_status {
            Some(code) => Disposition::from_sip_status(code),
            None => Disposition::Failed,
        };
        CallRecordRow {
            call_id: r.call_id.clone(),
            direction: CallDirection::Inbound,
            caller: r
                .caller
                .as_deref()
                .map(|c| crate::program::normalize_msisdn(c).unwrap_or_else(|_| c.to_string())),
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
            campaign_id: None,
            attempt_id: None,
        }
    }
}

fn end_reason(reason: &EndReason) -> &'static str {
    match reason {
        EndReason::Cancelled => "cancelled",
        EndReason::RemoteBye => "remote_bye",
        EndReason::AckTimeout => "ack_timeout",
    }
}

async fn send_rtp(socket: &UdpSocket, packet: &[u8], dest: SocketAddr) {
    if let Err(e) = socket.send_to(packet, dest).await {
        tracing::trace!(error = %e, %dest, "rtp send failed");
    }
}
