use sea_orm::entity::prelude::*;

use crate::domain::KeyType;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The account the key belongs to and charges.
    pub account_id: Uuid,
    /// The member who made the key (for a rotated key: who rotated it).
    pub created_by: Uuid,
    pub name: String,
    pub key_type: KeyType,
    pub prefix: String,
    /// SHA-256 of the secret; the secret itself is never stored.
    #[sea_orm(unique)]
    pub secret_hash: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    /// From then on the key no longer verifies; None: never.
    pub expires_at: Option<DateTimeUtc>,
    /// The key this one replaced (rotateKey). Unique: a key is replaced once.
    #[sea_orm(unique)]
    pub rotated_from_id: Option<Uuid>,
    /// At most this many calls answered VALID per window; with
    /// `rate_window_secs`, both or neither (see `RateLimit::from_stored`).
    pub rate_limit: Option<i32>,
    pub rate_window_secs: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::CreatedBy",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn rate_limit(&self) -> Option<crate::domain::RateLimit> {
        crate::domain::RateLimit::from_stored(self.rate_limit, self.rate_window_secs)
    }
}
