//! `/v1/workers`, `/v1/workers/{id}`, `/v1/workers/{id}/health`, `/v1/workers/{id}/tools`
//! (`reference/arcade-api.md` §1, WorkerResponse).

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::pagination::Page;
use super::tools::options_for;
use crate::catalog::{ToolSource, engine_tool_definition};
use crate::state::AppState;
use crate::workers::{UpstreamHandle, WorkerHandle};

pub fn router(prefix: &str) -> Router<AppState> {
    let at = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&at("/workers"), get(list_workers))
        .route(&at("/workers/{id}"), get(get_worker))
        .route(&at("/workers/{id}/health"), get(worker_health))
        .route(&at("/workers/{id}/tools"), get(worker_tools))
}

#[derive(Debug, Deserialize)]
pub struct IdPath {
    id: String,
}

#[derive(Debug, Deserialize, Default)]
pub struct PageQuery {
    limit: Option<String>,
    offset: Option<String>,
}

/// A worker of either type: an Arcade worker (`type: http`) or an upstream MCP server
/// (`type: mcp`).
enum Found<'a> {
    Http(&'a WorkerHandle),
    Mcp(&'a UpstreamHandle),
}

impl Found<'_> {
    fn response(&self) -> Value {
        match self {
            Found::Http(w) => worker_response(w),
            Found::Mcp(u) => upstream_response(u),
        }
    }

    fn health(&self) -> Value {
        let (id, enabled, healthy, message) = match self {
            Found::Http(w) => {
                let s = w.status();
                (&w.config.id, w.config.enabled, s.healthy, s.message)
            }
            Found::Mcp(u) => {
                let s = u.status();
                (&u.config.id, u.config.enabled, s.healthy, s.message)
            }
        };
        json!({"id": id, "enabled": enabled, "healthy": healthy, "message": message})
    }

    fn source(&self) -> ToolSource {
        match self {
            Found::Http(w) => ToolSource::Worker(w.config.id.as_str().into()),
            Found::Mcp(u) => ToolSource::Upstream(u.config.id.as_str().into()),
        }
    }
}

fn find<'a>(state: &'a AppState, id: &str) -> Result<Found<'a>, ApiError> {
    if let Some(w) = state.workers.get(id) {
        return Ok(Found::Http(w));
    }
    state
        .workers
        .upstream(id)
        .map(|u| Found::Mcp(u))
        .ok_or_else(|| ApiError::not_found(format!("worker '{id}' not found")))
}

/// WorkerResponse of an upstream MCP server. Header values are described, never shown.
fn upstream_response(u: &UpstreamHandle) -> Value {
    let status = u.status();
    let headers: serde_json::Map<String, Value> = u
        .config
        .headers
        .iter()
        .map(|(name, _)| {
            let described = json!({"binding": "static", "editable": false, "exists": true, "hint": "****", "value": Value::Null});
            (name.clone(), described)
        })
        .collect();
    json!({
        "id": u.config.id,
        "type": "mcp",
        "enabled": u.config.enabled,
        "managed": false,
        "binding": {"id": Value::Null, "type": "static"},
        "mcp": {
            "uri": u.config.uri,
            "timeout": u.config.timeout.as_secs(),
            "retry": u.config.retry,
            "headers": headers,
        },
        "requirements": {"met": true},
        "healthy": status.healthy,
        "status": if !u.config.enabled { "disabled" } else if status.healthy { "running" } else { "unreachable" },
        "message": status.message,
        "toolkits": [u.config.id],
    })
}

/// WorkerResponse. The secret is described, never shown.
fn worker_response(w: &WorkerHandle) -> Value {
    let status = w.status();
    json!({
        "id": w.config.id,
        "type": "http",
        "enabled": w.config.enabled,
        "managed": false,
        "binding": {"id": Value::Null, "type": "static"},
        "http": {
            "uri": w.config.uri,
            "timeout": w.config.timeout.as_secs(),
            "retry": w.config.retry,
            "secret": {"binding": "static", "editable": false, "exists": true, "hint": "****", "value": Value::Null},
        },
        "requirements": {"met": true},
        "healthy": status.healthy,
        "status": if !w.config.enabled { "disabled" } else if status.healthy { "running" } else { "unreachable" },
        "message": status.message,
        "toolkits": status.toolkits(),
    })
}

/// GET /v1/workers
async fn list_workers(State(state): State<AppState>, Query(q): Query<PageQuery>) -> Json<Value> {
    let items: Vec<Value> = state
        .workers
        .workers()
        .iter()
        .map(|w| worker_response(w))
        .chain(
            state
                .workers
                .upstreams()
                .iter()
                .map(|u| upstream_response(u)),
        )
        .collect();
    Json(json!(
        Page::from_query(q.limit.as_deref(), q.offset.as_deref()).apply(items)
    ))
}

/// GET /v1/workers/{id}
async fn get_worker(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(find(&state, &p.id)?.response()))
}

/// GET /v1/workers/{id}/health: the last check, as `{id, enabled, healthy, message}`.
async fn worker_health(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(find(&state, &p.id)?.health()))
}

/// GET /v1/workers/{id}/tools
async fn worker_tools(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let source = find(&state, &p.id)?.source();
    let options = options_for(&state, Vec::new(), None);
    let catalog = state.workers.catalog().snapshot();
    let mut tools: Vec<_> = catalog.from_source(&source).cloned().collect();
    tools.sort_by(|a, b| a.qualified_name.cmp(&b.qualified_name));
    let items: Vec<Value> = tools
        .iter()
        .map(|t| engine_tool_definition(t, &options))
        .collect();
    Ok(Json(json!(
        Page::from_query(q.limit.as_deref(), q.offset.as_deref()).apply(items)
    )))
}
