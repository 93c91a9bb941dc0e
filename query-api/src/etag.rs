//! Conditional answers for polling dashboards: inventory and reports carry an `ETag`, and
//! a request whose `If-None-Match` names the current one gets `304 Not Modified` with no
//! body. The tag is weak (`W/"…"`): it covers the data, not the `freshness` beside it, so
//! a dashboard is not sent the same thousand rows again because an unrelated partition
//! moved on.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use service_kit::problem::ApiError;

use crate::balances::Freshness;
use crate::gzip::{self, GzipHead};

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
    pub body: Bytes,
    pub tag: HeaderValue,
    /// Its gzip, made on the first answer to a client that accepts gzip.
    gzip: Arc<OnceLock<GzipHead>>,
}

pub fn render<T: Serialize>(data: &T) -> Result<Rendered, ApiError> {
    let body = serde_json::to_vec(data).map_err(|error| ApiError::Internal(error.into()))?;
    let tag =
        HeaderValue::from_str(&tag_of(&body)).map_err(|error| ApiError::Internal(error.into()))?;
    Ok(Rendered {
        body: body.into(),
        tag,
        gzip: Arc::default(),
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
    // An object's closing brace goes after the freshness.
    let cut = match data.last() {
        Some(b'}') => data.len() - 1,
        _ => data.len(),
    };
    let mut tail = Vec::with_capacity(256);
    if let Some(freshness) = freshness
        && cut < data.len()
    {
        if cut > 1 {
            tail.push(b',');
        }
        tail.extend_from_slice(b"\"freshness\":");
        serde_json::to_writer(&mut tail, freshness)
            .map_err(|error| ApiError::Internal(error.into()))?;
    }
    tail.extend_from_slice(&data[cut..]);
    // Two chunks written out together: the rendering (or its gzip, made once) is never
    // copied for an answer.
    let gzip = gzip::accepted(request);
    let chunks = if gzip {
        rendered
            .gzip
            .get_or_init(|| GzipHead::new(&data[..cut]))
            .with_tail(&tail)
    } else {
        [data.slice(..cut), Bytes::from(tail)]
    };
    let length = chunks.iter().map(Bytes::len).sum::<usize>();
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(length)),
            (header::ETAG, rendered.tag.clone()),
            (header::CACHE_CONTROL, caching),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
        ],
        Body::from_stream(futures::stream::iter(chunks.map(Ok::<_, Infallible>))),
    )
        .into_response();
    if gzip {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
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
        let length = first.headers()[header::CONTENT_LENGTH].clone();
        let body = axum::body::to_bytes(first.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(length, body.len().to_string().as_str());
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

    #[tokio::test]
    async fn freshness_joins_an_empty_object_and_data_without_one_goes_as_it_is() {
        let fresh = Freshness {
            source: Source::Cache,
            processed: [(3, 7)].into(),
        };
        for (data, expected) in [
            (
                serde_json::json!({}),
                serde_json::json!({"freshness": {"source": "cache", "processed": {"3": 7}}}),
            ),
            (serde_json::json!([1, 2]), serde_json::json!([1, 2])),
        ] {
            let answer = respond(&HeaderMap::new(), &data, Some(&fresh)).unwrap();
            let length = answer.headers()[header::CONTENT_LENGTH].clone();
            let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
                .await
                .unwrap();
            assert_eq!(length, body.len().to_string().as_str());
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                expected
            );
        }
    }
}
