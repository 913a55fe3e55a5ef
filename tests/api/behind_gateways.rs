//! keymeter behind real nginx and real Caddy, each running the README's own
//! file (deploy/) in front of a small API: a good key reaches the API with
//! keymeter's headers, a bad or exhausted key is turned away before it, the
//! charge is exact, and a call the API failed is refunded with the request
//! id the gateway charged it under. On both databases.

use reqwest::Response;
use serde_json::{json, Value};

use crate::gateways::{Gateway, Kind, Upstream};
use crate::helpers::*;

async fn call(gateway: &Gateway, path: &str, secret: &str) -> Response {
    reqwest::Client::new()
        .get(gateway.url(path))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap_or_else(|err| panic!("{} answers: {err}\n{}", gateway.kind, gateway.log()))
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

/// What a refused call gets at this gateway: nginx turns every refusal
/// into 403 (auth_request knows no other), Caddy passes keymeter's on.
fn refusal_status(kind: &Kind, keymeter_status: u16) -> u16 {
    match kind {
        Kind::Nginx => 403,
        Kind::Caddy => keymeter_status,
    }
}

async fn a_gateway_meters_every_call(app: &TestApp, kind: Kind) {
    let upstream = Upstream::start().await;
    let gateway = match kind {
        Kind::Nginx => Gateway::nginx(app.addr, upstream.addr),
        Kind::Caddy => Gateway::caddy(app.addr, upstream.addr),
    };
    let Some(gateway) = gateway else { return };
    let user = app.signup().await;
    let secret = user.default_secret();

    // Good calls reach the API, which learns whose key it was.
    for _ in 0..3 {
        let response = call(&gateway, "/v1/search?q=1", secret).await;
        assert_eq!(response.status(), 200, "{}", gateway.log());
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].header("x-keymeter-key-id"),
        Some(user.default_key_id())
    );
    assert_eq!(
        seen[0].header("x-keymeter-account-id"),
        user.signup["user"]["billingAccount"]["id"].as_str()
    );
    let usage = app.keys_usage(&user).await;
    assert_eq!(usage["totalCredits"], 3, "one credit per call, exactly");
    let endpoint: String = app.rows("SELECT endpoint FROM api_key_usage").await[0]
        .try_get_by_index(0)
        .unwrap();
    assert_eq!(endpoint, "/v1/search");

    // A bad key never reaches it.
    let refused = call(&gateway, "/v1/search", "sk_dev_not-a-key").await;
    assert_eq!(
        refused.status().as_u16(),
        refusal_status(&gateway.kind, 401)
    );
    assert_eq!(header(&refused, "x-keymeter-code"), Some("NOT_FOUND"));
    assert_eq!(upstream.requests().len(), 3);

    // A call the API failed is given back with the id it was charged under.
    upstream.fail("/v1/broken");
    assert_eq!(call(&gateway, "/v1/broken", secret).await.status(), 502);
    let failed = upstream.requests().pop().unwrap();
    let request_id = failed
        .header("x-request-id")
        .expect("the gateway passes its request id on");
    let refund = app
        .http
        .post(app.url("/gateway/refund"))
        .bearer_auth(secret)
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap();
    let refund: Value = refund.json().await.unwrap();
    assert_eq!(
        refund,
        json!({ "code": "REFUNDED", "credits": 1, "remainingCredits": 997 })
    );
    assert_eq!(app.keys_usage(&user).await["totalCredits"], 3);

    // An exhausted key is turned away with the wait until its credits renew.
    let spend = json!({ "key": secret, "credits": 997 });
    assert_eq!(app.verify(spend).await["code"], "VALID");
    let exhausted = call(&gateway, "/v1/search", secret).await;
    assert_eq!(
        exhausted.status().as_u16(),
        refusal_status(&gateway.kind, 429),
        "{}",
        gateway.log()
    );
    let retry_after: i64 = header(&exhausted, "retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(
        retry_after > 24 * 3600,
        "until the cycle ends: {retry_after}"
    );
    assert_eq!(
        header(&exhausted, "x-keymeter-code"),
        Some("USAGE_EXCEEDED")
    );
    assert_eq!(upstream.requests().len(), 4);
    assert_eq!(app.keys_usage(&user).await["totalCredits"], 1000);
}

on_both_databases! {
    async fn nginx_in_front_meters_every_call(app: TestApp) {
        a_gateway_meters_every_call(&app, Kind::Nginx).await;
    }

    async fn caddy_in_front_meters_every_call(app: TestApp) {
        a_gateway_meters_every_call(&app, Kind::Caddy).await;
    }
}
