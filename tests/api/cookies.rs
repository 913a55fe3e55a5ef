//! The dashboard's session cookie: set only for keymeter's own pages,
//! HttpOnly and SameSite, honoured only with the right Origin and the CSRF
//! header, never over a bearer token, and cleared by logout.

use serde_json::{json, Value};

use crate::helpers::*;

const ME_EMAIL: &str = "query { me { email } }";

/// How a browser request looks: its Origin, whether the page set the CSRF
/// header, and the cookie it carries.
struct Browser<'a> {
    origin: Option<&'a str>,
    csrf: bool,
    cookie: Option<&'a str>,
}

impl TestApp {
    fn own_origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// POSTs a GraphQL request as `browser`; returns its Set-Cookie and body.
    async fn post_as(
        &self,
        browser: &Browser<'_>,
        query: &str,
        variables: Value,
    ) -> (Option<String>, Value) {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(origin) = browser.origin {
            request = request.header("origin", origin);
        }
        if browser.csrf {
            request = request.header("x-keymeter-csrf", "1");
        }
        if let Some(cookie) = browser.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.expect("POST /graphql");
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .map(|value| value.to_str().unwrap().to_owned());
        (set_cookie, response.json().await.unwrap())
    }

    /// Logs `user` in from the dashboard; returns the `name=value` cookie.
    async fn dashboard_login(&self, user: &TestUser) -> String {
        let origin = self.own_origin();
        let page = Browser {
            origin: Some(&origin),
            csrf: true,
            cookie: None,
        };
        let input = json!({ "email": user.email, "password": PASSWORD });
        let (set_cookie, body) = self.post_as(&page, LOGIN, input).await;
        assert!(body.get("errors").is_none(), "{body:#}");
        let set_cookie = set_cookie.expect("login from the dashboard sets the session cookie");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/graphql", "Max-Age="] {
            assert!(
                set_cookie.contains(attribute),
                "{attribute} missing: {set_cookie}"
            );
        }
        assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
        set_cookie.split(';').next().unwrap().to_owned()
    }
}

on_both_databases! {
    async fn a_members_cookie_session_reaches_no_owner_operation_and_ends_with_the_membership(app: TestApp) {
        let owner = app.signup().await;
        let member = app.signup().await;
        let acme = crate::teams::team(&app, &owner, "Acme").await;
        crate::teams::join(&app, &owner, &acme, &member, "MEMBER").await;
        let cookie = app.dashboard_login(&member).await;
        let origin = app.own_origin();
        let page = Browser { origin: Some(&origin), csrf: true, cookie: Some(&cookie) };
        let rename = "mutation($a: UUID!) { renameAccount(accountId: $a, name: \"mine\") { name } }";
        let (_, renamed) = app.post_as(&page, rename, json!({ "a": acme })).await;
        assert_error(&renamed, "FORBIDDEN");
        let keys = "query($a: UUID) { keys(accountId: $a) { id } }";
        let (_, listed) = app.post_as(&page, keys, json!({ "a": acme })).await;
        assert!(listed.get("errors").is_none(), "{listed}");
        // Removed: the same cookie reaches the team no more, and still signs in.
        app.ok(crate::teams::REMOVE, json!({ "a": acme, "u": member.id }), Some(&owner.token)).await;
        let (_, listed) = app.post_as(&page, keys, json!({ "a": acme })).await;
        assert_error(&listed, "NOT_FOUND");
        let (_, me) = app.post_as(&page, ME_EMAIL, json!({})).await;
        assert_eq!(me["data"]["me"]["email"], member.email.as_str());
    }

    async fn the_cookie_signs_in_only_requests_from_keymeters_own_pages(app: TestApp) {
        let user = app.signup().await;
        let cookie = app.dashboard_login(&user).await;
        let origin = app.own_origin();

        let page = Browser { origin: Some(&origin), csrf: true, cookie: Some(&cookie) };
        let (_, body) = app.post_as(&page, ME_EMAIL, json!({})).await;
        assert_eq!(body["data"]["me"]["email"], user.email.as_str(), "{body:#}");

        // What another site can make a browser send: the cookie, but a
        // foreign Origin, or no header (a form), or neither.
        let attacks = [
            Browser { origin: Some("https://evil.example"), csrf: true, cookie: Some(&cookie) },
            Browser { origin: Some(&origin), csrf: false, cookie: Some(&cookie) },
            Browser { origin: Some("https://evil.example"), csrf: false, cookie: Some(&cookie) },
            Browser { origin: None, csrf: true, cookie: Some(&cookie) },
            Browser { origin: Some("null"), csrf: true, cookie: Some(&cookie) },
        ];
        for attack in &attacks {
            let (_, body) = app.post_as(attack, ME_EMAIL, json!({})).await;
            assert_error(&body, "UNAUTHENTICATED");
            let create = "mutation { createKey(input: { name: \"stolen\" }) { secret } }";
            let (_, body) = app.post_as(attack, create, json!({})).await;
            assert_error(&body, "UNAUTHENTICATED");
        }
        assert_eq!(app.ok(KEYS, json!({}), Some(&user.token)).await["keys"].as_array().unwrap().len(), 1);
    }

    async fn a_cross_site_form_post_with_the_cookie_is_not_authenticated(app: TestApp) {
        let user = app.signup().await;
        let cookie = app.dashboard_login(&user).await;
        // A form can only send form encodings or text/plain, with its own Origin.
        let response = app
            .http
            .post(app.url("/graphql"))
            .header("origin", "https://evil.example")
            .header("cookie", &cookie)
            .header("content-type", "text/plain")
            .body(r#"{"query":"mutation { logout }"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415);
        assert!(app.graphql(ME_EMAIL, json!({}), Some(&user.token)).await.get("errors").is_none());
    }

    async fn api_clients_get_no_cookie_and_a_bearer_token_wins_over_one(app: TestApp) {
        let ada = app.signup().await;
        let bob = app.signup().await;
        let api = Browser { origin: None, csrf: false, cookie: None };
        let input = json!({ "email": ada.email, "password": PASSWORD });
        let (set_cookie, body) = app.post_as(&api, LOGIN, input).await;
        assert!(body.get("errors").is_none(), "{body:#}");
        assert_eq!(set_cookie, None, "an API login sets no cookie");

        let cookie = app.dashboard_login(&ada).await;
        let origin = app.own_origin();
        let response = app
            .http
            .post(app.url("/graphql"))
            .bearer_auth(&bob.token)
            .header("origin", &origin)
            .header("x-keymeter-csrf", "1")
            .header("cookie", &cookie)
            .json(&json!({ "query": ME_EMAIL }))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"]["me"]["email"], bob.email.as_str());
    }

    async fn logout_clears_the_cookie_and_ends_its_session(app: TestApp) {
        let user = app.signup().await;
        let cookie = app.dashboard_login(&user).await;
        let origin = app.own_origin();
        let page = Browser { origin: Some(&origin), csrf: true, cookie: Some(&cookie) };
        let (set_cookie, body) = app.post_as(&page, "mutation { logout }", json!({})).await;
        assert_eq!(body["data"]["logout"], true, "{body:#}");
        let set_cookie = set_cookie.expect("logout clears the cookie");
        assert!(set_cookie.starts_with("keymeter_session=;") && set_cookie.contains("Max-Age=0"));
        let (_, body) = app.post_as(&page, ME_EMAIL, json!({})).await;
        assert_error(&body, "UNAUTHENTICATED");
    }

    async fn signup_from_the_dashboard_sets_the_cookie(app: TestApp) {
        let origin = app.own_origin();
        let page = Browser { origin: Some(&origin), csrf: true, cookie: None };
        let input = json!({ "email": unique_email(), "password": PASSWORD });
        let (set_cookie, body) = app.post_as(&page, SIGNUP, input).await;
        assert!(body.get("errors").is_none(), "{body:#}");
        assert!(set_cookie.unwrap().starts_with("keymeter_session="));
    }
}

/// Logs `user` in with `origin` (and the CSRF header); returns the Set-Cookie.
async fn login_from(app: &TestApp, user: &TestUser, origin: &str) -> Option<String> {
    let input = json!({ "email": user.email, "password": PASSWORD });
    let page = Browser {
        origin: Some(origin),
        csrf: true,
        cookie: None,
    };
    app.post_as(&page, LOGIN, input).await.0
}

on_both_backends! {
    async fn behind_https_the_cookie_is_secure_and_only_the_public_origin_counts(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| {
            config.public_url = Some("https://keys.example.test".into());
        })
        .await;
        let user = app.signup().await;
        let set_cookie = login_from(&app, &user, "https://keys.example.test").await.expect("a cookie");
        assert!(set_cookie.contains("; Secure"), "{set_cookie}");
        // With a public URL, the loopback address is not one of our pages.
        assert_eq!(login_from(&app, &user, &app.own_origin()).await, None);
    }

    async fn behind_https_the_session_cookie_is_host_prefixed_and_only_that_name_counts(backend: Backend) {
        let origin = "https://keys.example.test";
        let app = TestApp::spawn_with(backend, |config| config.public_url = Some(origin.into())).await;
        let user = app.signup().await;
        let set_cookie = login_from(&app, &user, origin).await.expect("a cookie");
        assert!(set_cookie.starts_with("__Host-keymeter_session="), "{set_cookie}");
        for attribute in ["; Path=/;", "; Secure", "; HttpOnly", "; SameSite=Strict"] {
            assert!(set_cookie.contains(attribute), "{attribute} missing: {set_cookie}");
        }
        assert!(!set_cookie.to_ascii_lowercase().contains("domain"), "{set_cookie}");
        let cookie = set_cookie.split(';').next().unwrap();
        let page = Browser { origin: Some(origin), csrf: true, cookie: Some(cookie) };
        let (_, body) = app.post_as(&page, ME_EMAIL, json!({})).await;
        assert_eq!(body["data"]["me"]["email"], user.email.as_str(), "{body:#}");

        // The same token under the plain name, as a sibling subdomain or a
        // plain-http answer could have planted it: not ours.
        let plain = cookie.strip_prefix("__Host-").unwrap();
        let planted = Browser { origin: Some(origin), csrf: true, cookie: Some(plain) };
        let (_, body) = app.post_as(&planted, ME_EMAIL, json!({})).await;
        assert_error(&body, "UNAUTHENTICATED");

        // Logout clears the cookie it set: same name, same path.
        let (cleared, _) = app.post_as(&page, "mutation { logout }", json!({})).await;
        let cleared = cleared.expect("logout clears the cookie");
        assert!(cleared.starts_with("__Host-keymeter_session=;"), "{cleared}");
        assert!(cleared.contains("; Path=/;") && cleared.contains("Max-Age=0"), "{cleared}");
    }

    async fn a_public_url_in_capitals_with_its_default_port_matches_the_browsers_origin(backend: Backend) {
        for public_url in ["http://Keys.Example.TEST:80", "HTTP://KEYS.EXAMPLE.TEST:80/"] {
            let app = TestApp::spawn_with(backend.clone(), |config| {
                config.public_url = Some(public_url.into());
            })
            .await;
            let user = app.signup().await;
            // What a browser sends from that page: lower case, no default port.
            let origin = "http://keys.example.test";
            let set_cookie = login_from(&app, &user, origin).await.expect(public_url);
            let cookie = set_cookie.split(';').next().unwrap();
            let page = Browser { origin: Some(origin), csrf: true, cookie: Some(cookie) };
            let (_, body) = app.post_as(&page, ME_EMAIL, json!({})).await;
            assert_eq!(body["data"]["me"]["email"], user.email.as_str(), "{public_url}: {body:#}");
        }
    }
}
