//! The web dashboard (`dashboard/`, built by Vite into `dashboard/dist`), served under
//! `/app/` when `QUERY_DASHBOARD_DIR` names the build: its files, `index.html` for every
//! other path under `/app/` (the pages are the application's own routes), and
//! `/app/config.json`, what the build cannot know — where ingest is.

use std::path::Path;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use serde_json::json;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// The pages' only sources: this origin, and ingest's for its calls.
fn content_security_policy(ingest_url: &str) -> HeaderValue {
    let ingest = ingest_url.trim_end_matches('/');
    HeaderValue::from_str(&format!(
        "default-src 'self'; connect-src 'self' {ingest}; img-src 'self' data:; \
         style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// The routes under `/app`.
pub fn router(dir: &Path, ingest_url: &str) -> Router {
    let config = json!({ "ingest_url": ingest_url.trim_end_matches('/') });
    let files = ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")));
    Router::new()
        .route(
            "/app/config.json",
            get(move || {
                let config = config.clone();
                async move { axum::Json(config) }
            }),
        )
        .nest_service("/app", files)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(ingest_url),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}
