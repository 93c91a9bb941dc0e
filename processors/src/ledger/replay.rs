//! Committed ledger rows and the outputs they made, read again to publish what the output
//! topics lack (after an aborted transaction, a crash between commit and publish, or for a
//! partition's new owner).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use schemas::{
    AlertKind, Balance, LedgerEntry, LedgerStatus, MovementKind, ProductId, StockAlert,
    StockMovement, StoreId, SupplierId,
};
use sqlx::PgPool;
use uuid::Uuid;

/// A ledger row as the output topics carry it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerRow {
    movement_id: Uuid,
    store_id: i64,
    product_id: i64,
    sku: String,
    kind: String,
    quantity: i64,
    status: String,
    reject_reason: Option<String>,
    available_quantity: Option<i64>,
    balance_after: Option<i64>,
    original_status: Option<String>,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    actor: String,
    device_id: Option<String>,
    supplier_id: Option<i64>,
    unit_cost_paise: Option<i64>,
    unit_price_paise: Option<i64>,
    reason: Option<String>,
    reference: Option<String>,
    offline: bool,
    restock: Option<bool>,
    note: Option<String>,
    original_movement_id: Option<Uuid>,
    voids_movement_id: Option<Uuid>,
    count_id: Option<Uuid>,
    transfer_id: Option<Uuid>,
    to_store_id: Option<i64>,
    from_store_id: Option<i64>,
    /// What it changed in sellable stock (NULL before counts: then its kind's change).
    delta: Option<i64>,
    /// Read only where a void needs it (not republished).
    #[sqlx(default)]
    average_cost_paise: Option<i64>,
    source_partition: i32,
    source_offset: i64,
}

impl LedgerRow {
    pub fn entry(self) -> LedgerEntry {
        LedgerEntry {
            movement: StockMovement {
                movement_id: self.movement_id,
                store_id: StoreId(self.store_id),
                product_id: ProductId(self.product_id),
                sku: self.sku,
                kind: MovementKind::parse(&self.kind).unwrap_or(MovementKind::Unknown),
                quantity: self.quantity,
                occurred_at: self.occurred_at,
                received_at: self.received_at,
                supplier_id: self.supplier_id.map(SupplierId),
                unit_cost_paise: self.unit_cost_paise,
                unit_price_paise: self.unit_price_paise,
                reason: self.reason,
                reference: self.reference,
                actor: self.actor,
                device_id: self.device_id,
                offline: self.offline,
                restock: self.restock,
                note: self.note,
                original_movement_id: self.original_movement_id,
                voids_movement_id: self.voids_movement_id,
                count_id: self.count_id,
                transfer_id: self.transfer_id,
                to_store_id: self.to_store_id.map(StoreId),
                from_store_id: self.from_store_id.map(StoreId),
            },
            status: LedgerStatus::parse(&self.status).unwrap_or(LedgerStatus::Unknown),
            reject_reason: self.reject_reason,
            available_quantity: self.available_quantity,
            balance_after: self.balance_after,
            stock_change: self.delta,
            original_status: self.original_status,
            recorded_at: self.recorded_at,
            source_partition: self.source_partition,
            source_offset: self.source_offset,
        }
    }

    pub fn source_offset(&self) -> i64 {
        self.source_offset
    }

    /// The movement as applied (a sale at the price it was recorded at) and its product's
    /// average cost after it: what a void of it reverses.
    pub fn voided(self) -> Voided {
        let average_cost = self.average_cost_paise;
        Voided {
            movement: self.entry().movement,
            average_cost,
        }
    }
}

/// An applied movement a void reverses, as the ledger recorded it.
#[derive(Debug, Clone)]
pub struct Voided {
    pub movement: StockMovement,
    pub average_cost: Option<i64>,
}

/// The applied ledger rows of the movements `ids` (found through their first outcomes):
/// what the batch's voids reverse. Empty without a query when there are none.
pub async fn voided(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, Voided>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<LedgerRow> = sqlx::query_as(
        "SELECT m.movement_id, m.store_id, m.product_id, m.sku, m.kind, m.quantity, m.status, \
           m.reject_reason, m.available_quantity, m.balance_after, m.original_status, \
           m.occurred_at, m.received_at, m.recorded_at, m.actor, m.device_id, m.supplier_id, \
           m.unit_cost_paise, m.unit_price_paise, m.reason, m.reference, m.offline, m.restock, \
           m.note, m.original_movement_id, m.voids_movement_id, m.count_id, m.transfer_id, \
           m.to_store_id, m.from_store_id, m.delta, \
           m.average_cost_paise, \
           m.source_partition, m.source_offset \
         FROM UNNEST($1::uuid[]) AS u(movement_id) \
         JOIN movement_ids i USING (movement_id) \
         JOIN movements m ON m.store_id = i.store_id AND m.recorded_at = i.recorded_at \
           AND m.movement_id = i.movement_id AND m.status = 'applied'",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.movement_id, row.voided()))
        .collect())
}

/// Up to `limit` ledger rows of records `from..to` of `partition`, in offset order.
pub async fn ledger_rows(
    pool: &PgPool,
    partition: i32,
    from: i64,
    to: i64,
    limit: i64,
) -> sqlx::Result<Vec<LedgerRow>> {
    sqlx::query_as(
        "SELECT movement_id, store_id, product_id, sku, kind, quantity, status, reject_reason, \
           available_quantity, balance_after, original_status, occurred_at, received_at, \
           recorded_at, actor, device_id, supplier_id, unit_cost_paise, unit_price_paise, reason, \
           reference, offline, restock, note, original_movement_id, voids_movement_id, count_id, \
           transfer_id, to_store_id, from_store_id, \
           delta, source_partition, source_offset \
         FROM movements WHERE source_partition = $1 AND source_offset >= $2 AND source_offset < $3 \
         ORDER BY source_offset LIMIT $4",
    )
    .bind(partition)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The current balances and the alerts raised by the applied movements among `rows`, as
/// the output topics carry them.
pub async fn outputs_of(
    pool: &PgPool,
    rows: &[LedgerEntry],
) -> sqlx::Result<(Vec<Balance>, Vec<StockAlert>)> {
    let mut sku: HashMap<(i64, i64), &str> = HashMap::new();
    let (mut ids, mut stores, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for entry in rows {
        let movement = &entry.movement;
        sku.insert(
            (movement.store_id.get(), movement.product_id.get()),
            &movement.sku,
        );
        if entry.status == LedgerStatus::Applied {
            ids.push(movement.movement_id);
            stores.push(movement.store_id.get());
            times.push(entry.recorded_at);
        }
    }
    let (pair_store, pair_product): (Vec<i64>, Vec<i64>) = sku.keys().copied().unzip();
    type BalanceRow = (i64, i64, i64, Option<i64>, Uuid, DateTime<Utc>);
    type AlertRow = (i64, i64, String, i64, Option<i64>, Uuid, DateTime<Utc>);
    let (balances, alerts) = tokio::try_join!(
        sqlx::query_as::<_, BalanceRow>(
            "SELECT b.store_id, b.product_id, b.quantity, b.average_unit_cost_paise, \
               b.last_movement_id, b.updated_at \
             FROM UNNEST($1::int8[], $2::int8[]) AS u(store_id, product_id) \
             JOIN balances b USING (store_id, product_id)",
        )
        .bind(&pair_store)
        .bind(&pair_product)
        .fetch_all(pool),
        // Through alerts' (store_id, raised_at) index: an alert is raised at its movement's
        // record time.
        sqlx::query_as::<_, AlertRow>(
            "SELECT a.store_id, a.product_id, a.kind, a.quantity, a.reorder_point, a.movement_id, \
               a.raised_at \
             FROM UNNEST($1::uuid[], $2::int8[], $3::timestamptz[]) AS u(movement_id, store_id, raised_at) \
             JOIN alerts a ON a.store_id = u.store_id AND a.raised_at = u.raised_at \
               AND a.movement_id = u.movement_id \
             ORDER BY a.raised_at, a.id",
        )
        .bind(&ids)
        .bind(&stores)
        .bind(&times)
        .fetch_all(pool),
    )?;
    let sku_of = |store: i64, product: i64| {
        sku.get(&(store, product))
            .map_or_else(String::new, |sku| (*sku).to_owned())
    };
    let balances = balances
        .into_iter()
        .map(
            |(store, product, quantity, average_unit_cost_paise, last_movement_id, updated_at)| {
                Balance {
                    store_id: StoreId(store),
                    product_id: ProductId(product),
                    sku: sku_of(store, product),
                    quantity,
                    average_unit_cost_paise,
                    last_movement_id,
                    updated_at,
                }
            },
        )
        .collect();
    let alerts = alerts
        .into_iter()
        .map(
            |(store, product, kind, quantity, reorder_point, movement_id, raised_at)| StockAlert {
                store_id: StoreId(store),
                product_id: ProductId(product),
                sku: sku_of(store, product),
                kind: AlertKind::parse(&kind).unwrap_or(AlertKind::Unknown),
                quantity,
                reorder_point,
                movement_id,
                raised_at,
            },
        )
        .collect();
    Ok((balances, alerts))
}
