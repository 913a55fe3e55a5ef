//! Signing in with an OpenID Connect provider, against a real one
//! (oidc-provider-mock): the whole dance over HTTP, on both databases.

use futures_util::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::*;
use crate::oidc::{self, provider};
use crate::signup::{break_provisioning, repair_provisioning};

/// A server with the mock configured as provider `mock`; None when the
/// provider is not installed (outside CI).
async fn spawn(backend: Backend, configure: impl FnOnce(&mut keymeter::Config)) -> Option<TestApp> {
    let issuer = provider()?.issuer.clone();
    let app = TestApp::spawn_with(backend, |config| {
        oidc::configure(config, &issuer, &["mock"]);
        configure(config);
    })
    .await;
    Some(app)
}

/// A subject the provider vouches for, with a verified unique email.
async fn new_subject() -> (String, String) {
    let sub = format!("sub-{}", Uuid::new_v4().simple());
    let email = unique_email();
    provider().unwrap().set_user(&sub, &email, true).await;
    (sub, email)
}

const PROVIDERS: &str = "query { authProviders { id name } }";

on_both_backends! {
    async fn the_first_sign_in_makes_and_provisions_the_user_later_ones_sign_in(backend: Backend) {
        let Some(app) = spawn(backend, |_| {}).await else { return };
        let (sub, email) = new_subject().await;

        let first = app.complete_sign_in("mock", &app.dance("mock", &sub).await).await;
        let first = &first["data"]["completeSignIn"];
        assert_eq!(first["user"]["email"], email.as_str(), "{first:#}");
        assert_eq!(first["user"]["billingAccount"]["plan"], "free");
        let key = &first["defaultKey"];
        assert!(key["secret"].as_str().unwrap().starts_with("sk_dev_"));
        assert_eq!(key["apiKey"]["name"], "Default key");
        let token = first["token"].as_str().unwrap();
        let me = app.ok(ME, json!({}), Some(token)).await;
        assert_eq!(me["me"]["id"], first["user"]["id"]);
        let verified = app.verify(json!({ "key": key["secret"], "credits": 1 })).await;
        assert_eq!(verified["code"], "VALID");

        let later = app.complete_sign_in("mock", &app.dance("mock", &sub).await).await;
        let later = &later["data"]["completeSignIn"];
        assert_eq!(later["user"]["id"], first["user"]["id"]);
        assert!(later["defaultKey"].is_null());
        let keys = app.ok(KEYS, json!({}), later["token"].as_str()).await;
        assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM user_identities").await, [1]);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM sign_in_flows").await, [0]);
    }

    async fn a_first_sign_in_whose_provisioning_fails_still_signs_in(backend: Backend) {
        let Some(app) = spawn(backend, |_| {}).await else { return };
        let (sub, _) = new_subject().await;
        break_provisioning(&app).await;
        let answer = app.complete_sign_in("mock", &app.dance("mock", &sub).await).await;
        let signed_in = &answer["data"]["completeSignIn"];
        assert!(signed_in["defaultKey"].is_null(), "{answer:#}");
        repair_provisioning(&app).await;
        let me = app.ok(ME, json!({}), signed_in["token"].as_str()).await;
        assert_eq!(me["me"]["billingAccount"]["plan"], "free");
    }

    async fn a_sign_in_started_in_one_process_completes_in_another(backend: Backend) {
        // Both processes send browsers back to the one public address.
        let public = Some("http://keys.example.test".to_owned());
        let Some(app) = spawn(backend, |config| config.public_url = public).await else { return };
        let other = app.spawn_second_server().await;
        let (sub, email) = new_subject().await;
        let dance = app.dance("mock", &sub).await;
        let answer = app.complete_sign_in_at(other, "mock", &dance, Some(&dance.cookie)).await;
        assert_eq!(answer["data"]["completeSignIn"]["user"]["email"], email.as_str(), "{answer:#}");
    }

    async fn a_state_is_redeemed_once_in_time_by_its_browser_and_provider(backend: Backend) {
        let Some(app) = spawn_two(backend).await else { return };
        let (sub, _) = new_subject().await;

        let dance = app.dance("mock", &sub).await;
        assert!(app.complete_sign_in("mock", &dance).await.get("errors").is_none());
        assert_error(&app.complete_sign_in("mock", &dance).await, "INVALID_CREDENTIALS");

        let dance = app.dance("mock", &sub).await;
        app.clock.advance(chrono::Duration::minutes(11));
        assert_error(&app.complete_sign_in("mock", &dance).await, "INVALID_CREDENTIALS");

        let dance = app.dance("mock", &sub).await;
        let other_browser = app.dance("mock", &sub).await.cookie;
        let foreign = app.complete_sign_in_at(app.addr, "mock", &dance, Some(&other_browser)).await;
        assert_error(&foreign, "INVALID_CREDENTIALS");
        let dance = app.dance("mock", &sub).await;
        assert_error(&app.complete_sign_in_at(app.addr, "mock", &dance, None).await, "INVALID_CREDENTIALS");

        let dance = app.dance("mock", &sub).await;
        assert_error(&app.complete_sign_in("second", &dance).await, "INVALID_CREDENTIALS");

        let mut dance = app.dance("mock", &sub).await;
        dance.code.push('x');
        assert_error(&app.complete_sign_in("mock", &dance).await, "INVALID_CREDENTIALS");

        let mut dance = app.dance("mock", &sub).await;
        dance.state = format!("mock.{}", Uuid::new_v4());
        assert_error(&app.complete_sign_in("mock", &dance).await, "INVALID_CREDENTIALS");
    }

    async fn an_unverified_email_is_refused(backend: Backend) {
        let Some(app) = spawn(backend, |_| {}).await else { return };
        let sub = format!("sub-{}", Uuid::new_v4().simple());
        provider().unwrap().set_user(&sub, &unique_email(), false).await;
        let answer = app.complete_sign_in("mock", &app.dance("mock", &sub).await).await;
        assert_error(&answer, "BAD_USER_INPUT");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, [0]);
    }

    async fn an_email_with_a_password_account_is_never_linked(backend: Backend) {
        let Some(app) = spawn(backend, |_| {}).await else { return };
        let (sub, email) = new_subject().await;
        app.signup_as(&email).await;
        let answer = app.complete_sign_in("mock", &app.dance("mock", &sub).await).await;
        assert_error(&answer, "EMAIL_TAKEN");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM user_identities").await, [0]);
    }

    async fn a_provider_user_cannot_log_in_with_a_password(backend: Backend) {
        let Some(app) = spawn(backend, |_| {}).await else { return };
        let (sub, email) = new_subject().await;
        app.complete_sign_in("mock", &app.dance("mock", &sub).await).await;
        for password in [PASSWORD, "12345678"] {
            let answer = app.graphql(LOGIN, json!({ "email": email, "password": password }), None).await;
            assert_error(&answer, "INVALID_CREDENTIALS");
        }
    }

    async fn racing_first_sign_ins_of_one_subject_make_one_user(backend: Backend) {
        let Some(app) = spawn(backend, |_| {}).await else { return };
        let (sub, _) = new_subject().await;
        let mut dances = Vec::new();
        for _ in 0..20 {
            dances.push(app.dance("mock", &sub).await);
        }
        let answers = join_all(dances.iter().map(|dance| app.complete_sign_in("mock", dance))).await;
        let ids: std::collections::HashSet<_> = answers
            .iter()
            .map(|answer| answer["data"]["completeSignIn"]["user"]["id"].as_str().unwrap_or_else(|| panic!("{answer:#}")))
            .collect();
        assert_eq!(ids.len(), 1);
        let with_key = answers.iter().filter(|a| !a["data"]["completeSignIn"]["defaultKey"].is_null()).count();
        assert_eq!(with_key, 1);
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, [1]);
    }

    async fn first_sign_ins_count_toward_the_signup_limit(backend: Backend) {
        let Some(app) = spawn(backend, |config| config.signups_per_address = 1).await else { return };
        let (first, _) = new_subject().await;
        let (second, _) = new_subject().await;
        let answer = app.complete_sign_in("mock", &app.dance("mock", &first).await).await;
        assert!(answer.get("errors").is_none(), "{answer:#}");
        let answer = app.complete_sign_in("mock", &app.dance("mock", &second).await).await;
        assert_error(&answer, "RATE_LIMITED");
        // Signing in again makes nothing, so it is not limited.
        let answer = app.complete_sign_in("mock", &app.dance("mock", &first).await).await;
        assert!(answer.get("errors").is_none(), "{answer:#}");
    }

    async fn behind_https_the_sign_in_cookie_is_host_prefixed_and_only_that_name_counts(backend: Backend) {
        let public = Some("https://keys.example.test".to_owned());
        let Some(app) = spawn(backend, |config| config.public_url = public).await else { return };
        let started = app
            .http
            .post(app.url("/graphql"))
            .json(&json!({ "query": oidc::START, "variables": { "provider": "mock" } }))
            .send()
            .await
            .unwrap();
        let set_cookie = started.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(set_cookie.starts_with("__Host-keymeter_sign_in="), "{set_cookie}");
        for attribute in ["; Path=/;", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
            assert!(set_cookie.contains(attribute), "{attribute} missing: {set_cookie}");
        }
        assert!(!set_cookie.to_ascii_lowercase().contains("domain"), "{set_cookie}");

        let (sub, email) = new_subject().await;
        // The browser's value under the plain name is not the binding.
        let dance = app.dance("mock", &sub).await;
        let plain = dance.cookie.strip_prefix("__Host-").expect("a __Host- cookie");
        let answer = app.complete_sign_in_at(app.addr, "mock", &dance, Some(plain)).await;
        assert_error(&answer, "INVALID_CREDENTIALS");
        let answer = app.complete_sign_in("mock", &app.dance("mock", &sub).await).await;
        assert_eq!(answer["data"]["completeSignIn"]["user"]["email"], email.as_str(), "{answer:#}");
    }

    async fn auth_providers_lists_the_configured_ones(backend: Backend) {
        let none = TestApp::spawn(backend.clone()).await;
        assert_eq!(none.ok(PROVIDERS, json!({}), None).await["authProviders"], json!([]));
        let answer = none.graphql(oidc::START, json!({ "provider": "google" }), None).await;
        assert_error(&answer, "BAD_USER_INPUT");
        drop(none);

        let Some(one) = spawn(backend.clone(), |_| {}).await else { return };
        assert_eq!(
            one.ok(PROVIDERS, json!({}), None).await["authProviders"],
            json!([{ "id": "mock", "name": "mock name" }])
        );
        let answer = one.graphql(oidc::START, json!({ "provider": "other" }), None).await;
        assert_error(&answer, "BAD_USER_INPUT");
        drop(one);

        let two = spawn_two(backend).await.unwrap();
        assert_eq!(
            two.ok(PROVIDERS, json!({}), None).await["authProviders"],
            json!([{ "id": "mock", "name": "mock name" }, { "id": "second", "name": "second name" }])
        );
    }
}

async fn spawn_two(backend: Backend) -> Option<TestApp> {
    let issuer = provider()?.issuer.clone();
    Some(
        TestApp::spawn_with(backend, |config| {
            oidc::configure(config, &issuer, &["mock", "second"])
        })
        .await,
    )
}

#[tokio::test]
async fn the_authorization_url_asks_for_pkce_state_nonce_and_the_callback() {
    let Some(app) = spawn(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let (url, cookie) = app.start_sign_in(app.addr, "mock").await;
    let url = reqwest::Url::parse(&url).unwrap();
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("scope").as_deref(), Some("openid email profile"));
    assert_eq!(param("redirect_uri"), Some(app.url("/auth/callback")));
    assert!(param("state").unwrap().starts_with("mock."));
    assert!(param("nonce").is_some());
    assert!(cookie.starts_with("keymeter_sign_in="));
    let page = app
        .http
        .get(app.url("/auth/callback?error=access_denied"))
        .send()
        .await
        .unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    // The callback is the dashboard itself, which completes the sign-in.
    assert!(page.text().await.unwrap().contains("/assets/app.js"));
    for (script, expected) in [
        ("app.js", "./auth.js"),
        ("auth.js", "path: \"/auth/callback\""),
        ("auth.js", "COMPLETE_SIGN_IN"),
    ] {
        let script = app
            .http
            .get(app.url(&format!("/assets/{script}")))
            .send()
            .await
            .unwrap();
        assert!(script.text().await.unwrap().contains(expected));
    }
}

on_both_backends! {
    async fn a_provider_that_cannot_be_discovered_stops_the_start(backend: Backend) {
        let database = TestDatabase::create(&backend).await;
        let mut config = keymeter::Config::from_defaults();
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.database_url = database.url.clone();
        oidc::configure(&mut config, "http://127.0.0.1:1", &["unreachable"]);
        let refused = keymeter::Application::build(&config).await.err().expect("a refusal");
        let message = format!("{refused:#}");
        assert!(message.contains("\"unreachable\"") && message.contains("discovery"), "{message}");
        assert!(!message.contains("keymeter-test-secret"), "{message}");
    }

    async fn expired_flows_are_swept(backend: Backend) {
        let Some(app) = spawn(backend, |_| {}).await else { return };
        app.start_sign_in(app.addr, "mock").await;
        let flows = "SELECT COUNT(*) FROM sign_in_flows";
        let later = app.clock.now() + chrono::Duration::minutes(11);
        let db: keymeter::store::db::Db = sea_orm::Database::connect(app.config.database_url.as_str()).await.unwrap().into();
        keymeter::service::sign_in::forget_expired_flows(&db, app.clock.now()).await.unwrap();
        assert_eq!(app.query_i64(flows).await, [1], "a fresh flow stays");
        keymeter::service::sign_in::forget_expired_flows(&db, later).await.unwrap();
        assert_eq!(app.query_i64(flows).await, [0]);
    }

    async fn a_completion_from_another_browser_leaves_the_flow_for_its_own(backend: Backend) {
        let Some(app) = spawn(backend, |_| {}).await else { return };
        let (sub, _) = new_subject().await;
        let dance = app.dance("mock", &sub).await;
        // Someone who learnt the state tries it from their own browser, or none.
        let thief = app.dance("mock", &sub).await.cookie;
        let stolen = app.complete_sign_in_at(app.addr, "mock", &dance, Some(&thief)).await;
        assert_error(&stolen, "INVALID_CREDENTIALS");
        let bare = app.complete_sign_in_at(app.addr, "mock", &dance, None).await;
        assert_error(&bare, "INVALID_CREDENTIALS");
        // The browser that started it still completes it.
        let own = app.complete_sign_in("mock", &dance).await;
        assert!(own.get("errors").is_none(), "{own:#}");
    }

    async fn sign_in_starts_are_limited_per_client_address_across_processes(backend: Backend) {
        let Some(app) = spawn(backend, |config| config.sign_ins_per_address = 3).await else { return };
        let other = app.spawn_second_server().await;
        app.start_sign_in(app.addr, "mock").await;
        app.start_sign_in(app.addr, "mock").await;
        app.start_sign_in(other, "mock").await;
        for addr in [app.addr, other] {
            let refused = start_raw(&app, addr, "mock").await;
            assert_error(&refused, "RATE_LIMITED");
            assert!(refused["errors"][0]["extensions"]["retryAfterSeconds"].as_u64().unwrap() >= 1);
        }
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM sign_in_flows").await, [3]);
        // Unknown providers are counted too: the count comes before any work.
        app.clock.advance(chrono::Duration::minutes(11));
        for _ in 0..3 {
            assert_error(&start_raw(&app, app.addr, "nobody").await, "BAD_USER_INPUT");
        }
        assert_error(&start_raw(&app, app.addr, "mock").await, "RATE_LIMITED");
    }

    async fn the_flows_stored_at_once_are_capped(backend: Backend) {
        let Some(app) = spawn(backend, |config| {
            config.max_sign_in_flows = 2;
            config.sign_ins_per_address = 0;
        })
        .await else { return };
        let racing = join_all((0..6).map(|_| start_raw(&app, app.addr, "mock"))).await;
        let stored = racing.iter().filter(|answer| answer.get("errors").is_none()).count();
        let limited = racing.iter().filter(|answer| error_code(answer) == Some("RATE_LIMITED")).count();
        assert_eq!((stored, limited), (2, 4), "{racing:#?}");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM sign_in_flows").await, [2]);
        // Expired flows free their places, swept or not.
        app.clock.advance(chrono::Duration::minutes(11));
        app.start_sign_in(app.addr, "mock").await;
    }

    async fn one_request_starts_at_most_one_sign_in_and_never_echoes_the_provider(backend: Backend) {
        let Some(app) = spawn(backend, |_| {}).await else { return };
        let two = r#"mutation { a: startSignIn(provider: "mock") { authorizationUrl } b: startSignIn(provider: "mock") { authorizationUrl } }"#;
        let answer = start_query(&app, two, json!({})).await;
        assert_error(&answer, "BAD_USER_INPUT");
        assert!(answer["data"].is_null(), "{answer:#}");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM sign_in_flows").await, [0]);
        // An unknown provider id of any length is refused without being echoed.
        for provider in ["x".repeat(100_000), format!("nobody-{}", "y".repeat(40))] {
            let answer = start_raw(&app, app.addr, &provider).await;
            assert_error(&answer, "BAD_USER_INPUT");
            let text = answer.to_string();
            assert!(text.len() < 1_000 && !text.contains("yyyy") && !text.contains("xxxx"), "{text}");
        }
    }
}

async fn start_query(
    app: &TestApp,
    query: &str,
    variables: serde_json::Value,
) -> serde_json::Value {
    app.graphql(query, variables, None).await
}

/// startSignIn at `addr`, its answer as it is.
async fn start_raw(app: &TestApp, addr: std::net::SocketAddr, provider: &str) -> serde_json::Value {
    let query =
        "mutation($provider: String!) { startSignIn(provider: $provider) { authorizationUrl } }";
    send_graphql(
        app.http
            .post(format!("http://{addr}/graphql"))
            .json(&json!({ "query": query, "variables": { "provider": provider } })),
    )
    .await
}
