//! Key expiry where charges are decided, and usage over time (usageSeries)
//! from the hourly and daily rollups every charge writes.

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::helpers::*;

const CREATE_EXPIRING: &str = r#"
mutation($input: CreateKeyInput!) {
  createKey(input: $input) { secret apiKey { id expiresAt } }
}"#;

const SERIES: &str = r#"
query($from: DateTime, $to: DateTime, $interval: UsageInterval, $keyIds: [UUID!]) {
  usageSeries(from: $from, to: $to, interval: $interval, keyIds: $keyIds) {
    interval from to
    total { start credits requests }
    keys { apiKey { id name } points { start credits requests } }
  }
}"#;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A key of `user` that expires `in_secs` seconds from the server's now.
async fn expiring_key(app: &TestApp, user: &TestUser, in_secs: i64) -> (String, String) {
    let at = rfc3339(app.clock.now() + Duration::seconds(in_secs));
    let input = json!({ "input": { "name": "trial", "expiresAt": at } });
    let created = app.ok(CREATE_EXPIRING, input, Some(&user.token)).await["createKey"].clone();
    (
        created["secret"].as_str().unwrap().to_owned(),
        created["apiKey"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn series(app: &TestApp, user: &TestUser, variables: Value) -> Value {
    app.ok(SERIES, variables, Some(&user.token)).await["usageSeries"].clone()
}

fn sums(points: &Value) -> (i64, i64) {
    points.as_array().unwrap().iter().fold((0, 0), |(c, r), p| {
        (
            c + p["credits"].as_i64().unwrap(),
            r + p["requests"].as_i64().unwrap(),
        )
    })
}

async fn expired_keys_are_refused_on_every_path(app: TestApp) {
    let user = app.signup().await;
    let (secret, key_id) = expiring_key(&app, &user, 120).await;
    // Charged before the expiry: the process now remembers the key (PostgreSQL).
    assert_eq!(app.charge(&secret, 3).await["code"], "VALID");
    let early = app
        .verify(json!({ "key": secret, "credits": 2, "requestId": "before" }))
        .await;
    assert_eq!(early["code"], "VALID");
    app.clock.advance(Duration::seconds(121));
    for input in [
        json!({ "key": secret, "credits": 1 }),
        json!({ "key": secret, "credits": 1, "requestId": "after" }),
        json!({ "key": secret, "credits": 0 }),
    ] {
        let answer = app.verify(input).await;
        assert_eq!(answer["code"], "EXPIRED", "{answer:#}");
        assert_eq!(answer["valid"], false);
        assert_eq!(answer["keyId"], key_id.as_str());
        assert_eq!(answer["keyType"], "DEV");
        assert_eq!(answer["remainingCredits"], 995);
        assert!(answer["cycleEnd"].is_string());
    }
    // A requestId answered before the expiry still gets its first answer.
    let retried = app
        .verify(json!({ "key": secret, "credits": 2, "requestId": "before" }))
        .await;
    assert_eq!(retried, early);
    // Nothing was recorded after the expiry.
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM api_key_usage").await,
        [2]
    );
    assert_eq!(
        app.query_i64("SELECT credits_used FROM billing_cycle_usage")
            .await,
        [5]
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM verify_requests").await,
        [1]
    );
}

on_both_backends! {
    async fn an_expired_key_answers_expired_and_records_nothing_grouped(backend: Backend) {
        expired_keys_are_refused_on_every_path(TestApp::spawn(backend).await).await;
    }

    async fn an_expired_key_answers_expired_and_records_nothing_per_request(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.group_commit = false).await;
        expired_keys_are_refused_on_every_path(app).await;
    }
}

on_both_databases! {
    async fn a_remembered_key_is_never_charged_past_its_expiry_under_load(app: TestApp) {
        let user = app.signup().await;
        let (secret, _) = expiring_key(&app, &user, 61).await;
        assert_eq!(app.charge(&secret, 1).await["code"], "VALID");
        app.clock.advance(Duration::seconds(62));
        let calls = (0..40).map(|_| app.charge(&secret, 1));
        for answer in futures_util::future::join_all(calls).await {
            assert_eq!(answer["code"], "EXPIRED");
        }
        assert_eq!(app.query_i64("SELECT credits_used FROM billing_cycle_usage").await, [1]);
    }

    async fn the_default_series_adds_up_to_keys_usage(app: TestApp) {
        let user = app.signup().await;
        let second = app.create_key(&user, "second", "PROD").await;
        let second_secret = second["secret"].as_str().unwrap().to_owned();
        for (secret, credits, request_id) in [
            (user.default_secret(), 5, None),
            (user.default_secret(), 2, Some("r1")),
            (second_secret.as_str(), 7, None),
            (second_secret.as_str(), 1, Some("r2")),
        ] {
            let input = json!({ "key": secret, "credits": credits, "requestId": request_id });
            assert_eq!(app.verify(input).await["code"], "VALID");
            app.clock.advance(Duration::hours(5));
        }
        let usage = app.keys_usage(&user).await;
        let series = series(&app, &user, json!({})).await;
        assert_eq!(series["interval"], "DAY");
        assert_eq!(sums(&series["total"]), (15, 4));
        assert_eq!(usage["totalCredits"], 15);
        for key in usage["keys"].as_array().unwrap() {
            let id = &key["apiKey"]["id"];
            let own = series["keys"].as_array().unwrap().iter().find(|k| &k["apiKey"]["id"] == id).unwrap();
            assert_eq!(sums(&own["points"]), (key["credits"].as_i64().unwrap(), key["requests"].as_i64().unwrap()));
        }
        // Most credits first.
        assert_eq!(series["keys"][0]["apiKey"]["name"], "second");
        // Zero-filled, oldest first, one point per bucket.
        let points = series["total"].as_array().unwrap();
        let starts: Vec<&str> = points.iter().map(|p| p["start"].as_str().unwrap()).collect();
        let mut sorted = starts.clone();
        sorted.sort();
        assert_eq!(starts, sorted);
        assert_eq!(series["keys"][1]["points"].as_array().unwrap().len(), points.len());
    }

    async fn charges_land_in_their_hour_and_day_across_boundaries(app: TestApp) {
        let midnight = (Utc::now() + Duration::days(3)).duration_trunc(Duration::days(1)).unwrap();
        app.clock.set(midnight - Duration::minutes(90));
        let user = app.signup().await;
        app.charge(user.default_secret(), 1).await; // 22:30, day 1
        app.clock.set(midnight - Duration::minutes(1));
        app.charge(user.default_secret(), 2).await; // 23:59, day 1
        app.clock.set(midnight + Duration::minutes(1));
        app.charge(user.default_secret(), 4).await; // 00:01, day 2
        let hours = series(&app, &user, json!({
            "from": rfc3339(midnight - Duration::hours(3)),
            "to": rfc3339(midnight + Duration::hours(1)),
            "interval": "HOUR",
        })).await;
        let credits: Vec<i64> = hours["total"].as_array().unwrap().iter().map(|p| p["credits"].as_i64().unwrap()).collect();
        assert_eq!(credits, [0, 1, 2, 4]);
        assert_eq!(hours["from"], rfc3339(midnight - Duration::hours(3)));
        let days = series(&app, &user, json!({
            "from": rfc3339(midnight - Duration::hours(30)),
            "to": rfc3339(midnight + Duration::hours(2)),
        })).await;
        let credits: Vec<i64> = days["total"].as_array().unwrap().iter().map(|p| p["credits"].as_i64().unwrap()).collect();
        assert_eq!(credits, [0, 3, 4], "{days:#}");
        assert_eq!(days["to"], rfc3339(midnight + Duration::days(1)));
        // Across the cycle's rollover, the series keeps the old cycle's usage
        // while keysUsage starts again.
        app.clock.set(midnight + Duration::days(40));
        let mut user = user;
        app.login(&mut user).await;
        app.charge(user.default_secret(), 8).await;
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 8);
        let all = series(&app, &user, json!({
            "from": rfc3339(midnight - Duration::days(2)),
            "to": rfc3339(midnight + Duration::days(41)),
        })).await;
        assert_eq!(sums(&all["total"]), (15, 4));
    }

    async fn series_are_refused_past_their_limits_and_for_foreign_keys(app: TestApp) {
        let user = app.signup().await;
        let other = app.signup().await;
        let now = app.clock.now();
        let cases = [
            (json!({ "from": rfc3339(now), "to": rfc3339(now + Duration::hours(169)), "interval": "HOUR" }), "168"),
            (json!({ "from": rfc3339(now), "to": rfc3339(now + Duration::days(93)) }), "92"),
            (json!({ "from": rfc3339(now), "to": rfc3339(now) }), "before"),
            (json!({ "from": rfc3339(now), "to": rfc3339(now - Duration::days(1)) }), "before"),
        ];
        for (variables, says) in cases {
            let response = app.graphql(SERIES, variables, Some(&user.token)).await;
            assert_error(&response, "BAD_USER_INPUT");
            assert!(response["errors"][0]["message"].as_str().unwrap().contains(says), "{response:#}");
        }
        let foreign = app.graphql(SERIES, json!({ "keyIds": [other.default_key_id()] }), Some(&user.token)).await;
        assert_error(&foreign, "NOT_FOUND");
        // Exactly the keys asked for, with or without usage.
        let chosen = series(&app, &user, json!({ "keyIds": [user.default_key_id()] })).await;
        assert_eq!(chosen["keys"].as_array().unwrap().len(), 1);
        assert_eq!(sums(&chosen["keys"][0]["points"]), (0, 0));
        // Another user's usage stays theirs.
        app.charge(other.default_secret(), 5).await;
        let none = series(&app, &user, json!({})).await;
        assert!(none["keys"].as_array().unwrap().is_empty());
        assert_eq!(sums(&none["total"]), (0, 0));
        let theirs = series(&app, &other, json!({})).await;
        assert_eq!(sums(&theirs["total"]), (5, 1));
        assert_error(&app.graphql(SERIES, json!({}), None).await, "UNAUTHENTICATED");
    }

    async fn points_answer_aliases_fragments_and_directives_like_any_object(app: TestApp) {
        let user = app.signup().await;
        app.charge(user.default_secret(), 3).await;
        let query = r#"
            fragment Counts on UsagePoint { credits n: requests credits }
            query($on: Boolean!) {
              usageSeries {
                total {
                  __typename
                  ...Counts
                  ... on UsagePoint { at: start }
                  ... @include(if: $on) { when: start }
                  ... @skip(if: $on) { hidden: start }
                  requests @skip(if: $on)
                  kind: __typename
                }
                keys { points { c: credits, c: credits } }
              }
            }"#;
        let answer = app.ok(query, json!({ "on": true }), Some(&user.token)).await;
        let series = &answer["usageSeries"];
        let charged = |points: &Value| points.as_array().unwrap().iter().find(|p| p.as_object().unwrap().values().any(|v| v == 3)).cloned().unwrap();
        let point = &charged(&series["total"]);
        let keys: Vec<&str> = point.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["__typename", "at", "credits", "kind", "n", "when"], "{point:#}");
        assert_eq!(point["__typename"], "UsagePoint");
        assert_eq!(point["kind"], "UsagePoint");
        assert_eq!((point["credits"].as_i64(), point["n"].as_i64()), (Some(3), Some(1)));
        assert_eq!(point["at"], point["when"]);
        assert!(point["at"].as_str().unwrap().ends_with("T00:00:00Z"), "{point:#}");
        assert_eq!(charged(&series["keys"][0]["points"]), json!({ "c": 3 }));
    }
}
