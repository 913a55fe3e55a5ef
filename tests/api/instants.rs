//! Instants a client sends: every DateTime argument is range-checked where
//! it is parsed, a leap second is refused, and no instant, however far out,
//! makes the server drop a connection.

use serde_json::json;

use crate::helpers::*;

const SERIES: &str = r#"
query Series($from: DateTime, $to: DateTime, $interval: UsageInterval) {
  usageSeries(from: $from, to: $to, interval: $interval) { from to total { start credits } }
}"#;

on_both_databases! {
    async fn a_series_far_in_the_future_answers_instead_of_dropping_the_connection(app: TestApp) {
        let user = app.signup().await;
        // 2300 once overflowed the bucket arithmetic and panicked the task.
        for (from, to, interval) in [
            ("2300-01-01T00:00:00Z", "2300-01-02T00:00:00Z", "DAY"),
            ("2262-04-11T20:00:00Z", "2262-04-12T02:00:00Z", "HOUR"),
            ("9999-12-31T00:00:00Z", "9999-12-31T23:59:59Z", "HOUR"),
        ] {
            let data = app
                .ok(SERIES, json!({ "from": from, "to": to, "interval": interval }), Some(&user.token))
                .await;
            let total = data["usageSeries"]["total"].as_array().unwrap();
            assert!(!total.is_empty(), "{data:#}");
            assert!(total.iter().all(|point| point["credits"] == 0), "{data:#}");
        }
        // A default `to` one bucket after a `from` at the very end.
        let data = app
            .ok(SERIES, json!({ "from": "9999-12-31T23:00:00Z", "interval": "DAY" }), Some(&user.token))
            .await;
        assert_eq!(data["usageSeries"]["from"], "9999-12-31T00:00:00Z");
    }

    async fn instants_outside_the_range_are_bad_user_input_wherever_they_appear(app: TestApp) {
        let user = app.signup().await;
        for at in ["1969-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"] {
            // As a variable...
            let answer = app.graphql(SERIES, json!({ "from": at }), Some(&user.token)).await;
            assert_error(&answer, "BAD_USER_INPUT");
            // ...and written into the document.
            let inline = format!(r#"{{ usageSeries(from: "{at}") {{ from }} }}"#);
            let answer = app.graphql(&inline, json!({}), Some(&user.token)).await;
            assert_error(&answer, "BAD_USER_INPUT");
        }
        let answer = app
            .graphql(
                "mutation($at: DateTime) { createKey(input: { name: \"far\", expiresAt: $at }) { secret } }",
                json!({ "at": "1960-01-01T00:00:00Z" }),
                Some(&user.token),
            )
            .await;
        assert_error(&answer, "BAD_USER_INPUT");
        let message = answer["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("1970-01-01T00:00:00Z"), "{message}");
    }

    async fn a_leap_second_is_refused_so_both_databases_agree(app: TestApp) {
        let user = app.signup().await;
        let leap = "2099-12-31T23:59:60Z";
        let answer = app
            .graphql(
                "mutation($at: DateTime) { createKey(input: { name: \"leap\", expiresAt: $at }) { apiKey { expiresAt } } }",
                json!({ "at": leap }),
                Some(&user.token),
            )
            .await;
        assert_error(&answer, "BAD_USER_INPUT");
        assert!(answer["errors"][0]["message"].as_str().unwrap().contains("leap second"));
        let keys = app.query_i64("SELECT COUNT(*) FROM api_keys").await;
        assert_eq!(keys, [1], "only the default key: nothing stored");
        // A leap second would start hourly buckets off the hour.
        let answer = app
            .graphql(SERIES, json!({ "from": "2026-06-30T23:59:60Z", "interval": "HOUR" }), Some(&user.token))
            .await;
        assert_error(&answer, "BAD_USER_INPUT");
    }
}
