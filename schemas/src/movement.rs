//! A movement's own rules, beside its record (`events`): a plain one to build on, what it
//! does to stock, and what makes a resend the same movement.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::codec::BodyWriter;
use crate::events::{MovementKind, StockMovement};
use crate::ids::{ProductId, StoreId, SupplierId};

impl StockMovement {
    /// A movement with nothing optional: received when it occurred, no supplier, cost,
    /// price, reason, reference, device or references to other movements, not offline. The
    /// rest is set with struct update syntax (`StockMovement { supplier_id: …, ..new }`).
    #[allow(clippy::too_many_arguments)] // Every field a movement cannot do without.
    pub fn new(
        movement_id: Uuid,
        store_id: StoreId,
        product_id: ProductId,
        sku: impl Into<String>,
        kind: MovementKind,
        quantity: i64,
        occurred_at: DateTime<Utc>,
        actor: impl Into<String>,
    ) -> Self {
        Self {
            movement_id,
            store_id,
            product_id,
            sku: sku.into(),
            kind,
            quantity,
            occurred_at,
            received_at: occurred_at,
            supplier_id: None,
            unit_cost_paise: None,
            unit_price_paise: None,
            reason: None,
            reference: None,
            actor: actor.into(),
            device_id: None,
            offline: false,
            restock: None,
            note: None,
            original_movement_id: None,
            voids_movement_id: None,
            count_id: None,
            transfer_id: None,
            to_store_id: None,
            from_store_id: None,
        }
    }

    /// A transfer-out's arrival notice at its destination: the `transfer_in` the processors
    /// put on the movements topic (keyed by the destination) in the same Kafka transaction
    /// as the source's outputs, once the transfer-out applied. Its id derives from the
    /// transfer's (UUID v5), so a transaction published again carries the same movement,
    /// which the destination records once. `None` for any other movement.
    pub fn transfer_in(&self) -> Option<Self> {
        if self.kind != MovementKind::TransferOut {
            return None;
        }
        let (transfer_id, destination) = (self.transfer_id?, self.to_store_id?);
        Some(Self {
            transfer_id: Some(transfer_id),
            from_store_id: Some(self.store_id),
            received_at: self.received_at,
            ..Self::new(
                transfer_in_id(transfer_id),
                destination,
                self.product_id,
                self.sku.clone(),
                MovementKind::TransferIn,
                self.quantity,
                self.occurred_at,
                self.actor.clone(),
            )
        })
    }

    /// What the movement does to sellable stock: a stock-in and a resellable return add
    /// their quantity, a sale and a removal take it, an adjustment adds its signed quantity,
    /// a return not resellable and an unknown kind change nothing. A void's change is the
    /// reverse of its voided movement's, a count's the difference between what it counted
    /// and the book as of its time — which the movement alone does not tell: 0 here.
    pub fn delta(&self) -> i64 {
        match self.kind {
            MovementKind::StockIn | MovementKind::Adjustment | MovementKind::TransferReceive => {
                self.quantity
            }
            MovementKind::Return if self.restock != Some(false) => self.quantity,
            MovementKind::Sale | MovementKind::Removal | MovementKind::TransferOut => {
                -self.quantity
            }
            MovementKind::Return
            | MovementKind::Void
            | MovementKind::Count
            | MovementKind::TransferIn
            | MovementKind::Unknown => 0,
        }
    }

    /// What makes a resend the same movement: its store, product, kind, quantity,
    /// supplier, unit cost, unit price, reason and reference — those fields' Avro binary
    /// encoding in that order, hashed with XXH3-64. The time it occurred (ingest's clock
    /// when the client omits it), the time received, the actor, the device and whether it
    /// came while offline (a resend after the till reconnects arrives late) may differ
    /// between a movement and its resend. A return's `restock`, a `note`, a return's
    /// `original_movement_id`, a void's `voids_movement_id`, a count's `count_id` and a
    /// transfer's `transfer_id`, `to_store_id` and `from_store_id` follow, each only when
    /// given: a movement without them hashes as it did before they existed. Stored with the
    /// first outcome (`movement_ids`): a later movement with the same id and another fingerprint, or of another store, is
    /// a `conflict`, not a `duplicate`.
    pub fn fingerprint(&self) -> i64 {
        // Computed for every movement the processors decide: one buffer per thread.
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
        }
        BUFFER.with_borrow_mut(|bytes| {
            bytes.clear();
            self.fingerprint_fields(bytes);
            // Postgres has no unsigned bigint: the same 64 bits, read as signed.
            xxhash_rust::xxh3::xxh3_64(bytes) as i64
        })
    }

    fn fingerprint_fields(&self, bytes: &mut Vec<u8>) {
        BodyWriter(bytes)
            .long(self.store_id.get())
            .long(self.product_id.get())
            .long(i64::from(self.kind.avro_index()))
            .long(self.quantity)
            .optional_long(self.supplier_id.map(SupplierId::get))
            .optional_long(self.unit_cost_paise)
            .optional_long(self.unit_price_paise)
            .optional_string(self.reason.as_deref())
            .optional_string(self.reference.as_deref());
        if let Some(restock) = self.restock {
            BodyWriter(bytes).boolean(restock);
        }
        if let Some(note) = &self.note {
            BodyWriter(bytes).string(note);
        }
        if let Some(original) = self.original_movement_id {
            BodyWriter(bytes).uuid(original);
        }
        if let Some(voided) = self.voids_movement_id {
            BodyWriter(bytes).uuid(voided);
        }
        if let Some(count) = self.count_id {
            BodyWriter(bytes).uuid(count);
        }
        if let Some(transfer) = self.transfer_id {
            BodyWriter(bytes).uuid(transfer);
        }
        if let Some(store) = self.to_store_id {
            BodyWriter(bytes).long(store.get());
        }
        if let Some(store) = self.from_store_id {
            BodyWriter(bytes).long(store.get());
        }
    }
}

/// The namespace of the transfer-in ids (UUID v5 of the transfer id).
const TRANSFER_IN_NAMESPACE: Uuid = Uuid::from_u128(0x6f0d_1c2e_5a4b_4e1f_9c3d_7b2a_8e4f_0a17);

/// The movement id of a transfer's `transfer_in` at its destination.
pub fn transfer_in_id(transfer_id: Uuid) -> Uuid {
    Uuid::new_v5(&TRANSFER_IN_NAMESPACE, transfer_id.as_bytes())
}
