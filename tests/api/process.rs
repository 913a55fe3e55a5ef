//! What only a real process shows: its logs, and how it meets SIGTERM and SIGKILL.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::server_process::ServerProcess;

on_both_backends! {
    async fn no_password_token_or_secret_reaches_the_logs(backend: Backend) {
        let database = TestDatabase::create(&backend).await;
        let server = ServerProcess::start(&database.url, &[("KEYMETER_LOG", "debug")]);
        let http = reqwest::Client::new();
        let email = unique_email();
        let password = "a very secret passphrase";

        let signup = server.graphql(&http, SIGNUP, json!({ "email": email, "password": password }), None).await;
        let signup_token = signup["data"]["signup"]["token"].as_str().unwrap().to_owned();
        let default_secret = signup["data"]["signup"]["defaultKey"]["secret"].as_str().unwrap().to_owned();
        let login = server.graphql(&http, LOGIN, json!({ "email": email, "password": password }), None).await;
        let token = login["data"]["login"]["token"].as_str().unwrap().to_owned();
        server.graphql(&http, LOGIN, json!({ "email": email, "password": "not the passphrase" }), None).await;
        let created = server.graphql(&http, CREATE_KEY, json!({ "input": { "name": "prod", "keyType": "PROD" } }), Some(&token)).await;
        let secret = created["data"]["createKey"]["secret"].as_str().unwrap().to_owned();
        for key in [&secret, &default_secret] {
            server.verify(&http, json!({ "key": key, "credits": 3, "requestId": "r1" })).await;
        }
        server.verify(&http, json!({ "key": format!("{secret}-forged"), "credits": 1 })).await;
        // Through the gateway: a charge, a refund, refusals, a malformed call.
        let gateway = format!("http://{}/gateway/verify/v1/search", server.addr);
        for (name, value) in [("authorization", format!("Bearer {secret}")), ("x-api-key", secret.clone())] {
            http.get(&gateway).header(name, &value).header("x-request-id", "g1").send().await.unwrap();
            http.get(&gateway).header(name, &value).header("x-keymeter-cost", "nope").send().await.unwrap();
        }
        http.get(&gateway).header("x-api-key", format!("{default_secret}x")).send().await.unwrap();
        let refund = format!("http://{}/gateway/refund", server.addr);
        http.post(&refund).bearer_auth(&secret).header("x-request-id", "g1").send().await.unwrap();
        server.graphql(&http, ME, json!({}), Some(&token)).await;
        server.graphql(&http, "mutation { logout }", json!({}), Some(&signup_token)).await;
        server.graphql(&http, ME, json!({}), Some(&signup_token)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;

        let logs = server.output();
        assert!(logs.contains("keymeter listening"), "no logs were captured");
        for (what, value) in [
            ("password", password),
            ("wrong password", "not the passphrase"),
            ("session token", &signup_token),
            ("session token", &token),
            ("key secret", &secret),
            ("key secret", &default_secret),
            ("key secret", &secret[8..]),
        ] {
            assert!(!logs.contains(value), "the {what} appears in the logs:\n{logs}");
        }
        assert!(!logs.contains("$argon2id$"), "a password hash appears in the logs");
    }

    async fn sigterm_finishes_requests_in_flight_then_exits_cleanly(backend: Backend) {
        let database = TestDatabase::create(&backend).await;
        // One hash at a time, so eight signups are still queued when the signal lands.
        let mut server = ServerProcess::start(&database.url, &[("KEYMETER_HASHING_CONCURRENCY", "1")]);
        let http = reqwest::Client::new();
        let signups = join_all((0..8).map(|_| {
            let (server, http) = (&server, &http);
            async move {
                let variables = json!({ "email": unique_email(), "password": PASSWORD });
                server.graphql(http, SIGNUP, variables, None).await
            }
        }));
        let signal = async {
            tokio::time::sleep(Duration::from_millis(60)).await;
            server.signal("TERM");
        };
        let (responses, ()) = tokio::join!(signups, signal);
        for response in &responses {
            assert!(response["data"]["signup"]["token"].is_string(), "{response:#}");
        }
        let status = tokio::task::block_in_place(|| server.wait_for_exit(Duration::from_secs(10)));
        assert!(status.success(), "{status:?}");
        assert!(server.output().contains("keymeter stopped"), "{}", server.output());
        let db = Database::connect(database.url.as_str()).await.unwrap();
        let users = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) FROM users"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(users.try_get_by_index::<i64>(0).unwrap(), 8);
    }

    async fn a_killed_server_loses_no_answered_charge_and_never_overcharges(backend: Backend) {
        let database = TestDatabase::create(&backend).await;
        // About what the load charges before the kill: the limit may or may not be reached.
        let monthly = ("KEYMETER_MONTHLY_CREDITS", "600");
        let server = ServerProcess::start(&database.url, &[monthly]);
        let http = reqwest::Client::new();
        let signup = server.graphql(&http, SIGNUP, json!({ "email": unique_email(), "password": PASSWORD }), None).await;
        let secret = signup["data"]["signup"]["defaultKey"]["secret"].as_str().unwrap().to_owned();

        // Sixteen clients charge 3 credits each, one unique requestId per call,
        // until the server is killed under them.
        let clients = (0..16).map(|client| {
            let (server, http, secret) = (&server, &http, secret.clone());
            async move {
                let mut valid = Vec::new();
                for call in 0.. {
                    let request_id = format!("c{client}-{call}");
                    let body = json!({ "query": VERIFY_KEY, "variables": { "input": { "key": secret, "credits": 3, "requestId": request_id } } });
                    let response = http.post(format!("http://{}/graphql", server.addr)).json(&body).send().await;
                    let Ok(response) = response else { break };
                    let Ok(answer) = response.json::<Value>().await else { break };
                    if answer["data"]["verifyKey"]["code"] == "VALID" {
                        valid.push(request_id);
                    }
                }
                valid
            }
        });
        let kill = async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            server.signal("KILL");
        };
        let (answered, ()) = tokio::join!(join_all(clients), kill);
        let answered: HashSet<String> = answered.into_iter().flatten().collect();
        drop(server);
        eprintln!("{} charges answered VALID before the kill", answered.len());
        assert!(!answered.is_empty(), "no charge was answered before the kill");

        // A restarted server serves the same database.
        let restarted = ServerProcess::start(&database.url, &[monthly]);
        let after = restarted.verify(&http, json!({ "key": secret, "credits": 0 })).await;
        assert_eq!(after["code"], "VALID");

        let db = Database::connect(database.url.as_str()).await.unwrap();
        let rows = |sql: &'static str| {
            let db = &db;
            async move { db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap() }
        };
        let recorded: HashSet<String> = rows("SELECT request_id FROM verify_requests WHERE code = 'valid'")
            .await
            .iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect();
        let lost: Vec<_> = answered.difference(&recorded).collect();
        assert!(lost.is_empty(), "VALID answers without a committed charge: {lost:?}");
        let events = rows("SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(credits * calls), 0) FROM api_key_usage").await;
        let (count, credits): (i64, i64) = (events[0].try_get_by_index(0).unwrap(), events[0].try_get_by_index(1).unwrap());
        let counter: i64 = rows("SELECT credits_used FROM billing_cycle_usage").await[0].try_get_by_index(0).unwrap();
        assert_eq!(count as usize, recorded.len(), "every remembered VALID answer has its event");
        assert_eq!(credits, counter, "the counter and the events agree");
        assert!(counter <= 600, "the account went over its credits: {counter}");
        assert_eq!(after["remainingCredits"], 600 - counter);
    }
}

/// Counts the SQL statements the server logs while `operation` runs.
async fn statements_during<F: std::future::Future<Output = Value>>(
    server: &ServerProcess,
    operation: F,
) -> usize {
    let count = || {
        server
            .output()
            .lines()
            .filter(|l| l.contains("sqlx::query"))
            // The background workers' looks (the email outbox, the alerts
            // to fan out, the webhook queue) come every second, whatever the
            // requests: their statements are no operation's.
            .filter(|l| {
                !["email_outbox", "fanned_out_at", "webhook_deliveries"]
                    .iter()
                    .any(|table| l.contains(table))
            })
            .count()
    };
    // The process's output is read by another thread: on a loaded machine
    // lines of the previous operation can still be on their way. Wait until
    // no new line has arrived for a while, before and after.
    let settled = || async {
        let mut last = count();
        loop {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let now = count();
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let before = settled().await;
    let response = operation.await;
    assert!(response.get("errors").is_none(), "{response:#}");
    settled().await - before
}

on_both_backends! {
    async fn each_operation_issues_a_fixed_number_of_queries(backend: Backend) {
        let database = TestDatabase::create(&backend).await;
        let env = [("KEYMETER_LOG_QUERIES", "true"), ("KEYMETER_LOG", "info,sqlx::query=debug")];
        let server = ServerProcess::start(&database.url, &env);
        let http = reqwest::Client::new();
        let signup = server.graphql(&http, SIGNUP, json!({ "email": unique_email(), "password": PASSWORD }), None).await;
        let token = signup["data"]["signup"]["token"].as_str().unwrap().to_owned();
        let secret = signup["data"]["signup"]["defaultKey"]["secret"].as_str().unwrap().to_owned();
        server.verify(&http, json!({ "key": secret, "credits": 1 })).await;

        let mut counts = Vec::new();
        for keys in [1, 11] {
            while {
                let listed = server.graphql(&http, KEYS, json!({}), Some(&token)).await;
                listed["data"]["keys"].as_array().unwrap().len() < keys
            } {
                server.graphql(&http, CREATE_KEY, json!({ "input": { "name": "k" } }), Some(&token)).await;
            }
            let me = statements_during(&server, server.graphql(&http, ME, json!({}), Some(&token))).await;
            let listed = statements_during(&server, server.graphql(&http, KEYS, json!({}), Some(&token))).await;
            let usage = statements_during(&server, server.graphql(&http, KEYS_USAGE, json!({}), Some(&token))).await;
            let check = statements_during(&server, async {
                json!({ "data": server.verify(&http, json!({ "key": secret, "credits": 0 })).await })
            })
            .await;
            counts.push((me, listed, usage, check));
        }
        // The key was charged above, so this process knows it: on PostgreSQL
        // a charge is then the one statement that checks the key and charges.
        let charge = statements_during(&server, async {
            json!({ "data": server.verify(&http, json!({ "key": secret, "credits": 1 })).await })
        })
        .await;
        if matches!(backend, Backend::Postgres { .. }) {
            assert_eq!(charge, 1, "a charge on a known key is one statement");
        }
        // The cycle by day: the session (with the own account, whose cycle
        // starts the range), the answer budget's count of keys, the series.
        let series = statements_during(&server, server.graphql(&http, "{ usageSeries { total { credits } } }", json!({}), Some(&token))).await;
        assert_eq!(series, 3, "usageSeries over the cycle");
        // keys and keysUsage in one document share their read.
        let both = statements_during(&server, server.graphql(&http, "{ keys { id createdBy { email } } keysUsage { totalCredits keys { credits } } }", json!({}), Some(&token))).await;
        assert_eq!(both, 2, "keys beside keysUsage");
        // keysUsage's keys carry their makers.
        let makers = statements_during(&server, server.graphql(&http, "{ keysUsage { keys { apiKey { createdBy { email } } } } }", json!({}), Some(&token))).await;
        assert_eq!(makers, 2, "keysUsage with each key's maker");
        // The page names the own account by its id as it would any other:
        // the session's lookup has read it, and its membership is the
        // user's as OWNER, so nothing more is read for it.
        let own = server.graphql(&http, "{ account { id } }", json!({}), Some(&token)).await;
        let own_id = own["data"]["account"]["id"].as_str().unwrap().to_owned();
        let named = statements_during(&server, server.graphql(&http, "query($id: UUID) { account(id: $id) { id role } alerts: account(id: $id) { usageAlerts } }", json!({ "id": own_id }), Some(&token))).await;
        assert_eq!(named, 2, "the own account named by its id (the session, the thresholds)");
        eprintln!("statements per operation (me, keys, keysUsage, verifyKey credits=0) with 1 and 11 keys: {counts:?}");
        // The session lookup reads the user and their own account; then keys
        // (with their makers) and keysUsage are one query each, and a free
        // check is one lookup.
        assert_eq!(counts[0], (1, 2, 2, 1));
        assert_eq!(counts[0], counts[1], "a query per key somewhere");
    }
}
