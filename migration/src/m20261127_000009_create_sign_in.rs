use sea_orm_migration::prelude::*;

use crate::m20261125_000001_create_users::Users;

/// Sign-in with OpenID Connect providers: the flows under way (in the
/// database, so that any process can finish what another started) and the
/// provider accounts users are known by.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SignInFlows::Table)
                    .col(
                        ColumnDef::new(SignInFlows::State)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SignInFlows::Provider).string().not_null())
                    .col(ColumnDef::new(SignInFlows::Nonce).string().not_null())
                    .col(
                        ColumnDef::new(SignInFlows::PkceVerifier)
                            .string()
                            .not_null(),
                    )
                    // SHA-256 of the value in the starting browser's cookie.
                    .col(ColumnDef::new(SignInFlows::BrowserHash).binary().not_null())
                    .col(
                        ColumnDef::new(SignInFlows::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The sweep deletes by age.
        manager
            .create_index(
                Index::create()
                    .name("idx_sign_in_flows_created_at")
                    .table(SignInFlows::Table)
                    .col(SignInFlows::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserIdentities::Table)
                    .col(ColumnDef::new(UserIdentities::Provider).string().not_null())
                    .col(ColumnDef::new(UserIdentities::Subject).string().not_null())
                    .col(ColumnDef::new(UserIdentities::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(UserIdentities::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    // One user per provider account: racing first sign-ins
                    // of one subject are decided here.
                    .primary_key(
                        Index::create()
                            .col(UserIdentities::Provider)
                            .col(UserIdentities::Subject),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserIdentities::Table, UserIdentities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_user_identities_user_id")
                    .table(UserIdentities::Table)
                    .col(UserIdentities::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserIdentities::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(SignInFlows::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SignInFlows {
    Table,
    State,
    Provider,
    Nonce,
    PkceVerifier,
    BrowserHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserIdentities {
    Table,
    Provider,
    Subject,
    UserId,
    CreatedAt,
}
