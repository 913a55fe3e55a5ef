//! Per-key usage by hour, written by every charge in the same statement or
//! transaction as its event: what usageSeries reads, so that its cost
//! grows with keys × hours, never with events. Existing events are folded
//! in, so series cover the past too.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeyHourlyUsage::Table)
                    .col(
                        ColumnDef::new(ApiKeyHourlyUsage::ApiKeyId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeyHourlyUsage::HourStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeyHourlyUsage::Credits)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeyHourlyUsage::Requests)
                            .big_integer()
                            .not_null(),
                    )
                    // A series reads one key's hours in a range: this key.
                    .primary_key(
                        Index::create()
                            .col(ApiKeyHourlyUsage::ApiKeyId)
                            .col(ApiKeyHourlyUsage::HourStart),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeyHourlyUsage::Table, ApiKeyHourlyUsage::ApiKeyId)
                            .to(ApiKeys::Table, ApiKeys::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        fold_in_existing_events(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKeyHourlyUsage::Table).to_owned())
            .await
    }
}

/// One row per key and hour of the events already recorded.
async fn fold_in_existing_events(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let hour = match manager.get_database_backend() {
        sea_orm::DbBackend::Postgres => "date_trunc('hour', created_at)",
        // sqlx stores SQLite times as RFC 3339 text: keep that shape.
        _ => "strftime('%Y-%m-%dT%H:00:00+00:00', created_at)",
    };
    let sql = format!(
        "INSERT INTO api_key_hourly_usage (api_key_id, hour_start, credits, requests)
         SELECT api_key_id, {hour}, SUM(credits), COUNT(*) FROM api_key_usage
          GROUP BY api_key_id, {hour}"
    );
    manager.get_connection().execute_unprepared(&sql).await?;
    Ok(())
}

#[derive(DeriveIden)]
enum ApiKeyHourlyUsage {
    Table,
    ApiKeyId,
    HourStart,
    Credits,
    Requests,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
}
