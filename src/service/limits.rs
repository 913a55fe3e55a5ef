//! Rate limits on the expensive or guessable operations: failed logins per
//! email and signups per client address. Attempts are rows in the database,
//! so a limit holds across every keymeter process; a limit is one indexed
//! query to check and one insert to count.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, Statement, Value};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// A failed login, counted per email.
    Login,
    /// A signup, counted per client address.
    Signup,
}

impl Attempt {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Signup => "signup",
        }
    }
}

/// At most `max` attempts within any `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

fn stmt(conn: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(conn.get_database_backend(), sql, values)
}

/// RATE_LIMITED, with the seconds until the oldest counted attempt leaves the
/// window, when `subject` already has `limit.max` attempts in it.
pub async fn check(
    conn: &impl ConnectionTrait,
    attempt: Attempt,
    subject: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<()> {
    if limit.max == 0 {
        return Ok(());
    }
    // The max-th most recent attempt in the window, if there are that many:
    // once it leaves the window, one more attempt is allowed.
    const NTH_RECENT: &str = "
SELECT created_at FROM auth_attempts
 WHERE kind = $1 AND subject = $2 AND created_at > $3
 ORDER BY created_at DESC LIMIT 1 OFFSET $4";
    let values = vec![
        attempt.as_str().into(),
        subject.into(),
        (now - limit.window).into(),
        i64::from(limit.max - 1).into(),
    ];
    let Some(row) = conn.query_one_raw(stmt(conn, NTH_RECENT, values)).await? else {
        return Ok(());
    };
    let oldest_counted: DateTime<Utc> = row.try_get_by_index(0)?;
    let wait = (oldest_counted + limit.window - now).num_milliseconds();
    Err(Error::RateLimited {
        retry_after_secs: u64::try_from(wait).unwrap_or(0).div_ceil(1000).max(1),
    })
}

pub async fn record(
    conn: &impl ConnectionTrait,
    attempt: Attempt,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    const RECORD: &str =
        "INSERT INTO auth_attempts (kind, subject, created_at) VALUES ($1, $2, $3)";
    let values = vec![attempt.as_str().into(), subject.into(), now.into()];
    conn.execute_raw(stmt(conn, RECORD, values)).await?;
    Ok(())
}

/// Forgets `subject`'s attempts, as after a successful login.
pub async fn clear(conn: &impl ConnectionTrait, attempt: Attempt, subject: &str) -> Result<()> {
    const CLEAR: &str = "DELETE FROM auth_attempts WHERE kind = $1 AND subject = $2";
    conn.execute_raw(stmt(
        conn,
        CLEAR,
        vec![attempt.as_str().into(), subject.into()],
    ))
    .await?;
    Ok(())
}

/// Deletes attempts older than `before`; run by the background sweep.
pub async fn forget_before(conn: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64> {
    const FORGET: &str = "DELETE FROM auth_attempts WHERE created_at <= $1";
    let done = conn
        .execute_raw(stmt(conn, FORGET, vec![before.into()]))
        .await?;
    Ok(done.rows_affected())
}
