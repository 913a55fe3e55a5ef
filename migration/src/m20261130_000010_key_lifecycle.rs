//! Key lifecycle (contract v2):
//!
//! - `api_keys.expires_at`: when a key stops verifying; NULL, never.
//! - `api_keys.rotated_from_id`: the key a rotation replaced. Unique, so the
//!   index, not a read before the write, decides which of two racing
//!   rotations of one key makes the new key (NULLs do not collide, on
//!   either database). No foreign key: SQLite can neither add one to an
//!   existing table nor drop a column that has one, and keys are deleted
//!   only with their user, who takes both ends along.
//! - `users.default_key_at`: when the user's default key was made; NULL,
//!   never. ensureDefaultKey sets it with a conditional UPDATE in the
//!   transaction that makes the key, so racing calls make one key, and a
//!   revoked default key still counts as had.

use sea_orm_migration::prelude::*;

use crate::m20261125_000001_create_users::Users;
use crate::m20261125_000004_create_api_keys::ApiKeys;

#[derive(DeriveMigrationName)]
pub struct Migration;

const ROTATED_FROM_INDEX: &str = "idx_api_keys_rotated_from_id";

/// Signup makes the default key with the user's own timestamp, named
/// "Default key", DEV: users who have such a key had one. A key of that name
/// made later by hand does not match, so its owner can still get one.
const BACKFILL_DEFAULT_KEY_AT: &str = "
UPDATE users SET default_key_at = created_at
 WHERE EXISTS (SELECT 1 FROM api_keys k
                WHERE k.user_id = users.id AND k.name = 'Default key'
                  AND k.key_type = 'dev' AND k.created_at = users.created_at)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        let columns = [
            (
                ApiKeys::Table.into_iden(),
                ColumnDef::new(KeyLifecycle::ExpiresAt)
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
            ),
            (
                ApiKeys::Table.into_iden(),
                ColumnDef::new(KeyLifecycle::RotatedFromId)
                    .uuid()
                    .null()
                    .to_owned(),
            ),
            (
                Users::Table.into_iden(),
                ColumnDef::new(KeyLifecycle::DefaultKeyAt)
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(ROTATED_FROM_INDEX)
                    .table(ApiKeys::Table)
                    .col(KeyLifecycle::RotatedFromId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(BACKFILL_DEFAULT_KEY_AT)
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite refuses to drop an indexed column: the index goes first.
        manager
            .drop_index(
                Index::drop()
                    .name(ROTATED_FROM_INDEX)
                    .table(ApiKeys::Table)
                    .to_owned(),
            )
            .await?;
        let columns = [
            (Users::Table.into_iden(), KeyLifecycle::DefaultKeyAt),
            (ApiKeys::Table.into_iden(), KeyLifecycle::RotatedFromId),
            (ApiKeys::Table.into_iden(), KeyLifecycle::ExpiresAt),
        ];
        for (table, column) in columns {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum KeyLifecycle {
    ExpiresAt,
    RotatedFromId,
    DefaultKeyAt,
}
