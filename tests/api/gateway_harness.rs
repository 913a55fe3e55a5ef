//! The gateway harness (tests/api/support/gateways.rs) proved on real nginx and Caddy
//! with the README's files, in front of a stub keymeter that answers
//! /gateway/verify by the contract: a good key reaches the API with keymeter's
//! headers and none of the client's forgeries, a bad or exhausted key is turned
//! away before it. No database; the harness is for the real endpoint's tests
//! too.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use reqwest::header::HeaderMap;
use serde_json::json;
use uuid::Uuid;

use crate::gateways::{Gateway, InProcess, Seen, Upstream};

/// What a client sends beside its key to pass itself off as another key, pick
/// keymeter's idempotency key and price, and name another endpoint.
const FORGED: [(&str, &str); 5] = [
    ("X-Keymeter-Key-Id", "forged-key"),
    ("X-Keymeter-Account-Id", "forged-account"),
    ("X-Request-Id", "client-chosen"),
    ("X-Keymeter-Cost", "0"),
    ("X-Forwarded-Uri", "/forged"),
];

/// A body larger than either gateway's buffers, so that nginx's worker writes
/// it to its temp directory on the way.
const BODY_BYTES: usize = 100_000;

#[tokio::test]
async fn nginx_lets_a_good_key_through_and_turns_the_others_away() {
    let (keymeter, upstream) = (StubKeymeter::start().await, Upstream::start().await);
    let Some(nginx) = Gateway::nginx(keymeter.addr(), upstream.addr) else {
        return;
    };

    let asked = a_good_key_reaches_the_api(&nginx, &keymeter, &upstream).await;
    // deny=403 on keymeter's URL; the original URI, query and all, only in
    // X-Original-URI; the client's X-Forwarded-Uri is not passed on.
    assert_eq!(
        (asked.path.as_str(), asked.query.as_deref()),
        ("/gateway/verify", Some("deny=403"))
    );
    assert_eq!(asked.header("x-original-uri"), Some("/v1/things?page=2"));
    assert_eq!(asked.header("x-forwarded-uri"), None);
    // nginx's $request_id: 32 hexadecimal digits.
    let request_id = asked.header("x-request-id").unwrap();
    assert!(request_id.len() == 32 && request_id.bytes().all(|b| b.is_ascii_hexdigit()));

    let asked =
        a_key_in_x_api_key_sends_its_body_to_the_api_only(&nginx, &keymeter, &upstream).await;
    assert_eq!(asked.header("x-original-uri"), Some("/v1/upload"));

    // Refusals are nginx's own 403 (deny=403), which carry keymeter's code
    // and Retry-After through the configuration's add_header.
    let unknown = refused(&nginx, &upstream, "Bearer nope").await;
    assert_eq!(unknown.status, 403);
    assert_eq!(unknown.header("x-keymeter-code"), Some("NOT_FOUND"));
    assert_eq!(unknown.header("retry-after"), None);
    let exhausted = refused(&nginx, &upstream, "Bearer exhausted").await;
    assert_eq!(exhausted.status, 403);
    assert_eq!(exhausted.header("x-keymeter-code"), Some("USAGE_EXCEEDED"));
    assert_eq!(exhausted.header("retry-after"), Some("42"));

    an_api_failure_reaches_the_client(&nginx, &upstream).await;
    stopping_leaves_nothing_behind(nginx);
}

#[tokio::test]
async fn caddy_lets_a_good_key_through_and_passes_refusals_on() {
    let (keymeter, upstream) = (StubKeymeter::start().await, Upstream::start().await);
    let Some(caddy) = Gateway::caddy(keymeter.addr(), upstream.addr) else {
        return;
    };

    let asked = a_good_key_reaches_the_api(&caddy, &keymeter, &upstream).await;
    // keymeter's URL without the client's query; the original URI, query and
    // all, in X-Forwarded-Uri in place of the client's copy.
    assert_eq!(
        (asked.path.as_str(), asked.query.as_deref()),
        ("/gateway/verify", None)
    );
    assert_eq!(asked.header("x-forwarded-uri"), Some("/v1/things?page=2"));
    assert_eq!(asked.header("x-forwarded-method"), Some("GET"));
    let request_id = asked.header("x-request-id").unwrap();
    assert!(Uuid::parse_str(request_id).is_ok(), "{request_id}");

    let asked =
        a_key_in_x_api_key_sends_its_body_to_the_api_only(&caddy, &keymeter, &upstream).await;
    assert_eq!(asked.header("x-forwarded-uri"), Some("/v1/upload"));
    assert_eq!(asked.header("x-forwarded-method"), Some("POST"));

    // Refusals are keymeter's own answers: status, headers and body.
    let unknown = refused(&caddy, &upstream, "Bearer nope").await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.header("www-authenticate"), Some("Bearer"));
    assert_eq!(unknown.header("x-keymeter-code"), Some("NOT_FOUND"));
    let exhausted = refused(&caddy, &upstream, "Bearer exhausted").await;
    assert_eq!(exhausted.status, 429);
    assert_eq!(exhausted.header("retry-after"), Some("42"));
    assert_eq!(exhausted.body, r#"{"code":"USAGE_EXCEEDED","valid":false}"#);

    an_api_failure_reaches_the_client(&caddy, &upstream).await;
    stopping_leaves_nothing_behind(caddy);
}

/// The README shows the files these tests run, each whole in a fenced block,
/// so that what a reader copies is what was tested.
#[test]
fn the_readme_shows_the_gateway_files_as_they_are() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).expect("reading README.md");
    for (file, language) in [("nginx.conf", "nginx"), ("Caddyfile", "caddyfile")] {
        let text =
            fs::read_to_string(root.join("deploy").join(file)).expect("reading a deploy/ file");
        let block = format!("```{language}\n{text}```\n");
        assert!(
            readme.contains(&block),
            "README.md does not show deploy/{file} as it is"
        );
    }
}

/// A good key presented with forgeries beside it reaches the API with
/// keymeter's headers in their place, priced and identified by the gateway;
/// the API gets the request id keymeter was given. Returns keymeter's check.
async fn a_good_key_reaches_the_api(
    gateway: &Gateway,
    keymeter: &StubKeymeter,
    upstream: &Upstream,
) -> Seen {
    let mut request = reqwest::Client::new()
        .get(gateway.url("/v1/things?page=2"))
        .bearer_auth("good");
    for (name, value) in FORGED {
        request = request.header(name, value);
    }
    let answer = Answer::of(request).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "upstream saw /v1/things"),
        "{}",
        gateway.log()
    );
    // nginx adds no Retry-After when keymeter gave none.
    assert_eq!(answer.header("retry-after"), None);

    let asked = keymeter.last();
    assert_eq!(asked.header("authorization"), Some("Bearer good"));
    assert_eq!(asked.header("x-keymeter-cost"), Some("1"));
    let request_id = asked
        .header("x-request-id")
        .expect("a request id for keymeter");
    assert_ne!(request_id, "client-chosen");

    let served = upstream.requests().pop().expect("the API was called");
    assert_eq!(served.method, "GET");
    assert_eq!(
        (served.path.as_str(), served.query.as_deref()),
        ("/v1/things", Some("page=2"))
    );
    assert_eq!(served.header("x-keymeter-key-id"), Some("stub-key"));
    assert_eq!(served.header("x-keymeter-account-id"), Some("stub-account"));
    assert_eq!(served.header("x-request-id"), Some(request_id));
    asked
}

/// The key as X-API-Key on a POST: keymeter gets the key without the body (a
/// GET), the API gets the body whole. Returns keymeter's check.
async fn a_key_in_x_api_key_sends_its_body_to_the_api_only(
    gateway: &Gateway,
    keymeter: &StubKeymeter,
    upstream: &Upstream,
) -> Seen {
    let request = reqwest::Client::new()
        .post(gateway.url("/v1/upload"))
        .header("X-API-Key", "good")
        .body(vec![b'x'; BODY_BYTES]);
    let answer = Answer::of(request).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "upstream saw /v1/upload"),
        "{}",
        gateway.log()
    );

    let asked = keymeter.last();
    assert_eq!(asked.header("x-api-key"), Some("good"));
    assert_eq!((asked.method.as_str(), asked.body.len()), ("GET", 0));
    let served = upstream.requests().pop().expect("the API was called");
    assert_eq!(
        (served.method.as_str(), served.body.len()),
        ("POST", BODY_BYTES)
    );
    asked
}

/// A refused key gets the gateway's answer and never reaches the API.
async fn refused(gateway: &Gateway, upstream: &Upstream, authorization: &str) -> Answer {
    let before = upstream.requests().len();
    let request = reqwest::Client::new()
        .get(gateway.url("/v1/things"))
        .header("Authorization", authorization);
    let answer = Answer::of(request).await;
    assert_eq!(
        upstream.requests().len(),
        before,
        "a refused call reached the API"
    );
    answer
}

/// An API that fails a call: its 502 reaches the client as it is.
async fn an_api_failure_reaches_the_client(gateway: &Gateway, upstream: &Upstream) {
    upstream.fail("/v1/broken");
    let request = reqwest::Client::new()
        .get(gateway.url("/v1/broken"))
        .bearer_auth("good");
    let answer = Answer::of(request).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (502, "upstream failed /v1/broken")
    );
}

/// Dropping a gateway stops every process it started (nginx's worker too)
/// and removes its directory.
fn stopping_leaves_nothing_behind(gateway: Gateway) {
    let (addr, dir) = (gateway.addr, gateway.dir.clone());
    drop(gateway);
    assert!(
        TcpStream::connect(addr).is_err(),
        "something still listens on {addr}"
    );
    assert!(!dir.exists(), "{dir:?} was left behind");
}

/// What a client got from a gateway.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    async fn of(request: reqwest::RequestBuilder) -> Self {
        let response = request.send().await.expect("an answer from the gateway");
        Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.expect("the answer's body"),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// A stand-in for keymeter's /gateway/verify that records every check.
struct StubKeymeter {
    server: InProcess,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StubKeymeter {
    async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/gateway/verify", any(verify))
            .route("/gateway/verify/{*path}", any(verify))
            .with_state(seen.clone());
        Self {
            server: InProcess::serve(app).await,
            seen,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The last check it was asked.
    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("keymeter was asked")
    }
}

/// The contract's answers for three secrets: `good` is VALID, `exhausted`
/// USAGE_EXCEEDED (429, Retry-After), anything else NOT_FOUND (401,
/// WWW-Authenticate). With deny=403 every refusal answers 403, headers unchanged.
async fn verify(State(seen): State<Arc<Mutex<Vec<Seen>>>>, request: Request) -> Response {
    let request = Seen::read(request).await;
    let secret = presented_secret(&request);
    let deny_403 =
        (request.query.as_deref().unwrap_or_default().split('&')).any(|pair| pair == "deny=403");
    seen.lock().unwrap().push(request);
    let known = [
        ("X-Keymeter-Key-Id", "stub-key"),
        ("X-Keymeter-Account-Id", "stub-account"),
    ];
    let (status, code, headers) = match secret.as_deref() {
        Some("good") => (StatusCode::OK, "VALID", known.to_vec()),
        Some("exhausted") => (
            StatusCode::TOO_MANY_REQUESTS,
            "USAGE_EXCEEDED",
            [&known[..], &[("Retry-After", "42")]].concat(),
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            "NOT_FOUND",
            vec![("WWW-Authenticate", "Bearer")],
        ),
    };
    let status = if deny_403 && status != StatusCode::OK {
        StatusCode::FORBIDDEN
    } else {
        status
    };
    let body = json!({ "valid": status == StatusCode::OK, "code": code });
    let mut answer = Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("X-Keymeter-Code", code);
    for (name, value) in headers {
        answer = answer.header(name, value);
    }
    answer.body(Body::from(body.to_string())).unwrap()
}

/// `Authorization: Bearer <secret>` (the scheme in any case), else `X-API-Key`.
fn presented_secret(request: &Seen) -> Option<String> {
    let bearer = request.header("authorization").and_then(|value| {
        let (scheme, secret) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| secret.to_owned())
    });
    bearer.or_else(|| request.header("x-api-key").map(str::to_owned))
}
