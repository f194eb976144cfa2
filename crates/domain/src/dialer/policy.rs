//! `CampaignPolicy`: how an outbound campaign may dial — limits, calling windows, retries.
//!
//! Deserialised from TOML with `deny_unknown_fields`; every field has a default so a
//! campaign file only states what differs. Durations are humantime strings (`"10m"`).
//! [`CampaignPolicy::validate`] reports every problem with the key it concerns.

use std::fmt;
use std::time::Duration;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// Which flow a campaign runs (docs/program.md §3: step 1 invitation, step 4 survey).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignKind {
    /// Announce the program and invite the subscriber to register (step 1).
    Invitation,
    /// Satisfaction survey after the consultation (step 4).
    Survey,
}

impl CampaignKind {
    /// The bundled dialplan a campaign of this kind runs unless its policy names
    /// another: `dialplans/invite.toml`, `dialplans/survey.toml`.
    pub fn default_dialplan(self) -> &'static str {
        match self {
            CampaignKind::Invitation => "invite",
            CampaignKind::Survey => "survey",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignKind::Invitation => "invitation",
            CampaignKind::Survey => "survey",
        }
    }
}

impl std::str::FromStr for CampaignKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "invitation" => Ok(CampaignKind::Invitation),
            "survey" => Ok(CampaignKind::Survey),
            _ => Err(format!(
                "unknown campaign kind {s:?} (invitation or survey)"
            )),
        }
    }
}

/// A day of the week as written in configuration (`"mon"` … `"sun"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];
}

impl From<Weekday> for Day {
    fn from(w: Weekday) -> Self {
        match w {
            Weekday::Monday => Day::Mon,
            Weekday::Tuesday => Day::Tue,
            Weekday::Wednesday => Day::Wed,
            Weekday::Thursday => Day::Thu,
            Weekday::Friday => Day::Fri,
            Weekday::Saturday => Day::Sat,
            Weekday::Sunday => Day::Sun,
        }
    }
}

/// A local time-of-day range `[start, end)`, written `"08:00-11:30"`.
///
/// Windows do not cross midnight (`start < end`); write two windows for that. The end is
/// exclusive: with `"08:00-20:00"` a call may start at 19:59:59 but not at 20:00.
/// `"24:00"` as the end means the end of the day (`"00:00-24:00"`: all day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CallingWindow {
    pub start: Time,
    pub end: Time,
}

impl CallingWindow {
    pub fn new(start: Time, end: Time) -> Self {
        CallingWindow { start, end }
    }

    /// Whether the local time `t` is inside `[start, end)`.
    pub fn contains(&self, t: Time) -> bool {
        self.start <= t && t < self.end
    }
}

impl fmt::Display for CallingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |t: Time| {
            if t == Time::MAX {
                "24:00".to_string()
            } else if t.second() == 0 && t.subsec_nanosecond() == 0 {
                format!("{:02}:{:02}", t.hour(), t.minute())
            } else {
                t.to_string()
            }
        };
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

impl From<CallingWindow> for String {
    fn from(w: CallingWindow) -> Self {
        w.to_string()
    }
}

impl TryFrom<String> for CallingWindow {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("calling window {s:?} is not \"HH:MM-HH:MM\""))?;
        let parse = |x: &str| {
            if x.trim() == "24:00" {
                return Ok(Time::MAX);
            }
            x.trim()
                .parse::<Time>()
                .map_err(|e| format!("calling window {s:?}: bad time {x:?}: {e}"))
        };
        Ok(CallingWindow {
            start: parse(a)?,
            end: parse(b)?,
        })
    }
}

/// Exponential backoff: `base · factor^(n-1)`, at most `cap`, for the n-th attempt.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    pub factor: f64,
    #[serde(with = "humantime_serde")]
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(5 * 60),
            factor: 2.0,
            cap: Duration::from_secs(60 * 60),
        }
    }
}

impl Backoff {
    /// Delay after the `attempt`-th attempt (1-based; 0 is treated as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.base.as_secs_f64() * self.factor.powi(exp);
        if !secs.is_finite() || secs >= self.cap.as_secs_f64() {
            self.cap
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }
}

/// Delay before re-dialling, per disposition. Rejected (603), invalid numbers and
/// opt-outs are never re-dialled, so they have no key.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// 486/600.
    #[serde(with = "humantime_serde")]
    pub busy: Duration,
    /// 480/408 and our own ring timeout.
    #[serde(with = "humantime_serde")]
    pub no_answer: Duration,
    /// 503/500/502/504 from a subscriber's call (not a trunk-wide burst).
    pub congested: Backoff,
    /// Any other failure.
    #[serde(with = "humantime_serde")]
    pub failed: Duration,
    /// Answered but the flow did not reach an end: "call me later" without a time, a
    /// partial survey, a hang-up before the outcome.
    #[serde(with = "humantime_serde")]
    pub incomplete: Duration,
    /// Not the subscriber's answer and not charged as an attempt: finals during trunk
    /// throttling, and our own CANCEL (stop/shutdown, not the ring timeout).
    #[serde(with = "humantime_serde")]
    pub throttled: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            busy: Duration::from_secs(10 * 60),
            no_answer: Duration::from_secs(2 * 60 * 60),
            congested: Backoff::default(),
            failed: Duration::from_secs(30 * 60),
            incomplete: Duration::from_secs(60 * 60),
            throttled: Duration::from_secs(2 * 60),
        }
    }
}

/// The dialling rules of one campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignPolicy {
    pub kind: CampaignKind,
    /// Name of the dialplan the answered call runs (`dialplans/<name>.toml`).
    pub dialplan: String,
    /// Calls in progress (dialling or answered) at most.
    pub max_concurrent: u32,
    /// New calls per second at most (see `pacer` for the exact guarantee).
    pub max_cps: f64,
    /// How long we let it ring before CANCEL (reported as no_answer).
    #[serde(with = "humantime_serde")]
    pub ring_timeout: Duration,
    /// Local time ranges in which a call may start; sorted and non-overlapping.
    pub calling_windows: Vec<CallingWindow>,
    /// Days of the week on which we call.
    pub days: Vec<Day>,
    /// Local dates on which we never call (holidays).
    pub excluded_dates: Vec<Date>,
    /// IANA zone in which windows, days and dates are read.
    pub timezone: String,
    /// Charged attempts per contact at most.
    pub max_attempts: u32,
    pub retry: RetryPolicy,
}

impl Default for CampaignPolicy {
    fn default() -> Self {
        CampaignPolicy {
            kind: CampaignKind::Invitation,
            dialplan: CampaignKind::Invitation.default_dialplan().to_owned(),
            max_concurrent: 20,
            max_cps: 5.0,
            ring_timeout: Duration::from_secs(30),
            calling_windows: vec![CallingWindow::new(
                Time::constant(8, 0, 0, 0),
                Time::constant(20, 0, 0, 0),
            )],
            days: Day::ALL.to_vec(),
            excluded_dates: Vec::new(),
            timezone: "Asia/Ho_Chi_Minh".to_owned(),
            max_attempts: 3,
            retry: RetryPolicy::default(),
        }
    }
}

/// A policy file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFileError {
    /// Not TOML, an unknown key, or a value of the wrong type (the message names the
    /// key and the line).
    #[error("campaign policy: {0}")]
    Syntax(String),
    #[error(transparent)]
    Invalid(#[from] PolicyError),
}

impl CampaignPolicy {
    /// The default policy of a kind: its default dialplan, the other defaults as
    /// documented on the fields.
    pub fn for_kind(kind: CampaignKind) -> CampaignPolicy {
        CampaignPolicy {
            kind,
            dialplan: kind.default_dialplan().to_owned(),
            ..CampaignPolicy::default()
        }
    }

    /// Reads a policy file (what `tongdai campaign create --policy FILE` takes) for a
    /// campaign of `kind`: every key optional; `kind`, when written, must match; without
    /// `dialplan` the kind's own plan (`invite` or `survey`) is used. Validated.
    pub fn from_toml(text: &str, kind: CampaignKind) -> Result<CampaignPolicy, PolicyFileError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| PolicyFileError::Syntax(e.to_string()))?;
        let names_dialplan = table.contains_key("dialplan");
        let names_kind = table.contains_key("kind");
        // Parsed from the text again (not the table) so errors carry line numbers.
        let mut policy: CampaignPolicy =
            toml::from_str(text).map_err(|e| PolicyFileError::Syntax(e.to_string()))?;
        if names_kind && policy.kind != kind {
            return Err(PolicyFileError::Invalid(PolicyError {
                problems: vec![PolicyProblem {
                    key: "kind".into(),
                    problem: format!(
                        "the file says {:?} but the campaign is {:?}",
                        policy.kind.as_str(),
                        kind.as_str()
                    ),
                }],
            }));
        }
        policy.kind = kind;
        if !names_dialplan {
            policy.dialplan = kind.default_dialplan().to_owned();
        }
        policy.validate()?;
        Ok(policy)
    }
}

/// One thing wrong with a policy, naming the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyProblem {
    /// Dotted path of the key, e.g. `retry.congested.factor`, `calling_windows[1]`.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "campaign.{}: {}", self.key, self.problem)
    }
}

/// Every problem found in a policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid campaign policy: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PolicyError {
    pub problems: Vec<PolicyProblem>,
}

impl CampaignPolicy {
    /// Checks the policy; the error lists every problem with its key.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, problem: String| {
            problems.push(PolicyProblem {
                key: key.to_owned(),
                problem,
            })
        };
        if self.dialplan.trim().is_empty() {
            bad("dialplan", "must name a dialplan".into());
        }
        if self.max_concurrent == 0 {
            bad("max_concurrent", "must be at least 1".into());
        }
        if !(self.max_cps.is_finite() && self.max_cps > 0.0 && self.max_cps <= 1000.0) {
            bad("max_cps", format!("{} is not in (0, 1000]", self.max_cps));
        }
        if self.ring_timeout < Duration::from_secs(5)
            || self.ring_timeout > Duration::from_secs(180)
        {
            bad(
                "ring_timeout",
                format!(
                    "{} is not between 5s and 3m",
                    humantime::format_duration(self.ring_timeout)
                ),
            );
        }
        if self.calling_windows.is_empty() {
            bad("calling_windows", "at least one window is needed".into());
        }
        for (i, w) in self.calling_windows.iter().enumerate() {
            if w.start >= w.end {
                bad(
                    &format!("calling_windows[{i}]"),
                    format!(
                        "{w}: start must be before end (split a window across midnight in two)"
                    ),
                );
            }
            if i > 0 && self.calling_windows[i - 1].end > w.start {
                bad(
                    &format!("calling_windows[{i}]"),
                    format!(
                        "{w} overlaps or precedes {}; list windows in order",
                        self.calling_windows[i - 1]
                    ),
                );
            }
        }
        if self.days.is_empty() {
            bad("days", "at least one day is needed".into());
        }
        if let Err(e) = jiff::tz::TimeZoneDatabase::bundled().get(&self.timezone) {
            bad(
                "timezone",
                format!("unknown time zone {:?}: {e}", self.timezone),
            );
        }
        if self.max_attempts == 0 {
            bad("max_attempts", "must be at least 1".into());
        }
        let r = &self.retry;
        for (key, d) in [
            ("retry.busy", r.busy),
            ("retry.no_answer", r.no_answer),
            ("retry.failed", r.failed),
            ("retry.incomplete", r.incomplete),
            ("retry.throttled", r.throttled),
            ("retry.congested.base", r.congested.base),
        ] {
            if d.is_zero() {
                bad(key, "must be longer than 0s".into());
            }
        }
        if !(r.congested.factor.is_finite() && r.congested.factor >= 1.0) {
            bad(
                "retry.congested.factor",
                format!("{} is not a number ≥ 1", r.congested.factor),
            );
        }
        if r.congested.cap < r.congested.base {
            bad(
                "retry.congested.cap",
                "must not be shorter than retry.congested.base".into(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PolicyError { problems })
        }
    }

    /// The policy's time zone from the bundled database (no IO). Falls back to UTC only
    /// if the name is unknown, which `validate` reports.
    pub fn tz(&self) -> TimeZone {
        jiff::tz::TimeZoneDatabase::bundled()
            .get(&self.timezone)
            .unwrap_or(TimeZone::UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_brief() {
        let p = CampaignPolicy::default();
        p.validate().unwrap();
        assert_eq!(p.max_concurrent, 20);
        assert_eq!(p.max_cps, 5.0);
        assert_eq!(p.ring_timeout, Duration::from_secs(30));
        assert_eq!(p.calling_windows[0].to_string(), "08:00-20:00");
        assert_eq!(p.days.len(), 7);
        assert_eq!(p.retry.busy, Duration::from_secs(600));
        assert_eq!(p.retry.no_answer, Duration::from_secs(7200));
        assert_eq!(p.retry.failed, Duration::from_secs(1800));
    }

    #[test]
    fn parses_toml_with_humantime_and_windows() {
        let p: CampaignPolicy = toml::from_str(
            r#"
            kind = "survey"
            dialplan = "survey"
            max_cps = 2.5
            ring_timeout = "25s"
            calling_windows = ["08:00-11:30", "13:30-20:00"]
            days = ["mon", "tue", "wed", "thu", "fri"]
            excluded_dates = ["2021-12-24"]
            [retry]
            busy = "5m"
            congested = { base = "1m", cap = "30m" }
            "#,
        )
        .unwrap();
        p.validate().unwrap();
        assert_eq!(p.kind, CampaignKind::Survey);
        assert_eq!(p.ring_timeout, Duration::from_secs(25));
        assert_eq!(p.calling_windows.len(), 2);
        assert_eq!(p.calling_windows[1].to_string(), "13:30-20:00");
        assert_eq!(p.retry.busy, Duration::from_secs(300));
        assert_eq!(p.retry.congested.factor, 2.0);
        assert_eq!(p.retry.no_answer, Duration::from_secs(7200));
        assert_eq!(p.max_concurrent, 20);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<CampaignPolicy>("max_cpss = 3").unwrap_err();
        assert!(e.to_string().contains("max_cpss"), "{e}");
        let e = toml::from_str::<CampaignPolicy>("[retry]\nrejected = \"1m\"").unwrap_err();
        assert!(e.to_string().contains("rejected"), "{e}");
    }

    #[test]
    fn validation_names_every_bad_key() {
        let mut p = CampaignPolicy {
            max_concurrent: 0,
            max_cps: 0.0,
            timezone: "Mars/Olympus".into(),
            calling_windows: vec![
                CallingWindow::try_from("13:00-12:00".to_string()).unwrap(),
                CallingWindow::try_from("08:00-09:00".to_string()).unwrap(),
            ],
            days: vec![],
            max_attempts: 0,
            ..CampaignPolicy::default()
        };
        p.retry.congested.factor = 0.5;
        p.retry.busy = Duration::ZERO;
        let e = p.validate().unwrap_err();
        let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "max_concurrent",
            "max_cps",
            "timezone",
            "calling_windows[0]",
            "calling_windows[1]",
            "days",
            "max_attempts",
            "retry.congested.factor",
            "retry.busy",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert!(e.to_string().contains("campaign.max_cps"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff::default();
        let m = |n: u64| Duration::from_secs(n * 60);
        assert_eq!(b.delay(1), m(5));
        assert_eq!(b.delay(2), m(10));
        assert_eq!(b.delay(3), m(20));
        assert_eq!(b.delay(4), m(40));
        assert_eq!(b.delay(5), m(60));
        assert_eq!(b.delay(50), m(60));
    }

    #[test]
    fn policy_files_default_the_dialplan_by_kind() {
        let p = CampaignPolicy::from_toml("max_cps = 2\n", CampaignKind::Survey).unwrap();
        assert_eq!(
            (p.kind, p.dialplan.as_str()),
            (CampaignKind::Survey, "survey")
        );
        assert_eq!(p.max_cps, 2.0);
        let p = CampaignPolicy::from_toml("", CampaignKind::Invitation).unwrap();
        assert_eq!(p.dialplan, "invite");
        assert_eq!(CampaignPolicy::default().dialplan, "invite");
        let p = CampaignPolicy::from_toml("dialplan = \"invite-v2\"\n", CampaignKind::Invitation)
            .unwrap();
        assert_eq!(p.dialplan, "invite-v2");
        // A file for the other kind is refused, naming the key.
        let e =
            CampaignPolicy::from_toml("kind = \"survey\"\n", CampaignKind::Invitation).unwrap_err();
        assert!(e.to_string().contains("campaign.kind"), "{e}");
        let e = CampaignPolicy::from_toml("max_cps = 0\n", CampaignKind::Invitation).unwrap_err();
        assert!(e.to_string().contains("campaign.max_cps"), "{e}");
        let e = CampaignPolicy::from_toml("max_cpss = 1\n", CampaignKind::Invitation).unwrap_err();
        assert!(
            e.to_string().contains("max_cpss") && e.to_string().contains("line 1"),
            "{e}"
        );
    }

    #[test]
    fn a_window_may_end_at_midnight() {
        let w = CallingWindow::try_from("00:00-24:00".to_string()).unwrap();
        assert_eq!(w.to_string(), "00:00-24:00");
        assert!(w.contains(Time::constant(23, 59, 59, 999_000_000)));
        assert!(w.contains(Time::midnight()));
        let p: CampaignPolicy = toml::from_str("calling_windows = [\"20:00-24:00\"]").unwrap();
        p.validate().unwrap();
    }

    #[test]
    fn bad_window_strings_are_refused() {
        assert!(CallingWindow::try_from("0800".to_string()).is_err());
        assert!(CallingWindow::try_from("08:00-25:00".to_string()).is_err());
    }
}
