//! The client side of an upstream MCP server over Streamable HTTP (handshake era:
//! 2025-03-26, 2025-06-18, 2025-11-25).
//!
//! One [`UpstreamClient`] per upstream. It keeps one upstream session per key (the catalog
//! lists on key `""`, the executor calls on the user's id), so no two users share a
//! session. Replies are read as JSON or SSE, capped in size and time. Server-to-client
//! traffic (notifications, elicitation, sampling, progress) on a reply stream is skipped,
//! and no standalone GET stream is opened: nothing of it is relayed yet.

mod sse;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

use crate::vault::SecretString;
use sse::BodyKind;

/// The version offered in `initialize`.
pub const OFFERED_VERSION: &str = "2025-11-25";
/// The versions accepted in the upstream's answer.
pub const ACCEPTED_VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];
/// A session unused for this long is dropped (and ended upstream) on the next use.
pub const SESSION_IDLE: Duration = Duration::from_secs(600);
/// A guard against an upstream whose `nextCursor` never ends.
const MAX_LIST_PAGES: usize = 1000;
/// The key of the catalog's own session.
const LIST_KEY: &str = "";

const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

pub struct UpstreamSettings {
    /// The worker id (for errors and logs).
    pub id: String,
    /// The MCP endpoint, e.g. `http://127.0.0.1:3001/mcp`.
    pub uri: reqwest::Url,
    /// Per request to the upstream, reading its reply included.
    pub timeout: Duration,
    /// Extra attempts after a transport-level failure (never after an answer).
    pub retry: u32,
    /// Static headers, e.g. `Authorization`; values are never logged.
    pub headers: Vec<(HeaderName, SecretString)>,
    /// Cap on one reply body; bigger is [`UpstreamError::TooLarge`].
    pub max_reply_bytes: usize,
}

/// A tool as the upstream listed it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTool {
    pub name: String,
    /// The tool object exactly as `tools/list` gave it.
    pub raw: Value,
}

/// Why a request to an upstream failed. Never carries a header value or an argument.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream MCP server is unreachable")]
    Unreachable,
    /// The SSRF guard refused the upstream's address.
    #[error("{0}")]
    Refused(String),
    #[error("the upstream MCP server did not answer in time")]
    Timeout,
    #[error("the upstream MCP server's reply is over the size limit")]
    TooLarge,
    #[error("the upstream MCP server broke the protocol: {0}")]
    Protocol(String),
    #[error("the upstream MCP server answered HTTP {status}")]
    Http { status: u16 },
    #[error("the upstream MCP server returned error {code}: {message}")]
    Rpc { code: i64, message: String },
    /// A configured header value is not a valid HTTP header value (named, not shown).
    #[error("the header {0} configured for the upstream has an invalid value")]
    BadHeader(String),
}

/// A live upstream session (or, for a server without sessions, just its version).
#[derive(Debug, Clone)]
struct Session {
    id: Option<String>,
    version: String,
}

/// One key's session: initialized at most once at a time.
#[derive(Default)]
struct Slot {
    session: tokio::sync::Mutex<Option<Session>>,
    last_used: Mutex<Option<Instant>>,
}

impl Slot {
    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Some(Instant::now());
        }
    }

    fn idle(&self, now: Instant, limit: Duration) -> bool {
        self.last_used
            .lock()
            .map(|t| t.is_some_and(|t| now.duration_since(t) > limit))
            .unwrap_or(false)
    }
}

struct Inner {
    settings: UpstreamSettings,
    http: reqwest::Client,
    sessions: Mutex<HashMap<String, Arc<Slot>>>,
    session_idle: Duration,
    next_id: AtomicU64,
}

/// A client for one upstream MCP server; cheap to clone.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<Inner>,
}

/// What one request failed with, before the session logic decides what to do with it.
enum Failure {
    /// HTTP 404 on a request that carried a session id: the session is gone.
    SessionGone,
    Error(UpstreamError),
}

impl From<UpstreamError> for Failure {
    fn from(e: UpstreamError) -> Self {
        Failure::Error(e)
    }
}

impl UpstreamClient {
    pub fn new(settings: UpstreamSettings, http: reqwest::Client) -> Self {
        Self::with_session_idle(settings, http, SESSION_IDLE)
    }

    /// As [`new`](Self::new), with sessions dropped after `idle` instead of [`SESSION_IDLE`].
    pub fn with_session_idle(
        settings: UpstreamSettings,
        http: reqwest::Client,
        idle: Duration,
    ) -> Self {
        UpstreamClient {
            inner: Arc::new(Inner {
                settings,
                http,
                sessions: Mutex::new(HashMap::new()),
                session_idle: idle,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.settings.id
    }

    /// Every tool (follows `nextCursor`), on a session of its own key `""` (the catalog's).
    pub async fn list_tools(&self) -> Result<Vec<UpstreamTool>, UpstreamError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let result = self.request(LIST_KEY, "tools/list", params).await?;
            let page = result
                .get("tools")
                .and_then(Value::as_array)
                .ok_or_else(|| UpstreamError::Protocol("tools/list without tools".into()))?;
            for raw in page {
                let name = raw
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| UpstreamError::Protocol("a tool without a name".into()))?;
                tools.push(UpstreamTool {
                    name: name.to_owned(),
                    raw: raw.clone(),
                });
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => {
                    cursor = Some(next.to_owned());
                }
                _ => return Ok(tools),
            }
        }
        Err(UpstreamError::Protocol("tools/list pages never end".into()))
    }

    /// `tools/call` on the upstream session kept for `session_key` (the executor passes
    /// the user id, so no two users ever share an upstream session); returns the JSON-RPC
    /// `result` object exactly as the upstream sent it (content, structuredContent,
    /// isError, _meta).
    pub async fn call_tool(
        &self,
        session_key: &str,
        name: &str,
        arguments: Map<String, Value>,
    ) -> Result<Value, UpstreamError> {
        let params = json!({ "name": name, "arguments": arguments });
        let result = self.request(session_key, "tools/call", params).await?;
        if !result.is_object() {
            return Err(UpstreamError::Protocol(
                "tools/call result is not an object".into(),
            ));
        }
        Ok(result)
    }

    /// Sends DELETE for every session and forgets them (shutdown / config change).
    pub async fn close(&self) {
        let slots: Vec<Arc<Slot>> = match self.inner.sessions.lock() {
            Ok(mut map) => map.drain().map(|(_, s)| s).collect(),
            Err(_) => return,
        };
        for slot in slots {
            if let Some(session) = slot.session.lock().await.take() {
                self.inner.end(&session).await;
            }
        }
    }

    /// How many keys hold a session now (for status and tests).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// `method` on `key`'s session; a session the upstream forgot (404) is replaced once.
    async fn request(
        &self,
        key: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, UpstreamError> {
        let slot = self.slot(key);
        let session = self.inner.session(&slot).await?;
        match self.inner.rpc(Some(&session), method, &params).await {
            Err(Failure::SessionGone) => {
                tracing::debug!(upstream = %self.inner.settings.id, "upstream session gone; initializing again");
                {
                    let mut current = slot.session.lock().await;
                    if current.as_ref().is_some_and(|c| c.id == session.id) {
                        *current = None;
                    }
                }
                let session = self.inner.session(&slot).await?;
                match self.inner.rpc(Some(&session), method, &params).await {
                    Ok(v) => Ok(v),
                    Err(Failure::SessionGone) => Err(UpstreamError::Http { status: 404 }),
                    Err(Failure::Error(e)) => Err(e),
                }
            }
            Err(Failure::Error(e)) => Err(e),
            Ok(v) => Ok(v),
        }
    }

    /// `key`'s slot; first drops every slot idle too long (ending its session upstream).
    fn slot(&self, key: &str) -> Arc<Slot> {
        let now = Instant::now();
        let (slot, idle) = {
            let mut map = match self.inner.sessions.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            let idle: Vec<Arc<Slot>> = map
                .extract_if(|_, s| s.idle(now, self.inner.session_idle))
                .map(|(_, s)| s)
                .collect();
            let slot = map.entry(key.to_owned()).or_default().clone();
            (slot, idle)
        };
        slot.touch();
        if !idle.is_empty() {
            let inner = self.inner.clone();
            tokio::spawn(async move {
                for slot in idle {
                    let session = slot.session.lock().await.take();
                    if let Some(session) = session {
                        inner.end(&session).await;
                    }
                }
            });
        }
        slot
    }
}

impl Inner {
    /// The slot's session, initializing one if there is none.
    async fn session(&self, slot: &Slot) -> Result<Session, UpstreamError> {
        let mut current = slot.session.lock().await;
        if let Some(session) = current.as_ref() {
            return Ok(session.clone());
        }
        let session = self.initialize().await?;
        *current = Some(session.clone());
        Ok(session)
    }

    async fn initialize(&self) -> Result<Session, UpstreamError> {
        let params = json!({
            "protocolVersion": OFFERED_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "switchboard", "version": env!("CARGO_PKG_VERSION") },
        });
        let (result, session_id) = match self.exchange(None, "initialize", &params).await {
            Ok(v) => v,
            Err(Failure::Error(e)) => return Err(e),
            // No session was sent, so a 404 is just a 404.
            Err(Failure::SessionGone) => return Err(UpstreamError::Http { status: 404 }),
        };
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let session = Session {
            id: session_id,
            version,
        };
        if !ACCEPTED_VERSIONS.contains(&session.version.as_str()) {
            self.end(&session).await;
            return Err(UpstreamError::Protocol(format!(
                "unsupported protocol version {:?}",
                truncate(&session.version, 40)
            )));
        }
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        match self.notify(&session, &initialized).await {
            Ok(()) => {}
            Err(Failure::SessionGone) => return Err(UpstreamError::Http { status: 404 }),
            Err(Failure::Error(e)) => return Err(e),
        }
        tracing::debug!(
            upstream = %self.settings.id,
            version = %session.version,
            stateful = session.id.is_some(),
            "upstream MCP session initialized"
        );
        Ok(session)
    }

    /// A request on `session`; its `result`.
    async fn rpc(
        &self,
        session: Option<&Session>,
        method: &str,
        params: &Value,
    ) -> Result<Value, Failure> {
        self.exchange(session, method, params).await.map(|(v, _)| v)
    }

    /// A request; its `result` and the `Mcp-Session-Id` the upstream answered with.
    async fn exchange(
        &self,
        session: Option<&Session>,
        method: &str,
        params: &Value,
    ) -> Result<(Value, Option<String>), Failure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let attempt = async {
            let response = self.send(session, &body).await?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND && session.is_some_and(|s| s.id.is_some()) {
                return Err(Failure::SessionGone);
            }
            if !status.is_success() {
                return Err(UpstreamError::Http {
                    status: status.as_u16(),
                }
                .into());
            }
            let session_id = response
                .headers()
                .get(&MCP_SESSION_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let kind = BodyKind::of(
                response
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
            )
            .ok_or_else(|| UpstreamError::Protocol("the reply is neither JSON nor SSE".into()))?;
            let message =
                sse::read_reply(response, kind, id, self.settings.max_reply_bytes).await?;
            Ok((message, session_id))
        };
        let (message, session_id) = tokio::time::timeout(self.settings.timeout, attempt)
            .await
            .map_err(|_| UpstreamError::Timeout)??;
        if let Some(error) = message.get("error") {
            let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
            let text = error.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(UpstreamError::Rpc {
                code,
                message: truncate(text, 500),
            }
            .into());
        }
        match message.get("result") {
            Some(result) => Ok((result.clone(), session_id)),
            None => Err(UpstreamError::Protocol("a response without a result".into()).into()),
        }
    }

    /// A notification on `session`: any 2xx will do, its body is not read.
    async fn notify(&self, session: &Session, body: &Value) -> Result<(), Failure> {
        let attempt = async {
            let response = self.send(Some(session), body).await?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND && session.id.is_some() {
                return Err(Failure::SessionGone);
            }
            if !status.is_success() {
                return Err(UpstreamError::Http {
                    status: status.as_u16(),
                }
                .into());
            }
            Ok(())
        };
        tokio::time::timeout(self.settings.timeout, attempt)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    /// POSTs `body`, retrying `retry` times when no answer came (connection refused or
    /// reset). A timeout is not retried: the upstream may be running the call.
    async fn send(
        &self,
        session: Option<&Session>,
        body: &Value,
    ) -> Result<reqwest::Response, Failure> {
        let mut attempts_left = self.settings.retry;
        loop {
            let request = self
                .request(reqwest::Method::POST, session)?
                .header(http::header::ACCEPT, "application/json, text/event-stream")
                .json(body);
            match request.send().await {
                Ok(response) => return Ok(response),
                Err(e) if e.is_timeout() => return Err(UpstreamError::Timeout.into()),
                Err(e) => {
                    if let Some(refused) = crate::net::refusal(&e) {
                        return Err(UpstreamError::Refused(refused.to_string()).into());
                    }
                    if attempts_left == 0 {
                        tracing::debug!(upstream = %self.settings.id, error = %without_url(&e), "upstream unreachable");
                        return Err(UpstreamError::Unreachable.into());
                    }
                    attempts_left -= 1;
                }
            }
        }
    }

    /// A request to the endpoint with the static headers and the session's.
    fn request(
        &self,
        method: reqwest::Method,
        session: Option<&Session>,
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        let mut request = self
            .http
            .request(method, self.settings.uri.clone())
            .timeout(self.settings.timeout);
        for (name, value) in &self.settings.headers {
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| UpstreamError::BadHeader(name.to_string()))?;
            value.set_sensitive(true);
            request = request.header(name.clone(), value);
        }
        if let Some(session) = session {
            if let Some(version) = header_value(&session.version) {
                request = request.header(MCP_PROTOCOL_VERSION, version);
            }
            if let Some(id) = session.id.as_deref().and_then(header_value) {
                request = request.header(MCP_SESSION_ID, id);
            }
        }
        Ok(request)
    }

    /// Ends `session` upstream with DELETE, best effort (405 means the server won't).
    async fn end(&self, session: &Session) {
        if session.id.is_none() {
            return;
        }
        let Ok(request) = self.request(reqwest::Method::DELETE, Some(session)) else {
            return;
        };
        match tokio::time::timeout(self.settings.timeout, request.send()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(upstream = %self.settings.id, error = %without_url(&e), "ending an upstream session failed")
            }
            Err(_) => {
                tracing::debug!(upstream = %self.settings.id, "ending an upstream session timed out")
            }
        }
    }
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// A reqwest error for a log line: without its URL (a query could carry a secret).
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(at) = e.find(" for url (") {
        e.truncate(at);
    }
    e
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}
