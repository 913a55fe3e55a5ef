use chrono::Duration;
use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{json, Value};

use crate::helpers::*;

fn count(results: &[Value], code: &str) -> usize {
    results.iter().filter(|r| r["code"] == code).count()
}

on_both_databases! {
    async fn a_valid_key_is_charged_and_its_use_recorded(app: TestApp) {
        let user = app.signup().await;
        let result = app.verify(json!({ "key": user.default_secret(), "credits": 30, "endpoint": "/v1/search" })).await;
        assert_eq!(result["valid"], true);
        assert_eq!(result["code"], "VALID");
        assert_eq!(result["keyId"], user.default_key_id());
        assert_eq!(result["keyType"], "DEV");
        assert_eq!(result["remainingCredits"], 970);
        assert_eq!(result["cycleEnd"], user.signup["user"]["billingAccount"]["billingCycleEnd"]);

        let default_credits = app.verify(json!({ "key": user.default_secret() })).await;
        assert_eq!(default_credits["remainingCredits"], 969);

        let events = app.rows("SELECT credits, endpoint FROM api_key_usage ORDER BY id").await;
        let events: Vec<(i32, Option<String>)> = events
            .iter()
            .map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap()))
            .collect();
        assert_eq!(events, [(30, Some("/v1/search".to_owned())), (1, None)]);
        let keys = app.ok(KEYS, json!({}), Some(&user.token)).await;
        assert!(keys["keys"][0]["lastUsedAt"].is_string());
    }

    async fn unknown_secrets_are_not_found_and_carry_nothing(app: TestApp) {
        let user = app.signup().await;
        let forged = format!("{}x", user.default_secret());
        for key in [forged.as_str(), "sk_dev_nope", "", &"k".repeat(10_000)] {
            let result = app.verify(json!({ "key": key, "credits": 5 })).await;
            assert_eq!(
                result,
                json!({ "valid": false, "code": "NOT_FOUND", "keyId": null, "keyType": null, "remainingCredits": null, "cycleEnd": null })
            );
        }
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [0]);
    }

    async fn revoked_keys_are_refused_and_not_charged(app: TestApp) {
        let user = app.signup().await;
        app.charge(user.default_secret(), 10).await;
        app.ok(REVOKE_KEY, json!({ "id": user.default_key_id() }), Some(&user.token)).await;
        let result = app.charge(user.default_secret(), 10).await;
        assert_eq!(result["valid"], false);
        assert_eq!(result["code"], "REVOKED");
        assert_eq!(result["keyId"], user.default_key_id());
        assert_eq!(result["remainingCredits"], 990);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [1]);
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 10);
    }

    async fn the_quota_is_exact_at_the_boundary(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret();
        assert_eq!(app.charge(secret, 999).await["remainingCredits"], 1);
        let last = app.charge(secret, 1).await;
        assert_eq!((last["code"].as_str(), last["remainingCredits"].as_i64()), (Some("VALID"), Some(0)));
        let over = app.charge(secret, 1).await;
        assert_eq!(over["valid"], false);
        assert_eq!(over["code"], "USAGE_EXCEEDED");
        assert_eq!(over["remainingCredits"], 0);
        assert_eq!(over["cycleEnd"], last["cycleEnd"]);
        // A check costs nothing and still answers VALID.
        let check = app.charge(secret, 0).await;
        assert_eq!((check["code"].as_str(), check["remainingCredits"].as_i64()), (Some("VALID"), Some(0)));
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [2]);
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 1000);
    }

    async fn a_charge_that_does_not_fit_records_nothing_but_smaller_ones_still_fit(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret();
        app.charge(secret, 990).await;
        let refused = app.charge(secret, 11).await;
        assert_eq!((refused["code"].as_str(), refused["remainingCredits"].as_i64()), (Some("USAGE_EXCEEDED"), Some(10)));
        assert_eq!(app.charge(secret, 10).await["code"], "VALID");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [2]);
    }

    async fn a_charge_read_before_a_concurrent_one_commits_is_checked_against_the_new_total(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret().to_owned();
        app.charge(&secret, 1).await;
        // Another writer (a second process, say) holds the counter at 990, uncommitted.
        let other = app.db.begin().await.unwrap();
        other
            .execute_unprepared("UPDATE billing_cycle_usage SET credits_used = 990")
            .await
            .unwrap();
        // This charge reads 1 used, so 30 seems to fit, and waits for the row.
        let charge = {
            let (http, url) = (app.http.clone(), app.url("/graphql"));
            let body = json!({ "query": VERIFY_KEY, "variables": { "input": { "key": secret, "credits": 30 } } });
            tokio::spawn(async move { http.post(url).json(&body).send().await?.json::<Value>().await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!charge.is_finished(), "the charge waits for the other writer");
        other.commit().await.unwrap();
        let refused = charge.await.unwrap().unwrap()["data"]["verifyKey"].clone();
        assert_eq!((refused["code"].as_str(), refused["remainingCredits"].as_i64()), (Some("USAGE_EXCEEDED"), Some(10)));
        assert_eq!(app.query_i64("SELECT credits_used FROM billing_cycle_usage").await, [990]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [1]);
        assert_eq!(app.query_i64("SELECT requests FROM api_key_cycle_usage").await, [1]);
    }

    async fn a_plan_changed_after_a_charge_prices_the_next_one(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret();
        assert_eq!(app.charge(secret, 10).await["remainingCredits"], 990);
        // The server has charged this key and may price the next call from
        // what it read then; the database's plan must still win.
        app.db
            .execute_unprepared("UPDATE billing_accounts SET monthly_credits = 15")
            .await
            .unwrap();
        let fits = app.charge(secret, 4).await;
        assert_eq!((fits["code"].as_str(), fits["remainingCredits"].as_i64()), (Some("VALID"), Some(1)));
        let refused = app.charge(secret, 2).await;
        assert_eq!((refused["code"].as_str(), refused["remainingCredits"].as_i64()), (Some("USAGE_EXCEEDED"), Some(1)));
        assert_eq!(app.query_i64("SELECT credits_used FROM billing_cycle_usage").await, [14]);
    }

    async fn last_used_at_moves_at_most_once_a_second(app: TestApp) {
        let user = app.signup().await;
        let last_used = || async {
            let keys = app.ok(KEYS, json!({}), Some(&user.token)).await;
            keys["keys"][0]["lastUsedAt"].as_str().unwrap().to_owned()
        };
        app.charge(user.default_secret(), 1).await;
        let first = last_used().await;
        app.clock.advance(Duration::milliseconds(500));
        app.charge(user.default_secret(), 1).await;
        assert_eq!(last_used().await, first);
        app.clock.advance(Duration::milliseconds(600));
        app.charge(user.default_secret(), 1).await;
        assert_ne!(last_used().await, first);
        // Every charge is still recorded in full.
        assert_eq!(app.keys_usage(&user).await["keys"][0]["requests"], 3);
    }

    async fn a_credits_zero_check_records_nothing(app: TestApp) {
        let user = app.signup().await;
        let check = app.charge(user.default_secret(), 0).await;
        assert_eq!((check["code"].as_str(), check["remainingCredits"].as_i64()), (Some("VALID"), Some(1000)));
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [0]);
        let keys = app.ok(KEYS, json!({}), Some(&user.token)).await;
        assert!(keys["keys"][0]["lastUsedAt"].is_null());
    }

    async fn sixty_concurrent_charges_never_exceed_the_quota(app: TestApp) {
        let user = app.signup().await;
        let calls = (0..60).map(|_| app.charge(user.default_secret(), 30));
        let results = join_all(calls).await;
        assert_eq!(count(&results, "VALID"), 33, "{results:#?}");
        assert_eq!(count(&results, "USAGE_EXCEEDED"), 27);
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 990);
        assert_eq!(app.query_i64("SELECT COALESCE(SUM(calls), 0) FROM api_key_usage").await, [33]);
        // Every VALID answer saw a distinct total.
        let mut remaining: Vec<i64> = results.iter().filter(|r| r["valid"] == true).map(|r| r["remainingCredits"].as_i64().unwrap()).collect();
        remaining.sort_unstable();
        assert_eq!(remaining, (0..33).map(|i| 10 + 30 * i).collect::<Vec<_>>());
    }

    async fn keys_of_one_account_share_its_quota(app: TestApp) {
        let user = app.signup().await;
        let second = app.create_key(&user, "second", "PROD").await;
        let second = second["secret"].as_str().unwrap();
        let calls = (0..40).map(|i| app.charge(if i % 2 == 0 { user.default_secret() } else { second }, 50));
        let results = join_all(calls).await;
        assert_eq!(count(&results, "VALID"), 20);
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 1000);
    }

    async fn a_retried_request_id_is_answered_the_same_and_charged_once(app: TestApp) {
        let user = app.signup().await;
        let request = json!({ "key": user.default_secret(), "credits": 100, "requestId": "req-1" });
        let first = app.verify(request.clone()).await;
        app.charge(user.default_secret(), 50).await;
        let retry = app.verify(request.clone()).await;
        assert_eq!(retry, first);
        assert_eq!(retry["remainingCredits"], 900);
        // The same id on another key is another request.
        let other = app.create_key(&user, "other", "DEV").await;
        let on_other = app.verify(json!({ "key": other["secret"], "credits": 100, "requestId": "req-1" })).await;
        assert_eq!(on_other["remainingCredits"], 750);
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 250);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [3]);
    }

    async fn racing_retries_of_one_request_id_charge_once(app: TestApp) {
        let user = app.signup().await;
        let request = json!({ "key": user.default_secret(), "credits": 7, "requestId": "retry-storm" });
        let results = join_all((0..12).map(|_| app.verify(request.clone()))).await;
        assert!(results.iter().all(|r| *r == results[0]), "{results:#?}");
        assert_eq!(results[0]["remainingCredits"], 993);
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 7);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [1]);
    }

    async fn a_refused_request_is_answered_the_same_on_retry(app: TestApp) {
        let user = app.signup().await;
        app.charge(user.default_secret(), 995).await;
        let cycle_end: chrono::DateTime<chrono::Utc> =
            user.signup["user"]["billingAccount"]["billingCycleEnd"].as_str().unwrap().parse().unwrap();
        app.clock.set(cycle_end - Duration::hours(1));
        let request = json!({ "key": user.default_secret(), "credits": 10, "requestId": "big" });
        let first = app.verify(request.clone()).await;
        assert_eq!(first["code"], "USAGE_EXCEEDED");
        // Credits renew with the next cycle, but a retry is still the same request...
        app.clock.advance(Duration::hours(2));
        assert_eq!(app.verify(request).await, first);
        // ...while a new request is charged against the new cycle.
        let fresh = app.verify(json!({ "key": user.default_secret(), "credits": 10, "requestId": "next" })).await;
        assert_eq!((fresh["code"].as_str(), fresh["remainingCredits"].as_i64()), (Some("VALID"), Some(990)));
    }

    async fn request_ids_are_forgotten_after_a_day(app: TestApp) {
        let user = app.signup().await;
        let request = json!({ "key": user.default_secret(), "credits": 5, "requestId": "daily" });
        app.verify(request.clone()).await;
        app.clock.advance(Duration::hours(24) - Duration::seconds(1));
        assert_eq!(app.verify(request.clone()).await["remainingCredits"], 995);
        app.clock.advance(Duration::seconds(1));
        assert_eq!(app.verify(request).await["remainingCredits"], 990);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [2]);
    }

    async fn verify_input_is_validated(app: TestApp) {
        let user = app.signup().await;
        let key = user.default_secret();
        let cases = [
            (json!({ "key": key, "credits": -1 }), "credits"),
            (json!({ "key": key, "credits": 1_000_001 }), "credits"),
            (json!({ "key": key, "endpoint": "e".repeat(257) }), "endpoint"),
            (json!({ "key": key, "requestId": "r".repeat(129) }), "requestId"),
            (json!({ "key": key, "requestId": "" }), "requestId"),
        ];
        for (input, field) in cases {
            let response = app.graphql(VERIFY_KEY, json!({ "input": input }), None).await;
            assert_error(&response, "BAD_USER_INPUT");
            assert!(response["errors"][0]["message"].as_str().unwrap().starts_with(field));
            assert!(!response.to_string().contains(key), "the secret is echoed");
        }
        let overflow = app.graphql(VERIFY_KEY, json!({ "input": { "key": key, "credits": 3_000_000_000u64 } }), None).await;
        assert_error(&overflow, "BAD_USER_INPUT");
        // The limits themselves are allowed.
        let edge = app.verify(json!({ "key": key, "credits": 0, "endpoint": "e".repeat(256), "requestId": "r".repeat(128) })).await;
        assert_eq!(edge["code"], "VALID");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [0]);
    }

    async fn racing_calls_keep_each_credits_and_endpoint_apart_in_their_events(app: TestApp) {
        let user = app.signup().await;
        let endpoints = [Some("/v1/a"), Some("/v1/b"), None];
        let calls = (0..36).map(|i| {
            let mut input = json!({ "key": user.default_secret(), "credits": 1 + i % 2 });
            if let Some(endpoint) = endpoints[i % 3] {
                input["endpoint"] = json!(endpoint);
            }
            app.verify(input)
        });
        let answers = join_all(calls).await;
        assert_eq!(count(&answers, "VALID"), 36);
        let events = app
            .rows("SELECT credits, endpoint, SUM(calls), COUNT(*) FROM api_key_usage GROUP BY credits, endpoint")
            .await;
        let mut sums = Vec::new();
        let mut rows = 0;
        for event in &events {
            let credits: i32 = event.try_get_by_index(0).unwrap();
            let endpoint: Option<String> = event.try_get_by_index(1).unwrap();
            let (calls, count): (i64, i64) = (event.try_get_by_index(2).unwrap(), event.try_get_by_index(3).unwrap());
            sums.push((credits, endpoint, calls));
            rows += count;
        }
        // Six calls of each credits and endpoint, however they were batched
        // (sorted here: the databases order NULL apart).
        sums.sort();
        let mut expected: Vec<_> = [1, 2]
            .into_iter()
            .flat_map(|credits| endpoints.map(|e| (credits, e.map(str::to_owned), 6)))
            .collect();
        expected.sort();
        assert_eq!(sums, expected);
        assert!(rows < 36, "no two alike calls shared an event: {rows} events");
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 54);
    }

    async fn a_user_whose_own_account_is_missing_gets_it_on_first_read(app: TestApp) {
        let user = app.signup().await;
        // Its keys go with it: a key never exists without its account.
        app.execute("DELETE FROM billing_accounts").await;
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [0]);
        let me = app.ok("{ me { billingAccount { monthlyCredits } } accounts { name role } }", json!({}), Some(&user.token)).await;
        assert_eq!(me["me"]["billingAccount"]["monthlyCredits"], 1000);
        assert_eq!(me["accounts"], json!([{ "name": user.email, "role": "OWNER" }]));
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM billing_accounts").await, [1]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM account_members").await, [1]);
    }
}

on_both_backends! {
    async fn quota_follows_the_configured_monthly_credits(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.monthly_credits = 10).await;
        let user = app.signup().await;
        assert_eq!(app.charge(user.default_secret(), 10).await["code"], "VALID");
        assert_eq!(app.charge(user.default_secret(), 1).await["code"], "USAGE_EXCEEDED");
    }
}

on_both_backends! {
    async fn per_request_mode_keeps_every_guarantee(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.group_commit = false).await;
        let user = app.signup().await;
        let results = join_all((0..60).map(|_| app.charge(user.default_secret(), 30))).await;
        assert_eq!((count(&results, "VALID"), count(&results, "USAGE_EXCEEDED")), (33, 27));
        let request = json!({ "key": user.default_secret(), "credits": 5, "requestId": "once" });
        let retries = join_all((0..8).map(|_| app.verify(request.clone()))).await;
        assert!(retries.iter().all(|r| *r == retries[0]));
        assert_eq!(retries[0]["code"], "VALID");
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 995);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [34]);
    }

    async fn one_batch_admits_exactly_the_calls_that_fit_across_accounts(backend: Backend) {
        // One worker and room for everything: concurrent calls of several
        // accounts land in shared batches.
        let app = TestApp::spawn_with(backend, |config| {
            config.group_commit_workers = 1;
            config.monthly_credits = 100;
        })
        .await;
        let users = join_all((0..3).map(|_| app.signup())).await;
        let calls = (0..90).map(|i| {
            let user = &users[i % 3];
            let request = json!({ "key": user.default_secret(), "credits": 7, "requestId": format!("r{}", i % 45) });
            app.verify(request)
        });
        let results = join_all(calls).await;
        for user in &users {
            // 100 / 7: fourteen charges fit; repeats of a requestId are not charged again.
            assert_eq!(app.keys_usage(user).await["totalCredits"], 98);
        }
        assert_eq!(count(&results, "VALID") + count(&results, "USAGE_EXCEEDED"), 90);
        assert_eq!(app.query_i64("SELECT COALESCE(SUM(calls), 0) FROM api_key_usage").await, [42]);
    }
}
