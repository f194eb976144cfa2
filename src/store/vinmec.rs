//! The Vinmec scheduling queue (docs/program.md §3 steps 2–3): what Vinmec HP's schedulers
//! work through — list, claim with a lease, pre-screen, book, mark unreachable, record
//! the consultation, cancel.
//!
//! The rules — which action is allowed in which state, leases and their expiry, what
//! each action writes — are `tongdai_domain::vinmec::decide`'s (its module docs hold the
//! state table). This module reads the entry, asks `decide`, and writes the
//! [`Transition`] it returns; it knows no rule.
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
use tongdai_domain::program::{Channel, Status};
use tongdai_domain::vinmec::{
    EventDetail, QueueAction, QueueRefusal, QueueState, Refusal, Transition, decide,
    effective_status,
};

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

/// What the queue rules read of a stored item.
fn rule_view(item: &QueueItem) -> QueueState {
    QueueState {
        status: item.registration.status,
        entry: item.entry.queue.clone(),
    }
}

/// A refusal of `decide` as the store reports it: the lifecycle's names the
/// registration, like [`Store::set_status`]'s.
fn refused(registration_id: i64, r: Refusal) -> StoreError {
    match r {
        Refusal::Queue(q) => StoreError::Queue(q),
        Refusal::InvalidTransition { from, to } => StoreError::InvalidTransition {
            id: registration_id,
            from,
            to,
        },
        Refusal::InvalidLease(problem) => StoreError::InvalidRequest(format!("lease: {problem}")),
    }
}

/// The event's `detail` column: timestamps in the store's text form.
fn detail_text(detail: &EventDetail) -> String {
    match detail {
        EventDetail::None => String::new(),
        EventDetail::LeaseUntil(until) => {
            format!("lease_until={}", until.map(time::to_db).unwrap_or_default())
        }
        EventDetail::RoutedSpecialty(code) => format!("routed_specialty={code}"),
        EventDetail::Booked {
            at,
            minutes,
            method,
        } => format!(
            "at={} minutes={minutes} method={}",
            time::to_db(*at),
            method.as_str()
        ),
        EventDetail::Note(text) => text.clone(),
    }
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

/// The item as `transition` left it, written at `now_db`: the registration's
/// `updated_at` moves only when its status changed; the queue entry's always does.
fn decided(item: QueueItem, transition: Transition, now_db: &str) -> Result<QueueItem, StoreError> {
    let written = now_from_db(now_db)?;
    let registration_changed = transition.to != item.registration.status;
    Ok(QueueItem {
        registration: Registration {
            status: transition.to,
            updated_at: if registration_changed {
                written
            } else {
                item.registration.updated_at
            },
            ..item.registration
        },
        entry: VinmecEntry {
            queue: transition.entry,
            updated_at: written,
            ..item.entry
        },
    })
}

/// The item as the outside sees it at `now` (effective status; a lapsed lease's holder
/// and end stay visible — they say who had it last).
fn present(mut item: QueueItem, now: Timestamp) -> QueueItem {
    let q = &mut item.entry.queue;
    q.status = effective_status(q.status, q.lease_until, now);
    item
}

/// How one action attempt ended inside its transaction.
enum Applied<T> {
    Done(T),
    /// The entry changed under us (version mismatch or a same-key race): decide again.
    Retry,
}

/// Writes a transition: the entry (if unchanged since read: the version read guards it),
/// the registration's status (if it changes, and only from the status read) and the
/// event. Evaluates to `Ok(false)` when the entry changed under
/// us. A macro so that one body serves both backends' connection types (like `on_pool!`).
macro_rules! write_transition {
    ($conn:ident, $item:expr, $version:expr, $t:expr, $now_db:expr) => {
        async {
            let item: &QueueItem = $item;
            let t: &Transition = $t;
            let now_db: &str = $now_db;
            let e = &t.entry;
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
            .bind(item.entry.id)
            .bind($version)
            .execute(&mut *$conn)
            .await?
            .rows_affected();
            if changed != 1 {
                return Ok::<bool, StoreError>(false);
            }
            let from = item.registration.status;
            if t.to != from {
                let changed = sqlx::query(
                    "UPDATE registrations SET status = $1, updated_at = $2 \
                     WHERE id = $3 AND status = $4",
                )
                .bind(t.to.as_str())
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
            .bind(t.to.as_str())
            .bind(t.event.actor.clone())
            .bind(detail_text(&t.event.detail))
            .bind(t.event.action)
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
                let transition = decide(&rule_view(&item), action, actor, now)
                    .map_err(|r| refused(registration_id, r))?;
                if !write_transition!(tx, &item, version, &transition, &now_db)? {
                    return Ok(Step::Rollback(Applied::Retry));
                }
                let value = present(decided(item, transition, &now_db)?, now);
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
                    let Ok(transition) = decide(&rule_view(&item), &action, actor, now) else {
                        continue;
                    };
                    if !write_transition!(tx, &item, version, &transition, &now_db)? {
                        continue;
                    }
                    claimed.push(present(decided(item, transition, &now_db)?, now));
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
