//! Who may register (docs/program.md §1) and when (§2).

use jiff::Timestamp;
use jiff::civil::Date;

use super::config::{ProgramConfig, ProgramConfigError};
use super::status::ParseEnumError;

/// Billing plan of a subscriber on the screened list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Plan {
    Postpaid,
    Prepaid,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Postpaid => "postpaid",
            Plan::Prepaid => "prepaid",
        }
    }
}

impl std::str::FromStr for Plan {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "postpaid" => Ok(Plan::Postpaid),
            "prepaid" => Ok(Plan::Prepaid),
            _ => Err(ParseEnumError::new("plan", s)),
        }
    }
}

/// One row of the screened target list MobiFone compiled for the SMS campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriber {
    /// E.164 (`+84…`), see [`super::normalize_msisdn`].
    pub msisdn: String,
    pub plan: Plan,
    pub charge_per_cycle_vnd: u64,
    /// Where the row came from; `"sms"` marks the promotional-SMS target list (group 1).
    pub list_source: String,
    pub name: Option<String>,
    pub imported_at: Timestamp,
    pub import_batch: Option<String>,
}

/// The list source that marks the SMS target list.
pub const SMS_LIST_SOURCE: &str = "sms";

/// Whether a subscriber may register in group 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Eligibility {
    Eligible,
    /// Not on the screened list, or on a list other than the SMS one.
    NotOnList,
    NotPostpaid,
    ChargeTooLow,
}

/// Group 1 rule: on the SMS target list, postpaid, charge ≥ `min_charge_vnd`.
///
/// Checked in that order so the answer names the first thing a supervisor would check.
pub fn eligibility(sub: Option<&Subscriber>, cfg: &ProgramConfig) -> Eligibility {
    let Some(sub) = sub else {
        return Eligibility::NotOnList;
    };
    if !sub.list_source.eq_ignore_ascii_case(SMS_LIST_SOURCE) {
        Eligibility::NotOnList
    } else if sub.plan != Plan::Postpaid {
        Eligibility::NotPostpaid
    } else if sub.charge_per_cycle_vnd < cfg.min_charge_vnd {
        Eligibility::ChargeTooLow
    } else {
        Eligibility::Eligible
    }
}

/// Where a date falls relative to an inclusive period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    NotOpen,
    Open,
    Closed,
}

fn window(today: Date, start: Date, end: Date) -> Window {
    if today < start {
        Window::NotOpen
    } else if today > end {
        Window::Closed
    } else {
        Window::Open
    }
}

/// Registration period, both ends inclusive, in local dates.
pub fn registration_window(today: Date, cfg: &ProgramConfig) -> Window {
    window(today, cfg.registration_start, cfg.registration_end)
}

/// Consultation period (appointments must fall in it), both ends inclusive.
pub fn consultation_window(today: Date, cfg: &ProgramConfig) -> Window {
    window(today, cfg.consultation_start, cfg.consultation_end)
}

/// The program's local date of the instant `now` (in `cfg.timezone`).
///
/// Uses the time-zone data compiled into the binary, so the answer does not depend on
/// the host's tzdata (and this stays free of IO).
pub fn local_date(now: Timestamp, cfg: &ProgramConfig) -> Result<Date, ProgramConfigError> {
    let tz = jiff::tz::TimeZoneDatabase::bundled()
        .get(&cfg.timezone)
        .map_err(|e| ProgramConfigError {
            problems: vec![super::ConfigProblem {
                key: "timezone".into(),
                problem: format!("unknown time zone {:?}: {e}", cfg.timezone),
            }],
        })?;
    Ok(now.to_zoned_datetime(tz).date())
}

/// "Today" for the program: the `today` override when set, else the local date of `now`.
pub fn today(now: Timestamp, cfg: &ProgramConfig) -> Result<Date, ProgramConfigError> {
    match cfg.today {
        Some(d) => Ok(d),
        None => local_date(now, cfg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn sub(plan: Plan, charge: u64, source: &str) -> Subscriber {
        Subscriber {
            msisdn: "+84903123678".into(),
            plan,
            charge_per_cycle_vnd: charge,
            list_source: source.into(),
            name: None,
            imported_at: Timestamp::UNIX_EPOCH,
            import_batch: None,
        }
    }

    #[test]
    fn eligibility_table() {
        let cfg = ProgramConfig::default();
        use Eligibility::*;
        use Plan::*;
        let cases = [
            (Some(sub(Postpaid, 300_000, "sms")), Eligible),
            (Some(sub(Postpaid, 1_250_000, "SMS")), Eligible),
            (Some(sub(Postpaid, 299_999, "sms")), ChargeTooLow),
            (Some(sub(Postpaid, 0, "sms")), ChargeTooLow),
            (Some(sub(Prepaid, 900_000, "sms")), NotPostpaid),
            (Some(sub(Postpaid, 900_000, "fanpage")), NotOnList),
            (Some(sub(Prepaid, 0, "crm")), NotOnList),
            (None, NotOnList),
        ];
        for (s, want) in cases {
            assert_eq!(eligibility(s.as_ref(), &cfg), want, "{s:?}");
        }
    }

    #[test]
    fn windows_are_inclusive() {
        let cfg = ProgramConfig::default();
        use Window::*;
        let reg = [
            (date(2021, 11, 25), NotOpen),
            (date(2021, 11, 26), Open),
            (date(2021, 12, 25), Open),
            (date(2021, 12, 26), Closed),
            (date(2022, 1, 1), Closed),
        ];
        for (d, want) in reg {
            assert_eq!(registration_window(d, &cfg), want, "{d}");
        }
        let consult = [
            (date(2021, 11, 25), NotOpen),
            (date(2021, 11, 26), Open),
            (date(2021, 12, 30), Open),
            (date(2021, 12, 31), Closed),
        ];
        for (d, want) in consult {
            assert_eq!(consultation_window(d, &cfg), want, "{d}");
        }
    }

    #[test]
    fn local_date_is_vietnam_time() {
        let cfg = ProgramConfig::default();
        // 2021-11-25T17:00Z is midnight of the 26th in Hanoi/Hai Phong (UTC+7).
        let cases = [
            ("2021-11-25T16:59:59Z", date(2021, 11, 25)),
            ("2021-11-25T17:00:00Z", date(2021, 11, 26)),
            ("2021-12-25T16:59:59Z", date(2021, 12, 25)),
            ("2021-12-25T17:00:00Z", date(2021, 12, 26)),
        ];
        for (ts, want) in cases {
            let now: Timestamp = ts.parse().expect("valid timestamp");
            assert_eq!(local_date(now, &cfg), Ok(want), "{ts}");
            assert_eq!(today(now, &cfg), Ok(want), "{ts}");
        }
        let pinned = ProgramConfig {
            today: Some(date(2021, 12, 1)),
            ..ProgramConfig::default()
        };
        assert_eq!(today(Timestamp::UNIX_EPOCH, &pinned), Ok(date(2021, 12, 1)));
        let bad = ProgramConfig {
            timezone: "Mars/Olympus".into(),
            ..ProgramConfig::default()
        };
        assert!(local_date(Timestamp::UNIX_EPOCH, &bad).is_err());
    }
}
