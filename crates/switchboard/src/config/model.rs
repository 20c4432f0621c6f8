//! The resolved configuration: what the rest of the gateway reads. Every `${env:}` and
//! `${file:}` is already expanded, durations parsed, both file layouts (seed style and
//! Arcade 2.0) folded into one shape, and defaults applied.
//!
//! Each field names the key path it comes from (`api.port`) and its default; a struct
//! names its section. Paths in files (TLS, SQLite) are relative to the config file's
//! directory. A key the file leaves out, or sets to an unset `${env:VAR}` where a default
//! exists, takes the default (see `resolve/mod.rs` for the unset-variable rule). Values
//! that must not be printed are [`SecretValue`]s.
//!
//! Must not: hold state made at run time (providers and keys added over the admin API live
//! in the store), or open files, sockets or databases itself.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Default REST/MCP port (Arcade's CLI assumes it for a local engine).
pub const DEFAULT_PORT: u16 = 9099;

/// The whole of `engine.yaml`, resolved. Built by `config::load` (or `config::defaults`
/// when there is no file: dev mode on loopback, SQLite in the data directory, the built-in
/// toolkit, no workers or providers).
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from; `None` when running on built-in defaults.
    pub source: Option<PathBuf>,
    /// `api:` (and the seed layout's `http:`): the listener, public URL, TLS, limits and
    /// MCP sessions.
    pub api: ApiConfig,
    /// `storage:`; default SQLite at `{data_dir}/switchboard.db`.
    pub storage: StorageConfig,
    /// `security:`: the root keys that seal user secrets.
    pub security: SecurityConfig,
    /// Every worker, from the seed layout's top-level `workers:` then
    /// `tools.directors[].workers[]`, disabled ones included (`enabled: false`). Workers of
    /// `type: mcp` are not here: they are [`Config::upstreams`].
    pub workers: Vec<WorkerConfig>,
    /// Upstream MCP servers: the `workers[]` entries of `type: mcp` (either layout),
    /// disabled ones included, in file order. Ids are unique across these and `workers`.
    pub upstreams: Vec<McpUpstreamConfig>,
    /// `auth.providers[]`, disabled ones included, parsed but not yet interpreted:
    /// `oauth::provider` resolves each into a provider.
    pub auth_providers: Vec<AuthProviderConfig>,
    /// `secrets: {NAME: value}`: tool secrets, injected into a call only when the tool
    /// declares the secret by name. Default none.
    pub secrets: BTreeMap<String, SecretValue>,
    /// `telemetry.logging`: the gateway's own log level and format.
    pub telemetry: TelemetryConfig,
    /// `execution_logging:`: the record kept of every tool call.
    pub execution_logging: ExecutionLoggingConfig,
    /// Serve the built-in toolkit (`tools.builtin: true`, default true).
    pub builtin_toolkit: bool,
    /// How often workers are health-checked (`tools.health_check_interval`, default 10s).
    pub worker_health_interval: Duration,
    /// `auth.*` settings other than providers (`user_verifier`, `flow_ttl`...).
    pub oauth: OAuthSettings,
    /// `network.*`: where the gateway's own outbound requests may go.
    pub network: NetworkConfig,
    /// MCP gateways (`gateways:`): named tool selections served at `/mcp/{slug}`. Default
    /// none (`/mcp` serves every tool).
    pub gateways: Vec<GatewayConfig>,
}

/// One MCP gateway: `/mcp/{slug}` serves the tools named here (`Toolkit.Tool`) plus every
/// tool of the toolkits named here. Both empty: every tool.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// `gateways[].slug`: the path segment; letters, digits, `-` and `_`, unique.
    pub slug: String,
    /// `gateways[].description`, shown to MCP clients.
    pub description: Option<String>,
    /// `gateways[].tools`: qualified tool names (`Toolkit.Tool`).
    pub tools: Vec<String>,
    /// `gateways[].toolkits`: toolkit names; every tool in them is served.
    pub toolkits: Vec<String>,
}

/// How authorization flows behave (`auth.user_verifier`, `auth.flow_ttl`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthSettings {
    /// `auth.user_verifier`: `none` or `{url}`. Outside dev mode, with any provider
    /// enabled, it must be set: without it a shared authorization link could bind someone
    /// else's account.
    pub user_verifier: UserVerifier,
    /// How long an authorization link and its flow stay valid (`auth.flow_ttl`, 10m).
    pub flow_ttl: Duration,
    /// Refresh this long before a token expires (`auth.refresh_skew`, 5m), jittered.
    pub refresh_skew: Duration,
    /// How long an MCP call waits for a user to finish authorizing (`auth.elicitation_timeout`, 2m).
    pub elicitation_timeout: Duration,
}

/// Who confirms that the person finishing a flow is the user who started it.
#[derive(Debug, Clone, PartialEq)]
pub enum UserVerifier {
    /// Not configured: allowed in dev mode (grants are usable at once).
    Unset,
    /// `user_verifier: none`: explicitly off (a warning at start).
    Disabled,
    /// `user_verifier: {url: ...}`: after the callback the browser goes there with
    /// `flow_id`, and the grant is usable only after `POST /v1/auth/confirm_user`.
    Url(String),
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            user_verifier: UserVerifier::Unset,
            flow_ttl: Duration::from_secs(600),
            refresh_skew: Duration::from_secs(300),
            elicitation_timeout: Duration::from_secs(120),
        }
    }
}

/// `api:`, plus the seed layout's `http:` (timeouts, CORS): how the REST and MCP listener
/// is served. Server timeouts may be under either; `api:` wins, with a warning. Defaults
/// are in [`ApiConfig::default`].
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `api.host`: the address to bind (default `127.0.0.1`).
    pub host: String,
    /// `api.port` (default [`DEFAULT_PORT`], 9099).
    pub port: u16,
    /// `api.development` (default false; true when there is no config file). Dev mode:
    /// loopback callers need no key, workers default to secret `dev`, the sandbox OAuth
    /// provider is served, outbound requests may reach loopback.
    pub development: bool,
    /// `api.public_url`: base URL users and providers reach the gateway at (OAuth redirect
    /// URI base), without a trailing slash. Defaults to `http://{host}:{port}` (`https`
    /// with TLS; `localhost` for wildcard and loopback hosts).
    pub public_url: String,
    /// `api.tls`: serve HTTPS. `None` when absent or `enabled: false`.
    pub tls: Option<TlsConfig>,
    /// `api.read_timeout` or `http.read_timeout` (30s): how long a client may take to send
    /// a whole request, head and body, from its first byte (Go's `ReadTimeout`); a new
    /// connection must also send its first head within it.
    pub read_timeout: Duration,
    /// `api.write_timeout` or `http.write_timeout` (60s): how long a response write may
    /// make no progress before the connection is dropped.
    pub write_timeout: Duration,
    /// `api.idle_timeout` or `http.idle_timeout` (30s): how long a kept-alive connection
    /// may wait for its next request.
    pub idle_timeout: Duration,
    /// `api.max_request_body_size` in bytes (4 MiB, at least 1); a larger body is a 413.
    pub max_request_body_size: usize,
    /// `http.cors`: the CORS answer for browser apps. Default off.
    pub cors: CorsConfig,
    /// `Origin`s requests may come from, on every route (`api.allowed_origins`; see
    /// `api/guard.rs`). Empty: loopback origins. `public_url`'s origin and
    /// `http.cors.allowed_origins` are allowed too; requests without `Origin` (non-browser
    /// clients) pass.
    pub allowed_origins: Vec<String>,
    /// `Host` header values accepted on every route (`api.allowed_hosts`), against DNS
    /// rebinding. Empty: loopback names and the bind host. `public_url`'s host always.
    pub allowed_hosts: Vec<String>,
    /// How long a handshake-era MCP session stays live in memory after its last message
    /// (`api.mcp_session_keep_alive`, 60s). Then it is parked: only its store record
    /// remains, and its next request restores it, on any replica.
    pub mcp_session_keep_alive: Duration,
    /// Whether MCP `tools/call` requests that rmcp would take as they are get answered
    /// without rmcp's per-request machinery (`api.mcp_direct_tool_calls`, true; see
    /// `mcp/direct.rs`). `false` sends every MCP message through rmcp.
    pub mcp_direct_tool_calls: bool,
    /// Most connections served at once (`api.max_connections`, 4096). Also capped below
    /// the process's descriptor limit, less a reserve for the gateway's own files and
    /// outbound calls.
    pub max_connections: usize,
    /// Most handshake-era MCP sessions kept at once, live and parked, across all callers
    /// (`api.mcp_max_sessions`, 10000).
    pub mcp_max_sessions: usize,
    /// Most MCP sessions one user may hold through one credential
    /// (`api.mcp_max_sessions_per_user`, 100).
    pub mcp_max_sessions_per_user: usize,
    /// How long a parked MCP session is kept after its last request before it is deleted
    /// (`api.mcp_session_lifetime`, 24h).
    pub mcp_session_lifetime: Duration,
}

/// `network:`: the guard on every outbound URL an admin or a document can set (provider
/// endpoints, user-info URLs, upstream servers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkConfig {
    /// `network.allowlist`: host names (`idp.internal`), wildcards (`*.corp.example`),
    /// IP addresses and CIDRs (`10.1.0.0/16`) that may be reached even though they are
    /// loopback, private, link-local or metadata addresses. Public addresses are always
    /// allowed; dev mode adds loopback.
    pub allowlist: Vec<String>,
}

/// `api.tls`: the certificate and key, PEM files, paths relative to the config file.
/// Both are required when TLS is enabled.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// `api.tls.cert_file`: the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// `api.tls.key_file`: its private key.
    pub key_file: PathBuf,
}

/// `http.cors`: which browser origins get CORS headers. Empty `allowed_origins` (the
/// default): no CORS layer at all. Origins listed here may also send requests past the
/// origin guard (as `api.allowed_origins`).
#[derive(Debug, Clone, Default)]
pub struct CorsConfig {
    /// `http.cors.allowed_origins`: `*`, or `scheme://host[:port]` each.
    pub allowed_origins: Vec<String>,
    /// `http.cors.allowed_methods`: HTTP methods; empty means GET, POST and DELETE.
    pub allowed_methods: Vec<String>,
}

/// `storage:`: where durable state lives (see `store`). Exactly one of `storage.sqlite`
/// and `storage.postgres`; neither means SQLite at `{data_dir}/switchboard.db`.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageConfig {
    /// `storage.sqlite.path`, relative to the config file; one gateway process. Also
    /// where Arcade's embedded PostgreSQL (`storage.postgres.data_path`) lands, with a
    /// warning.
    Sqlite { path: PathBuf },
    /// `storage.postgres.url`, or one built from `host`, `port` (5432), `user`,
    /// `password`, `db` and `sslmode`; for several replicas. Redacted in `Debug`.
    Postgres { url: SecretValue },
}

/// `security:`.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// `security.root_keys[]`: the keys that wrap each user's data key (see `vault`).
    /// Exactly one is the default (the first when none says so, with a warning); the
    /// others still unwrap what they sealed, for rotation. Empty: with SQLite a key is
    /// generated once and kept beside the database; with PostgreSQL replicas must share
    /// keys from the config.
    pub root_keys: Vec<RootKeyConfig>,
}

/// One `security.root_keys[]` entry.
#[derive(Debug, Clone)]
pub struct RootKeyConfig {
    /// `id`: stored beside everything this key seals, so it can be found again; unique.
    pub id: String,
    /// `default` (false): seals new data keys.
    pub default: bool,
    /// `value`: a long random string (the vault refuses fewer than 16 characters); an
    /// AES-256 key is derived from it.
    pub value: SecretValue,
}

/// One worker: a `tools.directors[].workers[]` entry (Arcade 2.0) or a top-level
/// `workers[]` entry (seed layout), both `{id, enabled, type: http, http: {uri, secret,
/// timeout, retry}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// `id`: unique across both layouts.
    pub id: String,
    /// `enabled` (true); false also when its director is disabled. A disabled worker is
    /// neither checked nor called.
    pub enabled: bool,
    /// The director it was declared under (Arcade 2.0 layout), if any.
    pub director: Option<String>,
    /// `http.uri`: base URL, without a trailing slash; the gateway adds `/worker/...`.
    pub uri: String,
    /// `http.secret`: signs the gateway's calls to the worker (a JWT). `None` only when the
    /// file gave none; `serve` refuses that outside dev mode and uses `dev` in dev mode.
    pub secret: Option<SecretValue>,
    /// `http.timeout` (30s): per call to the worker.
    pub timeout: Duration,
    /// `http.retry` (3, at most 100): extra attempts after a failed transport-level call
    /// (never after the worker answered).
    pub retry: u32,
}

/// One upstream MCP server: a `workers[]` (or `tools.directors[].workers[]`) entry with
/// `type: mcp` and `mcp: {uri, timeout, retry, headers}`, reached over Streamable HTTP.
/// Its tools join the catalog as `{id}.{tool}` (REST) and `{id}_{tool}` (MCP).
/// `mcp.oauth2` and `stdio:` are refused for now.
#[derive(Debug, Clone, PartialEq)]
pub struct McpUpstreamConfig {
    /// `id`: the toolkit name of its tools; unique across workers and upstreams.
    pub id: String,
    /// `enabled` (true); false also when its director is disabled. A disabled upstream is
    /// neither listed nor called.
    pub enabled: bool,
    /// The director it was declared under (Arcade 2.0 layout), if any.
    pub director: Option<String>,
    /// `mcp.uri`: the server's MCP endpoint, `http://` or `https://`, used as written.
    pub uri: String,
    /// `mcp.timeout` (30s): per request to the upstream.
    pub timeout: Duration,
    /// `mcp.retry` (1, at most 100): extra attempts after a transport-level failure.
    pub retry: u32,
    /// `mcp.headers: {Name: value}`: sent on every request to the upstream, in file order.
    /// Values may use `${env:}`, `${file:}` and `${secret:NAME}` (a top-level `secrets:`
    /// entry); all are treated as secrets.
    pub headers: Vec<(String, SecretValue)>,
}

/// The keys of an `auth.providers[]` entry that are [`AuthProviderConfig`] fields; every
/// other key goes into its `extra`.
pub const PROVIDER_FIELDS: [&str; 7] = [
    "id",
    "description",
    "enabled",
    "type",
    "provider_id",
    "client_id",
    "client_secret",
];

/// One `auth.providers[]` entry, as written. `oauth::provider` turns it into endpoints,
/// client authentication and quirks; its errors name keys relative to the entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthProviderConfig {
    /// `id`: what a tool's requirement names; unique.
    pub id: String,
    /// `description`.
    pub description: Option<String>,
    /// `enabled` (true). A disabled provider is neither checked nor offered.
    pub enabled: bool,
    /// `type`: only `oauth2` is served.
    pub provider_type: String,
    /// `provider_id`: a built-in service (`google`, `github`, `sandbox`...) whose
    /// endpoints and quirks apply; absent or `oauth2` for a custom provider.
    pub provider_id: Option<String>,
    /// `client_id`; required unless it is under `oauth2` or the provider is the sandbox.
    pub client_id: Option<String>,
    /// `client_secret`.
    pub client_secret: Option<SecretValue>,
    /// The rest of the provider's mapping (oauth2, authorization, token, scopes...), kept
    /// as JSON for the OAuth module to interpret.
    pub extra: serde_json::Value,
}

/// `telemetry.logging`: the gateway's own logs. Arcade's `telemetry.environment` is
/// accepted and unused.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `telemetry.logging.level`: `trace`, `debug`, `info` (default), `warn` (or
    /// `warning`) or `error`. `RUST_LOG`, when set, wins.
    pub level: String,
    /// `telemetry.logging.encoding`: `text` (default; Arcade's `console`) or `json`.
    pub encoding: String,
}

/// `execution_logging:`: every tool call leaves a record in the store, written off the
/// call path in batches (see `exec/record.rs`). Defaults in
/// [`ExecutionLoggingConfig::default`].
#[derive(Debug, Clone)]
pub struct ExecutionLoggingConfig {
    /// `execution_logging.enabled` (true). False: no records are kept.
    pub enabled: bool,
    /// `buffer_size` (10000): records waiting to be written. When full, new records are
    /// dropped and counted; calls are never slowed.
    pub buffer_size: usize,
    /// `write_batch_size` (500): most records per write.
    pub write_batch_size: usize,
    /// `write_batch_timeout` (200ms): longest a record waits for its batch to fill.
    pub write_batch_timeout: Duration,
    /// `drain_timeout` (30s): how long shutdown waits for buffered records to be written.
    pub drain_timeout: Duration,
    /// How long records are kept (`execution_logging.retention`, our addition; default
    /// 30d). `None` (`retention: 0`) keeps them forever.
    pub retention: Option<Duration>,
    /// How old records are deleted (Arcade's `execution_logging.cleanup`).
    pub cleanup: ExecutionCleanupConfig,
}

/// `execution_logging.cleanup`: old execution records are deleted in passes: every
/// `mark_interval`, batches of `batch_size` rows, `sweep_batch_interval` apart, until none
/// is older than the retention.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionCleanupConfig {
    /// `cleanup.batch_size` (1000): rows per delete.
    pub batch_size: usize,
    /// `cleanup.mark_interval` (30m): how often a pass starts.
    pub mark_interval: Duration,
    /// `cleanup.sweep_batch_interval` (5s): pause between the deletes of one pass.
    pub sweep_batch_interval: Duration,
}

impl Default for ExecutionCleanupConfig {
    /// Arcade's defaults.
    fn default() -> Self {
        Self {
            batch_size: 1000,
            mark_interval: Duration::from_secs(30 * 60),
            sweep_batch_interval: Duration::from_secs(5),
        }
    }
}

/// A string that must not be printed: `Debug` shows `***`. No `Display`, no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext, for the one place that must send it (a JWT key, a DB URL).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The values an `api:` key takes when the file leaves it out.
impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            development: false,
            public_url: format!("http://localhost:{DEFAULT_PORT}"),
            tls: None,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            max_request_body_size: 4 * 1024 * 1024,
            cors: CorsConfig::default(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            mcp_session_keep_alive: Duration::from_secs(60),
            mcp_direct_tool_calls: true,
            max_connections: 4096,
            mcp_max_sessions: 10_000,
            mcp_max_sessions_per_user: 100,
            mcp_session_lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            encoding: "text".into(),
        }
    }
}

/// The values an `execution_logging:` key takes when the file leaves it out.
impl Default for ExecutionLoggingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            buffer_size: 10_000,
            // Arcade's default is 100; here a batch of up to 500 is one statement, and
            // per record it costs about a third less CPU than batches of 100.
            write_batch_size: 500,
            write_batch_timeout: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(30),
            retention: Some(Duration::from_secs(30 * 24 * 3600)),
            cleanup: ExecutionCleanupConfig::default(),
        }
    }
}
