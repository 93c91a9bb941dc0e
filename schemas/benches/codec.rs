//! How long a movement takes to become Avro bytes and back: the direct encoder ingest
//! uses, apache-avro's generic writer it replaced, and the strict decoder.
//!
//!   cargo bench -p schemas --bench codec

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use schemas::{AvroRecord, MovementKind, ProductId, StockMovement, StoreId};
use uuid::Uuid;

fn sale() -> StockMovement {
    StockMovement {
        received_at: Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 1).unwrap(),
        unit_price_paise: Some(27_500),
        reference: Some("BILL-000123".into()),
        device_id: Some("till-1".into()),
        ..StockMovement::new(
            Uuid::from_u128(0x0193_5f3c_8c4e_7a10_9d2b_31c4_55e6_7f80),
            StoreId(417),
            ProductId(90_211),
            "ATTA-5KG",
            MovementKind::Sale,
            2,
            Utc.with_ymd_and_hms(2026, 11, 21, 10, 15, 0).unwrap(),
            "pos-417",
        )
    }
}

fn codec(c: &mut Criterion) {
    let movement = sale();
    let mut buffer = Vec::with_capacity(256);
    c.bench_function("StockMovement encode (direct)", |b| {
        b.iter(|| {
            buffer.clear();
            black_box(&movement).encode_into(&mut buffer).unwrap();
        })
    });
    c.bench_function("StockMovement encode (apache-avro generic writer)", |b| {
        b.iter(|| {
            buffer.clear();
            schemas::codec::write_body_generically(black_box(&movement), &mut buffer).unwrap();
        })
    });
    let bytes = movement.encode().unwrap();
    c.bench_function("StockMovement decode (strict)", |b| {
        b.iter(|| StockMovement::decode(black_box(&bytes)).unwrap())
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
