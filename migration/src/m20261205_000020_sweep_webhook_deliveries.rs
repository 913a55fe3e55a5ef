//! The retention sweep deletes webhook deliveries that ended long ago
//! (`service::retention`): an index on their creation time keeps each of
//! its batches a range scan, however long the log has grown.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_created_at")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_webhook_deliveries_created_at")
                    .table(WebhookDeliveries::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    CreatedAt,
}
