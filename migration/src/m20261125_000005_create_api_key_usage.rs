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
                    .table(ApiKeyUsage::Table)
                    .col(
                        ColumnDef::new(ApiKeyUsage::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ApiKeyUsage::ApiKeyId).uuid().not_null())
                    .col(
                        ColumnDef::new(ApiKeyUsage::Credits)
                            .integer()
                            .not_null()
                            .check(Expr::col(ApiKeyUsage::Credits).gte(0)),
                    )
                    .col(ColumnDef::new(ApiKeyUsage::Endpoint).string_len(256).null())
                    .col(
                        ColumnDef::new(ApiKeyUsage::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeyUsage::Table, ApiKeyUsage::ApiKeyId)
                            .to(ApiKeys::Table, ApiKeys::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Per-key aggregation inside a time window (a billing cycle) is a range
        // scan on this index: equality on the key, range on the time.
        manager
            .create_index(
                Index::create()
                    .name("idx_api_key_usage_api_key_id_created_at")
                    .table(ApiKeyUsage::Table)
                    .col(ApiKeyUsage::ApiKeyId)
                    .col(ApiKeyUsage::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKeyUsage::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ApiKeyUsage {
    Table,
    Id,
    ApiKeyId,
    Credits,
    Endpoint,
    CreatedAt,
}
