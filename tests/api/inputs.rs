//! Input the contract refuses never gets through: unprintable or over-long
//! requestIds, endpoints, key names and emails are BAD_USER_INPUT and store
//! nothing; a free check stores nothing, its requestId included; and a user
//! holds at most the configured number of active keys, however many
//! createKey calls race.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

/// Control, bidi, zero-width and other invisible characters, each inside
/// otherwise ordinary text.
const UNPRINTABLE: &[&str] = &[
    "a\u{0}b",
    "\u{1}start",
    "line\nbreak",
    "carriage\rreturn",
    "tab\tbed",
    "del\u{7f}",
    "next\u{85}line",
    "txt.exe\u{202e}fdp",
    "embed\u{202a}ding",
    "iso\u{2066}late\u{2069}",
    "rtl\u{200f}mark",
    "arabic\u{61c}mark",
    "zero\u{200b}width",
    "join\u{200d}er",
    "word\u{2060}joiner",
    "\u{feff}bom",
    "soft\u{ad}hyphen",
    "tag\u{e0041}",
    "line\u{2028}separator",
];

fn message(response: &Value) -> &str {
    response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
}

#[track_caller]
fn assert_refused(response: &Value, field: &str) {
    assert_error(response, "BAD_USER_INPUT");
    assert!(
        message(response).starts_with(field),
        "the message should name {field}: {response:#}"
    );
}

async fn verify_raw(app: &TestApp, input: Value) -> Value {
    app.graphql(VERIFY_KEY, json!({ "input": input }), None)
        .await
}

async fn create_key_raw(app: &TestApp, user: &TestUser, name: &str) -> Value {
    app.graphql(
        CREATE_KEY,
        json!({ "input": { "name": name } }),
        Some(&user.token),
    )
    .await
}

async fn active_keys(app: &TestApp) -> i64 {
    app.query_i64("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")
        .await[0]
}

/// Addresses no mail provider issues: controls, bidi, zero-width, markup,
/// quoting, spaces, a missing or doubled '@', a dotless domain, too long.
fn malformed_emails() -> Vec<String> {
    let mut emails: Vec<String> = [
        "ada\u{0}@example.com",
        "ada@example.com\u{1}",
        "ada\n@example.com",
        "ada@exa\u{7f}mple.com",
        "ada\u{202e}moc.elpmaxe@x.com",
        "ad\u{200b}a@example.com",
        "ada@example\u{200c}.com",
        "\u{feff}ada@example.com",
        "ada\u{2066}@example.com",
        "ada\u{200e}@example.com",
        "<svg/onload=alert(1)>@x.com",
        "<script>alert(1)</script>@x.com",
        "\"<img src=x onerror=alert(1)>\"@x.com",
        "\"ada\"@example.com",
        "ada@example.com<b>",
        "a&lt;b@example.com",
        "javascript:alert(1)@x.com",
        "ada lovelace@example.com",
        "ada@exam ple.com",
        "ada.example.com",
        "ada@@example.com",
        "a@b@example.com",
        "ada@localhost",
        "ada@[127.0.0.1]",
        "Ada <ada@example.com>",
        "ada..lovelace@example.com",
        "ada@-example.com",
    ]
    .map(str::to_owned)
    .to_vec();
    emails.push(format!("{}@example.com", "a".repeat(243)));
    emails.push(format!("ada@{}.com", "b".repeat(64)));
    emails
}

on_both_databases! {
    async fn unprintable_or_long_request_ids_are_refused_and_store_nothing(app: TestApp) {
        let user = app.signup().await;
        let key = user.default_secret();
        let mut bad: Vec<String> = UNPRINTABLE.iter().map(|s| s.to_string()).collect();
        bad.extend(["r".repeat(129), "é".repeat(129), "鍵".repeat(129), String::new()]);
        for request_id in &bad {
            for credits in [1, 0] {
                let response = verify_raw(&app, json!({ "key": key, "credits": credits, "requestId": request_id })).await;
                assert_refused(&response, "requestId");
                assert!(!response.to_string().contains(key), "the secret is echoed");
            }
        }
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM verify_requests").await, [0]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [0]);

        // 128 printable characters of any script are an id, charged once.
        let longest = format!("{}{}{}", "é".repeat(40), "請求".repeat(30), "a-b/c?d=e ".repeat(3).chars().take(28).collect::<String>());
        assert_eq!(longest.chars().count(), 128);
        let request = json!({ "key": key, "credits": 5, "requestId": longest });
        let first = app.verify(request.clone()).await;
        assert_eq!((first["code"].as_str(), first["remainingCredits"].as_i64()), (Some("VALID"), Some(995)));
        assert_eq!(app.verify(request).await, first);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM verify_requests").await, [1]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [1]);
    }

    async fn unprintable_or_long_endpoints_are_refused(app: TestApp) {
        let user = app.signup().await;
        let key = user.default_secret();
        let mut bad: Vec<String> = UNPRINTABLE.iter().map(|s| format!("/v1/{s}")).collect();
        bad.extend(["e".repeat(257), "ü".repeat(257)]);
        for endpoint in &bad {
            let response = verify_raw(&app, json!({ "key": key, "credits": 1, "endpoint": endpoint })).await;
            assert_refused(&response, "endpoint");
        }
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [0]);

        let longest = format!("/v1/suche?q={}", "ü".repeat(256 - 12));
        assert_eq!(app.verify(json!({ "key": key, "credits": 1, "endpoint": longest })).await["code"], "VALID");
        let stored: String = app.rows("SELECT endpoint FROM api_key_usage").await[0].try_get_by_index(0).unwrap();
        assert_eq!(stored, longest);
    }

    async fn malformed_emails_are_refused_on_signup_and_login(app: TestApp) {
        for email in malformed_emails() {
            let signup = app.graphql(SIGNUP, json!({ "email": email, "password": PASSWORD }), None).await;
            assert_refused(&signup, "email");
            let login = app.graphql(LOGIN, json!({ "email": email, "password": PASSWORD }), None).await;
            assert_refused(&login, "email");
        }
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, [0]);
        // Refused before anything is counted: no signup or failed login was recorded.
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM auth_attempts").await, [0]);
    }

    async fn addresses_providers_issue_sign_up_and_log_in(app: TestApp) {
        for (given, stored) in [
            ("  Grace.Hopper@Example.COM ", "grace.hopper@example.com"),
            ("o'brien+keymeter@mail.example.ie", "o'brien+keymeter@mail.example.ie"),
            ("first_last-1@sub.example.co.uk", "first_last-1@sub.example.co.uk"),
            ("José@Bücher.de", "josé@bücher.de"),
            ("用户@例子.广告", "用户@例子.广告"),
        ] {
            let mut user = app.signup_as(given).await;
            assert_eq!(user.email, stored);
            user.email = given.to_owned();
            app.login(&mut user).await;
        }
    }

    async fn key_names_with_unprintable_characters_are_refused(app: TestApp) {
        let user = app.signup().await;
        for name in UNPRINTABLE {
            assert_refused(&create_key_raw(&app, &user, name).await, "name");
        }
        assert_refused(&create_key_raw(&app, &user, &"鍵".repeat(65)).await, "name");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [1]);
        let created = app.create_key(&user, " clé 鍵 🔑 <prod> ", "PROD").await;
        assert_eq!(created["apiKey"]["name"], "clé 鍵 🔑 <prod>");
    }

    async fn a_free_check_with_a_request_id_stores_nothing_and_checks_again(app: TestApp) {
        let user = app.signup().await;
        let check = json!({ "key": user.default_secret(), "credits": 0, "requestId": "check-1" });
        for _ in 0..2 {
            let answer = app.verify(check.clone()).await;
            assert_eq!((answer["code"].as_str(), answer["remainingCredits"].as_i64()), (Some("VALID"), Some(1000)));
        }
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM verify_requests").await, [0]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_key_usage").await, [0]);

        // A check after charges sees the credits as they are now, even with a
        // charge's requestId: only charges are remembered.
        app.verify(json!({ "key": user.default_secret(), "credits": 5, "requestId": "charge-1" })).await;
        app.charge(user.default_secret(), 10).await;
        let after = app.verify(json!({ "key": user.default_secret(), "credits": 0, "requestId": "charge-1" })).await;
        assert_eq!(after["remainingCredits"], 985);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM verify_requests").await, [1]);

        // Revoked between two identical checks: the second sees it.
        app.ok(REVOKE_KEY, json!({ "id": user.default_key_id() }), Some(&user.token)).await;
        let revoked = app.verify(check).await;
        assert_eq!((revoked["valid"].as_bool(), revoked["code"].as_str()), (Some(false), Some("REVOKED")));
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM verify_requests").await, [1]);
    }
}

on_both_backends! {
    async fn active_keys_are_capped_and_the_default_key_counts(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.max_active_keys = 3).await;
        let user = app.signup().await;
        let second = app.create_key(&user, "second", "DEV").await;
        app.create_key(&user, "third", "PROD").await;
        let refused = create_key_raw(&app, &user, "fourth").await;
        assert_error(&refused, "BAD_USER_INPUT");
        assert!(message(&refused).contains("at most 3 active keys"), "{refused:#}");
        assert_eq!(active_keys(&app).await, 3);

        // Revoking frees a place; revoked keys do not count.
        app.ok(REVOKE_KEY, json!({ "id": second["apiKey"]["id"] }), Some(&user.token)).await;
        app.create_key(&user, "fourth", "DEV").await;
        assert_error(&create_key_raw(&app, &user, "fifth").await, "BAD_USER_INPUT");
        assert_eq!(active_keys(&app).await, 3);

        // The cap is per user.
        let other = app.signup().await;
        app.create_key(&other, "theirs", "DEV").await;
    }

    async fn a_cap_of_one_is_the_default_key(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.max_active_keys = 1).await;
        let user = app.signup().await;
        assert!(user.signup["defaultKey"]["secret"].is_string());
        assert_error(&create_key_raw(&app, &user, "more").await, "BAD_USER_INPUT");
    }

    async fn racing_creates_at_the_cap_make_exactly_one_key(backend: Backend) {
        let sqlite = matches!(backend, Backend::Sqlite);
        let app = TestApp::spawn_with(backend, |config| {
            config.max_active_keys = 3;
            if sqlite {
                // Several connections, so SQLite transactions really race
                // for the write lock instead of queueing for one connection.
                config.db_max_connections = Some(4);
            }
        })
        .await;
        let user = app.signup().await;
        let mut spare = app.create_key(&user, "second", "DEV").await;
        // A few rounds, each one below the cap, so that a lost race shows
        // even when one round happens to run its calls one after another.
        for round in 0..3 {
            let responses = join_all((0..20).map(|i| {
                let (app, user) = (&app, &user);
                async move { create_key_raw(app, user, &format!("racer {round}.{i}")).await }
            }))
            .await;
            let made: Vec<&Value> = responses.iter().filter(|r| r.get("errors").is_none()).collect();
            let capped = responses.iter().filter(|r| error_code(r) == Some("BAD_USER_INPUT")).count();
            assert_eq!((made.len(), capped), (1, 19), "round {round}: {responses:#?}");
            assert_eq!(active_keys(&app).await, 3);
            app.ok(REVOKE_KEY, json!({ "id": spare["apiKey"]["id"] }), Some(&user.token)).await;
            spare = made[0]["data"]["createKey"].clone();
        }
    }

    async fn the_default_cap_is_100_and_0_removes_it(backend: Backend) {
        let app = TestApp::spawn(backend.clone()).await;
        let user = app.signup().await;
        for i in 1..100 {
            app.create_key(&user, &format!("key {i}"), "DEV").await;
        }
        let refused = create_key_raw(&app, &user, "key 100").await;
        assert!(message(&refused).contains("at most 100 active keys"), "{refused:#}");
        drop(app);

        let unlimited = TestApp::spawn_with(backend, |config| config.max_active_keys = 0).await;
        let user = unlimited.signup().await;
        for i in 1..=100 {
            unlimited.create_key(&user, &format!("key {i}"), "DEV").await;
        }
        assert_eq!(active_keys(&unlimited).await, 101);
    }

    async fn chained_rotations_with_grace_stop_at_the_cap_plus_twenty(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.max_active_keys = 3).await;
        let user = app.signup().await;
        app.create_key(&user, "second", "DEV").await;
        app.create_key(&user, "third", "DEV").await;
        // At the cap, each rotation with a grace leaves one more key that
        // verifies: twenty of them are allowed, the twenty-first is not.
        let mut current = user.default_key_id().to_owned();
        for round in 0..20 {
            let rotated = rotate_raw(&app, &user, &current, 3600).await;
            assert!(rotated.get("errors").is_none(), "rotation {round}: {rotated:#}");
            current = rotated["data"]["rotateKey"]["apiKey"]["id"].as_str().unwrap().to_owned();
        }
        let refused = rotate_raw(&app, &user, &current, 3600).await;
        assert_error(&refused, "BAD_USER_INPUT");
        assert!(message(&refused).contains("at most 3 active keys per account, and 20 more"), "{refused:#}");
        assert_eq!(active_keys(&app).await, 23, "the refusal changed nothing");
        assert_eq!(verifying_keys(&app, &user).await, 23);
        // Rotating with no grace replaces a key without adding one: still allowed.
        let replaced = rotate_raw(&app, &user, &current, 0).await;
        assert!(replaced.get("errors").is_none(), "{replaced:#}");
        assert_eq!(active_keys(&app).await, 23);
        // Once the grace periods end, the old keys stop counting.
        app.clock.advance(chrono::Duration::seconds(3601));
        assert_eq!(verifying_keys(&app, &user).await, 3);
    }

    async fn racing_rotations_with_grace_never_pass_the_allowance(backend: Backend) {
        let sqlite = matches!(backend, Backend::Sqlite);
        let app = TestApp::spawn_with(backend, |config| {
            config.max_active_keys = 2;
            if sqlite {
                config.db_max_connections = Some(4);
            }
        })
        .await;
        let user = app.signup().await;
        let mut keys = vec![user.default_key_id().to_owned()];
        keys.push(app.create_key(&user, "second", "DEV").await["apiKey"]["id"].as_str().unwrap().to_owned());
        // 2 + 19 keys verify: one rotation with grace is left.
        for _ in 0..19 {
            let rotated = rotate_raw(&app, &user, &keys.remove(0), 3600).await;
            keys.push(rotated["data"]["rotateKey"]["apiKey"]["id"].as_str().unwrap().to_owned());
        }
        let racing = join_all(keys.iter().take(2).map(|id| rotate_raw(&app, &user, id, 3600))).await;
        let made = racing.iter().filter(|r| r.get("errors").is_none()).count();
        assert_eq!(made, 1, "{racing:#?}");
        assert_eq!(active_keys(&app).await, 22);
    }
}

async fn rotate_raw(app: &TestApp, user: &TestUser, id: &str, grace: i64) -> Value {
    app.graphql(
        "mutation($input: RotateKeyInput!) { rotateKey(input: $input) { apiKey { id } } }",
        json!({ "input": { "id": id, "gracePeriodSeconds": grace } }),
        Some(&user.token),
    )
    .await
}

/// The user's keys that verify now (status ACTIVE), as the API lists them.
async fn verifying_keys(app: &TestApp, user: &TestUser) -> usize {
    let data = app
        .ok("{ keys { status } }", json!({}), Some(&user.token))
        .await;
    let keys = data["keys"].as_array().unwrap();
    keys.iter().filter(|key| key["status"] == "ACTIVE").count()
}
