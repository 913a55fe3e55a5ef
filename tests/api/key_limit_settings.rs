//! Setting and showing a key's rate limit (contract v3), over HTTP on both
//! databases: createKey with a limit, setKeyRateLimit setting, changing and
//! removing one, out-of-range limits refused with nothing changed, any
//! member of the key's account allowed and anyone else answered NOT_FOUND,
//! the audit log's key.rate_limit_changed, and a rotation's successor
//! keeping the limit. How verifyKey enforces a limit is tested elsewhere.

use keymeter::entity::api_key;
use sea_orm::EntityTrait;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::teams::{join, team};

const KEY_FIELDS: &str = "id name status rateLimit { limit windowSeconds }";

fn create_query() -> String {
    format!("mutation($input: CreateKeyInput!) {{ createKey(input: $input) {{ secret apiKey {{ {KEY_FIELDS} }} }} }}")
}

fn set_query() -> String {
    format!("mutation($id: UUID!, $rateLimit: RateLimitInput) {{ setKeyRateLimit(id: $id, rateLimit: $rateLimit) {{ {KEY_FIELDS} }} }}")
}

fn list_query() -> String {
    format!("query($a: UUID) {{ keys(accountId: $a, includeRevoked: true) {{ {KEY_FIELDS} }} }}")
}

/// keysUsage's keys with their limits, alone in their document.
const USAGE_QUERY: &str =
    "query($a: UUID) { keysUsage(accountId: $a) { keys { apiKey { id rateLimit { limit windowSeconds } } } } }";

const LOG: &str = "query($a: UUID) { account(id: $a) { auditLog { events {
  action actor { user { email } } targetType targetId targetName } } } }";

/// The limits out of range, each with the field its refusal names.
const OUT_OF_RANGE: [(i64, i64, &str); 7] = [
    (0, 60, "rateLimit.limit"),
    (1_000_001, 60, "rateLimit.limit"),
    (-5, 60, "rateLimit.limit"),
    (10, 0, "rateLimit.windowSeconds"),
    (10, 86_401, "rateLimit.windowSeconds"),
    (10, -60, "rateLimit.windowSeconds"),
    (-1, -1, "rateLimit.limit"),
];

fn limit(limit: i64, window_seconds: i64) -> Value {
    json!({ "limit": limit, "windowSeconds": window_seconds })
}

fn message(response: &Value) -> &str {
    response["errors"][0]["message"].as_str().unwrap_or("")
}

impl TestApp {
    async fn set_limit(&self, user: &TestUser, id: &str, rate_limit: Value) -> Value {
        let variables = json!({ "id": id, "rateLimit": rate_limit });
        self.graphql(&set_query(), variables, Some(&user.token))
            .await
    }

    /// setKeyRateLimit, which must succeed; the key it answers.
    async fn set_limit_ok(&self, user: &TestUser, id: &str, rate_limit: Value) -> Value {
        let response = self.set_limit(user, id, rate_limit).await;
        assert!(response.get("errors").is_none(), "{response:#}");
        response["data"]["setKeyRateLimit"].clone()
    }

    /// The limit `keys` shows for the key `id` of `account` (None: the
    /// user's own account), as `user` reads it.
    async fn listed_limit(&self, user: &TestUser, account: Option<&str>, id: &str) -> Value {
        let data = self
            .ok(&list_query(), json!({ "a": account }), Some(&user.token))
            .await;
        let keys = data["keys"].as_array().unwrap();
        let key = keys.iter().find(|key| key["id"] == id).expect("listed");
        // keysUsage shows the same limit for the key, while it is listed there.
        let usage = self
            .ok(USAGE_QUERY, json!({ "a": account }), Some(&user.token))
            .await;
        let used = usage["keysUsage"]["keys"].as_array().unwrap();
        if let Some(used) = used.iter().find(|used| used["apiKey"]["id"] == id) {
            assert_eq!(
                used["apiKey"]["rateLimit"], key["rateLimit"],
                "keysUsage's limit of {id}"
            );
        }
        key["rateLimit"].clone()
    }

    /// The account's audit events, newest first.
    async fn events(&self, user: &TestUser, account: Option<&str>) -> Vec<Value> {
        let data = self
            .ok(LOG, json!({ "a": account }), Some(&user.token))
            .await;
        data["account"]["auditLog"]["events"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn actions(&self, user: &TestUser, account: Option<&str>) -> Vec<String> {
        let events = self.events(user, account).await;
        events
            .iter()
            .map(|event| event["action"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The stored limit of a key: its row's (rate_limit, rate_window_secs).
    async fn stored_limit(&self, id: &str) -> (Option<i32>, Option<i32>) {
        let id: uuid::Uuid = id.parse().unwrap();
        let key = api_key::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .unwrap()
            .expect("the key's row");
        (key.rate_limit, key.rate_window_secs)
    }
}

on_both_databases! {
    async fn a_key_made_with_a_limit_shows_it_and_is_logged_as_created_only(app: TestApp) {
        let user = app.signup().await;
        let input = json!({ "name": "metered", "rateLimit": limit(100, 60) });
        let made = app.ok(&create_query(), json!({ "input": input }), Some(&user.token)).await;
        let key = &made["createKey"]["apiKey"];
        assert_eq!(key["rateLimit"], limit(100, 60));
        let id = key["id"].as_str().unwrap();
        assert_eq!(app.listed_limit(&user, None, id).await, limit(100, 60));
        assert_eq!(app.stored_limit(id).await, (Some(100), Some(60)));
        // Without one, and the default key: no limit.
        let plain = app.ok(&create_query(), json!({ "input": { "name": "plain", "rateLimit": null } }), Some(&user.token)).await;
        assert!(plain["createKey"]["apiKey"]["rateLimit"].is_null());
        assert!(app.listed_limit(&user, None, user.default_key_id()).await.is_null());
        // The limit is part of the key: one key.created each, nothing else.
        assert_eq!(app.actions(&user, None).await, ["key.created", "key.created"]);
    }

    async fn a_limit_is_set_changed_and_removed(app: TestApp) {
        let user = app.signup().await;
        let id = user.default_key_id();

        let set = app.set_limit_ok(&user, id, limit(10, 1)).await;
        assert_eq!((&set["id"], &set["rateLimit"]), (&json!(id), &limit(10, 1)));
        assert_eq!(app.listed_limit(&user, None, id).await, limit(10, 1));

        // The widest limit there is.
        let changed = app.set_limit_ok(&user, id, limit(1_000_000, 86_400)).await;
        assert_eq!(changed["rateLimit"], limit(1_000_000, 86_400));
        assert_eq!(app.listed_limit(&user, None, id).await, limit(1_000_000, 86_400));
        assert_eq!(app.stored_limit(id).await, (Some(1_000_000), Some(86_400)));
        // The window alone, then the limit alone.
        assert_eq!(app.set_limit_ok(&user, id, limit(1_000_000, 3_600)).await["rateLimit"], limit(1_000_000, 3_600));
        assert_eq!(app.set_limit_ok(&user, id, limit(1, 3_600)).await["rateLimit"], limit(1, 3_600));

        let removed = app.set_limit_ok(&user, id, Value::Null).await;
        assert!(removed["rateLimit"].is_null(), "{removed:#}");
        assert!(app.listed_limit(&user, None, id).await.is_null());
        assert_eq!(app.stored_limit(id).await, (None, None));
        assert_eq!(app.actions(&user, None).await, ["key.rate_limit_changed"; 5]);
    }

    async fn setting_the_limit_a_key_has_changes_nothing_and_logs_nothing(app: TestApp) {
        let user = app.signup().await;
        let id = user.default_key_id();
        // No limit, removed: nothing to change.
        assert!(app.set_limit_ok(&user, id, Value::Null).await["rateLimit"].is_null());
        assert_eq!(app.actions(&user, None).await, Vec::<String>::new());

        app.set_limit_ok(&user, id, limit(50, 10)).await;
        let again = app.set_limit_ok(&user, id, limit(50, 10)).await;
        assert_eq!(again["rateLimit"], limit(50, 10));
        assert_eq!(app.actions(&user, None).await, ["key.rate_limit_changed"]);

        app.set_limit_ok(&user, id, Value::Null).await;
        app.set_limit_ok(&user, id, Value::Null).await;
        assert_eq!(app.actions(&user, None).await, ["key.rate_limit_changed"; 2]);
    }

    async fn racing_calls_setting_one_limit_log_one_change(app: TestApp) {
        let user = app.signup().await;
        let id = user.default_key_id();
        let calls = (0..8).map(|_| app.set_limit(&user, id, limit(30, 60)));
        for answer in futures_util::future::join_all(calls).await {
            assert!(answer.get("errors").is_none(), "{answer:#}");
            assert_eq!(answer["data"]["setKeyRateLimit"]["rateLimit"], limit(30, 60));
        }
        assert_eq!(app.actions(&user, None).await, ["key.rate_limit_changed"]);
    }

    async fn limits_out_of_range_are_refused_and_change_nothing(app: TestApp) {
        let user = app.signup().await;
        let id = user.default_key_id();
        app.set_limit_ok(&user, id, limit(5, 60)).await;
        let events_before = app.query_i64("SELECT COUNT(*) FROM audit_events").await;

        for (bad_limit, window, field) in OUT_OF_RANGE {
            let refused = app.set_limit(&user, id, limit(bad_limit, window)).await;
            assert_error(&refused, "BAD_USER_INPUT");
            assert!(message(&refused).starts_with(field), "{refused:#}");
            assert!(refused["data"].is_null(), "{refused:#}");

            let input = json!({ "name": "refused", "rateLimit": limit(bad_limit, window) });
            let refused = app.graphql(&create_query(), json!({ "input": input }), Some(&user.token)).await;
            assert_error(&refused, "BAD_USER_INPUT");
            assert!(message(&refused).starts_with(field), "{refused:#}");
        }
        // Not an Int at all, or half a limit: refused before any resolver.
        for malformed in [limit(2_147_483_648, 60), json!({ "limit": 1.5, "windowSeconds": 60 }), json!({ "limit": 10 }), json!("10/60")] {
            assert_error(&app.set_limit(&user, id, malformed).await, "BAD_USER_INPUT");
        }

        assert_eq!(app.listed_limit(&user, None, id).await, limit(5, 60));
        assert_eq!(app.stored_limit(id).await, (Some(5), Some(60)));
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [1]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM audit_events").await, events_before);
    }

    async fn any_member_sets_a_limit_and_anyone_else_finds_no_key(app: TestApp) {
        let owner = app.signup().await;
        let colleague = app.signup().await;
        let stranger = app.signup().await;
        let acme = team(&app, &owner, "Acme").await;
        join(&app, &owner, &acme, &colleague, "MEMBER").await;
        let input = json!({ "name": "shared", "accountId": acme });
        let made = app.ok(&create_query(), json!({ "input": input }), Some(&owner.token)).await;
        let id = made["createKey"]["apiKey"]["id"].as_str().unwrap().to_owned();

        // A MEMBER may: setting a limit is not an OWNER's operation.
        let set = app.set_limit_ok(&colleague, &id, limit(20, 60)).await;
        assert_eq!(set["rateLimit"], limit(20, 60));
        assert_eq!(app.listed_limit(&owner, Some(&acme), &id).await, limit(20, 60));

        // Another account's key answers as a key that does not exist.
        let missing = "00000000-0000-4000-8000-000000000000";
        let foreign = app.set_limit(&stranger, &id, limit(1, 1)).await;
        let unknown = app.set_limit(&stranger, missing, limit(1, 1)).await;
        assert_error(&foreign, "NOT_FOUND");
        assert_error(&unknown, "NOT_FOUND");
        assert_eq!(foreign["errors"][0]["message"], unknown["errors"][0]["message"]);
        assert_error(&app.set_limit(&stranger, &id, Value::Null).await, "NOT_FOUND");
        // The stranger's own key is no way in either.
        assert_error(&app.set_limit(&owner, stranger.default_key_id(), limit(1, 1)).await, "NOT_FOUND");
        // Without a session: UNAUTHENTICATED.
        let anonymous = app.graphql(&set_query(), json!({ "id": id, "rateLimit": limit(1, 1) }), None).await;
        assert_error(&anonymous, "UNAUTHENTICATED");

        assert_eq!(app.stored_limit(&id).await, (Some(20), Some(60)));
        assert!(app.listed_limit(&stranger, None, stranger.default_key_id()).await.is_null());
        assert_eq!(app.actions(&stranger, None).await, Vec::<String>::new());
        let changes = app.query_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'key.rate_limit_changed'").await;
        assert_eq!(changes, [1]);
    }

    async fn the_log_names_the_key_and_who_changed_its_limit(app: TestApp) {
        let owner = app.signup().await;
        let colleague = app.signup().await;
        let acme = team(&app, &owner, "Acme").await;
        join(&app, &owner, &acme, &colleague, "MEMBER").await;
        let input = json!({ "name": "billing api", "accountId": acme });
        let made = app.ok(&create_query(), json!({ "input": input }), Some(&owner.token)).await;
        let id = made["createKey"]["apiKey"]["id"].as_str().unwrap().to_owned();

        app.set_limit_ok(&colleague, &id, limit(100, 60)).await;
        let refused = app.set_limit(&colleague, &id, limit(0, 60)).await;
        assert_error(&refused, "BAD_USER_INPUT");
        app.set_limit_ok(&owner, &id, Value::Null).await;

        let events = app.events(&owner, Some(&acme)).await;
        let changes: Vec<&Value> = events.iter().filter(|event| event["action"] == "key.rate_limit_changed").collect();
        assert_eq!(changes.len(), 2, "{events:#?}");
        for (event, by) in changes.iter().zip([&owner, &colleague]) {
            assert_eq!(event["targetType"], "KEY");
            assert_eq!(event["targetId"], id.as_str());
            assert_eq!(event["targetName"], "billing api");
            assert_eq!(event["actor"]["user"]["email"], by.email.as_str());
        }
        // The owner's own account heard nothing of it.
        assert_eq!(app.actions(&owner, None).await, Vec::<String>::new());
    }

    async fn a_rotated_key_keeps_its_limit_and_a_revoked_one_can_still_be_given_one(app: TestApp) {
        let user = app.signup().await;
        let id = user.default_key_id();
        app.set_limit_ok(&user, id, limit(7, 30)).await;

        let rotate = format!("mutation($id: UUID!) {{ rotateKey(input: {{ id: $id, gracePeriodSeconds: 60 }}) {{ apiKey {{ {KEY_FIELDS} }} previousKey {{ {KEY_FIELDS} }} }} }}");
        let rotated = app.ok(&rotate, json!({ "id": id }), Some(&user.token)).await;
        let successor = &rotated["rotateKey"]["apiKey"];
        assert_eq!(successor["rateLimit"], limit(7, 30));
        assert_eq!(rotated["rotateKey"]["previousKey"]["rateLimit"], limit(7, 30));
        let successor_id = successor["id"].as_str().unwrap();
        assert_eq!(app.listed_limit(&user, None, successor_id).await, limit(7, 30));
        // The successor's limit is its own: changing it leaves the old key's.
        app.set_limit_ok(&user, successor_id, limit(8, 30)).await;
        assert_eq!(app.listed_limit(&user, None, id).await, limit(7, 30));
        assert_eq!(app.actions(&user, None).await, ["key.rate_limit_changed", "key.rotated", "key.rate_limit_changed"]);

        // As a rename is, a limit is accepted whatever the key's status.
        app.ok(REVOKE_KEY, json!({ "id": successor_id }), Some(&user.token)).await;
        let revoked = app.set_limit_ok(&user, successor_id, limit(9, 30)).await;
        assert_eq!((&revoked["status"], &revoked["rateLimit"]), (&json!("REVOKED"), &limit(9, 30)));
    }
}
