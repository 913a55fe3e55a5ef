//! Key lifecycle (contract v2): expiry and status, rotation, renaming and
//! the lazily made default key, over HTTP on both databases.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::signup::{break_provisioning, repair_provisioning};

macro_rules! key_fields {
    () => {
        "id name keyType prefix createdAt lastUsedAt revokedAt expiresAt status rotatedFromId"
    };
}

const CREATE: &str = concat!(
    "mutation($input: CreateKeyInput!) { createKey(input: $input) { secret apiKey { ",
    key_fields!(),
    " } } }"
);

const ROTATE: &str = concat!(
    "mutation($input: RotateKeyInput!) { rotateKey(input: $input) { secret apiKey { ",
    key_fields!(),
    " } previousKey { ",
    key_fields!(),
    " } } }"
);

const RENAME: &str = concat!(
    "mutation($id: UUID!, $name: String!) { renameKey(id: $id, name: $name) { ",
    key_fields!(),
    " } }"
);

const REVOKE: &str = concat!(
    "mutation($id: UUID!) { revokeKey(id: $id) { ",
    key_fields!(),
    " } }"
);

const LIST: &str = concat!(
    "query($all: Boolean) { keys(includeRevoked: $all) { ",
    key_fields!(),
    " } }"
);

const ENSURE: &str = concat!(
    "mutation { ensureDefaultKey { secret apiKey { ",
    key_fields!(),
    " } } }"
);

const USAGE: &str =
    "query { keysUsage { totalCredits keys { credits requests apiKey { name status } } } }";

/// An operation's variables for a key id.
type Variables = fn(&str) -> Value;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .expect("a DateTime")
        .parse()
        .expect("RFC 3339")
}

fn message(response: &Value) -> &str {
    response["errors"][0]["message"].as_str().unwrap_or("")
}

impl TestApp {
    /// createKey with these input fields; returns its payload.
    async fn create_with(&self, user: &TestUser, input: Value) -> Value {
        let data = self
            .ok(CREATE, json!({ "input": input }), Some(&user.token))
            .await;
        data["createKey"].clone()
    }

    async fn rotate(&self, user: &TestUser, input: Value) -> Value {
        self.graphql(ROTATE, json!({ "input": input }), Some(&user.token))
            .await
    }

    /// The user's keys (revoked ones too with `all`), by name.
    async fn key_named(&self, user: &TestUser, name: &str, all: bool) -> Option<Value> {
        let data = self
            .ok(LIST, json!({ "all": all }), Some(&user.token))
            .await;
        let keys = data["keys"].as_array().unwrap().clone();
        keys.into_iter().find(|k| k["name"] == name)
    }

    /// keysUsage's keys as (name, credits, status), in order.
    async fn usage_summary(&self, user: &TestUser) -> Vec<(String, i64, String)> {
        let data = self.ok(USAGE, json!({}), Some(&user.token)).await;
        let keys = data["keysUsage"]["keys"].as_array().unwrap().clone();
        keys.iter()
            .map(|k| {
                let key = &k["apiKey"];
                let name = key["name"].as_str().unwrap().to_owned();
                let status = key["status"].as_str().unwrap().to_owned();
                (name, k["credits"].as_i64().unwrap(), status)
            })
            .collect()
    }
}

fn summary(rows: &[(&str, i64, &str)]) -> Vec<(String, i64, String)> {
    rows.iter()
        .map(|(n, c, s)| (n.to_string(), *c, s.to_string()))
        .collect()
}

on_both_databases! {
    async fn expiries_must_be_a_minute_ahead_and_before_2100(app: TestApp) {
        let user = app.signup().await;
        let now = app.clock.now();
        let refused = [
            rfc3339(now + Duration::seconds(59)),
            rfc3339(now - Duration::days(1)),
            "2100-01-01T00:00:00Z".to_owned(),
            "2100-01-01T01:00:00+01:00".to_owned(),
            "2250-06-01T00:00:00Z".to_owned(),
        ];
        for at in &refused {
            let input = json!({ "input": { "name": "ci", "expiresAt": at } });
            let response = app.graphql(CREATE, input, Some(&user.token)).await;
            assert_error(&response, "BAD_USER_INPUT");
            let message = message(&response);
            assert!(message.starts_with("expiresAt") && message.contains("60 seconds"), "{message}");
            assert!(message.contains("2100-01-01T00:00:00Z"), "{message}");
        }
        let malformed = json!({ "input": { "name": "ci", "expiresAt": "next tuesday" } });
        assert_error(&app.graphql(CREATE, malformed, Some(&user.token)).await, "BAD_USER_INPUT");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [1]);

        for at in [now + Duration::seconds(60), "2099-12-31T23:59:59.999999Z".parse().unwrap()] {
            let created = app.create_with(&user, json!({ "name": "ci", "expiresAt": rfc3339(at) })).await;
            let key = &created["apiKey"];
            assert_eq!(time(&key["expiresAt"]), at);
            assert_eq!((key["status"].as_str(), key["rotatedFromId"].as_str()), (Some("ACTIVE"), None));
        }
        let forever = app.create_with(&user, json!({ "name": "forever" })).await;
        assert!(forever["apiKey"]["expiresAt"].is_null());
        assert_eq!(forever["apiKey"]["status"], "ACTIVE");
    }

    async fn keys_expire_by_the_server_clock_and_revocation_wins(app: TestApp) {
        let user = app.signup().await;
        let expires = app.clock.now() + Duration::hours(1);
        let created = app.create_with(&user, json!({ "name": "temp", "expiresAt": rfc3339(expires) })).await;
        let id = created["apiKey"]["id"].clone();

        app.clock.advance(Duration::hours(1) - Duration::microseconds(1));
        assert_eq!(app.key_named(&user, "temp", false).await.unwrap()["status"], "ACTIVE");
        // Expired from its expiresAt on, and still listed without includeRevoked.
        app.clock.advance(Duration::microseconds(1));
        let expired = app.key_named(&user, "temp", false).await.expect("listed");
        assert_eq!(expired["status"], "EXPIRED");
        assert_eq!(time(&expired["expiresAt"]), expires);

        let revoked = app.ok(REVOKE, json!({ "id": id }), Some(&user.token)).await;
        assert_eq!(revoked["revokeKey"]["status"], "REVOKED");
        assert!(app.key_named(&user, "temp", false).await.is_none());
        let listed = app.key_named(&user, "temp", true).await.expect("listed with includeRevoked");
        assert_eq!(listed["status"], "REVOKED");
        assert_eq!(app.key_named(&user, "Default key", false).await.unwrap()["status"], "ACTIVE");
    }

    async fn keys_usage_lists_expired_keys_only_with_usage_in_the_cycle(app: TestApp) {
        let user = app.signup().await;
        let soon = rfc3339(app.clock.now() + Duration::minutes(10));
        // A second apart, so that "newest first" orders them.
        app.clock.advance(Duration::seconds(1));
        let used = app.create_with(&user, json!({ "name": "used", "expiresAt": soon })).await;
        app.clock.advance(Duration::seconds(1));
        app.create_with(&user, json!({ "name": "idle", "expiresAt": soon })).await;
        assert_eq!(app.charge(used["secret"].as_str().unwrap(), 40).await["code"], "VALID");
        assert_eq!(
            app.usage_summary(&user).await,
            summary(&[("used", 40, "ACTIVE"), ("idle", 0, "ACTIVE"), ("Default key", 0, "ACTIVE")])
        );

        app.clock.advance(Duration::minutes(10) - Duration::seconds(2));
        assert_eq!(
            app.usage_summary(&user).await,
            summary(&[("used", 40, "EXPIRED"), ("Default key", 0, "ACTIVE")])
        );
    }

    async fn rotation_replaces_a_key_and_revokes_the_old_one_at_once(app: TestApp) {
        let user = app.signup().await;
        let expires = app.clock.now() + Duration::days(90);
        let old = app.create_with(&user, json!({ "name": "billing", "keyType": "PROD", "expiresAt": rfc3339(expires) })).await;
        let old_id = old["apiKey"]["id"].as_str().unwrap();
        app.clock.advance(Duration::seconds(5));
        let now = app.clock.now();

        let response = app.rotate(&user, json!({ "id": old_id })).await;
        let rotated = &response["data"]["rotateKey"];
        let new = &rotated["apiKey"];
        assert_eq!((new["name"].as_str(), new["keyType"].as_str()), (Some("billing"), Some("PROD")));
        assert_eq!(time(&new["expiresAt"]), expires);
        assert_eq!((new["rotatedFromId"].as_str(), new["status"].as_str()), (Some(old_id), Some("ACTIVE")));
        assert_eq!(time(&new["createdAt"]), now);
        let secret = rotated["secret"].as_str().unwrap();
        assert!(secret.starts_with("sk_prod_") && secret.starts_with(new["prefix"].as_str().unwrap()));
        assert_ne!(secret, old["secret"].as_str().unwrap());

        // Grace 0 (the default): revoked now.
        let previous = &rotated["previousKey"];
        assert_eq!((previous["id"].as_str(), previous["status"].as_str()), (Some(old_id), Some("REVOKED")));
        assert_eq!((time(&previous["revokedAt"]), time(&previous["expiresAt"])), (now, now));
        assert!(previous["rotatedFromId"].is_null());
        assert_eq!(app.charge(old["secret"].as_str().unwrap(), 1).await["code"], "REVOKED");
        assert_eq!(app.charge(secret, 1).await["code"], "VALID");
        let listed = app.key_named(&user, "billing", false).await.unwrap();
        assert_eq!(listed["id"], new["id"]);
        // The secret is shown once, in the payload only.
        let keys = app.graphql(LIST, json!({ "all": true }), Some(&user.token)).await;
        assert!(!keys.to_string().contains(secret));
    }

    async fn a_grace_period_keeps_the_old_key_until_it_ends(app: TestApp) {
        let user = app.signup().await;
        let old_id = user.default_key_id().to_owned();
        let now = app.clock.now();
        let response = app.rotate(&user, json!({ "id": old_id, "gracePeriodSeconds": 3600 })).await;
        let rotated = &response["data"]["rotateKey"];
        let previous = &rotated["previousKey"];
        assert_eq!(previous["status"], "ACTIVE");
        assert!(previous["revokedAt"].is_null());
        assert_eq!(time(&previous["expiresAt"]), now + Duration::hours(1));
        // A permanent key's replacement is permanent too.
        assert!(rotated["apiKey"]["expiresAt"].is_null());
        assert_eq!(rotated["apiKey"]["name"], "Default key");

        assert_eq!(app.charge(user.default_secret(), 1).await["code"], "VALID");
        let both = app.ok(LIST, json!({}), Some(&user.token)).await;
        assert_eq!(both["keys"].as_array().unwrap().len(), 2);
        app.clock.advance(Duration::hours(1));
        let keys = app.ok(LIST, json!({}), Some(&user.token)).await;
        let old = keys["keys"].as_array().unwrap().iter().find(|k| k["id"] == old_id.as_str()).cloned();
        assert_eq!(old.expect("an expired key is listed")["status"], "EXPIRED");
    }

    async fn rotation_never_extends_an_expiry(app: TestApp) {
        let user = app.signup().await;
        let expires = app.clock.now() + Duration::minutes(10);
        let old = app.create_with(&user, json!({ "name": "short", "expiresAt": rfc3339(expires) })).await;
        let response = app.rotate(&user, json!({ "id": old["apiKey"]["id"], "gracePeriodSeconds": 86_400 })).await;
        let rotated = &response["data"]["rotateKey"];
        assert_eq!(time(&rotated["previousKey"]["expiresAt"]), expires);
        assert_eq!(time(&rotated["apiKey"]["expiresAt"]), expires);
    }

    async fn only_an_active_key_not_yet_rotated_can_be_rotated(app: TestApp) {
        let user = app.signup().await;
        let revoked = app.create_with(&user, json!({ "name": "revoked" })).await["apiKey"]["id"].clone();
        app.ok(REVOKE, json!({ "id": revoked }), Some(&user.token)).await;
        let soon = rfc3339(app.clock.now() + Duration::minutes(1));
        let expired = app.create_with(&user, json!({ "name": "expired", "expiresAt": soon })).await["apiKey"]["id"].clone();
        let rotated = app.create_with(&user, json!({ "name": "rotated" })).await["apiKey"]["id"].clone();
        let rotation = app.rotate(&user, json!({ "id": rotated, "gracePeriodSeconds": 600 })).await;
        assert!(rotation.get("errors").is_none(), "{rotation:#}");
        app.clock.advance(Duration::minutes(1));
        let keys_before = app.query_i64("SELECT COUNT(*) FROM api_keys").await;

        for (id, why) in [(&revoked, "revoked"), (&expired, "expired"), (&rotated, "already rotated")] {
            let response = app.rotate(&user, json!({ "id": id, "gracePeriodSeconds": 60 })).await;
            assert_error(&response, "BAD_USER_INPUT");
            assert!(message(&response).starts_with("id:") && message(&response).contains(why), "{response:#}");
        }
        for grace in [-1, 2_592_001] {
            let response = app.rotate(&user, json!({ "id": user.default_key_id(), "gracePeriodSeconds": grace })).await;
            assert_error(&response, "BAD_USER_INPUT");
            assert!(message(&response).starts_with("gracePeriodSeconds"), "{response:#}");
        }
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, keys_before);
        // The longest grace is allowed.
        let longest = app.rotate(&user, json!({ "id": user.default_key_id(), "gracePeriodSeconds": 2_592_000 })).await;
        let previous = &longest["data"]["rotateKey"]["previousKey"];
        assert_eq!(time(&previous["expiresAt"]), app.clock.now() + Duration::days(30));
    }

    async fn another_users_key_is_not_found_for_rotation_and_renaming(app: TestApp) {
        let owner = app.signup().await;
        let intruder = app.signup().await;
        let theirs = owner.default_key_id();
        let missing = uuid::Uuid::new_v4().to_string();
        let operations: [(&str, Variables); 2] = [
            (ROTATE, |id| json!({ "input": { "id": id } })),
            (RENAME, |id| json!({ "id": id, "name": "mine now" })),
        ];
        for (query, variables) in operations {
            let taken = app.graphql(query, variables(theirs), Some(&intruder.token)).await;
            let absent = app.graphql(query, variables(&missing), Some(&intruder.token)).await;
            assert_error(&taken, "NOT_FOUND");
            assert_eq!(taken, absent);
        }
        let key = app.key_named(&owner, "Default key", false).await.expect("untouched");
        assert_eq!((key["status"].as_str(), key["expiresAt"].as_str()), (Some("ACTIVE"), None));
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [2]);
    }

    async fn racing_rotations_of_one_key_make_one_new_key(app: TestApp) {
        let second = app.spawn_second_server().await;
        let user = app.signup().await;
        for grace in [0, 600] {
            let name = format!("grace {grace}");
            let old = app.create_with(&user, json!({ "name": name })).await;
            let old_id = old["apiKey"]["id"].as_str().unwrap().to_owned();
            let input = json!({ "input": { "id": old_id, "gracePeriodSeconds": grace } });
            let attempts = (0..16).map(|i| {
                let addr = if i % 2 == 0 { app.addr } else { second };
                app.graphql_at(addr, ROTATE, input.clone(), Some(&user.token))
            });
            let responses = join_all(attempts).await;
            let won: Vec<&Value> = responses.iter().filter(|r| r.get("errors").is_none()).collect();
            assert_eq!(won.len(), 1, "grace {grace}: {responses:#?}");
            for lost in responses.iter().filter(|r| r.get("errors").is_some()) {
                assert_error(lost, "BAD_USER_INPUT");
            }
            let all = app.ok(LIST, json!({ "all": true }), Some(&user.token)).await;
            let replacements = all["keys"].as_array().unwrap().iter().filter(|k| k["rotatedFromId"] == old_id.as_str()).count();
            assert_eq!(replacements, 1, "grace {grace}");
            let status = if grace == 0 { "REVOKED" } else { "ACTIVE" };
            assert_eq!(won[0]["data"]["rotateKey"]["previousKey"]["status"], status);
        }
        // The default key, two keys and one replacement of each.
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [5]);
    }

    async fn renaming_follows_the_name_rules_of_create_key(app: TestApp) {
        let user = app.signup().await;
        let id = user.default_key_id();
        let renamed = app.ok(RENAME, json!({ "id": id, "name": "  CI runner  " }), Some(&user.token)).await;
        assert_eq!((renamed["renameKey"]["name"].as_str(), renamed["renameKey"]["status"].as_str()), (Some("CI runner"), Some("ACTIVE")));
        for name in ["", "   ", &"x".repeat(65), "line\nbreak", "ad\u{200b}min"] {
            let response = app.graphql(RENAME, json!({ "id": id, "name": name }), Some(&user.token)).await;
            assert_error(&response, "BAD_USER_INPUT");
            assert!(message(&response).starts_with("name"), "{response:#}");
        }
        // A revoked key keeps its history under a clearer name.
        app.ok(REVOKE, json!({ "id": id }), Some(&user.token)).await;
        let retired = app.ok(RENAME, json!({ "id": id, "name": "old CI runner" }), Some(&user.token)).await;
        assert_eq!((retired["renameKey"]["name"].as_str(), retired["renameKey"]["status"].as_str()), (Some("old CI runner"), Some("REVOKED")));
        assert_eq!(app.key_named(&user, "old CI runner", true).await.unwrap()["id"], id);
    }

    async fn ensure_default_key_answers_null_to_whoever_ever_had_one(app: TestApp) {
        let user = app.signup().await;
        let data = app.ok(ENSURE, json!({}), Some(&user.token)).await;
        assert!(data["ensureDefaultKey"].is_null());
        app.ok(REVOKE, json!({ "id": user.default_key_id() }), Some(&user.token)).await;
        let data = app.ok(ENSURE, json!({}), Some(&user.token)).await;
        assert!(data["ensureDefaultKey"].is_null(), "a revoked default key was still had");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [1]);
        assert_error(&app.graphql(ENSURE, json!({}), None).await, "UNAUTHENTICATED");
    }

    async fn a_user_whose_provisioning_failed_gets_one_default_key_however_many_ask(app: TestApp) {
        break_provisioning(&app).await;
        let email = unique_email();
        let signup = app.ok(SIGNUP_ONLY, json!({ "email": email, "password": PASSWORD }), None).await;
        assert!(signup["signup"]["defaultKey"].is_null());
        let user = TestUser {
            id: String::new(),
            email,
            token: signup["signup"]["token"].as_str().unwrap().to_owned(),
            signup: signup["signup"].clone(),
        };
        repair_provisioning(&app).await;
        // A key of their own is not a default key.
        app.create_with(&user, json!({ "name": "mine" })).await;

        let second = app.spawn_second_server().await;
        let calls = (0..20).map(|i| {
            let addr = if i % 2 == 0 { app.addr } else { second };
            app.graphql_at(addr, ENSURE, json!({}), Some(&user.token))
        });
        let responses = join_all(calls).await;
        assert!(responses.iter().all(|r| r.get("errors").is_none()), "{responses:#?}");
        let made: Vec<&Value> = responses.iter().map(|r| &r["data"]["ensureDefaultKey"]).filter(|k| !k.is_null()).collect();
        assert_eq!(made.len(), 1, "{responses:#?}");
        let key = &made[0]["apiKey"];
        assert_eq!((key["name"].as_str(), key["keyType"].as_str(), key["status"].as_str()), (Some("Default key"), Some("DEV"), Some("ACTIVE")));
        assert!(key["expiresAt"].is_null() && key["rotatedFromId"].is_null());
        let secret = made[0]["secret"].as_str().unwrap();
        assert!(secret.starts_with("sk_dev_"));
        assert_eq!(app.charge(secret, 1).await["code"], "VALID");

        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [2]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM billing_accounts").await, [1]);
        let again = app.ok(ENSURE, json!({}), Some(&user.token)).await;
        assert!(again["ensureDefaultKey"].is_null());
    }
}

on_both_backends! {
    async fn expired_keys_leave_room_under_the_key_cap(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.max_active_keys = 2).await;
        let user = app.signup().await;
        let soon = rfc3339(app.clock.now() + Duration::minutes(1));
        app.create_with(&user, json!({ "name": "short", "expiresAt": soon })).await;
        let full = app.graphql(CREATE, json!({ "input": { "name": "third" } }), Some(&user.token)).await;
        assert_error(&full, "BAD_USER_INPUT");
        app.clock.advance(Duration::minutes(1));
        app.create_with(&user, json!({ "name": "third" })).await;
    }

    async fn rotation_is_allowed_at_the_key_cap(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.max_active_keys = 1).await;
        let user = app.signup().await;
        let full = app.graphql(CREATE, json!({ "input": { "name": "second" } }), Some(&user.token)).await;
        assert_error(&full, "BAD_USER_INPUT");
        let rotated = app.rotate(&user, json!({ "id": user.default_key_id(), "gracePeriodSeconds": 600 })).await;
        assert!(rotated.get("errors").is_none(), "{rotated:#}");
        // The replacement counts; the old key stops counting when its grace ends.
        app.clock.advance(Duration::seconds(600));
        let still_full = app.graphql(CREATE, json!({ "input": { "name": "second" } }), Some(&user.token)).await;
        assert_error(&still_full, "BAD_USER_INPUT");
    }
}

const SIGNUP_ONLY: &str = r#"
mutation($email: String!, $password: String!) {
  signup(input: { email: $email, password: $password }) { token defaultKey { secret } }
}"#;
