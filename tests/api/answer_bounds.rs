//! One request's answer is bounded by what it will hold, not by how it is
//! spelled: usage points over every aliased series, refused before any
//! series runs, and the lists that grow with an account counted by the
//! account's real size, refused before a row is rendered. The dashboard's
//! own documents still fit an account at the key cap.

use serde_json::{json, Value};

use crate::helpers::*;

const QUERIES_JS: &str = include_str!("../../src/http/assets/queries.js");

/// The text of `export const NAME = `…`` in the dashboard's queries.js.
fn dashboard_document(name: &str) -> &'static str {
    let start = QUERIES_JS
        .find(&format!("export const {name} = `"))
        .expect("the document is in queries.js");
    let text = &QUERIES_JS[start..];
    let text = &text[text.find('`').unwrap() + 1..];
    &text[..text.find('`').unwrap()]
}

/// The last 168 hours by hour, from `$from`: every field of the series.
const HOUR_WEEK: &str = r#"
usageSeries(from: $from, interval: HOUR) {
  total { start credits requests } keys { apiKey { id } points { start credits requests } }
}"#;

fn week_ago(app: &TestApp) -> Value {
    let from = app.clock.now() - chrono::Duration::hours(167);
    json!({ "from": from.to_rfc3339() })
}

/// A user holding `keys` keys in all, the default one included.
async fn user_with_keys(app: &TestApp, keys: usize) -> TestUser {
    let user = app.signup().await;
    for i in 1..keys {
        app.create_key(&user, &format!("key {i}"), "DEV").await;
    }
    user
}

/// Refused, whole or in part: BAD_USER_INPUT errors saying `words`.
fn assert_refused(answer: &Value, words: &str) {
    let errors = answer["errors"].as_array().expect("errors");
    assert!(!errors.is_empty(), "{answer:#}");
    for error in errors {
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{answer:#}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
    }
}

/// Leaf values in an answer's data: what its size grows with.
fn values(answer: &Value) -> usize {
    fn count(value: &Value) -> usize {
        match value {
            Value::Object(map) => map.values().map(count).sum(),
            Value::Array(items) => items.iter().map(count).sum(),
            _ => 1,
        }
    }
    count(&answer["data"])
}

on_both_databases! {
    async fn usage_points_are_bounded_across_aliases_and_fragments(app: TestApp) {
        let user = user_with_keys(&app, 100).await;
        let from = week_ago(&app);
        // One week by hour over 100 keys: 168 × 101 = 16,968 points, served.
        let one = format!("query($from: DateTime) {{ {HOUR_WEEK} }}");
        let data = app.ok(&one, from.clone(), Some(&user.token)).await;
        assert_eq!(data["usageSeries"]["total"].as_array().unwrap().len(), 168);
        // Two of them, one through a fragment: 33,936 points, refused whole.
        let two = format!(
            "query($from: DateTime) {{ a: {HOUR_WEEK} ...Again }} \
             fragment Again on Query {{ b: {HOUR_WEEK} }}"
        );
        let answer = app.graphql(&two, from.clone(), Some(&user.token)).await;
        // Refused before any series ran: one error, for the whole request.
        assert_refused(&answer, "at most 25000 usage points");
        assert!(answer["data"].is_null(), "nothing ran: {answer:#}");
        assert_eq!(answer["errors"].as_array().unwrap().len(), 1, "{answer:#}");
        // The same two with keyIds naming one key three times: 2 × 168 × 2 points.
        let narrowed = two
            .replace("interval: HOUR", "interval: HOUR, keyIds: $ids")
            .replace("query($from: DateTime)", "query($from: DateTime, $ids: [UUID!])");
        let ids = vec![user.default_key_id(); 3];
        let variables = json!({ "from": from["from"], "ids": ids });
        let data = app.ok(&narrowed, variables, Some(&user.token)).await;
        assert_eq!(data["a"]["keys"].as_array().unwrap().len(), 1);
        // Another user with one key may ask the two series.
        let small = app.signup().await;
        app.ok(&two, from, Some(&small.token)).await;
    }

    async fn key_lists_cost_the_accounts_real_size(app: TestApp) {
        let fields = "id name keyType prefix status createdAt lastUsedAt expiresAt revokedAt rotatedFromId";
        let aliases: String = (0..9)
            .map(|i| format!(" k{i}: keys(includeRevoked: true) {{ {fields} }}"))
            .collect();
        let query = format!("{{{aliases} }}");
        // One key: each alias answers one row.
        let small = app.signup().await;
        let data = app.ok(&query, json!({}), Some(&small.token)).await;
        assert_eq!(data["k8"].as_array().unwrap().len(), 1);
        // A hundred keys: the same document would answer 9,000 values. The
        // lists that would pass the limit refuse before rendering a row.
        let big = user_with_keys(&app, 100).await;
        let answer = app.graphql(&query, json!({}), Some(&big.token)).await;
        assert_refused(&answer, "too complex");
        assert!(values(&answer) <= 10_000, "the answer stays within the budget");
        // keysUsage's list counts the same way.
        let usage_aliases: String = (0..9)
            .map(|i| format!(" u{i}: keysUsage {{ keys {{ credits requests apiKey {{ {fields} }} }} }}"))
            .collect();
        let answer = app.graphql(&format!("{{{usage_aliases} }}"), json!({}), Some(&big.token)).await;
        assert_refused(&answer, "too complex");
        assert!(values(&answer) <= 10_000, "the answer stays within the budget");
        // Fewer aliases of the same lists fit.
        let four: String = (0..4).map(|i| format!(" k{i}: keys(includeRevoked: true) {{ {fields} }}")).collect();
        let data = app.ok(&format!("{{{four} }}"), json!({}), Some(&big.token)).await;
        assert_eq!(data["k3"].as_array().unwrap().len(), 100);
    }

    async fn the_dashboards_documents_fit_an_account_at_the_key_cap(app: TestApp) {
        let user = user_with_keys(&app, 100).await;
        app.charge(user.default_secret(), 1).await;
        let data = app.ok(dashboard_document("DASHBOARD"), json!({}), Some(&user.token)).await;
        assert_eq!(data["keys"].as_array().unwrap().len(), 100);
        let now = app.clock.now();
        let day_ago = (now - chrono::Duration::hours(24)).to_rfc3339();
        let month_ago = (now - chrono::Duration::days(30)).to_rfc3339();
        let series = dashboard_document("USAGE_SERIES");
        app.ok(series, json!({}), Some(&user.token)).await;
        app.ok(series, json!({ "from": day_ago, "interval": "HOUR" }), Some(&user.token)).await;
        let data = app
            .ok(dashboard_document("KEY_SPARKLINES"), json!({ "from": month_ago }), Some(&user.token))
            .await;
        assert_eq!(data["usageSeries"]["keys"].as_array().unwrap().len(), 1);
    }
}
