//! Writes the seed corpus of the `avro_decode` fuzz target: one record of each topic's
//! type, with and without its optional fields, in single-object encoding and in the
//! Confluent wire format (with the ids the target gives the schemas: 1 movements, 2 ledger,
//! 3 balances, 4 alerts).
//!
//! `cargo run -p schemas --example avro_seed_corpus -- fuzz/corpus/avro_decode`

use chrono::{TimeZone, Utc};
use schemas::{
    AlertKind, AvroRecord, Balance, LedgerEntry, LedgerStatus, MovementKind, ProductId, StockAlert,
    StockMovement, StoreId, SupplierId,
};
use uuid::Uuid;

fn main() -> std::io::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("the corpus folder"));
    std::fs::create_dir_all(&dir)?;
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap();
    let id = Uuid::from_u128(0x0193_a1b2_7c4d_7e8f_9a0b_1c2d_3e4f_5a6b);
    let sale = StockMovement {
        unit_price_paise: Some(12_500),
        device_id: Some("till-1".into()),
        ..StockMovement::new(
            id,
            StoreId(1),
            ProductId(2),
            "DAL-1KG",
            MovementKind::Sale,
            3,
            at,
            "pos-1",
        )
    };
    let stock_in = StockMovement {
        kind: MovementKind::StockIn,
        quantity: 40,
        supplier_id: Some(SupplierId(7)),
        unit_cost_paise: Some(11_000),
        unit_price_paise: None,
        reference: Some("INV-2231".into()),
        device_id: None,
        ..sale.clone()
    };
    let rejected = LedgerEntry {
        movement: sale.clone(),
        status: LedgerStatus::Rejected,
        reject_reason: Some("insufficient_stock".into()),
        available_quantity: Some(1),
        balance_after: None,
        stock_change: None,
        original_status: None,
        recorded_at: at,
        source_partition: 4,
        source_offset: 1_234,
    };
    let balance = Balance {
        store_id: StoreId(1),
        product_id: ProductId(2),
        sku: "DAL-1KG".into(),
        quantity: 37,
        average_unit_cost_paise: Some(11_000),
        last_movement_id: id,
        updated_at: at,
    };
    let alert = StockAlert {
        store_id: StoreId(1),
        product_id: ProductId(2),
        sku: "DAL-1KG".into(),
        kind: AlertKind::LowStock,
        quantity: 4,
        reorder_point: Some(5),
        movement_id: id,
        raised_at: at,
    };
    let seeds = [
        ("movement-sale", 1_u32, sale.encode()),
        ("movement-stock-in", 1, stock_in.encode()),
        ("ledger-rejected", 2, rejected.encode()),
        ("balance", 3, balance.encode()),
        ("alert-low-stock", 4, alert.encode()),
    ];
    for (name, id, bytes) in seeds {
        let bytes = bytes.expect("a seed encodes");
        // The same body after the Confluent header instead of the single-object one.
        let mut framed = vec![schemas::wire::CONFLUENT_MAGIC];
        framed.extend_from_slice(&id.to_be_bytes());
        framed.extend_from_slice(&bytes[10..]);
        std::fs::write(dir.join(format!("{name}-framed")), framed)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
