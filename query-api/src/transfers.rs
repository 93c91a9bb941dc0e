//! Transfers between stores: each transfer's state (in transit, or received with what was
//! lost on the way), a store's transfers, and what is in transit to and from a store.
//! Written by the processors' commits (the source's transfer-out, the destination's
//! receive); read here.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use schemas::{StoreId, Total};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::{InvalidParameter, NoSuchStore};
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use sqlx::{Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::ReadState;
use crate::consistency::{ConsistencyParams, NotYetConsistent};
use crate::inventory::require_store;
use crate::pagination::{Order, Page, PageParams, page_by_id};

/// One transfer. Conservation: `quantity_sent` = `quantity_received` + `quantity_lost`
/// once received; all of it is in transit before.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Transfer {
    #[serde(skip)]
    pub id: i64,
    pub transfer_id: Uuid,
    pub from_store_id: i64,
    pub to_store_id: i64,
    pub product_id: i64,
    pub sku: String,
    /// `in_transit` or `received`.
    pub status: String,
    pub quantity_sent: i64,
    /// The source's moving-average cost per unit when it sent them (absent: unknown): what
    /// the units join the destination's average at, and what a loss is valued at.
    pub unit_cost_paise: Option<i64>,
    /// When the transfer-out occurred.
    pub sent_at: DateTime<Utc>,
    /// What is in transit now: all that was sent until it is received, then 0.
    pub quantity_in_transit: i64,
    pub quantity_received: Option<i64>,
    /// Received: what was sent and did not arrive.
    pub quantity_lost: Option<i64>,
    /// Why the shortfall was lost (the receive's `reason`, `lost` when it gave none).
    pub loss_reason: Option<String>,
    /// When the receive occurred.
    pub received_at: Option<DateTime<Utc>>,
    pub out_movement_id: Uuid,
    pub receive_movement_id: Option<Uuid>,
}

const TRANSFER_COLUMNS: &str = "id, transfer_id, from_store_id, to_store_id, product_id, sku, \
    CASE WHEN quantity_received IS NULL THEN 'in_transit' ELSE 'received' END AS status, \
    quantity_sent, unit_cost_paise, sent_at, \
    CASE WHEN quantity_received IS NULL THEN quantity_sent ELSE 0 END AS quantity_in_transit, \
    quantity_received, quantity_sent - quantity_received AS quantity_lost, loss_reason, \
    received_at, out_movement_id, receive_movement_id";
const IN_TRANSIT: &str = "quantity_received IS NULL";

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Sent by the store.
    Outgoing,
    /// Sent to the store.
    Incoming,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    InTransit,
    Received,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransferFilter {
    /// Only those the store sent, or only those sent to it (default: both).
    pub direction: Option<Direction>,
    pub status: Option<TransferStatus>,
    pub product_id: Option<i64>,
}

/// A store's transfers, sent or received, newest first.
#[utoipa::path(get, path = "/v1/stores/{id}/transfers", tag = "transfers",
    params(("id" = i64, Path, description = "Store id"), TransferFilter, PageParams, ConsistencyParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of transfers, newest first", body = Page<Transfer>),
        InvalidParameter,
        (status = 403, description = "Not one of the token's stores, or the role may not read inventory", body = Problem, content_type = "application/problem+json"),
        NoSuchStore,
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn list_transfers(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(filter): Query<TransferFilter>,
    Query(page): Query<PageParams>,
    Query(consistency): Query<ConsistencyParams>,
) -> Result<Json<Page<Transfer>>, ApiError> {
    let pool = store_reads(&state, &principal, store, &consistency).await?;
    let mut query: QueryBuilder<'static, Postgres> =
        QueryBuilder::new(format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE "));
    match filter.direction {
        Some(Direction::Outgoing) => query.push("from_store_id = ").push_bind(store),
        Some(Direction::Incoming) => query.push("to_store_id = ").push_bind(store),
        None => query
            .push("(from_store_id = ")
            .push_bind(store)
            .push(" OR to_store_id = ")
            .push_bind(store)
            .push(")"),
    };
    match filter.status {
        Some(TransferStatus::InTransit) => query.push(format!(" AND {IN_TRANSIT}")),
        Some(TransferStatus::Received) => query.push(format!(" AND NOT {IN_TRANSIT}")),
        None => &mut query,
    };
    if let Some(product) = filter.product_id {
        query.push(" AND product_id = ").push_bind(product);
    }
    Ok(Json(
        page_by_id(pool, query, &page, Order::Descending, |row: &Transfer| {
            row.id
        })
        .await?,
    ))
}

/// Where a read of one store's transfers goes, once the token may read that store's
/// inventory and the store exists: the standby, or the primary for a consistency token the
/// standby has not replayed.
async fn store_reads<'a>(
    state: &'a ReadState,
    principal: &Principal,
    store: i64,
    consistency: &ConsistencyParams,
) -> Result<&'a sqlx::PgPool, ApiError> {
    principal.require(Permission::InventoryRead)?;
    require_store(state, principal, store).await?;
    let token = state.consistent(consistency).await?;
    Ok(state.standby.pool_for(token.as_ref()).await)
}

/// One transfer, to either of its stores' tokens.
#[utoipa::path(get, path = "/v1/transfers/{transfer_id}", tag = "transfers",
    params(("transfer_id" = Uuid, Path, description = "The client's id of the transfer"), ConsistencyParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The transfer", body = Transfer),
        (status = 403, description = "A transfer between stores neither of which is in the token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such transfer (or its transfer-out is not processed yet)", body = Problem, content_type = "application/problem+json"),
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, transfer_id = %transfer_id))]
pub async fn get_transfer(
    State(state): State<ReadState>,
    principal: Principal,
    Path(transfer_id): Path<Uuid>,
    Query(consistency): Query<ConsistencyParams>,
) -> Result<Json<Transfer>, ApiError> {
    principal.require(Permission::InventoryRead)?;
    let token = state.consistent(&consistency).await?;
    let transfer: Transfer = sqlx::query_as(&format!(
        "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE transfer_id = $1"
    ))
    .bind(transfer_id)
    .fetch_optional(state.standby.pool_for(token.as_ref()).await)
    .await?
    .ok_or_else(|| ApiError::not_found("transfer", transfer_id))?;
    if principal
        .require_store(StoreId(transfer.from_store_id))
        .is_err()
    {
        principal.require_store(StoreId(transfer.to_store_id))?;
    }
    Ok(Json(transfer))
}

/// What is in transit for one product, one way.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct TransitLine {
    pub product_id: i64,
    pub sku: String,
    pub units: Total,
    /// At the source's cost when sent (units whose cost is unknown count nothing).
    pub value_paise: Total,
    /// Units whose cost is unknown: `value_paise` leaves them out.
    pub units_without_cost: Total,
    pub transfers: i64,
}

/// What is in transit to and from a store, by product.
#[derive(Debug, Serialize, ToSchema)]
pub struct InTransit {
    pub store_id: i64,
    /// Sent by the store, not yet received.
    pub outgoing: Vec<TransitLine>,
    /// Sent to the store, not yet received.
    pub incoming: Vec<TransitLine>,
}

/// What is in transit to and from a store, by product.
#[utoipa::path(get, path = "/v1/stores/{id}/transfers/in-transit", tag = "transfers",
    params(("id" = i64, Path, description = "Store id"), ConsistencyParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Units in transit by product, each way", body = InTransit),
        (status = 403, description = "Not one of the token's stores, or the role may not read inventory", body = Problem, content_type = "application/problem+json"),
        NoSuchStore,
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn in_transit(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(consistency): Query<ConsistencyParams>,
) -> Result<Json<InTransit>, ApiError> {
    let pool = store_reads(&state, &principal, store, &consistency).await?;
    let rows: Vec<(bool, i64, String, Total, Total, Total, i64)> = sqlx::query_as(&format!(
        "SELECT from_store_id = $1, product_id, min(sku), sum(quantity_sent), \
           COALESCE(sum(quantity_sent::numeric * unit_cost_paise), 0), \
           COALESCE(sum(quantity_sent) FILTER (WHERE unit_cost_paise IS NULL), 0), count(*) \
         FROM transfers WHERE (from_store_id = $1 OR to_store_id = $1) AND {IN_TRANSIT} \
         GROUP BY 1, 2 ORDER BY 2"
    ))
    .bind(store)
    .fetch_all(pool)
    .await?;
    let (mut outgoing, mut incoming) = (Vec::new(), Vec::new());
    for (sent, product_id, sku, units, value_paise, units_without_cost, transfers) in rows {
        let line = TransitLine {
            product_id,
            sku,
            units,
            value_paise,
            units_without_cost,
            transfers,
        };
        if sent {
            outgoing.push(line);
        } else {
            incoming.push(line);
        }
    }
    Ok(Json(InTransit {
        store_id: store,
        outgoing,
        incoming,
    }))
}
