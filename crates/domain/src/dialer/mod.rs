//! Outbound campaigns: the 9090 invitation call-out (docs/program.md §3 step 1) and the
//! satisfaction-survey runs (step 4).
//!
//! Everything here is sans-IO (ARCHITECTURE-GUIDE §2): plain state
//! machines fed input and `now` — a `jiff::Timestamp` for wall-clock decisions (calling
//! windows, retry times) and a `std::time::Instant` for pacing — that never read a
//! clock, touch a socket or the database. Tests run days of campaign in milliseconds.
//!
//! - [`policy`] — `CampaignPolicy` (TOML, `deny_unknown_fields`, defaults, `validate`
//!   naming the key): kind, dialplan, limits, ring timeout, calling windows, days,
//!   excluded dates, time zone, max attempts, retry delays per disposition.
//! - [`window`] — `is_allowed` / `next_allowed`: calling windows in the policy's zone.
//! - [`retry`] — `Disposition` (from a SIP final), `CallOutcome` (the flow's result),
//!   `next_attempt` → `Retry { not_before }` | `Done { reason }`.
//! - [`pacer`] — `Pacer`: concurrency, calls per second (exact guarantee in its doc),
//!   trunk-throttling detection with AIMD recovery.
//! - [`state`] — `CampaignState`: draft → running ⇄ paused → stopped / completed.
//! - [`scheduler`] — `Scheduler`: across running campaigns, whether a claim may be
//!   made now (holds, the inbound reserve, the pacer, the store's next due time) and
//!   what a call's end means for throttling (refunds).
//!
//! The I/O shell is the service's `dialer` module (tokio): its `Dialer` polls the
//! campaigns table, claims from the store, hands INVITEs to SIP through a `Placer`, and
//! reports each call's end to the store.
//!
//! # Exactly-once dialling
//!
//! The store (`store::campaign`) is the source of truth: an attempt is *claimed* in one
//! transaction (attempt row with the Call-ID about to be used, contact `dialing`) before
//! anything else; `attempt_started` is written just before the INVITE is handed to the
//! SIP driver; the INVITE carries exactly the claimed Call-ID; `finish_attempt` is
//! written once the call is over — for an answered call only after the dialplan's last
//! action result came back, so the outcome the flow recorded is always part of it. On
//! restart, `recover_dialing` resolves this instance's `dialing` attempts from the call
//! records and the attempt's own marks, never by dialling them again.
//!
//! Pacing and throttling are per process; with several instances on one trunk,
//! `max_cps`/`max_concurrent` apply per instance (the claims themselves are exclusive
//! across instances: see the store).

pub mod pacer;
pub mod policy;
pub mod retry;
pub mod scheduler;
pub mod state;
pub mod window;

pub use pacer::{Pacer, ThrottleConfig};
pub use policy::{
    Backoff, CallingWindow, CampaignKind, CampaignPolicy, Day, PolicyError, PolicyFileError,
    PolicyProblem, RetryPolicy,
};
pub use retry::{CallOutcome, Disposition, DoneReason, RetryDecision, next_attempt};
pub use scheduler::{CampaignInfo, Ended, Hold, Next, NotPlaced, Scheduler, SchedulerConfig};
pub use state::CampaignState;
pub use window::{is_allowed, next_allowed};
