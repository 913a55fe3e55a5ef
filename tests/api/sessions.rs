use chrono::Duration;
use serde_json::json;

use crate::helpers::*;

const LOGOUT: &str = "mutation { logout }";

on_both_databases! {
    async fn login_returns_a_new_working_token(app: TestApp) {
        let user = app.signup().await;
        let data = app.ok(LOGIN, json!({ "email": user.email.to_uppercase(), "password": PASSWORD }), None).await;
        let token = data["login"]["token"].as_str().unwrap();
        assert_ne!(token, user.token);
        assert_eq!(data["login"]["user"]["id"], user.id.as_str());
        let me = app.ok(ME, json!({}), Some(token)).await;
        assert_eq!(me["me"]["email"], user.email.as_str());
    }

    async fn wrong_email_and_wrong_password_are_indistinguishable(app: TestApp) {
        let user = app.signup().await;
        let wrong_password = app.graphql(LOGIN, json!({ "email": user.email, "password": "not the password" }), None).await;
        let unknown_email = app.graphql(LOGIN, json!({ "email": unique_email(), "password": PASSWORD }), None).await;
        assert_error(&wrong_password, "INVALID_CREDENTIALS");
        assert_eq!(wrong_password, unknown_email);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM sessions").await, [1]);
    }

    async fn login_input_is_validated_like_signup(app: TestApp) {
        for (email, password) in [("not-an-email", PASSWORD), ("ada@example.com", "short")] {
            let response = app.graphql(LOGIN, json!({ "email": email, "password": password }), None).await;
            assert_error(&response, "BAD_USER_INPUT");
        }
    }

    async fn me_requires_a_valid_token(app: TestApp) {
        app.signup().await;
        let missing = app.graphql(ME, json!({}), None).await;
        assert_error(&missing, "UNAUTHENTICATED");
        assert!(missing["data"].is_null());
        let forged = app.graphql(ME, json!({}), Some("kms_not-a-real-token")).await;
        assert_error(&forged, "UNAUTHENTICATED");
        // A token sent without the Bearer scheme is not a token.
        let response: serde_json::Value = app
            .http
            .post(app.url("/graphql"))
            .header("Authorization", "kms_whatever")
            .json(&json!({ "query": ME }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_error(&response, "UNAUTHENTICATED");
    }

    async fn logout_ends_only_the_presented_session(app: TestApp) {
        let user = app.signup().await;
        let second = app.ok(LOGIN, json!({ "email": user.email, "password": PASSWORD }), None).await;
        let second_token = second["login"]["token"].as_str().unwrap();

        assert_eq!(app.ok(LOGOUT, json!({}), Some(&user.token)).await["logout"], true);
        assert_error(&app.graphql(ME, json!({}), Some(&user.token)).await, "UNAUTHENTICATED");
        assert_error(&app.graphql(LOGOUT, json!({}), Some(&user.token)).await, "UNAUTHENTICATED");
        app.ok(ME, json!({}), Some(second_token)).await;
        assert_error(&app.graphql(LOGOUT, json!({}), None).await, "UNAUTHENTICATED");
    }

    async fn sessions_expire_after_thirty_days(app: TestApp) {
        let user = app.signup().await;
        app.clock.advance(Duration::days(30) - Duration::seconds(1));
        app.ok(ME, json!({}), Some(&user.token)).await;
        app.clock.advance(Duration::seconds(1));
        assert_error(&app.graphql(ME, json!({}), Some(&user.token)).await, "UNAUTHENTICATED");
        // Logging in again clears the dead session away.
        app.ok(LOGIN, json!({ "email": user.email, "password": PASSWORD }), None).await;
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM sessions").await, [1]);
    }

    async fn tokens_are_stored_only_as_hashes(app: TestApp) {
        let user = app.signup().await;
        let rows = app.rows("SELECT token_hash FROM sessions").await;
        let stored: Vec<u8> = rows[0].try_get_by_index(0).unwrap();
        use sha2::Digest;
        assert_eq!(stored, sha2::Sha256::digest(user.token.as_bytes()).to_vec());
    }
}

on_both_backends! {
    async fn session_lifetime_is_configurable(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.session_ttl_days = 1).await;
        let user = app.signup().await;
        app.clock.advance(Duration::days(1));
        assert_error(&app.graphql(ME, json!({}), Some(&user.token)).await, "UNAUTHENTICATED");
    }
}
