//! Low-stock and out-of-stock alerts as the processors raised them: active ones (not yet
//! resolved by a later level) and recent history, newest first, scoped to the caller's
//! stores.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use schemas::StoreId;
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal};
use service_kit::problem::responses::InvalidParameter;
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use sqlx::{Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::ReadState;
use crate::pagination::{Order, Page, PageParams, page_by_id};

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Alert {
    pub id: i64,
    pub store_id: i64,
    pub product_id: i64,
    /// `low_stock`, `out_of_stock`, `recovered` or `phantom_stock` (an offline sale or
    /// removal took more than the book held: the book was wrong; count the shelf).
    pub kind: String,
    /// The balance that raised it.
    pub quantity: i64,
    pub reorder_point: Option<i64>,
    /// The movement that crossed the level.
    pub movement_id: Uuid,
    pub raised_at: DateTime<Utc>,
    /// When a later level replaced it; absent while active.
    pub resolved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    LowStock,
    OutOfStock,
    Recovered,
    PhantomStock,
}

impl AlertKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::LowStock => "low_stock",
            Self::OutOfStock => "out_of_stock",
            Self::Recovered => "recovered",
            Self::PhantomStock => "phantom_stock",
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertFilter {
    pub store_id: Option<i64>,
    pub product_id: Option<i64>,
    pub kind: Option<AlertKind>,
    /// `true`: only unresolved alerts other than `recovered`; `false`: only the others.
    pub active: Option<bool>,
    /// Raised at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
}

const ALERT_COLUMNS: &str =
    "id, store_id, product_id, kind, quantity, reorder_point, movement_id, raised_at, resolved_at";
const ACTIVE: &str = "(resolved_at IS NULL AND kind <> 'recovered')";

/// Alerts of the token's stores, newest first.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", params(AlertFilter, PageParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of alerts, newest first", body = Page<Alert>),
        InvalidParameter,
        (status = 403, description = "`store_id` is not one of the token's stores, or the role may not read inventory", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn list_alerts(
    State(state): State<ReadState>,
    principal: Principal,
    Query(filter): Query<AlertFilter>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<Alert>>, ApiError> {
    principal.require(Permission::InventoryRead)?;
    if let Some(store) = filter.store_id {
        principal.require_store(StoreId(store))?;
    }
    let mut query: QueryBuilder<'static, Postgres> =
        QueryBuilder::new(format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE true"));
    if let Some(stores) = principal.store_filter() {
        query
            .push(" AND store_id = ANY(")
            .push_bind(stores)
            .push(")");
    }
    if let Some(store) = filter.store_id {
        query.push(" AND store_id = ").push_bind(store);
    }
    if let Some(product) = filter.product_id {
        query.push(" AND product_id = ").push_bind(product);
    }
    if let Some(kind) = filter.kind {
        query.push(" AND kind = ").push_bind(kind.as_str());
    }
    match filter.active {
        Some(true) => {
            query.push(format!(" AND {ACTIVE}"));
        }
        Some(false) => {
            query.push(format!(" AND NOT {ACTIVE}"));
        }
        None => {}
    }
    if let Some(since) = filter.since {
        query.push(" AND raised_at >= ").push_bind(since);
    }
    Ok(Json(
        page_by_id(
            state.standby.pool_for(None).await,
            query,
            &page,
            Order::Descending,
            |alert: &Alert| alert.id,
        )
        .await?,
    ))
}
