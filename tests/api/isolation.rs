//! Every query and mutation, tried by one user on another user's ids: each
//! must act on the caller's own data only, and another's key id must read
//! exactly like an id that does not exist.

use serde_json::{json, Value};

use crate::helpers::*;

/// One operation of the API, run as `intruder` against `victim`'s data.
struct Attempt {
    operation: &'static str,
    query: &'static str,
    variables: fn(&Victim) -> Value,
    /// Checks the answer; `victim` is what the intruder must not see or touch.
    check: fn(&Value, &Victim),
}

struct Victim {
    user_id: String,
    email: String,
    key_id: String,
    missing_id: String,
}

fn not_found_like_a_missing_id(response: &Value, _: &Victim) {
    assert_error(response, "NOT_FOUND");
    assert_eq!(response["errors"][0]["message"], "not found");
}

const ATTEMPTS: &[Attempt] = &[
    Attempt {
        operation: "me",
        query: "query { me { id email } }",
        variables: |_| json!({}),
        check: |response, victim| {
            assert_ne!(response["data"]["me"]["id"], victim.user_id.as_str());
            assert_ne!(response["data"]["me"]["email"], victim.email.as_str());
        },
    },
    Attempt {
        operation: "keys",
        query: "query { keys(includeRevoked: true) { id } }",
        variables: |_| json!({}),
        check: |response, victim| {
            let keys = response["data"]["keys"].as_array().unwrap();
            assert!(!keys.is_empty() && keys.iter().all(|k| k["id"] != victim.key_id.as_str()));
        },
    },
    Attempt {
        operation: "keysUsage",
        query: "query { keysUsage { totalCredits keys { apiKey { id } } } }",
        variables: |_| json!({}),
        check: |response, victim| {
            let usage = &response["data"]["keysUsage"];
            assert_eq!(usage["totalCredits"], 0, "the victim's usage leaked");
            let keys = usage["keys"].as_array().unwrap();
            assert!(keys
                .iter()
                .all(|k| k["apiKey"]["id"] != victim.key_id.as_str()));
        },
    },
    Attempt {
        operation: "revokeKey (another's key)",
        query: "mutation($id: UUID!) { revokeKey(id: $id) { id revokedAt } }",
        variables: |victim| json!({ "id": victim.key_id }),
        check: not_found_like_a_missing_id,
    },
    Attempt {
        operation: "revokeKey (missing key)",
        query: "mutation($id: UUID!) { revokeKey(id: $id) { id revokedAt } }",
        variables: |victim| json!({ "id": victim.missing_id }),
        check: not_found_like_a_missing_id,
    },
    Attempt {
        operation: "rotateKey (another's key)",
        query: "mutation($id: UUID!) { rotateKey(input: { id: $id }) { secret } }",
        variables: |victim| json!({ "id": victim.key_id }),
        check: not_found_like_a_missing_id,
    },
    Attempt {
        operation: "rotateKey (missing key)",
        query: "mutation($id: UUID!) { rotateKey(input: { id: $id }) { secret } }",
        variables: |victim| json!({ "id": victim.missing_id }),
        check: not_found_like_a_missing_id,
    },
    Attempt {
        operation: "renameKey (another's key)",
        query: "mutation($id: UUID!) { renameKey(id: $id, name: \"mine\") { id } }",
        variables: |victim| json!({ "id": victim.key_id }),
        check: not_found_like_a_missing_id,
    },
    Attempt {
        operation: "renameKey (missing key)",
        query: "mutation($id: UUID!) { renameKey(id: $id, name: \"mine\") { id } }",
        variables: |victim| json!({ "id": victim.missing_id }),
        check: not_found_like_a_missing_id,
    },
    Attempt {
        operation: "ensureDefaultKey",
        query: "mutation { ensureDefaultKey { apiKey { id } } }",
        variables: |_| json!({}),
        check: |response, _| assert_eq!(response["data"]["ensureDefaultKey"], Value::Null),
    },
    Attempt {
        operation: "createKey",
        query: "mutation { createKey(input: { name: \"mine\" }) { apiKey { id } } }",
        variables: |_| json!({}),
        check: |response, _| assert!(response.get("errors").is_none(), "{response:#}"),
    },
    Attempt {
        operation: "logout",
        query: "mutation { logout }",
        variables: |_| json!({}),
        check: |response, _| assert_eq!(response["data"]["logout"], true),
    },
];

on_both_databases! {
    async fn no_operation_reaches_another_users_data(app: TestApp) {
        let victim_user = app.signup().await;
        app.charge(victim_user.default_secret(), 100).await;
        let victim = Victim {
            user_id: victim_user.id.clone(),
            email: victim_user.email.clone(),
            key_id: victim_user.default_key_id().to_owned(),
            missing_id: uuid::Uuid::new_v4().to_string(),
        };
        let intruder = app.signup().await;
        for attempt in ATTEMPTS {
            let response = app.graphql(attempt.query, (attempt.variables)(&victim), Some(&intruder.token)).await;
            eprintln!("{}: {response}", attempt.operation);
            (attempt.check)(&response, &victim);
        }
        // The victim's data is exactly as it was, and their session still works.
        let keys = app.ok(KEYS, json!({ "includeRevoked": true }), Some(&victim_user.token)).await;
        assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
        assert!(keys["keys"][0]["revokedAt"].is_null());
        assert_eq!(keys["keys"][0]["name"], "Default key");
        assert_eq!(app.keys_usage(&victim_user).await["totalCredits"], 100);
    }
}
