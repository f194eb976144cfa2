//! The service's one clock, injected: the edges (API handlers, the dialer runtime, the
//! call tasks, the CLI) read it and hand `now` to the decisions below them, which never
//! read a clock themselves. Tests set it instead of sleeping: a 15-minute lease expires,
//! a calling window opens or a day of campaign passes in a microsecond.
//!
//! Two readings, because they answer different questions: **wall** time
//! ([`Clock::now`], a `jiff::Timestamp`) for dates, calling windows, leases and records;
//! **monotonic** time ([`Clock::monotonic`]) for pacing, timeouts and deadlines, which
//! must not jump when the wall clock is set. The timers that *wait* (the SIP driver's,
//! the media workers', a call's ring timeout) sleep on tokio's timer, whose `Instant` is
//! the system clock's monotonic reading.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

/// A source of both readings. `Send + Sync`: shared by every task as a [`SharedClock`].
pub trait Clock: Send + Sync {
    /// Wall-clock time (UTC instant; local dates are derived in Asia/Ho_Chi_Minh).
    fn now(&self) -> Timestamp;
    /// Monotonic time, comparable with tokio's timer deadlines for the system clock.
    fn monotonic(&self) -> Instant;
}

/// The clock as the service passes it around.
pub type SharedClock = Arc<dyn Clock>;

/// The real clocks: the system's wall clock, and tokio's `Instant` (so callers' tests
/// with tokio's paused time see it move).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn monotonic(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// A clock that stands still until told otherwise (tests, replays). Both readings move
/// together: [`ManualClock::advance`] moves both, [`ManualClock::set`] moves the wall
/// clock and, when it goes forward, the monotonic one by as much (it never goes back).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<(Timestamp, Instant)>,
}

impl ManualClock {
    pub fn new(now: Timestamp) -> ManualClock {
        ManualClock {
            now: Mutex::new((now, Instant::now())),
        }
    }

    pub fn set(&self, now: Timestamp) {
        let mut g = self.now.lock().unwrap_or_else(|e| e.into_inner());
        let forward = Duration::try_from(now.duration_since(g.0)).unwrap_or(Duration::ZERO);
        *g = (now, g.1 + forward);
    }

    pub fn advance(&self, by: SignedDuration) {
        let mut g = self.now.lock().unwrap_or_else(|e| e.into_inner());
        let forward = Duration::try_from(by).unwrap_or(Duration::ZERO);
        *g = (g.0.checked_add(by).unwrap_or(g.0), g.1 + forward);
    }

    /// Moves both readings until the monotonic one is `at` (nothing if it is past).
    pub fn advance_to(&self, at: Instant) {
        let mut g = self.now.lock().unwrap_or_else(|e| e.into_inner());
        if at > g.1 {
            let by = SignedDuration::try_from(at - g.1).unwrap_or(SignedDuration::MAX);
            *g = (g.0.checked_add(by).unwrap_or(g.0), at);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.now.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn monotonic(&self) -> Instant {
        self.now.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_readings_move_together_and_monotonic_never_goes_back() {
        let t0: Timestamp = "2021-12-01T01:00:00Z".parse().unwrap();
        let c = ManualClock::new(t0);
        let m0 = c.monotonic();
        c.advance(SignedDuration::from_secs(90));
        assert_eq!(c.now(), t0 + SignedDuration::from_secs(90));
        assert_eq!(c.monotonic() - m0, Duration::from_secs(90));
        c.set(t0);
        assert_eq!(c.now(), t0);
        assert_eq!(
            c.monotonic() - m0,
            Duration::from_secs(90),
            "set back: wall only"
        );
        c.set(t0 + SignedDuration::from_secs(100));
        assert_eq!(c.monotonic() - m0, Duration::from_secs(190));
        c.advance_to(m0 + Duration::from_secs(200));
        assert_eq!(c.now(), t0 + SignedDuration::from_secs(110));
        c.advance_to(m0);
        assert_eq!(c.monotonic() - m0, Duration::from_secs(200));
    }
}
