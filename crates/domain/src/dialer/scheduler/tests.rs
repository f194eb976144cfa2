//! The scheduler on a virtual clock: pacing across claims, the inbound reserve, trunk
//! and dialplan holds, calling-window waits, pause/resume, throttling refunds, drain.

use super::*;
use crate::dialer::pacer::tests::{Rng, max_in_any_second};

fn t0() -> (Instant, Timestamp) {
    // Monday 2021-11-29 10:00 in Hanoi.
    (Instant::now(), "2021-11-29T03:00:00Z".parse().unwrap())
}

fn info(id: i64, state: CampaignState, max_concurrent: u32, max_cps: f64) -> CampaignInfo {
    CampaignInfo {
        id,
        state,
        policy: CampaignPolicy {
            max_concurrent,
            max_cps,
            ..CampaignPolicy::default()
        },
        dialplan_loaded: true,
    }
}

/// Virtual time in one place: `Instant` and `Timestamp` move together.
struct Clock {
    i0: Instant,
    t0: Timestamp,
    now: Instant,
}

impl Clock {
    fn new() -> Clock {
        let (i0, t0) = t0();
        Clock { i0, t0, now: i0 }
    }
    fn ts(&self) -> Timestamp {
        let d = self.now - self.i0;
        self.t0 + jiff::SignedDuration::try_from(d).unwrap()
    }
    fn at(&self, ts: Timestamp) -> Instant {
        self.i0 + Duration::try_from(self.t0.duration_until(ts)).unwrap()
    }
}

#[test]
fn three_hundred_claims_respect_concurrency_rate_and_guard() {
    let mut rng = Rng::new(7);
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut c = Clock::new();
    s.sync(c.ts(), &[info(1, CampaignState::Running, 20, 5.0)]);
    let mut starts: Vec<Instant> = Vec::new();
    let mut ends: Vec<(Instant, i64)> = Vec::new();
    let mut next_attempt = 0i64;
    let mut peak = 0;
    while starts.len() < 300 {
        ends.sort();
        while let Some(&(at, a)) = ends.first() {
            if at > c.now {
                break;
            }
            ends.remove(0);
            let e = s.ended(1, a, at, Disposition::Answered);
            assert_eq!(e, Ended::default());
        }
        match s.next(c.now, c.ts()) {
            Next::Claim { campaign_id } => {
                assert_eq!(campaign_id, 1);
                next_attempt += 1;
                s.claimed(1, c.ts(), 1, None, Some(c.ts()));
                // The hand-over to SIP takes a little while; the pacer records after.
                c.now += Duration::from_millis(rng.below(30));
                s.started(1, next_attempt, c.now);
                starts.push(c.now);
                peak = peak.max(s.in_flight());
                assert!(s.in_flight() <= 20);
                ends.push((
                    c.now + Duration::from_millis(4_000 + rng.below(3_000)),
                    next_attempt,
                ));
            }
            Next::Wait { until } => {
                let next_end = ends.iter().map(|e| e.0).min();
                c.now = match (until, next_end) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).expect("something to wait for"),
                }
                .max(c.now);
            }
        }
    }
    assert_eq!(peak, 20, "concurrency was the binding limit at some point");
    assert!(max_in_any_second(&starts) <= 5);
    // The guard: never 5 starts within 1.1 s either, so 100 ms of jitter between the
    // record and the wire cannot make six in a second.
    for w in starts.windows(6) {
        assert!(
            w[5] - w[0] >= Duration::from_millis(1100),
            "{:?}",
            w[5] - w[0]
        );
    }
}

#[test]
fn outbound_calls_never_take_the_inbound_reserve() {
    let mut s = Scheduler::new(SchedulerConfig {
        outbound_ceiling: 8, // e.g. sip.max_calls 10, inbound_reserve 2
        ..SchedulerConfig::default()
    });
    let c = Clock::new();
    s.sync(c.ts(), &[info(1, CampaignState::Running, 100, 1000.0)]);
    s.set_active_calls(5); // five inbound callers
    let mut n = 0;
    while let Next::Claim { .. } = s.next(c.now, c.ts()) {
        n += 1;
        s.claimed(1, c.ts(), 1, None, Some(c.ts()));
        s.started(1, n, c.now);
    }
    assert_eq!(n, 3, "5 inbound + 3 outbound = the ceiling of 8");
    assert_eq!(s.next(c.now, c.ts()), Next::Wait { until: None });
    // An inbound call ends: the log's count drops, one more outbound may start.
    s.set_active_calls(7);
    assert!(matches!(s.next(c.now, c.ts()), Next::Claim { .. }));
}

#[test]
fn trunk_and_dialplan_holds_stop_claims_and_are_reported() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let c = Clock::new();
    s.sync(c.ts(), &[info(1, CampaignState::Running, 5, 5.0)]);
    assert_eq!(s.poll_hold_changes(), vec![]);
    s.set_trunk(Some(Hold::TrunkNotRegistered));
    assert_eq!(s.next(c.now, c.ts()), Next::Wait { until: None });
    assert_eq!(
        s.poll_hold_changes(),
        vec![(1, Some(Hold::TrunkNotRegistered))]
    );
    assert_eq!(s.poll_hold_changes(), vec![], "reported once");
    s.set_trunk(None);
    assert_eq!(s.poll_hold_changes(), vec![(1, None)]);
    assert!(matches!(s.next(c.now, c.ts()), Next::Claim { .. }));

    let mut missing = info(1, CampaignState::Running, 5, 5.0);
    missing.dialplan_loaded = false;
    s.sync(c.ts(), &[missing]);
    assert_eq!(s.next(c.now, c.ts()), Next::Wait { until: None });
    assert_eq!(
        s.poll_hold_changes(),
        vec![(1, Some(Hold::DialplanMissing("invite".into())))]
    );
}

#[test]
fn outside_the_window_it_sleeps_until_the_opening() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut c = Clock::new();
    s.sync(c.ts(), &[info(1, CampaignState::Running, 5, 5.0)]);
    assert!(matches!(s.next(c.now, c.ts()), Next::Claim { .. }));
    // The store says: outside the window, opens at 13:30 local (06:30Z).
    let opens: Timestamp = "2021-11-29T06:30:00Z".parse().unwrap();
    s.claimed(
        1,
        c.ts(),
        0,
        Some(Hold::OutsideCallingWindow { opens: Some(opens) }),
        Some(opens),
    );
    assert_eq!(
        s.poll_hold_changes(),
        vec![(1, Some(Hold::OutsideCallingWindow { opens: Some(opens) }))]
    );
    assert_eq!(
        s.next(c.now, c.ts()),
        Next::Wait {
            until: Some(c.at(opens))
        }
    );
    c.now = c.at(opens) - Duration::from_millis(1);
    assert!(matches!(s.next(c.now, c.ts()), Next::Wait { .. }));
    c.now = c.at(opens);
    assert_eq!(s.next(c.now, c.ts()), Next::Claim { campaign_id: 1 });
    s.claimed(1, c.ts(), 1, None, None);
    assert_eq!(s.poll_hold_changes(), vec![(1, None)]);
}

#[test]
fn retries_wake_the_campaign_at_their_time() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut c = Clock::new();
    s.sync(c.ts(), &[info(1, CampaignState::Running, 5, 5.0)]);
    assert!(matches!(s.next(c.now, c.ts()), Next::Claim { .. }));
    s.claimed(1, c.ts(), 1, None, None); // the last contact
    s.started(1, 1, c.now);
    // Nothing due: the next check is the periodic recheck.
    let recheck = c.now + SchedulerConfig::default().recheck;
    assert_eq!(
        s.next(c.now, c.ts()),
        Next::Wait {
            until: Some(recheck)
        }
    );
    c.now += Duration::from_secs(3);
    s.ended(1, 1, c.now, Disposition::Busy);
    // The store rescheduled the busy contact 10 minutes later: the runtime reports it,
    // and the campaign wakes then (not at the 30 s recheck of an idle campaign).
    let retry = c.ts() + jiff::SignedDuration::from_mins(10);
    s.claimed(
        1,
        c.ts(),
        0,
        None,
        Some(c.ts() + jiff::SignedDuration::from_hours(1)),
    );
    s.retry_due(1, retry);
    assert_eq!(
        s.next(c.now, c.ts()),
        Next::Wait {
            until: Some(c.at(retry))
        }
    );
    c.now = c.at(retry);
    assert_eq!(s.next(c.now, c.ts()), Next::Claim { campaign_id: 1 });
}

#[test]
fn pause_stops_claims_calls_finish_resume_claims_at_once() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut c = Clock::new();
    s.sync(c.ts(), &[info(1, CampaignState::Running, 5, 5.0)]);
    assert!(matches!(s.next(c.now, c.ts()), Next::Claim { .. }));
    s.claimed(1, c.ts(), 1, None, Some(c.ts()));
    s.started(1, 10, c.now);
    s.sync(c.ts(), &[info(1, CampaignState::Paused, 5, 5.0)]);
    assert_eq!(s.next(c.now, c.ts()), Next::Wait { until: None });
    assert_eq!(
        s.campaigns().collect::<Vec<_>>(),
        vec![1],
        "kept: a call is up"
    );
    c.now += Duration::from_secs(2);
    s.ended(1, 10, c.now, Disposition::Answered);
    assert_eq!(s.in_flight(), 0);
    assert_eq!(s.campaigns().count(), 0, "forgotten once idle");
    s.sync(c.ts(), &[info(1, CampaignState::Running, 5, 5.0)]);
    assert_eq!(s.next(c.now, c.ts()), Next::Claim { campaign_id: 1 });
}

#[test]
fn campaigns_take_turns() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let c = Clock::new();
    s.sync(
        c.ts(),
        &[
            info(1, CampaignState::Running, 50, 100.0),
            info(2, CampaignState::Running, 50, 100.0),
            info(3, CampaignState::Draft, 50, 100.0),
        ],
    );
    let mut order = Vec::new();
    for a in 0..6 {
        let Next::Claim { campaign_id } = s.next(c.now, c.ts()) else {
            panic!("claim expected");
        };
        order.push(campaign_id);
        s.claimed(campaign_id, c.ts(), 1, None, Some(c.ts()));
        s.started(campaign_id, a, c.now);
    }
    assert_eq!(order, vec![1, 2, 1, 2, 1, 2]);
}

#[test]
fn a_busy_burst_throttles_and_refunds_the_burst() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut c = Clock::new();
    s.sync(c.ts(), &[info(1, CampaignState::Running, 50, 5.0)]);
    for a in 1..=8 {
        s.started(1, a, c.now);
    }
    let mut refunds = Vec::new();
    let mut throttled = Vec::new();
    for a in 1..=8 {
        c.now += Duration::from_millis(300);
        let e = s.ended(1, a, c.now, Disposition::Busy);
        refunds.extend(e.refund);
        throttled.push(e.throttled);
    }
    // The 5th busy tips it: the 4 before are refunded, it and later ones are finished
    // as throttled (uncharged) directly.
    assert_eq!(refunds, vec![1, 2, 3, 4]);
    assert_eq!(
        throttled,
        vec![false, false, false, false, true, true, true, true]
    );
    // An answered call while throttled is just that.
    s.started(1, 9, c.now);
    assert!(!s.ended(1, 9, c.now, Disposition::Answered).throttled);
}

#[test]
fn busy_among_answers_is_not_throttling() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let mut c = Clock::new();
    s.sync(c.ts(), &[info(1, CampaignState::Running, 50, 5.0)]);
    for a in 1..=30 {
        s.started(1, a, c.now);
        c.now += Duration::from_millis(300);
        let d = if a % 3 == 0 {
            Disposition::Busy
        } else {
            Disposition::Answered
        };
        assert_eq!(s.ended(1, a, c.now, d), Ended::default());
    }
}

#[test]
fn draining_holds_every_campaign() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let c = Clock::new();
    s.sync(c.ts(), &[info(1, CampaignState::Running, 5, 5.0)]);
    s.drain();
    assert_eq!(s.next(c.now, c.ts()), Next::Wait { until: None });
    assert_eq!(s.poll_hold_changes(), vec![(1, Some(Hold::Stopping))]);
}

#[test]
fn a_claim_that_finds_nothing_due_backs_off() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let c = Clock::new();
    s.sync(c.ts(), &[info(1, CampaignState::Running, 5, 5.0)]);
    assert!(matches!(s.next(c.now, c.ts()), Next::Claim { .. }));
    // Due contacts exist but another instance holds them.
    s.claimed(1, c.ts(), 0, None, Some(c.ts()));
    assert_eq!(
        s.next(c.now, c.ts()),
        Next::Wait {
            until: Some(c.now + Duration::from_secs(1))
        }
    );
    s.claim_failed(1, c.ts());
    assert_eq!(s.poll_hold_changes(), vec![(1, Some(Hold::StoreError))]);
}

#[test]
fn a_box_out_of_cpu_for_media_holds_every_campaign_until_it_catches_up() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    let c = Clock::new();
    s.sync(
        c.ts(),
        &[
            info(1, CampaignState::Running, 5, 5.0),
            info(2, CampaignState::Running, 5, 5.0),
        ],
    );
    s.set_trunk(Some(Hold::MediaOverloaded));
    assert_eq!(s.next(c.now, c.ts()), Next::Wait { until: None });
    let mut changes = s.poll_hold_changes();
    changes.sort_by_key(|(id, _)| *id);
    assert_eq!(
        changes,
        vec![
            (1, Some(Hold::MediaOverloaded)),
            (2, Some(Hold::MediaOverloaded))
        ]
    );
    assert_eq!(Hold::MediaOverloaded.code(), "media_overloaded");
    assert!(
        Hold::MediaOverloaded
            .to_string()
            .starts_with("media_overloaded: ")
    );
    s.set_trunk(None);
    assert!(matches!(s.next(c.now, c.ts()), Next::Claim { .. }));
}
