//! Why the processors reject a movement: one list, read by the processors that decide,
//! ingest that answers `?wait`, and the tests.

/// Why the processors rejected a movement: the stable code the ledger (`reject_reason`),
/// its topic and ingest's `?wait` answer (`code`) carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    InsufficientStock,
    UnknownStore,
    UnknownProduct,
    /// The balance would leave the range of a 64-bit integer.
    BalanceOverflow,
    /// A return's `original_movement_id` names no applied sale of its store and product.
    UnknownSale,
    /// A return of more than its sale sold, less the sale's earlier returns.
    ReturnExceedsSale,
    /// A void's `voids_movement_id` names no movement of its store.
    UnknownMovement,
    /// The movement a void names was not applied, or is a void itself.
    NotVoidable,
    /// A void names a movement of another product or quantity.
    VoidMismatch,
    /// The movement a void names was voided already.
    AlreadyVoided,
    /// It occurred before the product's latest count, which saw the shelf after it.
    SupersededByCount,
    /// A transfer-out's `to_store_id` names no other live store.
    UnknownDestination,
    /// A transfer-out's `transfer_id` was used before.
    TransferExists,
    /// A receive's `transfer_id` names no transfer of its product to its store whose
    /// transfer-in applied there.
    UnknownTransfer,
    /// The transfer was received already.
    AlreadyReceived,
    /// A receive of more than the transfer sent.
    ReceiveExceedsTransfer,
}

impl RejectReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientStock => "insufficient_stock",
            Self::UnknownStore => "unknown_store",
            Self::UnknownProduct => "unknown_product",
            Self::BalanceOverflow => "balance_overflow",
            Self::UnknownSale => "unknown_sale",
            Self::ReturnExceedsSale => "return_exceeds_sale",
            Self::UnknownMovement => "unknown_movement",
            Self::NotVoidable => "not_voidable",
            Self::VoidMismatch => "void_mismatch",
            Self::AlreadyVoided => "already_voided",
            Self::SupersededByCount => "superseded_by_count",
            Self::UnknownDestination => "unknown_destination",
            Self::TransferExists => "transfer_exists",
            Self::UnknownTransfer => "unknown_transfer",
            Self::AlreadyReceived => "already_received",
            Self::ReceiveExceedsTransfer => "receive_exceeds_transfer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::InsufficientStock,
            Self::UnknownStore,
            Self::UnknownProduct,
            Self::BalanceOverflow,
            Self::UnknownSale,
            Self::ReturnExceedsSale,
            Self::UnknownMovement,
            Self::NotVoidable,
            Self::VoidMismatch,
            Self::AlreadyVoided,
            Self::SupersededByCount,
            Self::UnknownDestination,
            Self::TransferExists,
            Self::UnknownTransfer,
            Self::AlreadyReceived,
            Self::ReceiveExceedsTransfer,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == text)
    }
}
