//! Any bytes read from a topic: decoding never panics, and what decodes under this build's
//! schema is exactly what this build would write (Avro's binary encoding is unique, and the
//! hand-written fast encoders must agree with it), so a record cannot be read one way and
//! re-published another. A record an earlier schema wrote (`avro/history`) is written anew
//! under the current one, and reads back the same. Both encodings: single-object (`C3 01`)
//! and the Confluent wire format (`0`, a schema id), with ids as a registry would give them.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use schemas::events::{
    BALANCE_SCHEMA, LEDGER_ENTRY_HISTORY, LEDGER_ENTRY_SCHEMA, STOCK_ALERT_HISTORY,
    STOCK_ALERT_SCHEMA, STOCK_MOVEMENT_HISTORY, STOCK_MOVEMENT_SCHEMA,
};
use schemas::{AvroRecord, Balance, LedgerEntry, SchemaIds, StockAlert, StockMovement, WireFormat};

/// Ids 1–4 the current schemas, 5–7 the earlier ones.
fn ids() -> &'static SchemaIds {
    static IDS: OnceLock<SchemaIds> = OnceLock::new();
    IDS.get_or_init(|| {
        let mut ids = SchemaIds::new();
        for (id, schema) in [
            STOCK_MOVEMENT_SCHEMA,
            LEDGER_ENTRY_SCHEMA,
            BALANCE_SCHEMA,
            STOCK_ALERT_SCHEMA,
        ]
        .into_iter()
        .enumerate()
        {
            ids.write_with(id as u32 + 1, schema).unwrap();
        }
        for (id, schema) in [
            STOCK_MOVEMENT_HISTORY,
            LEDGER_ENTRY_HISTORY,
            STOCK_ALERT_HISTORY,
        ]
        .concat()
        .into_iter()
        .enumerate()
        {
            ids.learn(id as u32 + 5, schema).unwrap();
        }
        ids
    })
}

fn round_trip<T: AvroRecord + std::fmt::Debug + PartialEq>(bytes: &[u8]) {
    if let Ok(record) = T::decode(bytes) {
        let encoded = record.encode().expect("a decoded record encodes");
        if bytes.get(2..10) == Some(&T::schema().fingerprint.0[..]) {
            assert_eq!(encoded, bytes, "{record:?} re-encodes differently");
        } else {
            let again = T::decode(&encoded).expect("a record this build wrote decodes");
            assert_eq!(
                again, record,
                "an earlier schema's record reads back differently"
            );
        }
    }
    let ids = ids();
    if let Ok(record) = T::decode_with(ids, bytes) {
        let mut encoded = Vec::new();
        record
            .encode_with(ids, &mut encoded)
            .expect("a decoded record encodes");
        if schemas::wire::schema_id(bytes) == ids.id_of::<T>() {
            assert_eq!(encoded, bytes, "{record:?} re-encodes differently");
        } else {
            let again = T::decode_with(ids, &encoded).expect("a record this build wrote decodes");
            assert_eq!(
                again, record,
                "a record of another id reads back differently"
            );
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    // Every record type reads every input: a record of one type is garbage to the others.
    round_trip::<StockMovement>(bytes);
    round_trip::<LedgerEntry>(bytes);
    round_trip::<Balance>(bytes);
    round_trip::<StockAlert>(bytes);
});
