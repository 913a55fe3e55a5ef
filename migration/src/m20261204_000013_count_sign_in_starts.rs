//! Provider sign-ins are limited per client address like signups, so
//! `auth_attempts.kind` also admits `sign_in`. PostgreSQL replaces the
//! column's check; SQLite cannot alter a check, so the table is rebuilt with
//! its rows, ids and indexes (it holds only the attempts of the last window).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const WITH_SIGN_IN: &str = "('login', 'signup', 'sign_in')";
const WITHOUT_SIGN_IN: &str = "('login', 'signup')";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        allow_kinds(manager, WITH_SIGN_IN).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM auth_attempts WHERE kind = 'sign_in'")
            .await?;
        allow_kinds(manager, WITHOUT_SIGN_IN).await
    }
}

async fn allow_kinds(manager: &SchemaManager<'_>, kinds: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if manager.get_database_backend() == DbBackend::Postgres {
        let sql = format!(
            "ALTER TABLE auth_attempts DROP CONSTRAINT auth_attempts_kind_check, \
             ADD CONSTRAINT auth_attempts_kind_check CHECK (kind IN {kinds})"
        );
        db.execute_unprepared(&sql).await?;
        return Ok(());
    }
    let rebuild = format!(
        "CREATE TABLE auth_attempts_rebuilt (
           id integer NOT NULL PRIMARY KEY AUTOINCREMENT,
           kind varchar(16) NOT NULL CHECK (kind IN {kinds}),
           subject varchar(254) NOT NULL,
           created_at timestamp_with_timezone_text NOT NULL,
           address varchar(45) NULL
         );
         INSERT INTO auth_attempts_rebuilt (id, kind, subject, created_at, address)
           SELECT id, kind, subject, created_at, address FROM auth_attempts;
         DROP TABLE auth_attempts;
         ALTER TABLE auth_attempts_rebuilt RENAME TO auth_attempts;
         CREATE INDEX idx_auth_attempts_kind_subject_created_at
           ON auth_attempts (kind, subject, created_at);
         CREATE INDEX idx_auth_attempts_created_at ON auth_attempts (created_at);
         CREATE INDEX idx_auth_attempts_kind_address_created_at
           ON auth_attempts (kind, address, created_at);"
    );
    db.execute_unprepared(&rebuild).await?;
    Ok(())
}
