//! One worker's traffic (see the module above): what its stores do next, drawn from the
//! skewed popularity of the catalog, sent one movement after another (offline tills' sales
//! as one batch), and applied to its model when ingest accepts it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use rand::Rng;
use reqwest::StatusCode;
use schemas::consistency::ConsistencyToken;
use serde_json::{Value, json};
use uuid::Uuid;

use super::transfers::InTransit;
use super::{Catalog, Counters, Options};
use crate::api::Api;
use crate::model::Store;

pub(super) enum Action {
    /// An offline till of this store comes back and syncs.
    Sync(usize),
    /// A movement (true: a retry of an earlier one).
    Send(Value, bool),
    /// A sale an offline till keeps for later.
    KeptOffline,
    /// Receive the oldest transfer in transit, if its destination knows of it yet.
    Receive,
}

/// One worker: the stores it owns, each one's movements sent one after another, and the
/// model it applies them to.
pub(super) struct Worker {
    pub(super) api: Api,
    pub(super) catalog: Arc<Catalog>,
    pub(super) counters: Arc<Counters>,
    pub(super) stores: Vec<Store>,
    pub(super) token: ConsistencyToken,
    /// Recent accepted bodies, to retry one now and then.
    pub(super) sent: Vec<Value>,
    /// Transfers in transit between this worker's stores, oldest first.
    pub(super) transfers: std::collections::VecDeque<InTransit>,
}

impl Worker {
    /// Opening stock: a stock-in of every product each store lacks, as one batch.
    pub(super) async fn open(&mut self) -> anyhow::Result<()> {
        for index in 0..self.stores.len() {
            let store = self.stores[index].id;
            let lines: Vec<Value> = self
                .catalog
                .products
                .iter()
                .filter(|(product, _)| {
                    self.stores[index].stock.get(product).copied().unwrap_or(0) <= 0
                })
                .map(|(product, loose)| self.stock_in(store, *product, *loose))
                .collect();
            if !lines.is_empty() {
                self.batch(index, lines).await?;
            }
        }
        Ok(())
    }

    fn stock_in(&self, store: i64, product: i64, loose: bool) -> Value {
        let quantity = if loose {
            50_000
        } else {
            rand::rng().random_range(40..=80)
        };
        let mut body = json!({"movement_id": Uuid::new_v4(), "store_id": store, "product_id": product,
            "kind": "stock_in", "quantity": quantity, "supplier_id": self.catalog.supplier,
            "unit_cost_paise": rand::rng().random_range(2_000..=30_000), "device_id": "backoffice"});
        // One restock in five is bought for cash at the wholesale market (no supplier), and
        // one of those in two without a bill that says what it cost.
        let mut random = rand::rng();
        if random.random_ratio(1, 5) {
            body["supplier_id"] = Value::Null;
            body["reference"] = json!("mandi cash");
            if random.random_bool(0.5) {
                body["unit_cost_paise"] = Value::Null;
            }
        }
        body
    }

    /// One movement of a random store.
    pub(super) async fn step(&mut self, options: &Options) -> anyhow::Result<()> {
        match self.next_action(options) {
            Action::Sync(index) => self.sync(index).await,
            Action::Send(body, retry) => self.single(body, retry).await,
            Action::KeptOffline => Ok(()),
            Action::Receive => self.receive_next(false).await,
        }
    }

    /// What to do next (decided before any await: the random generator stays on this thread).
    fn next_action(&mut self, options: &Options) -> Action {
        let mut rng = rand::rng();
        let index = rng.random_range(0..self.stores.len());
        let store = self.stores[index].id;
        if !self.stores[index].offline.is_empty() && rng.random_bool(0.02) {
            return Action::Sync(index);
        }
        if !self.transfers.is_empty() && rng.random_bool(0.02) {
            return Action::Receive;
        }
        if !self.sent.is_empty() && rng.random_bool(options.duplicate_share) {
            return Action::Send(
                self.sent[rng.random_range(0..self.sent.len())].clone(),
                true,
            );
        }
        // Skewed popularity: the first products of the catalog sell most.
        let pick = (rng.random::<f64>().powi(3) * self.catalog.products.len() as f64) as usize;
        let (product, loose) = self.catalog.products[pick.min(self.catalog.products.len() - 1)];
        let stock = self.stores[index].stock.get(&product).copied().unwrap_or(0);
        let unit = if loose { 250 } else { 1 };
        if stock < 5 * unit {
            return Action::Send(self.stock_in(store, product, loose), false);
        }
        if rng.random_bool(0.03) {
            let removal = json!({"movement_id": Uuid::new_v4(), "store_id": store, "product_id": product,
                "kind": "removal", "quantity": unit, "reason": "damaged", "device_id": "backoffice"});
            return Action::Send(removal, false);
        }
        // A customer brings something back (one in five not resellable); the owner finds a
        // unit the book missed, or one that went bad.
        if rng.random_bool(0.02) {
            let mut back = json!({"movement_id": Uuid::new_v4(), "store_id": store, "product_id": product,
                "kind": "return", "quantity": unit, "device_id": "till-1"});
            if rng.random_ratio(1, 5) {
                back["restock"] = json!(false);
                back["reason"] = json!("defective");
            }
            let sold = self.stores[index]
                .sales
                .iter()
                .rev()
                .find(|(_, sold, _, left)| *sold == product && *left >= unit);
            if let Some((sale, ..)) = sold {
                back["original_movement_id"] = json!(sale);
            }
            return Action::Send(back, false);
        }
        // Now and then someone counts the shelf: it holds the book less what offline tills
        // sold and have not synced yet (those sales, synced later, are superseded).
        if rng.random_bool(0.005) {
            let kept: i64 = self.stores[index]
                .offline
                .iter()
                .filter(|sale| sale["product_id"] == product)
                .filter_map(|sale| sale["quantity"].as_i64())
                .sum();
            let count = json!({"movement_id": Uuid::new_v4(), "store_id": store, "product_id": product,
                "kind": "count", "quantity": (stock - kept).max(0), "occurred_at": Utc::now(),
                "device_id": "backoffice"});
            return Action::Send(count, false);
        }
        // Now and then a store sends some stock to a sister store.
        if rng.random_bool(0.01)
            && let Some(transfer) = self.transfer_out(&mut rng, index, product, unit)
        {
            return Action::Send(transfer, false);
        }
        // Now and then the manager undoes the store's last sale (rung up by mistake).
        if rng.random_bool(0.005)
            && let Some(&(sale, sold, quantity, _)) = self.stores[index].sales.back()
        {
            let void = json!({"movement_id": Uuid::new_v4(), "store_id": store, "product_id": sold,
                "kind": "void", "quantity": quantity, "voids_movement_id": sale,
                "note": "rung up by mistake", "device_id": "backoffice"});
            return Action::Send(void, false);
        }
        if rng.random_bool(0.01) {
            let (quantity, reason) = if rng.random_bool(0.5) {
                (unit, "found")
            } else {
                (-unit, "expired")
            };
            let adjustment = json!({"movement_id": Uuid::new_v4(), "store_id": store, "product_id": product,
                "kind": "adjustment", "quantity": quantity, "reason": reason, "note": "shelf check",
                "device_id": "backoffice"});
            return Action::Send(adjustment, false);
        }
        let quantity = unit * rng.random_range(1..=3);
        let sale = json!({"movement_id": Uuid::new_v4(), "store_id": store, "product_id": product, "kind": "sale",
            "quantity": quantity, "unit_price_paise": rng.random_range(2_500..=40_000),
            "occurred_at": Utc::now(), "device_id": format!("till-{}", rng.random_range(1..=3))});
        if rng.random_bool(options.offline_share) {
            // The till says so when it syncs: the sale happened, whatever the book holds.
            let mut sale = sale;
            sale["offline"] = json!(true);
            self.stores[index].offline.push(sale);
            return Action::KeptOffline;
        }
        Action::Send(sale, false)
    }

    pub(super) async fn single(&mut self, body: Value, retry: bool) -> anyhow::Result<()> {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        let (status, answer) = self.api.post("/v1/movements", &body).await?;
        self.accepted(&body, status, &answer, retry);
        Ok(())
    }

    async fn sync(&mut self, index: usize) -> anyhow::Result<()> {
        let lines = std::mem::take(&mut self.stores[index].offline);
        self.counters
            .offline_batches
            .fetch_add(1, Ordering::Relaxed);
        self.batch(index, lines).await
    }

    pub(super) async fn sync_all(&mut self) -> anyhow::Result<()> {
        for index in 0..self.stores.len() {
            if !self.stores[index].offline.is_empty() {
                self.sync(index).await?;
            }
        }
        Ok(())
    }

    async fn batch(&mut self, _index: usize, lines: Vec<Value>) -> anyhow::Result<()> {
        self.counters
            .sent
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        let (status, answer) = self
            .api
            .post("/v1/movements/batch", &json!({"movements": lines}))
            .await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "a batch was refused whole: {status} {answer}"
        );
        let results = answer["results"].as_array().cloned().unwrap_or_default();
        for (line, result) in lines.iter().zip(results) {
            let status = StatusCode::from_u16(result["status"].as_u64().unwrap_or(500) as u16)?;
            self.accepted(line, status, &result, false);
        }
        Ok(())
    }

    /// Counts an answer and, if ingest accepted the movement, applies it to the model the
    /// way the processors will.
    fn accepted(&mut self, body: &Value, status: StatusCode, answer: &Value, retry: bool) {
        if status != StatusCode::ACCEPTED {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if let (Some(partition), Some(offset)) =
            (answer["partition"].as_i64(), answer["offset"].as_i64())
        {
            self.token.include(partition as i32, offset);
        }
        if retry {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let store_id = body["store_id"].as_i64().unwrap_or_default();
        let Some(store) = self.stores.iter_mut().find(|store| store.id == store_id) else {
            return;
        };
        if !store.apply(body) {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        } else if body["kind"] == "transfer_out" {
            self.sent_transfer(body);
        }
        if self.sent.len() < 1_000 {
            self.sent.push(body.clone());
        } else {
            let slot = rand::rng().random_range(0..self.sent.len());
            self.sent[slot] = body.clone();
        }
    }
}
