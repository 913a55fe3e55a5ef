//! The statements of per-key rate limits: a limited key's window row
//! (`key_rate_windows`: the current window's start and the calls it
//! admitted) locked and set by the locked path, or added to by the one
//! statement, and how the one statement says a window filled under it;
//! and, when a limit is set or changed, the window counted from the calls
//! charged in it before.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{sqlx, ConnectionTrait, DbBackend, DbErr, FromQueryResult, RuntimeErr, Statement};
use uuid::Uuid;

use super::{statement, Binds};
use crate::domain::rate_limit::{Window, WindowCount};

/// A window as `lock_windows` returns it, locked.
#[derive(FromQueryResult, Debug)]
pub struct LockedWindow {
    pub api_key_id: Uuid,
    pub window_start: DateTime<Utc>,
    pub used: i64,
}

/// Creates the window rows of `keys` (key → the batch's window start) if
/// missing and locks them, in key order: the no-op DO UPDATE takes the row
/// lock, so the counts read here stay true until the transaction ends.
pub fn lock_windows(backend: DbBackend, keys: &BTreeMap<Uuid, DateTime<Utc>>) -> Statement {
    let mut binds = Binds::default();
    let rows: Vec<String> = keys
        .iter()
        .map(|(key, start)| format!("({}, {}, 0)", binds.value(*key), binds.value(*start)))
        .collect();
    let sql = format!(
        "INSERT INTO key_rate_windows (api_key_id, window_start, used)
         VALUES {}
         ON CONFLICT (api_key_id) DO UPDATE SET used = key_rate_windows.used
         RETURNING api_key_id, window_start, used",
        rows.join(", ")
    );
    binds.statement(backend, &sql)
}

/// Sets locked windows: rows of (key, window start, calls admitted).
pub fn set_windows(backend: DbBackend, windows: &[(Uuid, DateTime<Utc>, i64)]) -> Statement {
    let mut binds = Binds::default();
    let rows = binds.rows(
        windows
            .iter()
            .map(|(key, start, used)| [(*key).into(), (*start).into(), (*used).into()]),
    );
    let sql = format!(
        "INSERT INTO key_rate_windows (api_key_id, window_start, used)
         VALUES {rows}
         ON CONFLICT (api_key_id) DO UPDATE
            SET window_start = excluded.window_start, used = excluded.used"
    );
    binds.statement(backend, &sql)
}

/// Starts counting `key`'s `window` from the calls charged in it before
/// (its events), up to `limit` of them (more change nothing: the window is
/// full either way, and the count stays bounded however hot the key: each
/// event stands for at least one call, so `limit` events hold enough).
/// Free checks of a key without a limit record nothing, so they are not
/// counted. (`WHERE true`: SQLite's parser needs it before an upsert's ON
/// CONFLICT after a SELECT.)
pub async fn count_from_events(
    conn: &impl ConnectionTrait,
    key: Uuid,
    window: &Window,
    limit: i32,
) -> Result<(), DbErr> {
    const COUNT: &str = "
INSERT INTO key_rate_windows (api_key_id, window_start, used)
SELECT $1, $2, CASE WHEN COALESCE(SUM(calls), 0) < $4 THEN COALESCE(SUM(calls), 0) ELSE $4 END FROM (
  SELECT calls FROM api_key_usage
   WHERE api_key_id = $1 AND created_at >= $2 AND created_at < $3
   LIMIT $4) charged
 WHERE true
ON CONFLICT (api_key_id) DO UPDATE
   SET window_start = excluded.window_start, used = excluded.used";
    let values = vec![
        key.into(),
        window.start.into(),
        window.end.into(),
        i64::from(limit).into(),
    ];
    conn.execute_raw(statement(conn.get_database_backend(), COUNT, values))
        .await?;
    Ok(())
}

/// The window `key`'s row counts, if it has one.
pub async fn window_of(
    conn: &impl ConnectionTrait,
    key: Uuid,
) -> Result<Option<WindowCount>, DbErr> {
    const READ: &str = "SELECT window_start, used FROM key_rate_windows WHERE api_key_id = $1";
    let row = conn
        .query_one_raw(statement(
            conn.get_database_backend(),
            READ,
            vec![key.into()],
        ))
        .await?;
    row.map(|row| {
        Ok(WindowCount {
            start: row.try_get("", "window_start")?,
            used: row.try_get("", "used")?,
        })
    })
    .transpose()
}

/// Forgets `key`'s window: a key without a limit counts nothing, so a
/// limit set again later starts from its events.
pub async fn forget(conn: &impl ConnectionTrait, key: Uuid) -> Result<(), DbErr> {
    const FORGET: &str = "DELETE FROM key_rate_windows WHERE api_key_id = $1";
    conn.execute_raw(statement(
        conn.get_database_backend(),
        FORGET,
        vec![key.into()],
    ))
    .await?;
    Ok(())
}

/// One limited key's share of its window in a batch.
pub struct Slots {
    pub account_id: Uuid,
    pub window_start: DateTime<Utc>,
    /// The batch's calls on the key: each takes a slot.
    pub calls: i64,
}

/// The one statement's windows (PostgreSQL), its CTEs `rate_keys` and
/// `windows`, one row per limited key (`slots`, by key). Only the keys of
/// accounts in `charged` take their slots, and only after every counter of
/// the statement is locked (the aggregate reads all of `charged` first), so
/// the statement locks as the locked path does: counters, then windows. A
/// window whose calls would pass the key's limit, read on its newest
/// version, is left as it is and missing from `windows`.
pub fn take_slots(binds: &mut Binds, slots: &BTreeMap<Uuid, Slots>) -> String {
    let rows = binds.rows(slots.iter().map(|(key, slots)| {
        [
            slots.account_id.into(),
            (*key).into(),
            slots.window_start.into(),
            slots.calls.into(),
        ]
    }));
    let new_count = "CASE WHEN key_rate_windows.window_start = excluded.window_start
                          THEN key_rate_windows.used + excluded.used ELSE excluded.used END";
    format!(
        "rate_keys AS (
           SELECT * FROM (VALUES {rows}) AS w(account, key, window_start, calls)),
         windows AS (
           INSERT INTO key_rate_windows (api_key_id, window_start, used)
           SELECT w.key, w.window_start, w.calls
             FROM rate_keys w, (SELECT array_agg(billing_account_id) AS ids FROM charged) c
            WHERE w.account = ANY (c.ids)
           ON CONFLICT (api_key_id) DO UPDATE
              SET used = {new_count}, window_start = excluded.window_start
            WHERE {new_count} <= (SELECT k.rate_limit FROM api_keys k WHERE k.id = excluded.api_key_id)
           RETURNING api_key_id, used)"
    )
}

/// The one statement's guard, an expression for each row it answers: the
/// division fails (`WINDOW_FILLED`), and the whole statement with it,
/// when an account was charged but a window of its keys was full: the
/// statement then writes nothing, and its calls go the locked way.
pub const EVERY_SLOT_TAKEN: &str =
    "1 / (CASE WHEN (SELECT count(*) FROM windows)
                  = (SELECT count(*) FROM rate_keys w JOIN charged c ON c.billing_account_id = w.account)
             THEN 1 ELSE 0 END)";

/// PostgreSQL's SQLSTATE for `EVERY_SLOT_TAKEN` failing: division_by_zero.
const WINDOW_FILLED: &str = "22012";

/// Whether the one statement failed because a window filled under it
/// (nothing was written).
pub fn window_filled(error: &DbErr) -> bool {
    let (DbErr::Query(RuntimeErr::SqlxError(error)) | DbErr::Exec(RuntimeErr::SqlxError(error))) =
        error
    else {
        return false;
    };
    match &**error {
        sqlx::Error::Database(database) => database.code().as_deref() == Some(WINDOW_FILLED),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::binds_match;

    #[test]
    fn statements_bind_each_value_their_text_names() {
        let now = Utc::now();
        for rows in [1, 2, 16] {
            let keys: BTreeMap<Uuid, DateTime<Utc>> =
                (0..rows).map(|_| (Uuid::new_v4(), now)).collect();
            binds_match(&lock_windows(DbBackend::Postgres, &keys));
            let moved: Vec<_> = keys.keys().map(|key| (*key, now, 3)).collect();
            binds_match(&set_windows(DbBackend::Sqlite, &moved));
        }
    }
}
