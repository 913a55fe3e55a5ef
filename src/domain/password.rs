use crate::error::{Error, Result};

/// A password within the contract's bounds: 8 to 128 characters, taken as
/// typed (never trimmed). Its `Debug` never shows it.
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self> {
        let chars = raw.chars().count();
        if !(8..=128).contains(&chars) {
            return Err(Error::bad_input("password: 8 to 128 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_counted_in_characters() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"é".repeat(128)).is_ok());
        assert!(Password::parse(&"é".repeat(129)).is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        assert_eq!(
            format!("{:?}", Password::parse("hunter2hunter2").unwrap()),
            "Password(***)"
        );
    }
}
