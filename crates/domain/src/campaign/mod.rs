//! The rules of a campaign's contacts and attempts, over the facts the store reads:
//! who becomes a contact, whether a claim may be made and which due contacts are closed
//! instead of dialled, what an attempt's end means (charged or not, retry when, done
//! why, opt-out), when a throttled attempt is given back, and how a restart resolves an
//! attempt left `dialing`.
//!
//! [`crate::dialer`] decides one attempt's retry from its disposition
//! ([`crate::dialer::next_attempt`]); this module is the contact's bookkeeping around
//! it, in the vocabulary the store persists (contact and attempt states, the flow's
//! outcome, the reasons a contact is done). The store (`store::campaign`) reads the
//! rows, asks these functions, and writes what they decided with its guards in SQL
//! (conditional updates, the claim's locks); it knows none of the rules.
//!
//! - [`contact`] — contact and attempt states, why a contact is done, how an attempt
//!   ended ([`AttemptEnd`]), the facts read back ([`ContactTally`], [`AttemptFacts`]).
//! - [`outcome`] — the flow's outcome ([`FlowOutcome`]) and "call me later"
//!   ([`CallLaterRequest`], [`call_later_at`]).
//! - [`claim`] — creating ([`invitation_exclusion`], [`survey_exclusion`]) and claiming
//!   ([`claim_hold`], [`closed_at_claim`]).
//! - [`survey`] — the satisfaction survey's questions and the answers they accept.
//! - [`ending`] — an attempt's end ([`charge`], [`finish()`]), refunds ([`refund`]),
//!   restart recovery ([`recover`]), the next due time ([`next_due`]).

pub mod claim;
pub mod contact;
pub mod ending;
pub mod outcome;
pub mod survey;

#[cfg(test)]
mod tests;

pub use claim::{
    ClaimHold, Exclusion, claim_hold, closed_at_claim, invitation_exclusion, survey_exclusion,
};
pub use contact::{
    AttemptEnd, AttemptFacts, AttemptStatus, ContactEnd, ContactState, ContactTally, Resolution,
};
pub use ending::{
    Charge, ContactUpdate, Finish, RecordedCall, Recovery, charge, finish, next_due, recover,
    refund,
};
pub use outcome::{CallLaterRequest, FlowOutcome, call_later_at};
pub use survey::SurveyQuestion;
