//! The Avro contracts: round trips, single-object framing and schema evolution.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use schemas::codec::{CompiledSchema, MAGIC};
use schemas::{
    AlertKind, AvroRecord, Balance, DecodeError, Decoder, LedgerEntry, LedgerStatus, MovementKind,
    ProductId, StockAlert, StockMovement, StoreId, SupplierId,
};
use uuid::Uuid;

mod evolution;

const OLDER_MOVEMENT: &str = include_str!("../fixtures/StockMovement.older.avsc");
const NEWER_MOVEMENT: &str = include_str!("../fixtures/StockMovement.newer.avsc");

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 123_456_000)
        .single()
        .expect("valid time")
}

fn sale() -> StockMovement {
    StockMovement {
        received_at: at(1_790_000_003),
        unit_price_paise: Some(28_500),
        reference: Some("BILL-0042".into()),
        device_id: Some("till-1".into()),
        ..StockMovement::new(
            Uuid::new_v4(),
            StoreId(7),
            ProductId(1001),
            "ATTA-5KG",
            MovementKind::Sale,
            2,
            at(1_790_000_000),
            "pos-7",
        )
    }
}

#[test]
fn every_record_type_round_trips_through_single_object_encoding() {
    let movement = sale();
    assert_eq!(
        StockMovement::decode(&movement.encode().unwrap()).unwrap(),
        movement
    );

    let entry = LedgerEntry {
        movement: StockMovement {
            supplier_id: Some(SupplierId(3)),
            unit_cost_paise: Some(100),
            ..movement.clone()
        },
        status: LedgerStatus::Rejected,
        reject_reason: Some("insufficient_stock".into()),
        available_quantity: Some(1),
        balance_after: None,
        stock_change: None,
        original_status: None,
        recorded_at: at(1_790_000_004),
        source_partition: 5,
        source_offset: 123_456_789,
    };
    assert_eq!(
        LedgerEntry::decode(&entry.encode().unwrap()).unwrap(),
        entry
    );

    let balance = Balance {
        store_id: StoreId(7),
        product_id: ProductId(1001),
        sku: "ATTA-5KG".into(),
        quantity: -3,
        average_unit_cost_paise: Some(24_000),
        last_movement_id: movement.movement_id,
        updated_at: at(1_790_000_004),
    };
    assert_eq!(
        Balance::decode(&balance.encode().unwrap()).unwrap(),
        balance
    );

    for kind in AlertKind::KNOWN {
        let alert = StockAlert {
            store_id: StoreId(7),
            product_id: ProductId(1001),
            sku: "ATTA-5KG".into(),
            kind: *kind,
            quantity: 0,
            reorder_point: Some(10),
            movement_id: movement.movement_id,
            raised_at: at(1_790_000_004),
        };
        assert_eq!(StockAlert::decode(&alert.encode().unwrap()).unwrap(), alert);
    }
}

#[test]
fn an_instant_on_the_wire_reads_back_the_same() {
    // What RFC 3339 lets a client send but `timestamp-micros` cannot carry: a leap second
    // and nanoseconds. Once put `on_the_wire` the movement decodes equal to itself.
    for sent in ["2026-12-01T09:58:60Z", "2026-12-01T09:58:59.123456789Z"] {
        let sent: DateTime<Utc> = sent.parse().unwrap();
        let movement = StockMovement {
            occurred_at: schemas::on_the_wire(sent),
            ..sale()
        };
        let decoded = StockMovement::decode(&movement.encode().unwrap()).unwrap();
        assert_eq!(decoded, movement, "{sent}");
        assert!((decoded.occurred_at - sent).num_milliseconds().abs() <= 1000);
    }
}

#[test]
fn encoded_records_start_with_the_marker_and_the_schema_fingerprint() {
    let bytes = sale().encode().unwrap();
    assert_eq!(bytes[..2], MAGIC);
    assert_eq!(bytes[2..10], StockMovement::schema().fingerprint.0);
    // The fingerprint is the CRC-64-AVRO of the canonical form, which any Avro library
    // computes the same way; recompute it from the published file.
    let published = CompiledSchema::parse(include_str!("../../avro/StockMovement.avsc")).unwrap();
    assert_eq!(bytes[2..10], published.fingerprint.0);
}

#[test]
fn each_schema_has_its_own_fingerprint() {
    let fingerprints = [
        StockMovement::schema().fingerprint,
        LedgerEntry::schema().fingerprint,
        Balance::schema().fingerprint,
        StockAlert::schema().fingerprint,
    ];
    for (i, a) in fingerprints.iter().enumerate() {
        for b in &fingerprints[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn malformed_records_are_refused_with_a_reason() {
    let bytes = sale().encode().unwrap();
    assert!(matches!(
        StockMovement::decode(&bytes[..5]),
        Err(DecodeError::TooShort(5))
    ));

    let mut wrong_magic = bytes.clone();
    wrong_magic[0] = 0x00;
    assert!(matches!(
        StockMovement::decode(&wrong_magic),
        Err(DecodeError::BadMagic)
    ));

    // A balance is not a movement: the fingerprint says so before any byte is parsed.
    let balance_bytes = Balance {
        store_id: StoreId(1),
        product_id: ProductId(1),
        sku: "X".into(),
        quantity: 1,
        average_unit_cost_paise: None,
        last_movement_id: Uuid::nil(),
        updated_at: at(0),
    }
    .encode()
    .unwrap();
    let error = StockMovement::decode(&balance_bytes).unwrap_err();
    assert!(matches!(error, DecodeError::UnknownSchema(_)));
    assert_eq!(error.code(), "unknown_schema");

    // Cut anywhere, a record is refused, never read with fields missing.
    for cut in 10..bytes.len() {
        let error = StockMovement::decode(&bytes[..cut]).unwrap_err();
        assert_eq!(error.code(), "invalid_avro", "cut at {cut}: {error}");
    }

    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        StockMovement::decode(&trailing),
        Err(DecodeError::TrailingBytes { trailing: 1 })
    ));
}

fn arbitrary_time() -> impl Strategy<Value = DateTime<Utc>> {
    // 2000-01-01 .. 2100-01-01, microsecond precision (what Avro and Postgres keep).
    (946_684_800_000_000i64..4_102_444_800_000_000i64)
        .prop_map(|micros| DateTime::from_timestamp_micros(micros).expect("in range"))
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn arbitrary_movement() -> impl Strategy<Value = StockMovement> {
    (
        (
            any::<u128>(),
            1i64..=i64::MAX,
            1i64..=i64::MAX,
            "[A-Z0-9-]{1,32}",
        ),
        (
            prop::sample::select(MovementKind::KNOWN),
            1i64..=1_000_000_000,
            arbitrary_time(),
            arbitrary_time(),
        ),
        (
            prop::option::of(1i64..=i64::MAX),
            prop::option::of(0i64..=10_000_000_000),
            prop::option::of(0i64..=10_000_000_000),
            prop::option::of(prop::sample::select(vec![
                "damaged", "expired", "lost", "theft", "other",
            ])),
        ),
        (
            prop::option::of(arbitrary_text()),
            arbitrary_text(),
            prop::option::of(arbitrary_text()),
            any::<bool>(),
        ),
        (
            prop::option::of(any::<bool>()),
            prop::option::of(arbitrary_text()),
            prop::option::of(any::<u128>()),
            prop::option::of(any::<u128>()),
            prop::option::of(any::<u128>()),
        ),
        (
            prop::option::of(any::<u128>()),
            prop::option::of(1i64..=i64::MAX),
            prop::option::of(1i64..=i64::MAX),
        ),
    )
        .prop_map(
            |(
                (id, store, product, sku),
                (kind, quantity, occurred_at, received_at),
                (supplier, cost, price, reason),
                (reference, actor, device_id, offline),
                (restock, note, original, voided, count),
                (transfer, to_store, from_store),
            )| StockMovement {
                movement_id: Uuid::from_u128(id),
                store_id: StoreId(store),
                product_id: ProductId(product),
                sku,
                kind,
                quantity,
                occurred_at,
                received_at,
                supplier_id: supplier.map(SupplierId),
                unit_cost_paise: cost,
                unit_price_paise: price,
                reason: reason.map(str::to_owned),
                reference,
                actor,
                device_id,
                offline,
                restock,
                note,
                original_movement_id: original.map(Uuid::from_u128),
                voids_movement_id: voided.map(Uuid::from_u128),
                count_id: count.map(Uuid::from_u128),
                transfer_id: transfer.map(Uuid::from_u128),
                to_store_id: to_store.map(StoreId),
                from_store_id: from_store.map(StoreId),
            },
        )
}

proptest! {
    #[test]
    fn any_valid_movement_round_trips(movement in arbitrary_movement()) {
        let bytes = movement.encode().unwrap();
        prop_assert_eq!(StockMovement::decode(&bytes).unwrap(), movement);
    }

    #[test]
    fn the_direct_movement_encoder_writes_the_bytes_of_apache_avros_generic_writer(movement in arbitrary_movement()) {
        let mut direct = Vec::new();
        movement.write_body(&mut direct).unwrap();
        let mut generic = Vec::new();
        schemas::codec::write_body_generically(&movement, &mut generic).unwrap();
        prop_assert_eq!(direct, generic);
    }

    #[test]
    fn the_direct_ledger_and_balance_encoders_write_the_bytes_of_the_generic_writer(
        movement in arbitrary_movement(),
        status in prop::sample::select(LedgerStatus::KNOWN),
        numbers in (prop::option::of(any::<i64>()), prop::option::of(any::<i64>()), any::<i32>(), any::<i64>()),
        texts in (prop::option::of(arbitrary_text()), prop::option::of(arbitrary_text())),
        recorded_at in arbitrary_time(),
    ) {
        let (available_quantity, balance_after, source_partition, source_offset) = numbers;
        let entry = LedgerEntry {
            movement: movement.clone(),
            status,
            reject_reason: texts.0,
            available_quantity,
            balance_after,
            stock_change: balance_after,
            original_status: texts.1,
            recorded_at,
            source_partition,
            source_offset,
        };
        let balance = Balance {
            store_id: movement.store_id,
            product_id: movement.product_id,
            sku: movement.sku.clone(),
            quantity: source_offset,
            average_unit_cost_paise: balance_after,
            last_movement_id: movement.movement_id,
            updated_at: recorded_at,
        };
        let (mut direct, mut generic) = (Vec::new(), Vec::new());
        entry.write_body(&mut direct).unwrap();
        schemas::codec::write_body_generically(&entry, &mut generic).unwrap();
        prop_assert_eq!(&direct, &generic);
        let (mut direct, mut generic) = (Vec::new(), Vec::new());
        balance.write_body(&mut direct).unwrap();
        schemas::codec::write_body_generically(&balance, &mut generic).unwrap();
        prop_assert_eq!(direct, generic);
    }

    #[test]
    fn arbitrary_bodies_are_refused_without_panicking(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&StockMovement::schema().fingerprint.0);
        framed.extend_from_slice(&body);
        // Either a record or an error; never a panic or a runaway allocation.
        let _ = StockMovement::decode(&framed);
    }
}
