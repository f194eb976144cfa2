//! A campaign's contacts and attempts as the rules see them: their states, why a
//! contact is done, how an attempt ended, and the facts the store reads back.

use jiff::Timestamp;

use super::outcome::{CallLaterRequest, FlowOutcome};
use crate::dialer::{Disposition, DoneReason};
use crate::string_enum;

string_enum! {
    /// Where a contact is in its campaign.
    ContactState, "contact state" {
        /// Due when `not_before` is unset (never dialled) or has passed.
        Waiting = "waiting",
        /// Claimed: exactly one attempt of it is `dialing`.
        Dialing = "dialing",
        /// Never dialled again by this campaign (`done_reason` says why).
        Done = "done",
    }
}

string_enum! {
    /// Why a contact is done: the dialer's [`DoneReason`]s plus what only the claim can
    /// find out (the subscriber moved on through another channel).
    ContactEnd, "contact done reason" {
        Completed = "completed",
        Rejected = "rejected",
        InvalidNumber = "invalid_number",
        OptedOut = "opted_out",
        MaxAttempts = "max_attempts",
        NoCallingWindow = "no_calling_window",
        Duplicate = "duplicate",
        /// Invitation: registered (hotline, another campaign) since the list was made.
        AlreadyRegistered = "already_registered",
        /// Survey: the registration was surveyed by another run.
        AlreadySurveyed = "already_surveyed",
    }
}

impl From<DoneReason> for ContactEnd {
    fn from(r: DoneReason) -> Self {
        match r {
            DoneReason::Completed => ContactEnd::Completed,
            DoneReason::Rejected => ContactEnd::Rejected,
            DoneReason::InvalidNumber => ContactEnd::InvalidNumber,
            DoneReason::OptedOut => ContactEnd::OptedOut,
            DoneReason::MaxAttempts => ContactEnd::MaxAttempts,
            DoneReason::NoCallingWindow => ContactEnd::NoCallingWindow,
            DoneReason::Duplicate => ContactEnd::Duplicate,
        }
    }
}

string_enum! {
    /// Where an attempt is.
    AttemptStatus, "attempt status" {
        /// Claimed; the INVITE may be out (see `started_at`).
        Dialing = "dialing",
        Finished = "finished",
        /// Recovered after a restart with no trace that the INVITE left: not charged.
        Released = "released",
    }
}

string_enum! {
    /// How an attempt's end was established.
    Resolution, "attempt resolution" {
        /// Reported by the dialer runtime (the store's `finish_attempt`).
        Final = "final",
        /// Restart: the call record of its Call-ID held the final.
        RecoveredRecord = "recovered_record",
        /// Restart: no call record, but the flow had recorded its outcome.
        RecoveredOutcome = "recovered_outcome",
        /// Restart: the INVITE never left; released uncharged.
        RecoveredNoTrace = "recovered_no_trace",
        /// Restart: the call may have reached the subscriber but no final is known:
        /// charged as failed (or as answered-incomplete when it was answered).
        RecoveredAmbiguous = "recovered_ambiguous",
    }
}

/// How an attempt ended, as the dialer runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptEnd {
    pub disposition: Disposition,
    /// Raw final status (`None`: no final at all, e.g. transport failure).
    pub sip_code: Option<u16>,
    /// Reason header text (`Q.850;cause=17;text="User busy"`), when one came.
    pub reason: Option<String>,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Timestamp,
    /// The pacer was throttling the trunk when this final came
    /// ([`crate::dialer::Pacer::is_throttling`]): a busy/congested final then does not
    /// burn the subscriber's attempt.
    pub throttled: bool,
}

impl AttemptEnd {
    /// From a SIP final (`ring_timed_out`: *we* CANCELled after `ring_timeout`).
    pub fn from_sip(code: u16, ring_timed_out: bool, ended_at: Timestamp) -> AttemptEnd {
        AttemptEnd {
            disposition: Disposition::from_sip(code, ring_timed_out),
            sip_code: Some(code),
            reason: None,
            answered_at: None,
            ended_at,
            throttled: false,
        }
    }

    /// An answered call that ended (BYE either way) at `ended_at`.
    pub fn answered(answered_at: Timestamp, ended_at: Timestamp) -> AttemptEnd {
        AttemptEnd {
            disposition: Disposition::Answered,
            sip_code: Some(200),
            reason: None,
            answered_at: Some(answered_at),
            ended_at,
            throttled: false,
        }
    }
}

/// A contact's state and counters, as the store read them: what the retry, refund and
/// charging rules look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactTally {
    pub state: ContactState,
    pub done_reason: Option<ContactEnd>,
    /// Claims made (the last `attempt_no`), released ones included.
    pub dials: u32,
    /// Attempts counted against `max_attempts`.
    pub attempts_charged: u32,
    /// Uncharged retries given (trunk throttling, our own CANCEL).
    pub uncharged: u32,
}

/// One attempt, as the store read it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptFacts {
    /// 1-based, unique per contact.
    pub attempt_no: u32,
    pub status: AttemptStatus,
    /// Set just before the INVITE was handed to the transport.
    pub started_at: Option<Timestamp>,
    pub answered_at: Option<Timestamp>,
    pub disposition: Option<Disposition>,
    /// What the flow recorded while the call was up.
    pub outcome: Option<FlowOutcome>,
    pub call_later: Option<CallLaterRequest>,
    /// Counted against `max_attempts`.
    pub charged: bool,
}
