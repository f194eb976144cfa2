//! The runtime's decisions on a virtual clock with a real store (SQLite in a temp
//! directory) and a scripted placer instead of SIP: when it claims (calling windows,
//! retry times), what it does with the answers (throttling refunds, holds, refused
//! dials), and that opted-out and rejected numbers never come back. The store's own
//! rules (which disposition retries when) are tested in `tests/store/store_campaigns.rs`;
//! here the question is whether the runtime acts on them at the right moments.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::store::{ContactEnd, FlowOutcome};
use tongdai_domain::dialer::{CallingWindow, CampaignKind, CampaignPolicy, CampaignState, Day};

/// Local Hanoi time (November 2021) as an instant.
fn vn(d: i8, h: i8, mi: i8) -> Timestamp {
    vn_in(11, d, h, mi)
}

fn vn_in(month: i8, d: i8, h: i8, mi: i8) -> Timestamp {
    TimeZone::fixed(jiff::tz::offset(7))
        .to_timestamp(date(2021, month, d).at(h, mi, 0, 0))
        .unwrap()
}

fn local(t: Timestamp) -> jiff::civil::DateTime {
    t.to_zoned_datetime(TimeZone::fixed(jiff::tz::offset(7)))
        .datetime()
}

/// What the scripted subscriber does on the n-th call (last entry repeats).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    /// A final after this many seconds of ringing.
    Final(u16, u64),
    /// Never answers: the ring timeout (our CANCEL) decides.
    Rings,
    /// Answers and the flow records this outcome; hangs up after this many seconds.
    Answers(Option<FlowOutcome>, u64),
    /// Answers and presses the opt-out key.
    OptsOut,
}

#[derive(Default)]
struct World {
    trunk: Option<Hold>,
    refuse: Option<NotPlaced>,
    /// Dials made: (virtual time, msisdn, attempt id, campaign).
    dials: Vec<(Timestamp, String, i64, i64)>,
    /// Dialled calls waiting to be scripted by the test.
    placed: Vec<ClaimedAttempt>,
}

struct FakePlacer(Arc<Mutex<World>>);

impl Placer for FakePlacer {
    type Prepared = ClaimedAttempt;
    fn dialplan_loaded(&self, name: &str) -> bool {
        name == "invite" || name == "survey"
    }
    fn trunk_hold(&self) -> Option<Hold> {
        self.0.lock().unwrap().trunk.clone()
    }
    fn active_calls(&self) -> u32 {
        0
    }
    fn prepare(&mut self, attempt: &ClaimedAttempt) -> Result<ClaimedAttempt, NotPlaced> {
        Ok(attempt.clone())
    }
    async fn dial(
        &mut self,
        attempt: ClaimedAttempt,
        _ends: mpsc::UnboundedSender<CallEnd>,
    ) -> Result<(), NotPlaced> {
        let mut w = self.0.lock().unwrap();
        if let Some(why) = w.refuse.take() {
            return Err(why);
        }
        w.placed.push(attempt);
        Ok(())
    }
}

struct Sim {
    dialer: Dialer<FakePlacer>,
    world: Arc<Mutex<World>>,
    clock: Arc<ManualClock>,
    store: Store,
    script: HashMap<String, Vec<Act>>,
    /// Scripted ends: (when, end).
    ends: Vec<(Instant, CallEnd)>,
    calls_of: BTreeMap<String, usize>,
    _dir: tempfile::TempDir,
}

impl Sim {
    async fn new(start: Timestamp) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let world = Arc::new(Mutex::new(World::default()));
        let cfg = DialerConfig {
            instance: "sim".into(),
            poll_interval: Duration::from_secs(1),
            scheduler: SchedulerConfig {
                recheck: Duration::from_secs(600),
                ..SchedulerConfig::default()
            },
            program: Arc::new(ProgramConfig::default()),
            call_id_host: "test".into(),
        };
        let (dialer, _ends) =
            Dialer::new(store.clone(), FakePlacer(world.clone()), cfg, clock.clone());
        Sim {
            dialer,
            world,
            clock,
            store,
            script: HashMap::new(),
            ends: Vec::new(),
            calls_of: BTreeMap::new(),
            _dir: dir,
        }
    }

    /// An invitation campaign over these numbers (`0903xxxxxx` suffixes), started.
    async fn campaign(&mut self, name: &str, numbers: &[&str], policy: CampaignPolicy) -> i64 {
        let ts = self.clock.now();
        for n in numbers {
            self.store
                .upsert_subscriber(&tongdai_domain::program::Subscriber {
                    msisdn: n.to_string(),
                    plan: tongdai_domain::program::Plan::Postpaid,
                    charge_per_cycle_vnd: 400_000,
                    list_source: "sms".into(),
                    name: None,
                    imported_at: ts,
                    import_batch: None,
                })
                .await
                .unwrap();
        }
        let created = self
            .store
            .create_invitation_campaign(name, policy, &ProgramConfig::default(), ts)
            .await
            .unwrap();
        self.store
            .start_campaign(created.campaign.id, ts)
            .await
            .unwrap();
        self.dialer.sync().await.unwrap();
        created.campaign.id
    }

    /// Turns the calls placed since the last look into scripted ends.
    async fn script_placed(&mut self) {
        let placed: Vec<ClaimedAttempt> = std::mem::take(&mut self.world.lock().unwrap().placed);
        let (now, ts) = (self.clock.monotonic(), self.clock.now());
        for a in placed {
            self.world.lock().unwrap().dials.push((
                ts,
                a.msisdn.clone(),
                a.attempt_id,
                a.campaign_id,
            ));
            let n = self.calls_of.entry(a.msisdn.clone()).or_default();
            let acts = &self.script[&a.msisdn];
            let act = acts[(*n).min(acts.len() - 1)];
            *n += 1;
            let after = |s: u64| now + Duration::from_secs(s);
            let at_ts = |s: u64| ts + jiff::SignedDuration::from_secs(s as i64);
            let (at, end) = match act {
                Act::Final(code, s) => (after(s), AttemptEnd::from_sip(code, false, at_ts(s))),
                Act::Rings => {
                    let s = a.ring_timeout.as_secs();
                    (after(s), AttemptEnd::from_sip(487, true, at_ts(s)))
                }
                Act::Answers(outcome, s) => {
                    self.store.attempt_answered(a.attempt_id, ts).await.unwrap();
                    if let Some(o) = outcome {
                        assert!(
                            self.store
                                .record_flow_outcome(a.attempt_id, o, None, ts)
                                .await
                                .unwrap()
                        );
                    }
                    (after(s), AttemptEnd::answered(ts, at_ts(s)))
                }
                Act::OptsOut => {
                    self.store.attempt_answered(a.attempt_id, ts).await.unwrap();
                    self.store.opt_out_attempt(a.attempt_id, ts).await.unwrap();
                    (after(20), AttemptEnd::answered(ts, at_ts(20)))
                }
            };
            self.ends.push((
                at,
                CallEnd {
                    campaign_id: a.campaign_id,
                    attempt_id: a.attempt_id,
                    end,
                    at,
                },
            ));
        }
    }

    /// Runs the runtime on the virtual clock until `until` (wall time).
    async fn run_until(&mut self, until: Timestamp) {
        loop {
            let wake = self.dialer.step().await;
            self.script_placed().await;
            let (now, ts) = (self.clock.monotonic(), self.clock.now());
            let stop = now + Duration::try_from(ts.duration_until(until)).unwrap_or_default();
            self.ends.sort_by_key(|e| e.0);
            let next_end = self.ends.first().map(|e| e.0);
            let next = [wake, next_end, Some(stop)]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            if next >= stop && next_end.is_none_or(|e| e > stop) {
                self.clock.advance_to(stop);
                return;
            }
            self.clock.advance_to(next.max(now));
            if next_end == Some(next) {
                let (_, end) = self.ends.remove(0);
                self.dialer.call_ended(end).await;
            }
        }
    }

    fn dials(&self) -> Vec<(Timestamp, String, i64, i64)> {
        self.world.lock().unwrap().dials.clone()
    }

    fn dials_of(&self, msisdn: &str) -> Vec<jiff::civil::DateTime> {
        self.dials()
            .into_iter()
            .filter(|d| d.1 == msisdn)
            .map(|d| local(d.0))
            .collect()
    }
}

fn policy() -> CampaignPolicy {
    CampaignPolicy {
        ring_timeout: Duration::from_secs(30),
        ..CampaignPolicy::for_kind(CampaignKind::Invitation)
    }
}

fn dt(d: i8, h: i8, mi: i8, s: i8) -> jiff::civil::DateTime {
    date(2021, 11, d).at(h, mi, s, 0)
}

#[tokio::test]
async fn calls_only_inside_the_window_and_retries_on_the_policy_schedule() {
    const BUSY: &str = "+84903000001";
    const NOANS: &str = "+84903000002";
    const DECLINE: &str = "+84903000003";
    const OPTOUT: &str = "+84903000004";
    const DONE: &str = "+84903000005";
    // Monday 29 Nov, 19:40 local: 20 minutes of window left today.
    let mut sim = Sim::new(vn(29, 19, 40)).await;
    sim.script.insert(BUSY.into(), vec![Act::Final(486, 5)]);
    sim.script.insert(NOANS.into(), vec![Act::Rings]);
    sim.script.insert(DECLINE.into(), vec![Act::Final(603, 3)]);
    sim.script.insert(OPTOUT.into(), vec![Act::OptsOut]);
    sim.script.insert(
        DONE.into(),
        vec![Act::Answers(Some(FlowOutcome::NotInterested), 15)],
    );
    let mut p = policy();
    p.days = vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri];
    let first = sim
        .campaign("mời", &[BUSY, NOANS, DECLINE, OPTOUT, DONE], p.clone())
        .await;
    // Monday evening and Tuesday.
    sim.run_until(vn(30, 23, 0)).await;

    // Every call started inside 08:00-20:00.
    for (t, _, _, _) in sim.dials() {
        let l = local(t);
        assert!((8..20).contains(&l.hour()), "dialled at {l}");
    }
    // Busy: at once, then the busy retry 10 min after the final, then again — which
    // falls after 20:00, so 08:00 the next morning; three attempts, then done.
    assert_eq!(
        sim.dials_of(BUSY),
        vec![dt(29, 19, 40, 0), dt(29, 19, 50, 5), dt(30, 8, 0, 0)]
    );
    // No answer: our CANCEL after 30 s; the 2 h retry lands outside the window.
    assert_eq!(
        sim.dials_of(NOANS),
        vec![dt(29, 19, 40, 0), dt(30, 8, 0, 0), dt(30, 10, 0, 30)]
    );
    // 603 and the opt-out: once, never again; the answered one completes.
    assert_eq!(sim.dials_of(DECLINE).len(), 1);
    assert_eq!(sim.dials_of(OPTOUT).len(), 1);
    assert_eq!(sim.dials_of(DONE).len(), 1);
    let c = sim.store.campaign(first).await.unwrap().unwrap();
    assert_eq!(c.state, CampaignState::Completed);
    for (m, reason) in [
        (BUSY, ContactEnd::MaxAttempts),
        (NOANS, ContactEnd::MaxAttempts),
        (DECLINE, ContactEnd::Rejected),
        (OPTOUT, ContactEnd::OptedOut),
        (DONE, ContactEnd::Completed),
    ] {
        let contact = sim.store.campaign_contact(first, m).await.unwrap().unwrap();
        assert_eq!(contact.done_reason, Some(reason), "{m}");
    }

    // A later campaign over the target list (created at 23:00, so it first dials at
    // 08:00 on Wednesday) never dials the opted-out number; the others it may.
    let before = sim.dials().len();
    let second = sim.campaign("mời lần 2", &[], p).await;
    sim.run_until(vn_in(12, 1, 9, 0)).await;
    let later: Vec<(jiff::civil::DateTime, String)> = sim.dials()[before..]
        .iter()
        .map(|d| (local(d.0), d.1.clone()))
        .collect();
    let at_eight: Vec<&str> = later
        .iter()
        .filter(|(t, _)| *t == date(2021, 12, 1).at(8, 0, 0, 0))
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(at_eight, vec![BUSY, NOANS, DECLINE, DONE], "{later:?}");
    assert!(
        later.iter().all(|(t, m)| m != OPTOUT && t.hour() >= 8),
        "{later:?}"
    );
    let contacts = sim.store.campaign_contacts(second).await.unwrap();
    assert!(contacts.iter().all(|c| c.msisdn != OPTOUT));
}

#[tokio::test]
async fn a_busy_burst_slows_down_and_gives_the_attempts_back() {
    let mut sim = Sim::new(vn(29, 9, 0)).await;
    let numbers: Vec<String> = (0..12).map(|i| format!("+8490310{i:04}")).collect();
    for n in &numbers {
        sim.script.insert(n.clone(), vec![Act::Final(486, 1)]);
    }
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let mut p = policy();
    p.max_cps = 10.0;
    let id = sim.campaign("burst", &refs, p).await;
    sim.run_until(vn(29, 9, 1)).await;
    // Every contact was dialled once in the first minute (rate halved, not zero), and
    // none of those busy finals was charged: the trunk pushed back, not 12 subscribers.
    let dials = sim.dials();
    assert_eq!(dials.len(), 12, "{dials:?}");
    for n in &numbers {
        let c = sim.store.campaign_contact(id, n).await.unwrap().unwrap();
        assert_eq!(c.attempts_charged, 0, "{n}: {c:?}");
        assert_eq!(c.uncharged, 1, "{n}: {c:?}");
    }
    let attempts = sim.store.campaign_attempts(id).await.unwrap();
    assert!(attempts.iter().all(|a| !a.charged));
}

#[tokio::test]
async fn a_trunk_hold_stops_dialling_is_shown_and_lifts() {
    const N: &str = "+84903000011";
    let mut sim = Sim::new(vn(29, 9, 0)).await;
    sim.script.insert(
        N.into(),
        vec![Act::Answers(Some(FlowOutcome::NotInterested), 5)],
    );
    sim.world.lock().unwrap().trunk = Some(Hold::TrunkNotRegistered);
    let id = sim.campaign("held", &[N], policy()).await;
    sim.run_until(vn(29, 9, 5)).await;
    assert!(sim.dials().is_empty());
    let hold = sim.store.campaign_hold(id).await.unwrap().expect("held");
    assert_eq!(hold.code, "trunk_not_registered");
    assert_eq!(hold.instance, "sim");
    let progress = sim.store.campaign_progress(id, vn(29, 9, 5)).await.unwrap();
    assert_eq!(
        progress.hold.map(|h| h.code),
        Some("trunk_not_registered".into())
    );
    sim.world.lock().unwrap().trunk = None;
    sim.run_until(vn(29, 9, 6)).await;
    assert_eq!(sim.dials_of(N), vec![dt(29, 9, 5, 0)]);
    assert_eq!(sim.store.campaign_hold(id).await.unwrap(), None);
}

#[tokio::test]
async fn outside_the_window_the_hold_says_when_it_opens_and_it_sleeps_till_then() {
    const N: &str = "+84903000021";
    let mut sim = Sim::new(vn(29, 21, 0)).await;
    sim.script.insert(N.into(), vec![Act::Final(603, 1)]);
    let mut p = policy();
    p.calling_windows = vec![
        CallingWindow::try_from("08:00-11:30".to_string()).unwrap(),
        CallingWindow::try_from("13:30-20:00".to_string()).unwrap(),
    ];
    let id = sim.campaign("window", &[N], p).await;
    sim.run_until(vn(29, 23, 0)).await;
    let hold = sim.store.campaign_hold(id).await.unwrap().expect("held");
    assert_eq!(hold.code, "outside_calling_window");
    assert!(
        hold.detail.contains("2021-11-30T01:00:00Z"),
        "{}",
        hold.detail
    );
    sim.run_until(vn(30, 12, 0)).await;
    assert_eq!(sim.dials_of(N), vec![dt(30, 8, 0, 0)]);
}

#[tokio::test]
async fn a_refused_dial_releases_the_claim_and_dials_later() {
    const N: &str = "+84903000031";
    let mut sim = Sim::new(vn(29, 9, 0)).await;
    sim.script.insert(N.into(), vec![Act::Final(486, 2)]);
    sim.world.lock().unwrap().refuse = Some(NotPlaced::NoCapacity);
    let id = sim.campaign("refused", &[N], policy()).await;
    sim.run_until(vn(29, 9, 1)).await;
    let attempts = sim.store.campaign_attempts(id).await.unwrap();
    // The first claim was released (not charged), the second dialled a second later.
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].status, crate::store::AttemptStatus::Released);
    assert!(!attempts[0].charged);
    assert_eq!(sim.dials_of(N), vec![dt(29, 9, 0, 1)]);
    assert_eq!(attempts[1].sip_code, Some(486));
}
