//! The simulator's model of each store, which applies what ingest accepted the way the
//! processors will: a sale or removal larger than the stock is rejected (`reject` stores)
//! unless it was made offline, a movement that occurred before its product's latest count
//! is superseded, a count sets the stock, a return names a recent sale, a void gives a
//! sale's units back, a transfer-out takes its units (in transit) and a receive adds what
//! arrived.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(crate) id: i64,
    pub(crate) reject: bool,
    pub(crate) stock: HashMap<i64, i64>,
    /// Sales kept by an offline till, to be synced as a batch.
    pub(crate) offline: Vec<Value>,
    /// The latest applied sales (id, product, units sold, units not yet returned), which
    /// returns name and voids undo.
    pub(crate) sales: std::collections::VecDeque<(Uuid, i64, i64, i64)>,
    /// When each product was last counted: a movement that occurred before is superseded.
    pub(crate) counted: HashMap<i64, chrono::DateTime<Utc>>,
}

impl Store {
    /// Applies an accepted movement the way the processors will; `false` when they will
    /// reject it.
    pub(crate) fn apply(&mut self, body: &Value) -> bool {
        let product = body["product_id"].as_i64().unwrap_or_default();
        let quantity = body["quantity"].as_i64().unwrap_or_default();
        let occurred_at = body["occurred_at"]
            .as_str()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
        // The product's latest count saw the shelf after a movement that occurred before it.
        if let (Some(at), Some(counted)) = (occurred_at, self.counted.get(&product))
            && at <= *counted
        {
            return false;
        }
        if body["kind"] == "count" {
            // Counted now: nothing occurred after it yet.
            self.stock.insert(product, quantity);
            if let Some(at) = occurred_at {
                self.counted.insert(product, at.to_utc());
            }
            return true;
        }
        let stock = self.stock.entry(product).or_insert(0);
        // What the kind does to sellable stock; under `reject` a live movement may not take
        // more than there is.
        let change = match body["kind"].as_str() {
            Some("stock_in" | "adjustment" | "transfer_receive") => quantity,
            Some("return") if body["restock"] == false => 0,
            Some("return") => quantity,
            // The simulator voids sales only: their units come back.
            Some("void") => quantity,
            _ => -quantity,
        };
        if change < 0 && *stock + change < 0 && self.reject && body["offline"] != true {
            return false;
        }
        *stock += change;
        self.applied(body, product, quantity);
        true
    }

    /// Keeps an applied sale for the returns that may name it, and counts a return on the
    /// sale it names.
    fn applied(&mut self, body: &Value, product: i64, quantity: i64) {
        let id = |field: &str| body[field].as_str().and_then(|id| id.parse::<Uuid>().ok());
        match body["kind"].as_str() {
            Some("sale") => {
                if let Some(sale) = id("movement_id") {
                    if self.sales.len() == RETURNABLE_SALES {
                        self.sales.pop_front();
                    }
                    self.sales.push_back((sale, product, quantity, quantity));
                }
            }
            Some("return") => {
                if let Some(named) = id("original_movement_id")
                    && let Some(line) = self.sales.iter_mut().find(|(sale, ..)| *sale == named)
                {
                    line.3 -= quantity;
                }
            }
            // A voided sale is neither voided again nor returned against.
            Some("void") => {
                if let Some(voided) = id("voids_movement_id") {
                    self.sales.retain(|(sale, ..)| *sale != voided);
                }
            }
            _ => {}
        }
    }
}

/// How many of a store's latest sales a return may name.
const RETURNABLE_SALES: usize = 50;
