//! The email outbox: every email keymeter has promised to send and not yet
//! sent. A row is written in the transaction of the change that causes it
//! (so it exists iff that change commits) and deleted once the SMTP server
//! took it, or after its last failed attempt: a body may hold an
//! invitation token, so it never outlives its delivery.
//!
//! - `attempts`: failed attempts so far; `next_attempt_at`: when it is due.
//! - `claimed_until`: the lease of the process sending it; NULL, nobody's.
//!   A process claims due rows whose lease is absent or past, so two
//!   processes never send one attempt, and a crashed sender's rows come
//!   due again when its lease runs out.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EmailOutbox::Table)
                    .col(
                        ColumnDef::new(EmailOutbox::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(EmailOutbox::Recipient).text().not_null())
                    .col(ColumnDef::new(EmailOutbox::Subject).text().not_null())
                    .col(ColumnDef::new(EmailOutbox::Body).text().not_null())
                    .col(
                        ColumnDef::new(EmailOutbox::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::ClaimedUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // Every poll looks for due rows, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_email_outbox_next_attempt_at")
                    .table(EmailOutbox::Table)
                    .col(EmailOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EmailOutbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    Id,
    Recipient,
    Subject,
    Body,
    CreatedAt,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
}
