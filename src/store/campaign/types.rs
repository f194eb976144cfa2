//! Rows and small enums of the campaign tables (see `migrations/*/0002_campaigns.sql`).
//!
//! The decision vocabulary is the domain's: the dialer's ([`Disposition`],
//! [`CampaignState`], [`CampaignKind`]) and the campaign rules' (contact and attempt
//! states, the flow's outcome, why a contact is done, how an attempt was resolved —
//! `tongdai_domain::campaign`, re-exported here). This module holds the rows and the
//! reports built from them, and how each value is stored.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;

use crate::store::error::{StoreError, corrupt};
use crate::store::time;
use tongdai_domain::dialer::{
    CampaignKind, CampaignPolicy, CampaignState, Disposition, RetryDecision,
};
use tongdai_domain::program::ParseEnumError;

use tongdai_domain::string_enum;

/// The states, outcomes and ends of contacts and attempts are the campaign rules' words
/// (`tongdai_domain::campaign`); the store persists them by name.
pub use tongdai_domain::campaign::{
    AttemptEnd, AttemptStatus, CallLaterRequest, ClaimHold, ContactEnd, ContactState, FlowOutcome,
    Resolution, SurveyQuestion,
};

/// A "call me later" request as stored: `after:<seconds>` or `tomorrow`.
pub(crate) fn call_later_to_db(r: CallLaterRequest) -> String {
    match r {
        CallLaterRequest::After(d) => format!("after:{}", d.as_secs()),
        CallLaterRequest::Tomorrow => "tomorrow".into(),
    }
}

pub(crate) fn call_later_from_db(s: &str) -> Result<CallLaterRequest, StoreError> {
    if s == "tomorrow" {
        return Ok(CallLaterRequest::Tomorrow);
    }
    s.strip_prefix("after:")
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| CallLaterRequest::After(Duration::from_secs(n)))
        .ok_or_else(|| corrupt("campaign_attempts", "call_later", format!("{s:?}")))
}

string_enum! {
    /// How a number got onto the do-not-call list.
    DncSource, "do-not-call source" {
        /// The subscriber pressed the opt-out key on a campaign call.
        Keypad = "keypad",
        /// An imported list (e.g. MobiFone's own DNC register).
        Import = "import",
        /// A supervisor added it (the customer asked customer care).
        Supervisor = "supervisor",
    }
}

pub(crate) fn state_str(s: CampaignState) -> &'static str {
    match s {
        CampaignState::Draft => "draft",
        CampaignState::Running => "running",
        CampaignState::Paused => "paused",
        CampaignState::Stopped => "stopped",
        CampaignState::Completed => "completed",
    }
}

pub(crate) fn parse_state(s: &str) -> Result<CampaignState, ParseEnumError> {
    Ok(match s {
        "draft" => CampaignState::Draft,
        "running" => CampaignState::Running,
        "paused" => CampaignState::Paused,
        "stopped" => CampaignState::Stopped,
        "completed" => CampaignState::Completed,
        _ => return Err(ParseEnumError::new("campaign state", s)),
    })
}

pub(crate) fn kind_str(k: CampaignKind) -> &'static str {
    match k {
        CampaignKind::Invitation => "invitation",
        CampaignKind::Survey => "survey",
    }
}

pub(crate) fn parse_kind(s: &str) -> Result<CampaignKind, ParseEnumError> {
    match s {
        "invitation" => Ok(CampaignKind::Invitation),
        "survey" => Ok(CampaignKind::Survey),
        _ => Err(ParseEnumError::new("campaign kind", s)),
    }
}

/// The policy as stored (TOML: the format operators write campaign files in).
pub(crate) fn policy_to_db(p: &CampaignPolicy) -> Result<String, StoreError> {
    toml::to_string(p).map_err(|e| StoreError::InvalidRequest(format!("policy: {e}")))
}

pub(crate) fn policy_from_db(s: &str) -> Result<CampaignPolicy, StoreError> {
    let p: CampaignPolicy =
        toml::from_str(s).map_err(|e| corrupt("campaigns", "policy", e.message()))?;
    p.validate()
        .map_err(|e| corrupt("campaigns", "policy", e))?;
    Ok(p)
}

/// One campaign.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    pub kind: CampaignKind,
    /// `[dialplan] name` of the plan an answered call runs (= `policy.dialplan`).
    pub dialplan: String,
    pub policy: CampaignPolicy,
    pub state: CampaignState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
}

/// What [`crate::store::Store::create_invitation_campaign`] /
/// [`crate::store::Store::create_survey_campaign`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatedCampaign {
    pub campaign: CampaignRow,
    /// Contacts inserted.
    pub contacts: u32,
    /// Candidates left out, by reason: `not_eligible` (program rules), `registered`,
    /// `do_not_call`.
    pub skipped: BTreeMap<&'static str, u32>,
}

/// One contact of a campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactRow {
    pub id: i64,
    pub campaign_id: i64,
    /// E.164.
    pub msisdn: String,
    /// Surveys: the registration being surveyed.
    pub registration_id: Option<i64>,
    pub state: ContactState,
    /// Claims made (the last `attempt_no`), released ones included.
    pub dials: u32,
    /// Attempts counted against `max_attempts`.
    pub attempts_charged: u32,
    /// Uncharged retries given (trunk throttling, our own CANCEL).
    pub uncharged: u32,
    pub not_before: Option<Timestamp>,
    pub last_disposition: Option<Disposition>,
    pub last_sip_code: Option<u16>,
    pub last_outcome: Option<FlowOutcome>,
    pub done_reason: Option<ContactEnd>,
    pub updated_at: Timestamp,
}

/// One dial of one contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRow {
    pub id: i64,
    pub campaign_id: i64,
    pub contact_id: i64,
    /// 1-based, unique per contact.
    pub attempt_no: u32,
    /// The SIP Call-ID the INVITE carries; unique.
    pub call_id: String,
    pub msisdn: String,
    /// The service instance that claimed it (only it recovers it after a restart).
    pub claimed_by: String,
    pub claimed_at: Timestamp,
    /// Set just before the INVITE was handed to the transport.
    pub started_at: Option<Timestamp>,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// Raw SIP final status.
    pub sip_code: Option<u16>,
    /// Reason header (Q.850 cause) of the final or BYE.
    pub reason: Option<String>,
    pub disposition: Option<Disposition>,
    pub outcome: Option<FlowOutcome>,
    pub call_later: Option<CallLaterRequest>,
    /// Counted against `max_attempts`.
    pub charged: bool,
    pub status: AttemptStatus,
    pub resolution: Option<Resolution>,
}

/// A contact claimed for one dial: place the INVITE with exactly this Call-ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedAttempt {
    pub attempt_id: i64,
    pub campaign_id: i64,
    pub contact_id: i64,
    pub kind: CampaignKind,
    /// `[dialplan] name` to run when answered.
    pub dialplan: String,
    /// E.164 number to call.
    pub msisdn: String,
    pub attempt_no: u32,
    pub call_id: String,
    /// Surveys: the registration being surveyed.
    pub registration_id: Option<i64>,
    /// CANCEL after this long ringing.
    pub ring_timeout: Duration,
}

/// The answer of [`crate::store::Store::claim_due`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    /// Dial these, each with its Call-ID.
    pub attempts: Vec<ClaimedAttempt>,
    /// Set when nothing could be claimed because of the campaign or the program.
    pub held: Option<ClaimHold>,
    /// When the next waiting contact is due (inside a calling window); `None` when no
    /// contact is waiting. `≤ now` means more are due now.
    pub next_due: Option<Timestamp>,
    /// Contacts found due but done at claim time (do-not-call, registered or surveyed
    /// meanwhile) instead of being dialled.
    pub skipped: u32,
}

/// The result of finishing an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedAttempt {
    pub attempt: AttemptRow,
    pub contact: ContactRow,
    /// What happens to the contact (`Retry { not_before }` or `Done { reason }`).
    pub decision: RetryDecision,
}

/// One attempt found `dialing` at start-up and how it was resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredAttempt {
    pub attempt_id: i64,
    pub call_id: String,
    pub resolution: Resolution,
    pub disposition: Option<Disposition>,
}

/// Counts for the supervisors' page. Every contact is in exactly one of `waiting`,
/// `dialing`, `in_call`, `retry_pending`, `done`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CampaignProgress {
    pub contacts: u32,
    /// Never dialled (or only released claims).
    pub waiting: u32,
    /// INVITE out (or about to be), not answered.
    pub dialing: u32,
    /// Answered, the dialplan is running.
    pub in_call: u32,
    /// Dialled at least once, waiting for the next try.
    pub retry_pending: u32,
    pub done: u32,
    pub done_by_reason: BTreeMap<ContactEnd, u32>,
    /// Done contacts by their last disposition (never-dialled ones are not here).
    pub done_by_disposition: BTreeMap<Disposition, u32>,
    /// Finished attempts (released claims excluded).
    pub attempts: u32,
    pub attempts_by_disposition: BTreeMap<Disposition, u32>,
    /// Finished attempts by the flow's outcome.
    pub outcomes: BTreeMap<FlowOutcome, u32>,
    /// Share of finished attempts that were answered.
    pub answer_rate: Option<f64>,
    /// When the next waiting contact is due (inside a calling window).
    pub next_due: Option<Timestamp>,
    /// Why the dialer is not dialling this campaign, if it said so (trunk down,
    /// outside the calling window, cap reached, service stopping …).
    pub hold: Option<CampaignHoldRow>,
}

/// The dialer runtime's reason for not dialling a campaign (`campaign_holds`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignHoldRow {
    /// `dialer::Hold::code()`: `trunk_not_registered`, `outside_calling_window`, …
    pub code: String,
    /// Human-readable, with the code first.
    pub detail: String,
    /// The service instance that reported it.
    pub instance: String,
    pub since: Timestamp,
}

/// One line of the supervisors' campaign table.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignLine {
    pub campaign: CampaignRow,
    pub progress: CampaignProgress,
}

/// One number on the do-not-call list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DncEntry {
    pub msisdn: String,
    pub source: DncSource,
    pub at: Timestamp,
    pub campaign_id: Option<i64>,
    pub attempt_id: Option<i64>,
    pub note: String,
}

/// What [`crate::store::Store::import_do_not_call_csv`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DncImportReport {
    pub rows: usize,
    pub inserted: usize,
    /// Already on the list (kept with their original source and date).
    pub already: usize,
}

/// One answer as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurveyAnswer {
    pub id: i64,
    pub registration_id: i64,
    pub attempt_id: i64,
    pub question: SurveyQuestion,
    pub value: u8,
    pub at: Timestamp,
}

/// Summary of a 1–5 question.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScaleSummary {
    pub answers: u32,
    /// `histogram[v - 1]` = answers with value `v`.
    pub histogram: [u32; 5],
    pub mean: Option<f64>,
    /// Share of 4 and 5 (the "satisfied" share).
    pub share_4_5: Option<f64>,
}

impl ScaleSummary {
    pub(crate) fn from_values(values: impl IntoIterator<Item = u8>) -> ScaleSummary {
        let mut s = ScaleSummary::default();
        let mut sum = 0u64;
        for v in values {
            if (1..=5).contains(&v) {
                s.histogram[usize::from(v - 1)] += 1;
                s.answers += 1;
                sum += u64::from(v);
            }
        }
        if s.answers > 0 {
            let n = f64::from(s.answers);
            s.mean = Some(sum as f64 / n);
            s.share_4_5 = Some(f64::from(s.histogram[3] + s.histogram[4]) / n);
        }
        s
    }
}

/// Summary of the yes/no question.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct YesNoSummary {
    pub answers: u32,
    pub yes: u32,
    pub no: u32,
    pub share_yes: Option<f64>,
}

/// The satisfaction rate and the other questions' summaries. Each registration counts
/// once per question: its latest answer (a re-called partial survey may answer again).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SatisfactionReport {
    /// Registrations with at least one answer.
    pub respondents: u32,
    /// Attempts whose survey was completed / left partial.
    pub completed: u32,
    pub partial: u32,
    pub satisfaction: ScaleSummary,
    pub resolved: YesNoSummary,
    pub recommend: ScaleSummary,
}

// ---- raw rows ------------------------------------------------------------------------

fn u32_col(table: &'static str, column: &'static str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|e| corrupt(table, column, e))
}

fn opt_parse<T: FromStr<Err = ParseEnumError>>(
    table: &'static str,
    column: &'static str,
    v: Option<String>,
) -> Result<Option<T>, StoreError> {
    v.map(|s| s.parse().map_err(|e| corrupt(table, column, e)))
        .transpose()
}

fn opt_code(
    table: &'static str,
    column: &'static str,
    v: Option<i64>,
) -> Result<Option<u16>, StoreError> {
    v.map(|c| u16::try_from(c).map_err(|e| corrupt(table, column, e)))
        .transpose()
}

#[derive(sqlx::FromRow)]
pub(crate) struct CampaignRaw {
    id: i64,
    name: String,
    kind: String,
    dialplan: String,
    policy: String,
    state: String,
    created_at: String,
    updated_at: String,
    started_at: Option<String>,
    ended_at: Option<String>,
}

pub(crate) const CAMPAIGN_COLUMNS: &str =
    "id, name, kind, dialplan, policy, state, created_at, updated_at, started_at, ended_at";

impl TryFrom<CampaignRaw> for CampaignRow {
    type Error = StoreError;
    fn try_from(r: CampaignRaw) -> Result<Self, StoreError> {
        const T: &str = "campaigns";
        Ok(CampaignRow {
            id: r.id,
            kind: parse_kind(&r.kind).map_err(|e| corrupt(T, "kind", e))?,
            policy: policy_from_db(&r.policy)?,
            state: parse_state(&r.state).map_err(|e| corrupt(T, "state", e))?,
            created_at: time::from_db(T, "created_at", &r.created_at)?,
            updated_at: time::from_db(T, "updated_at", &r.updated_at)?,
            started_at: time::opt_from_db(T, "started_at", r.started_at.as_deref())?,
            ended_at: time::opt_from_db(T, "ended_at", r.ended_at.as_deref())?,
            name: r.name,
            dialplan: r.dialplan,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ContactRaw {
    id: i64,
    campaign_id: i64,
    msisdn: String,
    registration_id: Option<i64>,
    state: String,
    dials: i64,
    attempts_charged: i64,
    uncharged: i64,
    not_before: Option<String>,
    last_disposition: Option<String>,
    last_sip_code: Option<i64>,
    last_outcome: Option<String>,
    done_reason: Option<String>,
    updated_at: String,
}

pub(crate) const CONTACT_COLUMNS: &str = "id, campaign_id, msisdn, registration_id, state, \
     dials, attempts_charged, uncharged, not_before, last_disposition, last_sip_code, \
     last_outcome, done_reason, updated_at";

impl TryFrom<ContactRaw> for ContactRow {
    type Error = StoreError;
    fn try_from(r: ContactRaw) -> Result<Self, StoreError> {
        const T: &str = "campaign_contacts";
        Ok(ContactRow {
            id: r.id,
            campaign_id: r.campaign_id,
            registration_id: r.registration_id,
            state: r.state.parse().map_err(|e| corrupt(T, "state", e))?,
            dials: u32_col(T, "dials", r.dials)?,
            attempts_charged: u32_col(T, "attempts_charged", r.attempts_charged)?,
            uncharged: u32_col(T, "uncharged", r.uncharged)?,
            not_before: time::opt_from_db(T, "not_before", r.not_before.as_deref())?,
            last_disposition: r
                .last_disposition
                .map(|s| {
                    s.parse::<Disposition>()
                        .map_err(|e| corrupt(T, "last_disposition", e))
                })
                .transpose()?,
            last_sip_code: opt_code(T, "last_sip_code", r.last_sip_code)?,
            last_outcome: opt_parse(T, "last_outcome", r.last_outcome)?,
            done_reason: opt_parse(T, "done_reason", r.done_reason)?,
            updated_at: time::from_db(T, "updated_at", &r.updated_at)?,
            msisdn: r.msisdn,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AttemptRaw {
    id: i64,
    campaign_id: i64,
    contact_id: i64,
    attempt_no: i64,
    call_id: String,
    msisdn: String,
    claimed_by: String,
    claimed_at: String,
    started_at: Option<String>,
    answered_at: Option<String>,
    ended_at: Option<String>,
    sip_code: Option<i64>,
    reason: Option<String>,
    disposition: Option<String>,
    outcome: Option<String>,
    call_later: Option<String>,
    charged: i64,
    status: String,
    resolution: Option<String>,
}

pub(crate) const ATTEMPT_COLUMNS: &str = "id, campaign_id, contact_id, attempt_no, call_id, \
     msisdn, claimed_by, claimed_at, started_at, answered_at, ended_at, sip_code, reason, \
     disposition, outcome, call_later, charged, status, resolution";

impl TryFrom<AttemptRaw> for AttemptRow {
    type Error = StoreError;
    fn try_from(r: AttemptRaw) -> Result<Self, StoreError> {
        const T: &str = "campaign_attempts";
        Ok(AttemptRow {
            id: r.id,
            campaign_id: r.campaign_id,
            contact_id: r.contact_id,
            attempt_no: u32_col(T, "attempt_no", r.attempt_no)?,
            claimed_at: time::from_db(T, "claimed_at", &r.claimed_at)?,
            started_at: time::opt_from_db(T, "started_at", r.started_at.as_deref())?,
            answered_at: time::opt_from_db(T, "answered_at", r.answered_at.as_deref())?,
            ended_at: time::opt_from_db(T, "ended_at", r.ended_at.as_deref())?,
            sip_code: opt_code(T, "sip_code", r.sip_code)?,
            disposition: r
                .disposition
                .map(|s| {
                    s.parse::<Disposition>()
                        .map_err(|e| corrupt(T, "disposition", e))
                })
                .transpose()?,
            outcome: opt_parse(T, "outcome", r.outcome)?,
            call_later: r.call_later.map(|s| call_later_from_db(&s)).transpose()?,
            charged: r.charged != 0,
            status: r.status.parse().map_err(|e| corrupt(T, "status", e))?,
            resolution: opt_parse(T, "resolution", r.resolution)?,
            call_id: r.call_id,
            msisdn: r.msisdn,
            claimed_by: r.claimed_by,
            reason: r.reason,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DncRaw {
    msisdn: String,
    source: String,
    at: String,
    campaign_id: Option<i64>,
    attempt_id: Option<i64>,
    note: String,
}

impl TryFrom<DncRaw> for DncEntry {
    type Error = StoreError;
    fn try_from(r: DncRaw) -> Result<Self, StoreError> {
        const T: &str = "do_not_call";
        Ok(DncEntry {
            source: r.source.parse().map_err(|e| corrupt(T, "source", e))?,
            at: time::from_db(T, "at", &r.at)?,
            msisdn: r.msisdn,
            campaign_id: r.campaign_id,
            attempt_id: r.attempt_id,
            note: r.note,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AnswerRaw {
    id: i64,
    registration_id: i64,
    attempt_id: i64,
    question: String,
    value: i64,
    at: String,
}

impl TryFrom<AnswerRaw> for SurveyAnswer {
    type Error = StoreError;
    fn try_from(r: AnswerRaw) -> Result<Self, StoreError> {
        const T: &str = "survey_answers";
        Ok(SurveyAnswer {
            id: r.id,
            registration_id: r.registration_id,
            attempt_id: r.attempt_id,
            question: r.question.parse().map_err(|e| corrupt(T, "question", e))?,
            value: u8::try_from(r.value).map_err(|e| corrupt(T, "value", e))?,
            at: time::from_db(T, "at", &r.at)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tongdai_domain::dialer::DoneReason;

    #[test]
    fn strings_round_trip() {
        for &s in ContactState::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for &s in ContactEnd::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for &s in FlowOutcome::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for &s in Resolution::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        for s in [
            CampaignState::Draft,
            CampaignState::Running,
            CampaignState::Paused,
            CampaignState::Stopped,
            CampaignState::Completed,
        ] {
            assert_eq!(parse_state(state_str(s)), Ok(s));
            assert_eq!(state_str(s), s.to_string());
        }
        for d in [Disposition::Answered, Disposition::InvalidNumber] {
            assert_eq!(d.as_str().parse::<Disposition>(), Ok(d));
        }
        assert!("maybe".parse::<Disposition>().is_err());
        // Every dialer DoneReason has a stored name: the ContactEnd of the same name.
        for r in [DoneReason::Completed, DoneReason::NoCallingWindow] {
            let e = ContactEnd::from(r);
            assert_eq!(format!("{r:?}"), format!("{e:?}"));
        }
        assert_eq!(
            ContactEnd::from(DoneReason::NoCallingWindow).as_str(),
            "no_calling_window"
        );
    }

    #[test]
    fn call_later_requests() {
        for r in [
            CallLaterRequest::Tomorrow,
            CallLaterRequest::After(Duration::from_secs(90)),
        ] {
            assert_eq!(call_later_from_db(&call_later_to_db(r)).ok(), Some(r));
        }
        assert!(call_later_from_db("after:x").is_err());
    }

    #[test]
    fn policy_round_trips_through_toml() {
        let p = CampaignPolicy {
            excluded_dates: vec![jiff::civil::date(2021, 12, 24)],
            max_cps: 2.5,
            ..CampaignPolicy::default()
        };
        let text = policy_to_db(&p).expect("serialises");
        assert_eq!(policy_from_db(&text).expect("parses"), p);
        assert!(policy_from_db("max_cps = 0.0").is_err());
    }

    #[test]
    fn scale_summary() {
        let s = ScaleSummary::from_values([5, 4, 3, 5, 1]);
        assert_eq!(s.answers, 5);
        assert_eq!(s.histogram, [1, 0, 1, 1, 2]);
        assert_eq!(s.mean, Some(3.6));
        assert_eq!(s.share_4_5, Some(0.6));
        assert_eq!(ScaleSummary::from_values([]).mean, None);
    }
}
