//! `keymeter backup PATH` on SQLite, the embedded default: a consistent copy
//! taken while a server charges calls, checked by opening it, and a server
//! started on the copy (the restore) answers consistently.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::json;

use crate::helpers::*;
use crate::server_process::ServerProcess;

fn backup(database_url: &str, path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keymeter"))
        .arg("backup")
        .arg(path)
        .env("DATABASE_URL", database_url)
        .env("KEYMETER_LOG", "warn")
        .output()
        .expect("running keymeter backup")
}

/// The first column of each row of `sql` on the SQLite file at `path`.
async fn column(path: &std::path::Path, sql: &str) -> Vec<i64> {
    let db = Database::connect(format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(DbBackend::Sqlite, sql))
        .await
        .unwrap();
    db.close().await.unwrap();
    rows.iter()
        .map(|row| row.try_get_by_index(0).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_charging_is_consistent_and_serves() {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let server = ServerProcess::start(&database.url, &[]);
    let http = reqwest::Client::new();
    let email = unique_email();
    let signup = server
        .graphql(
            &http,
            SIGNUP,
            json!({ "email": email, "password": PASSWORD }),
            None,
        )
        .await;
    let secret = signup["data"]["signup"]["defaultKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();

    // Charges go on, two at a time, while the backup is taken.
    let (running, charged) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (server_addr, secret, running, charged) = (server.addr.clone(), secret.clone(), running.clone(), charged.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while running.load(Ordering::Relaxed) {
                    let body = json!({ "query": VERIFY_KEY, "variables": { "input": { "key": secret, "credits": 1 } } });
                    let answer: serde_json::Value =
                        http.post(format!("http://{server_addr}/graphql")).json(&body).send().await.unwrap().json().await.unwrap();
                    if answer["data"]["verifyKey"]["code"] == "VALID" {
                        charged.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    eventually(std::time::Duration::from_secs(10), || async {
        charged.load(Ordering::Relaxed) >= 20
    })
    .await;
    let dir = std::env::temp_dir().join(format!("keymeter-backup-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("copy.db");
    let taken = backup(&database.url, &copy);
    let during = charged.load(Ordering::Relaxed);
    running.store(false, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let stdout = String::from_utf8_lossy(&taken.stdout);
    assert!(
        taken.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(stdout.contains("checked"), "{stdout}");

    // The copy agrees with itself: every charge in it is in its counter,
    // its events and each of its rollups.
    let counter = column(&copy, "SELECT credits_used FROM billing_cycle_usage").await;
    let sums = [
        "SELECT COALESCE(SUM(credits * calls), 0) FROM api_key_usage",
        "SELECT COALESCE(SUM(credits), 0) FROM api_key_cycle_usage",
        "SELECT COALESCE(SUM(requests), 0) FROM api_key_cycle_usage",
        "SELECT COALESCE(SUM(credits), 0) FROM api_key_hourly_usage",
        "SELECT COALESCE(SUM(credits), 0) FROM api_key_daily_usage",
    ];
    for sum in sums {
        assert_eq!(column(&copy, sum).await, counter, "{sum}");
    }
    let copied = counter[0] as u64;
    eprintln!("backup: {copied} charges copied, {during} made by the time it returned");
    assert!(
        (20..=during + 2).contains(&copied),
        "{copied} charges copied, {during} made by then"
    );

    // Restored: a server on the copy answers what the copy holds.
    let restored = ServerProcess::start(&format!("sqlite://{}?mode=rwc", copy.display()), &[]);
    let login = restored
        .graphql(
            &http,
            LOGIN,
            json!({ "email": email, "password": PASSWORD }),
            None,
        )
        .await;
    let token = login["data"]["login"]["token"].as_str().unwrap().to_owned();
    let usage = restored
        .graphql(
            &http,
            "{ keysUsage { totalCredits keys { credits requests } } }",
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(usage["data"]["keysUsage"]["totalCredits"], copied);
    assert_eq!(usage["data"]["keysUsage"]["keys"][0]["requests"], copied);
    assert_eq!(
        restored
            .verify(&http, json!({ "key": secret, "credits": 1 }))
            .await["code"],
        "VALID"
    );

    // A backup never overwrites a file.
    let again = backup(&database.url, &copy);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    drop(restored);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_postgres_database_is_backed_up_with_pg_dump() {
    let Some(Backend::Postgres { admin_url }) = Backend::postgres() else {
        return;
    };
    let taken = backup(&admin_url, &std::env::temp_dir().join("never-written.db"));
    assert_eq!(taken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("pg_dump"));
}
