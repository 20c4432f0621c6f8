//! One worker's HTTP client: `/worker/health`, `/worker/tools`, `/worker/tools/invoke`,
//! each with a fresh-enough HS256 token (`switchboard_wire::jwt`).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::Full;
use switchboard_wire::{HealthResponse, ToolCallRequestRef, ToolCallResponse, ToolDefinition, jwt};

use super::http::{ExchangeError, Reply, WorkerHttp};
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

/// The gateway's side of one Arcade worker: its three endpoints, each request signed
/// with a short-lived HS256 token from the worker's secret.
///
/// Owns the worker's secret (never logged, never in an error) and a cached token. Shares
/// the connection pools (`WorkerHttp`) with every other worker's client.
/// Must not: retry a call the worker may have seen (only refused connections are
/// retried), read users or grants (the grant arrives in the request the executor built),
/// or decide what a failure means to the caller (`exec` maps [`WorkerError`] to an error
/// kind).
///
/// ```ignore
/// let client = WorkerClient::new("math", "http://127.0.0.1:8002", secret, timeout, 1, http);
/// let tools = client.tools().await?;               // what the catalog is built from
/// let reply = client.invoke(&request).await?;      // `request` borrows the call's input
/// ```
pub struct WorkerClient {
    id: String,
    base_url: String,
    /// The endpoints, parsed once. `None` when the base URL does not parse; calls then
    /// fail as unreachable (the request cannot be sent).
    health_uri: Option<Uri>,
    tools_uri: Option<Uri>,
    invoke_uri: Option<Uri>,
    /// The `Host` header for every request, as hyper's client would write it. Set here, it
    /// is made once instead of on every call (~2.5k instructions).
    host: Option<HeaderValue>,
    secret: SecretValue,
    timeout: Duration,
    retry: u32,
    http: WorkerHttp,
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

const JSON: HeaderValue = HeaderValue::from_static("application/json");

impl WorkerClient {
    /// A client for the worker `id` at `base_url` (no trailing path). A URL that does not
    /// parse is not refused here: every request then fails as unreachable, and the
    /// worker shows as unhealthy with the reason. `retry`: how many times a refused
    /// connection is tried again.
    pub fn new(
        id: impl Into<String>,
        base_url: &str,
        secret: SecretValue,
        timeout: Duration,
        retry: u32,
        http: WorkerHttp,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        let endpoint = |path: &str| {
            format!("{base_url}{path}")
                .parse::<Uri>()
                .ok()
                .filter(|u| u.scheme().is_some() && u.authority().is_some())
        };
        let health_uri = endpoint("/worker/health");
        Self {
            id: id.into(),
            host: health_uri.as_ref().and_then(host_header),
            health_uri,
            tools_uri: endpoint("/worker/tools"),
            invoke_uri: endpoint("/worker/tools/invoke"),
            base_url,
            secret,
            timeout,
            retry,
            http,
            token: Mutex::new(None),
        }
    }

    /// The worker's id in the config.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The URL the endpoints hang off, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// How long a call may take before it fails as [`WorkerError::Timeout`].
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

    /// One request to `uri`, answered in full within `timeout`.
    async fn exchange(
        &self,
        method: Method,
        uri: &Option<Uri>,
        bearer: Option<HeaderValue>,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Reply, WorkerError> {
        let Some(uri) = uri else {
            return Err(WorkerError::Unreachable {
                worker: self.id.clone(),
                reason: "the worker's URL is not a valid http(s) URL".into(),
            });
        };
        let mut request = Request::builder().method(method).uri(uri.clone());
        if let Some(headers) = request.headers_mut() {
            if let Some(host) = &self.host {
                headers.insert(HOST, host.clone());
            }
            headers.insert(ACCEPT, JSON);
            if body.is_some() {
                headers.insert(CONTENT_TYPE, JSON);
            }
            if let Some(bearer) = bearer {
                headers.insert(AUTHORIZATION, bearer);
            }
        }
        let body = body.map(Full::new).unwrap_or_default();
        let request = request.body(body).map_err(|e| WorkerError::Unreachable {
            worker: self.id.clone(),
            reason: e.to_string(),
        })?;
        match tokio::time::timeout(timeout, self.http.exchange(request)).await {
            Err(_) => Err(WorkerError::Timeout {
                worker: self.id.clone(),
                seconds: timeout.as_secs().max(1),
            }),
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(ExchangeError::Connect(reason))) => Err(WorkerError::Unreachable {
                worker: self.id.clone(),
                reason,
            }),
            Ok(Err(ExchangeError::Transport(reason))) => Err(WorkerError::BadReply {
                worker: self.id.clone(),
                reason,
            }),
            Ok(Err(ExchangeError::TooLarge)) => Err(WorkerError::BadReply {
                worker: self.id.clone(),
                reason: format!(
                    "the answer is larger than {} MiB",
                    super::http::MAX_REPLY_BYTES / (1024 * 1024)
                ),
            }),
        }
    }

    /// `GET /worker/health`, unsigned, with a short timeout of its own.
    pub async fn health(&self) -> Result<HealthResponse, WorkerError> {
        let reply = self
            .exchange(Method::GET, &self.health_uri, None, None, HEALTH_TIMEOUT)
            .await?;
        self.decode(reply)
    }

    /// `GET /worker/tools`: the definitions of every tool the worker serves.
    pub async fn tools(&self) -> Result<Vec<ToolDefinition>, WorkerError> {
        let reply = self
            .exchange(
                Method::GET,
                &self.tools_uri,
                Some(self.bearer()?),
                None,
                self.timeout,
            )
            .await?;
        self.decode(reply)
    }

    /// Invokes a tool. Connection failures are retried up to `retry` times, since the
    /// worker never saw them; a timeout or any answer is final, so a tool never runs
    /// twice because of us.
    pub async fn invoke(
        &self,
        request: &ToolCallRequestRef<'_>,
    ) -> Result<ToolCallResponse, WorkerError> {
        let body = Bytes::from(
            serde_json::to_vec(request).map_err(|e| WorkerError::BadReply {
                worker: self.id.clone(),
                reason: format!("could not encode the request: {e}"),
            })?,
        );
        let mut attempt = 0;
        loop {
            let sent = self
                .exchange(
                    Method::POST,
                    &self.invoke_uri,
                    Some(self.bearer()?),
                    Some(body.clone()),
                    self.timeout,
                )
                .await;
            match sent {
                Ok(reply) => return self.decode(reply),
                Err(err) if err.never_reached_worker() && attempt < self.retry => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, reply: Reply) -> Result<T, WorkerError> {
        if !reply.status.is_success() {
            return Err(WorkerError::Status {
                worker: self.id.clone(),
                status: reply.status.as_u16(),
            });
        }
        serde_json::from_slice(&reply.body).map_err(|e| WorkerError::BadReply {
            worker: self.id.clone(),
            reason: e.to_string(),
        })
    }
}

/// `host[:port]`, the port left out when it is the scheme's default: what hyper's client
/// puts in `Host` when a request has none.
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    match uri.port_u16() {
        Some(port) if port != default_port => HeaderValue::try_from(format!("{host}:{port}")).ok(),
        _ => HeaderValue::from_str(host).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_is_the_authority_without_a_default_port() {
        let cases = [
            ("http://127.0.0.1:8002/worker/health", "127.0.0.1:8002"),
            ("http://worker/worker/health", "worker"),
            ("http://worker:80/worker/health", "worker"),
            ("https://worker:443/worker/health", "worker"),
            ("https://worker:80/worker/health", "worker:80"),
            ("http://[::1]:9/worker/health", "[::1]:9"),
        ];
        for (url, expected) in cases {
            let header = host_header(&url.parse::<Uri>().unwrap());
            assert_eq!(
                header.as_ref().map(|h| h.to_str().unwrap()),
                Some(expected),
                "{url}"
            );
        }
    }
}
