//! Attempts that rate limits count: failed logins per email, signups per
//! client address. Kept in the database, not in a process's memory, so a limit
//! holds however many keymeter processes share the work.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthAttempts::Table)
                    .col(
                        ColumnDef::new(AuthAttempts::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuthAttempts::Kind)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(AuthAttempts::Kind).is_in(["login", "signup"])),
                    )
                    // The email for logins, the client address for signups.
                    .col(
                        ColumnDef::new(AuthAttempts::Subject)
                            .string_len(254)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AuthAttempts::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // A limit check is a range count on this index.
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_attempts_kind_subject_created_at")
                    .table(AuthAttempts::Table)
                    .col(AuthAttempts::Kind)
                    .col(AuthAttempts::Subject)
                    .col(AuthAttempts::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Serves the sweep of attempts past every window.
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_attempts_created_at")
                    .table(AuthAttempts::Table)
                    .col(AuthAttempts::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuthAttempts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuthAttempts {
    Table,
    Id,
    Kind,
    Subject,
    CreatedAt,
}
