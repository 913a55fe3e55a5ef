use async_graphql::Enum;
use sea_orm::entity::prelude::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};

use crate::error::{Error, Result};

// Stored as 'dev' / 'prod'; a CHECK constraint allows nothing else.
/// Cosmetic classification of a key; both kinds behave the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(4))")]
pub enum KeyType {
    #[sea_orm(string_value = "dev")]
    Dev,
    #[sea_orm(string_value = "prod")]
    Prod,
}

impl KeyType {
    /// The start of every secret of this kind.
    pub fn secret_prefix(self) -> &'static str {
        match self {
            Self::Dev => "sk_dev_",
            Self::Prod => "sk_prod_",
        }
    }
}

/// A key's display name: 1 to 64 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(raw: &str) -> Result<Self> {
        let name = raw.trim();
        if !(1..=64).contains(&name.chars().count()) {
            return Err(Error::bad_input("name: 1 to 64 characters after trimming"));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::bad_input(
                "name: must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(KeyName::parse("  ci  ").unwrap(), KeyName("ci".into()));
        assert!(KeyName::parse("   ").is_err());
        assert!(KeyName::parse(&"x".repeat(64)).is_ok());
        assert!(KeyName::parse(&"x".repeat(65)).is_err());
        assert!(KeyName::parse("a\nb").is_err());
    }
}
