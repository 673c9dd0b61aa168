//! Logging set-up (tracing to stderr).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is the validated `LOG_LEVEL`, an
/// `EnvFilter` directive (`info`, `tekton_results_logs=debug,warn`).
pub fn init(level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("LOG_LEVEL={level:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| e.to_string())
}
