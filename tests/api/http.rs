use serde_json::{json, Value};

use crate::helpers::*;

on_both_databases! {
    async fn health_reports_the_database(app: TestApp) {
        let response = app.http.get(app.url("/health")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), json!({ "status": "ok" }));
    }

    async fn graphiql_is_served_on_get(app: TestApp) {
        let response = app.http.get(app.url("/graphql")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/html"));
        let page = response.text().await.unwrap();
        assert!(page.contains("GraphiQL") && page.contains("createFetcher"));
    }

    async fn the_dashboard_and_graphiql_load_only_from_keymeter_under_a_strict_policy(app: TestApp) {
        let page = app.http.get(app.url("/")).send().await.unwrap();
        let headers = page.headers().clone();
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'") && !policy.contains("unsafe"), "{policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let html = page.text().await.unwrap();
        assert!(!html.contains("<script>") && !html.contains(" style="));
        let graphiql = app.http.get(app.url("/graphql")).send().await.unwrap();
        let graphiql_policy = graphiql.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(graphiql_policy.contains("script-src 'self';"), "{graphiql_policy}");
        assert!(!graphiql_policy.contains("https:"), "{graphiql_policy}");
        let graphiql = graphiql.text().await.unwrap();
        // Every file either page names is served by keymeter itself.
        for html in [html, graphiql] {
            assert!(!html.contains("https://"));
            for path in html.split("\"/assets/").skip(1).map(|rest| rest.split('"').next().unwrap()) {
                let asset = app.http.get(app.url(&format!("/assets/{path}"))).send().await.unwrap();
                assert_eq!(asset.status(), 200, "{path}");
                assert_eq!(asset.headers()["x-content-type-options"], "nosniff");
            }
        }
        let missing = app.http.get(app.url("/assets/nothing.js")).send().await.unwrap();
        assert_eq!(missing.status(), 404);
    }

    async fn assets_answer_304_to_a_browser_that_already_holds_them(app: TestApp) {
        let get = |path: &'static str, if_none_match: Option<String>| {
            let mut request = app.http.get(app.url(path));
            if let Some(tags) = if_none_match {
                request = request.header("if-none-match", tags);
            }
            request.send()
        };
        let first = get("/assets/app.js", None).await.unwrap();
        assert_eq!(first.status(), 200);
        assert_eq!(first.headers()["cache-control"], "no-cache");
        let tag = first.headers()["etag"].to_str().unwrap().to_owned();
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() > 10, "{tag}");
        let body = first.bytes().await.unwrap();
        for names_it in [tag.clone(), format!("W/{tag}"), format!("\"other\", {tag}"), "*".to_owned()] {
            let again = get("/assets/app.js", Some(names_it.clone())).await.unwrap();
            assert_eq!(again.status(), 304, "{names_it}");
            assert_eq!(again.headers()["etag"], tag.as_str());
            assert!(again.bytes().await.unwrap().is_empty());
        }
        // Another tag, or another file's, gets the file.
        let stale = get("/assets/app.js", Some("\"other\"".into())).await.unwrap();
        assert_eq!(stale.status(), 200);
        assert_eq!(stale.bytes().await.unwrap(), body);
        let other = get("/assets/api.js", Some(tag.clone())).await.unwrap();
        assert_eq!(other.status(), 200);
        assert_ne!(other.headers()["etag"], tag.as_str());
        let vendored = get("/assets/vendor/react-18.3.1.production.min.js", None).await.unwrap();
        assert!(vendored.headers()["cache-control"].to_str().unwrap().contains("immutable"));
        assert!(vendored.headers().contains_key("etag"));
    }

    async fn introspection_describes_the_schema(app: TestApp) {
        let data = app
            .ok(
                "{ __schema { queryType { name } mutationType { name } types { name } } }",
                json!({}),
                None,
            )
            .await;
        assert_eq!(data["__schema"]["queryType"]["name"], "Query");
        let names: Vec<&str> = data["__schema"]["types"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        for expected in ["User", "BillingAccount", "ApiKey", "KeyType", "DateTime", "UUID"] {
            assert!(names.contains(&expected), "{expected} missing");
        }
    }

    async fn malformed_requests_get_graphql_errors_not_crashes(app: TestApp) {
        let syntax = app.graphql("{ me { id ", json!({}), None).await;
        assert_error(&syntax, "BAD_USER_INPUT");
        let unknown_field = app.graphql("{ nope }", json!({}), None).await;
        assert_error(&unknown_field, "BAD_USER_INPUT");
        let wrong_variable = app.graphql(KEYS, json!({ "includeRevoked": "yes" }), None).await;
        assert_error(&wrong_variable, "BAD_USER_INPUT");
        let not_json = app
            .http
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert!(not_json.status().is_client_error(), "{}", not_json.status());
        // The server is still answering.
        app.signup().await;
    }
}

/// PostgreSQL only: dropping the database under the running server is a
/// reliable way to make it stop answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_when_the_database_is_gone() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let name = app
        .config
        .database_url
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    app.db.clone().close().await.ok();
    let Backend::Postgres { admin_url } = Backend::postgres().unwrap() else {
        unreachable!()
    };
    let admin = sea_orm::Database::connect(admin_url.as_str())
        .await
        .unwrap();
    use sea_orm::ConnectionTrait;
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();

    let response = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "status": "unavailable" })
    );
    let me = app.graphql(ME, json!({}), Some("kms_anything")).await;
    assert_error(&me, "INTERNAL_SERVER_ERROR");
    assert_eq!(me["errors"][0]["message"], "internal server error");
}
