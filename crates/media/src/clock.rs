//! The shared media clock, sans-IO: many calls' [`MediaSession`]s driven by one timer.
//!
//! Why: with one task and one 20 ms timer per call, 4,500 calls mean 225,000 task
//! wake-ups, timer-wheel inserts and `select!` rebuilds per second, and each frame goes
//! out whenever its own task happens to be polled (BENCHMARKS.md, "Where the time goes").
//! Here one clock owns the sessions of many calls and keeps a single deadline queue:
//! its owner (a media worker, `media::worker`) sleeps until [`MediaClock::poll_timeout`],
//! calls [`MediaClock::handle_timeout`] and sends the batch of due frames in one pass.
//!
//! Each session keeps its own 20 ms frame grid (its phase is the instant it was
//! answered), so calls spread themselves over the 20 ms period: a wake-up every
//! millisecond sends the ~1/20 of the calls whose frame is due, and a call's packets keep
//! the same offset from their grid every time, which is what keeps the send interval at
//! 20 ms. The catch-up rules are the session's own (at most
//! [`MAX_LATE_FRAMES`] overdue frames back-to-back, the
//! rest skipped), so a late wake-up neither floods a receiver nor lets the stream lag.
//!
//! Deadlines live in a binary heap with lazy deletion: an entry is `(deadline, slot,
//! generation)` and is honoured only if it is still the slot's scheduled deadline, so
//! moving a deadline later costs nothing and a removed session's entries die quietly.
//! A session whose deadline moves *earlier* (a re-INVITE resuming from hold) gets a new
//! entry. In steady state every sending session has exactly one live entry.
//!
//! Prompt control carries an *epoch* chosen by the call: `PromptFinished` notices are
//! tagged with the epoch of the playback they belong to, so a call that has already
//! barged in (and moved to a new epoch) can tell a stale "finished" that crossed its
//! command in flight from the one it is waiting for.
//!
//! No allocation per packet: packets are written into a pool of reusable buffers, one per
//! batch position, grown only until the largest batch has been seen once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tongdai_capacity::GiveBack;

use super::dtmf::DigitEvent;
use super::prompt::Prompt;
use super::session::{MAX_LATE_FRAMES, MediaEvent, MediaSession, MediaStats, SessionParams};

/// Transmits per batch. A batch is what the owner sends between two calls of
/// [`MediaClock::handle_timeout`]; bounding it bounds the buffer pool (256 × ~200 bytes)
/// and is also a sensible `sendmmsg`/io_uring batch size.
pub const MAX_BATCH: usize = 256;

/// The most packets one session can produce in one pass: the frame due now plus the
/// late frames it may still catch up.
const PER_SESSION_MAX: usize = 1 + MAX_LATE_FRAMES as usize;

/// Capacity of a packet buffer: 12-byte RTP header + 160-byte G.711 frame, with room.
const PACKET_CAPACITY: usize = 256;

/// Identifies a session in one clock. The generation makes a key of a removed session
/// useless even after its slot has been reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey {
    index: u32,
    generation: u32,
}

impl SessionKey {
    /// The slot index (stable while the session lives; reused after removal). Good as an
    /// I/O readiness token; look the session up with [`MediaClock::key_at`].
    pub fn index(&self) -> usize {
        self.index as usize
    }
}

/// What the call hears back from its media session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaNotice {
    /// An RFC 4733 digit was decoded.
    Digit(DigitEvent),
    /// The last frame of prompt `id` went out (or elapsed, on hold); `epoch` is the epoch
    /// of the `play` it belongs to.
    PromptFinished {
        epoch: u32,
        id: String,
        frames_sent: u32,
    },
    /// A `stop` cut this prompt short after `frames_sent` frames.
    PromptStopped { id: String, frames_sent: u32 },
    /// No RTP received for the inactivity timeout.
    Inactive,
    /// The session could not be set up (its socket could not be registered); there will
    /// be no media for this call.
    Failed,
}

/// What is left of a session when it is removed.
#[derive(Clone, Debug, Default)]
pub struct MediaFinal {
    pub stats: MediaStats,
    /// The prompt that was playing when the session was removed, and the frames of it
    /// that went out.
    pub cut_short: Option<(String, u32)>,
}

/// One packet of the current batch.
#[derive(Clone, Copy, Debug)]
struct Transmit {
    key: SessionKey,
    dest: SocketAddr,
}

struct Entry<T> {
    session: MediaSession,
    /// The deadline this session's live heap entry is for (`None`: no live entry).
    scheduled: Option<Instant>,
    epoch: u32,
    data: T,
}

struct Slot<T> {
    generation: u32,
    entry: Option<Entry<T>>,
}

/// Many sessions, one deadline queue. `T` is the owner's per-session data (the socket and
/// the call's notice channel in `media::worker`; nothing in tests).
pub struct MediaClock<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    live: usize,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    batch: Vec<Transmit>,
    /// `bufs[i]` holds the packet of `batch[i]`; never shrunk.
    bufs: Vec<Vec<u8>>,
    notices: VecDeque<(SessionKey, MediaNotice)>,
    /// The generation new slots start at: above every generation of the slots dropped by
    /// [`give_back`](Self::give_back), so a key from before stays dead.
    generation_floor: u32,
}

impl<T> Default for MediaClock<T> {
    fn default() -> Self {
        MediaClock::new()
    }
}

impl<T> MediaClock<T> {
    pub fn new() -> Self {
        MediaClock {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            timers: BinaryHeap::new(),
            batch: Vec::with_capacity(MAX_BATCH),
            bufs: Vec::new(),
            notices: VecDeque::new(),
            generation_floor: 0,
        }
    }

    /// Sessions in this clock.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Adds a session (its frame grid starts where it was created) with the owner's data.
    pub fn insert(&mut self, session: MediaSession, data: T) -> SessionKey {
        let entry = Entry {
            session,
            scheduled: None,
            epoch: 0,
            data,
        };
        let index = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.entry = Some(entry);
                i
            }
            None => {
                self.slots.push(Slot {
                    generation: self.generation_floor,
                    entry: Some(entry),
                });
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.live += 1;
        let key = SessionKey {
            index,
            generation: self.slots[index as usize].generation,
        };
        self.after_input(key);
        key
    }

    /// Removes a session: no more packets or notices for it (its queued notices are
    /// dropped, so drain [`poll_notice`](Self::poll_notice) first if they matter).
    pub fn remove(&mut self, key: SessionKey) -> Option<(MediaFinal, T)> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let mut entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.live -= 1;
        self.notices.retain(|(k, _)| *k != key);
        let cut_short = entry.session.stop_playback();
        let fin = MediaFinal {
            stats: entry.session.stats().clone(),
            cut_short,
        };
        Some((fin, entry.data))
    }

    /// Gives the memory of a load peak back. Once no session is left, the slot table, free
    /// list and deadline heap start over (every heap entry is stale then); while sessions
    /// are live only the heap shrinks, because slots are addressed by index (and by the
    /// worker's epoll tokens). The notice queue is transient (drained every pass).
    pub fn give_back(&mut self) {
        if self.live == 0 && self.slots.capacity() > tongdai_capacity::KEEP {
            let highest = self.slots.iter().map(|s| s.generation).max().unwrap_or(0);
            self.generation_floor = self.generation_floor.max(highest.wrapping_add(1));
            self.slots = Vec::new();
            self.free = Vec::new();
            self.timers = BinaryHeap::new();
        }
        self.timers.give_back();
    }

    /// The live key of slot `index`, if a session occupies it.
    pub fn key_at(&self, index: usize) -> Option<SessionKey> {
        let slot = self.slots.get(index)?;
        slot.entry.as_ref().map(|_| SessionKey {
            index: index as u32,
            generation: slot.generation,
        })
    }

    pub fn session(&self, key: SessionKey) -> Option<&MediaSession> {
        self.entry(key).map(|e| &e.session)
    }

    pub fn data(&self, key: SessionKey) -> Option<&T> {
        self.entry(key).map(|e| &e.data)
    }

    pub fn data_mut(&mut self, key: SessionKey) -> Option<&mut T> {
        self.entry_mut(key).map(|e| &mut e.data)
    }

    /// Plays `prompts` back to back from the next frame on, replacing whatever played
    /// (no notice for the replaced prompt, as [`MediaSession::play`]); their
    /// `PromptFinished` notices carry `epoch`.
    pub fn play(
        &mut self,
        key: SessionKey,
        now: Instant,
        epoch: u32,
        prompts: impl IntoIterator<Item = Arc<Prompt>>,
    ) {
        let Some(e) = self.entry_mut(key) else {
            return;
        };
        e.epoch = epoch;
        let mut prompts = prompts.into_iter();
        if let Some(first) = prompts.next() {
            e.session.play(now, first);
            for p in prompts {
                e.session.enqueue(p);
            }
        } else {
            e.session.stop_playback();
        }
        self.after_input(key);
    }

    /// Queues `prompts` after whatever plays (seamlessly, as [`MediaSession::enqueue`]),
    /// within the current epoch: their `PromptFinished` notices carry the epoch of the
    /// `play` they extend.
    pub fn enqueue(&mut self, key: SessionKey, prompts: impl IntoIterator<Item = Arc<Prompt>>) {
        let Some(e) = self.entry_mut(key) else {
            return;
        };
        for p in prompts {
            e.session.enqueue(p);
        }
        self.after_input(key);
    }

    /// Barge-in: stops the playback and drops the queue; a prompt that was playing is
    /// reported as [`MediaNotice::PromptStopped`]. Later notices carry `epoch`.
    pub fn stop(&mut self, key: SessionKey, epoch: u32) {
        let Some(e) = self.entry_mut(key) else {
            return;
        };
        e.epoch = epoch;
        if let Some((id, frames_sent)) = e.session.stop_playback() {
            self.notices
                .push_back((key, MediaNotice::PromptStopped { id, frames_sent }));
        }
        self.after_input(key);
    }

    /// A re-negotiation (re-INVITE): see [`MediaSession::update`].
    pub fn update(&mut self, key: SessionKey, now: Instant, params: SessionParams) {
        if let Some(e) = self.entry_mut(key) {
            e.session.update(now, params);
            self.after_input(key);
        }
    }

    /// One datagram received on the session's socket.
    pub fn handle_rtp(&mut self, key: SessionKey, now: Instant, from: SocketAddr, packet: &[u8]) {
        if let Some(e) = self.entry_mut(key) {
            e.session.handle_rtp(now, from, packet);
            self.after_input(key);
        }
    }

    /// The earliest deadline of any session (stale queue entries are pruned first, so
    /// this never asks for a useless wake-up).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, index, generation))) = self.timers.peek().copied() {
            if self.is_live_entry(at, index, generation) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Serves every session due at `now`: fires its timers and writes its due frames into
    /// the batch, until none is due or the batch is full. Returns `true` when sessions are
    /// still due (send the batch, [`clear_batch`](Self::clear_batch), call again).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        while let Some(Reverse((at, index, generation))) = self.timers.peek().copied() {
            if at > now {
                return false;
            }
            if !self.is_live_entry(at, index, generation) {
                self.timers.pop();
                continue;
            }
            if self.batch.len() + PER_SESSION_MAX > MAX_BATCH {
                return true;
            }
            self.timers.pop();
            let key = SessionKey { index, generation };
            self.serve(key, now);
        }
        false
    }

    /// The packets of the current batch, in send order: `(session, destination, bytes)`.
    pub fn transmits(&self) -> impl Iterator<Item = (SessionKey, SocketAddr, &[u8])> + '_ {
        self.batch
            .iter()
            .zip(&self.bufs)
            .map(|(t, buf)| (t.key, t.dest, buf.as_slice()))
    }

    pub fn batch_len(&self) -> usize {
        self.batch.len()
    }

    /// Forgets the current batch (after sending it); the buffers are kept for reuse.
    pub fn clear_batch(&mut self) {
        self.batch.clear();
    }

    /// The next notice for a call, with the session it is for.
    pub fn poll_notice(&mut self) -> Option<(SessionKey, MediaNotice)> {
        self.notices.pop_front()
    }

    // ---- internals -------------------------------------------------------------------

    fn entry(&self, key: SessionKey) -> Option<&Entry<T>> {
        let slot = self.slots.get(key.index as usize)?;
        (slot.generation == key.generation)
            .then_some(slot.entry.as_ref())
            .flatten()
    }

    fn entry_mut(&mut self, key: SessionKey) -> Option<&mut Entry<T>> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.entry.as_mut()
    }

    fn is_live_entry(&self, at: Instant, index: u32, generation: u32) -> bool {
        self.entry(SessionKey { index, generation })
            .is_some_and(|e| e.scheduled == Some(at))
    }

    /// After any input: move the session's events to the notice queue and make sure its
    /// deadline is in the queue.
    fn after_input(&mut self, key: SessionKey) {
        self.drain_events(key);
        self.schedule(key);
    }

    fn schedule(&mut self, key: SessionKey) {
        let Some(e) = self.entry_mut(key) else {
            return;
        };
        let Some(at) = e.session.poll_timeout() else {
            return;
        };
        if e.scheduled.is_none_or(|s| at < s) {
            e.scheduled = Some(at);
            self.timers.push(Reverse((at, key.index, key.generation)));
        }
    }

    fn drain_events(&mut self, key: SessionKey) {
        let Some(slot) = self.slots.get_mut(key.index as usize) else {
            return;
        };
        let Some(e) = slot.entry.as_mut() else {
            return;
        };
        while let Some(ev) = e.session.poll_event() {
            let notice = match ev {
                MediaEvent::Digit(d) => MediaNotice::Digit(d),
                MediaEvent::PromptFinished { id, frames_sent } => MediaNotice::PromptFinished {
                    epoch: e.epoch,
                    id,
                    frames_sent,
                },
                MediaEvent::Inactive => MediaNotice::Inactive,
            };
            self.notices.push_back((key, notice));
        }
    }

    /// One session's turn in a pass; its live heap entry has just been popped.
    fn serve(&mut self, key: SessionKey, now: Instant) {
        let Some(slot) = self.slots.get_mut(key.index as usize) else {
            return;
        };
        let Some(e) = slot.entry.as_mut() else {
            return;
        };
        e.scheduled = None;
        e.session.handle_timeout(now);
        for _ in 0..PER_SESSION_MAX {
            let i = self.batch.len();
            if i == self.bufs.len() {
                // Warm-up only: the pool grows to the largest batch once.
                self.bufs.push(Vec::with_capacity(PACKET_CAPACITY));
            }
            match e.session.poll_transmit(now, &mut self.bufs[i]) {
                Some(dest) => self.batch.push(Transmit { key, dest }),
                None => break,
            }
        }
        self.after_input(key);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use rtp_rs::RtpReader;

    use super::*;
    use crate::codec::Codec;
    use crate::rtp::RtpSender;
    use crate::sdp::Direction;

    const FRAME_MS: u64 = 20;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn us(t0: Instant, us: u64) -> Instant {
        t0 + Duration::from_micros(us)
    }

    fn params(port: u16) -> SessionParams {
        SessionParams {
            codec: Codec::Pcmu,
            codec_pt: 0,
            telephone_event_pt: Some(101),
            remote: Some(SocketAddr::from(([192, 0, 2, 1], port))),
            local_direction: Direction::SendRecv,
            inactivity_timeout: Duration::from_secs(30),
        }
    }

    fn session(start: Instant, port: u16) -> MediaSession {
        MediaSession::with_sender(
            start,
            params(port),
            RtpSender::new(u32::from(port), 0, 0, 0),
        )
    }

    fn tone(id: &str, ms: usize) -> Arc<Prompt> {
        Arc::new(Prompt::from_pcm(id, &vec![8000i16; ms * 8]))
    }

    #[derive(Debug, Clone)]
    struct Sent {
        key: SessionKey,
        at: Instant,
        dest: SocketAddr,
        seq: u16,
        ts: u32,
        marker: bool,
    }

    /// Runs every due pass at `now` (as a worker does after one wake-up), collecting what
    /// was sent. Returns how many batches it took.
    fn pass(clock: &mut MediaClock<u16>, now: Instant, out: &mut Vec<Sent>) -> usize {
        let mut batches = 0;
        loop {
            let more = clock.handle_timeout(now);
            assert!(clock.batch_len() <= MAX_BATCH);
            batches += 1;
            for (key, dest, bytes) in clock.transmits() {
                let r = RtpReader::new(bytes).expect("valid RTP");
                out.push(Sent {
                    key,
                    at: now,
                    dest,
                    seq: r.sequence_number().into(),
                    ts: r.timestamp(),
                    marker: r.mark(),
                });
            }
            clock.clear_batch();
            if !more {
                return batches;
            }
        }
    }

    /// A worker in virtual time: sleeps until `poll_timeout` (rounded up to the next
    /// millisecond, like tokio's timer wheel), serves, repeats until `end`.
    fn run_until(clock: &mut MediaClock<u16>, t0: Instant, end: Instant) -> Vec<Sent> {
        let mut out = Vec::new();
        while let Some(at) = clock.poll_timeout() {
            let since = at.saturating_duration_since(t0);
            let wake = ms(t0, since.as_nanos().div_ceil(1_000_000) as u64);
            if wake > end {
                break;
            }
            pass(clock, wake, &mut out);
        }
        out
    }

    fn notices(clock: &mut MediaClock<u16>) -> Vec<(SessionKey, MediaNotice)> {
        std::iter::from_fn(|| clock.poll_notice()).collect()
    }

    /// `t` rounded up to the next whole millisecond after `t0` (the worker's wake-up).
    fn ceil_ms(t0: Instant, t: Instant) -> Instant {
        let since = t.saturating_duration_since(t0);
        ms(t0, since.as_nanos().div_ceil(1_000_000) as u64)
    }

    #[test]
    fn many_sessions_each_send_fifty_frames_a_second_on_their_own_grid() {
        let t0 = Instant::now();
        let end = ms(t0, 1040);
        let mut clock = MediaClock::new();
        let mut starts = HashMap::new();
        let welcome = tone("welcome", 2_000);
        // 1000 calls answered 37 µs apart: their grids have every phase in the period.
        for i in 0..1000u16 {
            let start = us(t0, u64::from(i) * 37);
            let key = clock.insert(session(start, 10_000 + i), 10_000 + i);
            clock.play(key, start, 1, [welcome.clone()]);
            starts.insert(key, start);
        }
        assert_eq!(clock.len(), 1000);
        let sent = run_until(&mut clock, t0, end);
        let mut per_key: HashMap<SessionKey, Vec<&Sent>> = HashMap::new();
        for s in &sent {
            per_key.entry(s.key).or_default().push(s);
        }
        assert_eq!(per_key.len(), 1000);
        for (key, packets) in per_key {
            let start = starts[&key];
            assert_eq!(
                clock
                    .data(key)
                    .map(|p| SocketAddr::from(([192, 0, 2, 1], *p))),
                Some(packets[0].dest)
            );
            // Every frame due (by the worker's millisecond wake-ups) by `end`, no more.
            let due = (0..)
                .map(|k| ceil_ms(t0, start + Duration::from_millis(FRAME_MS * k)))
                .take_while(|w| *w <= end)
                .count();
            assert_eq!(packets.len(), due);
            assert!(packets.len() >= 51, "a second's worth: {}", packets.len());
            for (k, p) in packets.iter().enumerate() {
                let due = start + Duration::from_millis(FRAME_MS * k as u64);
                let lag = p.at.duration_since(due);
                assert!(
                    lag < Duration::from_millis(1),
                    "frame {k} sent {lag:?} late"
                );
                assert_eq!(p.seq, k as u16, "one packet per frame, no gap");
                assert_eq!(p.ts, 160 * k as u32);
                assert_eq!(p.marker, k == 0, "a talkspurt starts with the prompt only");
            }
        }
        // The 2 s prompt is still playing everywhere (shared, not copied).
        assert_eq!(Arc::strong_count(&welcome), 1001);
        // One wake-up per millisecond at most.
        let wakes: std::collections::BTreeSet<Instant> = sent.iter().map(|s| s.at).collect();
        assert!(wakes.len() <= 1041, "{}", wakes.len());
    }

    #[test]
    fn poll_timeout_is_the_earliest_frame_and_nothing_is_sent_early() {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        let a = clock.insert(session(ms(t0, 5), 1), 1);
        let b = clock.insert(session(ms(t0, 12), 2), 2);
        assert_eq!(clock.poll_timeout(), Some(ms(t0, 5)));
        let mut out = Vec::new();
        pass(&mut clock, ms(t0, 4), &mut out);
        assert!(out.is_empty(), "nothing due before 5 ms");
        pass(&mut clock, ms(t0, 5), &mut out);
        assert_eq!(out.iter().map(|s| s.key).collect::<Vec<_>>(), vec![a]);
        assert_eq!(clock.poll_timeout(), Some(ms(t0, 12)));
        pass(&mut clock, ms(t0, 12), &mut out);
        assert_eq!(out.last().map(|s| s.key), Some(b));
        assert_eq!(clock.poll_timeout(), Some(ms(t0, 25)));
    }

    #[test]
    fn a_late_wakeup_sends_at_most_three_catch_up_frames_per_session() {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        let keys: Vec<SessionKey> = (0..10u16)
            .map(|i| {
                let k = clock.insert(session(t0, i), i);
                clock.play(k, t0, 1, [tone("long", 5000)]);
                k
            })
            .collect();
        let mut out = Vec::new();
        pass(&mut clock, t0, &mut out);
        assert_eq!(out.len(), 10);
        out.clear();
        // The worker was starved for 100 ms: frames 1..=5 are due for every session.
        pass(&mut clock, ms(t0, 100), &mut out);
        assert_eq!(out.len(), 10 * 4, "the current frame + 3 late ones each");
        for k in &keys {
            let mine: Vec<&Sent> = out.iter().filter(|s| s.key == *k).collect();
            let seqs: Vec<u16> = mine.iter().map(|s| s.seq).collect();
            assert_eq!(seqs, vec![1, 2, 3, 4], "sequence numbers stay contiguous");
            let ts: Vec<u32> = mine.iter().map(|s| s.ts).collect();
            assert_eq!(
                ts,
                vec![320, 480, 640, 800],
                "frame 1 skipped: time stays true"
            );
            assert!(mine[0].marker, "resync marker after the skipped frame");
            let stats = clock.session(*k).map(|s| s.stats().late_frames_skipped);
            assert_eq!(stats, Some(1));
        }
        // Back on the grid at once: the next pass sends one frame each.
        out.clear();
        pass(&mut clock, ms(t0, 120), &mut out);
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn a_full_batch_is_continued_not_dropped() {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        let n = MAX_BATCH * 3 + 17;
        for i in 0..n {
            clock.insert(session(t0, i as u16), i as u16);
        }
        let mut out = Vec::new();
        let batches = pass(&mut clock, t0, &mut out);
        assert_eq!(out.len(), n);
        assert!(batches >= 4, "{batches} batches");
        let distinct: std::collections::HashSet<SessionKey> = out.iter().map(|s| s.key).collect();
        assert_eq!(distinct.len(), n, "each session exactly once");
        // Late by 60 ms: 4 frames each, still all of them, in bounded batches.
        out.clear();
        pass(&mut clock, ms(t0, 60), &mut out);
        assert_eq!(out.len(), n * 3, "frames 1, 2, 3 for everyone");
    }

    #[test]
    fn a_session_removed_mid_prompt_stops_at_once_and_its_key_dies() {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        let a = clock.insert(session(t0, 1), 1);
        let b = clock.insert(session(t0, 2), 2);
        clock.play(a, t0, 7, [tone("menu", 2000), tone("more", 1000)]);
        let sent = run_until(&mut clock, t0, ms(t0, 190));
        assert_eq!(sent.iter().filter(|s| s.key == a).count(), 10);
        let (fin, data) = clock.remove(a).expect("present");
        assert_eq!(data, 1);
        assert_eq!(fin.cut_short, Some(("menu".to_string(), 10)));
        assert_eq!(fin.stats.packets_sent, 10);
        assert_eq!(fin.stats.prompt_packets_sent, 10);
        assert_eq!(clock.len(), 1);
        // Nothing more for it: not sent, not addressable, no notices; b carries on.
        let sent = run_until(&mut clock, t0, ms(t0, 400));
        assert!(sent.iter().all(|s| s.key == b));
        assert_eq!(sent.len(), 11, "b's frames at 200, 220, ..., 400 ms");
        assert!(clock.remove(a).is_none());
        clock.play(a, ms(t0, 400), 8, [tone("x", 100)]);
        assert!(clock.session(a).is_none());
        // The slot is reused with a new generation: the old key does not reach the new call.
        let c = clock.insert(session(ms(t0, 401), 3), 3);
        assert_eq!(c.index(), a.index());
        assert_ne!(c, a);
        assert_eq!(clock.key_at(a.index()), Some(c));
        clock.stop(a, 9);
        assert!(clock.remove(a).is_none());
        assert_eq!(clock.data(c), Some(&3));
        assert!(notices(&mut clock).is_empty());
    }

    #[test]
    fn after_a_peak_the_slots_start_over_and_old_keys_stay_dead() {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        let keys: Vec<_> = (0..500).map(|i| clock.insert(session(t0, i), i)).collect();
        for &k in &keys {
            clock.play(k, t0, 1, [tone("menu", 1000)]);
        }
        run_until(&mut clock, t0, ms(t0, 100));
        // Still one live session: the table is kept (slots are addressed by index).
        for &k in &keys[1..] {
            assert!(clock.remove(k).is_some());
            clock.give_back();
        }
        assert!(clock.slots.capacity() >= 500);
        assert!(clock.remove(keys[0]).is_some());
        clock.give_back();
        assert_eq!(clock.slots.capacity(), 0);
        assert!(
            clock.timers.is_empty(),
            "stale deadlines dropped with the slots"
        );
        // A new call takes slot 0 again, under a generation no old key has.
        let fresh = clock.insert(session(ms(t0, 200), 9), 9);
        assert_eq!(fresh.index(), keys[0].index());
        for &old in &keys {
            assert!(clock.session(old).is_none());
            clock.play(old, ms(t0, 200), 2, [tone("x", 100)]);
        }
        assert!(clock.remove(keys[0]).is_none());
        assert_eq!(clock.data(fresh), Some(&9));
        let sent = run_until(&mut clock, ms(t0, 200), ms(t0, 300));
        assert!(sent.iter().all(|s| s.key == fresh));
    }

    #[test]
    fn notices_carry_the_epoch_and_stop_reports_how_far_the_prompt_got() {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        let k = clock.insert(session(t0, 1), 1);
        clock.play(k, t0, 1, [tone("a", 40), tone("b", 20)]);
        run_until(&mut clock, t0, ms(t0, 100));
        assert_eq!(
            notices(&mut clock),
            vec![
                (
                    k,
                    MediaNotice::PromptFinished {
                        epoch: 1,
                        id: "a".into(),
                        frames_sent: 2
                    }
                ),
                (
                    k,
                    MediaNotice::PromptFinished {
                        epoch: 1,
                        id: "b".into(),
                        frames_sent: 1
                    }
                ),
            ]
        );
        clock.play(k, ms(t0, 100), 2, [tone("menu", 1000)]);
        run_until(&mut clock, t0, ms(t0, 160));
        clock.stop(k, 3);
        assert_eq!(
            notices(&mut clock),
            vec![(
                k,
                MediaNotice::PromptStopped {
                    id: "menu".into(),
                    frames_sent: 3
                }
            )]
        );
        // A zero-length prompt finishes at once, under the new epoch.
        clock.play(
            k,
            ms(t0, 170),
            4,
            [Arc::new(Prompt::from_pcm("empty", &[]))],
        );
        assert_eq!(
            notices(&mut clock),
            vec![(
                k,
                MediaNotice::PromptFinished {
                    epoch: 4,
                    id: "empty".into(),
                    frames_sent: 0
                }
            )]
        );
    }

    #[test]
    fn enqueued_prompts_follow_in_the_same_epoch() {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        let k = clock.insert(session(t0, 1), 1);
        clock.play(k, t0, 5, [tone("a", 40)]);
        clock.enqueue(k, [tone("b", 20)]);
        let sent = run_until(&mut clock, t0, ms(t0, 100));
        assert_eq!(sent.iter().filter(|s| s.marker).count(), 1, "one talkspurt");
        let ids: Vec<(String, u32)> = notices(&mut clock)
            .into_iter()
            .filter_map(|(_, n)| match n {
                MediaNotice::PromptFinished { epoch, id, .. } => Some((id, epoch)),
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec![("a".into(), 5), ("b".into(), 5)]);
    }

    #[test]
    fn held_sessions_wake_only_for_their_own_timers_and_resume_on_the_grid() {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        let k = clock.insert(session(t0, 1), 1);
        let mut hold = params(1);
        hold.local_direction = Direction::RecvOnly;
        clock.update(k, t0, hold);
        clock.play(k, t0, 1, [tone("menu", 200)]);
        // Frame 0 was due at t0: it elapses unsent in the first pass.
        assert_eq!(clock.poll_timeout(), Some(t0));
        assert!(run_until(&mut clock, t0, t0).is_empty());
        // No frames while held: the only deadline is the end of the unheard prompt.
        assert_eq!(clock.poll_timeout(), Some(ms(t0, 200)));
        assert!(run_until(&mut clock, t0, ms(t0, 1000)).is_empty());
        assert_eq!(
            notices(&mut clock),
            vec![(
                k,
                MediaNotice::PromptFinished {
                    epoch: 1,
                    id: "menu".into(),
                    frames_sent: 0
                }
            )]
        );
        // Only the inactivity timer is left (30 s): resuming moves the deadline earlier.
        assert_eq!(clock.poll_timeout(), Some(ms(t0, 30_000)));
        clock.update(k, ms(t0, 1010), params(1));
        assert_eq!(clock.poll_timeout(), Some(ms(t0, 1020)));
        let sent = run_until(&mut clock, t0, ms(t0, 1100));
        assert_eq!(sent.len(), 5);
        assert!(sent[0].marker);
        assert_eq!(sent[0].ts, 51 * 160, "frames 0..=50 elapsed on hold");
    }

    #[test]
    fn received_digits_and_inactivity_become_notices() {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        let mut p = params(1);
        p.inactivity_timeout = Duration::from_secs(1);
        let k = clock.insert(
            MediaSession::with_sender(t0, p, RtpSender::new(1, 0, 0, 0)),
            1,
        );
        let from = SocketAddr::from(([198, 51, 100, 7], 4000));
        let mut te = RtpSender::new(99, 10, 8000, 101);
        let mut pkt = Vec::new();
        te.write_frame(&[5, 0x8a, 0x03, 0x20], &mut pkt);
        clock.handle_rtp(k, ms(t0, 30), from, &pkt);
        let n = notices(&mut clock);
        assert!(
            matches!(n.as_slice(), [(key, MediaNotice::Digit(d))] if *key == k && d.digit == '5'),
            "{n:?}"
        );
        // Symmetric RTP: the next frame goes where the digit came from.
        let sent = run_until(&mut clock, t0, ms(t0, 40));
        assert_eq!(sent.last().map(|s| s.dest), Some(from));
        // Silence from then on: inactive 1 s after the last packet, reported once.
        run_until(&mut clock, t0, ms(t0, 1020));
        assert!(
            notices(&mut clock).is_empty(),
            "1 s after the last packet, not before"
        );
        run_until(&mut clock, t0, ms(t0, 1040));
        assert_eq!(notices(&mut clock), vec![(k, MediaNotice::Inactive)]);
        run_until(&mut clock, t0, ms(t0, 3000));
        assert!(notices(&mut clock).is_empty());
    }

    #[test]
    fn stale_queue_entries_do_not_cause_extra_wakeups_or_double_sends() {
        let t0 = Instant::now();
        let mut clock = MediaClock::new();
        let k = clock.insert(session(t0, 1), 1);
        let mut hold = params(1);
        hold.local_direction = Direction::RecvOnly;
        // Five hold/resume cycles: on hold the deadline moves to the end of a long unheard
        // prompt; each resume moves it back to the next frame, leaving a stale entry (each
        // prompt shorter than the last, so no stale entry ever reaches the top early).
        for i in 0..5u64 {
            let t = ms(t0, i * 100);
            run_until(&mut clock, t0, t);
            clock.update(k, t, hold.clone());
            clock.play(k, t, i as u32, [tone("long", 10_000 - i as usize * 1000)]);
            run_until(&mut clock, t0, t + Duration::from_millis(50));
            clock.update(k, t + Duration::from_millis(51), params(1));
        }
        assert!(
            clock.timers.len() >= 5,
            "stale entries are still queued: {:?}",
            clock.timers
        );
        let mut out = Vec::new();
        let mut wakes = 0;
        while let Some(at) = clock.poll_timeout() {
            if at > ms(t0, 12_000) {
                break;
            }
            wakes += 1;
            pass(&mut clock, at, &mut out);
        }
        // Resumed at 451 ms: frames 23..=600 (460 ms .. 12 s), one packet and one
        // wake-up each, although five stale entries (6.4 .. 10 s) were passed on the way.
        let expected = (12_000 - 460) / 20 + 1;
        assert_eq!(out.len(), expected);
        assert_eq!(wakes, expected, "no wake-up for a stale entry");
        for w in out.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
            assert_eq!(w[1].at - w[0].at, Duration::from_millis(20));
        }
        assert!(
            clock.timers.len() <= 2,
            "stale entries pruned: {}",
            clock.timers.len()
        );
    }
}
