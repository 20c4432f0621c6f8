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
use crate::workers::WorkerHandle;

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

fn find<'a>(state: &'a AppState, id: &str) -> Result<&'a std::sync::Arc<WorkerHandle>, ApiError> {
    state
        .workers
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("worker '{id}' not found")))
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
    Ok(Json(worker_response(find(&state, &p.id)?)))
}

/// GET /v1/workers/{id}/health: the last check, as `{id, enabled, healthy, message}`.
async fn worker_health(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
) -> Result<Json<Value>, ApiError> {
    let w = find(&state, &p.id)?;
    let status = w.status();
    Ok(Json(json!({
        "id": w.config.id,
        "enabled": w.config.enabled,
        "healthy": status.healthy,
        "message": status.message,
    })))
}

/// GET /v1/workers/{id}/tools
async fn worker_tools(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let w = find(&state, &p.id)?;
    let source = ToolSource::Worker(w.config.id.as_str().into());
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
