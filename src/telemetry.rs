use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global log subscriber once; `filter` is `tracing` syntax.
/// Nothing keymeter logs carries a password, token or secret.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
}
