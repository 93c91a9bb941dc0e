//! Purchase orders as they stand (lists with filters, one order with its lines and
//! receipts), the open orders per store and supplier, and reorder suggestions. Read from
//! the primary: an order changed a moment ago in ingest is read as changed.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use schemas::purchase_orders::{
    self, DEFAULT_COVER_DAYS, DEFAULT_WINDOW_DAYS, MAX_COVER_DAYS, MAX_WINDOW_DAYS, OrderState,
    PurchaseOrder, SUGGESTIONS_SQL, Suggestion,
};
use schemas::{StoreId, Total};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidParameter, NoSuchOrder, NoSuchStore};
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use sqlx::{Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::ReadState;
use crate::inventory::require_store;
use crate::pagination::{Page, PageParams};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    pub store_id: Option<i64>,
    pub supplier_id: Option<i64>,
    /// `draft`, `submitted`, `approved`, `rejected`, `partially_received`, `received` or
    /// `cancelled`.
    pub state: Option<OrderState>,
    /// `true`: only orders still open (not received, rejected or cancelled); `false`: only
    /// closed ones.
    pub open: Option<bool>,
    /// Created at or after this instant (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before this instant (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
}

/// Appends the caller's store scope to a query over a table with `store_id`.
fn scoped(query: &mut QueryBuilder<'static, Postgres>, principal: &Principal, store: Option<i64>) {
    if let Some(stores) = principal.store_filter() {
        query
            .push(" AND store_id = ANY(")
            .push_bind(stores)
            .push(")");
    }
    if let Some(store) = store {
        query.push(" AND store_id = ").push_bind(store);
    }
}

/// Purchase orders of the token's stores, newest first.
#[utoipa::path(get, path = "/v1/purchase-orders", tag = "purchase-orders", params(OrderFilter, PageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of orders with their lines and receipts, newest first", body = Page<PurchaseOrder>),
        InvalidParameter,
        (status = 403, description = "`store_id` is not one of the token's stores, or the role may not read orders", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn list_orders(
    State(state): State<ReadState>,
    principal: Principal,
    Query(filter): Query<OrderFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<PurchaseOrder>>, ApiError> {
    principal.require(Permission::PurchaseOrderRead)?;
    if let Some(store) = filter.store_id {
        principal.require_store(StoreId(store))?;
    }
    let limit = page.limit()?;
    let mut query = QueryBuilder::new("SELECT id FROM purchase_orders WHERE true");
    scoped(&mut query, &principal, filter.store_id);
    if let Some(supplier) = filter.supplier_id {
        query.push(" AND supplier_id = ").push_bind(supplier);
    }
    if let Some(order_state) = filter.state {
        query.push(" AND state = ").push_bind(order_state.as_str());
    }
    match filter.open {
        Some(true) => {
            query.push(" AND closed_at IS NULL");
        }
        Some(false) => {
            query.push(" AND closed_at IS NOT NULL");
        }
        None => {}
    }
    if let Some(from) = filter.created_from {
        query.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = filter.created_to {
        query.push(" AND created_at < ").push_bind(to);
    }
    if let Some(cursor) = page.after::<i64>()? {
        query.push(" AND id < ").push_bind(cursor);
    }
    query
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let ids: Vec<i64> = query.build_query_scalar().fetch_all(&state.pool).await?;
    let mut connection = state.pool.acquire().await?;
    let orders = purchase_orders::load(&mut connection, &ids).await?;
    Ok(Json(Page::from_rows(orders, limit, |order| order.id)))
}

/// One purchase order with its lines and receipts.
#[utoipa::path(get, path = "/v1/purchase-orders/{id}", tag = "purchase-orders", params(("id" = i64, Path, description = "Purchase order id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = PurchaseOrder),
        (status = 403, description = "Another store's order, or the role may not read orders", body = Problem, content_type = "application/problem+json"),
        NoSuchOrder,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, purchase_order_id = id))]
pub async fn get_order(
    State(state): State<ReadState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> Result<Json<PurchaseOrder>, ApiError> {
    principal.require(Permission::PurchaseOrderRead)?;
    let mut connection = state.pool.acquire().await?;
    let order = purchase_orders::load(&mut connection, &[id])
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("purchase order", id))?;
    principal.require_store(StoreId(order.store_id))?;
    Ok(Json(order))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OpenFilter {
    pub store_id: Option<i64>,
    pub supplier_id: Option<i64>,
}

/// What a store still expects from a supplier.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct OpenOrders {
    pub store_id: i64,
    pub supplier_id: i64,
    /// Open orders by state.
    pub drafts: i64,
    pub submitted: i64,
    pub approved: i64,
    pub partially_received: i64,
    /// Ordered but not yet received, on the submitted, approved and partially received
    /// orders (drafts are not orders yet).
    pub outstanding_units: Total,
    pub outstanding_cost_paise: Total,
    /// When the oldest of those orders was submitted.
    pub oldest_submitted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenOrdersReport {
    pub rows: Vec<OpenOrders>,
}

/// Open purchase orders per store and supplier, over the token's stores.
#[utoipa::path(get, path = "/v1/reports/open-purchase-orders", tag = "purchase-orders", params(OpenFilter), security(("bearer" = [])),
    responses(
        (status = 200, description = "One row per store and supplier with an open order, by store then supplier", body = OpenOrdersReport),
        (status = 403, description = "`store_id` is not one of the token's stores, or the role may not read orders", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn open_orders(
    State(state): State<ReadState>,
    principal: Principal,
    Query(filter): Query<OpenFilter>,
) -> Result<Json<OpenOrdersReport>, ApiError> {
    principal.require(Permission::PurchaseOrderRead)?;
    if let Some(store) = filter.store_id {
        principal.require_store(StoreId(store))?;
    }
    let mut query = QueryBuilder::new(
        "SELECT o.store_id, o.supplier_id,
                count(*) FILTER (WHERE o.state = 'draft') AS drafts,
                count(*) FILTER (WHERE o.state = 'submitted') AS submitted,
                count(*) FILTER (WHERE o.state = 'approved') AS approved,
                count(*) FILTER (WHERE o.state = 'partially_received') AS partially_received,
                coalesce(sum(l.units) FILTER (WHERE o.state <> 'draft'), 0) AS outstanding_units,
                coalesce(sum(l.cost) FILTER (WHERE o.state <> 'draft'), 0) AS outstanding_cost_paise,
                min(o.submitted_at) AS oldest_submitted_at
           FROM purchase_orders o
           LEFT JOIN LATERAL (
                SELECT sum(greatest(quantity - received_quantity, 0)) AS units,
                       sum(greatest(quantity - received_quantity, 0)::numeric * unit_cost_paise) AS cost
                  FROM purchase_order_lines WHERE purchase_order_id = o.id) l ON true
          WHERE o.closed_at IS NULL",
    );
    scoped(&mut query, &principal, filter.store_id);
    if let Some(supplier) = filter.supplier_id {
        query.push(" AND o.supplier_id = ").push_bind(supplier);
    }
    query.push(" GROUP BY o.store_id, o.supplier_id ORDER BY o.store_id, o.supplier_id");
    let rows = query.build_query_as().fetch_all(&state.pool).await?;
    Ok(Json(OpenOrdersReport { rows }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestionParams {
    /// Only this supplier's products.
    pub supplier_id: Option<i64>,
    /// Days of sales that give a product's velocity (1 to 365, default 28).
    pub window_days: Option<i32>,
    /// Days of sales an order without a reorder quantity should cover (1 to 180, default 14).
    pub cover_days: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Suggestions {
    pub store_id: i64,
    pub window_days: i32,
    pub cover_days: i32,
    /// By supplier, then product. A product several suppliers price appears once for each.
    pub items: Vec<Suggestion>,
}

fn days(field: &str, value: Option<i32>, max: i32, default: i32) -> Result<i32, ApiError> {
    match value {
        None => Ok(default),
        Some(days) if (1..=max).contains(&days) => Ok(days),
        Some(_) => Err(ApiError::validation(
            field,
            "out_of_range",
            format!("1 to {max} days"),
        )),
    }
}

/// What a store should reorder now, per supplier: products at or below their reorder point
/// counting what is on order, with a suggested quantity. `POST /v1/purchase-orders/from-suggestions`
/// (ingest) turns one supplier's into a draft.
#[utoipa::path(get, path = "/v1/stores/{id}/reorder-suggestions", tag = "purchase-orders", params(("id" = i64, Path, description = "Store id"), SuggestionParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The suggestions", body = Suggestions),
        InvalidParameter,
        (status = 403, description = "Another store, or the role may not read orders", body = Problem, content_type = "application/problem+json"),
        NoSuchStore,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn reorder_suggestions(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(params): Query<SuggestionParams>,
) -> Result<Json<Suggestions>, ApiError> {
    principal.require(Permission::PurchaseOrderRead)?;
    let window = days(
        "window_days",
        params.window_days,
        MAX_WINDOW_DAYS,
        DEFAULT_WINDOW_DAYS,
    )?;
    let cover = days(
        "cover_days",
        params.cover_days,
        MAX_COVER_DAYS,
        DEFAULT_COVER_DAYS,
    )?;
    require_store(&state, &principal, store).await?;
    let items: Vec<Suggestion> = sqlx::query_as(SUGGESTIONS_SQL)
        .bind(store)
        .bind(params.supplier_id)
        .bind(window)
        .fetch_all(&state.pool)
        .await?;
    Ok(Json(Suggestions {
        store_id: store,
        window_days: window,
        cover_days: cover,
        items: items
            .into_iter()
            .map(|item| item.decide(window, cover))
            .collect(),
    }))
}
