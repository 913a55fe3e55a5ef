use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: String,
    pub created_at: DateTimeUtc,
    /// When the user's default key was made; None: never (see
    /// `keys::create_default`).
    pub default_key_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
    #[sea_orm(has_one = "super::billing_account::Entity")]
    BillingAccount,
    #[sea_orm(has_many = "super::api_key::Entity")]
    ApiKey,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

/// The user's own account (billing_accounts.user_id; teams have none).
impl Related<super::billing_account::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BillingAccount.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
