//! `POST /api/v1/fanpage/registrations`: group-2 intake (roles `fanpage`, `admin`).
//!
//! A fanpage admin enters what a commenter sent in the inbox. The registration goes
//! through `Store::register` — the same transaction as the 9090 line, so the cap, the
//! registration dates and one registration per number hold across channels.
//!
//! Idempotency-Key: the answer of a successful intake is stored after the registration
//! commits (two transactions; `Store::register` stays the phone channels' code path). A
//! retry after a crash between the two finds the number registered and answers 409
//! `already_registered` with the same registration: never a second registration.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::{ApiError, JsonBody};
use super::kept;
use super::vinmec::{answer, idempotency, replay};
use super::{ApiState, national};
use crate::store::{NewRegistration, RegisterOutcome, Registration};
use tongdai_domain::program::{self, Channel, Group, Window};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeBody {
    /// Any Vietnamese mobile form (0903…, 84903…, +84903…).
    msisdn: String,
    name: String,
    /// Specialty code, `null` when the customer is not sure yet.
    specialty: Option<u8>,
    /// The fanpage post/comment/conversation the registration came from.
    fanpage_ref: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RegistrationView {
    pub registration_id: i64,
    pub msisdn: String,
    pub msisdn_national: String,
    pub name: Option<String>,
    pub group: i64,
    pub channel: &'static str,
    pub specialty: Option<u8>,
    pub status: &'static str,
    pub registered_at: Timestamp,
    pub fanpage_ref: Option<String>,
    /// Places left in the program after this registration.
    pub places_left: u32,
}

pub(crate) fn view(r: &Registration, places_left: u32) -> RegistrationView {
    RegistrationView {
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
        places_left,
    }
}

fn bounded(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    if v.contains('\0') {
        return Err(ApiError::field(field, "must not contain NUL characters"));
    }
    if v.chars().count() > max {
        return Err(ApiError::field(field, format!("at most {max} characters")));
    }
    Ok(v.to_owned())
}

pub async fn intake(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<IntakeBody>,
) -> Result<Response, ApiError> {
    let b = &body.value;
    // Validate every field before anything is written, in the order of the form.
    let msisdn = program::normalize_msisdn(&b.msisdn)
        .map_err(|e| ApiError::field("msisdn", e.to_string()))?;
    let name = bounded("name", &b.name, 200)?;
    if let Some(code) = b.specialty
        && s.program.specialty(code).is_none()
    {
        return Err(ApiError::field(
            "specialty",
            format!("unknown specialty code {code}"),
        ));
    }
    let fanpage_ref = bounded("fanpage_ref", &b.fanpage_ref, 500)?;
    let idem = idempotency(&headers, &caller, &method, &uri, &body.raw)?;
    if let Some(idem) = &idem
        && let Some(text) = s.store.idempotent_outcome(idem).await?
    {
        let body = kept::intake(text).body(|(reg, left)| view(reg, *left))?;
        return Ok(replay(StatusCode::CREATED, body));
    }
    let now = s.clock.now();
    let today = program::today(now, &s.program).map_err(ApiError::internal)?;
    let outcome = s
        .store
        .register(
            NewRegistration {
                msisdn,
                group: Group::Two,
                channel: Channel::Fanpage,
                specialty: b.specialty,
                call_id: None,
                name: Some(name),
                fanpage_ref: Some(fanpage_ref),
            },
            &s.program,
            today,
            now,
        )
        .await?;
    let conflict = |code, msg: &str| ApiError::new(StatusCode::CONFLICT, code, msg);
    match outcome {
        RegisterOutcome::Registered(reg) => {
            let used = s.store.registered_count().await?;
            let left = s.program.cap.saturating_sub(used);
            tracing::info!(registration = reg.id, actor = %caller.name, places_left = left,
                "fanpage registration");
            let body = view(&reg, left);
            if let Some(idem) = &idem {
                let text = kept::text(&body).map_err(ApiError::internal)?;
                s.store.remember_outcome(idem, &text, now).await?;
            }
            Ok(answer(StatusCode::CREATED, &body))
        }
        RegisterOutcome::AlreadyRegistered(reg) => Err(conflict(
            "already_registered",
            "this number already has a registration (one per subscriber)",
        )
        .with("registration_id", reg.id)
        .with("status", reg.status.as_str())
        .with("channel", reg.channel.as_str())),
        RegisterOutcome::CapReached => Err(conflict(
            "cap_full",
            &format!("all {} places are taken", s.program.cap),
        )),
        RegisterOutcome::OutsideWindow(Window::NotOpen) => Err(conflict(
            "registration_not_open",
            &format!("registration opens on {}", s.program.registration_start),
        )),
        RegisterOutcome::OutsideWindow(_) => Err(conflict(
            "registration_closed",
            &format!("registration closed on {}", s.program.registration_end),
        )),
        RegisterOutcome::NotEligible(e) => {
            Err(conflict("not_eligible", &format!("not eligible: {e:?}")))
        }
    }
}
