//! Upstream MCP servers as tool sources: one [`UpstreamHandle`] per `type: mcp` worker,
//! listed at start and on every health check like a worker.
//!
//! An upstream that was never reached has no tools; one that goes down keeps its last
//! list, so calling its tools says it is unreachable rather than "unknown tool".

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use crate::config::McpUpstreamConfig;
use crate::upstream::{UpstreamClient, UpstreamError, UpstreamSettings, UpstreamTool};
use crate::vault::SecretString;

/// Cap on one reply from an upstream (a `tools/list` page or a tool result).
pub const UPSTREAM_MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UpstreamSetupError {
    #[error("worker '{id}': mcp.uri is not a valid URL ({reason})")]
    BadUri { id: String, reason: String },
    #[error("worker '{id}': mcp.headers has an invalid header name")]
    BadHeader { id: String },
}

/// What the last listing of an upstream saw.
pub type UpstreamStatus = super::SourceStatus<UpstreamTool>;

/// One configured upstream: its config, its client, and what its last listing saw.
pub struct UpstreamHandle {
    pub config: McpUpstreamConfig,
    pub client: UpstreamClient,
    status: Mutex<UpstreamStatus>,
}

impl UpstreamHandle {
    /// The client for `config`, sending through `http` (the SSRF-guarded client).
    pub fn new(
        config: &McpUpstreamConfig,
        http: reqwest::Client,
    ) -> Result<Self, UpstreamSetupError> {
        let uri = reqwest::Url::parse(&config.uri).map_err(|e| UpstreamSetupError::BadUri {
            id: config.id.clone(),
            reason: e.to_string(),
        })?;
        let mut headers = Vec::with_capacity(config.headers.len());
        for (name, value) in &config.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                UpstreamSetupError::BadHeader {
                    id: config.id.clone(),
                }
            })?;
            headers.push((name, SecretString::new(value.expose())));
        }
        let settings = UpstreamSettings {
            id: config.id.clone(),
            uri,
            timeout: config.timeout,
            retry: config.retry,
            headers,
            max_reply_bytes: UPSTREAM_MAX_REPLY_BYTES,
        };
        Ok(Self {
            config: config.clone(),
            client: UpstreamClient::new(settings, http),
            status: Mutex::new(UpstreamStatus {
                message: "not checked yet".into(),
                ..Default::default()
            }),
        })
    }

    pub fn status(&self) -> UpstreamStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Lists the upstream's tools; returns true when the list changed.
    pub(super) async fn check(&self, timeout: Duration) -> bool {
        let id = &self.config.id;
        let was_healthy = self.status().healthy;
        let now_ms = chrono::Utc::now().timestamp_millis();
        // The client's own timeout covers each request; this bounds a paged listing.
        let outcome = match tokio::time::timeout(timeout, self.client.list_tools()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(UpstreamError::Timeout),
        };
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(tools) => {
                if !was_healthy {
                    tracing::info!(upstream = %id, tools = tools.len(), "upstream MCP server is reachable");
                }
                let digest = digest(&tools);
                status.listed(now_ms, tools, digest)
            }
            Err(e) => {
                if status.failed(now_ms, &e) {
                    tracing::warn!(upstream = %id, error = %e, "upstream MCP server is unreachable");
                }
                false
            }
        }
    }
}

fn digest(tools: &[UpstreamTool]) -> u64 {
    let mut h = DefaultHasher::new();
    for tool in tools {
        tool.name.hash(&mut h);
        serde_json::to_string(&tool.raw)
            .unwrap_or_default()
            .hash(&mut h);
    }
    h.finish()
}
