//! What is measured: each scenario is a request shape driven by wrk for a
//! fixed time at a fixed concurrency, split over the server processes.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{json, Value};
use uuid::Uuid;

use keymeter::domain::Interval;
use keymeter::store::counters;

use crate::documents::{self, Document};
use crate::server::Server;
use crate::Args;

/// What seeding made: a hot account for verifyKey, and an account with 20
/// keys and `events` usage events for keysUsage.
pub struct Seed {
    pub hot_secret: String,
    /// The default key of an account like the hot key's, with a rate limit
    /// the benchmark never reaches (1,000,000 calls a day).
    pub limited_secret: String,
    pub hot_token: String,
    pub usage_token: String,
    pub usage_user: Uuid,
    pub usage_cycle_start: DateTime<Utc>,
    /// The dashboard's reads, with keymeter's answers for the keysUsage
    /// account (20 keys, its seeded usage).
    pub documents: Vec<Document>,
}

/// What a usageSeries scenario asks for: the cycle's 30 days by DAY, or
/// its first 168 hours by HOUR, in whole buckets.
pub struct SeriesScenario {
    pub name: &'static str,
    pub interval: Interval,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The usageSeries scenarios' names, DAY then HOUR.
pub static SERIES_NAMES: [&str; 2] = ["usageSeries 30 days by DAY", "usageSeries 168 h by HOUR"];

impl SeriesScenario {
    pub fn of(seed: &Seed, by_hour: bool) -> Self {
        let (hours, interval) = match by_hour {
            true => (168, Interval::Hour),
            false => (30 * 24, Interval::Day),
        };
        // 168 hours from an hour's start are 168 buckets.
        let from = Interval::Hour.bucket_of_charge(seed.usage_cycle_start);
        Self {
            name: SERIES_NAMES[usize::from(by_hour)],
            interval,
            from,
            to: from + chrono::Duration::hours(hours),
        }
    }
}

const SIGNUP: &str = "mutation($e: String!) { signup(input: { email: $e, password: \"benchmark password\" }) { token user { id billingAccount { billingCycleStart } } defaultKey { secret apiKey { id } } } }";

async fn graphql(
    http: &reqwest::Client,
    server: &Server,
    query: &str,
    variables: Value,
    token: Option<&str>,
) -> anyhow::Result<Value> {
    let mut request = http
        .post(server.url())
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response: Value = request.send().await?.json().await?;
    if response.get("errors").is_some() {
        bail!("seeding request failed: {response}");
    }
    Ok(response["data"].clone())
}

pub async fn seed(server: &Server, args: &Args) -> anyhow::Result<Seed> {
    let http = reqwest::Client::new();
    let run = Uuid::new_v4().simple().to_string();
    let hot = graphql(
        &http,
        server,
        SIGNUP,
        json!({ "e": format!("hot-{run}@bench.example") }),
        None,
    )
    .await?;
    let usage = graphql(
        &http,
        server,
        SIGNUP,
        json!({ "e": format!("usage-{run}@bench.example") }),
        None,
    )
    .await?;
    let limited = graphql(
        &http,
        server,
        SIGNUP,
        json!({ "e": format!("limited-{run}@bench.example") }),
        None,
    )
    .await?;
    let limit = "mutation($id: UUID!) { setKeyRateLimit(id: $id, rateLimit: { limit: 1000000, windowSeconds: 86400 }) { id } }";
    graphql(
        &http,
        server,
        limit,
        json!({ "id": limited["signup"]["defaultKey"]["apiKey"]["id"] }),
        limited["signup"]["token"].as_str(),
    )
    .await?;
    let usage_token = usage["signup"]["token"]
        .as_str()
        .context("token")?
        .to_owned();
    for i in 1..20 {
        let create =
            "mutation($n: String!) { createKey(input: { name: $n, keyType: PROD }) { secret } }";
        graphql(
            &http,
            server,
            create,
            json!({ "n": format!("key {i}") }),
            Some(&usage_token),
        )
        .await?;
    }
    let mut seed = Seed {
        hot_secret: hot["signup"]["defaultKey"]["secret"]
            .as_str()
            .context("secret")?
            .to_owned(),
        hot_token: hot["signup"]["token"].as_str().context("token")?.to_owned(),
        limited_secret: limited["signup"]["defaultKey"]["secret"]
            .as_str()
            .context("secret")?
            .to_owned(),
        usage_token,
        usage_user: usage["signup"]["user"]["id"]
            .as_str()
            .context("id")?
            .parse()?,
        usage_cycle_start: usage["signup"]["user"]["billingAccount"]["billingCycleStart"]
            .as_str()
            .context("cycle")?
            .parse()?,
        documents: Vec::new(),
    };
    if !args.smoke {
        seed_events(&args.database_url, &seed, args.events).await?;
    }
    seed.documents = documents::record(
        &http,
        &server.url(),
        &seed.usage_token,
        seed.usage_cycle_start,
    )
    .await
    .context("recording the dashboard's documents")?;
    Ok(seed)
}

/// Tops the keysUsage account up to `total` events over its 20 keys, and
/// sets its per-key rollups and account counter to match, as charging would have.
pub async fn seed_events(database_url: &str, seed: &Seed, total: u64) -> anyhow::Result<()> {
    let db = Database::connect(database_url).await?;
    let backend = db.get_database_backend();
    let count = Statement::from_sql_and_values(
        backend,
        "SELECT COALESCE(SUM(u.calls), 0) FROM api_key_usage u JOIN api_keys k ON k.id = u.api_key_id WHERE k.created_by = $1",
        [seed.usage_user.into()],
    );
    let existing: i64 = db
        .query_one_raw(count)
        .await?
        .context("count")?
        .try_get_by_index(0)?;
    let per_key = (total as i64 - existing).max(0) / 20;
    eprintln!("seeding {} events ({} per key)…", per_key * 20, per_key);
    let statements = [
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $3)
         INSERT INTO api_key_usage (api_key_id, credits, endpoint, created_at)
         SELECT k.id, 1, '/bench', $2 FROM api_keys k CROSS JOIN g WHERE k.created_by = $1",
        "INSERT INTO api_key_cycle_usage (api_key_id, cycle_start, credits, requests)
         SELECT u.api_key_id, $2, SUM(u.credits * u.calls), SUM(u.calls)
           FROM api_key_usage u JOIN api_keys k ON k.id = u.api_key_id
          WHERE k.created_by = $1 AND $3 = $3 GROUP BY u.api_key_id
         ON CONFLICT (api_key_id, cycle_start) DO UPDATE SET credits = excluded.credits, requests = excluded.requests",
        "INSERT INTO billing_cycle_usage (billing_account_id, cycle_start, credits_used)
         SELECT b.id, $2, (SELECT COALESCE(SUM(r.credits), 0) FROM api_key_cycle_usage r JOIN api_keys k ON k.id = r.api_key_id
                           WHERE k.created_by = $1 AND r.cycle_start = $2)
           FROM billing_accounts b WHERE b.user_id = $1 AND $3 = $3
         ON CONFLICT (billing_account_id, cycle_start) DO UPDATE SET credits_used = excluded.credits_used",
    ];
    for sql in statements {
        let values = [
            seed.usage_user.into(),
            seed.usage_cycle_start.into(),
            per_key.into(),
        ];
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    seed_hours(&db, seed, total / 20).await?;
    if backend == sea_orm::DbBackend::Postgres {
        // The seeding's dead rows and unwritten pages are not what a
        // scenario measures: a live database has vacuumed them long since.
        // Without this, the scenarios right after the 1M seeding shared the
        // machine with its checkpoint and read through its deleted rollups.
        db.execute_unprepared("VACUUM ANALYZE").await?;
        db.execute_unprepared("CHECKPOINT").await?;
    }
    db.close().await?;
    Ok(())
}

/// The hours of the cycle: usageSeries reads one row per key and hour.
const CYCLE_HOURS: u64 = 30 * 24;

/// Sets each key's hourly and daily rollups to `per_key` events spread
/// evenly over the cycle's hours, as charging them over the month would have.
async fn seed_hours(db: &DatabaseConnection, seed: &Seed, per_key: u64) -> anyhow::Result<()> {
    let keys = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT id FROM api_keys WHERE created_by = $1",
            [seed.usage_user.into()],
        ))
        .await?;
    let first_hour = Interval::Hour.bucket_of_charge(seed.usage_cycle_start);
    for interval in counters::TIME_ROLLUPS {
        let (table, _) = counters::time_rollup_table(interval);
        let clear = format!(
            "DELETE FROM {table} WHERE api_key_id IN (SELECT id FROM api_keys WHERE created_by = $1)"
        );
        let values = [seed.usage_user.into()];
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            clear,
            values,
        ))
        .await?;
        let mut buckets: BTreeMap<(Uuid, DateTime<Utc>), i64> = BTreeMap::new();
        for key in &keys {
            let key: Uuid = key.try_get_by_index(0)?;
            for hour in 0..CYCLE_HOURS {
                let events = per_key / CYCLE_HOURS + u64::from(hour < per_key % CYCLE_HOURS);
                let start = first_hour + chrono::Duration::hours(hour as i64);
                *buckets
                    .entry((key, interval.bucket_of_charge(start)))
                    .or_default() += events as i64;
            }
        }
        let rows: Vec<_> = buckets
            .into_iter()
            .filter(|(_, events)| *events > 0)
            .map(|((key, start), events)| (key, start, events, events))
            .collect();
        for chunk in rows.chunks(500) {
            let backend = db.get_database_backend();
            let statement = counters::add_to_time_rollup(backend, interval, chunk.to_vec());
            db.execute_raw(statement).await?;
        }
    }
    Ok(())
}

/// Where and how hard to drive a scenario.
pub struct Load {
    urls: Vec<String>,
    connections: u32,
    duration: u64,
}

impl Load {
    pub fn new(args: &Args, servers: &[Server]) -> Self {
        Self::to_urls(args, servers.iter().map(Server::url).collect())
    }

    pub fn to_urls(args: &Args, urls: Vec<String>) -> Self {
        Self {
            urls,
            connections: args.connections,
            duration: args.duration,
        }
    }
}

pub struct Scenario {
    pub name: &'static str,
    script: String,
    /// Connections, when not the benchmark's.
    connections: Option<u32>,
    /// Another load run alongside (its own figures are not reported).
    alongside: Option<Box<Scenario>>,
}

#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    pub connections: u32,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

impl Measured {
    pub fn line(&self) -> String {
        format!(
            "{:<40} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
            self.name, self.rps, self.p50_ms, self.p99_ms, self.errors
        )
    }

    pub fn to_json(&self) -> Value {
        json!({ "name": self.name, "connections": self.connections, "rps": self.rps,
                "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "errors": self.errors })
    }
}

/// A wrk script posting `body`, counting every answer that is not a 200
/// without GraphQL errors, and printing one machine-readable line.
fn script(body_lua: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("wrk.headers[\"Authorization\"] = \"Bearer {t}\""))
        .unwrap_or_default();
    let prologue = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n{auth}"
    );
    let failed = r#"status ~= 200 or string.find(body, '"errors"', 1, true)"#;
    wrk_script(&prologue, body_lua, failed)
}

/// A wrk script for the gateway endpoint (contract v3): `request_lua`
/// defines `request()`, with the secret's header in `auth`; every answer
/// but a 200 counts as an error.
fn gateway_script(secret: &str, request_lua: &str) -> String {
    let prologue = format!("auth = {{ [\"Authorization\"] = \"Bearer {secret}\" }}");
    wrk_script(&prologue, request_lua, "status ~= 200")
}

/// The script every scenario runs: `prologue`, then per thread an error
/// count, a request counter and a run id, `body_lua` (a body or a
/// `request()`), an answer counted as an error when `failed` holds, and
/// one machine-readable line at the end.
fn wrk_script(prologue: &str, body_lua: &str, failed: &str) -> String {
    format!(
        r#"
{prologue}
local threads = {{}}
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end
function init(args)
  errors = 0
  counter = 0
  -- args[1] tells apart the wrk instances of one scenario (one per server).
  run = tostring(os.time()) .. "-" .. tostring(args[1]) .. "-" .. tostring(id)
end
{body_lua}
function response(status, headers, body)
  if {failed} then errors = errors + 1 end
end
function done(summary, latency, requests)
  local e = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  for _, t in ipairs(threads) do e = e + t:get("errors") end
  io.write(string.format("KM_RESULT %d %d %f %f %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e))
end
"#
    )
}

fn fixed_body(body: &Value) -> String {
    let body = body.to_string().replace('\\', "\\\\").replace('\'', "\\'");
    format!("wrk.body = '{body}'")
}

fn verify_body(secret: &str, credits: i32) -> String {
    fixed_body(&json!({
        "query": "mutation($i: VerifyKeyInput!) { verifyKey(input: $i) { valid code remainingCredits } }",
        "variables": { "i": { "key": secret, "credits": credits } }
    }))
}

impl Scenario {
    fn new(name: &'static str, script: String) -> Self {
        Self {
            name,
            script,
            connections: None,
            alongside: None,
        }
    }

    fn with_connections(mut self, connections: u32) -> Self {
        self.connections = Some(connections);
        self
    }

    pub fn keys_usage(seed: &Seed) -> Self {
        let body = json!({ "query": "{ keysUsage { cycleStart cycleEnd totalCredits remainingCredits keys { credits requests apiKey { id name keyType prefix createdAt lastUsedAt revokedAt } } } }" });
        Self::new(
            "keysUsage (20 keys)",
            script(&fixed_body(&body), Some(&seed.usage_token)),
        )
    }

    /// usageSeries over the keysUsage account's 20 keys: the cycle's 30
    /// days by DAY, or its first 168 hours by HOUR.
    pub fn usage_series(seed: &Seed, by_hour: bool) -> Self {
        let series = SeriesScenario::of(seed, by_hour);
        let interval = match series.interval {
            Interval::Hour => "HOUR",
            Interval::Day => "DAY",
        };
        let query = "query($f: DateTime, $t: DateTime, $i: UsageInterval) { usageSeries(from: $f, to: $t, interval: $i) { from to total { start credits requests } keys { apiKey { id name } points { start credits requests } } } }";
        let variables =
            json!({ "f": series.from.to_rfc3339(), "t": series.to.to_rfc3339(), "i": interval });
        let body = json!({ "query": query, "variables": variables });
        Self::new(
            series.name,
            script(&fixed_body(&body), Some(&seed.usage_token)),
        )
    }

    fn signups() -> Self {
        let body = r#"
function request()
  counter = counter + 1
  local body = string.format('{"query":"mutation($e: String!) { signup(input: { email: $e, password: \\"benchmark password\\" }) { token } }","variables":{"e":"s%s-%d@bench.example"}}', run, counter)
  return wrk.format(nil, nil, nil, body)
end"#;
        Self::new("signup", script(body, None))
    }

    /// verifyKey credits=1 on the hot key: the scenario the others compare with.
    pub fn hot_verify(seed: &Seed) -> Self {
        Self::new(
            "verifyKey credits=1",
            script(&verify_body(&seed.hot_secret, 1), None),
        )
    }

    /// verifyKey credits=1 on a key with a rate limit it never reaches:
    /// what deciding the limit with the charge costs.
    fn limited_verify(seed: &Seed) -> Self {
        Self::new(
            "verifyKey credits=1 (rate-limited key)",
            script(&verify_body(&seed.limited_secret, 1), None),
        )
    }

    /// The gateway endpoint charging 1 credit, as nginx's auth_request
    /// calls it: a bodiless GET with the secret and the original URI.
    fn gateway_verify(name: &'static str, secret: &str) -> Self {
        let request = r#"
function request()
  local headers = { ["Authorization"] = auth["Authorization"], ["X-Original-URI"] = "/v1/search?q=1" }
  return wrk.format("GET", "/gateway/verify", headers, nil)
end"#;
        Self::new(name, gateway_script(secret, request))
    }

    /// verifyKey credits=1 with a fresh requestId per call: the charge a
    /// refund can take back, which runs the locked path.
    fn verify_with_request_ids(seed: &Seed) -> Self {
        let body = format!(
            r#"
function request()
  counter = counter + 1
  local body = string.format('{{"query":"mutation($i: VerifyKeyInput!) {{ verifyKey(input: $i) {{ valid code remainingCredits }} }}","variables":{{"i":{{"key":"{}","credits":1,"requestId":"v%s-%d"}}}}}}', run, counter)
  return wrk.format(nil, nil, nil, body)
end"#,
            seed.hot_secret
        );
        Self::new("verifyKey credits=1 with requestId", script(&body, None))
    }

    /// The gateway charging a call with a requestId, then refunding it: each
    /// connection alternates, so every refund follows its charge.
    fn gateway_charge_and_refund(seed: &Seed) -> Self {
        let request = r#"
function request()
  counter = counter + 1
  local id = string.format("g%s-%d", run, math.floor((counter + 1) / 2))
  local headers = { ["Authorization"] = auth["Authorization"], ["X-Request-Id"] = id }
  if counter % 2 == 1 then
    return wrk.format("GET", "/gateway/verify", headers, nil)
  end
  return wrk.format("POST", "/gateway/refund", headers, nil)
end"#;
        Self::new(
            "gateway charge then refund (requestId)",
            gateway_script(&seed.hot_secret, request),
        )
    }

    /// A dashboard document on keymeter, as the page sends it.
    pub fn document(seed: &Seed, document: &Document) -> Self {
        let name: &'static str = Box::leak(document.scenario().into_boxed_str());
        Self::new(
            name,
            script(&fixed_body(&document.body), Some(&seed.usage_token)),
        )
    }

    pub fn all(seed: &Seed) -> Vec<Scenario> {
        let verify1 = || Scenario::hot_verify(seed).script;
        let mut during =
            Scenario::new("verifyKey credits=1 during signups", verify1()).with_connections(16);
        during.alongside = Some(Box::new(Scenario::signups().with_connections(16)));
        vec![
            Scenario::new("verifyKey credits=1", verify1()),
            Scenario::gateway_verify("gateway verify credits=1", &seed.hot_secret),
            Scenario::limited_verify(seed),
            Scenario::gateway_verify(
                "gateway verify credits=1 (rate-limited key)",
                &seed.limited_secret,
            ),
            Scenario::verify_with_request_ids(seed),
            Scenario::gateway_charge_and_refund(seed),
            Scenario::new("verifyKey credits=1 (1 conn)", verify1()).with_connections(1),
            Scenario::new(
                "verifyKey credits=0",
                script(&verify_body(&seed.hot_secret, 0), None),
            ),
            Scenario::keys_usage(seed),
            Scenario::usage_series(seed, false),
            Scenario::usage_series(seed, true),
            Scenario::new(
                "me",
                script(
                    &fixed_body(&json!({ "query": "{ me { id email } }" })),
                    Some(&seed.hot_token),
                ),
            ),
            Scenario::signups(),
            Scenario::new("verifyKey credits=1 (16 conn)", verify1()).with_connections(16),
            during,
        ]
        .into_iter()
        .chain(seed.documents.iter().map(|d| Scenario::document(seed, d)))
        .collect()
    }

    pub async fn run(&self, load: &Load) -> anyhow::Result<Measured> {
        let connections = self.connections.unwrap_or(load.connections);
        let alongside = self.alongside.as_ref().map(|other| {
            let connections = other.connections.unwrap_or(load.connections);
            wrk_all(&other.script, &load.urls, connections, load.duration + 1)
        });
        // One second unmeasured first: pools grow, statements get prepared.
        wrk_all(&self.script, &load.urls, connections, 1).await?;
        let ramp_up = alongside.is_some();
        let main = async {
            if ramp_up {
                tokio::time::sleep(Duration::from_millis(500)).await; // let the other load ramp up
            }
            wrk_all(&self.script, &load.urls, connections, load.duration).await
        };
        let (rps, p50, p99, errors) = match alongside {
            Some(other) => tokio::join!(main, other).0?,
            None => main.await?,
        };
        Ok(Measured {
            name: self.name.to_owned(),
            connections,
            rps,
            p50_ms: p50,
            p99_ms: p99,
            errors,
        })
    }
}

/// Runs wrk against every server at once, splitting the connections; returns
/// total req/s, the worst p50 and p99 (ms), and the error count.
async fn wrk_all(
    script: &str,
    urls: &[String],
    connections: u32,
    duration: u64,
) -> anyhow::Result<(f64, f64, f64, u64)> {
    let path = std::env::temp_dir().join(format!("keymeter-bench-{}.lua", Uuid::new_v4().simple()));
    std::fs::write(&path, script)?;
    let per_server = (connections / urls.len() as u32).max(1);
    let mut children = Vec::new();
    for (instance, url) in urls.iter().enumerate() {
        let threads = per_server.min(2);
        let child = tokio::process::Command::new("wrk")
            .args([
                "-t",
                &threads.to_string(),
                "-c",
                &per_server.to_string(),
                "-d",
                &format!("{duration}s"),
            ])
            .args(["--timeout", "10s", "-s"])
            .arg(&path)
            .arg(url)
            .args(["--", &instance.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting wrk")?;
        children.push(child);
    }
    let mut outputs = Vec::new();
    for child in children {
        outputs.push(child.wait_with_output().await);
    }
    let _ = std::fs::remove_file(&path);
    let (mut rps, mut p50, mut p99, mut errors) = (0.0, 0.0f64, 0.0f64, 0);
    for output in outputs {
        let output = output.context("running wrk")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("KM_RESULT"))
            .with_context(|| {
                format!(
                    "wrk said: {stdout}{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
        let f: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        rps += f[0] / (f[1] / 1e6);
        p50 = p50.max(f[2] / 1000.0);
        p99 = p99.max(f[3] / 1000.0);
        errors += f[4] as u64;
    }
    Ok((rps, p50, p99, errors))
}
