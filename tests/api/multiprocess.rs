//! Two real keymeter processes on one PostgreSQL database: the quota and
//! idempotency hold across processes because nothing lives in their memory.

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::*;
use crate::server_process::ServerProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_exact_quota() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let user = app.signup().await;
    let url = app.config.database_url.clone();
    let (a, b) = tokio::task::spawn_blocking(move || {
        (
            ServerProcess::start(&url, &[]),
            ServerProcess::start(&url, &[]),
        )
    })
    .await
    .unwrap();

    let calls = (0..60).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        server.verify(
            &app.http,
            json!({ "key": user.default_secret(), "credits": 30 }),
        )
    });
    let results = join_all(calls).await;
    let valid = results.iter().filter(|r| r["code"] == "VALID").count();
    let refused = results
        .iter()
        .filter(|r| r["code"] == "USAGE_EXCEEDED")
        .count();
    assert_eq!((valid, refused), (33, 27));
    assert_eq!(app.keys_usage(&user).await["totalCredits"], 990);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM api_key_usage").await,
        [33]
    );

    // A request retried on the other process is the same request.
    app.execute("DELETE FROM billing_cycle_usage").await;
    let request =
        json!({ "key": user.default_secret(), "credits": 9, "requestId": "cross-process" });
    let (first, retry) = tokio::join!(
        a.verify(&app.http, request.clone()),
        b.verify(&app.http, request)
    );
    assert_eq!(first, retry);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM api_key_usage").await,
        [34]
    );
}
