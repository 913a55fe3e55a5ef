use chrono::Duration;
use serde_json::{json, Value};
use sha2::Digest;

use crate::helpers::*;

fn ids(keys: &Value) -> Vec<&str> {
    keys.as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect()
}

on_both_databases! {
    async fn created_keys_have_the_contract_secret_format(app: TestApp) {
        let user = app.signup().await;
        for (key_type, kind) in [("DEV", "sk_dev_"), ("PROD", "sk_prod_")] {
            let created = app.create_key(&user, "  billing service  ", key_type).await;
            let secret = created["secret"].as_str().unwrap();
            let key = &created["apiKey"];
            assert_eq!(key["name"], "billing service");
            assert_eq!(key["keyType"], key_type);
            let random = secret.strip_prefix(kind).expect("the kind's prefix");
            assert!(random.len() >= 32 && random.chars().all(|c| c.is_ascii_alphanumeric()));
            let prefix = key["prefix"].as_str().unwrap();
            assert!(secret.starts_with(prefix) && prefix.len() > kind.len() && prefix.len() < secret.len());
            assert!(key["lastUsedAt"].is_null() && key["revokedAt"].is_null());
        }
    }

    async fn key_type_defaults_to_dev(app: TestApp) {
        let user = app.signup().await;
        let data = app.ok(CREATE_KEY, json!({ "input": { "name": "ci" } }), Some(&user.token)).await;
        assert_eq!(data["createKey"]["apiKey"]["keyType"], "DEV");
        let explicit_null = app.ok(CREATE_KEY, json!({ "input": { "name": "ci", "keyType": null } }), Some(&user.token)).await;
        assert_eq!(explicit_null["createKey"]["apiKey"]["keyType"], "DEV");
    }

    async fn secrets_are_stored_only_as_hashes_and_never_shown_again(app: TestApp) {
        let user = app.signup().await;
        let created = app.create_key(&user, "prod", "PROD").await;
        let secret = created["secret"].as_str().unwrap();
        let rows = app.rows("SELECT name, prefix, secret_hash FROM api_keys WHERE key_type = 'prod'").await;
        assert_eq!(rows.len(), 1);
        let hash: Vec<u8> = rows[0].try_get_by_index(2).unwrap();
        assert_eq!(hash, sha2::Sha256::digest(secret.as_bytes()).to_vec());
        for column in 0..2 {
            let text: String = rows[0].try_get_by_index(column).unwrap();
            assert!(!text.contains(secret));
        }
        let listed = app.graphql(KEYS, json!({}), Some(&user.token)).await.to_string();
        assert!(!listed.contains(secret));
        let me = app.graphql(ME, json!({}), Some(&user.token)).await.to_string();
        assert!(!me.contains(secret));
    }

    async fn key_names_are_validated(app: TestApp) {
        let user = app.signup().await;
        for name in ["", "   ", &"x".repeat(65), "line\nbreak"] {
            let response = app.graphql(CREATE_KEY, json!({ "input": { "name": name } }), Some(&user.token)).await;
            assert_error(&response, "BAD_USER_INPUT");
            assert!(response["errors"][0]["message"].as_str().unwrap().starts_with("name"));
        }
        let longest = format!("  {}  ", "é".repeat(64));
        let created = app.create_key(&user, &longest, "DEV").await;
        assert_eq!(created["apiKey"]["name"], "é".repeat(64));
        let bad_type = app.graphql(CREATE_KEY, json!({ "input": { "name": "x", "keyType": "TEST" } }), Some(&user.token)).await;
        assert_error(&bad_type, "BAD_USER_INPUT");
    }

    async fn keys_are_listed_newest_first_without_revoked_by_default(app: TestApp) {
        let user = app.signup().await;
        let default_id = user.signup["defaultKey"]["apiKey"]["id"].as_str().unwrap().to_owned();
        let mut created = vec![default_id];
        for name in ["one", "two", "three"] {
            app.clock.advance(Duration::seconds(1));
            created.push(app.create_key(&user, name, "PROD").await["apiKey"]["id"].as_str().unwrap().to_owned());
        }
        app.ok(REVOKE_KEY, json!({ "id": created[2] }), Some(&user.token)).await;

        let active = app.ok(KEYS, json!({}), Some(&user.token)).await;
        assert_eq!(ids(&active["keys"]), [&created[3], &created[1], &created[0]]);
        let explicit_false = app.ok(KEYS, json!({ "includeRevoked": false }), Some(&user.token)).await;
        assert_eq!(explicit_false, active);
        let all = app.ok(KEYS, json!({ "includeRevoked": true }), Some(&user.token)).await;
        assert_eq!(ids(&all["keys"]), [&created[3], &created[2], &created[1], &created[0]]);
        assert!(all["keys"][1]["revokedAt"].is_string());
    }

    async fn revoking_is_idempotent(app: TestApp) {
        let user = app.signup().await;
        let key_id = app.create_key(&user, "temp", "DEV").await["apiKey"]["id"].clone();
        let first = app.ok(REVOKE_KEY, json!({ "id": key_id }), Some(&user.token)).await;
        app.clock.advance(Duration::minutes(5));
        let second = app.ok(REVOKE_KEY, json!({ "id": key_id }), Some(&user.token)).await;
        assert!(first["revokeKey"]["revokedAt"].is_string());
        assert_eq!(first, second);
    }

    async fn another_users_key_is_not_found_exactly_like_a_missing_one(app: TestApp) {
        let owner = app.signup().await;
        let intruder = app.signup().await;
        let key_id = owner.signup["defaultKey"]["apiKey"]["id"].as_str().unwrap();

        let theirs = app.graphql(REVOKE_KEY, json!({ "id": key_id }), Some(&intruder.token)).await;
        let missing = app.graphql(REVOKE_KEY, json!({ "id": uuid::Uuid::new_v4() }), Some(&intruder.token)).await;
        assert_error(&theirs, "NOT_FOUND");
        assert_eq!(theirs, missing);

        // The owner's key is untouched, and nobody sees another's keys.
        let owners = app.ok(KEYS, json!({ "includeRevoked": true }), Some(&owner.token)).await;
        assert!(owners["keys"][0]["revokedAt"].is_null());
        let intruders = app.ok(KEYS, json!({ "includeRevoked": true }), Some(&intruder.token)).await;
        assert!(!ids(&intruders["keys"]).contains(&key_id));
    }

    async fn key_operations_require_a_session(app: TestApp) {
        let user = app.signup().await;
        let key_id = user.signup["defaultKey"]["apiKey"]["id"].clone();
        assert_error(&app.graphql(KEYS, json!({}), None).await, "UNAUTHENTICATED");
        assert_error(&app.graphql(CREATE_KEY, json!({ "input": { "name": "x" } }), None).await, "UNAUTHENTICATED");
        assert_error(&app.graphql(REVOKE_KEY, json!({ "id": key_id }), None).await, "UNAUTHENTICATED");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [1]);
    }

    async fn malformed_ids_are_bad_user_input(app: TestApp) {
        let user = app.signup().await;
        for id in ["not-a-uuid", "", "123"] {
            let response = app.graphql(REVOKE_KEY, json!({ "id": id }), Some(&user.token)).await;
            assert_error(&response, "BAD_USER_INPUT");
        }
    }
}
