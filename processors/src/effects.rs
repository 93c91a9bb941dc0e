//! What a decided batch changes besides the ledger, worked out from its outcomes: the last
//! state of each balance it moved and the alerts it raises. Pure, beside `decide`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use schemas::{ProductId, StoreId};

use crate::decide::{BatchCatalog, Holding, Outcome};
use crate::ledger::Record;

/// The last state of every balance a batch changed, in first-change order (a transfer-in
/// changes none).
pub fn changed_balances<'a>(
    records: &'a [Record],
    outcomes: &[Outcome],
) -> Vec<(&'a Record, Holding)> {
    let mut index: HashMap<(StoreId, ProductId), usize> = HashMap::new();
    let mut changed: Vec<(&Record, Holding)> = Vec::new();
    for (record, outcome) in records.iter().zip(outcomes) {
        if let Outcome::Applied {
            balance_after,
            average_cost,
            ..
        } = *outcome
        {
            let movement = &record.movement;
            if movement.kind == schemas::MovementKind::TransferIn {
                continue;
            }
            let mut holding = Holding {
                quantity: balance_after,
                average_cost,
                // Only a count moves it: written as the latest of the stored and this.
                counted_at: (movement.kind == schemas::MovementKind::Count)
                    .then_some(movement.occurred_at),
            };
            let key = (movement.store_id, movement.product_id);
            match index.get(&key) {
                Some(&at) => {
                    holding.counted_at = holding.counted_at.max(changed[at].1.counted_at);
                    changed[at] = (record, holding);
                }
                None => {
                    index.insert(key, changed.len());
                    changed.push((record, holding));
                }
            }
        }
    }
    changed
}

/// An alert a batch raises, with when it stopped being the active one.
#[derive(Debug, Clone)]
pub struct RaisedAlert<'a> {
    pub record: &'a Record,
    pub kind: schemas::AlertKind,
    pub quantity: i64,
    pub reorder_point: Option<i64>,
    /// `Some` when a later alert of the batch (or recovery itself) ends it.
    pub resolved_at: Option<DateTime<Utc>>,
}

pub fn raised_alerts<'a>(
    records: &'a [Record],
    outcomes: &[Outcome],
    catalog: &BatchCatalog,
) -> Vec<RaisedAlert<'a>> {
    let mut alerts: Vec<RaisedAlert<'a>> = Vec::new();
    let mut latest: HashMap<(StoreId, ProductId), usize> = HashMap::new();
    for (record, outcome) in records.iter().zip(outcomes) {
        let Outcome::Applied {
            balance_after,
            alert: Some(kind),
            ..
        } = *outcome
        else {
            continue;
        };
        let key = (record.movement.store_id, record.movement.product_id);
        if let Some(&previous) = latest.get(&key) {
            alerts[previous]
                .resolved_at
                .get_or_insert(record.recorded_at);
        }
        latest.insert(key, alerts.len());
        alerts.push(RaisedAlert {
            record,
            kind,
            quantity: balance_after,
            reorder_point: catalog.reorder_points.get(&key).copied(),
            resolved_at: (kind == schemas::AlertKind::Recovered).then_some(record.recorded_at),
        });
    }
    alerts
}
