//! Outbound campaigns: the 9090 invitation call-out (PROGRAM.md §3 step 1) and the
//! satisfaction-survey runs (step 4) — the *decision logic* only.
//!
//! Everything here is sans-IO (ARCHITECTURE-GUIDE §2): plain state machines fed input
//! and `now` — a `jiff::Timestamp` for wall-clock decisions (calling windows, retry
//! times) and a `std::time::Instant` for pacing — that never read a clock, touch a
//! socket or the database. Tests run days of campaign in milliseconds.
//!
//! - [`policy`] — `CampaignPolicy` (TOML, `deny_unknown_fields`, defaults, `validate`
//!   naming the key): kind, dialplan, limits, ring timeout, calling windows, days,
//!   excluded dates, time zone, max attempts, retry delays per disposition.
//! - [`window`] — `is_allowed` / `next_allowed`: calling windows in the policy's zone.
//! - [`retry`] — `Disposition` (from a SIP final), `CallOutcome` (the flow's result),
//!   `next_attempt` → `Retry { not_before }` | `Done { reason }`.
//! - [`pacer`] — `Pacer`: concurrency, calls per second (exact guarantee in its doc),
//!   trunk-throttling detection with AIMD recovery.
//! - [`campaign`] — `Campaign`: Draft/Running/Paused/Stopped/Completed over an in-memory
//!   contact list; `poll_dial` → `DialOrder`, `call_answered`, `attempt_finished`,
//!   `poll_timeout`, `progress`; `OptOutList`, the shared do-not-call set.
//!
//! # What the call layer and the store must add
//!
//! **Driving.** One task per campaign: `poll_dial` in a loop, place each `DialOrder`
//! (INVITE from 9090, CANCEL after `ring_timeout`, then the policy's dialplan on
//! answer), sleep until `poll_timeout` or the next event, report `call_answered` on 2xx
//! and `attempt_finished` with `Disposition::from_sip(code, ring_timed_out)` and the
//! dialplan's `CallOutcome`. Store the raw SIP code (and Reason/Q.850) beside the
//! disposition. Operator commands map to `start`/`pause`/`resume`/`stop`.
//!
//! **Exactly-once dialling.** The in-memory list is a stand-in: the store-backed
//! campaign must *claim* an attempt before the INVITE leaves, so that two instances, a
//! restart or a retry never dial the same attempt twice:
//!
//! 1. **claim** — in one transaction: the contact is still due (`not_before ≤ now`, not
//!    done, not opted out, not claimed), insert the attempt row
//!    `(campaign, contact, attempt_no)` — unique — with status `dialing` and the SIP
//!    Call-ID we are about to use, and mark the contact `dialing`. A conflict means
//!    someone else has it: skip.
//! 2. **INVITE** — only after the claim committed.
//! 3. **record the final** — in one transaction: the attempt's disposition, SIP code,
//!    outcome and times; the contact's next state from `next_attempt`
//!    (`not_before`, charged attempt count) or done; an opt-out into the do-not-call
//!    table (shared by every campaign, consulted at claim time).
//!
//! **On restart**, attempts left `dialing` are *resolved from the call records* (by
//! Call-ID): a final or a BYE on record → apply it as above; no trace that the INVITE
//! ever left → release the claim as an uncharged retry; a call that may have reached the
//! subscriber but has no final → treat as `failed` (charged), never as "not dialled".
//! They are never re-dialled blindly.
//!
//! The opt-out list, pacing state and throttling are per process here; with several
//! instances on one trunk, `max_cps`/`max_concurrent` must be split between them (or
//! enforced by a shared counter) — not needed for the 9090 deployment (one instance).

pub mod campaign;
pub mod pacer;
pub mod policy;
pub mod retry;
pub mod window;

pub use campaign::{
    Campaign, CampaignError, CampaignState, Contact, ContactId, ContactState, ContactStatus,
    DialOrder, OptOutList, Progress,
};
pub use pacer::{Pacer, ThrottleConfig};
pub use policy::{
    Backoff, CallingWindow, CampaignKind, CampaignPolicy, Day, PolicyError, PolicyProblem,
    RetryPolicy,
};
pub use retry::{CallOutcome, Disposition, DoneReason, RetryDecision, next_attempt};
pub use window::{is_allowed, next_allowed};
