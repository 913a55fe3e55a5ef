//! Every setting keymeter reads, in one place: each is a CLI flag and an
//! environment variable (a `.env` file is read first when present).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;

use crate::domain::{AccountPolicy, Limit, LoginLimits, Retention};

/// Settings shared by every subcommand that touches the database or serves.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "KEYMETER_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Database to use: `sqlite://file.db?mode=rwc` (embedded) or `postgres://user:pass@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://keymeter.db?mode=rwc"
    )]
    pub database_url: String,

    /// Most connections the pool opens. Defaults to 1 on SQLite (one writer
    /// at a time: writes queue in the pool instead of failing as "database is
    /// locked") and 16 on PostgreSQL. PostgreSQL has two sets this size, one
    /// for single statements and one for transactions (`store::db`).
    #[arg(long, env = "KEYMETER_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,

    /// Connections opened at start and kept open (in each set). Defaults to
    /// all of them: a connection opened under load can hold requests back
    /// for seconds.
    #[arg(long, env = "KEYMETER_DB_MIN_CONNECTIONS")]
    pub db_min_connections: Option<u32>,

    /// How long a request waits for a database connection before it fails
    /// with INTERNAL_SERVER_ERROR, in milliseconds.
    #[arg(long, env = "KEYMETER_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_acquire_timeout_ms: u64,

    /// Credits included in each billing cycle of a new account.
    #[arg(long, env = "KEYMETER_MONTHLY_CREDITS", default_value_t = 1_000)]
    pub monthly_credits: i64,

    /// Active (unrevoked) keys one user may hold, the default key included;
    /// createKey past it is refused with BAD_USER_INPUT. 0 removes the cap.
    #[arg(long, env = "KEYMETER_MAX_ACTIVE_KEYS", default_value_t = 100)]
    pub max_active_keys: u32,

    /// How long a session token stays valid, in days.
    #[arg(long, env = "KEYMETER_SESSION_TTL_DAYS", default_value_t = 30)]
    pub session_ttl_days: u32,

    /// Days raw per-call events are kept; older ones are deleted by the
    /// sweep (keysUsage and usageSeries read rollups, never events).
    #[arg(long, env = "KEYMETER_EVENT_RETENTION_DAYS", default_value_t = 400)]
    pub event_retention_days: u32,

    /// Days hourly usage rollups are kept (daily ones and cycle counters are
    /// kept for ever); a HOUR usageSeries reaching further back is refused.
    #[arg(
        long,
        env = "KEYMETER_HOURLY_USAGE_RETENTION_DAYS",
        default_value_t = 90
    )]
    pub hourly_usage_retention_days: u32,

    /// Seconds between a process's sweeps for expired rows.
    #[arg(long, env = "KEYMETER_SWEEP_INTERVAL_SECS", default_value_t = 300)]
    pub sweep_interval_secs: u32,

    /// Failed logins allowed per email from one client address within the
    /// login window; past it, RATE_LIMITED even for the right password, at
    /// that email from that address only. 0 turns the limit off.
    #[arg(long, env = "KEYMETER_LOGIN_MAX_FAILURES", default_value_t = 10)]
    pub login_max_failures: u32,

    /// Failed logins allowed from one client address within the login
    /// window, whatever the emails. 0 turns the limit off.
    #[arg(
        long,
        env = "KEYMETER_LOGIN_FAILURES_PER_ADDRESS",
        default_value_t = 50
    )]
    pub login_failures_per_address: u32,

    /// Failed logins allowed per email within the login window, whatever the
    /// addresses; past it the email is locked for everyone, its owner too.
    /// 0 turns the limit off.
    #[arg(long, env = "KEYMETER_LOGIN_FAILURES_PER_EMAIL", default_value_t = 100)]
    pub login_failures_per_email: u32,

    /// The window every failed-login limit counts in, in seconds.
    #[arg(long, env = "KEYMETER_LOGIN_WINDOW_SECS", default_value_t = 15 * 60)]
    pub login_window_secs: u32,

    /// Signups allowed per client address within the signup window. 0 turns the limit off.
    #[arg(long, env = "KEYMETER_SIGNUPS_PER_ADDRESS", default_value_t = 20)]
    pub signups_per_address: u32,

    /// The window signups are counted in, in seconds.
    #[arg(long, env = "KEYMETER_SIGNUP_WINDOW_SECS", default_value_t = 60 * 60)]
    pub signup_window_secs: u32,

    /// Provider sign-ins (startSignIn) allowed per client address within the
    /// sign-in window. 0 turns the limit off.
    #[arg(long, env = "KEYMETER_SIGN_INS_PER_ADDRESS", default_value_t = 30)]
    pub sign_ins_per_address: u32,

    /// The window provider sign-ins are counted in, in seconds.
    #[arg(long, env = "KEYMETER_SIGN_IN_WINDOW_SECS", default_value_t = 10 * 60)]
    pub sign_in_window_secs: u32,

    /// Started provider sign-ins kept at once, across every client; past it
    /// startSignIn answers RATE_LIMITED until flows complete or expire.
    #[arg(long, env = "KEYMETER_MAX_SIGN_IN_FLOWS", default_value_t = 10_000)]
    pub max_sign_in_flows: u32,

    /// Take the client address from the last `X-Forwarded-For` entry, as set by
    /// a trusted reverse proxy, instead of the TCP peer. Only behind such a proxy.
    #[arg(long, env = "KEYMETER_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,

    /// Threads hashing passwords (Argon2id, 19 MiB each); further signups
    /// and logins queue. Defaults to half the CPUs, so that hashing never
    /// takes every core from verifyKey.
    #[arg(long, env = "KEYMETER_HASHING_CONCURRENCY")]
    pub hashing_concurrency: Option<usize>,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "KEYMETER_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest total size of a request's header lines, in bytes; larger gets 431.
    #[arg(long, env = "KEYMETER_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Seconds a client has to send a request's headers, counted from its
    /// first byte; a slower client is disconnected.
    #[arg(long, env = "KEYMETER_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds a kept-alive connection may sit idle between requests before it is closed.
    #[arg(long, env = "KEYMETER_KEEP_ALIVE_TIMEOUT_SECS", default_value_t = 60)]
    pub keep_alive_timeout_secs: u64,

    /// Seconds a client has to send a request's body once its headers are in;
    /// a slower one gets 408 and the connection is closed.
    #[arg(long, env = "KEYMETER_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Most connections open at once; past it new connections wait in the
    /// listen backlog until one closes.
    #[arg(long, env = "KEYMETER_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Seconds a shutdown (SIGTERM, Ctrl-C) waits for in-flight requests
    /// before it closes every connection and exits anyway.
    #[arg(long, env = "KEYMETER_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,

    /// Deepest selection a query may nest; deeper ones are refused before running.
    #[arg(long, env = "KEYMETER_MAX_QUERY_DEPTH", default_value_t = 16)]
    pub max_query_depth: usize,

    /// What one query may cost: a field in memory 1, a read 200, a write
    /// 200, a password hash 2,000, and a list of the account's keys its
    /// item's fields once per key; more is refused before it runs.
    #[arg(long, env = "KEYMETER_MAX_QUERY_COMPLEXITY", default_value_t = 10_000)]
    pub max_query_complexity: usize,

    /// Usage points (a series' buckets × its keys and total) one request
    /// may render, over every usageSeries it asks; more is refused before
    /// any is read.
    #[arg(long, env = "KEYMETER_MAX_USAGE_POINTS", default_value_t = 25_000)]
    pub max_usage_points: u64,

    /// Answer schema introspection (`__schema`, `__type`), which codegen tools and GraphiQL use.
    #[arg(long, env = "KEYMETER_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,

    /// Serve the GraphiQL playground on `GET /graphql`.
    #[arg(long, env = "KEYMETER_GRAPHIQL", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphiql: bool,

    /// Browser origins allowed to call the API (CORS), comma-separated, e.g.
    /// `https://dashboard.example.com`. None by default.
    #[arg(
        long,
        env = "KEYMETER_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,

    /// Charge concurrent verifyKey calls together, several per transaction
    /// (group commit). Off: each call in its own transaction.
    #[arg(long, env = "KEYMETER_GROUP_COMMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub group_commit: bool,

    /// Most verifyKey calls charged in one transaction.
    #[arg(long, env = "KEYMETER_GROUP_COMMIT_MAX_BATCH", default_value_t = 64)]
    pub group_commit_max_batch: usize,

    /// Batches in flight at once; while one commits the next gathers.
    #[arg(long, env = "KEYMETER_GROUP_COMMIT_WORKERS", default_value_t = 2)]
    pub group_commit_workers: usize,

    /// Let concurrent lookups of keys (verifyKey) and of session tokens
    /// share one query, and the same dashboard read asked by several
    /// requests at once share one statement. Off: one query per lookup
    /// and per read.
    #[arg(long, env = "KEYMETER_COALESCE_READS", default_value_t = true, action = clap::ArgAction::Set)]
    pub coalesce_reads: bool,

    /// Serve `GET /metrics` (OpenMetrics text, for Prometheus).
    #[arg(long, env = "KEYMETER_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// Serve `/metrics` only on this address, e.g. `127.0.0.1:9100`, and not
    /// on the API's (which then answers 404 for it): the production setting,
    /// so that the internet never reads the metrics. Unset: on the API port.
    #[arg(long, env = "KEYMETER_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Log every SQL statement (target `sqlx::query`, without its values).
    #[arg(long, env = "KEYMETER_LOG_QUERIES", default_value_t = false, action = clap::ArgAction::Set)]
    pub log_queries: bool,

    /// Log filter in `tracing` syntax, e.g. `info` or `keymeter=debug,sqlx=warn`.
    #[arg(long, env = "KEYMETER_LOG", default_value = "info")]
    pub log: String,

    /// The origin browsers reach keymeter at, e.g. `https://keys.example.com`
    /// (no path: keymeter is served at the root); sign-in providers send them
    /// back to `{this}/auth/callback`. Defaults to `http://` and the address
    /// the server listens on.
    #[arg(long, env = "KEYMETER_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Sign-in providers, comma-separated ids, e.g. `google`. Each is set up
    /// with `KEYMETER_OIDC_<ID>_CLIENT_ID`, `_CLIENT_SECRET`, `_ISSUER` and
    /// `_NAME` (see the README). None by default.
    #[arg(
        long,
        env = "KEYMETER_OIDC_PROVIDERS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub oidc_providers: Vec<String>,

    /// The SMTP server invitations are sent through: `smtps://user:pass@host[:port]`
    /// (TLS), `smtp://host[:port]?tls=required` (STARTTLS) or plain
    /// `smtp://host[:port]`. Set with KEYMETER_EMAIL_FROM, or neither: then
    /// nothing is emailed.
    #[arg(long, env = "KEYMETER_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// The From of every email, e.g. `keymeter <keys@example.com>`.
    #[arg(long, env = "KEYMETER_EMAIL_FROM")]
    pub email_from: Option<String>,

    /// Seconds between an email's failed attempts, comma-separated: one
    /// more attempt than delays, then it is dropped with a warning.
    #[arg(
        long,
        env = "KEYMETER_MAIL_RETRY_DELAYS",
        value_delimiter = ',',
        default_value = "5,30,120,600,3600"
    )]
    pub mail_retry_delays: Vec<u64>,

    /// Lets webhook endpoints be http:// URLs and reach private, loopback
    /// and link-local addresses. Off by default: an OWNER could otherwise
    /// make keymeter call into its own network (SSRF). For development and
    /// tests only.
    #[arg(
        long,
        env = "KEYMETER_WEBHOOK_ALLOW_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub webhook_allow_private: bool,

    /// Seconds to wait before each retry of a failed webhook attempt,
    /// comma-separated: n delays give at most n + 1 attempts, then FAILED.
    #[arg(
        long,
        env = "KEYMETER_WEBHOOK_RETRY_DELAYS",
        value_delimiter = ',',
        default_value = "5,30,120,600,1800,3600,7200,14400,28800,43200"
    )]
    pub webhook_retry_delays: Vec<u64>,

    /// Longest wait for a webhook endpoint's answer, in seconds; past it the
    /// attempt failed.
    #[arg(long, env = "KEYMETER_WEBHOOK_TIMEOUT_SECS", default_value_t = 15)]
    pub webhook_timeout_secs: u64,

    /// Each provider's settings, by id. Not flags: their names depend on the
    /// ids, so `read_provider_settings` takes them from the environment.
    #[arg(skip)]
    pub oidc: BTreeMap<String, ProviderSettings>,
}

/// One sign-in provider's client registration.
#[derive(Clone)]
pub struct ProviderSettings {
    pub client_id: String,
    pub client_secret: String,
    pub issuer: String,
    /// What its sign-in button says.
    pub name: String,
}

impl std::fmt::Debug for ProviderSettings {
    // The client secret is a credential: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("client_id", &self.client_id)
            .field("issuer", &self.issuer)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How webhooks leave: validated by `Config::webhook_settings`.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// http:// and private addresses allowed (KEYMETER_WEBHOOK_ALLOW_PRIVATE).
    pub allow_private: bool,
    /// The waits before each retry, in order.
    pub retry_delays: Vec<Duration>,
    /// Longest wait for one attempt's answer.
    pub timeout: Duration,
}

/// How email leaves: validated, so a `Mailer` built from it cannot fail.
#[derive(Clone)]
pub struct MailSettings {
    /// May carry the SMTP password: never logged.
    pub smtp_url: String,
    pub from: lettre::message::Mailbox,
    /// The waits after each failed attempt, in order.
    pub retry_delays: Vec<Duration>,
}

impl std::fmt::Debug for MailSettings {
    // The URL may carry a password: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("from", &self.from.to_string())
            .field("retry_delays", &self.retry_delays)
            .finish_non_exhaustive()
    }
}

const GOOGLE_ISSUER: &str = "https://accounts.google.com";

impl Config {
    /// The defaults, as a fresh clone runs with no environment set.
    pub fn from_defaults() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        <Wrapper as clap::Parser>::parse_from(["keymeter"]).config
    }

    /// Refuses settings that cannot work, before anything touches the
    /// database: the message names the setting and what it must be.
    pub fn validate(&self) -> Result<(), String> {
        for origin in self.cors_origins() {
            check_origin(origin)?;
        }
        let positive = [
            ("KEYMETER_MAX_BODY_BYTES", self.max_body_bytes as u64),
            ("KEYMETER_MAX_QUERY_DEPTH", self.max_query_depth as u64),
            (
                "KEYMETER_MAX_QUERY_COMPLEXITY",
                self.max_query_complexity as u64,
            ),
            ("KEYMETER_MAX_USAGE_POINTS", self.max_usage_points),
            (
                "KEYMETER_HEADER_READ_TIMEOUT_SECS",
                self.header_read_timeout_secs,
            ),
            (
                "KEYMETER_KEEP_ALIVE_TIMEOUT_SECS",
                self.keep_alive_timeout_secs,
            ),
            ("KEYMETER_REQUEST_TIMEOUT_SECS", self.request_timeout_secs),
            ("KEYMETER_SHUTDOWN_TIMEOUT_SECS", self.shutdown_timeout_secs),
            ("KEYMETER_MAX_CONNECTIONS", self.max_connections as u64),
            (
                "KEYMETER_SESSION_TTL_DAYS",
                u64::from(self.session_ttl_days),
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        // A day of hours is what the dashboard charts; 100 years is forever.
        for (name, days, least) in [
            (
                "KEYMETER_EVENT_RETENTION_DAYS",
                self.event_retention_days,
                1,
            ),
            (
                "KEYMETER_HOURLY_USAGE_RETENTION_DAYS",
                self.hourly_usage_retention_days,
                2,
            ),
        ] {
            if !(least..=36_500).contains(&days) {
                return Err(format!("{name} must be between {least} and 36500 days"));
            }
        }
        if !(1..=86_400).contains(&self.sweep_interval_secs) {
            return Err("KEYMETER_SWEEP_INTERVAL_SECS must be between 1 and 86400".into());
        }
        if self.metrics_bind == Some(self.bind) && self.bind.port() != 0 {
            return Err("KEYMETER_METRICS_BIND must differ from KEYMETER_BIND".into());
        }
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes) {
            return Err("KEYMETER_MAX_HEADER_BYTES must be between 1024 and 1048576".into());
        }
        if !(0..=i64::from(i32::MAX)).contains(&self.monthly_credits) {
            return Err(format!(
                "KEYMETER_MONTHLY_CREDITS must be between 0 and {}",
                i32::MAX
            ));
        }
        self.mail_settings()?;
        self.webhook_settings()?;
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|err| format!("KEYMETER_LOG is not a valid filter: {err}"))?;
        self.validate_sign_in()
    }

    fn validate_sign_in(&self) -> Result<(), String> {
        self.public_origin(self.bind)?;
        for id in self.provider_ids() {
            check_provider_id(id)?;
            let var = provider_var(id, "");
            let settings = self
                .oidc
                .get(id)
                .ok_or_else(|| format!("{var}CLIENT_ID and {var}CLIENT_SECRET must be set"))?;
            if settings.client_id.is_empty() || settings.client_secret.is_empty() {
                return Err(format!("{var}CLIENT_ID and {var}CLIENT_SECRET must be set"));
            }
            check_issuer(&settings.issuer).map_err(|why| format!("{var}ISSUER: {why}"))?;
        }
        Ok(())
    }

    /// Where and as whom email is sent: `None` when neither
    /// KEYMETER_SMTP_URL nor KEYMETER_EMAIL_FROM is set (nothing is
    /// emailed); refused when only one is, or either cannot work. A refusal
    /// names the variable and never echoes the URL: it may hold a password.
    pub fn mail_settings(&self) -> Result<Option<MailSettings>, String> {
        let given = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        if self.mail_retry_delays.len() > 20 || self.mail_retry_delays.iter().any(|&s| s > 86_400) {
            return Err(
                "KEYMETER_MAIL_RETRY_DELAYS must be at most 20 delays of 0 to 86400 seconds".into(),
            );
        }
        let (url, from) = match (given(&self.smtp_url), given(&self.email_from)) {
            (None, None) => return Ok(None),
            (Some(url), Some(from)) => (url, from),
            (Some(_), None) => {
                return Err("KEYMETER_EMAIL_FROM must be set with KEYMETER_SMTP_URL".into())
            }
            (None, Some(_)) => {
                return Err("KEYMETER_SMTP_URL must be set with KEYMETER_EMAIL_FROM".into())
            }
        };
        check_smtp_url(&url)?;
        let from = from.parse::<lettre::message::Mailbox>().map_err(|_| {
            format!("KEYMETER_EMAIL_FROM: {from:?} is not a mailbox such as keymeter <keys@example.com>")
        })?;
        Ok(Some(MailSettings {
            smtp_url: url,
            from,
            retry_delays: self
                .mail_retry_delays
                .iter()
                .map(|&secs| Duration::from_secs(secs))
                .collect(),
        }))
    }

    /// How webhooks are sent; refused when the delays or the timeout are
    /// out of range (checked by `validate`, before the database).
    pub fn webhook_settings(&self) -> Result<WebhookSettings, String> {
        if self.webhook_retry_delays.len() > 20
            || self.webhook_retry_delays.iter().any(|&s| s > 86_400)
        {
            return Err(
                "KEYMETER_WEBHOOK_RETRY_DELAYS must be at most 20 delays of 0 to 86400 seconds"
                    .into(),
            );
        }
        if !(1..=300).contains(&self.webhook_timeout_secs) {
            return Err("KEYMETER_WEBHOOK_TIMEOUT_SECS must be 1 to 300".into());
        }
        Ok(WebhookSettings {
            allow_private: self.webhook_allow_private,
            retry_delays: self
                .webhook_retry_delays
                .iter()
                .map(|&secs| Duration::from_secs(secs))
                .collect(),
            timeout: Duration::from_secs(self.webhook_timeout_secs),
        })
    }

    /// The configured provider ids, blanks dropped.
    pub fn provider_ids(&self) -> impl Iterator<Item = &str> {
        self.oidc_providers
            .iter()
            .map(|id| id.trim())
            .filter(|id| !id.is_empty())
    }

    /// Fills `oidc` from `KEYMETER_OIDC_<ID>_*`, read through `var`, for
    /// every configured provider; `validate` then says what is missing.
    pub fn read_provider_settings(&mut self, var: impl Fn(&str) -> Option<String>) {
        let ids: Vec<String> = self.provider_ids().map(str::to_owned).collect();
        for id in ids {
            let get = |suffix: &str| var(&provider_var(&id, suffix)).filter(|v| !v.is_empty());
            let is_google = id == "google";
            let settings = ProviderSettings {
                client_id: get("CLIENT_ID").unwrap_or_default(),
                client_secret: get("CLIENT_SECRET").unwrap_or_default(),
                issuer: get("ISSUER")
                    .or_else(|| is_google.then(|| GOOGLE_ISSUER.to_owned()))
                    .unwrap_or_default(),
                name: get("NAME").unwrap_or_else(|| {
                    if is_google {
                        "Google".into()
                    } else {
                        id.clone()
                    }
                }),
            };
            self.oidc.insert(id, settings);
        }
    }

    /// Where browsers reach this server, given the address it listens on:
    /// the configured public URL as an origin, or `http://` and that address.
    pub fn public_origin(&self, listening: SocketAddr) -> Result<PublicOrigin, String> {
        match self.configured_public_url() {
            Some(raw) => PublicOrigin::parse(raw),
            None => Ok(PublicOrigin(format!("http://{listening}"))),
        }
    }

    fn configured_public_url(&self) -> Option<&str> {
        self.public_url.as_deref().filter(|url| !url.is_empty())
    }

    /// The origins keymeter's own pages are served from: `public`, and,
    /// when no public URL is configured and keymeter listens on loopback,
    /// the same port under the other loopback names a person might type
    /// (`localhost`, `127.0.0.1`, `[::1]`). A request carrying the session
    /// cookie must come from one of them (see `http::endpoint`).
    pub fn page_origins(&self, public: &PublicOrigin, listening: SocketAddr) -> Vec<String> {
        let mut origins = vec![public.as_str().to_owned()];
        if self.configured_public_url().is_none() && listening.ip().is_loopback() {
            let port = listening.port();
            for host in ["localhost", "127.0.0.1", "[::1]"] {
                let origin = format!("http://{host}:{port}");
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
        }
        origins
    }

    /// The configured CORS origins, blanks dropped.
    pub fn cors_origins(&self) -> impl Iterator<Item = &str> {
        self.cors_origins
            .iter()
            .map(|origin| origin.trim())
            .filter(|origin| !origin.is_empty())
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    pub fn max_connections(&self) -> u32 {
        self.db_max_connections
            .unwrap_or(if self.is_sqlite() { 1 } else { 16 })
            .max(1)
    }

    pub fn min_connections(&self) -> u32 {
        let max = self.max_connections();
        self.db_min_connections.unwrap_or(max).min(max)
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms)
    }

    pub fn retention(&self) -> Retention {
        Retention {
            events: chrono::Duration::days(i64::from(self.event_retention_days)),
            hourly_usage: chrono::Duration::days(i64::from(self.hourly_usage_retention_days)),
            sweep_every: std::time::Duration::from_secs(u64::from(self.sweep_interval_secs)),
        }
    }

    pub fn session_ttl(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.session_ttl_days))
    }

    pub fn login_limits(&self) -> LoginLimits {
        let window = chrono::Duration::seconds(i64::from(self.login_window_secs));
        let limit = |max| Limit { max, window };
        LoginLimits {
            per_email_and_address: limit(self.login_max_failures),
            per_address: limit(self.login_failures_per_address),
            per_email: limit(self.login_failures_per_email),
        }
    }

    /// What new accounts get, and the limits on signing up and in.
    pub fn account_policy(&self) -> AccountPolicy {
        AccountPolicy {
            plan: "free".to_owned(),
            monthly_credits: self.monthly_credits,
            max_active_keys: self.max_active_keys,
            session_ttl: self.session_ttl(),
            login_limits: self.login_limits(),
            signup_limit: self.signup_limit(),
            sign_in_limit: Limit {
                max: self.sign_ins_per_address,
                window: chrono::Duration::seconds(i64::from(self.sign_in_window_secs)),
            },
            max_sign_in_flows: self.max_sign_in_flows,
            hourly_usage_kept: self.retention().hourly_usage,
        }
    }

    pub fn signup_limit(&self) -> Limit {
        Limit {
            max: self.signups_per_address,
            window: chrono::Duration::seconds(i64::from(self.signup_window_secs)),
        }
    }

    pub fn hashing_concurrency(&self) -> usize {
        self.hashing_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() / 2))
            .max(1)
    }
}

/// A browser origin is exactly `scheme://host[:port]`: a wildcard would let
/// every site call the API with a user's credentials.
fn check_origin(origin: &str) -> Result<(), String> {
    let refuse = |why: &str| Err(format!("KEYMETER_CORS_ORIGINS: {origin:?} {why}"));
    if origin.contains('*') {
        return refuse("is a wildcard; list each dashboard origin instead");
    }
    let Some((scheme, host)) = origin.split_once("://") else {
        return refuse("is not an origin such as https://dashboard.example.com");
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !matches!(scheme, "http" | "https") || !host_ok {
        return refuse(
            "is not an origin such as https://dashboard.example.com (no path, no slash)",
        );
    }
    Ok(())
}

/// An SMTP URL as lettre reads it (`smtp://` or `smtps://`, a host, and
/// `tls=required|opportunistic` for STARTTLS). Nothing of the URL is
/// echoed: the part after the scheme may hold a password.
fn check_smtp_url(raw: &str) -> Result<(), String> {
    const EXAMPLE: &str = "such as smtps://user:password@smtp.example.com";
    let Ok(url) = url::Url::parse(raw) else {
        return Err(format!("KEYMETER_SMTP_URL is not a URL {EXAMPLE}"));
    };
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err(format!(
            "KEYMETER_SMTP_URL must be smtp:// or smtps://, {EXAMPLE}"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("KEYMETER_SMTP_URL has no host; give one {EXAMPLE}"));
    }
    // lettre itself decides the rest (the tls parameter, the EHLO name):
    // whatever it refuses now would fail every delivery later.
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(raw)
        .map(|_| ())
        .map_err(|_| {
            format!(
                "KEYMETER_SMTP_URL is not an SMTP URL lettre accepts (smtp:// takes tls=required or tls=opportunistic), {EXAMPLE}"
            )
        })
}

/// `KEYMETER_OIDC_<ID>_<suffix>`.
fn provider_var(id: &str, suffix: &str) -> String {
    format!("KEYMETER_OIDC_{}_{suffix}", id.to_ascii_uppercase())
}

/// Ids become parts of environment variable names and of the sign-in state
/// (`<id>.<random>`), so they are kept to what fits both.
fn check_provider_id(id: &str) -> Result<(), String> {
    let fits = id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if fits {
        Ok(())
    } else {
        Err(format!(
            "KEYMETER_OIDC_PROVIDERS: {id:?} must be lower-case letters, digits and _ (at most 32)"
        ))
    }
}

/// An issuer is https, or plain http on a loopback address (a provider
/// started by tests): its keys decide who may sign in.
fn check_issuer(issuer: &str) -> Result<(), String> {
    if issuer.is_empty() {
        return Err("must be set (the provider's issuer URL)".into());
    }
    if issuer.starts_with("https://") {
        return Ok(());
    }
    let host = issuer
        .strip_prefix("http://")
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .ok_or_else(|| format!("{issuer:?} must be an https URL"))?;
    let host = match host.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "{issuer:?} must be https (plain http only on a loopback address)"
        ))
    }
}

/// Where browsers reach keymeter, spelled exactly as they send it in
/// `Origin`: `scheme://host[:port]`, scheme and host lower-case, no default
/// port. Compared byte for byte with that header, so
/// `HTTPS://Keys.Example.COM:443` must become `https://keys.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin(String);

impl PublicOrigin {
    /// Parses `KEYMETER_PUBLIC_URL`. Only an origin is accepted (a path of
    /// `/` at most): keymeter's pages, API and callback live at the root,
    /// and a browser's `Origin` carries no path, query, fragment or user.
    pub fn parse(raw: &str) -> Result<Self, String> {
        const EXAMPLE: &str = "an origin such as https://keys.example.com";
        let refuse = |why: &str| Err(format!("KEYMETER_PUBLIC_URL: {raw:?} {why}"));
        let Ok(url) = url::Url::parse(raw) else {
            return refuse(&format!("is not {EXAMPLE}"));
        };
        if !matches!(url.scheme(), "http" | "https") {
            return refuse(&format!("is not http or https; give {EXAMPLE}"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not echoed: what follows the scheme may be a password.
            return Err(format!(
                "KEYMETER_PUBLIC_URL must not carry a user name or password; give {EXAMPLE}"
            ));
        }
        let extra = [
            (url.path() != "/", "a path"),
            (url.query().is_some(), "a query"),
            (url.fragment().is_some(), "a fragment"),
        ];
        if let Some((_, what)) = extra.iter().find(|(present, _)| *present) {
            return refuse(&format!(
                "has {what}; keymeter is served at the root: give {EXAMPLE}"
            ));
        }
        Ok(Self(url.origin().ascii_serialization()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        config: Config,
    }

    /// `.env.example` and the README's table list every setting there is.
    #[test]
    fn every_setting_is_documented() {
        let env_example = include_str!("../.env.example");
        let readme = include_str!("../README.md");
        let command = Wrapper::command();
        let names: Vec<_> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        assert!(names.len() >= 25);
        for name in names {
            assert!(
                env_example.contains(&format!("{name}=")),
                "{name} missing from .env.example"
            );
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{name} missing from the README"
            );
        }
    }

    /// The sweep must keep every attempt some limit still counts.
    #[test]
    fn attempts_are_kept_for_the_longest_window_of_all_limits() {
        let longest =
            |config: &Config| config.account_policy().longest_limit_window().num_seconds();
        let mut config = Config::from_defaults();
        assert_eq!(longest(&config), 3600, "the signup window");
        config.login_window_secs = 7200;
        assert_eq!(longest(&config), 7200, "the login window");
    }

    #[test]
    fn settings_that_cannot_work_are_refused_with_their_name() {
        let config = Config::from_defaults();
        assert_eq!(config.validate(), Ok(()));
        let refused = |change: fn(&mut Config)| {
            let mut config = Config::from_defaults();
            change(&mut config);
            config.validate().unwrap_err()
        };
        assert!(refused(|c| c.cors_origins = vec!["*".into()]).contains("wildcard"));
        assert!(
            refused(|c| c.cors_origins = vec!["https://*.example.com".into()])
                .contains("KEYMETER_CORS_ORIGINS")
        );
        assert!(
            refused(|c| c.cors_origins = vec!["https://a.example.com/".into()]).contains("no path")
        );
        assert!(refused(|c| c.cors_origins = vec!["example.com".into()]).contains("origin"));
        assert!(refused(|c| c.monthly_credits = -1).contains("KEYMETER_MONTHLY_CREDITS"));
        assert!(refused(|c| c.request_timeout_secs = 0).contains("KEYMETER_REQUEST_TIMEOUT_SECS"));
        assert!(refused(|c| c.max_header_bytes = 10).contains("KEYMETER_MAX_HEADER_BYTES"));
        assert!(refused(|c| c.metrics_bind = Some(c.bind)).contains("KEYMETER_METRICS_BIND"));
        let mut fine = Config::from_defaults();
        fine.cors_origins = vec![
            " https://dashboard.example.com ".into(),
            "http://[::1]:3000".into(),
            "".into(),
        ];
        assert_eq!(fine.validate(), Ok(()));
    }

    #[test]
    fn email_needs_both_settings_or_neither_and_never_echoes_the_password() {
        let with = |url: &str, from: &str| {
            let mut config = Config::from_defaults();
            config.smtp_url = Some(url.into());
            config.email_from = Some(from.into());
            config.validate().and_then(|()| config.mail_settings())
        };
        assert!(Config::from_defaults().mail_settings().unwrap().is_none());
        assert!(with("", "").unwrap().is_none(), "blank is unset");
        let settings = with(
            "smtps://ops:hunter2@smtp.example.com",
            "Keys <keys@example.com>",
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.retry_delays.len(), 5);
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert!(with("smtp://127.0.0.1:2525", "keys@example.com").is_ok());
        for (url, from, says) in [
            ("smtp://smtp.example.com", "", "KEYMETER_EMAIL_FROM"),
            ("", "keys@example.com", "KEYMETER_SMTP_URL"),
            (
                "https://ops:hunter2@smtp.example.com",
                "k@example.com",
                "KEYMETER_SMTP_URL",
            ),
            ("smtp://ops:hunter2@", "k@example.com", "KEYMETER_SMTP_URL"),
            (
                "ops:hunter2@smtp.example.com",
                "k@example.com",
                "KEYMETER_SMTP_URL",
            ),
            (
                "smtp://ops:hunter2@smtp.example.com?tls=maybe",
                "k@example.com",
                "KEYMETER_SMTP_URL",
            ),
            (
                "smtp://smtp.example.com",
                "not a mailbox",
                "KEYMETER_EMAIL_FROM",
            ),
        ] {
            let refused = with(url, from).unwrap_err();
            assert!(refused.starts_with(says), "{url} {from}: {refused}");
            assert!(
                !refused.contains("hunter2") && !refused.contains('\n'),
                "{refused}"
            );
        }
        let mut config = Config::from_defaults();
        config.mail_retry_delays = vec![5, 100_000];
        assert!(config
            .validate()
            .unwrap_err()
            .contains("KEYMETER_MAIL_RETRY_DELAYS"));
    }

    #[test]
    fn providers_come_from_their_environment_variables() {
        let env: BTreeMap<&str, &str> = [
            (
                "KEYMETER_OIDC_GOOGLE_CLIENT_ID",
                "id.apps.googleusercontent.com",
            ),
            ("KEYMETER_OIDC_GOOGLE_CLIENT_SECRET", "shh"),
            ("KEYMETER_OIDC_CORP_CLIENT_ID", "corp-id"),
            ("KEYMETER_OIDC_CORP_CLIENT_SECRET", "corp-secret"),
            ("KEYMETER_OIDC_CORP_ISSUER", "https://login.corp.example"),
            ("KEYMETER_OIDC_CORP_NAME", "Corp SSO"),
        ]
        .into();
        let mut config = Config::from_defaults();
        config.oidc_providers = vec!["google".into(), " corp".into()];
        config.read_provider_settings(|name| env.get(name).map(|v| v.to_string()));
        assert_eq!(config.validate(), Ok(()));
        let google = &config.oidc["google"];
        assert_eq!(google.issuer, "https://accounts.google.com");
        assert_eq!(google.name, "Google");
        assert_eq!(config.oidc["corp"].name, "Corp SSO");
        assert!(!format!("{config:?}").contains("shh"), "no secret in Debug");
    }

    #[test]
    fn misconfigured_providers_are_refused_with_the_setting_to_fix() {
        let with = |issuer: &str, secret: &str| {
            let mut config = Config::from_defaults();
            config.oidc_providers = vec!["corp".into()];
            let env: BTreeMap<String, String> = [
                ("KEYMETER_OIDC_CORP_CLIENT_ID".to_owned(), "id".to_owned()),
                (
                    "KEYMETER_OIDC_CORP_CLIENT_SECRET".to_owned(),
                    secret.to_owned(),
                ),
                ("KEYMETER_OIDC_CORP_ISSUER".to_owned(), issuer.to_owned()),
            ]
            .into();
            config.read_provider_settings(|name| env.get(name).cloned());
            config.validate()
        };
        assert_eq!(with("http://127.0.0.1:9400", "s"), Ok(()));
        assert_eq!(with("http://localhost:9400/", "s"), Ok(()));
        assert_eq!(with("http://[::1]:9400", "s"), Ok(()));
        assert!(with("http://login.corp.example", "s")
            .unwrap_err()
            .contains("KEYMETER_OIDC_CORP_ISSUER"));
        assert!(with("http://127.0.0.1.evil.example", "s").is_err());
        assert!(with("", "s")
            .unwrap_err()
            .contains("KEYMETER_OIDC_CORP_ISSUER"));
        assert!(with("https://login.corp.example", "")
            .unwrap_err()
            .contains("KEYMETER_OIDC_CORP_CLIENT_SECRET"));
        let mut config = Config::from_defaults();
        config.oidc_providers = vec!["Bad.Id".into()];
        assert!(config
            .validate()
            .unwrap_err()
            .contains("KEYMETER_OIDC_PROVIDERS"));
    }

    #[test]
    fn sqlite_gets_one_connection_postgres_a_pool() {
        let mut config = Config::from_defaults();
        assert!(config.is_sqlite());
        assert_eq!(config.max_connections(), 1);
        config.database_url = "postgres://localhost/keymeter".into();
        assert_eq!(config.max_connections(), 16);
        config.db_max_connections = Some(4);
        assert_eq!(config.max_connections(), 4);
    }

    #[test]
    fn the_whole_pool_is_opened_at_start_unless_configured() {
        let mut config = Config::from_defaults();
        config.database_url = "postgres://localhost/keymeter".into();
        assert_eq!(config.min_connections(), 16);
        config.db_min_connections = Some(2);
        assert_eq!(config.min_connections(), 2);
        config.db_min_connections = Some(40);
        assert_eq!(config.min_connections(), 16, "never more than the pool");
    }

    #[test]
    fn page_origins_are_the_public_urls_or_the_loopback_names() {
        let mut config = Config::from_defaults();
        let listening: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let origins = |config: &Config| {
            let public = config.public_origin(listening).unwrap();
            config.page_origins(&public, listening)
        };
        assert_eq!(
            origins(&config),
            [
                "http://127.0.0.1:8000",
                "http://localhost:8000",
                "http://[::1]:8000"
            ]
        );
        config.public_url = Some("HTTPS://Keys.Example.COM:443/".into());
        assert_eq!(origins(&config), ["https://keys.example.com"]);
    }

    #[test]
    fn the_public_url_becomes_the_origin_browsers_send() {
        let origin = |raw: &str| PublicOrigin::parse(raw).map(|o| o.as_str().to_owned());
        for (raw, sent) in [
            ("HTTPS://Keys.Example.COM:443", "https://keys.example.com"),
            ("https://keys.example.com/", "https://keys.example.com"),
            ("HTTP://LOCALHOST:80/", "http://localhost"),
            (
                "http://Keys.Example.com:8443",
                "http://keys.example.com:8443",
            ),
            ("https://keys.example.com:80", "https://keys.example.com:80"),
            ("http://[::1]:8000", "http://[::1]:8000"),
            ("https://Bücher.example", "https://xn--bcher-kva.example"),
        ] {
            assert_eq!(origin(raw).as_deref(), Ok(sent), "{raw}");
        }
        assert!(PublicOrigin::parse("https://k.example").unwrap().is_https());
        assert!(!PublicOrigin::parse("HTTP://k.example").unwrap().is_https());
    }

    #[test]
    fn a_public_url_that_is_not_an_origin_is_refused() {
        for (raw, says) in [
            ("https://keys.example.com/base/", "has a path"),
            ("https://keys.example.com/auth/callback", "has a path"),
            ("https://keys.example.com/?tenant=a", "has a query"),
            ("https://keys.example.com/#top", "has a fragment"),
            ("ftp://keys.example.com", "is not http or https"),
            ("keys.example.com", "is not an origin"),
            ("https://", "is not an origin"),
        ] {
            let refused = PublicOrigin::parse(raw).unwrap_err();
            assert!(refused.starts_with("KEYMETER_PUBLIC_URL"), "{refused}");
            assert!(refused.contains(says), "{raw}: {refused}");
            assert!(!refused.contains('\n'), "one line: {refused}");
        }
        let refused = PublicOrigin::parse("https://ops:hunter2@keys.example.com").unwrap_err();
        assert!(refused.contains("user name or password") && !refused.contains("hunter2"));
        let mut config = Config::from_defaults();
        config.public_url = Some("https://keys.example.com/base".into());
        assert!(config
            .validate()
            .unwrap_err()
            .contains("KEYMETER_PUBLIC_URL"));
    }
}
