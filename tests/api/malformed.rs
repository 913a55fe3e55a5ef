//! Malformed input of every kind gets an error with a contract code, never a
//! 500, a crash or an internal error, driven by property tests through HTTP.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};

use crate::helpers::*;

const CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "BAD_USER_INPUT",
    "EMAIL_TAKEN",
    "INVALID_CREDENTIALS",
    "NOT_FOUND",
    "RATE_LIMITED",
];

/// The answer is JSON with data or contract-coded errors, never an internal error.
#[track_caller]
fn assert_handled(response: &Value) {
    for error in response["errors"].as_array().into_iter().flatten() {
        let code = error["extensions"]["code"].as_str().unwrap_or("none");
        assert!(
            CODES.contains(&code),
            "unexpected code {code}: {response:#}"
        );
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,64}",
        "[\u{0}-\u{1f}\u{7f}\"\\\\@ a-z]{0,64}",
        "\\PC{250,300}",
        Just("x".repeat(100_000)),
    ]
}

/// A value of the wrong type, or of the right type and wrong size.
fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(1e300)),
        Just(json!(-2147483649i64)),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!([1, "two"])),
        Just(json!({ "nested": { "deep": [] } })),
    ]
}

const OPERATIONS: &[(&str, &str)] = &[
    ("signup", "mutation($a: String!, $b: String!) { signup(input: { email: $a, password: $b }) { token } }"),
    ("login", "mutation($a: String!, $b: String!) { login(input: { email: $a, password: $b }) { token } }"),
    ("createKey", "mutation($a: String!) { createKey(input: { name: $a }) { secret } }"),
    ("createKey type", "mutation($a: KeyType) { createKey(input: { name: \"n\", keyType: $a }) { secret } }"),
    ("revokeKey", "mutation($a: UUID!) { revokeKey(id: $a) { id } }"),
    ("keys", "query($a: Boolean) { keys(includeRevoked: $a) { id } }"),
    ("verifyKey", "mutation($a: String!, $b: String, $c: String, $d: Int) { verifyKey(input: { key: $a, endpoint: $b, requestId: $c, credits: $d }) { code } }"),
];

#[test]
fn random_input_to_every_operation_is_handled() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, user) = runtime.block_on(async {
        let app =
            TestApp::spawn_with(Backend::Sqlite, |config| config.signups_per_address = 0).await;
        let user = app.signup().await;
        (app, user)
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let inputs = (
        any_json(),
        any_json(),
        any_json(),
        any_json(),
        any::<bool>(),
    );
    runner
        .run(&inputs, |(a, b, c, d, signed_in)| {
            for (name, query) in OPERATIONS {
                let variables = json!({ "a": a, "b": b, "c": c, "d": d });
                let token = signed_in.then_some(user.token.as_str());
                let response = runtime.block_on(app.graphql(query, variables, token));
                eprintln!(
                    "{name}: {}",
                    response.to_string().chars().take(200).collect::<String>()
                );
                assert_handled(&response);
            }
            Ok(())
        })
        .unwrap();
    // Still serving.
    runtime.block_on(app.signup());
}

on_both_databases! {
    async fn bodies_that_are_not_utf8_or_not_json_are_4xx(app: TestApp) {
        let bodies: [&[u8]; 7] = [
            b"\xff\xfe{\"query\": \"{ __typename }\"}",
            b"{\"query\": \"{ __typename }\", \"variables\": {\"a\": \"\xc3\x28\"}}",
            // Invalid UTF-8 in a field nobody reads, and in an object key.
            b"{\"query\": \"{ __typename }\", \"ignored\": \"\xc3\x28\"}",
            b"{\"query\": \"{ __typename }\", \"\xff\": 1}",
            b"{\"query\": \"\\ud800\"}",
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            b"",
        ];
        for body in bodies {
            let response = app
                .http
                .post(app.url("/graphql"))
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert!(status.is_client_error(), "{:?}: {status}", String::from_utf8_lossy(body));
            if status == 400 {
                let answer: Value = response.json().await.expect("one JSON error");
                assert_error(&answer, "BAD_USER_INPUT");
            }
        }
        let no_query = app.graphql("", json!({}), None).await;
        assert_error(&no_query, "BAD_USER_INPUT");
        app.signup().await;
    }

    async fn numbers_out_of_range_are_bad_user_input(app: TestApp) {
        let user = app.signup().await;
        for credits in [json!(-1), json!(1_000_001), json!(2_147_483_648i64), json!(-9_223_372_036_854_775_808i64), json!(1.5), json!("1")] {
            let response = app.graphql(VERIFY_KEY, json!({ "input": { "key": user.default_secret(), "credits": credits } }), None).await;
            assert_error(&response, "BAD_USER_INPUT");
        }
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [0]);
    }
}
