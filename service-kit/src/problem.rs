//! API errors as RFC 9457 `application/problem+json`, with a stable machine-readable
//! `code` and, for validation, every field at fault. One type for both services.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub mod responses;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field at fault in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `quantity` or `lines[3].sku`.
    #[schema(example = "quantity")]
    pub field: String,
    /// Stable code: `required`, `out_of_range`, `invalid_format`, `unknown`, ...
    #[schema(example = "out_of_range")]
    pub code: String,
    #[schema(example = "must be between 1 and 1000000")]
    pub message: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type: `/problems/{code}`.
    #[serde(rename = "type")]
    #[schema(example = "/problems/validation_failed")]
    pub kind: String,
    #[schema(example = "The request is not valid")]
    pub title: &'static str,
    #[schema(example = 400)]
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable, machine-readable: clients branch on it, never on `title` or `detail`.
    #[schema(example = "validation_failed")]
    pub code: &'static str,
    /// For `validation_failed`: every field at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or a field is invalid.
    #[error("the request is not valid: {0:?}")]
    Validation(Vec<FieldError>),
    /// 401: no token, or a token that does not verify.
    #[error("not authenticated: {detail}")]
    Unauthenticated { code: &'static str, detail: String },
    /// 403: authenticated, but not allowed.
    #[error("forbidden: {detail}")]
    Forbidden { code: &'static str, detail: String },
    /// 404: the resource does not exist (or the caller may not know it does).
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    /// 409: conflicts with existing state (duplicate code or SKU, ...).
    #[error("conflict: {detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        field: Option<&'static str>,
    },
    /// 422: well-formed, but refers to something that does not exist or cannot be used.
    #[error("unprocessable: {0:?}")]
    Unprocessable(Vec<FieldError>),
    /// 413: the body is larger than the route takes.
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    /// 431: the request's header fields are larger than any client of ours needs.
    #[error("header fields too large (limit {limit} bytes)")]
    HeadersTooLarge { limit: usize },
    /// 429: over the rate limit.
    #[error("rate limited for {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// 503: a dependency (broker, database) is down or overloaded; try again later.
    #[error("unavailable: {detail}")]
    Unavailable {
        /// `unavailable`, or a more precise reason (`not_yet_consistent`).
        code: &'static str,
        detail: String,
        retry_after: Duration,
    },
    /// 500: anything else. The cause chain goes to the log, never to the client.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Validation(vec![FieldError::new(field, code, message)])
    }

    pub fn not_found(resource: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            resource,
            id: id.to_string(),
        }
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `code` of the problem.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::Unauthenticated { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unavailable { code, .. } => code,
            Self::NotFound { .. } => "not_found",
            Self::Unprocessable(_) => "unprocessable",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Validation(_) => "The request is not valid",
            Self::Unauthenticated { .. } => "Authentication required",
            Self::Forbidden { .. } => "Not allowed",
            Self::NotFound { .. } => "Not found",
            Self::Conflict { .. } => "Conflict with the current state",
            Self::Unprocessable(_) => "The request refers to something unusable",
            Self::PayloadTooLarge { .. } => "The body is too large",
            Self::HeadersTooLarge { .. } => "The header fields are too large",
            Self::RateLimited { .. } => "Too many requests",
            Self::Unavailable { .. } => "Temporarily unavailable",
            Self::Internal(_) => "Internal error",
        }
    }

    /// The problem document sent to the client.
    pub fn problem(&self) -> Problem {
        let (detail, errors) = match self {
            Self::Validation(errors) | Self::Unprocessable(errors) => (None, errors.clone()),
            Self::Unauthenticated { detail, .. }
            | Self::Forbidden { detail, .. }
            | Self::Unavailable { detail, .. } => (Some(detail.clone()), Vec::new()),
            Self::NotFound { resource, id } => {
                (Some(format!("{resource} {id} does not exist")), Vec::new())
            }
            Self::Conflict { detail, field, .. } => {
                let errors = field
                    .map(|field| vec![FieldError::new(field, "conflict", detail.clone())])
                    .unwrap_or_default();
                (Some(detail.clone()), errors)
            }
            Self::PayloadTooLarge { limit } => (
                Some(format!("this route takes bodies of at most {limit} bytes")),
                Vec::new(),
            ),
            Self::HeadersTooLarge { limit } => (
                Some(format!(
                    "header fields may take at most {limit} bytes in all"
                )),
                Vec::new(),
            ),
            Self::RateLimited { retry_after } => (
                Some(format!(
                    "retry after {} s",
                    retry_after_seconds(*retry_after)
                )),
                Vec::new(),
            ),
            Self::Internal(_) => (None, Vec::new()),
        };
        Problem {
            kind: format!("/problems/{}", self.code()),
            title: self.title(),
            status: self.status().as_u16(),
            detail,
            code: self.code(),
            errors,
        }
    }
}

/// `Retry-After` is whole seconds; never tell a client to retry at once.
fn retry_after_seconds(wait: Duration) -> u64 {
    let rounded_up = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    rounded_up.max(1)
}

/// A body that is not the expected JSON: 400, with the parser's words and, when the
/// body is JSON of the wrong shape, the field at fault.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection;
        if let JsonRejection::BytesRejection(bytes) = &rejection
            && bytes.status() == StatusCode::PAYLOAD_TOO_LARGE
        {
            // Bodies are measured at the edge (`hygiene`); this is axum's own cap.
            return Self::PayloadTooLarge {
                limit: crate::hygiene::LARGEST_BODY,
            };
        }
        let text = rejection.body_text();
        let field = match &rejection {
            JsonRejection::JsonDataError(_) => field_of_data_error(&text),
            _ => None,
        }
        .unwrap_or("body")
        .to_owned();
        Self::validation(field, "invalid_json", text)
    }
}

impl ApiError {
    /// A serde failure located by `serde_path_to_error`: `400` with `code`, naming the
    /// field at fault (the path, or the field serde names when the fault is at the top),
    /// else `whole` (`"body"`, `"query"`).
    pub fn from_located<E: std::fmt::Display>(
        error: serde_path_to_error::Error<E>,
        code: &str,
        whole: &str,
    ) -> Self {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        let field = if path == "." {
            field_named_in(&message).unwrap_or(whole).to_owned()
        } else {
            path
        };
        Self::validation(field, code, message)
    }
}

/// The field serde names in "missing field `x`" or "unknown field `x`, …".
pub fn field_named_in(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let length = message[start..].find('`')?;
    Some(&message[start..start + length])
}

/// axum words a data error "…target type: <path>: <serde's message>", without the path
/// when the fault is at the top (a missing or unknown field, which serde names).
fn field_of_data_error(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("target type: ")?;
    if rest.starts_with("missing field") || rest.starts_with("unknown field") {
        return field_named_in(rest);
    }
    let (path, message) = rest.split_once(": ")?;
    if path == "." {
        field_named_in(message)
    } else {
        Some(path)
    }
}

/// A database error nobody expected: an opaque 500 (constraint violations that mean
/// something to the client are mapped where they can happen); a pool exhausted for the
/// whole acquire timeout is overload: 503 with `Retry-After`.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            // Every connection busy for the whole acquire timeout: overload, not a fault.
            sqlx::Error::PoolTimedOut => Self::Unavailable {
                code: "unavailable",
                detail: "the database is busy; retry shortly".into(),
                retry_after: Duration::from_secs(1),
            },
            error => Self::Internal(error.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(error) = &self {
            // Operators need the whole chain; the client gets an opaque 500.
            tracing::error!(
                error = format!("{error:#}"),
                "A request failed with an internal error."
            );
        }
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after, .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_seconds(*retry_after)),
                );
            }
            Self::Unauthenticated { .. } => {
                // RFC 6750: tell the client which scheme and why.
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"bazaar\", error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn render(error: ApiError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn validation_errors_name_every_field_at_fault() {
        let (status, headers, body) = render(ApiError::Validation(vec![
            FieldError::new("quantity", "out_of_range", "must be at least 1"),
            FieldError::new("store_id", "required", "is required"),
        ]))
        .await;
        assert_eq!(status, 400);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body["type"], "/problems/validation_failed");
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["status"], 400);
        assert_eq!(body["errors"][0]["field"], "quantity");
        assert_eq!(body["errors"][1]["code"], "required");
    }

    #[tokio::test]
    async fn overload_answers_503_with_a_whole_second_retry_after() {
        let (status, headers, body) = render(ApiError::Unavailable {
            code: "unavailable",
            detail: "the broker did not acknowledge in time".into(),
            retry_after: Duration::from_millis(200),
        })
        .await;
        assert_eq!(status, 503);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(body["code"], "unavailable");

        let (status, headers, _) = render(ApiError::RateLimited {
            retry_after: Duration::from_millis(2_500),
        })
        .await;
        assert_eq!(status, 429);
        assert_eq!(headers[header::RETRY_AFTER], "3");
    }

    #[tokio::test]
    async fn internal_errors_are_opaque_to_the_client() {
        let cause = anyhow::anyhow!("password authentication failed for user bazaar")
            .context("loading stores");
        let (status, _, body) = render(ApiError::Internal(cause)).await;
        assert_eq!(status, 500);
        assert_eq!(body["code"], "internal_error");
        assert!(!body.to_string().contains("password"), "{body}");
    }

    #[tokio::test]
    async fn unauthenticated_answers_401_with_the_bearer_challenge() {
        let (status, headers, body) = render(ApiError::Unauthenticated {
            code: "token_expired",
            detail: "the token expired".into(),
        })
        .await;
        assert_eq!(status, 401);
        assert!(
            headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(body["code"], "token_expired");
    }

    #[tokio::test]
    async fn a_conflict_names_its_field() {
        let (status, _, body) = render(ApiError::Conflict {
            code: "duplicate_sku",
            detail: "a product with SKU ATTA-5KG exists".into(),
            field: Some("sku"),
        })
        .await;
        assert_eq!(status, 409);
        assert_eq!(body["errors"][0]["field"], "sku");
    }
}
