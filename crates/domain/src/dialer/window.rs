//! Calling windows: when a campaign may start a call, in the policy's local time.
//!
//! A call may start at an instant whose local date (in `policy.timezone`) is on one of
//! `policy.days`, is not in `policy.excluded_dates`, and whose local time is inside one
//! of `policy.calling_windows` (`[start, end)`). Only the *start* of a call is checked:
//! a call that started at 19:59 is not cut at 20:00.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::policy::{CampaignPolicy, Day};

/// How far ahead `next_allowed` looks before giving up (a policy whose every day is
/// excluded for years is as good as closed).
const SEARCH_DAYS: i64 = 3 * 366;

/// Whether a call may start at `at`.
pub fn is_allowed(at: Timestamp, policy: &CampaignPolicy) -> bool {
    is_allowed_in(at, policy, &policy.tz())
}

/// The earliest instant `≥ at` at which a call may start, or `None` if there is none
/// within three years (no days, no windows, or everything excluded).
pub fn next_allowed(at: Timestamp, policy: &CampaignPolicy) -> Option<Timestamp> {
    next_allowed_in(at, policy, &policy.tz())
}

/// [`is_allowed`] with the zone already looked up (the campaign caches it).
pub fn is_allowed_in(at: Timestamp, policy: &CampaignPolicy, tz: &TimeZone) -> bool {
    let local = at.to_zoned_datetime(tz.clone());
    day_allowed(local.date(), policy)
        && policy
            .calling_windows
            .iter()
            .any(|w| w.contains(local.time()))
}

/// [`next_allowed`] with the zone already looked up (the campaign caches it).
pub fn next_allowed_in(at: Timestamp, policy: &CampaignPolicy, tz: &TimeZone) -> Option<Timestamp> {
    let mut day = at.to_zoned_datetime(tz.clone()).date();
    for _ in 0..SEARCH_DAYS {
        if day_allowed(day, policy) {
            for w in &policy.calling_windows {
                if w.start >= w.end {
                    continue;
                }
                let start = local_instant(day, w.start, tz)?;
                let end = local_instant(day, w.end, tz)?;
                if end > at && start < end {
                    return Some(start.max(at));
                }
            }
        }
        day = day.tomorrow().ok()?;
    }
    None
}

fn day_allowed(d: Date, policy: &CampaignPolicy) -> bool {
    policy.days.contains(&Day::from(d.weekday())) && !policy.excluded_dates.contains(&d)
}

/// The instant of a local wall-clock time; in a DST gap or fold, the "compatible"
/// choice (later offset in a gap, earlier instant in a fold).
fn local_instant(d: Date, t: jiff::civil::Time, tz: &TimeZone) -> Option<Timestamp> {
    tz.to_ambiguous_timestamp(d.to_datetime(t))
        .compatible()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialer::policy::CallingWindow;
    use jiff::civil::date;

    /// Local Hanoi time (UTC+7, no DST) as an instant.
    fn vn(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        TimeZone::fixed(jiff::tz::offset(7))
            .to_timestamp(date(y, mo, d).at(h, mi, 0, 0))
            .unwrap()
    }

    fn win(s: &str) -> CallingWindow {
        CallingWindow::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn inside_a_window_is_now() {
        let p = CampaignPolicy::default();
        let at = vn(2021, 11, 29, 9, 15);
        assert!(is_allowed(at, &p));
        assert_eq!(next_allowed(at, &p), Some(at));
        // Start is inclusive, end exclusive.
        assert!(is_allowed(vn(2021, 11, 29, 8, 0), &p));
        assert!(!is_allowed(vn(2021, 11, 29, 20, 0), &p));
        assert!(is_allowed(
            vn(2021, 11, 29, 20, 0) - jiff::SignedDuration::from_nanos(1),
            &p
        ));
    }

    #[test]
    fn evening_moves_to_next_morning_across_midnight() {
        let p = CampaignPolicy::default();
        assert_eq!(
            next_allowed(vn(2021, 11, 29, 20, 0), &p),
            Some(vn(2021, 11, 30, 8, 0))
        );
        assert_eq!(
            next_allowed(vn(2021, 11, 29, 23, 59), &p),
            Some(vn(2021, 11, 30, 8, 0))
        );
        // 00:30 local is still the previous UTC day: the local date decides.
        assert_eq!(
            next_allowed(vn(2021, 11, 30, 0, 30), &p),
            Some(vn(2021, 11, 30, 8, 0))
        );
        assert_eq!(
            next_allowed(vn(2021, 11, 30, 6, 0), &p),
            Some(vn(2021, 11, 30, 8, 0))
        );
    }

    #[test]
    fn weekends_are_skipped_when_not_allowed() {
        let p = CampaignPolicy {
            days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            ..CampaignPolicy::default()
        };
        // Friday 2021-12-03 20:00 → Monday 2021-12-06 08:00.
        assert_eq!(
            next_allowed(vn(2021, 12, 3, 20, 0), &p),
            Some(vn(2021, 12, 6, 8, 0))
        );
        assert!(!is_allowed(vn(2021, 12, 4, 10, 0), &p));
        assert_eq!(
            next_allowed(vn(2021, 12, 4, 10, 0), &p),
            Some(vn(2021, 12, 6, 8, 0))
        );
    }

    #[test]
    fn excluded_dates_are_skipped() {
        let p = CampaignPolicy {
            excluded_dates: vec![date(2021, 12, 24), date(2021, 12, 25)],
            ..CampaignPolicy::default()
        };
        assert!(!is_allowed(vn(2021, 12, 24, 10, 0), &p));
        assert_eq!(
            next_allowed(vn(2021, 12, 23, 21, 0), &p),
            Some(vn(2021, 12, 26, 8, 0))
        );
    }

    #[test]
    fn lunch_break_windows() {
        let p = CampaignPolicy {
            calling_windows: vec![win("08:00-11:30"), win("13:30-20:00")],
            ..CampaignPolicy::default()
        };
        assert!(is_allowed(vn(2021, 11, 29, 11, 29), &p));
        assert!(!is_allowed(vn(2021, 11, 29, 11, 30), &p));
        assert_eq!(
            next_allowed(vn(2021, 11, 29, 11, 30), &p),
            Some(vn(2021, 11, 29, 13, 30))
        );
        assert_eq!(
            next_allowed(vn(2021, 11, 29, 12, 45), &p),
            Some(vn(2021, 11, 29, 13, 30))
        );
        assert_eq!(
            next_allowed(vn(2021, 11, 29, 7, 0), &p),
            Some(vn(2021, 11, 29, 8, 0))
        );
        assert_eq!(
            next_allowed(vn(2021, 11, 29, 19, 0), &p),
            Some(vn(2021, 11, 29, 19, 0))
        );
    }

    #[test]
    fn hanoi_has_no_dst_every_day_opens_at_0100_utc() {
        let p = CampaignPolicy::default();
        let mut at = vn(2021, 1, 1, 21, 0);
        for _ in 0..365 {
            let n = next_allowed(at, &p).unwrap();
            let utc = n.to_zoned_datetime(TimeZone::UTC);
            assert_eq!((utc.hour(), utc.minute()), (1, 0), "{n}");
            at = n + jiff::SignedDuration::from_hours(13);
        }
    }

    #[test]
    fn a_dst_zone_uses_local_wall_time() {
        // Same rules read in New York: 08:00 local is 13:00Z in winter, 12:00Z in summer.
        let p = CampaignPolicy {
            timezone: "America/New_York".into(),
            ..CampaignPolicy::default()
        };
        let winter: Timestamp = "2024-03-09T02:00:00Z".parse().unwrap();
        assert_eq!(
            next_allowed(winter, &p).unwrap().to_string(),
            "2024-03-09T13:00:00Z"
        );
        let summer: Timestamp = "2024-03-11T02:00:00Z".parse().unwrap();
        assert_eq!(
            next_allowed(summer, &p).unwrap().to_string(),
            "2024-03-11T12:00:00Z"
        );
    }

    #[test]
    fn closed_policy_has_no_next() {
        let p = CampaignPolicy {
            days: vec![],
            ..CampaignPolicy::default()
        };
        assert_eq!(next_allowed(vn(2021, 11, 29, 9, 0), &p), None);
        assert!(!is_allowed(vn(2021, 11, 29, 9, 0), &p));
    }
}
