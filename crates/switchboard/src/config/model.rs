//! The resolved configuration: what the rest of the gateway reads. Every `${env:}` and
//! `${file:}` is already expanded, durations parsed, both file layouts (seed style and
//! Arcade 2.0) folded into one shape, and defaults applied.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Default REST/MCP port (Arcade's CLI assumes it for a local engine).
pub const DEFAULT_PORT: u16 = 9099;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from; `None` when running on built-in defaults.
    pub source: Option<PathBuf>,
    pub api: ApiConfig,
    pub storage: StorageConfig,
    pub security: SecurityConfig,
    pub workers: Vec<WorkerConfig>,
    /// `auth.providers[]`, parsed but not yet interpreted (OAuth is its own module).
    pub auth_providers: Vec<AuthProviderConfig>,
    /// Tool secrets injected into calls of tools that declare them (`secrets:` map).
    pub secrets: BTreeMap<String, SecretValue>,
    pub telemetry: TelemetryConfig,
    pub execution_logging: ExecutionLoggingConfig,
    /// Serve the built-in toolkit (`tools.builtin: true`, default true).
    pub builtin_toolkit: bool,
    /// How often workers are health-checked (`tools.health_check_interval`, default 10s).
    pub worker_health_interval: Duration,
    /// `auth.*` settings other than providers.
    pub oauth: OAuthSettings,
    /// `network.*`: where the gateway's own outbound requests may go.
    pub network: NetworkConfig,
    /// MCP gateways (`gateways:`): named tool selections served at `/mcp/{slug}`.
    pub gateways: Vec<GatewayConfig>,
}

/// One MCP gateway: `/mcp/{slug}` serves the tools named here (`Toolkit.Tool`) plus every
/// tool of the toolkits named here. Both empty: every tool.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    pub slug: String,
    pub description: Option<String>,
    pub tools: Vec<String>,
    pub toolkits: Vec<String>,
}

/// How authorization flows behave (`auth.user_verifier`, `auth.flow_ttl`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthSettings {
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

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub host: String,
    pub port: u16,
    /// Dev mode: loopback callers need no key, workers default to secret `dev`.
    pub development: bool,
    /// Base URL users and providers reach the gateway at (OAuth redirect URI base).
    /// Defaults to `http://{host}:{port}` (with `localhost` for wildcard hosts).
    pub public_url: String,
    pub tls: Option<TlsConfig>,
    /// How long a client may take to send a whole request, head and body, from its first
    /// byte (Go's `ReadTimeout`); a new connection must also send its first head within it.
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_request_body_size: usize,
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

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct CorsConfig {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StorageConfig {
    Sqlite {
        path: PathBuf,
    },
    /// A full connection URL (built from `host/port/user/password/db/sslmode` when the
    /// file gave fields). Redacted in `Debug`.
    Postgres {
        url: SecretValue,
    },
}

#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    pub root_keys: Vec<RootKeyConfig>,
}

#[derive(Debug, Clone)]
pub struct RootKeyConfig {
    pub id: String,
    pub default: bool,
    pub value: SecretValue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    pub id: String,
    pub enabled: bool,
    /// The director it was declared under (Arcade 2.0 layout), if any.
    pub director: Option<String>,
    /// Base URL; the gateway adds `/worker/...`.
    pub uri: String,
    /// `None` only when the file gave none; `serve` refuses that outside dev mode and
    /// uses `dev` in dev mode.
    pub secret: Option<SecretValue>,
    pub timeout: Duration,
    /// Extra attempts after a failed transport-level call (never after the worker
    /// answered).
    pub retry: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthProviderConfig {
    pub id: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub provider_type: String,
    pub provider_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretValue>,
    /// The rest of the provider's mapping (oauth2, authorization, token, scopes...), kept
    /// as JSON for the OAuth module to interpret.
    pub extra: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// `text` (default) or `json`.
    pub encoding: String,
}

#[derive(Debug, Clone)]
pub struct ExecutionLoggingConfig {
    pub enabled: bool,
    pub buffer_size: usize,
    pub write_batch_size: usize,
    pub write_batch_timeout: Duration,
    pub drain_timeout: Duration,
    /// How long records are kept (`execution_logging.retention`, our addition; default
    /// 30d). `None` (`retention: 0`) keeps them forever.
    pub retention: Option<Duration>,
    /// How old records are deleted (Arcade's `execution_logging.cleanup`).
    pub cleanup: ExecutionCleanupConfig,
}

/// Old execution records are deleted in passes: every `mark_interval`, batches of
/// `batch_size` rows, `sweep_batch_interval` apart, until none is older than the retention.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionCleanupConfig {
    pub batch_size: usize,
    pub mark_interval: Duration,
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
