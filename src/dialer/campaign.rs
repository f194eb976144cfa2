//! `Campaign`: one outbound run over an in-memory contact list — which contact to dial
//! next, when, and what happens after each attempt. Sans-IO: fed `Instant` (pacing) and
//! `Timestamp` (calling windows, retry times), never reading a clock.
//!
//! Driving it (what the call layer does):
//!
//! ```text
//! loop {
//!     while let Some(order) = campaign.poll_dial(now_i, now_ts) { place the call }
//!     sleep until campaign.poll_timeout(now_i, now_ts), or an event:
//!       2xx                → campaign.call_answered(id)
//!       final / BYE / fail → campaign.attempt_finished(now_i, now_ts, id, disposition, outcome)
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::pacer::{Pacer, ThrottleConfig};
use super::policy::{CampaignPolicy, PolicyError};
use super::retry::{
    CallOutcome, Disposition, DoneReason, RetryDecision, next_attempt_in, uncharged_retry_in,
};
use super::window::{is_allowed_in, next_allowed_in};
use crate::program::normalize_msisdn;

/// Identifies a contact within a campaign (the store's row id later).
pub type ContactId = u64;

/// Uncharged retries (trunk throttling, our own CANCEL) a contact may get before its
/// attempts are charged anyway, so a trunk that throttles for hours cannot keep a
/// contact cycling forever.
pub const MAX_UNCHARGED_RETRIES: u32 = 10;

/// Someone to call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    pub msisdn: String,
}

/// The do-not-call set: subscribers who opted out, shared by every campaign that holds
/// a clone (the store-backed list replaces the in-memory set later). Numbers are
/// compared after E.164 normalisation, so `0903…` and `84903…` are the same person.
#[derive(Clone, Debug, Default)]
pub struct OptOutList(Arc<RwLock<HashSet<String>>>);

impl OptOutList {
    pub fn new() -> OptOutList {
        OptOutList::default()
    }

    /// Adds a number; `true` if it was not there yet.
    pub fn add(&self, msisdn: &str) -> bool {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(Self::key(msisdn))
    }

    pub fn contains(&self, msisdn: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&Self::key(msisdn))
    }

    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(msisdn: &str) -> String {
        normalize_msisdn(msisdn).unwrap_or_else(|_| msisdn.trim().to_owned())
    }
}

/// Lifecycle of a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CampaignState {
    /// Created, not started.
    Draft,
    /// Dialling.
    Running,
    /// No new dials; calls in progress finish and are recorded. `resume` continues.
    Paused,
    /// Ended by an operator; no new dials ever. Calls in progress are still recorded.
    Stopped,
    /// Every contact is done and no call is in progress.
    Completed,
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CampaignState::Draft => "draft",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Stopped => "stopped",
            CampaignState::Completed => "completed",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    #[error("cannot {command} a campaign that is {state}")]
    InvalidCommand {
        command: &'static str,
        state: CampaignState,
    },
    #[error("unknown contact {0}")]
    UnknownContact(ContactId),
    #[error("contact {0} has no call in progress")]
    NotInFlight(ContactId),
    #[error("contact id {0} appears twice in the list")]
    DuplicateContactId(ContactId),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// Place this call now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialOrder {
    pub contact_id: ContactId,
    pub msisdn: String,
    /// 1-based sequence number of this dial for the contact, unique per contact (the
    /// store's claim key). Uncharged retries get a number too; `max_attempts` counts
    /// only charged attempts ([`ContactStatus::charged_attempts`]).
    pub attempt_no: u32,
    /// CANCEL after this long ringing and report `Disposition::NoAnswer`.
    pub ring_timeout: Duration,
}

/// Where a contact is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactState {
    /// Queued: never dialled (`dials == 0`, due at once) or waiting for a retry.
    Queued {
        not_before: Option<Timestamp>,
    },
    /// INVITE sent, no answer yet.
    Dialing {
        attempt_no: u32,
    },
    /// Answered, the flow is running.
    InCall {
        attempt_no: u32,
    },
    Done {
        reason: DoneReason,
    },
}

/// A contact's state and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactStatus {
    pub state: ContactState,
    /// Dials made (the last `attempt_no`).
    pub dials: u32,
    /// Dials counted against `max_attempts`.
    pub charged_attempts: u32,
    pub last_disposition: Option<Disposition>,
    pub last_outcome: Option<CallOutcome>,
}

/// Counts for supervisors. Every contact is in exactly one of waiting, dialing, in_call,
/// retry_pending, done.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Never dialled yet.
    pub waiting: u32,
    pub dialing: u32,
    pub in_call: u32,
    /// Dialled at least once, queued for another try.
    pub retry_pending: u32,
    pub done: u32,
    /// Done contacts by their last disposition (contacts done without ever being
    /// dialled — opted out, duplicates — appear only in `done_by_reason`).
    pub done_by_disposition: BTreeMap<Disposition, u32>,
    pub done_by_reason: BTreeMap<DoneReason, u32>,
}

#[derive(Debug)]
struct Slot {
    contact: Contact,
    status: ContactStatus,
    uncharged: u32,
    /// Key of this contact's entry in the queue, when queued.
    queued: Option<(Timestamp, u64)>,
}

/// One outbound campaign (see the module doc).
#[derive(Debug)]
pub struct Campaign {
    policy: CampaignPolicy,
    tz: TimeZone,
    state: CampaignState,
    slots: Vec<Slot>,
    index: HashMap<ContactId, usize>,
    /// Due order: (not_before, sequence, slot). Never-dialled contacts are due from the
    /// start (`Timestamp::MIN`), so they go first, in list order; retries follow by time.
    queue: BTreeSet<(Timestamp, u64, usize)>,
    seq: u64,
    pacer: Pacer,
    opt_out: OptOutList,
    /// Charged busy/congested finals of the last throttle window: (when, slot, attempt_no),
    /// refunded if they turn out to be the start of a throttling burst.
    recent_pressure: VecDeque<(Instant, usize, u32)>,
    throttle_window: Duration,
    in_flight: u32,
}

impl Campaign {
    /// A draft campaign over `contacts` (in list order for first attempts). The policy
    /// is validated; a number listed twice is dialled once (the second is
    /// `Done(Duplicate)`); opted-out numbers are skipped when their turn comes.
    pub fn new(
        policy: CampaignPolicy,
        contacts: Vec<Contact>,
        opt_out: OptOutList,
    ) -> Result<Campaign, CampaignError> {
        policy.validate()?;
        let throttle = ThrottleConfig::default();
        let mut c = Campaign {
            tz: policy.tz(),
            pacer: Pacer::with_throttle(policy.max_concurrent, policy.max_cps, throttle),
            policy,
            state: CampaignState::Draft,
            slots: Vec::with_capacity(contacts.len()),
            index: HashMap::with_capacity(contacts.len()),
            queue: BTreeSet::new(),
            seq: 0,
            opt_out,
            recent_pressure: VecDeque::new(),
            throttle_window: throttle.window,
            in_flight: 0,
        };
        let mut numbers = HashSet::new();
        for contact in contacts {
            let idx = c.slots.len();
            if c.index.insert(contact.id, idx).is_some() {
                return Err(CampaignError::DuplicateContactId(contact.id));
            }
            let dup = !numbers.insert(OptOutList::key(&contact.msisdn));
            c.slots.push(Slot {
                contact,
                status: ContactStatus {
                    state: ContactState::Queued { not_before: None },
                    dials: 0,
                    charged_attempts: 0,
                    last_disposition: None,
                    last_outcome: None,
                },
                uncharged: 0,
                queued: None,
            });
            if dup {
                c.slots[idx].status.state = ContactState::Done {
                    reason: DoneReason::Duplicate,
                };
            } else {
                c.enqueue(idx, None);
            }
        }
        Ok(c)
    }

    pub fn state(&self) -> CampaignState {
        self.state
    }

    pub fn policy(&self) -> &CampaignPolicy {
        &self.policy
    }

    pub fn opt_out_list(&self) -> &OptOutList {
        &self.opt_out
    }

    /// Whether the trunk is being throttled (see `pacer`).
    pub fn is_throttling(&self) -> bool {
        self.pacer.is_throttling()
    }

    /// Draft → Running.
    pub fn start(&mut self) -> Result<(), CampaignError> {
        self.transition("start", &[CampaignState::Draft], CampaignState::Running)?;
        self.maybe_complete();
        Ok(())
    }

    /// Running → Paused: no new dials; calls in progress finish normally.
    pub fn pause(&mut self) -> Result<(), CampaignError> {
        self.transition("pause", &[CampaignState::Running], CampaignState::Paused)
    }

    /// Paused → Running.
    pub fn resume(&mut self) -> Result<(), CampaignError> {
        self.transition("resume", &[CampaignState::Paused], CampaignState::Running)?;
        self.maybe_complete();
        Ok(())
    }

    /// Draft/Running/Paused → Stopped, for good. Calls in progress are still reported
    /// with `attempt_finished` (the call layer decides whether to CANCEL them; a 487 it
    /// causes is `Disposition::Canceled`).
    pub fn stop(&mut self) -> Result<(), CampaignError> {
        self.transition(
            "stop",
            &[
                CampaignState::Draft,
                CampaignState::Running,
                CampaignState::Paused,
            ],
            CampaignState::Stopped,
        )
    }

    fn transition(
        &mut self,
        command: &'static str,
        from: &[CampaignState],
        to: CampaignState,
    ) -> Result<(), CampaignError> {
        if from.contains(&self.state) {
            self.state = to;
            Ok(())
        } else {
            Err(CampaignError::InvalidCommand {
                command,
                state: self.state,
            })
        }
    }

    /// The next call to place now, if any: Running, inside a calling window, the pacer
    /// allows a start, and the queued contact with the earliest `not_before` is due.
    /// Opted-out contacts met on the way are marked done, never dialled. Call it in a
    /// loop until `None`.
    pub fn poll_dial(&mut self, now_i: Instant, now_ts: Timestamp) -> Option<DialOrder> {
        if self.state != CampaignState::Running || !is_allowed_in(now_ts, &self.policy, &self.tz) {
            return None;
        }
        loop {
            let &(not_before, seq, idx) = self.queue.first()?;
            if not_before > now_ts {
                return None;
            }
            if self.opt_out.contains(&self.slots[idx].contact.msisdn) {
                self.queue.remove(&(not_before, seq, idx));
                self.slots[idx].queued = None;
                self.finish(idx, DoneReason::OptedOut);
                self.maybe_complete();
                continue;
            }
            if !self.pacer.poll_dial(now_i) {
                return None;
            }
            self.queue.remove(&(not_before, seq, idx));
            self.pacer.call_started(now_i);
            self.in_flight += 1;
            let slot = &mut self.slots[idx];
            slot.queued = None;
            slot.status.dials += 1;
            let attempt_no = slot.status.dials;
            slot.status.state = ContactState::Dialing { attempt_no };
            return Some(DialOrder {
                contact_id: slot.contact.id,
                msisdn: slot.contact.msisdn.clone(),
                attempt_no,
                ring_timeout: self.policy.ring_timeout,
            });
        }
    }

    /// The call was answered (2xx): Dialing → InCall.
    pub fn call_answered(&mut self, contact_id: ContactId) -> Result<(), CampaignError> {
        let idx = self.idx(contact_id)?;
        let slot = &mut self.slots[idx];
        match slot.status.state {
            ContactState::Dialing { attempt_no } => {
                slot.status.state = ContactState::InCall { attempt_no };
                Ok(())
            }
            ContactState::InCall { .. } => Ok(()),
            _ => Err(CampaignError::NotInFlight(contact_id)),
        }
    }

    /// The attempt in progress for `contact_id` ended. Returns what happens to the
    /// contact next. `outcome` is the flow's result when the call was answered.
    ///
    /// Busy/congested finals while the trunk is throttled — and those of the burst that
    /// started the throttling — are retried after `retry.throttled` without counting an
    /// attempt (at most [`MAX_UNCHARGED_RETRIES`] times per contact); so is our own
    /// CANCEL (`Disposition::Canceled`). An opt-out goes to the shared do-not-call list.
    pub fn attempt_finished(
        &mut self,
        now_i: Instant,
        now_ts: Timestamp,
        contact_id: ContactId,
        disposition: Disposition,
        outcome: Option<CallOutcome>,
    ) -> Result<RetryDecision, CampaignError> {
        let idx = self.idx(contact_id)?;
        let attempt_no = match self.slots[idx].status.state {
            ContactState::Dialing { attempt_no } | ContactState::InCall { attempt_no } => {
                attempt_no
            }
            _ => return Err(CampaignError::NotInFlight(contact_id)),
        };
        self.in_flight = self.in_flight.saturating_sub(1);
        self.pacer.call_ended(now_i);
        let was_throttling = self.pacer.is_throttling();
        self.pacer.observe(now_i, disposition);
        let throttling = self.pacer.is_throttling();

        if outcome == Some(CallOutcome::OptOut) {
            self.opt_out.add(&self.slots[idx].contact.msisdn);
        }
        let pressure = disposition.is_trunk_pressure();
        let slot = &mut self.slots[idx];
        slot.status.last_disposition = Some(disposition);
        slot.status.last_outcome = outcome;
        let uncharged = ((pressure && throttling) || disposition == Disposition::Canceled)
            && slot.uncharged < MAX_UNCHARGED_RETRIES
            && outcome != Some(CallOutcome::OptOut);
        let decision = if uncharged {
            slot.uncharged += 1;
            uncharged_retry_in(now_ts, &self.policy, &self.tz)
        } else {
            slot.status.charged_attempts += 1;
            // A cancel past the uncharged cap counts like any failure.
            let d = if disposition == Disposition::Canceled {
                Disposition::Failed
            } else {
                disposition
            };
            next_attempt_in(
                slot.status.charged_attempts,
                d,
                outcome,
                now_ts,
                &self.policy,
                &self.tz,
            )
        };
        self.apply(idx, decision);

        // Remember charged pressure finals; refund them if this is a burst.
        while let Some(&(t, _, _)) = self.recent_pressure.front() {
            if t + self.throttle_window <= now_i {
                self.recent_pressure.pop_front();
            } else {
                break;
            }
        }
        if pressure && !uncharged {
            self.recent_pressure.push_back((now_i, idx, attempt_no));
        }
        if throttling && !was_throttling {
            self.refund_burst(now_ts);
        }
        self.maybe_complete();
        Ok(decision)
    }

    /// The throttling that just started means the recent busy/congested finals were the
    /// trunk's, not the subscribers': give their attempts back and retry them soon.
    fn refund_burst(&mut self, now_ts: Timestamp) {
        let recent: Vec<_> = self.recent_pressure.drain(..).collect();
        for (_, idx, attempt_no) in recent {
            let slot = &mut self.slots[idx];
            let eligible = slot.status.dials == attempt_no
                && slot.uncharged < MAX_UNCHARGED_RETRIES
                && slot.status.charged_attempts > 0
                && matches!(
                    slot.status.state,
                    ContactState::Queued { .. }
                        | ContactState::Done {
                            reason: DoneReason::MaxAttempts
                        }
                );
            if !eligible {
                continue;
            }
            slot.status.charged_attempts -= 1;
            slot.uncharged += 1;
            let decision = uncharged_retry_in(now_ts, &self.policy, &self.tz);
            if let Some((nb, seq)) = slot.queued.take() {
                self.queue.remove(&(nb, seq, idx));
            }
            self.apply(idx, decision);
        }
    }

    fn apply(&mut self, idx: usize, decision: RetryDecision) {
        match decision {
            RetryDecision::Retry { not_before } => self.enqueue(idx, Some(not_before)),
            RetryDecision::Done { reason } => self.finish(idx, reason),
        }
    }

    fn enqueue(&mut self, idx: usize, not_before: Option<Timestamp>) {
        self.seq += 1;
        let key = not_before.unwrap_or(Timestamp::MIN);
        self.queue.insert((key, self.seq, idx));
        let slot = &mut self.slots[idx];
        slot.queued = Some((key, self.seq));
        slot.status.state = ContactState::Queued { not_before };
    }

    /// Marks a contact done; callers check for completion once they are through (a
    /// burst refund may still revive a contact).
    fn finish(&mut self, idx: usize, reason: DoneReason) {
        self.slots[idx].status.state = ContactState::Done { reason };
    }

    fn maybe_complete(&mut self) {
        if matches!(self.state, CampaignState::Running | CampaignState::Paused)
            && self.queue.is_empty()
            && self.in_flight == 0
        {
            self.state = CampaignState::Completed;
        }
    }

    fn idx(&self, id: ContactId) -> Result<usize, CampaignError> {
        self.index
            .get(&id)
            .copied()
            .ok_or(CampaignError::UnknownContact(id))
    }

    /// When to call `poll_dial` next, as an `Instant` on the caller's monotonic clock
    /// (wall-clock deadlines — retry times, window openings — are converted with the
    /// `now_i`/`now_ts` pair). `None`: nothing to do until an event (a call ends, a
    /// command), or nothing left. May be `≤ now_i`: dial now.
    pub fn poll_timeout(&self, now_i: Instant, now_ts: Timestamp) -> Option<Instant> {
        if self.state != CampaignState::Running || self.pacer.at_capacity() {
            return None;
        }
        let &(not_before, _, _) = self.queue.first()?;
        let due = next_allowed_in(not_before.max(now_ts), &self.policy, &self.tz)?;
        let wall = now_i + now_ts.duration_until(due).unsigned_abs();
        Some(match self.pacer.poll_timeout() {
            Some(slot) => wall.max(slot),
            None => wall,
        })
    }

    /// Counts for supervisors.
    pub fn progress(&self) -> Progress {
        let mut p = Progress::default();
        for s in &self.slots {
            match s.status.state {
                ContactState::Queued { .. } if s.status.dials == 0 => p.waiting += 1,
                ContactState::Queued { .. } => p.retry_pending += 1,
                ContactState::Dialing { .. } => p.dialing += 1,
                ContactState::InCall { .. } => p.in_call += 1,
                ContactState::Done { reason } => {
                    p.done += 1;
                    *p.done_by_reason.entry(reason).or_default() += 1;
                    if let Some(d) = s.status.last_disposition {
                        *p.done_by_disposition.entry(d).or_default() += 1;
                    }
                }
            }
        }
        p
    }

    /// One contact's state and counters.
    pub fn contact(&self, id: ContactId) -> Option<&ContactStatus> {
        self.index.get(&id).map(|&i| &self.slots[i].status)
    }
}

#[cfg(test)]
mod tests;
