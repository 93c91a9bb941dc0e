//! Cross-origin reads and writes from browsers: the web pages at the origins a deployment
//! names (`CORS_ALLOWED_ORIGINS` — the dashboard's, where it is served from another origin
//! than this API) may call the API with their bearer tokens. No origin is allowed unless
//! named; cookies are never involved (tokens travel in `Authorization`).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The layer for `origins` (each `scheme://host[:port]`), or `None` when there are none.
pub fn layer(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([
                header::ETAG,
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static("ratelimit"),
                HeaderName::from_static("ratelimit-policy"),
            ])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

/// Reads `CORS_ALLOWED_ORIGINS`: origins separated by commas, each `http(s)://host[:port]`
/// with nothing after it.
pub fn parse_origins(text: &str) -> Result<Vec<HeaderValue>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| format!("{origin}: an origin starts with http:// or https://"))?;
            if rest.is_empty() || rest.contains(['/', '?', '#', '*']) {
                return Err(format!(
                    "{origin}: an origin is scheme://host[:port], with no path and no wildcard"
                ));
            }
            HeaderValue::from_str(origin).map_err(|_| format!("{origin}: not a valid origin"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        let origins = parse_origins(" http://127.0.0.1:8082, https://shop.example ").unwrap();
        assert_eq!(origins, ["http://127.0.0.1:8082", "https://shop.example"]);
        assert!(parse_origins("").unwrap().is_empty());
        for bad in [
            "127.0.0.1:8082",
            "http://",
            "https://shop.example/app",
            "*",
            "https://*.example",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }
}
