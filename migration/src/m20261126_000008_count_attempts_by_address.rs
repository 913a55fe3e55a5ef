//! Failed logins are limited per client address too (per email and address,
//! per address, per email), so an attempt remembers the address it came
//! from. Rows from before this migration keep a NULL address: the per-email
//! limit still counts the logins among them, the address limits cannot.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const ADDRESS_INDEX: &str = "idx_auth_attempts_kind_address_created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // 45 characters hold the longest textual IPv6 address
        // (`ffff:…:ffff:255.255.255.255`). Nullable: SQLite can only add a
        // column that has a default or allows NULL.
        manager
            .alter_table(
                Table::alter()
                    .table(AuthAttempts::Table)
                    .add_column(ColumnDef::new(AuthAttempts::Address).string_len(45).null())
                    .to_owned(),
            )
            .await?;
        // A signup's subject was already its client address; copying it keeps
        // the signups of the last hour counted by the per-address limits.
        manager
            .exec_stmt(
                Query::update()
                    .table(AuthAttempts::Table)
                    .value(AuthAttempts::Address, Expr::col(AuthAttempts::Subject))
                    .and_where(Expr::col(AuthAttempts::Kind).eq("signup"))
                    .to_owned(),
            )
            .await?;
        // Per-address counts are range scans on this index, as per-subject
        // counts are on (kind, subject, created_at).
        manager
            .create_index(
                Index::create()
                    .name(ADDRESS_INDEX)
                    .table(AuthAttempts::Table)
                    .col(AuthAttempts::Kind)
                    .col(AuthAttempts::Address)
                    .col(AuthAttempts::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite refuses to drop an indexed column: the index goes first.
        manager
            .drop_index(
                Index::drop()
                    .name(ADDRESS_INDEX)
                    .table(AuthAttempts::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuthAttempts::Table)
                    .drop_column(AuthAttempts::Address)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AuthAttempts {
    Table,
    Kind,
    Subject,
    Address,
    CreatedAt,
}
