use anyhow::Context as _;
use clap::{Parser, Subcommand};
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
}

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
                Some(steps) => migration::Migrator::down(&db, Some(steps))
                    .await
                    .context("undoing migrations")?,
                None => app::migrate(&db).await?,
            }
        }
        Command::Serve => {
            telemetry::init(&cli.config.log);
            let application = Application::build(&cli.config).await?;
            application.run_until(shutdown_signal()).await?;
            tracing::info!("keymeter stopped");
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
