//! `/api/v1/vinmec/…`: Vinmec HP's scheduling queue (roles `vinmec`, `admin`).
//!
//! Requests are validated here, field by field (the program's consultation window,
//! the longest consultation, video only with a reason); the store decides whether the
//! entry's state allows the change (`store::vinmec`) and writes it, its status change
//! and its event in one transaction. Numbers are shown in full: schedulers call them.

use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::{ApiError, ApiPath, ApiQuery, JsonBody};
use super::kept;
use super::names::ByName;
use super::{ApiState, local_text, national};
use crate::store::{
    AppointmentMethod, Booking, Idempotency, Idempotent, KeyedAnswer, MAX_TEXT_CHARS, QueueAction,
    QueueFilter, QueueItem, QueueStatus, RegistrationEvent,
};
use tongdai_domain::program::{self, Channel, ProgramConfig, Status, Window};

/// Header a client sets to make a change safe to retry.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Set on an answer replayed from an earlier request with the same key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// One queue entry as the API shows it (flat, so spreadsheets and the OpenAPI schema
/// stay simple).
#[derive(Clone, Debug, Serialize)]
pub struct QueueItemView {
    pub registration_id: i64,
    /// E.164.
    pub msisdn: String,
    /// The same number as dialled in Vietnam (`0903…`).
    pub msisdn_national: String,
    pub name: Option<String>,
    pub group: i64,
    /// `hotline`, `outbound_call`, `fanpage`.
    pub channel: &'static str,
    /// The specialty the customer chose (code), `null`: not sure.
    pub specialty: Option<u8>,
    /// The registration's status (`registered`, `sent_to_vinmec`, …).
    pub status: &'static str,
    pub registered_at: Timestamp,
    pub fanpage_ref: Option<String>,
    /// `waiting`, `claimed`, `done`, `cancelled` (as of the answer: a lapsed lease is
    /// `waiting`).
    pub queue_status: &'static str,
    pub claimed_by: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub need: Option<String>,
    pub routed_specialty: Option<u8>,
    pub appointment_at: Option<Timestamp>,
    /// The appointment in the program's time zone, `YYYY-MM-DD HH:MM`.
    pub appointment_local: Option<String>,
    pub appointment_minutes: Option<u32>,
    /// `phone` or `video`.
    pub appointment_method: Option<&'static str>,
    pub video_reason: Option<String>,
    pub consultation_report: Option<String>,
    pub consulted_at: Option<Timestamp>,
    pub unreachable_count: u32,
    pub enqueued_at: Timestamp,
    pub updated_at: Timestamp,
}

impl QueueItemView {
    pub fn new(item: &QueueItem, cfg: &ProgramConfig) -> QueueItemView {
        let r = &item.registration;
        let e = &item.entry.queue;
        QueueItemView {
            registration_id: r.id,
            msisdn: r.msisdn.clone(),
            msisdn_national: national(&r.msisdn),
            name: r.name.clone(),
            group: r.group.number(),
            channel: r.channel.as_str(),
            specialty: r.specialty,
            status: r.status.as_str(),
            registered_at: r.created_at,
            fanpage_ref: r.fanpage_ref.clone(),
            queue_status: e.status.as_str(),
            claimed_by: e.claimed_by.clone(),
            lease_until: e.lease_until,
            need: e.prescreen_note.clone(),
            routed_specialty: e.routed_specialty,
            appointment_at: e.appointment_at,
            appointment_local: e.appointment_at.map(|t| local_text(t, cfg)),
            appointment_minutes: e.appointment_minutes,
            appointment_method: e.appointment_method.map(AppointmentMethod::as_str),
            video_reason: e.video_reason.clone(),
            consultation_report: e.consultation_report.clone(),
            consulted_at: e.consulted_at,
            unreachable_count: e.unreachable_count,
            enqueued_at: item.entry.enqueued_at,
            updated_at: item.entry.updated_at,
        }
    }
}

#[derive(Serialize)]
struct PageView {
    items: Vec<QueueItemView>,
    total: u64,
    limit: u32,
    offset: u32,
}

#[derive(Serialize)]
pub(crate) struct EventView {
    at: Timestamp,
    from_status: Option<&'static str>,
    to_status: &'static str,
    action: String,
    actor: String,
    detail: String,
}

impl From<RegistrationEvent> for EventView {
    fn from(e: RegistrationEvent) -> Self {
        EventView {
            at: e.at,
            from_status: e.from_status.map(Status::as_str),
            to_status: e.to_status.as_str(),
            action: e.action,
            actor: e.actor,
            detail: e.detail,
        }
    }
}

#[derive(Serialize)]
struct DetailView {
    item: QueueItemView,
    events: Vec<EventView>,
}

/// The answer to `POST /api/v1/vinmec/queue/claim`.
#[derive(Serialize)]
pub struct ClaimedView {
    items: Vec<QueueItemView>,
}

impl ClaimedView {
    pub fn new(items: &[QueueItem], cfg: &ProgramConfig) -> ClaimedView {
        ClaimedView {
            items: items.iter().map(|i| QueueItemView::new(i, cfg)).collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<ByName<QueueStatus>>,
    registration_status: Option<ByName<Status>>,
    channel: Option<ByName<Channel>>,
    /// Only entries whose lease the caller holds.
    #[serde(default)]
    mine: bool,
    limit: Option<u32>,
    offset: Option<u32>,
}

pub async fn list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            ..ApiError::field("limit", "must be 1 to 500")
        });
    }
    let offset = q.offset.unwrap_or(0);
    let filter = QueueFilter {
        status: q.status.map(|s| s.0),
        registration_status: q.registration_status.map(|s| s.0),
        channel: q.channel.map(|c| c.0),
        claimed_by: q.mine.then(|| caller.name.clone()),
        limit,
        offset,
    };
    let page = s.store.vinmec_queue(&filter, s.clock.now()).await?;
    Ok(Json(PageView {
        items: page
            .items
            .iter()
            .map(|i| QueueItemView::new(i, &s.program))
            .collect(),
        total: page.total,
        limit,
        offset,
    })
    .into_response())
}

pub async fn detail(
    State(s): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let Some(item) = s.store.vinmec_item(id, s.clock.now()).await? else {
        return Err(ApiError::not_found(format!("registration {id} not found")));
    };
    let events = s.store.events(id).await?;
    Ok(Json(DetailView {
        item: QueueItemView::new(&item, &s.program),
        events: events.into_iter().map(EventView::from).collect(),
    })
    .into_response())
}

/// The request's Idempotency-Key, scoped to the caller and bound to this request.
pub fn idempotency(
    headers: &HeaderMap,
    caller: &Caller,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<Option<Idempotency>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters (a UUID is ideal)",
            )
        })?;
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b" ");
    h.update(uri.path().as_bytes());
    h.update(b"\n");
    h.update(body);
    Ok(Some(Idempotency {
        principal: caller.name.clone(),
        key: key.to_owned(),
        request_hash: hex::encode(h.finalize()),
    }))
}

/// A change's answer, made now (a retry with its key gets it through [`replay`]).
pub fn answer<T: Serialize>(status: StatusCode, body: &T) -> Response {
    (status, Json(body)).into_response()
}

/// The answer an earlier request with the same key kept (see [`kept`]), byte for byte
/// as it was sent, marked as replayed.
pub fn replay(status: StatusCode, kept: String) -> Response {
    let mut response = (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        kept,
    )
        .into_response();
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// The lease a request asks for (seconds), within `api.max_lease`.
fn lease(s: &ApiState, seconds: Option<u64>) -> Result<Duration, ApiError> {
    let max = s.settings.max_lease;
    match seconds {
        None => Ok(s.settings.lease),
        Some(n) if (60..=max.as_secs()).contains(&n) => Ok(Duration::from_secs(n)),
        Some(_) => Err(ApiError::field(
            "lease_seconds",
            format!("must be 60 to {} seconds", max.as_secs()),
        )),
    }
}

/// A required free-text field: trimmed, not empty, at most [`MAX_TEXT_CHARS`].
pub fn text(field: &str, value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    optional_text(field, v)
}

pub fn optional_text(field: &str, value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.contains('\0') {
        return Err(ApiError::field(field, "must not contain NUL characters"));
    }
    if v.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::field(
            field,
            format!("at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(v.to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimNext {
    /// How many of the oldest waiting entries to take (1–20, default 1).
    count: Option<u32>,
    lease_seconds: Option<u64>,
}

pub async fn claim_next(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<ClaimNext>,
) -> Result<Response, ApiError> {
    let count = body.value.count.unwrap_or(1);
    if !(1..=20).contains(&count) {
        return Err(ApiError::field("count", "must be 1 to 20"));
    }
    let lease = lease(&s, body.value.lease_seconds)?;
    let idem = idempotency(&headers, &caller, &method, &uri, &body.raw)?;
    let keep = |items: &[QueueItem]| kept::text(&ClaimedView::new(items, &s.program));
    let keyed = idem.as_ref().map(|key| KeyedAnswer { key, answer: &keep });
    match s
        .store
        .vinmec_claim_next(count, lease, &caller.name, s.clock.now(), keyed)
        .await?
    {
        Idempotent::Done(items) => Ok(answer(
            StatusCode::OK,
            &ClaimedView::new(&items, &s.program),
        )),
        Idempotent::Replayed(text) => {
            let body = kept::claimed(text).body(|items| ClaimedView::new(items, &s.program))?;
            Ok(replay(StatusCode::OK, body))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseBody {
    lease_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrescreenBody {
    /// What the customer needs advice on (health data: kept on the entry only).
    need: String,
    routed_specialty: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    /// Local date in the program's time zone.
    date: Date,
    /// Local start time, `HH:MM`.
    time: Time,
    method: ByName<AppointmentMethod>,
    video_reason: Option<String>,
    duration_minutes: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// The doctor's report summary.
    report: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    reason: String,
}

/// Checks a booking against the program: inside the consultation period (local dates,
/// the whole consultation), not in the past, at most `max_consultation_minutes`, video
/// only with a reason.
pub fn validate_booking(
    b: &BookBodyFields,
    cfg: &ProgramConfig,
    now: Timestamp,
) -> Result<Booking, ApiError> {
    let max = cfg.max_consultation_minutes;
    if b.duration_minutes == 0 || b.duration_minutes > max {
        return Err(ApiError::field(
            "duration_minutes",
            format!("a consultation lasts 1 to {max} minutes"),
        ));
    }
    let video_reason = b
        .video_reason
        .as_deref()
        .map(|r| optional_text("video_reason", r))
        .transpose()?
        .filter(|r| !r.is_empty());
    match (b.method, &video_reason) {
        (AppointmentMethod::Video, None) => {
            return Err(ApiError::field(
                "video_reason",
                "a video consultation needs a reason (phone is the rule)",
            ));
        }
        (AppointmentMethod::Phone, Some(_)) => {
            return Err(ApiError::field("video_reason", "only for method video"));
        }
        _ => {}
    }
    if program::consultation_window(b.date, cfg) != Window::Open {
        return Err(ApiError::field(
            "date",
            format!(
                "consultations take place {} to {}",
                cfg.consultation_start, cfg.consultation_end
            ),
        ));
    }
    let tz = super::zone(cfg);
    let start = b
        .date
        .to_datetime(b.time)
        .to_zoned_datetime(tz.clone())
        .map_err(|e| ApiError::field("time", e.to_string()))?;
    let end = start
        .checked_add(jiff::SignedDuration::from_mins(i64::from(
            b.duration_minutes,
        )))
        .map_err(|e| ApiError::field("duration_minutes", e.to_string()))?;
    // The end instant itself may be midnight after the last day.
    let last_minute = end
        .checked_sub(jiff::SignedDuration::from_secs(1))
        .map_err(|e| ApiError::field("duration_minutes", e.to_string()))?;
    if last_minute.date() > cfg.consultation_end {
        return Err(ApiError::field(
            "time",
            format!(
                "the consultation must end by the end of {}",
                cfg.consultation_end
            ),
        ));
    }
    let at = start.timestamp();
    if at <= now {
        return Err(ApiError::field("date", "the appointment is in the past"));
    }
    Ok(Booking {
        at,
        minutes: b.duration_minutes,
        method: b.method,
        video_reason,
    })
}

/// The booking fields (separate from the body so unit tests can build them).
pub struct BookBodyFields {
    pub date: Date,
    pub time: Time,
    pub method: AppointmentMethod,
    pub video_reason: Option<String>,
    pub duration_minutes: u32,
}

async fn apply(
    s: &ApiState,
    caller: &Caller,
    id: i64,
    action: QueueAction,
    idem: Option<Idempotency>,
) -> Result<Response, ApiError> {
    let keep = |item: &QueueItem| kept::text(&QueueItemView::new(item, &s.program));
    let keyed = idem.as_ref().map(|key| KeyedAnswer { key, answer: &keep });
    match s
        .store
        .vinmec_apply(id, &action, &caller.name, s.clock.now(), keyed)
        .await?
    {
        Idempotent::Done(item) => {
            tracing::info!(registration = id, action = action.name(), actor = %caller.name,
                status = %item.registration.status, "vinmec queue change");
            Ok(answer(
                StatusCode::OK,
                &QueueItemView::new(&item, &s.program),
            ))
        }
        Idempotent::Replayed(text) => {
            let body = kept::queue_item(text).body(|item| QueueItemView::new(item, &s.program))?;
            Ok(replay(StatusCode::OK, body))
        }
    }
}

/// The common shape of every `POST /api/v1/vinmec/queue/{id}/<action>` handler.
macro_rules! action_handler {
    ($name:ident, $body:ty, |$s:ident, $b:ident| $make:expr) => {
        pub async fn $name(
            State($s): State<ApiState>,
            Extension(caller): Extension<Caller>,
            ApiPath(id): ApiPath<i64>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: JsonBody<$body>,
        ) -> Result<Response, ApiError> {
            let $b = &body.value;
            let action: QueueAction = $make?;
            let idem = idempotency(&headers, &caller, &method, &uri, &body.raw)?;
            apply(&$s, &caller, id, action, idem).await
        }
    };
}

action_handler!(claim, LeaseBody, |s, b| lease(&s, b.lease_seconds)
    .map(|lease| QueueAction::Claim { lease }));
action_handler!(renew, LeaseBody, |s, b| lease(&s, b.lease_seconds)
    .map(|lease| QueueAction::Renew { lease }));
action_handler!(release, Empty, |s, b| {
    let _ = (&s, b);
    Ok::<_, ApiError>(QueueAction::Release)
});
action_handler!(prescreen, PrescreenBody, |s, b| {
    text("need", &b.need).and_then(|need| {
        if s.program.specialty(b.routed_specialty).is_none() {
            Err(ApiError::field(
                "routed_specialty",
                format!("unknown specialty code {}", b.routed_specialty),
            ))
        } else {
            Ok(QueueAction::Prescreen {
                need,
                routed_specialty: b.routed_specialty,
            })
        }
    })
});
action_handler!(book, BookBody, |s, b| validate_booking(
    &BookBodyFields {
        date: b.date,
        time: b.time,
        method: b.method.0,
        video_reason: b.video_reason.clone(),
        duration_minutes: b.duration_minutes,
    },
    &s.program,
    s.clock.now()
)
.map(QueueAction::Book));
action_handler!(unreachable, NoteBody, |s, b| {
    let _ = &s;
    optional_text("note", b.note.as_deref().unwrap_or(""))
        .map(|note| QueueAction::Unreachable { note })
});
action_handler!(consulted, ReportBody, |s, b| {
    let _ = &s;
    text("report", &b.report).map(|report| QueueAction::Consulted { report })
});
action_handler!(cancel, ReasonBody, |s, b| {
    let _ = &s;
    text("reason", &b.reason).map(|reason| QueueAction::Cancel { reason })
});

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn fields(
        d: Date,
        t: Time,
        method: AppointmentMethod,
        reason: Option<&str>,
        min: u32,
    ) -> BookBodyFields {
        BookBodyFields {
            date: d,
            time: t,
            method,
            video_reason: reason.map(str::to_owned),
            duration_minutes: min,
        }
    }

    fn field_of(r: Result<Booking, ApiError>) -> String {
        match r {
            Ok(b) => panic!("accepted {b:?}"),
            Err(e) => e.field.unwrap_or_default(),
        }
    }

    #[test]
    fn bookings_follow_the_program() {
        let cfg = ProgramConfig::default();
        let now: Timestamp = "2021-11-27T03:00:00Z".parse().expect("ts");
        let ok = validate_booking(
            &fields(
                date(2021, 11, 29),
                time(9, 0, 0, 0),
                AppointmentMethod::Phone,
                None,
                30,
            ),
            &cfg,
            now,
        )
        .expect("valid");
        // 09:00 in Hanoi is 02:00 UTC.
        assert_eq!(ok.at.to_string(), "2021-11-29T02:00:00Z");
        use AppointmentMethod::{Phone, Video};
        let cases: &[(BookBodyFields, &str)] = &[
            (
                fields(date(2021, 11, 29), time(9, 0, 0, 0), Phone, None, 31),
                "duration_minutes",
            ),
            (
                fields(date(2021, 11, 29), time(9, 0, 0, 0), Phone, None, 0),
                "duration_minutes",
            ),
            (
                fields(date(2021, 11, 29), time(9, 0, 0, 0), Video, None, 20),
                "video_reason",
            ),
            (
                fields(date(2021, 11, 29), time(9, 0, 0, 0), Video, Some("  "), 20),
                "video_reason",
            ),
            (
                fields(date(2021, 11, 29), time(9, 0, 0, 0), Phone, Some("x"), 20),
                "video_reason",
            ),
            (
                fields(date(2021, 12, 31), time(9, 0, 0, 0), Phone, None, 20),
                "date",
            ),
            (
                fields(date(2021, 11, 25), time(9, 0, 0, 0), Phone, None, 20),
                "date",
            ),
            (
                fields(date(2021, 12, 30), time(23, 45, 0, 0), Phone, None, 30),
                "time",
            ),
            // 09:00 local on the 27th is 02:00 UTC, before `now`.
            (
                fields(date(2021, 11, 27), time(9, 0, 0, 0), Phone, None, 30),
                "date",
            ),
        ];
        for (f, field) in cases {
            assert_eq!(field_of(validate_booking(f, &cfg, now)), *field);
        }
        // Ending exactly at midnight of the last day is inside.
        assert!(
            validate_booking(
                &fields(
                    date(2021, 12, 30),
                    time(23, 30, 0, 0),
                    Video,
                    Some("cần xem vết thương"),
                    30
                ),
                &cfg,
                now
            )
            .is_ok()
        );
    }
}
