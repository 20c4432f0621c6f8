//! From the YAML document to [`Config`]: both layouts (seed style and Arcade 2.0) folded
//! into one shape, defaults applied, every problem collected with its key path.
//!
//! Unset `${env:}` rule: a key with a default (host, port, development, public_url,
//! timeouts, sizes, flags, logging) treats an unset variable as "use the default", so one
//! template serves many deployments. A key without one (worker uri and secret, provider
//! client id and secret, root keys, storage location and credentials, tool secrets) makes
//! it an error naming the variable, except inside a disabled worker or provider, where
//! nothing is used. Sections we do not serve (`llm`) are never expanded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::{Mapping, Value};

use super::check;
use super::model::*;
use super::problem::Problem;
use super::reader::{Map, Reader, Unset};

const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_WORKER_RETRY: u32 = 3;
const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_POSTGRES_PORT: u16 = 5432;

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
        auth_providers: Vec::new(),
        secrets: BTreeMap::new(),
        telemetry: TelemetryConfig::default(),
        execution_logging: ExecutionLoggingConfig::default(),
        builtin_toolkit: true,
        worker_health_interval: DEFAULT_HEALTH_INTERVAL,
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

    let api = api(&mut r, &root, &empty);
    let storage = storage(&mut r, &root, data_dir);
    let mut root_keys = root_keys(&mut r, &root, &empty);
    let providers = providers(&mut r, &root, &empty);
    let oauth = oauth_settings(
        &mut r,
        &root,
        &empty,
        api.development,
        providers.iter().any(|(p, _)| p.enabled),
    );
    let tools = r.section_or(&root, "tools", &empty);
    r.check_keys(
        &tools,
        &["directors", "builtin", "health_check_interval"],
        &[],
    );
    let workers = workers(&mut r, &root, &tools, api.development, &empty);
    let builtin_toolkit = r.flag(&tools, "builtin", true);
    let worker_health_interval = positive(
        &mut r,
        &tools,
        "health_check_interval",
        DEFAULT_HEALTH_INTERVAL,
    );
    let secrets = secrets(&mut r, &root);
    let gateways = gateways(&mut r, &root);
    let network = network(&mut r, &root, &empty);
    let telemetry = telemetry(&mut r, &root, &empty);
    let execution_logging = execution_logging(&mut r, &root, &empty);
    cache(&mut r, &root);

    check::unique_ids(
        &mut r,
        "worker",
        workers
            .iter()
            .map(|(w, path)| (w.id.as_str(), path.as_str())),
    );
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

    problems.append(&mut r.problems);
    Some(Config {
        source: Some(source.to_owned()),
        api,
        storage,
        security: SecurityConfig {
            root_keys: root_keys.into_iter().map(|(k, _)| k).collect(),
        },
        workers: workers.into_iter().map(|(w, _)| w).collect(),
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

/// `network.allowlist`: each entry a host name, a `*.` wildcard, an IP address or a CIDR.
fn network(r: &mut Reader<'_>, root: &Map<'_>, empty: &Mapping) -> NetworkConfig {
    let network = r.section_or(root, "network", empty);
    r.check_keys(&network, &["allowlist"], &[]);
    let allowlist = r.strings(&network, "allowlist");
    for (i, entry) in allowlist.iter().enumerate() {
        if let Err(reason) = crate::net::AllowEntry::parse(entry) {
            r.error(format!("{}[{i}]", network.child("allowlist")), reason);
        }
    }
    NetworkConfig { allowlist }
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

/// `api:` plus the seed layout's `http:` (timeouts, CORS).
fn api(r: &mut Reader<'_>, root: &Map<'_>, empty: &Mapping) -> ApiConfig {
    let defaults = ApiConfig::default();
    let api = r.section_or(root, "api", empty);
    let http = r.section_or(root, "http", empty);
    r.check_keys(
        &api,
        &[
            "host",
            "port",
            "development",
            "public_url",
            "tls",
            "read_timeout",
            "write_timeout",
            "idle_timeout",
            "max_request_body_size",
            "allowed_origins",
            "allowed_hosts",
            "mcp_session_keep_alive",
            "mcp_direct_tool_calls",
            "max_connections",
            "mcp_max_sessions",
            "mcp_max_sessions_per_user",
            "mcp_session_lifetime",
        ],
        &["rate_limit"],
    );
    r.check_keys(
        &http,
        &["read_timeout", "write_timeout", "idle_timeout", "cors"],
        &[],
    );

    let host = r
        .text(&api, "host", Unset::UseDefault)
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or(defaults.host);
    let port = r.port(&api, "port", defaults.port);
    let development = r.flag(&api, "development", false);
    let tls = r.section(&api, "tls").and_then(|tls| tls_config(r, &tls));
    let public_url = match r.text(&api, "public_url", Unset::UseDefault) {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            url.trim_end_matches('/').to_owned()
        }
        Some(url) if !url.is_empty() => {
            r.error(
                api.child("public_url"),
                format!("{url:?} must start with http:// or https://"),
            );
            String::new()
        }
        _ => default_public_url(&host, port, tls.is_some()),
    };
    let cors = match r.section(&http, "cors") {
        Some(cors) => {
            r.check_keys(&cors, &["allowed_origins", "allowed_methods"], &[]);
            let allowed_origins = r.strings(&cors, "allowed_origins");
            for (i, origin) in allowed_origins.iter().enumerate() {
                if let Err(reason) = check_cors_origin(origin) {
                    r.error(format!("{}[{i}]", cors.child("allowed_origins")), reason);
                }
            }
            let allowed_methods = r.strings(&cors, "allowed_methods");
            for (i, method) in allowed_methods.iter().enumerate() {
                if http::Method::from_bytes(method.as_bytes()).is_err() {
                    r.error(
                        format!("{}[{i}]", cors.child("allowed_methods")),
                        format!("'{method}' is not an HTTP method"),
                    );
                }
            }
            CorsConfig {
                allowed_origins,
                allowed_methods,
            }
        }
        None => CorsConfig::default(),
    };
    ApiConfig {
        read_timeout: timeout(r, &api, &http, "read_timeout", defaults.read_timeout),
        write_timeout: timeout(r, &api, &http, "write_timeout", defaults.write_timeout),
        idle_timeout: timeout(r, &api, &http, "idle_timeout", defaults.idle_timeout),
        max_request_body_size: r.count(
            &api,
            "max_request_body_size",
            1,
            defaults.max_request_body_size,
        ),
        host,
        port,
        development,
        public_url,
        tls,
        cors,
        allowed_origins: r.strings(&api, "allowed_origins"),
        allowed_hosts: r.strings(&api, "allowed_hosts"),
        mcp_session_keep_alive: positive(
            r,
            &api,
            "mcp_session_keep_alive",
            defaults.mcp_session_keep_alive,
        ),
        mcp_direct_tool_calls: r.flag(
            &api,
            "mcp_direct_tool_calls",
            defaults.mcp_direct_tool_calls,
        ),
        max_connections: r.count(&api, "max_connections", 1, defaults.max_connections),
        mcp_max_sessions: r.count(&api, "mcp_max_sessions", 1, defaults.mcp_max_sessions),
        mcp_max_sessions_per_user: r.count(
            &api,
            "mcp_max_sessions_per_user",
            1,
            defaults.mcp_max_sessions_per_user,
        ),
        mcp_session_lifetime: positive(
            r,
            &api,
            "mcp_session_lifetime",
            defaults.mcp_session_lifetime,
        ),
    }
}

/// Arcade puts server timeouts under `api:`, the seed layout under `http:`; `api:` wins.
fn timeout(
    r: &mut Reader<'_>,
    api: &Map<'_>,
    http: &Map<'_>,
    key: &str,
    default: Duration,
) -> Duration {
    if api.has(key) {
        if http.has(key) {
            r.warn(
                http.child(key),
                format!("also set as {}; using that", api.child(key)),
            );
        }
        r.duration(api, key, default)
    } else {
        r.duration(http, key, default)
    }
}

/// A browser `Origin` as CORS compares it: `*`, or `scheme://host[:port]` and nothing more.
fn check_cors_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let parsed =
        url::Url::parse(origin).map_err(|e| format!("'{origin}' is not an origin: {e}"))?;
    let bare = parsed.path() == "/" && parsed.query().is_none() && parsed.fragment().is_none();
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || !bare {
        return Err(format!(
            "'{origin}' is not an origin: write scheme://host[:port], e.g. https://app.example.com"
        ));
    }
    if origin.ends_with('/') {
        return Err(format!("'{origin}': an origin has no trailing slash"));
    }
    Ok(())
}

fn tls_config(r: &mut Reader<'_>, tls: &Map<'_>) -> Option<TlsConfig> {
    r.check_keys(tls, &["enabled", "cert_file", "key_file"], &[]);
    // A `tls:` section with files and no `enabled:` means TLS is wanted.
    if !r.flag(tls, "enabled", true) {
        return None;
    }
    let file = |r: &mut Reader<'_>, key: &str| match r.text(tls, key, Unset::Error) {
        Some(path) if !path.is_empty() => Some(r.base_dir().join(path)),
        Some(_) => {
            r.error(tls.child(key), "TLS is enabled but this is empty");
            None
        }
        None => {
            if !tls.has(key) {
                r.error(tls.child(key), "TLS is enabled but this is not set");
            }
            None
        }
    };
    let cert_file = file(r, "cert_file");
    let key_file = file(r, "key_file");
    Some(TlsConfig {
        cert_file: cert_file?,
        key_file: key_file?,
    })
}

/// `http://{host}:{port}`, with `localhost` for wildcard and loopback hosts (a browser
/// cannot open `0.0.0.0`, and OAuth providers register `localhost`).
fn default_public_url(host: &str, port: u16, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match host {
        "0.0.0.0" | "::" | "[::]" | "127.0.0.1" | "::1" | "[::1]" => "localhost".to_owned(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_owned(),
    };
    format!("{scheme}://{host}:{port}")
}

fn storage(r: &mut Reader<'_>, root: &Map<'_>, data_dir: &Path) -> StorageConfig {
    let Some(storage) = r.section(root, "storage") else {
        return StorageConfig::Sqlite {
            path: default_sqlite_path(data_dir),
        };
    };
    r.check_keys(&storage, &["sqlite", "postgres"], &[]);
    let sqlite = r.section(&storage, "sqlite");
    let postgres = r.section(&storage, "postgres");
    let sqlite_path = match &sqlite {
        Some(sqlite) => {
            r.check_keys(sqlite, &["path"], &[]);
            match r.text(sqlite, "path", Unset::Error) {
                Some(path) if !path.is_empty() => r.base_dir().join(path),
                Some(_) => {
                    r.error(sqlite.child("path"), "is empty");
                    default_sqlite_path(data_dir)
                }
                None => default_sqlite_path(data_dir),
            }
        }
        None => default_sqlite_path(data_dir),
    };
    let Some(pg) = postgres else {
        return StorageConfig::Sqlite { path: sqlite_path };
    };
    if sqlite.is_some() {
        r.error(
            storage.path.clone(),
            "set either storage.sqlite or storage.postgres, not both",
        );
    }
    if pg.has("data_path") {
        if pg.keys().any(|k| k != "data_path") {
            r.error(
                pg.child("data_path"),
                "embedded mode (data_path) excludes the other postgres settings",
            );
        }
        r.warn(
            pg.child("data_path"),
            format!(
                "embedded PostgreSQL is not supported; using SQLite at {} instead \
                 (set storage.postgres.url, or host/user/password/db, to use PostgreSQL)",
                sqlite_path.display()
            ),
        );
        return StorageConfig::Sqlite { path: sqlite_path };
    }
    let url = if pg.has("url") {
        if pg.keys().any(|k| k != "url") {
            r.error(
                pg.child("url"),
                "set either url or host/port/user/password/db/sslmode, not both",
            );
        }
        match r.text(&pg, "url", Unset::Error) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => url,
            Some(_) => {
                r.error(
                    pg.child("url"),
                    "must start with postgres:// or postgresql://",
                );
                String::new()
            }
            None => String::new(),
        }
    } else {
        postgres_url_from_fields(r, &pg)
    };
    StorageConfig::Postgres {
        url: SecretValue::new(url),
    }
}

/// `postgres://user:password@host:port/db?sslmode=...` from Arcade's separate fields.
fn postgres_url_from_fields(r: &mut Reader<'_>, pg: &Map<'_>) -> String {
    r.check_keys(
        pg,
        &["host", "port", "user", "password", "db", "sslmode"],
        &[],
    );
    let required = |r: &mut Reader<'_>, key: &str| {
        let value = r.text(pg, key, Unset::Error);
        if value.as_deref().is_some_and(str::is_empty) || (value.is_none() && !pg.has(key)) {
            r.error(
                pg.child(key),
                "required (or set storage.postgres.url instead)",
            );
        }
        value.unwrap_or_default()
    };
    let host = required(r, "host");
    let user = required(r, "user");
    let db = required(r, "db");
    let password = r.text(pg, "password", Unset::Error).unwrap_or_default();
    let port = r.port(pg, "port", DEFAULT_POSTGRES_PORT);
    let sslmode = r
        .text(pg, "sslmode", Unset::UseDefault)
        .filter(|s| !s.is_empty());
    const SSL_MODES: [&str; 6] = [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];
    if let Some(mode) = &sslmode
        && !SSL_MODES.contains(&mode.as_str())
    {
        r.error(
            pg.child("sslmode"),
            format!(
                "invalid sslmode {mode:?} (use one of {})",
                SSL_MODES.join(", ")
            ),
        );
    }

    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let credentials = if password.is_empty() {
        percent_encode(&user)
    } else {
        format!("{}:{}", percent_encode(&user), percent_encode(&password))
    };
    let mut url = format!(
        "postgres://{credentials}@{host}:{port}/{}",
        percent_encode(&db)
    );
    if let Some(mode) = sslmode {
        url.push_str("?sslmode=");
        url.push_str(&mode);
    }
    url
}

/// Encodes everything but RFC 3986 unreserved characters, so a password with `@`, `/` or
/// `:` survives inside a URL.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn root_keys(r: &mut Reader<'_>, root: &Map<'_>, empty: &Mapping) -> Vec<(RootKeyConfig, String)> {
    let security = r.section_or(root, "security", empty);
    r.check_keys(&security, &["root_keys"], &[]);
    let mut keys = Vec::new();
    for key in r.list(&security, "root_keys") {
        r.check_keys(&key, &["id", "default", "value"], &[]);
        let default = r.flag(&key, "default", false);
        let Some(id) = required_id(r, &key, "root key") else {
            continue;
        };
        let value = r.text(&key, "value", Unset::Error);
        match &value {
            Some(v) if v.is_empty() => {
                r.error(key.child("value"), format!("root key {id} is empty"))
            }
            None if !key.has("value") => {
                r.error(key.child("value"), format!("root key {id} has no value"))
            }
            _ => {}
        }
        let value = SecretValue::new(value.unwrap_or_default());
        keys.push((RootKeyConfig { id, default, value }, key.path.clone()));
    }
    keys
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

fn providers(
    r: &mut Reader<'_>,
    root: &Map<'_>,
    empty: &Mapping,
) -> Vec<(AuthProviderConfig, String)> {
    const NAMED: [&str; 7] = [
        "id",
        "description",
        "enabled",
        "type",
        "provider_id",
        "client_id",
        "client_secret",
    ];
    let auth = r.section_or(root, "auth", empty);
    r.check_keys(
        &auth,
        &[
            "providers",
            "user_verifier",
            "flow_ttl",
            "refresh_skew",
            "elicitation_timeout",
        ],
        &[],
    );
    let mut providers = Vec::new();
    for item in r.list(&auth, "providers") {
        let enabled = r.flag(&item, "enabled", true);
        let p = Map {
            disabled: !enabled,
            ..item
        };
        let Some(id) = required_id(r, &p, "provider") else {
            continue;
        };
        let provider_type = r.text(&p, "type", Unset::Error).unwrap_or_default();
        if provider_type.is_empty() {
            if !p.has("type") {
                r.error(
                    p.child("type"),
                    format!("provider {id} has no type (use oauth2)"),
                );
            }
        } else if provider_type != "oauth2" {
            r.error(
                p.child("type"),
                format!("unknown provider type {provider_type:?} (only oauth2 is supported)"),
            );
        }
        let description = r.text(&p, "description", Unset::UseDefault);
        let provider_id = r
            .text(&p, "provider_id", Unset::Error)
            .filter(|s| !s.is_empty());
        let client_id = r
            .text(&p, "client_id", Unset::Error)
            .filter(|s| !s.is_empty());
        let client_secret = r
            .text(&p, "client_secret", Unset::Error)
            .filter(|s| !s.is_empty());
        if enabled {
            if client_id.is_none() && !p.has("client_id") {
                r.error(
                    p.child("client_id"),
                    format!("provider {id} has no client_id"),
                );
            }
            if provider_id.is_none()
                && !p.has("provider_id")
                && !p.has("oauth2")
                && !p.has("authorization")
            {
                r.error(
                    p.path.clone(),
                    format!("provider {id} needs provider_id (a known provider such as google), an oauth2 section, or authorization/token URLs"),
                );
            }
        }
        let mut extra = serde_json::Map::new();
        for (key, value) in p.map {
            let Some(key) = key.as_str() else { continue };
            if !NAMED.contains(&key) {
                let json = r.json(&p.child(key), value, p.disabled);
                extra.insert(key.to_owned(), json);
            }
        }
        let provider = AuthProviderConfig {
            id,
            description,
            enabled,
            provider_type,
            provider_id,
            client_id,
            client_secret: client_secret.map(SecretValue::new),
            extra: serde_json::Value::Object(extra),
        };
        providers.push((provider, p.path.clone()));
    }
    providers
}

/// `auth.user_verifier`, `auth.flow_ttl`, `auth.refresh_skew`, `auth.elicitation_timeout`.
/// Outside dev mode, providers without a verifier need an explicit `user_verifier: none`:
/// without one, a shared authorization link could bind someone else's account.
fn oauth_settings(
    r: &mut Reader<'_>,
    root: &Map<'_>,
    empty: &Mapping,
    development: bool,
    any_provider: bool,
) -> OAuthSettings {
    let defaults = OAuthSettings::default();
    let auth = r.section_or(root, "auth", empty);
    let path = "auth.user_verifier".to_string();
    let user_verifier = match auth.map.get("user_verifier") {
        None => UserVerifier::Unset,
        Some(value) => match value.as_str() {
            Some(s) if s.trim().eq_ignore_ascii_case("none") => UserVerifier::Disabled,
            _ => {
                let verifier = r.section_or(&auth, "user_verifier", empty);
                r.check_keys(&verifier, &["url"], &[]);
                match r
                    .text(&verifier, "url", Unset::Error)
                    .filter(|u| !u.trim().is_empty())
                {
                    Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                        UserVerifier::Url(url)
                    }
                    Some(url) => {
                        r.error(
                            format!("{path}.url"),
                            format!("must be an http(s) URL, got {url:?}"),
                        );
                        UserVerifier::Unset
                    }
                    None => {
                        r.error(path.clone(), "expected `none` or a mapping with `url`");
                        UserVerifier::Unset
                    }
                }
            }
        },
    };
    if user_verifier == UserVerifier::Unset && !development && any_provider {
        r.error(
            path,
            "outside dev mode, set auth.user_verifier.url (your app's page that confirms the user) or `user_verifier: none` to accept the risk",
        );
    }
    OAuthSettings {
        user_verifier,
        flow_ttl: positive(r, &auth, "flow_ttl", defaults.flow_ttl),
        refresh_skew: r.duration(&auth, "refresh_skew", defaults.refresh_skew),
        elicitation_timeout: positive(
            r,
            &auth,
            "elicitation_timeout",
            defaults.elicitation_timeout,
        ),
    }
}

/// `gateways: [{slug, description, tools: [...], toolkits: [...]}]`.
fn gateways(r: &mut Reader<'_>, root: &Map<'_>) -> Vec<GatewayConfig> {
    let mut out: Vec<GatewayConfig> = Vec::new();
    for item in r.list(root, "gateways") {
        r.check_keys(&item, &["slug", "description", "tools", "toolkits"], &[]);
        let Some(slug) = r
            .text(&item, "slug", Unset::Error)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
        else {
            r.error(item.child("slug"), "a gateway needs a slug");
            continue;
        };
        if !slug
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            r.error(
                item.child("slug"),
                format!("slug {slug:?} may use only letters, digits, '-' and '_'"),
            );
            continue;
        }
        if out.iter().any(|g| g.slug == slug) {
            r.error(
                item.child("slug"),
                format!("duplicate gateway slug {slug:?}"),
            );
            continue;
        }
        out.push(GatewayConfig {
            description: r.text(&item, "description", Unset::UseDefault),
            tools: r.strings(&item, "tools"),
            toolkits: r.strings(&item, "toolkits"),
            slug,
        });
    }
    out
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

/// A duration that must not be zero (an interval or a call timeout).
fn positive(r: &mut Reader<'_>, m: &Map<'_>, key: &str, default: Duration) -> Duration {
    let value = r.duration(m, key, default);
    if value.is_zero() {
        r.error(m.child(key), "must be greater than zero");
        return default;
    }
    value
}

/// Top-level `secrets: {KEY: value}`: tool secrets injected at dispatch.
fn secrets(r: &mut Reader<'_>, root: &Map<'_>) -> BTreeMap<String, SecretValue> {
    let mut secrets = BTreeMap::new();
    let Some(map) = r.section(root, "secrets") else {
        return secrets;
    };
    for key in map.keys() {
        if let Some(value) = r.text(&map, key, Unset::Error) {
            secrets.insert(key.to_owned(), SecretValue::new(value));
        }
    }
    secrets
}

fn telemetry(r: &mut Reader<'_>, root: &Map<'_>, empty: &Mapping) -> TelemetryConfig {
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

fn execution_logging(
    r: &mut Reader<'_>,
    root: &Map<'_>,
    empty: &Mapping,
) -> ExecutionLoggingConfig {
    let d = ExecutionLoggingConfig::default();
    let e = r.section_or(root, "execution_logging", empty);
    r.check_keys(
        &e,
        &[
            "enabled",
            "buffer_size",
            "write_batch_size",
            "write_batch_timeout",
            "drain_timeout",
            "retention",
            "cleanup",
        ],
        &["max_output_size", "config_cache_ttl"],
    );
    let cleanup = r.section_or(&e, "cleanup", empty);
    r.check_keys(
        &cleanup,
        &["batch_size", "mark_interval", "sweep_batch_interval"],
        &[],
    );
    let dc = &d.cleanup;
    let retention = r.duration(&e, "retention", d.retention.unwrap_or_default());
    ExecutionLoggingConfig {
        enabled: r.flag(&e, "enabled", d.enabled),
        buffer_size: r.count(&e, "buffer_size", 1, d.buffer_size),
        write_batch_size: r.count(&e, "write_batch_size", 1, d.write_batch_size),
        write_batch_timeout: positive(r, &e, "write_batch_timeout", d.write_batch_timeout),
        drain_timeout: r.duration(&e, "drain_timeout", d.drain_timeout),
        retention: (!retention.is_zero()).then_some(retention),
        cleanup: ExecutionCleanupConfig {
            batch_size: r.count(&cleanup, "batch_size", 1, dc.batch_size),
            mark_interval: positive(r, &cleanup, "mark_interval", dc.mark_interval),
            sweep_batch_interval: r.duration(
                &cleanup,
                "sweep_batch_interval",
                dc.sweep_batch_interval,
            ),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_and_loopback_hosts_become_localhost_in_the_public_url() {
        assert_eq!(
            default_public_url("0.0.0.0", 9099, false),
            "http://localhost:9099"
        );
        assert_eq!(default_public_url("::", 80, false), "http://localhost:80");
        assert_eq!(
            default_public_url("127.0.0.1", 9099, true),
            "https://localhost:9099"
        );
        assert_eq!(
            default_public_url("gw.example.com", 8443, true),
            "https://gw.example.com:8443"
        );
        assert_eq!(
            default_public_url("fd00::1", 9099, false),
            "http://[fd00::1]:9099"
        );
    }

    #[test]
    fn url_credentials_are_percent_encoded() {
        assert_eq!(percent_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(percent_encode("plain-user_1.x~"), "plain-user_1.x~");
    }
}
