use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, Utc};

/// An instant in UTC, rendered as RFC 3339 with a `Z`, e.g. `2026-02-16T01:50:02Z`
/// (fractional seconds appear only when there are any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<Utc>);

/// An instant in UTC, RFC 3339, e.g. 2026-02-16T01:50:02Z.
#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Self(t.with_timezone(&Utc)))
                .map_err(|_| InputValueError::custom("expected an RFC 3339 date-time")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
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
