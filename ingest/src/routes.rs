//! The write API's routes and their OpenAPI description.

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use service_kit::auth::Auth;
use service_kit::ratelimit::{self, RateLimitState, RateLimits};
use utoipa::OpenApi;

use crate::login::{self, LoginState};

#[derive(OpenApi)]
#[openapi(
    paths(login::issue_token),
    components(schemas(login::TokenRequest, login::TokenResponse, service_kit::problem::Problem, service_kit::problem::FieldError)),
    tags((name = "auth", description = "Tokens for users and devices"))
)]
struct IngestApi;

/// The `/v1` routes, rate-limited, with their OpenAPI paths.
pub fn api(login: LoginState, limits: Arc<RateLimits>) -> (Router, utoipa::openapi::OpenApi) {
    let limiting = RateLimitState {
        limits,
        auth: Auth(login.keys.clone()),
    };
    let router = Router::new()
        .route("/v1/auth/token", post(login::issue_token))
        .with_state(login)
        .layer(axum::middleware::from_fn_with_state(
            limiting,
            ratelimit::limit,
        ));
    (router, IngestApi::openapi())
}
