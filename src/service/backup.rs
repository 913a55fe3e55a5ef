//! `keymeter backup PATH`: a consistent copy of the embedded SQLite database,
//! taken while servers serve it, and checked by opening it.
//!
//! SQLite makes the copy itself (`VACUUM INTO`): it reads the database in
//! one read transaction, so the copy holds every commit made before it
//! began and none after, whatever is written meanwhile (in WAL mode readers
//! never block writers, nor writers readers), and it is compact. Restoring
//! is starting keymeter on the copy. PostgreSQL has its own tools for this
//! (`pg_dump`, or base backups with WAL archiving); the README says how.

use std::fmt;
use std::path::Path;

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

use crate::error::{Error, Result};
use crate::store::db::Db;

/// What the copy holds, as read back from it.
pub struct BackupReport {
    pub path: String,
    pub bytes: u64,
    /// Rows of each table that matters to an operator, in the copy.
    pub rows: Vec<(&'static str, i64)>,
}

impl fmt::Display for BackupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "backup:    {} ({} bytes), checked",
            self.path, self.bytes
        )?;
        for (table, rows) in &self.rows {
            writeln!(f, "  {table:<22} {rows} rows")?;
        }
        Ok(())
    }
}

const COUNTED: [&str; 6] = [
    "users",
    "api_keys",
    "billing_accounts",
    "billing_cycle_usage",
    "api_key_usage",
    "verify_requests",
];

/// Copies `db` (SQLite) to `path`, which must not exist yet, then opens the
/// copy read-only and checks it: SQLite's integrity check, and every
/// migration the source has applied.
pub async fn backup(db: &Db, path: &Path) -> Result<BackupReport> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Err(Error::bad_input(
            "backup copies an SQLite database; back PostgreSQL up with pg_dump \
             (see the README's Operating keymeter)",
        ));
    }
    let Some(text) = path.to_str() else {
        return Err(Error::bad_input("the backup's path must be UTF-8"));
    };
    if path.exists() {
        return Err(Error::bad_input(format!(
            "{text} exists already; a backup never overwrites a file"
        )));
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "VACUUM INTO ?",
        [text.into()],
    ))
    .await?;
    let copy = Database::connect(format!("sqlite://{text}?mode=ro")).await?;
    let checked = check(db, &copy, text).await;
    copy.close().await.ok();
    checked
}

async fn check(
    source: &Db,
    copy: &sea_orm::DatabaseConnection,
    path: &str,
) -> Result<BackupReport> {
    let integrity: String = one(copy, "PRAGMA integrity_check").await?;
    if integrity != "ok" {
        return Err(anyhow::anyhow!(
            "the copy at {path} fails SQLite's integrity check: {integrity}"
        )
        .into());
    }
    let migrations = "SELECT COUNT(*) FROM seaql_migrations";
    let (applied, copied): (i64, i64) =
        (one(source, migrations).await?, one(copy, migrations).await?);
    if applied != copied {
        return Err(anyhow::anyhow!(
            "the copy at {path} has {copied} migrations, the database {applied}"
        )
        .into());
    }
    let mut rows = Vec::new();
    for table in COUNTED {
        rows.push((
            table,
            one(copy, &format!("SELECT COUNT(*) FROM {table}")).await?,
        ));
    }
    let bytes = std::fs::metadata(path).map_or(0, |meta| meta.len());
    Ok(BackupReport {
        path: path.to_owned(),
        bytes,
        rows,
    })
}

/// The first column of the one row `sql` answers.
async fn one<T: sea_orm::TryGetable>(db: &impl ConnectionTrait, sql: &str) -> Result<T> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
        .await?
        .ok_or_else(|| anyhow::anyhow!("{sql} answered no row"))?;
    Ok(row.try_get_by_index(0)?)
}
