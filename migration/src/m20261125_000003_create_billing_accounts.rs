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
                    .table(BillingAccounts::Table)
                    .col(
                        ColumnDef::new(BillingAccounts::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    // Unique: lazy provisioning inserts with ON CONFLICT DO NOTHING,
                    // so racing first reads can never give a user two accounts.
                    .col(
                        ColumnDef::new(BillingAccounts::UserId)
                            .uuid()
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(BillingAccounts::Plan)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BillingAccounts::MonthlyCredits)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(BillingAccounts::MonthlyCredits).gte(0)),
                    )
                    // The anchor of every cycle: cycle n starts n calendar months after it.
                    .col(
                        ColumnDef::new(BillingAccounts::BillingCycleStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BillingAccounts::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(BillingAccounts::Table, BillingAccounts::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BillingAccounts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum BillingAccounts {
    Table,
    Id,
    UserId,
    Plan,
    MonthlyCredits,
    BillingCycleStart,
    CreatedAt,
}
