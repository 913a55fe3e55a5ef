//! The audit log: one row per change to an account, written in the
//! change's own transaction (`service::audit`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// The order events were written in; the log pages by it.
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub occurred_at: DateTimeUtc,
    pub action: String,
    /// 'user', 'operator' or 'system'.
    pub actor_type: String,
    pub actor_user_id: Option<Uuid>,
    pub target_type: String,
    pub target_id: String,
    pub target_name: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
