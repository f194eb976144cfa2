//! `Pacer`: may a new outbound call start now? Concurrency, calls per second, and trunk
//! throttling — sans-IO, fed `Instant`s, never reading the clock.
//!
//! # The guarantee (what the tests check)
//!
//! With `max_concurrent = N` and `max_cps = r`, if calls are started only when
//! [`Pacer::poll_dial`] returned `true` at that same `now` (and each is reported with
//! [`Pacer::call_started`]):
//!
//! 1. at most `N` calls are in flight (started, not yet [`Pacer::call_ended`]);
//! 2. every half-open one-second window `(t − 1 s, t]` holds at most `ceil(r)` starts —
//!    a sliding log of the last second's starts enforces it exactly;
//! 3. over any interval of length `L`, at most `r·L + r` starts (never fewer than one
//!    burst cell): a GCRA token bucket with emission interval `1/r` and a burst of one
//!    second's worth (`max(1, r)` cells), so the long-run rate is `r` even when `r` is not
//!    an integer (2.5 cps: 3 in some seconds, 2 in others, 25 per 10 s).
//!
//! With [`Pacer::with_guard`], the window of (2) is `1 s + guard`: what the pacer
//! records is when a call was decided and handed over, and the INVITE reaches the wire
//! (and a peer's clock) a little later and with jitter, so a guard keeps the bound true
//! as the far end measures it (the dialer runtime uses 100 ms).
//!
//! While throttled, `r` above is the *effective* rate, which is never above `max_cps`,
//! so the bounds hold with `max_cps` too.
//!
//! # Trunk throttling (AIMD)
//!
//! [`Pacer::observe`] takes every final. When, within the last `window` (10 s), at least
//! `min_pressure` (5) finals were busy or congested (486/600/5xx) *and* they were more
//! than `min_ratio` (50 %) of the finals, the trunk is pushing back: the effective rate is
//! halved (multiplicative decrease, not below `floor_fraction · max_cps`) and held for
//! `hold` (60 s); then it recovers additively by `recovery_cps_per_sec` (0.1 cps each
//! second) up to `max_cps`. A burst while still reduced halves again. The observation
//! window is cleared at each trigger, so a new halving needs a new burst.
//!
//! [`Pacer::is_throttling`] is true during the hold. The campaign uses it to keep such
//! finals from burning the subscriber's attempts: a busy/congested final observed while
//! throttling (and the busy/congested finals of the burst that triggered it) is re-queued
//! after `retry.throttled` *without* counting an attempt — a subscriber's genuine busy is
//! indistinguishable at that moment, and one extra uncharged try is the cheaper mistake.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::retry::Disposition;

const SECOND: Duration = Duration::from_secs(1);

/// Tuning of the trunk-throttling detector. `Default` is the documented behaviour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThrottleConfig {
    pub window: Duration,
    pub min_pressure: u32,
    pub min_ratio: f64,
    pub hold: Duration,
    pub recovery_cps_per_sec: f64,
    pub floor_fraction: f64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            window: Duration::from_secs(10),
            min_pressure: 5,
            min_ratio: 0.5,
            hold: Duration::from_secs(60),
            recovery_cps_per_sec: 0.1,
            floor_fraction: 1.0 / 16.0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Throttle {
    reduced_cps: f64,
    hold_until: Instant,
}

/// Concurrency and call-rate limiter for one campaign (see the module doc).
#[derive(Debug)]
pub struct Pacer {
    max_concurrent: u32,
    max_cps: f64,
    cfg: ThrottleConfig,
    in_flight: u32,
    /// GCRA theoretical arrival time of the next cell.
    tat: Option<Instant>,
    /// Starts within the last second, oldest first.
    starts: VecDeque<Instant>,
    /// Finals within the throttle window: (when, busy-or-congested).
    finals: VecDeque<(Instant, bool)>,
    throttle: Option<Throttle>,
    last_now: Option<Instant>,
    /// Length of the sliding window of guarantee (2): one second plus the guard.
    window: Duration,
}

impl Pacer {
    /// `max_cps` must be finite and > 0 (the policy validates it); `max_concurrent` ≥ 1.
    pub fn new(max_concurrent: u32, max_cps: f64) -> Pacer {
        Pacer::with_throttle(max_concurrent, max_cps, ThrottleConfig::default())
    }

    pub fn with_throttle(max_concurrent: u32, max_cps: f64, cfg: ThrottleConfig) -> Pacer {
        let max_cps = if max_cps.is_finite() && max_cps > 0.0 {
            max_cps
        } else {
            1.0
        };
        Pacer {
            max_concurrent: max_concurrent.max(1),
            max_cps,
            cfg,
            in_flight: 0,
            tat: None,
            starts: VecDeque::new(),
            finals: VecDeque::new(),
            throttle: None,
            last_now: None,
            window: SECOND,
        }
    }

    /// Widens the per-second window to `1 s + guard` (see the module doc).
    pub fn with_guard(mut self, guard: Duration) -> Pacer {
        self.window = SECOND + guard;
        self
    }

    /// May a new call start at `now`? Does not reserve anything: report the start with
    /// [`Pacer::call_started`].
    pub fn poll_dial(&mut self, now: Instant) -> bool {
        self.tick(now);
        if self.in_flight >= self.max_concurrent {
            return false;
        }
        match self.rate_ready(now) {
            Some(ready) => now >= ready,
            None => true,
        }
    }

    /// A call started (INVITE sent) at `now`.
    pub fn call_started(&mut self, now: Instant) {
        self.tick(now);
        self.in_flight += 1;
        self.starts.push_back(now);
        let t = self.interval(now);
        let base = match self.tat {
            Some(tat) if tat > now => tat,
            _ => now,
        };
        self.tat = Some(base + t);
    }

    /// A call started earlier has ended (any final, or BYE after an answer).
    pub fn call_ended(&mut self, now: Instant) {
        self.tick(now);
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Feeds a final disposition to the trunk-throttling detector.
    pub fn observe(&mut self, now: Instant, disposition: Disposition) {
        self.tick(now);
        self.finals
            .push_back((now, disposition.is_trunk_pressure()));
        while let Some(&(t, _)) = self.finals.front() {
            if t + self.cfg.window <= now {
                self.finals.pop_front();
            } else {
                break;
            }
        }
        let total = self.finals.len() as f64;
        let pressure = self.finals.iter().filter(|(_, p)| *p).count();
        if pressure as u32 >= self.cfg.min_pressure && pressure as f64 > self.cfg.min_ratio * total
        {
            let floor = self.max_cps * self.cfg.floor_fraction;
            let reduced_cps = (self.effective_cps_at(now) / 2.0).max(floor);
            self.throttle = Some(Throttle {
                reduced_cps,
                hold_until: now + self.cfg.hold,
            });
            self.finals.clear();
        }
    }

    /// True while the rate is held down after a burst of busy/congested finals (as of
    /// the last `now` this pacer was given).
    pub fn is_throttling(&self) -> bool {
        match (self.throttle, self.last_now) {
            (Some(t), Some(now)) => now < t.hold_until,
            _ => false,
        }
    }

    /// When the next dial slot opens, for the caller's timer:
    /// `None` if concurrency is the limit (a `call_ended` opens the slot) or nothing
    /// limits; otherwise an instant, possibly already past. `poll_dial` at that instant
    /// returns `true` unless something else happened in between.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.at_capacity() {
            return None;
        }
        let now = self.last_now?;
        self.rate_ready(now)
    }

    /// All `max_concurrent` slots are taken.
    pub fn at_capacity(&self) -> bool {
        self.in_flight >= self.max_concurrent
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    pub fn max_concurrent(&self) -> u32 {
        self.max_concurrent
    }

    pub fn max_cps(&self) -> f64 {
        self.max_cps
    }

    /// The current calls-per-second limit (below `max_cps` while throttled/recovering).
    pub fn effective_cps(&self) -> f64 {
        match self.last_now {
            Some(now) => self.effective_cps_at(now),
            None => self.max_cps,
        }
    }

    fn effective_cps_at(&self, now: Instant) -> f64 {
        match self.throttle {
            None => self.max_cps,
            Some(t) if now < t.hold_until => t.reduced_cps,
            Some(t) => {
                let since = now.duration_since(t.hold_until).as_secs_f64();
                (t.reduced_cps + self.cfg.recovery_cps_per_sec * since).min(self.max_cps)
            }
        }
    }

    /// Emission interval `1/r` at the effective rate.
    fn interval(&self, now: Instant) -> Duration {
        Duration::from_secs_f64(1.0 / self.effective_cps_at(now))
    }

    /// Most starts in any one-second window at the effective rate.
    fn per_second_cap(&self, now: Instant) -> usize {
        // Tolerate float noise (5.000000001 must stay 5).
        ((self.effective_cps_at(now) - 1e-9).ceil() as usize).max(1)
    }

    /// Earliest instant the rate limits (GCRA and sliding log) allow a start, judged
    /// at `now`'s effective rate; `None` if unconstrained.
    fn rate_ready(&self, now: Instant) -> Option<Instant> {
        let t = self.interval(now);
        // Burst of one second's worth: tolerance τ = (max(1, r) − 1)·T = 1 s − T.
        let tau = SECOND.saturating_sub(t);
        let gcra = self.tat.map(|tat| tat.checked_sub(tau).unwrap_or(tat));
        let cap = self.per_second_cap(now);
        let log = if self.starts.len() >= cap {
            self.starts
                .get(self.starts.len() - cap)
                .map(|&oldest| oldest + self.window)
        } else {
            None
        };
        match (gcra, log) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    fn tick(&mut self, now: Instant) {
        let now = match self.last_now {
            Some(last) if last > now => last, // time never runs backwards here
            _ => now,
        };
        self.last_now = Some(now);
        while let Some(&s) = self.starts.front() {
            if s + self.window <= now {
                self.starts.pop_front();
            } else {
                break;
            }
        }
        if let Some(t) = self.throttle
            && now >= t.hold_until
            && self.effective_cps_at(now) >= self.max_cps
        {
            self.throttle = None;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Tiny deterministic PRNG (xorshift64*), enough for simulations.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed.max(1))
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Every start's trailing window `(s − 1 s, s]` holds at most `cap` starts.
    pub(crate) fn max_in_any_second(starts: &[Instant]) -> usize {
        let mut best = 0;
        for (i, &s) in starts.iter().enumerate() {
            let n = starts[..=i]
                .iter()
                .rev()
                .take_while(|&&x| x + SECOND > s)
                .count();
            best = best.max(n);
        }
        best
    }

    #[test]
    fn fresh_pacer_bursts_one_seconds_worth_then_waits() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100, 5.0);
        let mut n = 0;
        while p.poll_dial(t0) {
            p.call_started(t0);
            n += 1;
        }
        assert_eq!(n, 5);
        let next = p.poll_timeout().unwrap();
        assert_eq!(next, t0 + SECOND);
        assert!(!p.poll_dial(next - Duration::from_nanos(1)));
        assert!(p.poll_dial(next));
    }

    #[test]
    fn the_guard_widens_the_window() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100, 5.0).with_guard(Duration::from_millis(50));
        let mut starts = Vec::new();
        let mut now = t0;
        while starts.len() < 50 {
            if p.poll_dial(now) {
                p.call_started(now);
                starts.push(now);
            } else {
                now = p.poll_timeout().unwrap().max(now);
            }
        }
        for w in starts.windows(6) {
            assert!(w[5] - w[0] >= ms(1050), "{:?}", w[5] - w[0]);
        }
    }

    #[test]
    fn concurrency_is_the_limit_until_a_call_ends() {
        let t0 = Instant::now();
        let mut p = Pacer::new(2, 100.0);
        assert!(p.poll_dial(t0));
        p.call_started(t0);
        assert!(p.poll_dial(t0));
        p.call_started(t0);
        assert!(!p.poll_dial(t0 + ms(500)));
        assert!(p.at_capacity());
        assert_eq!(p.poll_timeout(), None);
        p.call_ended(t0 + ms(600));
        assert!(p.poll_dial(t0 + ms(600)));
    }

    #[test]
    fn fractional_rate_averages_out() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000, 2.5);
        let mut starts = Vec::new();
        let mut now = t0;
        while now < t0 + Duration::from_secs(100) {
            if p.poll_dial(now) {
                p.call_started(now);
                starts.push(now);
            } else {
                now = p.poll_timeout().unwrap().max(now);
            }
        }
        assert!(max_in_any_second(&starts) <= 3);
        // 100 s at 2.5/s plus one burst.
        assert!(starts.len() <= 250 + 3, "{}", starts.len());
        assert!(starts.len() >= 248, "{}", starts.len());
    }

    /// The brief's simulation: 300 contacts, random call durations, random finals that
    /// sometimes form busy bursts; each start only when `poll_dial` said yes.
    #[test]
    fn simulated_300_calls_never_exceed_limits() {
        for (seed, max_concurrent, max_cps) in [
            (1, 20, 5.0),
            (2, 20, 5.0),
            (3, 7, 2.5),
            (4, 50, 10.0),
            (5, 3, 0.7),
        ] {
            let t0 = Instant::now();
            let mut rng = Rng::new(seed);
            let mut p = Pacer::new(max_concurrent, max_cps);
            let mut ends: Vec<(Instant, Disposition)> = Vec::new();
            let mut starts = Vec::new();
            let mut peak = 0;
            let mut now = t0;
            let mut throttled_seen = false;
            while starts.len() < 300 || !ends.is_empty() {
                // Finish calls due now.
                ends.sort_by_key(|e| e.0);
                while let Some(&(at, d)) = ends.first() {
                    if at > now {
                        break;
                    }
                    ends.remove(0);
                    p.call_ended(at);
                    p.observe(at, d);
                    throttled_seen |= p.is_throttling();
                }
                while starts.len() < 300 && p.poll_dial(now) {
                    p.call_started(now);
                    starts.push(now);
                    let (dur, d) = match rng.below(10) {
                        0..=3 => (ms(20_000 + rng.below(100_000)), Disposition::Answered),
                        4..=6 => (ms(200 + rng.below(3_000)), Disposition::Busy),
                        7 => (ms(30_000), Disposition::NoAnswer),
                        8 => (ms(500 + rng.below(2_000)), Disposition::Rejected),
                        _ => (ms(100 + rng.below(500)), Disposition::Congested),
                    };
                    ends.push((now + dur, d));
                    peak = peak.max(p.in_flight());
                    assert!(p.in_flight() <= max_concurrent);
                }
                if starts.len() == 300 && ends.is_empty() {
                    break;
                }
                let next_end = ends.iter().map(|e| e.0).min();
                let next_slot = if starts.len() < 300 {
                    p.poll_timeout()
                } else {
                    None
                };
                now = match (next_end, next_slot) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).unwrap_or_else(|| {
                        panic!(
                            "stuck seed {seed} starts {} inflight {} ends {}",
                            starts.len(),
                            p.in_flight(),
                            ends.len()
                        )
                    }),
                }
                .max(now);
            }
            let cap = (max_cps - 1e-9).ceil() as usize;
            assert!(
                max_in_any_second(&starts) <= cap,
                "seed {seed}: {} > {cap}",
                max_in_any_second(&starts)
            );
            assert!(peak <= max_concurrent);
            // Long-run bound: any 10 s interval has at most r·10 + r starts.
            for (i, &s) in starts.iter().enumerate() {
                let n = starts[i..]
                    .iter()
                    .take_while(|&&x| x < s + Duration::from_secs(10))
                    .count();
                assert!(n as f64 <= max_cps * 11.0 + 1.0, "seed {seed}: {n}");
            }
            assert!(
                throttled_seen,
                "seed {seed}: the busy mix should trigger throttling"
            );
        }
    }

    #[test]
    fn burst_of_busy_halves_rate_then_recovers_additively() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100, 5.0);
        for i in 0..4 {
            p.observe(t0 + ms(i * 100), Disposition::Busy);
        }
        p.observe(t0 + ms(450), Disposition::Answered);
        assert!(!p.is_throttling());
        p.observe(t0 + ms(500), Disposition::Congested);
        assert!(p.is_throttling());
        assert_eq!(p.effective_cps(), 2.5);
        // Held for 60 s.
        assert!(p.poll_dial(t0 + Duration::from_secs(59)));
        assert!(p.is_throttling());
        assert_eq!(p.effective_cps(), 2.5);
        // Then +0.1 cps per second: 10 s after the hold, 3.5 cps.
        p.poll_dial(t0 + ms(70_500));
        assert!(!p.is_throttling());
        assert!(
            (p.effective_cps() - 3.5).abs() < 1e-9,
            "{}",
            p.effective_cps()
        );
        p.poll_dial(t0 + ms(85_500));
        assert_eq!(p.effective_cps(), 5.0);
    }

    #[test]
    fn throttled_rate_is_enforced() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100, 4.0);
        for i in 0..5 {
            p.observe(t0 + ms(i), Disposition::Busy);
        }
        assert_eq!(p.effective_cps(), 2.0);
        let mut starts = Vec::new();
        let mut now = t0 + ms(10);
        while now < t0 + Duration::from_secs(30) {
            if p.poll_dial(now) {
                p.call_started(now);
                p.call_ended(now);
                starts.push(now);
            } else {
                now = p.poll_timeout().unwrap().max(now);
            }
        }
        assert!(max_in_any_second(&starts) <= 2);
        assert!(starts.len() <= 2 * 30 + 2, "{}", starts.len());
    }

    #[test]
    fn busy_among_mostly_answered_is_not_throttling() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100, 5.0);
        for i in 0..6 {
            p.observe(t0 + ms(i * 100), Disposition::Busy);
            p.observe(t0 + ms(i * 100 + 50), Disposition::Answered);
            p.observe(t0 + ms(i * 100 + 70), Disposition::NoAnswer);
        }
        assert!(!p.is_throttling());
        // Five busy spread over more than 10 s: not a burst either.
        let mut p = Pacer::new(100, 5.0);
        for i in 0..5 {
            p.observe(t0 + Duration::from_secs(i * 3), Disposition::Busy);
        }
        assert!(!p.is_throttling());
    }
}
