//! `telemetry.logging`: level and encoding of the gateway's own logs.

use serde_norway::Mapping;

use crate::config::model::TelemetryConfig;
use crate::config::reader::{Map, Reader, Unset};

pub(super) fn telemetry(r: &mut Reader<'_>, root: &Map<'_>, empty: &Mapping) -> TelemetryConfig {
    let defaults = TelemetryConfig::default();
    let telemetry = r.section_or(root, "telemetry", empty);
    // `environment` is a label for exported telemetry; accepting it silently is honest
    // enough, unlike exporter settings we would not honour.
    r.check_keys(&telemetry, &["logging", "environment"], &[]);
    let logging = r.section_or(&telemetry, "logging", empty);
    r.check_keys(&logging, &["level", "encoding"], &[]);

    let level = match r
        .text(&logging, "level", Unset::UseDefault)
        .map(|l| l.trim().to_ascii_lowercase())
    {
        None => defaults.level,
        Some(l) if l.is_empty() => defaults.level,
        Some(l) if ["trace", "debug", "info", "warn", "error"].contains(&l.as_str()) => l,
        Some(l) if l == "warning" => "warn".into(),
        Some(l) => {
            r.error(
                logging.child("level"),
                format!("invalid logging level {l:?} (use debug, info, warn or error)"),
            );
            defaults.level
        }
    };
    let encoding = match r
        .text(&logging, "encoding", Unset::UseDefault)
        .map(|e| e.trim().to_ascii_lowercase())
    {
        None => defaults.encoding,
        Some(e) if e.is_empty() => defaults.encoding,
        // Arcade writes `console` for human-readable lines.
        Some(e) if e == "text" || e == "console" => "text".into(),
        Some(e) if e == "json" => e,
        Some(e) => {
            r.error(
                logging.child("encoding"),
                format!("invalid logging encoding {e:?} (use text or json)"),
            );
            defaults.encoding
        }
    };
    TelemetryConfig { level, encoding }
}
