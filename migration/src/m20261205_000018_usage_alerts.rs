//! Usage alerts (contract v3). `usage_alert_thresholds` holds each
//! account's thresholds (percent of its monthly credits); every existing
//! account gets the default, 80 and 100. `usage_alerts` is the outbox of
//! thresholds reached: a charge that takes an account's cycle total across
//! a threshold inserts the row in its own statement or transaction, and its
//! key (account, cycle, threshold) makes that happen once per cycle however
//! many charges race across it. A worker later fans each row out (audit
//! event, webhooks, email) and marks it, in one transaction.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Thresholds::Table)
                    .col(ColumnDef::new(Thresholds::AccountId).uuid().not_null())
                    .col(
                        ColumnDef::new(Thresholds::Threshold)
                            .integer()
                            .not_null()
                            .check(Expr::col(Thresholds::Threshold).between(1, 100)),
                    )
                    .primary_key(
                        Index::create()
                            .col(Thresholds::AccountId)
                            .col(Thresholds::Threshold),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Thresholds::Table, Thresholds::AccountId)
                            .to(BillingAccounts::Table, BillingAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO usage_alert_thresholds (account_id, threshold)
                 SELECT id, 80 FROM billing_accounts
                 UNION ALL SELECT id, 100 FROM billing_accounts",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alerts::Table)
                    .col(ColumnDef::new(Alerts::AccountId).uuid().not_null())
                    .col(
                        ColumnDef::new(Alerts::CycleStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alerts::Threshold).integer().not_null())
                    // The cycle's total and the allowance when it was reached.
                    .col(ColumnDef::new(Alerts::CreditsUsed).big_integer().not_null())
                    .col(
                        ColumnDef::new(Alerts::MonthlyCredits)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alerts::RaisedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // Set when the worker has written its audit event,
                    // webhooks and email; NULL: still to do.
                    .col(
                        ColumnDef::new(Alerts::FannedOutAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(Alerts::AccountId)
                            .col(Alerts::CycleStart)
                            .col(Alerts::Threshold),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Alerts::Table, Alerts::AccountId)
                            .to(BillingAccounts::Table, BillingAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The worker's scan: alerts not yet fanned out.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_usage_alerts_pending ON usage_alerts (raised_at)
                  WHERE fanned_out_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alerts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Thresholds::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum BillingAccounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Thresholds {
    #[sea_orm(iden = "usage_alert_thresholds")]
    Table,
    AccountId,
    Threshold,
}

#[derive(DeriveIden)]
enum Alerts {
    #[sea_orm(iden = "usage_alerts")]
    Table,
    AccountId,
    CycleStart,
    Threshold,
    CreditsUsed,
    MonthlyCredits,
    RaisedAt,
    FannedOutAt,
}
