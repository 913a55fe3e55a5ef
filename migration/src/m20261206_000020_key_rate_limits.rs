//! Per-key rate limits (contract v3):
//!
//! - `api_keys.rate_limit` and `rate_window_secs`: at most `rate_limit`
//!   calls answered VALID in each fixed window of `rate_window_secs`
//!   seconds; both NULL: no limit.
//! - `key_rate_windows`: one row per limited key that has been called, its
//!   current window's start and the calls it admitted. Only the current
//!   window matters (windows are fixed), so the table is the size of the
//!   limited keys, and a charge overwrites the row when a new window
//!   begins. Written only with the charge that takes the slot, in its
//!   statement or transaction.
//! - `verify_requests.rate_limit`, `rate_remaining` and `rate_reset`: the
//!   rate limit state a remembered answer gave, so a replay answers it again.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [ApiKeys::RateLimit, ApiKeys::RateWindowSecs] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .add_column(ColumnDef::new(column).integer().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(KeyRateWindows::Table)
                    .col(
                        ColumnDef::new(KeyRateWindows::ApiKeyId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(KeyRateWindows::WindowStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(KeyRateWindows::Used)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(KeyRateWindows::Table, KeyRateWindows::ApiKeyId)
                            .to(ApiKeys::Table, ApiKeys::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let columns = [
            ColumnDef::new(VerifyRequests::RateLimit)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(VerifyRequests::RateRemaining)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(VerifyRequests::RateReset)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(VerifyRequests::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            VerifyRequests::RateReset,
            VerifyRequests::RateRemaining,
            VerifyRequests::RateLimit,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(VerifyRequests::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(KeyRateWindows::Table).to_owned())
            .await?;
        for column in [ApiKeys::RateWindowSecs, ApiKeys::RateLimit] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    RateLimit,
    RateWindowSecs,
}

#[derive(DeriveIden)]
enum KeyRateWindows {
    Table,
    ApiKeyId,
    WindowStart,
    Used,
}

#[derive(DeriveIden)]
enum VerifyRequests {
    Table,
    RateLimit,
    RateRemaining,
    RateReset,
}
