//! The Covid-19 handbook links (`migrations/*/0005_handbook_links.sql`): one per
//! registration, made the first time it is asked for and the same ever after, and the
//! count of its opens. What counts as an open, and when the links are gone, is
//! `tongdai_domain::handbook`'s to decide; this only keeps the facts.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use rand::RngCore as _;

use super::error::StoreError;
use super::{MAX_ATTEMPTS, Pools, Store, time};
use crate::store::error::is_retryable;
use std::time::Duration;

/// Random bytes in a token: 128 bits, 22 characters of URL-safe base64, short enough
/// to sit in one SMS with its text.
const TOKEN_BYTES: usize = 16;

/// What the page needs of the registration behind a token: nothing but the name to
/// greet (never the number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandbookVisit {
    pub name: Option<String>,
}

/// How the handbook links are used, for supervisors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandbookStats {
    /// Links made (one per registration that was given its link).
    pub links: u64,
    /// Links opened at least once.
    pub opened: u64,
    /// Opens in all (HEAD requests and link previewers not counted).
    pub opens: u64,
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Store {
    /// The token of `registration_id`'s handbook link, made now if it has none yet;
    /// asking again gives the same token. `NotFound` for an unknown registration.
    pub async fn handbook_token(
        &self,
        registration_id: i64,
        now: Timestamp,
    ) -> Result<String, StoreError> {
        if self.registration(registration_id).await?.is_none() {
            return Err(StoreError::NotFound {
                what: "registration",
                key: registration_id.to_string(),
            });
        }
        let _guard = self.write_guard().await;
        let now_db = time::to_db(now);
        let mut tries = 0u32;
        loop {
            tries += 1;
            let token = new_token();
            let result: Result<Option<String>, sqlx::Error> = on_pool!(self, pool => {
                async {
                    sqlx::query(
                        "INSERT INTO handbook_links (registration_id, token, created_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (registration_id) DO NOTHING",
                    )
                    .bind(registration_id)
                    .bind(&token)
                    .bind(&now_db)
                    .execute(pool)
                    .await?;
                    sqlx::query_scalar::<_, String>(
                        "SELECT token FROM handbook_links WHERE registration_id = $1",
                    )
                    .bind(registration_id)
                    .fetch_optional(pool)
                    .await
                }
                .await
            });
            match result {
                Ok(Some(token)) => return Ok(token),
                Ok(None) => {
                    return Err(StoreError::NotFound {
                        what: "registration",
                        key: registration_id.to_string(),
                    });
                }
                // A token collision (2^-128) or a busy database: try again.
                Err(e) if tries < MAX_ATTEMPTS && (is_retryable(&e) || is_unique(&e)) => {
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Looks `token` up; when `count_open`, counts the visit (first and last open, the
    /// number of opens). `None` for a token nobody was given.
    pub async fn visit_handbook(
        &self,
        token: &str,
        count_open: bool,
        now: Timestamp,
    ) -> Result<Option<HandbookVisit>, StoreError> {
        let found: Option<(i64, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as::<_, (i64, Option<String>)>(
                "SELECT r.id, r.name FROM handbook_links h \
                 JOIN registrations r ON r.id = h.registration_id WHERE h.token = $1",
            )
            .bind(token)
            .fetch_optional(pool)
            .await?
        });
        let Some((registration_id, name)) = found else {
            return Ok(None);
        };
        if count_open {
            let _guard = self.write_guard().await;
            let now_db = time::to_db(now);
            on_pool!(self, pool => {
                sqlx::query(
                    "UPDATE handbook_links SET opens = opens + 1, last_open_at = $1, \
                     first_open_at = COALESCE(first_open_at, $1) WHERE registration_id = $2",
                )
                .bind(&now_db)
                .bind(registration_id)
                .execute(pool)
                .await?;
            });
        }
        Ok(Some(HandbookVisit { name }))
    }

    /// When `registration_id`'s link was first and last opened, and how often.
    pub async fn handbook_opens(
        &self,
        registration_id: i64,
    ) -> Result<Option<(Option<Timestamp>, Option<Timestamp>, u64)>, StoreError> {
        let row: Option<(Option<String>, Option<String>, i64)> = on_pool!(self, pool => {
            sqlx::query_as::<_, (Option<String>, Option<String>, i64)>(
                "SELECT first_open_at, last_open_at, opens FROM handbook_links \
                 WHERE registration_id = $1",
            )
            .bind(registration_id)
            .fetch_optional(pool)
            .await?
        });
        let Some((first, last, opens)) = row else {
            return Ok(None);
        };
        const T: &str = "handbook_links";
        Ok(Some((
            time::opt_from_db(T, "first_open_at", first.as_deref())?,
            time::opt_from_db(T, "last_open_at", last.as_deref())?,
            u64::try_from(opens).unwrap_or(0),
        )))
    }

    /// Links made, links opened, opens in all.
    pub async fn handbook_stats(&self) -> Result<HandbookStats, StoreError> {
        let (links, opened, opens): (i64, i64, i64) = on_pool!(self, pool => {
            sqlx::query_as::<_, (i64, i64, i64)>(
                "SELECT CAST(COUNT(*) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN opens > 0 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(opens), 0) AS BIGINT) FROM handbook_links",
            )
            .fetch_one(pool)
            .await?
        });
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(HandbookStats {
            links: n(links),
            opened: n(opened),
            opens: n(opens),
        })
    }
}

fn is_unique(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
