use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::Utc;

use crate::domain::instant;

/// An instant in UTC, rendered as RFC 3339 with a `Z`, e.g. `2026-02-16T01:50:02Z`
/// (fractional seconds appear only when there are any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<Utc>);

// Accepted from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z, never a leap
// second (`domain::instant`), else BAD_USER_INPUT where it is parsed.
/// An instant in UTC, RFC 3339, e.g. 2026-02-16T01:50:02Z.
#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => instant::parse(s).map(Self).map_err(InputValueError::custom),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(instant::render(self.0))
    }
}

impl From<chrono::DateTime<Utc>> for DateTime {
    fn from(t: chrono::DateTime<Utc>) -> Self {
        Self(t)
    }
}

/// GraphQL's Int is 32 bits; counts are kept in 64.
pub fn saturating_i32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}
