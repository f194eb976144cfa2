//! The 9090 program's actions: what a dialplan's `action` node runs. They read and write
//! the registration store and return an outcome (the dialplan branches on it) plus
//! variables (its prompts speak them). Every failure becomes the outcome `error`, so a
//! caller always hears a message instead of silence.
//!
//! Inbound (the 9090 line) and outbound (campaign calls: `dialplans/invite.toml`,
//! `dialplans/survey.toml`) share `check_eligibility` and `register`; on an outbound
//! call their answer is also recorded as the attempt's flow outcome (registered,
//! already registered, cap full…), so the campaign never calls back someone it cannot
//! help. The outbound-only actions (`not_interested`, `call_later`, `opt_out`, the
//! survey's) need the call's campaign attempt and answer `error` without one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::Timestamp;

use crate::clock::SharedClock;
use crate::store::{
    CallLaterRequest, ClaimedAttempt, FlowOutcome, NewRegistration, RegisterOutcome, Store,
    SurveyQuestion,
};
use crate::telemetry::mask_number;
use tongdai_domain::program::{self, Channel, Eligibility, Group, ProgramConfig, Status, Window};

pub const CHECK_ELIGIBILITY: &str = "check_eligibility";
pub const REGISTER: &str = "register";
/// Invitation: the subscriber is not interested.
pub const NOT_INTERESTED: &str = "not_interested";
/// Invitation: call me later; reads the variable `call_later` ("2h", "tomorrow", or
/// unset/empty for the campaign's default delay).
pub const CALL_LATER: &str = "call_later";
/// Never call me again: the do-not-call list, for every campaign.
pub const OPT_OUT: &str = "opt_out";
/// Survey answers; each reads the variable of its question's name.
pub const SURVEY_SATISFACTION: &str = "survey_satisfaction";
pub const SURVEY_RESOLVED: &str = "survey_resolved";
pub const SURVEY_RECOMMEND: &str = "survey_recommend";
/// All questions answered: the registration moves to `surveyed`.
pub const SURVEY_COMPLETE: &str = "survey_complete";

/// Every action with every outcome it can return; `tongdai check` verifies that each
/// dialplan handles them all.
pub fn catalogue() -> HashMap<String, Vec<String>> {
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    HashMap::from([
        (
            CHECK_ELIGIBILITY.to_string(),
            list(&[
                "eligible",
                "not_eligible",
                "window_not_open",
                "window_closed",
                "cap_full",
                "already_registered",
                "error",
            ]),
        ),
        (
            REGISTER.to_string(),
            list(&[
                "registered",
                "already_registered",
                "cap_full",
                "window_not_open",
                "window_closed",
                "not_eligible",
                "error",
            ]),
        ),
        (NOT_INTERESTED.to_string(), list(&["recorded", "error"])),
        (CALL_LATER.to_string(), list(&["scheduled", "error"])),
        (OPT_OUT.to_string(), list(&["opted_out", "error"])),
        (SURVEY_SATISFACTION.to_string(), list(&["saved", "error"])),
        (SURVEY_RESOLVED.to_string(), list(&["saved", "error"])),
        (SURVEY_RECOMMEND.to_string(), list(&["saved", "error"])),
        (SURVEY_COMPLETE.to_string(), list(&["completed", "error"])),
    ])
}

/// What an action answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionResult {
    pub outcome: String,
    pub vars: Vec<(String, String)>,
}

impl ActionResult {
    fn new(outcome: &str) -> Self {
        ActionResult {
            outcome: outcome.to_string(),
            vars: Vec::new(),
        }
    }
    fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.vars.push((key.to_string(), value.to_string()));
        self
    }
}

/// Who is on the call and which call it is, as the actions need it.
#[derive(Clone, Debug)]
pub struct ActionCall {
    /// The subscriber's number: inbound, the caller as signalled (P-Asserted-Identity,
    /// else From); outbound, the number dialled.
    pub caller: Option<String>,
    pub call_id: String,
    /// `Hotline` inbound, `OutboundCall` on campaign calls (registrations record it).
    pub channel: Channel,
    /// Outbound: the campaign and attempt the call belongs to.
    pub campaign_id: Option<i64>,
    /// Outbound: the attempt. When unset on an `OutboundCall`, the actions look the
    /// attempt up by `call_id` (the claim stored it).
    pub attempt_id: Option<i64>,
    /// Surveys: the registration being surveyed (checked against the attempt's).
    pub registration_id: Option<i64>,
}

/// An inbound hotline call with no number yet; the call layer fills what it knows
/// (`ActionCall { caller, call_id, channel, ..Default::default() }`).
impl Default for ActionCall {
    fn default() -> Self {
        ActionCall {
            caller: None,
            call_id: String::new(),
            channel: Channel::Hotline,
            campaign_id: None,
            attempt_id: None,
            registration_id: None,
        }
    }
}

impl ActionCall {
    /// An inbound call on the 9090 line.
    pub fn inbound(caller: Option<String>, call_id: String) -> ActionCall {
        ActionCall {
            caller,
            call_id,
            ..ActionCall::default()
        }
    }

    /// The answered call of a claimed campaign attempt.
    pub fn outbound(attempt: &ClaimedAttempt) -> ActionCall {
        ActionCall {
            caller: Some(attempt.msisdn.clone()),
            call_id: attempt.call_id.clone(),
            channel: Channel::OutboundCall,
            campaign_id: Some(attempt.campaign_id),
            attempt_id: Some(attempt.attempt_id),
            registration_id: attempt.registration_id,
        }
    }
}

/// Runs actions against one store and one program configuration.
#[derive(Clone)]
pub struct ProgramActions {
    pub store: Store,
    pub program: Arc<ProgramConfig>,
    /// The service's clock: what the actions write is stamped with it, and today's date
    /// (the registration period) is read from it, so tests that set the time see it.
    pub clock: SharedClock,
}

/// The prompt that tells a registered caller where their registration stands.
pub fn status_prompt(status: Status) -> &'static str {
    match status {
        Status::Registered | Status::SentToVinmec | Status::Unreachable => "reg_status_waiting",
        Status::AppointmentBooked => "reg_status_booked",
        Status::Consulted | Status::Surveyed => "reg_status_consulted",
        // A cancelled registration still holds the subscriber's one offer.
        Status::Cancelled => "reg_status_consulted",
    }
}

/// What an answer of the shared actions means for an invitation attempt.
fn shared_flow_outcome(action: &str, outcome: &str) -> Option<FlowOutcome> {
    if action != CHECK_ELIGIBILITY && action != REGISTER {
        return None;
    }
    match outcome {
        "registered" => Some(FlowOutcome::Registered),
        "already_registered" => Some(FlowOutcome::AlreadyRegistered),
        "not_eligible" => Some(FlowOutcome::NotEligible),
        "cap_full" => Some(FlowOutcome::CapFull),
        "window_not_open" | "window_closed" => Some(FlowOutcome::RegistrationClosed),
        _ => None,
    }
}

impl ProgramActions {
    pub async fn run(
        &self,
        name: &str,
        call: &ActionCall,
        vars: &BTreeMap<String, String>,
    ) -> ActionResult {
        let result = match name {
            CHECK_ELIGIBILITY => self.check_eligibility(call).await,
            REGISTER => self.register(call, vars).await,
            NOT_INTERESTED => self.not_interested(call).await,
            CALL_LATER => self.call_later(call, vars).await,
            OPT_OUT => self.opt_out(call).await,
            SURVEY_SATISFACTION => {
                self.survey_answer(call, vars, SurveyQuestion::Satisfaction)
                    .await
            }
            SURVEY_RESOLVED => {
                self.survey_answer(call, vars, SurveyQuestion::Resolved)
                    .await
            }
            SURVEY_RECOMMEND => {
                self.survey_answer(call, vars, SurveyQuestion::Recommend)
                    .await
            }
            SURVEY_COMPLETE => self.survey_complete(call).await,
            other => Err(format!("unknown action `{other}`")),
        };
        let result = match result {
            Ok(r) => r,
            Err(problem) => {
                tracing::error!(action = name, %problem, "action failed");
                return ActionResult::new("error");
            }
        };
        if let Some(outcome) = shared_flow_outcome(name, &result.outcome)
            && call.channel == Channel::OutboundCall
            && let Err(problem) = self.record_outcome(call, outcome, None).await
        {
            // The subscriber still hears the answer; the campaign's claim-time checks
            // (registered meanwhile, cap) keep a lost outcome from mattering.
            tracing::error!(action = name, %problem, "could not record the flow outcome");
        }
        result
    }

    /// The campaign attempt this call belongs to: `attempt_id`, or on an outbound call
    /// the attempt claimed with this Call-ID.
    async fn attempt_id(&self, call: &ActionCall) -> Result<i64, String> {
        if let Some(id) = call.attempt_id {
            return Ok(id);
        }
        if call.channel == Channel::OutboundCall
            && let Some(a) = self
                .store
                .attempt_by_call_id(&call.call_id)
                .await
                .map_err(|e| e.to_string())?
        {
            return Ok(a.id);
        }
        Err("not a campaign call (no attempt)".into())
    }

    async fn record_outcome(
        &self,
        call: &ActionCall,
        outcome: FlowOutcome,
        later: Option<CallLaterRequest>,
    ) -> Result<(), String> {
        let attempt = self.attempt_id(call).await?;
        let recorded = self
            .store
            .record_flow_outcome(attempt, outcome, later, self.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        if !recorded {
            return Err(format!(
                "attempt {attempt} is no longer dialing; outcome {outcome} not recorded"
            ));
        }
        Ok(())
    }

    async fn not_interested(&self, call: &ActionCall) -> Result<ActionResult, String> {
        self.record_outcome(call, FlowOutcome::NotInterested, None)
            .await?;
        Ok(ActionResult::new("recorded"))
    }

    async fn call_later(
        &self,
        call: &ActionCall,
        vars: &BTreeMap<String, String>,
    ) -> Result<ActionResult, String> {
        let request = match vars.get("call_later") {
            Some(v) => CallLaterRequest::parse_var(v)?,
            None => None,
        };
        self.record_outcome(call, FlowOutcome::CallLater, request)
            .await?;
        Ok(ActionResult::new("scheduled"))
    }

    async fn opt_out(&self, call: &ActionCall) -> Result<ActionResult, String> {
        let attempt = self.attempt_id(call).await?;
        self.store
            .opt_out_attempt(attempt, self.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(attempt, "subscriber opted out of campaign calls");
        Ok(ActionResult::new("opted_out"))
    }

    async fn survey_answer(
        &self,
        call: &ActionCall,
        vars: &BTreeMap<String, String>,
        question: SurveyQuestion,
    ) -> Result<ActionResult, String> {
        let attempt = self.attempt_id(call).await?;
        let raw = vars
            .get(question.as_str())
            .ok_or_else(|| format!("variable `{question}` is not set"))?;
        let value = raw
            .trim()
            .parse::<u8>()
            .map_err(|_| format!("`{question}` = {raw:?} is not a key 0-9"))?;
        let answer = self
            .store
            .record_survey_answer(attempt, question, value, self.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(expected) = call.registration_id
            && expected != answer.registration_id
        {
            tracing::warn!(
                expected,
                stored = answer.registration_id,
                "survey answer stored for the attempt's registration, not the call's"
            );
        }
        Ok(ActionResult::new("saved"))
    }

    async fn survey_complete(&self, call: &ActionCall) -> Result<ActionResult, String> {
        let attempt = self.attempt_id(call).await?;
        let registration = self
            .store
            .complete_survey(attempt, self.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(attempt, registration, "survey completed");
        Ok(ActionResult::new("completed"))
    }

    fn window_vars(&self, r: ActionResult) -> ActionResult {
        r.with("window_start", self.program.registration_start)
            .with("window_end", self.program.registration_end)
    }

    fn today(&self, now: Timestamp) -> Result<jiff::civil::Date, String> {
        program::today(now, &self.program).map_err(|e| e.to_string())
    }

    /// The refusals in the order a caller should hear them: an existing registration
    /// first (its status is the most useful thing to tell), then the target list, the
    /// dates and the places left.
    async fn check_eligibility(&self, call: &ActionCall) -> Result<ActionResult, String> {
        let Some(msisdn) = call
            .caller
            .as_deref()
            .and_then(|c| program::normalize_msisdn(c).ok())
        else {
            tracing::info!(caller = %call.caller.as_deref().map(mask_number).unwrap_or_default(),
                "caller number is not a Vietnamese mobile");
            return Ok(ActionResult::new("not_eligible"));
        };
        if let Some(reg) = self
            .store
            .registration_by_msisdn(&msisdn)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(ActionResult::new("already_registered")
                .with("status_prompt", status_prompt(reg.status))
                .with("status", reg.status.as_str()));
        }
        let subscriber = self
            .store
            .subscriber(&msisdn)
            .await
            .map_err(|e| e.to_string())?;
        let eligibility = program::eligibility(subscriber.as_ref(), &self.program);
        if eligibility != Eligibility::Eligible {
            return Ok(ActionResult::new("not_eligible").with("reason", format!("{eligibility:?}")));
        }
        match program::registration_window(self.today(self.clock.now())?, &self.program) {
            Window::NotOpen => return Ok(self.window_vars(ActionResult::new("window_not_open"))),
            Window::Closed => return Ok(self.window_vars(ActionResult::new("window_closed"))),
            Window::Open => {}
        }
        let used = self
            .store
            .registered_count()
            .await
            .map_err(|e| e.to_string())?;
        let left = self.program.cap.saturating_sub(used);
        if left == 0 {
            return Ok(ActionResult::new("cap_full"));
        }
        Ok(ActionResult::new("eligible").with("places_left", left))
    }

    async fn register(
        &self,
        call: &ActionCall,
        vars: &BTreeMap<String, String>,
    ) -> Result<ActionResult, String> {
        let Some(caller) = call.caller.clone() else {
            return Ok(ActionResult::new("not_eligible"));
        };
        if program::normalize_msisdn(&caller).is_err() {
            return Ok(ActionResult::new("not_eligible"));
        }
        // "unsure" (or nothing) = the caller has not chosen a specialty yet.
        let specialty = match vars.get("specialty").map(String::as_str) {
            None | Some("") | Some("unsure") => None,
            Some(code) => Some(
                code.parse::<u8>()
                    .map_err(|_| format!("specialty `{code}` is not a code"))?,
            ),
        };
        let request = NewRegistration {
            msisdn: caller,
            group: Group::One,
            channel: call.channel,
            specialty,
            call_id: Some(call.call_id.clone()),
            name: None,
            fanpage_ref: None,
        };
        // One reading for both: the date decides the period, the instant stamps the row.
        let now = self.clock.now();
        let outcome = self
            .store
            .register(request, &self.program, self.today(now)?, now)
            .await
            .map_err(|e| e.to_string())?;
        Ok(match outcome {
            RegisterOutcome::Registered(reg) => {
                let used = self
                    .store
                    .registered_count()
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(registration = reg.id, "registered");
                ActionResult::new("registered")
                    .with("registration_id", reg.id)
                    .with("places_left", self.program.cap.saturating_sub(used))
            }
            RegisterOutcome::AlreadyRegistered(reg) => ActionResult::new("already_registered")
                .with("status_prompt", status_prompt(reg.status))
                .with("status", reg.status.as_str()),
            RegisterOutcome::CapReached => ActionResult::new("cap_full"),
            RegisterOutcome::OutsideWindow(Window::NotOpen) => {
                self.window_vars(ActionResult::new("window_not_open"))
            }
            RegisterOutcome::OutsideWindow(_) => {
                self.window_vars(ActionResult::new("window_closed"))
            }
            RegisterOutcome::NotEligible(_) => ActionResult::new("not_eligible"),
        })
    }
}
