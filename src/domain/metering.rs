use async_graphql::Enum;

use crate::error::{Error, Result};

/// The answer verifyKey gives about a presented secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum VerifyCode {
    Valid,
    NotFound,
    Revoked,
    UsageExceeded,
}

impl VerifyCode {
    /// How the code is stored with a remembered answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::NotFound => "not_found",
            Self::Revoked => "revoked",
            Self::UsageExceeded => "usage_exceeded",
        }
    }

    pub fn from_stored(stored: &str) -> Option<Self> {
        [
            Self::Valid,
            Self::NotFound,
            Self::Revoked,
            Self::UsageExceeded,
        ]
        .into_iter()
        .find(|code| code.as_str() == stored)
    }
}

/// One verifyKey call's input, validated: credits 0..=1,000,000, endpoint at
/// most 256 characters, requestId 1 to 128 characters.
#[derive(Debug, Clone)]
pub struct Charge {
    pub credits: i32,
    pub endpoint: Option<String>,
    pub request_id: Option<String>,
}

impl Charge {
    pub const MAX_CREDITS: i32 = 1_000_000;

    pub fn parse(
        credits: i32,
        endpoint: Option<String>,
        request_id: Option<String>,
    ) -> Result<Self> {
        if !(0..=Self::MAX_CREDITS).contains(&credits) {
            return Err(Error::bad_input("credits: 0 to 1000000"));
        }
        if let Some(endpoint) = &endpoint {
            if endpoint.chars().count() > 256 {
                return Err(Error::bad_input("endpoint: at most 256 characters"));
            }
            if endpoint.chars().any(char::is_control) {
                return Err(Error::bad_input(
                    "endpoint: must not contain control characters",
                ));
            }
        }
        if let Some(request_id) = &request_id {
            if !(1..=128).contains(&request_id.chars().count()) {
                return Err(Error::bad_input("requestId: 1 to 128 characters"));
            }
        }
        Ok(Self {
            credits,
            endpoint,
            request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charge_bounds() {
        assert!(Charge::parse(0, None, None).is_ok());
        assert!(Charge::parse(1_000_000, None, None).is_ok());
        assert!(Charge::parse(-1, None, None).is_err());
        assert!(Charge::parse(1_000_001, None, None).is_err());
        assert!(Charge::parse(1, Some("e".repeat(256)), Some("r".repeat(128))).is_ok());
        assert!(Charge::parse(1, Some("e".repeat(257)), None).is_err());
        assert!(Charge::parse(1, None, Some("r".repeat(129))).is_err());
        assert!(Charge::parse(1, None, Some(String::new())).is_err());
    }

    #[test]
    fn codes_round_trip_through_storage() {
        for code in [
            VerifyCode::Valid,
            VerifyCode::NotFound,
            VerifyCode::Revoked,
            VerifyCode::UsageExceeded,
        ] {
            assert_eq!(VerifyCode::from_stored(code.as_str()), Some(code));
        }
    }
}
