//! Two real keymeter processes on one PostgreSQL database: the quota and
//! idempotency hold across processes because nothing lives in their memory.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

/// A keymeter server process, killed when dropped.
struct ServerProcess {
    child: Child,
    addr: String,
}

impl ServerProcess {
    fn start(database_url: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keymeter"))
            .env("DATABASE_URL", database_url)
            .env("KEYMETER_BIND", "127.0.0.1:0")
            .env("KEYMETER_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the keymeter binary");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("keymeter exited before listening")
                .expect("reading keymeter's output");
            if let Some((_, addr)) = line.split_once("keymeter listening addr=") {
                break addr.trim().to_owned();
            }
        };
        // Keep draining the output so the process never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, addr }
    }

    async fn verify(&self, client: &reqwest::Client, input: Value) -> Value {
        let response: Value = client
            .post(format!("http://{}/graphql", self.addr))
            .json(&json!({ "query": VERIFY_KEY, "variables": { "input": input } }))
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("a JSON response");
        assert!(response.get("errors").is_none(), "{response:#}");
        response["data"]["verifyKey"].clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_exact_quota() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn(backend).await;
    let user = app.signup().await;
    let url = app.config.database_url.clone();
    let (a, b) = tokio::task::spawn_blocking(move || {
        (ServerProcess::start(&url), ServerProcess::start(&url))
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
