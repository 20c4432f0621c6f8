//! One worker's HTTP client: `/worker/health`, `/worker/tools`, `/worker/tools/invoke`,
//! each with a fresh-enough HS256 token (`switchboard_wire::jwt`).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use reqwest::header::HeaderValue;
use switchboard_wire::{HealthResponse, ToolCallRequest, ToolCallResponse, ToolDefinition, jwt};

use crate::config::SecretValue;

/// A cached token is re-minted once it is this old; tokens live 60 s, so a request
/// always carries one with at least 30 s left.
const TOKEN_REUSE_SECS: u64 = 30;

/// Health probes answer fast or the worker counts as down.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The request never reached the worker (refused, DNS, TLS): safe to retry.
    #[error("worker '{worker}' is unreachable: {reason}")]
    Unreachable { worker: String, reason: String },
    /// Sent, but no answer in time: the tool may have run.
    #[error("worker '{worker}' did not answer within {seconds}s")]
    Timeout { worker: String, seconds: u64 },
    #[error("worker '{worker}' answered HTTP {status}")]
    Status { worker: String, status: u16 },
    #[error("worker '{worker}' sent a reply that is not valid: {reason}")]
    BadReply { worker: String, reason: String },
    #[error("could not sign a token for worker '{worker}'")]
    Token { worker: String },
}

impl WorkerError {
    /// True when the request certainly did not run the tool.
    pub fn never_reached_worker(&self) -> bool {
        matches!(
            self,
            WorkerError::Unreachable { .. } | WorkerError::Token { .. }
        )
    }
}

pub struct WorkerClient {
    id: String,
    base_url: String,
    /// The endpoints, parsed once: parsing (with IDNA) on every call was ~4 % of a call's
    /// CPU. `None` when the base URL does not parse; calls then fail as before, in reqwest.
    health_url: Option<Url>,
    tools_url: Option<Url>,
    invoke_url: Option<Url>,
    secret: SecretValue,
    timeout: Duration,
    retry: u32,
    http: reqwest::Client,
    /// (`Bearer <token>` header, minted at unix secs). A std Mutex: held for a clone
    /// (a reference count), never across `.await`.
    token: Mutex<Option<(HeaderValue, u64)>>,
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerClient")
            .field("id", &self.id)
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl WorkerClient {
    pub fn new(
        id: impl Into<String>,
        base_url: &str,
        secret: SecretValue,
        timeout: Duration,
        retry: u32,
        http: reqwest::Client,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        let endpoint = |path: &str| Url::parse(&format!("{base_url}{path}")).ok();
        Self {
            id: id.into(),
            health_url: endpoint("/worker/health"),
            tools_url: endpoint("/worker/tools"),
            invoke_url: endpoint("/worker/tools/invoke"),
            base_url,
            secret,
            timeout,
            retry,
            http,
            token: Mutex::new(None),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn bearer(&self) -> Result<HeaderValue, WorkerError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((header, minted)) = cached.as_ref()
            && now.saturating_sub(*minted) < TOKEN_REUSE_SECS
        {
            return Ok(header.clone());
        }
        let failed = || WorkerError::Token {
            worker: self.id.clone(),
        };
        let token = jwt::sign(self.secret.expose(), now).map_err(|_| failed())?;
        let mut header = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| failed())?;
        header.set_sensitive(true);
        *cached = Some((header.clone(), now));
        Ok(header)
    }

    /// A request to a parsed endpoint; if the base URL did not parse, the string form, so
    /// reqwest rejects it as it always did (a builder error: `Unreachable`).
    fn request(
        &self,
        method: reqwest::Method,
        parsed: &Option<Url>,
        path: &str,
    ) -> reqwest::RequestBuilder {
        match parsed {
            Some(url) => self.http.request(method, url.clone()),
            None => self
                .http
                .request(method, format!("{}{path}", self.base_url)),
        }
    }

    fn classify(&self, err: reqwest::Error, timeout: Duration) -> WorkerError {
        if err.is_timeout() {
            WorkerError::Timeout {
                worker: self.id.clone(),
                seconds: timeout.as_secs().max(1),
            }
        } else if err.is_connect() || err.is_builder() || err.is_request() && !err.is_body() {
            WorkerError::Unreachable {
                worker: self.id.clone(),
                reason: short_reason(&err),
            }
        } else {
            WorkerError::BadReply {
                worker: self.id.clone(),
                reason: short_reason(&err),
            }
        }
    }

    pub async fn health(&self) -> Result<HealthResponse, WorkerError> {
        let res = self
            .request(reqwest::Method::GET, &self.health_url, "/worker/health")
            .timeout(HEALTH_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.classify(e, HEALTH_TIMEOUT))?;
        self.decode(res).await
    }

    pub async fn tools(&self) -> Result<Vec<ToolDefinition>, WorkerError> {
        let res = self
            .request(reqwest::Method::GET, &self.tools_url, "/worker/tools")
            .header(reqwest::header::AUTHORIZATION, self.bearer()?)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.classify(e, self.timeout))?;
        self.decode(res).await
    }

    /// Invokes a tool. Connection failures are retried up to `retry` times, since the
    /// worker never saw them; a timeout or any answer is final, so a tool never runs
    /// twice because of us.
    pub async fn invoke(&self, request: &ToolCallRequest) -> Result<ToolCallResponse, WorkerError> {
        let mut attempt = 0;
        loop {
            let sent = self
                .request(
                    reqwest::Method::POST,
                    &self.invoke_url,
                    "/worker/tools/invoke",
                )
                .header(reqwest::header::AUTHORIZATION, self.bearer()?)
                .json(request)
                .timeout(self.timeout)
                .send()
                .await;
            match sent {
                Ok(res) => return self.decode(res).await,
                Err(e) => {
                    let err = self.classify(e, self.timeout);
                    if err.never_reached_worker() && attempt < self.retry {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        res: reqwest::Response,
    ) -> Result<T, WorkerError> {
        let status = res.status();
        if !status.is_success() {
            return Err(WorkerError::Status {
                worker: self.id.clone(),
                status: status.as_u16(),
            });
        }
        let bytes = res
            .bytes()
            .await
            .map_err(|e| self.classify(e, self.timeout))?;
        serde_json::from_slice(&bytes).map_err(|e| WorkerError::BadReply {
            worker: self.id.clone(),
            reason: e.to_string(),
        })
    }
}

/// reqwest's Display can include the full URL; keep the cause's kind only.
fn short_reason(err: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    last.unwrap_or_else(|| {
        if err.is_connect() {
            "connection failed".into()
        } else {
            "request failed".into()
        }
    })
}
