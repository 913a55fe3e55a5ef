use sea_orm_migration::prelude::*;

use crate::m20261125_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(ApiKeys::UserId).uuid().not_null())
                    .col(ColumnDef::new(ApiKeys::Name).string_len(64).not_null())
                    .col(
                        ColumnDef::new(ApiKeys::KeyType)
                            .string_len(4)
                            .not_null()
                            .default("dev")
                            .check(Expr::col(ApiKeys::KeyType).is_in(["dev", "prod"])),
                    )
                    .col(ColumnDef::new(ApiKeys::Prefix).string_len(16).not_null())
                    // SHA-256 of the secret; verifyKey looks keys up by it.
                    .col(
                        ColumnDef::new(ApiKeys::SecretHash)
                            .binary()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::LastUsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ApiKeys::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Serves `keys`: one user's keys, newest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_user_id_created_at")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::UserId)
                    .col(ApiKeys::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum ApiKeys {
    Table,
    Id,
    UserId,
    Name,
    KeyType,
    Prefix,
    SecretHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}
