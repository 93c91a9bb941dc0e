//! The write API's routes and their OpenAPI description.

use std::sync::Arc;

use axum::Router;
use axum::routing::{patch, post};

use crate::catalog::{CatalogState, products, store_products, stores, supplier_prices, suppliers};
use service_kit::auth::{Auth, BearerSecurity};
use service_kit::ratelimit::{self, RateLimitState, RateLimits};
use utoipa::OpenApi;

use crate::login::{self, LoginState, sessions};
use crate::movements::{self, MovementsState};
use crate::purchase_orders::{self as orders, OrdersState, receive, suggestions};
use crate::user_admin::{self, UsersState};
use schemas::purchase_orders::{OrderLine, OrderState, PurchaseOrder, Receipt, ReceiptLine};

#[derive(OpenApi)]
#[openapi(
    paths(
        movements::post_movement, movements::post_batch,
        login::issue_token, sessions::refresh, sessions::logout, sessions::change_password,
        user_admin::create_user, user_admin::change_user,
        stores::create_store, stores::change_store, stores::delete_store,
        products::create_product, products::change_product, products::delete_product,
        suppliers::create_supplier, suppliers::change_supplier, suppliers::delete_supplier,
        supplier_prices::create_supplier_price, supplier_prices::change_supplier_price, supplier_prices::delete_supplier_price,
        store_products::create_store_product, store_products::change_store_product, store_products::delete_store_product,
        orders::create_order, orders::change_order, suggestions::from_suggestions,
        orders::submit_order, orders::approve_order, orders::reject_order, orders::cancel_order, receive::receive
    ),
    components(schemas(
        movements::validate::MovementRequest, movements::Accepted, movements::BatchRequest, movements::BatchResult, movements::LineResult,
        login::TokenRequest, login::TokenResponse, sessions::RefreshRequest, sessions::PasswordChange, user_admin::NewUser, user_admin::UserChange, user_admin::User,
        stores::Store, stores::NewStore, stores::StoreChange, products::Product, products::NewProduct, products::ProductChange,
        suppliers::Supplier, suppliers::NewSupplier, suppliers::SupplierChange,
        supplier_prices::SupplierPrice, supplier_prices::NewSupplierPrice, supplier_prices::SupplierPriceChange,
        store_products::StoreProduct, store_products::NewStoreProduct, store_products::StoreProductChange,
        orders::NewOrder, orders::NewLine, orders::OrderChange, suggestions::FromSuggestions,
        receive::ReceiptRequest, receive::ReceivedLine, receive::ReceiptAnswer,
        OrderState, PurchaseOrder, OrderLine, Receipt, ReceiptLine,
        service_kit::problem::Problem, service_kit::problem::FieldError
    )),
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
    let router = Router::new()
        .route("/v1/auth/token", post(login::issue_token))
        .route("/v1/auth/refresh", post(sessions::refresh))
        .route("/v1/auth/logout", post(sessions::logout))
        .route("/v1/auth/password", post(sessions::change_password))
        .with_state(login)
        .merge(
            Router::new()
                .route("/v1/movements", post(movements::post_movement))
                .route("/v1/movements/batch", post(movements::post_batch))
                .with_state(movements),
        )
        .merge(
            Router::new()
                .route("/v1/users", post(user_admin::create_user))
                .route("/v1/users/{id}", patch(user_admin::change_user))
                .with_state(users),
        )
        .merge(
            Router::new()
                .route("/v1/stores", post(stores::create_store))
                .route(
                    "/v1/stores/{id}",
                    patch(stores::change_store).delete(stores::delete_store),
                )
                .route("/v1/products", post(products::create_product))
                .route(
                    "/v1/products/{id}",
                    patch(products::change_product).delete(products::delete_product),
                )
                .route("/v1/suppliers", post(suppliers::create_supplier))
                .route(
                    "/v1/suppliers/{id}",
                    patch(suppliers::change_supplier).delete(suppliers::delete_supplier),
                )
                .route(
                    "/v1/supplier-prices",
                    post(supplier_prices::create_supplier_price),
                )
                .route(
                    "/v1/supplier-prices/{id}",
                    patch(supplier_prices::change_supplier_price)
                        .delete(supplier_prices::delete_supplier_price),
                )
                .route(
                    "/v1/store-products",
                    post(store_products::create_store_product),
                )
                .route(
                    "/v1/store-products/{store_id}/{product_id}",
                    patch(store_products::change_store_product)
                        .delete(store_products::delete_store_product),
                )
                .with_state(catalog),
        )
        .merge(
            Router::new()
                .route("/v1/purchase-orders", post(orders::create_order))
                .route(
                    "/v1/purchase-orders/from-suggestions",
                    post(suggestions::from_suggestions),
                )
                .route("/v1/purchase-orders/{id}", patch(orders::change_order))
                .route(
                    "/v1/purchase-orders/{id}/submit",
                    post(orders::submit_order),
                )
                .route(
                    "/v1/purchase-orders/{id}/approve",
                    post(orders::approve_order),
                )
                .route(
                    "/v1/purchase-orders/{id}/reject",
                    post(orders::reject_order),
                )
                .route(
                    "/v1/purchase-orders/{id}/cancel",
                    post(orders::cancel_order),
                )
                .route("/v1/purchase-orders/{id}/receipts", post(receive::receive))
                .with_state(orders),
        )
        .layer(axum::middleware::from_fn_with_state(
            limiting,
            ratelimit::limit,
        ));
    (router, IngestApi::openapi())
}
