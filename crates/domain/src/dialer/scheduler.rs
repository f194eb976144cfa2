//! `Scheduler`: which running campaign may claim its next contact, and when — the
//! dialer runtime's decisions, sans-IO.
//!
//! The store decides *who* is due (calling windows, retry times, do-not-call, the
//! program's cap); the scheduler decides *whether a claim may be made now*: the campaign
//! is running, nothing holds it (service stopping, trunk down, dialplan missing), the
//! service has room for another outbound call without taking the slots reserved for
//! inbound callers, the campaign's [`Pacer`] allows a start (max concurrent, max CPS,
//! throttling), and the store's last answer said a contact is due by now. It remembers
//! what the store answered (`next_due`, holds such as "outside the calling window until
//! 08:00") so the runtime sleeps until something can change instead of polling the
//! database.
//!
//! Driving it (what `dialer::runtime` does, and the tests with a virtual clock):
//!
//! ```text
//! sync(campaigns from the store), set_trunk(..), set_active_calls(..)
//! loop {
//!     match next(now, ts) {
//!         Next::Claim { campaign_id } => claim in the store, then claimed(..) and, per
//!             attempt, started(..) once the INVITE is handed over (or not_placed(..)),
//!         Next::Wait { until } => sleep until then, a call's end, a trunk change or
//!             the next poll of the campaigns table,
//!     }
//! }
//! a call ended → ended(..) → Ended { throttled, refund } (finish the attempt with
//!     `throttled`; give back the charged attempts in `refund`), then retry_due(..)
//! poll_hold_changes() → what to show supervisors
//! ```
//!
//! Two clocks, as everywhere in `dialer`: `Instant` for pacing, `Timestamp` for due
//! times (wall clock, calling windows). They are passed together and never read here.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::pacer::{Pacer, ThrottleConfig};
use super::policy::CampaignPolicy;
use super::retry::Disposition;
use super::state::CampaignState;

/// Why a running campaign is not dialling. Shown to supervisors (`tongdai campaign
/// show`, later the API) and logged when it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The service is shutting down: no new calls.
    Stopping,
    /// No `[trunk]` is configured: nowhere to send the INVITEs.
    NoTrunk,
    /// The trunk's host name has not resolved.
    TrunkUnresolved,
    /// The trunk is configured to register and is not registered.
    TrunkNotRegistered,
    /// The trunk does not answer OPTIONS (or a TCP connection to it failed).
    TrunkUnreachable,
    /// The campaign's dialplan is not loaded (removed or broken by a reload).
    DialplanMissing(String),
    /// Outside the policy's calling windows; `opens` is the next opening.
    OutsideCallingWindow { opens: Option<Timestamp> },
    /// Invitations: the program's places are all taken.
    CapReached,
    /// Invitations: outside the program's registration period.
    RegistrationClosed,
    /// The store failed the last claim (logged); retried after a pause.
    StoreError,
    /// The media workers send RTP too far behind their frame slots (`rtp.max_send_lag`):
    /// the box is out of CPU, and another call would degrade every call's audio.
    MediaOverloaded,
}

impl Hold {
    /// A stable code (what the store keeps and the API will show).
    pub fn code(&self) -> &'static str {
        match self {
            Hold::Stopping => "stopping",
            Hold::NoTrunk => "no_trunk",
            Hold::TrunkUnresolved => "trunk_unresolved",
            Hold::TrunkNotRegistered => "trunk_not_registered",
            Hold::TrunkUnreachable => "trunk_unreachable",
            Hold::DialplanMissing(_) => "dialplan_missing",
            Hold::OutsideCallingWindow { .. } => "outside_calling_window",
            Hold::CapReached => "cap_reached",
            Hold::RegistrationClosed => "registration_closed",
            Hold::StoreError => "store_error",
            Hold::MediaOverloaded => "media_overloaded",
        }
    }

    /// Holds that only the store can lift (they are re-checked by claiming again when
    /// the campaign is due), as opposed to the runtime's own (trunk, dialplan, stop).
    fn is_store_hold(&self) -> bool {
        matches!(
            self,
            Hold::OutsideCallingWindow { .. }
                | Hold::CapReached
                | Hold::RegistrationClosed
                | Hold::StoreError
        )
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Stopping => f.write_str("stopping: the service is shutting down"),
            Hold::NoTrunk => f.write_str("no_trunk: no [trunk] is configured"),
            Hold::TrunkUnresolved => {
                f.write_str("trunk_unresolved: the trunk host has not resolved")
            }
            Hold::TrunkNotRegistered => {
                f.write_str("trunk_not_registered: the trunk registration is not active")
            }
            Hold::TrunkUnreachable => f.write_str("trunk_unreachable: the trunk does not answer"),
            Hold::DialplanMissing(name) => {
                write!(f, "dialplan_missing: dialplan {name:?} is not loaded")
            }
            Hold::OutsideCallingWindow { opens: Some(t) } => {
                write!(f, "outside_calling_window: opens {t}")
            }
            Hold::OutsideCallingWindow { opens: None } => {
                f.write_str("outside_calling_window: no calling window left")
            }
            Hold::CapReached => f.write_str("cap_reached: all places of the program are taken"),
            Hold::RegistrationClosed => {
                f.write_str("registration_closed: outside the registration period")
            }
            Hold::StoreError => f.write_str("store_error: the last claim failed; retrying"),
            Hold::MediaOverloaded => f.write_str(
                "media_overloaded: RTP is sent behind its frame slots; no new calls until it catches up",
            ),
        }
    }
}

/// Tuning of the scheduler. `Default` is what the service uses, except the ceiling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// No outbound call starts while this many calls (inbound and outbound) are up:
    /// `sip.max_calls − dialer.inbound_reserve`. Inbound callers can always use the
    /// slots above it, so campaigns never starve the hotline.
    pub outbound_ceiling: u32,
    /// A claim found nothing although the store said contacts were due (another
    /// instance holds them, or they were all skipped): ask again after this.
    pub retry_empty: Duration,
    /// Nothing is due: ask the store again at least this often anyway (another
    /// instance or an operator may have changed the contacts).
    pub recheck: Duration,
    /// The store failed: ask again after this.
    pub error_backoff: Duration,
    /// Guard added to the pacer's one-second window (see `Pacer::with_guard`).
    pub pacing_guard: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            outbound_ceiling: u32::MAX,
            retry_empty: Duration::from_secs(1),
            recheck: Duration::from_secs(30),
            error_backoff: Duration::from_secs(5),
            pacing_guard: Duration::from_millis(100),
        }
    }
}

/// A campaign as the store lists it.
#[derive(Clone, Debug)]
pub struct CampaignInfo {
    pub id: i64,
    pub state: CampaignState,
    pub policy: CampaignPolicy,
    /// Whether `policy.dialplan` is among the loaded dialplans.
    pub dialplan_loaded: bool,
}

/// What the runtime should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Claim one due contact of this campaign (then report [`Scheduler::claimed`]).
    Claim { campaign_id: i64 },
    /// Nothing to do before `until` (`None`: until an event — a call ends, the trunk
    /// changes, the next poll of the campaigns table).
    Wait { until: Option<Instant> },
}

/// Why a claimed attempt's INVITE was not sent (the runtime released the claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotPlaced {
    /// No RTP port, or the SIP layer is at `sip.max_calls`.
    NoCapacity,
    /// The trunk cannot take calls (unresolved, no trunk).
    Trunk,
    /// The dialplan disappeared between the check and the claim.
    Dialplan,
    /// The service is shutting down.
    Stopping,
    /// The store did not take `attempt_started` (logged).
    Store,
    /// SIP refused the number itself: finished as an invalid number, never retried.
    Invalid,
}

/// What to do about a call that ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ended {
    /// Finish the attempt with `AttemptEnd::throttled` set: a busy/congested final
    /// while the trunk is pushing back is not the subscriber's answer.
    pub throttled: bool,
    /// Attempts of the burst that triggered throttling, already finished as charged:
    /// give them back (`Store::refund_attempt`).
    pub refund: Vec<i64>,
}

#[derive(Debug)]
struct Run {
    state: CampaignState,
    dialplan: String,
    dialplan_loaded: bool,
    pacer: Pacer,
    /// The store's next due time for this campaign (≤ now: claim now).
    due: Timestamp,
    /// The store's reason for not claiming at the last try.
    store_hold: Option<Hold>,
    /// Attempts in flight (INVITE handed over, not ended).
    calls: BTreeSet<i64>,
    /// Finals within the throttle window: (when, attempt, busy-or-congested).
    recent: VecDeque<(Instant, i64, bool)>,
    /// The hold last returned by `poll_hold_changes`.
    reported: Option<Hold>,
}

/// The dialer's decisions over every campaign (see the module doc).
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    runs: BTreeMap<i64, Run>,
    trunk: Option<Hold>,
    draining: bool,
    /// All calls up (inbound and outbound) as last reported.
    active_calls: u32,
    /// Outbound calls in flight, all campaigns.
    outbound: u32,
    /// Round robin: the campaign that claimed last.
    last: Option<i64>,
    /// Holds of campaigns that stopped running, still to report as lifted.
    lifted: Vec<i64>,
    throttle_window: Duration,
}

impl Scheduler {
    pub fn new(cfg: SchedulerConfig) -> Scheduler {
        Scheduler {
            cfg,
            runs: BTreeMap::new(),
            trunk: None,
            draining: false,
            active_calls: 0,
            outbound: 0,
            last: None,
            lifted: Vec::new(),
            throttle_window: ThrottleConfig::default().window,
        }
    }

    /// The campaigns as the store lists them now. A campaign that (re)enters `running`
    /// is due at once; one that left it stops claiming (its calls finish) and is
    /// forgotten once its last call has ended.
    pub fn sync(&mut self, ts: Timestamp, campaigns: &[CampaignInfo]) {
        let listed: BTreeSet<i64> = campaigns.iter().map(|c| c.id).collect();
        for c in campaigns {
            match self.runs.get_mut(&c.id) {
                Some(run) => {
                    if run.state != CampaignState::Running && c.state == CampaignState::Running {
                        run.due = ts;
                        run.store_hold = None;
                    }
                    run.state = c.state;
                    run.dialplan_loaded = c.dialplan_loaded;
                    run.dialplan = c.policy.dialplan.clone();
                }
                None if c.state == CampaignState::Running => {
                    let pacer = Pacer::new(c.policy.max_concurrent, c.policy.max_cps)
                        .with_guard(self.cfg.pacing_guard);
                    self.runs.insert(
                        c.id,
                        Run {
                            state: c.state,
                            dialplan: c.policy.dialplan.clone(),
                            dialplan_loaded: c.dialplan_loaded,
                            pacer,
                            due: ts,
                            store_hold: None,
                            calls: BTreeSet::new(),
                            recent: VecDeque::new(),
                            reported: None,
                        },
                    );
                }
                None => {}
            }
        }
        for (id, run) in self.runs.iter_mut() {
            if !listed.contains(id) {
                // Gone from the table (cannot happen today): stop claiming.
                run.state = CampaignState::Stopped;
            }
        }
        self.forget_idle();
    }

    /// A campaign's state as the store reported it at claim time.
    pub fn set_state(&mut self, campaign_id: i64, state: CampaignState) {
        if let Some(run) = self.runs.get_mut(&campaign_id) {
            run.state = state;
        }
        self.forget_idle();
    }

    /// The trunk's condition: `None` when it can take calls.
    pub fn set_trunk(&mut self, hold: Option<Hold>) {
        self.trunk = hold;
    }

    /// Calls up right now, inbound and outbound (the call log's count).
    pub fn set_active_calls(&mut self, n: u32) {
        self.active_calls = n;
    }

    /// Stop claiming for good (SIGTERM); calls in flight still end normally.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Outbound calls in flight, all campaigns.
    pub fn in_flight(&self) -> u32 {
        self.outbound
    }

    /// Campaigns being dialled or still finishing calls.
    pub fn campaigns(&self) -> impl Iterator<Item = i64> + '_ {
        self.runs.keys().copied()
    }

    /// What to do at `now` / `ts` (see [`Next`]). Campaigns take turns.
    pub fn next(&mut self, now: Instant, ts: Timestamp) -> Next {
        if self.draining || self.trunk.is_some() {
            return Next::Wait { until: None };
        }
        if self.active_calls.max(self.outbound) >= self.cfg.outbound_ceiling {
            // A call ending (ours or an inbound one) opens a slot.
            return Next::Wait { until: None };
        }
        let ids: Vec<i64> = match self.last {
            Some(last) => self
                .runs
                .range(last + 1..)
                .chain(self.runs.range(..=last))
                .map(|(id, _)| *id)
                .collect(),
            None => self.runs.keys().copied().collect(),
        };
        let mut until: Option<Instant> = None;
        let mut wake = |at: Instant| until = Some(until.map_or(at, |u| u.min(at)));
        for id in ids {
            let Some(run) = self.runs.get_mut(&id) else {
                continue;
            };
            if run.state != CampaignState::Running || !run.dialplan_loaded {
                continue;
            }
            if run.due > ts {
                let ahead = ts.duration_until(run.due);
                let ahead = Duration::try_from(ahead).unwrap_or(Duration::ZERO);
                wake(now + ahead);
                continue;
            }
            if !run.pacer.poll_dial(now) {
                if let Some(at) = run.pacer.poll_timeout() {
                    wake(at.max(now));
                }
                continue;
            }
            self.last = Some(id);
            return Next::Claim { campaign_id: id };
        }
        Next::Wait { until }
    }

    /// The store's answer to a claim: how many attempts it claimed (each then
    /// [`Scheduler::started`] or [`Scheduler::not_placed`]), why it held, and when the
    /// next contact is due.
    pub fn claimed(
        &mut self,
        campaign_id: i64,
        ts: Timestamp,
        claimed: usize,
        held: Option<Hold>,
        next_due: Option<Timestamp>,
    ) {
        let cfg = self.cfg;
        let Some(run) = self.runs.get_mut(&campaign_id) else {
            return;
        };
        let after = |d: Duration| ts.saturating_add(d).unwrap_or(Timestamp::MAX);
        run.due = match &held {
            Some(Hold::OutsideCallingWindow { opens: Some(t) }) => (*t).max(ts),
            Some(_) => after(cfg.recheck),
            None => match next_due {
                Some(t) if t > ts => t,
                Some(_) if claimed > 0 => ts,
                // Due, yet nothing could be claimed: another instance holds them.
                Some(_) => after(cfg.retry_empty),
                None => after(cfg.recheck),
            },
        };
        run.store_hold = held;
    }

    /// The claim failed (store error, logged by the runtime).
    pub fn claim_failed(&mut self, campaign_id: i64, ts: Timestamp) {
        let backoff = self.cfg.error_backoff;
        if let Some(run) = self.runs.get_mut(&campaign_id) {
            run.due = ts.saturating_add(backoff).unwrap_or(Timestamp::MAX);
            run.store_hold = Some(Hold::StoreError);
        }
    }

    /// The INVITE of `attempt_id` was handed to SIP; `now` is taken *after* the hand-over
    /// returned, so the pacer's record is never earlier than the INVITE.
    pub fn started(&mut self, campaign_id: i64, attempt_id: i64, now: Instant) {
        let Some(run) = self.runs.get_mut(&campaign_id) else {
            return;
        };
        run.pacer.call_started(now);
        run.calls.insert(attempt_id);
        self.outbound += 1;
        self.active_calls += 1;
    }

    /// A claimed attempt was released without an INVITE.
    pub fn not_placed(&mut self, campaign_id: i64, ts: Timestamp, why: NotPlaced) {
        let retry = self.cfg.retry_empty;
        let Some(run) = self.runs.get_mut(&campaign_id) else {
            return;
        };
        match why {
            NotPlaced::Dialplan => run.dialplan_loaded = false,
            NotPlaced::Stopping => self.draining = true,
            // The released contact is due again: try again shortly (not at once, the
            // cause is likely still there).
            NotPlaced::NoCapacity | NotPlaced::Trunk | NotPlaced::Store | NotPlaced::Invalid => {
                run.due = ts.saturating_add(retry).unwrap_or(Timestamp::MAX);
            }
        }
    }

    /// A call of `campaign_id` ended at `now` with `disposition` (what the runtime
    /// reports to the store right after, with [`Ended::throttled`]).
    pub fn ended(
        &mut self,
        campaign_id: i64,
        attempt_id: i64,
        now: Instant,
        disposition: Disposition,
    ) -> Ended {
        let window = self.throttle_window;
        let Some(run) = self.runs.get_mut(&campaign_id) else {
            return Ended::default();
        };
        if run.calls.remove(&attempt_id) {
            run.pacer.call_ended(now);
            self.outbound = self.outbound.saturating_sub(1);
            self.active_calls = self.active_calls.saturating_sub(1);
        }
        let was = run.pacer.is_throttling();
        run.pacer.observe(now, disposition);
        let is = run.pacer.is_throttling();
        while let Some(&(t, _, _)) = run.recent.front() {
            if t + window <= now {
                run.recent.pop_front();
            } else {
                break;
            }
        }
        let pressure = disposition.is_trunk_pressure();
        let mut out = Ended {
            throttled: is && pressure,
            refund: Vec::new(),
        };
        if is && !was {
            // This final tipped the trunk into throttling: the burst's earlier finals
            // were not the subscribers' answers either.
            out.refund = run
                .recent
                .iter()
                .filter(|(_, _, p)| *p)
                .map(|(_, a, _)| *a)
                .collect();
            run.recent.clear();
            tracing::warn!(
                campaign = campaign_id,
                cps = run.pacer.effective_cps(),
                "trunk pushing back (486/503 burst): slowing the campaign down"
            );
        } else {
            run.recent.push_back((now, attempt_id, pressure));
        }
        self.forget_idle();
        out
    }

    /// The store rescheduled a contact of `campaign_id` for `not_before`.
    pub fn retry_due(&mut self, campaign_id: i64, not_before: Timestamp) {
        if let Some(run) = self.runs.get_mut(&campaign_id) {
            run.due = run.due.min(not_before);
        }
    }

    /// The hold of a campaign right now (`None` when it dials, or is not running).
    pub fn hold(&self, campaign_id: i64) -> Option<Hold> {
        let run = self.runs.get(&campaign_id)?;
        self.hold_of(run)
    }

    fn hold_of(&self, run: &Run) -> Option<Hold> {
        if run.state != CampaignState::Running {
            return None;
        }
        if self.draining {
            return Some(Hold::Stopping);
        }
        if let Some(h) = &self.trunk {
            return Some(h.clone());
        }
        if !run.dialplan_loaded {
            return Some(Hold::DialplanMissing(run.dialplan.clone()));
        }
        run.store_hold.clone().filter(Hold::is_store_hold)
    }

    /// Holds that changed since the last call: `(campaign, Some(hold))` when one
    /// starts or changes, `(campaign, None)` when it is lifted.
    pub fn poll_hold_changes(&mut self) -> Vec<(i64, Option<Hold>)> {
        let mut out: Vec<(i64, Option<Hold>)> =
            self.lifted.drain(..).map(|id| (id, None)).collect();
        let current: Vec<(i64, Option<Hold>)> = self
            .runs
            .iter()
            .map(|(id, run)| (*id, self.hold_of(run)))
            .collect();
        for (id, hold) in current {
            if let Some(run) = self.runs.get_mut(&id)
                && run.reported != hold
            {
                run.reported = hold.clone();
                out.push((id, hold));
            }
        }
        out
    }

    /// Drops campaigns that no longer run and have no call in flight.
    fn forget_idle(&mut self) {
        let idle: Vec<i64> = self
            .runs
            .iter()
            .filter(|(_, r)| r.state != CampaignState::Running && r.calls.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if let Some(run) = self.runs.remove(&id)
                && run.reported.is_some()
            {
                self.lifted.push(id);
            }
        }
    }
}

#[cfg(test)]
mod tests;
