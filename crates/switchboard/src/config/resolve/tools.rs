//! `tools:` (directors and their workers, the built-in toolkit, the health-check interval)
//! and the seed layout's top-level `workers:`, which comes first.

use std::time::Duration;

use serde_norway::Mapping;

use super::{positive, required_id};
use crate::config::check;
use crate::config::model::{McpUpstreamConfig, SecretValue, WorkerConfig};
use crate::config::reader::{Map, Reader, Unset};

pub(super) const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_WORKER_RETRY: u32 = 3;
const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_UPSTREAM_RETRY: u32 = 1;

/// What `tools:` and `workers:` give the [`Config`](crate::config::Config); each worker
/// and upstream with its key path, for the duplicate-id check.
pub(super) struct Tools {
    pub workers: Vec<(WorkerConfig, String)>,
    pub upstreams: Vec<(McpUpstreamConfig, String)>,
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
    let (workers, upstreams) = workers(r, root, &tools, development, empty);
    Tools {
        workers,
        upstreams,
        builtin_toolkit: r.flag(&tools, "builtin", true),
        worker_health_interval: positive(
            r,
            &tools,
            "health_check_interval",
            DEFAULT_HEALTH_INTERVAL,
        ),
    }
}

type Workers = (
    Vec<(WorkerConfig, String)>,
    Vec<(McpUpstreamConfig, String)>,
);

/// Seed-style top-level `workers:` first, then `tools.directors[].workers[]`; `type: mcp`
/// entries go to the second list.
fn workers(
    r: &mut Reader<'_>,
    root: &Map<'_>,
    tools: &Map<'_>,
    development: bool,
    empty: &Mapping,
) -> Workers {
    let mut workers = Vec::new();
    let mut upstreams = Vec::new();
    let mut add = |entry: Option<Entry>| match entry {
        Some(Entry::Http(w, path)) => workers.push((w, path)),
        Some(Entry::Mcp(u, path)) => upstreams.push((u, path)),
        None => {}
    };
    for item in r.list(root, "workers") {
        add(worker(r, item, None, development, empty));
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
            add(worker(r, item, Some(&id), development, empty));
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
    (workers, upstreams)
}

/// One `workers[]` entry, by its type, with its key path.
enum Entry {
    Http(WorkerConfig, String),
    Mcp(McpUpstreamConfig, String),
}

/// One worker from either layout; `None` when it cannot be used at all (no id, or a
/// type we do not serve). A worker inside a disabled director is disabled.
fn worker(
    r: &mut Reader<'_>,
    item: Map<'_>,
    director: Option<&str>,
    development: bool,
    empty: &Mapping,
) -> Option<Entry> {
    let enabled = r.flag(&item, "enabled", true) && !item.disabled;
    let w = Map {
        disabled: !enabled,
        ..item
    };
    let id = required_id(r, &w, "worker")?;
    let mcp = match r.text(&w, "type", Unset::UseDefault).as_deref() {
        None | Some("" | "http") => false,
        Some("mcp") => true,
        Some("stdio") => {
            r.error(
                w.child("type"),
                format!("worker {id}: stdio upstreams are not supported yet"),
            );
            return None;
        }
        Some(other) => {
            r.error(
                w.child("type"),
                format!("unknown worker type {other:?} (use http or mcp)"),
            );
            return None;
        }
    };
    if w.has("stdio") {
        r.error(
            w.child("stdio"),
            format!("worker {id}: stdio upstreams are not supported yet"),
        );
    }
    // The other type's section would be silently ignored: a typo in `type:` or a
    // half-converted entry. Refuse it.
    let (own, other) = if mcp {
        ("mcp", "http")
    } else {
        ("http", "mcp")
    };
    if w.has(other) {
        r.error(
            w.child(other),
            format!("worker {id} is type {own}: `{other}:` does not belong here (use `{own}:`)"),
        );
    }
    r.check_keys(&w, &["id", "enabled", "type", "http", "mcp", "stdio"], &[]);
    let path = w.path.clone();
    if mcp {
        let upstream = upstream(r, &w, id, enabled, director, empty);
        return Some(Entry::Mcp(upstream, path));
    }
    let http = r.section_or(&w, "http", empty);
    r.check_keys(&http, &["uri", "secret", "timeout", "retry"], &[]);

    let uri = r.text(&http, "uri", Unset::Error);
    if enabled {
        check_uri(r, &http, &id, uri.as_deref());
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
    let retry = retry(r, &http, DEFAULT_WORKER_RETRY);

    let config = WorkerConfig {
        id,
        enabled,
        director: director.map(str::to_owned),
        uri: uri.unwrap_or_default().trim_end_matches('/').to_owned(),
        secret,
        timeout,
        retry,
    };
    Some(Entry::Http(config, path))
}

/// The `mcp:` section of a `type: mcp` worker.
fn upstream(
    r: &mut Reader<'_>,
    w: &Map<'_>,
    id: String,
    enabled: bool,
    director: Option<&str>,
    empty: &Mapping,
) -> McpUpstreamConfig {
    let mcp = r.section_or(w, "mcp", empty);
    if mcp.has("oauth2") {
        r.error(
            mcp.child("oauth2"),
            format!("worker {id}: per-user OAuth to upstream MCP servers is not supported yet"),
        );
    }
    if mcp.has("secrets") {
        r.error(
            mcp.child("secrets"),
            format!(
                "worker {id}: mcp.secrets is not supported yet; put credentials in mcp.headers"
            ),
        );
    }
    r.check_keys(
        &mcp,
        &["uri", "timeout", "retry", "headers", "oauth2", "secrets"],
        &[],
    );
    let uri = r.text(&mcp, "uri", Unset::Error);
    if enabled {
        check_uri(r, &mcp, &id, uri.as_deref());
    }
    let timeout = positive(r, &mcp, "timeout", DEFAULT_UPSTREAM_TIMEOUT);
    let retry = retry(r, &mcp, DEFAULT_UPSTREAM_RETRY);
    let mut headers = Vec::new();
    if let Some(section) = r.section(&mcp, "headers") {
        for name in section.keys() {
            let path = section.child(name);
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                r.error(path, format!("{name:?} is not a valid HTTP header name"));
                continue;
            }
            let Some(value) = r.text(&section, name, Unset::Error) else {
                continue;
            };
            // The value is checked once `${secret:}` references are filled in.
            headers.push((name.to_owned(), SecretValue::new(value)));
        }
    }
    McpUpstreamConfig {
        id,
        enabled,
        director: director.map(str::to_owned),
        uri: uri.unwrap_or_default(),
        timeout,
        retry,
        headers,
    }
}

/// A worker's or upstream's `uri`: present, and http(s).
fn check_uri(r: &mut Reader<'_>, section: &Map<'_>, id: &str, uri: Option<&str>) {
    match uri {
        None if !section.has("uri") => {
            r.error(section.child("uri"), format!("worker {id} has no uri"))
        }
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
            r.error(
                section.child("uri"),
                format!("worker {id}: uri must start with http:// or https://"),
            );
        }
        _ => {}
    }
}

fn retry(r: &mut Reader<'_>, section: &Map<'_>, default: u32) -> u32 {
    r.integer(section, "retry", 0, 100, "retry count")
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(default)
}

/// Fills `${secret:NAME}` in upstream header values from the top-level `secrets:`, and
/// checks each value can be sent as a header. Runs once `secrets:` is read.
pub(super) fn upstream_secrets(
    r: &mut Reader<'_>,
    upstreams: &mut [(McpUpstreamConfig, String)],
    secrets: &std::collections::BTreeMap<String, SecretValue>,
) {
    for (upstream, path) in upstreams.iter_mut() {
        let enabled = upstream.enabled;
        for (name, value) in &mut upstream.headers {
            let at = format!("{path}.mcp.headers.{name}");
            match fill_secrets(value.expose(), secrets) {
                Ok(filled) => {
                    if enabled && http::HeaderValue::from_str(&filled).is_err() {
                        // The value may be a credential: name the header, never the value.
                        r.error(at, "not a valid HTTP header value");
                    }
                    *value = SecretValue::new(filled);
                }
                Err(message) if enabled => r.error(at, message),
                Err(_) => {}
            }
        }
    }
}

fn fill_secrets(
    text: &str,
    secrets: &std::collections::BTreeMap<String, SecretValue>,
) -> Result<String, String> {
    const OPEN: &str = "${secret:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let body = &rest[start + OPEN.len()..];
        let end = body
            .find('}')
            .ok_or_else(|| "unterminated ${secret:...} (missing })".to_owned())?;
        let name = body[..end].trim();
        let value = secrets
            .get(name)
            .ok_or_else(|| format!("secret {name:?} is not defined under `secrets:`"))?;
        out.push_str(value.expose());
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
