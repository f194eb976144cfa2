//! One call's decisions, sans-IO: [`CallSession`].
//!
//! A call task (`runner`, `outbound`) owns the sockets, channels and timers of a call;
//! this is what it asks about everything that happens on it. The session is fed the
//! leg's SIP events, the media worker's notices, the results of the dialplan's actions,
//! the service's shutdown and its own timers, each with the [`Now`] the task read from
//! the service's clock, and answers with [`Output`]s for the task to carry out (a SIP
//! command, a prompt to play or stop, an action to start, the record to publish or
//! file). It never reads a clock, sleeps or touches a socket, so a whole call ("a digit
//! barges into the greeting, the caller hangs up while the registration is written") is
//! a unit test of microseconds.
//!
//! What it decides:
//!
//! * **Ringing** (inbound only): 180 at once, the 200 with our SDP answer after
//!   `sip.answer_delay`; a CANCEL (487) or the shutdown (503) ends the call first.
//! * **Prompt playback epochs.** Every play and stop starts a new epoch, mirroring the
//!   [`MediaHandle`](crate::media::MediaHandle)'s count; a `PromptFinished` of an older
//!   epoch crossed a barge-in on its way from the media worker: it is recorded (it did
//!   play out) but is not the engine's.
//! * **Digits** from RFC 4733 and SIP INFO alike go to the IVR engine (which decides on
//!   barge-in) and into the record, counted per method.
//! * **Actions**: started on the engine's word, their results fed back; a call that ends
//!   while one runs waits for it, since its result (a registration, an opt-out) belongs
//!   to this call's record and, outbound, to the campaign attempt.
//! * **In-dialog SIP**: re-INVITEs answered (or 488), REFER/NOTIFY progress of a blind
//!   transfer, BYE either way.
//! * **Hang-up**: the dialplan's end, RTP inactivity, a lost media session, a finished or
//!   failed transfer, the end of the shutdown grace.
//! * **The record's content**: dialplan, current `ivr_node` (published whenever it or the
//!   digits change, so supervisors see where each caller is), digits, prompts played,
//!   codec, answer and end times from the `now` fed, end reason, the nodes visited.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::record::{CallRecord, DigitMethod, PromptPlay, system_time};
use tongdai_ivr::{CompiledPlan, Engine, Input as EngineInput, Output as EngineOutput};
use tongdai_media::sdp::{self, LocalMedia, Negotiated};
use tongdai_media::{
    MediaFinal, MediaNotice, Prompt, PromptCache, SessionParams, parse_info_digit,
};
use tongdai_sip::{Command, EndReason, LegEvent, LegId};

/// The time as the call task read it from the service's clock, both readings at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// For the dialplan's timers, the answer delay and the shutdown grace.
    pub monotonic: Instant,
    /// For the record's answer and end times.
    pub wall: Timestamp,
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

/// What a session is made of, whichever side sent the INVITE.
pub struct SessionSetup {
    pub leg: LegId,
    /// The dialplan to run (the call keeps it across reloads).
    pub plan: Arc<CompiledPlan>,
    /// Where the dialplan's prompt ids are looked up when played.
    pub prompts: PromptCache,
    /// The subscriber's number: the dialplan's `caller` variable.
    pub caller: Option<String>,
    /// The offer/answer outcome (`sdp::negotiate` of an inbound offer, or
    /// `sdp::accept_answer` of the callee's answer to our offer).
    pub negotiated: Negotiated,
    /// Our side of the SDP as first sent (version 1); re-INVITE answers count up from it.
    pub local: LocalMedia,
    /// Where a transfer target given as a bare number goes (`sip:NUMBER@host`): the
    /// trunk the call came in on or went out through.
    pub transfer_host: SocketAddr,
    pub start: DialplanStart,
    /// `rtp.inactivity_timeout`, for the media session's parameters.
    pub inactivity_timeout: Duration,
    /// `shutdown.grace`: how long an answered call may go on once the service drains.
    pub shutdown_grace: Duration,
}

/// What happened on the call.
#[derive(Debug)]
pub enum Input {
    /// An event of the leg from the SIP driver.
    Leg(LegEvent),
    /// The leg's event channel closed: the SIP driver is gone.
    LegGone,
    /// A notice from the media worker.
    Media(MediaNotice),
    /// The media worker's notice channel closed while the call was up.
    MediaGone,
    /// The media session is removed (the answer to [`Output::CloseMedia`]): what it did.
    /// The notices it sent before are fed first, as [`Input::Media`].
    MediaClosed(Option<MediaFinal>),
    /// The result of an action started with [`Output::StartAction`].
    ActionFinished {
        outcome: String,
        vars: Vec<(String, String)>,
    },
    /// The service drains: a ringing call is refused, an answered one gets the grace.
    Shutdown,
}

/// What the call task must do.
#[derive(Debug)]
pub enum Output {
    /// Send this to the SIP driver.
    Sip(Command),
    /// Hand the call's RTP port to a media worker with these parameters.
    StartMedia(SessionParams),
    /// The media changed (re-INVITE: hold, resume, new codec or address).
    UpdateMedia(SessionParams),
    /// Play these prompts from the next frame on, replacing what plays; the media
    /// handle's epoch after it is `epoch`.
    PlayPrompts {
        epoch: u32,
        prompts: Vec<Arc<Prompt>>,
    },
    /// Barge-in: stop the playback; the media handle's epoch after it is `epoch`.
    StopPrompts { epoch: u32 },
    /// Run this program action; answer with [`Input::ActionFinished`].
    StartAction {
        name: String,
        vars: BTreeMap<String, String>,
    },
    /// The active record changed in a way supervisors see: show [`CallSession::record`].
    PublishRecord,
    /// Remove the media session; answer with its notices and [`Input::MediaClosed`].
    CloseMedia,
    /// The call is over: file this record (store and call log). The last output.
    FileRecord(Box<CallRecord>),
}

enum Phase {
    /// Inbound: 180 sent; the 200 goes out at `answer_at`.
    Ringing { answer_at: Instant },
    /// Media and dialplan.
    Answered,
    /// The call is over; results of actions still running are awaited.
    Ending { reason: &'static str },
    /// The media session is being closed.
    Closing { reason: &'static str },
    /// The record is filed.
    Done,
}

/// One call's decisions; see the module doc.
pub struct CallSession {
    leg: LegId,
    plan: Arc<CompiledPlan>,
    prompts: PromptCache,
    caller: Option<String>,
    negotiated: Negotiated,
    local: LocalMedia,
    transfer_host: SocketAddr,
    start: DialplanStart,
    inactivity_timeout: Duration,
    shutdown_grace: Duration,
    record: CallRecord,
    phase: Phase,
    engine: Option<Engine>,
    media_started: bool,
    /// The epoch of the last play or stop, as the media handle counts it.
    epoch: u32,
    /// Prompts of the engine's last `Play` still to finish (in the current epoch).
    pending_prompts: usize,
    /// Actions started and not yet answered: the call is not over (nor its record
    /// filed, nor a campaign attempt finished) before their results are back.
    actions_running: usize,
    /// A REFER is out; the call ends when the transfer succeeds or fails.
    transferring: bool,
    shutdown_deadline: Option<Instant>,
    /// The record changed in a way supervisors should see (node, digits).
    dirty: bool,
    outputs: VecDeque<Output>,
}

impl CallSession {
    /// An inbound call: 180 now, answered after `answer_delay`. The record (numbers,
    /// start time) is published at once.
    pub fn inbound(
        setup: SessionSetup,
        record: CallRecord,
        answer_delay: Duration,
        now: Now,
    ) -> CallSession {
        let mut s = CallSession::new(setup, record);
        s.outputs.push_back(Output::PublishRecord);
        s.outputs
            .push_back(Output::Sip(Command::Ringing { leg: s.leg }));
        s.phase = Phase::Ringing {
            answer_at: now.monotonic + answer_delay,
        };
        s
    }

    /// A call answered already (outbound: the callee's 2xx is in and ACKed).
    pub fn answered(setup: SessionSetup, record: CallRecord, now: Now) -> CallSession {
        let mut s = CallSession::new(setup, record);
        s.answer(now);
        s
    }

    fn new(setup: SessionSetup, mut record: CallRecord) -> CallSession {
        record
            .dialplan
            .get_or_insert_with(|| setup.plan.name().to_string());
        CallSession {
            leg: setup.leg,
            plan: setup.plan,
            prompts: setup.prompts,
            caller: setup.caller,
            negotiated: setup.negotiated,
            local: setup.local,
            transfer_host: setup.transfer_host,
            start: setup.start,
            inactivity_timeout: setup.inactivity_timeout,
            shutdown_grace: setup.shutdown_grace,
            record,
            // Replaced by the constructors.
            phase: Phase::Answered,
            engine: None,
            media_started: false,
            epoch: 0,
            pending_prompts: 0,
            actions_running: 0,
            transferring: false,
            shutdown_deadline: None,
            dirty: false,
            outputs: VecDeque::new(),
        }
    }

    /// The record as it stands (what [`Output::PublishRecord`] asks to show).
    pub fn record(&self) -> &CallRecord {
        &self.record
    }

    /// The engine's current node, once the dialplan runs.
    pub fn ivr_node(&self) -> Option<&str> {
        self.engine.as_ref().and_then(|e| e.current_node())
    }

    /// Whether the record is filed: nothing more will come out.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`CallSession::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Ringing { answer_at } => Some(answer_at),
            Phase::Answered => [
                self.engine.as_ref().and_then(|e| e.poll_timeout()),
                self.shutdown_deadline,
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Ending { .. } | Phase::Closing { .. } | Phase::Done => None,
        }
    }

    /// A timer may be due: the answer, a dialplan timer, the end of the shutdown grace.
    /// Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Now) {
        match self.phase {
            Phase::Ringing { answer_at } if answer_at <= now.monotonic => {
                let answer = sdp::render_answer(&self.negotiated, &self.local);
                self.outputs.push_back(Output::Sip(Command::Answer {
                    leg: self.leg,
                    sdp: answer.into_bytes(),
                }));
                self.answer(now);
            }
            Phase::Answered => {
                if let Some(engine) = self.engine.as_mut() {
                    engine.handle_timeout(now.monotonic);
                }
                if self.shutdown_deadline.is_some_and(|d| d <= now.monotonic) {
                    tracing::info!("shutdown grace over; hanging up");
                    self.hang_up();
                    self.end(now, "shutdown");
                } else {
                    self.pump(now);
                }
            }
            _ => {}
        }
    }

    pub fn handle(&mut self, now: Now, input: Input) {
        match self.phase {
            Phase::Ringing { .. } => self.handle_ringing(now, input),
            Phase::Answered => {
                if let Some(reason) = self.handle_answered(now, input) {
                    self.end(now, reason);
                } else {
                    self.pump(now);
                }
            }
            Phase::Ending { .. } | Phase::Closing { .. } => self.handle_ending(now, input),
            Phase::Done => {}
        }
    }

    fn handle_ringing(&mut self, now: Now, input: Input) {
        match input {
            Input::Leg(LegEvent::Terminated { reason, .. }) => {
                self.record.final_status = Some(487);
                self.end(now, end_reason(&reason));
            }
            Input::LegGone => self.end(now, "shutdown"),
            Input::Shutdown => {
                self.outputs.push_back(Output::Sip(Command::Reject {
                    leg: self.leg,
                    status: 503,
                }));
                self.record.final_status = Some(503);
                self.end(now, "shutdown");
            }
            _ => {}
        }
    }

    /// The 200 is out (inbound) or in (outbound): media starts, and the dialplan too
    /// unless it waits for the ACK.
    fn answer(&mut self, now: Now) {
        self.phase = Phase::Answered;
        self.record.final_status.get_or_insert(200);
        self.record.answered_at.get_or_insert(system_time(now.wall));
        self.record.codec = Some(self.negotiated.codec.name().to_string());
        self.record.telephone_event_pt = self.negotiated.telephone_event_pt;
        self.outputs
            .push_back(Output::StartMedia(self.media_params()));
        self.media_started = true;
        self.outputs.push_back(Output::PublishRecord);
        if self.start == DialplanStart::Now {
            self.start_dialplan(now);
        }
        self.pump(now);
    }

    fn media_params(&self) -> SessionParams {
        SessionParams::from_negotiated(&self.negotiated, self.inactivity_timeout)
    }

    fn start_dialplan(&mut self, now: Now) {
        tracing::debug!(dialplan = self.plan.name(), "starting the dialplan");
        let mut vars = BTreeMap::new();
        if let Some(caller) = &self.caller {
            vars.insert("caller".to_string(), caller.clone());
        }
        let mut engine = Engine::new(self.plan.clone(), vars);
        engine.start(now.monotonic);
        self.engine = Some(engine);
    }

    /// Returns `Some(end_reason)` when the call ends.
    fn handle_answered(&mut self, now: Now, input: Input) -> Option<&'static str> {
        match input {
            Input::Leg(ev) => self.on_leg_event(now, ev),
            Input::LegGone => Some("shutdown"),
            Input::Media(notice) => self.on_media(now, notice),
            Input::MediaGone => {
                // The worker is gone (it only stops after the calls at shutdown).
                tracing::error!("media worker gone; hanging up");
                self.hang_up();
                Some("media_failed")
            }
            Input::MediaClosed(_) => None,
            Input::ActionFinished { outcome, vars } => {
                self.actions_running = self.actions_running.saturating_sub(1);
                tracing::info!(%outcome, "action result");
                if let Some(engine) = self.engine.as_mut() {
                    engine.handle(now.monotonic, EngineInput::ActionResult { outcome, vars });
                }
                None
            }
            Input::Shutdown => {
                self.shutdown_deadline
                    .get_or_insert(now.monotonic + self.shutdown_grace);
                None
            }
        }
    }

    fn on_leg_event(&mut self, now: Now, ev: LegEvent) -> Option<&'static str> {
        match ev {
            LegEvent::Confirmed { .. } => {
                if self.engine.is_none() {
                    self.start_dialplan(now);
                }
            }
            LegEvent::Reoffer { sdp, .. } => self.on_reoffer(&sdp),
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
                    self.hang_up();
                    return Some("transfer_failed");
                }
            }
            LegEvent::TransferProgress { status, .. } => {
                tracing::info!(status, "transfer progress");
                if self.transferring && status >= 200 {
                    // Connected or failed: either way this leg is done (RFC 5589 §6.1).
                    self.hang_up();
                    return Some(if status < 300 {
                        "transferred"
                    } else {
                        "transfer_failed"
                    });
                }
            }
            // Events of an outbound leg before its answer: not this phase's.
            LegEvent::Incoming(_)
            | LegEvent::Progress { .. }
            | LegEvent::Answered { .. }
            | LegEvent::Failed { .. } => {}
        }
        None
    }

    fn on_reoffer(&mut self, offer: &[u8]) {
        self.record.reoffers += 1;
        match sdp::negotiate(offer) {
            Ok(neg) => {
                self.negotiated = neg;
                self.local.session_version += 1;
                let answer = sdp::render_answer(&self.negotiated, &self.local);
                self.outputs
                    .push_back(Output::UpdateMedia(self.media_params()));
                tracing::info!(
                    direction = self.negotiated.local_direction.as_str(),
                    "re-INVITE answered"
                );
                self.outputs.push_back(Output::Sip(Command::AnswerReoffer {
                    leg: self.leg,
                    sdp: answer.into_bytes(),
                }));
            }
            Err(e) => {
                tracing::info!(error = %e, "re-INVITE offer refused");
                self.outputs.push_back(Output::Sip(Command::RejectReoffer {
                    leg: self.leg,
                    status: 488,
                }));
            }
        }
    }

    fn on_media(&mut self, now: Now, notice: MediaNotice) -> Option<&'static str> {
        match notice {
            MediaNotice::Digit(d) => self.on_digit(d.at, d.digit, DigitMethod::Rfc4733),
            MediaNotice::PromptFinished {
                epoch,
                id,
                frames_sent,
            } => {
                self.record_prompt(id, frames_sent, true);
                // A prompt of an earlier playback finished while our barge-in was on its
                // way to the worker: recorded (it did play out), but not the engine's.
                if epoch == self.epoch && self.pending_prompts > 0 {
                    self.pending_prompts -= 1;
                    if self.pending_prompts == 0
                        && let Some(engine) = self.engine.as_mut()
                    {
                        engine.handle(now.monotonic, EngineInput::PromptsFinished);
                    }
                }
            }
            MediaNotice::PromptStopped { id, frames_sent } => {
                self.record_prompt(id, frames_sent, false);
            }
            MediaNotice::Inactive => {
                tracing::info!("no RTP received; hanging up");
                self.hang_up();
                return Some("rtp_timeout");
            }
            MediaNotice::Failed => {
                tracing::error!("no media session for this call; hanging up");
                self.hang_up();
                return Some("media_failed");
            }
        }
        None
    }

    /// `at` is when the key was pressed (the first RFC 4733 packet, the INFO's arrival),
    /// on the monotonic clock the engine's timers run on.
    fn on_digit(&mut self, at: Instant, digit: char, method: DigitMethod) {
        tracing::info!(digit = %digit, method = method.as_str(), "DTMF");
        self.record.push_digit(digit, method);
        self.dirty = true;
        if let Some(engine) = self.engine.as_mut() {
            engine.handle(at, EngineInput::Digit(digit));
        }
    }

    fn record_prompt(&mut self, id: String, frames_sent: u32, completed: bool) {
        self.record.prompts.push(PromptPlay {
            id,
            frames_sent,
            completed,
        });
    }

    fn hang_up(&mut self) {
        self.outputs
            .push_back(Output::Sip(Command::Hangup { leg: self.leg }));
    }

    /// Carries out the engine's outputs and keeps the published record current; ends
    /// the call when the dialplan hangs up.
    fn pump(&mut self, now: Now) {
        let mut ended = false;
        while let Some(output) = self.engine.as_mut().and_then(|e| e.poll_output()) {
            match output {
                EngineOutput::Play(ids) => self.play(now, &ids),
                EngineOutput::StopPlayback => {
                    self.pending_prompts = 0;
                    self.epoch = self.epoch.wrapping_add(1);
                    self.outputs
                        .push_back(Output::StopPrompts { epoch: self.epoch });
                }
                EngineOutput::RunAction { name, vars } => {
                    tracing::info!(action = %name, "running action");
                    self.actions_running += 1;
                    self.outputs.push_back(Output::StartAction { name, vars });
                }
                EngineOutput::Transfer { to } => {
                    let target = if to.starts_with("sip:") || to.starts_with("sips:") {
                        to
                    } else {
                        format!("sip:{to}@{}", self.transfer_host)
                    };
                    tracing::info!(%target, "transferring with REFER");
                    self.transferring = true;
                    self.outputs.push_back(Output::Sip(Command::Refer {
                        leg: self.leg,
                        target,
                    }));
                }
                EngineOutput::Hangup => {
                    if let Some(err) = self.engine.as_ref().and_then(|e| e.error()) {
                        tracing::error!(error = %err, "dialplan ended on its error path");
                    }
                    tracing::info!("dialplan finished; hanging up");
                    self.hang_up();
                    ended = true;
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
            self.outputs.push_back(Output::PublishRecord);
        }
        if ended {
            self.end(now, "local_bye");
        }
    }

    /// Plays the engine's prompts; the engine hears `PromptsFinished` once all of them
    /// have played.
    fn play(&mut self, now: Now, ids: &[String]) {
        let prompts: Vec<_> = ids
            .iter()
            .filter_map(|id| {
                let prompt = self.prompts.get(id);
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
                engine.handle(now.monotonic, EngineInput::PromptsFinished);
            }
        } else {
            self.epoch = self.epoch.wrapping_add(1);
            self.outputs.push_back(Output::PlayPrompts {
                epoch: self.epoch,
                prompts,
            });
        }
    }

    /// The call is over for `reason`; what is left is waiting for running actions,
    /// closing the media and filing the record.
    fn end(&mut self, now: Now, reason: &'static str) {
        self.phase = Phase::Ending { reason };
        self.close_when_idle(now);
    }

    fn close_when_idle(&mut self, now: Now) {
        let Phase::Ending { reason } = self.phase else {
            return;
        };
        if self.actions_running > 0 {
            return;
        }
        if self.media_started {
            self.outputs.push_back(Output::CloseMedia);
            self.phase = Phase::Closing { reason };
        } else {
            self.file(now, reason);
        }
    }

    /// After the end: action results still count (for the record and the attempt, not
    /// for the finished dialplan), and the prompts the media session reports are still
    /// recorded; nothing else changes the call.
    fn handle_ending(&mut self, now: Now, input: Input) {
        match input {
            Input::ActionFinished { outcome, .. } => {
                tracing::info!(%outcome, "action result after the call ended");
                self.actions_running = self.actions_running.saturating_sub(1);
                self.close_when_idle(now);
            }
            Input::Media(MediaNotice::PromptFinished {
                id, frames_sent, ..
            }) => self.record_prompt(id, frames_sent, true),
            Input::Media(MediaNotice::PromptStopped { id, frames_sent }) => {
                self.record_prompt(id, frames_sent, false)
            }
            Input::MediaClosed(fin) => {
                let Phase::Closing { reason } = self.phase else {
                    return;
                };
                if let Some(MediaFinal { stats, cut_short }) = fin {
                    if let Some((id, frames_sent)) = cut_short {
                        self.record_prompt(id, frames_sent, false);
                    }
                    self.record.absorb_media(&stats);
                }
                self.file(now, reason);
            }
            _ => {}
        }
    }

    fn file(&mut self, now: Now, reason: &'static str) {
        if let Some(engine) = self.engine.as_ref() {
            self.record.ivr_path = engine.path().to_vec();
        }
        self.record.end(reason, system_time(now.wall));
        self.phase = Phase::Done;
        self.outputs
            .push_back(Output::FileRecord(Box::new(self.record.clone())));
    }
}

/// The record's end reason for the SIP layer's.
fn end_reason(reason: &EndReason) -> &'static str {
    match reason {
        EndReason::Cancelled => "cancelled",
        EndReason::RemoteBye => "remote_bye",
        EndReason::AckTimeout => "ack_timeout",
    }
}

#[cfg(test)]
mod tests;
