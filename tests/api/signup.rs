use chrono::{DateTime, Months, Utc};
use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::*;

/// Makes every insert into billing_accounts fail, as a broken provisioning step would.
pub async fn break_provisioning(app: &TestApp) {
    match app.backend() {
        sea_orm::DbBackend::Postgres => {
            app.execute(
                "CREATE FUNCTION refuse_insert() RETURNS trigger AS $$
                 BEGIN RAISE EXCEPTION 'provisioning disabled by the test'; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER break_provisioning BEFORE INSERT ON billing_accounts
                 FOR EACH ROW EXECUTE FUNCTION refuse_insert();",
            )
            .await
        }
        _ => {
            app.execute(
                "CREATE TRIGGER break_provisioning BEFORE INSERT ON billing_accounts
                 BEGIN SELECT RAISE(ABORT, 'provisioning disabled by the test'); END;",
            )
            .await
        }
    }
}

pub async fn repair_provisioning(app: &TestApp) {
    let on = if app.backend() == sea_orm::DbBackend::Postgres {
        " ON billing_accounts"
    } else {
        ""
    };
    app.execute(&format!("DROP TRIGGER break_provisioning{on}"))
        .await;
}

fn time(value: &serde_json::Value) -> DateTime<Utc> {
    value
        .as_str()
        .expect("a DateTime string")
        .parse()
        .expect("RFC 3339")
}

on_both_databases! {
    async fn signup_provisions_billing_account_and_default_key(app: TestApp) {
        let user = app.signup_as("  Grace.Hopper@Example.COM ").await;
        let signup = &user.signup;

        assert_eq!(user.email, "grace.hopper@example.com");
        assert!(user.token.len() >= 43);
        let account = &signup["user"]["billingAccount"];
        assert_eq!(account["plan"], "free");
        assert_eq!(account["monthlyCredits"], 1000);
        let cycle_start = time(&account["billingCycleStart"]);
        assert_eq!(cycle_start, app.clock.now());
        assert_eq!(time(&account["billingCycleEnd"]), cycle_start + Months::new(1));
        assert!(account["billingCycleStart"].as_str().unwrap().ends_with('Z'));

        let default_key = &signup["defaultKey"];
        let secret = default_key["secret"].as_str().unwrap();
        assert!(secret.starts_with("sk_dev_"));
        assert_eq!(default_key["apiKey"]["name"], "Default key");
        assert_eq!(default_key["apiKey"]["keyType"], "DEV");
        assert!(secret.starts_with(default_key["apiKey"]["prefix"].as_str().unwrap()));

        // The token signs in, and the account is the one made at signup.
        let me = app.ok(ME, json!({}), Some(&user.token)).await;
        assert_eq!(me["me"]["id"], signup["user"]["id"]);
        assert_eq!(me["me"]["billingAccount"], *account);
        let keys = app.ok(KEYS, json!({}), Some(&user.token)).await;
        assert_eq!(keys["keys"][0]["id"], default_key["apiKey"]["id"]);
    }

    async fn an_email_signs_up_once_in_any_case(app: TestApp) {
        app.signup_as("ada@example.com").await;
        for email in ["ada@example.com", "ADA@Example.com", "  ada@EXAMPLE.com\t"] {
            let response = app.graphql(SIGNUP, json!({ "email": email, "password": PASSWORD }), None).await;
            assert_error(&response, "EMAIL_TAKEN");
            assert!(response["data"].is_null());
        }
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, [1]);
    }

    async fn twenty_racing_signups_of_one_email_make_one_account(app: TestApp) {
        let email = unique_email();
        let attempts = (0..20).map(|i| {
            let email = if i % 2 == 0 { email.clone() } else { email.to_uppercase() };
            let app = &app;
            async move { app.graphql(SIGNUP, json!({ "email": email, "password": PASSWORD }), None).await }
        });
        let responses = join_all(attempts).await;
        let won = responses.iter().filter(|r| r.get("errors").is_none()).count();
        let taken = responses.iter().filter(|r| error_code(r) == Some("EMAIL_TAKEN")).count();
        assert_eq!((won, taken), (1, 19), "{responses:#?}");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, [1]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM billing_accounts").await, [1]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [1]);
    }

    async fn invalid_signup_input_is_refused_with_a_reason(app: TestApp) {
        let long_local = "a".repeat(243);
        let cases = [
            ("no-at-sign.example.com", PASSWORD, "email"),
            ("@example.com", PASSWORD, "email"),
            ("ada@", PASSWORD, "email"),
            ("a@b@example.com", PASSWORD, "email"),
            ("   ", PASSWORD, "email"),
            (&format!("{long_local}@example.com") as &str, PASSWORD, "email"),
            ("ada@example.com", "short", "password"),
            ("ada@example.com", &"p".repeat(129), "password"),
        ];
        for (email, password, field) in cases {
            let response = app.graphql(SIGNUP, json!({ "email": email, "password": password }), None).await;
            assert_error(&response, "BAD_USER_INPUT");
            let message = response["errors"][0]["message"].as_str().unwrap();
            assert!(message.starts_with(field), "{message:?} should name {field}");
            assert!(!message.contains(password) || password == PASSWORD, "the password is echoed");
        }
        // The bounds themselves are allowed: 254 characters, 8 and 128 characters.
        let at_limit = format!("{}@example.com", "a".repeat(242));
        app.ok(SIGNUP, json!({ "email": at_limit, "password": "12345678" }), None).await;
        app.ok(SIGNUP, json!({ "email": unique_email(), "password": "p".repeat(128) }), None).await;
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, [2]);
    }

    async fn failed_provisioning_still_signs_up_and_provisions_lazily(app: TestApp) {
        break_provisioning(&app).await;
        let response = app
            .graphql(
                "mutation($email: String!, $password: String!) {
                   signup(input: { email: $email, password: $password }) { token user { id email } defaultKey { secret } }
                 }",
                json!({ "email": unique_email(), "password": PASSWORD }),
                None,
            )
            .await;
        assert!(response.get("errors").is_none(), "{response:#}");
        let signup = &response["data"]["signup"];
        assert!(signup["defaultKey"].is_null());
        let token = signup["token"].as_str().unwrap();
        // Provisioning was rolled back whole: no key without its account.
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM billing_accounts").await, [0]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [0]);

        // While provisioning stays broken, reading the account fails cleanly.
        let me = app.graphql(ME, json!({}), Some(token)).await;
        assert_error(&me, "INTERNAL_SERVER_ERROR");
        assert_eq!(me["errors"][0]["message"], "internal server error");

        // Once it works again, the first reads provision exactly one account,
        // however many race.
        repair_provisioning(&app).await;
        let reads = (0..8).map(|_| app.ok(ME, json!({}), Some(token)));
        let accounts: Vec<_> = join_all(reads).await.into_iter().map(|d| d["me"]["billingAccount"].clone()).collect();
        assert!(accounts.iter().all(|a| *a == accounts[0]), "{accounts:#?}");
        assert_eq!(accounts[0]["plan"], "free");
        assert_eq!(accounts[0]["monthlyCredits"], 1000);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM billing_accounts").await, [1]);

        // The user is whole: keys can be made and listed.
        let keys = app.ok(KEYS, json!({}), Some(token)).await;
        assert_eq!(keys["keys"], json!([]));
        app.ok(CREATE_KEY, json!({ "input": { "name": "first" } }), Some(token)).await;
    }

    async fn listing_keys_also_provisions_a_missing_account(app: TestApp) {
        break_provisioning(&app).await;
        let data = app.ok(SIGNUP_WITHOUT_ACCOUNT, json!({ "email": unique_email(), "password": PASSWORD }), None).await;
        let token = data["signup"]["token"].as_str().unwrap();
        repair_provisioning(&app).await;
        let reads = (0..6).map(|_| app.ok(KEYS, json!({}), Some(token)));
        join_all(reads).await;
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM billing_accounts").await, [1]);
    }
}

on_both_backends! {
    async fn monthly_credits_of_new_accounts_are_configurable(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.monthly_credits = 250).await;
        let user = app.signup().await;
        assert_eq!(user.signup["user"]["billingAccount"]["monthlyCredits"], 250);
    }
}

const SIGNUP_WITHOUT_ACCOUNT: &str = r#"
mutation($email: String!, $password: String!) {
  signup(input: { email: $email, password: $password }) { token defaultKey { secret } }
}"#;
