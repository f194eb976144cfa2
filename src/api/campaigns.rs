//! `/api/v1/campaigns…`: outbound campaigns (invitation call-outs and satisfaction
//! surveys) as supervisors see them and admins drive them.
//!
//! The API only changes the store: a command (`start`, `pause`, `resume`, `stop`) is
//! one validated state transition of the campaign row (`Store::start_campaign` …), and
//! the dialer runtime, which claims contacts only from running campaigns, follows the
//! stored state. A command that finds the campaign already where it would put it
//! (`pause` on a paused campaign) answers 200 with `changed: false`, so a retried click
//! is harmless; any other mismatch is 409 `invalid_campaign_state` naming the state.
//!
//! Reading (supervisor, admin): every campaign with its queue — waiting to be dialled,
//! dialling, in call, retries pending, done by reason and by last disposition — and
//! its finished attempts by disposition and flow outcome, as `Store::campaign_progress`
//! counts them. Numbers never appear here (counts only).

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, ApiPath, ApiQuery, JsonBody, policy_error, serde_field};
use crate::store::{
    CampaignProgress, CampaignRow, ContactEnd, FlowOutcome, SatisfactionReport, ScaleSummary,
    StoreError, YesNoSummary,
};
use tongdai_domain::dialer::{CampaignKind, CampaignPolicy, CampaignState, Disposition};

/// Every campaign state.
pub const STATES: [CampaignState; 5] = [
    CampaignState::Draft,
    CampaignState::Running,
    CampaignState::Paused,
    CampaignState::Stopped,
    CampaignState::Completed,
];

pub fn state_str(s: CampaignState) -> &'static str {
    match s {
        CampaignState::Draft => "draft",
        CampaignState::Running => "running",
        CampaignState::Paused => "paused",
        CampaignState::Stopped => "stopped",
        CampaignState::Completed => "completed",
    }
}

pub fn kind_str(k: CampaignKind) -> &'static str {
    match k {
        CampaignKind::Invitation => "invitation",
        CampaignKind::Survey => "survey",
    }
}

/// Contacts still to be dialled or being dialled (the dialler's queue): a running or
/// paused campaign.
fn is_live(s: CampaignState) -> bool {
    matches!(s, CampaignState::Running | CampaignState::Paused)
}

fn zero_filled<K: Copy + Ord>(
    keys: impl IntoIterator<Item = K>,
    name: impl Fn(K) -> &'static str,
    counts: &BTreeMap<K, u32>,
) -> BTreeMap<&'static str, u32> {
    keys.into_iter()
        .map(|k| (name(k), counts.get(&k).copied().unwrap_or(0)))
        .collect()
}

/// A campaign's queue and results. Every contact is in exactly one of `waiting`,
/// `dialing`, `in_call`, `retry_pending`, `done`.
#[derive(Clone, Debug, Serialize)]
pub struct ProgressView {
    pub contacts: u32,
    /// Never dialled yet.
    pub waiting: u32,
    /// INVITE out, not answered.
    pub dialing: u32,
    /// Answered; the dialplan is running.
    pub in_call: u32,
    /// Dialled at least once, waiting for the next try.
    pub retry_pending: u32,
    pub done: u32,
    /// Done contacts by why they are done (every reason, zero included).
    pub done_by_reason: BTreeMap<&'static str, u32>,
    /// Done contacts by their last call's disposition (never-dialled ones are not here).
    pub done_by_disposition: BTreeMap<&'static str, u32>,
    /// Finished attempts.
    pub attempts: u32,
    pub attempts_by_disposition: BTreeMap<&'static str, u32>,
    /// Finished attempts by what the answered call's flow reported.
    pub outcomes: BTreeMap<&'static str, u32>,
    /// Share of finished attempts that were answered.
    pub answer_rate: Option<f64>,
    /// When the next waiting contact is due (inside a calling window).
    pub next_due: Option<Timestamp>,
    /// Why the dialer is not dialling this running campaign right now (trunk down,
    /// outside the calling window, cap reached …), as the dialer last reported it.
    pub hold: Option<HoldView>,
}

/// A dialer hold on a campaign (`campaign_holds`).
#[derive(Debug, Clone, Serialize)]
pub struct HoldView {
    /// Machine-readable: `trunk_unreachable`, `outside_calling_window`, `cap_reached` …
    pub code: String,
    /// Human-readable, code first.
    pub detail: String,
    /// The service instance that reported it.
    pub instance: String,
    pub since: Timestamp,
}

impl From<&CampaignProgress> for ProgressView {
    fn from(p: &CampaignProgress) -> Self {
        ProgressView {
            contacts: p.contacts,
            waiting: p.waiting,
            dialing: p.dialing,
            in_call: p.in_call,
            retry_pending: p.retry_pending,
            done: p.done,
            done_by_reason: zero_filled(
                ContactEnd::ALL.iter().copied(),
                ContactEnd::as_str,
                &p.done_by_reason,
            ),
            done_by_disposition: zero_filled(
                Disposition::ALL.iter().copied(),
                Disposition::as_str,
                &p.done_by_disposition,
            ),
            attempts: p.attempts,
            attempts_by_disposition: zero_filled(
                Disposition::ALL.iter().copied(),
                Disposition::as_str,
                &p.attempts_by_disposition,
            ),
            outcomes: zero_filled(
                FlowOutcome::ALL.iter().copied(),
                FlowOutcome::as_str,
                &p.outcomes,
            ),
            answer_rate: p.answer_rate,
            next_due: p.next_due,
            hold: p.hold.as_ref().map(|h| HoldView {
                code: h.code.clone(),
                detail: h.detail.clone(),
                instance: h.instance.clone(),
                since: h.since,
            }),
        }
    }
}

/// One campaign with its policy and progress (`GET /api/v1/campaigns[/{id}]`).
///
/// `policy` is the campaign policy in its own format — the keys of a policy file and of
/// `POST /api/v1/campaigns`'s `policy`, durations as humantime strings — so what a
/// supervisor reads can be sent back as it is.
#[derive(Clone, Debug, Serialize)]
pub struct CampaignView {
    pub id: i64,
    pub name: String,
    /// `invitation` or `survey`.
    pub kind: &'static str,
    pub dialplan: String,
    pub state: &'static str,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub policy: CampaignPolicy,
    pub progress: ProgressView,
}

impl CampaignView {
    pub fn new(c: &CampaignRow, p: &CampaignProgress) -> CampaignView {
        CampaignView {
            id: c.id,
            name: c.name.clone(),
            kind: c.kind.as_str(),
            dialplan: c.dialplan.clone(),
            state: state_str(c.state),
            created_at: c.created_at,
            updated_at: c.updated_at,
            started_at: c.started_at,
            ended_at: c.ended_at,
            policy: c.policy.clone(),
            progress: p.into(),
        }
    }
}

/// One campaign on the live page (no policy: the stream stays small).
#[derive(Clone, Debug, Serialize)]
pub struct CampaignSummary {
    pub id: i64,
    pub name: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub progress: ProgressView,
}

impl CampaignSummary {
    pub fn new(c: &CampaignRow, progress: ProgressView) -> CampaignSummary {
        CampaignSummary {
            id: c.id,
            name: c.name.clone(),
            kind: c.kind.as_str(),
            state: state_str(c.state),
            started_at: c.started_at,
            ended_at: c.ended_at,
            progress,
        }
    }
}

/// The dialler's queue added up over campaigns.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QueueCounts {
    /// Campaigns counted (running or paused).
    pub campaigns: u32,
    pub waiting: u32,
    pub dialing: u32,
    pub in_call: u32,
    pub retry_pending: u32,
    pub done: u32,
    pub done_by_disposition: BTreeMap<&'static str, u32>,
}

impl QueueCounts {
    fn empty() -> QueueCounts {
        QueueCounts {
            done_by_disposition: Disposition::ALL.iter().map(|d| (d.as_str(), 0)).collect(),
            ..QueueCounts::default()
        }
    }

    fn add(&mut self, p: &ProgressView) {
        self.campaigns += 1;
        self.waiting += p.waiting;
        self.dialing += p.dialing;
        self.in_call += p.in_call;
        self.retry_pending += p.retry_pending;
        self.done += p.done;
        for (d, n) in &p.done_by_disposition {
            *self.done_by_disposition.entry(d).or_default() += n;
        }
    }
}

/// The `campaigns` section of the supervisors' snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct CampaignsSection {
    /// Campaigns dialling now.
    pub running: u32,
    /// The outbound queue: every running or paused campaign added up.
    pub queue: QueueCounts,
    /// Draft, running and paused campaigns, and those that ended in the last 24
    /// hours; newest first, at most [`SNAPSHOT_CAMPAIGNS`].
    pub campaigns: Vec<CampaignSummary>,
}

/// The `satisfaction` section: the survey's results over every survey campaign, and
/// per campaign.
#[derive(Clone, Debug, Serialize)]
pub struct SatisfactionSection {
    pub overall: SatisfactionView,
    pub campaigns: Vec<CampaignSatisfaction>,
}

impl SatisfactionSection {
    pub fn new(overall: &SatisfactionReport, campaigns: Vec<CampaignSatisfaction>) -> Self {
        SatisfactionSection {
            overall: overall.into(),
            campaigns,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CampaignSatisfaction {
    pub campaign_id: i64,
    pub name: String,
    pub state: &'static str,
    pub report: SatisfactionView,
}

impl CampaignSatisfaction {
    pub fn new(c: &CampaignRow, report: &SatisfactionReport) -> CampaignSatisfaction {
        CampaignSatisfaction {
            campaign_id: c.id,
            name: c.name.clone(),
            state: state_str(c.state),
            report: report.into(),
        }
    }
}

/// The survey's results (`Store::satisfaction_report`): each registration counts once
/// per question, with its latest answer.
#[derive(Clone, Debug, Serialize)]
pub struct SatisfactionView {
    /// Registrations with at least one answer.
    pub respondents: u32,
    /// Attempts whose survey was completed / left partial.
    pub completed: u32,
    pub partial: u32,
    pub satisfaction: ScaleView,
    pub resolved: YesNoView,
    pub recommend: ScaleView,
}

/// A 1–5 question: `histogram[v - 1]` answers gave `v`; the mean and the share of 4
/// and 5 are `null` without answers.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleView {
    pub answers: u32,
    pub histogram: [u32; 5],
    pub mean: Option<f64>,
    pub share_4_5: Option<f64>,
}

/// The yes/no question.
#[derive(Clone, Debug, Serialize)]
pub struct YesNoView {
    pub answers: u32,
    pub yes: u32,
    pub no: u32,
    pub share_yes: Option<f64>,
}

impl From<&SatisfactionReport> for SatisfactionView {
    fn from(r: &SatisfactionReport) -> Self {
        SatisfactionView {
            respondents: r.respondents,
            completed: r.completed,
            partial: r.partial,
            satisfaction: (&r.satisfaction).into(),
            resolved: (&r.resolved).into(),
            recommend: (&r.recommend).into(),
        }
    }
}

impl From<&ScaleSummary> for ScaleView {
    fn from(s: &ScaleSummary) -> Self {
        ScaleView {
            answers: s.answers,
            histogram: s.histogram,
            mean: s.mean,
            share_4_5: s.share_4_5,
        }
    }
}

impl From<&YesNoSummary> for YesNoView {
    fn from(s: &YesNoSummary) -> Self {
        YesNoView {
            answers: s.answers,
            yes: s.yes,
            no: s.no,
            share_yes: s.share_yes,
        }
    }
}

/// How many campaigns the live page lists.
pub const SNAPSHOT_CAMPAIGNS: usize = 20;

/// The snapshot's `campaigns` and `satisfaction` sections in one pass over the store.
pub async fn sections(
    s: &ApiState,
    now: Timestamp,
) -> Result<(CampaignsSection, SatisfactionSection), ApiError> {
    let day_ago = now
        .checked_sub(SignedDuration::from_hours(24))
        .unwrap_or(now);
    let shown: Vec<CampaignRow> = s
        .store
        .campaigns()
        .await?
        .into_iter()
        .filter(|c| c.ended_at.is_none_or(|t| t >= day_ago) || !is_ended(c.state))
        .take(SNAPSHOT_CAMPAIGNS)
        .collect();
    let mut queue = QueueCounts::empty();
    let mut running = 0;
    let mut campaigns = Vec::with_capacity(shown.len());
    let mut satisfaction = Vec::new();
    for c in shown {
        let progress = ProgressView::from(&s.store.campaign_progress(c.id, now).await?);
        if is_live(c.state) {
            queue.add(&progress);
        }
        if c.state == CampaignState::Running {
            running += 1;
        }
        if c.kind == CampaignKind::Survey {
            let report = s.store.satisfaction_report(Some(c.id)).await?;
            satisfaction.push(CampaignSatisfaction::new(&c, &report));
        }
        campaigns.push(CampaignSummary::new(&c, progress));
    }
    let overall = s.store.satisfaction_report(None).await?;
    Ok((
        CampaignsSection {
            running,
            queue,
            campaigns,
        },
        SatisfactionSection::new(&overall, satisfaction),
    ))
}

fn is_ended(s: CampaignState) -> bool {
    matches!(s, CampaignState::Stopped | CampaignState::Completed)
}

// ---- reading ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<StateParam>,
    kind: Option<CampaignKind>,
}

/// A campaign state as a query parameter.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum StateParam {
    Draft,
    Running,
    Paused,
    Stopped,
    Completed,
}

impl StateParam {
    fn state(self) -> CampaignState {
        match self {
            StateParam::Draft => CampaignState::Draft,
            StateParam::Running => CampaignState::Running,
            StateParam::Paused => CampaignState::Paused,
            StateParam::Stopped => CampaignState::Stopped,
            StateParam::Completed => CampaignState::Completed,
        }
    }
}

#[derive(Serialize)]
struct ListView {
    campaigns: Vec<CampaignView>,
}

/// `GET /api/v1/campaigns`: every campaign, newest first, with its progress.
pub async fn list(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let now = s.clock.now();
    let mut campaigns = Vec::new();
    for c in s.store.campaigns().await? {
        if q.state.is_some_and(|st| st.state() != c.state) || q.kind.is_some_and(|k| k != c.kind) {
            continue;
        }
        let progress = s.store.campaign_progress(c.id, now).await?;
        campaigns.push(CampaignView::new(&c, &progress));
    }
    Ok(Json(ListView { campaigns }).into_response())
}

async fn view_of(s: &ApiState, id: i64, now: Timestamp) -> Result<CampaignView, ApiError> {
    let c = s
        .store
        .campaign(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("campaign {id} not found")))?;
    let progress = s.store.campaign_progress(id, now).await?;
    Ok(CampaignView::new(&c, &progress))
}

/// `GET /api/v1/campaigns/{id}`.
pub async fn detail(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CampaignView>, ApiError> {
    Ok(Json(view_of(&s, id, s.clock.now()).await?))
}

// ---- creating --------------------------------------------------------------------------

/// `POST /api/v1/campaigns`: a draft campaign from a policy. `kind` decides the
/// contacts: an invitation calls the eligible subscribers of the imported target list
/// (minus registered and do-not-call numbers), a survey calls the registrations whose
/// consultation is done. `policy` holds only what differs from the defaults
/// (`dialer::CampaignPolicy`); its `dialplan` defaults to the bundled plan of the kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    kind: CampaignKind,
    #[serde(default)]
    policy: serde_json::Map<String, serde_json::Value>,
}

/// The bundled dialplan of each kind (`dialplans/invite.toml`, `dialplans/survey.toml`).
fn default_dialplan(kind: CampaignKind) -> &'static str {
    match kind {
        CampaignKind::Invitation => "invite",
        CampaignKind::Survey => "survey",
    }
}

/// The policy of a create request, every problem named as `policy.<key>`.
fn policy_of(
    kind: CampaignKind,
    mut map: serde_json::Map<String, serde_json::Value>,
) -> Result<CampaignPolicy, ApiError> {
    let kind_value = serde_json::Value::from(kind_str(kind));
    match map.get("kind") {
        Some(k) if *k != kind_value => {
            return Err(ApiError::field(
                "policy.kind",
                format!("must be {kind_value} (the campaign's kind) or left out"),
            ));
        }
        _ => {
            map.insert("kind".into(), kind_value);
        }
    }
    map.entry("dialplan")
        .or_insert_with(|| default_dialplan(kind).into());
    let policy: CampaignPolicy = serde_path_to_error::deserialize(serde_json::Value::Object(map))
        .map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = serde_field(&path, &message)
            .map(|f| format!("policy.{f}"))
            .unwrap_or_else(|| "policy".into());
        ApiError::field(field, message)
    })?;
    policy.validate().map_err(|e| policy_error(&e))?;
    Ok(policy)
}

pub async fn create(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    let b = body.value;
    // The store trims and checks 1–100 characters too; here the error names the field.
    if b.name.chars().count() > 100 {
        return Err(ApiError::field("name", "at most 100 characters"));
    }
    let name = b.name.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::field("name", "must not be empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "must not contain control characters",
        ));
    }
    let policy = policy_of(b.kind, b.policy)?;
    let loaded = (s.dialplan_names)();
    if !loaded.contains(&policy.dialplan) {
        return Err(ApiError::field(
            "policy.dialplan",
            format!(
                "no dialplan named {:?} is loaded (loaded: {})",
                policy.dialplan,
                loaded.join(", ")
            ),
        ));
    }
    let now = s.clock.now();
    let created = match b.kind {
        CampaignKind::Invitation => {
            s.store
                .create_invitation_campaign(&name, policy, &s.program, now)
                .await
        }
        CampaignKind::Survey => s.store.create_survey_campaign(&name, policy, now).await,
    };
    let created = match created {
        Ok(c) => c,
        Err(StoreError::CampaignExists(n)) => {
            let existing = s.store.campaign_by_name(&n).await?.map(|c| c.id);
            return Err(ApiError::from(StoreError::CampaignExists(n)).with("campaign_id", existing));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(campaign = created.campaign.id, actor = %caller.name,
        contacts = created.contacts, "campaign created over HTTP");
    let progress = s.store.campaign_progress(created.campaign.id, now).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedView {
            contacts: created.contacts,
            skipped: created.skipped,
            campaign: CampaignView::new(&created.campaign, &progress),
        }),
    )
        .into_response())
}

#[derive(Serialize)]
pub(crate) struct CreatedView {
    pub(crate) campaign: CampaignView,
    /// Contacts inserted.
    pub(crate) contacts: u32,
    /// Candidates left out by reason (`not_eligible`, `registered`, `do_not_call`).
    pub(crate) skipped: BTreeMap<&'static str, u32>,
}

// ---- commands --------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Command {
    Start,
    Pause,
    Resume,
    Stop,
}

impl Command {
    fn as_str(self) -> &'static str {
        match self {
            Command::Start => "start",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Stop => "stop",
        }
    }

    /// Where the command puts a campaign: finding it there already is success.
    fn target(self) -> CampaignState {
        match self {
            Command::Start | Command::Resume => CampaignState::Running,
            Command::Pause => CampaignState::Paused,
            Command::Stop => CampaignState::Stopped,
        }
    }
}

/// A command takes no parameters; an unknown member is refused, not ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

#[derive(Serialize)]
pub struct CommandView {
    /// False when the campaign already was where the command puts it.
    pub changed: bool,
    pub campaign: CampaignView,
}

async fn command(
    s: ApiState,
    caller: Caller,
    id: i64,
    cmd: Command,
) -> Result<Json<CommandView>, ApiError> {
    let now = s.clock.now();
    let result = match cmd {
        Command::Start => s.store.start_campaign(id, now).await,
        Command::Pause => s.store.pause_campaign(id, now).await,
        Command::Resume => s.store.resume_campaign(id, now).await,
        Command::Stop => s.store.stop_campaign(id, now).await,
    };
    let changed = match result {
        Ok(_) => true,
        Err(StoreError::InvalidCampaignCommand { state, .. }) if state == cmd.target() => false,
        Err(e) => return Err(e.into()),
    };
    let campaign = view_of(&s, id, now).await?;
    tracing::info!(campaign = id, command = cmd.as_str(), actor = %caller.name, changed,
        state = campaign.state, "campaign command over HTTP");
    Ok(Json(CommandView { changed, campaign }))
}

macro_rules! command_handler {
    ($name:ident, $cmd:expr) => {
        pub async fn $name(
            State(s): State<ApiState>,
            Extension(caller): Extension<Caller>,
            ApiPath(id): ApiPath<i64>,
            _body: JsonBody<NoBody>,
        ) -> Result<Json<CommandView>, ApiError> {
            command(s, caller, id, $cmd).await
        }
    };
}

command_handler!(start, Command::Start);
command_handler!(pause, Command::Pause);
command_handler!(resume, Command::Resume);
command_handler!(stop, Command::Stop);

// ---- satisfaction ----------------------------------------------------------------------

/// `GET /api/v1/supervisor/satisfaction`: overall and per survey campaign.
pub async fn satisfaction(
    State(s): State<ApiState>,
) -> Result<Json<SatisfactionSection>, ApiError> {
    let overall = s.store.satisfaction_report(None).await?;
    let mut campaigns = Vec::new();
    for c in s.store.campaigns().await? {
        if c.kind != CampaignKind::Survey {
            continue;
        }
        let report = s.store.satisfaction_report(Some(c.id)).await?;
        campaigns.push(CampaignSatisfaction::new(&c, &report));
    }
    Ok(Json(SatisfactionSection::new(&overall, campaigns)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_fields_are_named_and_defaults_follow_the_kind() {
        let p = policy_of(CampaignKind::Survey, serde_json::Map::new()).expect("defaults");
        assert_eq!(
            (p.kind, p.dialplan.as_str()),
            (CampaignKind::Survey, "survey")
        );
        let map = |v: serde_json::Value| v.as_object().cloned().expect("object");
        let e = policy_of(
            CampaignKind::Invitation,
            map(serde_json::json!({"max_cps": 0})),
        )
        .expect_err("max_cps 0");
        assert_eq!(e.field.as_deref(), Some("policy.max_cps"));
        let e = policy_of(
            CampaignKind::Invitation,
            map(serde_json::json!({"retry": {"busy": "soon"}})),
        )
        .expect_err("bad duration");
        assert_eq!(e.field.as_deref(), Some("policy.retry.busy"));
        let e = policy_of(
            CampaignKind::Invitation,
            map(serde_json::json!({"colour": "red"})),
        )
        .expect_err("unknown key");
        assert_eq!(e.field.as_deref(), Some("policy.colour"));
        let e = policy_of(
            CampaignKind::Invitation,
            map(serde_json::json!({"kind": "survey"})),
        )
        .expect_err("kind mismatch");
        assert_eq!(e.field.as_deref(), Some("policy.kind"));
        let e = policy_of(
            CampaignKind::Invitation,
            map(serde_json::json!({"calling_windows": ["20:00-08:00"], "days": []})),
        )
        .expect_err("two problems");
        assert_eq!(e.field.as_deref(), Some("policy.calling_windows[0]"));
        assert_eq!(
            e.extra
                .as_ref()
                .and_then(|x| x["problems"].as_array())
                .map(Vec::len),
            Some(2)
        );
    }
}
