//! Webhooks (contract v3): the endpoints an account's owners register, and
//! the deliveries of events to them, which double as the delivery queue.
//!
//! - `webhook_endpoints.secret` is the whsec_ signing secret. Unlike key
//!   secrets it cannot be stored as a hash: every attempt signs with it.
//!   It is shown once at creation and never read back out by the API.
//! - `webhook_endpoints.events`: a JSON array of event types as text; an
//!   empty array receives every event.
//! - `webhook_deliveries.payload` is the exact body sent, so every attempt
//!   (and a redelivery) signs and sends the same bytes; `event_id` is the
//!   webhook-id header, the same on each of them.
//! - `next_attempt_at` is set while a delivery is 'pending' and NULL once it
//!   ended; `claimed_until` is the lease of the process attempting it (NULL:
//!   nobody's), so processes sharing the database make each attempt once and
//!   a crashed one's deliveries come due again when its lease runs out.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(
                        ColumnDef::new(WebhookEndpoints::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::AccountId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookEndpoints::Url).text().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Events).text().not_null())
                    .col(ColumnDef::new(WebhookEndpoints::Secret).text().not_null())
                    .col(
                        ColumnDef::new(WebhookEndpoints::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookEndpoints::DisabledAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_endpoints_account")
                            .from(WebhookEndpoints::Table, WebhookEndpoints::AccountId)
                            .to(BillingAccounts::Table, BillingAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Listing an account's endpoints, and counting them against the cap.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_endpoints_account")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::AccountId)
                    .col(WebhookEndpoints::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(
                        ColumnDef::new(WebhookDeliveries::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::EndpointId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::AccountId)
                            .uuid()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::EventId).text().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::EventType)
                            .text()
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebhookDeliveries::Payload).text().not_null())
                    .col(
                        ColumnDef::new(WebhookDeliveries::Status)
                            .string_len(16)
                            .not_null()
                            .check(Expr::col(WebhookDeliveries::Status).is_in([
                                "pending",
                                "succeeded",
                                "failed",
                            ])),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::LastResponseStatus)
                            .integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(WebhookDeliveries::ClaimedUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_deliveries_endpoint")
                            .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                            .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Every poll looks for due deliveries, oldest first; ended ones
        // have no next_attempt_at and fall outside the range scanned.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        // webhookDeliveries: an account's, newest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_account")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::AccountId)
                    .col(WebhookDeliveries::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // The sweep of deliveries ended long ago (`webhooks::forget_ended`).
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_created_at")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // webhookDeliveries(endpointId), and the cascade from an endpoint.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_endpoint")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum BillingAccounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    AccountId,
    Url,
    Events,
    Secret,
    CreatedAt,
    DisabledAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    AccountId,
    EventId,
    EventType,
    Payload,
    Status,
    Attempts,
    LastResponseStatus,
    CreatedAt,
    NextAttemptAt,
    ClaimedUntil,
}
