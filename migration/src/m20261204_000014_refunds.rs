//! Refunds (contract v3): a charged call's credits can be given back, found
//! by its key and requestId, so `verify_requests` keeps what each charge
//! took and whether it was refunded:
//!
//! - `credits`: the credits the call was charged; 0 for a refused call.
//!   Rows from before this migration get 0, so calls charged before the
//!   upgrade (at most 24 hours of them) cannot be refunded.
//! - `refunded_at`: when a refund gave them back; NULL, never. Set by one
//!   conditional UPDATE, so racing refunds give the credits back once.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(VerifyRequests::Table)
                    .add_column(
                        ColumnDef::new(VerifyRequests::Credits)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(VerifyRequests::Table)
                    .add_column(
                        ColumnDef::new(VerifyRequests::RefundedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [VerifyRequests::RefundedAt, VerifyRequests::Credits] {
            manager
                .alter_table(
                    Table::alter()
                        .table(VerifyRequests::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum VerifyRequests {
    Table,
    Credits,
    RefundedAt,
}
