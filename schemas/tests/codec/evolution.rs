//! Schema evolution: readers of every earlier and a newer schema read what this build
//! writes, and this build reads what they wrote, new fields at their defaults.

use super::*;

/// Writes `value` with `schema_json` as a foreign producer would.
fn write_with(schema_json: &str, value: Value) -> Vec<u8> {
    let compiled = CompiledSchema::parse(schema_json).unwrap();
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&compiled.fingerprint.0);
    GenericDatumWriter::builder(&compiled.schema)
        .build()
        .unwrap()
        .write_value(&mut bytes, value)
        .unwrap();
    bytes
}

/// The movement's fields added since its first schema (`avro/history/StockMovement.1`).
const ADDED_SINCE_THE_FIRST: &[&str] = &[
    "offline",
    "restock",
    "note",
    "original_movement_id",
    "voids_movement_id",
    "count_id",
    "transfer_id",
    "to_store_id",
    "from_store_id",
];

fn drop_fields(value: Value, names: &[&str]) -> Value {
    match value {
        Value::Record(fields) => Value::Record(
            fields
                .into_iter()
                .filter(|(name, _)| !names.contains(&name.as_str()))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn a_current_reader_reads_movements_written_by_an_older_schema() {
    let original = sale();
    let bytes = write_with(
        OLDER_MOVEMENT,
        drop_fields(
            original.to_avro(),
            &[&["reference", "device_id"], ADDED_SINCE_THE_FIRST].concat(),
        ),
    );

    // Without the older schema the record is refused rather than misread ...
    assert!(matches!(
        StockMovement::decode(&bytes),
        Err(DecodeError::UnknownSchema(_))
    ));

    // ... with it, missing fields take their defaults.
    let decoder = Decoder::<StockMovement>::new()
        .with_writer_schema(OLDER_MOVEMENT)
        .unwrap();
    let read = decoder.decode(&bytes).unwrap();
    assert_eq!(
        read,
        StockMovement {
            reference: None,
            device_id: None,
            ..original
        }
    );
}

#[test]
fn a_current_reader_reads_movements_written_by_a_newer_schema() {
    let original = sale();
    let mut newer = original.to_avro();
    if let Value::Record(fields) = &mut newer {
        fields.push((
            "loyalty_id".into(),
            Value::Union(1, Box::new(Value::String("L-99".into()))),
        ));
    }
    let decoder = Decoder::<StockMovement>::new()
        .with_writer_schema(NEWER_MOVEMENT)
        .unwrap();

    // Unknown fields are skipped.
    let read = decoder
        .decode(&write_with(NEWER_MOVEMENT, newer.clone()))
        .unwrap();
    assert_eq!(read, original);

    // A kind this build does not know reads as UNKNOWN (the enum's default), never as
    // some other kind.
    if let Value::Record(fields) = &mut newer {
        for (name, value) in fields.iter_mut() {
            if name == "kind" {
                *value = Value::Enum(11, "RECALL".into());
            }
        }
    }
    let read = decoder.decode(&write_with(NEWER_MOVEMENT, newer)).unwrap();
    assert_eq!(read.kind, MovementKind::Unknown);
    assert_eq!(read.delta(), 0);
}

/// Every earlier version of a schema (`avro/history`): what it wrote this build reads, the
/// fields added since at their defaults; and it is the version before, not this one.
#[test]
fn records_written_by_every_earlier_schema_are_read_with_the_new_fields_at_their_defaults() {
    let original = StockMovement {
        offline: true,
        ..sale()
    };
    for earlier in schemas::events::STOCK_MOVEMENT_HISTORY {
        let bytes = write_with(
            earlier,
            drop_fields(original.to_avro(), ADDED_SINCE_THE_FIRST),
        );
        assert_ne!(bytes[2..10], StockMovement::schema().fingerprint.0);
        let read = StockMovement::decode(&bytes).unwrap();
        assert_eq!(
            read,
            StockMovement {
                offline: false,
                ..original.clone()
            }
        );
    }
    let entry = LedgerEntry {
        movement: original.clone(),
        status: LedgerStatus::Applied,
        reject_reason: None,
        available_quantity: None,
        balance_after: Some(-3),
        stock_change: Some(-4),
        original_status: None,
        recorded_at: at(1_790_000_005),
        source_partition: 2,
        source_offset: 40,
    };
    for earlier in schemas::events::LEDGER_ENTRY_HISTORY {
        let bytes = write_with(
            earlier,
            drop_fields(
                entry.to_avro(),
                &[ADDED_SINCE_THE_FIRST, &["stock_change"]].concat(),
            ),
        );
        let read = LedgerEntry::decode(&bytes).unwrap();
        assert!(!read.movement.offline);
        assert_eq!(read.balance_after, Some(-3));
        assert_eq!(read.stock_change, None, "added since: its default");
    }
    // An alert of a kind the earlier schema knew reads as itself.
    let alert = StockAlert {
        store_id: StoreId(7),
        product_id: ProductId(1001),
        sku: "ATTA-5KG".into(),
        kind: AlertKind::OutOfStock,
        quantity: 0,
        reorder_point: Some(5),
        movement_id: Uuid::new_v4(),
        raised_at: at(1_790_000_005),
    };
    for earlier in schemas::events::STOCK_ALERT_HISTORY {
        let read = StockAlert::decode(&write_with(earlier, alert.to_avro())).unwrap();
        assert_eq!(read, alert);
    }
}

/// A reader of the earlier alert schema meets `PHANTOM_STOCK` as `UNKNOWN`, its default.
#[test]
fn an_earlier_alert_reader_reads_a_phantom_stock_alert_as_unknown() {
    let alert = StockAlert {
        store_id: StoreId(7),
        product_id: ProductId(1001),
        sku: "ATTA-5KG".into(),
        kind: AlertKind::PhantomStock,
        quantity: -3,
        reorder_point: None,
        movement_id: Uuid::new_v4(),
        raised_at: at(1_790_000_005),
    };
    let bytes = alert.encode().unwrap();
    let earlier = Schema::parse_str(schemas::events::STOCK_ALERT_HISTORY[0]).unwrap();
    let value = GenericDatumReader::builder(&StockAlert::schema().schema)
        .reader_schema(&earlier)
        .build()
        .unwrap()
        .read_value(&mut &bytes[10..])
        .unwrap();
    let Value::Record(fields) = value else {
        panic!("expected a record");
    };
    let kind = fields
        .iter()
        .find(|(name, _)| name == "kind")
        .map(|(_, v)| v);
    assert_eq!(kind, Some(&Value::Enum(0, "UNKNOWN".into())));
}

/// A reader of the earlier movement schema meets the kinds added since (`RETURN`,
/// `ADJUSTMENT`, `VOID`, `COUNT` and the transfers') as `UNKNOWN`, its default, and skips
/// the fields added since.
#[test]
fn an_earlier_movement_reader_reads_the_new_kinds_as_unknown() {
    let earlier = Schema::parse_str(schemas::events::STOCK_MOVEMENT_HISTORY[0]).unwrap();
    for kind in [
        MovementKind::Return,
        MovementKind::Adjustment,
        MovementKind::Void,
        MovementKind::Count,
        MovementKind::TransferOut,
        MovementKind::TransferIn,
        MovementKind::TransferReceive,
    ] {
        let movement = StockMovement {
            kind,
            voids_movement_id: (kind == MovementKind::Void).then(Uuid::new_v4),
            transfer_id: Some(Uuid::new_v4()),
            to_store_id: (kind == MovementKind::TransferOut).then_some(StoreId(9)),
            ..sale()
        };
        let bytes = movement.encode().unwrap();
        let value = GenericDatumReader::builder(&StockMovement::schema().schema)
            .reader_schema(&earlier)
            .build()
            .unwrap()
            .read_value(&mut &bytes[10..])
            .unwrap();
        let Value::Record(fields) = value else {
            panic!("expected a record");
        };
        let field = |wanted: &str| {
            fields
                .iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, v)| v)
        };
        assert_eq!(
            field("kind"),
            Some(&Value::Enum(0, "UNKNOWN".into())),
            "{kind}"
        );
        assert_eq!(field("voids_movement_id"), None);
        assert_eq!(field("transfer_id"), None);
    }
}

#[test]
fn older_and_newer_readers_read_what_this_build_writes() {
    let bytes = sale().encode().unwrap();
    let body = &bytes[10..];
    let current = &StockMovement::schema().schema;
    for reader_json in [OLDER_MOVEMENT, NEWER_MOVEMENT] {
        let reader = Schema::parse_str(reader_json).unwrap();
        let value = GenericDatumReader::builder(current)
            .reader_schema(&reader)
            .build()
            .unwrap()
            .read_value(&mut &body[..])
            .unwrap();
        let Value::Record(fields) = value else {
            panic!("expected a record");
        };
        let sku = fields
            .iter()
            .find(|(name, _)| name == "sku")
            .map(|(_, v)| v);
        assert_eq!(sku, Some(&Value::String("ATTA-5KG".into())));
        if reader_json == NEWER_MOVEMENT {
            let loyalty = fields
                .iter()
                .find(|(name, _)| name == "loyalty_id")
                .map(|(_, v)| v);
            assert_eq!(loyalty, Some(&Value::Union(0, Box::new(Value::Null))));
        }
    }
}
