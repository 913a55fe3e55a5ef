//! The HTTP face of keymeter: its routes, what each request must look like
//! to reach the schema, the headers every answer carries, and the server
//! that holds connections to their deadlines.

mod assets;
mod endpoint;
mod gateway;
mod headers;
mod pages;
mod refusal;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use crate::store::db::Db;
use anyhow::Context as _;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get, post, MethodRouter};
use axum::{Json, Router};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::config::{Config, PublicOrigin};
use crate::graphql::KeymeterSchema;
use crate::metering::Metering;
use crate::metrics::Metrics;
use endpoint::Endpoint;
use gateway::Gateway;

/// Every route, behind the layers every request passes.
pub fn router(
    schema: KeymeterSchema,
    metering: Metering,
    db: Db,
    metrics: Arc<Metrics>,
    config: &Config,
    public: &PublicOrigin,
    listening: std::net::SocketAddr,
) -> anyhow::Result<Router> {
    let gateway = Gateway {
        metering,
        metrics: metrics.clone(),
    };
    let endpoint = Endpoint {
        schema,
        metrics: metrics.clone(),
        documents: Arc::default(),
        trust_forwarded_for: config.trust_forwarded_for,
        max_body_bytes: config.max_body_bytes,
        body_timeout: Duration::from_secs(config.request_timeout_secs),
        page_origins: config.page_origins(public, listening).into(),
        secure_cookies: public.is_https(),
    };
    let graphql_route = if config.graphiql {
        get(headers::graphiql).post(endpoint::post)
    } else {
        post(endpoint::post)
    };
    let mut router = Router::new()
        .route(
            "/graphql",
            graphql_route.fallback(refusal::method_not_allowed),
        )
        .with_state(endpoint)
        .route(gateway::VERIFY, any(gateway::verify))
        .route("/gateway/verify/{*path}", any(gateway::verify))
        .route(
            "/gateway/refund",
            post(gateway::refund).fallback(refusal::post_only),
        )
        .with_state(gateway)
        .route("/health", get_only(health).with_state(db.clone()))
        .route("/", get_only(pages::index))
        .route("/auth/callback", get_only(pages::callback))
        .route("/invitations/accept", get_only(pages::accept_invitation))
        .route("/assets/{*path}", get_only(assets::serve));
    // With an address of their own, the metrics are not on the API's.
    if config.metrics && config.metrics_bind.is_none() {
        router = router.route("/metrics", get_only(scrape).with_state((metrics, db)));
    }
    Ok(router
        .fallback(refusal::not_found)
        .layer(cors(config)?)
        .layer(axum::middleware::from_fn_with_state(
            config.max_header_bytes,
            headers::refuse_oversized,
        ))
        .layer(axum::middleware::map_response(headers::secure))
        .layer(TraceLayer::new_for_http()))
}

/// The routes of the metrics address (`KEYMETER_METRICS_BIND`): `/metrics`
/// and nothing else, so the scraper's network reaches no more than that.
pub fn metrics_router(metrics: Arc<Metrics>, db: Db) -> Router {
    Router::new()
        .route("/metrics", get_only(scrape).with_state((metrics, db)))
        .fallback(refusal::not_metrics)
        .layer(axum::middleware::map_response(headers::secure))
        .layer(TraceLayer::new_for_http())
}

/// A route that is only read: GET and HEAD, and any other method refused
/// as JSON like every refusal (axum keeps adding `Allow: GET,HEAD`).
fn get_only<H, T, S>(handler: H) -> MethodRouter<S>
where
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    get(handler).fallback(refusal::get_only)
}

/// Browsers may call the API only from the configured dashboard origins.
fn cors(config: &Config) -> anyhow::Result<CorsLayer> {
    let origins = config
        .cors_origins()
        .map(|o| HeaderValue::from_str(o).with_context(|| format!("CORS origin {o:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600)))
}

/// The metrics, in the OpenMetrics text format Prometheus scrapes.
async fn scrape(State((metrics, db)): State<(Arc<Metrics>, Db)>) -> impl IntoResponse {
    const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.render(&db))
}

/// 200 while the database answers a ping within 2 s, 503 otherwise.
async fn health(State(db): State<Db>) -> impl IntoResponse {
    let ping = tokio::time::timeout(Duration::from_secs(2), db.ping()).await;
    match ping {
        Ok(Ok(())) => (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable"})),
        ),
    }
}
