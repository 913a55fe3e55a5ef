//! Every refusal of the HTTP layer is one JSON error in the contract's
//! shape, with `Content-Type: application/json`, the right status, no
//! Debug text and no echo of the input; every answer carries the security
//! headers.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// A refusal: the status, JSON content type, one BAD_USER_INPUT error, and
/// nothing of what was sent or of Rust's internals in the body. Returns
/// its message.
async fn assert_refusal(response: reqwest::Response, status: u16, marker: &str) -> String {
    assert_eq!(response.status(), status);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        response.headers()
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body = response.text().await.unwrap();
    for leak in [
        marker,
        "Error(",
        "Custom {",
        "BatchRequest",
        "InvalidRequest",
    ] {
        assert!(!body.contains(leak), "{leak:?} in {body}");
    }
    let body: Value = serde_json::from_str(&body).unwrap();
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body:#}");
    assert_eq!(errors[0]["extensions"]["code"], "BAD_USER_INPUT");
    errors[0]["message"].as_str().unwrap().to_owned()
}

fn post_with(
    app: &TestApp,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    app.http
        .post(app.url("/graphql"))
        .header("content-type", content_type)
        .body(body)
}

/// Sends raw bytes and returns whatever the server answers until it
/// closes the connection (or `wait` passes).
async fn raw(app: &TestApp, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

const MARKER: &str = "<svg/onload=alert(1)>";

on_both_databases! {
    async fn malformed_bodies_are_refused_as_json(app: TestApp) {
        let bodies = [
            json!({ "query": "{ __typename }", "variables": 5 }).to_string(),
            json!({ "query": 5 }).to_string(),
            json!({ "query": "{ __typename }", "operationName": [MARKER] }).to_string(),
            json!([{ "query": "{ __typename }" }, { "query": MARKER }]).to_string(),
            format!("{{\"query\": \"{MARKER}"),
            "null".to_owned(),
            "\"just a string\"".to_owned(),
        ];
        for body in bodies {
            assert_refusal(post_with(&app, "application/json", body).send().await.unwrap(), 400, MARKER).await;
        }
    }

    async fn only_json_is_executed(app: TestApp) {
        let signup = format!("mutation {{ signup(input: {{ email: \"{}\", password: \"{PASSWORD}\" }}) {{ token }} }}", unique_email());
        let as_text = json!({ "query": signup }).to_string();
        for content_type in ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "application/graphql", "multipart/form-data; boundary=x"] {
            let response = post_with(&app, content_type, as_text.clone()).send().await.unwrap();
            assert_refusal(response, 415, MARKER).await;
        }
        let form = format!("query={}", MARKER);
        assert_refusal(post_with(&app, "application/x-www-form-urlencoded", form).send().await.unwrap(), 415, MARKER).await;
        let multipart = format!("--x\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{as_text}\r\n--x\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"{MARKER}\": [\"variables.file\"]}}\r\n--x--\r\n");
        assert_refusal(post_with(&app, "multipart/form-data; boundary=x", multipart).send().await.unwrap(), 415, MARKER).await;
        let no_type = app.http.post(app.url("/graphql")).body(as_text.clone()).send().await.unwrap();
        assert_refusal(no_type, 415, MARKER).await;
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM users").await, [0], "no mutation ran");
        // application/json with a charset parameter is JSON.
        let response = post_with(&app, "application/json; charset=utf-8", as_text).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn bodies_over_the_limit_are_413_however_they_are_sent(app: TestApp) {
        let query = json!({ "query": "{ __typename }" }).to_string();
        // Chunked, with no length announced: refused once it passes the limit.
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
        let mut request = b"POST /graphql HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            request.extend_from_slice(chunk.as_bytes());
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let answer = raw(&app, &request, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("content-type: application/json"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
        assert!(answer.contains("BAD_USER_INPUT") && !answer.contains("length limit"), "{answer}");
        // Announced too large: refused before it is read.
        let announced = format!("POST /graphql HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{query}");
        let answer = raw(&app, announced.as_bytes(), Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("BAD_USER_INPUT"), "{answer}");
    }

    async fn headers_are_bounded(app: TestApp) {
        let body = json!({ "query": "{ __typename }" }).to_string();
        let big = "a".repeat(20 * 1024);
        let response = post_with(&app, "application/json", body.clone()).header("x-padding", big).send().await.unwrap();
        assert_refusal(response, 431, MARKER).await;
        let many = (0..150).fold(post_with(&app, "application/json", body.clone()), |request, i| {
            request.header(format!("x-h{i}"), "v".repeat(120))
        });
        assert_refusal(many.send().await.unwrap(), 431, MARKER).await;
        // Past hyper's own buffer, hyper answers 431 itself and closes.
        let huge = format!("POST /graphql HTTP/1.1\r\nHost: k\r\nX-Padding: {}\r\n\r\n", "a".repeat(420 * 1024));
        let answer = raw(&app, huge.as_bytes(), Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{}", &answer[..answer.len().min(200)]);
        // Ordinary headers pass.
        let fine = post_with(&app, "application/json", body).header("x-padding", "a".repeat(4096)).send().await.unwrap();
        assert_eq!(fine.status(), 200);
    }

    async fn two_authorization_headers_are_refused(app: TestApp) {
        let first = app.signup().await;
        let second = app.signup().await;
        let mut headers = reqwest::header::HeaderMap::new();
        for user in [&first, &second] {
            headers.append("authorization", format!("Bearer {}", user.token).parse().unwrap());
        }
        let response = post_with(&app, "application/json", json!({ "query": ME }).to_string())
            .headers(headers)
            .send()
            .await
            .unwrap();
        assert_refusal(response, 400, &first.token).await;
    }

    async fn unknown_paths_and_methods_are_json(app: TestApp) {
        assert_refusal(app.http.get(app.url("/nope")).send().await.unwrap(), 404, MARKER).await;
        assert_refusal(app.http.get(app.url(&format!("/{MARKER}"))).send().await.unwrap(), 404, MARKER).await;
        assert_refusal(app.http.put(app.url("/graphql")).send().await.unwrap(), 405, MARKER).await;
        assert_refusal(app.http.delete(app.url("/graphql")).send().await.unwrap(), 405, MARKER).await;
    }

    async fn refusals_outside_graphql_are_json_too(app: TestApp) {
        use reqwest::Method;
        let wrong_methods = [
            (Method::POST, "/"),
            (Method::DELETE, "/"),
            (Method::POST, "/health"),
            (Method::DELETE, "/health"),
            (Method::POST, "/metrics"),
            (Method::PUT, "/assets/app.js"),
            (Method::DELETE, "/assets/vendor/graphiql-3.8.3.min.js"),
            (Method::POST, "/auth/callback"),
            (Method::PATCH, "/auth/callback"),
        ];
        for (method, path) in wrong_methods {
            let response = app.http.request(method.clone(), app.url(path)).send().await.unwrap();
            assert_eq!(response.headers()["allow"], "GET,HEAD", "{method} {path}");
            let said = assert_refusal(response, 405, MARKER).await;
            assert_eq!(said, "method not allowed: GET only", "{method} {path}");
        }
        for path in ["/assets/no-such-file.js", "/assets/vendor/%3Csvg%3E.js", "/assets/%FF%FE"] {
            let response = app.http.get(app.url(path)).send().await.unwrap();
            assert_eq!(assert_refusal(response, 404, "svg").await, "no such asset", "{path}");
        }
        // What was read before is read as before, HEAD included.
        for path in ["/", "/health", "/metrics", "/assets/app.js", "/auth/callback", "/graphql"] {
            for method in [Method::GET, Method::HEAD] {
                let response = app.http.request(method.clone(), app.url(path)).send().await.unwrap();
                assert_eq!(response.status(), 200, "{method} {path}");
            }
        }
    }

    async fn every_answer_carries_security_headers(app: TestApp) {
        let api = app.http.post(app.url("/graphql")).json(&json!({ "query": "{ __typename }" })).send().await.unwrap();
        assert_eq!(api.headers()["x-content-type-options"], "nosniff");
        let health = app.http.get(app.url("/health")).send().await.unwrap();
        assert_eq!(health.headers()["x-content-type-options"], "nosniff");
        let page = app.http.get(app.url("/graphql")).send().await.unwrap();
        let headers = page.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(policy.contains("default-src 'none'"), "{policy}");
        // GraphiQL is vendored and its script is a file: scripts only from keymeter.
        let scripts = policy.split(';').find(|d| d.trim_start().starts_with("script-src")).unwrap();
        assert_eq!(scripts.trim(), "script-src 'self'", "{policy}");
    }
}
