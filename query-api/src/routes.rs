//! The read API's routes and their OpenAPI description.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use schemas::catalog::{Product, Store, StoreProduct, Supplier, SupplierPrice, User};
use service_kit::auth::BearerSecurity;
use service_kit::ratelimit::{self, RateLimitState, RateLimits};
use utoipa::OpenApi;

use crate::catalog::{self, CatalogState};
use crate::pagination::Page;
use crate::users;

#[derive(OpenApi)]
#[openapi(
    paths(
        catalog::list_stores, catalog::get_store,
        catalog::list_products, catalog::get_product, catalog::get_product_by_sku,
        catalog::list_suppliers, catalog::get_supplier,
        catalog::list_supplier_prices, catalog::get_supplier_price,
        catalog::list_store_products,
        users::list_users, users::get_user
    ),
    components(schemas(
        Store, Product, Supplier, SupplierPrice, StoreProduct, User,
        Page<Store>, Page<Product>, Page<Supplier>, Page<SupplierPrice>, Page<StoreProduct>, Page<User>,
        service_kit::problem::Problem, service_kit::problem::FieldError
    )),
    modifiers(&BearerSecurity),
    tags(
        (name = "catalog", description = "Stores, products, suppliers, prices and per-store settings (writes are in ingest)"),
        (name = "users", description = "Users (admin only; changes are in ingest)")
    )
)]
struct QueryApi;

/// The `/v1` routes, rate-limited, with their OpenAPI paths.
pub fn api(catalog: CatalogState, limits: Arc<RateLimits>) -> (Router, utoipa::openapi::OpenApi) {
    let limiting = RateLimitState {
        limits,
        auth: catalog.auth.clone(),
    };
    let router = Router::new()
        .route("/v1/stores", get(catalog::list_stores))
        .route("/v1/stores/{id}", get(catalog::get_store))
        .route("/v1/products", get(catalog::list_products))
        .route("/v1/products/{id}", get(catalog::get_product))
        .route(
            "/v1/products/by-sku/{sku}",
            get(catalog::get_product_by_sku),
        )
        .route("/v1/suppliers", get(catalog::list_suppliers))
        .route("/v1/suppliers/{id}", get(catalog::get_supplier))
        .route("/v1/supplier-prices", get(catalog::list_supplier_prices))
        .route("/v1/supplier-prices/{id}", get(catalog::get_supplier_price))
        .route("/v1/store-products", get(catalog::list_store_products))
        .route("/v1/users", get(users::list_users))
        .route("/v1/users/{id}", get(users::get_user))
        .with_state(catalog)
        .layer(axum::middleware::from_fn_with_state(
            limiting,
            ratelimit::limit,
        ));
    (router, QueryApi::openapi())
}
