use async_graphql::Enum;

use super::text::is_printable;
use crate::error::{Error, Result};

/// The answer verifyKey gives about a presented secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum VerifyCode {
    Valid,
    NotFound,
    Revoked,
    UsageExceeded,
    /// v2: the key's expiresAt has passed.
    Expired,
    /// v3: the key's rate limit admits no more calls in the current window; nothing recorded.
    RateLimited,
}

impl VerifyCode {
    /// The code as the contract spells it (GraphQL, the gateway's headers).
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::NotFound => "NOT_FOUND",
            Self::Revoked => "REVOKED",
            Self::UsageExceeded => "USAGE_EXCEEDED",
            Self::Expired => "EXPIRED",
            Self::RateLimited => "RATE_LIMITED",
        }
    }

    /// How the code is stored with a remembered answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::NotFound => "not_found",
            Self::Revoked => "revoked",
            Self::UsageExceeded => "usage_exceeded",
            Self::Expired => "expired",
            Self::RateLimited => "rate_limited",
        }
    }

    pub fn from_stored(stored: &str) -> Option<Self> {
        [
            Self::Valid,
            Self::NotFound,
            Self::Revoked,
            Self::UsageExceeded,
            Self::Expired,
            Self::RateLimited,
        ]
        .into_iter()
        .find(|code| code.as_str() == stored)
    }
}

/// One verifyKey call's input, validated: credits 0..=1,000,000, endpoint at
/// most 256 printable characters, requestId 1 to 128 printable characters
/// (see `text::is_printable`).
#[derive(Debug, Clone)]
pub struct Charge {
    pub credits: i32,
    pub endpoint: Option<String>,
    pub request_id: Option<String>,
}

impl Charge {
    pub const MAX_CREDITS: i32 = 1_000_000;
    /// The width of `api_key_usage.endpoint`.
    pub const MAX_ENDPOINT_CHARS: usize = 256;
    /// The width of `verify_requests.request_id`.
    pub const MAX_REQUEST_ID_CHARS: usize = 128;

    pub fn parse(
        credits: i32,
        endpoint: Option<String>,
        request_id: Option<String>,
    ) -> Result<Self> {
        if !(0..=Self::MAX_CREDITS).contains(&credits) {
            return Err(Error::bad_input("credits: 0 to 1000000"));
        }
        if let Some(endpoint) = &endpoint {
            if endpoint.chars().count() > Self::MAX_ENDPOINT_CHARS {
                return Err(Error::bad_input("endpoint: at most 256 characters"));
            }
            if !is_printable(endpoint) {
                return Err(Error::bad_input(
                    "endpoint: must not contain control, format or bidi characters",
                ));
            }
        }
        if let Some(request_id) = &request_id {
            Self::check_request_id(request_id)?;
        }
        Ok(Self {
            credits,
            endpoint,
            request_id,
        })
    }

    /// A requestId as verifyKey and refundUsage take it.
    pub fn check_request_id(request_id: &str) -> Result<()> {
        if !(1..=Self::MAX_REQUEST_ID_CHARS).contains(&request_id.chars().count()) {
            return Err(Error::bad_input("requestId: 1 to 128 characters"));
        }
        // It is stored and compared as given: an invisible character
        // would make two ids that look the same different, and a NUL
        // cannot be stored in PostgreSQL text at all.
        if !is_printable(request_id) {
            return Err(Error::bad_input(
                "requestId: must not contain control, format or bidi characters",
            ));
        }
        Ok(())
    }
}

/// What refundUsage did with a charged call (contract v3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum RefundCode {
    /// The call's credits and request were taken back.
    Refunded,
    /// An earlier refund already took it back; nothing changed.
    AlreadyRefunded,
    /// No charged call with this requestId for this key in the last 24
    /// hours (a free check, a refused call, an unknown key or requestId).
    NotFound,
    /// The charge belongs to a billing cycle that has ended; nothing changed.
    CycleEnded,
}

impl RefundCode {
    /// The code as the contract spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Refunded => "REFUNDED",
            Self::AlreadyRefunded => "ALREADY_REFUNDED",
            Self::NotFound => "NOT_FOUND",
            Self::CycleEnded => "CYCLE_ENDED",
        }
    }
}

/// refundUsage's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refund {
    pub code: RefundCode,
    /// Credits given back (0 unless REFUNDED).
    pub credits: i64,
    /// The account's remaining credits after it; None for an unknown key.
    pub remaining_credits: Option<i64>,
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
    fn request_ids_and_endpoints_must_be_printable() {
        for bad in [
            "a\u{0}b",
            "\u{1}",
            "line\nbreak",
            "tab\t",
            "del\u{7f}",
            "\u{9b}csi",
            "abc\u{202e}fed",
            "zero\u{200b}width",
            "\u{feff}bom",
            "join\u{200d}",
            "\u{2066}isolate\u{2069}",
            "mark\u{200f}",
            "sep\u{2028}",
            "tag\u{e0041}",
        ] {
            let request_id = Charge::parse(1, None, Some(bad.to_owned()));
            assert_eq!(
                request_id.unwrap_err().code(),
                "BAD_USER_INPUT",
                "requestId {bad:?}"
            );
            let endpoint = Charge::parse(1, Some(bad.to_owned()), None);
            assert_eq!(
                endpoint.unwrap_err().code(),
                "BAD_USER_INPUT",
                "endpoint {bad:?}"
            );
        }
        for good in [
            "req-42".to_owned(),
            "é".repeat(128),
            "日本".repeat(64),
            "a b/c?d=e&f".to_owned(),
        ] {
            assert!(
                Charge::parse(1, Some(good.clone()), Some(good.clone())).is_ok(),
                "{good:?}"
            );
        }
    }

    #[test]
    fn codes_round_trip_through_storage() {
        for code in [
            VerifyCode::Valid,
            VerifyCode::NotFound,
            VerifyCode::Revoked,
            VerifyCode::UsageExceeded,
            VerifyCode::Expired,
        ] {
            assert_eq!(VerifyCode::from_stored(code.as_str()), Some(code));
        }
    }
}
