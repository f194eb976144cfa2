//! Media workers: the I/O shell around [`MediaClock`], and the calls' handle on it.
//!
//! A few long-lived tokio tasks (one per runtime worker thread, see `app.rs`) each own a
//! [`MediaClock`] with the [`MediaSession`]s of their calls and those calls' RTP sockets.
//! A worker wakes on one timer — the clock's earliest deadline, i.e. about once per
//! millisecond under load — and sends every due frame in one pass; it wakes on socket
//! readiness to feed received RTP (symmetric-RTP latching, RFC 4733 digits, inactivity)
//! to the sessions; and on commands from calls. Calls never touch RTP: they hold a
//! [`MediaHandle`] (play, stop, update, close) and read [`MediaNotice`]s (prompt
//! finished, digit, inactive) from a channel, so a call task wakes only when something
//! happens on the call.
//!
//! **Receiving from thousands of sockets without a task each.** Every worker has its own
//! `mio::Poll` (an epoll instance) in which its calls' sockets are registered, with the
//! session's slot as the token. That epoll descriptor is itself registered with tokio
//! (`AsyncFd`): it becomes readable when any of its sockets is, so the worker wakes once
//! and learns exactly which sockets to read, with one `epoll_wait`. mio registers
//! edge-triggered, so a socket is read until `WouldBlock` (or a per-wake budget, after
//! which it is put on a backlog served before the worker sleeps again).
//!
//! **One socket per call** is kept (the port in our SDP is the call's own): the
//! destination port alone says which call a packet belongs to, so symmetric RTP latches
//! onto whatever address a NATed phone really sends from, exactly as before. The price
//! is one `sendto` per packet: `sendmmsg` batches per socket, and with one packet per
//! socket per pass there is nothing to batch. See ARCHITECTURE.md ("Decisions") for the
//! shared-socket alternative and why it was not taken.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use tongdai_capacity::GiveBack;

use tongdai_media::clock::{MediaClock, MediaFinal, MediaNotice, SessionKey};
use tongdai_media::prompt::Prompt;
use tongdai_media::session::{MediaSession, SessionParams};

/// Datagrams read from one socket per wake-up before the others get their turn.
const RX_BUDGET: usize = 64;
/// Readiness events taken from a worker's epoll per `epoll_wait`.
const EVENTS_CAPACITY: usize = 512;
/// Largest datagram we read; RTP with G.711 at 20 ms is 172 bytes.
const RX_BUFFER: usize = 2048;

fn now() -> Instant {
    // tokio's clock, so that tests with paused time see the same `now` as the timers.
    tokio::time::Instant::now().into_std()
}

/// Counters of one worker, for benchmarks and debugging.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Sessions currently owned.
    pub sessions: AtomicUsize,
    pub packets_sent: AtomicU64,
    /// `sendto` failures (a full socket buffer, an unreachable network): the frame is
    /// dropped, late media being worse than lost media.
    pub send_errors: AtomicU64,
    pub packets_received: AtomicU64,
    /// Times the worker woke up (timer, readiness or command).
    pub wakeups: AtomicU64,
    /// How far behind its frame slots the worker sends, in µs: the 95th percentile, over
    /// the last [`LAG_WINDOW`], of each packet's send pass lateness (how late the pass's
    /// oldest due frame was); 0 while the worker sends fewer than [`LAG_MIN_PACKETS`] per
    /// window. Around 1 ms (tokio's timer) when healthy; it grows when the worker does
    /// not get the CPU in time. The call layer refuses new calls above `rtp.max_send_lag`.
    pub lag_us: AtomicU64,
}

/// The window [`WorkerStats::lag_us`] is measured over: long enough that one scheduling
/// hiccup does not refuse calls, short enough to stop a ramp before media suffers.
pub const LAG_WINDOW: Duration = Duration::from_millis(500);

/// Below this many packets per window (100 calls' worth) the lag is not published: so
/// few calls do not load the box, and at that volume one late pass would be the tail.
pub const LAG_MIN_PACKETS: u32 = 2_500;

/// Lateness buckets of 1 ms; the last one holds everything later.
const LAG_BUCKETS: usize = 64;

/// The worker's send lateness over [`LAG_WINDOW`] windows, packet-weighted (sans-IO: fed
/// `now`). A tail, not a mean: at 3000 calls on a saturated 2-core box the mean stayed
/// under 10 ms while 57 % of the send intervals were off by more than 2 ms.
#[derive(Debug)]
pub struct LagWindow {
    start: Instant,
    packets: u32,
    buckets: [u32; LAG_BUCKETS],
}

impl LagWindow {
    pub fn new(now: Instant) -> Self {
        LagWindow {
            start: now,
            packets: 0,
            buckets: [0; LAG_BUCKETS],
        }
    }

    /// A send pass at `now` of `packets` frames whose oldest was due at `due`. Returns
    /// the window's 95th percentile when this pass closes a window (publish it), else
    /// `None`.
    pub fn sample(&mut self, now: Instant, due: Instant, packets: u32) -> Option<Duration> {
        if self.packets == 0 {
            // A window spans sending, not the idle time before it.
            self.start = now;
        }
        let ms = now.saturating_duration_since(due).as_millis();
        let bucket = usize::try_from(ms)
            .unwrap_or(usize::MAX)
            .min(LAG_BUCKETS - 1);
        self.buckets[bucket] = self.buckets[bucket].saturating_add(packets);
        self.packets = self.packets.saturating_add(packets);
        if now.saturating_duration_since(self.start) < LAG_WINDOW {
            return None;
        }
        let p95 = if self.packets < LAG_MIN_PACKETS {
            Duration::ZERO
        } else {
            let within = u64::from(self.packets) * 95 / 100;
            let mut seen = 0u64;
            let bucket = self
                .buckets
                .iter()
                .position(|&n| {
                    seen += u64::from(n);
                    seen >= within
                })
                .unwrap_or(LAG_BUCKETS - 1);
            // The bucket's upper edge: "95 % of packets went out within this".
            Duration::from_millis(bucket as u64 + 1)
        };
        *self = LagWindow::new(now);
        Some(p95)
    }
}

/// What a call asks of its media session.
enum Command {
    Add {
        id: u64,
        params: SessionParams,
        socket: std::net::UdpSocket,
        notices: mpsc::UnboundedSender<MediaNotice>,
    },
    Play {
        id: u64,
        epoch: u32,
        prompts: Vec<Arc<Prompt>>,
    },
    Enqueue {
        id: u64,
        prompts: Vec<Arc<Prompt>>,
    },
    Stop {
        id: u64,
        epoch: u32,
    },
    Update {
        id: u64,
        params: SessionParams,
    },
    Remove {
        id: u64,
        reply: Option<oneshot::Sender<MediaFinal>>,
    },
}

struct Worker {
    tx: mpsc::UnboundedSender<Command>,
    stats: Arc<WorkerStats>,
}

/// The service's media workers. Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct MediaWorkers {
    workers: Arc<[Worker]>,
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

impl MediaWorkers {
    /// Starts `count` workers (at least one) on the current tokio runtime. They run until
    /// `stop` is cancelled; their sockets close then.
    pub fn spawn(
        count: usize,
        stop: CancellationToken,
    ) -> io::Result<(MediaWorkers, Vec<tokio::task::JoinHandle<()>>)> {
        let mut workers = Vec::new();
        let mut joins = Vec::new();
        for index in 0..count.max(1) {
            let poll = mio::Poll::new()?;
            let registry = poll.registry().try_clone()?;
            // SAFETY: `mio::Poll` owns its epoll descriptor for its whole life and always
            // returns that one from `as_raw_fd`; the `AsyncFd` owns the `Poll`.
            let poll =
                unsafe { AsyncFd::register_with_interest(poll, tokio::io::Interest::READABLE) }?;
            let (tx, rx) = mpsc::unbounded_channel();
            let stats = Arc::new(WorkerStats::default());
            let state = State {
                index,
                clock: MediaClock::new(),
                ids: HashMap::new(),
                registry,
                events: mio::Events::with_capacity(EVENTS_CAPACITY),
                rx_buf: vec![0; RX_BUFFER].into_boxed_slice(),
                backlog: Vec::new(),
                stats: stats.clone(),
                lag: LagWindow::new(now()),
            };
            joins.push(tokio::spawn(state.run(rx, poll, stop.clone())));
            workers.push(Worker { tx, stats });
        }
        Ok((
            MediaWorkers {
                workers: workers.into(),
            },
            joins,
        ))
    }

    /// Hands a call's RTP socket and negotiated media to the least-loaded worker. The
    /// session's first frame is due at once (silence until a prompt is played). Notices
    /// come on the returned channel; it closes if the worker stops.
    pub fn add(
        &self,
        params: SessionParams,
        socket: std::net::UdpSocket,
    ) -> (MediaHandle, mpsc::UnboundedReceiver<MediaNotice>) {
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.stats.sessions.load(Ordering::Relaxed))
            .expect("spawn starts at least one worker");
        worker.stats.sessions.fetch_add(1, Ordering::Relaxed);
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let (notices, rx) = mpsc::unbounded_channel();
        let _ = worker.tx.send(Command::Add {
            id,
            params,
            socket,
            notices,
        });
        let handle = MediaHandle {
            id,
            tx: worker.tx.clone(),
            epoch: 0,
            open: true,
        };
        (handle, rx)
    }

    /// Sessions owned by all workers.
    pub fn sessions(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.stats.sessions.load(Ordering::Relaxed))
            .sum()
    }

    /// How far behind its frame slots the most lagging worker sends (see
    /// [`WorkerStats::lag_us`]).
    pub fn send_lag(&self) -> Duration {
        let us = self
            .workers
            .iter()
            .map(|w| w.stats.lag_us.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        Duration::from_micros(us)
    }

    /// Per-worker counters.
    pub fn stats(&self) -> Vec<Arc<WorkerStats>> {
        self.workers.iter().map(|w| w.stats.clone()).collect()
    }
}

/// A call's handle on its media session. Dropping it removes the session (and closes
/// the RTP socket); [`close`](MediaHandle::close) does the same and returns what the
/// session did.
pub struct MediaHandle {
    id: u64,
    tx: mpsc::UnboundedSender<Command>,
    epoch: u32,
    open: bool,
}

impl MediaHandle {
    /// Plays `prompts` back to back from the next frame on, replacing whatever played and
    /// anything queued (no notice for what was replaced). Returns the new epoch: the
    /// `PromptFinished` notices of these prompts carry it.
    pub fn play(&mut self, prompts: Vec<Arc<Prompt>>) -> u32 {
        self.epoch = self.epoch.wrapping_add(1);
        let _ = self.tx.send(Command::Play {
            id: self.id,
            epoch: self.epoch,
            prompts,
        });
        self.epoch
    }

    /// Queues `prompts` after whatever plays, in the current epoch (no new epoch: they
    /// extend the last `play`).
    pub fn enqueue(&self, prompts: Vec<Arc<Prompt>>) {
        let _ = self.tx.send(Command::Enqueue {
            id: self.id,
            prompts,
        });
    }

    /// Barge-in: stops the playback and drops the queue. A prompt that was still playing
    /// comes back as [`MediaNotice::PromptStopped`]; `PromptFinished` notices of the old
    /// epoch may still arrive (they crossed this command).
    pub fn stop(&mut self) -> u32 {
        self.epoch = self.epoch.wrapping_add(1);
        let _ = self.tx.send(Command::Stop {
            id: self.id,
            epoch: self.epoch,
        });
        self.epoch
    }

    /// The epoch of the last `play` or `stop`.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// A re-negotiation (re-INVITE: hold, resume, new codec or address).
    pub fn update(&self, params: SessionParams) {
        let _ = self.tx.send(Command::Update {
            id: self.id,
            params,
        });
    }

    /// Removes the session. Every notice it produced is in the notice channel before this
    /// returns. `None` when the worker is gone.
    pub async fn close(mut self) -> Option<MediaFinal> {
        self.open = false;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Remove {
                id: self.id,
                reply: Some(reply),
            })
            .ok()?;
        rx.await.ok()
    }
}

impl Drop for MediaHandle {
    fn drop(&mut self) {
        if self.open {
            let _ = self.tx.send(Command::Remove {
                id: self.id,
                reply: None,
            });
        }
    }
}

/// What a worker keeps per session besides the session itself.
struct Io {
    socket: UdpSocket,
    notices: mpsc::UnboundedSender<MediaNotice>,
}

struct State {
    index: usize,
    clock: MediaClock<Io>,
    /// Handle id → session key (a handle's id is global, the key is this clock's).
    ids: HashMap<u64, SessionKey>,
    registry: mio::Registry,
    events: mio::Events,
    rx_buf: Box<[u8]>,
    /// Slots whose socket still had data after a full budget.
    backlog: Vec<usize>,
    stats: Arc<WorkerStats>,
    lag: LagWindow,
}

impl State {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut poll: AsyncFd<mio::Poll>,
        stop: CancellationToken,
    ) {
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            let next = self.clock.poll_timeout();
            if next != armed {
                armed = next;
                sleep
                    .as_mut()
                    .reset(next.map_or_else(far, tokio::time::Instant::from_std));
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                cmd = commands.recv() => match cmd {
                    Some(cmd) => {
                        self.apply(cmd);
                        while let Ok(cmd) = commands.try_recv() {
                            self.apply(cmd);
                        }
                    }
                    None => break,
                },
                ready = poll.readable_mut() => match ready {
                    Ok(mut guard) => {
                        let drained = self.receive_ready(guard.get_inner_mut());
                        if drained {
                            guard.clear_ready();
                        }
                    }
                    Err(e) => {
                        tracing::error!(worker = self.index, error = %e, "media worker poll failed");
                        break;
                    }
                },
                _ = &mut sleep => {},
                _ = std::future::ready(()), if !self.backlog.is_empty() => {
                    self.receive_backlog();
                },
            }
            self.stats.wakeups.fetch_add(1, Ordering::Relaxed);
            self.send_due(now());
            self.flush_notices();
        }
        tracing::debug!(
            worker = self.index,
            sessions = self.clock.len(),
            "media worker stopped"
        );
    }

    fn apply(&mut self, cmd: Command) {
        let t = now();
        match cmd {
            Command::Add {
                id,
                params,
                socket,
                notices,
            } => {
                let io = Io {
                    socket: UdpSocket::from_std(socket),
                    notices,
                };
                let key = self.clock.insert(MediaSession::new(t, params), io);
                let registered = match self.clock.data_mut(key) {
                    Some(io) => self.registry.register(
                        &mut io.socket,
                        mio::Token(key.index()),
                        mio::Interest::READABLE,
                    ),
                    None => Ok(()),
                };
                match registered {
                    Ok(()) => {
                        self.ids.insert(id, key);
                    }
                    Err(e) => {
                        tracing::error!(worker = self.index, error = %e, "RTP socket not registered");
                        if let Some((_, io)) = self.clock.remove(key) {
                            let _ = io.notices.send(MediaNotice::Failed);
                        }
                        self.stats.sessions.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            Command::Play { id, epoch, prompts } => {
                if let Some(&key) = self.ids.get(&id) {
                    self.clock.play(key, t, epoch, prompts);
                }
            }
            Command::Enqueue { id, prompts } => {
                if let Some(&key) = self.ids.get(&id) {
                    self.clock.enqueue(key, prompts);
                }
            }
            Command::Stop { id, epoch } => {
                if let Some(&key) = self.ids.get(&id) {
                    self.clock.stop(key, epoch);
                }
            }
            Command::Update { id, params } => {
                if let Some(&key) = self.ids.get(&id) {
                    self.clock.update(key, t, params);
                }
            }
            Command::Remove { id, reply } => {
                // Everything the session said goes out before its final word.
                self.flush_notices();
                let Some(key) = self.ids.remove(&id) else {
                    return;
                };
                self.ids.give_back();
                if let Some((fin, mut io)) = self.clock.remove(key) {
                    let _ = self.registry.deregister(&mut io.socket);
                    // The port is free before the call hears that the session is gone.
                    drop(io);
                    self.stats.sessions.fetch_sub(1, Ordering::Relaxed);
                    if let Some(reply) = reply {
                        let _ = reply.send(fin);
                    }
                }
                self.clock.give_back();
                if self.clock.is_empty() {
                    // Nothing left to be late for: a past overload must not refuse
                    // the next calls.
                    self.lag = LagWindow::new(t);
                    self.stats.lag_us.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Reads every socket the worker's epoll reports. Returns whether the epoll's ready
    /// list was emptied (then tokio's readiness may be cleared).
    fn receive_ready(&mut self, poll: &mut mio::Poll) -> bool {
        if let Err(e) = poll.poll(&mut self.events, Some(Duration::ZERO)) {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::warn!(worker = self.index, error = %e, "epoll_wait failed");
            }
            return false;
        }
        let t = now();
        let mut n = 0;
        let mut slots = std::mem::replace(&mut self.events, mio::Events::with_capacity(0));
        for ev in slots.iter() {
            n += 1;
            self.receive_from(ev.token().0, t);
        }
        slots.clear();
        self.events = slots;
        n < EVENTS_CAPACITY
    }

    fn receive_backlog(&mut self) {
        let t = now();
        for index in std::mem::take(&mut self.backlog) {
            self.receive_from(index, t);
        }
    }

    /// Reads slot `index`'s socket until it would block or the budget is spent.
    fn receive_from(&mut self, index: usize, t: Instant) {
        let Some(key) = self.clock.key_at(index) else {
            return;
        };
        for _ in 0..RX_BUDGET {
            let received = match self.clock.data(key) {
                Some(io) => io.socket.recv_from(&mut self.rx_buf),
                None => return,
            };
            match received {
                Ok((len, from)) => {
                    self.stats.packets_received.fetch_add(1, Ordering::Relaxed);
                    let packet = self.rx_buf.get(..len).unwrap_or_default();
                    self.clock.handle_rtp(key, t, from, packet);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors surface here on some kernels (ECONNREFUSED): nothing to read.
                Err(e) => {
                    tracing::trace!(error = %e, "rtp recv error");
                    return;
                }
            }
        }
        self.backlog.push(index);
    }

    /// Sends everything due at `t`, batch by batch.
    fn send_due(&mut self, t: Instant) {
        // The oldest due frame: how late this pass is (sampled after sending, weighted
        // by what the pass sent).
        let due = self.clock.poll_timeout().filter(|due| *due <= t);
        let mut pass_packets = 0u64;
        loop {
            let more = self.clock.handle_timeout(t);
            let mut sent = 0u64;
            let mut errors = 0u64;
            for (key, dest, packet) in self.clock.transmits() {
                let Some(io) = self.clock.data(key) else {
                    continue;
                };
                match io.socket.send_to(packet, dest) {
                    Ok(_) => sent += 1,
                    Err(e) => {
                        errors += 1;
                        tracing::trace!(error = %e, %dest, "rtp send failed");
                    }
                }
            }
            self.stats.packets_sent.fetch_add(sent, Ordering::Relaxed);
            pass_packets += sent + errors;
            if errors > 0 {
                self.stats.send_errors.fetch_add(errors, Ordering::Relaxed);
            }
            self.clock.clear_batch();
            if !more {
                break;
            }
        }
        if let Some(due) = due
            && let Some(p95) =
                self.lag
                    .sample(t, due, u32::try_from(pass_packets).unwrap_or(u32::MAX))
        {
            let us = u64::try_from(p95.as_micros()).unwrap_or(u64::MAX);
            self.stats.lag_us.store(us, Ordering::Relaxed);
        }
    }

    fn flush_notices(&mut self) {
        while let Some((key, notice)) = self.clock.poll_notice() {
            if let Some(io) = self.clock.data(key) {
                let _ = io.notices.send(notice);
            }
        }
    }
}

/// Where a handle's session is, for tests of the shell.
#[cfg(test)]
impl MediaHandle {
    fn id(&self) -> u64 {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use tongdai_media::codec::Codec;
    use tongdai_media::rtp::RtpSender;
    use tongdai_media::sdp::Direction;

    fn params(remote: SocketAddr) -> SessionParams {
        SessionParams {
            codec: Codec::Pcmu,
            codec_pt: 0,
            telephone_event_pt: Some(101),
            remote: Some(remote),
            local_direction: Direction::SendRecv,
            inactivity_timeout: Duration::from_secs(30),
        }
    }

    fn socket() -> std::net::UdpSocket {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_nonblocking(true).expect("nonblocking");
        s
    }

    async fn recv(peer: &tokio::net::UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0u8; 2048];
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), peer.recv_from(&mut buf))
            .await
            .expect("RTP arrives")
            .expect("recv");
        (buf[..n].to_vec(), from)
    }

    /// The shell end to end on loopback: RTP out from the call's own port, a digit in,
    /// prompt notices, symmetric RTP, removal mid-prompt. Real time, but nothing is
    /// asserted about durations.
    #[test]
    fn the_lag_is_the_tail_of_a_window_of_sending_not_one_hiccup() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let late = |ms: u64| Duration::from_millis(ms);
        let mut w = LagWindow::new(t0);
        // Idle for a minute, then 200 calls' frames on time, in passes of 100 packets
        // every 10 ms, with one pass 30 ms late: the window starts with the first pass.
        let mut published = None;
        for i in 0..50u64 {
            let due = at(60_000 + i * 10);
            let lag = if i == 10 { late(30) } else { late(0) };
            published = published.or(w.sample(due + lag, due, 100));
        }
        assert_eq!(published, None, "under a window of sending: nothing yet");
        let p95 = w
            .sample(at(60_500), at(60_500), 100)
            .expect("a window has passed");
        assert_eq!(
            p95,
            late(1),
            "one late pass in 51 is not the 95th percentile"
        );
        // A worker whose passes are late by 8 ms one time in ten is reported as such.
        let mut tail = None;
        for i in 0..=50u64 {
            let due = at(61_000 + i * 10);
            let lag = if i % 10 == 0 { late(8) } else { late(0) };
            tail = w.sample(due + lag, due, 100).or(tail);
        }
        assert_eq!(tail, Some(late(9)));
        // A few calls (under LAG_MIN_PACKETS a window): nothing to blame on our load.
        let mut few = None;
        for i in 0..=50u64 {
            let due = at(62_000 + i * 10);
            few = w.sample(due + late(20), due, 10).or(few);
        }
        assert_eq!(few, Some(Duration::ZERO));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_through_a_media_worker() {
        let stop = CancellationToken::new();
        let (workers, joins) = MediaWorkers::spawn(2, stop.clone()).expect("spawn");
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("peer");
        let ours = socket();
        let our_addr = ours.local_addr().expect("addr");
        let (mut handle, mut notices) = workers.add(params(peer.local_addr().unwrap()), ours);
        assert!(handle.id() > 0);
        assert_eq!(workers.sessions(), 1);

        // Silence from the call's own port before any prompt.
        let (pkt, from) = recv(&peer).await;
        assert_eq!(from, our_addr, "sent from the port in our SDP");
        assert_eq!(pkt.len(), 172);
        assert_eq!(pkt[12..], [0xFF; 160]);

        // A two-frame prompt, then its notice with the play's epoch.
        let short = Arc::new(Prompt::from_pcm("short", &[4000i16; 320]));
        let epoch = handle.play(vec![short]);
        let n = tokio::time::timeout(Duration::from_secs(10), notices.recv())
            .await
            .expect("notice")
            .expect("open");
        assert_eq!(
            n,
            MediaNotice::PromptFinished {
                epoch,
                id: "short".into(),
                frames_sent: 2
            }
        );

        // An RFC 4733 digit from the peer becomes a notice.
        let mut te = RtpSender::new(7, 1, 8000, 101);
        let mut buf = Vec::new();
        te.write_frame(&[9, 0x8a, 0x03, 0x20], &mut buf);
        peer.send_to(&buf, our_addr).await.expect("send digit");
        let n = tokio::time::timeout(Duration::from_secs(10), notices.recv())
            .await
            .expect("notice")
            .expect("open");
        assert!(
            matches!(n, MediaNotice::Digit(d) if d.digit == '9'),
            "{n:?}"
        );

        // A long prompt cut by the hangup: close reports how far it got.
        let long = Arc::new(Prompt::from_pcm("long", &[-12_000i16; 80_000]));
        let first = long.frame(Codec::Pcmu, 0).expect("frame").to_vec();
        handle.play(vec![long]);
        loop {
            let (pkt, _) = recv(&peer).await;
            if pkt[12..] == first[..] {
                break; // the prompt's audio is on the wire
            }
        }
        let fin = handle.close().await.expect("worker alive");
        let (id, frames) = fin.cut_short.expect("cut short");
        assert_eq!(id, "long");
        assert!((1..500).contains(&frames), "{frames}");
        assert_eq!(fin.stats.packets_received, 1);
        assert_eq!(fin.stats.digits, 1);
        assert_eq!(workers.sessions(), 0);
        // The socket is closed: the port can be bound again.
        std::net::UdpSocket::bind(our_addr).expect("port released");

        // A dropped handle removes its session too.
        let (handle, _notices) = workers.add(params(peer.local_addr().unwrap()), socket());
        recv(&peer).await;
        drop(handle);
        for _ in 0..500 {
            if workers.sessions() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(workers.sessions(), 0);

        stop.cancel();
        for j in joins {
            j.await.expect("worker ends");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_are_spread_over_the_workers_and_notices_close_when_they_stop() {
        let stop = CancellationToken::new();
        let (workers, joins) = MediaWorkers::spawn(2, stop.clone()).expect("spawn");
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("sink");
        let remote = sink.local_addr().unwrap();
        let mut calls: Vec<_> = (0..6)
            .map(|_| workers.add(params(remote), socket()))
            .collect();
        let per_worker: Vec<usize> = workers
            .stats()
            .iter()
            .map(|s| s.sessions.load(Ordering::Relaxed))
            .collect();
        assert_eq!(per_worker, vec![3, 3]);
        stop.cancel();
        for j in joins {
            j.await.expect("worker ends");
        }
        let (handle, notices) = calls.pop().expect("a call");
        drop(notices);
        assert!(handle.close().await.is_none(), "worker gone");
        let (_, mut notices) = calls.pop().expect("a call");
        assert!(
            notices.recv().await.is_none(),
            "channel closed with the worker"
        );
    }
}
