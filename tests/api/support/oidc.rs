//! A real OpenID Connect provider for the sign-in tests: oidc-provider-mock
//! (PyPI, installed by scripts/oidc-provider.sh), started once per test
//! binary on a free port, and the browser's part of the dance over HTTP.

use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use keymeter::config::ProviderSettings;
use keymeter::Config;
use serde_json::{json, Value};

use crate::helpers::TestApp;

pub struct MockProvider {
    pub issuer: String,
    /// Held open for the life of the test binary; when it closes (the
    /// binary exits, however), the wrapper shell stops the provider.
    _stdin: Mutex<ChildStdin>,
}

/// The provider, started on first use; None (test skipped) when
/// oidc-provider-mock is not installed, except with CI=true: then a failure.
pub fn provider() -> Option<&'static MockProvider> {
    static PROVIDER: OnceLock<Option<MockProvider>> = OnceLock::new();
    let provider = PROVIDER.get_or_init(start).as_ref();
    if provider.is_none() {
        // Said by every test it skips, not only the first.
        crate::helpers::skip("oidc-provider-mock is not installed (scripts/oidc-provider.sh)");
    }
    provider
}

fn start() -> Option<MockProvider> {
    let installed = Command::new("python3")
        .args(["-c", "import oidc_provider_mock"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let script = format!(
        "python3 -m oidc_provider_mock --port {port} >/dev/null 2>&1 & pid=$!; read _; kill $pid"
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .expect("starting oidc-provider-mock");
    let stdin = child.stdin.take().expect("a piped stdin");
    // Reaped when it exits, after the test binary closes its stdin.
    std::thread::spawn(move || child.wait());
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "oidc-provider-mock did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(MockProvider {
        issuer: format!("http://127.0.0.1:{port}"),
        _stdin: Mutex::new(stdin),
    })
}

/// Configures `ids` as providers, all backed by the mock provider.
pub fn configure(config: &mut Config, issuer: &str, ids: &[&str]) {
    config.oidc_providers = ids.iter().map(|id| id.to_string()).collect();
    for id in ids {
        config.oidc.insert(
            id.to_string(),
            ProviderSettings {
                client_id: "keymeter-test".into(),
                client_secret: "keymeter-test-secret".into(),
                issuer: issuer.to_owned(),
                name: format!("{id} name"),
            },
        );
    }
}

pub const START: &str = r#"
mutation Start($provider: String!) { startSignIn(provider: $provider) { authorizationUrl } }"#;

pub const COMPLETE: &str = r#"
mutation Complete($input: CompleteSignInInput!) {
  completeSignIn(input: $input) {
    token
    user { id email billingAccount { plan } }
    defaultKey { secret apiKey { id name keyType } }
  }
}"#;

/// A sign-in started by one browser: its cookie and the provider's answer.
pub struct Dance {
    pub cookie: String,
    pub code: String,
    pub state: String,
}

impl MockProvider {
    /// Sets the claims the provider gives `sub`.
    pub async fn set_user(&self, sub: &str, email: &str, verified: bool) {
        let response = reqwest::Client::new()
            .put(format!("{}/users/{sub}", self.issuer))
            .json(&json!({ "email": email, "email_verified": verified }))
            .send()
            .await
            .expect("PUT /users/<sub>");
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The browser at the authorization URL: the user `sub` approves, and
    /// the provider redirects to the callback with a code and the state.
    pub async fn approve(&self, authorization_url: &str, sub: &str) -> (String, String) {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = browser
            .post(authorization_url)
            .form(&[("sub", sub)])
            .send()
            .await
            .expect("POST to the authorization endpoint");
        let location = response
            .headers()
            .get("location")
            .unwrap_or_else(|| panic!("a redirect, got {}", response.status()))
            .to_str()
            .unwrap()
            .to_owned();
        let url = reqwest::Url::parse(&location).expect("an absolute redirect");
        let param = |name: &str| {
            url.query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
                .unwrap_or_else(|| panic!("{name} in {location}"))
        };
        (param("code"), param("state"))
    }
}

impl TestApp {
    /// startSignIn at `addr`: the authorization URL and the cookie it set.
    pub async fn start_sign_in(
        &self,
        addr: std::net::SocketAddr,
        provider: &str,
    ) -> (String, String) {
        let response = self
            .http
            .post(format!("http://{addr}/graphql"))
            .json(&json!({ "query": START, "variables": { "provider": provider } }))
            .send()
            .await
            .expect("POST /graphql");
        let cookie = response
            .headers()
            .get("set-cookie")
            .map(|value| value.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap();
        assert!(body.get("errors").is_none(), "startSignIn failed: {body:#}");
        let cookie = cookie.expect("startSignIn sets a cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().unwrap().to_owned();
        let url = body["data"]["startSignIn"]["authorizationUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        (url, pair)
    }

    /// A sign-in of `sub` with `provider`, started at this server, approved
    /// by the provider, not yet completed.
    pub async fn dance(&self, provider: &str, sub: &str) -> Dance {
        let (url, cookie) = self.start_sign_in(self.addr, provider).await;
        let (code, state) = self::provider().unwrap().approve(&url, sub).await;
        Dance {
            cookie,
            code,
            state,
        }
    }

    /// completeSignIn at `addr`, sent with `cookie` (the browser's), if any.
    pub async fn complete_sign_in_at(
        &self,
        addr: std::net::SocketAddr,
        provider: &str,
        dance: &Dance,
        cookie: Option<&str>,
    ) -> Value {
        let input = json!({ "provider": provider, "code": dance.code, "state": dance.state });
        let mut request = self
            .http
            .post(format!("http://{addr}/graphql"))
            .json(&json!({ "query": COMPLETE, "variables": { "input": input } }));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .unwrap()
    }

    pub async fn complete_sign_in(&self, provider: &str, dance: &Dance) -> Value {
        self.complete_sign_in_at(self.addr, provider, dance, Some(&dance.cookie))
            .await
    }
}
