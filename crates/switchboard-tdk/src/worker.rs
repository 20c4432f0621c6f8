//! Serving toolkits over Arcade's worker protocol (`reference/arcade-api.md` §2):
//! `GET /worker/health`, `GET /worker/tools`, `POST /worker/tools/invoke`, the last two
//! behind the engine's HS256 JWT.
//!
//! Everything a request can be answered from is computed when the worker is built: the
//! health and tool-list bodies are bytes, tool lookup is one hash probe.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt;
use serde_json::{Map, Value, json};
use switchboard_wire::{
    HealthResponse, InputParameter, ToolCallError, ToolCallOutput, ToolCallRequest,
    ToolCallResponse, jwt, validate_input,
};

use crate::toolkit::ErasedHandler;
use crate::{ToolContext, ToolError, Toolkit};

/// A worker: toolkits plus the secret the engine signs its tokens with.
///
/// ```no_run
/// # use switchboard_tdk::{Toolkit, Worker};
/// # async fn run(toolkit: Toolkit) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8002").await?;
/// Worker::new("s3cret")
///     .toolkit(toolkit)
///     .serve(listener, async { let _ = tokio::signal::ctrl_c().await; })
///     .await
/// # }
/// ```
#[derive(Clone)]
pub struct Worker {
    toolkits: Vec<Toolkit>,
    /// Rebuilt on each `toolkit()`; shared read-only by every request afterwards.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.toolkits.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Worker")
            .field("toolkits", &names)
            .finish_non_exhaustive()
    }
}

/// Why the worker would not run a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("unknown tool '{0}'")]
    UnknownTool(String),
    #[error("tool '{name}' has no version '{version}'")]
    VersionMismatch { name: String, version: String },
}

impl Worker {
    /// A worker that accepts tokens signed with `secret` (as `ARCADE_WORKER_SECRET`).
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        let shared = Arc::new(Shared::build(secret, &[]));
        Worker {
            toolkits: Vec::new(),
            shared,
        }
    }

    /// Adds a toolkit; one with the same name and version replaces it.
    pub fn toolkit(mut self, toolkit: Toolkit) -> Self {
        self.toolkits.retain(|t| {
            !(t.name.eq_ignore_ascii_case(&toolkit.name) && t.version == toolkit.version)
        });
        self.toolkits.push(toolkit);
        self.shared = Arc::new(Shared::build(self.shared.secret.clone(), &self.toolkits));
        self
    }

    /// The worker's routes, for serving or embedding (`/worker/...`).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/worker/health", get(health))
            .route("/worker/tools", get(list_tools))
            .route("/worker/tools/invoke", post(invoke))
            .with_state(self.shared.clone())
    }

    /// Serves the worker until `shutdown` completes, then lets in-flight calls finish.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use axum::serve::ListenerExt as _;
        // Answers go out at once, not after the gateway's delayed ACK (Nagle).
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Runs one call in-process, as `POST /worker/tools/invoke` would (no JWT check).
    pub async fn invoke(&self, request: ToolCallRequest) -> Result<ToolCallResponse, InvokeError> {
        self.shared.invoke(request).await
    }

    /// How many tools the worker serves.
    pub fn tool_count(&self) -> usize {
        self.shared.tool_count
    }
}

/// One tool, as the invoke path needs it.
struct Registered {
    fqn: String,
    version: String,
    requires_token: bool,
    secrets: Vec<String>,
    parameters: Vec<InputParameter>,
    handler: Arc<ErasedHandler>,
}

struct Shared {
    secret: String,
    tool_count: usize,
    health_body: Bytes,
    tools_body: Bytes,
    /// Keyed by the lowercased `toolkit.tool`; one entry per toolkit version.
    tools: HashMap<String, Vec<Registered>>,
}

impl Shared {
    fn build(secret: String, toolkits: &[Toolkit]) -> Shared {
        let mut tools: HashMap<String, Vec<Registered>> = HashMap::new();
        let mut definitions = Vec::new();
        for toolkit in toolkits {
            for tool in &toolkit.tools {
                let definition = tool.definition(toolkit);
                tools
                    .entry(definition.fully_qualified_name.to_lowercase())
                    .or_default()
                    .push(Registered {
                        fqn: definition.fully_qualified_name.clone(),
                        version: toolkit.version.clone(),
                        requires_token: tool.auth.is_some(),
                        secrets: tool.secrets.clone(),
                        parameters: tool.parameters.clone(),
                        handler: tool.handler.clone(),
                    });
                definitions.push(definition);
            }
        }
        let health = HealthResponse {
            status: "ok".into(),
            tool_count: Some(definitions.len().to_string()),
        };
        Shared {
            secret,
            tool_count: definitions.len(),
            health_body: to_bytes(&health),
            tools_body: to_bytes(&definitions),
            tools,
        }
    }

    fn find(
        &self,
        toolkit: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<&Registered, InvokeError> {
        let key = format!("{toolkit}.{name}").to_lowercase();
        let candidates = self
            .tools
            .get(&key)
            .ok_or_else(|| InvokeError::UnknownTool(format!("{toolkit}.{name}")))?;
        match version.filter(|v| !v.is_empty()) {
            None => candidates.first().ok_or(InvokeError::UnknownTool(key)),
            Some(v) => candidates.iter().find(|t| t.version == v).ok_or_else(|| {
                InvokeError::VersionMismatch {
                    name: format!("{toolkit}.{name}"),
                    version: v.to_owned(),
                }
            }),
        }
    }

    async fn invoke(&self, request: ToolCallRequest) -> Result<ToolCallResponse, InvokeError> {
        let started = Instant::now();
        let ToolCallRequest {
            execution_id,
            tool,
            inputs,
            context,
            ..
        } = request;
        let registered = self.find(&tool.toolkit, &tool.name, tool.version.as_deref())?;
        let ctx = ToolContext::new(registered.fqn.clone(), execution_id.clone(), context);

        let result = match preflight(registered, &ctx, &inputs) {
            Ok(()) => run(registered, ctx, inputs)
                .await
                .map_err(ToolError::into_wire),
            Err(e) => Err(*e),
        };
        let duration = started.elapsed().as_secs_f64() * 1000.0;
        let output = match result {
            Ok(value) => ToolCallOutput {
                value: Some(value),
                ..ToolCallOutput::default()
            },
            Err(e) => {
                let kind = e.kind.as_deref().unwrap_or_default();
                tracing::debug!(tool = %registered.fqn, kind, "tool call failed");
                ToolCallOutput {
                    error: Some(e),
                    ..ToolCallOutput::default()
                }
            }
        };
        Ok(ToolCallResponse {
            execution_id: Some(execution_id.unwrap_or_default()),
            // arcade-serve sends naive local time; clients expect no zone suffix.
            finished_at: Some(
                chrono::Local::now()
                    .naive_local()
                    .format("%Y-%m-%dT%H:%M:%S%.6f")
                    .to_string(),
            ),
            duration: Some(duration),
            success: output.error.is_none(),
            output,
        })
    }
}

/// Runs the handler; a panic becomes `TOOL_RUNTIME_FATAL` instead of a dropped connection.
async fn run(
    tool: &Registered,
    ctx: ToolContext,
    inputs: Map<String, Value>,
) -> Result<Value, ToolError> {
    let panicked = || {
        // The panic's text may quote anything the tool held, so it stays in the tool's log.
        tracing::error!(tool = %tool.fqn, "tool handler panicked");
        ToolError::fatal(format!("Tool '{}' failed unexpectedly", tool.fqn))
    };
    let handler = tool.handler.clone();
    let fut = match std::panic::catch_unwind(AssertUnwindSafe(move || handler(ctx, inputs))) {
        Ok(fut) => fut,
        Err(_) => return Err(panicked()),
    };
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(_) => Err(panicked()),
    }
}

/// What the worker checks before the handler runs: the declared token and secrets are
/// there, and the input fits the declared parameters, by the same rules and with the same
/// message as the gateway (`switchboard_wire::input`). Deserialization into the input
/// type checks the rest.
fn preflight(
    tool: &Registered,
    ctx: &ToolContext,
    inputs: &Map<String, Value>,
) -> Result<(), Box<ToolCallError>> {
    let wire = |e: ToolError| Box::new(e.into_wire());
    if tool.requires_token {
        ctx.require_token().map_err(wire)?;
    }
    for key in &tool.secrets {
        ctx.secret(key).map_err(wire)?;
    }
    validate_input(&tool.parameters, inputs).map_err(|e| Box::new(e.tool_call_error(&tool.fqn)))
}

fn to_bytes<T: serde::Serialize>(value: &T) -> Bytes {
    // Serializing our own wire structs (strings, bools, JSON values) cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

fn json_bytes(body: Bytes) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// `GET /worker/health` (no auth): `{"status":"ok","tool_count":"N"}`.
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    json_bytes(shared.health_body.clone())
}

/// `GET /worker/tools`: every tool definition, serialized once at build time.
async fn list_tools(_: EngineToken, State(shared): State<Arc<Shared>>) -> Response {
    json_bytes(shared.tools_body.clone())
}

/// `POST /worker/tools/invoke`: a tool failure is HTTP 200 with `success: false`; an
/// unknown tool or version is a plain-text 500, as arcade-serve answers.
async fn invoke(_: EngineToken, State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: ToolCallRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let body = json!({"code": -32602, "message": format!("Invalid params: {e}")});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    };
    match shared.invoke(request).await {
        Ok(response) => axum::Json(response).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "invoke refused");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
    }
}

/// Proof that the request carries a valid engine token (`Authorization: Bearer <JWT>`).
struct EngineToken;

enum AuthRejection {
    Missing,
    Invalid(jwt::JwtError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let detail = match self {
            AuthRejection::Missing => "Not authenticated".to_owned(),
            AuthRejection::Invalid(e) => format!("Invalid token. Error: {e}"),
        };
        (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            axum::Json(json!({ "detail": detail })),
        )
            .into_response()
    }
}

impl FromRequestParts<Arc<Shared>> for EngineToken {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .ok_or(AuthRejection::Missing)?;
        // FastAPI's HTTPBearer: "<scheme> <credentials>", scheme in any case.
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(AuthRejection::Missing)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthRejection::Missing);
        }
        jwt::verify(&shared.secret, token).map_err(AuthRejection::Invalid)?;
        Ok(EngineToken)
    }
}
