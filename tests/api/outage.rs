//! The database goes away and comes back: keymeter reports it, fails fast
//! and cleanly, and recovers on its own. PostgreSQL only: the server reaches
//! it through a TCP proxy the test can cut.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::*;

/// Forwards TCP connections to `upstream` until cut: then it drops every open
/// connection and refuses new ones, as a database that went away would.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (is_cut, open) = (cut.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let upstream = upstream.clone();
                open.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self {
            addr,
            cut,
            connections,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

async fn health(app: &TestApp) -> u16 {
    app.http
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_is_reported_fails_fast_and_recovers_without_restart() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Backend::Postgres { admin_url } = &backend else {
        unreachable!()
    };
    // host:port of the test server, out of postgres://user:password@host:port/db
    let upstream = admin_url
        .rsplit_once('@')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let proxy = Proxy::start(upstream.clone()).await;
    let proxied = proxy.addr.to_string();
    let app = TestApp::spawn_with(backend.clone(), |config| {
        config.database_url = config.database_url.replace(&upstream, &proxied);
        config.db_acquire_timeout_ms = 1_000;
    })
    .await;
    let user = app.signup().await;
    assert_eq!(health(&app).await, 200);

    proxy.cut();
    eventually(Duration::from_secs(5), || async {
        health(&app).await == 503
    })
    .await;
    let started = Instant::now();
    let requests = [
        (ME, json!({}), Some(user.token.as_str())),
        (
            VERIFY_KEY,
            json!({ "input": { "key": user.default_secret(), "credits": 1 } }),
            None,
        ),
        (
            SIGNUP,
            json!({ "email": unique_email(), "password": PASSWORD }),
            None,
        ),
    ];
    for (query, variables, token) in requests {
        let response: Value = app.graphql(query, variables, token).await;
        assert_error(&response, "INTERNAL_SERVER_ERROR");
        assert_eq!(response["errors"][0]["message"], "internal server error");
    }
    // A gateway is told to try later, never that the key is bad.
    let gateway = app
        .http
        .get(app.url("/gateway/verify"))
        .bearer_auth(user.default_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(gateway.status(), 503);
    assert!(gateway.headers().get("x-keymeter-code").is_none());
    let body: Value = gateway.json().await.unwrap();
    assert_error(&body, "INTERNAL_SERVER_ERROR");
    // Bounded by the pool's acquire timeout (1 s here), not by TCP's.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );

    proxy.restore();
    let recovery = eventually(Duration::from_secs(10), || async {
        health(&app).await == 200
    })
    .await;
    eprintln!("recovered {recovery:?} after the database came back");
    let me = app.ok(ME, json!({}), Some(&user.token)).await;
    assert_eq!(me["me"]["id"], user.id.as_str());
    assert_eq!(app.charge(user.default_secret(), 5).await["code"], "VALID");
}
