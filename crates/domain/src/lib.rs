//! The 9090 program's decisions, as pure functions and sans-IO state machines.
//!
//! Nothing here reads a clock, touches a socket or names the database: every function
//! takes the time (`now`, `today`) and the state it decides on, and returns a decision
//! the service's edges carry out (the store writes it with its guard in SQL; the dialer
//! runtime dials). `Cargo.toml` is the proof: no tokio, no sqlx, no HTTP.
//!
//! - [`program`] — the program's rules (docs/program.md): eligibility, the registration
//!   and consultation windows in Asia/Ho_Chi_Minh, the status lifecycle, numbers.
//! - [`dialer`] — outbound campaigns' decisions: policy, calling windows, retry by
//!   disposition, pacing, the scheduler over running campaigns.
//! - [`campaign`] — a campaign's contacts and attempts: who is a contact, claim-time
//!   holds and closures, charging, retry and opt-out when an attempt ends, refunds
//!   after a throttling burst, restart recovery.
//! - [`vinmec`] — the Vinmec scheduling queue: leases, pre-screening, booking, the
//!   consultation, cancelling — `decide` returns the transition the store writes.
//! - [`handbook`] — the Covid-19 handbook link: gone after its last day, what counts as
//!   an open, whom to greet.

pub mod campaign;
pub mod dialer;
pub mod handbook;
mod names;
pub mod program;
pub mod vinmec;

pub use names::ParseEnumError;
