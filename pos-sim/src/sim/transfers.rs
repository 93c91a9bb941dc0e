//! Transfers between the stores a worker owns: one sends some units of a product to a
//! sister store (a `transfer_out`: the units leave at once and are in transit), and once
//! the processors have announced the transfer at the destination (its `transfer_in`,
//! looked up on query-api) the destination receives it — all of it, or one unit short
//! now and then (broken on the way: lost in transit). Both stores belong to the worker,
//! so their movements stay in the order its model applies them.

use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use uuid::Uuid;

use std::sync::atomic::Ordering;

use super::worker::Worker;

/// How long the end of a run waits for the destination to learn of a transfer.
const ANNOUNCED_WITHIN: Duration = Duration::from_secs(60);

/// A transfer the model applied at its source and that has not been received yet.
#[derive(Debug, Clone)]
pub(super) struct InTransit {
    transfer_id: Uuid,
    to_store: i64,
    product: i64,
    quantity: i64,
    /// One unit of a product sold by the piece: the shortfall when some breaks.
    unit: i64,
}

impl Worker {
    /// A transfer-out of 1 to 3 `unit`s of `product` from store `index` to another store
    /// of this worker; `None` when the worker owns one store.
    pub(super) fn transfer_out(
        &self,
        rng: &mut impl Rng,
        index: usize,
        product: i64,
        unit: i64,
    ) -> Option<Value> {
        if self.stores.len() < 2 {
            return None;
        }
        let other = (index + rng.random_range(1..self.stores.len())) % self.stores.len();
        Some(
            json!({"movement_id": Uuid::new_v4(), "store_id": self.stores[index].id,
            "product_id": product, "kind": "transfer_out", "quantity": unit * rng.random_range(1..=3),
            "transfer_id": Uuid::new_v4(), "to_store_id": self.stores[other].id,
            "note": "to the sister store", "device_id": "backoffice"}),
        )
    }

    /// Keeps a transfer-out the model applied, to be received later.
    pub(super) fn sent_transfer(&mut self, body: &Value) {
        let field = |name: &str| body[name].as_i64().unwrap_or_default();
        let Some(transfer_id) = body["transfer_id"].as_str().and_then(|id| id.parse().ok()) else {
            return;
        };
        // Loose goods move by the 250 g, pieces by one.
        let unit = if field("quantity") % 250 == 0 { 250 } else { 1 };
        self.transfers.push_back(InTransit {
            transfer_id,
            to_store: field("to_store_id"),
            product: field("product_id"),
            quantity: field("quantity"),
            unit,
        });
        self.counters.transfers.fetch_add(1, Ordering::Relaxed);
    }

    /// Receives the oldest transfer in transit if its destination knows of it; with `wait`,
    /// waits for that (up to a minute) instead of leaving it for later.
    pub(super) async fn receive_next(&mut self, wait: bool) -> anyhow::Result<()> {
        let Some(transfer) = self.transfers.front().cloned() else {
            return Ok(());
        };
        let notice = schemas::transfer_in_id(transfer.transfer_id);
        let deadline = tokio::time::Instant::now() + ANNOUNCED_WITHIN;
        while !self.api.found(&format!("/v1/movements/{notice}")).await? {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "transfer {} was not announced at store {} within {ANNOUNCED_WITHIN:?}",
                transfer.transfer_id,
                transfer.to_store
            );
            if !wait {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.transfers.pop_front();
        let mut receive = json!({"movement_id": Uuid::new_v4(), "store_id": transfer.to_store,
            "product_id": transfer.product, "kind": "transfer_receive",
            "quantity": transfer.quantity, "transfer_id": transfer.transfer_id,
            "device_id": "backoffice"});
        // One in four arrives a unit short: broken on the way.
        if transfer.quantity > transfer.unit && rand::rng().random_ratio(1, 4) {
            receive["quantity"] = json!(transfer.quantity - transfer.unit);
            receive["reason"] = json!("damaged");
        }
        self.single(receive, false).await
    }

    /// Receives every transfer still in transit (the end of a run).
    pub(super) async fn receive_all(&mut self) -> anyhow::Result<()> {
        while !self.transfers.is_empty() {
            self.receive_next(true).await?;
        }
        Ok(())
    }
}
