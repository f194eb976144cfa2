//! The dialer runtime: the I/O shell around [`Scheduler`] — the campaigns table, the
//! claims, the INVITEs and the attempts' ends.
//!
//! One task ([`Dialer::run`]) owns the scheduler. Every `poll_interval` it reads the
//! campaigns table (so `tongdai campaign start|pause|resume|stop`, run against the store
//! while the service runs, takes effect within a second) and asks the [`Placer`] about
//! the trunk and the calls up. Whenever the scheduler says a campaign may dial, it
//! claims one due contact in the store, writes `attempt_started`, and hands the INVITE
//! to the placer (the call layer: `call::outbound::SipPlacer`), which runs the call in
//! its own task and reports the end on a channel. The end goes back through the
//! scheduler (throttling) into `finish_attempt` (and `refund_attempt` for a burst).
//!
//! Claims, starts and finishes are done by this one task, one after the other: the
//! pacer's record of a start is taken after the INVITE was handed over, so its limits
//! hold for the INVITEs as the trunk sees them (see `Pacer::with_guard`); and the
//! database sees at most one dialer write at a time, however many calls are up.
//!
//! The clock is injected ([`crate::clock::Clock`]): the service uses the system clocks; the tests drive
//! [`Dialer::sync`], [`Dialer::step`] and [`Dialer::call_ended`] on a virtual clock with
//! a real store.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::store::{
    AttemptEnd, ClaimHold, ClaimRequest, ClaimedAttempt, RecoveredAttempt, Store, StoreError,
};
use crate::telemetry::mask_number;
use tongdai_domain::dialer::retry::{Disposition, RetryDecision};
use tongdai_domain::dialer::scheduler::{
    CampaignInfo, Hold, Next, NotPlaced, Scheduler, SchedulerConfig,
};
use tongdai_domain::program::ProgramConfig;

/// How the runtime runs.
#[derive(Clone, Debug)]
pub struct DialerConfig {
    /// This service instance's stable name: claims carry it, and at start-up only its
    /// own `dialing` attempts are recovered (`[dialer] instance`, default the host name).
    pub instance: String,
    /// How often the campaigns table is read.
    pub poll_interval: Duration,
    pub scheduler: SchedulerConfig,
    /// The program's rules (invitations hold when the cap is reached or the period is
    /// over).
    pub program: Arc<ProgramConfig>,
    /// Host part of the Call-IDs we make (`<random>@<host>`).
    pub call_id_host: String,
}

/// How a campaign call ended, reported by the call task.
#[derive(Clone, Debug)]
pub struct CallEnd {
    pub campaign_id: i64,
    pub attempt_id: i64,
    /// What SIP (and the flow) said; `throttled` is set by the runtime.
    pub end: AttemptEnd,
    /// When the call ended (monotonic), for the pacer.
    pub at: Instant,
}

/// What the runtime needs from the call layer: the INVITE and the call after it.
pub trait Placer: Send {
    /// Everything a call needs that can fail before an INVITE exists.
    type Prepared: Send;

    /// Whether a dialplan of this name is loaded (else the campaign holds).
    fn dialplan_loaded(&self, name: &str) -> bool;

    /// Whether calls can be placed at all (the trunk's condition, and whether the box
    /// has CPU for more media): `None` when they can.
    fn trunk_hold(&self) -> Option<Hold>;

    /// Calls up now, inbound and outbound.
    fn active_calls(&self) -> u32;

    /// The dialplan, an RTP port, our SDP offer: checked before `attempt_started`.
    fn prepare(&mut self, attempt: &ClaimedAttempt) -> Result<Self::Prepared, NotPlaced>;

    /// Hands the INVITE to SIP with the claimed Call-ID. `Ok`: it is on its way and the
    /// call's end will come on `ends` (exactly once). `Err`: nothing was sent.
    fn dial(
        &mut self,
        prepared: Self::Prepared,
        ends: mpsc::UnboundedSender<CallEnd>,
    ) -> impl Future<Output = Result<(), NotPlaced>> + Send;
}

/// The runtime (see the module doc).
pub struct Dialer<P: Placer> {
    store: Store,
    placer: P,
    sched: Scheduler,
    cfg: DialerConfig,
    clock: SharedClock,
    ends_tx: mpsc::UnboundedSender<CallEnd>,
}

/// The running dialer task, for `App::shutdown`.
pub struct DialerHandle {
    stop: CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

impl DialerHandle {
    /// Stops claiming; the task ends once every call in flight has ended and its
    /// attempt is finished (at most `wait`).
    pub async fn shutdown(self, wait: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(wait, self.join).await.is_err() {
            tracing::warn!("dialer: calls still in flight at the end of the shutdown wait");
        }
    }

    /// Stops claiming at once (calls in flight continue); see `shutdown`.
    pub fn drain(&self) {
        self.stop.cancel();
    }
}

impl<P: Placer + 'static> Dialer<P> {
    /// A dialer and the receiver of its calls' ends (give it to [`Dialer::run`]).
    pub fn new(
        store: Store,
        placer: P,
        cfg: DialerConfig,
        clock: SharedClock,
    ) -> (Dialer<P>, mpsc::UnboundedReceiver<CallEnd>) {
        let (ends_tx, ends_rx) = mpsc::unbounded_channel();
        let sched = Scheduler::new(cfg.scheduler);
        (
            Dialer {
                store,
                placer,
                sched,
                cfg,
                clock,
                ends_tx,
            },
            ends_rx,
        )
    }

    /// At start-up, before the first claim: resolves the attempts this instance left
    /// `dialing` (crash, `kill -9`) and clears the holds it had reported.
    pub async fn recover(&self) -> Result<Vec<RecoveredAttempt>, StoreError> {
        let ts = self.clock.now();
        let recovered = self.store.recover_dialing(&self.cfg.instance, ts).await?;
        if !recovered.is_empty() {
            tracing::warn!(
                instance = %self.cfg.instance,
                attempts = recovered.len(),
                "recovered campaign attempts left dialing by the previous run"
            );
        }
        self.store.clear_campaign_holds(&self.cfg.instance).await?;
        Ok(recovered)
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.sched
    }

    /// Stop claiming; calls in flight end normally.
    pub fn drain(&mut self) {
        self.sched.drain();
    }

    /// Reads the campaigns table into the scheduler.
    pub async fn sync(&mut self) -> Result<(), StoreError> {
        let ts = self.clock.now();
        let rows = self.store.campaigns().await?;
        let infos: Vec<CampaignInfo> = rows
            .into_iter()
            .map(|c| CampaignInfo {
                id: c.id,
                state: c.state,
                dialplan_loaded: self.placer.dialplan_loaded(&c.dialplan),
                policy: c.policy,
            })
            .collect();
        self.sched.sync(ts, &infos);
        Ok(())
    }

    /// Claims and dials whatever may be dialled now; returns when the scheduler wants
    /// to be asked again (`None`: on the next event or poll).
    pub async fn step(&mut self) -> Option<Instant> {
        self.sched.set_trunk(self.placer.trunk_hold());
        self.sched.set_active_calls(self.placer.active_calls());
        loop {
            let (now, ts) = (self.clock.monotonic(), self.clock.now());
            match self.sched.next(now, ts) {
                Next::Claim { campaign_id } => self.claim_one(campaign_id).await,
                Next::Wait { until } => {
                    self.report_holds().await;
                    return until;
                }
            }
        }
    }

    async fn claim_one(&mut self, campaign_id: i64) {
        let ts = self.clock.now();
        let host = self.cfg.call_id_host.clone();
        let request = ClaimRequest {
            campaign_id,
            instance: &self.cfg.instance,
            limit: 1,
            now: ts,
            program: &self.cfg.program,
        };
        let claims = match self
            .store
            .claim_due(&request, || new_call_id(campaign_id, &host))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(campaign = campaign_id, error = %e, "claiming failed; retrying later");
                self.sched.claim_failed(campaign_id, ts);
                return;
            }
        };
        let held = match claims.held {
            None => None,
            Some(ClaimHold::NotRunning(state)) => {
                self.sched.set_state(campaign_id, state);
                None
            }
            Some(ClaimHold::OutsideCallingWindow { opens }) => {
                Some(Hold::OutsideCallingWindow { opens })
            }
            Some(ClaimHold::CapReached) => Some(Hold::CapReached),
            Some(ClaimHold::RegistrationClosed) => Some(Hold::RegistrationClosed),
        };
        self.sched.claimed(
            campaign_id,
            ts,
            claims.attempts.len(),
            held,
            claims.next_due,
        );
        for attempt in claims.attempts {
            self.place(attempt).await;
        }
    }

    /// `attempt_started`, then the INVITE; a claim that cannot be dialled is released.
    async fn place(&mut self, attempt: ClaimedAttempt) {
        let campaign_id = attempt.campaign_id;
        let prepared = match self.placer.prepare(&attempt) {
            Ok(p) => p,
            Err(why) => return self.not_placed(&attempt, why).await,
        };
        let ts = self.clock.now();
        match self.store.attempt_started(attempt.attempt_id, ts).await {
            Ok(true) => {}
            Ok(false) => {
                // Finished or released meanwhile (cannot happen for our own claim):
                // never dial an attempt that is not ours to dial.
                tracing::error!(
                    attempt = attempt.attempt_id,
                    "claimed attempt no longer dialing; not dialled"
                );
                self.sched.not_placed(campaign_id, ts, NotPlaced::Store);
                return;
            }
            Err(e) => {
                tracing::error!(attempt = attempt.attempt_id, error = %e, "attempt_started failed; not dialled");
                return self.not_placed(&attempt, NotPlaced::Store).await;
            }
        }
        tracing::info!(campaign = campaign_id, attempt = attempt.attempt_id,
            attempt_no = attempt.attempt_no, call_id = %attempt.call_id,
            callee = %mask_number(&attempt.msisdn), "dialling");
        match self.placer.dial(prepared, self.ends_tx.clone()).await {
            Ok(()) => {
                let now = self.clock.monotonic();
                self.sched.started(campaign_id, attempt.attempt_id, now);
            }
            Err(why) => self.not_placed(&attempt, why).await,
        }
    }

    async fn not_placed(&mut self, attempt: &ClaimedAttempt, why: NotPlaced) {
        let ts = self.clock.now();
        if why == NotPlaced::Invalid {
            // A number SIP cannot even address: never dialled again.
            let end = AttemptEnd {
                disposition: Disposition::InvalidNumber,
                sip_code: None,
                reason: Some("not a dialable number".into()),
                answered_at: None,
                ended_at: ts,
                throttled: false,
            };
            if let Err(e) = self.store.finish_attempt(attempt.attempt_id, &end).await {
                tracing::error!(attempt = attempt.attempt_id, error = %e, "finishing an undialable attempt failed");
            }
            self.sched.not_placed(attempt.campaign_id, ts, why);
            return;
        }
        tracing::warn!(
            campaign = attempt.campaign_id,
            attempt = attempt.attempt_id,
            ?why,
            "claimed contact not dialled; claim released"
        );
        if let Err(e) = self.store.release_attempt(attempt.attempt_id, ts).await {
            tracing::error!(attempt = attempt.attempt_id, error = %e, "releasing the claim failed (recovered at the next start)");
        }
        self.sched.not_placed(attempt.campaign_id, ts, why);
    }

    /// A call ended: the scheduler's view (pacer, throttling), then the store's
    /// (`finish_attempt`, refunds), then the contact's next due time.
    pub async fn call_ended(&mut self, call: CallEnd) {
        let decision = self.sched.ended(
            call.campaign_id,
            call.attempt_id,
            call.at,
            call.end.disposition,
        );
        let mut end = call.end;
        end.throttled = decision.throttled;
        let mut tries = 0;
        let finished = loop {
            tries += 1;
            match self.store.finish_attempt(call.attempt_id, &end).await {
                Err(StoreError::Database(e)) if tries < 3 => {
                    tracing::warn!(attempt = call.attempt_id, error = %e, "finish_attempt failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                other => break other,
            }
        };
        match finished {
            Ok(f) => {
                tracing::info!(campaign = call.campaign_id, attempt = call.attempt_id,
                    disposition = end.disposition.as_str(), sip = ?end.sip_code,
                    outcome = ?f.attempt.outcome, charged = f.attempt.charged,
                    decision = ?f.decision, "attempt finished");
                if let RetryDecision::Retry { not_before } = f.decision {
                    self.sched.retry_due(call.campaign_id, not_before);
                }
            }
            Err(e) => {
                // Left `dialing`: the next start resolves it from the call record.
                tracing::error!(attempt = call.attempt_id, error = %e, "finish_attempt failed");
            }
        }
        let ts = self.clock.now();
        for attempt in decision.refund {
            match self.store.refund_attempt(attempt, ts).await {
                Ok(Some(RetryDecision::Retry { not_before })) => {
                    self.sched.retry_due(call.campaign_id, not_before);
                }
                Ok(_) => {}
                Err(e) => tracing::error!(attempt, error = %e, "refund_attempt failed"),
            }
        }
    }

    async fn report_holds(&mut self) {
        let ts = self.clock.now();
        for (campaign_id, hold) in self.sched.poll_hold_changes() {
            match &hold {
                Some(h) => tracing::warn!(campaign = campaign_id, hold = %h, "campaign held"),
                None => tracing::info!(campaign = campaign_id, "campaign dialling"),
            }
            let text = hold.as_ref().map(|h| (h.code(), h.to_string()));
            let row = text.as_ref().map(|(c, d)| (*c, d.as_str()));
            if let Err(e) = self
                .store
                .set_campaign_hold(campaign_id, &self.cfg.instance, row, ts)
                .await
            {
                tracing::error!(campaign = campaign_id, error = %e, "could not record the hold");
            }
        }
    }

    /// Runs until `stop` and then until every call in flight has ended and its attempt
    /// is finished. Call [`Dialer::recover`] first.
    pub async fn run(
        mut self,
        mut ends: mpsc::UnboundedReceiver<CallEnd>,
        stop: CancellationToken,
    ) {
        let mut next_sync = self.clock.monotonic();
        loop {
            let now = self.clock.monotonic();
            if now >= next_sync && !self.sched.is_draining() {
                if let Err(e) = self.sync().await {
                    tracing::error!(error = %e, "reading the campaigns failed");
                }
                next_sync = now + self.cfg.poll_interval;
            }
            let wake = self.step().await;
            if self.sched.is_draining() && self.sched.in_flight() == 0 {
                break;
            }
            let until = wake.map_or(next_sync, |w| w.min(next_sync));
            // A wait measured on the injected clock: a clock that stands still (a test's)
            // makes the dialer wait a poll interval at a time, never spin.
            let wait = until.saturating_duration_since(self.clock.monotonic());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                Some(end) = ends.recv() => {
                    self.call_ended(end).await;
                    while let Ok(end) = ends.try_recv() {
                        self.call_ended(end).await;
                    }
                }
                _ = stop.cancelled(), if !self.sched.is_draining() => {
                    tracing::info!(in_flight = self.sched.in_flight(), "dialer: no new calls (shutting down)");
                    self.sched.drain();
                }
            }
        }
        self.report_holds().await;
        tracing::info!("dialer stopped");
    }

    /// Runs [`Dialer::run`] in a task (after [`Dialer::recover`]).
    pub fn spawn(self, ends: mpsc::UnboundedReceiver<CallEnd>) -> DialerHandle {
        let stop = CancellationToken::new();
        let join = tokio::spawn(self.run(ends, stop.clone()));
        DialerHandle { stop, join }
    }
}

/// A fresh Call-ID for a claim: random, with the campaign for the eye.
fn new_call_id(campaign_id: i64, host: &str) -> String {
    format!(
        "c{campaign_id}-{:016x}{:08x}@{host}",
        rand::random::<u64>(),
        rand::random::<u32>()
    )
}

/// `Disposition` of a call that never connected, from the SIP layer's final: `status`,
/// who ended it, and whether *we* cancelled because the ring timeout expired.
pub fn failed_disposition(status: u16, failure: Failure, ring_timed_out: bool) -> Disposition {
    match failure {
        Failure::Final => Disposition::from_sip(status, false),
        // Our CANCEL: a no-answer when the ring timeout fired (also when an answer
        // crossed it and was hung up), otherwise stop/shutdown — not the subscriber's.
        Failure::Cancelled if ring_timed_out => Disposition::NoAnswer,
        Failure::Cancelled => Disposition::Canceled,
        Failure::RangTooLong => Disposition::NoAnswer,
        // No response at all, or no connection: the trunk, not the subscriber.
        Failure::NoResponse | Failure::Unreachable => Disposition::Congested,
    }
}

/// Who ended an unanswered call (the SIP layer's `FailCause`, without naming `sip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A final response from the far end or the trunk.
    Final,
    /// We cancelled.
    Cancelled,
    /// Rang for Timer C.
    RangTooLong,
    /// No response within Timer B.
    NoResponse,
    /// The trunk could not be reached.
    Unreachable,
}

#[cfg(test)]
mod tests;
