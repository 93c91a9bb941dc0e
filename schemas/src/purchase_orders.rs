//! Purchase orders as the APIs show them (ingest writes them, query-api reads them), the
//! movement id each received line becomes, and the reorder suggestions both services
//! compute the same way.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Total;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    Draft,
    Submitted,
    Approved,
    Rejected,
    PartiallyReceived,
    Received,
    Cancelled,
}

impl OrderState {
    pub const ALL: [Self; 7] = [
        Self::Draft,
        Self::Submitted,
        Self::Approved,
        Self::Rejected,
        Self::PartiallyReceived,
        Self::Received,
        Self::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Submitted => "submitted",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::PartiallyReceived => "partially_received",
            Self::Received => "received",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Nothing more will happen to an order in this state.
    pub const fn is_closed(self) -> bool {
        matches!(self, Self::Rejected | Self::Received | Self::Cancelled)
    }
}

impl sqlx::Type<sqlx::Postgres> for OrderState {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for OrderState {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Self::parse(text).ok_or_else(|| format!("unknown purchase order state `{text}`").into())
    }
}

/// An order with its lines and receipts.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct PurchaseOrder {
    pub id: i64,
    pub store_id: i64,
    pub supplier_id: i64,
    pub state: OrderState,
    pub note: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// When it was approved or rejected, and by whom.
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    /// Received in full, cancelled or rejected.
    pub closed_at: Option<DateTime<Utc>>,
    /// Σ quantity × unit cost over the lines, in paise.
    pub ordered_cost_paise: Total,
    /// Σ received quantity × unit cost over the lines, in paise.
    pub received_cost_paise: Total,
    #[sqlx(skip)]
    pub lines: Vec<OrderLine>,
    /// Oldest first.
    #[sqlx(skip)]
    pub receipts: Vec<Receipt>,
}

pub const ORDER_COLUMNS: &str = "id, store_id, supplier_id, state, note, created_by, created_at, \
    updated_at, submitted_at, decided_at, decided_by, closed_at, \
    (SELECT coalesce(sum(quantity::numeric * unit_cost_paise), 0) FROM purchase_order_lines l \
      WHERE l.purchase_order_id = purchase_orders.id) AS ordered_cost_paise, \
    (SELECT coalesce(sum(received_quantity::numeric * unit_cost_paise), 0) FROM purchase_order_lines l \
      WHERE l.purchase_order_id = purchase_orders.id) AS received_cost_paise";

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct OrderLine {
    #[serde(skip)]
    pub purchase_order_id: i64,
    pub product_id: i64,
    pub sku: String,
    pub name: String,
    /// Ordered, in the product's unit.
    pub quantity: i64,
    /// The expected cost of one unit, in paise: what its stock-ins carry.
    pub unit_cost_paise: i64,
    pub received_quantity: i64,
    /// Ordered but not yet received (never below zero: more may arrive than ordered).
    pub outstanding_quantity: i64,
}

/// A delivery against an order.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Receipt {
    /// The client's receipt id.
    pub id: Uuid,
    #[serde(skip)]
    pub purchase_order_id: i64,
    pub received_by: String,
    pub received_at: DateTime<Utc>,
    /// The receipt closed the order although less arrived than ordered.
    pub closes: bool,
    /// Every line is on `inventory.movements.v1`.
    pub published: bool,
    #[sqlx(skip)]
    pub lines: Vec<ReceiptLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct ReceiptLine {
    #[serde(skip)]
    pub receipt_id: Uuid,
    pub product_id: i64,
    pub quantity: i64,
    pub unit_cost_paise: i64,
    /// The stock-in this line became (see [`receipt_movement_id`]).
    pub movement_id: Uuid,
}

/// The namespace of receipt lines' movement ids (a UUID v5 namespace of our own).
const RECEIPT_NAMESPACE: Uuid = Uuid::from_u128(0x6f0e_1c2a_8d3b_4b7e_9a51_2c64_d1f0_b8e3);

/// The id of the stock-in movement a receipt line becomes: the same receipt and product
/// always give the same id, so a receipt sent or published twice is a duplicate in the
/// ledger, never a second delivery.
pub fn receipt_movement_id(receipt: Uuid, product_id: i64) -> Uuid {
    let mut name = [0u8; 24];
    name[..16].copy_from_slice(receipt.as_bytes());
    name[16..].copy_from_slice(&product_id.to_be_bytes());
    Uuid::new_v5(&RECEIPT_NAMESPACE, &name)
}

/// The orders `ids` with their lines and receipts, in the order of `ids` (missing ones
/// left out): four queries, whatever the number of orders.
pub async fn load(
    connection: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<PurchaseOrder>, sqlx::Error> {
    let mut orders: Vec<PurchaseOrder> = sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM purchase_orders WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(&mut *connection)
    .await?;
    let lines: Vec<OrderLine> = sqlx::query_as(
        "SELECT l.purchase_order_id, l.product_id, p.sku, p.name, l.quantity, l.unit_cost_paise,
                l.received_quantity, greatest(l.quantity - l.received_quantity, 0) AS outstanding_quantity
           FROM purchase_order_lines l JOIN products p ON p.id = l.product_id
          WHERE l.purchase_order_id = ANY($1)
          ORDER BY l.purchase_order_id, l.product_id",
    )
    .bind(ids)
    .fetch_all(&mut *connection)
    .await?;
    let receipts: Vec<Receipt> = sqlx::query_as(
        "SELECT id, purchase_order_id, received_by, received_at, closes,
                published_at IS NOT NULL AS published
           FROM purchase_order_receipts WHERE purchase_order_id = ANY($1)
          ORDER BY received_at, id",
    )
    .bind(ids)
    .fetch_all(&mut *connection)
    .await?;
    let receipt_ids: Vec<Uuid> = receipts.iter().map(|receipt| receipt.id).collect();
    let receipt_lines: Vec<ReceiptLine> = sqlx::query_as(
        "SELECT receipt_id, product_id, quantity, unit_cost_paise, movement_id
           FROM purchase_order_receipt_lines WHERE receipt_id = ANY($1)
          ORDER BY receipt_id, product_id",
    )
    .bind(&receipt_ids)
    .fetch_all(&mut *connection)
    .await?;

    let mut lines_of: HashMap<Uuid, Vec<ReceiptLine>> = HashMap::new();
    for line in receipt_lines {
        lines_of.entry(line.receipt_id).or_default().push(line);
    }
    let position: HashMap<i64, usize> = ids.iter().enumerate().map(|(at, id)| (*id, at)).collect();
    orders.sort_by_key(|order| position.get(&order.id).copied());
    let index: HashMap<i64, usize> = orders
        .iter()
        .enumerate()
        .map(|(at, order)| (order.id, at))
        .collect();
    for line in lines {
        if let Some(&at) = index.get(&line.purchase_order_id) {
            orders[at].lines.push(line);
        }
    }
    for mut receipt in receipts {
        receipt.lines = lines_of.remove(&receipt.id).unwrap_or_default();
        if let Some(&at) = index.get(&receipt.purchase_order_id) {
            orders[at].receipts.push(receipt);
        }
    }
    Ok(orders)
}

/// How far back sales count towards a product's velocity, and how many days of those sales
/// an order should cover, unless the request says otherwise.
pub const DEFAULT_WINDOW_DAYS: i32 = 28;
pub const DEFAULT_COVER_DAYS: i32 = 14;
/// The longest window and cover a request may ask for.
pub const MAX_WINDOW_DAYS: i32 = 365;
pub const MAX_COVER_DAYS: i32 = 180;

/// A product of a store at or below its reorder point counting what is on order (open
/// orders, drafts included), with a supplier that has a current price for it there.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Suggestion {
    pub supplier_id: i64,
    pub product_id: i64,
    pub sku: String,
    pub name: String,
    pub on_hand: i64,
    /// Outstanding on the store's open orders for this product (any supplier).
    pub on_order: i64,
    pub reorder_point: i64,
    pub reorder_quantity: Option<i64>,
    /// Units sold in the window (local days, today included).
    pub units_sold: i64,
    /// The supplier's current price, which a draft made from the suggestion carries.
    pub unit_cost_paise: i64,
    /// What to order.
    #[sqlx(skip)]
    pub suggested_quantity: i64,
    /// `reorder_quantity` (multiples of it) or `sales_velocity`.
    #[sqlx(skip)]
    pub basis: &'static str,
}

impl Suggestion {
    /// Fills in the suggested quantity: enough to lift on hand + on order above the reorder
    /// point — in multiples of the reorder quantity when the store set one, else the sales
    /// of `cover_days` at the window's daily rate (at least one unit) above it.
    pub fn decide(mut self, window_days: i32, cover_days: i32) -> Self {
        let position = self.on_hand.saturating_add(self.on_order);
        let shortfall = self
            .reorder_point
            .saturating_sub(position)
            .saturating_add(1)
            .max(1);
        (self.suggested_quantity, self.basis) = match self.reorder_quantity {
            Some(batch) if batch > 0 => (
                ceil_div(shortfall, batch).saturating_mul(batch),
                "reorder_quantity",
            ),
            _ => {
                let window = i64::from(window_days.max(1));
                let sold = self.units_sold.max(0).saturating_mul(i64::from(cover_days));
                let cover = ceil_div(sold, window).max(1);
                (
                    self.reorder_point
                        .saturating_add(cover)
                        .saturating_sub(position),
                    "sales_velocity",
                )
            }
        };
        self
    }
}

/// `numerator / denominator` rounded up, for a numerator ≥ 0 and a denominator > 0.
fn ceil_div(numerator: i64, denominator: i64) -> i64 {
    numerator / denominator + i64::from(numerator % denominator != 0)
}

/// Binds: `$1` store, `$2` supplier or null (every supplier), `$3` window in days.
pub const SUGGESTIONS_SQL: &str = "
WITH today AS (
    SELECT (now() AT TIME ZONE timezone)::date AS day FROM stores WHERE id = $1
), settings AS (
    SELECT sp.product_id, p.sku, p.name, sp.reorder_point, sp.reorder_quantity
      FROM store_products sp JOIN products p ON p.id = sp.product_id AND p.deleted_at IS NULL
     WHERE sp.store_id = $1 AND sp.deleted_at IS NULL AND sp.reorder_point IS NOT NULL
), prices AS (
    SELECT DISTINCT ON (sp.supplier_id, sp.product_id) sp.supplier_id, sp.product_id, sp.unit_cost_paise
      FROM supplier_prices sp JOIN suppliers s ON s.id = sp.supplier_id AND s.deleted_at IS NULL
     WHERE sp.store_id = $1 AND sp.deleted_at IS NULL
       AND sp.effective_from <= (SELECT day FROM today)
       AND ($2::bigint IS NULL OR sp.supplier_id = $2)
     ORDER BY sp.supplier_id, sp.product_id, sp.effective_from DESC
), on_order AS (
    SELECT l.product_id, sum(greatest(l.quantity - l.received_quantity, 0))::bigint AS units
      FROM purchase_orders o JOIN purchase_order_lines l ON l.purchase_order_id = o.id
     WHERE o.store_id = $1 AND o.closed_at IS NULL
     GROUP BY l.product_id
), sold AS (
    SELECT product_id, sum(units_sold)::bigint AS units
      FROM sales_daily
     WHERE store_id = $1 AND day > (SELECT day FROM today) - $3::int
     GROUP BY product_id
)
SELECT pr.supplier_id, s.product_id, s.sku, s.name,
       coalesce(b.quantity, 0) AS on_hand, coalesce(o.units, 0) AS on_order,
       s.reorder_point, s.reorder_quantity, coalesce(sold.units, 0) AS units_sold,
       pr.unit_cost_paise
  FROM settings s
  JOIN prices pr ON pr.product_id = s.product_id
  LEFT JOIN balances b ON b.store_id = $1 AND b.product_id = s.product_id
  LEFT JOIN on_order o ON o.product_id = s.product_id
  LEFT JOIN sold ON sold.product_id = s.product_id
 WHERE coalesce(b.quantity, 0) + coalesce(o.units, 0) <= s.reorder_point
 ORDER BY pr.supplier_id, s.product_id";

#[cfg(test)]
mod tests {
    use super::*;

    fn suggestion(on_hand: i64, on_order: i64, batch: Option<i64>, sold: i64) -> Suggestion {
        Suggestion {
            supplier_id: 1,
            product_id: 1,
            sku: "S".into(),
            name: "N".into(),
            on_hand,
            on_order,
            reorder_point: 10,
            reorder_quantity: batch,
            units_sold: sold,
            unit_cost_paise: 100,
            suggested_quantity: 0,
            basis: "",
        }
        .decide(28, 14)
    }

    #[test]
    fn a_reorder_quantity_is_ordered_in_multiples_that_lift_the_stock_above_the_point() {
        assert_eq!(suggestion(4, 0, Some(24), 0).suggested_quantity, 24);
        assert_eq!(suggestion(-30, 0, Some(24), 0).suggested_quantity, 48);
        assert_eq!(suggestion(10, 0, Some(5), 0).suggested_quantity, 5);
        assert_eq!(suggestion(4, 0, Some(24), 0).basis, "reorder_quantity");
    }

    #[test]
    fn without_a_reorder_quantity_the_order_covers_the_sales_of_the_cover_days() {
        // 56 sold in 28 days: 2 a day, 28 for 14 days, above the point of 10.
        let velocity = suggestion(4, 2, None, 56);
        assert_eq!(velocity.suggested_quantity, 10 + 28 - 6);
        assert_eq!(velocity.basis, "sales_velocity");
        // Nothing sold: one unit above the point.
        assert_eq!(suggestion(10, 0, None, 0).suggested_quantity, 1);
    }

    #[test]
    fn a_receipt_line_always_becomes_the_same_movement_and_another_line_another() {
        let receipt = Uuid::from_u128(42);
        assert_eq!(
            receipt_movement_id(receipt, 7),
            receipt_movement_id(receipt, 7)
        );
        assert_ne!(
            receipt_movement_id(receipt, 7),
            receipt_movement_id(receipt, 8)
        );
        assert_ne!(
            receipt_movement_id(receipt, 7),
            receipt_movement_id(Uuid::from_u128(43), 7)
        );
    }

    #[test]
    fn every_state_reads_back_from_its_name() {
        for state in OrderState::ALL {
            assert_eq!(OrderState::parse(state.as_str()), Some(state));
        }
    }
}
