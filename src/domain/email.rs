use crate::error::{Error, Result};

/// An email address as keymeter stores and looks it up: trimmed, lower-cased,
/// at most 254 characters, one `@` with text on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 254;

    pub fn parse(raw: &str) -> Result<Self> {
        let email = raw.trim().to_lowercase();
        if email.chars().count() > Self::MAX_CHARS {
            return Err(Error::bad_input("email: at most 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(Error::bad_input("email: must contain an '@'"));
        };
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(Error::bad_input(
                "email: exactly one '@' with text on both sides",
            ));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::bad_input(
                "email: must not contain spaces or control characters",
            ));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_surrounding_space() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a@b@c",
            "a b@c.d",
            "a\u{0}@b.c",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn length_limit_counts_characters_after_trimming() {
        let at_limit = format!("{}@example.com", "a".repeat(254 - 12));
        assert!(Email::parse(&format!("  {at_limit}  ")).is_ok());
        assert!(Email::parse(&format!("a{at_limit}")).is_err());
    }
}
