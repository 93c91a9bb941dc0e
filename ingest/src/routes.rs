//! The write API's routes and their OpenAPI description.

use std::sync::Arc;

use axum::Router;
use axum::routing::{patch, post};

use crate::catalog::{self, CatalogState};
use service_kit::auth::Auth;
use service_kit::ratelimit::{self, RateLimitState, RateLimits};
use utoipa::OpenApi;

use crate::login::{self, LoginState};
use crate::user_admin::{self, UsersState};

#[derive(OpenApi)]
#[openapi(
    paths(
        login::issue_token, user_admin::create_user, user_admin::change_user,
        catalog::create_store, catalog::change_store, catalog::delete_store,
        catalog::create_product, catalog::change_product, catalog::delete_product
    ),
    components(schemas(
        login::TokenRequest, login::TokenResponse, user_admin::NewUser, user_admin::UserChange, user_admin::User,
        catalog::Store, catalog::NewStore, catalog::StoreChange, catalog::Product, catalog::NewProduct, catalog::ProductChange,
        service_kit::problem::Problem, service_kit::problem::FieldError
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Tokens for users and devices"),
        (name = "users", description = "User administration (admin only)"),
        (name = "catalog", description = "Stores and products (writes: admin only)")
    )
)]
struct IngestApi;

/// Declares the `bearer` security scheme the routes refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The `/v1` routes, rate-limited, with their OpenAPI paths.
pub fn api(login: LoginState, limits: Arc<RateLimits>) -> (Router, utoipa::openapi::OpenApi) {
    let auth = Auth(login.keys.clone());
    let limiting = RateLimitState {
        limits,
        auth: auth.clone(),
    };
    let users = UsersState {
        pool: login.pool.clone(),
        auth: auth.clone(),
    };
    let catalog = CatalogState {
        pool: login.pool.clone(),
        auth,
    };
    let router = Router::new()
        .route("/v1/auth/token", post(login::issue_token))
        .with_state(login)
        .merge(
            Router::new()
                .route("/v1/users", post(user_admin::create_user))
                .route("/v1/users/{id}", patch(user_admin::change_user))
                .with_state(users),
        )
        .merge(
            Router::new()
                .route("/v1/stores", post(catalog::create_store))
                .route(
                    "/v1/stores/{id}",
                    patch(catalog::change_store).delete(catalog::delete_store),
                )
                .route("/v1/products", post(catalog::create_product))
                .route(
                    "/v1/products/{id}",
                    patch(catalog::change_product).delete(catalog::delete_product),
                )
                .with_state(catalog),
        )
        .layer(axum::middleware::from_fn_with_state(
            limiting,
            ratelimit::limit,
        ));
    (router, IngestApi::openapi())
}
