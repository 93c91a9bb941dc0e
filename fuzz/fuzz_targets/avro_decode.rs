//! Any bytes read from a topic: decoding never panics, and what decodes is exactly what
//! this build would write (Avro's binary encoding is unique, and the hand-written fast
//! encoders must agree with it), so a record cannot be read one way and re-published
//! another.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::{AvroRecord, Balance, LedgerEntry, StockAlert, StockMovement};

fn round_trip<T: AvroRecord + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(record) = T::decode(bytes) {
        let encoded = record.encode().expect("a decoded record encodes");
        assert_eq!(encoded, bytes, "{record:?} re-encodes differently");
    }
}

fuzz_target!(|bytes: &[u8]| {
    // Every record type reads every input: a record of one type is garbage to the others.
    round_trip::<StockMovement>(bytes);
    round_trip::<LedgerEntry>(bytes);
    round_trip::<Balance>(bytes);
    round_trip::<StockAlert>(bytes);
});
