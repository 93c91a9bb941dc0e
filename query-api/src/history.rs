//! Movement history: the ledger the processors wrote, one row per movement read from
//! Kafka whatever its outcome, filtered and paged newest first by a keyset cursor (time,
//! ledger id), so that paging neither repeats nor skips a row while new ones arrive.
//! Read from the standby (`DATABASE_READ_URL`) unless the request carries a consistency
//! token the standby has not replayed yet (see [`crate::standby`]).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use schemas::StoreId;
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal};
use service_kit::path::Path;
use service_kit::problem::responses::InvalidParameter;
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use sqlx::{Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::ReadState;
use crate::consistency::{ConsistencyParams, NotYetConsistent};
use crate::pagination::{Page, PageParams};

/// One ledger row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct LedgerRow {
    #[serde(skip)]
    pub id: i64,
    pub movement_id: Uuid,
    pub store_id: i64,
    pub product_id: i64,
    pub sku: String,
    /// `stock_in`, `sale`, `removal`, `return` or `adjustment`.
    pub kind: String,
    pub quantity: i64,
    /// `applied`, `rejected`, `duplicate` or `conflict` (the id was first used by another
    /// store or for a different movement: nothing changed).
    pub status: String,
    /// For `rejected`: `insufficient_stock`, `unknown_store`, `unknown_product`,
    /// `balance_overflow`; for `conflict`: `idempotency_key_reused`.
    pub reject_reason: Option<String>,
    /// For `insufficient_stock`: what was there.
    pub available_quantity: Option<i64>,
    /// For `applied`: the store's balance of the product afterwards.
    pub balance_after: Option<i64>,
    /// For `duplicate`: the outcome of the movement it repeats.
    pub original_status: Option<String>,
    /// When it happened at the store (the POS's clock).
    pub occurred_at: DateTime<Utc>,
    /// When ingest accepted it.
    pub received_at: DateTime<Utc>,
    /// When it was written to Kafka (the record's timestamp).
    pub recorded_at: DateTime<Utc>,
    /// Who posted it (the token's subject).
    pub actor: String,
    pub device_id: Option<String>,
    pub supplier_id: Option<i64>,
    pub unit_cost_paise: Option<i64>,
    pub unit_price_paise: Option<i64>,
    /// Why: a removal's, an adjustment's, a return's that is not resellable.
    pub reason: Option<String>,
    /// A return's: `false` when not resellable (sellable stock unchanged).
    pub restock: Option<bool>,
    pub note: Option<String>,
    /// A return's: the sale it takes back from.
    pub original_movement_id: Option<Uuid>,
    /// A void's: the movement it reverses.
    pub voids_movement_id: Option<Uuid>,
    /// A count's: the stock-take it belongs to.
    pub count_id: Option<Uuid>,
    /// A transfer's (out, in and receive): the transfer.
    pub transfer_id: Option<Uuid>,
    /// A transfer-out's: the store the goods go to.
    pub to_store_id: Option<i64>,
    /// A transfer-in's: the store the goods come from.
    pub from_store_id: Option<i64>,
    /// Applied: what it changed in sellable stock (a count: its variance, counted less the
    /// book as of its time).
    #[sqlx(rename = "delta")]
    pub stock_change: Option<i64>,
    pub reference: Option<String>,
    /// A sale or removal made while its till was offline (or received long after it
    /// occurred): never rejected for want of stock.
    pub offline: bool,
    /// Where it was read on `inventory.movements.v1`.
    pub source_partition: i32,
    pub source_offset: i64,
}

const LEDGER_COLUMNS: &str = "id, movement_id, store_id, product_id, sku, kind, quantity, status, \
    reject_reason, available_quantity, balance_after, original_status, occurred_at, received_at, \
    recorded_at, actor, device_id, supplier_id, unit_cost_paise, unit_price_paise, reason, \
    reference, offline, restock, note, original_movement_id, voids_movement_id, count_id, transfer_id, \
    to_store_id, from_store_id, delta, source_partition, source_offset";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    StockIn,
    Sale,
    Removal,
    Return,
    Adjustment,
    Void,
    Count,
    TransferOut,
    TransferIn,
    TransferReceive,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementStatus {
    Applied,
    Rejected,
    Duplicate,
    Conflict,
}

/// Which time `from`, `to` and the order refer to.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeField {
    /// When it was written to Kafka (default).
    #[default]
    Recorded,
    /// When it happened at the store.
    Occurred,
}

impl TimeField {
    fn column(self) -> &'static str {
        match self {
            Self::Recorded => "recorded_at",
            Self::Occurred => "occurred_at",
        }
    }

    fn of(self, row: &LedgerRow) -> DateTime<Utc> {
        match self {
            Self::Recorded => row.recorded_at,
            Self::Occurred => row.occurred_at,
        }
    }
}

fn text<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MovementFilter {
    pub store_id: Option<i64>,
    pub product_id: Option<i64>,
    pub kind: Option<MovementKind>,
    pub status: Option<MovementStatus>,
    pub supplier_id: Option<i64>,
    /// Exactly this actor (a token's subject).
    pub actor: Option<String>,
    /// From this instant on (RFC 3339), inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Before this instant (RFC 3339), exclusive.
    pub to: Option<DateTime<Utc>>,
    /// `recorded` (default) or `occurred`: the time `from`/`to` filter and the order uses.
    pub time: Option<TimeField>,
}

/// Rows per page of history: 100 unless `limit` says otherwise, at most 1,000.
const DEFAULT_ROWS: u32 = 100;
const MAX_ROWS: u32 = 1_000;

/// The ledger, newest first.
#[utoipa::path(get, path = "/v1/movements", tag = "movements",
    params(MovementFilter, PageParams, ConsistencyParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of ledger rows, newest first by the chosen time", body = Page<LedgerRow>),
        InvalidParameter,
        (status = 403, description = "`store_id` is not one of the token's stores, or the role may not read movements", body = Problem, content_type = "application/problem+json"),
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject))]
pub async fn list_movements(
    State(state): State<ReadState>,
    principal: Principal,
    Query(filter): Query<MovementFilter>,
    Query(page): Query<PageParams>,
    Query(consistency): Query<ConsistencyParams>,
) -> Result<Json<Page<LedgerRow>>, ApiError> {
    principal.require(Permission::InventoryRead)?;
    let limit = page.limit_or(DEFAULT_ROWS, MAX_ROWS)?;
    let after = page.after::<(i64, i64)>()?;
    let time = filter.time.unwrap_or_default();
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from >= to
    {
        return Err(ApiError::validation(
            "to",
            "out_of_range",
            "must be after `from`",
        ));
    }
    if let Some(store) = filter.store_id {
        principal.require_store(StoreId(store))?;
    }
    let token = state.consistent(&consistency).await?;

    let column = time.column();
    let mut query: QueryBuilder<'static, Postgres> =
        QueryBuilder::new(format!("SELECT {LEDGER_COLUMNS} FROM movements WHERE true"));
    if let Some(stores) = principal.store_filter() {
        query
            .push(" AND store_id = ANY(")
            .push_bind(stores)
            .push(")");
    }
    let mut equal = |column: &str, value: Option<i64>| {
        if let Some(value) = value {
            query.push(format!(" AND {column} = ")).push_bind(value);
        }
    };
    equal("store_id", filter.store_id);
    equal("product_id", filter.product_id);
    equal("supplier_id", filter.supplier_id);
    if let Some(kind) = filter.kind {
        query.push(" AND kind = ").push_bind(text(kind));
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(text(status));
    }
    if let Some(actor) = filter.actor {
        query.push(" AND actor = ").push_bind(actor);
    }
    if let Some(from) = filter.from {
        query.push(format!(" AND {column} >= ")).push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(format!(" AND {column} < ")).push_bind(to);
    }
    if let Some((micros, id)) = after {
        let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| {
            ApiError::validation(
                "cursor",
                "invalid_cursor",
                "not a cursor this list gave out",
            )
        })?;
        query
            .push(format!(" AND ({column}, id) < ("))
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    query
        .push(format!(" ORDER BY {column} DESC, id DESC LIMIT "))
        .push_bind(i64::from(limit) + 1);
    let rows: Vec<LedgerRow> = query
        .build_query_as()
        .fetch_all(state.standby.pool_for(token.as_ref()).await)
        .await?;
    Ok(Json(Page::from_rows(rows, limit, |row| {
        (time.of(row).timestamp_micros(), row.id)
    })))
}

/// A movement's outcome: its first ledger row (applied or rejected), the duplicates
/// recorded when it was sent again, and the conflicts: the same id sent by the same store
/// for a different movement.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovementOutcome {
    #[serde(flatten)]
    pub movement: LedgerRow,
    /// Later records of the same movement, oldest first.
    pub duplicates: Vec<LedgerRow>,
    /// Later records of the same store with the same `movement_id` and other content,
    /// oldest first (another store's reuse of the id is that store's, and not shown here).
    pub conflicts: Vec<LedgerRow>,
}

/// One movement's outcome.
#[utoipa::path(get, path = "/v1/movements/{movement_id}", tag = "movements",
    params(("movement_id" = Uuid, Path, description = "The movement's id (its idempotency key)"), ConsistencyParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Its outcome", body = MovementOutcome),
        (status = 403, description = "A movement of a store not in the token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not (yet) processed: unknown to the ledger", body = Problem, content_type = "application/problem+json"),
        NotYetConsistent,
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, movement_id = %movement_id))]
pub async fn get_movement(
    State(state): State<ReadState>,
    principal: Principal,
    Path(movement_id): Path<Uuid>,
    Query(consistency): Query<ConsistencyParams>,
) -> Result<Json<MovementOutcome>, ApiError> {
    principal.require(Permission::InventoryRead)?;
    let token = state.consistent(&consistency).await?;
    // The first outcome through movement_ids (its store and record time), the later rows
    // of its store through their own index: the ledger has no index over every movement_id.
    let rows: Vec<LedgerRow> = sqlx::query_as(&format!(
        "WITH first AS (SELECT store_id, recorded_at FROM movement_ids WHERE movement_id = $1) \
         SELECT * FROM ( \
           SELECT {LEDGER_COLUMNS} FROM movements \
           WHERE (store_id, recorded_at) = (SELECT store_id, recorded_at FROM first) \
             AND movement_id = $1 AND status IN ('applied', 'rejected') \
           UNION ALL \
           SELECT {LEDGER_COLUMNS} FROM movements WHERE movement_id = $1 \
             AND status IN ('duplicate', 'conflict') AND store_id = (SELECT store_id FROM first) \
         ) outcomes ORDER BY status IN ('duplicate', 'conflict'), recorded_at, id"
    ))
    .bind(movement_id)
    .fetch_all(state.standby.pool_for(token.as_ref()).await)
    .await?;
    let mut rows = rows.into_iter();
    let movement = rows
        .next()
        .ok_or_else(|| ApiError::not_found("movement", movement_id))?;
    principal.require_store(StoreId(movement.store_id))?;
    let (duplicates, conflicts) = rows.partition(|row| row.status == "duplicate");
    Ok(Json(MovementOutcome {
        movement,
        duplicates,
        conflicts,
    }))
}
