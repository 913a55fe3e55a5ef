//! The server under test: real keymeter processes, as deployed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Args;

pub struct Server {
    child: Child,
    pub addr: String,
}

/// The workspace's target directory, for binaries built beside this one.
pub fn target_dir(profile: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join(profile)
}

/// Waits for `child` to print `… listening addr=<addr>` and returns the
/// address; the rest of its output is drained so it never blocks.
pub async fn listening_addr(child: &mut Child) -> anyhow::Result<String> {
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some((_, addr)) = line.split_once("listening addr=") {
                return Ok(addr.trim().to_owned());
            }
        }
        bail!("exited before listening")
    })
    .await
    .context("not listening within 60 s")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(addr)
}

impl Server {
    pub async fn start_all(args: &Args) -> anyhow::Result<Vec<Server>> {
        let bin = args
            .server_bin
            .clone()
            .unwrap_or_else(|| target_dir("release").join("keymeter"));
        if !bin.is_file() {
            bail!("{} is missing: cargo build --release", bin.display());
        }
        let mut servers = Vec::new();
        for _ in 0..args.processes {
            servers.push(Server::start(&bin, args).await?);
        }
        Ok(servers)
    }

    async fn start(bin: &PathBuf, args: &Args) -> anyhow::Result<Server> {
        let mut command = Command::new(bin);
        command
            .env("DATABASE_URL", &args.database_url)
            .env("KEYMETER_BIND", "127.0.0.1:0")
            .env("KEYMETER_LOG", "warn,keymeter=info")
            // Seeding and the signup scenario sign up thousands of users from one address.
            .env("KEYMETER_SIGNUPS_PER_ADDRESS", "0")
            .env("KEYMETER_MONTHLY_CREDITS", "2000000000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for pair in &args.server_env {
            let (name, value) = pair
                .split_once('=')
                .context("--server-env takes NAME=VALUE")?;
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let addr = listening_addr(&mut child)
            .await
            .context("starting keymeter")?;
        Ok(Server { child, addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// The most resident memory the process has used (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let Some(pid) = self.child.id() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }
}
