//! One request, tried as an attacker would, cannot crash, stall or confuse
//! the server: each is refused with one JSON error and a contract code,
//! and the server keeps answering everyone else meanwhile.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};

use crate::helpers::*;

/// Long enough for any honest answer on a loaded CI machine, far shorter
/// than the stalls these shapes caused (13 s to minutes): a request that
/// takes longer fails the test.
const STALL: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(STALL).build().unwrap()
}

async fn post(app: &TestApp, query: &str, variables: Value) -> Value {
    let response = client()
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("answered before the stall bound");
    response.json().await.expect("a JSON answer")
}

/// `/health` answers, and a real operation still works.
async fn still_serving(app: &TestApp) {
    let health = client().get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    app.signup().await;
}

fn nested(open: &str, close: &str, inner: &str, levels: usize) -> String {
    format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
}

/// Deeply nested values in every place a value can be: arguments, input
/// objects, variable defaults, directive arguments, and selections.
fn deep_documents(levels: usize) -> Vec<String> {
    vec![
        format!(
            "{{ keys(includeRevoked: {}) {{ id }} }}",
            nested("[", "]", "true", levels)
        ),
        format!(
            "mutation {{ createKey(input: {{ name: {} }}) {{ secret }} }}",
            nested("{a: ", "}", "1", levels)
        ),
        format!(
            "query($a: Boolean = {}) {{ keys(includeRevoked: $a) {{ id }} }}",
            nested("[", "]", "true", levels)
        ),
        format!(
            "{{ me @include(if: {}) {{ id }} }}",
            nested("[", "]", "true", levels)
        ),
        format!(
            "{{ me @skip(if: {}) {{ id }} }}",
            nested("{x: ", "}", "1", levels)
        ),
        nested("{ me ", "}", "id", levels),
        nested("{ ... on Query ", "}", "__typename", levels),
        format!(
            "{{ __typename(a: {}) }}",
            nested("[{a: ", "}]", "1", levels)
        ),
    ]
}

/// Fragments that each spread the next `fanout` times: 2^levels visits to
/// anything that follows spreads naively.
fn fragment_bomb(levels: usize, fanout: usize) -> String {
    let mut query = String::from("{ ...F0 }\n");
    for level in 0..levels {
        let spreads = format!("...F{} ", level + 1).repeat(fanout);
        query.push_str(&format!("fragment F{level} on Query {{ {spreads}}}\n"));
    }
    query.push_str(&format!(
        "fragment F{levels} on Query {{ __typename me {{ id }} }}\n"
    ));
    query
}

/// A chain of fragments, each spreading the next once: deep, not wide.
fn fragment_chain(length: usize) -> String {
    let mut query = String::from("{ ...F0 }\n");
    for link in 0..length {
        query.push_str(&format!(
            "fragment F{link} on Query {{ ...F{} }}\n",
            link + 1
        ));
    }
    query.push_str(&format!("fragment F{length} on Query {{ __typename }}\n"));
    query
}

on_both_databases! {
    async fn deeply_nested_values_are_refused_without_crashing(app: TestApp) {
        for levels in [100, 2_000, 50_000] {
            for query in deep_documents(levels) {
                let response = post(&app, &query, json!({})).await;
                assert_error(&response, "BAD_USER_INPUT");
                assert!(response["data"].is_null(), "{response:#}");
            }
        }
        // Nesting in the variables' JSON is bounded by the JSON parser.
        let deep = format!("{}true{}", "[".repeat(5_000), "]".repeat(5_000));
        let body = format!(r#"{{"query": "query($a: Boolean) {{ keys(includeRevoked: $a) {{ id }} }}", "variables": {{"a": {deep}}}}}"#);
        let response = client().post(app.url("/graphql")).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(response.status(), 400);
        still_serving(&app).await;
    }

    async fn nesting_within_the_bound_reaches_validation(app: TestApp) {
        let user = app.signup().await;
        // Forty levels pass the guard and get async-graphql's own answer.
        let query = format!("{{ keys(includeRevoked: {}) {{ id }} }}", nested("[", "]", "false", 40));
        let response = app.graphql(&query, json!({}), Some(&user.token)).await;
        assert_error(&response, "BAD_USER_INPUT");
        assert!(response["errors"][0]["message"].as_str().unwrap().contains("Invalid value"), "{response:#}");
        let deeper = format!("{{ keys(includeRevoked: {}) {{ id }} }}", nested("[", "]", "false", 100));
        let response = app.graphql(&deeper, json!({}), Some(&user.token)).await;
        assert!(response["errors"][0]["message"].as_str().unwrap().contains("nests brackets too deeply"), "{response:#}");
        // Brackets inside strings and comments are not nesting.
        let text = format!("{{ keys(includeRevoked: false) {{ id }} }} # {}", "[".repeat(200));
        app.ok(&text, json!({}), Some(&user.token)).await;
        let string = format!("mutation {{ verifyKey(input: {{ key: \"{}\" }}) {{ code }} }}", "{".repeat(200));
        assert_eq!(app.ok(&string, json!({}), None).await["verifyKey"]["code"], "NOT_FOUND");
        let block = format!("mutation {{ verifyKey(input: {{ key: \"\"\"a\\\"\"\" {}\"\"\" }}) {{ code }} }}", "(".repeat(200));
        assert_eq!(app.ok(&block, json!({}), None).await["verifyKey"]["code"], "NOT_FOUND");
    }

    async fn fragment_bombs_are_refused_and_health_answers_meanwhile(app: TestApp) {
        let bombs = [
            fragment_bomb(24, 2),
            fragment_bomb(30, 2),
            fragment_bomb(16, 4),
            fragment_bomb(12, 8),
            fragment_chain(40),
            fragment_chain(3_000),
        ];
        let attacks = bombs.iter().map(|bomb| post(&app, bomb, json!({})));
        let (answers, health) = tokio::join!(futures_util::future::join_all(attacks), async {
            let started = std::time::Instant::now();
            let health = client().get(app.url("/health")).send().await.unwrap();
            (health.status(), started.elapsed())
        });
        for answer in &answers {
            assert_error(answer, "BAD_USER_INPUT");
        }
        assert_eq!(health.0, 200);
        eprintln!("/health during the attack: {:?}", health.1);
        still_serving(&app).await;
    }

    async fn one_request_checks_at_most_one_password(app: TestApp) {
        let user = app.signup().await;
        let two_logins = format!(
            "mutation {{ a: login(input: {{ email: \"{0}\", password: \"wrong password 1\" }}) {{ token }} \
             b: login(input: {{ email: \"{0}\", password: \"wrong password 2\" }}) {{ token }} }}",
            user.email
        );
        let many: String = (0..200)
            .map(|i| format!("l{i}: login(input: {{ email: \"{}\", password: \"guess {i}\" }}) {{ token }} ", user.email))
            .collect();
        let through_fragments = format!(
            "mutation {{ ...L ...L }} fragment L on Mutation {{ login(input: {{ email: \"{}\", password: \"nope nope\" }}) {{ token }} }}",
            user.email
        );
        let signup_and_login = format!(
            "mutation {{ signup(input: {{ email: \"{}\", password: \"{PASSWORD}\" }}) {{ token }} \
             login(input: {{ email: \"{}\", password: \"{PASSWORD}\" }}) {{ token }} }}",
            unique_email(), user.email
        );
        for query in [two_logins, format!("mutation {{ {many} }}"), through_fragments, signup_and_login] {
            let response = post(&app, &query, json!({})).await;
            assert_error(&response, "BAD_USER_INPUT");
            assert!(response["data"].is_null(), "{response:#}");
        }
        // None of them was evaluated: no failure was counted against the email.
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM auth_attempts WHERE kind = 'login'").await, [0]);
        // One per request is fine.
        let one = format!("mutation {{ login(input: {{ email: \"{}\", password: \"{PASSWORD}\" }}) {{ token }} }}", user.email);
        assert!(post(&app, &one, json!({})).await["data"]["login"]["token"].is_string());
    }

    async fn fields_that_hit_the_database_cost_what_they_cost(app: TestApp) {
        let user = app.signup().await;
        for (field, count) in [("keysUsage { totalCredits }", 250), ("keys { id }", 250), ("keysUsage { totalCredits }", 30), ("me { billingAccount { plan } }", 100)] {
            let aliased: String = (0..count).map(|i| format!("a{i}: {field} ")).collect();
            let response = app.graphql(&format!("{{ {aliased} }}"), json!({}), Some(&user.token)).await;
            assert_error(&response, "BAD_USER_INPUT");
            assert!(response["errors"][0]["message"].as_str().unwrap().contains("too complex"), "{response:#}");
        }
        let verifies: String = (0..60)
            .map(|i| format!("v{i}: verifyKey(input: {{ key: \"{}\" }}) {{ code }} ", user.default_secret()))
            .collect();
        let response = app.graphql(&format!("mutation {{ {verifies} }}"), json!({}), None).await;
        assert_error(&response, "BAD_USER_INPUT");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [0]);
        // A dashboard's page still fits.
        app.ok("{ me { email billingAccount { plan monthlyCredits } } keys { id name } keysUsage { totalCredits keys { credits } } }", json!({}), Some(&user.token)).await;
    }

    async fn error_lists_are_capped(app: TestApp) {
        let variables: String = (0..10_000).map(|i| format!("$v{i}: Int ")).collect();
        let response = post(&app, &format!("query({variables}) {{ __typename }}"), json!({})).await;
        let errors = response["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 21, "20 errors and one that counts the rest");
        assert_eq!(errors[20]["message"], "and 9980 more errors");
        for error in errors {
            assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT");
        }
    }

    async fn logout_ends_the_session_for_the_rest_of_its_document(app: TestApp) {
        let user = app.signup().await;
        let response = app
            .graphql("mutation { logout again: logout k: createKey(input: { name: \"after\" }) { secret } }", json!({}), Some(&user.token))
            .await;
        assert_eq!(response["data"]["logout"], true, "{response:#}");
        let codes: Vec<&str> = response["errors"].as_array().unwrap().iter().map(|e| e["extensions"]["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["UNAUTHENTICATED", "UNAUTHENTICATED"], "{response:#}");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [1], "no key was made after logout");
        assert_error(&app.graphql(ME, json!({}), Some(&user.token)).await, "UNAUTHENTICATED");
    }
}

/// Generated documents, deeply nested and fragment-heavy, each answered
/// within the stall bound with data or a contract error; the server keeps
/// serving throughout.
#[test]
fn generated_hostile_documents_are_answered_quickly() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::spawn(Backend::Sqlite));
    let shapes = prop_oneof![
        (1usize..3_000, 0usize..8)
            .prop_map(|(levels, shape)| deep_documents(levels)[shape].clone()),
        (1usize..40, 1usize..5).prop_map(|(levels, fanout)| fragment_bomb(levels, fanout)),
        (1usize..2_000).prop_map(fragment_chain),
        (1usize..500, "[a-zA-Z_]{1,8}")
            .prop_map(|(n, name)| format!("{{ {} }}", format!("{name} ").repeat(n))),
    ];
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    runner
        .run(&shapes, |query| {
            let response = runtime.block_on(post(&app, &query, json!({})));
            prop_assert!(response.get("data").is_some() || response.get("errors").is_some());
            for error in response["errors"].as_array().into_iter().flatten() {
                let code = error["extensions"]["code"].as_str().unwrap_or("none");
                prop_assert!(
                    ["BAD_USER_INPUT", "UNAUTHENTICATED"].contains(&code),
                    "{}",
                    code
                );
            }
            Ok(())
        })
        .unwrap();
    runtime.block_on(still_serving(&app));
}
