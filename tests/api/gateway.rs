//! The gateway endpoint (contract v3) over plain HTTP, as nginx, Caddy,
//! Traefik and Envoy call it: the secret and the call in headers, the
//! decision in the status, the rest in X-Keymeter-* headers and a JSON body.
//! It charges through verifyKey's front door: one quota, one requestId space.

use futures_util::future::join_all;
use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::*;

impl TestApp {
    /// `method /gateway/verify{suffix}` with `headers`.
    async fn gateway(&self, method: Method, suffix: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .http
            .request(method, self.url(&format!("/gateway/verify{suffix}")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("the gateway endpoint answers")
    }

    async fn gateway_refund(&self, headers: &[(&str, &str)]) -> Response {
        let mut request = self.http.post(self.url("/gateway/refund"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("the refund endpoint answers")
    }
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

/// The status, the X-Keymeter-Code and the JSON body.
async fn answered(response: Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let code = header(&response, "x-keymeter-code").map(str::to_owned);
    let content_type = header(&response, "content-type")
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    (status, code, response.json().await.unwrap())
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

on_both_databases! {
    async fn a_valid_key_is_answered_200_with_its_headers_and_charged(app: TestApp) {
        let user = app.signup().await;
        let auth = bearer(user.default_secret());
        let response = app
            .gateway(Method::GET, "", &[("authorization", &auth), ("x-forwarded-uri", "/v1/search?q=secret-query")])
            .await;
        assert_eq!(response.status(), 200);
        let cycle_end = user.signup["user"]["billingAccount"]["billingCycleEnd"].as_str().unwrap();
        let account = user.signup["user"]["billingAccount"]["id"].as_str().unwrap();
        for (name, expected) in [
            ("x-keymeter-code", "VALID"),
            ("x-keymeter-key-id", user.default_key_id()),
            ("x-keymeter-key-type", "DEV"),
            ("x-keymeter-account-id", account),
            ("x-keymeter-remaining-credits", "999"),
            ("x-keymeter-cycle-end", cycle_end),
        ] {
            assert_eq!(header(&response, name), Some(expected), "{name}");
        }
        assert!(header(&response, "retry-after").is_none());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["valid"], true);
        assert_eq!((body["code"].as_str(), body["keyType"].as_str()), (Some("VALID"), Some("DEV")));
        assert_eq!((body["remainingCredits"].as_i64(), body["cycleEnd"].as_str()), (Some(999), Some(cycle_end)));
        assert!(!body.to_string().contains(user.default_secret()));
        // The endpoint is recorded without its query string.
        let endpoint: String = app.rows("SELECT endpoint FROM api_key_usage").await[0].try_get_by_index(0).unwrap();
        assert_eq!(endpoint, "/v1/search");
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 1);
    }

    async fn the_secret_comes_from_bearer_in_any_case_or_x_api_key(app: TestApp) {
        let user = app.signup().await;
        let secret = user.default_secret();
        let mixed = format!("bEaReR {secret}");
        for headers in [vec![("authorization", mixed.as_str())], vec![("x-api-key", secret)]] {
            let (status, code, _) = answered(app.gateway(Method::POST, "", &headers).await).await;
            assert_eq!((status, code.as_deref()), (200, Some("VALID")));
        }
        // Another scheme is no secret; X-API-Key is read then.
        let basic = [("authorization", "Basic dXNlcjpwYXNz"), ("x-api-key", secret)];
        assert_eq!(app.gateway(Method::GET, "", &basic).await.status(), 200);
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 3);
    }

    async fn refused_keys_are_401_with_a_challenge_or_403_when_asked(app: TestApp) {
        let user = app.signup().await;
        let revoked = app.create_key(&user, "revoked", "DEV").await;
        app.ok(REVOKE_KEY, json!({ "id": revoked["apiKey"]["id"] }), Some(&user.token)).await;
        let revoked_auth = bearer(revoked["secret"].as_str().unwrap());
        let cases: [(Vec<(&str, &str)>, &str); 3] = [
            (vec![], "NOT_FOUND"),
            (vec![("authorization", "Bearer sk_dev_unknown")], "NOT_FOUND"),
            (vec![("authorization", &revoked_auth)], "REVOKED"),
        ];
        for (headers, expected) in cases {
            for (suffix, status) in [("", 401), ("?deny=403", 403)] {
                let response = app.gateway(Method::GET, suffix, &headers).await;
                assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
                let (got, code, body) = answered(response).await;
                assert_eq!((got, code.as_deref()), (status, Some(expected)), "{headers:?} {suffix}");
                assert_eq!(body["valid"], false);
            }
        }
        let known = app.gateway(Method::GET, "", &[("authorization", &revoked_auth)]).await;
        assert_eq!(header(&known, "x-keymeter-key-id"), revoked["apiKey"]["id"].as_str());
        let unknown = app.gateway(Method::GET, "", &[]).await;
        assert!(header(&unknown, "x-keymeter-key-id").is_none());
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 0);
    }

    async fn an_exhausted_key_is_429_with_retry_after_from_the_cycle(app: TestApp) {
        let user = app.signup().await;
        let auth = bearer(user.default_secret());
        let spend = [("authorization", auth.as_str()), ("x-keymeter-cost", "1000")];
        assert_eq!(app.gateway(Method::GET, "", &spend).await.status(), 200);
        let cycle_end: chrono::DateTime<chrono::Utc> =
            user.signup["user"]["billingAccount"]["billingCycleEnd"].as_str().unwrap().parse().unwrap();
        let wait = (cycle_end - app.clock.now()).num_seconds() + 1;
        for (suffix, status) in [("", 429), ("?deny=403", 403)] {
            let response = app.gateway(Method::GET, suffix, &[("authorization", &auth)]).await;
            let retry_after: i64 = header(&response, "retry-after").unwrap().parse().unwrap();
            assert!((wait - 1..=wait).contains(&retry_after), "{retry_after} against {wait}");
            let (got, code, body) = answered(response).await;
            assert_eq!((got, code.as_deref()), (status, Some("USAGE_EXCEEDED")));
            assert_eq!(body["retryAfterSeconds"].as_i64(), Some(retry_after));
        }
        // GraphQL's verifyKey says the same.
        let query = "mutation($key: String!) { verifyKey(input: { key: $key }) { code retryAfterSeconds accountId } }";
        let graphql = app.ok(query, json!({ "key": user.default_secret() }), None).await;
        let graphql = &graphql["verifyKey"];
        assert_eq!(graphql["code"], "USAGE_EXCEEDED");
        assert!((wait - 1..=wait).contains(&graphql["retryAfterSeconds"].as_i64().unwrap()));
        assert_eq!(graphql["accountId"], user.signup["user"]["billingAccount"]["id"]);
    }

    async fn costs_and_request_ids_are_verify_keys_and_malformed_ones_are_400(app: TestApp) {
        let user = app.signup().await;
        let auth = bearer(user.default_secret());
        let call = |extra: Vec<(&'static str, &'static str)>| {
            let mut headers = vec![("authorization", auth.clone())];
            headers.extend(extra.into_iter().map(|(n, v)| (n, v.to_owned())));
            headers
        };
        let send = |headers: Vec<(&'static str, String)>| {
            let app = &app;
            async move {
                let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                app.gateway(Method::GET, "/v1/things", &pairs).await
            }
        };
        let (status, _, body) = answered(send(call(vec![("x-keymeter-cost", "5"), ("x-request-id", "gw-1")])).await).await;
        assert_eq!((status, body["remainingCredits"].as_i64()), (200, Some(995)));
        // The same requestId through GraphQL: the first answer, nothing charged.
        let replay = app.verify(json!({ "key": user.default_secret(), "credits": 5, "requestId": "gw-1" })).await;
        assert_eq!(replay["remainingCredits"], 995);
        // A free check charges nothing.
        let (status, _, body) = answered(send(call(vec![("x-keymeter-cost", "0")])).await).await;
        assert_eq!((status, body["remainingCredits"].as_i64()), (200, Some(995)));
        let long_id = "r".repeat(129);
        let long_id: &'static str = Box::leak(long_id.into_boxed_str());
        for bad in [
            vec![("x-keymeter-cost", "abc")],
            vec![("x-keymeter-cost", "-1")],
            vec![("x-keymeter-cost", "1000001")],
            vec![("x-keymeter-cost", "1"), ("x-keymeter-cost", "2")],
            vec![("x-request-id", long_id)],
        ] {
            let response = send(call(bad.clone())).await;
            assert!(header(&response, "x-keymeter-code").is_none(), "{bad:?}");
            let (status, _, body) = answered(response).await;
            assert_eq!(status, 400, "{bad:?}");
            assert_error(&body, "BAD_USER_INPUT");
            assert!(!body.to_string().contains(user.default_secret()));
        }
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 5);
        let endpoints = app.rows("SELECT endpoint FROM api_key_usage").await;
        let endpoint: String = endpoints[0].try_get_by_index(0).unwrap();
        assert_eq!(endpoint, "/v1/things", "the path when no header names the URI");
        // A path that does not decode is taken as sent, never refused.
        let odd = app.gateway(Method::GET, "/v1/%FF%FE?x=1", &[("authorization", &auth)]).await;
        assert_eq!(odd.status(), 200);
        let endpoint: String = app
            .rows("SELECT endpoint FROM api_key_usage ORDER BY id DESC").await[0]
            .try_get_by_index(0)
            .unwrap();
        assert_eq!(endpoint, "/v1/%FF%FE");
    }

    async fn any_method_is_a_call_and_refunds_take_it_back(app: TestApp) {
        let user = app.signup().await;
        let auth = bearer(user.default_secret());
        for method in [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let response = app.gateway(method.clone(), "", &[("authorization", &auth)]).await;
            assert_eq!(response.status(), 200, "{method}");
        }
        let charged = [("authorization", auth.as_str()), ("x-request-id", "served-not"), ("x-keymeter-cost", "4")];
        assert_eq!(app.gateway(Method::GET, "", &charged).await.status(), 200);
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 10);
        let refund = [("authorization", auth.as_str()), ("x-request-id", "served-not")];
        let (status, _, body) = answered(app.gateway_refund(&refund).await).await;
        assert_eq!((status, body), (200, json!({ "code": "REFUNDED", "credits": 4, "remainingCredits": 994 })));
        let (status, _, body) = answered(app.gateway_refund(&refund).await).await;
        assert_eq!((status, body["code"].as_str()), (200, Some("ALREADY_REFUNDED")));
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 6);
        // Without a secret or a requestId: 400. Not POST: 405.
        for headers in [vec![("x-request-id", "served-not")], vec![("authorization", auth.as_str())]] {
            let (status, _, body) = answered(app.gateway_refund(&headers).await).await;
            assert_eq!(status, 400);
            assert_error(&body, "BAD_USER_INPUT");
        }
        let get = app.http.get(app.url("/gateway/refund")).send().await.unwrap();
        let (status, _, _) = answered(get).await;
        assert_eq!(status, 405);
    }

    async fn gateway_and_graphql_calls_share_one_quota_over_two_servers(app: TestApp) {
        let user = app.signup().await;
        let other = app.spawn_second_server().await;
        let auth = bearer(user.default_secret());
        let secret = user.default_secret();
        // 1,000 credits; 60 calls of 25 race, half through each door and server.
        let calls = join_all((0..60).map(|i| {
            let (app, auth) = (&app, &auth);
            async move {
                if i % 2 == 0 {
                    let response = app
                        .http
                        .get(format!("http://{}/gateway/verify", if i % 4 == 0 { app.addr } else { other }))
                        .header("authorization", auth.as_str())
                        .header("x-keymeter-cost", "25")
                        .send()
                        .await
                        .unwrap();
                    response.status() == 200
                } else {
                    let input = json!({ "input": { "key": secret, "credits": 25 } });
                    let answer = app.graphql_at(if i % 4 == 1 { app.addr } else { other }, VERIFY_KEY, input, None).await;
                    answer["data"]["verifyKey"]["code"] == "VALID"
                }
            }
        }))
        .await;
        assert_eq!(calls.iter().filter(|valid| **valid).count(), 40);
        assert_eq!(app.keys_usage(&user).await["totalCredits"], 1000);
    }
}
