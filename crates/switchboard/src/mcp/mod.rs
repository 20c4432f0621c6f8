//! The MCP server: Streamable HTTP at `/v1/mcps/{user}/mcp` (every tool), `/mcp/{gateway}`
//! (a configured selection) and `/mcp` (every tool; user from `Arcade-User-Id` or the
//! caller's user token), on rmcp. Both eras on one endpoint: an `initialize` starts a
//! handshake-era session (2025-03-26 to 2025-11-25); a request carrying
//! `MCP-Protocol-Version: 2026-07-28` is served statelessly.
//!
//! This module is the door (after `Host` and `Origin`, checked for every route in
//! `api::guard`): the caller's credential, the user it may
//! act for, and the session's binding to that user, all before rmcp sees the request.
//! rmcp then speaks the protocol and calls `server::GatewayServer`, except for a
//! `tools/call` that `direct` answers with the same handler.
//!
//! Sessions live in rmcp's memory and in our store (`sessions`): another replica, or this
//! one after the in-memory session idled out, restores a session from the store. The one
//! case that needs replica affinity: a client's answer to `elicitation/create`
//! (2025-11-25) goes to the call waiting in the memory of the replica that asked; if a
//! load balancer sends that POST elsewhere, the call waits until
//! `auth.elicitation_timeout` and then returns the link. Route by `Mcp-Session-Id` to
//! avoid it. The 2026-07-28 era needs no affinity (its `requestState` is sealed with a
//! key every replica derives).
//! Must not: run pipeline steps itself; every `tools/call` goes through `exec::Executor`.

// Early exits carry the finished HTTP response; they are the rare path.
#![allow(clippy::result_large_err)]

mod direct;
mod live;
mod memory;
mod protocol;
mod request_state;
mod server;
mod sessions;
mod subscriptions;
mod tools;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::de::IgnoredAny;
use serde_json::json;

use crate::clock::Clock;
use crate::config::{Config, GatewayConfig};
use crate::exec::ToolView;
use crate::identity::{Caller, IdentityError, user_id};
use crate::state::AppState;
use live::LiveSessions;
use request_state::StateSealer;
use server::GatewayServer;
pub use sessions::sweep_expired as sweep_sessions;
use sessions::{Admissions, Bindings, Refused, SERVING, StoredSessions};

// Header names made once: looking one up by `&str` parses the name on every request.
const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;
const USER_HEADER: HeaderName = HeaderName::from_static("arcade-user-id");

/// Per-process state shared by every request and session.
pub struct McpHub {
    sealer: StateSealer,
    /// Handshake-era calls answered by `direct` and still running.
    direct_calls: direct::InFlight,
    /// `initialize`s let through whose session may not be stored yet (`sessions::admit`).
    admissions: Admissions,
    live: Arc<LiveSessions>,
    bindings: Arc<Bindings>,
    /// Session lifetimes, the binding cache and `requestState` expire by this clock.
    clock: Clock,
}

impl McpHub {
    pub fn new(config: &Config, clock: Clock) -> Self {
        let bindings = Arc::new(Bindings::default());
        Self {
            sealer: StateSealer::from_root_keys(&config.security.root_keys, clock.clone()),
            direct_calls: direct::InFlight::default(),
            admissions: Admissions::default(),
            live: Arc::new(LiveSessions::new(bindings.clone(), clock.clone())),
            bindings,
            clock,
        }
    }
}

#[derive(Clone)]
struct Mcp {
    app: AppState,
    hub: Arc<McpHub>,
}

type Service = StreamableHttpService<GatewayServer, LocalSessionManager>;

/// What every MCP route serves: one per gateway process, shared by the router and the
/// hot path (`api::service`).
#[derive(Clone)]
pub struct Endpoint {
    mcp: Mcp,
    /// The handler rmcp calls, also answering `direct` calls.
    server: GatewayServer,
    service: Arc<Service>,
}

/// The MCP endpoint of this gateway process: rmcp's service, its sessions and the hub.
pub fn endpoint(app: AppState) -> Endpoint {
    let hub = Arc::new(McpHub::new(&app.config, app.clock.clone()));
    let mcp = Mcp { app, hub };
    // Expired sessions go whether or not requests come.
    sessions::spawn_sweeper(
        mcp.app.store.clone(),
        mcp.app.config.api.mcp_session_lifetime,
        mcp.hub.clock.clone(),
        mcp.app.stopping.child_token(),
    );
    let server = GatewayServer { mcp: mcp.clone() };
    let mut config = StreamableHttpServerConfig::default()
        // Host and Origin are checked first, for every route, by `api::guard`.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        // A stateless answer with nothing to stream is plain JSON.
        .with_json_response(true)
        .with_max_request_body_bytes(mcp.app.config.api.max_request_body_size)
        // At shutdown, sessions and their streams end instead of holding it up.
        .with_cancellation_token(mcp.app.stopping.child_token());
    config.session_store = Some(Arc::new(StoredSessions {
        store: mcp.app.store.clone(),
        bindings: mcp.hub.bindings.clone(),
        clock: mcp.hub.clock.clone(),
    }));
    // A live session holds rmcp's service and channels (~57 KB); one idle past the
    // keep-alive is parked and costs only its store row until its next request.
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(mcp.app.config.api.mcp_session_keep_alive);
    let factory = server.clone();
    let service =
        StreamableHttpService::new(move || Ok(factory.clone()), Arc::new(sessions), config);
    Endpoint {
        mcp,
        server,
        service: Arc::new(service),
    }
}

/// The MCP routes, with their own authentication (not the REST middleware).
pub fn router(endpoint: Endpoint) -> Router<AppState> {
    // Each endpoint also answers with a trailing slash: URLs get pasted either way.
    Router::new()
        .route("/v1/mcps/{user_id}/mcp", any(user_endpoint))
        .route("/v1/mcps/{user_id}/mcp/", any(user_endpoint))
        .route("/mcp", any(default_endpoint))
        .route("/mcp/", any(default_endpoint))
        .route("/mcp/{gateway}", any(gateway_endpoint))
        .route("/mcp/{gateway}/", any(gateway_endpoint))
        .with_state(endpoint)
}

/// Whom an MCP URL names: the user of `/v1/mcps/{user_id}/mcp`, the gateway of
/// `/mcp/{gateway}`, or neither (`/mcp`).
pub struct Target {
    pub path_user: Option<String>,
    pub gateway: Option<String>,
}

async fn user_endpoint(
    State(endpoint): State<Endpoint>,
    Path(user_id): Path<String>,
    req: Request,
) -> Response {
    let target = Target {
        path_user: Some(user_id),
        gateway: None,
    };
    handle(endpoint, target, req).await
}

async fn default_endpoint(State(endpoint): State<Endpoint>, req: Request) -> Response {
    let target = Target {
        path_user: None,
        gateway: None,
    };
    handle(endpoint, target, req).await
}

async fn gateway_endpoint(
    State(endpoint): State<Endpoint>,
    Path(gateway): Path<String>,
    req: Request,
) -> Response {
    let target = Target {
        path_user: None,
        gateway: Some(gateway),
    };
    handle(endpoint, target, req).await
}

/// Who a request acts for, through which gateway. Travels to the server in the
/// request's extensions.
#[derive(Clone)]
struct Ctx {
    /// The user every call of this request acts for (`Caller::acting_for`).
    user: String,
    /// Who sent it; the executor checks again that it may act for `user`.
    caller: Caller,
    gateway: Option<Arc<GatewayConfig>>,
    /// Set on an `initialize` only: the credential its session is counted under
    /// (`sessions::credential_of`).
    credential: Option<String>,
}

impl Ctx {
    fn slug(&self) -> Option<&str> {
        self.gateway.as_ref().map(|g| g.slug.as_str())
    }

    /// The tools this request may list and call.
    fn tools(&self) -> ToolView<'_> {
        ToolView::of(self.gateway.as_deref())
    }
}

/// Serves one MCP request of any era, for the user and gateway its URL names.
pub async fn handle(endpoint: Endpoint, target: Target, mut req: Request) -> Response {
    let mcp = &endpoint.mcp;
    let config = &mcp.app.config;
    let gateway = match &target.gateway {
        None => None,
        Some(slug) => match config.gateways.iter().find(|g| g.slug == *slug) {
            Some(g) => Some(Arc::new(g.clone())),
            None => return http_error(StatusCode::NOT_FOUND, "no such gateway"),
        },
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (user, caller) = match authenticate(mcp, req.headers(), peer, target.path_user).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut ctx = Ctx {
        user,
        caller,
        gateway,
        credential: None,
    };
    let session_id = header_str(req.headers(), &SESSION_HEADER).map(str::to_string);
    let session = match &session_id {
        Some(session_id) => match sessions::check_binding(mcp, &ctx, session_id).await {
            Ok(admitted) => Some(admitted),
            Err(Refused::NotFound) => return session_not_found(),
            Err(Refused::Unavailable) => {
                return http_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        },
        None => None,
    };
    let mut method_name = None;
    // Held until rmcp has stored the session an `initialize` starts.
    let mut _admission = None;
    if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        let limit = config.api.max_request_body_size;
        let mut bytes = match check_message(&parts.headers, body, limit).await {
            Ok((bytes, method)) => {
                method_name = method;
                bytes
            }
            Err(refusal) => return refusal,
        };
        if config.api.mcp_direct_tool_calls
            && method_name.as_deref() == Some("tools/call")
            && let Some(call) = direct::admit(
                &endpoint.server,
                &parts.headers,
                &bytes,
                session.as_ref(),
                mcp.hub.clock.now_ms(),
                config.api.mcp_session_keep_alive,
            )
        {
            let in_flight = &mcp.hub.direct_calls;
            // Boxed, as is rmcp's below: held inline, the whole call made this handler's
            // future several KB, copied at each layer it passed through (8.7k instructions
            // of `memcpy` per call in callgrind).
            return Box::pin(direct::serve(
                &endpoint.server,
                &ctx,
                call,
                in_flight,
                session_id.as_deref(),
            ))
            .await;
        }
        if let Some(session_id) = &session_id
            && method_name.as_deref() == Some("notifications/cancelled")
        {
            direct::note_cancellation(&mcp.hub.direct_calls, session_id, &bytes);
        }
        if session_id.is_none() && method_name.as_deref() == Some("initialize") {
            // Capped, and cut down to what a session keeps, before rmcp sees it.
            let caller = ctx.caller.clone();
            match sessions::start(mcp, &mut ctx, &caller, &bytes).await {
                Ok((admission, shrunk)) => {
                    _admission = Some(admission);
                    bytes = shrunk;
                }
                Err(refusal) => return refusal,
            }
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    if let Some(session_id) = &session_id {
        mcp.hub
            .bindings
            .saw_rmcp(session_id, mcp.hub.clock.now_ms());
    }
    req.extensions_mut().insert(ctx.clone());
    let deleting = req.method() == Method::DELETE;
    // Boxed for the same reason as the direct call above.
    let response = Box::pin(SERVING.scope(ctx, endpoint.service.handle(req))).await;
    if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        // The body is JSON-RPC (checked above), so rmcp refused the params of a method it
        // knows: that is -32602, not a media type.
        let method = method_name.as_deref().unwrap_or("the method");
        return rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_PARAMS,
            &format!("invalid params for {method}: they do not match its schema"),
        );
    }
    let mut response = response.map(Body::new);
    if deleting {
        protocol::session_ended(&mut response);
    }
    response
}

/// The body of a POST, if it is one JSON-RPC message: the errors the spec names for
/// anything else, before rmcp sees it (rmcp answers them all as a 415 in plain text).
/// Returns the bytes and the message's method, if it has one.
async fn check_message(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(Bytes, Option<String>), Response> {
    let json_type = header_str(headers, &header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_REQUEST,
            "Content-Type must be application/json",
        ));
    }
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err(rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_REQUEST,
            &format!("request body larger than {limit} bytes"),
        ));
    };
    if bytes.trim_ascii_start().starts_with(b"[") {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "batched JSON-RPC messages are not supported",
        ));
    }
    let envelope: Envelope<'_> = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return Err(rpc_error(
                StatusCode::BAD_REQUEST,
                PARSE_ERROR,
                &format!("parse error: {e}"),
            ));
        }
        Err(_) => {
            return Err(rpc_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "a JSON-RPC message is a JSON object",
            ));
        }
    };
    if envelope.jsonrpc.as_deref() != Some("2.0") {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "\"jsonrpc\" must be \"2.0\"",
        ));
    }
    let answer = envelope.id.is_some() && (envelope.result.is_some() || envelope.error.is_some());
    if envelope.method.is_none() && !answer {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "a JSON-RPC message needs a method, or an id with a result or an error",
        ));
    }
    let method = envelope.method.map(Cow::into_owned);
    if method.as_deref() == Some("initialize")
        && let Err(e) = serde_json::from_slice::<Handshake>(&bytes)
    {
        if let Some(removed) = protocol::removed_initialize(headers, &bytes) {
            return Err(removed);
        }
        // rmcp would take a handshake it can't read for some other request.
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            INVALID_PARAMS,
            &format!("invalid initialize params: {e}"),
        ));
    }
    Ok((bytes, method))
}

#[derive(serde::Deserialize)]
struct Handshake {
    #[allow(dead_code)] // Read only to be checked.
    params: rmcp::model::InitializeRequestParams,
}

/// Just enough of a JSON-RPC message to judge its shape, borrowing from the body.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    id: Option<IgnoredAny>,
    result: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
}

// --- Who may call -------------------------------------------------------------------

async fn authenticate(
    mcp: &Mcp,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    path_user: Option<String>,
) -> Result<(String, Caller), Response> {
    let authorization = header_str(headers, &header::AUTHORIZATION);
    let caller = match mcp.app.identity.authenticate(authorization, peer).await {
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
    // The path (already percent-decoded) wins over the header. Either is taken exactly as
    // given: "alice%20" or "alice " must not reach alice (`identity::user_id`).
    let named = match path_user {
        Some(user) => Some(user),
        None => match headers.get(&USER_HEADER) {
            None => None,
            Some(value) => match std::str::from_utf8(value.as_bytes()) {
                Ok(user) => Some(user.to_string()),
                Err(_) => {
                    return Err(http_error(
                        StatusCode::BAD_REQUEST,
                        "invalid user_id: the Arcade-User-Id header is not UTF-8",
                    ));
                }
            },
        },
    };
    if let Some(user) = &named
        && let Err(e) = user_id::check(user)
    {
        return Err(http_error(StatusCode::BAD_REQUEST, &e.to_string()));
    }
    // Every MCP request acts for one user, so it is settled here, by the rule the executor
    // applies to each call (`Caller::acting_for`), before sessions are looked at.
    let user = match caller.acting_for(named.as_deref()) {
        Ok(Some(user)) => user.to_string(),
        Ok(None) => {
            return Err(http_error(
                StatusCode::BAD_REQUEST,
                "name the user: /v1/mcps/{user_id}/mcp, or the Arcade-User-Id header",
            ));
        }
        Err(e) => return Err(http_error(StatusCode::FORBIDDEN, &e.to_string())),
    };
    tracing::Span::current().record("user_id", tracing::field::display(&user));
    Ok((user, caller))
}

fn unauthorized(message: &str) -> Response {
    let mut response = http_error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"switchboard\""),
    );
    response
}

// --- Responses ----------------------------------------------------------------------

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A transport-level refusal: an HTTP status with a JSON-RPC error body (id null).
fn http_error(status: StatusCode, message: &str) -> Response {
    rpc_error(status, INVALID_REQUEST, message)
}

fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn session_not_found() -> Response {
    http_error(StatusCode::NOT_FOUND, "session not found: initialize again")
}
