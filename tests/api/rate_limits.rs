use std::future::Future;
use std::net::SocketAddr;

use chrono::Duration;
use futures_util::future::join_all;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::helpers::*;

async fn login(app: &TestApp, email: &str, password: &str) -> Value {
    app.graphql(LOGIN, json!({ "email": email, "password": password }), None)
        .await
}

/// A login as forwarded by a trusted proxy for `client`.
async fn login_from(app: &TestApp, client: &str, email: &str, password: &str) -> Value {
    let variables = json!({ "email": email, "password": password });
    app.graphql_from(app.addr, client, LOGIN, variables).await
}

/// A server behind a trusted proxy, so tests choose each request's client
/// address, with these failed-login limits: per email and address, per
/// address, per email.
async fn spawn_with_login_limits(backend: Backend, limits: (u32, u32, u32)) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.trust_forwarded_for = true;
        config.login_max_failures = limits.0;
        config.login_failures_per_address = limits.1;
        config.login_failures_per_email = limits.2;
    })
    .await
}

/// Sends every request at once: none starts before all are ready.
async fn all_at_once(requests: Vec<impl Future<Output = Value>>) -> Vec<Value> {
    let barrier = Barrier::new(requests.len());
    let barrier = &barrier;
    join_all(requests.into_iter().map(|request| async move {
        barrier.wait().await;
        request.await
    }))
    .await
}

/// How many responses carry each of these error codes.
fn count_codes<const N: usize>(responses: &[Value], codes: [&str; N]) -> [usize; N] {
    codes.map(|code| {
        responses
            .iter()
            .filter(|r| error_code(r) == Some(code))
            .count()
    })
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

/// 200 guesses at one email from one address, sent at once to `servers` in
/// turn: exactly as many are checked as the limit allows, the rest are
/// refused before any hashing, and then so is the right password.
async fn burst_of_guesses(app: &TestApp, servers: &[SocketAddr]) {
    let user = app.signup().await;
    let guesses = (0..200).map(|i| {
        let variables = json!({ "email": user.email, "password": format!("guess number {i}") });
        app.graphql_at(servers[i % servers.len()], LOGIN, variables, None)
    });
    let answers = all_at_once(guesses.collect()).await;
    assert_eq!(
        count_codes(&answers, ["INVALID_CREDENTIALS", "RATE_LIMITED"]),
        [10, 190]
    );
    assert_error(&login(app, &user.email, PASSWORD).await, "RATE_LIMITED");
    let counted = "SELECT COUNT(*) FROM auth_attempts WHERE kind = 'login'";
    assert_eq!(app.query_i64(counted).await, [10]);
}

on_both_databases! {
    async fn a_burst_of_guesses_checks_no_more_than_the_limit(app: TestApp) {
        burst_of_guesses(&app, &[app.addr]).await;
    }

    async fn a_burst_of_guesses_over_two_servers_checks_no_more_than_the_limit(app: TestApp) {
        let second = app.spawn_second_server().await;
        burst_of_guesses(&app, &[app.addr, second]).await;
    }
}

on_both_backends! {
    async fn a_burst_of_signups_from_one_address_admits_exactly_the_limit(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.signups_per_address = 5).await;
        let second = app.spawn_second_server().await;
        for servers in [vec![app.addr], vec![app.addr, second]] {
            let signups = (0..40).map(|i| {
                let variables = json!({ "email": unique_email(), "password": PASSWORD });
                app.graphql_at(servers[i % servers.len()], SIGNUP, variables, None)
            });
            let answers = all_at_once(signups.collect()).await;
            let signed_up = answers.iter().filter(|r| r.get("errors").is_none()).count();
            assert_eq!(signed_up, 5, "{answers:#?}");
            assert_eq!(count_codes(&answers, ["RATE_LIMITED"]), [35], "{answers:#?}");
            app.clock.advance(Duration::hours(1));
        }
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, [10]);
    }

    async fn guesses_from_one_address_do_not_lock_the_owner_out_elsewhere(backend: Backend) {
        let app = spawn_with_login_limits(backend, (3, 50, 6)).await;
        let owner = app.signup().await;
        let (attacker, home) = ("203.0.113.66", "198.51.100.7");
        for _ in 0..3 {
            assert_error(&login_from(&app, attacker, &owner.email, "a wrong guess").await, "INVALID_CREDENTIALS");
        }
        // The attacker is refused even the right password...
        let refused = login_from(&app, attacker, &owner.email, PASSWORD).await;
        assert_error(&refused, "RATE_LIMITED");
        assert_eq!(retry_after(&refused), 15 * 60);
        // ...while the owner, elsewhere, gets in,
        assert!(login_from(&app, home, &owner.email, PASSWORD).await.get("errors").is_none());
        // and the attacker's address may still try other emails.
        let other = login_from(&app, attacker, &unique_email(), "a wrong guess").await;
        assert_error(&other, "INVALID_CREDENTIALS");

        // Guesses from a second address reach the per-email bound, 6: now
        // the email is locked for everyone, whatever the address.
        app.clock.advance(Duration::minutes(5));
        for _ in 0..3 {
            assert_error(&login_from(&app, "203.0.113.67", &owner.email, "a wrong guess").await, "INVALID_CREDENTIALS");
        }
        for address in [home, "192.0.2.1"] {
            let locked = login_from(&app, address, &owner.email, PASSWORD).await;
            assert_error(&locked, "RATE_LIMITED");
            assert_eq!(retry_after(&locked), 10 * 60, "until the first guesses leave the window");
        }
        app.clock.advance(Duration::minutes(10));
        assert!(login_from(&app, home, &owner.email, PASSWORD).await.get("errors").is_none());
    }

    async fn one_address_is_limited_across_every_email(backend: Backend) {
        let app = spawn_with_login_limits(backend, (3, 5, 100)).await;
        let user = app.signup().await;
        let sprayer = "203.0.113.66";
        for _ in 0..5 {
            assert_error(&login_from(&app, sprayer, &unique_email(), "a wrong guess").await, "INVALID_CREDENTIALS");
        }
        for email in [unique_email(), user.email.clone()] {
            let refused = login_from(&app, sprayer, &email, PASSWORD).await;
            assert_error(&refused, "RATE_LIMITED");
            assert_eq!(retry_after(&refused), 15 * 60);
        }
        // Another address is not affected.
        assert!(login_from(&app, "198.51.100.7", &user.email, PASSWORD).await.get("errors").is_none());
    }

    async fn a_successful_login_forgives_only_its_own_email_and_address(backend: Backend) {
        let app = spawn_with_login_limits(backend, (3, 0, 0)).await;
        let owner = app.signup().await;
        let (attacker, home) = ("203.0.113.66", "198.51.100.7");
        let elsewhere = unique_email();
        for _ in 0..2 {
            assert_error(&login_from(&app, attacker, &owner.email, "a wrong guess").await, "INVALID_CREDENTIALS");
            assert_error(&login_from(&app, home, &owner.email, "a typo of mine").await, "INVALID_CREDENTIALS");
            assert_error(&login_from(&app, home, &elsewhere, "a typo of mine").await, "INVALID_CREDENTIALS");
        }
        assert!(login_from(&app, home, &owner.email, PASSWORD).await.get("errors").is_none());
        // The owner's typos are forgiven, and the successful attempt is not counted...
        for _ in 0..3 {
            assert_error(&login_from(&app, home, &owner.email, "a typo of mine").await, "INVALID_CREDENTIALS");
        }
        assert_error(&login_from(&app, home, &owner.email, "a typo of mine").await, "RATE_LIMITED");
        // ...but not the attacker's guesses at that email, nor the owner's
        // address's failures at another email.
        for (address, email) in [(attacker, &owner.email), (home, &elsewhere)] {
            assert_error(&login_from(&app, address, email, "one more guess").await, "INVALID_CREDENTIALS");
            assert_error(&login_from(&app, address, email, "one more guess").await, "RATE_LIMITED");
        }
    }

    async fn a_login_limit_of_zero_is_off(backend: Backend) {
        let app = spawn_with_login_limits(backend, (0, 0, 0)).await;
        let user = app.signup().await;
        for _ in 0..12 {
            assert_error(&login_from(&app, "203.0.113.66", &user.email, "a wrong guess").await, "INVALID_CREDENTIALS");
        }
        assert!(login_from(&app, "203.0.113.66", &user.email, PASSWORD).await.get("errors").is_none());
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM auth_attempts WHERE kind = 'login'").await, [0]);
    }
}
