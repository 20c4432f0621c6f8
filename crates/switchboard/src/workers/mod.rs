//! Arcade worker protocol client and the registry of configured workers and upstream MCP
//! servers: health checks on an interval, and a catalog rebuild whenever a worker or an
//! upstream comes back or its tools change.
//!
//! A worker that is down keeps its last known tools in the catalog, so calling them
//! fails with `NETWORK_TRANSPORT_RUNTIME_UNREACHABLE` rather than "unknown tool"; every
//! other worker's tools are unaffected.
//! Must not: know users, grants or how results are shown to clients.

mod client;
mod http;
mod upstreams;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use switchboard_wire::ToolDefinition;

pub use client::{WorkerClient, WorkerError};
pub use http::{HttpSetupError, WorkerHttp};
pub use upstreams::{UPSTREAM_MAX_REPLY_BYTES, UpstreamHandle, UpstreamSetupError, UpstreamStatus};

use crate::catalog::{Catalog, CatalogHandle, ToolEntry, ToolSource, upstream_tool_entry};
use crate::config::{SecretValue, WorkerConfig};

/// The secret a worker gets in dev mode when the config names none (Arcade's default).
pub const DEV_WORKER_SECRET: &str = "dev";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RegistryError {
    #[error("worker '{0}' has no secret; set http.secret (only dev mode defaults it to 'dev')")]
    MissingSecret(String),
}

/// What the last check of a tool source (a worker or an upstream MCP server) saw.
#[derive(Debug, Clone)]
pub struct SourceStatus<T> {
    pub healthy: bool,
    /// Why it is unhealthy, or `ok`.
    pub message: String,
    pub checked_at_ms: Option<i64>,
    /// The last tool list the source gave (kept while it is down).
    pub tools: Vec<T>,
    tools_digest: u64,
}

impl<T> Default for SourceStatus<T> {
    fn default() -> Self {
        Self {
            healthy: false,
            message: String::new(),
            checked_at_ms: None,
            tools: Vec::new(),
            tools_digest: 0,
        }
    }
}

impl<T> SourceStatus<T> {
    /// Records a listing (`digest` identifies its content); true when the list changed.
    fn listed(&mut self, now_ms: i64, tools: Vec<T>, digest: u64) -> bool {
        let changed = digest != self.tools_digest || self.tools.is_empty() != tools.is_empty();
        self.checked_at_ms = Some(now_ms);
        self.healthy = true;
        self.message = "ok".into();
        if changed {
            self.tools = tools;
            self.tools_digest = digest;
        }
        changed
    }

    /// Records a failed check; true when it is news (the first check, or it was healthy),
    /// so the caller logs it once rather than every interval.
    fn failed(&mut self, now_ms: i64, error: &dyn std::fmt::Display) -> bool {
        let news = self.healthy || self.message == "not checked yet";
        self.checked_at_ms = Some(now_ms);
        self.healthy = false;
        self.message = error.to_string();
        news
    }
}

/// What the last health check of a worker saw.
pub type WorkerStatus = SourceStatus<ToolDefinition>;

impl WorkerStatus {
    pub fn toolkits(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tools.iter().map(|t| t.toolkit.name.clone()).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// One configured worker: its config, its client, and what its last health check saw.
pub struct WorkerHandle {
    pub config: WorkerConfig,
    pub client: Arc<WorkerClient>,
    /// Written by the health check, read by listings. Never held across `.await`.
    status: Mutex<WorkerStatus>,
}

impl WorkerHandle {
    pub fn status(&self) -> WorkerStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The configured workers, their last health, and the catalog built from their tools and
/// the built-ins.
///
/// Owns one [`WorkerHandle`] per configured worker (fixed at start) and writes the shared
/// [`CatalogHandle`]: a health check that sees a worker come back or its tools change
/// rebuilds the catalog, which readers take as an immutable snapshot.
/// Must not: run tools (that is `exec`'s, through [`WorkerHandle::client`]), or drop a
/// worker's tools because it is down (calling them says unreachable, not unknown).
///
/// ```ignore
/// let registry = Arc::new(WorkerRegistry::new(&config.workers, dev, http, builtins, catalog)?);
/// registry.refresh_all().await;                     // once, before the first request
/// let health = registry.spawn_health_loop(every, stop_rx);
/// let tool = registry.catalog().snapshot().resolve("Math.Add", None)?;
/// ```
pub struct WorkerRegistry {
    workers: Vec<Arc<WorkerHandle>>,
    upstreams: Vec<Arc<UpstreamHandle>>,
    builtin: Vec<ToolDefinition>,
    catalog: Arc<CatalogHandle>,
}

impl WorkerRegistry {
    /// Builds clients for the configured workers. Outside dev mode a worker without a
    /// secret is refused; in dev mode it gets `dev`.
    pub fn new(
        configs: &[WorkerConfig],
        development: bool,
        http: WorkerHttp,
        builtin: Vec<ToolDefinition>,
        catalog: Arc<CatalogHandle>,
    ) -> Result<Self, RegistryError> {
        let mut workers = Vec::with_capacity(configs.len());
        for cfg in configs {
            let secret = match (&cfg.secret, development) {
                (Some(s), _) if !s.expose().is_empty() => s.clone(),
                (_, true) => SecretValue::new(DEV_WORKER_SECRET),
                (_, false) if !cfg.enabled => SecretValue::new(""),
                (_, false) => return Err(RegistryError::MissingSecret(cfg.id.clone())),
            };
            let client = WorkerClient::new(
                &cfg.id,
                &cfg.uri,
                secret,
                cfg.timeout,
                cfg.retry,
                http.clone(),
            );
            workers.push(Arc::new(WorkerHandle {
                config: cfg.clone(),
                client: Arc::new(client),
                status: Mutex::new(WorkerStatus {
                    message: "not checked yet".into(),
                    ..Default::default()
                }),
            }));
        }
        let registry = Self {
            workers,
            upstreams: Vec::new(),
            builtin,
            catalog,
        };
        registry.rebuild_catalog();
        Ok(registry)
    }

    /// Adds the upstream MCP servers (built by `server` on the SSRF-guarded client). Their
    /// tools join the catalog once they are listed (`refresh_all`).
    pub fn with_upstreams(mut self, upstreams: Vec<UpstreamHandle>) -> Self {
        self.upstreams = upstreams.into_iter().map(Arc::new).collect();
        self.rebuild_catalog();
        self
    }

    /// Every configured upstream MCP server, disabled ones included, in config order.
    pub fn upstreams(&self) -> &[Arc<UpstreamHandle>] {
        &self.upstreams
    }

    /// The upstream with this config id.
    pub fn upstream(&self, id: &str) -> Option<&Arc<UpstreamHandle>> {
        self.upstreams.iter().find(|u| u.config.id == id)
    }

    /// Ends every upstream session (each user's and the catalog's), at shutdown.
    pub async fn close_upstreams(&self) {
        join_all(self.upstreams.iter().map(|u| u.client.close())).await;
    }

    /// The catalog every call resolves in; take a `snapshot()` for a consistent view.
    pub fn catalog(&self) -> &Arc<CatalogHandle> {
        &self.catalog
    }

    /// Every configured worker, disabled ones included, in config order.
    pub fn workers(&self) -> &[Arc<WorkerHandle>] {
        &self.workers
    }

    /// The worker with this config id.
    pub fn get(&self, id: &str) -> Option<&Arc<WorkerHandle>> {
        self.workers.iter().find(|w| w.config.id == id)
    }

    /// Checks every enabled worker and lists every enabled upstream, all at once;
    /// rebuilds the catalog if any tool list changed. Returns how many workers are
    /// healthy.
    pub async fn refresh_all(&self) -> usize {
        let checks = self
            .workers
            .iter()
            .filter(|w| w.config.enabled)
            .map(|w| check_worker(w));
        let listings = self
            .upstreams
            .iter()
            .filter(|u| u.config.enabled)
            .map(|u| u.check(u.config.timeout.saturating_mul(4)));
        let (results, listed) = futures::join!(join_all(checks), join_all(listings));
        if results.iter().chain(&listed).any(|changed| *changed) {
            self.rebuild_catalog();
        }
        self.workers.iter().filter(|w| w.status().healthy).count()
    }

    /// Runs health checks every `interval` until `shutdown` resolves.
    pub fn spawn_health_loop(
        self: &Arc<Self>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let registry = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => { registry.refresh_all().await; }
                    _ = shutdown.changed() => break,
                }
            }
        })
    }

    fn rebuild_catalog(&self) {
        let mut entries: Vec<ToolEntry> = self
            .builtin
            .iter()
            .cloned()
            .map(|d| ToolEntry::new(d, ToolSource::Builtin))
            .collect();
        for w in self.workers.iter().filter(|w| w.config.enabled) {
            let source = ToolSource::Worker(Arc::from(w.config.id.as_str()));
            for def in w.status().tools {
                entries.push(ToolEntry::new(def, source.clone()));
            }
        }
        // After every worker: on a name clash the worker's tool is kept (with a warning).
        for u in self.upstreams.iter().filter(|u| u.config.enabled) {
            for tool in u.status().tools {
                entries.push(upstream_tool_entry(&u.config.id, &tool.name, &tool.raw));
            }
        }
        let catalog = Catalog::new(entries);
        tracing::info!(tools = catalog.len(), "tool catalog updated");
        self.catalog.replace(catalog);
    }
}

/// One health check; returns true when the worker's tool list changed.
async fn check_worker(worker: &WorkerHandle) -> bool {
    let id = &worker.config.id;
    let was_healthy = worker.status().healthy;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let outcome = match worker.client.health().await {
        Ok(_) => worker.client.tools().await.map(Some),
        Err(e) => Err(e),
    };
    let mut status = worker.status.lock().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Ok(Some(tools)) => {
            if !was_healthy {
                tracing::info!(worker = %id, tools = tools.len(), "worker is healthy");
            }
            let digest = digest(&tools);
            status.listed(now_ms, tools, digest)
        }
        Ok(None) => false,
        Err(e) => {
            if status.failed(now_ms, &e) {
                tracing::warn!(worker = %id, error = %e, "worker is unhealthy");
            }
            false
        }
    }
}

fn digest(tools: &[ToolDefinition]) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(tools)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}
