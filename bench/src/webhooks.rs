//! `--webhook-deliveries N`: how many webhook deliveries one keymeter
//! process sustains to a fast local receiver. An endpoint is made through
//! the API for the seeded user's account, N events are enqueued for it as
//! an alert's fan-out enqueues them (`keymeter::service::webhooks::enqueue`),
//! and the time until every one has succeeded is measured. The servers must
//! be allowed to post to 127.0.0.1: pass
//! `--server-env KEYMETER_WEBHOOK_ALLOW_PRIVATE=true`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use keymeter::service::webhooks::{enqueue, WebhookEvent};
use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use crate::scenario::Seed;

pub struct DeliveryReport {
    pub deliveries: u64,
    pub seconds: f64,
    pub received: u64,
}

pub async fn measure(
    database_url: &str,
    graphql_url: &str,
    seed: &Seed,
    deliveries: u64,
) -> anyhow::Result<DeliveryReport> {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let receiver = Router::new().route(
        "/hooks",
        post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let made: serde_json::Value = reqwest::Client::new()
        .post(graphql_url)
        .bearer_auth(&seed.hot_token)
        .json(&json!({
            "query": "mutation($url: String!) { createWebhookEndpoint(input: { url: $url }) { endpoint { id } } }",
            "variables": { "url": url },
        }))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(made.get("errors").is_none(), "making the endpoint: {made}");

    let db = Database::connect(database_url).await?;
    let account: Uuid = {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT account_id FROM webhook_endpoints WHERE url = $1",
                [url.clone().into()],
            ))
            .await?
            .context("the endpoint's row")?;
        row.try_get("", "account_id")?
    };
    let started = Instant::now();
    // Enqueued in transactions of 500, as fan-outs would write them.
    let mut left = deliveries;
    while left > 0 {
        let txn = db.begin().await?;
        for _ in 0..left.min(500) {
            let event = WebhookEvent::new("webhook.test", Utc::now(), json!({ "bench": true }));
            enqueue(&txn, account, &event, Utc::now()).await?;
        }
        txn.commit().await?;
        left = left.saturating_sub(500);
    }
    let deadline = started + Duration::from_secs(600);
    loop {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'succeeded'",
            ))
            .await?
            .context("counting deliveries")?;
        let succeeded: i64 = row.try_get("", "n")?;
        if succeeded as u64 >= deliveries {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{succeeded} of {deliveries} delivered in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(DeliveryReport {
        deliveries,
        seconds: started.elapsed().as_secs_f64(),
        received: received.load(Ordering::Relaxed),
    })
}
