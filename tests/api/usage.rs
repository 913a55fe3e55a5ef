use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::*;

fn time(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// (name, credits, requests) of each listed key, in order.
fn summary(usage: &Value) -> Vec<(String, i64, i64)> {
    usage["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["apiKey"]["name"].as_str().unwrap().to_owned(),
                k["credits"].as_i64().unwrap(),
                k["requests"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn owned(rows: &[(&str, i64, i64)]) -> Vec<(String, i64, i64)> {
    rows.iter()
        .map(|(n, c, r)| (n.to_string(), *c, *r))
        .collect()
}

on_both_databases! {
    async fn usage_is_reported_per_key_most_credits_first_then_newest(app: TestApp) {
        let user = app.signup().await;
        let mut secrets = vec![user.default_secret().to_owned()];
        for name in ["alpha", "beta", "gamma", "idle"] {
            app.clock.advance(Duration::seconds(1));
            secrets.push(app.create_key(&user, name, "PROD").await["secret"].as_str().unwrap().to_owned());
        }
        // Default: 3 calls, 30 credits. alpha: 2 calls, 50. beta: 1 call, 30 (ties the default,
        // and is newer). gamma: checks only (credits 0) and one refused call.
        for credits in [10, 10, 10] { app.charge(&secrets[0], credits).await; }
        for credits in [20, 30] { app.charge(&secrets[1], credits).await; }
        app.charge(&secrets[2], 30).await;
        app.charge(&secrets[3], 0).await;
        app.charge(&secrets[3], 5000).await;

        let usage = app.keys_usage(&user).await;
        assert_eq!(
            summary(&usage),
            owned(&[("alpha", 50, 2), ("beta", 30, 1), ("Default key", 30, 3), ("idle", 0, 0), ("gamma", 0, 0)])
        );
        assert_eq!(usage["totalCredits"], 110);
        assert_eq!(usage["remainingCredits"], 890);
        let account = &user.signup["user"]["billingAccount"];
        assert_eq!(usage["cycleStart"], account["billingCycleStart"]);
        assert_eq!(usage["cycleEnd"], account["billingCycleEnd"]);
        let alpha = &usage["keys"][0]["apiKey"];
        assert_eq!(alpha["keyType"], "PROD");
        assert!(alpha["lastUsedAt"].is_string());
    }

    async fn revoked_keys_are_listed_only_with_usage_in_the_cycle(app: TestApp) {
        let mut user = app.signup().await;
        let used = app.create_key(&user, "used then revoked", "DEV").await;
        let unused = app.create_key(&user, "revoked unused", "DEV").await;
        app.charge(used["secret"].as_str().unwrap(), 40).await;
        for key in [&used, &unused] {
            app.ok(REVOKE_KEY, json!({ "id": key["apiKey"]["id"] }), Some(&user.token)).await;
        }
        let usage = app.keys_usage(&user).await;
        assert_eq!(summary(&usage), owned(&[("used then revoked", 40, 1), ("Default key", 0, 0)]));
        assert!(usage["keys"][0]["apiKey"]["revokedAt"].is_string());

        // In the next cycle it has no usage, so it is gone from the list.
        app.clock.advance(Duration::days(31));
        app.login(&mut user).await;
        let next = app.keys_usage(&user).await;
        assert_eq!(summary(&next), owned(&[("Default key", 0, 0)]));
    }

    async fn each_user_sees_only_their_own_usage(app: TestApp) {
        let ada = app.signup().await;
        let bob = app.signup().await;
        app.charge(ada.default_secret(), 300).await;
        app.charge(bob.default_secret(), 7).await;
        let ada_usage = app.keys_usage(&ada).await;
        let bob_usage = app.keys_usage(&bob).await;
        assert_eq!((ada_usage["totalCredits"].as_i64(), bob_usage["totalCredits"].as_i64()), (Some(300), Some(7)));
        assert_eq!(ada_usage["keys"].as_array().unwrap().len(), 1);
        assert_eq!(ada_usage["keys"][0]["apiKey"]["id"], ada.default_key_id());
        assert_eq!(bob_usage["keys"][0]["apiKey"]["id"], bob.default_key_id());
        // And the quota is per account: Bob's usage does not eat Ada's credits.
        assert_eq!(app.charge(ada.default_secret(), 700).await["code"], "VALID");
    }

    async fn keys_usage_requires_a_session(app: TestApp) {
        assert_error(&app.graphql(KEYS_USAGE, json!({}), None).await, "UNAUTHENTICATED");
    }

    async fn keys_usage_provisions_a_missing_account(app: TestApp) {
        let user = app.signup().await;
        app.execute("DELETE FROM billing_accounts").await;
        let usage = app.keys_usage(&user).await;
        assert_eq!((usage["totalCredits"].as_i64(), usage["remainingCredits"].as_i64()), (Some(0), Some(1000)));
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM billing_accounts").await, [1]);
    }

    async fn cycles_roll_over_by_calendar_months_from_the_anchor(app: TestApp) {
        // Signed up on Jan 31 of a leap year.
        app.clock.set(time("2028-01-31T12:00:00Z"));
        let mut user = app.signup().await;
        let secret = user.default_secret().to_owned();
        let secret = secret.as_str();
        app.charge(secret, 1000).await;
        let refused = app.charge(secret, 1).await;
        assert_eq!(refused["code"], "USAGE_EXCEEDED");
        assert_eq!(refused["cycleEnd"], "2028-02-29T12:00:00Z");

        // One microsecond before the end, still the old cycle.
        app.clock.set(time("2028-02-29T11:59:59.999999Z"));
        assert_eq!(app.charge(secret, 1).await["code"], "USAGE_EXCEEDED");

        // Feb 29 (leap year): a new cycle, with all its credits, ending Mar 31.
        app.clock.set(time("2028-02-29T12:00:00Z"));
        app.login(&mut user).await;
        let renewed = app.charge(secret, 1).await;
        assert_eq!((renewed["code"].as_str(), renewed["remainingCredits"].as_i64()), (Some("VALID"), Some(999)));
        assert_eq!(renewed["cycleEnd"], "2028-03-31T12:00:00Z");
        let usage = app.keys_usage(&user).await;
        assert_eq!((usage["cycleStart"].as_str(), usage["cycleEnd"].as_str()), (Some("2028-02-29T12:00:00Z"), Some("2028-03-31T12:00:00Z")));
        assert_eq!(summary(&usage), owned(&[("Default key", 1, 1)]));

        // Months without any request are skipped in one step; usage starts from zero.
        app.clock.set(time("2028-07-15T00:00:00Z"));
        app.login(&mut user).await;
        let me = app.ok(ME, json!({}), Some(&user.token)).await;
        let account = &me["me"]["billingAccount"];
        assert_eq!(account["billingCycleStart"], "2028-06-30T12:00:00Z");
        assert_eq!(account["billingCycleEnd"], "2028-07-31T12:00:00Z");
        let usage = app.keys_usage(&user).await;
        assert_eq!((usage["totalCredits"].as_i64(), usage["remainingCredits"].as_i64()), (Some(0), Some(1000)));
        assert_eq!(summary(&usage), owned(&[("Default key", 0, 0)]));
        assert_eq!(app.charge(secret, 1000).await["remainingCredits"], 0);

        // Raw events of every cycle stay: they are the audit trail.
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [3]);
    }

    async fn a_non_leap_february_ends_on_the_28th(app: TestApp) {
        app.clock.set(time("2027-01-31T08:30:00Z"));
        let mut user = app.signup().await;
        let result = app.charge(user.default_secret(), 1).await;
        assert_eq!(result["cycleEnd"], "2027-02-28T08:30:00Z");
        app.clock.set(time("2027-03-01T00:00:00Z"));
        app.login(&mut user).await;
        let usage = app.keys_usage(&user).await;
        assert_eq!(usage["cycleStart"], "2027-02-28T08:30:00Z");
        assert_eq!(usage["cycleEnd"], "2027-03-31T08:30:00Z");
        assert_eq!(usage["totalCredits"], 0);
    }
}
