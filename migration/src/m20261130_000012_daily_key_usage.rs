//! Per-key usage by day (UTC), written by every charge beside its hourly
//! row: a series by day reads one row per key and day instead of summing
//! 24 hours each. Existing hourly rows are folded in, so day series cover
//! the past too.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeyDailyUsage::Table)
                    .col(ColumnDef::new(ApiKeyDailyUsage::ApiKeyId).uuid().not_null())
                    .col(
                        ColumnDef::new(ApiKeyDailyUsage::DayStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeyDailyUsage::Credits)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeyDailyUsage::Requests)
                            .big_integer()
                            .not_null(),
                    )
                    // A series reads one key's days in a range: this key.
                    .primary_key(
                        Index::create()
                            .col(ApiKeyDailyUsage::ApiKeyId)
                            .col(ApiKeyDailyUsage::DayStart),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeyDailyUsage::Table, ApiKeyDailyUsage::ApiKeyId)
                            .to(ApiKeys::Table, ApiKeys::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        fold_in_hourly_rows(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKeyDailyUsage::Table).to_owned())
            .await
    }
}

/// One row per key and day of the hours already rolled up.
async fn fold_in_hourly_rows(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let day = match manager.get_database_backend() {
        sea_orm::DbBackend::Postgres => "date_trunc('day', hour_start, 'UTC')",
        // sqlx stores SQLite times as RFC 3339 text in UTC: the day is its date.
        _ => "substr(hour_start, 1, 10) || 'T00:00:00+00:00'",
    };
    let sql = format!(
        "INSERT INTO api_key_daily_usage (api_key_id, day_start, credits, requests)
         SELECT api_key_id, {day}, SUM(credits), SUM(requests) FROM api_key_hourly_usage
          GROUP BY api_key_id, {day}"
    );
    manager.get_connection().execute_unprepared(&sql).await?;
    Ok(())
}

#[derive(DeriveIden)]
enum ApiKeyDailyUsage {
    Table,
    ApiKeyId,
    DayStart,
    Credits,
    Requests,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
}
