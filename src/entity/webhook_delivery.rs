//! One event on its way to one endpoint, and the queue row the delivery
//! workers claim (see the migration for the lease).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub account_id: Uuid,
    /// The webhook-id header, the same on every attempt.
    pub event_id: String,
    pub event_type: String,
    /// The exact body sent.
    pub payload: String,
    /// 'pending', 'succeeded' or 'failed'.
    pub status: String,
    pub attempts: i32,
    pub last_response_status: Option<i32>,
    pub created_at: DateTimeUtc,
    pub next_attempt_at: Option<DateTimeUtc>,
    pub claimed_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
