//! A database made and used by an earlier release migrates with nothing
//! lost. tests/fixtures/release-REV/ holds one such database per backend
//! (made by scripts/upgrade-fixture.sh REV: an SQLite file, a PostgreSQL
//! dump) and what that release's API answered then (manifest.json). The
//! current server starts on a copy, migrates it, and must answer the same:
//! every user signs in, every session and key still works, usage and
//! rollups read the same, remembered requestIds replay their first answer,
//! and no table lost a row. Keep a fixture of each release whose schema a
//! later migration changes.

use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};

use crate::helpers::*;

const RELEASES: &[&str] = &["a2023be"];

fn fixture_dir(release: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("release-{release}"))
}

/// A fresh test database holding the release's database.
async fn database_of(backend: &Backend, release: &str) -> TestDatabase {
    let database = TestDatabase::create(backend).await;
    let dir = fixture_dir(release);
    match backend {
        Backend::Sqlite => {
            let path = database
                .url
                .trim_start_matches("sqlite://")
                .split('?')
                .next()
                .unwrap();
            std::fs::copy(dir.join("keymeter.db"), path).expect("copying the SQLite fixture");
        }
        Backend::Postgres { .. } => {
            let dump = std::fs::read_to_string(dir.join("postgres.sql")).unwrap();
            // The dump clears search_path for its session: a connection of its own.
            let db = Database::connect(database.url.as_str()).await.unwrap();
            db.execute_unprepared(&dump)
                .await
                .expect("restoring the PostgreSQL fixture");
            db.close().await.unwrap();
        }
    }
    database
}

async fn upgrade_keeps_everything(backend: Backend, release: &str) {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir(release).join("manifest.json")).unwrap(),
    )
    .unwrap();
    let manifest = match backend {
        Backend::Sqlite => &manifest["sqlite"],
        Backend::Postgres { .. } => &manifest["postgres"],
    };
    let made_at: chrono::DateTime<chrono::Utc> =
        manifest["made_at"].as_str().unwrap().parse().unwrap();
    let database = database_of(&backend, release).await;
    // A minute after the release was last used: every session and key as it left them.
    let app = TestApp::spawn_on(database, made_at + chrono::Duration::minutes(1), |_| {}).await;

    for (table, count) in manifest["rows"].as_object().unwrap() {
        if table == "seaql_migrations" {
            continue;
        }
        let now = app
            .query_i64(&format!("SELECT COUNT(*) FROM {table}"))
            .await;
        assert_eq!(now, [count.as_i64().unwrap()], "rows of {table}");
    }
    for (email, user) in manifest["users"].as_object().unwrap() {
        let seen = &manifest["seen"][email];
        let token = user["token"].as_str().unwrap();
        // The session still works, and reads what it read.
        let me = app
            .ok(
                "{ me { id email billingAccount { id plan monthlyCredits billingCycleStart } } }",
                json!({}),
                Some(token),
            )
            .await;
        assert_eq!(me["me"], seen["me"], "{email}");
        let keys = app
            .ok("{ keys(includeRevoked: true) { id name keyType prefix createdAt lastUsedAt revokedAt expiresAt status rotatedFromId } }", json!({}), Some(token))
            .await;
        assert_eq!(keys["keys"], seen["keys"], "{email}");
        let usage = app
            .ok("{ keysUsage { cycleStart cycleEnd totalCredits remainingCredits keys { credits requests apiKey { id } } } }", json!({}), Some(token))
            .await;
        assert_eq!(usage["keysUsage"], seen["keysUsage"], "{email}");
        let series = app
            .ok(
                "{ usageSeries { from to total { start credits requests } } }",
                json!({}),
                Some(token),
            )
            .await;
        assert_eq!(series["usageSeries"], seen["series"], "{email}");
        let hours = app
            .ok("query($from: DateTime!) { usageSeries(from: $from, interval: HOUR) { total { start credits requests } } }", json!({ "from": manifest["hours_from"] }), Some(token))
            .await;
        assert_eq!(hours["usageSeries"], seen["hours"], "{email}");
        // The password still signs in.
        let password = manifest["passwords"][email].as_str().unwrap();
        app.ok(LOGIN, json!({ "email": email, "password": password }), None)
            .await;
        // Every key's secret is still its key: a free check says its status.
        for (name, key) in user["keys"].as_object().unwrap() {
            let check = app
                .verify(json!({ "key": key["secret"], "credits": 0 }))
                .await;
            let listed = seen["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["id"] == key["id"])
                .unwrap();
            let expected = match listed["status"].as_str().unwrap() {
                "ACTIVE" => "VALID",
                other => other,
            };
            assert_eq!(
                (check["code"].as_str(), &check["keyId"]),
                (Some(expected), &key["id"]),
                "{email} {name}"
            );
        }
    }
    // A remembered requestId answers its first answer and charges nothing.
    for (call, recorded) in manifest["answers"].as_object().unwrap() {
        let replay = app
            .ok("mutation($i: VerifyKeyInput!) { verifyKey(input: $i) { valid code keyId remainingCredits cycleEnd } }", json!({ "i": recorded["input"] }), None)
            .await;
        assert_eq!(replay["verifyKey"], recorded["answer"], "{call}");
    }
    let alice = &manifest["users"]["alice@example.com"]["token"];
    let usage = app
        .ok("{ keysUsage { totalCredits } }", json!({}), alice.as_str())
        .await;
    assert_eq!(
        usage["keysUsage"]["totalCredits"],
        manifest["seen"]["alice@example.com"]["keysUsage"]["totalCredits"]
    );
}

on_both_backends! {
    async fn a_database_of_each_earlier_release_upgrades_with_nothing_lost(backend: Backend) {
        for release in RELEASES {
            upgrade_keeps_everything(backend.clone(), release).await;
        }
    }
}
