//! Accounts shared by members (contract v3). A billing account *is* an
//! account: the contract's `Account` and its `BillingAccount` share one row
//! and one id, so verifyKey still reaches its credits with the one join it
//! always made (now by the key's `account_id`, the table's primary key).
//!
//! - `billing_accounts.user_id` becomes "the user whose own account this
//!   is", NULL for a team made by createAccount; still unique, so a user has
//!   one own account. `name` is new: an own account is named after its
//!   user's email. PostgreSQL relaxes the column in place; SQLite cannot, so
//!   the table is rebuilt with its rows (one per user) while foreign keys
//!   are off, as SQLite's documented rebuild procedure requires.
//! - `api_keys.user_id` is renamed `created_by` (the member who made the
//!   key) and `account_id` is added: the account the key belongs to and
//!   charges, filled from its maker's own account.
//! - `account_members`: who belongs to which account with what role; every
//!   existing own account gets its user as OWNER.
//! - `invitations` and `audit_events` are new.
//!
//! Undoing it drops teams (their keys and usage with them) and the log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        if postgres {
            db.execute_unprepared(
                "ALTER TABLE billing_accounts ALTER COLUMN user_id DROP NOT NULL;
                 ALTER TABLE billing_accounts ADD COLUMN name varchar(64);
                 UPDATE billing_accounts b SET name = substr(u.email, 1, 64)
                   FROM users u WHERE u.id = b.user_id;
                 ALTER TABLE billing_accounts ALTER COLUMN name SET NOT NULL;",
            )
            .await?;
        } else {
            rebuild_sqlite_billing_accounts(db, true).await?;
        }
        // Keys were always made after their maker's billing account, so
        // every key finds its account; a user holding keys without one (no
        // release made that) gets an own account rather than keys that
        // could never verify.
        let new_id = if postgres {
            "gen_random_uuid()"
        } else {
            SQLITE_UUID
        };
        db.execute_unprepared(&format!(
            "INSERT INTO billing_accounts (id, user_id, name, plan, monthly_credits, billing_cycle_start, created_at)
             SELECT {new_id}, u.id, substr(u.email, 1, 64), 'free', 1000, u.created_at, u.created_at
               FROM users u
              WHERE EXISTS (SELECT 1 FROM api_keys k WHERE k.user_id = u.id)
                AND NOT EXISTS (SELECT 1 FROM billing_accounts b WHERE b.user_id = u.id)"
        ))
        .await?;
        db.execute_unprepared(
            "DROP INDEX idx_api_keys_user_id_created_at;
             ALTER TABLE api_keys RENAME COLUMN user_id TO created_by;",
        )
        .await?;
        let uuid = if postgres { "uuid" } else { "uuid_text" };
        db.execute_unprepared(&format!(
            "ALTER TABLE api_keys ADD COLUMN account_id {uuid} NULL
               REFERENCES billing_accounts (id) ON DELETE CASCADE;
             UPDATE api_keys SET account_id =
               (SELECT b.id FROM billing_accounts b WHERE b.user_id = api_keys.created_by);
             CREATE INDEX idx_api_keys_account_id_created_at ON api_keys (account_id, created_at);"
        ))
        .await?;
        if postgres {
            // SQLite cannot add a NOT NULL column to a filled table; there
            // every insert sets it (`service::keys`).
            db.execute_unprepared("ALTER TABLE api_keys ALTER COLUMN account_id SET NOT NULL")
                .await?;
        }
        create_account_members(manager).await?;
        db.execute_unprepared(
            "INSERT INTO account_members (account_id, user_id, role, joined_at)
             SELECT id, user_id, 'owner', created_at FROM billing_accounts WHERE user_id IS NOT NULL",
        )
        .await?;
        create_invitations(manager).await?;
        create_audit_events(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        for table in ["audit_events", "invitations", "account_members"] {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await?;
        }
        // Teams go, with their keys and usage (cascades): the release
        // before had nowhere to keep them.
        db.execute_unprepared("DELETE FROM billing_accounts WHERE user_id IS NULL")
            .await?;
        db.execute_unprepared("DROP INDEX idx_api_keys_account_id_created_at")
            .await?;
        if postgres {
            db.execute_unprepared(
                "ALTER TABLE api_keys DROP COLUMN account_id;
                 ALTER TABLE api_keys RENAME COLUMN created_by TO user_id;
                 CREATE INDEX idx_api_keys_user_id_created_at ON api_keys (user_id, created_at);
                 ALTER TABLE billing_accounts DROP COLUMN name;
                 ALTER TABLE billing_accounts ALTER COLUMN user_id SET NOT NULL;",
            )
            .await?;
            return Ok(());
        }
        // SQLite drops a column that references a table only by a rebuild.
        db.execute_unprepared(&format!(
            "PRAGMA foreign_keys = OFF;
             BEGIN;
             CREATE TABLE api_keys_rebuilt ({API_KEYS_BEFORE});
             INSERT INTO api_keys_rebuilt (id, user_id, name, key_type, prefix, secret_hash, created_at,
                    last_used_at, revoked_at, expires_at, rotated_from_id)
               SELECT id, created_by, name, key_type, prefix, secret_hash, created_at,
                    last_used_at, revoked_at, expires_at, rotated_from_id FROM api_keys;
             DROP TABLE api_keys;
             ALTER TABLE api_keys_rebuilt RENAME TO api_keys;
             CREATE INDEX idx_api_keys_user_id_created_at ON api_keys (user_id, created_at);
             CREATE UNIQUE INDEX idx_api_keys_rotated_from_id ON api_keys (rotated_from_id);
             COMMIT;
             PRAGMA foreign_keys = ON;"
        ))
        .await?;
        rebuild_sqlite_billing_accounts(db, false).await
    }
}

/// A fresh id on SQLite, where sqlx keeps a UUID as its 16 bytes.
const SQLITE_UUID: &str = "randomblob(16)";

/// `api_keys` as the release before this migration made it.
const API_KEYS_BEFORE: &str = "\"id\" uuid_text NOT NULL PRIMARY KEY, \"user_id\" uuid_text NOT NULL, \"name\" varchar(64) NOT NULL, \"key_type\" varchar(4) NOT NULL DEFAULT 'dev' CHECK (\"key_type\" IN ('dev', 'prod')), \"prefix\" varchar(16) NOT NULL, \"secret_hash\" blob(1) NOT NULL UNIQUE, \"created_at\" timestamp_with_timezone_text NOT NULL, \"last_used_at\" timestamp_with_timezone_text NULL, \"revoked_at\" timestamp_with_timezone_text NULL, \"expires_at\" timestamp_with_timezone_text NULL, \"rotated_from_id\" uuid_text NULL, FOREIGN KEY (\"user_id\") REFERENCES \"users\" (\"id\") ON DELETE CASCADE";

/// Rebuilds SQLite's `billing_accounts` with (`shared`) or without the
/// account columns. Foreign keys are off on the migrating connection for
/// the rebuild only (all of it is one call, so one connection): otherwise
/// dropping the old table would cascade to every counter that references
/// it. The references are by name, so they reach the rebuilt table.
async fn rebuild_sqlite_billing_accounts(
    db: &SchemaManagerConnection<'_>,
    shared: bool,
) -> Result<(), DbErr> {
    let (user_id, name_column, name_value, name_insert) = if shared {
        (
            "\"user_id\" uuid_text NULL UNIQUE",
            "\"name\" varchar(64) NOT NULL,",
            "substr((SELECT u.email FROM users u WHERE u.id = b.user_id), 1, 64),",
            "name,",
        )
    } else {
        ("\"user_id\" uuid_text NOT NULL UNIQUE", "", "", "")
    };
    db.execute_unprepared(&format!(
        "PRAGMA foreign_keys = OFF;
         BEGIN;
         CREATE TABLE billing_accounts_rebuilt (
           \"id\" uuid_text NOT NULL PRIMARY KEY,
           {user_id},
           {name_column}
           \"plan\" varchar(32) NOT NULL,
           \"monthly_credits\" integer NOT NULL CHECK (\"monthly_credits\" >= 0),
           \"billing_cycle_start\" timestamp_with_timezone_text NOT NULL,
           \"created_at\" timestamp_with_timezone_text NOT NULL,
           FOREIGN KEY (\"user_id\") REFERENCES \"users\" (\"id\") ON DELETE CASCADE
         );
         INSERT INTO billing_accounts_rebuilt (id, user_id, {name_insert} plan, monthly_credits, billing_cycle_start, created_at)
           SELECT b.id, b.user_id, {name_value} b.plan, b.monthly_credits, b.billing_cycle_start, b.created_at
             FROM billing_accounts b;
         DROP TABLE billing_accounts;
         ALTER TABLE billing_accounts_rebuilt RENAME TO billing_accounts;
         COMMIT;
         PRAGMA foreign_keys = ON;"
    ))
    .await?;
    let dangling = db
        .query_all_raw(sea_orm_migration::sea_orm::Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA foreign_key_check",
        ))
        .await?;
    if !dangling.is_empty() {
        return Err(DbErr::Migration(format!(
            "{} rows reference a missing row after rebuilding billing_accounts",
            dangling.len()
        )));
    }
    Ok(())
}

async fn create_account_members(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(AccountMembers::Table)
                .col(ColumnDef::new(AccountMembers::AccountId).uuid().not_null())
                .col(ColumnDef::new(AccountMembers::UserId).uuid().not_null())
                .col(
                    ColumnDef::new(AccountMembers::Role)
                        .string_len(8)
                        .not_null()
                        .check(Expr::col(AccountMembers::Role).is_in(["owner", "member"])),
                )
                .col(
                    ColumnDef::new(AccountMembers::JoinedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .primary_key(
                    Index::create()
                        .col(AccountMembers::AccountId)
                        .col(AccountMembers::UserId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(AccountMembers::Table, AccountMembers::AccountId)
                        .to(BillingAccounts::Table, BillingAccounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(AccountMembers::Table, AccountMembers::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    // Serves `accounts`: one user's memberships.
    manager
        .create_index(
            Index::create()
                .name("idx_account_members_user_id")
                .table(AccountMembers::Table)
                .col(AccountMembers::UserId)
                .to_owned(),
        )
        .await
}

async fn create_invitations(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Invitations::Table)
                .col(
                    ColumnDef::new(Invitations::Id)
                        .uuid()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new(Invitations::AccountId).uuid().not_null())
                .col(
                    ColumnDef::new(Invitations::Email)
                        .string_len(254)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Invitations::Role)
                        .string_len(8)
                        .not_null()
                        .check(Expr::col(Invitations::Role).is_in(["owner", "member"])),
                )
                // SHA-256 of the token; the token itself is never stored.
                .col(
                    ColumnDef::new(Invitations::TokenHash)
                        .binary()
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(Invitations::InvitedBy).uuid().not_null())
                .col(
                    ColumnDef::new(Invitations::CreatedAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Invitations::ExpiresAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(Invitations::AcceptedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new(Invitations::RevokedAt)
                        .timestamp_with_time_zone()
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Invitations::Table, Invitations::AccountId)
                        .to(BillingAccounts::Table, BillingAccounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Invitations::Table, Invitations::InvitedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    // One open invitation per email and account: a new one replaces it.
    manager
        .get_connection()
        .execute_unprepared(
            "CREATE UNIQUE INDEX idx_invitations_open_email ON invitations (account_id, email)
              WHERE accepted_at IS NULL AND revoked_at IS NULL",
        )
        .await?;
    Ok(())
}

async fn create_audit_events(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(AuditEvents::Table)
                // The order events were written in, and the log's cursor.
                .col(
                    ColumnDef::new(AuditEvents::Seq)
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(AuditEvents::Id)
                        .uuid()
                        .not_null()
                        .unique_key(),
                )
                .col(ColumnDef::new(AuditEvents::AccountId).uuid().not_null())
                .col(
                    ColumnDef::new(AuditEvents::OccurredAt)
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditEvents::Action)
                        .string_len(40)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditEvents::ActorType)
                        .string_len(8)
                        .not_null()
                        .check(
                            Expr::col(AuditEvents::ActorType).is_in(["user", "operator", "system"]),
                        ),
                )
                .col(ColumnDef::new(AuditEvents::ActorUserId).uuid().null())
                .col(
                    ColumnDef::new(AuditEvents::TargetType)
                        .string_len(20)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditEvents::TargetId)
                        .string_len(64)
                        .not_null(),
                )
                .col(
                    ColumnDef::new(AuditEvents::TargetName)
                        .string_len(2048)
                        .null(),
                )
                .col(ColumnDef::new(AuditEvents::Ip).string_len(45).null())
                .col(
                    ColumnDef::new(AuditEvents::UserAgent)
                        .string_len(512)
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(AuditEvents::Table, AuditEvents::AccountId)
                        .to(BillingAccounts::Table, BillingAccounts::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    // Serves `auditLog`: one account's events, newest first, by action.
    for (name, with_action) in [
        ("idx_audit_events_account_id_seq", false),
        ("idx_audit_events_account_id_action_seq", true),
    ] {
        let mut index = Index::create();
        index
            .name(name)
            .table(AuditEvents::Table)
            .col(AuditEvents::AccountId);
        if with_action {
            index.col(AuditEvents::Action);
        }
        index.col(AuditEvents::Seq);
        manager.create_index(index.to_owned()).await?;
    }
    Ok(())
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum BillingAccounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AccountMembers {
    Table,
    AccountId,
    UserId,
    Role,
    JoinedAt,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    AccountId,
    Email,
    Role,
    TokenHash,
    InvitedBy,
    CreatedAt,
    ExpiresAt,
    AcceptedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Seq,
    Id,
    AccountId,
    OccurredAt,
    Action,
    ActorType,
    ActorUserId,
    TargetType,
    TargetId,
    TargetName,
    Ip,
    UserAgent,
}
