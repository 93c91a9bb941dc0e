//! The read API's routes. Each is declared once, by its handler's `#[utoipa::path]`
//! (method, path, parameters, answers): `routes!` registers it with axum and the OpenAPI
//! document alike, and the document gathers the schemas those name.

use std::sync::Arc;

use axum::Router;
use service_kit::auth::BearerSecurity;
use service_kit::ratelimit::{self, RateLimitState, RateLimits};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::catalog::{self, CatalogState};
use crate::{
    ReadState, alerts, audit, events, history, inventory, network, purchase_orders, reports,
    transfers, users,
};

#[derive(OpenApi)]
#[openapi(
    // Named only by query parameters: utoipa gathers the schemas of bodies and answers,
    // not those of parameters.
    components(schemas(
        alerts::AlertKind, history::MovementKind, history::MovementStatus, history::TimeField,
        reports::sales::SalesGroup, reports::sourcing::SourcingGroup, reports::stock::ValuationGroup,
        reports::changes::ShrinkageGroup, transfers::Direction, transfers::TransferStatus,
        // Named only in the event stream's description.
        events::BalanceEvent, events::AlertEvent, events::PositionEvent
    )),
    modifiers(&BearerSecurity),
    tags(
        (name = "catalog", description = "Stores, products, suppliers, prices and per-store settings (writes are in ingest)"),
        (name = "users", description = "Users (admin only; changes are in ingest) and who am I (anyone)"),
        (name = "inventory", description = "Current stock: from Redis when it holds it, Postgres otherwise; with freshness and ETag"),
        (name = "movements", description = "The ledger: every movement's outcome"),
        (name = "reports", description = "Stock summary and valuation (current balances); sales, supplier sourcing, shrinkage and returns (daily rollups, local days), counts and their variances (the ledger's count lines); and stock across the network"),
        (name = "transfers", description = "Stock moved between stores: each transfer (in transit, or received with what was lost on the way), a store's transfers and what is in transit to and from it (transfer-outs and receives are posted to ingest)"),
        (name = "purchase-orders", description = "Orders from stores to suppliers, open orders per supplier and reorder suggestions (changes are in ingest)"),
        (name = "alerts", description = "Low-stock and out-of-stock alerts"),
        (name = "audit", description = "Who changed what in master data and users (admin only)")
    )
)]
struct QueryApi;

/// The `/v1` routes, rate-limited, with their OpenAPI paths.
pub fn api(
    catalog: CatalogState,
    reads: ReadState,
    limits: Arc<RateLimits>,
) -> (Router, utoipa::openapi::OpenApi) {
    let limiting = RateLimitState {
        limits,
        auth: catalog.auth.clone(),
    };
    let router = OpenApiRouter::with_openapi(QueryApi::openapi())
        .routes(routes!(catalog::list_stores))
        .routes(routes!(catalog::get_store))
        .routes(routes!(catalog::list_products))
        .routes(routes!(catalog::get_product))
        .routes(routes!(catalog::get_product_by_sku))
        .routes(routes!(catalog::list_suppliers))
        .routes(routes!(catalog::get_supplier))
        .routes(routes!(catalog::list_supplier_prices))
        .routes(routes!(catalog::get_supplier_price))
        .routes(routes!(catalog::list_store_products))
        .routes(routes!(users::list_users))
        .routes(routes!(users::get_user))
        .routes(routes!(users::me))
        .with_state(catalog)
        .merge(
            OpenApiRouter::new()
                .routes(routes!(inventory::store_inventory))
                .routes(routes!(inventory::store_product))
                .routes(routes!(inventory::product::product_inventory))
                .routes(routes!(events::store_events))
                .routes(routes!(history::list_movements))
                .routes(routes!(history::get_movement))
                .routes(routes!(reports::stock::stock_summary))
                .routes(routes!(reports::stock::valuation))
                .routes(routes!(reports::sales::sales))
                .routes(routes!(reports::sourcing::sourcing))
                .routes(routes!(reports::changes::shrinkage))
                .routes(routes!(reports::changes::returns))
                .routes(routes!(reports::changes::counts))
                .routes(routes!(transfers::list_transfers))
                .routes(routes!(transfers::in_transit))
                .routes(routes!(transfers::get_transfer))
                .routes(routes!(network::products))
                .routes(routes!(network::categories))
                .routes(routes!(alerts::list_alerts))
                .routes(routes!(audit::list_audit))
                .routes(routes!(purchase_orders::list_orders))
                .routes(routes!(purchase_orders::get_order))
                .routes(routes!(purchase_orders::open_orders))
                .routes(routes!(purchase_orders::reorder_suggestions))
                .with_state(reads),
        )
        // Only for clients that ask (`Accept-Encoding`); a full inventory shrinks ~10×.
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            limiting,
            ratelimit::limit,
        ));
    router.split_for_parts()
}
