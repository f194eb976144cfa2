//! The registration store: the only module that knows SQL (and names `sqlx`).
//!
//! One [`Store`] API over two backends with the same behaviour:
//! - **SQLite** (default, `sqlite://data/tongdai.db`): a single-site deployment needs no
//!   database server. WAL mode so readers never block the writer; `busy_timeout` so a
//!   second process waits instead of failing.
//! - **PostgreSQL** (`postgres://…`): when several service processes share the data.
//!
//! Migrations (`migrations/sqlite`, `migrations/postgres`: the dialects differ) are
//! embedded in the binary and run by [`Store::connect`].
//!
//! Timestamps are stored as fixed-width UTC RFC 3339 text (see `time`).
//!
//! ## How the cap stays exact
//! Every registration increments `program_counters('registrations').used` with a
//! conditional `UPDATE … SET used = used + 1 WHERE used < cap RETURNING used` in the
//! same transaction that inserts the registration, its queue entry and its event; when
//! the update matches no row the transaction is rolled back and the answer is
//! `CapReached`. On PostgreSQL the counter row's lock serialises concurrent
//! registrations across connections and processes (READ COMMITTED re-checks `used <
//! cap` against the committed value after the wait). On SQLite write transactions start
//! with `BEGIN IMMEDIATE`, taking the database's write lock up front, so no two
//! registrations interleave (a per-`Store` async mutex additionally queues this
//! process's writers, so they do not spin in SQLite's busy handler). The `UNIQUE`
//! msisdn with `INSERT … ON CONFLICT DO NOTHING` turns a same-number race into
//! `AlreadyRegistered`, with the transaction (and so any counter change) rolled back.
//!
//! ## Campaigns
//! [`campaign`] holds the outbound side (migration 0002): campaigns, their contacts and
//! attempts, the do-not-call list and survey answers, with the exactly-once claim
//! protocol of `crate::dialer` (its module doc lists the calls the dialer runtime
//! makes, in order).

mod error;
mod time;
mod types;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use campaign::{
    AttemptEnd, AttemptRow, AttemptStatus, CallLaterRequest, CampaignHoldRow, CampaignLine,
    CampaignProgress, CampaignRow, ClaimHold, ClaimRequest, ClaimedAttempt, Claims, ContactEnd,
    ContactRow, ContactState, CreatedCampaign, DncEntry, DncImportReport, DncSource,
    FinishedAttempt, FlowOutcome, RecoveredAttempt, Resolution, SatisfactionReport, ScaleSummary,
    SurveyAnswer, SurveyQuestion, YesNoSummary,
};
pub use error::{ImportError, StoreError};
pub use types::{
    AppointmentMethod, Backend, CallDirection, CallRecordRow, Disposition, ImportReport,
    NewRegistration, QueueEntry, QueueStatus, RegisterOutcome, Registration, RegistrationEvent,
    VinmecEntry,
};

use error::is_retryable;
use tongdai_domain::program::{
    self, Channel, Eligibility, Group, ProgramConfig, Status, Subscriber, Window,
};
use types::{CallRecordRaw, EventRaw, RegistrationRaw, SubscriberRaw, VinmecRaw};

/// Where the service keeps its data unless configured otherwise.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/tongdai.db";

/// How long a SQLite connection waits for another writer before SQLITE_BUSY.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of a write transaction that failed with a transient lock error.
const MAX_ATTEMPTS: u32 = 5;
/// The counter row that holds the cap bookkeeping.
const REGISTRATIONS_COUNTER: &str = "registrations";

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Clone, Debug)]
enum Pools {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle to the registration store. Cloning is cheap (pool handles are shared).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pools,
    /// Queues this process's SQLite write transactions (see the module docs).
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

/// Runs `$body` with `$pool` bound to the concrete pool: the body is compiled once per
/// backend, so the same SQL text and logic serve both (SQL here is written in the
/// common dialect: `$n` placeholders, `ON CONFLICT`, `RETURNING`).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pools::Sqlite($pool) => $body,
            Pools::Postgres($pool) => $body,
        }
    };
}

/// Retries `$attempt` (an expression producing a future of `Result<T, StoreError>`)
/// while it fails with a transient lock error, with a short growing pause.
macro_rules! with_retry {
    ($attempt:expr) => {{
        let mut tries = 0u32;
        loop {
            tries += 1;
            match $attempt.await {
                Err(StoreError::Database(e)) if is_retryable(&e) && tries < MAX_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
                }
                other => break other,
            }
        }
    }};
}

/// Ends the transaction `$tx` as the step decided. Rolling back explicitly (rather
/// than by dropping) releases SQLite's write lock and PostgreSQL's row and index locks
/// before the connection goes back to the pool.
macro_rules! finish {
    ($tx:ident, $step:expr) => {
        match $step {
            Ok(Step::Commit(v)) => {
                $tx.commit().await?;
                Ok(v)
            }
            Ok(Step::Rollback(v)) => {
                $tx.rollback().await?;
                Ok(v)
            }
            Err(e) => {
                // The original error matters more than a failed rollback (the
                // connection is then discarded by the pool anyway).
                let _ = $tx.rollback().await;
                Err(e)
            }
        }
    };
}

// Declared after the macros above so they can use them.
pub mod campaign;
mod campaign_reports;
mod handbook;
mod import;
mod reports;
mod vinmec;

pub use campaign_reports::SurveyResultRow;
pub use handbook::{HandbookStats, HandbookVisit};
pub use reports::{CallStats, LineStats, QueueStats, RegistrationStats};
pub use tongdai_domain::vinmec::{Booking, MAX_TEXT_CHARS, QueueAction, QueueRefusal};
pub use vinmec::{
    Idempotency, Idempotent, KeyedAnswer, OutboxItem, QueueFilter, QueueItem, QueuePage,
};

/// How a write transaction ends.
enum Step<T> {
    Commit(T),
    Rollback(T),
}

impl Store {
    /// Opens (creating it if needed) and migrates the database at `url`.
    ///
    /// `sqlite://path` (relative paths from the working directory; the parent
    /// directory and the file are created) or `postgres://` / `postgresql://`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::InvalidUrl(format!("bad PostgreSQL URL: {e}")))?;
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await
                .map_err(|source| StoreError::Connect {
                    backend: "postgres",
                    source,
                })?;
            POSTGRES_MIGRATOR.run(&pool).await?;
            Pools::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::InvalidUrl(format!("bad SQLite URL: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            if let Some(dir) = opts.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await
                .map_err(|source| StoreError::Connect {
                    backend: "sqlite",
                    source,
                })?;
            SQLITE_MIGRATOR.run(&pool).await?;
            Pools::Sqlite(pool)
        } else {
            return Err(StoreError::InvalidUrl(
                "expected sqlite://…, postgres://… or postgresql://…".into(),
            ));
        };
        Ok(Store {
            pool,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pools::Sqlite(_) => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes the pool (waits for connections to be returned). Clones become unusable.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    /// Statement that opens a write transaction: on SQLite `BEGIN IMMEDIATE` takes the
    /// write lock before the first read, so read-check-write sequences cannot interleave.
    fn begin_sql(&self) -> &'static str {
        match self.pool {
            Pools::Sqlite(_) => "BEGIN IMMEDIATE",
            Pools::Postgres(_) => "BEGIN",
        }
    }

    /// Held around a write transaction: a SQLite-only in-process queue (PostgreSQL
    /// has row locks and needs none).
    async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.pool {
            Pools::Sqlite(_) => Some(self.write_lock.lock().await),
            Pools::Postgres(_) => None,
        }
    }

    // ---- subscribers -----------------------------------------------------------------

    /// Inserts or replaces one row of the target list (msisdn normalised to E.164).
    pub async fn upsert_subscriber(&self, s: &Subscriber) -> Result<(), StoreError> {
        let msisdn = program::normalize_msisdn(&s.msisdn)?;
        let charge = charge_to_db(s.charge_per_cycle_vnd)?;
        let imported_at = time::to_db(s.imported_at);
        let _guard = self.write_guard().await;
        with_retry!(async {
            on_pool!(self, pool => {
                sqlx::query(UPSERT_SUBSCRIBER)
                    .bind(&msisdn)
                    .bind(s.plan.as_str())
                    .bind(charge)
                    .bind(&s.list_source)
                    .bind(&s.name)
                    .bind(&imported_at)
                    .bind(&s.import_batch)
                    .execute(pool)
                    .await?;
            });
            Ok::<(), StoreError>(())
        })
    }

    pub async fn subscriber(&self, msisdn: &str) -> Result<Option<Subscriber>, StoreError> {
        let msisdn = program::normalize_msisdn(msisdn)?;
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, SubscriberRaw>(SELECT_SUBSCRIBER)
                .bind(&msisdn)
                .fetch_optional(pool)
                .await?
        });
        raw.map(Subscriber::try_from).transpose()
    }

    /// Number of rows on the target list.
    pub async fn subscriber_count(&self) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM subscribers")
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    // ---- registrations ---------------------------------------------------------------

    pub async fn registration_by_msisdn(
        &self,
        msisdn: &str,
    ) -> Result<Option<Registration>, StoreError> {
        let msisdn = program::normalize_msisdn(msisdn)?;
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, RegistrationRaw>(SELECT_REGISTRATION_BY_MSISDN)
                .bind(&msisdn)
                .fetch_optional(pool)
                .await?
        });
        raw.map(Registration::try_from).transpose()
    }

    pub async fn registration(&self, id: i64) -> Result<Option<Registration>, StoreError> {
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, RegistrationRaw>(SELECT_REGISTRATION_BY_ID)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        raw.map(Registration::try_from).transpose()
    }

    /// Registers a customer, atomically checking (in this order):
    ///
    /// 1. one registration per number — an existing registration is reported first,
    ///    whatever the date or the cap, because "you are already registered" is the
    ///    useful answer to someone who calls again;
    /// 2. the registration window (`today`, the program's local date);
    /// 3. eligibility — group 1 must be on the SMS target list, postpaid, charge ≥
    ///    minimum; group 2 (fanpage) skips the list check, which is what defines it;
    /// 4. the cap (see the module docs).
    ///
    /// On success the same transaction writes the registration (`Registered`), its
    /// `vinmec_queue` entry (`waiting`) and the creating event.
    ///
    /// Errors (not outcomes) for requests no caller should make: an invalid number, a
    /// channel that does not belong to the group, an unknown specialty.
    pub async fn register(
        &self,
        req: NewRegistration,
        cfg: &ProgramConfig,
        today: Date,
        now: Timestamp,
    ) -> Result<RegisterOutcome, StoreError> {
        let msisdn = program::normalize_msisdn(&req.msisdn)?;
        if !program::channel_allowed(req.group, req.channel) {
            return Err(StoreError::InvalidRequest(format!(
                "group {} does not register through {}",
                req.group.number(),
                req.channel
            )));
        }
        if let Some(code) = req.specialty
            && cfg.specialty(code).is_none()
        {
            return Err(StoreError::UnknownSpecialty(code));
        }
        let req = NewRegistration { msisdn, ..req };
        for _ in 0..MAX_ATTEMPTS {
            let outcome = {
                let _guard = self.write_guard().await;
                with_retry!(self.register_once(&req, cfg, today, now))?
            };
            match outcome {
                Attempt::Done(outcome) => return Ok(outcome),
                // Lost a same-number race: report the row that won.
                Attempt::Conflict => {
                    if let Some(existing) = self.registration_by_msisdn(&req.msisdn).await? {
                        return Ok(RegisterOutcome::AlreadyRegistered(existing));
                    }
                    // The winner rolled back in between; try again.
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "registration of {} kept racing",
            program::mask_msisdn(&req.msisdn)
        )))
    }

    async fn register_once(
        &self,
        req: &NewRegistration,
        cfg: &ProgramConfig,
        today: Date,
        now: Timestamp,
    ) -> Result<Attempt, StoreError> {
        let now_db = time::to_db(now);
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_sql()).await?;
            let step: Result<Step<Attempt>, StoreError> = async {
                let existing = sqlx::query_as::<_, RegistrationRaw>(SELECT_REGISTRATION_BY_MSISDN)
                    .bind(&req.msisdn)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(raw) = existing {
                    let reg = Registration::try_from(raw)?;
                    return Ok(Step::Rollback(Attempt::Done(RegisterOutcome::AlreadyRegistered(reg))));
                }

                let window = program::registration_window(today, cfg);
                if window != Window::Open {
                    return Ok(Step::Rollback(Attempt::Done(RegisterOutcome::OutsideWindow(window))));
                }

                if req.group == Group::One {
                    let sub = sqlx::query_as::<_, SubscriberRaw>(SELECT_SUBSCRIBER)
                        .bind(&req.msisdn)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(Subscriber::try_from)
                        .transpose()?;
                    let e = program::eligibility(sub.as_ref(), cfg);
                    if e != Eligibility::Eligible {
                        return Ok(Step::Rollback(Attempt::Done(RegisterOutcome::NotEligible(e))));
                    }
                }

                let id: Option<i64> = sqlx::query_scalar(INSERT_REGISTRATION)
                    .bind(&req.msisdn)
                    .bind(req.group.number())
                    .bind(req.channel.as_str())
                    .bind(req.specialty.map(i64::from))
                    .bind(Status::Registered.as_str())
                    .bind(&now_db)
                    .bind(&req.call_id)
                    .bind(&req.fanpage_ref)
                    .bind(&req.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(id) = id else {
                    return Ok(Step::Rollback(Attempt::Conflict));
                };

                let used: Option<i64> = sqlx::query_scalar(TAKE_PLACE)
                    .bind(REGISTRATIONS_COUNTER)
                    .bind(i64::from(cfg.cap))
                    .fetch_optional(&mut *tx)
                    .await?;
                if used.is_none() {
                    // Rolling back also removes the registration row inserted above.
                    return Ok(Step::Rollback(Attempt::Done(RegisterOutcome::CapReached)));
                }

                sqlx::query(INSERT_QUEUE_ENTRY)
                    .bind(id)
                    .bind(&now_db)
                    .execute(&mut *tx)
                    .await?;
                let detail = format!(
                    "group={} channel={}{}",
                    req.group.number(),
                    req.channel,
                    req.call_id
                        .as_deref()
                        .map(|c| format!(" call_id={c}"))
                        .unwrap_or_default()
                );
                sqlx::query(INSERT_EVENT)
                    .bind(id)
                    .bind(&now_db)
                    .bind(None::<String>)
                    .bind(Status::Registered.as_str())
                    .bind(actor_for(req.channel))
                    .bind(&detail)
                    .execute(&mut *tx)
                    .await?;

                let now = time::from_db("registrations", "created_at", &now_db)?;
                Ok(Step::Commit(Attempt::Done(RegisterOutcome::Registered(Registration {
                    id,
                    msisdn: req.msisdn.clone(),
                    group: req.group,
                    channel: req.channel,
                    specialty: req.specialty,
                    status: Status::Registered,
                    created_at: now,
                    updated_at: now,
                    call_id: req.call_id.clone(),
                    fanpage_ref: req.fanpage_ref.clone(),
                    name: req.name.clone(),
                    note: String::new(),
                }))))
            }
            .await;
            finish!(tx, step)
        })
    }

    /// Places taken: the cap counter. Cancelled registrations keep their place — the
    /// plan offers the program to the first 500 customers, a cancelled customer has
    /// already been handed to Vinmec (who planned capacity for 500), and a counter
    /// that only grows makes "the cap was reached on day X" an auditable fact rather
    /// than one that changes with later cancellations.
    pub async fn registered_count(&self) -> Result<u32, StoreError> {
        let used: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT used FROM program_counters WHERE name = $1")
                .bind(REGISTRATIONS_COUNTER)
                .fetch_optional(pool)
                .await?
        });
        let used = used.ok_or_else(|| {
            error::corrupt(
                "program_counters",
                "name",
                "registrations counter row is missing",
            )
        })?;
        u32::try_from(used).map_err(|e| error::corrupt("program_counters", "used", e))
    }

    /// Number of rows in `registrations` (all statuses); equals
    /// [`Self::registered_count`] unless someone edited the database by hand.
    pub async fn registration_rows(&self) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM registrations")
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Moves a registration to `to` if [`program::can_transition`] allows it, writing
    /// the event in the same transaction. Cancelling also cancels the queue entry
    /// (unless Vinmec already finished it) so nobody calls the customer.
    ///
    /// The update is conditional on the status read, so two concurrent changes cannot
    /// both apply an edge from the same state; the loser re-reads and is re-validated.
    pub async fn set_status(
        &self,
        id: i64,
        to: Status,
        actor: &str,
        detail: &str,
        now: Timestamp,
    ) -> Result<Registration, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let result = {
                let _guard = self.write_guard().await;
                with_retry!(self.set_status_once(id, to, actor, detail, now))?
            };
            if let Some(reg) = result {
                return Ok(reg);
            }
        }
        Err(StoreError::Conflict(format!(
            "registration {id} kept changing while setting {to}"
        )))
    }

    async fn set_status_once(
        &self,
        id: i64,
        to: Status,
        actor: &str,
        detail: &str,
        now: Timestamp,
    ) -> Result<Option<Registration>, StoreError> {
        let now_db = time::to_db(now);
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_sql()).await?;
            let step: Result<Step<Option<Registration>>, StoreError> = async {
                let current = sqlx::query_as::<_, RegistrationRaw>(SELECT_REGISTRATION_BY_ID)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(current) = current else {
                    return Err(StoreError::NotFound { what: "registration", key: id.to_string() });
                };
                let current = Registration::try_from(current)?;
                if !program::can_transition(current.status, to) {
                    return Err(StoreError::InvalidTransition { id, from: current.status, to });
                }
                let changed = sqlx::query(
                    "UPDATE registrations SET status = $1, updated_at = $2 \
                     WHERE id = $3 AND status = $4",
                )
                .bind(to.as_str())
                .bind(&now_db)
                .bind(id)
                .bind(current.status.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed != 1 {
                    // Changed by someone else since we read it: re-read and re-validate.
                    return Ok(Step::Rollback(None));
                }
                if to == Status::Cancelled {
                    sqlx::query(
                        "UPDATE vinmec_queue SET status = 'cancelled', updated_at = $1 \
                         WHERE registration_id = $2 AND status <> 'done'",
                    )
                    .bind(&now_db)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(INSERT_EVENT)
                    .bind(id)
                    .bind(&now_db)
                    .bind(Some(current.status.as_str()))
                    .bind(to.as_str())
                    .bind(actor)
                    .bind(detail)
                    .execute(&mut *tx)
                    .await?;
                let now = time::from_db("registrations", "updated_at", &now_db)?;
                Ok(Step::Commit(Some(Registration { status: to, updated_at: now, ..current })))
            }
            .await;
            finish!(tx, step)
        })
    }

    /// The registration's history, oldest first.
    pub async fn events(&self, registration_id: i64) -> Result<Vec<RegistrationEvent>, StoreError> {
        let raws = on_pool!(self, pool => {
            sqlx::query_as::<_, EventRaw>(
                "SELECT id, registration_id, at, from_status, to_status, actor, detail, action \
                 FROM registration_events WHERE registration_id = $1 ORDER BY id",
            )
            .bind(registration_id)
            .fetch_all(pool)
            .await?
        });
        raws.into_iter().map(RegistrationEvent::try_from).collect()
    }

    pub async fn vinmec_entry(
        &self,
        registration_id: i64,
    ) -> Result<Option<VinmecEntry>, StoreError> {
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, VinmecRaw>(
                "SELECT id, registration_id, status, claimed_by, lease_until, prescreen_note, \
                 routed_specialty, appointment_at, appointment_method, video_reason, \
                 consultation_report, enqueued_at, updated_at, appointment_minutes, \
                 consulted_at, unreachable_count FROM vinmec_queue WHERE registration_id = $1",
            )
            .bind(registration_id)
            .fetch_optional(pool)
            .await?
        });
        raw.map(VinmecEntry::try_from).transpose()
    }

    // ---- call records ----------------------------------------------------------------

    /// Persists one finished call. A Call-ID is unique per call, so a second insert of
    /// the same one is [`StoreError::DuplicateCallRecord`], not an overwrite.
    pub async fn insert_call_record(&self, r: &CallRecordRow) -> Result<(), StoreError> {
        let ivr_path = serde_json::to_string(&r.ivr_path)
            .map_err(|e| StoreError::InvalidRequest(format!("ivr_path: {e}")))?;
        let prompts = serde_json::to_string(&r.prompts)
            .map_err(|e| StoreError::InvalidRequest(format!("prompts: {e}")))?;
        let started_at = time::to_db(r.started_at);
        let answered_at = r.answered_at.map(time::to_db);
        let ended_at = r.ended_at.map(time::to_db);
        let _guard = self.write_guard().await;
        let inserted = with_retry!(async {
            let n = on_pool!(self, pool => {
                sqlx::query(INSERT_CALL_RECORD)
                    .bind(&r.call_id)
                    .bind(r.direction.as_str())
                    .bind(&r.caller)
                    .bind(&r.called)
                    .bind(&started_at)
                    .bind(&answered_at)
                    .bind(&ended_at)
                    .bind(r.final_status.map(i64::from))
                    .bind(r.disposition.as_str())
                    .bind(&r.end_reason)
                    .bind(&r.digits)
                    .bind(&ivr_path)
                    .bind(&prompts)
                    .bind(r.campaign_id)
                    .bind(r.attempt_id)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            Ok::<u64, StoreError>(n)
        })?;
        if inserted == 0 {
            return Err(StoreError::DuplicateCallRecord(r.call_id.clone()));
        }
        Ok(())
    }

    /// The most recent calls first (by start time), at most `limit` (clamped to 0..=10000).
    pub async fn call_records(&self, limit: i64) -> Result<Vec<CallRecordRow>, StoreError> {
        let limit = limit.clamp(0, 10_000);
        let raws = on_pool!(self, pool => {
            sqlx::query_as::<_, CallRecordRaw>(
                "SELECT call_id, direction, caller, called, started_at, answered_at, ended_at, \
                 final_status, disposition, end_reason, digits, ivr_path, prompts, campaign_id, \
                 attempt_id FROM call_records ORDER BY started_at DESC, call_id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        raws.into_iter().map(CallRecordRow::try_from).collect()
    }

    pub async fn call_record(&self, call_id: &str) -> Result<Option<CallRecordRow>, StoreError> {
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, CallRecordRaw>(
                "SELECT call_id, direction, caller, called, started_at, answered_at, ended_at, \
                 final_status, disposition, end_reason, digits, ivr_path, prompts, campaign_id, \
                 attempt_id FROM call_records WHERE call_id = $1",
            )
            .bind(call_id)
            .fetch_optional(pool)
            .await?
        });
        raw.map(CallRecordRow::try_from).transpose()
    }
}

/// Result of one registration transaction.
enum Attempt {
    Done(RegisterOutcome),
    /// The msisdn insert hit an existing row (a concurrent registration committed).
    Conflict,
}

/// The `actor` recorded on the creating event.
fn actor_for(channel: Channel) -> &'static str {
    match channel {
        Channel::Hotline => "ivr",
        Channel::OutboundCall => "outbound_call",
        Channel::Fanpage => "fanpage_staff",
    }
}

fn charge_to_db(charge: u64) -> Result<i64, StoreError> {
    i64::try_from(charge)
        .map_err(|_| StoreError::InvalidRequest(format!("charge {charge} VND is out of range")))
}

const SELECT_SUBSCRIBER: &str = "SELECT msisdn, plan, charge_per_cycle_vnd, list_source, name, \
     imported_at, import_batch FROM subscribers WHERE msisdn = $1";

const UPSERT_SUBSCRIBER: &str = "INSERT INTO subscribers \
     (msisdn, plan, charge_per_cycle_vnd, list_source, name, imported_at, import_batch) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (msisdn) DO UPDATE SET plan = excluded.plan, \
     charge_per_cycle_vnd = excluded.charge_per_cycle_vnd, list_source = excluded.list_source, \
     name = excluded.name, imported_at = excluded.imported_at, import_batch = excluded.import_batch";

const SELECT_REGISTRATION_BY_MSISDN: &str = "SELECT id, msisdn, program_group, channel, specialty, \
     status, created_at, updated_at, call_id, fanpage_ref, name, note \
     FROM registrations WHERE msisdn = $1";

const SELECT_REGISTRATION_BY_ID: &str = "SELECT id, msisdn, program_group, channel, specialty, \
     status, created_at, updated_at, call_id, fanpage_ref, name, note \
     FROM registrations WHERE id = $1";

const INSERT_REGISTRATION: &str = "INSERT INTO registrations \
     (msisdn, program_group, channel, specialty, status, created_at, updated_at, call_id, \
     fanpage_ref, name, note) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, '') \
     ON CONFLICT (msisdn) DO NOTHING RETURNING id";

/// Takes one place if one is left; no row comes back when the cap is reached.
const TAKE_PLACE: &str =
    "UPDATE program_counters SET used = used + 1 WHERE name = $1 AND used < $2 RETURNING used";

const INSERT_QUEUE_ENTRY: &str = "INSERT INTO vinmec_queue \
     (registration_id, status, enqueued_at, updated_at) VALUES ($1, 'waiting', $2, $2)";

const INSERT_EVENT: &str = "INSERT INTO registration_events \
     (registration_id, at, from_status, to_status, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)";

const INSERT_CALL_RECORD: &str = "INSERT INTO call_records \
     (call_id, direction, caller, called, started_at, answered_at, ended_at, final_status, \
     disposition, end_reason, digits, ivr_path, prompts, campaign_id, attempt_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
     ON CONFLICT (call_id) DO NOTHING";
