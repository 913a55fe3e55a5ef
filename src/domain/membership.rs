//! Accounts shared by members (contract v3): roles, what each may do, and
//! the names accounts carry. Who is a member of what is the database's to
//! say (`service::teams`); this file says what a membership allows.

use async_graphql::Enum;
use sea_orm::entity::prelude::StringLen;
use sea_orm::{DeriveActiveEnum, EnumIter};
use uuid::Uuid;

use super::text::display_name;
use crate::error::{Error, Result};

/// A member's role in an account. An OWNER may do everything a MEMBER may,
/// and also manage members, invitations, the name, webhooks and alerts.
// Stored as 'owner' / 'member'; a CHECK constraint allows nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
pub enum MemberRole {
    #[sea_orm(string_value = "owner")]
    Owner,
    #[sea_orm(string_value = "member")]
    Member,
}

/// Proof that a user belongs to an account, read from the database in the
/// request that uses it: a removed member holds none from the next request
/// on, in every process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub account_id: Uuid,
    pub user_id: Uuid,
    pub role: MemberRole,
    /// Whether this is the user's own account (made at their signup).
    pub own: bool,
}

impl Membership {
    /// A user's membership of their own account, `account_id`: its OWNER,
    /// which they stay.
    pub fn own(account_id: Uuid, user_id: Uuid) -> Self {
        Self {
            account_id,
            user_id,
            role: MemberRole::Owner,
            own: true,
        }
    }

    /// Owner-only operations: a MEMBER gets FORBIDDEN (they may see the
    /// account, so nothing is hidden by saying so).
    pub fn require_owner(&self) -> Result<()> {
        match self.role {
            MemberRole::Owner => Ok(()),
            MemberRole::Member => Err(Error::Forbidden),
        }
    }
}

/// Most accounts one user may make with createAccount.
pub const MAX_TEAMS_PER_USER: u64 = 20;
/// Most members, and most pending invitations, one account may have.
pub const MAX_MEMBERS: u64 = 100;
pub const MAX_PENDING_INVITATIONS: u64 = 50;
/// How long an invitation can be accepted.
pub const INVITATION_LIFETIME: chrono::Duration = chrono::Duration::days(7);

/// An account's name: 1 to 64 printable characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountName(String);

impl AccountName {
    pub fn parse(raw: &str) -> Result<Self> {
        display_name(raw).map(Self)
    }

    /// A user's own account is named after their email (its first 64 characters).
    pub fn of_email(email: &str) -> Self {
        Self(email.chars().take(64).collect())
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
        assert_eq!(AccountName::parse("  Acme ").unwrap().into_inner(), "Acme");
        assert!(AccountName::parse("   ").is_err());
        assert!(AccountName::parse(&"a".repeat(65)).is_err());
        assert!(AccountName::parse("a\u{202E}b").is_err());
        assert_eq!(
            AccountName::of_email(&"e".repeat(80)).into_inner().len(),
            64
        );
    }

    #[test]
    fn only_owners_pass_the_owner_check() {
        let member = Membership {
            account_id: Uuid::nil(),
            user_id: Uuid::nil(),
            role: MemberRole::Member,
            own: false,
        };
        assert!(matches!(member.require_owner(), Err(Error::Forbidden)));
        let owner = Membership {
            role: MemberRole::Owner,
            ..member
        };
        assert!(owner.require_owner().is_ok());
    }
}
