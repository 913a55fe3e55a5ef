//! refundUsage (contract v3): a charged call's credits and request are
//! given back once, however many refunds race, in the buckets the call was
//! charged in; its requestId still answers its first answer.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

const REFUND: &str = r#"
mutation Refund($input: RefundUsageInput!) {
  refundUsage(input: $input) { code credits remainingCredits }
}"#;

const SERIES: &str = r#"
query($from: DateTime, $interval: UsageInterval) {
  usageSeries(from: $from, interval: $interval) { total { start credits requests } }
}"#;

impl TestApp {
    async fn refund(&self, secret: &str, request_id: &str) -> Value {
        let input = json!({ "input": { "key": secret, "requestId": request_id } });
        self.ok(REFUND, input, None).await["refundUsage"].clone()
    }

    async fn charge_with_id(&self, secret: &str, credits: i64, request_id: &str) -> Value {
        self.verify(json!({ "key": secret, "credits": credits, "requestId": request_id }))
            .await
    }
}

fn code(answer: &Value) -> &str {
    answer["code"].as_str().unwrap()
}

on_both_databases! {
    async fn a_refund_gives_back_the_credits_and_the_request_once(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret();
        let first = app.charge_with_id(secret, 5, "call-1").await;
        assert_eq!(first["remainingCredits"], 995);
        app.charge_with_id(secret, 2, "call-2").await;
        let used_at = app.ok(KEYS, json!({}), Some(&user.token)).await["keys"][0]["lastUsedAt"].clone();

        let refund = app.refund(secret, "call-1").await;
        assert_eq!(refund, json!({ "code": "REFUNDED", "credits": 5, "remainingCredits": 998 }));
        let usage = app.keys_usage(&user).await;
        assert_eq!((usage["totalCredits"].as_i64(), usage["remainingCredits"].as_i64()), (Some(2), Some(998)));
        assert_eq!((usage["keys"][0]["credits"].as_i64(), usage["keys"][0]["requests"].as_i64()), (Some(2), Some(1)));
        let series = app.ok(SERIES, json!({}), Some(&user.token)).await;
        let total: Vec<&Value> = series["usageSeries"]["total"].as_array().unwrap().iter().collect();
        let sum = |field: &str| total.iter().map(|p| p[field].as_i64().unwrap()).sum::<i64>();
        assert_eq!((sum("credits"), sum("requests")), (2, 1));
        // lastUsedAt is unchanged: the call was made.
        let keys = app.ok(KEYS, json!({}), Some(&user.token)).await;
        assert_eq!(keys["keys"][0]["lastUsedAt"], used_at);

        // Again: nothing changes.
        let again = app.refund(secret, "call-1").await;
        assert_eq!(again, json!({ "code": "ALREADY_REFUNDED", "credits": 0, "remainingCredits": 998 }));
        // A retry of the call answers its first answer and charges nothing.
        assert_eq!(app.charge_with_id(secret, 5, "call-1").await, first);
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 2);
    }

    async fn what_was_not_charged_cannot_be_refunded(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret();
        // A free check, a refused call, an unknown requestId, another key's call.
        app.charge_with_id(secret, 0, "free").await;
        assert_eq!(code(&app.charge_with_id(secret, 5_000, "too-much").await), "USAGE_EXCEEDED");
        let other = app.create_key(&user, "other", "DEV").await;
        let other_secret = other["secret"].as_str().unwrap();
        app.charge_with_id(other_secret, 3, "theirs").await;
        for request_id in ["free", "too-much", "never-sent", "theirs"] {
            let refund = app.refund(secret, request_id).await;
            assert_eq!(refund, json!({ "code": "NOT_FOUND", "credits": 0, "remainingCredits": 997 }), "{request_id}");
        }
        let unknown = app.refund("sk_dev_unknown", "theirs").await;
        assert_eq!(unknown, json!({ "code": "NOT_FOUND", "credits": 0, "remainingCredits": null }));
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 3);
        // A requestId verifyKey would refuse is refused here too.
        let input = json!({ "input": { "key": secret, "requestId": "" } });
        assert_error(&app.graphql(REFUND, input, None).await, "BAD_USER_INPUT");
    }

    async fn racing_refunds_over_two_servers_give_back_once(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        app.charge_with_id(&secret, 7, "raced").await;
        let other = app.spawn_second_server().await;
        let input = json!({ "input": { "key": secret, "requestId": "raced" } });
        let refunds = join_all((0..16).map(|i| {
            let addr = if i % 2 == 0 { app.addr } else { other };
            app.graphql_at(addr, REFUND, input.clone(), None)
        }))
        .await;
        let codes: Vec<&str> = refunds.iter().map(|r| r["data"]["refundUsage"]["code"].as_str().unwrap()).collect();
        assert_eq!(codes.iter().filter(|c| **c == "REFUNDED").count(), 1, "{refunds:#?}");
        assert_eq!(codes.iter().filter(|c| **c == "ALREADY_REFUNDED").count(), 15, "{refunds:#?}");
        let usage = app.keys_usage(&user).await;
        assert_eq!((usage["totalCredits"].as_i64(), usage["keys"][0]["requests"].as_i64()), (Some(0), Some(0)));
    }

    async fn a_refund_frees_the_quota_it_gives_back(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret();
        assert_eq!(code(&app.charge_with_id(secret, 1_000, "all").await), "VALID");
        let refused = app.charge(secret, 1).await;
        assert_eq!(code(&refused), "USAGE_EXCEEDED");
        assert!(refused["remainingCredits"] == 0);
        app.refund(secret, "all").await;
        assert_eq!(code(&app.charge(secret, 1).await), "VALID");
    }

    async fn a_refund_leaves_the_hour_it_was_charged_in(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret();
        app.charge_with_id(secret, 4, "early").await;
        app.clock.advance(chrono::Duration::hours(3));
        app.charge_with_id(secret, 1, "late").await;
        assert_eq!(code(&app.refund(secret, "early").await), "REFUNDED");
        let from = (app.clock.now() - chrono::Duration::hours(5)).to_rfc3339();
        let series = app
            .ok(SERIES, json!({ "from": from, "interval": "HOUR" }), Some(&user.token))
            .await;
        let credits: Vec<i64> = series["usageSeries"]["total"]
            .as_array().unwrap().iter().map(|p| p["credits"].as_i64().unwrap()).collect();
        assert_eq!(credits.iter().sum::<i64>(), 1, "{credits:?}");
        assert_eq!(*credits.last().unwrap(), 1, "the late call stays where it was: {credits:?}");
    }

    async fn revoked_keys_refund_and_ended_cycles_do_not(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret();
        app.charge_with_id(secret, 6, "before-revoke").await;
        app.ok(REVOKE_KEY, json!({ "id": user.default_key_id() }), Some(&user.token)).await;
        assert_eq!(code(&app.refund(secret, "before-revoke").await), "REFUNDED");

        // A call charged in the last hour of a cycle, refunded in the next one.
        let other = app.signup().await;
        let cycle_end: chrono::DateTime<chrono::Utc> =
            other.signup["user"]["billingAccount"]["billingCycleEnd"].as_str().unwrap().parse().unwrap();
        app.clock.advance(cycle_end - app.clock.now() - chrono::Duration::minutes(30));
        let secret = other.default_secret();
        app.charge_with_id(secret, 9, "late-in-cycle").await;
        app.clock.advance(chrono::Duration::hours(1));
        let refund = app.refund(secret, "late-in-cycle").await;
        assert_eq!(refund, json!({ "code": "CYCLE_ENDED", "credits": 0, "remainingCredits": 1000 }));
        // Past 24 hours nothing is remembered.
        app.charge_with_id(secret, 2, "old").await;
        app.clock.advance(chrono::Duration::hours(25));
        assert_eq!(code(&app.refund(secret, "old").await), "NOT_FOUND");
    }
}
