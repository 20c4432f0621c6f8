//! Assembles a gateway from a resolved [`Config`] and serves it on a bound listener until
//! a shutdown future completes, then lets in-flight calls finish and drains the
//! execution log. `main` passes SIGINT/SIGTERM; tests bind `127.0.0.1:0`.
//!
//! Owns the process's lifetime: it opens the store and root keys, builds each part of
//! [`AppState`] once (in [`Gateway::with_store`]) and the background tasks beside them
//! (worker health checks, OAuth upkeep, the execution log's writer), serves, and stops
//! them in order.
//! Must not: handle a request (that is `api`'s and `mcp`'s), or be imported by anything
//! below it: parts that need something from here get it passed in.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchboard_sandbox::{Sandbox, SandboxSettings};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::builtin;
use crate::catalog::CatalogHandle;
use crate::clock::Clock;
use crate::config::{
    AuthProviderConfig, Config, RootKeyConfig, SecretValue, StorageConfig, UserVerifier,
};
use crate::exec::{Executor, Recorder, RecorderTask};
use crate::http_server;
use crate::identity::{Authenticator, DEFAULT_KEY_CACHE_TTL};
use crate::oauth::{AuthError, AuthService, ProviderRegistry};
use crate::state::AppState;
use crate::store::{self, Store, StoreError};
use crate::tls::{TlsAcceptor, TlsError, TlsListener};
use crate::vault::{Vault, VaultError};
use crate::workers::{
    HttpSetupError, RegistryError, UpstreamHandle, UpstreamSetupError, WorkerHttp, WorkerRegistry,
};

/// File name of the generated root key, kept beside the SQLite database.
pub const ROOT_KEY_FILE: &str = "root.key";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Workers(#[from] RegistryError),
    #[error("root key file {path}: {message}")]
    RootKey { path: PathBuf, message: String },
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
    #[error(transparent)]
    WorkerHttp(#[from] HttpSetupError),
    #[error(transparent)]
    Upstream(#[from] UpstreamSetupError),
    #[error("security.root_keys: {0}")]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A gateway ready to serve.
pub struct Gateway {
    pub state: AppState,
    /// The dev-mode sandbox OAuth server, when a sandbox provider is configured.
    pub sandbox: Option<Sandbox>,
    pub registry: Arc<WorkerRegistry>,
    pub root_keys: Vec<RootKeyConfig>,
    /// Set when `api.tls` is: connections are served over TLS.
    tls: Option<TlsAcceptor>,
    recorder_task: RecorderTask,
}

/// Accepted connections send small answers at once: without `TCP_NODELAY` an answer
/// written while the peer's ACK is delayed can wait up to 40 ms.
fn without_nagle(listener: TcpListener) -> axum::serve::TapIo<TcpListener, NoDelay> {
    use axum::serve::ListenerExt as _;
    listener.tap_io(set_nodelay)
}

type NoDelay = fn(&mut tokio::net::TcpStream);

fn set_nodelay(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

/// Serves `app` on `listener`, over TLS when `tls` is set, until `stop` completes; then
/// lets the requests in flight finish.
async fn serve_listener(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: api::ApiService,
    timeouts: http_server::Timeouts,
    connections: Arc<http_server::Connections>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            let listener = without_nagle(listener);
            http_server::serve(listener, app, timeouts, connections, stop).await
        }
        Some(acceptor) => {
            let listener = TlsListener::new(listener, acceptor);
            http_server::serve(listener, app, timeouts, connections, stop).await
        }
    }
}

/// A plain pooled reqwest client on rustls (ring). The gateway itself uses none: workers
/// are called through `workers::WorkerHttp`, and OAuth providers through the guarded
/// client [`auth_service`] builds ([`crate::net::guarded_client`]). For tests, whose URLs
/// no admin or document sets.
pub fn http_client() -> Result<reqwest::Client, ServeError> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ServeError::HttpClient(e.to_string()))
}

impl Gateway {
    /// Opens the store (applying migrations), loads root keys, builds worker clients and
    /// checks every worker once so the catalog is ready before the first request.
    pub async fn start(config: Config) -> Result<Gateway, ServeError> {
        Self::start_with_clock(config, Clock::system()).await
    }

    /// Like [`Gateway::start`], with every part reading `clock`: tests pass a
    /// [`Clock::manual`] and advance it to reach an expiry.
    pub async fn start_with_clock(config: Config, clock: Clock) -> Result<Gateway, ServeError> {
        let store = store::open(&config.storage).await?;
        let root_keys = load_root_keys(&config)?;
        Self::with_store(config, store, root_keys, clock).await
    }

    pub async fn with_store(
        mut config: Config,
        store: Arc<dyn Store>,
        root_keys: Vec<RootKeyConfig>,
        clock: Clock,
    ) -> Result<Gateway, ServeError> {
        // Read first: a certificate that can't be used stops the start, before anything runs.
        let tls = config
            .api
            .tls
            .as_ref()
            .map(|tls| crate::tls::acceptor(&tls.cert_file, &tls.key_file))
            .transpose()?;
        let sandbox = sandbox_for(&mut config)?;
        if !config.api.development && config.oauth.user_verifier == UserVerifier::Disabled {
            tracing::warn!(
                "auth.user_verifier is none: a shared authorization link could bind someone else's account to the sender's user id"
            );
        }
        let auth = auth_service(&config, store.clone(), &root_keys, clock.clone()).await?;
        let builtin_tools = if config.builtin_toolkit {
            builtin::definitions()
        } else {
            Vec::new()
        };
        let catalog = Arc::new(CatalogHandle::default());
        let registry = Arc::new(
            WorkerRegistry::new(
                &config.workers,
                config.api.development,
                WorkerHttp::new()?,
                builtin_tools,
                catalog,
            )?
            .with_upstreams(upstream_handles(&config)?),
        );
        registry.refresh_all().await;
        let (recorder, recorder_task) = Recorder::start(store.clone(), &config.execution_logging);
        let executor = Arc::new(Executor::new(
            registry.clone(),
            auth.clone(),
            config.secrets.clone(),
            recorder,
        ));
        // The keys the gateway has, generated ones included: the MCP endpoint seals its
        // requestState with the default one, so another process on this data opens it.
        if config.security.root_keys.is_empty() {
            config.security.root_keys = root_keys.clone();
        }
        let identity = Arc::new(Authenticator::new(
            store.clone(),
            config.api.development,
            DEFAULT_KEY_CACHE_TTL,
            clock.clone(),
        ));
        let state = AppState {
            config: Arc::new(config),
            identity,
            oauth: auth,
            workers: registry.clone(),
            executor,
            store,
            stopping: CancellationToken::new(),
            clock,
        };
        Ok(Gateway {
            state,
            sandbox,
            registry,
            root_keys,
            tls,
            recorder_task,
        })
    }

    /// Serves until `shutdown` completes; then stops accepting, waits for in-flight
    /// requests, stops health checks and drains the execution log.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_sharded(listener, Vec::new(), shutdown).await
    }

    /// Like [`Gateway::serve`], and each of `shards` (listeners on the same address, bound
    /// with `SO_REUSEPORT`) is served by a thread of its own running a single-threaded
    /// runtime: thread per core. A connection stays on the thread that accepted it, so a
    /// call never hands work to another thread, which on small machines cost more CPU
    /// than the gateway's own work. State is shared; only the pools to workers are per
    /// thread (`workers::http`).
    pub async fn serve_sharded(
        self,
        listener: TcpListener,
        shards: Vec<std::net::TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let health = self
            .registry
            .spawn_health_loop(self.state.config.worker_health_interval, stop_rx.clone());
        let auth = self.state.oauth.clone();
        let upkeep = tokio::spawn(async move { auth.run_upkeep(stop_rx).await });
        let mut app = api::service(self.state.clone());
        if let Some(sandbox) = &self.sandbox {
            app = app.nest("/sandbox", sandbox.router());
        }
        let api_config = &self.state.config.api;
        let timeouts = http_server::Timeouts::new(
            api_config.read_timeout,
            api_config.write_timeout,
            api_config.idle_timeout,
        );
        // One cap for every listener: they share the process's descriptors.
        let connections = http_server::Connections::new(api_config.max_connections);
        // Closed (or set) when the first listener stops: every shard stops with it.
        let (quit_tx, quit_rx) = tokio::sync::watch::channel(false);
        let mut threads = Vec::with_capacity(shards.len());
        for (n, shard) in shards.into_iter().enumerate() {
            let app = app.clone();
            let tls = self.tls.clone();
            let connections = connections.clone();
            let mut quit = quit_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("switchboard-shard-{}", n + 1))
                .spawn(move || -> std::io::Result<()> {
                    let served = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .and_then(|runtime| {
                            runtime.block_on(async move {
                                shard.set_nonblocking(true)?;
                                let listener = TcpListener::from_std(shard)?;
                                let quit = async move {
                                    let _ = quit.wait_for(|stop| *stop).await;
                                };
                                serve_listener(listener, tls, app, timeouts, connections, quit)
                                    .await
                            })
                        });
                    // Said at once: the other threads keep serving until shutdown.
                    if let Err(e) = &served {
                        tracing::error!(error = %e, "a server thread stopped");
                    }
                    served
                });
            match thread {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let _ = quit_tx.send(true);
                    return Err(e);
                }
            }
        }
        let stopping = self.state.stopping.clone();
        let stop = async move {
            shutdown.await;
            stopping.cancel();
            let _ = quit_tx.send(true);
        };
        let tls = self.tls.clone();
        let mut result = serve_listener(listener, tls, app, timeouts, connections, stop).await;
        // Each shard finishes its in-flight requests before its thread ends.
        let joined = tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| match t.join() {
                    Ok(r) => r,
                    Err(_) => Err(std::io::Error::other("a server thread panicked")),
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for shard_result in joined {
            if let Err(e) = shard_result
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        let _ = stop_tx.send(true);
        let _ = health.await;
        let _ = upkeep.await;
        let Gateway {
            state,
            registry,
            recorder_task,
            ..
        } = self;
        // The executor holds the last recorder; dropping it closes the log channel.
        drop(state);
        registry.close_upstreams().await;
        drop(registry);
        recorder_task.drain().await;
        result
    }
}

/// The OAuth service (vault, providers from config and store) for `config`, on `clock`;
/// `serve` and the `auth`/`users`/`vault` commands build it the same way. Its HTTP client is guarded
/// by `network.allowlist` (dev mode allows loopback, where the sandbox provider lives)
/// and follows no redirects.
pub async fn auth_service(
    config: &Config,
    store: Arc<dyn Store>,
    root_keys: &[RootKeyConfig],
    clock: Clock,
) -> Result<Arc<AuthService>, ServeError> {
    let vault = Arc::new(Vault::from_config(root_keys)?);
    let providers = ProviderRegistry::new(&config.auth_providers, &config.api.public_url)?;
    let outbound =
        crate::net::OutboundPolicy::new(&config.network.allowlist, config.api.development)
            .map_err(ServeError::Config)?;
    let http = crate::net::guarded_client(outbound.clone())
        .map_err(|e| ServeError::HttpClient(e.to_string()))?;
    let auth = Arc::new(
        AuthService::new(
            store,
            vault,
            providers,
            http,
            &config.api.public_url,
            config.oauth.clone(),
            clock,
        )
        .with_outbound_policy(outbound),
    );
    if let Err(e) = auth.reload_providers().await {
        tracing::warn!(error = %e, "could not load auth providers kept in the store");
    }
    Ok(auth)
}

/// A client per configured upstream MCP server, all on one client guarded by
/// `network.allowlist` (dev mode allows loopback): an upstream's URL is an admin's
/// choice, and must not reach internal addresses the admin did not allow.
pub fn upstream_handles(config: &Config) -> Result<Vec<UpstreamHandle>, ServeError> {
    if config.upstreams.is_empty() {
        return Ok(Vec::new());
    }
    let outbound =
        crate::net::OutboundPolicy::new(&config.network.allowlist, config.api.development)
            .map_err(ServeError::Config)?;
    let http =
        crate::net::guarded_client(outbound).map_err(|e| ServeError::HttpClient(e.to_string()))?;
    let mut handles = Vec::with_capacity(config.upstreams.len());
    for upstream in &config.upstreams {
        handles.push(UpstreamHandle::new(upstream, http.clone())?);
    }
    Ok(handles)
}

/// The sandbox provider is dev mode only. In dev mode one is added (id `sandbox`) when
/// none is configured, so the whole per-user flow can be tried offline.
fn sandbox_for(config: &mut Config) -> Result<Option<Sandbox>, ServeError> {
    let configured = config
        .auth_providers
        .iter()
        .find(|p| p.enabled && p.provider_id.as_deref() == Some("sandbox"))
        .cloned();
    if !config.api.development {
        return match configured {
            Some(p) => Err(ServeError::Config(format!(
                "auth provider '{}' uses provider_id sandbox, which only runs in dev mode (api.development: true)",
                p.id
            ))),
            None => Ok(None),
        };
    }
    let provider = match configured {
        Some(p) => p,
        None => {
            let p = AuthProviderConfig {
                id: "sandbox".into(),
                description: Some("Switchboard Sandbox (dev mode)".into()),
                enabled: true,
                provider_type: "oauth2".into(),
                provider_id: Some("sandbox".into()),
                client_id: None,
                client_secret: None,
                extra: serde_json::json!({}),
            };
            config.auth_providers.push(p.clone());
            p
        }
    };
    let mut settings = SandboxSettings::default();
    if let Some(id) = &provider.client_id {
        settings.client_id = id.clone();
    }
    if let Some(secret) = &provider.client_secret {
        settings.client_secret = secret.expose().to_string();
    }
    if let Some(lifetime) = provider.extra.get("token_lifetime") {
        let parsed = match lifetime {
            serde_json::Value::Number(n) => n
                .as_f64()
                .map(std::time::Duration::from_secs_f64)
                .ok_or_else(|| "not a number".to_string()),
            serde_json::Value::String(s) => crate::config::parse_duration(s),
            _ => Err("expected a duration".to_string()),
        };
        settings.access_token_lifetime = parsed.map_err(|e| {
            ServeError::Config(format!(
                "auth.providers '{}'.token_lifetime: {e}",
                provider.id
            ))
        })?;
    }
    Ok(Some(Sandbox::new(settings)))
}

/// Root keys from `security.root_keys`; with none configured and SQLite storage, a key
/// generated on first start and kept (mode 0600) beside the database.
pub fn load_root_keys(config: &Config) -> Result<Vec<RootKeyConfig>, ServeError> {
    if !config.security.root_keys.is_empty() {
        return Ok(config.security.root_keys.clone());
    }
    match &config.storage {
        StorageConfig::Sqlite { path } => {
            let dir = path.parent().unwrap_or_else(|| Path::new("."));
            let key_path = dir.join(ROOT_KEY_FILE);
            let value = load_or_create_key_file(&key_path)?;
            Ok(vec![RootKeyConfig {
                id: "generated".into(),
                default: true,
                value: SecretValue::new(value),
            }])
        }
        StorageConfig::Postgres { .. } => {
            tracing::warn!(
                "no security.root_keys configured; replicas on PostgreSQL must share root keys from the config"
            );
            Ok(Vec::new())
        }
    }
}

fn load_or_create_key_file(path: &Path) -> Result<String, ServeError> {
    let err = |message: String| ServeError::RootKey {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(existing) if !existing.trim().is_empty() => return Ok(existing.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e.to_string())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let value = hex::encode(bytes);
    write_private(path, &value).map_err(|e| err(e.to_string()))?;
    tracing::info!(path = %path.display(), "generated a root key");
    Ok(value)
}

#[cfg(unix)]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(value.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn generated_root_key_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ROOT_KEY_FILE);
        let first = load_or_create_key_file(&path).unwrap();
        let second = load_or_create_key_file(&path).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
