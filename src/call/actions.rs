//! The 9090 program's actions: what a dialplan's `action` node runs. They read and write
//! the registration store and return an outcome (the dialplan branches on it) plus
//! variables (its prompts speak them). Every failure becomes the outcome `error`, so a
//! caller always hears a message instead of silence.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::Timestamp;

use crate::program::{self, Channel, Eligibility, Group, ProgramConfig, Status, Window};
use crate::store::{NewRegistration, RegisterOutcome, Store};
use crate::telemetry::mask_number;

pub const CHECK_ELIGIBILITY: &str = "check_eligibility";
pub const REGISTER: &str = "register";

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

/// Who is calling and on which call, as the actions need it.
#[derive(Clone, Debug)]
pub struct ActionCall {
    /// The caller's number as signalled (P-Asserted-Identity, else From).
    pub caller: Option<String>,
    pub call_id: String,
    pub channel: Channel,
}

/// Runs actions against one store and one program configuration.
#[derive(Clone)]
pub struct ProgramActions {
    pub store: Store,
    pub program: Arc<ProgramConfig>,
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
            other => Err(format!("unknown action `{other}`")),
        };
        match result {
            Ok(r) => r,
            Err(problem) => {
                tracing::error!(action = name, %problem, "action failed");
                ActionResult::new("error")
            }
        }
    }

    fn window_vars(&self, r: ActionResult) -> ActionResult {
        r.with("window_start", self.program.registration_start)
            .with("window_end", self.program.registration_end)
    }

    fn today(&self) -> Result<jiff::civil::Date, String> {
        program::today(Timestamp::now(), &self.program).map_err(|e| e.to_string())
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
        match program::registration_window(self.today()?, &self.program) {
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
        let outcome = self
            .store
            .register(request, &self.program, self.today()?, Timestamp::now())
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
