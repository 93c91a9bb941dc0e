//! Stock-ins of a store by supplier over local days, from the daily rollups; cash purchases
//! (no supplier) are a row of their own.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::NaiveDate;
use schemas::Total;
use serde::{Deserialize, Serialize};
use service_kit::auth::Principal;
use service_kit::path::Path;
use service_kit::problem::ApiError;
use service_kit::problem::responses::{InvalidParameter, NoSuchStore, NotModified};
use service_kit::query::Query;
use utoipa::{IntoParams, ToSchema};

use super::{RangeParams, ReportsForbidden, rollups};
use crate::ReadState;
use crate::consistency::{ConsistencyParams, NotYetConsistent};
use crate::etag;

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourcingGroup {
    #[default]
    Supplier,
    Product,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SourcingParams {
    /// `supplier` (default) or `product` (per supplier and product).
    pub group_by: Option<SourcingGroup>,
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct SourcingRow {
    /// `null` for cash purchases: stock-ins without a supplier.
    pub supplier_id: Option<i64>,
    /// `null` for cash purchases.
    pub supplier_name: Option<String>,
    /// For `group_by=product`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub sku: Option<String>,
    pub units_received: Total,
    /// The cost of the units received with one.
    pub cost_paise: Total,
    /// Units received without a cost (`cost_paise` leaves them out).
    pub units_without_cost: Total,
    pub stock_ins: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourcingReport {
    pub store_id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub total_units_received: Total,
    pub total_cost_paise: Total,
    pub total_units_without_cost: Total,
    /// By supplier id, cash purchases last (then product id).
    pub rows: Vec<SourcingRow>,
}

/// Stock-ins of a store by supplier over local days.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/suppliers", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), RangeParams, SourcingParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The report, with an `ETag`", body = SourcingReport),
        NotModified,
        InvalidParameter,
        ReportsForbidden,
        NoSuchStore,
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn sourcing(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(range): Query<RangeParams>,
    Query(params): Query<SourcingParams>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (from, to, pool) = rollups(&state, &principal, store, &range, &consistency).await?;
    let (product, group) = match params.group_by.unwrap_or_default() {
        SourcingGroup::Supplier => ("NULL::bigint", "d.supplier_id, s.name"),
        SourcingGroup::Product => ("d.product_id", "d.supplier_id, s.name, d.product_id"),
    };
    let mut rows: Vec<SourcingRow> = sqlx::query_as(&format!(
        "SELECT d.supplier_id, s.name AS supplier_name, {product} AS product_id, \
                SUM(d.units_received) AS units_received, SUM(d.cost_paise) AS cost_paise, \
                SUM(d.units_uncosted) AS units_without_cost, \
                SUM(d.stock_in_count)::bigint AS stock_ins \
         FROM supplier_daily d LEFT JOIN suppliers s ON s.id = d.supplier_id \
         WHERE d.store_id = $1 AND d.day BETWEEN $2 AND $3 GROUP BY {group} ORDER BY {group}"
    ))
    .bind(store)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    {
        let catalog = state.view.read();
        for row in &mut rows {
            row.sku = row
                .product_id
                .and_then(|id| catalog.products.get(&id))
                .map(|meta| meta.sku.to_string());
        }
    }
    let report = SourcingReport {
        store_id: store,
        from,
        to,
        total_units_received: rows.iter().map(|row| row.units_received).sum(),
        total_cost_paise: rows.iter().map(|row| row.cost_paise).sum(),
        total_units_without_cost: rows.iter().map(|row| row.units_without_cost).sum(),
        rows,
    };
    etag::respond(&headers, &report, None)
}
