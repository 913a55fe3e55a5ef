//! The database handle every service holds: sea-orm's pool for
//! transactions and, on PostgreSQL, connections of its own for statements
//! outside one.
//!
//! Why its own: sqlx's pool checks every connection it gets back with a
//! `Sync` message and waits for PostgreSQL's answer (`return_to_pool` in
//! sqlx-core 0.9), so a single statement costs two round trips. The check
//! exists for a connection left mid-answer by a statement whose future was
//! dropped. Here a connection goes straight back to the idle list when its
//! statement ran to the end (or PostgreSQL refused it without ending the
//! session, which leaves the connection in step); only a statement cut off
//! mid-way (its request dropped, say, when the client went away) costs
//! that `Sync`, sent by a task of its own before the connection is given
//! back. Whatever a
//! statement left unread (the rows after the one a `query_one` wanted) is
//! drained by the next statement on that connection, from what has already
//! arrived: sqlx does that before every statement.
//!
//! Transactions stay on sea-orm's pool: their BEGIN and COMMIT are round
//! trips anyway, and their statements need sea-orm's transaction type.
//! SQLite has no such cost (its "connection" is a thread in this process):
//! there everything goes through sea-orm.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::sea_query::Values;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgSeverity};
use sea_orm::sqlx::{self, Connection as _, Executor as _};
use sea_orm::{
    AccessMode, ConnAcquireErr, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, ExecResult, IsolationLevel, QueryResult, RuntimeErr, Statement,
    TransactionError, TransactionOptions, TransactionTrait,
};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection idle this long is pinged before it is used again: it may
/// have been closed by the server or a proxy in the meantime. (sea-orm's
/// pool is set up the same way, see `app::connect`.)
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(30);

/// How long a connection whose statement was cut off may take to answer
/// what was sent before it is closed instead.
const IN_STEP_WITHIN: Duration = Duration::from_secs(10);

/// The database: cheap to clone, shared by every service.
#[derive(Clone)]
pub struct Db {
    pool: DatabaseConnection,
    statements: Option<Arc<Connections>>,
}

impl From<DatabaseConnection> for Db {
    /// Everything through sea-orm's pool: SQLite, tools and tests.
    fn from(pool: DatabaseConnection) -> Self {
        Self {
            pool,
            statements: None,
        }
    }
}

impl Db {
    /// Single statements on PostgreSQL go through `statements`; everything
    /// else through `pool`.
    pub fn new(pool: DatabaseConnection, statements: Connections) -> Self {
        Self {
            pool,
            statements: Some(Arc::new(statements)),
        }
    }

    /// Which database this is (also `ConnectionTrait`'s, callable without
    /// importing the trait, as on sea-orm's connection).
    pub fn get_database_backend(&self) -> DbBackend {
        self.pool.get_database_backend()
    }

    /// sea-orm's pool, for what needs sea-orm's own type (migrations).
    pub fn pool(&self) -> &DatabaseConnection {
        &self.pool
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        match &self.statements {
            Some(statements) => statements.ping().await,
            None => self.pool.ping().await,
        }
    }

    /// Closes every connection: idle ones now, leased ones as they come back.
    pub async fn close(self) -> Result<(), DbErr> {
        if let Some(statements) = &self.statements {
            statements.close().await;
        }
        self.pool.close().await
    }

    /// Open connections, and how many of them are idle.
    pub fn connections(&self) -> (u32, u32) {
        let (mut open, mut idle) = match self.pool.get_database_backend() {
            DbBackend::Postgres => {
                let pool = self.pool.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            DbBackend::Sqlite => {
                let pool = self.pool.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => (0, 0),
        };
        let (statements_open, statements_idle) = self.connections_for_statements();
        open += statements_open;
        idle += statements_idle as usize;
        (open, u32::try_from(idle).unwrap_or(u32::MAX))
    }

    /// Of those, the connections for single statements (none on SQLite).
    pub fn connections_for_statements(&self) -> (u32, u32) {
        match &self.statements {
            Some(statements) => (
                statements.open.load(Ordering::Relaxed),
                u32::try_from(statements.idle_count()).unwrap_or(u32::MAX),
            ),
            None => (0, 0),
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Db {
    fn get_database_backend(&self) -> DbBackend {
        self.pool.get_database_backend()
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        match &self.statements {
            Some(statements) => statements.execute(statement).await,
            None => self.pool.execute_raw(statement).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match &self.statements {
            Some(statements) => statements.execute_unprepared(sql).await,
            None => self.pool.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.statements {
            Some(statements) => statements.query_one(statement).await,
            None => self.pool.query_one_raw(statement).await,
        }
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.statements {
            Some(statements) => statements.query_all(statement).await,
            None => self.pool.query_all_raw(statement).await,
        }
    }
}

type Callback<'c, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>;

#[async_trait::async_trait]
impl TransactionTrait for Db {
    type Transaction = DatabaseTransaction;

    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.pool.begin().await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.pool
            .begin_with_config(isolation_level, access_mode)
            .await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        self.pool.begin_with_options(options).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> Callback<'c, T, E> + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.pool.transaction(callback).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c DatabaseTransaction) -> Callback<'c, T, E> + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.pool
            .transaction_with_config(callback, isolation_level, access_mode)
            .await
    }
}

/// PostgreSQL connections for single statements: at most `max` open, each
/// leased to one statement at a time.
pub struct Connections {
    options: PgConnectOptions,
    idle: Mutex<Vec<Idle>>,
    /// One per connection that may be open: a lease holds one, and so does
    /// a connection being brought back in step.
    leases: Arc<Semaphore>,
    /// Open connections: idle, leased or being brought back in step.
    open: AtomicU32,
    acquire_timeout: Duration,
}

struct Idle {
    connection: PgConnection,
    since: Instant,
}

impl Connections {
    /// Opens `min` connections now; up to `max` are opened as needed. A
    /// statement that waits longer than `acquire_timeout` for one fails
    /// with `DbErr::ConnectionAcquire`, having sent nothing.
    pub async fn open(
        options: PgConnectOptions,
        min: u32,
        max: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, DbErr> {
        let connections = Self {
            options,
            idle: Mutex::new(Vec::new()),
            leases: Arc::new(Semaphore::new(max.max(1) as usize)),
            open: AtomicU32::new(0),
            acquire_timeout,
        };
        for _ in 0..min.min(max) {
            let connecting = PgConnection::connect_with(&connections.options);
            let connection = tokio::time::timeout(acquire_timeout, connecting)
                .await
                .map_err(|_| DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))?
                .map_err(|error| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(error))))?;
            connections.open.fetch_add(1, Ordering::Relaxed);
            connections.give_back(connection);
        }
        Ok(connections)
    }

    async fn execute(self: &Arc<Self>, statement: Statement) -> Result<ExecResult, DbErr> {
        let mut lease = self.lease().await?;
        let answer = bind(&statement).execute(lease.connection()).await;
        lease.done(answer.as_ref().err());
        answer.map(Into::into).map_err(exec_error)
    }

    async fn execute_unprepared(self: &Arc<Self>, sql: &str) -> Result<ExecResult, DbErr> {
        let mut lease = self.lease().await?;
        let answer = lease
            .connection()
            .execute(sqlx::AssertSqlSafe(sql.to_owned()))
            .await;
        lease.done(answer.as_ref().err());
        answer.map(Into::into).map_err(exec_error)
    }

    async fn query_one(
        self: &Arc<Self>,
        statement: Statement,
    ) -> Result<Option<QueryResult>, DbErr> {
        let mut lease = self.lease().await?;
        let answer = bind(&statement).fetch_optional(lease.connection()).await;
        lease.done(answer.as_ref().err());
        answer.map(|row| row.map(Into::into)).map_err(query_error)
    }

    async fn query_all(self: &Arc<Self>, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut lease = self.lease().await?;
        let answer = bind(&statement).fetch_all(lease.connection()).await;
        lease.done(answer.as_ref().err());
        answer
            .map(|rows| rows.into_iter().map(Into::into).collect())
            .map_err(query_error)
    }

    async fn ping(self: &Arc<Self>) -> Result<(), DbErr> {
        let mut lease = self.lease().await?;
        let answer = lease.connection().ping().await;
        lease.done(answer.as_ref().err());
        answer.map_err(|error| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(error))))
    }

    async fn close(&self) {
        self.leases.close();
        let idle = std::mem::take(&mut *self.idle_list());
        for Idle { connection, .. } in idle {
            self.open.fetch_sub(1, Ordering::Relaxed);
            connection.close().await.ok();
        }
    }

    /// A connection for one statement, within the acquire timeout: an idle
    /// one (pinged first if idle for long), else a new one.
    async fn lease(self: &Arc<Self>) -> Result<Lease, DbErr> {
        tokio::time::timeout(self.acquire_timeout, self.lease_unbounded())
            .await
            .unwrap_or(Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)))
    }

    async fn lease_unbounded(self: &Arc<Self>) -> Result<Lease, DbErr> {
        let mut permit = Arc::clone(&self.leases)
            .acquire_owned()
            .await
            .map_err(|_| DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed))?;
        let mut retry_after = Duration::from_millis(10);
        loop {
            let idle = self.idle_list().pop();
            if let Some(Idle { connection, since }) = idle {
                let mut lease = Lease::new(self, connection, permit);
                if since.elapsed() < CHECK_IDLE_AFTER {
                    return Ok(lease);
                }
                let answer = lease.connection().ping().await;
                if answer.is_ok() {
                    lease.done(None);
                    return Ok(lease);
                }
                permit = lease.close(); // and another one tried
                continue;
            }
            let mut opening = Opening::count(self);
            match PgConnection::connect_with(&self.options).await {
                Ok(connection) => {
                    opening.opened = true;
                    return Ok(Lease::new(self, connection, permit));
                }
                Err(error) => {
                    tracing::warn!(%error, "opening a database connection");
                    // Until the acquire timeout, as sqlx's pool does: a
                    // database restarting is waited for, briefly.
                    tokio::time::sleep(retry_after).await;
                    retry_after = (retry_after * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// A connection in step, for the next statement (closed if the pool is).
    fn give_back(&self, connection: PgConnection) {
        if self.leases.is_closed() {
            self.forget(connection);
            return;
        }
        self.idle_list().push(Idle {
            connection,
            since: Instant::now(),
        });
    }

    /// Closes a connection by dropping its socket: PostgreSQL ends the
    /// session (and any statement still running on it, once it notices).
    fn forget(&self, connection: PgConnection) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        drop(connection);
    }

    /// A connection whose statement was cut off mid-way (its request was
    /// dropped, say, because the client went away) has an answer still on
    /// its way, or part of a statement still to send. Closing it would cost
    /// a new connection (hundreds of milliseconds under load); instead a
    /// task sends a `Sync` and reads up to PostgreSQL's "ready", as sqlx
    /// does for every connection, and gives the connection back in step.
    /// It holds its lease meanwhile, so no more than `max` are ever open.
    fn bring_back_in_step(
        self: Arc<Self>,
        mut connection: PgConnection,
        permit: OwnedSemaphorePermit,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.forget(connection);
            return;
        };
        runtime.spawn(async move {
            let synced = tokio::time::timeout(IN_STEP_WITHIN, connection.ping()).await;
            match synced {
                Ok(Ok(())) => self.give_back(connection),
                _ => self.forget(connection),
            }
            drop(permit);
        });
    }

    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Nothing panics while holding it; a poisoned list is still a list.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn idle_count(&self) -> usize {
        self.idle_list().len()
    }
}

/// A connection being opened, counted in `open` from the start (so that a
/// lease timing out while connecting leaves the count right): uncounted
/// again unless it was opened.
struct Opening<'a> {
    connections: &'a Connections,
    opened: bool,
}

impl<'a> Opening<'a> {
    fn count(connections: &'a Connections) -> Self {
        connections.open.fetch_add(1, Ordering::Relaxed);
        Self {
            connections,
            opened: false,
        }
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if !self.opened {
            self.connections.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Where a leased connection stands with PostgreSQL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing sent, or everything answered: ready for the next statement.
    InStep,
    /// A statement under way: if the lease is dropped now, it was cut off.
    Running,
    /// The session is gone or garbled: only good for closing.
    Broken,
}

/// One connection, leased to one statement, holding one of the pool's
/// permits. Dropped, the connection goes back in step, is brought back in
/// step, or is closed, according to its `State`.
struct Lease {
    connections: Arc<Connections>,
    connection: Option<PgConnection>,
    permit: Option<OwnedSemaphorePermit>,
    state: State,
}

impl Lease {
    fn new(
        connections: &Arc<Connections>,
        connection: PgConnection,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Self {
            connections: Arc::clone(connections),
            connection: Some(connection),
            permit: Some(permit),
            state: State::InStep,
        }
    }

    /// The connection, for a statement: `Running` until `done`.
    fn connection(&mut self) -> &mut PgConnection {
        self.state = State::Running;
        self.connection
            .as_mut()
            .expect("a lease holds its connection")
    }

    /// The statement ended, with `error` if it failed: PostgreSQL refusing
    /// a statement leaves the connection in step, unless it ended the
    /// session with it (a FATAL error: terminated, shutting down); any other
    /// error (the socket, the protocol, decoding half an answer) may not.
    fn done(&mut self, error: Option<&sqlx::Error>) {
        let in_step = match error {
            None | Some(sqlx::Error::RowNotFound) => true,
            Some(sqlx::Error::Database(refusal)) => refusal
                .try_downcast_ref::<PgDatabaseError>()
                .is_some_and(|refusal| {
                    !matches!(refusal.severity(), PgSeverity::Fatal | PgSeverity::Panic)
                }),
            Some(_) => false,
        };
        self.state = if in_step {
            State::InStep
        } else {
            State::Broken
        };
    }

    /// Closes the connection now, keeping the permit for another.
    fn close(mut self) -> OwnedSemaphorePermit {
        if let Some(connection) = self.connection.take() {
            self.connections.forget(connection);
        }
        self.permit.take().expect("a lease holds its permit")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (Some(connection), Some(permit)) = (self.connection.take(), self.permit.take()) else {
            return;
        };
        match self.state {
            State::InStep => self.connections.give_back(connection),
            State::Running => {
                Arc::clone(&self.connections).bring_back_in_step(connection, permit);
                return;
            }
            State::Broken => self.connections.forget(connection),
        }
        // Released after the connection is idle again, so that whoever the
        // permit wakes finds it.
        drop(permit);
    }
}

fn bind(statement: &Statement) -> sqlx::query::Query<'_, sqlx::Postgres, SqlxValues> {
    let values = statement.values.clone().unwrap_or(Values(Vec::new()));
    sqlx::query_with(
        sqlx::AssertSqlSafe(statement.sql.as_str()),
        SqlxValues(values),
    )
}

fn exec_error(error: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(error)))
}

fn query_error(error: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(error)))
}
