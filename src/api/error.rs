//! JSON errors and the request extractors that produce them.
//!
//! Every error the API answers is `{"error": code, "message": text, "field": name?}`
//! with a 4xx/5xx status: a stable machine `code`, a sentence for people, and — for bad
//! input — the field at fault (a JSON path like `duration_minutes`, a query parameter,
//! or a header name). axum's own extractors answer plain text, so the API uses the
//! wrappers here ([`JsonBody`], [`ApiQuery`], [`ApiPath`]) instead.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{QueueRefusal, StoreError};
use crate::telemetry::mask_number;

/// Largest request body accepted (JSON bodies here are a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Extra members of the error object (e.g. the existing registration's id).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extra: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            extra: None,
        }
    }

    /// 422: `field` is wrong, and why.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> ApiError {
        self.extra
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.into());
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "API request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the service log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
            field: self.field.as_deref(),
            extra: self.extra.as_ref(),
        };
        let text = serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"error":"internal","message":"error not serialisable"}"#.to_owned()
        });
        let mut response = (
            self.status,
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            text,
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tongdai\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let conflict = |code, msg: String| ApiError::new(StatusCode::CONFLICT, code, msg);
        match e {
            StoreError::NotFound { what, key } => {
                ApiError::not_found(format!("{what} {key} not found"))
            }
            StoreError::InvalidTransition { id, from, to } => conflict(
                "invalid_transition",
                format!("registration {id}: status cannot go from {from} to {to}"),
            )
            .with("from", from.as_str())
            .with("to", to.as_str()),
            StoreError::Queue(r) => {
                let msg = r.to_string();
                match r {
                    QueueRefusal::LeaseHeld { holder, until } => conflict("lease_held", msg)
                        .with("holder", holder)
                        .with("lease_until", until.to_string()),
                    QueueRefusal::LeaseNotHeld { .. } => conflict("lease_required", msg),
                    QueueRefusal::LeaseExpired { until } => {
                        conflict("lease_expired", msg).with("lease_until", until.to_string())
                    }
                    QueueRefusal::PrescreenRequired => conflict("prescreen_required", msg),
                    QueueRefusal::WrongState { status, queue, .. } => {
                        conflict("invalid_state", msg)
                            .with("status", status.as_str())
                            .with("queue_status", queue.as_str())
                    }
                    QueueRefusal::IdempotencyKeyReused => ApiError {
                        field: Some("Idempotency-Key".into()),
                        ..ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "idempotency_key_reused",
                            msg,
                        )
                    },
                }
            }
            StoreError::InvalidMsisdn(e) => ApiError::field("msisdn", e.to_string()),
            StoreError::UnknownSpecialty(code) => {
                ApiError::field("specialty", format!("unknown specialty code {code}"))
            }
            StoreError::InvalidRequest(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m)
            }
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::InvalidCampaignCommand { id, command, state } => conflict(
                "invalid_campaign_state",
                format!(
                    "cannot {command} campaign {id}: it is {state}{}",
                    campaign_hint(command, state)
                ),
            )
            .with("state", state.to_string())
            .with("command", command),
            StoreError::CampaignExists(name) => ApiError {
                field: Some("name".into()),
                ..conflict(
                    "campaign_exists",
                    format!("a campaign named {name:?} already exists"),
                )
            },
            StoreError::InvalidPolicy(e) => policy_error(&e),
            other => ApiError::internal(other),
        }
    }
}

/// What an operator probably meant when a campaign command does not fit its state.
fn campaign_hint(command: &str, state: tongdai_domain::dialer::CampaignState) -> &'static str {
    use tongdai_domain::dialer::CampaignState as S;
    match (command, state) {
        ("start", S::Paused) => " (use resume)",
        ("resume", S::Draft) => " (use start)",
        (_, S::Stopped | S::Completed) => {
            " (a campaign that ended cannot run again; create a new one)"
        }
        _ => "",
    }
}

/// 422 naming the first bad key of a campaign policy (`policy.max_cps`); every
/// problem is listed in `problems`.
pub fn policy_error(e: &tongdai_domain::dialer::PolicyError) -> ApiError {
    let field = e
        .problems
        .first()
        .map(|p| format!("policy.{}", p.key))
        .unwrap_or_else(|| "policy".into());
    let problems: Vec<serde_json::Value> = e
        .problems
        .iter()
        .map(|p| serde_json::json!({ "field": format!("policy.{}", p.key), "message": p.problem }))
        .collect();
    ApiError::field(
        field,
        e.problems
            .iter()
            .map(|p| format!("policy.{}: {}", p.key, p.problem))
            .collect::<Vec<_>>()
            .join("; "),
    )
    .with("problems", problems)
}

/// The `field` a serde error is about: its path, or the name in "missing field `x`".
pub(crate) fn serde_field(path: &str, message: &str) -> Option<String> {
    if !path.is_empty() && path != "." {
        return Some(path.to_owned());
    }
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_owned)
}

/// A JSON body, deserialised with the failing field named, plus its raw bytes (the
/// idempotency hash covers them). An empty body reads as `{}`.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let v = v.to_ascii_lowercase();
                v.starts_with("application/json") || v.contains("+json")
            });
        let raw = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                e.body_text(),
            )
        })?;
        if raw.len() > MAX_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request bodies are limited to {MAX_BODY} bytes"),
            ));
        }
        let text: &[u8] = if raw.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            if json == Some(false) {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                ));
            }
            &raw
        };
        // serde reads a struct from a JSON array too; the API's bodies are objects.
        if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(match serde_json::from_slice::<serde_json::Value>(text) {
                Ok(_) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    "the body must be a JSON object",
                ),
                Err(e) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("the body is not valid JSON: {e}"),
                ),
            });
        }
        let de = &mut serde_json::Deserializer::from_slice(text);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(value) => Ok(JsonBody { value, raw }),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed_json",
                        format!("the body is not valid JSON: {inner}"),
                    ));
                }
                let message = inner.to_string();
                let field = serde_field(&path, &message);
                // serde's message ends with " at line 1 column 9": not useful to a caller.
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                Err(ApiError {
                    field,
                    ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
                })
            }
        }
    }
}

/// Query parameters, deserialised with the failing parameter named.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize::<_, T>(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let field = serde_field(&path, &message);
                ApiError {
                    field,
                    ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
                }
            })
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// Path parameters; a malformed one (`/queue/abc`) is a 400 naming it.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| {
                let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text());
                err.field = Some("id".into());
                err
            })
    }
}

/// A number as the outside may see it in an error message.
pub fn masked(n: &str) -> String {
    mask_number(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_from_serde_errors() {
        assert_eq!(
            serde_field(".", "missing field `need`"),
            Some("need".into())
        );
        assert_eq!(
            serde_field("method", "unknown variant `fax`"),
            Some("method".into())
        );
        assert_eq!(
            serde_field(".", "unknown field `colour`, expected one of"),
            Some("colour".into())
        );
        assert_eq!(serde_field(".", "invalid type"), None);
    }
}
