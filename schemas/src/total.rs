//! Exact sums of money and quantities.
//!
//! One stored value fits 64 bits (a quantity or a price in paise), but a sum of legal ones
//! does not: ten stock-ins of 10⁹ units at 10⁹ paise are worth 10¹⁹ paise, past `i64`.
//! Every sum a report answers is a [`Total`]: 128 bits in Rust (room for more than 10¹⁹
//! such sums), `numeric` in PostgreSQL, an integer in JSON — exact, never saturated or
//! wrapped.

use bigdecimal::{BigDecimal, ToPrimitive};
use serde::Serialize;
use sqlx::Postgres;
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use utoipa::ToSchema;

/// An exact sum of money or quantities: an integer that may exceed 64 bits.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = i128)]
pub struct Total(pub i128);

impl Total {
    /// `quantity × unit` paise, exactly.
    pub fn product(quantity: i64, unit: i64) -> Self {
        Self(i128::from(quantity) * i128::from(unit))
    }
}

impl From<i64> for Total {
    fn from(value: i64) -> Self {
        Self(value.into())
    }
}

impl std::ops::AddAssign for Total {
    /// Cannot overflow: 2⁶⁴ sums of 64-bit products still fit 128 bits.
    fn add_assign(&mut self, other: Self) {
        self.0 = self.0.saturating_add(other.0);
    }
}

impl std::ops::Add for Total {
    type Output = Self;

    fn add(mut self, other: Self) -> Self {
        self += other;
        self
    }
}

impl std::iter::Sum for Total {
    fn sum<I: Iterator<Item = Self>>(totals: I) -> Self {
        totals.fold(Self::default(), std::ops::Add::add)
    }
}

impl sqlx::Type<Postgres> for Total {
    fn type_info() -> PgTypeInfo {
        <BigDecimal as sqlx::Type<Postgres>>::type_info()
    }

    /// A SQL `sum` of `numeric` or of `bigint` (which PostgreSQL answers as `numeric`), or a
    /// `bigint` as it is.
    fn compatible(ty: &PgTypeInfo) -> bool {
        <BigDecimal as sqlx::Type<Postgres>>::compatible(ty)
            || <i64 as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for Total {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        use sqlx::ValueRef;
        if <i64 as sqlx::Type<Postgres>>::compatible(&value.type_info()) {
            return Ok(Self::from(<i64 as sqlx::Decode<Postgres>>::decode(value)?));
        }
        let decimal = <BigDecimal as sqlx::Decode<Postgres>>::decode(value)?;
        match decimal.to_i128() {
            Some(whole) if decimal.is_integer() => Ok(Self(whole)),
            _ => Err(format!("{decimal} is not a sum of whole units within 128 bits").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_past_64_bits_stay_exact() {
        let stock_in = Total::product(1_000_000_000, 1_000_000_000);
        let ten: Total = std::iter::repeat_n(stock_in, 10).sum();
        assert_eq!(ten.0, 10_000_000_000_000_000_000);
        assert_eq!(serde_json::to_string(&ten).unwrap(), "10000000000000000000");
        assert_eq!(
            Total::product(i64::MAX, i64::MAX).0,
            i128::from(i64::MAX) * i128::from(i64::MAX)
        );
    }

    #[test]
    fn the_api_documents_an_integer_of_any_size() {
        let schema = serde_json::to_value(<Total as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(schema["type"], "integer", "{schema}");
        assert!(schema.get("format").is_none(), "not int64: {schema}");
    }
}
