//! The ceilings every figure is compared with, measured in the same run:
//! - pgbench running exactly the server's statements (built by the server's
//!   own SQL builders, with this run's ids as literals), one request at a
//!   time at 1 and at the benchmark's client count, and in groups of 16;
//! - the bare stack: async-graphql + axum answering the same request with no work.

use std::process::Stdio;

use anyhow::{bail, Context as _};
use chrono::{DateTime, SecondsFormat, Utc};
use keymeter::domain::admission::CounterKey;
use keymeter::domain::{Cycle, SecretHash};
use keymeter::store::counters::{self, ChargeRows, CounterAddition, EventRow, Rollup};
use keymeter::store::keys::find_keys_sql;
use keymeter::store::parameters;
use keymeter::store::series::keys_with_usage_sql;
use keymeter::store::usage::KEYS_USAGE;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, Value};
use tokio::process::Command;
use uuid::Uuid;

use crate::scenario::{Load, Scenario, Seed, SeriesScenario, SERIES_NAMES};
use crate::server::{listening_addr, target_dir};
use crate::Args;

pub struct Ceiling {
    pub name: String,
    pub short: String,
    pub rps: f64,
    /// Per request (per transaction for pgbench): p50 and p99, ms.
    pub latency: (f64, f64),
    /// Scenarios (by name prefix) this ceiling bounds.
    pub bounds: &'static [&'static str],
}

pub async fn measure(args: &Args, seed: &Seed) -> anyhow::Result<Vec<Ceiling>> {
    let mut ceilings = Vec::new();
    if args.database_url.starts_with("postgres") {
        ceilings.extend(pgbench(args, seed).await.context("pgbench")?);
    }
    ceilings.extend(bare_stack(args, seed).await.context("bare stack")?);
    Ok(ceilings)
}

/// A SQL literal for pgbench, standing in for one bound parameter.
enum Literal {
    Uuid(Uuid),
    Time(DateTime<Utc>),
    Bytes(Vec<u8>),
    Int(i64),
    /// A NULL where the server binds an integer parameter.
    NullInt,
    /// A NULL where the server binds a text parameter.
    NullText,
}

impl Literal {
    /// The literal of a value the server binds.
    fn of(value: &Value) -> anyhow::Result<Self> {
        Ok(match value {
            Value::Uuid(Some(u)) => Self::Uuid(*u),
            Value::ChronoDateTimeUtc(Some(t)) => Self::Time(*t),
            Value::Bytes(Some(b)) => Self::Bytes(b.clone()),
            Value::BigInt(Some(i)) => Self::Int(*i),
            Value::Int(Some(i)) => Self::Int(i64::from(*i)),
            Value::BigInt(None) | Value::Int(None) => Self::NullInt,
            Value::String(None) => Self::NullText,
            other => bail!("no pgbench literal for {other:?}"),
        })
    }

    fn sql(&self) -> String {
        match self {
            Self::Uuid(u) => format!("'{u}'::uuid"),
            Self::Time(t) => format!(
                "'{}'::timestamptz",
                t.to_rfc3339_opts(SecondsFormat::Micros, true)
            ),
            Self::Bytes(b) => format!(
                "'\\x{}'::bytea",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
            // The server binds these as i64: untyped, PostgreSQL would read
            // them as int4, and products such as an alert's threshold times
            // 2,000,000,000 monthly credits would overflow.
            Self::Int(i) => format!("{i}::bigint"),
            Self::NullInt => "NULL::int".into(),
            Self::NullText => "NULL::text".into(),
        }
    }
}

/// The server's `statement` with its values as literals, as one pgbench line.
fn bind_statement(statement: &Statement) -> anyhow::Result<String> {
    let values = statement
        .values
        .as_ref()
        .map(|v| v.0.as_slice())
        .unwrap_or(&[]);
    let literals = values
        .iter()
        .map(Literal::of)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(bind(&statement.sql, &literals))
}

/// `statement` with `$1…$n` replaced by `values`, as one pgbench line.
fn bind(statement: &str, values: &[Literal]) -> String {
    let highest = parameters(statement);
    assert_eq!(highest, values.len(), "values for {statement}");
    let mut out = statement.to_owned();
    for (i, value) in values.iter().enumerate().rev() {
        out = out.replace(&format!("${}", i + 1), &value.sql());
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ") + ";\n"
}

/// The benchmark's hot key, as the server reads it.
struct HotKey {
    key: Uuid,
    account: Uuid,
    anchor: DateTime<Utc>,
    monthly_credits: i64,
    cycle: DateTime<Utc>,
}

/// The server's statement for one batch of `group` verifyKey credits=1 calls
/// on one key it has read before (no requestIds, credits to spare): the one
/// statement that checks the key and charges them. `group` 1 is the
/// per-request mode. (The key's read runs only the first time the server
/// charges it, and again only if the statement refuses.)
fn verify_script(hot: &HotKey, now: DateTime<Utc>, group: usize) -> anyhow::Result<String> {
    let group = group as i64;
    let mut rows = ChargeRows::default();
    let counter = CounterKey {
        account_id: hot.account,
        cycle_start: hot.cycle,
    };
    let addition = CounterAddition {
        credits: group,
        anchor: hot.anchor,
        monthly_credits: hot.monthly_credits,
    };
    rows.counters.insert(counter, addition);
    rows.events = vec![EventRow {
        account_id: hot.account,
        key_id: hot.key,
        credits: 1,
        endpoint: None,
        calls: i32::try_from(group)?,
    }];
    let rollup = Rollup {
        credits: group,
        requests: group,
    };
    rows.rollups
        .insert((hot.account, hot.key, hot.cycle), rollup);
    rows.keys.insert((hot.account, hot.key), None);
    bind_statement(&counters::charge_in_one_statement(&rows, now))
}

/// The server's statement for one keysUsage.
fn keys_usage_script(user: Uuid) -> String {
    bind(KEYS_USAGE, &[Literal::Uuid(user)])
}

async fn pgbench(args: &Args, seed: &Seed) -> anyhow::Result<Vec<Ceiling>> {
    let db = Database::connect(args.database_url.as_str()).await?;
    let backend = db.get_database_backend();
    let hash = SecretHash::of(&seed.hot_secret).to_vec();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            find_keys_sql(1),
            [hash.clone().into()],
        ))
        .await?
        .context("the hot key")?;
    let now = Utc::now();
    let anchor = row.try_get("", "billing_cycle_start")?;
    let hot = HotKey {
        key: row.try_get("", "id")?,
        account: row.try_get("", "account_id")?,
        anchor,
        monthly_credits: row.try_get("", "monthly_credits")?,
        cycle: Cycle::current(anchor, now).start,
    };
    db.close().await?;

    let lookup = bind(&find_keys_sql(1), &[Literal::Bytes(hash.clone())]);
    let run = run_pgbench(args, &lookup, args.connections).await?;
    let mut ceilings = vec![Ceiling {
        name: format!(
            "pgbench, the server's verifyKey credits=0 lookup, {} clients",
            args.connections
        ),
        short: "pg-lookup".into(),
        rps: run.tps,
        latency: run.latency,
        bounds: &["verifyKey credits=0"],
    }];
    let per_request = verify_script(&hot, now, 1)?;
    let grouped = verify_script(&hot, now, 16)?;
    let usage = keys_usage_script(seed.usage_user);
    let clients = args.connections;
    for (clients, short) in [(1, "pg-verify-1"), (clients, "pg-verify-n")] {
        let run = run_pgbench(args, &per_request, clients).await?;
        ceilings.push(Ceiling {
            name: format!(
                "pgbench, the server's per-request verifyKey statement, {clients} client(s)"
            ),
            short: short.into(),
            rps: run.tps,
            latency: run.latency,
            bounds: &["verifyKey credits=1"],
        });
    }
    let run = run_pgbench(args, &grouped, clients).await?;
    ceilings.push(Ceiling {
        name: format!("pgbench, the server's statement charging 16 calls per transaction, {clients} clients (charges/s)"),
        short: "pg-verify-x16".into(),
        rps: run.tps * 16.0,
        latency: run.latency,
        bounds: &["verifyKey credits=1"],
    });
    for (clients, short) in [(1, "pg-usage-1"), (clients, "pg-usage-n")] {
        let run = run_pgbench(args, &usage, clients).await?;
        ceilings.push(Ceiling {
            name: format!("pgbench, the server's keysUsage statement, {clients} client(s)"),
            short: short.into(),
            rps: run.tps,
            latency: run.latency,
            bounds: &["keysUsage"],
        });
    }
    for (by_hour, short) in [(false, "pg-series-day"), (true, "pg-series-hour")] {
        let series = SeriesScenario::of(seed, by_hour);
        let values = [
            Literal::Uuid(seed.usage_user),
            Literal::Time(series.from),
            Literal::Time(series.to),
        ];
        let script = bind(
            &keys_with_usage_sql(DbBackend::Postgres, series.interval),
            &values,
        );
        let run = run_pgbench(args, &script, clients).await?;
        ceilings.push(Ceiling {
            name: format!(
                "pgbench, the server's {} statement, {clients} clients",
                series.name
            ),
            short: short.into(),
            rps: run.tps,
            latency: run.latency,
            bounds: std::slice::from_ref(&SERIES_NAMES[usize::from(by_hour)]),
        });
    }
    Ok(ceilings)
}

/// One pgbench run: transactions per second, and p50 and p99 latency in ms
/// (from its per-transaction log).
struct Run {
    tps: f64,
    latency: (f64, f64),
}

async fn run_pgbench(args: &Args, script: &str, clients: u32) -> anyhow::Result<Run> {
    let dir = std::env::temp_dir().join(format!("keymeter-pgbench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let result = pgbench_in(&dir, args, script, clients).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn pgbench_in(
    dir: &std::path::Path,
    args: &Args,
    script: &str,
    clients: u32,
) -> anyhow::Result<Run> {
    let path = dir.join("script.sql");
    std::fs::write(&path, script)?;
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-T", &args.duration.to_string()])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
            "-l",
            "--log-prefix",
        ])
        .arg(dir.join("log"))
        .arg("-f")
        .arg(&path)
        .arg(&args.database_url)
        .output()
        .await
        .context("running pgbench (it ships with PostgreSQL)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(tps) = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
    else {
        bail!(
            "pgbench failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    // Each log line: client, transaction, latency in µs, script, epoch s, µs.
    let mut micros: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("log") {
            let log = std::fs::read_to_string(entry.path())?;
            micros.extend(
                log.lines()
                    .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok()),
            );
        }
    }
    micros.sort_unstable();
    let quantile = |q: f64| match micros.len() {
        0 => f64::NAN,
        n => micros[((n as f64 * q) as usize).min(n - 1)] as f64 / 1000.0,
    };
    let latency = (quantile(0.50), quantile(0.99));
    eprintln!(
        "  pgbench {clients:>2} client(s): {tps:.0} tps, p50 {:.2} ms, p99 {:.2} ms",
        latency.0, latency.1
    );
    Ok(Run { tps, latency })
}

/// The bare stack answering the benchmark's request shapes: verifyKey at the
/// benchmark's concurrency and at one connection, keysUsage and me; and
/// each of the dashboard's documents with keymeter's own answer to it.
async fn bare_stack(args: &Args, seed: &Seed) -> anyhow::Result<Vec<Ceiling>> {
    let bin = args
        .bare_bin
        .clone()
        .unwrap_or_else(|| target_dir("release").join("bare-stack"));
    // The dashboard's documents answer what keymeter answered them.
    let answers = std::env::temp_dir().join(format!("keymeter-bare-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&answers)?;
    for document in &seed.documents {
        let file = answers.join(format!("{}.json", document.name));
        std::fs::write(file, document.answer.to_string())?;
    }
    // On PostgreSQL, also the same stack after one round trip to it.
    let database = args.database_url.starts_with("postgres");
    let mut command = Command::new(&bin);
    if database {
        command.env("BARE_DATABASE_URL", &args.database_url);
    }
    let mut child = command
        .arg("127.0.0.1:0")
        .arg(&answers)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let addr = listening_addr(&mut child)
        .await
        .context("starting bare-stack")?;
    let load = Load::to_urls(args, vec![format!("http://{addr}/graphql")]);
    let shapes: [(&str, &str, &str, &'static [&'static str]); 4] = [
        (
            "verifyKey credits=1",
            "bare",
            "bare async-graphql + axum, the same verifyKey request, no work",
            &["verifyKey", "signup"],
        ),
        (
            "verifyKey credits=1 (1 conn)",
            "bare-1",
            "the same bare stack at 1 connection",
            &["verifyKey credits=1 (1 conn)"],
        ),
        (
            "keysUsage (20 keys)",
            "bare-usage",
            "the same bare stack, the keysUsage request (20 keys), constants",
            &["keysUsage"],
        ),
        (
            "me",
            "bare-me",
            "the same bare stack, the me request, constants",
            &["me"],
        ),
    ];
    let mut scenarios = Scenario::all(seed);
    let mut ceilings = Vec::new();
    for (scenario, short, name, bounds) in shapes {
        let Some(at) = scenarios.iter().position(|s| s.name == scenario) else {
            bail!("no scenario {scenario}");
        };
        let measured = scenarios.swap_remove(at).run(&load).await?;
        if measured.errors > 0 {
            bail!("bare stack answered {scenario} with errors");
        }
        ceilings.push(Ceiling {
            name: name.into(),
            short: short.into(),
            rps: measured.rps,
            latency: (measured.p50_ms, measured.p99_ms),
            bounds,
        });
    }
    if database {
        let load = Load::to_urls(args, vec![format!("http://{addr}/graphql/round-trip")]);
        let mut scenarios = Scenario::all(seed);
        for (scenario, bounds) in [
            (
                "verifyKey credits=1",
                &["verifyKey credits=0", "verifyKey credits=1"][..],
            ),
            ("me", &["me"][..]),
        ] {
            let Some(at) = scenarios.iter().position(|s| s.name == scenario) else {
                bail!("no scenario {scenario}");
            };
            let measured = scenarios.swap_remove(at).run(&load).await?;
            if measured.errors > 0 {
                bail!("bare stack answered {scenario} after a round trip with errors");
            }
            ceilings.push(Ceiling {
                name: format!(
                    "the bare stack after one database round trip, the {scenario} request"
                ),
                short: format!("bare+rt-{}", scenario.split(' ').next().unwrap_or(scenario)),
                rps: measured.rps,
                latency: (measured.p50_ms, measured.p99_ms),
                bounds,
            });
        }
    }
    for document in &seed.documents {
        let scenario: &'static str = Box::leak(document.scenario().into_boxed_str());
        let bounds: &'static [&'static str] = Box::leak(vec![scenario].into_boxed_slice());
        let routes = [
            ("", "", ""),
            ("/round-trip", "+rt", " after one database round trip"),
        ];
        for (route, suffix, after) in routes.into_iter().take(if database { 2 } else { 1 }) {
            let url = format!("http://{addr}/documents/{}{route}", document.name);
            let measured = Scenario::document(seed, document)
                .run(&Load::to_urls(args, vec![url]))
                .await?;
            if measured.errors > 0 {
                bail!("bare stack answered {}{after} with errors", document.name);
            }
            ceilings.push(Ceiling {
                name: format!(
                    "the same bare stack{after}, the {} document, keymeter's answer",
                    document.name
                ),
                short: format!("bare{suffix}-{}", document.name),
                rps: measured.rps,
                latency: (measured.p50_ms, measured.p99_ms),
                bounds,
            });
        }
    }
    let _ = std::fs::remove_dir_all(&answers);
    Ok(ceilings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every placeholder of every statement gets a literal.
    #[test]
    fn scripts_bind_every_parameter() {
        let now = Utc::now();
        let hot = HotKey {
            key: Uuid::new_v4(),
            account: Uuid::new_v4(),
            anchor: now,
            monthly_credits: 1000,
            cycle: now,
        };
        for group in [1, 16] {
            let script = verify_script(&hot, now, group).unwrap();
            assert!(!script.contains('$'), "{script}");
        }
        assert!(!keys_usage_script(Uuid::new_v4()).contains('$'));
    }
}
