//! The audit log (contract v3), over HTTP on both databases: every change
//! of a walkthrough is there, newest first, with its actor, target, client
//! address and User-Agent and never a secret; a refused change leaves no
//! event; signup writes nothing; pages by an opaque cursor stay stable while
//! new events arrive; another account's cursor, log or id reaches nothing.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::teams::{join, team, token_of, INVITE, REMOVE, SET_ROLE, TEAM_CREATE_KEY};

const LOG: &str = "query($a: UUID, $first: Int, $after: String, $actions: [String!]) {
  account(id: $a) { auditLog(first: $first, after: $after, actions: $actions) {
    nextCursor
    events { id occurredAt action actor { type user { id email } } targetType targetId targetName ip userAgent }
  } } }";

async fn log(app: &TestApp, user: &TestUser, variables: Value) -> Value {
    let data = app.ok(LOG, variables, Some(&user.token)).await;
    data["account"]["auditLog"].clone()
}

fn actions(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["action"].as_str().unwrap().to_owned())
        .collect()
}

on_both_backends! {
    async fn a_walkthrough_is_logged_newest_first_without_a_secret(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let owner = app.signup().await;
        let colleague = app.signup().await;
        // Signup writes nothing.
        assert_eq!(log(&app, &owner, json!({})).await["events"], json!([]));

        let acme = team(&app, &owner, "Acme").await;
        let made = app
            .http
            .post(app.url("/graphql"))
            .bearer_auth(&owner.token)
            .header("User-Agent", "walkthrough/1.0")
            .json(&json!({ "query": TEAM_CREATE_KEY, "variables": { "a": acme, "name": "prod" } }))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let key = &made["data"]["createKey"];
        let key_id = key["apiKey"]["id"].as_str().unwrap().to_owned();
        let mut secrets = vec![key["secret"].as_str().unwrap().to_owned(), owner.token.clone(), colleague.token.clone(), owner.default_secret().to_owned()];
        app.ok("mutation($id: UUID!) { renameKey(id: $id, name: \"prod-eu\") { id } }", json!({ "id": key_id }), Some(&owner.token)).await;
        let rotated = app.ok("mutation($id: UUID!) { rotateKey(input: { id: $id, gracePeriodSeconds: 60 }) { secret apiKey { id } } }", json!({ "id": key_id }), Some(&owner.token)).await;
        secrets.push(rotated["rotateKey"]["secret"].as_str().unwrap().to_owned());
        let new_key = rotated["rotateKey"]["apiKey"]["id"].as_str().unwrap().to_owned();
        app.ok("mutation($id: UUID!) { revokeKey(id: $id) { id } }", json!({ "id": new_key }), Some(&owner.token)).await;
        // Revoking again changes nothing and logs nothing.
        app.ok("mutation($id: UUID!) { revokeKey(id: $id) { id } }", json!({ "id": new_key }), Some(&owner.token)).await;
        app.ok("mutation($a: UUID!) { renameAccount(accountId: $a, name: \"Acme Inc\") { id } }", json!({ "a": acme }), Some(&owner.token)).await;
        let invited = app.ok(INVITE, json!({ "input": { "accountId": acme, "email": unique_email() } }), Some(&owner.token)).await;
        secrets.push(token_of(invited["createInvitation"]["acceptUrl"].as_str().unwrap()));
        let invitation_id = invited["createInvitation"]["invitation"]["id"].clone();
        app.ok("mutation($id: UUID!) { revokeInvitation(id: $id) { id } }", json!({ "id": invitation_id }), Some(&owner.token)).await;
        join(&app, &owner, &acme, &colleague, "MEMBER").await;
        app.ok(SET_ROLE, json!({ "a": acme, "u": colleague.id, "r": "OWNER" }), Some(&owner.token)).await;
        app.ok(REMOVE, json!({ "a": acme, "u": colleague.id }), Some(&owner.token)).await;

        let page = log(&app, &owner, json!({ "a": acme })).await;
        assert_eq!(
            actions(&page),
            [
                "member.removed", "member.role_changed", "member.joined",
                // `join` invites the colleague, who accepts.
                "invitation.created", "invitation.revoked", "invitation.created", "account.renamed", "key.revoked", "key.rotated", "key.renamed",
                "key.created", "account.created",
            ]
        );
        let events = page["events"].as_array().unwrap();
        let by = |action: &str| events.iter().find(|e| e["action"] == action).unwrap().clone();
        // Who, from where, on what.
        let created = by("key.created");
        assert_eq!(created["actor"], json!({ "type": "USER", "user": { "id": owner.id, "email": owner.email } }));
        assert_eq!(created["ip"], "127.0.0.1");
        assert_eq!(created["userAgent"], "walkthrough/1.0");
        assert_eq!((&created["targetType"], created["targetId"].as_str(), &created["targetName"]), (&json!("KEY"), Some(key_id.as_str()), &json!("prod")));
        // A rotation targets the old key; a rename carries the new name.
        assert_eq!(by("key.rotated")["targetId"], key_id.as_str());
        assert_eq!(by("key.renamed")["targetName"], "prod-eu");
        assert_eq!(by("account.renamed")["targetId"], acme.as_str());
        assert_eq!(by("account.created")["targetType"], "ACCOUNT");
        let joined = by("member.joined");
        assert_eq!((&joined["targetType"], joined["targetId"].as_str()), (&json!("MEMBER"), Some(colleague.id.as_str())));
        assert_eq!(joined["actor"]["user"]["email"], colleague.email.as_str());
        assert_eq!(by("member.removed")["targetName"], colleague.email.as_str());

        // No secret, token or hash anywhere in the log, nor in the table.
        let everything = format!("{page}{:?}", app.rows("SELECT * FROM audit_events").await);
        for secret in &secrets {
            assert!(!everything.contains(secret.as_str()), "a secret in the log");
        }
        assert!(!everything.contains("kms_") && !everything.contains("kmi_") && !everything.contains("sk_dev_") && !everything.contains("sk_prod_"));

        // The removed colleague sees it no more; a stranger never did.
        let stranger = app.signup().await;
        for user in [&colleague, &stranger] {
            assert_error(&app.graphql(LOG, json!({ "a": acme }), Some(&user.token)).await, "NOT_FOUND");
        }
        // Filtering by action.
        let keys_only = log(&app, &owner, json!({ "a": acme, "actions": ["key.created", "key.revoked"] })).await;
        assert_eq!(actions(&keys_only), ["key.revoked", "key.created"]);
        let unknown = app.graphql(LOG, json!({ "a": acme, "actions": ["key.deleted"] }), Some(&owner.token)).await;
        assert_error(&unknown, "BAD_USER_INPUT");
    }

    async fn a_refused_change_leaves_no_event(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.max_active_keys = 1).await;
        let owner = app.signup().await;
        let refused = app.graphql(TEAM_CREATE_KEY, json!({ "name": "second" }), Some(&owner.token)).await;
        assert_error(&refused, "BAD_USER_INPUT");
        assert_eq!(log(&app, &owner, json!({})).await["events"], json!([]));
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM audit_events").await, [0]);
    }

    async fn pages_stay_stable_while_events_arrive_and_cursors_stay_with_their_log(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let owner = app.signup().await;
        let other = app.signup().await;
        for i in 0..5 {
            app.ok(TEAM_CREATE_KEY, json!({ "name": format!("k{i}") }), Some(&owner.token)).await;
            app.ok("mutation($id: UUID!) { revokeKey(id: $id) { id } }", json!({ "id": app.ok("{ keys { id } }", json!({}), Some(&owner.token)).await["keys"][0]["id"] }), Some(&owner.token)).await;
        }
        // Ten events; read three at a time while new ones are written.
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = log(&app, &owner, json!({ "first": 3, "after": after })).await;
            for event in page["events"].as_array().unwrap() {
                seen.push(event["id"].as_str().unwrap().to_owned());
            }
            app.ok(TEAM_CREATE_KEY, json!({ "name": "meanwhile" }), Some(&owner.token)).await;
            app.ok("mutation($id: UUID!) { revokeKey(id: $id) { id } }", json!({ "id": app.ok("{ keys { id } }", json!({}), Some(&owner.token)).await["keys"][0]["id"] }), Some(&owner.token)).await;
            match page["nextCursor"].as_str() {
                Some(cursor) => after = Some(cursor.to_owned()),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (10, 10), "no duplicates, no gaps");

        // A cursor of another log, or none at all, is refused alike.
        let foreign = log(&app, &other, json!({ "first": 1 })).await;
        assert!(foreign["nextCursor"].is_null());
        let mine = log(&app, &owner, json!({ "first": 1 })).await;
        let cursor = mine["nextCursor"].as_str().unwrap();
        let theirs = app.graphql(LOG, json!({ "after": cursor }), Some(&other.token)).await;
        let garbage = app.graphql(LOG, json!({ "after": "bm90IGEgY3Vyc29y" }), Some(&other.token)).await;
        assert_error(&theirs, "BAD_USER_INPUT");
        assert_eq!(theirs["errors"][0]["message"], garbage["errors"][0]["message"]);
        for first in [0, 201, -1] {
            assert_error(&app.graphql(LOG, json!({ "first": first }), Some(&owner.token)).await, "BAD_USER_INPUT");
        }
    }
}
