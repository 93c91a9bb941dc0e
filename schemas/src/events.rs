//! The records on the Kafka topics, as Rust types. Field docs live in `avro/*.avsc`.
//!
//! Timestamps travel as `timestamp-micros`: sub-microsecond precision is dropped on the
//! wire, exactly as Postgres' `timestamptz` does.

use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{
    AvroRecord, BodyWriter, CompiledSchema, DecodeError, EncodeError, RecordFields,
    optional_boolean, optional_long, optional_string, optional_uuid, timestamp,
};
use crate::ids::{ProductId, StoreId, SupplierId};
pub use crate::kinds::{AlertKind, LedgerStatus, MovementKind};

pub const STOCK_MOVEMENT_SCHEMA: &str = include_str!("../avro/StockMovement.avsc");
pub const LEDGER_ENTRY_SCHEMA: &str = include_str!("../avro/LedgerEntry.avsc");
pub const BALANCE_SCHEMA: &str = include_str!("../avro/Balance.avsc");
pub const STOCK_ALERT_SCHEMA: &str = include_str!("../avro/StockAlert.avsc");

/// The earlier versions of the schemas, oldest first: this build reads what they wrote.
pub const STOCK_MOVEMENT_HISTORY: &[&str] = &[include_str!("../avro/history/StockMovement.1.avsc")];
pub const LEDGER_ENTRY_HISTORY: &[&str] = &[include_str!("../avro/history/LedgerEntry.1.avsc")];
pub const STOCK_ALERT_HISTORY: &[&str] = &[include_str!("../avro/history/StockAlert.1.avsc")];

/// The `earlier_schemas` of an [`AvroRecord`]: `history`, parsed once.
macro_rules! earlier_schemas {
    ($history:expr) => {
        fn earlier_schemas() -> &'static [CompiledSchema] {
            static EARLIER: std::sync::OnceLock<Vec<CompiledSchema>> = std::sync::OnceLock::new();
            EARLIER.get_or_init(|| CompiledSchema::embedded_all($history))
        }
    };
}

/// A stock movement accepted by ingest (topic `inventory.movements.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockMovement {
    pub movement_id: Uuid,
    pub store_id: StoreId,
    pub product_id: ProductId,
    pub sku: String,
    pub kind: MovementKind,
    pub quantity: i64,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub supplier_id: Option<SupplierId>,
    pub unit_cost_paise: Option<i64>,
    pub unit_price_paise: Option<i64>,
    pub reason: Option<String>,
    pub reference: Option<String>,
    pub actor: String,
    pub device_id: Option<String>,
    /// A sale or removal that happened while its till was offline: never rejected for want
    /// of stock. Ingest sets it when the client says so or the movement arrives late.
    pub offline: bool,
    /// A return's: `Some(false)` when the goods are not resellable (sellable stock stays).
    pub restock: Option<bool>,
    /// A free note (an adjustment's or a return's explanation).
    pub note: Option<String>,
    /// A return's: the sale the goods were bought in, which caps what comes back.
    pub original_movement_id: Option<Uuid>,
    /// A void's: the movement whose effect it reverses.
    pub voids_movement_id: Option<Uuid>,
    /// A count's: the stock-take it belongs to (one `occurred_at` for all its lines).
    pub count_id: Option<Uuid>,
    /// A transfer's (out, in and receive): the client's id of the transfer.
    pub transfer_id: Option<Uuid>,
    /// A transfer-out's: the store the goods go to.
    pub to_store_id: Option<StoreId>,
    /// A transfer-in's: the store the goods come from.
    pub from_store_id: Option<StoreId>,
}

impl AvroRecord for StockMovement {
    fn schema() -> &'static CompiledSchema {
        static SCHEMA: std::sync::OnceLock<CompiledSchema> = std::sync::OnceLock::new();
        SCHEMA.get_or_init(|| CompiledSchema::embedded(STOCK_MOVEMENT_SCHEMA))
    }

    earlier_schemas!(STOCK_MOVEMENT_HISTORY);

    fn to_avro(&self) -> Value {
        Value::Record(self.avro_fields(24))
    }

    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        Self::read_fields(&mut RecordFields::new(value)?)
    }

    fn write_body(&self, buffer: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.write_fields(&mut BodyWriter(buffer));
        Ok(())
    }
}

impl StockMovement {
    /// The movement's fields in schema order, straight to Avro binary (the hot path of
    /// ingest); `avro_fields` is the same record as a generic `Value`.
    fn write_fields(&self, writer: &mut BodyWriter<'_>) {
        writer
            .uuid(self.movement_id)
            .long(self.store_id.get())
            .long(self.product_id.get())
            .string(&self.sku)
            .long(i64::from(self.kind.avro_index()))
            .long(self.quantity)
            .timestamp(self.occurred_at)
            .timestamp(self.received_at)
            .optional_long(self.supplier_id.map(SupplierId::get))
            .optional_long(self.unit_cost_paise)
            .optional_long(self.unit_price_paise)
            .optional_string(self.reason.as_deref())
            .optional_string(self.reference.as_deref())
            .string(&self.actor)
            .optional_string(self.device_id.as_deref())
            .boolean(self.offline)
            .optional_boolean(self.restock)
            .optional_string(self.note.as_deref())
            .optional_uuid(self.original_movement_id)
            .optional_uuid(self.voids_movement_id)
            .optional_uuid(self.count_id)
            .optional_uuid(self.transfer_id)
            .optional_long(self.to_store_id.map(StoreId::get))
            .optional_long(self.from_store_id.map(StoreId::get));
    }

    /// The movement's fields in schema order; `capacity` leaves room for a record that
    /// extends them (the ledger entry).
    fn avro_fields(&self, capacity: usize) -> Vec<(String, Value)> {
        let mut fields = Vec::with_capacity(capacity);
        fields.extend([
            ("movement_id".into(), Value::Uuid(self.movement_id)),
            ("store_id".into(), Value::Long(self.store_id.get())),
            ("product_id".into(), Value::Long(self.product_id.get())),
            ("sku".into(), Value::String(self.sku.clone())),
            ("kind".into(), self.kind.to_avro()),
            ("quantity".into(), Value::Long(self.quantity)),
            ("occurred_at".into(), timestamp(self.occurred_at)),
            ("received_at".into(), timestamp(self.received_at)),
            (
                "supplier_id".into(),
                optional_long(self.supplier_id.map(SupplierId::get)),
            ),
            (
                "unit_cost_paise".into(),
                optional_long(self.unit_cost_paise),
            ),
            (
                "unit_price_paise".into(),
                optional_long(self.unit_price_paise),
            ),
            ("reason".into(), optional_string(self.reason.as_deref())),
            (
                "reference".into(),
                optional_string(self.reference.as_deref()),
            ),
            ("actor".into(), Value::String(self.actor.clone())),
            (
                "device_id".into(),
                optional_string(self.device_id.as_deref()),
            ),
            ("offline".into(), Value::Boolean(self.offline)),
            ("restock".into(), optional_boolean(self.restock)),
            ("note".into(), optional_string(self.note.as_deref())),
            (
                "original_movement_id".into(),
                optional_uuid(self.original_movement_id),
            ),
            (
                "voids_movement_id".into(),
                optional_uuid(self.voids_movement_id),
            ),
            ("count_id".into(), optional_uuid(self.count_id)),
            ("transfer_id".into(), optional_uuid(self.transfer_id)),
            (
                "to_store_id".into(),
                optional_long(self.to_store_id.map(StoreId::get)),
            ),
            (
                "from_store_id".into(),
                optional_long(self.from_store_id.map(StoreId::get)),
            ),
        ]);
        fields
    }

    fn read_fields(fields: &mut RecordFields) -> Result<Self, DecodeError> {
        Ok(Self {
            movement_id: fields.uuid("movement_id")?,
            store_id: StoreId(fields.long("store_id")?),
            product_id: ProductId(fields.long("product_id")?),
            sku: fields.string("sku")?,
            kind: MovementKind::from_symbol(&fields.symbol("kind")?),
            quantity: fields.long("quantity")?,
            occurred_at: fields.timestamp("occurred_at")?,
            received_at: fields.timestamp("received_at")?,
            supplier_id: fields.optional_long("supplier_id")?.map(SupplierId),
            unit_cost_paise: fields.optional_long("unit_cost_paise")?,
            unit_price_paise: fields.optional_long("unit_price_paise")?,
            reason: fields.optional_string("reason")?,
            reference: fields.optional_string("reference")?,
            actor: fields.string("actor")?,
            device_id: fields.optional_string("device_id")?,
            offline: fields.boolean("offline")?,
            restock: fields.optional_boolean("restock")?,
            note: fields.optional_string("note")?,
            original_movement_id: fields.optional_uuid("original_movement_id")?,
            voids_movement_id: fields.optional_uuid("voids_movement_id")?,
            count_id: fields.optional_uuid("count_id")?,
            transfer_id: fields.optional_uuid("transfer_id")?,
            to_store_id: fields.optional_long("to_store_id")?.map(StoreId),
            from_store_id: fields.optional_long("from_store_id")?.map(StoreId),
        })
    }
}

/// The outcome of one movement (topic `inventory.ledger.v1`): the movement, then what
/// the processors decided. On the wire the record is flat, movement fields first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub movement: StockMovement,
    pub status: LedgerStatus,
    pub reject_reason: Option<String>,
    pub available_quantity: Option<i64>,
    pub balance_after: Option<i64>,
    /// For APPLIED: what it changed in sellable stock (a count: its variance, counted less
    /// the book as of its time; a void: the reverse of its movement's change).
    pub stock_change: Option<i64>,
    pub original_status: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub source_partition: i32,
    pub source_offset: i64,
}

impl AvroRecord for LedgerEntry {
    fn schema() -> &'static CompiledSchema {
        static SCHEMA: std::sync::OnceLock<CompiledSchema> = std::sync::OnceLock::new();
        SCHEMA.get_or_init(|| CompiledSchema::embedded(LEDGER_ENTRY_SCHEMA))
    }

    earlier_schemas!(LEDGER_ENTRY_HISTORY);

    fn to_avro(&self) -> Value {
        let mut fields = self.movement.avro_fields(33);
        fields.extend([
            ("status".into(), self.status.to_avro()),
            (
                "reject_reason".into(),
                optional_string(self.reject_reason.as_deref()),
            ),
            (
                "available_quantity".into(),
                optional_long(self.available_quantity),
            ),
            ("balance_after".into(), optional_long(self.balance_after)),
            ("stock_change".into(), optional_long(self.stock_change)),
            (
                "original_status".into(),
                optional_string(self.original_status.as_deref()),
            ),
            ("recorded_at".into(), timestamp(self.recorded_at)),
            ("source_partition".into(), Value::Int(self.source_partition)),
            ("source_offset".into(), Value::Long(self.source_offset)),
        ]);
        Value::Record(fields)
    }

    fn write_body(&self, buffer: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut writer = BodyWriter(buffer);
        self.movement.write_fields(&mut writer);
        writer
            .long(i64::from(self.status.avro_index()))
            .optional_string(self.reject_reason.as_deref())
            .optional_long(self.available_quantity)
            .optional_long(self.balance_after)
            .optional_long(self.stock_change)
            .optional_string(self.original_status.as_deref())
            .timestamp(self.recorded_at)
            .long(i64::from(self.source_partition))
            .long(self.source_offset);
        Ok(())
    }

    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = RecordFields::new(value)?;
        Ok(Self {
            movement: StockMovement::read_fields(&mut fields)?,
            status: LedgerStatus::from_symbol(&fields.symbol("status")?),
            reject_reason: fields.optional_string("reject_reason")?,
            available_quantity: fields.optional_long("available_quantity")?,
            balance_after: fields.optional_long("balance_after")?,
            stock_change: fields.optional_long("stock_change")?,
            original_status: fields.optional_string("original_status")?,
            recorded_at: fields.timestamp("recorded_at")?,
            source_partition: fields.int("source_partition")?,
            source_offset: fields.long("source_offset")?,
        })
    }
}

/// The current balance of one product in one store (compacted topic `inventory.balances.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub store_id: StoreId,
    pub product_id: ProductId,
    pub sku: String,
    pub quantity: i64,
    pub average_unit_cost_paise: Option<i64>,
    pub last_movement_id: Uuid,
    pub updated_at: DateTime<Utc>,
}

impl AvroRecord for Balance {
    fn schema() -> &'static CompiledSchema {
        static SCHEMA: std::sync::OnceLock<CompiledSchema> = std::sync::OnceLock::new();
        SCHEMA.get_or_init(|| CompiledSchema::embedded(BALANCE_SCHEMA))
    }

    fn to_avro(&self) -> Value {
        Value::Record(vec![
            ("store_id".into(), Value::Long(self.store_id.get())),
            ("product_id".into(), Value::Long(self.product_id.get())),
            ("sku".into(), Value::String(self.sku.clone())),
            ("quantity".into(), Value::Long(self.quantity)),
            (
                "average_unit_cost_paise".into(),
                optional_long(self.average_unit_cost_paise),
            ),
            (
                "last_movement_id".into(),
                Value::Uuid(self.last_movement_id),
            ),
            ("updated_at".into(), timestamp(self.updated_at)),
        ])
    }

    fn write_body(&self, buffer: &mut Vec<u8>) -> Result<(), EncodeError> {
        BodyWriter(buffer)
            .long(self.store_id.get())
            .long(self.product_id.get())
            .string(&self.sku)
            .long(self.quantity)
            .optional_long(self.average_unit_cost_paise)
            .uuid(self.last_movement_id)
            .timestamp(self.updated_at);
        Ok(())
    }

    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = RecordFields::new(value)?;
        Ok(Self {
            store_id: StoreId(fields.long("store_id")?),
            product_id: ProductId(fields.long("product_id")?),
            sku: fields.string("sku")?,
            quantity: fields.long("quantity")?,
            average_unit_cost_paise: fields.optional_long("average_unit_cost_paise")?,
            last_movement_id: fields.uuid("last_movement_id")?,
            updated_at: fields.timestamp("updated_at")?,
        })
    }
}

/// A balance crossed a threshold (topic `inventory.alerts.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAlert {
    pub store_id: StoreId,
    pub product_id: ProductId,
    pub sku: String,
    pub kind: AlertKind,
    pub quantity: i64,
    pub reorder_point: Option<i64>,
    pub movement_id: Uuid,
    pub raised_at: DateTime<Utc>,
}

impl AvroRecord for StockAlert {
    fn schema() -> &'static CompiledSchema {
        static SCHEMA: std::sync::OnceLock<CompiledSchema> = std::sync::OnceLock::new();
        SCHEMA.get_or_init(|| CompiledSchema::embedded(STOCK_ALERT_SCHEMA))
    }

    earlier_schemas!(STOCK_ALERT_HISTORY);

    fn to_avro(&self) -> Value {
        Value::Record(vec![
            ("store_id".into(), Value::Long(self.store_id.get())),
            ("product_id".into(), Value::Long(self.product_id.get())),
            ("sku".into(), Value::String(self.sku.clone())),
            ("kind".into(), self.kind.to_avro()),
            ("quantity".into(), Value::Long(self.quantity)),
            ("reorder_point".into(), optional_long(self.reorder_point)),
            ("movement_id".into(), Value::Uuid(self.movement_id)),
            ("raised_at".into(), timestamp(self.raised_at)),
        ])
    }

    fn from_avro(value: Value) -> Result<Self, DecodeError> {
        let mut fields = RecordFields::new(value)?;
        Ok(Self {
            store_id: StoreId(fields.long("store_id")?),
            product_id: ProductId(fields.long("product_id")?),
            sku: fields.string("sku")?,
            kind: AlertKind::from_symbol(&fields.symbol("kind")?),
            quantity: fields.long("quantity")?,
            reorder_point: fields.optional_long("reorder_point")?,
            movement_id: fields.uuid("movement_id")?,
            raised_at: fields.timestamp("raised_at")?,
        })
    }
}
