//! Deleting usage and webhook deliveries past their retention, one
//! bounded batch per statement.
//! Several processes may sweep at once: on PostgreSQL each batch locks the
//! rows it takes and skips those another sweep holds, so no two do the same
//! batch, and none waits on another or on a charge (charges write the
//! current hour and new events, never rows this old).

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, Statement};

use super::statement;

/// Deletes at most `batch` events older than `before`, among the `batch`
/// oldest by id: ids grow with time, so when the oldest event is recent
/// enough the statement reads one index page and stops, however many
/// events there are.
pub fn delete_old_events(backend: DbBackend, before: DateTime<Utc>, batch: i64) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            "DELETE FROM api_key_usage WHERE id IN (
               SELECT u.id FROM (SELECT id FROM api_key_usage ORDER BY id LIMIT $2) oldest
                 JOIN api_key_usage u ON u.id = oldest.id
                WHERE u.created_at < $1
                FOR UPDATE OF u SKIP LOCKED)"
        }
        _ => {
            "DELETE FROM api_key_usage WHERE id IN (
               SELECT id FROM (SELECT id, created_at FROM api_key_usage ORDER BY id LIMIT $2)
                WHERE created_at < $1)"
        }
    };
    statement(backend, sql, vec![before.into(), batch.into()])
}

/// Deletes at most `batch` hourly rollups of hours before `before`
/// (a range scan on the hour's index).
pub fn delete_old_hours(backend: DbBackend, before: DateTime<Utc>, batch: i64) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            "DELETE FROM api_key_hourly_usage WHERE ctid IN (
               SELECT ctid FROM api_key_hourly_usage WHERE hour_start < $1
                LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
        _ => {
            "DELETE FROM api_key_hourly_usage WHERE rowid IN (
               SELECT rowid FROM api_key_hourly_usage WHERE hour_start < $1 LIMIT $2)"
        }
    };
    statement(backend, sql, vec![before.into(), batch.into()])
}

/// Deletes at most `batch` webhook deliveries that ended (succeeded or
/// failed) and were made before `before` (a range scan on their creation
/// time); pending ones stay, however old.
pub fn delete_old_deliveries(backend: DbBackend, before: DateTime<Utc>, batch: i64) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            "DELETE FROM webhook_deliveries WHERE id IN (
               SELECT id FROM webhook_deliveries
                WHERE created_at < $1 AND status IN ('succeeded', 'failed')
                LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
        _ => {
            "DELETE FROM webhook_deliveries WHERE id IN (
               SELECT id FROM webhook_deliveries
                WHERE created_at < $1 AND status IN ('succeeded', 'failed') LIMIT $2)"
        }
    };
    statement(backend, sql, vec![before.into(), batch.into()])
}
