//! Campaign tests in virtual time: an `Instant`/`Timestamp` pair advanced together.

use super::*;
use crate::dialer::pacer::tests::{Rng, max_in_any_second};
use crate::dialer::policy::Day;
use crate::dialer::window::is_allowed;
use jiff::civil::date;

const HOUR: Duration = Duration::from_secs(3600);

fn vn(y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8) -> Timestamp {
    TimeZone::fixed(jiff::tz::offset(7))
        .to_timestamp(date(y, mo, d).at(h, mi, s, 0))
        .unwrap()
}

fn contacts(n: u64) -> Vec<Contact> {
    (1..=n)
        .map(|i| Contact {
            id: i,
            msisdn: format!("09{:08}", i),
        })
        .collect()
}

struct Call {
    end: Duration,
    id: ContactId,
    disposition: Disposition,
    outcome: Option<CallOutcome>,
}

/// Drives a campaign against a simulated trunk, checking the limits on every start.
struct Sim {
    c: Campaign,
    i0: Instant,
    ts0: Timestamp,
    off: Duration,
    calls: Vec<Call>,
    /// (instant, timestamp, order) of every dial.
    starts: Vec<(Instant, Timestamp, DialOrder)>,
    peak: u32,
    live: u32,
    rng: Rng,
}

type Answer = (Duration, Disposition, Option<CallOutcome>);

impl Sim {
    fn new(
        policy: CampaignPolicy,
        contacts: Vec<Contact>,
        opt_out: OptOutList,
        ts0: Timestamp,
    ) -> Sim {
        let mut c = Campaign::new(policy, contacts, opt_out).unwrap();
        c.start().unwrap();
        Sim {
            c,
            i0: Instant::now(),
            ts0,
            off: Duration::ZERO,
            calls: Vec::new(),
            starts: Vec::new(),
            peak: 0,
            live: 0,
            rng: Rng::new(7),
        }
    }

    fn now(&self) -> (Instant, Timestamp) {
        (self.i0 + self.off, self.ts0 + self.off)
    }

    fn finish_due(&mut self) {
        self.calls.sort_by_key(|c| c.end);
        while self.calls.first().is_some_and(|c| c.end <= self.off) {
            let call = self.calls.remove(0);
            self.live -= 1;
            let (i, ts) = self.now();
            self.c
                .attempt_finished(i, ts, call.id, call.disposition, call.outcome)
                .unwrap();
            let p = self.c.progress();
            assert_eq!(
                p.waiting + p.dialing + p.in_call + p.retry_pending + p.done,
                self.c.slots.len() as u32
            );
        }
    }

    fn dial_all(&mut self, answer: &mut impl FnMut(&DialOrder, &mut Rng) -> Answer) {
        loop {
            let (i, ts) = self.now();
            let Some(order) = self.c.poll_dial(i, ts) else {
                break;
            };
            assert!(
                is_allowed(ts, self.c.policy()),
                "dial outside window at {ts}"
            );
            self.live += 1;
            self.peak = self.peak.max(self.live);
            assert!(self.live <= self.c.policy().max_concurrent);
            let (dur, disposition, outcome) = answer(&order, &mut self.rng);
            if disposition == Disposition::Answered {
                self.c.call_answered(order.contact_id).unwrap();
            }
            self.calls.push(Call {
                end: self.off + dur,
                id: order.contact_id,
                disposition,
                outcome,
            });
            self.starts.push((i, ts, order));
        }
    }

    /// Runs until nothing is left to do or `limit` of virtual time has passed.
    fn run(&mut self, limit: Duration, mut answer: impl FnMut(&DialOrder, &mut Rng) -> Answer) {
        loop {
            self.finish_due();
            self.dial_all(&mut answer);
            let (i, ts) = self.now();
            let next_end = self.calls.iter().map(|c| c.end).min();
            let wake = self
                .c
                .poll_timeout(i, ts)
                .map(|w| w.duration_since(self.i0));
            let next = match (next_end, wake) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(n) => n,
                    None => return,
                },
            };
            if next > limit {
                return;
            }
            self.off = next.max(self.off);
        }
    }

    fn dials_of(&self, id: ContactId) -> Vec<Timestamp> {
        self.starts
            .iter()
            .filter(|s| s.2.contact_id == id)
            .map(|s| s.1)
            .collect()
    }
}

fn monday_8am() -> Timestamp {
    vn(2021, 11, 29, 8, 0, 0)
}

#[test]
fn three_hundred_contacts_respect_both_limits_and_finish() {
    let policy = CampaignPolicy::default();
    let mut sim = Sim::new(policy, contacts(300), OptOutList::new(), monday_8am());
    sim.run(Duration::from_secs(7 * 24 * 3600), |o, rng| {
        let talk = Duration::from_secs(20 + rng.below(160));
        let quick = Duration::from_millis(300 + rng.below(4000));
        match o.contact_id % 10 {
            0 => (talk, Disposition::Answered, Some(CallOutcome::Registered)),
            1 => (
                talk,
                Disposition::Answered,
                Some(CallOutcome::NotInterested),
            ),
            2 if o.attempt_no == 1 => (
                talk,
                Disposition::Answered,
                Some(CallOutcome::CallLater { at: None }),
            ),
            2 => (talk, Disposition::Answered, Some(CallOutcome::Registered)),
            3 | 4 => (quick, Disposition::Busy, None),
            5 => (Duration::from_secs(30), Disposition::NoAnswer, None),
            6 => (quick, Disposition::Rejected, None),
            7 => (quick, Disposition::InvalidNumber, None),
            8 if o.attempt_no < 2 => (Duration::from_secs(30), Disposition::NoAnswer, None),
            _ => (talk, Disposition::Answered, Some(CallOutcome::Registered)),
        }
    });
    assert_eq!(sim.c.state(), CampaignState::Completed);
    assert!(sim.peak <= 20, "peak {}", sim.peak);
    assert_eq!(sim.peak, 20, "the run should be concurrency-bound at times");
    let instants: Vec<Instant> = sim.starts.iter().map(|s| s.0).collect();
    assert!(max_in_any_second(&instants) <= 5);
    let p = sim.c.progress();
    assert_eq!(p.done, 300);
    assert_eq!(p.done_by_disposition[&Disposition::Rejected], 30);
    assert_eq!(p.done_by_reason[&DoneReason::Rejected], 30);
    assert_eq!(p.done_by_reason[&DoneReason::InvalidNumber], 30);
    assert_eq!(p.done_by_reason[&DoneReason::MaxAttempts], 90);
    assert_eq!(p.done_by_reason[&DoneReason::Completed], 150);
    for id in 1..=300u64 {
        let st = sim.c.contact(id).unwrap();
        assert!(st.charged_attempts <= 3);
        match id % 10 {
            6 | 7 => assert_eq!(sim.dials_of(id).len(), 1, "603/404 re-dialled: {id}"),
            5 => assert_eq!(st.charged_attempts, 3),
            _ => {}
        }
    }
}

#[test]
fn retry_schedule_per_disposition() {
    let cases = [
        (Disposition::Busy, vec![0, 600, 1200]),
        (Disposition::NoAnswer, vec![0, 7200, 14400]),
        (Disposition::Failed, vec![0, 1800, 3600]),
        (Disposition::Congested, vec![0, 300, 900]),
    ];
    for (d, expected) in cases {
        let mut sim = Sim::new(
            CampaignPolicy::default(),
            contacts(1),
            OptOutList::new(),
            monday_8am(),
        );
        // Calls end at once so the schedule is exactly the delays.
        sim.run(Duration::from_secs(86_400), |_, _| {
            (Duration::ZERO, d, None)
        });
        let got: Vec<i64> = sim
            .dials_of(1)
            .iter()
            .map(|t| monday_8am().duration_until(*t).as_secs())
            .collect();
        assert_eq!(got, expected, "{d:?}");
        assert_eq!(
            sim.c.contact(1).unwrap().state,
            ContactState::Done {
                reason: DoneReason::MaxAttempts
            }
        );
        assert_eq!(sim.c.state(), CampaignState::Completed);
    }
}

#[test]
fn rejected_603_is_never_redialled() {
    let mut sim = Sim::new(
        CampaignPolicy::default(),
        contacts(1),
        OptOutList::new(),
        monday_8am(),
    );
    sim.run(Duration::from_secs(3 * 86_400), |_, _| {
        (Duration::from_secs(2), Disposition::Rejected, None)
    });
    assert_eq!(sim.dials_of(1).len(), 1);
    assert_eq!(sim.c.state(), CampaignState::Completed);
    assert_eq!(sim.c.progress().done_by_reason[&DoneReason::Rejected], 1);
}

#[test]
fn opt_out_is_honoured_across_campaigns() {
    let list = OptOutList::new();
    let mut a = Sim::new(
        CampaignPolicy::default(),
        vec![Contact {
            id: 1,
            msisdn: "0903000001".into(),
        }],
        list.clone(),
        monday_8am(),
    );
    a.run(Duration::from_secs(86_400), |_, _| {
        (
            Duration::from_secs(40),
            Disposition::Answered,
            Some(CallOutcome::OptOut),
        )
    });
    assert_eq!(a.dials_of(1).len(), 1);
    assert_eq!(
        a.c.contact(1).unwrap().state,
        ContactState::Done {
            reason: DoneReason::OptedOut
        }
    );
    assert!(list.contains("+84903000001"));

    // A survey campaign later, the same subscriber written another way.
    let survey = CampaignPolicy {
        kind: crate::dialer::policy::CampaignKind::Survey,
        dialplan: "survey".into(),
        ..CampaignPolicy::default()
    };
    let mut b = Sim::new(
        survey,
        vec![
            Contact {
                id: 10,
                msisdn: "84903000001".into(),
            },
            Contact {
                id: 11,
                msisdn: "0903000002".into(),
            },
        ],
        list.clone(),
        monday_8am() + HOUR,
    );
    b.run(Duration::from_secs(86_400), |_, _| {
        (
            Duration::from_secs(60),
            Disposition::Answered,
            Some(CallOutcome::SurveyCompleted),
        )
    });
    assert!(b.dials_of(10).is_empty());
    assert_eq!(b.dials_of(11).len(), 1);
    assert_eq!(
        b.c.contact(10).unwrap().state,
        ContactState::Done {
            reason: DoneReason::OptedOut
        }
    );
    assert_eq!(b.c.state(), CampaignState::Completed);
}

#[test]
fn pause_stops_new_dials_but_calls_finish() {
    let policy = CampaignPolicy {
        max_concurrent: 5,
        max_cps: 100.0,
        ..CampaignPolicy::default()
    };
    let mut c = Campaign::new(policy, contacts(10), OptOutList::new()).unwrap();
    c.start().unwrap();
    let i0 = Instant::now();
    let ts0 = monday_8am();
    let mut orders = Vec::new();
    while let Some(o) = c.poll_dial(i0, ts0) {
        orders.push(o);
    }
    assert_eq!(orders.len(), 5);
    for o in &orders {
        c.call_answered(o.contact_id).unwrap();
    }
    c.pause().unwrap();
    let later = Duration::from_secs(60);
    assert_eq!(c.poll_dial(i0 + later, ts0 + later), None);
    assert_eq!(c.poll_timeout(i0 + later, ts0 + later), None);
    assert_eq!(c.progress().in_call, 5);
    for o in &orders {
        c.attempt_finished(
            i0 + later,
            ts0 + later,
            o.contact_id,
            Disposition::Answered,
            Some(CallOutcome::Registered),
        )
        .unwrap();
    }
    let p = c.progress();
    assert_eq!((p.in_call, p.done, p.waiting), (0, 5, 5));
    assert_eq!(c.state(), CampaignState::Paused);
    assert_eq!(c.poll_dial(i0 + later, ts0 + later), None);
    c.resume().unwrap();
    assert!(c.poll_dial(i0 + later, ts0 + later).is_some());
}

#[test]
fn window_closes_at_20_and_reopens_next_allowed_day() {
    let policy = CampaignPolicy {
        max_concurrent: 1,
        days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
        ..CampaignPolicy::default()
    };
    // Friday 2021-12-03 19:59:00.
    let ts0 = vn(2021, 12, 3, 19, 59, 0);
    let mut sim = Sim::new(policy, contacts(3), OptOutList::new(), ts0);
    sim.run(Duration::from_secs(4 * 86_400), |_, _| {
        (
            Duration::from_secs(45),
            Disposition::Answered,
            Some(CallOutcome::Registered),
        )
    });
    let times: Vec<Timestamp> = sim.starts.iter().map(|s| s.1).collect();
    assert_eq!(
        times,
        vec![
            vn(2021, 12, 3, 19, 59, 0),
            vn(2021, 12, 3, 19, 59, 45),
            // 20:00:30: closed; Saturday and Sunday are not calling days.
            vn(2021, 12, 6, 8, 0, 0),
        ]
    );
    assert_eq!(sim.c.state(), CampaignState::Completed);
}

#[test]
fn poll_timeout_points_at_the_window_opening() {
    let mut c = Campaign::new(CampaignPolicy::default(), contacts(1), OptOutList::new()).unwrap();
    c.start().unwrap();
    let i0 = Instant::now();
    let ts0 = vn(2021, 11, 29, 21, 0, 0);
    assert_eq!(c.poll_dial(i0, ts0), None);
    assert_eq!(c.poll_timeout(i0, ts0), Some(i0 + 11 * HOUR));
}

#[test]
fn throttling_burst_does_not_consume_attempts() {
    let policy = CampaignPolicy {
        max_cps: 100.0,
        max_attempts: 1,
        ..CampaignPolicy::default()
    };
    let mut c = Campaign::new(policy, contacts(10), OptOutList::new()).unwrap();
    c.start().unwrap();
    let i0 = Instant::now();
    let ts0 = monday_8am();
    let mut ids = Vec::new();
    while let Some(o) = c.poll_dial(i0, ts0) {
        ids.push(o.contact_id);
    }
    assert_eq!(ids.len(), 10);
    // Six 503/486 within two seconds: the trunk, not the subscribers.
    for (k, &id) in ids[..6].iter().enumerate() {
        let at = Duration::from_millis(300 * k as u64);
        let d = if k % 2 == 0 {
            Disposition::Congested
        } else {
            Disposition::Busy
        };
        c.attempt_finished(i0 + at, ts0 + at, id, d, None).unwrap();
    }
    assert!(c.is_throttling());
    for &id in &ids[..6] {
        let st = c.contact(id).unwrap();
        assert_eq!(st.charged_attempts, 0, "contact {id} was charged");
        assert!(
            matches!(
                st.state,
                ContactState::Queued {
                    not_before: Some(_)
                }
            ),
            "{id}: {:?}",
            st.state
        );
    }
    // Retried after `retry.throttled` (2 min), even though max_attempts is 1.
    let at = Duration::from_secs(121) + Duration::from_millis(1500);
    for &id in &ids[6..] {
        c.attempt_finished(
            i0 + at,
            ts0 + at,
            id,
            Disposition::Answered,
            Some(CallOutcome::Registered),
        )
        .unwrap();
    }
    let mut redialled = Vec::new();
    while let Some(o) = c.poll_dial(i0 + at, ts0 + at) {
        assert_eq!(o.attempt_no, 2);
        redialled.push(o.contact_id);
    }
    redialled.sort();
    assert_eq!(redialled, ids[..6].to_vec());
    // A genuine busy outside throttling is charged and, at max_attempts 1, final.
    let later = at + Duration::from_secs(600);
    c.attempt_finished(i0 + later, ts0 + later, ids[0], Disposition::Busy, None)
        .unwrap();
    assert!(!c.is_throttling());
    assert_eq!(
        c.contact(ids[0]).unwrap().state,
        ContactState::Done {
            reason: DoneReason::MaxAttempts
        }
    );
}

#[test]
fn commands_in_the_wrong_state_are_refused() {
    let mut c = Campaign::new(CampaignPolicy::default(), contacts(2), OptOutList::new()).unwrap();
    let e = c.pause().unwrap_err();
    assert_eq!(e.to_string(), "cannot pause a campaign that is draft");
    assert!(c.resume().is_err());
    assert_eq!(c.poll_dial(Instant::now(), monday_8am()), None);
    c.start().unwrap();
    assert_eq!(
        c.start().unwrap_err(),
        CampaignError::InvalidCommand {
            command: "start",
            state: CampaignState::Running
        }
    );
    assert_eq!(
        c.resume().unwrap_err().to_string(),
        "cannot resume a campaign that is running"
    );
    c.pause().unwrap();
    assert!(c.pause().is_err());
    c.stop().unwrap();
    assert!(c.start().is_err());
    assert!(c.resume().is_err());
    assert_eq!(
        c.stop().unwrap_err().to_string(),
        "cannot stop a campaign that is stopped"
    );
    assert_eq!(c.poll_dial(Instant::now(), monday_8am()), None);
}

#[test]
fn stop_keeps_recording_calls_in_progress() {
    let mut c = Campaign::new(CampaignPolicy::default(), contacts(3), OptOutList::new()).unwrap();
    c.start().unwrap();
    let (i0, ts0) = (Instant::now(), monday_8am());
    let o = c.poll_dial(i0, ts0).unwrap();
    c.stop().unwrap();
    let d = c
        .attempt_finished(i0, ts0, o.contact_id, Disposition::Canceled, None)
        .unwrap();
    assert!(matches!(d, RetryDecision::Retry { .. }));
    assert_eq!(c.contact(o.contact_id).unwrap().charged_attempts, 0);
    assert_eq!(c.state(), CampaignState::Stopped);
    assert_eq!(c.poll_timeout(i0, ts0), None);
}

#[test]
fn bad_reports_and_lists_are_errors() {
    let mut c = Campaign::new(CampaignPolicy::default(), contacts(2), OptOutList::new()).unwrap();
    c.start().unwrap();
    let (i0, ts0) = (Instant::now(), monday_8am());
    assert_eq!(
        c.attempt_finished(i0, ts0, 99, Disposition::Busy, None),
        Err(CampaignError::UnknownContact(99))
    );
    assert_eq!(
        c.attempt_finished(i0, ts0, 1, Disposition::Busy, None),
        Err(CampaignError::NotInFlight(1))
    );
    assert_eq!(c.call_answered(2), Err(CampaignError::NotInFlight(2)));

    let dup_id = vec![
        Contact {
            id: 1,
            msisdn: "0903000001".into(),
        },
        Contact {
            id: 1,
            msisdn: "0903000002".into(),
        },
    ];
    assert_eq!(
        Campaign::new(CampaignPolicy::default(), dup_id, OptOutList::new()).unwrap_err(),
        CampaignError::DuplicateContactId(1)
    );
    let dup_number = vec![
        Contact {
            id: 1,
            msisdn: "0903000001".into(),
        },
        Contact {
            id: 2,
            msisdn: "+84903000001".into(),
        },
    ];
    let c = Campaign::new(CampaignPolicy::default(), dup_number, OptOutList::new()).unwrap();
    assert_eq!(c.progress().done_by_reason[&DoneReason::Duplicate], 1);

    let bad = CampaignPolicy {
        max_concurrent: 0,
        ..CampaignPolicy::default()
    };
    let e = Campaign::new(bad, contacts(1), OptOutList::new()).unwrap_err();
    assert!(e.to_string().contains("max_concurrent"), "{e}");
}

#[test]
fn a_burst_on_the_last_contacts_revives_them_instead_of_completing() {
    let policy = CampaignPolicy {
        max_cps: 100.0,
        max_attempts: 1,
        ..CampaignPolicy::default()
    };
    let mut c = Campaign::new(policy, contacts(5), OptOutList::new()).unwrap();
    c.start().unwrap();
    let (i0, ts0) = (Instant::now(), monday_8am());
    let mut ids = Vec::new();
    while let Some(o) = c.poll_dial(i0, ts0) {
        ids.push(o.contact_id);
    }
    for (k, &id) in ids.iter().enumerate() {
        let at = Duration::from_millis(100 * k as u64);
        c.attempt_finished(i0 + at, ts0 + at, id, Disposition::Congested, None)
            .unwrap();
    }
    assert!(c.is_throttling());
    assert_eq!(c.state(), CampaignState::Running);
    let p = c.progress();
    assert_eq!((p.retry_pending, p.done), (5, 0));
    let wake = c.poll_timeout(i0 + Duration::from_secs(1), ts0 + Duration::from_secs(1));
    assert!(wake.is_some_and(|w| w >= i0 + Duration::from_secs(120)));
}
