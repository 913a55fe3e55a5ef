use serde_json::{json, Value};

use crate::helpers::*;

/// graphql-js's `getIntrospectionQuery()` with every option on: what GraphiQL
/// and codegen tools send.
const STANDARD_INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    description
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) {
    name description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}"#;

/// `{ __schema { types { fields { type { fields { type { ... } } } } } } }`, `levels` deep.
fn circular_introspection(levels: usize) -> String {
    let mut query = String::from("{ __schema { types { ");
    for _ in 0..levels {
        query.push_str("fields { type { ");
    }
    query.push_str("name");
    query.push_str(&" } }".repeat(levels));
    query.push_str(" } } }");
    query
}

async fn post_raw(app: &TestApp, body: String) -> reqwest::Response {
    app.http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST /graphql")
}

/// The answer to an oversized POST. The server answers before reading the
/// body and closes the connection, which may reset it under a client still
/// writing, before the answer is read: that try is made again. Each try
/// has a client of its own, so no later request reuses the closed connection.
async fn oversized_post(app: &TestApp, body: String) -> reqwest::Response {
    for _ in 0..4 {
        let sent = reqwest::Client::new()
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            return response;
        }
    }
    panic!("every oversized POST was reset before an answer");
}

on_both_databases! {
    async fn the_standard_introspection_query_passes(app: TestApp) {
        let data = app.ok(STANDARD_INTROSPECTION, json!({}), None).await;
        let types = data["__schema"]["types"].as_array().unwrap();
        assert!(types.iter().any(|t| t["name"] == "VerifyKeyResult"));
    }

    async fn deep_and_huge_queries_are_refused_and_the_server_stays_up(app: TestApp) {
        // Fifty levels are refused by the parser's recursion limit, before any work...
        let fifty = app.graphql(&circular_introspection(50), json!({}), None).await;
        assert_error(&fifty, "BAD_USER_INPUT");
        assert!(fifty["data"].is_null());
        // ...and anything past the depth limit by validation, before it runs.
        let ten = app.graphql(&circular_introspection(10), json!({}), None).await;
        assert_error(&ten, "BAD_USER_INPUT");
        assert!(ten["errors"][0]["message"].as_str().unwrap().contains("nested too deep"), "{ten:#}");

        let wide: String = (0..300).map(|i| format!("k{i}: keys {{ id }} ")).collect();
        let wide = app.graphql(&format!("{{ {wide} }}"), json!({}), None).await;
        assert_error(&wide, "BAD_USER_INPUT");
        assert!(wide["errors"][0]["message"].as_str().unwrap().contains("too complex"));

        app.signup().await;
    }

    async fn bodies_over_the_limit_get_413(app: TestApp) {
        let padding = "x".repeat(1024 * 1024);
        let body = json!({ "query": "{ __typename }", "variables": { "padding": padding } }).to_string();
        let refused = oversized_post(&app, body).await;
        assert_eq!(refused.status(), 413);
        // The body was never read, so the connection is not reusable: said so.
        assert_eq!(refused.headers()["connection"], "close");
        let fits = json!({ "query": "{ __typename }", "variables": { "padding": "x".repeat(1000) } }).to_string();
        assert_eq!(post_raw(&app, fits).await.status(), 200);
    }

    async fn batched_requests_are_refused(app: TestApp) {
        let batch = json!([{ "query": "{ __typename }" }, { "query": "{ __typename }" }]).to_string();
        let response = post_raw(&app, batch).await;
        assert!(response.status().is_client_error(), "{}", response.status());
    }

    async fn no_browser_origin_is_allowed_by_default(app: TestApp) {
        let preflight = app
            .http
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("Origin", "https://evil.example.com")
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap();
        assert!(preflight.headers().get("access-control-allow-origin").is_none());
    }
}

on_both_backends! {
    async fn configured_dashboard_origins_are_allowed(backend: Backend) {
        let dashboard = "https://dashboard.example.com";
        let app = TestApp::spawn_with(backend, |config| {
            config.cors_origins = vec![dashboard.to_owned(), "https://admin.example.com".to_owned()];
        })
        .await;
        for (origin, allowed) in [(dashboard, true), ("https://evil.example.com", false)] {
            let preflight = app
                .http
                .request(reqwest::Method::OPTIONS, app.url("/graphql"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "authorization,content-type")
                .send()
                .await
                .unwrap();
            let allow = preflight.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(allow.as_deref(), allowed.then_some(origin), "{origin}");
        }
    }

    async fn introspection_and_graphiql_can_be_switched_off(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| {
            config.introspection = false;
            config.graphiql = false;
        })
        .await;
        let response = app.graphql("{ __schema { types { name } } }", json!({}), None).await;
        assert!(response["data"]["__schema"].is_null() || response.get("errors").is_some(), "{response:#}");
        assert_eq!(app.http.get(app.url("/graphql")).send().await.unwrap().status(), 405);
        // The API itself still works.
        app.signup().await;
    }

    async fn limits_are_configurable(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| {
            config.max_query_depth = 2;
            config.max_body_bytes = 2048;
        })
        .await;
        let deep = app.graphql("{ me { billingAccount { plan } } }", json!({}), None).await;
        assert!(deep["errors"][0]["message"].as_str().unwrap().contains("nested too deep"), "{deep:#}");
        let body = json!({ "query": "{ __typename }", "variables": { "p": "x".repeat(4096) } }).to_string();
        assert_eq!(post_raw(&app, body).await.status(), 413);
        let _: Value = app.ok("{ __typename }", json!({}), None).await;
    }
}
