//! `--sweep-backlog N`: what sweeping a large backlog of expired events
//! costs the hot path. N events past the default retention are written for
//! one key; verifyKey credits=1 is measured without a sweep, then while the
//! server's own sweep (`keymeter::service::retention::sweep_usage`, run here
//! as another keymeter process would run it) clears the backlog; then how
//! long the backlog took, and the database's size before the backlog, with
//! it, and after the sweep and a plain VACUUM.

use std::time::Instant;

use anyhow::Context as _;
use chrono::{Duration, Utc};
use keymeter::domain::Retention;
use keymeter::service::retention::sweep_usage;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

use crate::scenario::{Load, Measured, Scenario, Seed};

pub struct BacklogReport {
    pub without_sweep: Measured,
    pub during_sweep: Measured,
    pub events: u64,
    pub cleared_in_secs: f64,
    pub bytes: [u64; 3],
}

pub async fn measure(
    database_url: &str,
    seed: &Seed,
    load: &Load,
    events: u64,
) -> anyhow::Result<BacklogReport> {
    let db = Database::connect(database_url).await?;
    let before = size(&db, database_url).await?;
    write_backlog(&db, seed, events)
        .await
        .context("writing the backlog")?;
    let with_backlog = size(&db, database_url).await?;
    let without_sweep = Scenario::hot_verify(seed).run(load).await?;
    let retention = Retention {
        events: Duration::days(400),
        hourly_usage: Duration::days(90),
        sweep_every: std::time::Duration::from_secs(300),
    };
    let started = Instant::now();
    let sweep = tokio::spawn({
        let db = db.clone();
        async move { sweep_usage(&db.into(), &retention, Utc::now()).await }
    });
    let mut during_sweep = Scenario::hot_verify(seed).run(load).await?;
    during_sweep.name = format!("{} during a sweep", during_sweep.name);
    let swept = sweep.await?.context("sweeping")?;
    let cleared_in_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        swept.events == events,
        "swept {} of {events} events",
        swept.events
    );
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("VACUUM").await?;
    }
    let after = size(&db, database_url).await?;
    Ok(BacklogReport {
        without_sweep,
        during_sweep,
        events,
        cleared_in_secs,
        bytes: [before, with_backlog, after],
    })
}

/// `events` events of the usage account's first key, 800 days old, with
/// ids below every other event's, as events written 800 days ago have
/// (ids grow with time): the oldest rows, where a sweep looks.
async fn write_backlog(db: &DatabaseConnection, seed: &Seed, events: u64) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let rows = match backend {
        DbBackend::Postgres => "SELECT generate_series(1, $2) AS n",
        _ => "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $2) SELECT n FROM g",
    };
    let sql = format!(
        "INSERT INTO api_key_usage (id, api_key_id, credits, endpoint, created_at)
         SELECT -g.n, (SELECT id FROM api_keys WHERE created_by = $1 ORDER BY id LIMIT 1), 1, '/bench/backlog', $3
           FROM ({rows}) AS g"
    );
    let values = [
        seed.usage_user.into(),
        (events as i64).into(),
        (Utc::now() - Duration::days(800)).into(),
    ];
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    if backend == DbBackend::Postgres {
        db.execute_unprepared("VACUUM ANALYZE api_key_usage")
            .await?;
        db.execute_unprepared("CHECKPOINT").await?;
    }
    Ok(())
}

async fn size(db: &DatabaseConnection, database_url: &str) -> anyhow::Result<u64> {
    if db.get_database_backend() != DbBackend::Postgres {
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await?;
        let path = database_url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap_or_default();
        return Ok(std::fs::metadata(path)?.len());
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_database_size(current_database())",
        ))
        .await?
        .context("database size")?;
    Ok(u64::try_from(row.try_get_by_index::<i64>(0)?).unwrap_or(0))
}
