//! Logging setup: `telemetry.logging.level` / `encoding` from the config, `RUST_LOG`
//! overriding the level. Logs go to standard error so standard output stays for
//! command results (`keys create` prints the key on its last line).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op (tests, repeated commands).
pub fn init(level: &str, encoding: &str) {
    let level = match level.to_ascii_lowercase().as_str() {
        "debug" | "info" | "warn" | "error" | "trace" => level.to_ascii_lowercase(),
        _ => "info".to_string(),
    };
    // sqlx logs each statement at info; that is noise for an operator.
    let default = format!("{level},sqlx=warn,hyper=warn,reqwest=warn");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if encoding.eq_ignore_ascii_case("json") {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}
