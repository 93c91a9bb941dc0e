//! Network-wide stock: every store the token may see at once, per product or per category
//! — units, value at moving-average cost and at the stores' selling prices, and in how
//! many stores a product is low or out.
//! Admins and analysts see the whole network; a manager, their own stores.
//!
//! Computed in Postgres from the committed balances (the standby's copy when it has
//! replayed the consistency token, if one is given): one aggregate over the stores in
//! scope, where reading thousands of stores' hashes from Redis would not scale.

use axum::Json;
use axum::extract::State;
use schemas::Total;
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal};
use service_kit::problem::responses::InvalidParameter;
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::ReadState;
use crate::consistency::{ConsistencyParams, NotYetConsistent};
use crate::pagination::{Page, PageParams, contains_pattern};

/// A query that begins with `stock`: every live (store, product) pair a store in scope
/// (`stores`; `None`: all) stocks or has settings for — balances, and settings of products
/// that never moved there (stock 0). Columns: store_id, product_id, quantity, cost,
/// reorder_point, price.
fn with_stock(stores: Option<Vec<i64>>) -> QueryBuilder<'static, Postgres> {
    let mut query =
        QueryBuilder::new("WITH scope AS (SELECT id FROM stores WHERE deleted_at IS NULL");
    if let Some(stores) = stores {
        query.push(" AND id = ANY(").push_bind(stores).push(")");
    }
    query.push(
        "), stock AS (
            SELECT b.store_id, b.product_id, b.quantity, b.average_unit_cost_paise AS cost,
                   sp.reorder_point, sp.selling_price_paise AS price
            FROM balances b JOIN scope ON scope.id = b.store_id
            LEFT JOIN store_products sp
                   ON sp.store_id = b.store_id AND sp.product_id = b.product_id AND sp.deleted_at IS NULL
            UNION ALL
            SELECT sp.store_id, sp.product_id, 0, NULL, sp.reorder_point, sp.selling_price_paise
            FROM store_products sp JOIN scope ON scope.id = sp.store_id
            WHERE sp.deleted_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM balances b
                              WHERE b.store_id = sp.store_id AND b.product_id = sp.product_id)
        ) ",
    );
    query
}

/// The figures both views share, as SQL over `stock` joined with `products p`; sums in
/// `numeric`, exact whatever the stores hold.
const FIGURES: &str = "
    count(*)::bigint AS stores,
    COALESCE(sum(greatest(quantity, 0)), 0) AS units,
    COALESCE(sum(greatest(quantity, 0)::numeric * COALESCE(cost, 0)), 0) AS value_paise,
    COALESCE(sum(greatest(quantity, 0)::numeric * COALESCE(price, 0)), 0) AS retail_value_paise,
    count(*) FILTER (WHERE quantity > 0)::bigint AS stores_in_stock,
    count(*) FILTER (WHERE quantity > 0 AND quantity <= reorder_point)::bigint AS stores_low,
    count(*) FILTER (WHERE quantity <= 0)::bigint AS stores_out";

/// The figures of a product (or a category) over the stores in scope.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct NetworkFigures {
    /// (store, product) pairs counted: for a product, the stores that stock it or have
    /// settings for it.
    pub stores: i64,
    /// Units in stock (negative balances count as none; a category adds each product in
    /// its own unit).
    pub units: Total,
    /// Stock value at each store's moving-average cost.
    pub value_paise: Total,
    /// Stock value at each store's selling price (stores without one count nothing).
    pub retail_value_paise: Total,
    pub stores_in_stock: i64,
    /// At or below the reorder point but not out.
    pub stores_low: i64,
    /// Out of stock.
    pub stores_out: i64,
}

/// One product across the stores in scope.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct NetworkProduct {
    pub product_id: i64,
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    /// `pc`, `g` or `ml`: the unit `units` counts.
    pub unit: String,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub figures: NetworkFigures,
}

/// One category across the stores in scope (products without one: `category` absent).
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct NetworkCategory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Products of the category stocked (or set up) somewhere in scope.
    pub products: i64,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub figures: NetworkFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkCategories {
    /// Stores in scope (live ones).
    pub stores: i64,
    pub total_value_paise: Total,
    pub total_retail_value_paise: Total,
    /// Largest value first.
    pub rows: Vec<NetworkCategory>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NetworkFilter {
    /// Exact category.
    pub category: Option<String>,
    /// Text in the SKU or name (case-insensitive).
    pub q: Option<String>,
    /// Only products out of stock in at least one store.
    pub out_somewhere: Option<bool>,
    /// Only products low (or out) in at least one store.
    pub low_somewhere: Option<bool>,
}

/// The pool to read and the token's stores (`None`: all).
async fn scope<'a>(
    state: &'a ReadState,
    principal: &Principal,
    consistency: &ConsistencyParams,
) -> Result<(&'a PgPool, Option<Vec<i64>>), ApiError> {
    principal.require(Permission::ReportRead)?;
    let token = state.consistent(consistency).await?;
    Ok((
        state.standby.pool_for(token.as_ref()).await,
        principal.store_filter(),
    ))
}

/// Every product's stock across the network (the token's stores), a page at a time.
#[utoipa::path(get, path = "/v1/reports/network/products", tag = "reports",
    params(NetworkFilter, PageParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of products in id order", body = Page<NetworkProduct>),
        InvalidParameter,
        (status = 403, description = "The role may not read reports", body = Problem, content_type = "application/problem+json"),
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn products(
    State(state): State<ReadState>,
    principal: Principal,
    Query(filter): Query<NetworkFilter>,
    Query(page): Query<PageParams>,
    Query(consistency): Query<ConsistencyParams>,
) -> Result<Json<Page<NetworkProduct>>, ApiError> {
    let limit = page.limit()?;
    let after = page.after::<i64>()?;
    let (pool, stores) = scope(&state, &principal, &consistency).await?;
    let mut query = with_stock(stores);
    query.push(format!(
        " SELECT p.id AS product_id, p.sku, p.name, p.category, p.unit, {FIGURES}
          FROM stock JOIN products p ON p.id = stock.product_id
          WHERE p.deleted_at IS NULL"
    ));
    if let Some(category) = filter.category {
        query.push(" AND p.category = ").push_bind(category);
    }
    if let Some(q) = filter.q.filter(|q| !q.trim().is_empty()) {
        let pattern = contains_pattern(q.trim());
        query
            .push(" AND (p.sku ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR p.name ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if let Some(after) = after {
        query.push(" AND p.id > ").push_bind(after);
    }
    query.push(" GROUP BY p.id");
    if filter.out_somewhere == Some(true) {
        query.push(" HAVING count(*) FILTER (WHERE quantity <= 0) > 0");
    } else if filter.low_somewhere == Some(true) {
        query
            .push(" HAVING count(*) FILTER (WHERE quantity <= reorder_point OR quantity <= 0) > 0");
    }
    query
        .push(" ORDER BY p.id LIMIT ")
        .push_bind(i64::from(limit) + 1);
    let rows = query.build_query_as().fetch_all(pool).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |row: &NetworkProduct| row.product_id,
    )))
}

/// Stock across the network (the token's stores) by category.
#[utoipa::path(get, path = "/v1/reports/network/categories", tag = "reports",
    params(ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "Every category, largest value first", body = NetworkCategories),
        (status = 403, description = "The role may not read reports", body = Problem, content_type = "application/problem+json"),
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn categories(
    State(state): State<ReadState>,
    principal: Principal,
    Query(consistency): Query<ConsistencyParams>,
) -> Result<Json<NetworkCategories>, ApiError> {
    let (pool, stores) = scope(&state, &principal, &consistency).await?;
    let rows: Vec<NetworkCategory> = with_stock(stores.clone())
        .push(format!(
            "SELECT p.category, count(DISTINCT p.id)::bigint AS products, {FIGURES}
             FROM stock JOIN products p ON p.id = stock.product_id
             WHERE p.deleted_at IS NULL
             GROUP BY p.category ORDER BY value_paise DESC, p.category NULLS LAST"
        ))
        .build_query_as()
        .fetch_all(pool)
        .await?;
    let in_scope: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM stores WHERE deleted_at IS NULL AND ($1::int8[] IS NULL OR id = ANY($1))",
    )
    .bind(&stores)
    .fetch_one(pool)
    .await?;
    Ok(Json(NetworkCategories {
        stores: in_scope,
        total_value_paise: rows.iter().map(|row| row.figures.value_paise).sum(),
        total_retail_value_paise: rows.iter().map(|row| row.figures.retail_value_paise).sum(),
        rows,
    }))
}
