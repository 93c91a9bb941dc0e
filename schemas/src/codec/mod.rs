//! Avro records: their binary body, and Avro's single-object encoding (`C3 01`, 8-byte
//! little-endian CRC-64-AVRO fingerprint of the writer schema's canonical form, then the
//! body). The topics carry the Confluent wire format instead ([`crate::wire`]: a schema id
//! from the registry, then the body); readers accept both.
//!
//! The fingerprint tells a reader which schema wrote a record, so a consumer can read data
//! written by an older or newer compatible schema: [`Decoder`] keeps the known writer
//! schemas by fingerprint and resolves each record against the reader's own schema.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use chrono::{DateTime, Utc};
use uuid::Uuid;

mod values;
pub(crate) use values::*;

/// Marker of Avro single-object encoding, version 1.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// A parsed schema with its fingerprint.
#[derive(Debug)]
pub struct CompiledSchema {
    pub schema: Schema,
    pub fingerprint: Fingerprint,
}

/// CRC-64-AVRO (Rabin) fingerprint of a schema's parsing canonical form, little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 8]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl CompiledSchema {
    pub fn parse(json: &str) -> Result<Self, apache_avro::Error> {
        let schema = Schema::parse_str(json)?;
        let digest = schema.fingerprint::<Rabin>();
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&digest.bytes[..8]);
        Ok(Self {
            schema,
            fingerprint: Fingerprint(fingerprint),
        })
    }

    /// Parses one of the schemas embedded in this crate; they are tested, so a failure
    /// here is a build defect, not a runtime condition.
    pub(crate) fn embedded(json: &'static str) -> Self {
        match Self::parse(json) {
            Ok(compiled) => compiled,
            Err(error) => panic!("embedded Avro schema does not parse: {error}"),
        }
    }

    /// [`Self::embedded`], for each of `jsons`.
    pub(crate) fn embedded_all(jsons: &[&'static str]) -> Vec<Self> {
        jsons.iter().map(|json| Self::embedded(json)).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("the value does not match its Avro schema: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
    #[error(
        "the schema this build writes (fingerprint {0}) has no id from the schema registry: \
         run `bazaar-topics ensure`"
    )]
    Unregistered(Fingerprint),
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {0} bytes is too short for its encoding's header")]
    TooShort(usize),
    #[error(
        "record starts with neither the Confluent wire format's 0 byte nor Avro \
         single-object encoding's C3 01"
    )]
    BadMagic,
    #[error("record was written with an unknown schema (fingerprint {0})")]
    UnknownSchema(Fingerprint),
    #[error("record names schema id {0}, which the schema registry did not give")]
    UnknownSchemaId(u32),
    #[error("record body is not valid Avro for its schema: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
    #[error("field `{field}`: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
    #[error("{trailing} bytes follow the record body")]
    TrailingBytes { trailing: usize },
    #[error("record body is truncated or not in Avro's binary encoding")]
    Malformed,
}

impl DecodeError {
    pub(crate) fn field(field: &'static str, problem: impl Into<String>) -> Self {
        Self::Field {
            field,
            problem: problem.into(),
        }
    }

    /// A short, stable name for the error, for metrics labels and DLQ headers.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort(_) | Self::BadMagic => "unknown_encoding",
            Self::UnknownSchema(_) | Self::UnknownSchemaId(_) => "unknown_schema",
            Self::Avro(_) | Self::TrailingBytes { .. } | Self::Malformed => "invalid_avro",
            Self::Field { .. } => "invalid_field",
        }
    }
}

/// A Rust type with an Avro schema from `avro/*.avsc`.
pub trait AvroRecord: Sized {
    /// The schema this build writes (and reads into).
    fn schema() -> &'static CompiledSchema;

    /// The earlier versions of that schema (`avro/history`), which this build still reads:
    /// records written before an upgrade stay on the topics for their retention.
    fn earlier_schemas() -> &'static [CompiledSchema] {
        &[]
    }
    fn to_avro(&self) -> Value;
    fn from_avro(value: Value) -> Result<Self, DecodeError>;

    /// Encodes with single-object encoding into a fresh buffer.
    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut buffer = Vec::with_capacity(160);
        self.encode_into(&mut buffer)?;
        Ok(buffer)
    }

    /// Appends the single-object encoding of `self` to `buffer`.
    fn encode_into(&self, buffer: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = buffer.len();
        buffer.extend_from_slice(&MAGIC);
        buffer.extend_from_slice(&Self::schema().fingerprint.0);
        if let Err(error) = self.write_body(buffer) {
            // Leave the buffer as it was: no half-written record.
            buffer.truncate(start);
            return Err(error);
        }
        Ok(())
    }

    /// Appends the Avro binary body (no header). The default goes through apache-avro's
    /// generic writer; records on a hot path write their fields directly, and a property
    /// test holds the two to the same bytes.
    fn write_body(&self, buffer: &mut Vec<u8>) -> Result<(), EncodeError> {
        write_body_generically(self, buffer)
    }

    /// Decodes a record written with this build's schema or an earlier version of it,
    /// resolved into this build's (Avro's schema-resolution rules: a field added since takes
    /// its default). Use a [`Decoder`] to also read records written by other schemas.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (fingerprint, body) = split_header(bytes)?;
        let compiled = Self::schema();
        if fingerprint == compiled.fingerprint {
            return decode_body(&compiled.schema, body, None);
        }
        let earlier = Self::earlier_schemas()
            .iter()
            .find(|earlier| earlier.fingerprint == fingerprint)
            .ok_or(DecodeError::UnknownSchema(fingerprint))?;
        decode_body(&earlier.schema, body, Some(&compiled.schema))
    }
}

/// The body of `record` as apache-avro's generic writer encodes it.
pub fn write_body_generically<T: AvroRecord>(
    record: &T,
    buffer: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let writer = GenericDatumWriter::builder(&T::schema().schema)
        .build()
        .map_err(Box::new)?;
    writer
        .write_value(buffer, record.to_avro())
        .map(drop)
        .map_err(|error| EncodeError::Avro(Box::new(error)))
}

/// Avro's binary encoding of the primitive and logical types the contracts use
/// (<https://avro.apache.org/docs/1.12.0/specification/#binary-encoding>).
pub(crate) struct BodyWriter<'a>(pub(crate) &'a mut Vec<u8>);

impl BodyWriter<'_> {
    /// `long` and `int`: zig-zag, then variable-length base-128.
    pub(crate) fn long(&mut self, value: i64) -> &mut Self {
        let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
        while zigzag >= 0x80 {
            self.0.push((zigzag as u8 & 0x7f) | 0x80);
            zigzag >>= 7;
        }
        self.0.push(zigzag as u8);
        self
    }

    /// `boolean`: one byte, 0 or 1.
    pub(crate) fn boolean(&mut self, value: bool) -> &mut Self {
        self.0.push(u8::from(value));
        self
    }

    pub(crate) fn string(&mut self, value: &str) -> &mut Self {
        self.long(value.len() as i64);
        self.0.extend_from_slice(value.as_bytes());
        self
    }

    /// `uuid` on `string`: the hyphenated lower-case form.
    pub(crate) fn uuid(&mut self, value: Uuid) -> &mut Self {
        let mut text = [0_u8; 36];
        self.string(value.hyphenated().encode_lower(&mut text))
    }

    pub(crate) fn timestamp(&mut self, value: DateTime<Utc>) -> &mut Self {
        self.long(value.timestamp_micros())
    }

    /// `["null", "long"]`.
    pub(crate) fn optional_long(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(long) => self.long(1).long(long),
            None => self.long(0),
        }
    }

    /// `["null", "boolean"]`.
    pub(crate) fn optional_boolean(&mut self, value: Option<bool>) -> &mut Self {
        match value {
            Some(value) => self.long(1).boolean(value),
            None => self.long(0),
        }
    }

    /// `["null", "string"]`.
    pub(crate) fn optional_string(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(string) => self.long(1).string(string),
            None => self.long(0),
        }
    }

    /// `["null", uuid on string]`.
    pub(crate) fn optional_uuid(&mut self, value: Option<Uuid>) -> &mut Self {
        match value {
            Some(uuid) => self.long(1).uuid(uuid),
            None => self.long(0),
        }
    }
}

/// Reads records of `T` written by any of the writer schemas it knows, resolving each one
/// against `T`'s schema with Avro's schema-resolution rules.
#[derive(Debug)]
pub struct Decoder<T> {
    writers: HashMap<Fingerprint, Schema>,
    record: PhantomData<fn() -> T>,
}

impl<T: AvroRecord> Default for Decoder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: AvroRecord> Decoder<T> {
    /// A decoder that knows this build's schema only.
    pub fn new() -> Self {
        Self {
            writers: HashMap::new(),
            record: PhantomData,
        }
    }

    /// Teaches the decoder another writer schema (an older or newer version of `T`'s).
    pub fn with_writer_schema(mut self, json: &str) -> Result<Self, apache_avro::Error> {
        let compiled = CompiledSchema::parse(json)?;
        self.writers.insert(compiled.fingerprint, compiled.schema);
        Ok(self)
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<T, DecodeError> {
        match T::decode(bytes) {
            Err(DecodeError::UnknownSchema(fingerprint)) => {
                let writer = self
                    .writers
                    .get(&fingerprint)
                    .ok_or(DecodeError::UnknownSchema(fingerprint))?;
                let (_, body) = split_header(bytes)?;
                decode_body(writer, body, Some(&T::schema().schema))
            }
            decoded => decoded,
        }
    }
}

fn split_header(bytes: &[u8]) -> Result<(Fingerprint, &[u8]), DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::TooShort(bytes.len()));
    }
    if bytes[..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let mut fingerprint = [0u8; 8];
    fingerprint.copy_from_slice(&bytes[2..HEADER_LEN]);
    Ok((Fingerprint(fingerprint), &bytes[HEADER_LEN..]))
}

pub(crate) fn decode_body<T: AvroRecord>(
    writer: &Schema,
    body: &[u8],
    reader: Option<&Schema>,
) -> Result<T, DecodeError> {
    let mut remaining = body;
    let value = GenericDatumReader::builder(writer)
        .build()
        .and_then(|datum_reader| datum_reader.read_value(&mut remaining))
        .map_err(Box::new)?;
    if !remaining.is_empty() {
        return Err(DecodeError::TrailingBytes {
            trailing: remaining.len(),
        });
    }
    // apache-avro's decoder reads a value cut short by the end of input as `null` instead
    // of failing, so a truncated record could pass for a valid one with fields missing.
    // Avro's binary encoding of a value is unique, so the body is accepted only if the
    // value it decoded to encodes back to exactly the same bytes.
    let mut reencoded = Vec::with_capacity(body.len());
    let canonical = GenericDatumWriter::builder(writer)
        .build()
        .and_then(|datum_writer| datum_writer.write_value_ref(&mut reencoded, &value))
        .is_ok_and(|_| reencoded == body);
    if !canonical {
        return Err(DecodeError::Malformed);
    }
    let value = match reader {
        Some(reader) => value.resolve(reader).map_err(Box::new)?,
        None => value,
    };
    T::from_avro(value)
}

/// `at` as a `timestamp-micros` carries it: sub-microseconds dropped and a leap second
/// (`23:59:60`, which RFC 3339 allows) read as the second after. What ingest accepts is
/// what the topic holds, so the processors see the same instant (and fingerprint).
pub fn on_the_wire(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}
