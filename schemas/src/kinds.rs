//! The Avro enums of the records: what a movement does, its outcome, the alert a balance
//! raises. Each starts with `UNKNOWN`, its schema's default.

use apache_avro::types::Value;
use serde::{Deserialize, Serialize};

use crate::codec::symbol;

/// An Avro enum whose first symbol, `UNKNOWN`, is the schema's default: what a reader
/// gets for a symbol added by a newer writer.
macro_rules! avro_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $symbol:literal / $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            /// A symbol this build does not know (written by a newer schema).
            Unknown,
            $($variant),+
        }

        impl $name {
            /// Every symbol this build knows, in schema order after `UNKNOWN`.
            pub const KNOWN: &'static [Self] = &[$(Self::$variant),+];

            /// The Avro symbol.
            pub const fn symbol(self) -> &'static str {
                match self {
                    Self::Unknown => "UNKNOWN",
                    $(Self::$variant => $symbol),+
                }
            }

            /// The lower-case name used in JSON and in Postgres.
            pub const fn as_str(self) -> &'static str {
                match self {
                    Self::Unknown => "unknown",
                    $(Self::$variant => $text),+
                }
            }

            pub fn from_symbol(symbol: &str) -> Self {
                match symbol {
                    $($symbol => Self::$variant,)+
                    _ => Self::Unknown,
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// The symbol's position in the schema.
            pub(crate) fn avro_index(self) -> u32 {
                match self {
                    Self::Unknown => 0,
                    other => 1 + Self::KNOWN.iter().position(|known| *known == other).unwrap_or(0) as u32,
                }
            }

            pub(crate) fn to_avro(self) -> Value {
                symbol(self.avro_index(), self.symbol())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

avro_enum!(
    /// What a movement does to stock.
    MovementKind {
        StockIn = "STOCK_IN" / "stock_in",
        Sale = "SALE" / "sale",
        Removal = "REMOVAL" / "removal",
        Return = "RETURN" / "return",
        Adjustment = "ADJUSTMENT" / "adjustment",
        Void = "VOID" / "void",
        Count = "COUNT" / "count",
        TransferOut = "TRANSFER_OUT" / "transfer_out",
        TransferIn = "TRANSFER_IN" / "transfer_in",
        TransferReceive = "TRANSFER_RECEIVE" / "transfer_receive",
    }
);

avro_enum!(
    /// The outcome of a movement.
    LedgerStatus {
        Applied = "APPLIED" / "applied",
        Rejected = "REJECTED" / "rejected",
        Duplicate = "DUPLICATE" / "duplicate",
        Conflict = "CONFLICT" / "conflict",
    }
);

avro_enum!(
    /// A threshold a balance crossed; `PhantomStock`: an offline sale or removal took more
    /// than the book held (the book was wrong).
    AlertKind {
        LowStock = "LOW_STOCK" / "low_stock",
        OutOfStock = "OUT_OF_STOCK" / "out_of_stock",
        Recovered = "RECOVERED" / "recovered",
        PhantomStock = "PHANTOM_STOCK" / "phantom_stock",
    }
);
