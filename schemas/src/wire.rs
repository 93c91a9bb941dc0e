//! The Confluent wire format: a `0` byte, the 4-byte big-endian id the schema registry gave
//! the writer schema, then the Avro binary body — what Kafka Connect, Flink's and Spark's
//! `avro-confluent` formats, ksqlDB and the Kafka clients' Avro deserializers read. Every
//! record the services write carries it; readers also accept Avro's single-object encoding
//! (`C3 01` + fingerprint), which records written before the move carry.
//!
//! [`SchemaIds`] holds what the registry said, asked once at start (never per record): the
//! id each record type is written with, and the writer schema of every id a reader knows.

use std::collections::HashMap;
use std::sync::Arc;

use crate::codec::{
    AvroRecord, CompiledSchema, DecodeError, EncodeError, Fingerprint, MAGIC, decode_body,
};

/// The first byte of a record in the Confluent wire format.
pub const CONFLUENT_MAGIC: u8 = 0;
const HEADER_LEN: usize = 5;

/// Schema ids from the registry.
#[derive(Debug, Clone, Default)]
pub struct SchemaIds {
    /// The id each schema this build writes is registered under, by fingerprint.
    writes: HashMap<Fingerprint, u32>,
    /// The writer schema of each known id.
    reads: HashMap<u32, Arc<CompiledSchema>>,
}

impl SchemaIds {
    pub fn new() -> Self {
        Self::default()
    }

    /// Learns the schema (Avro JSON, as the registry gives it) registered under `id`, for
    /// reading; gives its fingerprint.
    pub fn learn(&mut self, id: u32, json: &str) -> Result<Fingerprint, apache_avro::Error> {
        let compiled = CompiledSchema::parse(json)?;
        let fingerprint = compiled.fingerprint;
        self.reads.insert(id, Arc::new(compiled));
        Ok(fingerprint)
    }

    /// Writes records of the schema `json` with `id` (which it also reads).
    pub fn write_with(&mut self, id: u32, json: &str) -> Result<(), apache_avro::Error> {
        let fingerprint = self.learn(id, json)?;
        self.writes.insert(fingerprint, id);
        Ok(())
    }

    /// Whether records naming `id` can be read.
    pub fn knows(&self, id: u32) -> bool {
        self.reads.contains_key(&id)
    }

    /// The id records of `T` are written with.
    pub fn id_of<T: AvroRecord>(&self) -> Option<u32> {
        self.writes.get(&T::schema().fingerprint).copied()
    }
}

/// The schema id of a record in the Confluent wire format (`None` for any other bytes).
pub fn schema_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [CONFLUENT_MAGIC, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Writing and reading every [`AvroRecord`] in the Confluent wire format.
pub trait WireFormat: AvroRecord {
    /// Appends `self` in the Confluent wire format, with the id `ids` holds for this build's
    /// schema. On an error the buffer is as it was.
    fn encode_with(&self, ids: &SchemaIds, buffer: &mut Vec<u8>) -> Result<(), EncodeError> {
        let fingerprint = Self::schema().fingerprint;
        let id = ids
            .id_of::<Self>()
            .ok_or(EncodeError::Unregistered(fingerprint))?;
        let start = buffer.len();
        buffer.push(CONFLUENT_MAGIC);
        buffer.extend_from_slice(&id.to_be_bytes());
        if let Err(error) = self.write_body(buffer) {
            buffer.truncate(start);
            return Err(error);
        }
        Ok(())
    }

    /// Decodes a record in either encoding — the Confluent wire format with an id `ids`
    /// knows, or single-object encoding with a schema this build knows — resolved into this
    /// build's schema (Avro's schema-resolution rules).
    fn decode_with(ids: &SchemaIds, bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes.first() {
            Some(&CONFLUENT_MAGIC) => {
                let id = schema_id(bytes).ok_or(DecodeError::TooShort(bytes.len()))?;
                let writer = ids.reads.get(&id).ok_or(DecodeError::UnknownSchemaId(id))?;
                let body = &bytes[HEADER_LEN..];
                let own = Self::schema();
                if writer.fingerprint == own.fingerprint {
                    decode_body(&own.schema, body, None)
                } else {
                    decode_body(&writer.schema, body, Some(&own.schema))
                }
            }
            Some(&first) if first == MAGIC[0] => Self::decode(bytes),
            Some(_) => Err(DecodeError::BadMagic),
            None => Err(DecodeError::TooShort(0)),
        }
    }
}

impl<T: AvroRecord> WireFormat for T {}
