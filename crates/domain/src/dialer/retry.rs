//! Dispositions of an outbound attempt and the retry decision that follows.
//!
//! The disposition set is ARCHITECTURE-GUIDE §6's; the raw SIP final code is kept next
//! to it by the store. 603 is kept apart from busy and is never re-dialled, nor are
//! invalid numbers and opted-out subscribers.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::policy::CampaignPolicy;
use super::window::next_allowed_in;

/// How an outbound attempt ended, as far as SIP tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Disposition {
    /// 2xx: the subscriber picked up (what they did is the `CallOutcome`).
    Answered,
    /// 486 Busy Here, 600 Busy Everywhere.
    Busy,
    /// 480, 408, or our own ring timeout followed by CANCEL.
    NoAnswer,
    /// 603 Decline: the subscriber refused. Never re-dialled.
    Rejected,
    /// 404, 484 (and 410, 604): the number does not exist. Never re-dialled.
    InvalidNumber,
    /// 500, 502, 503, 504: the network could not place the call.
    Congested,
    /// Any other final (4xx/5xx/6xx not above, transport errors).
    Failed,
    /// 487 after a CANCEL we sent for another reason than the ring timeout
    /// (campaign stopped, service shutting down). Not the subscriber's answer.
    Canceled,
}

impl Disposition {
    pub const ALL: &'static [Disposition] = &[
        Disposition::Answered,
        Disposition::Busy,
        Disposition::NoAnswer,
        Disposition::Rejected,
        Disposition::InvalidNumber,
        Disposition::Congested,
        Disposition::Failed,
        Disposition::Canceled,
    ];

    /// A final status on a call record, where no ring timeout of ours is involved
    /// (inbound calls, stored records): `from_sip(code, false)`.
    pub fn from_sip_status(code: u16) -> Disposition {
        Disposition::from_sip(code, false)
    }

    /// Maps a SIP final response code. `ring_timed_out` is true when *we* sent the
    /// CANCEL because `ring_timeout` expired: the 487 that follows is a no-answer.
    pub fn from_sip(code: u16, ring_timed_out: bool) -> Disposition {
        match code {
            200..=299 => Disposition::Answered,
            486 | 600 => Disposition::Busy,
            480 | 408 => Disposition::NoAnswer,
            603 => Disposition::Rejected,
            404 | 484 | 410 | 604 => Disposition::InvalidNumber,
            500 | 502 | 503 | 504 => Disposition::Congested,
            487 if ring_timed_out => Disposition::NoAnswer,
            487 => Disposition::Canceled,
            _ => Disposition::Failed,
        }
    }

    /// Finals that, in a burst, mean the trunk is pushing back rather than subscribers
    /// answering (see `Pacer::observe`).
    pub fn is_trunk_pressure(self) -> bool {
        matches!(self, Disposition::Busy | Disposition::Congested)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no_answer",
            Disposition::Rejected => "rejected",
            Disposition::InvalidNumber => "invalid_number",
            Disposition::Congested => "congested",
            Disposition::Failed => "failed",
            Disposition::Canceled => "canceled",
        }
    }
}

impl std::str::FromStr for Disposition {
    type Err = crate::program::ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Disposition::ALL
            .iter()
            .copied()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| crate::program::ParseEnumError {
                kind: "disposition",
                value: s.chars().take(40).collect(),
            })
    }
}

/// What the flow of an answered call reported (the dialplan's result).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// Invitation: the subscriber registered for the consultation.
    Registered,
    /// Invitation: heard the offer and declined.
    NotInterested,
    /// "Call me later", optionally at a time the subscriber chose.
    CallLater { at: Option<Timestamp> },
    /// Asked never to be called again (either flow). Added to the do-not-call list.
    OptOut,
    /// Survey: all questions answered.
    SurveyCompleted,
    /// Survey: hung up part-way.
    SurveyPartial,
}

/// Why a contact will not be dialled again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DoneReason {
    /// The flow reached an end: registered, not interested, survey completed.
    Completed,
    /// 603.
    Rejected,
    /// 404/484.
    InvalidNumber,
    /// Asked not to be called, now or in an earlier campaign.
    OptedOut,
    /// `max_attempts` charged attempts made.
    MaxAttempts,
    /// No calling window left (policy closed for three years).
    NoCallingWindow,
    /// The same number appears earlier in the contact list.
    Duplicate,
}

/// What to do with a contact after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Dial again, not before this instant (always inside a calling window).
    Retry {
        not_before: Timestamp,
    },
    Done {
        reason: DoneReason,
    },
}

/// The decision after the `prev_attempts`-th charged attempt (counting the one that
/// just finished, so ≥ 1) ended with `disposition` and, if answered, `outcome`.
///
/// * rejected (603), invalid number, opt-out: `Done` whatever the attempt count;
/// * registered / not interested / survey completed: `Done(Completed)`;
/// * busy 10 min, no answer 2 h, congested `base·factor^(n-1)` capped, failed 30 min,
///   answered-but-incomplete (call later without a time, partial survey, answered with
///   no outcome) `retry.incomplete`, call later at a time: that time (at the earliest
///   `finished_at`) — each then moved to the next calling-window opening, and `Done
///   (MaxAttempts)` once `prev_attempts ≥ max_attempts`;
/// * canceled (our own CANCEL): an *uncharged* retry after `retry.throttled`
///   ([`uncharged_retry`]); the caller must not count that attempt.
pub fn next_attempt(
    prev_attempts: u32,
    disposition: Disposition,
    outcome_hint: Option<CallOutcome>,
    finished_at: Timestamp,
    policy: &CampaignPolicy,
) -> RetryDecision {
    next_attempt_in(
        prev_attempts,
        disposition,
        outcome_hint,
        finished_at,
        policy,
        &policy.tz(),
    )
}

/// [`next_attempt`] with the zone already looked up.
pub fn next_attempt_in(
    prev_attempts: u32,
    disposition: Disposition,
    outcome_hint: Option<CallOutcome>,
    finished_at: Timestamp,
    policy: &CampaignPolicy,
    tz: &TimeZone,
) -> RetryDecision {
    use Disposition as D;
    let done = |reason| RetryDecision::Done { reason };
    if outcome_hint == Some(CallOutcome::OptOut) {
        return done(DoneReason::OptedOut);
    }
    let r = &policy.retry;
    let earliest = match disposition {
        D::Rejected => return done(DoneReason::Rejected),
        D::InvalidNumber => return done(DoneReason::InvalidNumber),
        D::Canceled => return uncharged_retry_in(finished_at, policy, tz),
        D::Answered => match outcome_hint {
            Some(CallOutcome::Registered)
            | Some(CallOutcome::NotInterested)
            | Some(CallOutcome::SurveyCompleted) => return done(DoneReason::Completed),
            Some(CallOutcome::CallLater { at: Some(at) }) => at.max(finished_at),
            Some(CallOutcome::CallLater { at: None })
            | Some(CallOutcome::SurveyPartial)
            | Some(CallOutcome::OptOut)
            | None => add(finished_at, r.incomplete),
        },
        D::Busy => add(finished_at, r.busy),
        D::NoAnswer => add(finished_at, r.no_answer),
        D::Congested => add(finished_at, r.congested.delay(prev_attempts)),
        D::Failed => add(finished_at, r.failed),
    };
    if prev_attempts >= policy.max_attempts {
        return done(DoneReason::MaxAttempts);
    }
    match next_allowed_in(earliest, policy, tz) {
        Some(not_before) => RetryDecision::Retry { not_before },
        None => done(DoneReason::NoCallingWindow),
    }
}

/// Uncharged retries (trunk throttling, our own CANCEL) a contact may get before its
/// attempts are charged anyway, so a trunk that throttles for hours cannot keep a
/// contact cycling forever.
pub const MAX_UNCHARGED_RETRIES: u32 = 10;

/// A retry that is not the subscriber's doing and does not count against
/// `max_attempts`: after `retry.throttled`, moved into a calling window.
pub fn uncharged_retry(finished_at: Timestamp, policy: &CampaignPolicy) -> RetryDecision {
    uncharged_retry_in(finished_at, policy, &policy.tz())
}

/// [`uncharged_retry`] with the zone already looked up.
pub fn uncharged_retry_in(
    finished_at: Timestamp,
    policy: &CampaignPolicy,
    tz: &TimeZone,
) -> RetryDecision {
    match next_allowed_in(add(finished_at, policy.retry.throttled), policy, tz) {
        Some(not_before) => RetryDecision::Retry { not_before },
        None => RetryDecision::Done {
            reason: DoneReason::NoCallingWindow,
        },
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use jiff::tz::TimeZone;

    fn vn(d: i8, h: i8, mi: i8) -> Timestamp {
        TimeZone::fixed(jiff::tz::offset(7))
            .to_timestamp(date(2021, 11, d).at(h, mi, 0, 0))
            .unwrap()
    }

    fn retry_at(t: Timestamp) -> RetryDecision {
        RetryDecision::Retry { not_before: t }
    }

    #[test]
    fn sip_codes_map_to_dispositions() {
        use Disposition as D;
        let m = |c| Disposition::from_sip(c, false);
        assert_eq!(m(200), D::Answered);
        assert_eq!(m(486), D::Busy);
        assert_eq!(m(600), D::Busy);
        assert_eq!(m(480), D::NoAnswer);
        assert_eq!(m(408), D::NoAnswer);
        assert_eq!(m(603), D::Rejected);
        assert_eq!(m(404), D::InvalidNumber);
        assert_eq!(m(484), D::InvalidNumber);
        for c in [500, 502, 503, 504] {
            assert_eq!(m(c), D::Congested, "{c}");
        }
        assert_eq!(m(487), D::Canceled);
        assert_eq!(Disposition::from_sip(487, true), D::NoAnswer);
        assert_eq!(m(403), D::Failed);
        assert_eq!(m(488), D::Failed);
        assert_eq!(m(606), D::Failed);
    }

    #[test]
    fn retry_delay_per_disposition() {
        let p = CampaignPolicy::default();
        let t = vn(29, 10, 0);
        let n = |d, o| next_attempt(1, d, o, t, &p);
        assert_eq!(n(Disposition::Busy, None), retry_at(vn(29, 10, 10)));
        assert_eq!(n(Disposition::NoAnswer, None), retry_at(vn(29, 12, 0)));
        assert_eq!(n(Disposition::Failed, None), retry_at(vn(29, 10, 30)));
        assert_eq!(n(Disposition::Congested, None), retry_at(vn(29, 10, 5)));
        assert_eq!(
            next_attempt(2, Disposition::Congested, None, t, &p),
            retry_at(vn(29, 10, 10))
        );
        assert_eq!(
            n(
                Disposition::Answered,
                Some(CallOutcome::CallLater { at: None })
            ),
            retry_at(vn(29, 11, 0))
        );
        assert_eq!(
            n(Disposition::Answered, Some(CallOutcome::SurveyPartial)),
            retry_at(vn(29, 11, 0))
        );
        assert_eq!(
            n(
                Disposition::Answered,
                Some(CallOutcome::CallLater {
                    at: Some(vn(29, 17, 45))
                })
            ),
            retry_at(vn(29, 17, 45))
        );
        assert_eq!(n(Disposition::Canceled, None), retry_at(vn(29, 10, 2)));
    }

    #[test]
    fn congested_backoff_is_capped() {
        let p = CampaignPolicy {
            max_attempts: 10,
            ..CampaignPolicy::default()
        };
        let t = vn(29, 10, 0);
        let got: Vec<_> = (1..=6)
            .map(
                |k| match next_attempt(k, Disposition::Congested, None, t, &p) {
                    RetryDecision::Retry { not_before } => t.duration_until(not_before).as_mins(),
                    d => panic!("{d:?}"),
                },
            )
            .collect();
        assert_eq!(got, vec![5, 10, 20, 40, 60, 60]);
    }

    #[test]
    fn never_redial_603_invalid_or_opted_out() {
        let p = CampaignPolicy::default();
        let t = vn(29, 10, 0);
        assert_eq!(
            next_attempt(1, Disposition::Rejected, None, t, &p),
            RetryDecision::Done {
                reason: DoneReason::Rejected
            }
        );
        assert_eq!(
            next_attempt(1, Disposition::InvalidNumber, None, t, &p),
            RetryDecision::Done {
                reason: DoneReason::InvalidNumber
            }
        );
        assert_eq!(
            next_attempt(1, Disposition::Answered, Some(CallOutcome::OptOut), t, &p),
            RetryDecision::Done {
                reason: DoneReason::OptedOut
            }
        );
        for o in [
            CallOutcome::Registered,
            CallOutcome::NotInterested,
            CallOutcome::SurveyCompleted,
        ] {
            assert_eq!(
                next_attempt(1, Disposition::Answered, Some(o), t, &p),
                RetryDecision::Done {
                    reason: DoneReason::Completed
                }
            );
        }
    }

    #[test]
    fn max_attempts_ends_retries() {
        let p = CampaignPolicy::default();
        let t = vn(29, 10, 0);
        assert!(matches!(
            next_attempt(2, Disposition::Busy, None, t, &p),
            RetryDecision::Retry { .. }
        ));
        assert_eq!(
            next_attempt(3, Disposition::Busy, None, t, &p),
            RetryDecision::Done {
                reason: DoneReason::MaxAttempts
            }
        );
        // Our own cancel is not charged, so it retries even at the limit.
        assert!(matches!(
            next_attempt(3, Disposition::Canceled, None, t, &p),
            RetryDecision::Retry { .. }
        ));
    }

    #[test]
    fn retry_outside_a_window_moves_to_the_next_opening() {
        let p = CampaignPolicy::default();
        // Busy at 19:55 → 20:05 is closed → 08:00 next day.
        assert_eq!(
            next_attempt(1, Disposition::Busy, None, vn(29, 19, 55), &p),
            retry_at(vn(30, 8, 0))
        );
        // No answer at 18:30 → 20:30 → 08:00 next day.
        assert_eq!(
            next_attempt(1, Disposition::NoAnswer, None, vn(29, 18, 30), &p),
            retry_at(vn(30, 8, 0))
        );
        // Call later at 22:00 → 08:00 next day.
        assert_eq!(
            next_attempt(
                1,
                Disposition::Answered,
                Some(CallOutcome::CallLater {
                    at: Some(vn(29, 22, 0))
                }),
                vn(29, 10, 0),
                &p
            ),
            retry_at(vn(30, 8, 0))
        );
    }
}
