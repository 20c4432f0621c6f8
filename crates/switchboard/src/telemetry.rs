//! Logging setup: `telemetry.logging.level` / `encoding` from the config, `RUST_LOG`
//! overriding the level. Logs go to standard error so standard output stays for
//! command results (`keys create` prints the key on its last line).
//!
//! Owns the global `tracing` subscriber and the default filter (which libraries are
//! quieter than the gateway).
//! Must not: decide what is logged or add fields to events (each module does, and never a
//! secret), or install anything but the subscriber (no exporters, no panic hook).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op (tests, repeated commands).
pub fn init(level: &str, encoding: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter(level));
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

/// `level` for the gateway, quieter for libraries whose `info` is noise to an operator:
/// sqlx logs each statement, and rmcp five lines per MCP session (one with a dump of the
/// client's `initialize`), where the gateway logs one.
fn default_filter(level: &str) -> EnvFilter {
    let level = match level.to_ascii_lowercase().as_str() {
        "debug" | "info" | "warn" | "error" | "trace" => level.to_ascii_lowercase(),
        _ => "info".to_string(),
    };
    EnvFilter::new(format!(
        "{level},sqlx=warn,hyper=warn,reqwest=warn,rmcp=warn"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_default_filter_keeps_the_gateways_info_and_drops_rmcps() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(default_filter("info"))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "switchboard::mcp::sessions", "MCP session started");
            tracing::info!(target: "rmcp::service", "Service initialized as server");
            tracing::info!(target: "sqlx::query", "SELECT 1");
            tracing::warn!(target: "rmcp::service", "a warning still shows");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("MCP session started"), "{text}");
        assert!(text.contains("a warning still shows"), "{text}");
        assert!(!text.contains("Service initialized"), "{text}");
        assert!(!text.contains("SELECT 1"), "{text}");
    }
}
