//! Per-key rate limits enforced (contract v3, "v3 rate limits") over HTTP on
//! both databases: exact under races on one and two servers, weighed after
//! revocation and expiry and before credits, free for refused calls, kept
//! by requestIds only when answered, in fixed windows from the epoch, and
//! on the gateway endpoint with its X-RateLimit-* headers.

use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

const VERIFY: &str = r#"mutation Verify($input: VerifyKeyInput!) {
  verifyKey(input: $input) {
    valid code keyId remainingCredits retryAfterSeconds rateLimit { limit remaining reset }
  }
}"#;

const SET_LIMIT: &str = "mutation($id: UUID!, $limit: RateLimitInput) { setKeyRateLimit(id: $id, rateLimit: $limit) { id rateLimit { limit windowSeconds } } }";

/// Sets (or with `None` removes) the key's limit, as a member does.
async fn limit_key(app: &TestApp, user: &TestUser, key: &str, limit: Option<(i64, i64)>) {
    let limit = limit.map(|(limit, window)| json!({ "limit": limit, "windowSeconds": window }));
    app.ok(
        SET_LIMIT,
        json!({ "id": key, "limit": limit }),
        Some(&user.token),
    )
    .await;
}

/// verifyKey on `addr` (`None`: the first server).
async fn verify_at(app: &TestApp, addr: Option<std::net::SocketAddr>, input: Value) -> Value {
    let answer = app
        .graphql_at(
            addr.unwrap_or(app.addr),
            VERIFY,
            json!({ "input": input }),
            None,
        )
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    answer["data"]["verifyKey"].clone()
}

async fn verify(app: &TestApp, input: Value) -> Value {
    verify_at(app, None, input).await
}

fn codes(answers: &[Value]) -> (usize, usize) {
    let count = |code: &str| answers.iter().filter(|a| a["code"] == code).count();
    (count("VALID"), count("RATE_LIMITED"))
}

/// The start of the next window of `secs` after `now`.
fn next_window(now: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp((now.timestamp().div_euclid(secs) + 1) * secs, 0).unwrap()
}

/// Moves the clock to 1 s into a fresh window of `secs`, so a test's calls
/// share one window.
fn fresh_window(app: &TestApp, secs: i64) -> DateTime<Utc> {
    let start = next_window(app.clock.now(), secs);
    app.clock.set(start + Duration::seconds(1));
    start
}

async fn usage_of(app: &TestApp, user: &TestUser) -> (i64, i64) {
    let usage = app.keys_usage(user).await;
    (
        usage["totalCredits"].as_i64().unwrap(),
        usage["keys"][0]["requests"].as_i64().unwrap(),
    )
}

on_both_databases! {
    async fn fifty_racing_calls_on_a_limit_of_ten_admit_exactly_ten(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        let start = fresh_window(&app, 60);
        limit_key(&app, &user, user.default_key_id(), Some((10, 60))).await;
        let answers = join_all((0..50).map(|_| verify(&app, json!({ "key": secret, "credits": 1 })))).await;
        assert_eq!(codes(&answers), (10, 40), "{answers:#?}");
        for answer in &answers {
            let state = &answer["rateLimit"];
            assert_eq!(state["limit"], 10);
            assert_eq!(state["reset"], render(start + Duration::seconds(60)));
            if answer["code"] == "RATE_LIMITED" {
                assert_eq!(answer["valid"], false);
                assert_eq!(state["remaining"], 0);
                assert_eq!(answer["retryAfterSeconds"], 59);
            } else {
                assert_eq!(answer["retryAfterSeconds"], Value::Null);
            }
        }
        let mut remaining: Vec<i64> = answers
            .iter()
            .filter(|a| a["code"] == "VALID")
            .map(|a| a["rateLimit"]["remaining"].as_i64().unwrap())
            .collect();
        remaining.sort();
        assert_eq!(remaining, (0..10).collect::<Vec<_>>());
        // Refused calls recorded nothing.
        assert_eq!(usage_of(&app, &user).await, (10, 10));
        assert_eq!(app.query_i64("SELECT COALESCE(SUM(calls), 0) FROM api_key_usage").await, [10]);
    }

    async fn two_servers_share_one_window_exactly(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        fresh_window(&app, 60);
        let other = app.spawn_second_server().await;
        // Both servers know the key before it is limited.
        verify_at(&app, None, json!({ "key": secret, "credits": 1 })).await;
        verify_at(&app, Some(other), json!({ "key": secret, "credits": 1 })).await;
        limit_key(&app, &user, user.default_key_id(), Some((12, 60))).await;
        let answers = join_all((0..60).map(|i| {
            let addr = (i % 2 == 1).then_some(other);
            let input = if i % 3 == 0 {
                json!({ "key": secret, "credits": 1, "requestId": format!("race-{i}") })
            } else {
                json!({ "key": secret, "credits": 1 })
            };
            verify_at(&app, addr, input)
        }))
        .await;
        // The two calls before the limit fell in this window.
        assert_eq!(codes(&answers), (10, 50), "{answers:#?}");
        assert_eq!(usage_of(&app, &user).await, (12, 12));
    }

    async fn a_revoked_key_is_revoked_and_both_limits_reached_is_rate_limited(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        fresh_window(&app, 3600);
        limit_key(&app, &user, user.default_key_id(), Some((2, 3600))).await;
        // Credits first run out: refused calls take no slot.
        let spent = verify(&app, json!({ "key": secret, "credits": 1000 })).await;
        assert_eq!(spent["code"], "VALID");
        assert_eq!(spent["rateLimit"]["remaining"], 1);
        let exceeded = verify(&app, json!({ "key": secret, "credits": 1 })).await;
        assert_eq!(exceeded["code"], "USAGE_EXCEEDED");
        assert_eq!(exceeded["rateLimit"]["remaining"], 1, "nothing taken");
        // A free check takes the last slot; then the rate limit is said first.
        let checked = verify(&app, json!({ "key": secret, "credits": 0 })).await;
        assert_eq!((checked["code"].as_str(), checked["rateLimit"]["remaining"].as_i64()), (Some("VALID"), Some(0)));
        let both = verify(&app, json!({ "key": secret, "credits": 1 })).await;
        assert_eq!(both["code"], "RATE_LIMITED");
        let free = verify(&app, json!({ "key": secret, "credits": 0 })).await;
        assert_eq!(free["code"], "RATE_LIMITED");
        app.ok(REVOKE_KEY, json!({ "id": user.default_key_id() }), Some(&user.token)).await;
        let revoked = verify(&app, json!({ "key": secret, "credits": 1 })).await;
        assert_eq!(revoked["code"], "REVOKED");
        assert_eq!(revoked["rateLimit"]["limit"], 2, "a known key with a limit says it");
        assert_eq!(usage_of(&app, &user).await, (1000, 1));
    }

    async fn request_ids_replay_their_answer_and_a_rate_limited_one_is_decided_afresh(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        let start = fresh_window(&app, 10);
        limit_key(&app, &user, user.default_key_id(), Some((1, 10))).await;
        let first = verify(&app, json!({ "key": secret, "credits": 3, "requestId": "a" })).await;
        assert_eq!(first["code"], "VALID");
        let limited = verify(&app, json!({ "key": secret, "credits": 3, "requestId": "b" })).await;
        assert_eq!(limited["code"], "RATE_LIMITED");
        assert_eq!(limited["retryAfterSeconds"], 9);
        // A replay answers its first answer and takes nothing.
        let replay = verify(&app, json!({ "key": secret, "credits": 3, "requestId": "a" })).await;
        assert_eq!(replay, first);
        // In the next window "b" is decided afresh, and "a" still replays.
        app.clock.set(start + Duration::seconds(10));
        let retried = verify(&app, json!({ "key": secret, "credits": 3, "requestId": "b" })).await;
        assert_eq!(retried["code"], "VALID");
        assert_eq!(retried["rateLimit"]["reset"], render(start + Duration::seconds(20)));
        let replay = verify(&app, json!({ "key": secret, "credits": 3, "requestId": "a" })).await;
        assert_eq!(replay, first);
        assert_eq!(usage_of(&app, &user).await, (6, 2));
    }

    async fn free_checks_take_a_slot_each_and_are_never_remembered(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        fresh_window(&app, 60);
        limit_key(&app, &user, user.default_key_id(), Some((3, 60))).await;
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(verify(&app, json!({ "key": secret, "credits": 0, "requestId": "same" })).await);
        }
        let said: Vec<&str> = got.iter().map(|a| a["code"].as_str().unwrap()).collect();
        assert_eq!(said, ["VALID", "VALID", "VALID", "RATE_LIMITED"]);
        assert_eq!(usage_of(&app, &user).await, (0, 0));
    }

    async fn windows_are_fixed_from_the_epoch_and_a_new_one_admits_again(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        let start = fresh_window(&app, 60);
        limit_key(&app, &user, user.default_key_id(), Some((2, 60))).await;
        app.clock.set(start + Duration::seconds(58));
        for _ in 0..2 {
            assert_eq!(verify(&app, json!({ "key": secret, "credits": 1 })).await["code"], "VALID");
        }
        let limited = verify(&app, json!({ "key": secret, "credits": 1 })).await;
        assert_eq!((limited["code"].as_str(), limited["retryAfterSeconds"].as_i64()), (Some("RATE_LIMITED"), Some(2)));
        app.clock.set(start + Duration::milliseconds(59_500));
        let limited = verify(&app, json!({ "key": secret, "credits": 1 })).await;
        assert_eq!(limited["retryAfterSeconds"], 1, "rounded up");
        app.clock.set(start + Duration::seconds(60));
        let next = verify(&app, json!({ "key": secret, "credits": 1 })).await;
        assert_eq!((next["code"].as_str(), next["rateLimit"]["remaining"].as_i64()), (Some("VALID"), Some(1)));
    }

    async fn a_change_applies_from_the_next_call_on_every_server(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        fresh_window(&app, 60);
        let other = app.spawn_second_server().await;
        limit_key(&app, &user, user.default_key_id(), Some((100, 60))).await;
        for addr in [None, Some(other), None, Some(other)] {
            let answer = verify_at(&app, addr, json!({ "key": secret, "credits": 1 })).await;
            assert_eq!(answer["code"], "VALID");
        }
        // Lowered below what the window admitted: nothing more, anywhere.
        limit_key(&app, &user, user.default_key_id(), Some((3, 60))).await;
        for addr in [None, Some(other)] {
            let answer = verify_at(&app, addr, json!({ "key": secret, "credits": 1 })).await;
            assert_eq!(answer["code"], "RATE_LIMITED");
            assert_eq!(answer["rateLimit"]["limit"], 3);
        }
        // Removed: no limit, and no rateLimit in the answer.
        limit_key(&app, &user, user.default_key_id(), None).await;
        for addr in [None, Some(other)] {
            let answer = verify_at(&app, addr, json!({ "key": secret, "credits": 1 })).await;
            assert_eq!(answer["code"], "VALID");
            assert_eq!(answer["rateLimit"], Value::Null);
        }
        assert_eq!(usage_of(&app, &user).await, (6, 6));
    }

    async fn a_rotated_keys_successor_has_the_limit_and_a_window_of_its_own(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        fresh_window(&app, 60);
        limit_key(&app, &user, user.default_key_id(), Some((2, 60))).await;
        for _ in 0..2 {
            verify(&app, json!({ "key": secret, "credits": 1 })).await;
        }
        let rotate = "mutation($input: RotateKeyInput!) { rotateKey(input: $input) { secret apiKey { id } } }";
        let rotated = app.ok(rotate, json!({ "input": { "id": user.default_key_id() } }), Some(&user.token)).await;
        let successor = rotated["rotateKey"]["secret"].as_str().unwrap().to_owned();
        let answers = join_all((0..4).map(|_| verify(&app, json!({ "key": successor, "credits": 1 })))).await;
        assert_eq!(codes(&answers), (2, 2));
        assert_eq!(answers[0]["rateLimit"]["limit"], 2);
    }

    async fn the_gateway_answers_429_with_the_rate_limit_headers(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        let start = fresh_window(&app, 30);
        // An unlimited key's answers carry no X-RateLimit-* header.
        let (status, headers, body) = through_gateway(&app, &secret, "").await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-ratelimit-limit"), None);
        assert_eq!(body["rateLimit"], Value::Null);
        limit_key(&app, &user, user.default_key_id(), Some((2, 30))).await;
        app.clock.set(start + Duration::milliseconds(10_500));
        let (status, headers, body) = through_gateway(&app, &secret, "").await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-ratelimit-limit").as_deref(), Some("2"));
        assert_eq!(header(&headers, "x-ratelimit-remaining").as_deref(), Some("0"), "the call before the limit counts");
        assert_eq!(header(&headers, "x-ratelimit-reset").as_deref(), Some("20"));
        assert_eq!(header(&headers, "retry-after"), None);
        assert_eq!(body["rateLimit"], json!({ "limit": 2, "remaining": 0, "reset": render(start + Duration::seconds(30)) }));
        for (query, expected) in [("", 429), ("?deny=403", 403)] {
            let (status, headers, body) = through_gateway(&app, &secret, query).await;
            assert_eq!(status, expected);
            assert_eq!(header(&headers, "x-keymeter-code").as_deref(), Some("RATE_LIMITED"));
            assert_eq!(header(&headers, "retry-after").as_deref(), Some("20"));
            assert_eq!(header(&headers, "x-ratelimit-remaining").as_deref(), Some("0"));
            assert_eq!(header(&headers, "x-ratelimit-reset").as_deref(), Some("20"));
            assert_eq!(header(&headers, "www-authenticate"), None);
            assert_eq!((body["valid"].as_bool(), body["retryAfterSeconds"].as_i64()), (Some(false), Some(20)));
        }
        // GraphQL and the gateway share the window.
        let answer = verify(&app, json!({ "key": secret, "credits": 1 })).await;
        assert_eq!(answer["code"], "RATE_LIMITED");
        assert_eq!(usage_of(&app, &user).await, (2, 2));
    }

    async fn another_keys_traffic_takes_nothing_from_a_window(app: TestApp) {
        let user = app.signup().await;
        let neighbour = app.signup().await;
        let secret = user.default_secret().to_owned();
        let noisy = neighbour.default_secret().to_owned();
        fresh_window(&app, 60);
        limit_key(&app, &user, user.default_key_id(), Some((5, 60))).await;
        limit_key(&app, &neighbour, neighbour.default_key_id(), Some((1, 60))).await;
        let calls = (0..30).map(|i| {
            let key = if i % 3 == 0 { &secret } else { &noisy };
            verify(&app, json!({ "key": key, "credits": 1 }))
        });
        let answers = join_all(calls).await;
        let mine: Vec<Value> = answers.iter().step_by(3).cloned().collect();
        assert_eq!(codes(&mine), (5, 5));
        let theirs: Vec<Value> = answers.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, a)| a.clone()).collect();
        assert_eq!(codes(&theirs), (1, 19));
    }

    async fn calls_charged_together_before_a_limit_each_count_in_its_window(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        fresh_window(&app, 60);
        // Racing calls alike are charged in shared batches, each batch's as one event.
        let answers = join_all((0..40).map(|_| verify(&app, json!({ "key": secret, "credits": 1 })))).await;
        assert_eq!(codes(&answers), (40, 0));
        let largest = app.query_i64("SELECT CAST(MAX(calls) AS BIGINT) FROM api_key_usage").await[0];
        assert!(largest > 1, "no event held more than one call");
        // A limit set now counts the 40 calls, not the events.
        limit_key(&app, &user, user.default_key_id(), Some((50, 60))).await;
        let next = verify(&app, json!({ "key": secret, "credits": 1 })).await;
        assert_eq!((next["code"].as_str(), next["rateLimit"]["remaining"].as_i64()), (Some("VALID"), Some(9)));
        // A window of another length counts again, and a limit below what
        // it holds admits nothing.
        limit_key(&app, &user, user.default_key_id(), Some((30, 120))).await;
        let next = verify(&app, json!({ "key": secret, "credits": 1 })).await;
        assert_eq!(next["code"], "RATE_LIMITED");
        assert_eq!(usage_of(&app, &user).await, (41, 41));
    }
}

/// A gateway call charging 1 credit to `secret`: status and headers.
async fn through_gateway(
    app: &TestApp,
    secret: &str,
    query: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = app
        .http
        .get(app.url(&format!("/gateway/verify{query}")))
        .header("Authorization", format!("Bearer {secret}"))
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.json().await.unwrap())
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

fn render(at: DateTime<Utc>) -> String {
    keymeter::domain::instant::render(at)
}
