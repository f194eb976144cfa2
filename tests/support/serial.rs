//! Tests whose outcome depends on real time outside the service run alone.
//!
//! libtest runs the tests of one binary in parallel threads (as many as there are cores:
//! two on the CI box), and cargo runs the test binaries one after the other. Most tests
//! here tolerate a neighbour: their waits are bounded generously, their clocks are the
//! test's (`ManualClock`, virtual time), or they ran beside a sibling of the same kind
//! when each file was its own binary, and still do. A few do not, because what they
//! assert is measured in wall-clock time by someone else, on a box whose two cores a
//! neighbour would share:
//!
//! - `campaign_pacing`: at most 5 INVITEs in any second *as SIPp stamps them*, and at
//!   least 4 (both limits really in play); a stalled SIPp stamps a queued INVITE late and
//!   the next on time;
//! - `api_live_browser`: headless chromium (CPU-heavy itself) must load the page and see
//!   three SIPp calls while they are up (8 s);
//! - `bench_smoke`: the load harness's smoke level — SIPp at 5 calls/s against the
//!   binary, every call must succeed and the task count return to its baseline.
//!
//! They live in the `realtime` test binary, and each takes [`alone`] (or
//! [`alone_blocking`] in a synchronous test) before it starts anything: inside the binary
//! they then run one at a time, and no other binary runs meanwhile — the same as when
//! each was a binary of its own with one test. A tokio mutex, not a std one: the guard is
//! held across `.await`s (clippy's `await_holding_lock`), and each test has its own
//! runtime, which a tokio mutex does not mind. It cannot be poisoned: a failing test
//! releases it for the next.

use tokio::sync::{Mutex, MutexGuard};

static REALTIME: Mutex<()> = Mutex::const_new(());

/// Waits until no other real-time test runs, and holds that until the guard is dropped
/// (keep it for the whole test: `let _alone = support::serial::alone().await;`).
pub async fn alone() -> MutexGuard<'static, ()> {
    REALTIME.lock().await
}

/// [`alone`] for a synchronous `#[test]` (must not be called inside a tokio runtime).
pub fn alone_blocking() -> MutexGuard<'static, ()> {
    REALTIME.blocking_lock()
}
