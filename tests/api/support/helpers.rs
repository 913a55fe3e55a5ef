use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
pub use keymeter::clock::{Clock, ManualClock};
use keymeter::{Application, Config};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{json, Value};
use uuid::Uuid;

/// Defines one test per database, `name::sqlite` and `name::postgres`, each
/// given a freshly spawned server.
macro_rules! on_both_databases {
    ($(
        $(#[$meta:meta])*
        async fn $name:ident($app:ident: TestApp) $body:block
    )*) => {
        on_both_backends! {$(
            $(#[$meta])*
            async fn $name(backend: Backend) {
                let $app = $crate::helpers::TestApp::spawn(backend).await;
                $body
            }
        )*}
    };
}

/// Defines one test per database for tests that start the server themselves
/// (with their own configuration): they receive the `Backend`.
macro_rules! on_both_backends {
    ($(
        $(#[$meta:meta])*
        async fn $name:ident($backend:ident: Backend) $body:block
    )*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($backend: $crate::helpers::Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::helpers::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = $crate::helpers::Backend::postgres() {
                    run(backend).await
                }
            }
        }
    )*};
}

/// A test that cannot run here, for want of `what` (PostgreSQL, a browser,
/// a gateway, the OpenID provider): a failure in CI (`CI=true`); elsewhere
/// it returns early, and this says so where the run's summary shows it.
/// cargo shows nothing a passing test prints, so each skip is also written
/// to the file `KEYMETER_SKIPPED` names, which scripts/test.sh reads back.
pub fn skip(what: &str) {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI=true but {what}"
    );
    eprintln!("skipped: {what}");
    let Some(path) = std::env::var_os("KEYMETER_SKIPPED") else {
        return;
    };
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("{test}\t{what}\n");
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path);
    if let Ok(mut file) = file {
        use std::io::Write as _;
        let _ = file.write_all(line.as_bytes());
    }
}

/// Polls `probe` until it holds, for at most `limit`; how a test waits for
/// something another task or process does, instead of sleeping a guess.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    limit: std::time::Duration,
    mut probe: impl FnMut() -> F,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    while !probe().await {
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    started.elapsed()
}

pub const PASSWORD: &str = "correct horse battery";

#[derive(Clone)]
pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    /// PostgreSQL when KEYMETER_TEST_DATABASE_URL is set. Unset, its tests
    /// are skipped, except in CI, where that is a failure.
    pub fn postgres() -> Option<Self> {
        match std::env::var("KEYMETER_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => Some(Self::Postgres { admin_url }),
            _ => {
                skip("KEYMETER_TEST_DATABASE_URL is not set: no PostgreSQL to run on");
                None
            }
        }
    }
}

/// A fresh database of its own for one test, removed when dropped.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Database { admin_url: String, name: String },
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("keymeter-test-{}", Uuid::new_v4()));
                std::fs::create_dir_all(&dir).expect("creating a temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.join("keymeter.db").display());
                Self {
                    url,
                    cleanup: Cleanup::File(dir),
                }
            }
            Backend::Postgres { admin_url } => {
                let name = format!("keymeter_test_{}", Uuid::new_v4().simple());
                let admin = Database::connect(admin_url.as_str())
                    .await
                    .expect("connecting to KEYMETER_TEST_DATABASE_URL");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("creating a test database");
                admin.close().await.ok();
                let (base, _) = admin_url
                    .rsplit_once('/')
                    .expect("a URL with a database name");
                Self {
                    url: format!("{base}/{name}"),
                    cleanup: Cleanup::Database {
                        admin_url: admin_url.clone(),
                        name,
                    },
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime: drop the database from
                // a thread with a runtime of its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async {
                        let admin = Database::connect(admin_url.as_str()).await?;
                        admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await?;
                        admin.close().await
                    })
                    .map_err(std::io::Error::other)
                })
                .join();
            }
        }
    }
}

/// The server under test, a client for it, and a direct connection to its
/// database for checking what was stored.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// Where `/metrics` is served when it has an address of its own.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub http: reqwest::Client,
    pub db: keymeter::store::db::Db,
    pub clock: ManualClock,
    pub config: Config,
    /// Stops the server (see `stop`); dropped unused, the server runs
    /// until the test's runtime ends, as it always has.
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _database: TestDatabase,
}

/// A stopped server's database and configuration, for starting another.
pub struct Stopped {
    config: Config,
    database: TestDatabase,
}

impl Stopped {
    /// A new server on the stopped one's database and configuration, its
    /// clock at `now`.
    pub async fn start(self, now: chrono::DateTime<Utc>) -> TestApp {
        let config = self.config;
        TestApp::spawn_on(self.database, now, |c| *c = config).await
    }
}

pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
    /// The signup response's `data.signup`.
    pub signup: Value,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let database = TestDatabase::create(&backend).await;
        Self::spawn_on(database, Utc::now(), configure).await
    }

    /// A server on `database` as it is (say, made by an earlier release),
    /// its clock at `now`; it migrates the database as it starts.
    pub async fn spawn_on(
        database: TestDatabase,
        now: chrono::DateTime<Utc>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::from_defaults();
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.database_url = database.url.clone();
        // Hundreds of short-lived servers: opening each pool on demand keeps
        // the suite fast (server processes started by tests keep the default).
        config.db_min_connections = Some(0);
        configure(&mut config);

        let clock = ManualClock::new(now);
        let app = Application::build_with_clock(&config, Arc::new(clock.clone()))
            .await
            .expect("building the application");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        }));

        let db = Database::connect(database.url.as_str())
            .await
            .expect("connecting to the test database")
            .into();
        Self {
            addr,
            metrics_addr,
            http: reqwest::Client::new(),
            db,
            clock,
            config,
            stop,
            server,
            _database: database,
        }
    }

    /// Stops this server as a shutdown signal would (its background workers
    /// aborted, its pool closed), keeping its database for `Stopped::start`.
    pub async fn stop(self) -> Stopped {
        let _ = self.stop.send(());
        self.server
            .await
            .expect("the server task")
            .expect("the server stopped cleanly");
        let _ = self.db.close().await;
        Stopped {
            config: self.config,
            database: self._database,
        }
    }

    /// Starts another server on this one's database and clock, as a second
    /// process would be, and returns its address.
    pub async fn spawn_second_server(&self) -> std::net::SocketAddr {
        let app = Application::build_with_clock(&self.config, Arc::new(self.clock.clone()))
            .await
            .expect("building a second server");
        let addr = app.local_addr();
        tokio::spawn(app.run_until(std::future::pending()));
        addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// POSTs a GraphQL request and returns the whole JSON response.
    pub async fn graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        self.graphql_at(self.addr, query, variables, token).await
    }

    /// `graphql`, sent to the server at `addr`.
    pub async fn graphql_at(
        &self,
        addr: std::net::SocketAddr,
        query: &str,
        variables: Value,
        token: Option<&str>,
    ) -> Value {
        let mut request = self.graphql_request(addr, query, variables);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        send_graphql(request).await
    }

    /// `graphql_at`, as a reverse proxy forwards a request from `client`: it
    /// appends the client's address to `X-Forwarded-For`. The server must
    /// trust that header (`trust_forwarded_for`) for it to count.
    pub async fn graphql_from(
        &self,
        addr: std::net::SocketAddr,
        client: &str,
        query: &str,
        variables: Value,
    ) -> Value {
        let request = self
            .graphql_request(addr, query, variables)
            .header("X-Forwarded-For", client);
        send_graphql(request).await
    }

    fn graphql_request(
        &self,
        addr: std::net::SocketAddr,
        query: &str,
        variables: Value,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(format!("http://{addr}/graphql"))
            .json(&json!({ "query": query, "variables": variables }))
    }

    /// Like `graphql`, but the call must succeed: returns `data`.
    pub async fn ok(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let response = self.graphql(query, variables, token).await;
        assert!(
            response.get("errors").is_none(),
            "unexpected errors: {response:#}"
        );
        response["data"].clone()
    }

    pub async fn signup_as(&self, email: &str) -> TestUser {
        let data = self
            .ok(
                SIGNUP,
                json!({ "email": email, "password": PASSWORD }),
                None,
            )
            .await;
        let signup = data["signup"].clone();
        TestUser {
            id: signup["user"]["id"].as_str().unwrap().to_owned(),
            email: signup["user"]["email"].as_str().unwrap().to_owned(),
            token: signup["token"].as_str().unwrap().to_owned(),
            signup,
        }
    }

    pub async fn signup(&self) -> TestUser {
        self.signup_as(&unique_email()).await
    }

    pub async fn create_key(&self, user: &TestUser, name: &str, key_type: &str) -> Value {
        let data = self
            .ok(
                CREATE_KEY,
                json!({ "input": { "name": name, "keyType": key_type } }),
                Some(&user.token),
            )
            .await;
        data["createKey"].clone()
    }

    /// Runs one SQL query with no parameters and returns its first column as i64s.
    pub async fn query_i64(&self, sql: &str) -> Vec<i64> {
        self.rows(sql)
            .await
            .iter()
            .map(|row| row.try_get_by_index::<i64>(0).expect("an integer column"))
            .collect()
    }

    /// Runs one SQL query with no parameters and returns its rows.
    pub async fn rows(&self, sql: &str) -> Vec<sea_orm::QueryResult> {
        self.db
            .query_all_raw(Statement::from_string(self.backend(), sql))
            .await
            .expect("running a check query")
    }

    pub async fn execute(&self, sql: &str) {
        self.db
            .execute_unprepared(sql)
            .await
            .expect("running test SQL");
    }
}

pub async fn send_graphql(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.expect("POST /graphql");
    assert!(
        response.status().is_success() || response.status().is_client_error(),
        "unexpected HTTP status {}",
        response.status()
    );
    response.json().await.expect("a JSON response")
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", Uuid::new_v4().simple())
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

#[track_caller]
pub fn assert_error(response: &Value, code: &str) {
    assert_eq!(
        error_code(response),
        Some(code),
        "expected {code}: {response:#}"
    );
}

pub const SIGNUP: &str = r#"
mutation Signup($email: String!, $password: String!) {
  signup(input: { email: $email, password: $password }) {
    token
    user { id email createdAt billingAccount { id plan monthlyCredits billingCycleStart billingCycleEnd } }
    defaultKey { secret apiKey { id name keyType prefix createdAt lastUsedAt revokedAt } }
  }
}"#;

pub const LOGIN: &str = r#"
mutation Login($email: String!, $password: String!) {
  login(input: { email: $email, password: $password }) { token user { id email } }
}"#;

pub const ME: &str = r#"
query { me { id email createdAt billingAccount { id plan monthlyCredits billingCycleStart billingCycleEnd } } }"#;

pub const CREATE_KEY: &str = r#"
mutation CreateKey($input: CreateKeyInput!) {
  createKey(input: $input) { secret apiKey { id name keyType prefix createdAt lastUsedAt revokedAt } }
}"#;

pub const KEYS: &str = r#"
query Keys($includeRevoked: Boolean) {
  keys(includeRevoked: $includeRevoked) { id name keyType prefix createdAt lastUsedAt revokedAt }
}"#;

pub const REVOKE_KEY: &str = r#"
mutation Revoke($id: UUID!) { revokeKey(id: $id) { id name revokedAt } }"#;

pub const VERIFY_KEY: &str = r#"
mutation Verify($input: VerifyKeyInput!) {
  verifyKey(input: $input) { valid code keyId keyType remainingCredits cycleEnd }
}"#;

pub const KEYS_USAGE: &str = r#"
query {
  keysUsage {
    cycleStart cycleEnd totalCredits remainingCredits
    keys { credits requests apiKey { id name keyType prefix createdAt lastUsedAt revokedAt } }
  }
}"#;

impl TestApp {
    /// verifyKey with these input fields (`key` must be among them); returns its result.
    pub async fn verify(&self, input: Value) -> Value {
        self.ok(VERIFY_KEY, json!({ "input": input }), None).await["verifyKey"].clone()
    }

    /// verifyKey charging `credits` to `secret`.
    pub async fn charge(&self, secret: &str, credits: i64) -> Value {
        self.verify(json!({ "key": secret, "credits": credits }))
            .await
    }

    /// Signs in again (sessions expire when tests move the clock by months).
    pub async fn login(&self, user: &mut TestUser) {
        let data = self
            .ok(
                LOGIN,
                json!({ "email": user.email, "password": PASSWORD }),
                None,
            )
            .await;
        user.token = data["login"]["token"].as_str().unwrap().to_owned();
    }

    pub async fn keys_usage(&self, user: &TestUser) -> Value {
        self.ok(KEYS_USAGE, json!({}), Some(&user.token)).await["keysUsage"].clone()
    }
}

impl TestUser {
    /// The secret of the default key made at signup.
    pub fn default_secret(&self) -> &str {
        self.signup["defaultKey"]["secret"]
            .as_str()
            .expect("a default key")
    }

    pub fn default_key_id(&self) -> &str {
        self.signup["defaultKey"]["apiKey"]["id"]
            .as_str()
            .expect("a default key")
    }
}
