//! Thresholds reached: the outbox the charging statements write and the
//! alerts worker fans out (`service::alerts`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub cycle_start: DateTimeUtc,
    #[sea_orm(primary_key, auto_increment = false)]
    pub threshold: i32,
    pub credits_used: i64,
    pub monthly_credits: i64,
    pub raised_at: DateTimeUtc,
    pub fanned_out_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
