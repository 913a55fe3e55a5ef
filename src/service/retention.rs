//! Keeping storage bounded: raw events and hourly rollups past their
//! retention (`domain::Retention`), and webhook deliveries that ended
//! `webhooks::KEEP_ENDED` ago, are deleted in the background, in small
//! batches, each its own short statement followed by a rest four times as
//! long, so a sweep never holds what a charge waits for, even on SQLite's
//! one writer, and takes at most a fifth of one connection's time. What
//! the API reads (cycle counters, cycle and daily rollups, requestIds for
//! their 24 hours) is never swept here. On SQLite the freed pages are then
//! given back to the file system, a few at a time (incremental vacuum).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::webhooks;
use crate::domain::Retention;
use crate::error::Result;
use crate::store::db::Db;
use crate::store::sweeps;

/// The least a sweep rests between two batches: room for the charges
/// queued behind it.
const PAUSE: Duration = Duration::from_millis(5);

/// A sweep rests this many times as long as its last batch took, so it
/// takes at most a fifth of one connection's time, however slow the
/// database is at the moment: a backlog is cleared slowly rather than at
/// the hot path's expense.
const REST_PER_WORK: u32 = 4;

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub events: u64,
    pub hours: u64,
    pub deliveries: u64,
}

/// Deletes the events and hourly rollups past their retention at `now`,
/// batch by batch until none is left, then (SQLite) shrinks the file.
pub async fn sweep_usage(db: &Db, retention: &Retention, now: DateTime<Utc>) -> Result<Swept> {
    let backend = db.get_database_backend();
    // Small batches: each one's WAL is flushed beside the charges' own.
    let batch: i64 = if backend == DbBackend::Postgres {
        500
    } else {
        1_000
    };
    let events_before = now - retention.events;
    let hours_before = now - retention.hourly_usage;
    let deliveries_before = now - webhooks::KEEP_ENDED;
    let swept = Swept {
        events: in_batches(db, batch, |b| {
            sweeps::delete_old_events(backend, events_before, b)
        })
        .await?,
        hours: in_batches(db, batch, |b| {
            sweeps::delete_old_hours(backend, hours_before, b)
        })
        .await?,
        deliveries: in_batches(db, batch, |b| {
            sweeps::delete_old_deliveries(backend, deliveries_before, b)
        })
        .await?,
    };
    if backend == DbBackend::Sqlite && swept != Swept::default() {
        give_back_free_pages(db).await?;
    }
    Ok(swept)
}

/// Runs `statement` until a batch deletes less than a whole one.
async fn in_batches(db: &Db, batch: i64, statement: impl Fn(i64) -> Statement) -> Result<u64> {
    let mut deleted = 0;
    loop {
        let started = std::time::Instant::now();
        let done = db.execute_raw(statement(batch)).await?.rows_affected();
        deleted += done;
        if done < batch as u64 {
            return Ok(deleted);
        }
        tokio::time::sleep(PAUSE.max(started.elapsed() * REST_PER_WORK)).await;
    }
}

/// SQLite: returns the free pages to the file system, 256 (1 MiB) at a time.
async fn give_back_free_pages(db: &Db) -> Result<()> {
    while pragma(db, "PRAGMA freelist_count").await? > 0 {
        db.execute_unprepared("PRAGMA incremental_vacuum(256)")
            .await?;
        tokio::time::sleep(PAUSE).await;
    }
    Ok(())
}

/// SQLite, at start: a file made before incremental vacuum was asked for
/// (every connection asks now) is converted once, by one VACUUM, so that
/// sweeps can shrink it. A no-op on every later start and on PostgreSQL.
pub async fn prepare_sqlite(db: &Db) -> Result<()> {
    const INCREMENTAL: i64 = 2;
    if db.get_database_backend() != DbBackend::Sqlite
        || pragma(db, "PRAGMA auto_vacuum").await? == INCREMENTAL
    {
        return Ok(());
    }
    tracing::info!("converting the SQLite file to incremental auto-vacuum, once");
    db.execute_unprepared("PRAGMA auto_vacuum = INCREMENTAL")
        .await?;
    db.execute_unprepared("VACUUM").await?;
    Ok(())
}

async fn pragma(db: &Db, sql: &str) -> Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
        .await?
        .ok_or_else(|| anyhow::anyhow!("{sql} answered no row"))?;
    Ok(row.try_get_by_index(0)?)
}
