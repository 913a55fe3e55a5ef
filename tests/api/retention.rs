//! Bounded storage (issue 25): raw events and hourly rollups past their
//! retention are swept in batches, and everything the API shows stays the
//! same: keysUsage, DAY series, requestIds within their 24 hours. A HOUR
//! series reaching past its retention is refused, never zero-filled. On
//! SQLite the file gives the swept pages back.

use chrono::Duration;
use keymeter::domain::Retention;
use keymeter::service::retention::{sweep_usage, Swept};
use serde_json::{json, Value};

use crate::helpers::*;

const SERIES: &str = r#"query($from: DateTime, $interval: UsageInterval) {
  usageSeries(from: $from, interval: $interval) { total { credits requests } } }"#;

fn retention(app: &TestApp) -> Retention {
    app.config.retention()
}

async fn sweep(app: &TestApp) -> Swept {
    sweep_usage(&app.db, &retention(app), app.clock.now())
        .await
        .expect("sweeping")
}

fn sums(series: &Value) -> (i64, i64) {
    let total = series["usageSeries"]["total"].as_array().unwrap();
    let sum = |field: &str| total.iter().map(|p| p[field].as_i64().unwrap()).sum();
    (sum("credits"), sum("requests"))
}

on_both_backends! {
    async fn usage_past_its_retention_is_swept_and_the_api_reads_the_same(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| {
            config.event_retention_days = 1;
            config.hourly_usage_retention_days = 2;
        })
        .await;
        let user = app.signup().await;
        let secret = user.default_secret();
        let started = app.clock.now();
        for i in 0..3 {
            app.verify(json!({ "key": secret, "credits": 2, "requestId": format!("early-{i}") })).await;
        }
        app.clock.advance(Duration::hours(25));
        let late = app.verify(json!({ "key": secret, "credits": 1, "requestId": "late" })).await;
        let days = json!({ "from": (started - Duration::days(1)).to_rfc3339(), "interval": "DAY" });
        let usage = app.keys_usage(&user).await;
        let by_day = app.ok(SERIES, days.clone(), Some(&user.token)).await;
        assert_eq!(sums(&by_day), (7, 4));

        // A day on: the three first events are past their retention.
        assert_eq!(sweep(&app).await, Swept { events: 3, hours: 0, deliveries: 0 });
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [1]);
        assert_eq!(app.keys_usage(&user).await, usage);
        assert_eq!(app.ok(SERIES, days.clone(), Some(&user.token)).await, by_day);
        // A requestId within its 24 hours replays, whatever the events.
        let replay = app.verify(json!({ "key": secret, "credits": 1, "requestId": "late" })).await;
        assert_eq!(replay, late);
        assert_eq!(sweep(&app).await, Swept::default(), "a second sweep finds nothing");

        // Two more days: every hour and event is past its retention.
        app.clock.advance(Duration::days(2));
        let swept = sweep(&app).await;
        assert_eq!(swept.events, 1);
        assert!(swept.hours >= 2, "{swept:?}");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_hourly_usage").await, [0]);
        assert_eq!(app.keys_usage(&user).await, usage);
        assert_eq!(sums(&app.ok(SERIES, days, Some(&user.token)).await), (7, 4), "days are kept");
        // Hours past their retention are refused, naming the limit; recent ones answer.
        let old_hours = json!({ "from": started.to_rfc3339(), "interval": "HOUR" });
        let refused = app.graphql(SERIES, old_hours, Some(&user.token)).await;
        assert_error(&refused, "BAD_USER_INPUT");
        let message = refused["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("2 days") && message.contains("KEYMETER_HOURLY_USAGE_RETENTION_DAYS"), "{message}");
        let recent = json!({ "from": (app.clock.now() - Duration::hours(24)).to_rfc3339(), "interval": "HOUR" });
        app.ok(SERIES, recent, Some(&user.token)).await;
    }

    async fn two_sweepers_at_once_clear_a_backlog_beside_charges_and_count_each_row_once(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.event_retention_days = 1).await;
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        let old = app.clock.now() - Duration::days(3);
        let backlog = app
            .query_i64("SELECT COUNT(*) FROM api_keys")
            .await[0]
            * 3_000;
        let old = match app.backend() {
            sea_orm::DbBackend::Postgres => format!("'{}'::timestamptz", old.to_rfc3339()),
            _ => format!("'{}'", old.format("%F %T%.f%:z")),
        };
        app.execute(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO api_key_usage (api_key_id, credits, endpoint, created_at)
             SELECT id, 1, NULL, {old} FROM api_keys, n",
        ))
        .await;
        // Two sweeps at once, as two processes' would run, beside charges.
        let charges = futures_util::future::join_all(
            (0..20).map(|_| app.verify(json!({ "key": secret, "credits": 1 }))),
        );
        let (first, second, answers) = tokio::join!(sweep(&app), sweep(&app), charges);
        assert_eq!(first.events + second.events, backlog as u64, "{first:?} {second:?}");
        assert!(answers.iter().all(|a| a["code"] == "VALID"));
        assert_eq!(app.query_i64("SELECT COALESCE(SUM(calls), 0) FROM api_key_usage").await, [20]);
    }

    async fn retention_settings_that_would_break_a_guarantee_stop_the_start(backend: Backend) {
        let database = TestDatabase::create(&backend).await;
        for (events, hours, sweep) in [(0, 90, 300), (400, 1, 300), (400, 90, 0), (40_000, 90, 300)] {
            let mut config = keymeter::Config::from_defaults();
            config.database_url = database.url.clone();
            (config.event_retention_days, config.hourly_usage_retention_days, config.sweep_interval_secs) = (events, hours, sweep);
            assert!(config.validate().is_err(), "{events} {hours} {sweep}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_gives_the_swept_pages_back() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| config.event_retention_days = 1).await;
    app.signup().await;
    let old = (app.clock.now() - Duration::days(2)).format("%F %T%.f%:z");
    app.execute(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
         INSERT INTO api_key_usage (api_key_id, credits, endpoint, created_at)
         SELECT id, 1, '/v1/a-rather-long-endpoint-to-fill-some-pages', '{old}' FROM api_keys, n",
    ))
    .await;
    let path = app
        .config
        .database_url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let size = || async {
        app.execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
        std::fs::metadata(&path).unwrap().len()
    };
    let before = size().await;
    let swept = sweep(&app).await;
    assert_eq!(swept.events, 40_000);
    let after = size().await;
    assert!(
        after * 2 < before,
        "the file went from {before} to {after} bytes"
    );
}
