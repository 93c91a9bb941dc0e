//! The write API's routes. Each is declared once, by its handler's `#[utoipa::path]`
//! (method, path, parameters, answers): `routes!` registers it with axum and the OpenAPI
//! document alike, and the document gathers the schemas those name.

use std::sync::Arc;

use axum::Router;

use crate::catalog::{CatalogState, products, store_products, stores, supplier_prices, suppliers};
use service_kit::auth::{Auth, BearerSecurity};
use service_kit::ratelimit::{self, RateLimitState, RateLimits};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::login::{self, LoginState, sessions};
use crate::movements::{self, MovementsState};
use crate::purchase_orders::{self as orders, OrdersState, receive, suggestions};
use crate::user_admin::{self, UsersState};

#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerSecurity),
    tags(
        (name = "movements", description = "Stock movements from POS and staff apps, to Kafka"),
        (name = "auth", description = "Sign in, refresh, sign out, change one's own password"),
        (name = "users", description = "User administration (admin only)"),
        (name = "purchase-orders", description = "Orders from stores to suppliers: drafted and submitted by admins and the store's managers, approved or rejected by admins, received by the store's staff as stock-ins on the pipeline; reads and reorder suggestions are in query-api"),
        (name = "catalog", description = "Stores, products, suppliers, supplier prices (admin only) and per-store product settings (admins and the store's manager); reads are in query-api")
    )
)]
struct IngestApi;

/// The `/v1` routes, rate-limited, with their OpenAPI paths.
pub fn api(
    login: LoginState,
    movements: MovementsState,
    orders: OrdersState,
    limits: Arc<RateLimits>,
) -> (Router, utoipa::openapi::OpenApi) {
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
    let router = OpenApiRouter::with_openapi(IngestApi::openapi())
        .routes(routes!(login::issue_token))
        .routes(routes!(sessions::refresh))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::change_password))
        .with_state(login)
        .merge(
            OpenApiRouter::new()
                .routes(routes!(movements::post_movement))
                .routes(routes!(movements::post_batch))
                .with_state(movements),
        )
        .merge(
            OpenApiRouter::new()
                .routes(routes!(user_admin::create_user))
                .routes(routes!(user_admin::change_user))
                .with_state(users),
        )
        .merge(
            OpenApiRouter::new()
                .routes(routes!(stores::create_store))
                .routes(routes!(stores::change_store, stores::delete_store))
                .routes(routes!(products::create_product))
                .routes(routes!(products::change_product, products::delete_product))
                .routes(routes!(suppliers::create_supplier))
                .routes(routes!(
                    suppliers::change_supplier,
                    suppliers::delete_supplier
                ))
                .routes(routes!(supplier_prices::create_supplier_price))
                .routes(routes!(
                    supplier_prices::change_supplier_price,
                    supplier_prices::delete_supplier_price
                ))
                .routes(routes!(store_products::create_store_product))
                .routes(routes!(
                    store_products::change_store_product,
                    store_products::delete_store_product
                ))
                .with_state(catalog),
        )
        .merge(
            OpenApiRouter::new()
                .routes(routes!(orders::create_order))
                .routes(routes!(suggestions::from_suggestions))
                .routes(routes!(orders::change_order))
                .routes(routes!(orders::submit_order))
                .routes(routes!(orders::approve_order))
                .routes(routes!(orders::reject_order))
                .routes(routes!(orders::cancel_order))
                .routes(routes!(receive::receive))
                .with_state(orders),
        )
        .layer(axum::middleware::from_fn_with_state(
            limiting,
            ratelimit::limit,
        ));
    router.split_for_parts()
}
