//! The state verifyKey and keysUsage need besides the raw events:
//!
//! - `billing_cycle_usage`: credits charged per account and cycle. verifyKey
//!   charges with one conditional upsert on this row, so the quota is exact
//!   under any concurrency and any number of server processes: the row lock
//!   (PostgreSQL) or the single writer (SQLite) orders the charges, and each
//!   re-checks the limit against the latest total.
//! - `api_key_cycle_usage`: credits and requests per key and cycle, written in
//!   the same transaction as each event, so keysUsage reads one row per key
//!   instead of scanning a cycle's events.
//! - `verify_requests`: the first answer to each (key, requestId), so a
//!   retried request is answered the same and never billed twice. The primary
//!   key, not a read before the write, decides which of two racing retries
//!   is first.

use sea_orm_migration::prelude::*;

use crate::m20261125_000004_create_api_keys::ApiKeys;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BillingCycleUsage::Table)
                    .col(
                        ColumnDef::new(BillingCycleUsage::BillingAccountId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BillingCycleUsage::CycleStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BillingCycleUsage::CreditsUsed)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(BillingCycleUsage::CreditsUsed).gte(0)),
                    )
                    .primary_key(
                        Index::create()
                            .col(BillingCycleUsage::BillingAccountId)
                            .col(BillingCycleUsage::CycleStart),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                BillingCycleUsage::Table,
                                BillingCycleUsage::BillingAccountId,
                            )
                            .to(BillingAccounts::Table, BillingAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeyCycleUsage::Table)
                    .col(ColumnDef::new(ApiKeyCycleUsage::ApiKeyId).uuid().not_null())
                    .col(
                        ColumnDef::new(ApiKeyCycleUsage::CycleStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeyCycleUsage::Credits)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeyCycleUsage::Requests)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ApiKeyCycleUsage::ApiKeyId)
                            .col(ApiKeyCycleUsage::CycleStart),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeyCycleUsage::Table, ApiKeyCycleUsage::ApiKeyId)
                            .to(ApiKeys::Table, ApiKeys::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(VerifyRequests::Table)
                    .col(ColumnDef::new(VerifyRequests::ApiKeyId).uuid().not_null())
                    .col(
                        ColumnDef::new(VerifyRequests::RequestId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VerifyRequests::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VerifyRequests::Code)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VerifyRequests::RemainingCredits)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VerifyRequests::CycleEnd)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(VerifyRequests::ApiKeyId)
                            .col(VerifyRequests::RequestId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(VerifyRequests::Table, VerifyRequests::ApiKeyId)
                            .to(ApiKeys::Table, ApiKeys::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Serves the sweep that deletes answers older than 24 hours.
        manager
            .create_index(
                Index::create()
                    .name("idx_verify_requests_created_at")
                    .table(VerifyRequests::Table)
                    .col(VerifyRequests::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            VerifyRequests::Table.into_iden(),
            ApiKeyCycleUsage::Table.into_iden(),
            BillingCycleUsage::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum BillingAccounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum BillingCycleUsage {
    Table,
    BillingAccountId,
    CycleStart,
    CreditsUsed,
}

#[derive(DeriveIden)]
enum ApiKeyCycleUsage {
    Table,
    ApiKeyId,
    CycleStart,
    Credits,
    Requests,
}

#[derive(DeriveIden)]
enum VerifyRequests {
    Table,
    ApiKeyId,
    RequestId,
    CreatedAt,
    Code,
    RemainingCredits,
    CycleEnd,
}
