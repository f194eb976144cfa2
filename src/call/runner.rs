//! Call tasks under tokio: the shell around a [`CallSession`]. The session decides
//! everything about a call (see `session`); a call task owns what it cannot: the leg's
//! event channel, the media worker's handle and notices, the tasks running the program's
//! actions, the timer, the clock and the store. It waits for the next of these, reads
//! the clock, feeds the session and carries out what the session asks.
//!
//! A call has two phases:
//!
//! * **before answer** — direction-specific. Inbound ([`run_inbound`]): the session
//!   rings, answers after `sip.answer_delay`, or ends on CANCEL/shutdown. Outbound
//!   (`outbound`): the INVITE goes out with
//!   [`render_offer`](tongdai_media::sdp::render_offer), the answer is accepted with
//!   [`accept_answer`](tongdai_media::sdp::accept_answer).
//! * **answered** — the same for both: [`run_answered`] with a [`CallSetup`]. The RTP
//!   socket goes to a media worker, then the dialplan, the program's actions and the
//!   in-dialog SIP events (re-INVITE, INFO digits, BYE, REFER progress) run until the
//!   call ends; then the [`CallRecord`] is filed ([`file_record`]).
//!
//! The call task does not send RTP: its media session lives in a media worker
//! (`media::worker`) and the task talks to it through a [`MediaHandle`]. So the task
//! wakes only when something happens on the call (a SIP event, a digit, a prompt
//! finished, an action's result, a timer), not every 20 ms.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::actions::{ActionCall, ActionResult, ProgramActions};
use super::ports::RtpPort;
use super::record::{CallLog, CallRecord, system_time};
use super::session::{CallSession, DialplanStart, Input, Now, Output, SessionSetup};
use crate::clock::SharedClock;
use crate::media::{MediaHandle, MediaWorkers};
use crate::sip::transport::SipHandle;
use crate::store::{CallDirection, CallRecordRow, Disposition, Store};
use crate::telemetry::mask_number;
use tongdai_ivr::CompiledPlan;
use tongdai_media::sdp::{LocalMedia, Negotiated};
use tongdai_media::{MediaNotice, PromptCache};
use tongdai_sip::{IncomingCall, LegEvent, LegId};

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
    /// The service's one clock: the only time the call tasks read.
    pub clock: SharedClock,
}

/// `Some(lag)` while the media workers send further behind their frame slots than
/// `max_send_lag` (`rtp.max_send_lag`; zero: never): no new calls then (inbound 503,
/// campaigns hold), so that the calls already up keep their audio.
pub fn media_overloaded(media: &MediaWorkers, max_send_lag: Duration) -> Option<Duration> {
    let lag = media.send_lag();
    (!max_send_lag.is_zero() && lag > max_send_lag).then_some(lag)
}

impl CallContext {
    /// See [`media_overloaded`].
    pub fn media_overloaded(&self) -> Option<Duration> {
        media_overloaded(&self.media, self.max_send_lag)
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

    /// Both readings of the service's clock, for a session's input.
    pub fn now(&self) -> Now {
        Now {
            monotonic: self.clock.monotonic(),
            wall: self.clock.now(),
        }
    }

    /// Waits until `deadline` on the service's clock (forever for `None`). The wait is
    /// measured on that clock and slept on tokio's timer, which runs on the same
    /// monotonic time as the system clock; a clock that stands still (a test's) makes
    /// each wait last its full length again rather than spin.
    pub async fn sleep_until(&self, deadline: Option<Instant>) {
        match deadline {
            Some(at) => {
                let wait = at.saturating_duration_since(self.clock.monotonic());
                tokio::time::sleep(wait).await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Everything a call task needs, whichever side sent the INVITE.
pub struct CallSetup {
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
    /// Our RTP port, the one in the SDP we sent or will send (rendered with
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

impl CallSetup {
    /// The session's part of the call and the task's.
    fn split(self, ctx: Arc<CallContext>) -> (SessionSetup, CallRecord, CallTask) {
        let setup = SessionSetup {
            leg: self.leg,
            plan: self.plan,
            prompts: ctx.prompts.clone(),
            caller: self.action_call.caller.clone(),
            negotiated: self.negotiated,
            local: ctx.local_media(self.sdp_session, self.port.port(), 1),
            transfer_host: self.transfer_host,
            start: self.start,
            inactivity_timeout: ctx.inactivity_timeout,
            shutdown_grace: ctx.shutdown_grace,
        };
        let (action_tx, action_rx) = mpsc::unbounded_channel();
        let task = CallTask {
            ctx,
            action_call: self.action_call,
            port: Some(self.port),
            events: Some(self.events),
            media: None,
            notices: None,
            action_tx,
            action_rx,
            shutdown_told: false,
        };
        (setup, self.record, task)
    }
}

/// Runs one inbound call to its end and files its record.
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
    async move {
        tracing::info!("incoming call");
        let now = ctx.now();
        let record = CallRecord::new(
            call.call_id.clone(),
            call.leg,
            call.caller.clone(),
            call.called.clone(),
            system_time(now.wall),
        );
        let setup = CallSetup {
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
        let answer_delay = ctx.answer_delay;
        let (setup, record, task) = setup.split(ctx);
        let session = CallSession::inbound(setup, record, answer_delay, now);
        task.drive(session).await;
    }
    .instrument(span)
    .await
}

/// The answered phase of a call whose 2xx is already in (outbound): media, dialplan,
/// actions and in-dialog SIP events until the call ends; then the record is filed
/// (store and `CallLog`) and returned. Runs in the caller's tracing span.
pub async fn run_answered(ctx: Arc<CallContext>, call: CallSetup) -> CallRecord {
    let now = ctx.now();
    let (setup, record, task) = call.split(ctx);
    task.drive(CallSession::answered(setup, record, now)).await
}

/// Files a finished record: the store's call records and the in-memory `CallLog`. Also
/// for calls that were never answered.
pub async fn file_record(ctx: &CallContext, record: CallRecord) -> CallRecord {
    let row = store_row(&record, ctx.clock.now());
    if let Err(e) = ctx.store.insert_call_record(&row).await {
        tracing::error!(error = %e, "call record not stored");
    }
    tracing::info!(
        reason = record.end_reason,
        digits = %record.digits,
        prompts = record.prompts.len(),
        rtp_sent = record.rtp_packets_sent,
        rtp_received = record.rtp_packets_received,
        "call ended"
    );
    ctx.log.finish(record.clone());
    record
}

/// The I/O side of one call: channels, media handle, action tasks.
struct CallTask {
    ctx: Arc<CallContext>,
    action_call: ActionCall,
    /// Ours until the media session starts; then the socket is the media worker's.
    port: Option<RtpPort>,
    /// `None` once the SIP driver closed it.
    events: Option<mpsc::UnboundedReceiver<LegEvent>>,
    /// `None` before the media session starts and once it is closed.
    media: Option<MediaHandle>,
    notices: Option<mpsc::UnboundedReceiver<MediaNotice>>,
    action_tx: mpsc::UnboundedSender<ActionResult>,
    action_rx: mpsc::UnboundedReceiver<ActionResult>,
    shutdown_told: bool,
}

/// What woke a call task.
enum Woke {
    Leg(Option<LegEvent>),
    Media(Option<MediaNotice>),
    Action(ActionResult),
    Timer,
    Shutdown,
}

/// The next message of a channel, or never once it is gone.
async fn recv<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl CallTask {
    /// Runs the session to its end; returns the filed record.
    async fn drive(mut self, mut session: CallSession) -> CallRecord {
        loop {
            while let Some(output) = session.poll_output() {
                if let Some(record) = self.carry_out(&mut session, output).await {
                    return record;
                }
            }
            let woke = tokio::select! {
                ev = recv(&mut self.events) => Woke::Leg(ev),
                notice = recv(&mut self.notices) => Woke::Media(notice),
                Some(result) = self.action_rx.recv() => Woke::Action(result),
                () = self.ctx.sleep_until(session.poll_timeout()) => Woke::Timer,
                () = self.ctx.shutdown.cancelled(), if !self.shutdown_told => Woke::Shutdown,
            };
            let input = match woke {
                Woke::Leg(Some(ev)) => Input::Leg(ev),
                Woke::Leg(None) => {
                    self.events = None;
                    Input::LegGone
                }
                Woke::Media(Some(notice)) => Input::Media(notice),
                Woke::Media(None) => {
                    self.notices = None;
                    Input::MediaGone
                }
                Woke::Action(result) => Input::ActionFinished {
                    outcome: result.outcome,
                    vars: result.vars,
                },
                Woke::Timer => {
                    session.handle_timeout(self.ctx.now());
                    continue;
                }
                Woke::Shutdown => {
                    self.shutdown_told = true;
                    Input::Shutdown
                }
            };
            session.handle(self.ctx.now(), input);
        }
    }

    /// Carries out one output; `Some(record)` once the record is filed.
    async fn carry_out(&mut self, session: &mut CallSession, output: Output) -> Option<CallRecord> {
        match output {
            Output::Sip(command) => self.ctx.sip.command(command),
            Output::StartMedia(params) => {
                if let Some(port) = self.port.take() {
                    let (media, notices) = self.ctx.media.add(params, port.into_socket());
                    self.media = Some(media);
                    self.notices = Some(notices);
                }
            }
            Output::UpdateMedia(params) => {
                if let Some(media) = &self.media {
                    media.update(params);
                }
            }
            Output::PlayPrompts { epoch, prompts } => {
                if let Some(media) = self.media.as_mut() {
                    let played = media.play(prompts);
                    debug_assert_eq!(played, epoch, "the session mirrors the handle's epochs");
                }
            }
            Output::StopPrompts { epoch } => {
                if let Some(media) = self.media.as_mut() {
                    let stopped = media.stop();
                    debug_assert_eq!(stopped, epoch, "the session mirrors the handle's epochs");
                }
            }
            Output::StartAction { name, vars } => {
                // Actions run in their own task: a slow store never holds up the call.
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
            Output::PublishRecord => self.ctx.log.upsert_active(session.record()),
            Output::CloseMedia => self.close_media(session).await,
            Output::FileRecord(record) => return Some(file_record(&self.ctx, *record).await),
        }
        None
    }

    /// Removes the media session and tells the session what it did: first the notices
    /// it sent before it went (prompts that finished or were stopped while the call was
    /// ending), then its final counters.
    async fn close_media(&mut self, session: &mut CallSession) {
        let fin = match self.media.take() {
            Some(media) => media.close().await,
            None => None,
        };
        if let Some(mut notices) = self.notices.take() {
            while let Ok(notice) = notices.try_recv() {
                session.handle(self.ctx.now(), Input::Media(notice));
            }
        }
        session.handle(self.ctx.now(), Input::MediaClosed(fin));
    }
}

/// The store's row of a finished record. `now` stands in for a start time the store
/// cannot represent.
fn store_row(r: &CallRecord, now: jiff::Timestamp) -> CallRecordRow {
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
        started_at: ts(Some(r.started_at)).unwrap_or(now),
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
