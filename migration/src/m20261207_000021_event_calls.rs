//! `api_key_usage.calls`: how many calls one event row stands for.
//!
//! The calls of one batch that share a key, credits and endpoint were
//! written as rows that differed only in their id (a batch shares one
//! instant). They are now one row with their count, so a charged call no
//! longer costs a row, two index entries and a foreign key check of its
//! own. Every row written before stands for one call: the default.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A constant default: PostgreSQL adds the column without rewriting
        // the table, however many events it holds.
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeyUsage::Table)
                    .add_column(
                        ColumnDef::new(ApiKeyUsage::Calls)
                            .integer()
                            .not_null()
                            .default(1),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeyUsage::Table)
                    .drop_column(ApiKeyUsage::Calls)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ApiKeyUsage {
    Table,
    Calls,
}
