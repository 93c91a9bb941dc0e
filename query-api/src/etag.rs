//! Conditional answers for polling dashboards: inventory and reports carry an `ETag`, and
//! a request whose `If-None-Match` names the current one gets `304 Not Modified` with no
//! body. The tag is weak (`W/"…"`): it covers the data, not the `freshness` beside it, so
//! a dashboard is not sent the same thousand rows again because an unrelated partition
//! moved on.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use service_kit::problem::ApiError;

use crate::balances::Freshness;

fn tag_of(bytes: &[u8]) -> String {
    format!("W/\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// Whether `If-None-Match` names `tag` (or is `*`), compared weakly as RFC 9110 asks.
fn matches(request: &HeaderMap, tag: &str) -> bool {
    let strip = |candidate: &str| candidate.trim().trim_start_matches("W/").to_owned();
    let ours = strip(tag);
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| candidate.trim() == "*" || strip(candidate) == ours)
}

/// A JSON rendering of some data and its tag, reusable while the data is unchanged.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: bytes::Bytes,
    pub tag: HeaderValue,
}

pub fn render<T: Serialize>(data: &T) -> Result<Rendered, ApiError> {
    let body = serde_json::to_vec(data).map_err(|error| ApiError::Internal(error.into()))?;
    let tag =
        HeaderValue::from_str(&tag_of(&body)).map_err(|error| ApiError::Internal(error.into()))?;
    Ok(Rendered {
        body: body.into(),
        tag,
    })
}

/// `data` as JSON with an `ETag`, and `freshness` (when given) as one more top-level
/// field `freshness` beside `data`'s own; `304` when the client already has it.
pub fn respond<T: Serialize>(
    request: &HeaderMap,
    data: &T,
    freshness: Option<&Freshness>,
) -> Result<Response, ApiError> {
    send(request, &render(data)?, freshness)
}

/// A rendering as the answer (see [`respond`]).
pub fn send(
    request: &HeaderMap,
    rendered: &Rendered,
    freshness: Option<&Freshness>,
) -> Result<Response, ApiError> {
    let caching = HeaderValue::from_static("private, no-cache");
    let tag = rendered.tag.to_str().unwrap_or_default();
    if matches(request, tag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, rendered.tag.clone()),
                (header::CACHE_CONTROL, caching),
            ],
        )
            .into_response());
    }
    let data = &rendered.body;
    let body = match freshness {
        Some(freshness) if data.last() == Some(&b'}') => {
            let mut body = Vec::with_capacity(data.len() + 256);
            body.extend_from_slice(&data[..data.len() - 1]);
            if data.len() > 2 {
                body.push(b',');
            }
            body.extend_from_slice(b"\"freshness\":");
            serde_json::to_writer(&mut body, freshness)
                .map_err(|error| ApiError::Internal(error.into()))?;
            body.push(b'}');
            bytes::Bytes::from(body)
        }
        _ => data.clone(),
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, rendered.tag.clone()),
            (header::CACHE_CONTROL, caching),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balances::Source;

    fn headers(if_none_match: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(if_none_match).unwrap(),
        );
        headers
    }

    #[tokio::test]
    async fn the_same_data_is_not_modified_whatever_the_freshness_and_other_data_is() {
        let data = serde_json::json!({"items": [1, 2, 3]});
        let fresh = |offset| Freshness {
            source: Source::Cache,
            processed: [(0, offset)].into(),
        };
        let first = respond(&HeaderMap::new(), &data, Some(&fresh(5))).unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        let body = axum::body::to_bytes(first.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["items"], serde_json::json!([1, 2, 3]));
        assert_eq!(body["freshness"]["processed"]["0"], 5);

        let again = respond(&headers(&format!("\"x\", {tag}")), &data, Some(&fresh(9))).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = serde_json::json!({"items": [1, 2]});
        assert_eq!(
            respond(&headers(&tag), &other, None).unwrap().status(),
            StatusCode::OK
        );
        assert_eq!(
            respond(&headers("*"), &other, None).unwrap().status(),
            StatusCode::NOT_MODIFIED
        );
    }
}
