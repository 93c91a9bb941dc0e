//! The contracts of the Bazaar inventory pipeline.
//!
//! Everything two services (or a service and an outside consumer) must agree on lives
//! here: the Avro value schemas of the Kafka topics (`avro/*.avsc`, embedded), their Rust
//! types with the Confluent wire format (schema ids from the registry) and single-object
//! encoding, topic names and record keys, and the Postgres
//! schema as an embedded `sqlx` migrator.

pub mod cache;
pub mod catalog;
pub mod codec;
pub mod consistency;
pub mod events;
pub mod ids;
mod kinds;
pub mod migrations;
mod movement;
pub use movement::transfer_in_id;
pub mod purchase_orders;
mod reject;
pub mod topics;
pub mod total;
pub mod wire;

pub use codec::{AvroRecord, DecodeError, Decoder, EncodeError, on_the_wire};
pub use events::{
    AlertKind, Balance, LedgerEntry, LedgerStatus, MovementKind, StockAlert, StockMovement,
};
pub use ids::{ProductId, StoreId, SupplierId};
pub use reject::RejectReason;
pub use topics::{TopicSpec, Topics};
pub use total::Total;
pub use wire::{SchemaIds, WireFormat};
