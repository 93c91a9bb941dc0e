//! Postgres, the truth. `reads`: what a batch needs before it can be decided (read
//! concurrently) and where each partition stands; `replay`: the committed rows and their
//! outputs, read again to publish what the output topics lack, and the movements a batch's
//! voids reverse; `write`: the batch's write —
//! one statement, hence one round trip and one transaction, that appends the ledger,
//! records first outcomes, upserts balances and rollups, raises and resolves alerts and
//! moves the partitions' offsets, or does none of it.

mod reads;
mod replay;
mod write;

use chrono::{DateTime, Utc};
use schemas::StockMovement;

pub use reads::{
    Setting, SettingChange, Stored, StoredBalance, balances, catalog, later_changes, seen,
    settings, settings_changed, stored_offsets, transfers,
};
pub use replay::{LedgerRow, Voided, ledger_rows, outputs_of, voided};
pub use write::{Decided, commit};

/// One decodable movement of the input topic and where it was.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    /// The record's log time: the ledger's record time. Taken from the topic, not the
    /// clock, so a replayed batch writes the same rows and output records.
    pub recorded_at: DateTime<Utc>,
    pub movement: StockMovement,
    /// For a sale sent without a price: the store's selling price of the product as the
    /// processors held it when they applied the sale — the price the ledger records. The
    /// movement itself stays as sent (its fingerprint tells a retry from a conflict).
    pub store_price_paise: Option<i64>,
}

impl Record {
    /// The unit price the ledger records: the one sent, else the store's.
    pub fn unit_price_paise(&self) -> Option<i64> {
        self.movement.unit_price_paise.or(self.store_price_paise)
    }
}

/// How far a batch moves one partition: from the offset Postgres held to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub partition: i32,
    pub expected: i64,
    pub next: i64,
    /// How far the output topics had this partition when the batch went to be written
    /// (`None`: not known here, so the batch publishes nothing of it).
    pub published: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Another processor committed one of the partitions since this one read its offset.
    #[error("another processor has committed these partitions since they were assigned here")]
    Fenced,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
