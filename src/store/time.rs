//! The one timestamp representation used in both databases.
//!
//! UTC as fixed-width RFC 3339 text with microseconds, `2021-11-26T02:03:04.000000Z`:
//! identical on SQLite (which has no timestamp type) and PostgreSQL, readable in
//! `sqlite3`/`psql` by the people running the hotline, and — being fixed width —
//! sorted by text comparison in time order (the PostgreSQL columns use `COLLATE "C"`).
//! Sub-microsecond precision is truncated (PostgreSQL's own precision).

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::error::{StoreError, corrupt};

pub(crate) fn to_db(ts: Timestamp) -> String {
    let dt = ts.to_zoned_datetime(TimeZone::UTC).datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1000
    )
}

pub(crate) fn from_db(
    table: &'static str,
    column: &'static str,
    s: &str,
) -> Result<Timestamp, StoreError> {
    s.parse::<Timestamp>()
        .map_err(|e| corrupt(table, column, format!("{s:?} is not a timestamp: {e}")))
}

pub(crate) fn opt_from_db(
    table: &'static str,
    column: &'static str,
    s: Option<&str>,
) -> Result<Option<Timestamp>, StoreError> {
    s.map(|s| from_db(table, column, s)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_round_trip() {
        let cases = [
            ("2021-11-26T02:03:04Z", "2021-11-26T02:03:04.000000Z"),
            ("2021-11-25T17:00:00.5+07:00", "2021-11-25T10:00:00.500000Z"),
            (
                "2021-12-31T23:59:59.123456789Z",
                "2021-12-31T23:59:59.123456Z",
            ),
            ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
        ];
        for (input, want) in cases {
            let ts: Timestamp = input.parse().expect("valid");
            let text = to_db(ts);
            assert_eq!(text, want);
            let back = from_db("t", "c", &text).expect("parses");
            assert_eq!(to_db(back), want);
        }
        assert!(from_db("t", "c", "yesterday").is_err());
        // Text order is time order.
        let a = to_db("2021-11-26T09:59:59.999999Z".parse().expect("valid"));
        let b = to_db("2021-11-26T10:00:00Z".parse().expect("valid"));
        assert!(a < b);
    }
}
