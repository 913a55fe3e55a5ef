use async_graphql::Enum;
use sea_orm::entity::prelude::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};

use super::text::is_printable;
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

/// A key's display name: 1 to 64 printable characters after trimming (see
/// `text::is_printable`): the dashboard shows it, and a bidi override or an
/// invisible character would make it read as something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(raw: &str) -> Result<Self> {
        let name = raw.trim();
        if !(1..=64).contains(&name.chars().count()) {
            return Err(Error::bad_input("name: 1 to 64 characters after trimming"));
        }
        if !is_printable(name) {
            return Err(Error::bad_input(
                "name: must not contain control, format or bidi characters",
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

    #[test]
    fn names_must_be_printable() {
        for bad in [
            "a\u{0}",
            "\u{7f}x",
            "gnp.exe\u{202e}",
            "ad\u{200b}min",
            "\u{feff}key",
            "x\u{2067}y",
        ] {
            assert_eq!(
                KeyName::parse(bad).unwrap_err().code(),
                "BAD_USER_INPUT",
                "{bad:?}"
            );
        }
        assert!(KeyName::parse("clé de production 🔑").is_ok());
    }
}
