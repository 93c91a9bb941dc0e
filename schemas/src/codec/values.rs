//! Building and reading apache-avro `Value`s: what the records' `to_avro` and `from_avro`
//! are written with.

use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DecodeError;

pub(crate) fn timestamp(at: DateTime<Utc>) -> Value {
    Value::TimestampMicros(at.timestamp_micros())
}

pub(crate) fn optional_long(value: Option<i64>) -> Value {
    match value {
        Some(long) => Value::Union(1, Box::new(Value::Long(long))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

pub(crate) fn optional_boolean(value: Option<bool>) -> Value {
    match value {
        Some(boolean) => Value::Union(1, Box::new(Value::Boolean(boolean))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

pub(crate) fn optional_string(value: Option<&str>) -> Value {
    match value {
        Some(string) => Value::Union(1, Box::new(Value::String(string.to_owned()))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

pub(crate) fn optional_uuid(value: Option<Uuid>) -> Value {
    match value {
        Some(uuid) => Value::Union(1, Box::new(Value::Uuid(uuid))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

pub(crate) fn symbol(index: u32, symbol: &str) -> Value {
    Value::Enum(index, symbol.to_owned())
}

/// Takes the fields of a decoded record by name.
pub(crate) struct RecordFields(Vec<(String, Value)>);

impl RecordFields {
    pub(crate) fn new(value: Value) -> Result<Self, DecodeError> {
        match value {
            Value::Record(fields) => Ok(Self(fields)),
            other => Err(DecodeError::field(
                "<record>",
                format!("expected a record, found {other:?}"),
            )),
        }
    }

    fn take(&mut self, name: &'static str) -> Result<Value, DecodeError> {
        let position = self
            .0
            .iter()
            .position(|(field, _)| field == name)
            .ok_or_else(|| DecodeError::field(name, "missing"))?;
        Ok(self.0.swap_remove(position).1)
    }

    fn unwrap_union(value: Value) -> Value {
        match value {
            Value::Union(_, inner) => *inner,
            other => other,
        }
    }

    pub(crate) fn long(&mut self, name: &'static str) -> Result<i64, DecodeError> {
        match Self::unwrap_union(self.take(name)?) {
            Value::Long(long) => Ok(long),
            Value::Int(int) => Ok(i64::from(int)),
            other => Err(DecodeError::field(
                name,
                format!("expected a long, found {other:?}"),
            )),
        }
    }

    pub(crate) fn int(&mut self, name: &'static str) -> Result<i32, DecodeError> {
        match Self::unwrap_union(self.take(name)?) {
            Value::Int(int) => Ok(int),
            other => Err(DecodeError::field(
                name,
                format!("expected an int, found {other:?}"),
            )),
        }
    }

    pub(crate) fn optional_long(&mut self, name: &'static str) -> Result<Option<i64>, DecodeError> {
        match Self::unwrap_union(self.take(name)?) {
            Value::Null => Ok(None),
            Value::Long(long) => Ok(Some(long)),
            Value::Int(int) => Ok(Some(i64::from(int))),
            other => Err(DecodeError::field(
                name,
                format!("expected a long or null, found {other:?}"),
            )),
        }
    }

    pub(crate) fn boolean(&mut self, name: &'static str) -> Result<bool, DecodeError> {
        match Self::unwrap_union(self.take(name)?) {
            Value::Boolean(boolean) => Ok(boolean),
            other => Err(DecodeError::field(
                name,
                format!("expected a boolean, found {other:?}"),
            )),
        }
    }

    pub(crate) fn optional_boolean(
        &mut self,
        name: &'static str,
    ) -> Result<Option<bool>, DecodeError> {
        match Self::unwrap_union(self.take(name)?) {
            Value::Null => Ok(None),
            Value::Boolean(boolean) => Ok(Some(boolean)),
            other => Err(DecodeError::field(
                name,
                format!("expected a boolean or null, found {other:?}"),
            )),
        }
    }

    pub(crate) fn string(&mut self, name: &'static str) -> Result<String, DecodeError> {
        match Self::unwrap_union(self.take(name)?) {
            Value::String(string) => Ok(string),
            other => Err(DecodeError::field(
                name,
                format!("expected a string, found {other:?}"),
            )),
        }
    }

    pub(crate) fn optional_string(
        &mut self,
        name: &'static str,
    ) -> Result<Option<String>, DecodeError> {
        match Self::unwrap_union(self.take(name)?) {
            Value::Null => Ok(None),
            Value::String(string) => Ok(Some(string)),
            other => Err(DecodeError::field(
                name,
                format!("expected a string or null, found {other:?}"),
            )),
        }
    }

    pub(crate) fn uuid(&mut self, name: &'static str) -> Result<Uuid, DecodeError> {
        match Self::unwrap_union(self.take(name)?) {
            Value::Uuid(uuid) => Ok(uuid),
            Value::String(string) => Uuid::parse_str(&string)
                .map_err(|error| DecodeError::field(name, format!("not a UUID: {error}"))),
            other => Err(DecodeError::field(
                name,
                format!("expected a UUID, found {other:?}"),
            )),
        }
    }

    pub(crate) fn optional_uuid(
        &mut self,
        name: &'static str,
    ) -> Result<Option<Uuid>, DecodeError> {
        match Self::unwrap_union(self.take(name)?) {
            Value::Null => Ok(None),
            Value::Uuid(uuid) => Ok(Some(uuid)),
            Value::String(string) => Uuid::parse_str(&string)
                .map(Some)
                .map_err(|error| DecodeError::field(name, format!("not a UUID: {error}"))),
            other => Err(DecodeError::field(
                name,
                format!("expected a UUID or null, found {other:?}"),
            )),
        }
    }

    pub(crate) fn timestamp(&mut self, name: &'static str) -> Result<DateTime<Utc>, DecodeError> {
        let micros = match Self::unwrap_union(self.take(name)?) {
            Value::TimestampMicros(micros) | Value::Long(micros) => micros,
            Value::TimestampMillis(millis) => millis
                .checked_mul(1_000)
                .ok_or_else(|| DecodeError::field(name, "timestamp out of range"))?,
            other => {
                return Err(DecodeError::field(
                    name,
                    format!("expected a timestamp, found {other:?}"),
                ));
            }
        };
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| DecodeError::field(name, "timestamp out of range"))
    }

    pub(crate) fn symbol(&mut self, name: &'static str) -> Result<String, DecodeError> {
        match Self::unwrap_union(self.take(name)?) {
            Value::Enum(_, symbol) => Ok(symbol),
            other => Err(DecodeError::field(
                name,
                format!("expected an enum symbol, found {other:?}"),
            )),
        }
    }
}
