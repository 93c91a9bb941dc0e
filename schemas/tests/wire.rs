//! The Confluent wire format (`0`, a 4-byte big-endian schema id, the Avro body): what every
//! output topic carries, read back in both encodings, and schema evolution through it — a
//! record written by an older or a newer version of a schema, named by its registry id.

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use chrono::{DateTime, TimeZone, Utc};
use schemas::codec::CompiledSchema;
use schemas::events::{STOCK_MOVEMENT_HISTORY, STOCK_MOVEMENT_SCHEMA};
use schemas::wire::{CONFLUENT_MAGIC, schema_id};
use schemas::{
    AlertKind, AvroRecord, Balance, DecodeError, EncodeError, MovementKind, ProductId, SchemaIds,
    StockAlert, StockMovement, StoreId, WireFormat,
};
use uuid::Uuid;

const NEWER_MOVEMENT: &str = include_str!("fixtures/StockMovement.newer.avsc");

/// Ids as a registry would give them: the first movement schema 1, the current one 2.
fn ids() -> SchemaIds {
    let mut ids = SchemaIds::new();
    ids.learn(1, STOCK_MOVEMENT_HISTORY[0]).unwrap();
    ids.write_with(2, STOCK_MOVEMENT_SCHEMA).unwrap();
    ids.write_with(3, schemas::events::BALANCE_SCHEMA).unwrap();
    ids.write_with(4, schemas::events::STOCK_ALERT_SCHEMA)
        .unwrap();
    ids
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 250_000_000).single().unwrap()
}

fn sale() -> StockMovement {
    StockMovement {
        unit_price_paise: Some(4_000),
        device_id: Some("till-2".into()),
        ..StockMovement::new(
            Uuid::new_v4(),
            StoreId(12),
            ProductId(7),
            "DAL-1KG",
            MovementKind::Sale,
            3,
            at(1_790_000_000),
            "pos-12",
        )
    }
}

/// `value` written with `schema_json` under `id`, as another producer would.
fn framed(id: u32, schema_json: &str, value: Value) -> Vec<u8> {
    let compiled = CompiledSchema::parse(schema_json).unwrap();
    let mut bytes = vec![CONFLUENT_MAGIC];
    bytes.extend_from_slice(&id.to_be_bytes());
    GenericDatumWriter::builder(&compiled.schema)
        .build()
        .unwrap()
        .write_value(&mut bytes, value)
        .unwrap();
    bytes
}

#[test]
fn records_carry_the_magic_byte_and_their_schema_id_then_the_avro_body() {
    let ids = ids();
    let movement = sale();
    let mut bytes = Vec::new();
    movement.encode_with(&ids, &mut bytes).unwrap();
    assert_eq!(bytes[..5], [0, 0, 0, 0, 2]);
    assert_eq!(schema_id(&bytes), Some(2));
    // The body is the one single-object encoding carries after its 10-byte header.
    assert_eq!(bytes[5..], movement.encode().unwrap()[10..]);
    assert_eq!(StockMovement::decode_with(&ids, &bytes).unwrap(), movement);

    let balance = Balance {
        store_id: StoreId(12),
        product_id: ProductId(7),
        sku: "DAL-1KG".into(),
        quantity: 40,
        average_unit_cost_paise: Some(3_100),
        last_movement_id: movement.movement_id,
        updated_at: at(1_790_000_001),
    };
    let mut bytes = vec![9];
    balance.encode_with(&ids, &mut bytes).unwrap();
    assert_eq!(
        bytes[..6],
        [9, 0, 0, 0, 0, 3],
        "appended after what the buffer held"
    );
    assert_eq!(Balance::decode_with(&ids, &bytes[1..]).unwrap(), balance);
}

#[test]
fn readers_accept_single_object_records_during_the_move() {
    let movement = sale();
    let single_object = movement.encode().unwrap();
    assert_eq!(
        StockMovement::decode_with(&ids(), &single_object).unwrap(),
        movement
    );
    // Even with no id at all: the fingerprint names a schema this build embeds.
    assert_eq!(
        StockMovement::decode_with(&SchemaIds::new(), &single_object).unwrap(),
        movement
    );
}

#[test]
fn an_unknown_id_or_an_unregistered_writer_is_an_error_never_a_guess() {
    let ids = ids();
    let mut bytes = Vec::new();
    sale().encode_with(&ids, &mut bytes).unwrap();
    bytes[1..5].copy_from_slice(&77_u32.to_be_bytes());
    let error = StockMovement::decode_with(&ids, &bytes).unwrap_err();
    assert!(matches!(error, DecodeError::UnknownSchemaId(77)), "{error}");
    assert_eq!(error.code(), "unknown_schema");

    // An id of another record type: its body does not parse as a movement's, or is refused.
    let alert = StockAlert {
        store_id: StoreId(12),
        product_id: ProductId(7),
        sku: "DAL-1KG".into(),
        kind: AlertKind::LowStock,
        quantity: 1,
        reorder_point: Some(5),
        movement_id: Uuid::new_v4(),
        raised_at: at(1_790_000_002),
    };
    let mut alert_bytes = Vec::new();
    alert.encode_with(&ids, &mut alert_bytes).unwrap();
    assert!(StockMovement::decode_with(&ids, &alert_bytes).is_err());

    // A writer without an id leaves the buffer as it was.
    let mut buffer = vec![1, 2, 3];
    let error = sale()
        .encode_with(&SchemaIds::new(), &mut buffer)
        .unwrap_err();
    assert!(matches!(error, EncodeError::Unregistered(_)), "{error}");
    assert_eq!(buffer, [1, 2, 3]);

    for bad in [&[][..], &[0, 0, 0][..], &[0x42, 1, 2, 3, 4, 5][..]] {
        let error = StockMovement::decode_with(&ids, bad).unwrap_err();
        assert_eq!(error.code(), "unknown_encoding", "{bad:?}: {error}");
    }
    // Cut anywhere after the header, a record is refused, never read with fields missing.
    let mut record = Vec::new();
    sale().encode_with(&ids, &mut record).unwrap();
    for cut in 5..record.len() {
        assert!(
            StockMovement::decode_with(&ids, &record[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_record_of_an_older_schema_named_by_its_id_reads_with_the_new_fields_at_their_defaults() {
    let original = sale();
    let older = match original.to_avro() {
        Value::Record(fields) => Value::Record(
            fields
                .into_iter()
                .filter(|(name, _)| {
                    CompiledSchema::parse(STOCK_MOVEMENT_HISTORY[0])
                        .unwrap()
                        .schema
                        .canonical_form()
                        .contains(&format!("\"name\":\"{name}\""))
                })
                .collect(),
        ),
        other => other,
    };
    let read =
        StockMovement::decode_with(&ids(), &framed(1, STOCK_MOVEMENT_HISTORY[0], older)).unwrap();
    assert_eq!(
        read, original,
        "the fields added since are at their defaults in a sale"
    );
}

#[test]
fn a_record_of_a_newer_schema_named_by_its_id_reads_without_its_new_fields() {
    let mut ids = ids();
    ids.learn(9, NEWER_MOVEMENT).unwrap();
    let original = sale();
    let mut newer = original.to_avro();
    if let Value::Record(fields) = &mut newer {
        fields.push((
            "loyalty_id".into(),
            Value::Union(1, Box::new(Value::String("L-7".into()))),
        ));
    }
    let bytes = framed(9, NEWER_MOVEMENT, newer);
    assert_eq!(StockMovement::decode_with(&ids, &bytes).unwrap(), original);
    // Before the registry gave id 9, the same record is refused, not misread.
    assert!(matches!(
        StockMovement::decode_with(&self::ids(), &bytes),
        Err(DecodeError::UnknownSchemaId(9))
    ));
}
