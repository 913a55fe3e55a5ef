//! Hourly rollups past their retention (`KEYMETER_HOURLY_USAGE_RETENTION_DAYS`)
//! are swept by age: an index on the hour makes each batch a range scan,
//! and a sweep that finds nothing costs nothing.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_api_key_hourly_usage_hour_start";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(ApiKeyHourlyUsage::Table)
                    .col(ApiKeyHourlyUsage::HourStart)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(ApiKeyHourlyUsage::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ApiKeyHourlyUsage {
    Table,
    HourStart,
}
