//! One row per account: the contract's `Account` and its `BillingAccount`
//! share it and its id (see migration 16).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The user whose own account this is (made at their signup or first
    /// sign-in); None for a team made by createAccount.
    #[sea_orm(unique)]
    pub user_id: Option<Uuid>,
    /// 1 to 64 characters; an own account is named after its user's email.
    pub name: String,
    pub plan: String,
    pub monthly_credits: i64,
    /// The anchor every cycle is counted from (see `domain::cycle`).
    pub billing_cycle_start: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
    #[sea_orm(has_many = "super::account_member::Entity")]
    AccountMember,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
