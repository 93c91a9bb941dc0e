//! Request checks that collect every problem before answering, so a client learns all
//! the fields at fault at once. Shared by the catalog and the movement validator.

use service_kit::problem::{ApiError, FieldError};

/// The largest quantity ingest accepts anywhere (a movement's, an order line's, a reorder
/// setting), in the product's unit: a tonne in grams is 10⁶.
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// The largest unit cost or price ingest accepts anywhere: ₹1 crore. One line's value
/// (`MAX_QUANTITY × MAX_PAISE` = 10¹⁸) fits `i64`; sums of lines are exact
/// ([`schemas::Total`]).
pub const MAX_PAISE: i64 = 1_000_000_000;

/// Field checks collect every problem of a request before answering.
#[derive(Debug, Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        let length = value.trim().chars().count();
        if length == 0 || length > max {
            self.fail(field, "invalid_length", format!("1 to {max} characters"));
        }
        self
    }

    pub fn optional_text(&mut self, field: &str, value: Option<&str>, max: usize) -> &mut Self {
        if let Some(value) = value {
            self.text(field, value, max);
        }
        self
    }

    /// Upper-case letters, digits, '-' and the `extra` bytes; 1 to 64 of them.
    pub fn code(&mut self, field: &str, value: &str, extra: &[u8]) -> &mut Self {
        let valid = (1..=64).contains(&value.len())
            && value.bytes().all(|byte| {
                byte.is_ascii_uppercase()
                    || byte.is_ascii_digit()
                    || byte == b'-'
                    || extra.contains(&byte)
            });
        if !valid {
            let extra: String = extra
                .iter()
                .map(|&byte| format!(", '{}'", byte as char))
                .collect();
            self.fail(
                field,
                "invalid_format",
                format!("1 to 64 characters: upper-case letters, digits, '-'{extra}"),
            );
        }
        self
    }

    pub fn fail(&mut self, field: &str, code: &str, detail: impl Into<String>) -> &mut Self {
        self.0.push(FieldError::new(field, code, detail));
        self
    }

    /// `value`, when given, must lie in `range` (`unit` words the message).
    pub fn range(
        &mut self,
        field: &str,
        value: Option<i64>,
        range: std::ops::RangeInclusive<i64>,
        unit: &str,
    ) -> &mut Self {
        if value.is_some_and(|value| !range.contains(&value)) {
            let (low, high) = range.into_inner();
            self.fail(field, "out_of_range", format!("{low} to {high}{unit}"));
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `400` with every malformed field, if any.
    pub fn done(&mut self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(std::mem::take(&mut self.0)))
        }
    }

    /// `422` with every unusable reference, if any.
    pub fn done_unprocessable(&mut self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Unprocessable(std::mem::take(&mut self.0)))
        }
    }

    #[cfg(test)]
    pub fn fields(&self) -> Vec<&str> {
        self.0
            .iter()
            .map(|problem| problem.field.as_str())
            .collect()
    }
}
