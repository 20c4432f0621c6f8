//! Upstream MCP servers for tests, on 127.0.0.1:0.
//!
//! [`RmcpUpstream`]: rmcp's own Streamable HTTP server (stateful sessions, answers as SSE)
//! with tools `echo`, `fail`, `slow` and `big`, listed two per page; it counts
//! `initialize`s and can end every session (so the next request gets a 404).
//! [`RawUpstream`]: a hand-written JSON-only server for what rmcp won't do wrong
//! (garbage, forgetting sessions, no sessions at all).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation,
    InitializeRequestParams, InitializeResult, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Bytes of text the `big` tool returns.
pub const BIG_BYTES: usize = 256 * 1024;

/// The tool objects the rmcp upstream lists, in order.
pub fn tool_objects() -> Vec<Value> {
    vec![
        json!({
            "name": "echo",
            "title": "Echo",
            "description": "Says the message back",
            "inputSchema": {
                "type": "object",
                "properties": { "message": { "type": "string" } },
                "required": ["message"]
            },
            "outputSchema": {
                "type": "object",
                "properties": { "echo": { "type": "string" } }
            },
            "annotations": { "readOnlyHint": true },
            "_meta": { "example.com/owner": "tests" }
        }),
        json!({
            "name": "fail",
            "description": "Always fails",
            "inputSchema": { "type": "object" }
        }),
        json!({
            "name": "slow",
            "description": "Answers after a minute",
            "inputSchema": { "type": "object" }
        }),
        json!({
            "name": "big",
            "description": "A large answer",
            "inputSchema": { "type": "object" }
        }),
    ]
}

/// What `echo` answers for `message`.
pub fn echo_result(message: &str) -> Value {
    json!({
        "content": [{ "type": "text", "text": message }],
        "structuredContent": { "echo": message },
        "isError": false,
        "_meta": { "example.com/trace": "t-1" }
    })
}

/// What `fail` answers.
pub fn fail_result() -> Value {
    json!({
        "content": [{ "type": "text", "text": "it failed" }],
        "isError": true
    })
}

/// (`Mcp-Session-Id`, message) of one `echo` call.
pub type Echo = (Option<String>, String);

#[derive(Clone, Default)]
struct Counters {
    initializes: Arc<AtomicUsize>,
    /// The `Authorization` header of every `tools/call`.
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
    /// (`Mcp-Session-Id`, message) of every `echo` call: which session carried whose call.
    echoes: Arc<Mutex<Vec<Echo>>>,
}

#[derive(Clone)]
struct Handler {
    counters: Counters,
}

fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ErrorData> {
    serde_json::from_value(v).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("test-upstream", "0.0.0"))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.counters.initializes.fetch_add(1, Ordering::SeqCst);
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = tool_objects();
        let second = request
            .and_then(|r| r.cursor)
            .is_some_and(|c| c == "page-2");
        let page = if second {
            json!({ "tools": tools[2..] })
        } else {
            json!({ "tools": tools[..2], "nextCursor": "page-2" })
        };
        // Each tool must parse as rmcp's own type too.
        for t in page["tools"].as_array().into_iter().flatten() {
            from_json::<Tool>(t.clone())?;
        }
        from_json(page)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let header = |name: &str| {
            context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|p| p.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let authorization = header("authorization");
        self.counters
            .authorizations
            .lock()
            .unwrap()
            .push(authorization);
        let result = match request.name.as_ref() {
            "echo" => {
                let message = request
                    .arguments
                    .as_ref()
                    .and_then(|a| a.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.counters
                    .echoes
                    .lock()
                    .unwrap()
                    .push((header("mcp-session-id"), message.clone()));
                echo_result(&message)
            }
            "fail" => fail_result(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                echo_result("late")
            }
            "big" => echo_result(&"x".repeat(BIG_BYTES)),
            _ => return Err(ErrorData::invalid_params("no such tool", None)),
        };
        Ok(from_json::<CallToolResult>(result)?.into())
    }
}

/// rmcp's Streamable HTTP server as an upstream.
pub struct RmcpUpstream {
    pub addr: SocketAddr,
    /// The MCP endpoint.
    pub url: reqwest::Url,
    counters: Counters,
    sessions: Arc<LocalSessionManager>,
}

impl RmcpUpstream {
    pub async fn start() -> RmcpUpstream {
        let counters = Counters::default();
        let handler = Handler {
            counters: counters.clone(),
        };
        let sessions = Arc::new(LocalSessionManager::default());
        let config = StreamableHttpServerConfig::default()
            .disable_allowed_hosts()
            .disable_allowed_origins();
        let service =
            StreamableHttpService::new(move || Ok(handler.clone()), sessions.clone(), config);
        let app = Router::new().route_service("/mcp", service);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        RmcpUpstream {
            addr,
            url: format!("http://{addr}/mcp").parse().unwrap(),
            counters,
            sessions,
        }
    }

    /// How many `initialize` requests arrived.
    pub fn initializes(&self) -> usize {
        self.counters.initializes.load(Ordering::SeqCst)
    }

    /// (`Mcp-Session-Id`, message) of each `echo` call, in order.
    pub fn echoes(&self) -> Vec<Echo> {
        self.counters.echoes.lock().unwrap().clone()
    }

    /// The `Authorization` header of each `tools/call`, in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.counters.authorizations.lock().unwrap().clone()
    }

    /// Sessions the server holds now.
    pub async fn live_sessions(&self) -> usize {
        self.sessions.sessions.read().await.len()
    }

    /// Ends every session server-side: the next request on one gets a 404.
    pub async fn kill_sessions(&self) {
        let ids: Vec<_> = self
            .sessions
            .sessions
            .read()
            .await
            .keys()
            .cloned()
            .collect();
        for id in ids {
            self.sessions.close_session(&id).await.unwrap();
        }
    }
}

/// How a [`RawUpstream`] misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawMode {
    /// Sessions; a request on an unknown session is a 404 (see [`RawUpstream::forget`]).
    Sessions,
    /// Sessions, and every request on one is a 404: the session never works.
    AlwaysGone,
    /// No `Mcp-Session-Id` at all.
    Sessionless,
    /// `tools/call` answers 200 `application/json` that is not JSON.
    Garbage,
    /// `tools/call` answers 307 to the URL set by [`RawUpstream::redirect_to`].
    Redirect,
}

struct RawState {
    mode: RawMode,
    redirect_to: Mutex<String>,
    initializes: AtomicUsize,
    deletes: AtomicUsize,
    next: AtomicUsize,
    live: Mutex<HashSet<String>>,
    /// Headers of every request other than `initialize`.
    seen: Mutex<Vec<HeaderMap>>,
}

/// A hand-written Streamable HTTP server that answers JSON.
pub struct RawUpstream {
    pub url: reqwest::Url,
    state: Arc<RawState>,
}

impl RawUpstream {
    pub async fn start(mode: RawMode) -> RawUpstream {
        let state = Arc::new(RawState {
            mode,
            redirect_to: Mutex::new(String::new()),
            initializes: AtomicUsize::new(0),
            deletes: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            live: Mutex::new(HashSet::new()),
            seen: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/mcp", post(raw_post).delete(raw_delete))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        RawUpstream {
            url: format!("http://{addr}/mcp").parse().unwrap(),
            state,
        }
    }

    pub fn initializes(&self) -> usize {
        self.state.initializes.load(Ordering::SeqCst)
    }

    /// Where [`RawMode::Redirect`] sends `tools/call`.
    pub fn redirect_to(&self, url: &str) {
        *self.state.redirect_to.lock().unwrap() = url.to_owned();
    }

    pub fn deletes(&self) -> usize {
        self.state.deletes.load(Ordering::SeqCst)
    }

    /// Forgets every session, as a restarted server would.
    pub fn forget(&self) {
        self.state.live.lock().unwrap().clear();
    }

    /// Headers of every request after `initialize`, in order.
    pub fn seen(&self) -> Vec<HeaderMap> {
        self.state.seen.lock().unwrap().clone()
    }
}

fn json_reply(body: Value) -> Response {
    ([("content-type", "application/json")], body.to_string()).into_response()
}

async fn raw_post(
    State(state): State<Arc<RawState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Ok(message) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = message.get("id").cloned();
    let method = message["method"].as_str().unwrap_or_default();
    if method == "initialize" {
        state.initializes.fetch_add(1, Ordering::SeqCst);
        let reply = json_reply(json!({
            "jsonrpc": "2.0",
            "id": id,
            "result": {
                "protocolVersion": "2025-06-18",
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "raw-upstream", "version": "0.0.0" }
            }
        }));
        if state.mode == RawMode::Sessionless {
            return reply;
        }
        let session = format!("raw-{}", state.next.fetch_add(1, Ordering::SeqCst));
        state.live.lock().unwrap().insert(session.clone());
        let mut reply = reply;
        reply
            .headers_mut()
            .insert("mcp-session-id", session.parse().unwrap());
        return reply;
    }
    state.seen.lock().unwrap().push(headers.clone());
    if state.mode != RawMode::Sessionless {
        let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        if !state.live.lock().unwrap().contains(session) {
            return StatusCode::NOT_FOUND.into_response();
        }
        // Notifications still work, so the handshake completes; requests don't.
        if state.mode == RawMode::AlwaysGone && id.is_some() {
            return StatusCode::NOT_FOUND.into_response();
        }
    }
    let Some(id) = id else {
        return StatusCode::ACCEPTED.into_response();
    };
    match (state.mode, method) {
        (RawMode::Redirect, "tools/call") => {
            let target = state.redirect_to.lock().unwrap().clone();
            (StatusCode::TEMPORARY_REDIRECT, [("location", target)]).into_response()
        }
        (RawMode::Garbage, "tools/call") => (
            [("content-type", "application/json")],
            "<html>definitely not json",
        )
            .into_response(),
        (_, "tools/call") => json_reply(json!({
            "jsonrpc": "2.0",
            "id": id,
            "result": {
                "content": [{ "type": "text", "text": "raw" }],
                "isError": false
            }
        })),
        (_, "tools/list") => json_reply(json!({
            "jsonrpc": "2.0",
            "id": id,
            "result": { "tools": [{ "name": "raw", "inputSchema": { "type": "object" } }] }
        })),
        _ => json_reply(json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": { "code": -32601, "message": "Method not found" }
        })),
    }
}

async fn raw_delete(State(state): State<Arc<RawState>>, headers: HeaderMap) -> StatusCode {
    state.deletes.fetch_add(1, Ordering::SeqCst);
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.live.lock().unwrap().remove(&session);
    StatusCode::OK
}
