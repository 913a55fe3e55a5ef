//! Builds the whole application: the pool (migrated), the schema and the
//! router, bound to a listener, then serves until a shutdown signal.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_graphql::ServerError;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::graphql::{self, ClientAddress, Documents, KeymeterSchema, RequestAuth};
use crate::service::{limits, metering};
use crate::state::AppState;

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

/// How often each process deletes remembered verifyKey answers past 24 hours.
const FORGET_REQUESTS_EVERY: Duration = Duration::from_secs(10 * 60);

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As `build`, with the clock the tests control.
    pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let db = connect(config).await?;
        migrate(&db).await?;
        let state = AppState::new(db.clone(), clock, config);
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {}", config.bind))?;
        Ok(Self {
            listener,
            router: router(state.clone(), config)?,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, lets in-flight requests finish,
    /// then closes the pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "keymeter listening");
        let sweeper = tokio::spawn(sweep_expired(self.state.clone()));
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        sweeper.abort();
        self.state
            .db
            .clone()
            .close()
            .await
            .context("closing the database pool")?;
        Ok(())
    }
}

/// Opens the pool. SQLite runs in WAL mode with a busy timeout and, unless
/// configured otherwise, one connection (see `Config::max_connections`).
pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
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
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        let txn = db.begin().await?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(4242424242)")
            .await?;
        Migrator::up(&txn, None)
            .await
            .context("running migrations")?;
        txn.commit().await?;
    } else {
        Migrator::up(db, None).await.context("running migrations")?;
    }
    Ok(())
}

/// Deletes old idempotency answers and auth attempts in the background:
/// requests never wait on it, and with several processes each sweeps (a
/// no-op when another just did).
async fn sweep_expired(state: AppState) {
    let mut every = tokio::time::interval(FORGET_REQUESTS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = state.clock.now();
        if let Err(err) = metering::forget_expired_requests(&state.db, now).await {
            tracing::warn!(error = %err, "could not forget expired request ids");
        }
        let longest_window = state.policy.longest_limit_window();
        if let Err(err) = limits::forget_before(&state.db, now - longest_window).await {
            tracing::warn!(error = %err, "could not forget old auth attempts");
        }
    }
}

fn router(state: AppState, config: &Config) -> anyhow::Result<Router> {
    let graphql_state = GraphqlState {
        schema: graphql::schema(state.clone(), config),
        documents: Arc::default(),
        trust_forwarded_for: config.trust_forwarded_for,
    };
    let graphql_route = if config.graphiql {
        get(graphiql).post(graphql_handler)
    } else {
        post(graphql_handler)
    };
    Ok(Router::new()
        .route("/graphql", graphql_route)
        .with_state(graphql_state)
        .route("/health", get(health).with_state(state))
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(axum::middleware::map_response(close_after_refused_body))
        .layer(cors(&config.cors_origins)?)
        .layer(TraceLayer::new_for_http()))
}

/// A body over the limit is refused before it is read, so the connection
/// cannot carry another request; saying so keeps clients from reusing it
/// (and getting a reset on their next request).
async fn close_after_refused_body(mut response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Browsers may call the API only from the configured dashboard origins.
fn cors(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let origins = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .map(|o| HeaderValue::from_str(o).with_context(|| format!("CORS origin {o:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600)))
}

async fn graphiql() -> Html<&'static str> {
    Html(graphql::GRAPHIQL_HTML)
}

#[derive(Clone)]
struct GraphqlState {
    schema: KeymeterSchema,
    documents: Arc<Documents>,
    trust_forwarded_for: bool,
}

async fn graphql_handler(
    State(graphql): State<GraphqlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let client = client_address(&headers, peer, graphql.trust_forwarded_for);
    let mut request = request.into_inner();
    graphql.documents.prepare(&mut request);
    let request = request
        .data(RequestAuth::new(bearer_token(&headers)))
        .data(ClientAddress(client));
    let mut response = graphql.schema.execute(request).await;
    for error in &mut response.errors {
        default_error_code(error);
    }
    response.into()
}

/// Errors raised before any resolver runs (syntax, validation, variable
/// coercion such as a malformed UUID) carry no code of ours: they are all
/// malformed input.
fn default_error_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", "BAD_USER_INPUT");
    }
}

/// The TCP peer, or, behind a trusted proxy, the last address it appended
/// to `X-Forwarded-For` (earlier entries are whatever the client claimed).
fn client_address(headers: &HeaderMap, peer: SocketAddr, trust_forwarded_for: bool) -> IpAddr {
    let forwarded = || {
        let value = headers.get("x-forwarded-for")?.to_str().ok()?;
        value.rsplit(',').next()?.trim().parse().ok()
    };
    trust_forwarded_for
        .then(forwarded)
        .flatten()
        .unwrap_or(peer.ip())
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await;
    match ping {
        Ok(Ok(())) => (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable"})),
        ),
    }
}
