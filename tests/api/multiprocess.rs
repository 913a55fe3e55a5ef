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
        app.query_i64("SELECT COALESCE(SUM(calls), 0) FROM api_key_usage")
            .await,
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
        app.query_i64("SELECT COALESCE(SUM(calls), 0) FROM api_key_usage")
            .await,
        [34]
    );
}

/// The dashboard's reads, under load, share statements with the same reads
/// asked at the same time (`shared_reads`). Each still sees every change
/// committed before it was asked, whichever process made the change: here
/// new alert thresholds and a removed member, made on one process while
/// the other is kept busy answering the same reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_reads_see_every_change_committed_before_they_were_asked() {
    const ROUNDS: usize = 6;
    const ALERTS: &str = "query($a: UUID) { account(id: $a) { usageAlerts } }";
    const SET_ALERTS: &str = "mutation($a: UUID, $t: [Int!]!) { setUsageAlerts(accountId: $a, thresholds: $t) { usageAlerts } }";
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let owner = app.signup().await;
    let account = crate::teams::team(&app, &owner, "Shared").await;
    let members = join_all((0..ROUNDS).map(|_| app.signup())).await;
    for member in &members {
        crate::teams::join(&app, &owner, &account, member, "MEMBER").await;
    }
    let url = app.config.database_url.clone();
    // A small pool: the other multi-process test runs beside this one.
    let pool = [("KEYMETER_DB_MAX_CONNECTIONS", "4")];
    let other = tokio::task::spawn_blocking(move || ServerProcess::start(&url, &pool))
        .await
        .unwrap();
    let (other, http) = (&other, &app.http);
    let vars = json!({ "a": account });
    let read = |query: &'static str| other.graphql(http, query, vars.clone(), Some(&owner.token));

    let busy = std::sync::atomic::AtomicBool::new(true);
    let keep_busy = async {
        while busy.load(std::sync::atomic::Ordering::Relaxed) {
            let reads = (0..16).map(|i| {
                read(if i % 2 == 0 {
                    ALERTS
                } else {
                    crate::teams::MEMBERS
                })
            });
            join_all(reads).await;
        }
    };
    let check = async {
        for (round, removed) in members.iter().enumerate() {
            let threshold = json!([round + 1]);
            let set = json!({ "a": account, "t": threshold });
            app.ok(SET_ALERTS, set, Some(&owner.token)).await;
            let remove = json!({ "a": account, "u": removed.id });
            app.ok(crate::teams::REMOVE, remove, Some(&owner.token))
                .await;

            let (alerts, lists) = tokio::join!(
                join_all((0..8).map(|_| read(ALERTS))),
                join_all((0..8).map(|_| read(crate::teams::MEMBERS)))
            );
            for answer in alerts {
                assert_eq!(
                    answer["data"]["account"]["usageAlerts"], threshold,
                    "{answer}"
                );
            }
            for answer in lists {
                let listed = answer["data"]["account"]["members"]
                    .as_array()
                    .unwrap()
                    .clone();
                let ids: Vec<&str> = listed
                    .iter()
                    .map(|m| m["user"]["id"].as_str().unwrap())
                    .collect();
                assert_eq!(ids.len(), ROUNDS - round, "{answer}");
                assert!(!ids.contains(&removed.id.as_str()), "{answer}");
            }
        }
        busy.store(false, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(keep_busy, check);
}
