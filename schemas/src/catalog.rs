//! The catalog as the APIs show it: ingest writes these rows, query-api reads them, and
//! both answer with these shapes. Each `*_COLUMNS` selects a row in its struct's order.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

pub const STORE_COLUMNS: &str =
    "id, code, name, city, timezone, negative_stock_policy, created_at, updated_at, deleted_at";

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Store {
    pub id: i64,
    #[schema(example = "MUM-AND-01")]
    pub code: String,
    pub name: String,
    pub city: Option<String>,
    #[schema(example = "Asia/Kolkata")]
    pub timezone: String,
    /// `reject` (default): a sale larger than the balance is refused; `allow`: stock may go negative.
    #[schema(example = "reject")]
    pub negative_stock_policy: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const PRODUCT_COLUMNS: &str =
    "id, sku, name, category, unit, barcode, created_at, updated_at, deleted_at";

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Product {
    pub id: i64,
    #[schema(example = "ATTA-5KG")]
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    /// `pc`, `g` or `ml`: quantities are integers in this unit.
    #[schema(example = "pc")]
    pub unit: String,
    pub barcode: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const SUPPLIER_COLUMNS: &str = "id, name, phone, city, created_at, updated_at, deleted_at";

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Supplier {
    pub id: i64,
    #[schema(example = "Sharma Wholesale")]
    pub name: String,
    #[schema(example = "+91 98200 12345")]
    pub phone: Option<String>,
    pub city: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const SUPPLIER_PRICE_COLUMNS: &str = "id, store_id, supplier_id, product_id, unit_cost_paise, effective_from, created_at, updated_at, deleted_at";

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct SupplierPrice {
    pub id: i64,
    pub store_id: i64,
    pub supplier_id: i64,
    pub product_id: i64,
    /// Cost of one unit of the product (in its unit: piece, gram, millilitre), in paise.
    #[schema(example = 25_500)]
    pub unit_cost_paise: i64,
    /// The first day (in the store's time zone) this price applies.
    pub effective_from: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const STORE_PRODUCT_COLUMNS: &str = "store_id, product_id, reorder_point, reorder_quantity, selling_price_paise, created_at, updated_at, deleted_at";

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct StoreProduct {
    pub store_id: i64,
    pub product_id: i64,
    /// A low-stock alert fires when the balance falls below this (in the product's unit).
    pub reorder_point: Option<i64>,
    /// How much to order when it does.
    pub reorder_quantity: Option<i64>,
    /// What one unit sells for in this store, in paise: the price of a sale sent without
    /// one, and the retail value of the stock.
    pub selling_price_paise: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const USER_COLUMNS: &str = "id, username, role, store_ids AS stores, disabled_at IS NOT NULL AS disabled, created_at, updated_at";

/// A user as the API shows it (never its password hash).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub stores: Vec<i64>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
