//! The do-not-call list: shared by every campaign, consulted when contacts are filled
//! and again when each is claimed.

use std::collections::HashSet;
use std::path::Path;

use jiff::Timestamp;

use super::types::{DncEntry, DncImportReport, DncRaw, DncSource};
use super::{DNC_CLOSE_CONTACTS, INSERT_DNC};
use crate::store::error::{ImportError, StoreError};
use std::time::Duration;
use tongdai_domain::program::{mask_msisdn, normalize_msisdn};

use crate::store::error::is_retryable;
use crate::store::{MAX_ATTEMPTS, Pools, Step, Store, time};

/// Parses a do-not-call file: header `msisdn` or `msisdn,note`, one number per row.
/// All or nothing, like the target-list import: any bad row fails the file with its
/// line number. A number listed twice is kept once.
pub(crate) fn parse_do_not_call_csv(bytes: &[u8]) -> Result<Vec<(String, String)>, ImportError> {
    let (names, records) = crate::store::import::open_csv(bytes)?;
    let width = names.len();
    if !matches!(
        names.iter().map(String::as_str).collect::<Vec<_>>()[..],
        ["msisdn"] | ["msisdn", "note"]
    ) {
        return Err(ImportError::Header {
            problem: format!(
                "expected \"msisdn\" or \"msisdn,note\", found {:?}",
                names.join(",")
            ),
        });
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for rec in records {
        let rec = rec.map_err(|e| ImportError::Row {
            line: e.position().map(|p| p.line()).unwrap_or(0),
            problem: e.to_string(),
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if rec.len() > width {
            return Err(ImportError::Row {
                line,
                problem: format!("{} fields, the header has {width}", rec.len()),
            });
        }
        let msisdn = normalize_msisdn(&rec[0]).map_err(|e| ImportError::Row {
            line,
            problem: format!("msisdn {}: {e}", mask_msisdn(&rec[0])),
        })?;
        let note = rec.get(1).unwrap_or("").to_owned();
        if seen.insert(msisdn.clone()) {
            out.push((msisdn, note));
        }
    }
    Ok(out)
}

impl Store {
    /// Puts a number on the do-not-call list (`true` if it was not there) and closes
    /// every campaign's waiting contact of it. An existing entry keeps its source, date
    /// and note: the first request is the one to show.
    pub async fn add_do_not_call(
        &self,
        msisdn: &str,
        source: DncSource,
        note: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let msisdn = normalize_msisdn(msisdn)?;
        let entries = [(msisdn, note.to_owned())];
        let _guard = self.write_guard().await;
        let inserted = with_retry!(self.write_dnc(&entries, source, now))?;
        Ok(inserted == 1)
    }

    async fn write_dnc(
        &self,
        entries: &[(String, String)],
        source: DncSource,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let now_db = time::to_db(now);
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_sql()).await?;
            let step: Result<Step<usize>, StoreError> = async {
                let mut inserted = 0;
                for (msisdn, note) in entries {
                    inserted += sqlx::query(INSERT_DNC)
                        .bind(msisdn)
                        .bind(source.as_str())
                        .bind(&now_db)
                        .bind(None::<i64>)
                        .bind(None::<i64>)
                        .bind(note)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected() as usize;
                    sqlx::query(DNC_CLOSE_CONTACTS)
                        .bind(msisdn)
                        .bind(&now_db)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(Step::Commit(inserted))
            }
            .await;
            finish!(tx, step)
        })
    }

    /// Imports a do-not-call file (see `parse_do_not_call_csv`), source `import`, in
    /// one transaction: nothing is written unless every row is valid.
    pub async fn import_do_not_call_csv(
        &self,
        path: &Path,
        now: Timestamp,
    ) -> Result<DncImportReport, ImportError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| ImportError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let entries = parse_do_not_call_csv(&bytes)?;
        let _guard = self.write_guard().await;
        let inserted = with_retry!(self.write_dnc(&entries, DncSource::Import, now))?;
        Ok(DncImportReport {
            rows: entries.len(),
            inserted,
            already: entries.len() - inserted,
        })
    }

    pub async fn is_do_not_call(&self, msisdn: &str) -> Result<bool, StoreError> {
        Ok(self.do_not_call_entry(msisdn).await?.is_some())
    }

    pub async fn do_not_call_entry(&self, msisdn: &str) -> Result<Option<DncEntry>, StoreError> {
        let msisdn = normalize_msisdn(msisdn)?;
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, DncRaw>(
                "SELECT msisdn, source, at, campaign_id, attempt_id, note \
                 FROM do_not_call WHERE msisdn = $1",
            )
            .bind(&msisdn)
            .fetch_optional(pool)
            .await?
        });
        raw.map(DncEntry::try_from).transpose()
    }

    /// The whole list, newest first.
    pub async fn do_not_call_list(&self) -> Result<Vec<DncEntry>, StoreError> {
        let raws = on_pool!(self, pool => {
            sqlx::query_as::<_, DncRaw>(
                "SELECT msisdn, source, at, campaign_id, attempt_id, note \
                 FROM do_not_call ORDER BY at DESC, msisdn",
            )
            .fetch_all(pool)
            .await?
        });
        raws.into_iter().map(DncEntry::try_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_notes() {
        let got = parse_do_not_call_csv(
            "\u{feff}MSISDN,note\n0903123678,khiếu nại\n+84 77 345 6789,\n\n0903.123.678,dup\n"
                .as_bytes(),
        )
        .expect("valid");
        assert_eq!(
            got,
            vec![
                ("+84903123678".to_string(), "khiếu nại".to_string()),
                ("+84773456789".to_string(), String::new()),
            ]
        );
        assert_eq!(
            parse_do_not_call_csv(b"msisdn\n0903123678\n")
                .expect("one column")
                .len(),
            1
        );
    }

    #[test]
    fn bad_rows_and_headers() {
        match parse_do_not_call_csv(b"msisdn\n0903123678\n0903\n") {
            Err(ImportError::Row { line: 3, problem }) => {
                assert!(problem.contains("msisdn"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_do_not_call_csv(b"phone\n0903123678\n"),
            Err(ImportError::Header { .. })
        ));
        assert!(matches!(
            parse_do_not_call_csv(b""),
            Err(ImportError::Header { .. })
        ));
        assert!(matches!(
            parse_do_not_call_csv(b"msisdn\n0903123678,x\n"),
            Err(ImportError::Row { line: 2, .. })
        ));
    }
}
