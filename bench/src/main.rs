//! keymeter's benchmark: starts the real server, seeds it, and drives each
//! scenario with wrk at a fixed concurrency; then measures the ceilings in
//! the same run (pgbench on the server's own SQL, and the bare stack), and
//! prints one table and one JSON document.
//!
//!     scripts/bench.sh            # PostgreSQL, everything
//!     cargo run --release -p keymeter-bench -- --help

mod backlog;
mod ceilings;
mod documents;
mod scenario;
mod server;
mod webhooks;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::{json, Value};

use scenario::{Load, Measured, Scenario};
use server::Server;

#[derive(Parser, Debug, Clone)]
#[command(about = "Benchmarks keymeter over HTTP beside its ceilings")]
pub struct Args {
    /// Database for the server under test (a fresh one: it is seeded).
    #[arg(long, env = "KEYMETER_BENCH_DATABASE_URL")]
    pub database_url: String,
    /// Concurrent connections per scenario.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Scenarios to run (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// keymeter server processes sharing the load.
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Extra environment for the server, NAME=VALUE (repeatable).
    #[arg(long = "server-env")]
    pub server_env: Vec<String>,
    /// Events seeded into the keysUsage account before its scenario.
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Also measure keysUsage and usageSeries at 10k, 100k and 1M events
    /// (the first seeding stops at 10k).
    #[arg(long)]
    pub event_scaling: bool,
    /// Also write this many expired events and measure verifyKey credits=1
    /// while the retention sweep clears them (and the database's size).
    #[arg(long, default_value_t = 0)]
    pub sweep_backlog: u64,

    /// Also measure how fast the first server delivers this many webhooks
    /// to a local receiver (needs `--server-env KEYMETER_WEBHOOK_ALLOW_PRIVATE=true`).
    #[arg(long, default_value_t = 0)]
    pub webhook_deliveries: u64,
    /// Skip pgbench and the bare-stack ceilings.
    #[arg(long)]
    pub no_ceilings: bool,
    /// A few requests per scenario and bare-stack shape: checks the program
    /// works, measures nothing.
    #[arg(long)]
    pub smoke: bool,
    /// Write the JSON report here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The keymeter binary (default: target/release/keymeter).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// The bare-stack binary (default: beside this one).
    #[arg(long)]
    pub bare_bin: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.duration = 1;
        args.connections = args.connections.min(4);
    }
    if args.event_scaling {
        // Events are only ever added: its first step, 10k, must find no more.
        args.events = args.events.min(10_000);
    }
    if which("wrk").is_none() {
        bail!("wrk is not installed (apt-get install wrk, or run scripts/bench.sh)");
    }
    let servers = Server::start_all(&args).await?;
    let seed = scenario::seed(&servers[0], &args)
        .await
        .context("seeding")?;

    let mut results: Vec<Measured> = Vec::new();
    for scenario in Scenario::all(&seed) {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == scenario.name) {
            continue;
        }
        let load = Load::new(&args, &servers);
        let measured = scenario
            .run(&load)
            .await
            .with_context(|| format!("scenario {}", scenario.name))?;
        eprintln!("  {}", measured.line());
        results.push(measured);
    }
    if args.event_scaling && !args.smoke {
        for events in [10_000u64, 100_000, 1_000_000] {
            scenario::seed_events(&args.database_url, &seed, events).await?;
            let load = Load::new(&args, &servers);
            for scenario in [
                Scenario::keys_usage(&seed),
                Scenario::usage_series(&seed, false),
                Scenario::usage_series(&seed, true),
            ] {
                let mut measured = scenario.run(&load).await?;
                measured.name = format!("{} @ {events} events", measured.name);
                eprintln!("  {}", measured.line());
                results.push(measured);
            }
        }
    }
    if args.sweep_backlog > 0 {
        let load = Load::new(&args, &servers);
        let backlog =
            backlog::measure(&args.database_url, &seed, &load, args.sweep_backlog).await?;
        let [before, with, after] = backlog.bytes.map(|b| b as f64 / 1_048_576.0);
        eprintln!(
            "  sweep backlog: {} events cleared in {:.1} s; database {before:.0} MiB, {with:.0} MiB \
             with the backlog, {after:.0} MiB after the sweep and a VACUUM ({:.2}x)",
            backlog.events,
            backlog.cleared_in_secs,
            after / before
        );
        for measured in [backlog.without_sweep, backlog.during_sweep] {
            eprintln!("  {}", measured.line());
            results.push(measured);
        }
    }
    if args.webhook_deliveries > 0 {
        let report = webhooks::measure(
            &args.database_url,
            &servers[0].url(),
            &seed,
            args.webhook_deliveries,
        )
        .await?;
        eprintln!(
            "  webhook deliveries: {} delivered in {:.1} s ({:.0}/s) by one process; the receiver saw {}",
            report.deliveries,
            report.seconds,
            report.deliveries as f64 / report.seconds,
            report.received
        );
    }
    let peak_rss_kib: Vec<u64> = servers.iter().map(Server::peak_rss_kib).collect();
    drop(servers);

    let ceilings = if args.no_ceilings {
        Vec::new()
    } else {
        ceilings::measure(&args, &seed).await?
    };
    let report = report(&args, &results, &ceilings, &peak_rss_kib);
    println!("{}", table(&results, &ceilings, &peak_rss_kib));
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(path) = &args.json {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    let failed: Vec<_> = results
        .iter()
        .filter(|m| m.errors > 0)
        .map(|m| m.name.clone())
        .collect();
    if !failed.is_empty() {
        bail!("scenarios with error answers: {failed:?}");
    }
    Ok(())
}

fn report(args: &Args, results: &[Measured], ceilings: &[ceilings::Ceiling], rss: &[u64]) -> Value {
    json!({
        "machine": machine(),
        "database": if args.database_url.starts_with("postgres") { "postgresql" } else { "sqlite" },
        "connections": args.connections,
        "duration_secs": args.duration,
        "processes": args.processes,
        "server_env": args.server_env,
        "scenarios": results.iter().map(Measured::to_json).collect::<Vec<_>>(),
        "ceilings": ceilings.iter().map(|c| json!({ "name": c.name, "short": c.short, "rps": c.rps, "p50_ms": c.latency.0, "p99_ms": c.latency.1 })).collect::<Vec<_>>(),
        "peak_rss_mib": rss.iter().map(|k| *k as f64 / 1024.0).collect::<Vec<_>>(),
    })
}

fn table(results: &[Measured], ceilings: &[ceilings::Ceiling], rss: &[u64]) -> String {
    let mut out = format!(
        "{:<40} {:>9} {:>8} {:>8} {:>6}  ratio to each ceiling that bounds it\n",
        "scenario", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for m in results {
        let ratios: Vec<String> = ceilings
            .iter()
            .filter(|c| c.bounds.iter().any(|b| m.name.starts_with(b)))
            .map(|c| format!("{:.2}x {}", m.rps / c.rps, c.short))
            .collect();
        out.push_str(&format!(
            "{:<40} {:>9.0} {:>8.2} {:>8.2} {:>6}  {}\n",
            m.name,
            m.rps,
            m.p50_ms,
            m.p99_ms,
            m.errors,
            ratios.join(", ")
        ));
    }
    out.push('\n');
    for c in ceilings {
        out.push_str(&format!(
            "{:<14} {:>9.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  {}\n",
            c.short, c.rps, c.latency.0, c.latency.1, c.name
        ));
    }
    let rss: Vec<String> = rss
        .iter()
        .map(|k| format!("{:.1} MiB", *k as f64 / 1024.0))
        .collect();
    out.push_str(&format!("server peak RSS: {}\n", rss.join(", ")));
    out
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
    });
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu,
        "memory_gib": std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
            s.lines().next()?.split_whitespace().nth(1)?.parse::<f64>().ok().map(|kib| (kib / 1048576.0).round())
        }),
    })
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|path| path.is_file())
}

pub fn sleep_ms(ms: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(ms))
}
