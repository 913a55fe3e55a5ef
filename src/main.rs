use anyhow::Context as _;
use clap::{Parser, Subcommand};
use keymeter::clock::{Clock, SystemClock};
use keymeter::service::backup;
use keymeter::service::plans::{self, PlanChange};
use keymeter::store::db::Db;
use keymeter::{app, graphql, telemetry, Application, Config};
use migration::MigratorTrait;

/// keymeter: accounts, API keys and metered usage behind one GraphQL API.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default): migrate, then listen on --bind.
    Serve,
    /// Apply pending migrations, or undo the newest ones.
    Migrate {
        /// Undo this many of the newest migrations instead of applying.
        #[arg(long)]
        down: Option<u32>,
    },
    /// Print the GraphQL schema (SDL), as checked in at schema.graphql.
    Schema,
    /// Operators' commands on accounts, on the configured database.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Copy the SQLite database to PATH while servers serve it, consistently,
    /// and check the copy; restore by starting keymeter on the copy.
    Backup {
        /// Where to write the copy; it must not exist yet.
        path: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Print an account's plan, monthly credits, current cycle and credits used in it.
    Show {
        /// The user's email address.
        email: String,
    },
    /// Set an account's plan and monthly credits. Credits already used in the
    /// current cycle count against the new allowance, from the next verifyKey on.
    SetPlan {
        /// The user's email address.
        email: String,
        /// The plan's name, 1 to 32 characters.
        #[arg(long)]
        plan: String,
        /// Credits per billing cycle, 0 to 2147483647.
        #[arg(long = "monthly-credits", value_name = "N", allow_hyphen_values = true)]
        credits: String,
    },
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is normal; a broken one is worth a word.
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            eprintln!("warning: ignoring .env: {err}");
        }
    }
    let mut cli = Cli::parse();
    cli.config
        .read_provider_settings(|name| std::env::var(name).ok());
    if let Err(problem) = cli.config.validate() {
        eprintln!("keymeter: {problem}");
        std::process::exit(2);
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => print!("{}", graphql::sdl()),
        Command::Migrate { down } => {
            telemetry::init(&cli.config.log);
            let db = app::connect(&cli.config).await?;
            match down {
                Some(steps) => migration::Migrator::down(db.pool(), Some(steps))
                    .await
                    .context("undoing migrations")?,
                None => app::migrate(&db).await?,
            }
        }
        Command::Accounts { command } => accounts(&cli.config, command).await?,
        Command::Backup { path } => backup(&cli.config, &path).await?,
        Command::Serve => {
            telemetry::init(&cli.config.log);
            let stop = shutdown_signal();
            let application = Application::build(&cli.config).await?;
            application.run_until(stop).await?;
            tracing::info!("keymeter stopped");
        }
    }
    Ok(())
}

/// Runs an operator command (`keymeter accounts …`); refused input or a
/// failure is one line on stderr and exit status 1.
async fn accounts(config: &Config, command: AccountsCommand) -> anyhow::Result<()> {
    let policy = config.account_policy();
    let now = SystemClock.now();
    operator(config, async |db| match command {
        AccountsCommand::Show { email } => plans::show(db, &policy, &email, now).await,
        AccountsCommand::SetPlan {
            email,
            plan,
            credits,
        } => {
            let change = PlanChange::parse(&plan, &credits)?;
            plans::set_plan(db, &policy, &email, change, now).await
        }
    })
    .await
}

/// Copies the database to `path` (`keymeter backup`), as an operator command.
async fn backup(config: &Config, path: &std::path::Path) -> anyhow::Result<()> {
    operator(config, async |db| backup::backup(db, path).await).await
}

/// Runs `command` on a pool of one connection (one statement at a time: a
/// pool the size of a server's is waste here) and prints its report; its
/// refusal or failure is one line on stderr and exit status 1.
async fn operator<R: std::fmt::Display>(
    config: &Config,
    command: impl AsyncFnOnce(&Db) -> keymeter::error::Result<R>,
) -> anyhow::Result<()> {
    let mut config = config.clone();
    (config.db_max_connections, config.db_min_connections) = (Some(1), Some(1));
    let db = app::connect(&config).await?;
    let done = command(&db).await;
    db.close().await.ok();
    match done {
        Ok(report) => print!("{report}"),
        Err(err) => {
            eprintln!("keymeter: {}", plans::operator_message(&err));
            std::process::exit(1);
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C. On Unix the handlers are installed now,
/// not when the future is first polled: a signal that arrives while the
/// server is still starting must stop it gracefully, not kill it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        [SignalKind::terminate(), SignalKind::interrupt()].map(|kind| signal(kind).ok())
    };
    async move {
        #[cfg(unix)]
        {
            let [terminate, interrupt] = signals;
            let received = |handler: Option<tokio::signal::unix::Signal>| async move {
                match handler {
                    Some(mut handler) => {
                        handler.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = received(terminate) => {},
                () = received(interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}
