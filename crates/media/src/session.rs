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
    /// Report [`MediaEvent::Inactive`] after this long without RTP while we expect some
    /// (our direction is sendrecv/recvonly and a remote address is known). Note that a peer
    /// holding us with `sendonly` is expected to send (RFC 3264), but some phones send
    /// nothing on hold; pick the timeout with that in mind. `Duration::ZERO` disables it.
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
    /// id and how many of its frames went out (the call record shows how much was heard);
    /// no `PromptFinished` is emitted for it.
    pub fn stop_playback(&mut self) -> Option<(String, u32)> {
        self.queue.clear();
        self.playback.take().map(|p| (p.prompt.id.clone(), p.sent))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::DigitSource;

    const REMOTE: &str = "192.0.2.10:4000";

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn params(codec: Codec, te: Option<u8>) -> SessionParams {
        SessionParams {
            codec,
            codec_pt: codec.payload_type(),
            telephone_event_pt: te,
            remote: Some(REMOTE.parse().unwrap()),
            local_direction: Direction::SendRecv,
            inactivity_timeout: Duration::from_secs(30),
        }
    }

    fn session(t0: Instant, p: SessionParams) -> MediaSession {
        MediaSession::with_sender(t0, p, RtpSender::new(0x1234_5678, 65530, u32::MAX - 800, 0))
    }

    fn tone(id: &str, ms: usize) -> Arc<Prompt> {
        Arc::new(Prompt::from_pcm(id, &vec![8000i16; ms * 8]))
    }

    #[derive(Debug)]
    struct Sent {
        to: SocketAddr,
        seq: u16,
        ts: u32,
        ssrc: u32,
        pt: u8,
        marker: bool,
        payload: Vec<u8>,
    }

    fn drain(s: &mut MediaSession, now: Instant) -> Vec<Sent> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(to) = s.poll_transmit(now, &mut buf) {
            let r = RtpReader::new(&buf).unwrap();
            out.push(Sent {
                to,
                seq: r.sequence_number().into(),
                ts: r.timestamp(),
                ssrc: r.ssrc(),
                pt: r.payload_type(),
                marker: r.mark(),
                payload: r.payload().to_vec(),
            });
        }
        out
    }

    /// Runs the session every 20 ms from `from_ms` to `to_ms` inclusive.
    fn run(s: &mut MediaSession, t0: Instant, from_ms: u64, to_ms: u64) -> Vec<Sent> {
        (from_ms..=to_ms)
            .step_by(20)
            .flat_map(|t| {
                s.handle_timeout(ms(t0, t));
                drain(s, ms(t0, t))
            })
            .collect()
    }

    fn events(s: &mut MediaSession) -> Vec<MediaEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut s = RtpSender::new(ssrc, seq, ts, pt);
        if marker {
            s.mark_next();
        }
        let mut out = Vec::new();
        s.write_frame(payload, &mut out);
        out
    }

    fn te(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x8a } else { 0x0a }, d[0], d[1]]
    }

    #[test]
    fn one_second_prompt_is_fifty_packets() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcma, None));
        let prompt = tone("welcome", 1000);
        s.play(t0, prompt.clone());
        assert!(s.is_playing());
        assert_eq!(s.playing(), Some("welcome"));
        let sent = run(&mut s, t0, 0, 980);
        assert_eq!(sent.len(), 50);
        for (i, p) in sent.iter().enumerate() {
            assert_eq!(p.to, REMOTE.parse::<SocketAddr>().unwrap());
            assert_eq!(p.ssrc, 0x1234_5678);
            assert_eq!(p.pt, 8);
            assert_eq!(p.seq, 65530u16.wrapping_add(i as u16), "seq +1, wrapping");
            assert_eq!(
                p.ts,
                (u32::MAX - 800).wrapping_add(160 * i as u32),
                "ts +160, wrapping"
            );
            assert_eq!(p.marker, i == 0, "marker only on the first packet");
            assert_eq!(p.payload.as_slice(), prompt.frame(Codec::Pcma, i).unwrap());
        }
        assert_eq!(
            events(&mut s),
            vec![MediaEvent::PromptFinished {
                id: "welcome".into(),
                frames_sent: 50
            }]
        );
        assert!(!s.is_playing());
        // Silence afterwards, continuing the same timeline.
        let after = run(&mut s, t0, 1000, 1040);
        assert_eq!(after.len(), 3);
        assert!(
            after
                .iter()
                .all(|p| p.payload == vec![0xD5; 160] && !p.marker)
        );
        assert_eq!(after[0].ts, sent[49].ts.wrapping_add(160));
        assert_eq!(s.stats().packets_sent, 53);
        assert_eq!(s.stats().prompt_packets_sent, 50);
    }

    #[test]
    fn frames_follow_the_20ms_grid() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, None));
        assert_eq!(s.poll_timeout(), Some(t0));
        assert_eq!(drain(&mut s, ms(t0, 19)).len(), 1, "only frame 0 is due");
        assert_eq!(s.poll_timeout(), Some(ms(t0, 20)));
        assert!(drain(&mut s, ms(t0, 19)).is_empty());
        assert_eq!(drain(&mut s, ms(t0, 20)).len(), 1, "frame 1");
        assert_eq!(drain(&mut s, ms(t0, 39)).len(), 0);
        let f2 = drain(&mut s, ms(t0, 40));
        assert_eq!(f2.len(), 1, "frame 2");
        assert_eq!(f2[0].payload, vec![0xFF; 160], "µ-law silence when idle");
        assert_eq!(s.poll_timeout(), Some(ms(t0, 60)));
    }

    #[test]
    fn enqueued_prompts_play_back_to_back() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, None));
        s.enqueue(tone("a", 40));
        s.enqueue(tone("b", 60));
        let sent = run(&mut s, t0, 0, 200);
        let markers: Vec<bool> = sent.iter().map(|p| p.marker).collect();
        assert_eq!(markers[..6], [true, false, false, false, false, false]);
        assert_eq!(
            events(&mut s),
            vec![
                MediaEvent::PromptFinished {
                    id: "a".into(),
                    frames_sent: 2
                },
                MediaEvent::PromptFinished {
                    id: "b".into(),
                    frames_sent: 3
                },
            ]
        );
    }

    #[test]
    fn play_replaces_and_stop_playback_barges_in() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, None));
        s.play(t0, tone("menu", 1000));
        s.enqueue(tone("more", 1000));
        run(&mut s, t0, 0, 100);
        s.play(ms(t0, 110), tone("other", 40));
        let sent = run(&mut s, t0, 120, 200);
        assert!(sent[0].marker, "new prompt starts a talkspurt");
        assert_eq!(
            events(&mut s),
            vec![MediaEvent::PromptFinished {
                id: "other".into(),
                frames_sent: 2
            }],
            "no event for the replaced prompt, queue dropped"
        );
        s.play(ms(t0, 210), tone("menu", 1000));
        s.enqueue(tone("more", 1000));
        assert!(matches!(s.stop_playback(), Some((id, _)) if id == "menu"));
        assert_eq!(s.stop_playback(), None);
        assert!(!s.is_playing());
        run(&mut s, t0, 220, 300);
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn symmetric_rtp_latches_to_the_source() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, None));
        assert_eq!(
            drain(&mut s, t0)[0].to,
            REMOTE.parse::<SocketAddr>().unwrap()
        );
        let nat: SocketAddr = "203.0.113.7:31000".parse().unwrap();
        s.handle_rtp(ms(t0, 10), nat, &rtp(0, 1, 0, 0xAAAA, true, &[0xFF; 160]));
        assert_eq!(drain(&mut s, ms(t0, 20))[0].to, nat);
        // A stray packet from elsewhere with the same SSRC does not steal the stream...
        let other: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        s.handle_rtp(
            ms(t0, 30),
            other,
            &rtp(0, 2, 160, 0xAAAA, false, &[0xFF; 160]),
        );
        assert_eq!(drain(&mut s, ms(t0, 40))[0].to, nat);
        // ...but a new SSRC from a new address (media server switch) does.
        s.handle_rtp(
            ms(t0, 50),
            other,
            &rtp(0, 9, 9000, 0xBBBB, false, &[0xFF; 160]),
        );
        assert_eq!(drain(&mut s, ms(t0, 60))[0].to, other);
        assert_eq!(s.stats().relatches, 1);
        assert_eq!(s.stats().ssrc_changes, 1);
        // A NAT rebinding (same SSRC, new port) is followed once the old source is quiet.
        let rebound: SocketAddr = "198.51.100.1:5002".parse().unwrap();
        s.handle_rtp(
            ms(t0, 700),
            rebound,
            &rtp(0, 10, 9160, 0xBBBB, false, &[0xFF; 160]),
        );
        assert_eq!(s.destination(), Some(rebound));
    }

    #[test]
    fn late_poll_sends_at_most_three_catch_up_frames() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, None));
        s.play(t0, tone("long", 2000));
        let first = drain(&mut s, t0);
        assert_eq!(first.len(), 1);
        // The scheduler wakes up 100 ms late: frames 1..=5 are due.
        let burst = drain(&mut s, ms(t0, 100));
        assert_eq!(
            burst.len(),
            1 + MAX_LATE_FRAMES as usize,
            "3 late + the current one"
        );
        assert_eq!(s.stats().late_frames_skipped, 1);
        // Timestamps stay on the wall-clock grid: frame 2 follows frame 0 after a 1-frame gap.
        let base = first[0].ts;
        let ts: Vec<u32> = burst.iter().map(|p| p.ts.wrapping_sub(base)).collect();
        assert_eq!(ts, vec![320, 480, 640, 800]);
        let seqs: Vec<u16> = burst
            .iter()
            .map(|p| p.seq.wrapping_sub(first[0].seq))
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4], "no gap in sequence numbers");
        assert!(burst[0].marker, "resync marker after the skipped frame");
        assert!(!burst[1].marker);
        let next = drain(&mut s, ms(t0, 120));
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].ts.wrapping_sub(base), 960);
        // The skipped prompt frame is dropped, not delayed: 100 frames, 99 sent.
        run(&mut s, t0, 140, 2000);
        assert_eq!(
            events(&mut s),
            vec![MediaEvent::PromptFinished {
                id: "long".into(),
                frames_sent: 99
            }]
        );
    }

    #[test]
    fn hold_sends_nothing_but_time_moves_on() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, None));
        let mut hold = params(Codec::Pcmu, None);
        hold.local_direction = Direction::RecvOnly;
        s.update(t0, hold.clone());
        s.play(t0, tone("menu", 200));
        // Frame 0 elapsed before play(), so the 10 frames are 1..=10: the only wake-up
        // needed is when the unheard prompt ends (inactivity is 30 s away).
        assert_eq!(s.poll_timeout(), Some(ms(t0, 200)));
        assert!(run(&mut s, t0, 0, 400).is_empty());
        assert_eq!(
            events(&mut s),
            vec![MediaEvent::PromptFinished {
                id: "menu".into(),
                frames_sent: 0
            }]
        );
        // Resume: sending restarts on the same timeline, marked, with no catch-up burst.
        s.update(ms(t0, 410), params(Codec::Pcmu, None));
        let sent = drain(&mut s, ms(t0, 420));
        assert_eq!(sent.len(), 1);
        assert!(sent[0].marker);
        assert_eq!(sent[0].ts, (u32::MAX - 800).wrapping_add(21 * 160));
        assert_eq!(sent[0].seq, 65530);

        // Legacy hold: c=0.0.0.0 → no remote → nothing sent, no inactivity either.
        let mut legacy = params(Codec::Pcmu, None);
        legacy.remote = None;
        let mut s = session(t0, legacy);
        assert!(run(&mut s, t0, 0, 100).is_empty());
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn inactivity_is_reported_once_after_the_timeout() {
        let t0 = Instant::now();
        let mut p = params(Codec::Pcmu, None);
        p.inactivity_timeout = Duration::from_secs(5);
        let mut s = session(t0, p.clone());
        s.handle_timeout(ms(t0, 4999));
        assert!(events(&mut s).is_empty());
        s.handle_timeout(ms(t0, 5000));
        assert_eq!(events(&mut s), vec![MediaEvent::Inactive]);
        s.handle_timeout(ms(t0, 9000));
        assert!(events(&mut s).is_empty(), "reported once");

        // Packets keep coming: never inactive.
        let mut s = session(t0, p.clone());
        let from: SocketAddr = REMOTE.parse().unwrap();
        for i in 0..500u16 {
            let now = ms(t0, u64::from(i) * 20);
            s.handle_rtp(
                now,
                from,
                &rtp(0, i, u32::from(i) * 160, 1, false, &[0xFF; 160]),
            );
            s.handle_timeout(now);
        }
        assert!(events(&mut s).is_empty());
        assert_eq!(s.stats().packets_received, 500);
        assert_eq!(s.stats().bytes_received, 500 * 172);

        // Inactive direction: no timer at all; re-armed on resume.
        let mut inactive = p.clone();
        inactive.local_direction = Direction::Inactive;
        let mut s = session(t0, inactive);
        assert_eq!(s.poll_timeout(), None);
        s.handle_timeout(ms(t0, 60_000));
        assert!(events(&mut s).is_empty());
        s.update(ms(t0, 60_000), p);
        s.handle_timeout(ms(t0, 64_999));
        assert!(events(&mut s).iter().all(|e| *e != MediaEvent::Inactive));
        s.handle_timeout(ms(t0, 65_000));
        assert_eq!(events(&mut s), vec![MediaEvent::Inactive]);
    }

    fn digits_through_handle_rtp(te_pt: u8) {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, Some(te_pt)));
        let from: SocketAddr = REMOTE.parse().unwrap();
        let mut seq = 100u16;
        let mut send = |s: &mut MediaSession, t: u64, ts: u32, p: [u8; 4], marker: bool| {
            s.handle_rtp(ms(t0, t), from, &rtp(te_pt, seq, ts, 77, marker, &p));
            seq = seq.wrapping_add(1);
        };
        // '9': start, updates, three End packets.
        send(&mut s, 0, 8000, te(9, false, 0), true);
        send(&mut s, 20, 8000, te(9, false, 160), false);
        send(&mut s, 40, 8000, te(9, false, 320), false);
        for _ in 0..3 {
            send(&mut s, 60, 8000, te(9, true, 480), false);
        }
        let digits = |s: &mut MediaSession| -> Vec<(char, u32)> {
            events(s)
                .into_iter()
                .map(|e| match e {
                    MediaEvent::Digit(d) => {
                        assert_eq!(d.source, DigitSource::Rfc4733);
                        (d.digit, d.duration_ms)
                    }
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        };
        assert_eq!(digits(&mut s), vec![('9', 60)], "reported once");
        // '#': End packets all lost → reported by the 250 ms timeout.
        send(&mut s, 200, 16000, te(11, false, 0), true);
        send(&mut s, 220, 16000, te(11, false, 160), false);
        s.handle_timeout(ms(t0, 469));
        assert!(digits(&mut s).is_empty());
        s.handle_timeout(ms(t0, 470));
        assert_eq!(digits(&mut s), vec![('#', 20)]);
        assert_eq!(s.stats().digits, 2);
        assert_eq!(s.stats().unknown_pt_received, 0);
    }

    #[test]
    fn rfc4733_digits_on_pt_96() {
        digits_through_handle_rtp(96);
    }

    #[test]
    fn rfc4733_digits_on_pt_101() {
        digits_through_handle_rtp(101);
    }

    #[test]
    fn unknown_pt_garbage_and_rtcp_are_ignored() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, Some(101)));
        let from: SocketAddr = REMOTE.parse().unwrap();
        // telephone-event on an un-negotiated PT is not decoded.
        s.handle_rtp(t0, from, &rtp(96, 1, 0, 5, false, &te(1, true, 800)));
        s.handle_rtp(t0, from, &rtp(18, 2, 0, 5, false, &[0; 20]));
        assert_eq!(s.stats().unknown_pt_received, 2);
        s.handle_rtp(t0, from, b"");
        s.handle_rtp(t0, from, b"hello");
        s.handle_rtp(t0, from, &[0x40; 40]); // version 1
        s.handle_rtp(t0, from, &[0x80, 0x00, 0, 1]); // truncated header
        assert_eq!(s.stats().invalid_received, 4);
        // An RTCP receiver report (PT 201) on the RTP port.
        s.handle_rtp(t0, from, &[0x80, 201, 0, 1, 0, 0, 0, 5]);
        assert_eq!(s.stats().rtcp_received, 1);
        assert_eq!(s.stats().packets_received, 2);
        assert!(events(&mut s).is_empty());
        // Garbage never latches the destination.
        let mut s = session(t0, params(Codec::Pcmu, None));
        s.handle_rtp(t0, "198.51.100.9:9".parse().unwrap(), b"garbage!garbage!");
        assert_eq!(s.destination(), Some(from));
    }

    #[test]
    fn ssrc_change_mid_call_is_tolerated() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, Some(101)));
        let from: SocketAddr = REMOTE.parse().unwrap();
        s.handle_rtp(
            t0,
            from,
            &rtp(101, 1, 4_000_000_000, 1, true, &te(1, true, 800)),
        );
        // New SSRC with a new random timestamp base far "behind" the old one.
        s.handle_rtp(ms(t0, 500), from, &rtp(0, 900, 1000, 2, true, &[0xFF; 160]));
        s.handle_rtp(
            ms(t0, 520),
            from,
            &rtp(101, 901, 1160, 2, true, &te(2, true, 800)),
        );
        let digits: Vec<char> = events(&mut s)
            .into_iter()
            .filter_map(|e| match e {
                MediaEvent::Digit(d) => Some(d.digit),
                _ => None,
            })
            .collect();
        assert_eq!(digits, vec!['1', '2']);
        assert_eq!(s.stats().ssrc_changes, 1);
        assert_eq!(s.destination(), Some(from));
    }

    #[test]
    fn codec_change_on_reinvite() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, None));
        let a = drain(&mut s, t0);
        s.update(ms(t0, 10), params(Codec::Pcma, None));
        let b = drain(&mut s, ms(t0, 20));
        assert_eq!((a[0].pt, b[0].pt), (0, 8));
        assert_eq!(b[0].payload, vec![0xD5; 160]);
        assert_eq!(b[0].seq, a[0].seq.wrapping_add(1));
        assert_eq!(b[0].ssrc, a[0].ssrc);
    }

    #[test]
    fn zero_length_prompt_finishes_immediately() {
        let t0 = Instant::now();
        let mut s = session(t0, params(Codec::Pcmu, None));
        s.play(t0, Arc::new(Prompt::from_pcm("nothing", &[])));
        assert!(!s.is_playing());
        assert_eq!(
            events(&mut s),
            vec![MediaEvent::PromptFinished {
                id: "nothing".into(),
                frames_sent: 0
            }]
        );
    }

    #[test]
    fn random_sender_by_default() {
        let t0 = Instant::now();
        let mut s = MediaSession::new(t0, params(Codec::Pcma, None));
        let p = drain(&mut s, t0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].ssrc, s.ssrc());
        assert_eq!(p[0].pt, 8);
    }
}
