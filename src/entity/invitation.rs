//! Invitations to join an account; the token is kept only as its hash.

use sea_orm::entity::prelude::*;

use crate::domain::MemberRole;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    /// Who may accept it (normalised like every stored email).
    pub email: String,
    pub role: MemberRole,
    /// SHA-256 of the token shown once in acceptUrl.
    #[sea_orm(unique)]
    pub token_hash: Vec<u8>,
    pub invited_by: Uuid,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub accepted_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
