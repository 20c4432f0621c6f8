//! From the YAML document to [`Config`]: both layouts (seed style and Arcade 2.0) folded
//! into one shape, defaults applied, every problem collected with its key path.
//!
//! One file per section, named for it: `api` (`api:` and the seed layout's `http:`),
//! `storage`, `security` (`security.root_keys` and the top-level `secrets:`), `auth`
//! (`auth:`), `tools` (`tools:` and the seed layout's `workers:`), `gateways`, `network`,
//! `telemetry` and `execution_log` (`execution_logging:`). Each reads its section through
//! the [`Reader`], applies its defaults and reports problems under their key paths. This
//! file reads the document, calls them in file order, runs the checks that span sections
//! (`check.rs`) and assembles the [`Config`].
//!
//! Unset `${env:}` rule: a key with a default (host, port, development, public_url,
//! timeouts, sizes, flags, logging) treats an unset variable as "use the default", so one
//! template serves many deployments. A key without one (worker uri and secret, provider
//! client id and secret, root keys, storage location and credentials, tool secrets) makes
//! it an error naming the variable, except inside a disabled worker or provider, where
//! nothing is used. Sections we do not serve (`llm`) are never expanded.

mod api;
mod auth;
mod execution_log;
mod gateways;
mod network;
mod security;
mod storage;
mod telemetry;
mod tools;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::{Mapping, Value};

use super::check;
use super::model::*;
use super::problem::Problem;
use super::reader::{Map, Reader, Unset};

/// The configuration used when there is no file at all: development mode on loopback,
/// port 9099, SQLite at `{data_dir}/switchboard.db`, the built-in toolkit, no workers.
pub fn defaults(data_dir: &Path) -> Config {
    Config {
        source: None,
        api: ApiConfig {
            development: true,
            ..ApiConfig::default()
        },
        storage: StorageConfig::Sqlite {
            path: default_sqlite_path(data_dir),
        },
        security: SecurityConfig::default(),
        workers: Vec::new(),
        upstreams: Vec::new(),
        auth_providers: Vec::new(),
        secrets: BTreeMap::new(),
        telemetry: TelemetryConfig::default(),
        execution_logging: ExecutionLoggingConfig::default(),
        builtin_toolkit: true,
        worker_health_interval: tools::DEFAULT_HEALTH_INTERVAL,
        oauth: OAuthSettings::default(),
        gateways: Vec::new(),
        network: NetworkConfig::default(),
    }
}

fn default_sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("switchboard.db")
}

/// Resolves the text of `source`. `None` when the document could not be read as a YAML
/// mapping (the reason is in `problems`). Problems come back in file order, roughly.
pub(super) fn resolve(
    text: &str,
    source: &Path,
    env: &HashMap<String, String>,
    data_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Option<Config> {
    let mut doc: Value = match serde_norway::from_str(text) {
        Ok(doc) => doc,
        Err(err) => {
            problems.push(Problem::error("", yaml_message(&err)));
            return None;
        }
    };
    if let Err(err) = doc.apply_merge() {
        problems.push(Problem::error("", yaml_message(&err)));
        return None;
    }
    let empty = Mapping::new();
    let root = match &doc {
        Value::Null => &empty,
        Value::Mapping(map) => map,
        _ => {
            problems.push(Problem::error(
                "",
                "expected a mapping of sections (api:, tools:, ...)",
            ));
            return None;
        }
    };
    let root = Map {
        path: String::new(),
        map: root,
        disabled: false,
    };

    let base_dir = source
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut r = Reader::new(env, base_dir);
    top_level_keys(&mut r, &root);

    let api = api::api(&mut r, &root, &empty);
    let storage = storage::storage(&mut r, &root, data_dir);
    let mut root_keys = security::root_keys(&mut r, &root, &empty);
    let providers = auth::providers(&mut r, &root, &empty);
    let oauth = auth::oauth_settings(
        &mut r,
        &root,
        &empty,
        api.development,
        providers.iter().any(|(p, _)| p.enabled),
    );
    let tools::Tools {
        workers,
        mut upstreams,
        builtin_toolkit,
        worker_health_interval,
    } = tools::tools(&mut r, &root, api.development, &empty);
    let secrets = security::secrets(&mut r, &root);
    tools::upstream_secrets(&mut r, &mut upstreams, &secrets);
    let gateways = gateways::gateways(&mut r, &root);
    let network = network::network(&mut r, &root, &empty);
    let telemetry = telemetry::telemetry(&mut r, &root, &empty);
    let execution_logging = execution_log::execution_logging(&mut r, &root, &empty);
    cache(&mut r, &root);

    // Workers and upstreams share one id space: both are toolkit names in the catalog.
    let mut all_workers: Vec<(&str, &str)> = workers
        .iter()
        .map(|(w, path)| (w.id.as_str(), path.as_str()))
        .chain(
            upstreams
                .iter()
                .map(|(u, path)| (u.id.as_str(), path.as_str())),
        )
        .collect();
    // In file order, so the later entry is the one reported.
    all_workers.sort_by_key(|(_, path)| worker_order(path));
    check::unique_ids(&mut r, "worker", all_workers.into_iter());
    check::unique_ids(
        &mut r,
        "provider",
        providers
            .iter()
            .map(|(p, path)| (p.id.as_str(), path.as_str())),
    );
    check::unique_ids(
        &mut r,
        "root key",
        root_keys
            .iter()
            .map(|(k, path)| (k.id.as_str(), path.as_str())),
    );
    check::one_default_root_key(&mut r, &mut root_keys);
    check::provider_endpoints(&mut r, &providers, &network, api.development);
    check::upstream_uris(&mut r, &upstreams, &network, api.development);

    problems.append(&mut r.problems);
    Some(Config {
        source: Some(source.to_owned()),
        api,
        storage,
        security: SecurityConfig {
            root_keys: root_keys.into_iter().map(|(k, _)| k).collect(),
        },
        workers: workers.into_iter().map(|(w, _)| w).collect(),
        upstreams: upstreams.into_iter().map(|(u, _)| u).collect(),
        auth_providers: providers.into_iter().map(|(p, _)| p).collect(),
        secrets,
        telemetry,
        execution_logging,
        builtin_toolkit,
        worker_health_interval,
        oauth,
        gateways,
        network,
    })
}

/// Sorts `workers[i]` before `tools.directors[d].workers[i]`, each by its indexes.
fn worker_order(path: &str) -> (bool, Vec<usize>) {
    let indexes = path
        .split('[')
        .skip(1)
        .filter_map(|part| part.split(']').next()?.parse().ok())
        .collect();
    (path.starts_with("tools."), indexes)
}

/// serde_norway's message already ends in "at line L column C" when it knows where.
fn yaml_message(err: &serde_norway::Error) -> String {
    let message = err.to_string();
    match err.location() {
        Some(at) if !message.contains("line") => {
            format!(
                "invalid YAML at line {}, column {}: {message}",
                at.line(),
                at.column()
            )
        }
        _ => format!("invalid YAML: {message}"),
    }
}

fn top_level_keys(r: &mut Reader<'_>, root: &Map<'_>) {
    for key in root.keys() {
        match key {
            "$schema" | "api" | "http" | "auth" | "security" | "storage" | "cache"
            | "telemetry" | "tools" | "workers" | "secrets" | "execution_logging" | "gateways"
            | "network" => {}
            "llm" => r.warn(
                key,
                "not served by Switchboard (no LLM endpoint); section ignored",
            ),
            _ => r.warn(key, "unknown top-level key; ignored"),
        }
    }
}

/// Arcade's `cache:` is accepted: our caches are small, per replica and rebuilt from the
/// store, so only a Redis setting (which a user would expect to be shared) is worth a word.
fn cache(r: &mut Reader<'_>, root: &Map<'_>) {
    if let Some(cache) = r.section(root, "cache")
        && cache.has("redis")
    {
        r.warn(
            cache.child("redis"),
            "not used: Switchboard keeps its caches in memory per replica and shares state through the store",
        );
    }
}

/// The `id` of a list item, or `None` after reporting why there is none.
fn required_id(r: &mut Reader<'_>, item: &Map<'_>, what: &str) -> Option<String> {
    match r.text(item, "id", Unset::Error) {
        Some(id) if !id.trim().is_empty() => Some(id.trim().to_owned()),
        Some(_) => {
            r.error(item.child("id"), format!("{what} id is empty"));
            None
        }
        None => {
            if !item.has("id") {
                r.error(item.child("id"), format!("{what} has no id"));
            }
            None
        }
    }
}

/// A duration that must not be zero (an interval or a call timeout).
fn positive(r: &mut Reader<'_>, m: &Map<'_>, key: &str, default: Duration) -> Duration {
    let value = r.duration(m, key, default);
    if value.is_zero() {
        r.error(m.child(key), "must be greater than zero");
        return default;
    }
    value
}
