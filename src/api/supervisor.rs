//! The supervisors' view (roles `supervisor`, `admin`; read-only): one [`Snapshot`]
//! struct whose sections are also served one by one, so the JSON endpoints, the live
//! page's event stream and the tests all see the same shapes.
//!
//! Numbers are masked (`0903***678`): supervisors watch the line, they do not call
//! customers. The outbound side has its sections next to `calls`, `lines`,
//! `registrations` and `vinmec`: `campaigns` (each campaign's queue and the outbound
//! queue added up, also shown on the trunk's line in `lines`), `satisfaction` (the
//! survey's rate) and `trunk`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::campaigns::{CampaignsSection, QueueCounts, SatisfactionSection};
use super::error::{ApiError, ApiQuery};
use super::trunk::TrunkView;
use super::{ApiState, zone};
use crate::call::CallRecord;
use crate::store::{
    CallRecordRow, CallStats, Disposition, QueueStats, QueueStatus, RegistrationStats,
};
use crate::telemetry::mask_number;
use tongdai_domain::program::{Channel, ProgramConfig, Status};

/// Everything the live page shows, at one instant.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub generated_at: Timestamp,
    pub program: ProgramView,
    pub calls: ActiveCalls,
    pub lines: Vec<LineView>,
    pub registrations: CapView,
    pub vinmec: QueueSummary,
    pub charts: Charts,
    pub campaigns: CampaignsSection,
    pub satisfaction: SatisfactionSection,
    pub trunk: TrunkView,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProgramView {
    pub name: String,
    pub timezone: String,
    /// The program's local date (the `program.today` override when set).
    pub today: String,
    pub registration_start: String,
    pub registration_end: String,
    pub consultation_start: String,
    pub consultation_end: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActiveCalls {
    pub count: usize,
    pub inbound: usize,
    pub outbound: usize,
    /// Oldest first.
    pub active: Vec<ActiveCallView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActiveCallView {
    pub call_id: String,
    pub direction: String,
    /// The subscriber's number, masked (the caller inbound, the called party outbound).
    pub number: String,
    /// Our number on the call (the line: 9090, 9091…).
    pub line: String,
    /// `ringing` until answered, then `answered`.
    pub state: &'static str,
    pub dialplan: Option<String>,
    /// The IVR node the call is in, when known.
    pub ivr_node: Option<String>,
    pub started_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub duration_seconds: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LineView {
    pub line: String,
    pub active: usize,
    /// Finished calls since the start of the program's local day, by disposition.
    pub today_total: u64,
    pub today: BTreeMap<String, u64>,
    pub last_hour_total: u64,
    /// On the line campaigns dial from (the trunk's caller id): their queue, added up
    /// over running and paused campaigns. `null` on other lines.
    pub outbound_queue: Option<QueueCounts>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapView {
    pub cap: u32,
    pub used: u32,
    pub left: u32,
    pub by_channel: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueueSummary {
    /// Every queue status, zero included.
    pub by_status: BTreeMap<String, u64>,
    pub by_registration_status: BTreeMap<String, u64>,
    pub oldest_waiting_since: Option<Timestamp>,
    pub oldest_waiting_seconds: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Charts {
    /// Calls started per minute over the last hour, oldest first (60 buckets).
    pub calls_per_minute: Vec<MinuteCount>,
    /// Finished calls today by disposition (every disposition, zero included).
    pub dispositions: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MinuteCount {
    pub minute: Timestamp,
    pub count: u64,
}

/// The IVR node of an active call: the runner keeps `ivr_node` current in the call log
/// as the engine moves; a finished record only has its path.
fn current_node(r: &CallRecord) -> Option<String> {
    r.ivr_node.clone().or_else(|| r.ivr_path.last().cloned())
}

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn active_view(r: &CallRecord, now: Timestamp) -> ActiveCallView {
    let outbound = r.direction == "outbound";
    let (number, line) = if outbound {
        (&r.called, &r.caller)
    } else {
        (&r.caller, &r.called)
    };
    let started_at = ts(r.started_at);
    ActiveCallView {
        call_id: r.call_id.clone(),
        direction: r.direction.to_owned(),
        number: number.as_deref().map(mask_number).unwrap_or_default(),
        line: line.clone().unwrap_or_default(),
        state: if r.answered_at.is_some() {
            "answered"
        } else {
            "ringing"
        },
        dialplan: r.dialplan.clone(),
        ivr_node: current_node(r),
        started_at,
        answered_at: r.answered_at.map(ts),
        duration_seconds: u64::try_from(now.duration_since(started_at).as_secs()).unwrap_or(0),
    }
}

pub fn active_calls(records: &[CallRecord], now: Timestamp) -> ActiveCalls {
    let mut active: Vec<ActiveCallView> = records.iter().map(|r| active_view(r, now)).collect();
    active.sort_by(|a, b| {
        a.started_at
            .cmp(&b.started_at)
            .then(a.call_id.cmp(&b.call_id))
    });
    let outbound = active.iter().filter(|c| c.direction == "outbound").count();
    ActiveCalls {
        count: active.len(),
        inbound: active.len() - outbound,
        outbound,
        active,
    }
}

pub fn cap_view(stats: &RegistrationStats, cfg: &ProgramConfig) -> CapView {
    let mut by_channel: BTreeMap<String, u64> = Channel::ALL
        .iter()
        .map(|c| (c.as_str().to_owned(), 0))
        .collect();
    let mut by_status: BTreeMap<String, u64> = Status::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    for ((channel, status), n) in &stats.by_channel_status {
        *by_channel.entry(channel.as_str().to_owned()).or_default() += n;
        *by_status.entry(status.as_str().to_owned()).or_default() += n;
    }
    CapView {
        cap: cfg.cap,
        used: stats.used,
        left: cfg.cap.saturating_sub(stats.used),
        by_channel,
        by_status,
    }
}

pub fn queue_summary(stats: &QueueStats, now: Timestamp) -> QueueSummary {
    let by_status = QueueStatus::ALL
        .iter()
        .map(|s| {
            (
                s.as_str().to_owned(),
                stats.by_status.get(s).copied().unwrap_or(0),
            )
        })
        .collect();
    let by_registration_status = Status::ALL
        .iter()
        .map(|s| {
            (
                s.as_str().to_owned(),
                stats.by_registration_status.get(s).copied().unwrap_or(0),
            )
        })
        .collect();
    QueueSummary {
        by_status,
        by_registration_status,
        oldest_waiting_since: stats.oldest_waiting_since,
        oldest_waiting_seconds: stats
            .oldest_waiting_since
            .map(|t| u64::try_from(now.duration_since(t).as_secs()).unwrap_or(0)),
    }
}

/// Start of the program's local day containing `now`.
fn local_midnight(now: Timestamp, cfg: &ProgramConfig) -> Timestamp {
    now.to_zoned_datetime(zone(cfg))
        .start_of_day()
        .map(|z| z.timestamp())
        .unwrap_or(now)
}

/// The minute `t` falls in.
fn minute_floor(t: Timestamp) -> Timestamp {
    let s = t.as_second();
    Timestamp::from_second(s - s.rem_euclid(60)).unwrap_or(t)
}

fn disposition_map(src: &std::collections::HashMap<Disposition, u64>) -> BTreeMap<String, u64> {
    Disposition::ALL
        .iter()
        .map(|d| (d.as_str().to_owned(), src.get(d).copied().unwrap_or(0)))
        .collect()
}

/// Per line: active calls (call log), finished calls today and in the last hour (store).
pub fn lines(active: &ActiveCalls, today: &CallStats, hour: &CallStats) -> Vec<LineView> {
    let mut names: Vec<String> = today.per_line.keys().cloned().collect();
    for c in &active.active {
        names.push(c.line.clone());
    }
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|line| {
            let t = today.per_line.get(&line);
            LineView {
                active: active.active.iter().filter(|c| c.line == line).count(),
                today_total: t.map(|t| t.total).unwrap_or(0),
                today: t
                    .map(|t| disposition_map(&t.by_disposition))
                    .unwrap_or_else(|| disposition_map(&Default::default())),
                last_hour_total: hour.per_line.get(&line).map(|h| h.total).unwrap_or(0),
                outbound_queue: None,
                line,
            }
        })
        .collect()
}

fn charts(active: &ActiveCalls, hour: &CallStats, today: &CallStats, now: Timestamp) -> Charts {
    let end = minute_floor(now);
    let mut calls_per_minute: Vec<MinuteCount> = (0..60)
        .rev()
        .filter_map(|i| end.checked_sub(SignedDuration::from_mins(i)).ok())
        .map(|minute| {
            // The store groups by the UTC minute text `YYYY-MM-DDTHH:MM`.
            let key = minute.to_string().chars().take(16).collect::<String>();
            MinuteCount {
                minute,
                count: hour.per_minute.get(&key).copied().unwrap_or(0),
            }
        })
        .collect();
    // Calls still in progress count in the minute they started.
    for c in &active.active {
        let m = minute_floor(c.started_at);
        if let Some(b) = calls_per_minute.iter_mut().find(|b| b.minute == m) {
            b.count += 1;
        }
    }
    Charts {
        calls_per_minute,
        dispositions: disposition_map(&today.by_disposition),
    }
}

fn program_view(cfg: &ProgramConfig, now: Timestamp) -> ProgramView {
    ProgramView {
        name: cfg.name.clone(),
        timezone: cfg.timezone.clone(),
        today: tongdai_domain::program::today(now, cfg)
            .map(|d| d.to_string())
            .unwrap_or_default(),
        registration_start: cfg.registration_start.to_string(),
        registration_end: cfg.registration_end.to_string(),
        consultation_start: cfg.consultation_start.to_string(),
        consultation_end: cfg.consultation_end.to_string(),
    }
}

/// Builds the whole snapshot: the call log in memory plus four aggregate queries.
pub async fn snapshot(s: &ApiState) -> Result<Snapshot, ApiError> {
    let now = s.clock.now();
    let calls = active_calls(&s.calls.active(), now);
    let hour_ago = now
        .checked_sub(SignedDuration::from_hours(1))
        .unwrap_or(now);
    let midnight = local_midnight(now, &s.program);
    let since = hour_ago.min(midnight);
    let all = s.store.call_stats(minute_floor(since)).await?;
    // One query serves both windows when the hour lies within today (the common case).
    let (today, hour) = if since == midnight {
        (all, s.store.call_stats(minute_floor(hour_ago)).await?)
    } else {
        (s.store.call_stats(midnight).await?, all)
    };
    let registrations = s.store.registration_stats().await?;
    let queue = s.store.queue_stats(now).await?;
    let (campaigns, satisfaction) = super::campaigns::sections(s, now).await?;
    let mut lines = lines(&calls, &today, &hour);
    attach_outbound_queue(&mut lines, s.outbound_line.as_deref(), &campaigns.queue);
    Ok(Snapshot {
        generated_at: now,
        program: program_view(&s.program, now),
        lines,
        charts: charts(&calls, &hour, &today, now),
        calls,
        registrations: cap_view(&registrations, &s.program),
        vinmec: queue_summary(&queue, now),
        campaigns,
        satisfaction,
        trunk: super::trunk::current(s),
    })
}

/// Puts the campaigns' queue on the line they dial from, listing that line even before
/// its first call when a campaign is running or paused.
pub fn attach_outbound_queue(lines: &mut Vec<LineView>, line: Option<&str>, queue: &QueueCounts) {
    let Some(line) = line else { return };
    if let Some(l) = lines.iter_mut().find(|l| l.line == line) {
        l.outbound_queue = Some(queue.clone());
    } else if queue.campaigns > 0 {
        lines.push(LineView {
            line: line.to_owned(),
            active: 0,
            today_total: 0,
            today: disposition_map(&Default::default()),
            last_hour_total: 0,
            outbound_queue: Some(queue.clone()),
        });
        lines.sort_by(|a, b| a.line.cmp(&b.line));
    }
}

pub async fn get_snapshot(State(s): State<ApiState>) -> Result<Response, ApiError> {
    Ok(Json(snapshot(&s).await?).into_response())
}

pub async fn get_active(State(s): State<ApiState>) -> Json<ActiveCalls> {
    Json(active_calls(&s.calls.active(), s.clock.now()))
}

pub async fn get_lines(State(s): State<ApiState>) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({ "lines": snapshot(&s).await?.lines })).into_response())
}

pub async fn get_registrations(State(s): State<ApiState>) -> Result<Json<CapView>, ApiError> {
    let stats = s.store.registration_stats().await?;
    Ok(Json(cap_view(&stats, &s.program)))
}

pub async fn get_vinmec(State(s): State<ApiState>) -> Result<Json<QueueSummary>, ApiError> {
    let now = s.clock.now();
    let stats = s.store.queue_stats(now).await?;
    Ok(Json(queue_summary(&stats, now)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentQuery {
    limit: Option<u32>,
}

#[derive(Serialize)]
pub struct RecentCallView {
    pub call_id: String,
    pub direction: String,
    pub number: String,
    pub line: String,
    pub started_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub duration_seconds: Option<u64>,
    pub final_status: Option<u16>,
    /// `answered`, `busy`, `no_answer`, … (`store::Disposition`).
    pub disposition: &'static str,
    pub end_reason: String,
    pub ivr_path: Vec<String>,
}

pub(crate) fn recent_view(r: CallRecordRow) -> RecentCallView {
    let outbound = r.direction.as_str() == "outbound";
    let (number, line) = if outbound {
        (&r.called, &r.caller)
    } else {
        (&r.caller, &r.called)
    };
    RecentCallView {
        number: number.as_deref().map(mask_number).unwrap_or_default(),
        line: line.clone().unwrap_or_default(),
        direction: r.direction.as_str().to_owned(),
        duration_seconds: r
            .ended_at
            .map(|e| u64::try_from(e.duration_since(r.started_at).as_secs()).unwrap_or(0)),
        call_id: r.call_id,
        started_at: r.started_at,
        answered_at: r.answered_at,
        ended_at: r.ended_at,
        final_status: r.final_status,
        disposition: r.disposition.as_str(),
        end_reason: r.end_reason,
        ivr_path: r.ivr_path,
    }
}

/// Finished calls, newest first, from the store (so they survive a restart).
pub async fn get_recent(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<RecentQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError {
            status: axum::http::StatusCode::BAD_REQUEST,
            ..ApiError::field("limit", "must be 1 to 1000")
        });
    }
    let rows = s.store.call_records(i64::from(limit)).await?;
    let calls: Vec<RecentCallView> = rows.into_iter().map(recent_view).collect();
    Ok(Json(serde_json::json!({ "calls": calls })).into_response())
}
