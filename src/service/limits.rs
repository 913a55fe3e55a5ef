//! Rate limits on the expensive or guessable operations: failed logins (per
//! email and client address, per address, per email), and signups and
//! provider sign-ins per client address. Attempts are rows in the database, so a limit holds across every
//! keymeter process.
//!
//! An attempt is counted by the statement that decides whether it may go
//! on, before any password is hashed: `reserve` inserts the attempt's row
//! only if every limit on it still has room, and inserts nothing otherwise.
//! However many attempts race, in one process or several, at most `max` of
//! them get past a limit:
//!
//! - On SQLite that one `INSERT … SELECT … WHERE (count) < max` statement is
//!   the whole decision, and SQLite runs one writing statement at a time,
//!   its counts read after it holds the write lock.
//! - On PostgreSQL, under READ COMMITTED, two such statements could both
//!   count `max - 1` and both insert. So the insert runs in a short
//!   transaction that first takes a transaction-scoped advisory lock on
//!   each value its limits count by (the client address, the email):
//!   attempts that one limit could count together share that lock and
//!   queue on it, and each, once it holds the lock, counts with a fresh
//!   snapshot that sees every attempt committed before it. Locks are always
//!   taken address first, then email, so waiting attempts never deadlock.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, IsolationLevel, Statement, TransactionTrait, Value};

use crate::domain::{Limit, LoginLimits};
use crate::error::{Error, Result};
use crate::store::db::Db;

/// The bounds of the three login limits, tightest first.
fn login_bounds(limits: &LoginLimits) -> [Bound; 3] {
    [
        Bound::new(Scope::SubjectAndAddress, limits.per_email_and_address),
        Bound::new(Scope::Address, limits.per_address),
        Bound::new(Scope::Subject, limits.per_email),
    ]
}

/// An attempt's row: its kind, what it is for (the email for a login, the
/// client address for a signup) and the client address it came from.
#[derive(Debug, Clone, Copy)]
enum Attempt<'a> {
    Login { email: &'a str, address: &'a str },
    Signup { address: &'a str },
    SignIn { address: &'a str },
}

impl Attempt<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Self::Login { .. } => "login",
            Self::Signup { .. } => "signup",
            Self::SignIn { .. } => "sign_in",
        }
    }

    fn subject(&self) -> &str {
        match self {
            Self::Login { email, .. } => email,
            Self::Signup { address } | Self::SignIn { address } => address,
        }
    }

    fn address(&self) -> &str {
        match self {
            Self::Login { address, .. } | Self::Signup { address } | Self::SignIn { address } => {
                address
            }
        }
    }
}

/// Which earlier attempts of the same kind a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Subject,
    Address,
    SubjectAndAddress,
}

#[derive(Debug, Clone, Copy)]
struct Bound {
    scope: Scope,
    limit: Limit,
}

impl Bound {
    fn new(scope: Scope, limit: Limit) -> Self {
        Self { scope, limit }
    }
}

/// A login attempt counted by `reserve_login`: its row, if a limit is on.
#[derive(Debug, Clone, Copy)]
#[must_use = "a successful login forgives its reservation"]
pub struct Reservation(Option<i64>);

/// Counts a login attempt as a failure before its password is checked, or
/// refuses it (RATE_LIMITED, counted nowhere) when any login limit is full.
pub async fn reserve_login(
    db: &Db,
    limits: &LoginLimits,
    email: &str,
    address: &str,
    now: DateTime<Utc>,
) -> Result<Reservation> {
    let attempt = Attempt::Login { email, address };
    reserve(db, attempt, &login_bounds(limits), now)
        .await
        .map(Reservation)
}

/// Counts a signup from `address`, or refuses it when the limit is full.
pub async fn reserve_signup(
    db: &Db,
    limit: Limit,
    address: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let attempt = Attempt::Signup { address };
    reserve(db, attempt, &[Bound::new(Scope::Address, limit)], now).await?;
    Ok(())
}

/// Counts a provider sign-in started from `address`, or refuses it when
/// the limit is full: each start stores a flow, so it is counted before it.
pub async fn reserve_sign_in(
    db: &Db,
    limit: Limit,
    address: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let attempt = Attempt::SignIn { address };
    reserve(db, attempt, &[Bound::new(Scope::Address, limit)], now).await?;
    Ok(())
}

/// After a successful login, forgets the attempts at this email from this
/// address up to and including this one: the owner's own typos. Failures at
/// this email from other addresses, and this address's failures at other
/// emails, stay counted (a success proves nothing about them), and so do
/// attempts reserved after this one.
pub async fn forgive_login(
    db: &Db,
    email: &str,
    address: &str,
    reservation: Reservation,
) -> Result<()> {
    let Reservation(Some(id)) = reservation else {
        return Ok(());
    };
    // Ids at one (email, address) grow in the order the attempts were
    // counted: each id is drawn while its attempt holds that email's or that
    // address's lock (PostgreSQL), or the write lock (SQLite).
    const FORGIVE: &str = "DELETE FROM auth_attempts
 WHERE kind = 'login' AND subject = $1 AND address = $2 AND id <= $3";
    let values = vec![email.into(), address.into(), id.into()];
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        FORGIVE,
        values,
    ))
    .await?;
    Ok(())
}

/// Deletes attempts older than `before`; run by the background sweep.
pub async fn forget_before(conn: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64> {
    const FORGET: &str = "DELETE FROM auth_attempts WHERE created_at <= $1";
    let done = conn
        .execute_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            FORGET,
            vec![before.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// Inserts the attempt if every bound that is on has room (see the module
/// docs for why this is race-free), returning its row id; RATE_LIMITED
/// otherwise. None when every bound is off: there is nothing to count.
async fn reserve(
    db: &Db,
    attempt: Attempt<'_>,
    bounds: &[Bound],
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    let bounds: Vec<Bound> = bounds.iter().copied().filter(|b| b.limit.max > 0).collect();
    if bounds.is_empty() {
        return Ok(None);
    }
    let backend = db.get_database_backend();
    let insert = insert_if_room(attempt, &bounds, now).statement(backend);
    let inserted = if backend == DbBackend::Postgres {
        // Explicitly READ COMMITTED: each statement's snapshot is taken when
        // it starts, so the insert, which starts once the locks are held,
        // sees every attempt counted before. Under REPEATABLE READ the
        // snapshot would date from the lock statement, before the wait.
        let txn = db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await?;
        txn.execute_raw(lock_counted_values(attempt, &bounds).statement(backend))
            .await?;
        let inserted = txn.query_one_raw(insert).await?;
        txn.commit().await?;
        inserted
    } else {
        db.query_one_raw(insert).await?
    };
    match inserted {
        Some(row) => Ok(Some(row.try_get_by_index(0)?)),
        None => Err(refusal(db, attempt, &bounds, now).await?),
    }
}

/// `INSERT … SELECT <the attempt> WHERE <each bound's count> < <its max> RETURNING id`.
fn insert_if_room(attempt: Attempt<'_>, bounds: &[Bound], now: DateTime<Utc>) -> Sql {
    let mut sql = Sql::default();
    let row = [
        sql.bind(attempt.kind()),
        sql.bind(attempt.subject()),
        sql.bind(attempt.address()),
        sql.bind(now),
    ]
    .join(", ");
    let room: Vec<String> = bounds
        .iter()
        .map(|bound| {
            let counted = sql.counted_by(attempt, bound, now);
            let max = sql.bind(i64::from(bound.limit.max));
            format!("(SELECT COUNT(*) FROM auth_attempts WHERE {counted}) < {max}")
        })
        .collect();
    sql.text = format!(
        "INSERT INTO auth_attempts (kind, subject, address, created_at)
 SELECT {row} WHERE {}
 RETURNING id",
        room.join(" AND ")
    );
    sql
}

/// PostgreSQL: one advisory lock per value the bounds count by, address
/// before subject. Two attempts one bound could count together share the
/// bound's values, so they share a lock; a bound on (subject, address) is
/// covered by the subject's lock. Lock classes are per kind and column, so
/// a signup never waits on a login, nor an address on an email.
fn lock_counted_values(attempt: Attempt<'_>, bounds: &[Bound]) -> Sql {
    let mut sql = Sql::default();
    let mut locks = Vec::new();
    let by_address = bounds.iter().any(|b| b.scope == Scope::Address);
    let by_subject = bounds.iter().any(|b| b.scope != Scope::Address);
    for (column, value, wanted) in [
        ("address", attempt.address(), by_address),
        ("subject", attempt.subject(), by_subject),
    ] {
        if wanted {
            let class = sql.bind(format!(
                "keymeter.auth_attempts.{}.{column}",
                attempt.kind()
            ));
            let key = sql.bind(value);
            locks.push(format!(
                "pg_advisory_xact_lock(hashtext({class}), hashtext({key}))"
            ));
        }
    }
    sql.text = format!("SELECT {}", locks.join(", "));
    sql
}

/// RATE_LIMITED, with the seconds until every full bound has room again:
/// a bound does once the `max`-th most recent attempt it counts leaves its
/// window.
async fn refusal(
    db: &Db,
    attempt: Attempt<'_>,
    bounds: &[Bound],
    now: DateTime<Utc>,
) -> Result<Error> {
    let backend = db.get_database_backend();
    let mut wait = Duration::zero();
    for bound in bounds {
        let mut sql = Sql::default();
        let counted = sql.counted_by(attempt, bound, now);
        let offset = sql.bind(i64::from(bound.limit.max - 1));
        sql.text = format!(
            "SELECT created_at FROM auth_attempts WHERE {counted}
 ORDER BY created_at DESC LIMIT 1 OFFSET {offset}"
        );
        if let Some(row) = db.query_one_raw(sql.statement(backend)).await? {
            let oldest_counted: DateTime<Utc> = row.try_get_by_index(0)?;
            wait = wait.max(oldest_counted + bound.limit.window - now);
        }
    }
    let wait_ms = u64::try_from(wait.num_milliseconds()).unwrap_or(0);
    Ok(Error::RateLimited {
        retry_after_secs: wait_ms.div_ceil(1000).max(1),
    })
}

/// A statement's text and its values, each placeholder numbered as its
/// value is bound, so that no statement built here can misnumber one.
#[derive(Default)]
struct Sql {
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    /// The condition selecting the attempts `bound` counts against `attempt`.
    fn counted_by(&mut self, attempt: Attempt<'_>, bound: &Bound, now: DateTime<Utc>) -> String {
        let mut condition = format!("kind = {}", self.bind(attempt.kind()));
        if bound.scope != Scope::Address {
            condition += &format!(" AND subject = {}", self.bind(attempt.subject()));
        }
        if bound.scope != Scope::Subject {
            condition += &format!(" AND address = {}", self.bind(attempt.address()));
        }
        let since = self.bind(now - bound.limit.window);
        condition + &format!(" AND created_at > {since}")
    }

    fn statement(self, backend: DbBackend) -> Statement {
        Statement::from_sql_and_values(backend, self.text, self.values)
    }
}
