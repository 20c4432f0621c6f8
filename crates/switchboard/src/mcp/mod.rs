//! The MCP server: Streamable HTTP at `/v1/mcps/{user}/mcp` (every tool), `/mcp/{gateway}`
//! (a configured selection) and `/mcp` (every tool; user from `Arcade-User-Id` or the
//! caller's user token). Both eras on one endpoint: an `initialize` starts a handshake-era
//! session (2025-06-18 / 2025-11-25), kept in the store so any replica serves its next
//! request; a request carrying `MCP-Protocol-Version: 2026-07-28` is served statelessly.
//!
//! Hand-written JSON-RPC on axum rather than rmcp: each request needs the caller's user
//! (from our own auth) bound to the session record we keep in our store, exact HTTP
//! statuses for bad input, and authorization prompts that re-enter the executor.
//!
//! The one case that needs replica affinity: a client's answer to `elicitation/create`
//! (2025-11-25) is routed to the waiting call in this process's memory; if a load balancer
//! sends that POST to another replica, the call waits until `auth.elicitation_timeout`
//! and then returns the link. Route by `Mcp-Session-Id` to avoid it. The 2026-07-28 era
//! needs no affinity (its `requestState` is sealed with a key every replica derives).
//! Must not: run pipeline steps itself; every `tools/call` goes through `exec::Executor`.

// Early exits carry the finished HTTP response; they are the rare path.
#![allow(clippy::result_large_err)]

mod protocol;
mod request_state;
mod tools;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use switchboard_wire::error_kind;
use tokio::sync::{mpsc, oneshot};

use crate::api::AppState;
use crate::catalog::ToolEntry;
use crate::config::{Config, GatewayConfig};
use crate::exec::{ExecError, Execution, ToolCall};
use crate::identity::{Caller, IdentityError};
use crate::oauth::{Authorization, FlowStatus};
use crate::store::McpSessionRecord;
use protocol::{
    HEADER_MISMATCH, INVALID_REQUEST, Incoming, METHOD_NOT_FOUND, MODERN_VERSION, PARSE_ERROR,
    RpcError, UNSUPPORTED_VERSION,
};
use request_state::{PendingCall, StateSealer};

pub use protocol::{LEGACY_VERSIONS, MODERN_VERSION as LATEST_VERSION};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const USER_HEADER: &str = "arcade-user-id";
/// Sessions unused this long are pruned.
const SESSION_IDLE_MS: i64 = 24 * 3600 * 1000;
/// `last_seen` is written at most this often per session.
const TOUCH_EVERY_MS: i64 = 60 * 1000;
const PRUNE_EVERY_MS: i64 = 10 * 60 * 1000;
/// How long a modern-era `requestState` stays valid.
const REQUEST_STATE_TTL_MS: i64 = 10 * 60 * 1000;
/// How often a standalone SSE stream looks for catalog changes.
const CATALOG_POLL: Duration = Duration::from_secs(1);
/// The key a modern `input_required` result uses for its one request.
const AUTHORIZE_INPUT: &str = "authorize";

/// Per-process state: calls waiting for a client's answer, and the requestState key.
pub struct McpHub {
    pending: Mutex<HashMap<String, Waiting>>,
    sealer: StateSealer,
    last_prune_ms: AtomicI64,
}

struct Waiting {
    session_id: String,
    user_id: String,
    tx: oneshot::Sender<Value>,
}

impl McpHub {
    pub fn new(config: &Config) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            sealer: StateSealer::from_root_keys(&config.security.root_keys),
            last_prune_ms: AtomicI64::new(0),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
struct Mcp {
    app: AppState,
    hub: Arc<McpHub>,
}

/// The MCP routes, with their own authentication (not the REST middleware).
pub fn router(app: AppState) -> Router<AppState> {
    let hub = Arc::new(McpHub::new(&app.config));
    // Each endpoint also answers with a trailing slash: URLs get pasted either way.
    Router::new()
        .route("/v1/mcps/{user_id}/mcp", any(user_endpoint))
        .route("/v1/mcps/{user_id}/mcp/", any(user_endpoint))
        .route("/mcp", any(default_endpoint))
        .route("/mcp/", any(default_endpoint))
        .route("/mcp/{gateway}", any(gateway_endpoint))
        .route("/mcp/{gateway}/", any(gateway_endpoint))
        .with_state(Mcp { app, hub })
}

struct Target {
    path_user: Option<String>,
    gateway: Option<String>,
}

async fn user_endpoint(
    State(mcp): State<Mcp>,
    Path(user_id): Path<String>,
    req: Request,
) -> Response {
    let target = Target {
        path_user: Some(user_id),
        gateway: None,
    };
    handle(mcp, target, req).await
}

async fn default_endpoint(State(mcp): State<Mcp>, req: Request) -> Response {
    let target = Target {
        path_user: None,
        gateway: None,
    };
    handle(mcp, target, req).await
}

async fn gateway_endpoint(
    State(mcp): State<Mcp>,
    Path(gateway): Path<String>,
    req: Request,
) -> Response {
    let target = Target {
        path_user: None,
        gateway: Some(gateway),
    };
    handle(mcp, target, req).await
}

/// Who a request acts for, through which gateway.
struct Ctx {
    user: String,
    gateway: Option<GatewayConfig>,
}

impl Ctx {
    fn slug(&self) -> Option<&str> {
        self.gateway.as_ref().map(|g| g.slug.as_str())
    }
}

async fn handle(mcp: Mcp, target: Target, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let config = &mcp.app.config;
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    if let Some(host) = host
        && !host_allowed(config, host)
    {
        tracing::warn!(host, "MCP request refused: Host not allowed");
        return http_error(StatusCode::FORBIDDEN, "Host header not allowed");
    }
    if let Some(origin) = header_str(&parts.headers, header::ORIGIN.as_str())
        && !origin_allowed(config, origin)
    {
        tracing::warn!(origin, "MCP request refused: Origin not allowed");
        return http_error(StatusCode::FORBIDDEN, "Origin not allowed");
    }
    let gateway = match &target.gateway {
        None => None,
        Some(slug) => match config.gateways.iter().find(|g| g.slug == *slug) {
            Some(g) => Some(g.clone()),
            None => return http_error(StatusCode::NOT_FOUND, "no such gateway"),
        },
    };
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let user = match authenticate(&mcp, &parts.headers, peer, target.path_user).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let ctx = Ctx { user, gateway };
    match parts.method {
        Method::POST => post(mcp, ctx, &parts.headers, body).await,
        Method::GET => open_stream(mcp, ctx, &parts.headers).await,
        Method::DELETE => end_session(mcp, ctx, &parts.headers).await,
        _ => method_not_allowed(),
    }
}

// --- Who may call -------------------------------------------------------------------

async fn authenticate(
    mcp: &Mcp,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    path_user: Option<String>,
) -> Result<String, Response> {
    let authorization = header_str(headers, header::AUTHORIZATION.as_str());
    let caller = match mcp.app.auth.authenticate(authorization, peer).await {
        Ok(caller) => caller,
        Err(IdentityError::Store(e)) => {
            tracing::error!(error = %e, "MCP authentication: store unavailable");
            return Err(http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ));
        }
        Err(e) => return Err(unauthorized(&e.to_string())),
    };
    let named = path_user.or_else(|| {
        header_str(headers, USER_HEADER)
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
    });
    user_for(&caller, named)
}

/// The user a caller acts for: an API key (or dev-mode loopback) for anyone named, a user
/// token for its own user only (named or not).
fn user_for(caller: &Caller, named: Option<String>) -> Result<String, Response> {
    match named {
        Some(user) if caller.may_act_for(&user) => Ok(user),
        Some(_) => Err(http_error(
            StatusCode::FORBIDDEN,
            "this user token may not act for that user",
        )),
        None => caller.bound_user().map(str::to_string).ok_or_else(|| {
            http_error(
                StatusCode::BAD_REQUEST,
                "name the user: /v1/mcps/{user_id}/mcp, or the Arcade-User-Id header",
            )
        }),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = http_error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"switchboard\""),
    );
    response
}

/// `Host` against DNS rebinding: `api.allowed_hosts`, else loopback names, the bind host
/// and `public_url`'s host (any port).
fn host_allowed(config: &Config, host: &str) -> bool {
    let name = host_name(host);
    if !config.api.allowed_hosts.is_empty() {
        return config.api.allowed_hosts.iter().any(|allowed| {
            let allowed = allowed.trim();
            allowed == "*"
                || allowed.eq_ignore_ascii_case(host)
                || host_name(allowed).eq_ignore_ascii_case(name) && !allowed.contains(':')
                || allowed.starts_with('[') && host_name(allowed).eq_ignore_ascii_case(name)
        });
    }
    if ["localhost", "127.0.0.1", "::1"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    {
        return true;
    }
    let bind = config.api.host.trim();
    if !bind.is_empty()
        && !["0.0.0.0", "::", "[::]"].contains(&bind)
        && host_name(bind).eq_ignore_ascii_case(name)
    {
        return true;
    }
    url::Url::parse(&config.api.public_url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        .is_some_and(|h| h.eq_ignore_ascii_case(name))
}

/// `example.com:80` → `example.com`; `[::1]:80` → `::1`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// `Origin`: `api.allowed_origins`, else loopback origins and `public_url`'s origin.
fn origin_allowed(config: &Config, origin: &str) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if !config.api.allowed_origins.is_empty() {
        return config.api.allowed_origins.iter().any(|allowed| {
            let allowed = allowed.trim().trim_end_matches('/');
            allowed == "*" || allowed.eq_ignore_ascii_case(origin)
        });
    }
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let loopback = url
        .host_str()
        .map(|h| h.trim_matches(['[', ']']))
        .is_some_and(|h| ["localhost", "127.0.0.1", "::1"].contains(&h));
    loopback
        || url::Url::parse(&config.api.public_url).is_ok_and(|p| {
            p.origin()
                .ascii_serialization()
                .eq_ignore_ascii_case(origin)
        })
}

// --- POST ---------------------------------------------------------------------------

async fn post(mcp: Mcp, ctx: Ctx, headers: &HeaderMap, body: Body) -> Response {
    let json_type = header_str(headers, header::CONTENT_TYPE.as_str())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return rpc_http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RpcError::new(INVALID_REQUEST, "Content-Type must be application/json"),
        );
    }
    let limit = mcp.app.config.api.max_request_body_size;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return rpc_http_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                RpcError::new(
                    INVALID_REQUEST,
                    format!("request body larger than {limit} bytes"),
                ),
            );
        }
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return rpc_http_error(
                StatusCode::BAD_REQUEST,
                RpcError::new(PARSE_ERROR, format!("parse error: {e}")),
            );
        }
    };
    if value.is_array() {
        return rpc_http_error(
            StatusCode::BAD_REQUEST,
            RpcError::new(
                INVALID_REQUEST,
                "batched JSON-RPC messages are not supported",
            ),
        );
    }
    let message = match protocol::classify(value) {
        Ok(m) => m,
        Err(why) => {
            return rpc_http_error(StatusCode::BAD_REQUEST, RpcError::new(INVALID_REQUEST, why));
        }
    };
    let session_id = header_str(headers, SESSION_HEADER);
    match message {
        Incoming::Response { id, body } => {
            deliver_answer(&mcp, &ctx, session_id, &id, body);
            StatusCode::ACCEPTED.into_response()
        }
        Incoming::Notification { method } => {
            tracing::debug!(method, "MCP notification");
            if session_id.is_some()
                && let Err(response) = load_session(&mcp, &ctx, headers).await
            {
                return response;
            }
            StatusCode::ACCEPTED.into_response()
        }
        Incoming::Request { id, method, params } => {
            let header_version = header_str(headers, VERSION_HEADER);
            let meta_version = params
                .get("_meta")
                .and_then(|m| m.get(protocol::META_VERSION))
                .and_then(Value::as_str)
                .map(str::to_string);
            let modern = method != "initialize"
                && session_id.is_none()
                && (meta_version.is_some() || header_version == Some(MODERN_VERSION));
            if method == "initialize" {
                initialize(&mcp, &ctx, headers, &id, &params).await
            } else if modern {
                modern_request(
                    &mcp,
                    &ctx,
                    headers,
                    id,
                    &method,
                    params,
                    meta_version.as_deref(),
                )
                .await
            } else {
                let session = match load_session(&mcp, &ctx, headers).await {
                    Ok(s) => s,
                    Err(response) => return response,
                };
                legacy_request(&mcp, &ctx, headers, session, id, &method, params).await
            }
        }
    }
}

/// A client's answer to our `elicitation/create`, handed to the call waiting for it
/// (only if it comes from the same session).
fn deliver_answer(mcp: &Mcp, ctx: &Ctx, session_id: Option<&str>, id: &Value, body: Value) {
    let key = id.to_string();
    let mut pending = mcp.hub.pending();
    match pending.get(&key) {
        Some(w) if Some(w.session_id.as_str()) == session_id && w.user_id == ctx.user => {
            if let Some(w) = pending.remove(&key) {
                let _ = w.tx.send(body);
            }
        }
        Some(_) => tracing::warn!("MCP answer from another session ignored"),
        None => tracing::info!(
            "MCP answer for no waiting call here (finished, timed out, or another replica's)"
        ),
    }
}

async fn initialize(
    mcp: &Mcp,
    ctx: &Ctx,
    headers: &HeaderMap,
    id: &Value,
    params: &Value,
) -> Response {
    let version = protocol::negotiate(params.get("protocolVersion").and_then(Value::as_str));
    let client = json!({
        "capabilities": params.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "clientInfo": params.get("clientInfo").cloned().unwrap_or(Value::Null),
    });
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    let session_id = URL_SAFE_NO_PAD.encode(raw);
    let now = now_ms();
    let record = McpSessionRecord {
        id: session_id.clone(),
        user_id: ctx.user.clone(),
        gateway: ctx.slug().map(str::to_string),
        protocol_version: version.to_string(),
        client_json: client.to_string(),
        created_at_ms: now,
        last_seen_ms: now,
    };
    if let Err(e) = mcp.app.store.put_mcp_session(&record).await {
        tracing::error!(error = %e, "MCP initialize: could not store the session");
        return rpc_http_error(StatusCode::INTERNAL_SERVER_ERROR, RpcError::internal());
    }
    prune_now_and_then(mcp, now);
    tracing::info!(user_id = %ctx.user, gateway = ?ctx.slug(), version, "MCP session started");
    let mut instructions = "Tools served by Switchboard".to_string();
    if let Some(d) = ctx.gateway.as_ref().and_then(|g| g.description.as_ref()) {
        instructions = d.clone();
    }
    let result = json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": true}, "logging": {}},
        "serverInfo": {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")},
        "instructions": instructions,
    });
    let mut response = reply(headers, &protocol::response(id, result));
    if let Ok(v) = HeaderValue::from_str(&session_id) {
        response.headers_mut().insert(SESSION_HEADER, v);
    }
    response
}

fn prune_now_and_then(mcp: &Mcp, now: i64) {
    let last = mcp.hub.last_prune_ms.load(Ordering::Relaxed);
    if now - last < PRUNE_EVERY_MS
        || mcp
            .hub
            .last_prune_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let store = mcp.app.store.clone();
    tokio::spawn(async move {
        match store.prune_mcp_sessions(now - SESSION_IDLE_MS).await {
            Ok(n) if n > 0 => tracing::info!(sessions = n, "idle MCP sessions pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune MCP sessions"),
        }
    });
}

/// The session named by `Mcp-Session-Id`, if it belongs to this user and gateway.
async fn load_session(
    mcp: &Mcp,
    ctx: &Ctx,
    headers: &HeaderMap,
) -> Result<McpSessionRecord, Response> {
    let Some(session_id) = header_str(headers, SESSION_HEADER) else {
        return Err(rpc_http_error(
            StatusCode::BAD_REQUEST,
            RpcError::new(
                INVALID_REQUEST,
                "missing Mcp-Session-Id header: send initialize first",
            ),
        ));
    };
    if let Some(v) = header_str(headers, VERSION_HEADER)
        && !protocol::is_legacy(v)
    {
        return Err(rpc_http_error(
            StatusCode::BAD_REQUEST,
            RpcError::new(
                INVALID_REQUEST,
                format!("unsupported MCP-Protocol-Version {v:?}"),
            )
            .with_data(json!({"supported": protocol::all_versions()})),
        ));
    }
    let session = match mcp.app.store.get_mcp_session(session_id).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(session_not_found()),
        Err(e) => {
            tracing::error!(error = %e, "MCP session lookup failed");
            return Err(rpc_http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                RpcError::internal(),
            ));
        }
    };
    // A session is bound to the user and gateway it was started for.
    if session.user_id != ctx.user || session.gateway.as_deref() != ctx.slug() {
        tracing::warn!(user_id = %ctx.user, "MCP session id used for another user or gateway");
        return Err(session_not_found());
    }
    let now = now_ms();
    if now - session.last_seen_ms > TOUCH_EVERY_MS
        && let Err(e) = mcp.app.store.touch_mcp_session(&session.id, now).await
    {
        tracing::warn!(error = %e, "could not touch MCP session");
    }
    Ok(session)
}

fn session_not_found() -> Response {
    rpc_http_error(
        StatusCode::NOT_FOUND,
        RpcError::new(INVALID_REQUEST, "session not found: initialize again"),
    )
}

async fn legacy_request(
    mcp: &Mcp,
    ctx: &Ctx,
    headers: &HeaderMap,
    session: McpSessionRecord,
    id: Value,
    method: &str,
    params: Value,
) -> Response {
    let outcome = match method {
        "ping" | "logging/setLevel" => Ok(Reply::Done(json!({}))),
        "tools/list" => list_tools(mcp, ctx, &params).map(Reply::Done),
        "tools/call" => call_tool(mcp, ctx, &params, Era::Legacy(&session), &id).await,
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method not found: {other}"),
        )),
    };
    match outcome {
        Ok(Reply::Done(result)) => reply(headers, &protocol::response(&id, result)),
        Ok(Reply::Stream(response)) => response,
        Err(e) => reply(headers, &protocol::error_response(&id, &e)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn modern_request(
    mcp: &Mcp,
    ctx: &Ctx,
    headers: &HeaderMap,
    id: Value,
    method: &str,
    params: Value,
    meta_version: Option<&str>,
) -> Response {
    let header_version = header_str(headers, VERSION_HEADER);
    if let (Some(h), Some(m)) = (header_version, meta_version)
        && h != m
    {
        return rpc_http_error_id(
            &id,
            RpcError::new(
                HEADER_MISMATCH,
                "MCP-Protocol-Version header does not match _meta protocolVersion",
            ),
        );
    }
    let version = header_version.or(meta_version).unwrap_or_default();
    if version != MODERN_VERSION {
        return rpc_http_error_id(
            &id,
            RpcError::new(
                UNSUPPORTED_VERSION,
                format!("unsupported protocol version {version:?}"),
            )
            .with_data(json!({"supported": protocol::all_versions()})),
        );
    }
    if let Some(h) = header_str(headers, "mcp-method")
        && h != method
    {
        return rpc_http_error_id(
            &id,
            RpcError::new(
                HEADER_MISMATCH,
                "Mcp-Method header does not match the method",
            ),
        );
    }
    if method == "tools/call"
        && let Some(h) = header_str(headers, "mcp-name")
        && Some(h) != params.get("name").and_then(Value::as_str)
    {
        return rpc_http_error_id(
            &id,
            RpcError::new(
                HEADER_MISMATCH,
                "Mcp-Name header does not match the tool name",
            ),
        );
    }
    let outcome = match method {
        "server/discover" => Ok(json!({
            "supportedVersions": protocol::all_versions(),
            "capabilities": {"tools": {}, "logging": {}},
            "ttlMs": 60_000,
            "cacheScope": "public",
            "_meta": {"io.modelcontextprotocol/serverInfo":
                {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")}},
        })),
        "ping" | "logging/setLevel" => Ok(json!({})),
        "tools/list" => list_tools(mcp, ctx, &params).map(|mut r| {
            r["ttlMs"] = json!(60_000);
            r["cacheScope"] = json!("private");
            r
        }),
        "tools/call" => match call_tool(mcp, ctx, &params, Era::Modern, &id).await {
            Ok(Reply::Done(v)) => Ok(v),
            // The modern era never streams a call.
            Ok(Reply::Stream(_)) => Err(RpcError::internal()),
            Err(e) => Err(e),
        },
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method not found: {other}"),
        )),
    };
    match outcome {
        Ok(mut result) => {
            if result.get("resultType").is_none() {
                result["resultType"] = json!("complete");
            }
            reply(headers, &protocol::response(&id, result))
        }
        Err(e) => reply(headers, &protocol::error_response(&id, &e)),
    }
}

// --- Tools --------------------------------------------------------------------------

fn list_tools(mcp: &Mcp, ctx: &Ctx, params: &Value) -> Result<Value, RpcError> {
    let catalog = mcp.app.executor.workers().catalog().snapshot();
    let view = tools::view(&catalog, ctx.gateway.as_ref());
    tools::list_page(&view, params.get("cursor").and_then(Value::as_str))
}

enum Era<'a> {
    Legacy(&'a McpSessionRecord),
    Modern,
}

enum Reply {
    Done(Value),
    /// An SSE stream that will carry server requests, then the response.
    Stream(Response),
}

async fn call_tool(
    mcp: &Mcp,
    ctx: &Ctx,
    params: &Value,
    era: Era<'_>,
    request_id: &Value,
) -> Result<Reply, RpcError> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("tools/call needs a tool name"))?;
    let input = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(RpcError::invalid_params("arguments must be an object")),
    };
    let catalog = mcp.app.executor.workers().catalog().snapshot();
    let unknown = || RpcError::invalid_params(format!("Unknown tool: {name}"));
    let tool = catalog.resolve(name, None).map_err(|_| unknown())?;
    if !tools::exposes_opt(ctx.gateway.as_ref(), &tool) {
        return Err(unknown());
    }
    let call = ToolCall {
        tool_name: tool.fully_qualified_name(),
        tool_version: None,
        input,
        user_id: Some(ctx.user.clone()),
    };
    if let Era::Modern = era
        && let Some(state) = params.get("requestState").and_then(Value::as_str)
    {
        return resume_modern(mcp, ctx, &tool, call, state, params)
            .await
            .map(Reply::Done);
    }
    let execution = execute(mcp, &call).await?;
    let Some(authorization) = execution.authorization.as_deref() else {
        return finished(&execution).map(Reply::Done);
    };
    let Some(url) = authorization.url.clone() else {
        return Ok(Reply::Done(tools::call_result(&execution)));
    };
    let flow_id = authorization.id.clone().unwrap_or_default();
    match era {
        Era::Legacy(session) if supports_url_elicitation(session) => {
            let prompt = Prompt {
                tool,
                call,
                url,
                flow_id,
                provider: authorization.provider_id.clone(),
            };
            Ok(Reply::Stream(elicit(
                mcp.clone(),
                session,
                request_id.clone(),
                prompt,
            )))
        }
        // A modern client that did not declare URL elicitation can't act on
        // input_required: it gets the link as an error result, like a legacy one.
        Era::Legacy(_) => Ok(Reply::Done(tools::authorization_required_result(
            &tool.underscore_name,
            &url,
        ))),
        Era::Modern if !modern_supports_url_elicitation(params) => Ok(Reply::Done(
            tools::authorization_required_result(&tool.underscore_name, &url),
        )),
        Era::Modern => Ok(Reply::Done(input_required(
            mcp,
            PendingCall {
                u: ctx.user.clone(),
                t: tool.qualified_name.clone(),
                f: flow_id,
                url,
                exp: now_ms() + REQUEST_STATE_TTL_MS,
            },
            &tool,
            authorization,
        ))),
    }
}

async fn execute(mcp: &Mcp, call: &ToolCall) -> Result<Execution, RpcError> {
    mcp.app.executor.execute(call).await.map_err(|e| match e {
        ExecError::Resolve(e) => RpcError::invalid_params(e.to_string()),
        ExecError::BadRequest(m) => RpcError::invalid_params(m),
        ExecError::Internal(m) => {
            tracing::error!(error = %m, "MCP tools/call failed");
            RpcError::internal()
        }
    })
}

/// An execution that needs no prompt: a result, or -32602 for arguments that failed
/// validation.
fn finished(execution: &Execution) -> Result<Value, RpcError> {
    if execution.error_kind() == Some(error_kind::TOOL_RUNTIME_BAD_INPUT_VALUE) {
        let message = execution
            .output
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        return Err(RpcError::invalid_params(message));
    }
    Ok(tools::call_result(execution))
}

/// A 2026-07-28 request declares its client's capabilities in `_meta` on every request.
fn modern_supports_url_elicitation(params: &Value) -> bool {
    params
        .get("_meta")
        .and_then(|m| m.get("io.modelcontextprotocol/clientCapabilities"))
        .and_then(|c| c.get("elicitation"))
        .and_then(|e| e.get("url"))
        .is_some_and(|u| !u.is_null())
}

fn supports_url_elicitation(session: &McpSessionRecord) -> bool {
    serde_json::from_str::<Value>(&session.client_json)
        .ok()
        .and_then(|c| {
            c.get("capabilities")
                .and_then(|c| c.get("elicitation"))
                .and_then(|e| e.get("url"))
                .map(|u| !u.is_null())
        })
        .unwrap_or(false)
}

fn prompt_message(tool: &ToolEntry, provider: &str) -> String {
    format!(
        "Tool '{}' needs access to your '{provider}' account. Open the link to authorize it.",
        tool.underscore_name
    )
}

fn declined(tool: &ToolEntry, action: &str) -> Value {
    let what = if action == "decline" {
        "declined"
    } else {
        "cancelled"
    };
    tools::error_result(format!(
        "The user {what} the authorization for tool '{}'; the tool was not run.",
        tool.underscore_name
    ))
}

fn timed_out(tool: &ToolEntry, url: &str) -> Value {
    tools::error_result(format!(
        "Authorization for tool '{}' did not complete in time. Ask the user to open {url} to authorize, then call the tool again.",
        tool.underscore_name
    ))
}

// --- 2025-11-25: elicitation/create on the response stream ---------------------------

struct Prompt {
    tool: Arc<ToolEntry>,
    call: ToolCall,
    url: String,
    flow_id: String,
    provider: String,
}

fn elicit(mcp: Mcp, session: &McpSessionRecord, request_id: Value, prompt: Prompt) -> Response {
    let session_id = session.id.clone();
    let user_id = session.user_id.clone();
    let (tx, rx) = mpsc::channel::<String>(8);
    tokio::spawn(async move {
        let outcome = elicit_and_run(&mcp, &session_id, &user_id, &tx, &prompt).await;
        let message = match outcome {
            Ok(result) => protocol::response(&request_id, result),
            Err(e) => protocol::error_response(&request_id, &e),
        };
        let _ = tx.send(sse_event(&message)).await;
    });
    sse_response(rx)
}

async fn elicit_and_run(
    mcp: &Mcp,
    session_id: &str,
    user_id: &str,
    tx: &mpsc::Sender<String>,
    prompt: &Prompt,
) -> Result<Value, RpcError> {
    let deadline = tokio::time::Instant::now() + mcp.app.config.oauth.elicitation_timeout;
    let elicitation_id = uuid::Uuid::new_v4().to_string();
    let ask_id = json!(format!("switchboard-elicit-{elicitation_id}"));
    let (answer_tx, answer_rx) = oneshot::channel();
    mcp.hub.pending().insert(
        ask_id.to_string(),
        Waiting {
            session_id: session_id.to_string(),
            user_id: user_id.to_string(),
            tx: answer_tx,
        },
    );
    // Removes the waiting entry however this returns.
    let _cleanup = PendingGuard {
        hub: mcp.hub.clone(),
        key: ask_id.to_string(),
    };
    let ask = json!({
        "jsonrpc": "2.0",
        "id": ask_id,
        "method": "elicitation/create",
        "params": {
            "mode": "url",
            "elicitationId": elicitation_id,
            "url": prompt.url,
            "message": prompt_message(&prompt.tool, &prompt.provider),
        },
    });
    if tx.send(sse_event(&ask)).await.is_err() {
        return Err(RpcError::internal());
    }
    let answer = tokio::select! {
        a = tokio::time::timeout_at(deadline, answer_rx) => a,
        _ = tx.closed() => return Err(RpcError::internal()),
    };
    let answer = match answer {
        Ok(Ok(answer)) => answer,
        _ => return Ok(timed_out(&prompt.tool, &prompt.url)),
    };
    if answer.get("error").is_some() {
        return Ok(tools::authorization_required_result(
            &prompt.tool.underscore_name,
            &prompt.url,
        ));
    }
    let action = answer
        .pointer("/result/action")
        .and_then(Value::as_str)
        .unwrap_or("cancel");
    if action != "accept" {
        return Ok(declined(&prompt.tool, action));
    }
    match wait_for_flow(mcp, &prompt.flow_id, deadline).await {
        FlowEnd::Completed => {}
        FlowEnd::Failed(reason) => {
            return Ok(tools::error_result(format!(
                "Authorization for tool '{}' failed: {reason}",
                prompt.tool.underscore_name
            )));
        }
        FlowEnd::TimedOut => return Ok(timed_out(&prompt.tool, &prompt.url)),
    }
    let done = json!({
        "jsonrpc": "2.0",
        "method": "notifications/elicitation/complete",
        "params": {"elicitationId": elicitation_id},
    });
    let _ = tx.send(sse_event(&done)).await;
    let execution = execute(mcp, &prompt.call).await?;
    match execution.authorization.as_deref() {
        Some(auth) => Ok(tools::authorization_required_result(
            &prompt.tool.underscore_name,
            auth.url.as_deref().unwrap_or(&prompt.url),
        )),
        None => finished(&execution),
    }
}

struct PendingGuard {
    hub: Arc<McpHub>,
    key: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.hub.pending().remove(&self.key);
    }
}

enum FlowEnd {
    Completed,
    Failed(String),
    TimedOut,
}

async fn wait_for_flow(mcp: &Mcp, flow_id: &str, deadline: tokio::time::Instant) -> FlowEnd {
    let auth = mcp.app.executor.auth();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match auth.status(flow_id, left).await {
            Ok(a) => match a.status {
                FlowStatus::Completed => return FlowEnd::Completed,
                FlowStatus::Failed => {
                    return FlowEnd::Failed(
                        a.failure_reason
                            .unwrap_or_else(|| "the authorization failed".into()),
                    );
                }
                FlowStatus::Pending | FlowStatus::NotStarted => {}
            },
            Err(e) => {
                tracing::warn!(error = %e, "MCP: authorization status unavailable");
                return FlowEnd::Failed("the authorization could not be checked".into());
            }
        }
        if left.is_zero() {
            return FlowEnd::TimedOut;
        }
    }
}

// --- 2026-07-28: input_required and a sealed requestState ----------------------------

fn input_required(
    mcp: &Mcp,
    pending: PendingCall,
    tool: &ToolEntry,
    authorization: &Authorization,
) -> Value {
    json!({
        "resultType": "input_required",
        "inputRequests": {
            AUTHORIZE_INPUT: {
                "method": "elicitation/create",
                "params": {
                    "mode": "url",
                    "elicitationId": pending.f,
                    "url": pending.url,
                    "message": prompt_message(tool, &authorization.provider_id),
                },
            },
        },
        "requestState": mcp.hub.sealer.seal(&pending),
    })
}

async fn resume_modern(
    mcp: &Mcp,
    ctx: &Ctx,
    tool: &Arc<ToolEntry>,
    call: ToolCall,
    state: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    let pending = mcp
        .hub
        .sealer
        .open(state, now_ms())
        .map_err(|e| RpcError::invalid_params(e.to_string()))?;
    if pending.u != ctx.user || !pending.t.eq_ignore_ascii_case(&tool.qualified_name) {
        return Err(RpcError::invalid_params(
            "requestState does not belong to this user and tool",
        ));
    }
    let answer = params
        .get("inputResponses")
        .and_then(|r| r.get(AUTHORIZE_INPUT));
    let action = answer
        .and_then(|a| a.get("action").or_else(|| a.pointer("/result/action")))
        .and_then(Value::as_str);
    if let Some(action @ ("decline" | "cancel")) = action {
        return Ok(declined(tool, action));
    }
    // After `accept` the user may still be on the provider's page: wait, bounded.
    let wait = if action == Some("accept") {
        mcp.app.config.oauth.elicitation_timeout
    } else {
        Duration::ZERO
    };
    let deadline = tokio::time::Instant::now() + wait;
    match wait_for_flow(mcp, &pending.f, deadline).await {
        FlowEnd::Completed => {}
        FlowEnd::Failed(reason) => {
            return Ok(tools::error_result(format!(
                "Authorization for tool '{}' failed: {reason}",
                tool.underscore_name
            )));
        }
        FlowEnd::TimedOut => {
            let authorization = Authorization {
                id: Some(pending.f.clone()),
                status: FlowStatus::Pending,
                url: Some(pending.url.clone()),
                scopes: Vec::new(),
                provider_id: tool
                    .definition
                    .requirements
                    .authorization
                    .as_ref()
                    .and_then(|a| a.provider_id.clone())
                    .unwrap_or_default(),
                user_id: ctx.user.clone(),
                token: None,
                user_info: None,
                failure_reason: None,
            };
            return Ok(input_required(mcp, pending, tool, &authorization));
        }
    }
    let execution = execute(mcp, &call).await?;
    match execution.authorization.as_deref() {
        Some(auth) => {
            let url = auth.url.clone().unwrap_or_else(|| pending.url.clone());
            let next = PendingCall {
                u: ctx.user.clone(),
                t: tool.qualified_name.clone(),
                f: auth.id.clone().unwrap_or_default(),
                url,
                exp: now_ms() + REQUEST_STATE_TTL_MS,
            };
            Ok(input_required(mcp, next, tool, auth))
        }
        None => finished(&execution),
    }
}

// --- GET (standalone stream) and DELETE ---------------------------------------------

async fn open_stream(mcp: Mcp, ctx: Ctx, headers: &HeaderMap) -> Response {
    if header_str(headers, SESSION_HEADER).is_none()
        && header_str(headers, VERSION_HEADER) == Some(MODERN_VERSION)
    {
        return method_not_allowed();
    }
    let session = match load_session(&mcp, &ctx, headers).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    let (tx, rx) = mpsc::channel::<String>(4);
    let gateway = ctx.gateway.clone();
    let catalogs = mcp.app.executor.workers().clone();
    tokio::spawn(async move {
        // This process's catalog: a session served by another replica hears from that one.
        let names = |c: &crate::catalog::Catalog| -> Vec<String> {
            tools::view(c, gateway.as_ref())
                .iter()
                .map(|t| t.fully_qualified_name())
                .collect()
        };
        let mut last = catalogs.catalog().snapshot();
        let mut last_names = names(&last);
        let mut ticks: u32 = 0;
        let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CATALOG_POLL) => {}
                _ = tx.closed() => break,
            }
            ticks = ticks.wrapping_add(1);
            let now = catalogs.catalog().snapshot();
            if !Arc::ptr_eq(&now, &last) {
                let now_names = names(&now);
                last = now;
                if now_names != last_names {
                    last_names = now_names;
                    if tx.send(sse_event(&changed)).await.is_err() {
                        break;
                    }
                }
            }
            if ticks.is_multiple_of(15) && tx.send(": keep-alive\n\n".into()).await.is_err() {
                break;
            }
        }
        tracing::debug!(session = %session.id, "MCP stream closed");
    });
    sse_response(rx)
}

async fn end_session(mcp: Mcp, ctx: Ctx, headers: &HeaderMap) -> Response {
    if header_str(headers, SESSION_HEADER).is_none()
        && header_str(headers, VERSION_HEADER) == Some(MODERN_VERSION)
    {
        return method_not_allowed();
    }
    let session = match load_session(&mcp, &ctx, headers).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    match mcp.app.store.delete_mcp_session(&session.id).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not end MCP session");
            rpc_http_error(StatusCode::INTERNAL_SERVER_ERROR, RpcError::internal())
        }
    }
}

// --- Responses ----------------------------------------------------------------------

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    // `to_vec`, not `to_string`: Display goes through a `fmt::Write` adapter, slower per
    // byte. A `Value` always serializes.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// A transport-level failure: an HTTP status with a JSON-RPC error body (id null).
fn rpc_http_error(status: StatusCode, error: RpcError) -> Response {
    json_response(status, &protocol::error_response(&Value::Null, &error))
}

/// A modern-era header/version failure: HTTP 400 with the request's id.
fn rpc_http_error_id(id: &Value, error: RpcError) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &protocol::error_response(id, &error),
    )
}

fn http_error(status: StatusCode, message: &str) -> Response {
    rpc_http_error(status, RpcError::new(INVALID_REQUEST, message))
}

fn method_not_allowed() -> Response {
    let mut response = http_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
    response
}

/// JSON unless the client accepts only SSE.
fn reply(headers: &HeaderMap, message: &Value) -> Response {
    let accept = header_str(headers, header::ACCEPT.as_str()).unwrap_or("");
    let sse_only = accept.contains("text/event-stream")
        && !accept.contains("application/json")
        && !accept.contains("*/*");
    if sse_only {
        let body = sse_event(message);
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response();
    }
    json_response(StatusCode::OK, message)
}

fn sse_event(message: &Value) -> String {
    format!("event: message\ndata: {message}\n\n")
}

fn sse_response(rx: mpsc::Receiver<String>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|frame| (Ok::<_, Infallible>(Bytes::from(frame)), rx))
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let mut c = crate::config::defaults(std::path::Path::new("/tmp"));
        c.api.public_url = "https://gw.example.com".into();
        c
    }

    #[test]
    fn loopback_and_public_hosts_pass_and_others_are_refused() {
        let c = config();
        for ok in ["localhost:9099", "127.0.0.1", "[::1]:80", "gw.example.com"] {
            assert!(host_allowed(&c, ok), "{ok}");
        }
        for bad in ["evil.example.com", "evil.example.com:9099", "10.0.0.1"] {
            assert!(!host_allowed(&c, bad), "{bad}");
        }
        let mut c = config();
        c.api.allowed_hosts = vec!["mcp.internal".into()];
        assert!(host_allowed(&c, "mcp.internal:443"));
        assert!(!host_allowed(&c, "localhost"));
    }

    #[test]
    fn origins_default_to_loopback_and_follow_the_allow_list_when_set() {
        let c = config();
        assert!(origin_allowed(&c, "http://localhost:6274"));
        assert!(origin_allowed(&c, "http://127.0.0.1:3000"));
        assert!(origin_allowed(&c, "https://gw.example.com"));
        assert!(!origin_allowed(&c, "https://evil.example.com"));
        assert!(!origin_allowed(&c, "null"));
        let mut c = config();
        c.api.allowed_origins = vec!["https://app.example.com".into()];
        assert!(origin_allowed(&c, "https://app.example.com"));
        assert!(!origin_allowed(&c, "http://localhost:6274"));
    }
}
