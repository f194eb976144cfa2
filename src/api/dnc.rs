//! `/api/v1/do-not-call`: the list of numbers no campaign may call.
//!
//! A customer who complains to customer care ("stop calling me") must be off every
//! campaign at once, without someone at a shell: an admin adds the number here
//! (`POST`, source `supervisor`), which also closes that number's waiting contacts in
//! every campaign (`Store::add_do_not_call`). Adding a number already listed is not an
//! error: 200 with `added: false` and the entry as first recorded. Supervisors read the
//! list (masked numbers, like everywhere in their view; an admin sees them in full) and
//! can look a number up (`?msisdn=`). Removing a number is deliberately not offered:
//! it would undo a subscriber's own opt-out.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::auth::{Caller, Role};
use super::error::{ApiError, ApiQuery, JsonBody};
use crate::store::{DncEntry, DncSource};
use tongdai_domain::program::{mask_msisdn, normalize_msisdn};

/// Longest note kept with a number.
pub const MAX_NOTE_CHARS: usize = 500;

#[derive(Clone, Debug, Serialize)]
pub struct DncView {
    /// E.164 for admins, masked (`0903***678`) for supervisors.
    pub msisdn: String,
    /// `keypad` (pressed the opt-out key), `import`, `supervisor` (added here).
    pub source: &'static str,
    pub at: Timestamp,
    /// Keypad opt-outs: the campaign and attempt of the call.
    pub campaign_id: Option<i64>,
    pub attempt_id: Option<i64>,
    pub note: String,
}

pub(crate) fn view(e: DncEntry, role: Role) -> DncView {
    DncView {
        msisdn: if role == Role::Admin {
            e.msisdn
        } else {
            mask_msisdn(&e.msisdn)
        },
        source: e.source.as_str(),
        at: e.at,
        campaign_id: e.campaign_id,
        attempt_id: e.attempt_id,
        note: e.note,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Look one number up (any form).
    msisdn: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

#[derive(Serialize)]
struct PageView {
    items: Vec<DncView>,
    total: usize,
    limit: u32,
    offset: u32,
}

fn bad_query(field: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        ..ApiError::field(field, message)
    }
}

/// `GET /api/v1/do-not-call`: newest first, paged; or one number.
pub async fn list(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad_query("limit", "must be 1 to 1000"));
    }
    let offset = q.offset.unwrap_or(0);
    let entries = match &q.msisdn {
        Some(m) => {
            let m = normalize_msisdn(m).map_err(|e| bad_query("msisdn", e.to_string()))?;
            s.store.do_not_call_entry(&m).await?.into_iter().collect()
        }
        None => s.store.do_not_call_list().await?,
    };
    let total = entries.len();
    let items = entries
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|e| view(e, caller.role))
        .collect();
    Ok(Json(PageView {
        items,
        total,
        limit,
        offset,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    /// Any Vietnamese mobile form.
    msisdn: String,
    /// Why (the complaint's reference), kept with the number.
    #[serde(default)]
    note: Option<String>,
}

#[derive(Serialize)]
struct AddedView {
    /// False when the number was already on the list (the entry is the first one).
    added: bool,
    entry: DncView,
}

/// `POST /api/v1/do-not-call` (admin).
pub async fn add(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<AddBody>,
) -> Result<Response, ApiError> {
    let b = body.value;
    let msisdn =
        normalize_msisdn(&b.msisdn).map_err(|e| ApiError::field("msisdn", e.to_string()))?;
    let note = b.note.unwrap_or_default();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::field(
            "note",
            format!("at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    if note.contains('\0') {
        return Err(ApiError::field("note", "must not contain NUL characters"));
    }
    let note = note.trim();
    let now = s.clock.now();
    let added = s
        .store
        .add_do_not_call(&msisdn, DncSource::Supervisor, note, now)
        .await?;
    let entry = s
        .store
        .do_not_call_entry(&msisdn)
        .await?
        .ok_or_else(|| ApiError::internal("do-not-call entry missing after insert"))?;
    tracing::info!(msisdn = %mask_msisdn(&msisdn), actor = %caller.name, added,
        "do-not-call number added over HTTP");
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(AddedView {
            added,
            entry: view(entry, caller.role),
        }),
    )
        .into_response())
}
