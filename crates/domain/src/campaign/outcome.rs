//! What the flow of an answered campaign call reports, and what a "call me later" asks
//! for.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::dialer::{CallOutcome, CampaignPolicy};
use crate::string_enum;

string_enum! {
    /// What the flow of an answered outbound call reported, as stored on the attempt.
    /// Richer than the dialer's [`CallOutcome`] (supervisors want to know *why* an
    /// invitation ended); [`FlowOutcome::call_outcome`] maps it for the retry decision.
    FlowOutcome, "flow outcome" {
        /// Invitation: registered (channel `outbound_call`).
        Registered = "registered",
        /// Invitation: the number already holds a registration.
        AlreadyRegistered = "already_registered",
        /// Invitation: no longer eligible (list, plan or charge changed).
        NotEligible = "not_eligible",
        /// Invitation: the 500 places were taken before the subscriber could register.
        CapFull = "cap_full",
        /// Invitation: outside the registration period.
        RegistrationClosed = "registration_closed",
        NotInterested = "not_interested",
        /// "Call me later" (the request is in the attempt's `call_later`).
        CallLater = "call_later",
        /// Pressed the opt-out key: on the do-not-call list for every campaign.
        OptedOut = "opted_out",
        SurveyCompleted = "survey_completed",
        /// Hung up (or gave up) part-way; the answers given are kept.
        SurveyPartial = "survey_partial",
    }
}

impl FlowOutcome {
    /// The dialer's view, for [`crate::dialer::next_attempt`]. Every invitation ending
    /// other than "call later" and opt-out is final: calling back someone who is
    /// registered, ineligible or too late for the program achieves nothing.
    pub fn call_outcome(self, call_later_at: Option<Timestamp>) -> CallOutcome {
        match self {
            FlowOutcome::Registered => CallOutcome::Registered,
            FlowOutcome::AlreadyRegistered
            | FlowOutcome::NotEligible
            | FlowOutcome::CapFull
            | FlowOutcome::RegistrationClosed
            | FlowOutcome::NotInterested => CallOutcome::NotInterested,
            FlowOutcome::CallLater => CallOutcome::CallLater { at: call_later_at },
            FlowOutcome::OptedOut => CallOutcome::OptOut,
            FlowOutcome::SurveyCompleted => CallOutcome::SurveyCompleted,
            FlowOutcome::SurveyPartial => CallOutcome::SurveyPartial,
        }
    }
}

/// When the subscriber asked to be called back. Turned into an instant when the
/// attempt finishes ([`call_later_at`], relative to its end), then moved into a calling
/// window by the retry rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallLaterRequest {
    /// "In about this long".
    After(Duration),
    /// The next day's first calling window (local time of the policy).
    Tomorrow,
}

impl CallLaterRequest {
    /// Parses what a dialplan variable holds: `"tomorrow"`, or a humantime duration
    /// (`"2h"`, `"30m"`). Empty means "no preference" (`None`).
    pub fn parse_var(s: &str) -> Result<Option<CallLaterRequest>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if s.eq_ignore_ascii_case("tomorrow") {
            return Ok(Some(CallLaterRequest::Tomorrow));
        }
        let d = humantime::parse_duration(s)
            .map_err(|e| format!("call_later {s:?} is not \"tomorrow\" or a duration: {e}"))?;
        if d.is_zero() || d > Duration::from_secs(14 * 24 * 3600) {
            return Err(format!("call_later {s:?} must be between 1s and 14 days"));
        }
        Ok(Some(CallLaterRequest::After(d)))
    }
}

/// When a "call me later" asks for: relative to the end of the call. `Tomorrow` is the
/// start of the next local day; the retry rules then move either into a calling window.
pub fn call_later_at(
    req: Option<CallLaterRequest>,
    ended_at: Timestamp,
    policy: &CampaignPolicy,
) -> Option<Timestamp> {
    match req? {
        CallLaterRequest::After(d) => Some(ended_at.saturating_add(d).unwrap_or(Timestamp::MAX)),
        CallLaterRequest::Tomorrow => {
            let tz: TimeZone = policy.tz();
            let tomorrow = ended_at
                .to_zoned_datetime(tz.clone())
                .date()
                .tomorrow()
                .ok()?;
            tz.to_ambiguous_timestamp(tomorrow.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .ok()
        }
    }
}
