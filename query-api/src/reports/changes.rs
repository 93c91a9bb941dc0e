//! Stock that changed other than by sales and stock-ins, over local days, from its daily
//! rollup: shrinkage (what the store lost or found, by reason or product) and customers'
//! returns by product.

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

use super::{RangeParams, ReportsForbidden, named, rollups};
use crate::ReadState;
use crate::consistency::{ConsistencyParams, NotYetConsistent};
use crate::etag;

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShrinkageGroup {
    #[default]
    Reason,
    Product,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShrinkageParams {
    /// `reason` (default) or `product`.
    pub group_by: Option<ShrinkageGroup>,
}

/// What a store lost and found, valued at the moving-average cost when it happened.
#[derive(Debug, Default, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ShrinkageFigures {
    /// Units removed, adjusted down, or returned by customers and written off (not
    /// resellable).
    pub units_lost: Total,
    pub value_lost_paise: Total,
    /// Units adjusted up (found).
    pub units_found: Total,
    pub value_found_paise: Total,
    /// `value_lost_paise − value_found_paise`.
    pub net_value_lost_paise: Total,
    /// Units lost or found whose cost was unknown: the values leave them out.
    pub units_without_cost: Total,
    /// Removals, adjustments and written-off returns.
    pub movements: i64,
}

impl ShrinkageFigures {
    fn add(&mut self, other: &Self) {
        self.units_lost += other.units_lost;
        self.value_lost_paise += other.value_lost_paise;
        self.units_found += other.units_found;
        self.value_found_paise += other.value_found_paise;
        self.net_value_lost_paise += other.net_value_lost_paise;
        self.units_without_cost += other.units_without_cost;
        self.movements += other.movements;
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct ShrinkageRow {
    /// For `group_by=reason`: `damaged`, `expired`, `lost`, `theft`, `found`, `correction`,
    /// `defective` or `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `group_by=product`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub name: Option<String>,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub figures: ShrinkageFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShrinkageReport {
    pub store_id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub totals: ShrinkageFigures,
    /// By reason (or product id), the largest net loss first.
    pub rows: Vec<ShrinkageRow>,
}

/// The changes that lose (or find) stock; a restocked return is neither.
const SHRINKAGE_FIGURES: &str = "\
    COALESCE(SUM(units) FILTER (WHERE change <> 'adjustment_up'), 0) AS units_lost, \
    COALESCE(SUM(value_paise) FILTER (WHERE change <> 'adjustment_up'), 0) AS value_lost_paise, \
    COALESCE(SUM(units) FILTER (WHERE change = 'adjustment_up'), 0) AS units_found, \
    COALESCE(SUM(value_paise) FILTER (WHERE change = 'adjustment_up'), 0) AS value_found_paise, \
    COALESCE(SUM(CASE WHEN change = 'adjustment_up' THEN -value_paise ELSE value_paise END), 0) \
      AS net_value_lost_paise, \
    COALESCE(SUM(units_without_cost), 0) AS units_without_cost, \
    COALESCE(SUM(movements), 0)::bigint AS movements";

/// Stock a store lost or found over local days (removals, adjustments, returns written
/// off), by reason or by product.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/shrinkage", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), RangeParams, ShrinkageParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The report, with an `ETag`", body = ShrinkageReport),
        NotModified,
        InvalidParameter,
        ReportsForbidden,
        NoSuchStore,
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn shrinkage(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(range): Query<RangeParams>,
    Query(params): Query<ShrinkageParams>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (from, to, pool) = rollups(&state, &principal, store, &range, &consistency).await?;
    let (select, key) = match params.group_by.unwrap_or_default() {
        ShrinkageGroup::Reason => ("reason, NULL::bigint AS product_id", "reason"),
        ShrinkageGroup::Product => ("NULL::text AS reason, product_id", "product_id"),
    };
    let mut rows: Vec<ShrinkageRow> = sqlx::query_as(&format!(
        "SELECT {select}, {SHRINKAGE_FIGURES} FROM stock_changes_daily \
         WHERE store_id = $1 AND day BETWEEN $2 AND $3 AND change <> 'return_restocked' \
         GROUP BY {key} ORDER BY net_value_lost_paise DESC, {key}"
    ))
    .bind(store)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let mut totals = ShrinkageFigures::default();
    {
        let catalog = state.view.read();
        for row in &mut rows {
            totals.add(&row.figures);
            (row.sku, row.name) = named(&catalog, row.product_id);
        }
    }
    let report = ShrinkageReport {
        store_id: store,
        from,
        to,
        totals,
        rows,
    };
    etag::respond(&headers, &report, None)
}

/// Customers' returns of a product.
#[derive(Debug, Default, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ReturnFigures {
    pub returns: i64,
    pub units_returned: Total,
    /// Back on the shelf.
    pub units_restocked: Total,
    /// Not resellable (damaged, expired, defective, other).
    pub units_written_off: Total,
    /// The written-off units at the moving-average cost.
    pub value_written_off_paise: Total,
}

impl ReturnFigures {
    fn add(&mut self, other: &Self) {
        self.returns += other.returns;
        self.units_returned += other.units_returned;
        self.units_restocked += other.units_restocked;
        self.units_written_off += other.units_written_off;
        self.value_written_off_paise += other.value_written_off_paise;
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct ReturnRow {
    pub product_id: i64,
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub figures: ReturnFigures,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnsReport {
    pub store_id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub totals: ReturnFigures,
    /// By product, the most units returned first.
    pub rows: Vec<ReturnRow>,
}

/// Customers' returns of a store over local days, by product.
#[utoipa::path(get, path = "/v1/stores/{id}/reports/returns", tag = "reports",
    params(("id" = i64, Path, description = "Store id"), RangeParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The report, with an `ETag`", body = ReturnsReport),
        NotModified,
        InvalidParameter,
        ReportsForbidden,
        NoSuchStore,
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn returns(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(range): Query<RangeParams>,
    Query(consistency): Query<ConsistencyParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (from, to, pool) = rollups(&state, &principal, store, &range, &consistency).await?;
    let mut rows: Vec<ReturnRow> = sqlx::query_as(
        "SELECT product_id, SUM(movements)::bigint AS returns, SUM(units) AS units_returned, \
                COALESCE(SUM(units) FILTER (WHERE change = 'return_restocked'), 0) AS units_restocked, \
                COALESCE(SUM(units) FILTER (WHERE change = 'return_written_off'), 0) AS units_written_off, \
                COALESCE(SUM(value_paise) FILTER (WHERE change = 'return_written_off'), 0) \
                  AS value_written_off_paise \
         FROM stock_changes_daily \
         WHERE store_id = $1 AND day BETWEEN $2 AND $3 \
           AND change IN ('return_restocked', 'return_written_off') \
         GROUP BY product_id ORDER BY units_returned DESC, product_id",
    )
    .bind(store)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let mut totals = ReturnFigures::default();
    {
        let catalog = state.view.read();
        for row in &mut rows {
            totals.add(&row.figures);
            (row.sku, row.name) = named(&catalog, Some(row.product_id));
        }
    }
    let report = ReturnsReport {
        store_id: store,
        from,
        to,
        totals,
        rows,
    };
    etag::respond(&headers, &report, None)
}
