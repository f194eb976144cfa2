//! Loading the screened target list from the CSV MobiFone's billing team exports.
//!
//! All or nothing: every row is validated before anything is written, and the writes
//! happen in one transaction, so a bad file never leaves a half-loaded list behind (an
//! eligibility check against half a list would turn real customers away).

use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;

use super::error::{ImportError, StoreError};
use super::types::ImportReport;
use super::types::SubscriberRaw;
use super::{Pools, SELECT_SUBSCRIBER, Step, Store, UPSERT_SUBSCRIBER, charge_to_db, time};
use tongdai_domain::program::{Plan, Subscriber, mask_msisdn, normalize_msisdn};

const COLUMNS: [&str; 5] = [
    "msisdn",
    "plan",
    "charge_per_cycle_vnd",
    "list_source",
    "name",
];
/// Opens an uploaded CSV the way every import reads it: the BOM Excel writes at the
/// start of "CSV UTF-8" files stripped, UTF-8 checked (naming the line of the first bad
/// byte), fields trimmed, rows of any width (each parser checks its own). Returns the
/// header's names, lower-cased, and the data rows.
pub(crate) fn open_csv(
    bytes: &[u8],
) -> Result<(Vec<String>, csv::StringRecordsIntoIter<&[u8]>), ImportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Err(e) = std::str::from_utf8(bytes) {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        return Err(ImportError::Row {
            line,
            problem: "not valid UTF-8 (save the file as \"CSV UTF-8\")".into(),
        });
    }
    let mut records = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes)
        .into_records();
    let header = match records.next() {
        None => {
            return Err(ImportError::Header {
                problem: "the file is empty".into(),
            });
        }
        Some(Err(e)) => {
            return Err(ImportError::Header {
                problem: e.to_string(),
            });
        }
        Some(Ok(h)) => h,
    };
    let names = header.iter().map(|h| h.to_ascii_lowercase()).collect();
    Ok((names, records))
}

/// Parses and validates a whole file. Line numbers are those an editor shows
/// (header = line 1), so the operator can go straight to the bad row.
pub(crate) fn parse_subscribers_csv(
    bytes: &[u8],
    batch: &str,
    now: Timestamp,
) -> Result<Vec<Subscriber>, ImportError> {
    let (names, records) = open_csv(bytes)?;
    let width = names.len();
    if !(width == 4 || width == 5) || names.iter().zip(COLUMNS).any(|(n, want)| n != want) {
        return Err(ImportError::Header {
            problem: format!("found {:?}", names.join(",")),
        });
    }

    let mut out = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for rec in records {
        let rec = rec.map_err(|e| ImportError::Row {
            line: e.position().map(|p| p.line()).unwrap_or(0),
            problem: e.to_string(),
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let bad = |problem: String| ImportError::Row { line, problem };
        if rec.iter().all(str::is_empty) {
            continue; // a trailing blank line or ",,,"
        }
        if rec.len() != width {
            return Err(bad(format!("{} fields, the header has {width}", rec.len())));
        }
        let msisdn = normalize_msisdn(&rec[0])
            .map_err(|e| bad(format!("msisdn {}: {e}", mask_msisdn(&rec[0]))))?;
        let plan = match rec[1].to_ascii_lowercase().as_str() {
            "postpaid" => Plan::Postpaid,
            "prepaid" => Plan::Prepaid,
            other => {
                return Err(bad(format!(
                    "plan {other:?} is not \"postpaid\" or \"prepaid\""
                )));
            }
        };
        let charge_text = &rec[2];
        if charge_text.is_empty() || !charge_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!(
                "charge_per_cycle_vnd {charge_text:?} is not a non-negative whole number of VND"
            )));
        }
        let charge: u64 = charge_text
            .parse()
            .ok()
            .filter(|c| charge_to_db(*c).is_ok())
            .ok_or_else(|| bad(format!("charge_per_cycle_vnd {charge_text:?} is too large")))?;
        let list_source = rec[3].to_ascii_lowercase();
        if list_source.is_empty() {
            return Err(bad("list_source is empty".into()));
        }
        let name = rec.get(4).filter(|n| !n.is_empty()).map(str::to_owned);
        if let Some(first) = seen.insert(msisdn.clone(), line) {
            return Err(bad(format!(
                "msisdn {} is already on line {first}",
                mask_msisdn(&msisdn)
            )));
        }
        out.push(Subscriber {
            msisdn,
            plan,
            charge_per_cycle_vnd: charge,
            list_source,
            name,
            imported_at: now,
            import_batch: Some(batch.to_owned()),
        });
    }
    Ok(out)
}

impl Store {
    /// Imports the target list from a CSV file with the header
    /// `msisdn,plan,charge_per_cycle_vnd,list_source[,name]`: new numbers are inserted,
    /// known ones replaced. Any bad row fails the whole import with its line number,
    /// and nothing is written. `now` (the caller's clock) dates the batch and every row's
    /// `imported_at`.
    pub async fn import_subscribers_csv(
        &self,
        path: &Path,
        now: Timestamp,
    ) -> Result<ImportReport, ImportError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| ImportError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "subscribers.csv".into());
        let batch = format!("{file}@{}", time::to_db(now));
        let subs = parse_subscribers_csv(&bytes, &batch, now)?;
        let _guard = self.write_guard().await;
        let (inserted, updated) = self.write_subscribers(&subs).await?;
        Ok(ImportReport {
            batch,
            rows: subs.len(),
            inserted,
            updated,
        })
    }

    /// Upserts all rows in one transaction; returns (inserted, updated).
    async fn write_subscribers(&self, subs: &[Subscriber]) -> Result<(usize, usize), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_sql()).await?;
            let step: Result<Step<(usize, usize)>, StoreError> = async {
                let (mut inserted, mut updated) = (0, 0);
                for s in subs {
                    let existing = sqlx::query_as::<_, SubscriberRaw>(SELECT_SUBSCRIBER)
                        .bind(&s.msisdn)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if existing.is_some() {
                        updated += 1;
                    } else {
                        inserted += 1;
                    }
                    sqlx::query(UPSERT_SUBSCRIBER)
                        .bind(&s.msisdn)
                        .bind(s.plan.as_str())
                        .bind(charge_to_db(s.charge_per_cycle_vnd)?)
                        .bind(&s.list_source)
                        .bind(&s.name)
                        .bind(time::to_db(s.imported_at))
                        .bind(&s.import_batch)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(Step::Commit((inserted, updated)))
            }
            .await;
            finish!(tx, step)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Subscriber>, ImportError> {
        parse_subscribers_csv(text.as_bytes(), "b", Timestamp::UNIX_EPOCH)
    }

    fn row_error(text: &str) -> (u64, String) {
        match parse(text) {
            Err(ImportError::Row { line, problem }) => (line, problem),
            other => panic!("expected a row error, got {other:?}"),
        }
    }

    #[test]
    fn good_rows() {
        let subs = parse(
            "\u{feff}msisdn,plan,charge_per_cycle_vnd,list_source,name\n\
             0903123678,postpaid,300000,sms,Nguyễn Văn An\n\
             +84 77 345 6789, Prepaid ,0,SMS,\n\
             \n",
        )
        .expect("valid");
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[0].msisdn, "+84903123678");
        assert_eq!(subs[0].name.as_deref(), Some("Nguyễn Văn An"));
        assert_eq!(subs[1].plan, Plan::Prepaid);
        assert_eq!(subs[1].list_source, "sms");
        assert_eq!(subs[1].name, None);
        assert_eq!(subs[1].import_batch.as_deref(), Some("b"));
        // Four columns are enough.
        assert_eq!(
            parse("msisdn,plan,charge_per_cycle_vnd,list_source\n0903123678,postpaid,1,sms\n")
                .map(|v| v.len())
                .ok(),
            Some(1)
        );
    }

    #[test]
    fn bad_rows_name_their_line() {
        let head = "msisdn,plan,charge_per_cycle_vnd,list_source,name\n";
        let ok = "0903123678,postpaid,300000,sms,A\n";
        let cases = [
            ("0903,postpaid,1,sms,A\n", "msisdn"),
            ("+14155552671,postpaid,1,sms,A\n", "msisdn"),
            ("0913123678,gold,1,sms,A\n", "plan"),
            ("0913123678,postpaid,-5,sms,A\n", "charge_per_cycle_vnd"),
            ("0913123678,postpaid,3.5,sms,A\n", "charge_per_cycle_vnd"),
            ("0913123678,postpaid,,sms,A\n", "charge_per_cycle_vnd"),
            (
                "0913123678,postpaid,99999999999999999999,sms,A\n",
                "too large",
            ),
            ("0913123678,postpaid,1,,A\n", "list_source"),
            ("0913123678,postpaid,1\n", "fields"),
            ("0903.123.678,postpaid,1,sms,B\n", "already on line 2"),
        ];
        for (bad, needle) in cases {
            let (line, problem) = row_error(&format!("{head}{ok}{bad}{ok}"));
            assert_eq!(line, 3, "{bad}: {problem}");
            assert!(problem.contains(needle), "{bad}: {problem}");
            assert!(!problem.contains("123678"), "number leaked: {problem}");
        }
        // A quoted field spanning lines: the next record's line is still right.
        let (line, _) = row_error(&format!(
            "{head}0903123678,postpaid,1,sms,\"A\nB\"\nx,postpaid,1,sms,C\n"
        ));
        assert_eq!(line, 4);
    }

    #[test]
    fn header_and_encoding_errors() {
        assert!(matches!(parse(""), Err(ImportError::Header { .. })));
        assert!(matches!(
            parse("phone,plan,charge,source\n"),
            Err(ImportError::Header { .. })
        ));
        assert!(matches!(
            parse("msisdn,plan,charge_per_cycle_vnd\n"),
            Err(ImportError::Header { .. })
        ));
        let mut bytes =
            b"msisdn,plan,charge_per_cycle_vnd,list_source\n0903123678,postpaid,1,sms\n".to_vec();
        bytes.extend_from_slice(b"0913123678,postpaid,1,sms,\xff\n");
        match parse_subscribers_csv(&bytes, "b", Timestamp::UNIX_EPOCH) {
            Err(ImportError::Row { line: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
