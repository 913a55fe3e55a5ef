//! `store::db`'s own PostgreSQL connections for single statements, on a
//! real PostgreSQL: a connection goes back for the next statement only in
//! step with the server. A statement cut off mid-way has its answer read
//! out before its connection is reused, a refused one leaves it usable, rows a statement left unread do
//! not reach the next one, a connection the server dropped is replaced, and
//! a statement that cannot have a connection in time fails as "unreachable"
//! with nothing sent. PostgreSQL only: SQLite goes through sea-orm's pool.

use std::time::Duration;

use keymeter::store::db::{Connections, Db};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::{ConnAcquireErr, ConnectionTrait, Database, DbBackend, DbErr, Statement};

use crate::helpers::*;

struct Fixture {
    db: Db,
    url: String,
    _database: TestDatabase,
}

/// A fresh database, and a `Db` on it with at most `max` connections for
/// single statements.
async fn fixture(max: u32, acquire_timeout: Duration) -> Option<Fixture> {
    let backend = Backend::postgres()?;
    let database = TestDatabase::create(&backend).await;
    let pool = Database::connect(database.url.as_str()).await.unwrap();
    let options: PgConnectOptions = database.url.parse().unwrap();
    let statements = Connections::open(options, 0, max, acquire_timeout)
        .await
        .unwrap();
    Some(Fixture {
        db: Db::new(pool, statements),
        url: database.url.clone(),
        _database: database,
    })
}

fn sql(text: &str) -> Statement {
    Statement::from_string(DbBackend::Postgres, text)
}

async fn one_i64(db: &Db, text: &str) -> Result<i64, DbErr> {
    let row = db.query_one_raw(sql(text)).await?.expect("a row");
    row.try_get_by_index::<i64>(0)
}

/// The server process behind the connection the next statement gets.
async fn backend_pid(db: &Db) -> i64 {
    one_i64(db, "SELECT pg_backend_pid()::bigint")
        .await
        .unwrap()
}

/// Starts a statement that sleeps `seconds` and drops it 50 ms in.
async fn cut_off_while_sleeping(db: &Db, seconds: &str) {
    let text = format!("SELECT 7::bigint, pg_sleep({seconds})");
    let cut = tokio::time::timeout(Duration::from_millis(50), db.query_one_raw(sql(&text))).await;
    assert!(cut.is_err(), "the sleep ran to the end: {cut:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_cut_off_is_answered_out_before_its_connection_is_reused() {
    let Some(fixture) = fixture(1, Duration::from_secs(5)).await else {
        return;
    };
    let db = &fixture.db;
    let before = backend_pid(db).await;
    cut_off_while_sleeping(db, "0.5").await;
    // The answer still on its way must not become the next statement's:
    // the one connection comes back once that answer has been read.
    assert_eq!(one_i64(db, "SELECT 2::bigint").await.unwrap(), 2);
    assert_eq!(backend_pid(db).await, before, "the connection was not kept");
    assert_eq!(db.connections_for_statements(), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_cut_off_does_not_hold_up_the_next() {
    let Some(fixture) = fixture(2, Duration::from_secs(5)).await else {
        return;
    };
    let db = &fixture.db;
    let cut_pid = backend_pid(db).await;
    cut_off_while_sleeping(db, "1").await;
    // The cut-off connection is busy until its sleep ends: the next
    // statement runs on another one instead of waiting behind it.
    assert_ne!(backend_pid(db).await, cut_pid);
    eventually(Duration::from_secs(5), || async {
        db.connections_for_statements() == (2, 2)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_statement_leaves_its_connection_in_step() {
    let Some(fixture) = fixture(1, Duration::from_secs(5)).await else {
        return;
    };
    let db = &fixture.db;
    let before = backend_pid(db).await;
    let refused = one_i64(db, "SELECT (1 / 0)::bigint").await;
    assert!(
        matches!(&refused, Err(DbErr::Query(_))),
        "expected PostgreSQL's refusal: {refused:?}"
    );
    assert_eq!(one_i64(db, "SELECT 3::bigint").await.unwrap(), 3);
    assert_eq!(backend_pid(db).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_statement_left_unread_do_not_reach_the_next() {
    let Some(fixture) = fixture(1, Duration::from_secs(5)).await else {
        return;
    };
    let db = &fixture.db;
    let before = backend_pid(db).await;
    let first = one_i64(db, "SELECT n::bigint FROM generate_series(1, 5000) AS n")
        .await
        .unwrap();
    assert_eq!(first, 1);
    assert_eq!(one_i64(db, "SELECT 4::bigint").await.unwrap(), 4);
    let rows = db
        .query_all_raw(sql("SELECT n::bigint FROM generate_series(1, 3) AS n"))
        .await
        .unwrap();
    let numbers: Vec<i64> = rows
        .iter()
        .map(|row| row.try_get_by_index(0).unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(backend_pid(db).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_dropped_is_replaced() {
    let Some(fixture) = fixture(2, Duration::from_secs(5)).await else {
        return;
    };
    let db = &fixture.db;
    let before = backend_pid(db).await;
    let admin = Database::connect(fixture.url.as_str()).await.unwrap();
    admin
        .execute_unprepared(&format!("SELECT pg_terminate_backend({before})"))
        .await
        .unwrap();
    // The first statement may find the connection broken, as with any pool
    // that does not ping before each statement; the next one gets another.
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(one_i64(db, "SELECT 5::bigint").await);
    }
    assert!(
        matches!(answers.last(), Some(Ok(5))),
        "no new connection after the old one was dropped: {answers:?}"
    );
    assert_ne!(backend_pid(db).await, before);
    let (open, _) = db.connections_for_statements();
    assert!(open <= 2, "{open} open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_without_a_connection_in_time_sends_nothing() {
    let Some(fixture) = fixture(1, Duration::from_millis(200)).await else {
        return;
    };
    let db = fixture.db.clone();
    let sleeping = tokio::spawn(async move {
        db.execute_unprepared("SELECT pg_sleep(1.5)").await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waited = one_i64(&fixture.db, "SELECT 6::bigint").await;
    assert!(
        matches!(
            waited,
            Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))
        ),
        "{waited:?}"
    );
    sleeping.await.unwrap();
    assert_eq!(one_i64(&fixture.db, "SELECT 6::bigint").await.unwrap(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_statements_each_get_their_own_answer() {
    let Some(fixture) = fixture(4, Duration::from_secs(10)).await else {
        return;
    };
    let mut tasks = Vec::new();
    for n in 0..200_i64 {
        let db = fixture.db.clone();
        tasks.push(tokio::spawn(async move {
            let text = format!("SELECT {n}::bigint, pg_sleep(0.001)");
            // Some cut off, so that connections are dropped under load too.
            if n % 7 == 0 {
                let cut =
                    tokio::time::timeout(Duration::from_micros(200), db.query_one_raw(sql(&text)));
                let _ = cut.await;
                return None;
            }
            Some((n, one_i64(&db, &text).await.unwrap()))
        }));
    }
    for task in tasks {
        if let Some((asked, answered)) = task.await.unwrap() {
            assert_eq!(asked, answered);
        }
    }
    let (open, _) = fixture.db.connections_for_statements();
    assert!(open <= 4, "{open} open");
    // Those cut off come back once their answers are read out.
    eventually(Duration::from_secs(5), || async {
        let (open, idle) = fixture.db.connections_for_statements();
        open >= 1 && idle == open
    })
    .await;
}
