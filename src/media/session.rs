//! The per-call RTP media session, sans-IO.
//!
//! The session owns the call's media timeline: frame *k* is due at `start + k × 20 ms`, for
//! the whole life of the call, whatever is being played. Keeping one fixed grid (rather than
//! "20 ms after the last send") means RTP timestamps always match wall-clock time, so the
//! caller's jitter buffer never drifts, and a late scheduler can be corrected by skipping
//! instead of accumulating delay.
//!
//! The caller (the call runner) owns the socket and the timer. It feeds received datagrams to
//! [`MediaSession::handle_rtp`], sleeps until [`MediaSession::poll_timeout`], calls
//! [`MediaSession::handle_timeout`], then drains [`MediaSession::poll_transmit`] and
//! [`MediaSession::poll_event`] until both return `None`.
//!
//! Behaviour worth knowing:
//! * Between prompts we send G.711 silence, not nothing: it keeps NAT bindings open and stops
//!   the caller's own RTP-inactivity timer from hanging up while the IVR waits for a digit.
//! * Symmetric RTP (RFC 4961 style "comedia"): we send to where the caller's RTP comes from,
//!   which is what makes callers behind NAT audible-to-us *and* reachable.
//! * On hold (our direction does not allow sending, or no remote address) prompts still
//!   advance in time — they "play into the void" — so an IVR flow waiting for
//!   `PromptFinished` is never stuck; `frames_sent` then tells how much was actually heard.
//! * When `poll_transmit` is called late, at most [`MAX_LATE_FRAMES`] overdue frames are sent
//!   back-to-back; older ones are skipped (timestamp advanced, prompt audio dropped) so the
//!   stream stays on the wall-clock timeline instead of lagging behind it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::RtpReader;

use super::codec::{Codec, SAMPLE_RATE, SAMPLES_PER_FRAME};
use super::dtmf::{DigitEvent, Rfc4733Decoder};
use super::prompt::Prompt;
use super::rtp::RtpSender;
use super::sdp::{Direction, Negotiated};

/// Packetisation interval.
pub const FRAME: Duration = Duration::from_millis(20);
/// How many overdue frames a late `poll_transmit` may still send back-to-back (in addition to
/// the frame due now). More would flood the receiver's jitter buffer for no benefit.
pub const MAX_LATE_FRAMES: u64 = 3;
/// A new source address only takes over an established latch if the latched source has been
/// quiet this long (or the SSRC changed): stray or spoofed packets cannot steal the stream,
/// while a NAT rebinding or a media server switch is followed quickly.
pub const RELATCH_AFTER: Duration = Duration::from_millis(500);

/// What the session needs from the SDP negotiation.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionParams {
    pub codec: Codec,
    pub codec_pt: u8,
    pub telephone_event_pt: Option<u8>,
    /// Remote RTP address from SDP; `None` for legacy hold (`c=0.0.0.0`) or port 0.
    pub remote: Option<SocketAddr>,
    /// OUR direction (the answer's direction attribute).
    pub local_direction: Direction,
    /// Report [`MediaEvent::Inactive`] after this long without RTP while we expect some.
    /// `Duration::ZERO` disables the check.
    pub inactivity_timeout: Duration,
}

impl SessionParams {
    /// Parameters from an offer/answer outcome.
    pub fn from_negotiated(neg: &Negotiated, inactivity_timeout: Duration) -> Self {
        SessionParams {
            codec: neg.codec,
            codec_pt: neg.codec_pt,
            telephone_event_pt: neg.telephone_event_pt,
            remote: neg.remote_rtp,
            local_direction: neg.local_direction,
            inactivity_timeout,
        }
    }
}

/// Something the call layer must react to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    Digit(DigitEvent),
    /// The last frame of prompt `id` has gone out (or elapsed, on hold). Not emitted for a
    /// prompt replaced by [`MediaSession::play`] or stopped by [`MediaSession::stop_playback`].
    PromptFinished {
        id: String,
        frames_sent: u32,
    },
    /// No RTP received for `inactivity_timeout` while we expect to receive. Reported once;
    /// re-armed when RTP arrives again.
    Inactive,
}

/// Counters for logs and metrics.
#[derive(Clone, Debug, Default)]
pub struct MediaStats {
    pub packets_sent: u64,
    pub prompt_packets_sent: u64,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub unknown_pt_received: u64,
    pub digits: u32,
    pub ssrc_changes: u32,
    /// Datagrams that are not RTP version 2 (or are truncated).
    pub invalid_received: u64,
    /// RTCP packets arriving on the RTP port (rtcp-mux, RFC 5761); ignored.
    pub rtcp_received: u64,
    /// Frames skipped because `poll_transmit` was called too late.
    pub late_frames_skipped: u64,
    /// Times the send destination moved to a new source address (symmetric RTP).
    pub relatches: u32,
}

#[derive(Clone, Debug)]
struct Playback {
    prompt: Arc<Prompt>,
    /// Index of the next frame to play.
    next: usize,
    /// Frames actually put on the wire.
    sent: u32,
}

/// The source we latched onto for symmetric RTP.
#[derive(Clone, Copy, Debug)]
struct Latch {
    addr: SocketAddr,
    ssrc: u32,
    last_rx: Instant,
}

/// One call's RTP stream: prompt playout, silence, symmetric RTP, DTMF and inactivity.
#[derive(Debug)]
pub struct MediaSession {
    params: SessionParams,
    sender: RtpSender,
    /// Origin of the frame grid.
    start: Instant,
    /// Index of the next frame on the grid not yet sent or skipped.
    next_frame: u64,
    latch: Option<Latch>,
    playback: Option<Playback>,
    queue: VecDeque<Arc<Prompt>>,
    dtmf: Rfc4733Decoder,
    events: VecDeque<MediaEvent>,
    last_rx: Instant,
    inactive_reported: bool,
    last_ssrc: Option<u32>,
    silence: Vec<u8>,
    stats: MediaStats,
}

impl MediaSession {
    /// A session whose first frame is due at `now`, with a random SSRC/seq/timestamp.
    pub fn new(now: Instant, params: SessionParams) -> Self {
        let sender = RtpSender::random(params.codec_pt);
        MediaSession::with_sender(now, params, sender)
    }

    /// Same as [`new`](MediaSession::new) with a given RTP sender (deterministic tests).
    pub fn with_sender(now: Instant, params: SessionParams, mut sender: RtpSender) -> Self {
        sender.set_payload_type(params.codec_pt);
        MediaSession {
            silence: vec![params.codec.silence_byte(); SAMPLES_PER_FRAME],
            params,
            sender,
            start: now,
            next_frame: 0,
            latch: None,
            playback: None,
            queue: VecDeque::new(),
            dtmf: Rfc4733Decoder::new(SAMPLE_RATE),
            events: VecDeque::new(),
            last_rx: now,
            inactive_reported: false,
            last_ssrc: None,
            stats: MediaStats::default(),
        }
    }

    /// Applies a re-negotiation (re-INVITE): new codec, remote address or direction. The
    /// frame grid and RTP counters continue, so hold/resume is seamless for the receiver.
    pub fn update(&mut self, now: Instant, params: SessionParams) {
        // Let frames due under the old direction elapse under it (no burst on resume).
        self.elapse_unsendable(now);
        let was_expecting = self.expects_rtp();
        if params.codec_pt != self.params.codec_pt || params.codec != self.params.codec {
            self.sender.set_payload_type(params.codec_pt);
            self.silence = vec![params.codec.silence_byte(); SAMPLES_PER_FRAME];
        }
        if params.remote != self.params.remote {
            // The remote told us explicitly where (or that not) to send: forget the latch.
            self.latch = None;
        }
        self.params = params;
        if !was_expecting && self.expects_rtp() {
            // Resumed: give the far end a full timeout to start sending again.
            self.last_rx = now;
            self.inactive_reported = false;
        }
    }

    /// Plays `prompt` from the next frame on, replacing whatever was playing and anything
    /// queued (a new IVR menu supersedes the old one). No `PromptFinished` for the replaced
    /// prompt. The first packet carries the marker bit.
    pub fn play(&mut self, now: Instant, prompt: Arc<Prompt>) {
        self.elapse_unsendable(now);
        self.queue.clear();
        self.playback = None;
        self.start_prompt(prompt, true);
    }

    /// Plays `prompt` after the current one (and anything already queued), seamlessly.
    pub fn enqueue(&mut self, prompt: Arc<Prompt>) {
        if self.playback.is_none() {
            self.start_prompt(prompt, true);
        } else {
            self.queue.push_back(prompt);
        }
    }

    /// Barge-in: stops the current prompt and drops the queue. Returns the stopped prompt's
    /// id; no `PromptFinished` is emitted for it.
    pub fn stop_playback(&mut self) -> Option<String> {
        self.queue.clear();
        self.playback.take().map(|p| p.prompt.id.clone())
    }

    pub fn is_playing(&self) -> bool {
        self.playback.is_some()
    }

    /// Id of the prompt currently playing.
    pub fn playing(&self) -> Option<&str> {
        self.playback.as_ref().map(|p| p.prompt.id.as_str())
    }

    /// Feeds one received datagram. Anything that is not RTP v2 is counted and dropped.
    pub fn handle_rtp(&mut self, now: Instant, from: SocketAddr, packet: &[u8]) {
        // RFC 5761 §4: with rtcp-mux, RTCP packet types 192..=223 sit where the marker bit and
        // payload type would be.
        if packet.len() >= 2 && (192..=223).contains(&packet[1]) {
            self.stats.rtcp_received += 1;
            return;
        }
        let Ok(rtp) = RtpReader::new(packet) else {
            self.stats.invalid_received += 1;
            return;
        };
        self.stats.packets_received += 1;
        self.stats.bytes_received += packet.len() as u64;
        let ssrc = rtp.ssrc();
        if self.last_ssrc.is_some_and(|s| s != ssrc) {
            self.stats.ssrc_changes += 1;
        }
        self.last_ssrc = Some(ssrc);
        self.latch_source(now, from, ssrc);
        self.last_rx = now;
        self.inactive_reported = false;

        let pt = rtp.payload_type();
        if Some(pt) == self.params.telephone_event_pt {
            if let Some(d) = self.dtmf.handle(now, rtp.timestamp(), rtp.payload()) {
                self.push_digit(d);
            }
            while let Some(d) = self.dtmf.poll_event() {
                self.push_digit(d);
            }
        } else if pt == self.params.codec_pt {
            // Caller audio: the IVR does not listen to it (no recording, no in-band DTMF).
        } else {
            self.stats.unknown_pt_received += 1;
        }
    }

    /// If a frame is due, clears `out`, writes one RTP packet into it and returns where to
    /// send it. Call repeatedly until `None`.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<SocketAddr> {
        let newest = self.newest_due(now)?;
        let Some(dest) = self.destination() else {
            self.skip_frames(newest + 1 - self.next_frame);
            return None;
        };
        let late = newest - self.next_frame;
        if late > MAX_LATE_FRAMES {
            let skipped = late - MAX_LATE_FRAMES;
            self.stats.late_frames_skipped += skipped;
            self.skip_frames(skipped);
        }
        out.clear();
        self.send_frame(out);
        Some(dest)
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The earliest of: next frame due (only while sending, or when an unheard prompt ends
    /// on hold), the DTMF end-loss deadline, the inactivity deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let frame = if self.destination().is_some() {
            Some(self.due(self.next_frame))
        } else {
            self.playback.as_ref().map(|p| {
                let remaining = (p.prompt.frames() - p.next) as u64;
                self.due(self.next_frame + remaining.saturating_sub(1))
            })
        };
        let inactivity = self.inactivity_deadline();
        [frame, self.dtmf.poll_timeout(), inactivity]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires due timers: DTMF end-loss, inactivity, and prompt time elapsing while on hold.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.elapse_unsendable(now);
        if let Some(d) = self.dtmf.handle_timeout(now) {
            self.push_digit(d);
        }
        while let Some(d) = self.dtmf.poll_event() {
            self.push_digit(d);
        }
        if self.inactivity_deadline().is_some_and(|t| now >= t) {
            self.inactive_reported = true;
            self.events.push_back(MediaEvent::Inactive);
        }
    }

    pub fn stats(&self) -> &MediaStats {
        &self.stats
    }

    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Where RTP currently goes: the latched source, else the SDP address; `None` while our
    /// direction forbids sending.
    pub fn destination(&self) -> Option<SocketAddr> {
        if !self.params.local_direction.we_send() {
            return None;
        }
        self.latch.map(|l| l.addr).or(self.params.remote)
    }

    /// Our SSRC (for RTCP or logs).
    pub fn ssrc(&self) -> u32 {
        self.sender.ssrc()
    }

    // ---- internals -------------------------------------------------------------------

    fn due(&self, frame: u64) -> Instant {
        self.start + Duration::from_millis(frame.saturating_mul(20))
    }

    /// Index of the newest frame due at `now`, if at least one frame is due.
    fn newest_due(&self, now: Instant) -> Option<u64> {
        let elapsed = now.checked_duration_since(self.start)?;
        let newest = u64::try_from(elapsed.as_nanos() / FRAME.as_nanos()).unwrap_or(u64::MAX);
        (newest >= self.next_frame).then_some(newest)
    }

    /// While we cannot send, due frames just elapse (keeps prompts and timestamps moving).
    fn elapse_unsendable(&mut self, now: Instant) {
        if self.destination().is_none()
            && let Some(newest) = self.newest_due(now)
        {
            self.skip_frames(newest + 1 - self.next_frame);
        }
    }

    fn expects_rtp(&self) -> bool {
        self.params.local_direction.we_receive()
            && (self.params.remote.is_some() || self.latch.is_some())
    }

    fn inactivity_deadline(&self) -> Option<Instant> {
        let timeout = self.params.inactivity_timeout;
        (self.expects_rtp() && !self.inactive_reported && !timeout.is_zero())
            .then(|| self.last_rx + timeout)
    }

    fn latch_source(&mut self, now: Instant, from: SocketAddr, ssrc: u32) {
        match &mut self.latch {
            None => {
                if self.params.remote != Some(from) {
                    tracing::debug!(%from, sdp = ?self.params.remote, "symmetric RTP: latched");
                }
                self.latch = Some(Latch {
                    addr: from,
                    ssrc,
                    last_rx: now,
                });
            }
            Some(l) if l.addr == from => {
                l.ssrc = ssrc;
                l.last_rx = now;
            }
            Some(l) => {
                if l.ssrc != ssrc || now.saturating_duration_since(l.last_rx) >= RELATCH_AFTER {
                    tracing::info!(old = %l.addr, new = %from, "symmetric RTP: re-latched");
                    *l = Latch {
                        addr: from,
                        ssrc,
                        last_rx: now,
                    };
                    self.stats.relatches += 1;
                }
            }
        }
    }

    fn push_digit(&mut self, d: DigitEvent) {
        self.stats.digits += 1;
        self.events.push_back(MediaEvent::Digit(d));
    }

    /// Starts `prompt` (zero-frame prompts finish at once and the queue moves on).
    fn start_prompt(&mut self, prompt: Arc<Prompt>, mark: bool) {
        let mut next = Some(prompt);
        while let Some(prompt) = next.take() {
            if prompt.frames() == 0 {
                self.events.push_back(MediaEvent::PromptFinished {
                    id: prompt.id.clone(),
                    frames_sent: 0,
                });
                next = self.queue.pop_front();
                continue;
            }
            if mark {
                self.sender.mark_next();
            }
            self.playback = Some(Playback {
                prompt,
                next: 0,
                sent: 0,
            });
        }
    }

    /// Advances the current prompt by `frames`, finishing it (and starting queued ones) as
    /// needed. `sent` says whether those frames went on the wire.
    fn advance_playback(&mut self, mut frames: u64, sent: bool) {
        while frames > 0 {
            let Some(pb) = self.playback.as_mut() else {
                return;
            };
            let remaining = (pb.prompt.frames() - pb.next) as u64;
            let take = frames.min(remaining);
            pb.next += take as usize;
            if sent {
                pb.sent = pb.sent.saturating_add(take as u32);
            }
            frames -= take;
            if pb.next >= pb.prompt.frames() {
                let id = pb.prompt.id.clone();
                let frames_sent = pb.sent;
                self.playback = None;
                self.events
                    .push_back(MediaEvent::PromptFinished { id, frames_sent });
                if let Some(next) = self.queue.pop_front() {
                    // Back-to-back with the previous prompt: same talkspurt, no marker.
                    self.start_prompt(next, false);
                }
            }
        }
    }

    /// Lets `frames` grid frames pass without sending them.
    fn skip_frames(&mut self, frames: u64) {
        if frames == 0 {
            return;
        }
        self.next_frame += frames;
        // RTP timestamps are modulo 2^32, so truncating the frame count is exact.
        self.sender.skip(frames as u32);
        self.advance_playback(frames, false);
    }

    /// Writes the next grid frame (prompt audio or silence) into `out`.
    fn send_frame(&mut self, out: &mut Vec<u8>) {
        let codec = self.params.codec;
        let current = self
            .playback
            .as_ref()
            .map(|p| (Arc::clone(&p.prompt), p.next));
        match current.as_ref().and_then(|(p, i)| p.frame(codec, *i)) {
            Some(payload) => {
                self.sender.write_frame(payload, out);
                self.stats.prompt_packets_sent += 1;
            }
            None => self.sender.write_frame(&self.silence, out),
        }
        self.stats.packets_sent += 1;
        self.next_frame += 1;
        self.advance_playback(1, true);
    }
}
