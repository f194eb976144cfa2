//! What an attempt's end means for its contact: charged or not, retry when, done why —
//! and the same questions for a refund after a throttling burst and for an attempt a
//! restart found still `dialing`.

use jiff::Timestamp;

use super::contact::{
    AttemptEnd, AttemptFacts, AttemptStatus, ContactEnd, ContactState, ContactTally, Resolution,
};
use super::outcome::{FlowOutcome, call_later_at};
use crate::dialer::retry::{MAX_UNCHARGED_RETRIES, uncharged_retry};
use crate::dialer::{
    CallOutcome, CampaignKind, CampaignPolicy, CampaignState, Disposition, RetryDecision,
    next_allowed, next_attempt,
};

/// The retry decision for a finished attempt, and whether it counts against
/// `max_attempts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charge {
    pub decision: RetryDecision,
    pub charged: bool,
}

/// Charges an attempt: throttled busy/congested finals and our own CANCEL are
/// uncharged (at most [`MAX_UNCHARGED_RETRIES`] times, so a trunk that throttles for
/// hours cannot keep a contact cycling forever), everything else goes through
/// [`next_attempt`] counting this attempt.
pub fn charge(
    contact: &ContactTally,
    end: &AttemptEnd,
    outcome: Option<CallOutcome>,
    policy: &CampaignPolicy,
) -> Charge {
    let pressure = end.disposition.is_trunk_pressure();
    let uncharged = ((pressure && end.throttled) || end.disposition == Disposition::Canceled)
        && contact.uncharged < MAX_UNCHARGED_RETRIES
        && outcome != Some(CallOutcome::OptOut);
    if uncharged {
        return Charge {
            decision: uncharged_retry(end.ended_at, policy),
            charged: false,
        };
    }
    // Our own CANCEL past the uncharged allowance counts like any failure.
    let disposition = if end.disposition == Disposition::Canceled {
        Disposition::Failed
    } else {
        end.disposition
    };
    Charge {
        decision: next_attempt(
            contact.attempts_charged + 1,
            disposition,
            outcome,
            end.ended_at,
            policy,
        ),
        charged: true,
    }
}

/// Where a contact goes after a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactUpdate {
    pub state: ContactState,
    /// When it is due again (waiting contacts only).
    pub not_before: Option<Timestamp>,
    pub done_reason: Option<ContactEnd>,
}

impl From<RetryDecision> for ContactUpdate {
    fn from(decision: RetryDecision) -> Self {
        match decision {
            RetryDecision::Retry { not_before } => ContactUpdate {
                state: ContactState::Waiting,
                not_before: Some(not_before),
                done_reason: None,
            },
            RetryDecision::Done { reason } => ContactUpdate {
                state: ContactState::Done,
                not_before: None,
                done_reason: Some(ContactEnd::from(reason)),
            },
        }
    }
}

/// Everything finishing an attempt writes, decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finish {
    /// The flow's outcome as kept on the attempt and the contact: what it recorded,
    /// or `survey_partial` for a survey call that has answers but never completed.
    pub outcome: Option<FlowOutcome>,
    pub decision: RetryDecision,
    pub charged: bool,
    pub contact: ContactUpdate,
    /// The contact's counters afterwards.
    pub attempts_charged: u32,
    pub uncharged: u32,
    /// The subscriber opted out: the number goes on the do-not-call list (and every
    /// campaign's waiting contact of it is closed).
    pub do_not_call: bool,
}

/// Decides how an attempt that ended as `end` moves its contact on. The facts are what
/// the store read in the finishing transaction: the campaign's kind and policy, the
/// contact before this attempt, the attempt (the outcome and "call later" the flow
/// recorded), and whether the call left survey answers.
pub fn finish(
    kind: CampaignKind,
    policy: &CampaignPolicy,
    contact: &ContactTally,
    attempt: &AttemptFacts,
    has_survey_answers: bool,
    end: &AttemptEnd,
) -> Finish {
    let outcome = match attempt.outcome {
        None if kind == CampaignKind::Survey && has_survey_answers => {
            Some(FlowOutcome::SurveyPartial)
        }
        recorded => recorded,
    };
    let later = call_later_at(attempt.call_later, end.ended_at, policy);
    let call_outcome = outcome.map(|o| o.call_outcome(later));
    let Charge { decision, charged } = charge(contact, end, call_outcome, policy);
    Finish {
        outcome,
        decision,
        charged,
        contact: ContactUpdate::from(decision),
        attempts_charged: contact.attempts_charged.saturating_add(u32::from(charged)),
        uncharged: contact.uncharged.saturating_add(u32::from(!charged)),
        do_not_call: outcome == Some(FlowOutcome::OptedOut),
    }
}

/// Whether the attempt charged for a busy/congested final that turned out to be the
/// start of a trunk-throttling burst (the pacer tells) is given back, and the uncharged
/// retry that replaces it: only the contact's latest attempt, finished and charged,
/// while the contact waits (or is done for max attempts — the burst may have used up
/// its last one) and has uncharged retries left, in a campaign still running or
/// paused. `None` when not eligible.
pub fn refund(
    attempt: &AttemptFacts,
    contact: &ContactTally,
    campaign: CampaignState,
    now: Timestamp,
    policy: &CampaignPolicy,
) -> Option<RetryDecision> {
    let eligible = attempt.status == AttemptStatus::Finished
        && attempt.charged
        && attempt
            .disposition
            .is_some_and(Disposition::is_trunk_pressure)
        && contact.dials == attempt.attempt_no
        && contact.attempts_charged > 0
        && contact.uncharged < MAX_UNCHARGED_RETRIES
        && matches!(
            (contact.state, contact.done_reason),
            (ContactState::Waiting, _) | (ContactState::Done, Some(ContactEnd::MaxAttempts))
        )
        && matches!(campaign, CampaignState::Running | CampaignState::Paused);
    eligible.then(|| uncharged_retry(now, policy))
}

/// What the call records hold of a call, found by the attempt's Call-ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedCall<'a> {
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub final_status: Option<u16>,
    pub disposition: Disposition,
    pub end_reason: &'a str,
}

/// How to resolve an attempt found `dialing` at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Finish it as if the dialer runtime had reported this end.
    Finish {
        end: AttemptEnd,
        resolution: Resolution,
    },
    /// The INVITE never left: release the claim, uncharged.
    Release,
}

/// Resolves an attempt a restart found `dialing`, never by dialling it again: a call
/// record with its Call-ID → its final; no record but the flow recorded an outcome (or
/// survey answers) → answered; no record and never handed to the transport → released;
/// otherwise (the INVITE may have reached the subscriber) → `failed`, charged
/// (answered-but-incomplete when it was answered).
pub fn recover(
    attempt: &AttemptFacts,
    record: Option<&RecordedCall<'_>>,
    has_answers: bool,
    now: Timestamp,
) -> Recovery {
    if let Some(rec) = record {
        let disposition = if rec.answered_at.is_some() {
            Disposition::Answered
        } else if let Some(code) = rec.final_status {
            let ring_timeout = rec.disposition == Disposition::NoAnswer;
            Disposition::from_sip(code, ring_timeout)
        } else {
            rec.disposition
        };
        return Recovery::Finish {
            end: AttemptEnd {
                disposition,
                sip_code: rec.final_status,
                reason: (!rec.end_reason.is_empty()).then(|| rec.end_reason.to_owned()),
                answered_at: rec.answered_at,
                ended_at: rec.ended_at.unwrap_or(now),
                throttled: false,
            },
            resolution: Resolution::RecoveredRecord,
        };
    }
    let answered = attempt.answered_at.is_some() || attempt.outcome.is_some() || has_answers;
    if answered {
        let resolution = if attempt.outcome.is_some() || has_answers {
            Resolution::RecoveredOutcome
        } else {
            Resolution::RecoveredAmbiguous
        };
        return Recovery::Finish {
            end: AttemptEnd {
                disposition: Disposition::Answered,
                sip_code: None,
                reason: None,
                answered_at: attempt.answered_at,
                ended_at: now,
                throttled: false,
            },
            resolution,
        };
    }
    if attempt.started_at.is_none() {
        return Recovery::Release;
    }
    Recovery::Finish {
        end: AttemptEnd {
            disposition: Disposition::Failed,
            sip_code: None,
            reason: None,
            answered_at: None,
            ended_at: now,
            throttled: false,
        },
        resolution: Resolution::RecoveredAmbiguous,
    }
}

/// When the next waiting contact is due: the earliest `not_before` among them (`None`:
/// one was never dialled, so is due at once), no earlier than `now`, moved into a
/// calling window (`None` when the policy has none left).
pub fn next_due(
    earliest_not_before: Option<Timestamp>,
    now: Timestamp,
    policy: &CampaignPolicy,
) -> Option<Timestamp> {
    let at = earliest_not_before.map_or(now, |t| t.max(now));
    next_allowed(at, policy)
}
