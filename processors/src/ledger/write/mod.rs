//! A decided batch's write: one statement, all or nothing, with the partitions' offsets.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use schemas::{MovementKind, ProductId, StoreId};
use sqlx::PgPool;
use uuid::Uuid;

use super::{CommitError, Progress, Record, Voided};
use crate::decide::{Holding, Outcome, RejectReason};
use crate::effects::RaisedAlert;
use rollups::Counted;

mod rollups;

/// The batch's write. Parameters are named (`:name`); [`CommitParams`] numbers them. Money
/// is summed into the rollups as `numeric` (a day's sales can pass `bigint`).
const COMMIT: &str = include_str!("commit.sql");

/// Declares a statement's parameters once: a struct with one typed field per `:name` the
/// statement uses, its statement with the names numbered in field order, and a `bind`
/// that binds the fields in that order. Nothing positional is written by hand.
macro_rules! statement_parameters {
    ($(#[$doc:meta])* struct $name:ident<$a:lifetime> for $sql:ident { $($field:ident: $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Default)]
        struct $name<$a> {
            $($field: $ty,)*
        }

        impl<$a> $name<$a> {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The statement, its `:name`s numbered (`$1`…) in field order.
            fn statement() -> &'static str {
                static NUMBERED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                NUMBERED.get_or_init(|| {
                    service_kit::postgres::number_parameters($sql, Self::NAMES)
                        .unwrap_or_else(|problem| panic!("{}: {problem}", stringify!($sql)))
                })
            }

            fn bind<'q>(
                self,
                query: sqlx::query::QueryScalar<'q, sqlx::Postgres, i64, sqlx::postgres::PgArguments>,
            ) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, i64, sqlx::postgres::PgArguments>
            where
                $a: 'q,
            {
                query$(.bind(self.$field))*
            }
        }
    };
}

statement_parameters! {
    /// Every parameter of [`COMMIT`], one column of values each (`UNNEST`ed in SQL).
    struct CommitParams<'a> for COMMIT {
        // The ledger: one row per movement.
        movement_id: Vec<Uuid>,
        store_id: Vec<i64>,
        product_id: Vec<i64>,
        sku: Vec<&'a str>,
        kind: Vec<&'static str>,
        quantity: Vec<i64>,
        status: Vec<&'static str>,
        reject_reason: Vec<Option<&'static str>>,
        available_quantity: Vec<Option<i64>>,
        balance_after: Vec<Option<i64>>,
        original_status: Vec<Option<&'static str>>,
        occurred_at: Vec<DateTime<Utc>>,
        received_at: Vec<DateTime<Utc>>,
        recorded_at: Vec<DateTime<Utc>>,
        actor: Vec<&'a str>,
        device_id: Vec<Option<&'a str>>,
        supplier_id: Vec<Option<i64>>,
        unit_cost_paise: Vec<Option<i64>>,
        unit_price_paise: Vec<Option<i64>>,
        reason: Vec<Option<&'a str>>,
        reference: Vec<Option<&'a str>>,
        offline: Vec<bool>,
        restock: Vec<Option<bool>>,
        note: Vec<Option<&'a str>>,
        original_movement_id: Vec<Option<Uuid>>,
        voids_movement_id: Vec<Option<Uuid>>,
        count_id: Vec<Option<Uuid>>,
        transfer_id: Vec<Option<Uuid>>,
        to_store_id: Vec<Option<i64>>,
        from_store_id: Vec<Option<i64>>,
        delta: Vec<Option<i64>>,
        average_cost_paise: Vec<Option<i64>>,
        source_partition: Vec<i32>,
        source_offset: Vec<i64>,
        // First outcomes (movement_ids).
        first_id: Vec<Uuid>,
        first_store: Vec<i64>,
        first_status: Vec<&'static str>,
        first_reason: Vec<Option<&'static str>>,
        first_balance: Vec<Option<i64>>,
        first_at: Vec<DateTime<Utc>>,
        first_fingerprint: Vec<Option<i64>>,
        // A sale's line: what it sold, and what came back in this batch already.
        first_sold_product: Vec<Option<i64>>,
        first_sold_quantity: Vec<Option<i64>>,
        first_returned: Vec<Option<i64>>,
        // The void that reversed a movement first seen in this batch.
        first_voided_by: Vec<Option<Uuid>>,
        // Units returned in this batch against sales of earlier ones.
        returned_sale: Vec<Uuid>,
        returned_units: Vec<i64>,
        // Movements of earlier batches voided in this one, and by which void.
        voided_id: Vec<Uuid>,
        voided_by: Vec<Uuid>,
        // Transfers sent (applied transfer-outs) and received (applied receives: a receive
        // is never in its transfer-out's batch, which precedes its transfer-in).
        sent_transfer: Vec<Uuid>,
        sent_from: Vec<i64>,
        sent_to: Vec<i64>,
        sent_product: Vec<i64>,
        sent_sku: Vec<&'a str>,
        sent_quantity: Vec<i64>,
        sent_at: Vec<DateTime<Utc>>,
        sent_movement: Vec<Uuid>,
        // The source's average cost when it sent them.
        sent_cost: Vec<Option<i64>>,
        received_transfer: Vec<Uuid>,
        received_quantity: Vec<i64>,
        received_on: Vec<DateTime<Utc>>,
        received_movement: Vec<Uuid>,
        received_reason: Vec<Option<&'a str>>,
        // The last state of every balance changed.
        balance_store: Vec<i64>,
        balance_product: Vec<i64>,
        balance_quantity: Vec<i64>,
        balance_cost: Vec<Option<i64>>,
        balance_movement: Vec<Uuid>,
        balance_at: Vec<DateTime<Utc>>,
        balance_counted: Vec<Option<DateTime<Utc>>>,
        // Sales and removals, per movement (grouped by local day in SQL).
        sale_store: Vec<i64>,
        sale_product: Vec<i64>,
        sale_at: Vec<DateTime<Utc>>,
        sold: Vec<i64>,
        revenue: Vec<i64>,
        cost: Vec<i64>,
        sales: Vec<i64>,
        removed: Vec<i64>,
        // Stock-ins, per movement (no supplier: a cash purchase).
        in_store: Vec<i64>,
        in_supplier: Vec<Option<i64>>,
        in_product: Vec<i64>,
        in_at: Vec<DateTime<Utc>>,
        in_units: Vec<i64>,
        in_cost: Vec<i64>,
        in_uncosted: Vec<i64>,
        in_count: Vec<i64>,
        // Removals, adjustments and returns, per movement: the change (`Change`), its
        // reason, units and their value at the average cost (when known).
        change_store: Vec<i64>,
        change_product: Vec<i64>,
        change_at: Vec<DateTime<Utc>>,
        change: Vec<&'static str>,
        change_reason: Vec<Option<&'a str>>,
        change_units: Vec<i64>,
        change_value: Vec<i64>,
        change_uncosted: Vec<i64>,
        change_count: Vec<i64>,
        // Active alerts the batch ends, per (store, product).
        resolve_store: Vec<i64>,
        resolve_product: Vec<i64>,
        resolve_at: Vec<DateTime<Utc>>,
        // Alerts raised.
        alert_store: Vec<i64>,
        alert_product: Vec<i64>,
        alert_kind: Vec<&'static str>,
        alert_quantity: Vec<i64>,
        alert_reorder_point: Vec<Option<i64>>,
        alert_movement: Vec<Uuid>,
        alert_raised_at: Vec<DateTime<Utc>>,
        alert_resolved_at: Vec<Option<DateTime<Utc>>>,
        // The partitions' offsets, moved only from where this processor read them.
        offset_partition: Vec<i32>,
        offset_expected: Vec<i64>,
        offset_next: Vec<i64>,
        offset_published: Vec<Option<i64>>,
        group: &'a str,
        topic: &'a str,
    }
}

impl<'a> CommitParams<'a> {
    fn with_capacity(movements: usize) -> Self {
        Self {
            movement_id: Vec::with_capacity(movements),
            store_id: Vec::with_capacity(movements),
            product_id: Vec::with_capacity(movements),
            sku: Vec::with_capacity(movements),
            kind: Vec::with_capacity(movements),
            quantity: Vec::with_capacity(movements),
            status: Vec::with_capacity(movements),
            reject_reason: Vec::with_capacity(movements),
            available_quantity: Vec::with_capacity(movements),
            balance_after: Vec::with_capacity(movements),
            original_status: Vec::with_capacity(movements),
            occurred_at: Vec::with_capacity(movements),
            received_at: Vec::with_capacity(movements),
            recorded_at: Vec::with_capacity(movements),
            actor: Vec::with_capacity(movements),
            device_id: Vec::with_capacity(movements),
            supplier_id: Vec::with_capacity(movements),
            unit_cost_paise: Vec::with_capacity(movements),
            unit_price_paise: Vec::with_capacity(movements),
            reason: Vec::with_capacity(movements),
            reference: Vec::with_capacity(movements),
            offline: Vec::with_capacity(movements),
            restock: Vec::with_capacity(movements),
            note: Vec::with_capacity(movements),
            original_movement_id: Vec::with_capacity(movements),
            voids_movement_id: Vec::with_capacity(movements),
            count_id: Vec::with_capacity(movements),
            transfer_id: Vec::with_capacity(movements),
            to_store_id: Vec::with_capacity(movements),
            from_store_id: Vec::with_capacity(movements),
            delta: Vec::with_capacity(movements),
            average_cost_paise: Vec::with_capacity(movements),
            source_partition: Vec::with_capacity(movements),
            source_offset: Vec::with_capacity(movements),
            ..Self::default()
        }
    }

    /// The ledger row of one decided movement.
    fn ledger(&mut self, record: &'a Record, outcome: &Outcome) {
        let movement = &record.movement;
        let recorded = outcome.recorded();
        self.movement_id.push(movement.movement_id);
        self.store_id.push(movement.store_id.get());
        self.product_id.push(movement.product_id.get());
        self.sku.push(&movement.sku);
        self.kind.push(movement.kind.as_str());
        self.quantity.push(movement.quantity);
        self.status.push(outcome.status().as_str());
        self.reject_reason.push(recorded.reject_reason);
        self.available_quantity.push(recorded.available_quantity);
        self.balance_after.push(recorded.balance_after);
        self.original_status.push(recorded.original_status);
        self.occurred_at.push(movement.occurred_at);
        self.received_at.push(movement.received_at);
        self.recorded_at.push(record.recorded_at);
        self.actor.push(&movement.actor);
        self.device_id.push(movement.device_id.as_deref());
        self.supplier_id
            .push(movement.supplier_id.map(|id| id.get()));
        self.unit_cost_paise.push(movement.unit_cost_paise);
        self.unit_price_paise.push(record.unit_price_paise());
        self.reason.push(movement.reason.as_deref());
        self.reference.push(movement.reference.as_deref());
        self.offline.push(movement.offline);
        self.restock.push(movement.restock);
        self.note.push(movement.note.as_deref());
        self.original_movement_id
            .push(movement.original_movement_id);
        self.voids_movement_id.push(movement.voids_movement_id);
        self.count_id.push(movement.count_id);
        self.transfer_id.push(movement.transfer_id);
        self.to_store_id
            .push(movement.to_store_id.map(StoreId::get));
        self.from_store_id
            .push(movement.from_store_id.map(StoreId::get));
        self.delta.push(recorded.stock_change);
        self.average_cost_paise.push(match *outcome {
            Outcome::Applied { average_cost, .. } => average_cost,
            _ => None,
        });
        self.source_partition.push(record.partition);
        self.source_offset.push(record.offset);
    }

    /// What an applied transfer-out sends (at the source's average cost), or an applied
    /// receive receives.
    fn transfer(&mut self, record: &'a Record, outcome: &Outcome) {
        let movement = &record.movement;
        let (Some(id), kind) = (movement.transfer_id, movement.kind) else {
            return;
        };
        match (kind, movement.to_store_id) {
            (MovementKind::TransferOut, Some(destination)) => {
                self.sent_transfer.push(id);
                self.sent_from.push(movement.store_id.get());
                self.sent_to.push(destination.get());
                self.sent_product.push(movement.product_id.get());
                self.sent_sku.push(&movement.sku);
                self.sent_quantity.push(movement.quantity);
                self.sent_at.push(movement.occurred_at);
                self.sent_movement.push(movement.movement_id);
                self.sent_cost.push(match *outcome {
                    Outcome::Applied { average_cost, .. } => average_cost,
                    _ => None,
                });
            }
            (MovementKind::TransferReceive, _) => {
                self.received_transfer.push(id);
                self.received_quantity.push(movement.quantity);
                self.received_on.push(movement.occurred_at);
                self.received_movement.push(movement.movement_id);
                self.received_reason.push(movement.reason.as_deref());
            }
            _ => {}
        }
    }
}

/// A decided batch, as it is written.
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    pub records: &'a [Record],
    pub outcomes: &'a [Outcome],
    /// The last state of every balance the batch changed.
    pub changed: &'a [(&'a Record, Holding)],
    pub alerts: &'a [RaisedAlert<'a>],
    pub progress: &'a [Progress],
    /// The movements of earlier batches the batch's voids name, from the ledger.
    pub voided: &'a HashMap<Uuid, Voided>,
}

/// Writes a decided batch and moves the offsets, all or nothing.
pub async fn commit(
    pool: &PgPool,
    group: &str,
    topic: &str,
    decided: &Decided<'_>,
) -> Result<(), CommitError> {
    let Decided {
        records,
        outcomes,
        changed,
        alerts,
        progress,
        voided,
    } = *decided;
    let mut params = CommitParams::with_capacity(records.len());
    // Units returned against each sale, and the void of each voided movement: a movement
    // first seen in this batch is written with them, an earlier one updated.
    let mut returned: HashMap<Uuid, i64> = HashMap::new();
    let mut voids: HashMap<Uuid, Uuid> = HashMap::new();
    for (record, outcome) in records.iter().zip(outcomes) {
        let movement = &record.movement;
        if !matches!(outcome, Outcome::Applied { .. }) {
            continue;
        }
        if let Some(sale) = movement.original_movement_id {
            *returned.entry(sale).or_default() += movement.quantity;
        }
        if let Some(target) = movement.voids_movement_id {
            voids.insert(target, movement.movement_id);
        }
    }
    // What the batch's voids reverse, as first counted: in this batch, or from the ledger.
    let mut reversed: HashMap<Uuid, Counted<'_>> = voided
        .iter()
        .filter(|(id, _)| voids.contains_key(id))
        .map(|(id, row)| (*id, Counted::recorded(row)))
        .collect();
    if !voids.is_empty() {
        for (record, outcome) in records.iter().zip(outcomes) {
            if voids.contains_key(&record.movement.movement_id)
                && let Some(counted) = Counted::applied(record, outcome)
            {
                reversed.insert(record.movement.movement_id, counted);
            }
        }
    }
    // A voided return's units may be returned to its sale again.
    for counted in reversed.values() {
        let movement = counted.movement();
        if movement.kind == MovementKind::Return
            && let Some(sale) = movement.original_movement_id
        {
            *returned.entry(sale).or_default() -= movement.quantity;
        }
    }
    for (record, outcome) in records.iter().zip(outcomes) {
        params.ledger(record, outcome);
        let movement = &record.movement;
        if let Some(original) = outcome.original(movement) {
            params.first_id.push(movement.movement_id);
            params.first_store.push(movement.store_id.get());
            params.first_status.push(original.status.as_str());
            params
                .first_reason
                .push(original.reject_reason.map(RejectReason::as_str));
            params.first_balance.push(original.balance_after);
            params.first_at.push(record.recorded_at);
            params.first_fingerprint.push(original.fingerprint);
            let sale = original.sale;
            params
                .first_sold_product
                .push(sale.map(|line| line.product_id.get()));
            params
                .first_sold_quantity
                .push(sale.map(|line| line.quantity));
            params
                .first_returned
                .push(sale.map(|_| returned.remove(&movement.movement_id).unwrap_or(0)));
            params
                .first_voided_by
                .push(voids.remove(&movement.movement_id));
        }
        if let Some(counted) = Counted::applied(record, outcome) {
            params.transfer(record, outcome);
            match movement.voids_movement_id.and_then(|id| reversed.get(&id)) {
                Some(target) => params.rollups(target, -1),
                None => params.rollups(&counted, 1),
            }
        }
    }
    for (sale, units) in returned {
        params.returned_sale.push(sale);
        params.returned_units.push(units);
    }
    for (target, void) in voids {
        params.voided_id.push(target);
        params.voided_by.push(void);
    }
    for (record, held) in changed {
        params.balance_store.push(record.movement.store_id.get());
        params
            .balance_product
            .push(record.movement.product_id.get());
        params.balance_quantity.push(held.quantity);
        params.balance_cost.push(held.average_cost);
        params.balance_movement.push(record.movement.movement_id);
        params.balance_at.push(record.recorded_at);
        params.balance_counted.push(held.counted_at);
    }
    let mut resolving: std::collections::HashSet<(StoreId, ProductId)> = Default::default();
    for alert in alerts {
        let movement = &alert.record.movement;
        if resolving.insert((movement.store_id, movement.product_id)) {
            params.resolve_store.push(movement.store_id.get());
            params.resolve_product.push(movement.product_id.get());
            params.resolve_at.push(alert.record.recorded_at);
        }
        params.alert_store.push(movement.store_id.get());
        params.alert_product.push(movement.product_id.get());
        params.alert_kind.push(alert.kind.as_str());
        params.alert_quantity.push(alert.quantity);
        params.alert_reorder_point.push(alert.reorder_point);
        params.alert_movement.push(movement.movement_id);
        params.alert_raised_at.push(alert.record.recorded_at);
        params.alert_resolved_at.push(alert.resolved_at);
    }
    for step in progress {
        params.offset_partition.push(step.partition);
        params.offset_expected.push(step.expected);
        params.offset_next.push(step.next);
        params.offset_published.push(step.published);
    }
    params.group = group;
    params.topic = topic;

    let result = params
        .bind(sqlx::query_scalar::<_, i64>(CommitParams::statement()))
        .fetch_one(pool)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("BZ409") => {
            Err(CommitError::Fenced)
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_statement_uses_every_parameter_and_no_other() {
        let statement = CommitParams::statement();
        assert!(!statement.contains(":movement_id"), "{statement}");
        assert!(statement.contains(&format!("${}", CommitParams::NAMES.len())));
    }
}
