//! Store errors. Messages never carry a full phone number (PROGRAM data is personal
//! data of MobiFone subscribers): numbers are masked like `0903***678`.

use tongdai_domain::campaign::AttemptStatus;
use tongdai_domain::dialer::{CampaignState, PolicyError};
use tongdai_domain::program::{MsisdnError, Status};
use tongdai_domain::vinmec::QueueRefusal;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no backend we support. Holds the reason, never the URL
    /// (it may carry a password).
    #[error("unsupported database URL: {0}")]
    InvalidUrl(String),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        backend: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    InvalidMsisdn(#[from] MsisdnError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("unknown specialty code {0}")]
    UnknownSpecialty(u8),
    #[error("{what} {key} not found")]
    NotFound { what: &'static str, key: String },
    #[error("registration {id}: status cannot go from {from} to {to}")]
    InvalidTransition { id: i64, from: Status, to: Status },
    #[error("call record {0:?} already exists")]
    DuplicateCallRecord(String),
    #[error(transparent)]
    InvalidPolicy(#[from] PolicyError),
    #[error("a campaign named {0:?} already exists")]
    CampaignExists(String),
    #[error("cannot {command} campaign {id}: it is {state}")]
    InvalidCampaignCommand {
        id: i64,
        command: &'static str,
        state: CampaignState,
    },
    /// The attempt was already finished or released (e.g. by restart recovery).
    #[error("attempt {id} is {status}, not dialing")]
    AttemptNotDialing { id: i64, status: AttemptStatus },
    /// Concurrent writers kept changing the same row; the caller may try again.
    #[error("concurrent update conflict: {0}")]
    Conflict(String),
    /// A Vinmec queue action refused because of the entry's state (lease, order).
    #[error(transparent)]
    Queue(#[from] QueueRefusal),
    /// A stored value does not decode (edited by hand, or a newer schema).
    #[error("stored data is invalid: {table}.{column}: {problem}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        problem: String,
    },
}

/// Why a subscriber list was not imported. Nothing is written when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "bad header (line 1): {problem}; expected msisdn,plan,charge_per_cycle_vnd,list_source[,name]"
    )]
    Header { problem: String },
    /// `line` is the 1-based line in the file as an editor shows it (header = line 1).
    #[error("line {line}: {problem}")]
    Row { line: u64, problem: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a database error is a transient lock/serialisation failure worth retrying.
///
/// SQLite: SQLITE_BUSY (5) and its extended codes, SQLITE_LOCKED (6) — seen when
/// `busy_timeout` runs out under heavy contention. PostgreSQL: serialization failure
/// (40001) and deadlock detected (40P01).
pub(crate) fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("5" | "6" | "261" | "262" | "517" | "773" | "40001" | "40P01")
        ),
        _ => false,
    }
}

pub(crate) fn corrupt(
    table: &'static str,
    column: &'static str,
    problem: impl ToString,
) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        problem: problem.to_string(),
    }
}
