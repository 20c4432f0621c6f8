//! `tools:` (directors and their workers, the built-in toolkit, the health-check interval)
//! and the seed layout's top-level `workers:`, which comes first.

use std::time::Duration;

use serde_norway::Mapping;

use super::{positive, required_id};
use crate::config::check;
use crate::config::model::{SecretValue, WorkerConfig};
use crate::config::reader::{Map, Reader, Unset};

pub(super) const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_WORKER_RETRY: u32 = 3;

/// What `tools:` and `workers:` give the [`Config`](crate::config::Config); each worker
/// with its key path, for the duplicate-id check.
pub(super) struct Tools {
    pub workers: Vec<(WorkerConfig, String)>,
    pub builtin_toolkit: bool,
    pub worker_health_interval: Duration,
}

pub(super) fn tools(
    r: &mut Reader<'_>,
    root: &Map<'_>,
    development: bool,
    empty: &Mapping,
) -> Tools {
    let tools = r.section_or(root, "tools", empty);
    r.check_keys(
        &tools,
        &["directors", "builtin", "health_check_interval"],
        &[],
    );
    Tools {
        workers: workers(r, root, &tools, development, empty),
        builtin_toolkit: r.flag(&tools, "builtin", true),
        worker_health_interval: positive(
            r,
            &tools,
            "health_check_interval",
            DEFAULT_HEALTH_INTERVAL,
        ),
    }
}

/// Seed-style top-level `workers:` first, then `tools.directors[].workers[]`.
fn workers(
    r: &mut Reader<'_>,
    root: &Map<'_>,
    tools: &Map<'_>,
    development: bool,
    empty: &Mapping,
) -> Vec<(WorkerConfig, String)> {
    let mut workers = Vec::new();
    for item in r.list(root, "workers") {
        workers.extend(worker(r, item, None, development, empty));
    }
    let mut directors: Vec<(String, String)> = Vec::new();
    for director in r.list(tools, "directors") {
        // `max_tools` caps tools per LLM request in Arcade; there is no such request here.
        r.check_keys(&director, &["id", "enabled", "workers", "max_tools"], &[]);
        let enabled = r.flag(&director, "enabled", true);
        let Some(id) = required_id(r, &director, "director") else {
            continue;
        };
        let director = Map {
            disabled: !enabled,
            ..director
        };
        for item in r.list(&director, "workers") {
            workers.extend(worker(r, item, Some(&id), development, empty));
        }
        directors.push((id, director.path));
    }
    check::unique_ids(
        r,
        "director",
        directors
            .iter()
            .map(|(id, path)| (id.as_str(), path.as_str())),
    );
    workers
}

/// One worker from either layout; `None` when it cannot be used at all (no id, or a
/// type we do not serve). A worker inside a disabled director is disabled.
fn worker(
    r: &mut Reader<'_>,
    item: Map<'_>,
    director: Option<&str>,
    development: bool,
    empty: &Mapping,
) -> Option<(WorkerConfig, String)> {
    let enabled = r.flag(&item, "enabled", true) && !item.disabled;
    let w = Map {
        disabled: !enabled,
        ..item
    };
    let id = required_id(r, &w, "worker")?;
    match r.text(&w, "type", Unset::UseDefault).as_deref() {
        None | Some("" | "http") => {}
        Some("mcp") => {
            r.warn(
                w.child("type"),
                format!("worker {id}: MCP workers are not supported yet; skipped"),
            );
            return None;
        }
        Some(other) => {
            r.error(
                w.child("type"),
                format!("unknown worker type {other:?} (use http)"),
            );
            return None;
        }
    }
    r.check_keys(&w, &["id", "enabled", "type", "http"], &[]);
    let http = r.section_or(&w, "http", empty);
    r.check_keys(&http, &["uri", "secret", "timeout", "retry"], &[]);

    let uri = r.text(&http, "uri", Unset::Error);
    if enabled {
        match &uri {
            None if !http.has("uri") => {
                r.error(http.child("uri"), format!("worker {id} has no uri"))
            }
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                r.error(
                    http.child("uri"),
                    format!("worker {id}: uri must start with http:// or https://"),
                );
            }
            _ => {}
        }
    }
    let secret = r.text(&http, "secret", Unset::Error);
    // Present but unresolved: the unset variable was already reported (or is fine here).
    let secret_unresolved = secret.is_none() && http.has("secret");
    let secret = secret.filter(|s| !s.is_empty()).map(SecretValue::new);
    if enabled && !development && secret.is_none() && !secret_unresolved {
        r.error(
            http.child("secret"),
            format!("worker {id} has no secret; set http.secret (dev mode defaults it to `dev`)"),
        );
    }
    let timeout = positive(r, &http, "timeout", DEFAULT_WORKER_TIMEOUT);
    let retry = r
        .integer(&http, "retry", 0, 100, "retry count")
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(DEFAULT_WORKER_RETRY);

    let config = WorkerConfig {
        id,
        enabled,
        director: director.map(str::to_owned),
        uri: uri.unwrap_or_default().trim_end_matches('/').to_owned(),
        secret,
        timeout,
        retry,
    };
    Some((config, w.path))
}
