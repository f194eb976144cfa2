//! The Vinmec scheduling queue (docs/program.md §3 steps 2–3): what Vinmec HP's schedulers
//! work through — list, claim with a lease, pre-screen, book, mark unreachable, record
//! the consultation, cancel.
//!
//! ## States
//! A registration has its lifecycle status ([`Status`], `program::can_transition`) and
//! its queue entry a work-list status ([`QueueStatus`]):
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
//!
//! ## Concurrency
//! Every change re-reads the entry and updates it `WHERE version = <read>`, bumping the
//! version, in the transaction that writes the registration's status and its event. A
//! concurrent change makes the update match no row: the transaction rolls back and the
//! action is decided again on the new state (so two schedulers never both claim one
//! entry). Claiming the next N entries uses `FOR UPDATE SKIP LOCKED` on PostgreSQL so
//! concurrent claimers take different entries instead of queueing on the same rows.
//!
//! ## Idempotency
//! A change may carry an [`Idempotency`] key with the caller's answer to keep
//! ([`KeyedAnswer`]). The answer is stored with the key in the same transaction, so a
//! retry with the same key and request gets that answer back verbatim
//! ([`Idempotent::Replayed`]) and writes nothing; the same key with another request is
//! refused ([`QueueRefusal::IdempotencyKeyReused`]). Refusals are not stored: they
//! wrote nothing, and a retry is decided again. The answer is the caller's text (the
//! API keeps the JSON body it sent): the store gives its rows no wire format.

use std::time::Duration;

use jiff::Timestamp;

use super::error::StoreError;
use super::error::is_retryable;
use super::types::{RegistrationRaw, VinmecRaw};
use super::{MAX_ATTEMPTS, Pools, Step, Store, time};
use crate::store::{AppointmentMethod, QueueStatus, Registration, VinmecEntry};
use tongdai_domain::program::{self, Channel, Status};

/// A registration and its queue entry, as the schedulers see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueItem {
    pub registration: Registration,
    /// `status` is the effective one: a claimed entry whose lease ran out is `waiting`.
    pub entry: VinmecEntry,
}

/// Which entries to list. `None` filters match everything.
#[derive(Clone, Debug, Default)]
pub struct QueueFilter {
    /// Effective queue status.
    pub status: Option<QueueStatus>,
    pub registration_status: Option<Status>,
    pub channel: Option<Channel>,
    /// Entries whose live lease this scheduler holds.
    pub claimed_by: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// One page of the queue, oldest entry first, and how many match in total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuePage {
    pub items: Vec<QueueItem>,
    pub total: u64,
}

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
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
}

/// An Idempotency-Key as the store keeps it: per caller, with the request's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency {
    /// Who sent it (the API token's name): keys of different callers never collide.
    pub principal: String,
    pub key: String,
    /// Hash of everything that makes the request what it is (method, path, body).
    pub request_hash: String,
}

/// An [`Idempotency`] key and the answer its caller keeps under it.
///
/// The store writes `answer(&outcome)` beside the key in the transaction that makes the
/// change, and hands that text back verbatim to a retry ([`Idempotent::Replayed`]).
/// What the text says is the caller's business (the API keeps the JSON body it sent,
/// so a retry gets the same bytes); the store only keeps it.
pub struct KeyedAnswer<'a, T: ?Sized> {
    pub key: &'a Idempotency,
    /// The text to keep for an outcome, or why it cannot be written.
    pub answer: &'a (dyn Fn(&T) -> Result<String, String> + Send + Sync),
}

// Not derived: the derive would ask `T: Copy`, and `T` is only ever borrowed.
impl<T: ?Sized> Clone for KeyedAnswer<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for KeyedAnswer<'_, T> {}

/// The result of a change that may carry a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Idempotent<T> {
    /// Made now (its answer, when keyed, is kept).
    Done(T),
    /// An earlier request with the same key made it: the answer that request kept.
    Replayed(String),
}

/// Longest free text accepted (characters) for notes, reports and reasons.
pub const MAX_TEXT_CHARS: usize = 4000;

/// What a decided action writes.
#[derive(Debug, PartialEq, Eq)]
struct Decision {
    to: Status,
    entry: VinmecEntry,
    detail: String,
}

/// The queue status as of `now`: an expired lease makes a claimed entry waiting.
pub(crate) fn effective(entry: &VinmecEntry, now: Timestamp) -> QueueStatus {
    match (entry.status, entry.lease_until) {
        (QueueStatus::Claimed, Some(until)) if until > now => QueueStatus::Claimed,
        (QueueStatus::Claimed, _) => QueueStatus::Waiting,
        (s, _) => s,
    }
}

fn lease_end(now: Timestamp, lease: Duration) -> Result<Timestamp, StoreError> {
    let span = jiff::SignedDuration::try_from(lease)
        .map_err(|e| StoreError::InvalidRequest(format!("lease: {e}")))?;
    now.checked_add(span)
        .map_err(|e| StoreError::InvalidRequest(format!("lease: {e}")))
}

/// Moves the registration to `to` when the lifecycle allows it (no-op when already there).
fn transition(id: i64, from: Status, to: Status) -> Result<Status, StoreError> {
    if from == to || program::can_transition(from, to) {
        Ok(to)
    } else {
        Err(StoreError::InvalidTransition { id, from, to })
    }
}

/// Decides `action` by `actor` on `item` at `now`: the new status and entry, or why not.
/// Pure: every rule of the table in the module docs lives here.
fn decide(
    action: &QueueAction,
    item: &QueueItem,
    actor: &str,
    now: Timestamp,
) -> Result<Decision, StoreError> {
    let reg = &item.registration;
    let id = reg.id;
    let mut entry = item.entry.clone();
    let queue = effective(&entry, now);
    let held_by_me = queue == QueueStatus::Claimed && entry.claimed_by.as_deref() == Some(actor);
    let wrong = || {
        StoreError::Queue(QueueRefusal::WrongState {
            action: action.name(),
            status: reg.status,
            queue,
        })
    };
    // The lease a change needs: mine and live; someone else's live one refuses; a lapsed
    // one of mine says so (the entry may already be someone else's next).
    let need_lease = |entry: &VinmecEntry| -> Result<(), StoreError> {
        if held_by_me {
            return Ok(());
        }
        match (queue, &entry.claimed_by, entry.lease_until) {
            (QueueStatus::Claimed, Some(holder), Some(until)) => {
                Err(StoreError::Queue(QueueRefusal::LeaseHeld {
                    holder: holder.clone(),
                    until,
                }))
            }
            (QueueStatus::Waiting, Some(holder), Some(until))
                if entry.status == QueueStatus::Claimed && holder == actor =>
            {
                Err(StoreError::Queue(QueueRefusal::LeaseExpired { until }))
            }
            _ => Err(StoreError::Queue(QueueRefusal::LeaseNotHeld {
                action: action.name(),
            })),
        }
    };
    let release = |entry: &mut VinmecEntry, to: QueueStatus| {
        entry.status = to;
        entry.claimed_by = None;
        entry.lease_until = None;
    };
    let to = match action {
        QueueAction::Claim { lease } => {
            match queue {
                QueueStatus::Waiting => {}
                QueueStatus::Claimed if held_by_me => {}
                QueueStatus::Claimed => {
                    need_lease(&entry)?;
                }
                QueueStatus::Done | QueueStatus::Cancelled => return Err(wrong()),
            }
            let to = match reg.status {
                Status::Registered | Status::Unreachable | Status::SentToVinmec => {
                    transition(id, reg.status, Status::SentToVinmec)?
                }
                _ => return Err(wrong()),
            };
            entry.status = QueueStatus::Claimed;
            entry.claimed_by = Some(actor.to_owned());
            entry.lease_until = Some(lease_end(now, *lease)?);
            to
        }
        QueueAction::Renew { lease } => {
            need_lease(&entry)?;
            entry.lease_until = Some(lease_end(now, *lease)?);
            reg.status
        }
        QueueAction::Release => {
            need_lease(&entry)?;
            release(&mut entry, QueueStatus::Waiting);
            reg.status
        }
        QueueAction::Prescreen {
            need,
            routed_specialty,
        } => {
            need_lease(&entry)?;
            if reg.status != Status::SentToVinmec {
                return Err(wrong());
            }
            entry.prescreen_note = Some(need.clone());
            entry.routed_specialty = Some(*routed_specialty);
            reg.status
        }
        QueueAction::Book(b) => {
            let to = match reg.status {
                // A reschedule: the entry is done, nobody holds it.
                Status::AppointmentBooked if queue == QueueStatus::Done => reg.status,
                _ => {
                    need_lease(&entry)?;
                    if entry.routed_specialty.is_none() {
                        return Err(StoreError::Queue(QueueRefusal::PrescreenRequired));
                    }
                    transition(id, reg.status, Status::AppointmentBooked)?
                }
            };
            entry.appointment_at = Some(b.at);
            entry.appointment_minutes = Some(b.minutes);
            entry.appointment_method = Some(b.method);
            entry.video_reason = b.video_reason.clone();
            release(&mut entry, QueueStatus::Done);
            to
        }
        QueueAction::Unreachable { .. } => {
            // A missed appointment needs no lease (the entry is done); a first call does.
            if !(reg.status == Status::AppointmentBooked && queue == QueueStatus::Done) {
                need_lease(&entry)?;
            }
            let to = transition(id, reg.status, Status::Unreachable)?;
            entry.unreachable_count += 1;
            release(&mut entry, QueueStatus::Waiting);
            to
        }
        QueueAction::Consulted { report } => {
            let to = transition(id, reg.status, Status::Consulted)?;
            if reg.status == Status::Consulted {
                // Recording it twice is not a change (the transition above allows
                // from == to for the other actions' sake).
                return Err(StoreError::InvalidTransition {
                    id,
                    from: reg.status,
                    to: Status::Consulted,
                });
            }
            entry.consultation_report = Some(report.clone());
            entry.consulted_at = Some(now);
            to
        }
        QueueAction::Cancel { .. } => {
            if queue == QueueStatus::Claimed && !held_by_me {
                need_lease(&entry)?;
            }
            if !program::can_transition(reg.status, Status::Cancelled) {
                return Err(StoreError::InvalidTransition {
                    id,
                    from: reg.status,
                    to: Status::Cancelled,
                });
            }
            release(&mut entry, QueueStatus::Cancelled);
            Status::Cancelled
        }
    };
    let detail = match action {
        QueueAction::Claim { .. } | QueueAction::Renew { .. } => {
            format!(
                "lease_until={}",
                entry.lease_until.map(time::to_db).unwrap_or_default()
            )
        }
        QueueAction::Release => String::new(),
        QueueAction::Prescreen {
            routed_specialty, ..
        } => format!("routed_specialty={routed_specialty}"),
        QueueAction::Book(b) => format!(
            "at={} minutes={} method={}",
            time::to_db(b.at),
            b.minutes,
            b.method.as_str()
        ),
        QueueAction::Unreachable { note } => note.clone(),
        // The report itself is health data: it stays on the entry, not in the log.
        QueueAction::Consulted { .. } => String::new(),
        QueueAction::Cancel { reason } => reason.clone(),
    };
    entry.updated_at = now;
    Ok(Decision { to, entry, detail })
}

const SELECT_ITEM: &str = "SELECT r.id AS r_id, r.msisdn, r.program_group, r.channel, r.specialty, \
     r.status AS r_status, r.created_at, r.updated_at AS r_updated_at, r.call_id, r.fanpage_ref, \
     r.name, r.note, q.id AS q_id, q.status AS q_status, q.claimed_by, q.lease_until, \
     q.prescreen_note, q.routed_specialty, q.appointment_at, q.appointment_method, \
     q.video_reason, q.consultation_report, q.enqueued_at, q.updated_at AS q_updated_at, \
     q.appointment_minutes, q.consulted_at, q.unreachable_count, q.version \
     FROM vinmec_queue q JOIN registrations r ON r.id = q.registration_id";

/// The filter shared by the page and its count. `$1` is now; `$2` the effective status.
const FILTER: &str = " WHERE ($2 IS NULL \
     OR ($2 = 'waiting' AND (q.status = 'waiting' OR (q.status = 'claimed' AND (q.lease_until IS NULL OR q.lease_until <= $1)))) \
     OR ($2 = 'claimed' AND q.status = 'claimed' AND q.lease_until > $1) \
     OR ($2 IN ('done', 'cancelled') AND q.status = $2)) \
     AND ($3 IS NULL OR r.status = $3) \
     AND ($4 IS NULL OR r.channel = $4) \
     AND ($5 IS NULL OR (q.claimed_by = $5 AND q.status = 'claimed' AND q.lease_until > $1))";

/// One joined row of [`SELECT_ITEM`].
#[derive(sqlx::FromRow)]
struct ItemRaw {
    r_id: i64,
    msisdn: String,
    program_group: i64,
    channel: String,
    specialty: Option<i64>,
    r_status: String,
    created_at: String,
    r_updated_at: String,
    call_id: Option<String>,
    fanpage_ref: Option<String>,
    name: Option<String>,
    note: String,
    q_id: i64,
    q_status: String,
    claimed_by: Option<String>,
    lease_until: Option<String>,
    prescreen_note: Option<String>,
    routed_specialty: Option<i64>,
    appointment_at: Option<String>,
    appointment_method: Option<String>,
    video_reason: Option<String>,
    consultation_report: Option<String>,
    enqueued_at: String,
    q_updated_at: String,
    appointment_minutes: Option<i64>,
    consulted_at: Option<String>,
    unreachable_count: i64,
    version: i64,
}

impl ItemRaw {
    /// The stored item (stored queue status) and its version.
    fn into_item(self) -> Result<(QueueItem, i64), StoreError> {
        let registration = Registration::try_from(RegistrationRaw {
            id: self.r_id,
            msisdn: self.msisdn,
            program_group: self.program_group,
            channel: self.channel,
            specialty: self.specialty,
            status: self.r_status,
            created_at: self.created_at,
            updated_at: self.r_updated_at,
            call_id: self.call_id,
            fanpage_ref: self.fanpage_ref,
            name: self.name,
            note: self.note,
        })?;
        let entry = VinmecEntry::try_from(VinmecRaw {
            id: self.q_id,
            registration_id: self.r_id,
            status: self.q_status,
            claimed_by: self.claimed_by,
            lease_until: self.lease_until,
            prescreen_note: self.prescreen_note,
            routed_specialty: self.routed_specialty,
            appointment_at: self.appointment_at,
            appointment_method: self.appointment_method,
            video_reason: self.video_reason,
            consultation_report: self.consultation_report,
            enqueued_at: self.enqueued_at,
            updated_at: self.q_updated_at,
            appointment_minutes: self.appointment_minutes,
            consulted_at: self.consulted_at,
            unreachable_count: self.unreachable_count,
        })?;
        Ok((
            QueueItem {
                registration,
                entry,
            },
            self.version,
        ))
    }
}

/// The item as `decision` left it, written at `now_db`: the registration's `updated_at`
/// moves only when its status changed; the queue entry's always does.
fn decided(item: QueueItem, decision: Decision, now_db: &str) -> Result<QueueItem, StoreError> {
    let written = now_from_db(now_db)?;
    let registration_changed = decision.to != item.registration.status;
    Ok(QueueItem {
        registration: Registration {
            status: decision.to,
            updated_at: if registration_changed {
                written
            } else {
                item.registration.updated_at
            },
            ..item.registration
        },
        entry: VinmecEntry {
            updated_at: written,
            ..decision.entry
        },
    })
}

/// The item as the outside sees it at `now` (effective status; a lapsed lease's holder
/// and end stay visible — they say who had it last).
fn present(mut item: QueueItem, now: Timestamp) -> QueueItem {
    item.entry.status = effective(&item.entry, now);
    item
}

/// How one action attempt ended inside its transaction.
enum Applied<T> {
    Done(T),
    /// The entry changed under us (version mismatch or a same-key race): decide again.
    Retry,
}

/// Writes a decision: the entry (if unchanged since read), the registration's status
/// (if it changes) and the event. Evaluates to `Ok(false)` when the entry changed under
/// us. A macro so that one body serves both backends' connection types (like `on_pool!`).
macro_rules! write_decision {
    ($conn:ident, $item:expr, $version:expr, $d:expr, $action:expr, $actor:expr, $now_db:expr) => {
        async {
            let item: &QueueItem = $item;
            let d: &Decision = $d;
            let now_db: &str = $now_db;
            let e = &d.entry;
            let changed = sqlx::query(
                "UPDATE vinmec_queue SET status = $1, claimed_by = $2, lease_until = $3, \
                 prescreen_note = $4, routed_specialty = $5, appointment_at = $6, \
                 appointment_method = $7, video_reason = $8, consultation_report = $9, \
                 appointment_minutes = $10, consulted_at = $11, unreachable_count = $12, \
                 updated_at = $13, version = version + 1 WHERE id = $14 AND version = $15",
            )
            .bind(e.status.as_str())
            .bind(e.claimed_by.clone())
            .bind(e.lease_until.map(time::to_db))
            .bind(e.prescreen_note.clone())
            .bind(e.routed_specialty.map(i64::from))
            .bind(e.appointment_at.map(time::to_db))
            .bind(e.appointment_method.map(AppointmentMethod::as_str))
            .bind(e.video_reason.clone())
            .bind(e.consultation_report.clone())
            .bind(e.appointment_minutes.map(i64::from))
            .bind(e.consulted_at.map(time::to_db))
            .bind(i64::from(e.unreachable_count))
            .bind(now_db.to_owned())
            .bind(e.id)
            .bind($version)
            .execute(&mut *$conn)
            .await?
            .rows_affected();
            if changed != 1 {
                return Ok::<bool, StoreError>(false);
            }
            let from = item.registration.status;
            if d.to != from {
                let changed = sqlx::query(
                    "UPDATE registrations SET status = $1, updated_at = $2 \
                     WHERE id = $3 AND status = $4",
                )
                .bind(d.to.as_str())
                .bind(now_db.to_owned())
                .bind(item.registration.id)
                .bind(from.as_str())
                .execute(&mut *$conn)
                .await?
                .rows_affected();
                if changed != 1 {
                    return Ok(false);
                }
            }
            sqlx::query(
                "INSERT INTO registration_events \
                 (registration_id, at, from_status, to_status, actor, detail, action) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(item.registration.id)
            .bind(now_db.to_owned())
            .bind(Some(from.as_str()))
            .bind(d.to.as_str())
            .bind(format!("vinmec:{}", $actor))
            .bind(d.detail.clone())
            .bind($action.name())
            .execute(&mut *$conn)
            .await?;
            Ok(true)
        }
        .await
    };
}

/// Takes the key for this transaction before any work: inserts a placeholder row, so a
/// concurrent request with the same key waits on the key's unique index (PostgreSQL)
/// or the write lock (SQLite) until this transaction ends, then finds the outcome.
/// Evaluates to `Ok(None)` when the key is ours now, `Ok(Some(answer))` when an
/// earlier request stored one.
macro_rules! take_key {
    ($conn:ident, $idem:expr, $now_db:expr) => {
        async {
            let idem: &Idempotency = $idem;
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys \
                 (principal, key, request_hash, response, created_at) \
                 VALUES ($1, $2, $3, '', $4) ON CONFLICT (principal, key) DO NOTHING",
            )
            .bind(idem.principal.clone())
            .bind(idem.key.clone())
            .bind(idem.request_hash.clone())
            .bind(String::from($now_db))
            .execute(&mut *$conn)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok::<Option<String>, StoreError>(None);
            }
            match stored_outcome!($conn, idem)? {
                Some(v) => Ok(Some(v)),
                // Only a placeholder of a rolled-back transaction could be empty, and
                // those roll back with it: treat as a race and decide again.
                None => Err(StoreError::Conflict("idempotency key in flux".into())),
            }
        }
        .await
    };
}

/// Stores the caller's answer for `$outcome` in the row [`take_key!`] inserted.
macro_rules! fill_key {
    ($conn:ident, $keyed:expr, $outcome:expr) => {
        async {
            let idem: &Idempotency = $keyed.key;
            let response = ($keyed.answer)($outcome)
                .map_err(|e| StoreError::InvalidRequest(format!("outcome: {e}")))?;
            sqlx::query(
                "UPDATE idempotency_keys SET response = $1 WHERE principal = $2 AND key = $3",
            )
            .bind(response)
            .bind(idem.principal.clone())
            .bind(idem.key.clone())
            .execute(&mut *$conn)
            .await?;
            Ok::<(), StoreError>(())
        }
        .await
    };
}

/// The answer stored under `idem`, or `None`; a key stored for another request is
/// [`QueueRefusal::IdempotencyKeyReused`].
macro_rules! stored_outcome {
    ($conn:ident, $idem:expr) => {
        async {
            let idem: &Idempotency = $idem;
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT request_hash, response FROM idempotency_keys \
                 WHERE principal = $1 AND key = $2",
            )
            .bind(idem.principal.clone())
            .bind(idem.key.clone())
            .fetch_optional(&mut *$conn)
            .await?;
            match row {
                None => Ok::<Option<String>, StoreError>(None),
                Some((_, response)) if response.is_empty() => Ok(None),
                Some((hash, _)) if hash != idem.request_hash => {
                    Err(StoreError::Queue(QueueRefusal::IdempotencyKeyReused))
                }
                Some((_, response)) => Ok(Some(response)),
            }
        }
        .await
    };
}

/// Stores the `answer` text under `idem`; `Ok(false)` when the key is already taken (a
/// concurrent request with the same key committed first).
macro_rules! store_outcome {
    ($conn:ident, $idem:expr, $answer:expr, $now_db:expr) => {
        async {
            let idem: &Idempotency = $idem;
            let response: String = $answer.to_owned();
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys \
                 (principal, key, request_hash, response, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (principal, key) DO NOTHING",
            )
            .bind(idem.principal.clone())
            .bind(idem.key.clone())
            .bind(idem.request_hash.clone())
            .bind(response)
            .bind(String::from($now_db))
            .execute(&mut *$conn)
            .await?
            .rows_affected();
            Ok::<bool, StoreError>(inserted == 1)
        }
        .await
    };
}

impl Store {
    /// A page of the queue matching `filter`, oldest entry first.
    pub async fn vinmec_queue(
        &self,
        filter: &QueueFilter,
        now: Timestamp,
    ) -> Result<QueuePage, StoreError> {
        let now_db = time::to_db(now);
        let status = filter.status.map(QueueStatus::as_str);
        let reg_status = filter.registration_status.map(Status::as_str);
        let channel = filter.channel.map(Channel::as_str);
        let limit = i64::from(filter.limit.clamp(1, 500));
        let offset = i64::from(filter.offset);
        let page_sql =
            format!("{SELECT_ITEM}{FILTER} ORDER BY q.enqueued_at, q.id LIMIT $6 OFFSET $7");
        let count_sql = format!(
            "SELECT COUNT(*) FROM vinmec_queue q JOIN registrations r ON r.id = q.registration_id{FILTER}"
        );
        let (raws, total): (Vec<ItemRaw>, i64) = on_pool!(self, pool => {
            let raws = sqlx::query_as::<_, ItemRaw>(sqlx::AssertSqlSafe(page_sql))
                .bind(&now_db)
                .bind(status)
                .bind(reg_status)
                .bind(channel)
                .bind(&filter.claimed_by)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
                .bind(&now_db)
                .bind(status)
                .bind(reg_status)
                .bind(channel)
                .bind(&filter.claimed_by)
                .fetch_one(pool)
                .await?;
            (raws, total)
        });
        let items = raws
            .into_iter()
            .map(|r| r.into_item().map(|(item, _)| present(item, now)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(QueuePage {
            items,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    /// One registration's queue item, or `None`.
    pub async fn vinmec_item(
        &self,
        registration_id: i64,
        now: Timestamp,
    ) -> Result<Option<QueueItem>, StoreError> {
        let sql = format!("{SELECT_ITEM} WHERE r.id = $1");
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, ItemRaw>(sqlx::AssertSqlSafe(sql))
                .bind(registration_id)
                .fetch_optional(pool)
                .await?
        });
        raw.map(|r| r.into_item().map(|(item, _)| present(item, now)))
            .transpose()
    }

    /// Applies one queue action to a registration's entry (see the module docs), with
    /// its status change and event in one transaction.
    pub async fn vinmec_apply(
        &self,
        registration_id: i64,
        action: &QueueAction,
        actor: &str,
        now: Timestamp,
        idem: Option<KeyedAnswer<'_, QueueItem>>,
    ) -> Result<Idempotent<QueueItem>, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let attempt = {
                let _guard = self.write_guard().await;
                with_retry!(self.apply_once(registration_id, action, actor, now, idem))?
            };
            if let Applied::Done(v) = attempt {
                return Ok(v);
            }
        }
        Err(StoreError::Conflict(format!(
            "queue entry of registration {registration_id} kept changing"
        )))
    }

    async fn apply_once(
        &self,
        registration_id: i64,
        action: &QueueAction,
        actor: &str,
        now: Timestamp,
        idem: Option<KeyedAnswer<'_, QueueItem>>,
    ) -> Result<Applied<Idempotent<QueueItem>>, StoreError> {
        let now_db = time::to_db(now);
        let sql = format!("{SELECT_ITEM} WHERE r.id = $1");
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_sql()).await?;
            let step: Result<Step<Applied<Idempotent<QueueItem>>>, StoreError> = async {
                if let Some(keyed) = idem
                    && let Some(stored) = take_key!(tx, keyed.key, &now_db)?
                {
                    return Ok(Step::Rollback(Applied::Done(Idempotent::Replayed(stored))));
                }
                let raw = sqlx::query_as::<_, ItemRaw>(sqlx::AssertSqlSafe(sql))
                    .bind(registration_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(raw) = raw else {
                    return Err(StoreError::NotFound { what: "registration", key: registration_id.to_string() });
                };
                let (item, version) = raw.into_item()?;
                let decision = decide(action, &item, actor, now)?;
                if !write_decision!(tx, &item, version, &decision, action, actor, &now_db)? {
                    return Ok(Step::Rollback(Applied::Retry));
                }
                let value = present(decided(item, decision, &now_db)?, now);
                if let Some(keyed) = idem {
                    fill_key!(tx, keyed, &value)?;
                }
                Ok(Step::Commit(Applied::Done(Idempotent::Done(value))))
            }
            .await;
            finish!(tx, step)
        })
    }

    /// Claims up to `count` of the oldest waiting entries for `actor` (fewer when fewer
    /// wait; none is not an error).
    pub async fn vinmec_claim_next(
        &self,
        count: u32,
        lease: Duration,
        actor: &str,
        now: Timestamp,
        idem: Option<KeyedAnswer<'_, [QueueItem]>>,
    ) -> Result<Idempotent<Vec<QueueItem>>, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let attempt = {
                let _guard = self.write_guard().await;
                with_retry!(self.claim_next_once(count, lease, actor, now, idem))?
            };
            if let Applied::Done(v) = attempt {
                return Ok(v);
            }
        }
        Err(StoreError::Conflict("claiming kept racing".into()))
    }

    async fn claim_next_once(
        &self,
        count: u32,
        lease: Duration,
        actor: &str,
        now: Timestamp,
        idem: Option<KeyedAnswer<'_, [QueueItem]>>,
    ) -> Result<Applied<Idempotent<Vec<QueueItem>>>, StoreError> {
        let now_db = time::to_db(now);
        let lock = match self.pool {
            Pools::Postgres(_) => " FOR UPDATE OF q SKIP LOCKED",
            Pools::Sqlite(_) => "",
        };
        let sql = format!(
            "{SELECT_ITEM} WHERE (q.status = 'waiting' OR (q.status = 'claimed' AND \
             (q.lease_until IS NULL OR q.lease_until <= $1))) \
             ORDER BY q.enqueued_at, q.id LIMIT $2{lock}"
        );
        let action = QueueAction::Claim { lease };
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_sql()).await?;
            let step: Result<Step<Applied<Idempotent<Vec<QueueItem>>>>, StoreError> = async {
                if let Some(keyed) = idem
                    && let Some(stored) = take_key!(tx, keyed.key, &now_db)?
                {
                    return Ok(Step::Rollback(Applied::Done(Idempotent::Replayed(stored))));
                }
                let raws = sqlx::query_as::<_, ItemRaw>(sqlx::AssertSqlSafe(sql))
                    .bind(&now_db)
                    .bind(i64::from(count.clamp(1, 100)))
                    .fetch_all(&mut *tx)
                    .await?;
                let mut claimed = Vec::new();
                for raw in raws {
                    let (item, version) = raw.into_item()?;
                    // An entry that is waiting but cannot be claimed (a hand-edited
                    // database) is skipped rather than failing the whole claim.
                    let Ok(decision) = decide(&action, &item, actor, now) else { continue };
                    if !write_decision!(tx, &item, version, &decision, &action, actor, &now_db)? {
                        continue;
                    }
                    claimed.push(present(decided(item, decision, &now_db)?, now));
                }
                if let Some(keyed) = idem {
                    fill_key!(tx, keyed, claimed.as_slice())?;
                }
                Ok(Step::Commit(Applied::Done(Idempotent::Done(claimed))))
            }
            .await;
            finish!(tx, step)
        })
    }

    /// The answer kept under this key by an earlier request, if any (refusing a key
    /// reused for another request). Read-only: for callers that answer from it before
    /// doing anything else (the fanpage intake).
    pub async fn idempotent_outcome(
        &self,
        idem: &Idempotency,
    ) -> Result<Option<String>, StoreError> {
        on_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            stored_outcome!(conn, idem)
        })
    }

    /// Keeps `answer` (the caller's text for an outcome it made) under `idem` (its own
    /// transaction; a concurrent request with the same key that stored first wins, and
    /// this returns false).
    pub async fn remember_outcome(
        &self,
        idem: &Idempotency,
        answer: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let now_db = time::to_db(now);
        let _guard = self.write_guard().await;
        on_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            store_outcome!(conn, idem, answer, &now_db)
        })
    }
}

/// A registration waiting in the webhook outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxItem {
    pub outbox_id: i64,
    pub attempts: u32,
    pub item: QueueItem,
}

impl Store {
    /// Outbox rows due for delivery at `now`, oldest first.
    pub async fn webhook_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let now_db = time::to_db(now);
        let sql = format!(
            "SELECT o.id AS o_id, o.attempts AS o_attempts, i.* FROM webhook_outbox o \
             JOIN ({SELECT_ITEM}) i ON i.r_id = o.registration_id \
             WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $1 \
             ORDER BY o.next_attempt_at, o.id LIMIT $2"
        );
        let rows: Vec<OutboxRaw> = on_pool!(self, pool => {
            sqlx::query_as::<_, OutboxRaw>(sqlx::AssertSqlSafe(sql))
                .bind(&now_db)
                .bind(i64::from(limit.clamp(1, 100)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|r| {
                let (item, _) = r.item.into_item()?;
                Ok(OutboxItem {
                    outbox_id: r.o_id,
                    attempts: u32::try_from(r.o_attempts).unwrap_or(u32::MAX),
                    item: present(item, now),
                })
            })
            .collect()
    }

    /// Marks an outbox row delivered.
    pub async fn webhook_delivered(
        &self,
        outbox_id: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let now_db = time::to_db(now);
        let _guard = self.write_guard().await;
        with_retry!(async {
            on_pool!(self, pool => {
                sqlx::query(
                    "UPDATE webhook_outbox SET delivered_at = $1, attempts = attempts + 1, \
                     last_error = '' WHERE id = $2",
                )
                .bind(&now_db)
                .bind(outbox_id)
                .execute(pool)
                .await?;
            });
            Ok::<(), StoreError>(())
        })
    }

    /// Records a failed attempt and when to try again.
    pub async fn webhook_failed(
        &self,
        outbox_id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let next_db = time::to_db(next_attempt_at);
        let error: String = error.chars().take(500).collect();
        let _guard = self.write_guard().await;
        with_retry!(async {
            on_pool!(self, pool => {
                sqlx::query(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = $1, \
                     last_error = $2 WHERE id = $3",
                )
                .bind(&next_db)
                .bind(&error)
                .bind(outbox_id)
                .execute(pool)
                .await?;
            });
            Ok::<(), StoreError>(())
        })
    }

    /// Registrations not yet delivered to the webhook.
    pub async fn webhook_pending(&self) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL")
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[derive(sqlx::FromRow)]
struct OutboxRaw {
    o_id: i64,
    o_attempts: i64,
    #[sqlx(flatten)]
    item: ItemRaw,
}

fn now_from_db(now_db: &str) -> Result<Timestamp, StoreError> {
    time::from_db("vinmec_queue", "updated_at", now_db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tongdai_domain::program::Group;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn item(status: Status, queue: QueueStatus) -> QueueItem {
        let t = ts("2021-11-27T03:00:00Z");
        QueueItem {
            registration: Registration {
                id: 7,
                msisdn: "+84903123678".into(),
                group: Group::One,
                channel: Channel::Hotline,
                specialty: Some(1),
                status,
                created_at: t,
                updated_at: t,
                call_id: None,
                fanpage_ref: None,
                name: None,
                note: String::new(),
            },
            entry: VinmecEntry {
                id: 3,
                registration_id: 7,
                status: queue,
                claimed_by: None,
                lease_until: None,
                prescreen_note: None,
                routed_specialty: None,
                appointment_at: None,
                appointment_method: None,
                video_reason: None,
                consultation_report: None,
                enqueued_at: t,
                updated_at: t,
                appointment_minutes: None,
                consulted_at: None,
                unreachable_count: 0,
            },
        }
    }

    fn claimed(mut i: QueueItem, by: &str, until: &str) -> QueueItem {
        i.entry.status = QueueStatus::Claimed;
        i.entry.claimed_by = Some(by.into());
        i.entry.lease_until = Some(ts(until));
        i
    }

    const NOW: &str = "2021-11-27T04:00:00Z";
    const LEASE: Duration = Duration::from_secs(600);

    fn booking() -> Booking {
        Booking {
            at: ts("2021-11-29T02:00:00Z"),
            minutes: 30,
            method: AppointmentMethod::Phone,
            video_reason: None,
        }
    }

    fn refusal(r: Result<Decision, StoreError>) -> String {
        match r {
            Ok(d) => panic!("expected a refusal, got {d:?}"),
            Err(StoreError::Queue(q)) => format!("{q:?}"),
            Err(StoreError::InvalidTransition { from, to, .. }) => {
                format!("InvalidTransition({from}->{to})")
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn claim_moves_registered_to_sent_and_takes_the_lease() {
        let d = decide(
            &QueueAction::Claim { lease: LEASE },
            &item(Status::Registered, QueueStatus::Waiting),
            "lan",
            ts(NOW),
        )
        .expect("claims");
        assert_eq!(d.to, Status::SentToVinmec);
        assert_eq!(d.entry.status, QueueStatus::Claimed);
        assert_eq!(d.entry.claimed_by.as_deref(), Some("lan"));
        assert_eq!(d.entry.lease_until, Some(ts("2021-11-27T04:10:00Z")));
        // Unreachable customers are retried through a new claim.
        let d = decide(
            &QueueAction::Claim { lease: LEASE },
            &item(Status::Unreachable, QueueStatus::Waiting),
            "lan",
            ts(NOW),
        )
        .expect("claims");
        assert_eq!(d.to, Status::SentToVinmec);
    }

    #[test]
    fn leases_exclude_others_until_they_run_out() {
        let held = claimed(
            item(Status::SentToVinmec, QueueStatus::Waiting),
            "lan",
            "2021-11-27T04:05:00Z",
        );
        let claim = QueueAction::Claim { lease: LEASE };
        assert!(refusal(decide(&claim, &held, "minh", ts(NOW))).starts_with("LeaseHeld"));
        // The holder claiming again keeps it (and extends it).
        let d = decide(&claim, &held, "lan", ts(NOW)).expect("own claim");
        assert_eq!(d.entry.lease_until, Some(ts("2021-11-27T04:10:00Z")));
        // At the lease's end it is anyone's.
        assert_eq!(
            effective(&held.entry, ts("2021-11-27T04:05:00Z")),
            QueueStatus::Waiting
        );
        let d = decide(&claim, &held, "minh", ts("2021-11-27T04:05:00Z")).expect("expired");
        assert_eq!(d.entry.claimed_by.as_deref(), Some("minh"));
        // The old holder learns that the lease ran out.
        let renew = QueueAction::Renew { lease: LEASE };
        assert!(
            refusal(decide(&renew, &held, "lan", ts("2021-11-27T04:06:00Z")))
                .starts_with("LeaseExpired")
        );
        assert!(
            refusal(decide(&renew, &held, "minh", ts(NOW))).starts_with("LeaseHeld"),
            "renewing someone else's lease"
        );
        let waiting = item(Status::Registered, QueueStatus::Waiting);
        assert!(refusal(decide(&renew, &waiting, "lan", ts(NOW))).starts_with("LeaseNotHeld"));
    }

    #[test]
    fn booking_needs_lease_and_prescreen_and_ends_the_claim() {
        let held = claimed(
            item(Status::SentToVinmec, QueueStatus::Waiting),
            "lan",
            "2021-11-27T04:05:00Z",
        );
        let book = QueueAction::Book(booking());
        assert_eq!(
            refusal(decide(&book, &held, "lan", ts(NOW))),
            "PrescreenRequired"
        );
        let pre = decide(
            &QueueAction::Prescreen {
                need: "đau lưng".into(),
                routed_specialty: 4,
            },
            &held,
            "lan",
            ts(NOW),
        )
        .expect("prescreen");
        assert_eq!(pre.to, Status::SentToVinmec);
        let mut screened = held.clone();
        screened.entry = pre.entry;
        let d = decide(&book, &screened, "lan", ts(NOW)).expect("books");
        assert_eq!(d.to, Status::AppointmentBooked);
        assert_eq!(d.entry.status, QueueStatus::Done);
        assert_eq!(d.entry.claimed_by, None);
        assert_eq!(d.entry.appointment_minutes, Some(30));
        // Rescheduling a booked entry needs no lease and changes no status.
        let mut booked = screened.clone();
        booked.registration.status = Status::AppointmentBooked;
        booked.entry = d.entry;
        let d = decide(&book, &booked, "minh", ts(NOW)).expect("reschedules");
        assert_eq!(d.to, Status::AppointmentBooked);
        // Booking without a claim.
        let waiting = item(Status::SentToVinmec, QueueStatus::Waiting);
        assert!(refusal(decide(&book, &waiting, "lan", ts(NOW))).starts_with("LeaseNotHeld"));
    }

    #[test]
    fn each_action_refused_in_the_wrong_state() {
        let now = ts(NOW);
        let consulted = QueueAction::Consulted {
            report: "ổn".into(),
        };
        // No consulting before booking.
        let held = claimed(
            item(Status::SentToVinmec, QueueStatus::Waiting),
            "lan",
            "2021-11-27T05:00:00Z",
        );
        assert_eq!(
            refusal(decide(&consulted, &held, "lan", now)),
            "InvalidTransition(sent_to_vinmec->consulted)"
        );
        // Consulting a booked entry works once.
        let booked = item(Status::AppointmentBooked, QueueStatus::Done);
        let d = decide(&consulted, &booked, "bs-hoa", now).expect("consulted");
        assert_eq!(d.to, Status::Consulted);
        let done = item(Status::Consulted, QueueStatus::Done);
        assert!(refusal(decide(&consulted, &done, "bs-hoa", now)).starts_with("InvalidTransition"));
        // No booking, claiming or cancelling a cancelled registration.
        let cancelled = item(Status::Cancelled, QueueStatus::Cancelled);
        for action in [
            QueueAction::Claim { lease: LEASE },
            QueueAction::Book(booking()),
            QueueAction::Cancel { reason: "x".into() },
        ] {
            let r = refusal(decide(&action, &cancelled, "lan", now));
            assert!(
                r.starts_with("WrongState")
                    || r.starts_with("InvalidTransition")
                    || r.starts_with("LeaseNotHeld"),
                "{action:?}: {r}"
            );
        }
        // A consulted customer cannot be cancelled; a booked one can.
        assert!(
            refusal(decide(
                &QueueAction::Cancel { reason: "x".into() },
                &done,
                "lan",
                now
            ))
            .starts_with("InvalidTransition")
        );
        let d = decide(
            &QueueAction::Cancel {
                reason: "đổi ý".into(),
            },
            &booked,
            "lan",
            now,
        )
        .expect("cancel");
        assert_eq!(
            (d.to, d.entry.status),
            (Status::Cancelled, QueueStatus::Cancelled)
        );
        // Not while another scheduler is on the phone with the customer.
        assert!(
            refusal(decide(
                &QueueAction::Cancel { reason: "x".into() },
                &held,
                "minh",
                now
            ))
            .starts_with("LeaseHeld")
        );
        // A missed appointment: booked → unreachable without a lease, back to waiting.
        let d = decide(
            &QueueAction::Unreachable {
                note: "không nghe máy".into(),
            },
            &booked,
            "lan",
            now,
        )
        .expect("missed");
        assert_eq!(
            (d.to, d.entry.status),
            (Status::Unreachable, QueueStatus::Waiting)
        );
        assert_eq!(d.entry.unreachable_count, 1);
        // A first call needs the lease.
        let waiting = item(Status::SentToVinmec, QueueStatus::Waiting);
        assert!(
            refusal(decide(
                &QueueAction::Unreachable {
                    note: String::new()
                },
                &waiting,
                "lan",
                now
            ))
            .starts_with("LeaseNotHeld")
        );
        // Prescreening a booked registration is not a thing.
        let booked_held = claimed(booked.clone(), "lan", "2021-11-27T05:00:00Z");
        assert!(
            refusal(decide(
                &QueueAction::Prescreen {
                    need: "x".into(),
                    routed_specialty: 1
                },
                &booked_held,
                "lan",
                now
            ))
            .starts_with("WrongState")
        );
        // Done entries are not claimable.
        assert!(
            refusal(decide(
                &QueueAction::Claim { lease: LEASE },
                &booked,
                "lan",
                now
            ))
            .starts_with("WrongState")
        );
    }
}
