//! Connections with deadlines: a half-sent request, an idle keep-alive
//! connection and a slow body are each cut off by their own deadline, the
//! number of open connections is capped, and SIGTERM exits within its
//! deadline whatever clients hold open. Deadlines are set short here.

use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::server_process::ServerProcess;

const REQUEST: &str = "POST /graphql HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\nContent-Length: 28\r\n\r\n{\"query\":\"{ __typename }\"}\r\n";

/// Reads until the server closes the connection; how long that took, and what came.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Duration, String) {
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut answer))
        .await
        .expect("the server closed the connection within the limit")
        .ok();
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

async fn spawn_with_deadlines(backend: Backend, header: u64, idle: u64, body: u64) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.header_read_timeout_secs = header;
        config.keep_alive_timeout_secs = idle;
        config.request_timeout_secs = body;
    })
    .await
}

on_both_backends! {
    async fn half_sent_headers_are_cut_off_by_the_header_deadline(backend: Backend) {
        let app = spawn_with_deadlines(backend, 1, 30, 30).await;
        let mut slow = Vec::new();
        for _ in 0..50 {
            let mut stream = TcpStream::connect(app.addr).await.unwrap();
            stream.write_all(b"POST /graphql HTTP/1.1\r\nHost: k\r\nX-Slow: ").await.unwrap();
            slow.push(stream);
        }
        for stream in &mut slow {
            let (waited, answer) = until_closed(stream, Duration::from_secs(10)).await;
            assert!(answer.is_empty(), "{answer}");
            assert!(waited < Duration::from_secs(10));
        }
        // Still serving everyone else.
        app.signup().await;
    }

    async fn idle_keep_alive_connections_are_closed_but_a_slow_first_byte_is_not_a_header(backend: Backend) {
        let app = spawn_with_deadlines(backend, 1, 2, 30).await;
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(REQUEST.as_bytes()).await.unwrap();
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        // Idle past the header deadline but within the idle one: still open.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stream.write_all(REQUEST.as_bytes()).await.unwrap();
        let (_, answer) = until_closed(&mut stream, Duration::from_secs(10)).await;
        assert_eq!(answer.matches("HTTP/1.1 200").count(), 1, "the second request was answered: {answer}");
        // Then closed once idle past its deadline, having said nothing more.
        let mut idle = TcpStream::connect(app.addr).await.unwrap();
        let (waited, answer) = until_closed(&mut idle, Duration::from_secs(10)).await;
        assert!(answer.is_empty() && waited >= Duration::from_millis(1500), "{waited:?} {answer}");
    }

    async fn a_slow_body_gets_408_within_the_request_deadline(backend: Backend) {
        let app = spawn_with_deadlines(backend, 10, 30, 1).await;
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"POST /graphql HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\":")
            .await
            .unwrap();
        let (_, answer) = until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("BAD_USER_INPUT"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("content-type: application/json"), "{answer}");
    }

    async fn connections_past_the_cap_wait_until_one_closes(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.max_connections = 2).await;
        let holders = [TcpStream::connect(app.addr).await.unwrap(), TcpStream::connect(app.addr).await.unwrap()];
        // The kernel accepts the third; keymeter does not serve it yet.
        let mut third = TcpStream::connect(app.addr).await.unwrap();
        third.write_all(REQUEST.as_bytes()).await.unwrap();
        let mut status = [0u8; 12];
        let early = tokio::time::timeout(Duration::from_millis(500), third.read_exact(&mut status)).await;
        assert!(early.is_err(), "served past the cap");
        drop(holders);
        tokio::time::timeout(Duration::from_secs(10), third.read_exact(&mut status)).await.unwrap().unwrap();
        assert_eq!(&status, b"HTTP/1.1 200");
    }

    async fn sigterm_exits_within_its_deadline_whatever_clients_hold(backend: Backend) {
        let database = TestDatabase::create(&backend).await;
        let mut server = ServerProcess::start(&database.url, &[
            ("KEYMETER_SHUTDOWN_TIMEOUT_SECS", "2"),
            ("KEYMETER_HEADER_READ_TIMEOUT_SECS", "60"),
            ("KEYMETER_REQUEST_TIMEOUT_SECS", "60"),
        ]);
        let addr: std::net::SocketAddr = server.addr.parse().unwrap();
        let mut half_sent = TcpStream::connect(addr).await.unwrap();
        half_sent.write_all(b"POST /graphql HTTP/1.1\r\nHost: k\r\n").await.unwrap();
        let mut slow_body = TcpStream::connect(addr).await.unwrap();
        slow_body
            .write_all(b"POST /graphql HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            .await
            .unwrap();
        let _idle = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let signalled = Instant::now();
        server.signal("TERM");
        let status = tokio::task::block_in_place(|| server.wait_for_exit(Duration::from_secs(8)));
        eprintln!("exited {:?} after SIGTERM", signalled.elapsed());
        assert!(status.success(), "{status:?}\n{}", server.output());
        assert!(server.output().contains("keymeter stopped"), "{}", server.output());
    }

    async fn settings_that_cannot_work_stop_the_binary_before_the_database(backend: Backend) {
        let database = TestDatabase::create(&backend).await;
        for (name, value, says) in [
            ("KEYMETER_CORS_ORIGINS", "*", "wildcard"),
            ("KEYMETER_CORS_ORIGINS", "https://a.example.com,https://*.example.com", "KEYMETER_CORS_ORIGINS"),
            ("KEYMETER_MONTHLY_CREDITS", "-5", "KEYMETER_MONTHLY_CREDITS"),
            ("KEYMETER_LOGIN_MAX_FAILURES", "-1", "-1"),
            ("KEYMETER_REQUEST_TIMEOUT_SECS", "0", "KEYMETER_REQUEST_TIMEOUT_SECS"),
            ("KEYMETER_PUBLIC_URL", "https://keys.example.com/base/", "has a path"),
            ("KEYMETER_PUBLIC_URL", "https://keys.example.com/?a=1", "has a query"),
            ("KEYMETER_PUBLIC_URL", "ftp://keys.example.com", "KEYMETER_PUBLIC_URL"),
            // Email needs both settings; a lone URL's password is not echoed.
            ("KEYMETER_SMTP_URL", "smtps://ops:hunter2@smtp.example.com", "KEYMETER_EMAIL_FROM must be set"),
            ("KEYMETER_EMAIL_FROM", "keys@example.com", "KEYMETER_SMTP_URL must be set"),
            ("KEYMETER_MAIL_RETRY_DELAYS", "5,100000", "KEYMETER_MAIL_RETRY_DELAYS"),
            ("KEYMETER_EVENT_RETENTION_DAYS", "0", "KEYMETER_EVENT_RETENTION_DAYS"),
            ("KEYMETER_HOURLY_USAGE_RETENTION_DAYS", "1", "KEYMETER_HOURLY_USAGE_RETENTION_DAYS"),
            ("KEYMETER_SWEEP_INTERVAL_SECS", "0", "KEYMETER_SWEEP_INTERVAL_SECS"),
            ("KEYMETER_SWEEP_INTERVAL_SECS", "soon", "soon"),
        ] {
            refuse_to_start(&database, &[(name, value)], says);
        }
        // Both email settings given, one of them unusable.
        let from = ("KEYMETER_EMAIL_FROM", "keymeter <keys@example.com>");
        let url = ("KEYMETER_SMTP_URL", "smtp://127.0.0.1:2525");
        for (env, says) in [
            ([("KEYMETER_SMTP_URL", "https://ops:hunter2@smtp.example.com"), from], "KEYMETER_SMTP_URL"),
            ([("KEYMETER_SMTP_URL", "ops:hunter2@smtp.example.com"), from], "KEYMETER_SMTP_URL"),
            ([("KEYMETER_SMTP_URL", "smtp://ops:hunter2@smtp.example.com?tls=sometimes"), from], "KEYMETER_SMTP_URL"),
            ([url, ("KEYMETER_EMAIL_FROM", "keys at example dot com")], "KEYMETER_EMAIL_FROM"),
        ] {
            refuse_to_start(&database, &env, says);
        }
        // Nothing touched the database: not even the migrations ran.
        let app_db = sea_orm::Database::connect(database.url.as_str()).await.unwrap();
        let tables = count_tables(&app_db).await;
        assert_eq!(tables, 0);
    }
}

/// Starts the binary with `env` on `database` and expects it to stop at
/// once with status 2 and one line naming the setting, no password in it.
fn refuse_to_start(database: &TestDatabase, env: &[(&str, &str)], says: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_keymeter"))
        .env("DATABASE_URL", &database.url)
        .env("KEYMETER_BIND", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
    assert!(stderr.contains(says), "{env:?}: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "a password echoed: {stderr}");
}

async fn count_tables(db: &sea_orm::DatabaseConnection) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
        _ => "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    };
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}
