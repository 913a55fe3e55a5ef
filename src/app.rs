//! Builds the whole application: the pool (migrated), the schema and the
//! router, bound to a listener, then serves until a shutdown signal, with
//! the background workers (the sweeper, the mailer, the webhook deliverer)
//! beside it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::ConnectOptions as _;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, PublicOrigin};
use crate::http::server;
use crate::metrics::Metrics;
use crate::oidc::Providers;
use crate::service::mail::Mailer;
use crate::service::{limits, retention, sign_in};
use crate::state::AppState;
use crate::store::db::{Connections, Db};
use crate::store::requests;
use crate::{graphql, http};

pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `/metrics` on an address of its own (`KEYMETER_METRICS_BIND`), if set.
    metrics: Option<(TcpListener, Router)>,
    state: AppState,
    limits: server::Limits,
}

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As `build`, with the clock the tests control.
    pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let db = connect(config).await?;
        migrate(&db).await?;
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        let listening = listener.local_addr()?;
        let public = config
            .public_origin(listening)
            .map_err(anyhow::Error::msg)?;
        let providers = discover_providers(config, &public).await?;
        let metrics = Arc::new(Metrics::new());
        let mail_settings = config.mail_settings().map_err(anyhow::Error::msg)?;
        let mail = Mailer::new(mail_settings, db.clone(), clock.clone())?;
        let state = AppState::new(
            db.clone(),
            clock,
            metrics.clone(),
            config,
            &public,
            providers,
            mail,
        );
        let schema = graphql::schema(state.clone(), metrics.clone(), config);
        let metrics_listener = bind_metrics(config, &metrics, &db).await?;
        Ok(Self {
            listener,
            metrics: metrics_listener,
            router: http::router(
                schema,
                state.metering.clone(),
                db,
                metrics,
                config,
                &public,
                listening,
            )?,
            state,
            limits: server_limits(config),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `/metrics` is served when it has an address of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let (listener, _) = self.metrics.as_ref()?;
        Some(
            listener
                .local_addr()
                .expect("a bound listener has an address"),
        )
    }

    /// Serves until `shutdown` resolves, lets in-flight requests finish
    /// within the shutdown deadline, then closes the pool. The metrics
    /// address, if any, is served and stopped along with the API's.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "keymeter listening");
        if let Some(addr) = self.metrics_addr() {
            tracing::info!(%addr, "metrics listening");
        }
        let sweeper = tokio::spawn(sweep_expired(self.state.clone()));
        // Email left by earlier runs or other processes is sent from here too.
        let mailer = tokio::spawn(self.state.mail.clone().deliver_forever());
        // Alerts raised by charges here or in other processes, fanned out once.
        let alerts = tokio::spawn(self.state.alerts.clone().fan_out_forever());
        // So are webhooks, each attempt once between the processes.
        let webhooks = tokio::spawn(self.state.webhooks.clone().deliver_forever());
        let (stop, stopping) = watch::channel(false);
        let api = server::serve(
            self.listener,
            self.router,
            self.limits,
            stopped(stopping.clone()),
        );
        let metrics = async {
            if let Some((listener, router)) = self.metrics {
                server::serve(listener, router, self.limits, stopped(stopping)).await;
            }
        };
        let signal = async {
            shutdown.await;
            let _ = stop.send(true);
        };
        tokio::join!(signal, api, metrics);
        sweeper.abort();
        // An email cut off mid-send stays in the outbox, leased: once the
        // lease runs out, this process or another sends it again.
        mailer.abort();
        // A fan-out cut off is rolled back whole; the next look redoes it.
        alerts.abort();
        // Likewise an attempt cut off mid-request: made again once its
        // lease runs out (a receiver may see it twice; the webhook-id says so).
        webhooks.abort();
        // A connection still busy past the deadline must not hold the exit.
        let closed = tokio::time::timeout(self.limits.shutdown, self.state.db.clone().close());
        match closed.await {
            Ok(closed) => closed.context("closing the database pool")?,
            Err(_) => tracing::warn!("the database pool did not close in time"),
        }
        Ok(())
    }
}

/// Every configured sign-in provider, discovered now: a provider that
/// cannot be reached or is misconfigured stops the start with its name.
async fn discover_providers(config: &Config, public: &PublicOrigin) -> anyhow::Result<Providers> {
    let ids: Vec<String> = config.provider_ids().map(str::to_owned).collect();
    if ids.is_empty() {
        return Ok(Providers::none());
    }
    let redirect_uri = format!("{}/auth/callback", public.as_str());
    Providers::discover(&config.oidc, &ids, &redirect_uri).await
}

/// Resolves once `stopping` says so (or its sender is gone): one shutdown
/// signal, seen by every listener.
async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// The metrics address's listener and routes, when `/metrics` has one.
async fn bind_metrics(
    config: &Config,
    metrics: &Arc<Metrics>,
    db: &Db,
) -> anyhow::Result<Option<(TcpListener, Router)>> {
    let Some(addr) = config.metrics_bind.filter(|_| config.metrics) else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding KEYMETER_METRICS_BIND {addr}"))?;
    Ok(Some((
        listener,
        http::metrics_router(metrics.clone(), db.clone()),
    )))
}

fn server_limits(config: &Config) -> server::Limits {
    server::Limits {
        header_read: Duration::from_secs(config.header_read_timeout_secs),
        keep_alive: Duration::from_secs(config.keep_alive_timeout_secs),
        max_connections: config.max_connections,
        // hyper's minimum is 8 KiB; a head up to 4x the header bound is read
        // and answered with our JSON 431, a larger one with hyper's own.
        max_buffered_head: (4 * config.max_header_bytes).max(8192),
        shutdown: Duration::from_secs(config.shutdown_timeout_secs),
    }
}

/// Opens the database. SQLite runs in WAL mode with a busy timeout and,
/// unless configured otherwise, one connection (see
/// `Config::max_connections`). PostgreSQL gets two sets of connections, each
/// up to that many: sea-orm's pool for transactions and `store::db`'s for
/// single statements.
pub async fn connect(config: &Config) -> anyhow::Result<Db> {
    let pool = connect_pool(config).await?;
    if pool.get_database_backend() != DbBackend::Postgres {
        return Ok(Db::from(pool));
    }
    let mut options: PgConnectOptions = config
        .database_url
        .parse()
        .context("reading DATABASE_URL")?;
    options = options.statement_cache_capacity(512);
    options = if config.log_queries {
        options.log_statements(log::LevelFilter::Info)
    } else {
        options.disable_statement_logging()
    };
    let statements = Connections::open(
        options,
        config.min_connections(),
        config.max_connections(),
        config.acquire_timeout(),
    )
    .await
    .context("connecting to the database (check DATABASE_URL)")?;
    Ok(Db::new(pool, statements))
}

async fn connect_pool(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(config.database_url.clone());
    options
        .max_connections(config.max_connections())
        // Opened at start and kept: a connection opened under load (say,
        // while autovacuum makes its first pass over freshly written tables)
        // held requests back for seconds, once past the acquire timeout.
        .min_connections(config.min_connections())
        .acquire_timeout(config.acquire_timeout())
        .connect_timeout(config.acquire_timeout())
        .sqlx_logging(config.log_queries)
        // A ping on every acquire would double the round trips of every
        // query; a connection idle for a while is still checked first.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        // Group commit issues statements for each batch size (1 to 64
        // rows): keep them all prepared.
        .map_sqlx_postgres_opts(|opts| opts.statement_cache_capacity(512))
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                // So that sweeps can shrink the file (`service::retention`).
                .auto_vacuum(sea_orm::sqlx::sqlite::SqliteAutoVacuum::Incremental)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .create_if_missing(true)
        });
    Database::connect(options)
        .await
        .context("connecting to the database (check DATABASE_URL)")
}

/// Applies pending migrations. On PostgreSQL they run in one transaction
/// under an advisory lock, so processes starting together migrate once.
pub async fn migrate(db: &Db) -> anyhow::Result<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        let txn = db.begin().await?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(4242424242)")
            .await?;
        Migrator::up(&txn, None)
            .await
            .context("running migrations")?;
        txn.commit().await?;
    } else {
        Migrator::up(db.pool(), None)
            .await
            .context("running migrations")?;
        retention::prepare_sqlite(db)
            .await
            .context("turning on SQLite's incremental vacuum")?;
    }
    Ok(())
}

/// Deletes, every KEYMETER_SWEEP_INTERVAL_SECS in the background, what has
/// outlived its use: usage past its retention (`service::retention`),
/// idempotency answers past 24 hours, old auth attempts and sign-in flows,
/// webhook deliveries ended more than 30 days ago.
/// Requests never wait on it, and with several processes each sweeps (a
/// no-op when another just did).
async fn sweep_expired(state: AppState) {
    let period = state.retention.sweep_every;
    // The first sweep waits a period: processes starting together do not
    // all sweep at once, and start-up issues only its own statements.
    let first = tokio::time::Instant::now() + period;
    let mut every = tokio::time::interval_at(first, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match retention::sweep_usage(&state.db, &state.retention, state.clock.now()).await {
            Ok(swept) if swept.events + swept.hours > 0 => {
                tracing::info!(
                    events = swept.events,
                    hours = swept.hours,
                    "swept usage past its retention"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not sweep usage past its retention"),
        }
        let now = state.clock.now();
        if let Err(err) = requests::forget_expired(&state.db, now).await {
            tracing::warn!(error = %err, "could not forget expired request ids");
        }
        let longest_window = state.policy.longest_limit_window();
        if let Err(err) = limits::forget_before(&state.db, now - longest_window).await {
            tracing::warn!(error = %err, "could not forget old auth attempts");
        }
        if let Err(err) = sign_in::forget_expired_flows(&state.db, now).await {
            tracing::warn!(error = %err, "could not forget expired sign-in flows");
        }
    }
}
