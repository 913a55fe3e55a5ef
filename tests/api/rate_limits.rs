use chrono::Duration;
use serde_json::{json, Value};

use crate::helpers::*;

async fn login(app: &TestApp, email: &str, password: &str) -> Value {
    app.graphql(LOGIN, json!({ "email": email, "password": password }), None)
        .await
}

fn retry_after(response: &Value) -> i64 {
    response["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_i64()
        .expect("a retry-after hint")
}

on_both_databases! {
    async fn ten_failed_logins_lock_the_email_for_the_window(app: TestApp) {
        let user = app.signup().await;
        for _ in 0..10 {
            assert_error(&login(&app, &user.email, "wrong password").await, "INVALID_CREDENTIALS");
        }
        app.clock.advance(Duration::minutes(5));
        // Even the right password is refused now, with a hint of when to retry.
        let locked = login(&app, &user.email, PASSWORD).await;
        assert_error(&locked, "RATE_LIMITED");
        assert_eq!(retry_after(&locked), 10 * 60);
        // The email is what is limited: other accounts are not.
        app.ok(LOGIN, json!({ "email": app.signup().await.email, "password": PASSWORD }), None).await;
        // Once the first failures leave the window, the right password works again.
        app.clock.advance(Duration::minutes(10));
        app.ok(LOGIN, json!({ "email": user.email, "password": PASSWORD }), None).await;
    }

    async fn unknown_emails_are_limited_like_known_ones(app: TestApp) {
        let email = unique_email();
        for _ in 0..10 {
            assert_error(&login(&app, &email, PASSWORD).await, "INVALID_CREDENTIALS");
        }
        assert_error(&login(&app, &email, PASSWORD).await, "RATE_LIMITED");
    }

    async fn a_successful_login_forgets_earlier_failures(app: TestApp) {
        let user = app.signup().await;
        for _ in 0..9 {
            login(&app, &user.email, "wrong password").await;
        }
        app.ok(LOGIN, json!({ "email": user.email, "password": PASSWORD }), None).await;
        for _ in 0..9 {
            assert_error(&login(&app, &user.email, "wrong password").await, "INVALID_CREDENTIALS");
        }
        app.ok(LOGIN, json!({ "email": user.email, "password": PASSWORD }), None).await;
    }

    async fn the_login_limit_holds_across_servers(app: TestApp) {
        let user = app.signup().await;
        let second = app.spawn_second_server().await;
        for i in 0..10 {
            let addr = if i % 2 == 0 { app.addr } else { second };
            let response = app.graphql_at(addr, LOGIN, json!({ "email": user.email, "password": "nope nope" }), None).await;
            assert_error(&response, "INVALID_CREDENTIALS");
        }
        for addr in [app.addr, second] {
            let response = app.graphql_at(addr, LOGIN, json!({ "email": user.email, "password": PASSWORD }), None).await;
            assert_error(&response, "RATE_LIMITED");
        }
    }
}

on_both_backends! {
    async fn signups_are_limited_per_client_address(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.signups_per_address = 3).await;
        for _ in 0..3 {
            app.signup().await;
        }
        let refused = app.graphql(SIGNUP, json!({ "email": unique_email(), "password": PASSWORD }), None).await;
        assert_error(&refused, "RATE_LIMITED");
        assert_eq!(retry_after(&refused), 3600);
        // A client cannot dodge the limit with a forged header...
        let forged = app
            .http
            .post(app.url("/graphql"))
            .header("X-Forwarded-For", "203.0.113.7")
            .json(&json!({ "query": SIGNUP, "variables": { "email": unique_email(), "password": PASSWORD } }))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert_error(&forged, "RATE_LIMITED");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, [3]);
        // ...and the window moves on.
        app.clock.advance(Duration::hours(1));
        app.signup().await;
    }

    async fn behind_a_trusted_proxy_the_forwarded_address_counts(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| {
            config.signups_per_address = 1;
            config.trust_forwarded_for = true;
        })
        .await;
        let signup_from = |address: &'static str| {
            let body = json!({ "query": SIGNUP, "variables": { "email": unique_email(), "password": PASSWORD } });
            let request = app.http.post(app.url("/graphql")).header("X-Forwarded-For", format!("198.51.100.1, {address}"));
            async move { request.json(&body).send().await.unwrap().json::<Value>().await.unwrap() }
        };
        assert!(signup_from("203.0.113.1").await.get("errors").is_none());
        assert!(signup_from("203.0.113.2").await.get("errors").is_none());
        assert_error(&signup_from("203.0.113.1").await, "RATE_LIMITED");
    }
}
