//! Concurrent lookups of keys and session tokens share queries (the default)
//! or run one by one; either way each caller gets its own answer, whatever
//! else is in the batch: other users, unknown secrets, revoked keys, dead
//! tokens.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

const ME: &str = "{ me { email } }";

/// The answer `token` should get: its user's email, or UNAUTHENTICATED.
fn me_answer(response: &Value) -> Value {
    match error_code(response) {
        Some(code) => json!(code),
        None => response["data"]["me"]["email"].clone(),
    }
}

on_both_backends! {
    async fn concurrent_lookups_each_get_their_own_answer(backend: Backend) {
        for coalesce in [true, false] {
            let app = TestApp::spawn_with(backend.clone(), |config| config.coalesce_reads = coalesce).await;
            let users = join_all((0..4).map(|_| app.signup())).await;
            let revoked = users[1].default_key_id();
            app.ok(REVOKE_KEY, json!({ "id": revoked }), Some(&users[1].token)).await;
            app.ok("mutation { logout }", json!({}), Some(&users[2].token)).await;

            // (token, expected answer) and (secret, expected code, expected key id).
            let mut sessions: Vec<(String, Value)> = users
                .iter()
                .map(|u| (u.token.clone(), json!(u.email)))
                .collect();
            sessions[2].1 = json!("UNAUTHENTICATED");
            sessions.push(("not-a-token".into(), json!("UNAUTHENTICATED")));
            let mut secrets: Vec<(String, &str, Value)> = users
                .iter()
                .map(|u| (u.default_secret().to_owned(), "VALID", json!(u.default_key_id())))
                .collect();
            secrets[1].1 = "REVOKED";
            secrets.push((format!("sk_dev_{}", "0".repeat(43)), "NOT_FOUND", Value::Null));

            let app = &app;
            let mes = (0..40).map(|i| {
                let (token, expected) = &sessions[i % sessions.len()];
                async move { (me_answer(&app.graphql(ME, json!({}), Some(token)).await), expected) }
            });
            let verifies = (0..40).map(|i| {
                let (secret, code, key_id) = &secrets[i % secrets.len()];
                async move {
                    let answer = app.verify(json!({ "key": secret, "credits": 0 })).await;
                    ((answer["code"].clone(), answer["keyId"].clone()), (json!(code), key_id.clone()))
                }
            });
            let (mes, verifies) = tokio::join!(join_all(mes), join_all(verifies));
            for (answer, expected) in mes {
                assert_eq!(&answer, expected, "coalesce_reads = {coalesce}");
            }
            for (answer, expected) in verifies {
                assert_eq!(answer, expected, "coalesce_reads = {coalesce}");
            }
        }
    }
}
