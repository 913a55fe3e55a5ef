//! `GET /metrics`: counts that match the calls made.

use serde_json::{json, Value};

use crate::helpers::*;

async fn scrape(app: &TestApp) -> String {
    scrape_at(app, &app.url("/metrics")).await
}

async fn scrape_at(app: &TestApp, url: &str) -> String {
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of the sample `name` (with its labels, as printed), or 0 when absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

async fn named_verify(app: &TestApp, secret: &str, credits: i64) -> Value {
    let body = json!({ "query": VERIFY_KEY, "operationName": "Verify", "variables": { "input": { "key": secret, "credits": credits } } });
    let response = send_graphql(app.http.post(app.url("/graphql")).json(&body)).await;
    response["data"]["verifyKey"]["code"].clone()
}

on_both_databases! {
    async fn metrics_count_the_calls_made(app: TestApp) {
        let user = app.signup().await;
        let before = scrape(&app).await;
        assert_eq!(sample(&before, "keymeter_verify_total{code=\"VALID\"}"), 0.0);
        for _ in 0..3 {
            assert_eq!(named_verify(&app, user.default_secret(), 1).await, "VALID");
        }
        assert_eq!(named_verify(&app, user.default_secret(), 0).await, "VALID");
        for _ in 0..2 {
            assert_eq!(named_verify(&app, "sk_dev_nope", 1).await, "NOT_FOUND");
        }
        assert_eq!(named_verify(&app, user.default_secret(), 5_000).await, "USAGE_EXCEEDED");
        let text = scrape(&app).await;
        assert_eq!(sample(&text, "keymeter_verify_total{code=\"VALID\"}"), 4.0, "{text}");
        assert_eq!(sample(&text, "keymeter_verify_total{code=\"NOT_FOUND\"}"), 2.0, "{text}");
        assert_eq!(sample(&text, "keymeter_verify_total{code=\"USAGE_EXCEEDED\"}"), 1.0, "{text}");
        assert_eq!(sample(&text, "keymeter_graphql_request_duration_seconds_count{operation=\"Verify\"}"), 7.0, "{text}");
        assert!(text.contains("keymeter_db_pool_connections{state=\"idle\"}"), "{text}");
        assert!(text.contains("keymeter_db_pool_connections{state=\"in_use\"}"), "{text}");
        assert!(text.contains("# TYPE keymeter_charge_batch_size histogram"), "{text}");
        // Every call with credits goes through a charging batch; the free check does not.
        let charged = sample(&text, "keymeter_charge_batch_size_sum");
        assert_eq!(charged, 6.0, "{text}");
    }

    async fn only_operations_that_ran_name_a_label(app: TestApp) {
        // 120 names the documents do not hold, 30 documents that do not
        // validate: once these took every one of the 100 label values.
        for i in 0..120 {
            let body = json!({ "query": "{ __typename }", "operationName": format!("Forged{i}") });
            let answer = send_graphql(app.http.post(app.url("/graphql")).json(&body)).await;
            assert_error(&answer, "BAD_USER_INPUT");
        }
        for i in 0..30 {
            let body = json!({ "query": format!("query Invalid{i} {{ noSuchField }}") });
            let answer = send_graphql(app.http.post(app.url("/graphql")).json(&body)).await;
            assert_error(&answer, "BAD_USER_INPUT");
        }
        let user = app.signup().await;
        assert_eq!(named_verify(&app, user.default_secret(), 1).await, "VALID");
        let text = scrape(&app).await;
        let count = |operation: &str| {
            let name = format!("keymeter_graphql_request_duration_seconds_count{{operation=\"{operation}\"}}");
            sample(&text, &name)
        };
        assert_eq!(count("not_run"), 150.0, "{text}");
        assert_eq!(count("Verify"), 1.0, "{text}");
        assert_eq!(count("Signup"), 1.0, "{text}");
        assert!(!text.contains("Forged") && !text.contains("Invalid"), "{text}");
    }
}

/// The refusal's status and message, checking it is the one JSON shape.
async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body:#}"
    );
    (
        status,
        body["errors"][0]["message"].as_str().unwrap().to_owned(),
    )
}

fn on_its_own_address(config: &mut keymeter::Config) {
    config.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
}

on_both_backends! {
    async fn metrics_can_be_switched_off(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.metrics = false).await;
        assert_eq!(app.http.get(app.url("/metrics")).send().await.unwrap().status(), 404);
    }

    async fn with_a_metrics_address_only_it_serves_the_metrics(backend: Backend) {
        let app = TestApp::spawn_with(backend, on_its_own_address).await;
        let metrics = app.metrics_addr.expect("the metrics address");
        assert_ne!(metrics.port(), app.addr.port());
        let user = app.signup().await;
        assert_eq!(named_verify(&app, user.default_secret(), 1).await, "VALID");
        let text = scrape_at(&app, &format!("http://{metrics}/metrics")).await;
        assert_eq!(sample(&text, "keymeter_verify_total{code=\"VALID\"}"), 1.0, "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");

        // The API port no longer has it; the metrics port has nothing else.
        let api = app.http.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(refusal(api).await.0, 404);
        let elsewhere = app.http.get(format!("http://{metrics}/graphql")).send().await.unwrap();
        assert_eq!(refusal(elsewhere).await, (404, "no such path: this address serves GET /metrics only".into()));
        let posted = app.http.post(format!("http://{metrics}/metrics")).send().await.unwrap();
        assert_eq!(refusal(posted).await.0, 405);
    }

    async fn the_metrics_address_stops_with_the_server(backend: Backend) {
        let database = TestDatabase::create(&backend).await;
        let mut config = keymeter::Config::from_defaults();
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.database_url = database.url.clone();
        on_its_own_address(&mut config);
        let app = keymeter::Application::build(&config).await.unwrap();
        let metrics = app.metrics_addr().expect("the metrics address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(app.run_until(async { let _ = stopped.await; }));
        let http = reqwest::Client::new();
        let url = format!("http://{metrics}/metrics");
        assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
        stop.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(metrics).await.is_err(), "still listening");
    }
}
