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
use crate::{
    ReadState, alerts, audit, balances, history, inventory, network, purchase_orders, reports,
    users,
};
use schemas::purchase_orders::{
    OrderLine, OrderState, PurchaseOrder, Receipt, ReceiptLine, Suggestion,
};

#[derive(OpenApi)]
#[openapi(
    paths(
        catalog::list_stores, catalog::get_store,
        catalog::list_products, catalog::get_product, catalog::get_product_by_sku,
        catalog::list_suppliers, catalog::get_supplier,
        catalog::list_supplier_prices, catalog::get_supplier_price,
        catalog::list_store_products,
        users::list_users, users::get_user, users::me,
        inventory::store_inventory, inventory::store_product, inventory::product_inventory,
        history::list_movements, history::get_movement,
        reports::stock_summary, reports::valuation, reports::sales, reports::sourcing,
        network::products, network::categories,
        alerts::list_alerts, audit::list_audit,
        purchase_orders::list_orders, purchase_orders::get_order, purchase_orders::open_orders, purchase_orders::reorder_suggestions
    ),
    components(schemas(
        Store, Product, Supplier, SupplierPrice, StoreProduct, User, users::Me,
        Page<Store>, Page<Product>, Page<Supplier>, Page<SupplierPrice>, Page<StoreProduct>, Page<User>,
        balances::Freshness, balances::Source,
        inventory::InventoryItem, inventory::InventoryPage, inventory::InventoryResponse, inventory::StockStatus,
        inventory::StoreItem, inventory::StoreItemResponse,
        inventory::Stock, inventory::ProductStock, inventory::ProductInventory, inventory::ProductInventoryResponse,
        history::LedgerRow, history::MovementOutcome, history::MovementKind, history::MovementStatus, history::TimeField,
        Page<history::LedgerRow>,
        reports::StockSummary, reports::StockSummaryResponse, reports::Valuation, reports::ValuationRow,
        reports::ValuationResponse, reports::ValuationGroup,
        reports::SalesReport, reports::SalesRow, reports::SalesFigures, reports::SalesGroup,
        reports::SourcingReport, reports::SourcingRow, reports::SourcingGroup,
        network::NetworkFigures, network::NetworkProduct, Page<network::NetworkProduct>, network::NetworkCategory, network::NetworkCategories,
        alerts::Alert, alerts::AlertKind, Page<alerts::Alert>,
        audit::AuditEntry, Page<audit::AuditEntry>,
        OrderState, PurchaseOrder, OrderLine, Receipt, ReceiptLine, Suggestion, Page<PurchaseOrder>,
        purchase_orders::OpenOrders, purchase_orders::OpenOrdersReport, purchase_orders::Suggestions,
        service_kit::problem::Problem, service_kit::problem::FieldError
    )),
    modifiers(&BearerSecurity),
    tags(
        (name = "catalog", description = "Stores, products, suppliers, prices and per-store settings (writes are in ingest)"),
        (name = "users", description = "Users (admin only; changes are in ingest) and who am I (anyone)"),
        (name = "inventory", description = "Current stock: from Redis when it holds it, Postgres otherwise; with freshness and ETag"),
        (name = "movements", description = "The ledger: every movement's outcome"),
        (name = "reports", description = "Stock summary and valuation (current balances), sales and supplier sourcing (daily rollups, local days), and stock across the network"),
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
        .route("/v1/me", get(users::me))
        .with_state(catalog)
        .merge(
            Router::new()
                .route("/v1/stores/{id}/inventory", get(inventory::store_inventory))
                .route(
                    "/v1/stores/{id}/inventory/{product_id}",
                    get(inventory::store_product),
                )
                .route(
                    "/v1/products/{id}/inventory",
                    get(inventory::product_inventory),
                )
                .route("/v1/movements", get(history::list_movements))
                .route("/v1/movements/{movement_id}", get(history::get_movement))
                .route(
                    "/v1/stores/{id}/reports/stock-summary",
                    get(reports::stock_summary),
                )
                .route("/v1/stores/{id}/reports/valuation", get(reports::valuation))
                .route("/v1/stores/{id}/reports/sales", get(reports::sales))
                .route("/v1/stores/{id}/reports/suppliers", get(reports::sourcing))
                .route("/v1/reports/network/products", get(network::products))
                .route("/v1/reports/network/categories", get(network::categories))
                .route("/v1/alerts", get(alerts::list_alerts))
                .route("/v1/audit", get(audit::list_audit))
                .route("/v1/purchase-orders", get(purchase_orders::list_orders))
                .route("/v1/purchase-orders/{id}", get(purchase_orders::get_order))
                .route(
                    "/v1/reports/open-purchase-orders",
                    get(purchase_orders::open_orders),
                )
                .route(
                    "/v1/stores/{id}/reorder-suggestions",
                    get(purchase_orders::reorder_suggestions),
                )
                .with_state(reads),
        )
        // Only for clients that ask (`Accept-Encoding`); a full inventory shrinks ~10×.
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            limiting,
            ratelimit::limit,
        ));
    (router, QueryApi::openapi())
}
