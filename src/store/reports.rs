//! Read-only aggregates for the supervisors' view and `/metrics`: registrations by
//! channel and status against the cap, the Vinmec queue by status and age, finished
//! calls per minute, per line and per disposition. Each is a single GROUP BY.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::error::{StoreError, corrupt};
use super::{Pools, Store, time};
use crate::store::{Disposition, QueueStatus};
use tongdai_domain::program::{Channel, Status};

/// Registrations against the cap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrationStats {
    /// Places taken (the cap counter; cancelled registrations keep theirs).
    pub used: u32,
    /// Rows by (channel, status).
    pub by_channel_status: HashMap<(Channel, Status), u64>,
}

/// The Vinmec queue by effective status, and its oldest waiting entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub by_status: HashMap<QueueStatus, u64>,
    /// Entries by their registration's status (booked, unreachable, …).
    pub by_registration_status: HashMap<Status, u64>,
    /// When the oldest entry that waits for a scheduler was enqueued.
    pub oldest_waiting_since: Option<Timestamp>,
}

/// Finished calls (from `call_records`) since some instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Calls by the UTC minute they started (`YYYY-MM-DDTHH:MM`).
    pub per_minute: BTreeMap<String, u64>,
    pub by_disposition: HashMap<Disposition, u64>,
    /// Per called number (the line), by disposition.
    pub per_line: BTreeMap<String, LineStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    pub total: u64,
    pub by_disposition: HashMap<Disposition, u64>,
}

fn count(table: &'static str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|e| corrupt(table, "count", e))
}

impl Store {
    /// Registrations by channel and status, and the cap counter.
    pub async fn registration_stats(&self) -> Result<RegistrationStats, StoreError> {
        const T: &str = "registrations";
        let rows: Vec<(String, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT channel, status, COUNT(*) FROM registrations GROUP BY channel, status",
            )
            .fetch_all(pool)
            .await?
        });
        let mut stats = RegistrationStats {
            used: self.registered_count().await?,
            ..RegistrationStats::default()
        };
        for (channel, status, n) in rows {
            let channel: Channel = channel.parse().map_err(|e| corrupt(T, "channel", e))?;
            let status: Status = status.parse().map_err(|e| corrupt(T, "status", e))?;
            stats
                .by_channel_status
                .insert((channel, status), count(T, n)?);
        }
        Ok(stats)
    }

    /// The queue by effective status at `now` (a lapsed lease counts as waiting).
    pub async fn queue_stats(&self, now: Timestamp) -> Result<QueueStats, StoreError> {
        const T: &str = "vinmec_queue";
        let now_db = time::to_db(now);
        let (rows, oldest): (Vec<(String, String, i64)>, Option<String>) = on_pool!(self, pool => {
            let rows = sqlx::query_as(
                "SELECT CASE WHEN q.status = 'claimed' AND (q.lease_until IS NULL OR q.lease_until <= $1) \
                 THEN 'waiting' ELSE q.status END AS s, r.status, COUNT(*) \
                 FROM vinmec_queue q JOIN registrations r ON r.id = q.registration_id \
                 GROUP BY s, r.status",
            )
            .bind(&now_db)
            .fetch_all(pool)
            .await?;
            let oldest: Option<String> = sqlx::query_scalar(
                "SELECT MIN(enqueued_at) FROM vinmec_queue WHERE status = 'waiting' \
                 OR (status = 'claimed' AND (lease_until IS NULL OR lease_until <= $1))",
            )
            .bind(&now_db)
            .fetch_one(pool)
            .await?;
            (rows, oldest)
        });
        let mut stats = QueueStats {
            oldest_waiting_since: time::opt_from_db(T, "enqueued_at", oldest.as_deref())?,
            ..QueueStats::default()
        };
        for (queue, status, n) in rows {
            let queue: QueueStatus = queue.parse().map_err(|e| corrupt(T, "status", e))?;
            let status: Status = status
                .parse()
                .map_err(|e| corrupt("registrations", "status", e))?;
            let n = count(T, n)?;
            *stats.by_status.entry(queue).or_default() += n;
            *stats.by_registration_status.entry(status).or_default() += n;
        }
        Ok(stats)
    }

    /// Finished calls that started at or after `since`.
    pub async fn call_stats(&self, since: Timestamp) -> Result<CallStats, StoreError> {
        const T: &str = "call_records";
        let since_db = time::to_db(since);
        let rows: Vec<(String, Option<String>, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT substr(started_at, 1, 16) AS minute, called, disposition, COUNT(*) \
                 FROM call_records WHERE started_at >= $1 \
                 GROUP BY minute, called, disposition",
            )
            .bind(&since_db)
            .fetch_all(pool)
            .await?
        });
        let mut stats = CallStats::default();
        for (minute, called, disposition, n) in rows {
            let d: Disposition = disposition
                .parse()
                .map_err(|e| corrupt(T, "disposition", e))?;
            let n = count(T, n)?;
            *stats.per_minute.entry(minute).or_default() += n;
            *stats.by_disposition.entry(d).or_default() += n;
            let line = stats
                .per_line
                .entry(called.unwrap_or_default())
                .or_default();
            line.total += n;
            *line.by_disposition.entry(d).or_default() += n;
        }
        Ok(stats)
    }

    /// Answers when the database does (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }
}
