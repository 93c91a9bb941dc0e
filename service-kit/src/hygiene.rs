//! Input hygiene at the edge, for every route of every service: no text a client sends —
//! a JSON string anywhere in the body, a query parameter, a path segment — may carry a
//! control character (U+0000–U+001F, U+007F–U+009F). Such text has no place in a store
//! name, a SKU or a till's reference, and below the edge it fails deterministically
//! (PostgreSQL refuses NUL in `text`), so it is refused here with a `400` naming the field.
//!
//! JSON cannot carry a control character raw inside a string, only escaped (`\u0000`, `\n`,
//! …) or, for U+0080–U+009F, as UTF-8. The body is scanned for those byte patterns (one
//! pass, no parse); only a body that has one is parsed to name the field.
//!
//! The header fields are measured first: 16 KiB in all (names and values) is far more than
//! any client of ours sends (a token is under 1 KiB); beyond, `431 headers_too_large`.
//!
//! The body is also measured here, before anything else reads it: a `…/batch` route takes
//! up to 1 MiB, every other route 64 KiB; beyond, `413 payload_too_large` with the limit.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::problem::ApiError;

/// The largest body any route takes: axum's own cap for an extracted body.
pub const LARGEST_BODY: usize = 2 * 1024 * 1024;
/// A batch route's body: up to 1,000 lines of at most about 1 KiB.
pub const BATCH_BODY: usize = 1024 * 1024;
/// Every other route's body: one movement, one catalog row, one user.
pub const BODY: usize = 64 * 1024;

/// The most bytes of header fields (names and values together) a request may carry.
pub const HEADERS: usize = 16 * 1024;

/// The largest JSON body `path` takes: `BATCH_BODY` for a `…/batch` route, else `BODY`.
pub fn body_limit(path: &str) -> usize {
    if path.ends_with("/batch") {
        BATCH_BODY
    } else {
        BODY
    }
}

const MESSAGE: &str = "must not contain control characters (U+0000 to U+001F, U+007F to U+009F)";

fn refused(field: impl Into<String>) -> Response {
    ApiError::validation(field, "control_character", MESSAGE).into_response()
}

/// The middleware: `400 control_character` naming the field, or the request, unchanged.
pub async fn refuse_control_characters(request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > HEADERS {
        return ApiError::HeadersTooLarge { limit: HEADERS }.into_response();
    }
    let uri = request.uri();
    for segment in uri.path().split('/') {
        if percent_encoding::percent_decode_str(segment)
            .decode_utf8_lossy()
            .chars()
            .any(char::is_control)
        {
            return refused("path");
        }
    }
    if let Some(query) = uri.query() {
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if name.chars().chain(value.chars()).any(char::is_control) {
                return refused(name.into_owned());
            }
        }
    }
    let json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    if !json {
        return next.run(request).await;
    }
    let limit = body_limit(uri.path());
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let too_large = error
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return if too_large {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::validation("body", "unreadable", "the body could not be read")
            }
            .into_response();
        }
    };
    if may_hold_control(&bytes)
        && let Ok(document) = serde_json::from_slice::<Value>(&bytes)
        && let Some(field) = control_in(&document, String::new())
    {
        return refused(field);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Whether `body` has an escape that may stand for a control character, or one of
/// U+0080–U+009F in UTF-8 (`C2 80`–`C2 9F`). False positives (an escaped backslash before
/// `u0000`, say) are settled by the parse that follows.
fn may_hold_control(body: &Bytes) -> bool {
    body.windows(2).any(|pair| match pair {
        [b'\\', next] => matches!(next, b'u' | b'n' | b'r' | b't' | b'b' | b'f'),
        [0xC2, next] => (0x80..=0x9F).contains(next),
        _ => false,
    })
}

/// The path of the first string (or object key) with a control character, as
/// `movements[3].reference`.
fn control_in(value: &Value, path: String) -> Option<String> {
    let name = |path: &str, key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(text) => text
            .chars()
            .any(char::is_control)
            .then(|| if path.is_empty() { "body".into() } else { path }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(at, item)| control_in(item, format!("{path}[{at}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.chars().any(char::is_control) {
                Some(name(&path, key))
            } else {
                control_in(item, name(&path, key))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> Option<String> {
        let bytes = Bytes::from(body.to_owned());
        if !may_hold_control(&bytes) {
            return None;
        }
        control_in(&serde_json::from_str(body).unwrap(), String::new())
    }

    #[test]
    fn a_control_character_anywhere_is_named_by_its_path() {
        assert_eq!(
            field_of(r#"{"reference":"A\u0000B"}"#).as_deref(),
            Some("reference")
        );
        assert_eq!(
            field_of(r#"{"movements":[{"sku":"X"},{"device_id":"till\n1"}]}"#).as_deref(),
            Some("movements[1].device_id")
        );
        assert_eq!(field_of("{\"name\":\"a\u{85}b\"}").as_deref(), Some("name"));
        assert_eq!(field_of(r#""\u001f""#).as_deref(), Some("body"));
    }

    #[test]
    fn ordinary_text_and_escapes_of_printable_characters_pass() {
        assert_eq!(
            field_of(r#"{"name":"Atta 5 kg \u20b9 \"best\" \\u0000"}"#),
            None
        );
        assert_eq!(field_of(r#"{"name":"चावल","n":[1,2]}"#), None);
    }
}
