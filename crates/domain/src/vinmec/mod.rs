//! The Vinmec scheduling queue's rules (docs/program.md §3 steps 2–3): what Vinmec HP's
//! schedulers may do to a registration's queue entry — claim with a lease, renew,
//! release, pre-screen, book, mark unreachable, record the consultation, cancel — and
//! what each action writes.
//!
//! [`decide`] is the whole rule book, as one pure function of the entry's state, the
//! action, who asks and `now`. The store reads the row, calls it, and writes the
//! [`Transition`] it returns under its own guard (the row's version), so the rules are
//! tested here in microseconds, table by table, and the store knows none of them.
//!
//! ## States
//! A registration has its lifecycle status ([`Status`], [`can_transition`]) and its
//! queue entry a work-list status ([`QueueStatus`]):
//!
//! | action | registration status | queue entry |
//! |---|---|---|
//! | claim | registered/unreachable → sent_to_vinmec (sent_to_vinmec stays) | waiting → claimed (lease) |
//! | renew / release | — | lease extended / claimed → waiting |
//! | prescreen | sent_to_vinmec (stays), lease held | need + routed specialty |
//! | book | sent_to_vinmec → appointment_booked, lease held, prescreened | claimed → done |
//! | book (reschedule) | appointment_booked (stays) | done |
//! | unreachable | sent_to_vinmec (lease held) or appointment_booked → unreachable | → waiting |
//! | consulted | appointment_booked → consulted | done |
//! | cancel | → cancelled (not while someone else holds the lease) | → cancelled |
//!
//! A lease is `claimed_by` + `lease_until`; an entry whose lease has run out is
//! *waiting* again for every purpose (listing, claiming) without any sweeper, so the
//! answer depends only on `now`, which the caller passes (tests set the clock).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::program::{Status, can_transition};
use crate::string_enum;

#[cfg(test)]
mod tests;

string_enum! {
    /// Where a registration is in Vinmec's work list.
    QueueStatus, "queue status" {
        /// Not yet taken by a Vinmec agent.
        Waiting = "waiting",
        /// An agent holds it until `lease_until`.
        Claimed = "claimed",
        Done = "done",
        /// The registration was cancelled: nobody should call.
        Cancelled = "cancelled",
    }
}

string_enum! {
    /// docs/program.md §2a: consultations are by phone; video in special cases.
    AppointmentMethod, "appointment method" {
        Phone = "phone",
        Video = "video",
    }
}

/// Longest free text accepted (characters) for notes, reports and reasons.
pub const MAX_TEXT_CHARS: usize = 4000;

/// A booked appointment, already validated against the program (window, length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booking {
    pub at: Timestamp,
    pub minutes: u32,
    pub method: AppointmentMethod,
    /// Required for video, absent for phone (the API checks both).
    pub video_reason: Option<String>,
}

/// A change to one queue entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueAction {
    Claim { lease: Duration },
    Renew { lease: Duration },
    Release,
    Prescreen { need: String, routed_specialty: u8 },
    Book(Booking),
    Unreachable { note: String },
    Consulted { report: String },
    Cancel { reason: String },
}

impl QueueAction {
    /// Stable name: the event's `action` and the API's path segment.
    pub fn name(&self) -> &'static str {
        match self {
            QueueAction::Claim { .. } => "claim",
            QueueAction::Renew { .. } => "renew",
            QueueAction::Release => "release",
            QueueAction::Prescreen { .. } => "prescreen",
            QueueAction::Book(_) => "book",
            QueueAction::Unreachable { .. } => "unreachable",
            QueueAction::Consulted { .. } => "consulted",
            QueueAction::Cancel { .. } => "cancel",
        }
    }
}

/// Why the queue refused an action on the entry's current state. Nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueRefusal {
    #[error("another scheduler ({holder}) holds this entry until {until}")]
    LeaseHeld { holder: String, until: Timestamp },
    #[error("claim this entry first: {action} needs a lease you hold")]
    LeaseNotHeld { action: &'static str },
    #[error("your lease ran out at {until}; claim the entry again")]
    LeaseExpired { until: Timestamp },
    #[error("record the pre-screening (need, routed specialty) before booking")]
    PrescreenRequired,
    #[error("{action} is not possible while the registration is {status} and its entry {}", queue.as_str())]
    WrongState {
        action: &'static str,
        status: Status,
        queue: QueueStatus,
    },
    /// Refused by the store's idempotency check, not by [`decide`]: a change carried an
    /// Idempotency-Key already used for another request.
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
}

/// Why [`decide`] refused an action: a queue rule, or the registration lifecycle
/// ([`can_transition`]), or a lease that does not fit in a timestamp.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Queue(#[from] QueueRefusal),
    /// Kept apart from [`QueueRefusal`]: callers report it as the lifecycle's refusal,
    /// naming the registration.
    #[error("status cannot go from {from} to {to}")]
    InvalidTransition { from: Status, to: Status },
    /// The lease asked for runs past the end of time (only a malformed request can).
    #[error("lease: {0}")]
    InvalidLease(String),
}

/// The part of a queue entry the rules read and write. The store builds it from its
/// row and keeps the rest (ids, `enqueued_at`, `updated_at`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    /// As stored: a claimed entry whose lease ran out still says `claimed` here
    /// ([`effective`] tells what it is now).
    pub status: QueueStatus,
    pub claimed_by: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub prescreen_note: Option<String>,
    pub routed_specialty: Option<u8>,
    pub appointment_at: Option<Timestamp>,
    /// Booked length of the consultation (≤ `program.max_consultation_minutes`).
    pub appointment_minutes: Option<u32>,
    pub appointment_method: Option<AppointmentMethod>,
    pub video_reason: Option<String>,
    pub consultation_report: Option<String>,
    /// When Vinmec recorded the consultation as done.
    pub consulted_at: Option<Timestamp>,
    /// Times Vinmec marked the customer unreachable (each one returns the entry).
    pub unreachable_count: u32,
}

/// A registration's status and its queue entry: everything [`decide`] reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueState {
    pub status: Status,
    pub entry: QueueEntry,
}

/// What a decided action writes, exactly: the store applies all of it or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The registration's status afterwards (the state's own when it does not change).
    pub to: Status,
    /// The queue entry afterwards, every column the rules own.
    pub entry: QueueEntry,
    /// The event appended to the registration's history (from the state's status to
    /// `to`; `from == to` for actions that change no status).
    pub event: QueueEvent,
}

/// One line of the registration's history, written by a queue action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEvent {
    /// [`QueueAction::name`].
    pub action: &'static str,
    /// `vinmec:<scheduler>`: every queue change is Vinmec's, and says who made it.
    pub actor: String,
    pub detail: EventDetail,
}

/// What an event says about its action. Structured, so the store renders timestamps
/// in its own text form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventDetail {
    /// Nothing beyond the action (release; consulted — the report is health data: it
    /// stays on the entry, not in the history).
    None,
    /// Claim and renew: the lease's new end.
    LeaseUntil(Option<Timestamp>),
    /// Prescreen: where the customer was routed (the need itself stays on the entry).
    RoutedSpecialty(u8),
    Booked {
        at: Timestamp,
        minutes: u32,
        method: AppointmentMethod,
    },
    /// Unreachable: the scheduler's note; cancel: the reason.
    Note(String),
}

/// The queue status as of `now`: an expired lease makes a claimed entry waiting.
pub fn effective(entry: &QueueEntry, now: Timestamp) -> QueueStatus {
    effective_status(entry.status, entry.lease_until, now)
}

/// [`effective`] from the two columns it reads (for callers holding their own row).
pub fn effective_status(
    stored: QueueStatus,
    lease_until: Option<Timestamp>,
    now: Timestamp,
) -> QueueStatus {
    match (stored, lease_until) {
        (QueueStatus::Claimed, Some(until)) if until > now => QueueStatus::Claimed,
        (QueueStatus::Claimed, _) => QueueStatus::Waiting,
        (s, _) => s,
    }
}

fn lease_end(now: Timestamp, lease: Duration) -> Result<Timestamp, Refusal> {
    let span = SignedDuration::try_from(lease).map_err(|e| Refusal::InvalidLease(e.to_string()))?;
    now.checked_add(span)
        .map_err(|e| Refusal::InvalidLease(e.to_string()))
}

/// Moves the registration to `to` when the lifecycle allows it (no-op when already there).
fn transition(from: Status, to: Status) -> Result<Status, Refusal> {
    if from == to || can_transition(from, to) {
        Ok(to)
    } else {
        Err(Refusal::InvalidTransition { from, to })
    }
}

/// Decides `action` by `actor` on `state` at `now`: what to write, or why not. Every
/// rule of the table in the module docs lives here and in the per-action functions it
/// calls.
pub fn decide(
    state: &QueueState,
    action: &QueueAction,
    actor: &str,
    now: Timestamp,
) -> Result<Transition, Refusal> {
    let seen = Seen::new(state, action, actor, now);
    let mut entry = state.entry.clone();
    let to = match action {
        QueueAction::Claim { lease } => claim(&seen, &mut entry, *lease, now)?,
        QueueAction::Renew { lease } => {
            seen.need_lease()?;
            entry.lease_until = Some(lease_end(now, *lease)?);
            seen.from
        }
        QueueAction::Release => {
            seen.need_lease()?;
            release(&mut entry, QueueStatus::Waiting);
            seen.from
        }
        QueueAction::Prescreen {
            need,
            routed_specialty,
        } => {
            seen.need_lease()?;
            if seen.from != Status::SentToVinmec {
                return Err(seen.wrong_state());
            }
            entry.prescreen_note = Some(need.clone());
            entry.routed_specialty = Some(*routed_specialty);
            seen.from
        }
        QueueAction::Book(booking) => book(&seen, &mut entry, booking)?,
        QueueAction::Unreachable { .. } => unreachable(&seen, &mut entry)?,
        QueueAction::Consulted { report } => consulted(&seen, &mut entry, report, now)?,
        QueueAction::Cancel { .. } => cancel(&seen, &mut entry)?,
    };
    let event = QueueEvent {
        action: action.name(),
        actor: format!("vinmec:{actor}"),
        detail: event_detail(action, &entry),
    };
    Ok(Transition { to, entry, event })
}

/// The state as `actor` finds it at `now`: what every rule reads.
struct Seen<'a> {
    action: &'a QueueAction,
    actor: &'a str,
    /// The registration's status.
    from: Status,
    /// The entry as stored.
    entry: &'a QueueEntry,
    /// The entry's status now ([`effective`]).
    queue: QueueStatus,
    /// `actor` holds a live lease on the entry.
    held_by_me: bool,
}

impl<'a> Seen<'a> {
    fn new(state: &'a QueueState, action: &'a QueueAction, actor: &'a str, now: Timestamp) -> Self {
        let queue = effective(&state.entry, now);
        Seen {
            action,
            actor,
            from: state.status,
            entry: &state.entry,
            queue,
            held_by_me: queue == QueueStatus::Claimed
                && state.entry.claimed_by.as_deref() == Some(actor),
        }
    }

    fn wrong_state(&self) -> Refusal {
        Refusal::Queue(QueueRefusal::WrongState {
            action: self.action.name(),
            status: self.from,
            queue: self.queue,
        })
    }

    /// The lease a change needs: mine and live; someone else's live one refuses; a
    /// lapsed one of mine says so (the entry may already be someone else's next).
    fn need_lease(&self) -> Result<(), Refusal> {
        if self.held_by_me {
            return Ok(());
        }
        let e = self.entry;
        match (self.queue, &e.claimed_by, e.lease_until) {
            (QueueStatus::Claimed, Some(holder), Some(until)) => {
                Err(Refusal::Queue(QueueRefusal::LeaseHeld {
                    holder: holder.clone(),
                    until,
                }))
            }
            (QueueStatus::Waiting, Some(holder), Some(until))
                if e.status == QueueStatus::Claimed && holder == self.actor =>
            {
                Err(Refusal::Queue(QueueRefusal::LeaseExpired { until }))
            }
            _ => Err(Refusal::Queue(QueueRefusal::LeaseNotHeld {
                action: self.action.name(),
            })),
        }
    }
}

/// Nobody holds the entry any more; it is `to`.
fn release(entry: &mut QueueEntry, to: QueueStatus) {
    entry.status = to;
    entry.claimed_by = None;
    entry.lease_until = None;
}

/// Claim: a waiting entry (or one whose lease lapsed, or mine already) of a
/// registration Vinmec still has to call.
fn claim(
    seen: &Seen<'_>,
    entry: &mut QueueEntry,
    lease: Duration,
    now: Timestamp,
) -> Result<Status, Refusal> {
    match seen.queue {
        QueueStatus::Waiting => {}
        QueueStatus::Claimed if seen.held_by_me => {}
        QueueStatus::Claimed => seen.need_lease()?,
        QueueStatus::Done | QueueStatus::Cancelled => return Err(seen.wrong_state()),
    }
    let to = match seen.from {
        Status::Registered | Status::Unreachable | Status::SentToVinmec => {
            transition(seen.from, Status::SentToVinmec)?
        }
        _ => return Err(seen.wrong_state()),
    };
    entry.status = QueueStatus::Claimed;
    entry.claimed_by = Some(seen.actor.to_owned());
    entry.lease_until = Some(lease_end(now, lease)?);
    Ok(to)
}

/// Book: under my lease, after the pre-screening; or a reschedule of a booked entry,
/// which nobody holds. Either way the entry is done.
fn book(seen: &Seen<'_>, entry: &mut QueueEntry, b: &Booking) -> Result<Status, Refusal> {
    let to = match seen.from {
        Status::AppointmentBooked if seen.queue == QueueStatus::Done => seen.from,
        _ => {
            seen.need_lease()?;
            if entry.routed_specialty.is_none() {
                return Err(Refusal::Queue(QueueRefusal::PrescreenRequired));
            }
            transition(seen.from, Status::AppointmentBooked)?
        }
    };
    entry.appointment_at = Some(b.at);
    entry.appointment_minutes = Some(b.minutes);
    entry.appointment_method = Some(b.method);
    entry.video_reason = b.video_reason.clone();
    release(entry, QueueStatus::Done);
    Ok(to)
}

/// Unreachable: back to the waiting list for another try.
fn unreachable(seen: &Seen<'_>, entry: &mut QueueEntry) -> Result<Status, Refusal> {
    // A missed appointment needs no lease (the entry is done); a first call does.
    if !(seen.from == Status::AppointmentBooked && seen.queue == QueueStatus::Done) {
        seen.need_lease()?;
    }
    let to = transition(seen.from, Status::Unreachable)?;
    entry.unreachable_count += 1;
    release(entry, QueueStatus::Waiting);
    Ok(to)
}

/// Consulted: the doctor's report, once, after a booking.
fn consulted(
    seen: &Seen<'_>,
    entry: &mut QueueEntry,
    report: &str,
    now: Timestamp,
) -> Result<Status, Refusal> {
    let to = transition(seen.from, Status::Consulted)?;
    if seen.from == Status::Consulted {
        // Recording it twice is not a change (`transition` allows from == to for the
        // other actions' sake).
        return Err(Refusal::InvalidTransition {
            from: seen.from,
            to: Status::Consulted,
        });
    }
    entry.consultation_report = Some(report.to_owned());
    entry.consulted_at = Some(now);
    Ok(to)
}

/// Cancel: whoever asks, unless another scheduler is on the phone with the customer.
fn cancel(seen: &Seen<'_>, entry: &mut QueueEntry) -> Result<Status, Refusal> {
    if seen.queue == QueueStatus::Claimed && !seen.held_by_me {
        seen.need_lease()?;
    }
    if !can_transition(seen.from, Status::Cancelled) {
        return Err(Refusal::InvalidTransition {
            from: seen.from,
            to: Status::Cancelled,
        });
    }
    release(entry, QueueStatus::Cancelled);
    Ok(Status::Cancelled)
}

/// What the history says about an action, from the entry it left.
fn event_detail(action: &QueueAction, entry: &QueueEntry) -> EventDetail {
    match action {
        QueueAction::Claim { .. } | QueueAction::Renew { .. } => {
            EventDetail::LeaseUntil(entry.lease_until)
        }
        QueueAction::Release | QueueAction::Consulted { .. } => EventDetail::None,
        QueueAction::Prescreen {
            routed_specialty, ..
        } => EventDetail::RoutedSpecialty(*routed_specialty),
        QueueAction::Book(b) => EventDetail::Booked {
            at: b.at,
            minutes: b.minutes,
            method: b.method,
        },
        QueueAction::Unreachable { note } => EventDetail::Note(note.clone()),
        QueueAction::Cancel { reason } => EventDetail::Note(reason.clone()),
    }
}
