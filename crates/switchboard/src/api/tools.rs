//! `/v1/tools`, `/v1/tools/{name}`, `/v1/tools/execute`, `/v1/formatted_tools[/{name}]`,
//! `/v1/scheduled_tools[/{id}]` (`reference/arcade-api.md` §1 Endpoints).

use std::sync::Arc;

use axum::extract::{Extension, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use switchboard_wire::ToolCallLog;

use super::error::ApiError;
use super::extract::AppJson;
use super::pagination::Page;
use crate::catalog::{
    EngineToolOptions, RequirementsView, ToolEntry, ToolFormat, engine_tool_definition,
    formatted_tool,
};
use crate::exec::{Execution, ToolCall, ToolView};
use crate::identity::Caller;
use crate::state::AppState;

pub fn router(prefix: &str) -> Router<AppState> {
    let at = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&at("/tools"), get(list_tools))
        .route(&at("/tools/execute"), post(execute_routed))
        .route(&at("/tools/{name}"), get(get_tool))
        .route(&at("/formatted_tools"), get(list_formatted))
        .route(&at("/formatted_tools/{name}"), get(get_formatted))
        .route(&at("/scheduled_tools"), get(list_scheduled))
        .route(&at("/scheduled_tools/{id}"), get(get_scheduled))
}

/// GET /v1/scheduled_tools: this gateway runs every call when it is made (`run_at` is
/// refused), so nothing is ever scheduled: an empty page, the shape Arcade's SDKs read.
async fn list_scheduled(Query(q): Query<ToolsQuery>) -> Json<Value> {
    let page = Page::from_query(q.limit.as_deref(), q.offset.as_deref()).apply(Vec::<Value>::new());
    Json(json!(page))
}

/// GET /v1/scheduled_tools/{id}: never one to find.
async fn get_scheduled() -> ApiError {
    ApiError::not_found(
        "no such scheduled execution: this gateway runs every call when it is made (run_at is not supported)",
    )
}

#[derive(Debug, Deserialize, Default)]
pub struct ToolsQuery {
    limit: Option<String>,
    offset: Option<String>,
    toolkit: Option<String>,
    include_format: Option<String>,
    format: Option<String>,
    user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct NamePath {
    name: String,
}

fn parse_formats(raw: Option<&str>) -> Result<Vec<ToolFormat>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            ToolFormat::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown format '{}' (use arcade, openai or anthropic)",
                    s.trim()
                ))
            })
        })
        .collect()
}

pub(super) fn options_for(
    state: &AppState,
    formats: Vec<ToolFormat>,
    _user_id: Option<&str>,
) -> EngineToolOptions {
    EngineToolOptions {
        formats,
        requirements: RequirementsView {
            secrets_present: state.executor.secret_keys(),
            authorization_met: None,
        },
    }
}

/// An optional `user_id=` filter: absent or empty means none; anything else must be a valid
/// id, as everywhere else.
fn query_user(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    raw.filter(|u| !u.is_empty())
        .map(super::auth::checked_user)
        .transpose()
}

fn filtered(state: &AppState, toolkit: Option<&str>) -> Vec<Arc<ToolEntry>> {
    let catalog = state.workers.catalog().snapshot();
    catalog
        .sorted()
        .into_iter()
        .filter(|t| toolkit.is_none_or(|k| t.toolkit.eq_ignore_ascii_case(k.trim())))
        .collect()
}

/// GET /v1/tools
async fn list_tools(
    State(state): State<AppState>,
    Query(q): Query<ToolsQuery>,
) -> Result<Json<Value>, ApiError> {
    let options = options_for(
        &state,
        parse_formats(q.include_format.as_deref())?,
        query_user(q.user_id.as_deref())?,
    );
    let items: Vec<Value> = filtered(&state, q.toolkit.as_deref())
        .iter()
        .map(|t| engine_tool_definition(t, &options))
        .collect();
    let page = Page::from_query(q.limit.as_deref(), q.offset.as_deref()).apply(items);
    Ok(Json(json!(page)))
}

/// GET /v1/tools/{name}
async fn get_tool(
    State(state): State<AppState>,
    Path(path): Path<NamePath>,
    Query(q): Query<ToolsQuery>,
) -> Result<Json<Value>, ApiError> {
    let tool = state
        .workers
        .catalog()
        .snapshot()
        .resolve(&path.name, None)?;
    let options = options_for(
        &state,
        parse_formats(q.include_format.as_deref())?,
        query_user(q.user_id.as_deref())?,
    );
    Ok(Json(engine_tool_definition(&tool, &options)))
}

fn single_format(raw: Option<&str>) -> Result<ToolFormat, ApiError> {
    let formats = parse_formats(raw)?;
    Ok(formats.into_iter().next().unwrap_or(ToolFormat::OpenAi))
}

/// GET /v1/formatted_tools
async fn list_formatted(
    State(state): State<AppState>,
    Query(q): Query<ToolsQuery>,
) -> Result<Json<Value>, ApiError> {
    let format = single_format(q.format.as_deref())?;
    let items: Vec<Value> = filtered(&state, q.toolkit.as_deref())
        .iter()
        .map(|t| formatted_tool(t, format))
        .collect();
    let page = Page::from_query(q.limit.as_deref(), q.offset.as_deref()).apply(items);
    Ok(Json(json!(page)))
}

/// GET /v1/formatted_tools/{name}
async fn get_formatted(
    State(state): State<AppState>,
    Path(path): Path<NamePath>,
    Query(q): Query<ToolsQuery>,
) -> Result<Json<Value>, ApiError> {
    let format = single_format(q.format.as_deref())?;
    let tool = state
        .workers
        .catalog()
        .snapshot()
        .resolve(&path.name, None)?;
    Ok(Json(formatted_tool(&tool, format)))
}

#[derive(Debug, Deserialize)]
struct ExecuteRequest {
    tool_name: String,
    #[serde(default)]
    input: Option<Map<String, Value>>,
    #[serde(default)]
    tool_version: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    run_at: Option<String>,
    #[serde(default)]
    include_error_stacktrace: bool,
}

/// POST /v1/tools/execute as the router serves it: `extract::require_caller` has put the
/// caller in the request.
async fn execute_routed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    execute(state, caller, req).await
}

/// POST /v1/tools/execute once the caller is known and the body limit set: what the
/// router and the hot path (`service`) both run. Tool failures are 200 with
/// `success: false`; every reply says `x-should-retry: false`, because an SDK retry after
/// a slow or failed call could run the tool twice.
pub(super) async fn execute(state: AppState, caller: Caller, req: Request) -> Response {
    let body = match AppJson::<ExecuteRequest>::from_request(req, &state).await {
        Ok(AppJson(body)) => body,
        Err(refused) => return refused.into_response(),
    };
    // Boxed: inline, the call's future (worker request included) made every future
    // around it several KB, copied as each was built (11k instructions of `memcpy`).
    match Box::pin(execute_tool(&state, &caller, body)).await {
        Ok(res) => res,
        Err(refused) => refused.into_response(),
    }
}

/// The adapter: the wire request as a [`ToolCall`], the executor, the execution as
/// ExecuteToolResponse.
async fn execute_tool(
    state: &AppState,
    caller: &Caller,
    req: ExecuteRequest,
) -> Result<Response, ApiError> {
    if req.run_at.as_deref().is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(
            "scheduled execution (run_at) is not supported by this gateway",
        ));
    }
    if req.tool_name.trim().is_empty() {
        return Err(ApiError::bad_request("tool_name must not be empty"));
    }
    let call = ToolCall {
        tool_name: req.tool_name,
        tool_version: req.tool_version,
        input: req.input.unwrap_or_default(),
        // Absent: the call acts for no user (a tool that needs one says so). Given: exactly
        // that id, or a 400; an empty one is refused, not taken as absent.
        user_id: req
            .user_id
            .as_deref()
            .map(super::auth::checked_user)
            .transpose()?
            .map(str::to_owned),
    };
    let execution = state.executor.execute(caller, ToolView::All, &call).await?;
    let mut body = ExecutionResponse::new(&execution, req.include_error_stacktrace);
    // A grant is missing: 403 with "authorization required" in the message, which is
    // what arcadejs's isAuthorizationRequiredError looks for; the body is still the
    // ExecuteToolResponse, with `output.authorization` holding the flow and its URL.
    let status = if execution.authorization.is_some() {
        body.name = Some("authorization_required");
        body.message = Some(execution.output.error.as_ref().map(|e| e.message.as_str()));
        axum::http::StatusCode::FORBIDDEN
    } else {
        axum::http::StatusCode::OK
    };
    // Serialized straight from the borrowed struct: no `Value` tree per call.
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(
        HeaderName::from_static("x-should-retry"),
        HeaderValue::from_static("false"),
    );
    Ok(res)
}

/// ExecuteToolResponse, borrowing the execution. Fields in alphabetical order: the same
/// bytes as the `json!` tree this replaced (serde_json's maps are sorted).
#[derive(Serialize)]
struct ExecutionResponse<'a> {
    duration: f64,
    execution_id: &'a str,
    execution_type: &'static str,
    finished_at: String,
    id: &'a str,
    /// Only on the 403 of a missing grant (`Some(None)` is `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'static str>,
    output: OutputView<'a>,
    run_at: Option<()>,
    status: &'static str,
    success: bool,
}

#[derive(Serialize)]
struct OutputView<'a> {
    authorization: Option<Value>,
    error: Option<ErrorView<'a>>,
    logs: &'a [ToolCallLog],
    value: &'a Option<Value>,
}

/// `ToolCallError` with its fields sorted, and the stack trace only when asked for.
#[derive(Serialize)]
struct ErrorView<'a> {
    additional_prompt_content: &'a Option<String>,
    can_retry: bool,
    developer_message: &'a Option<String>,
    extra: &'a Option<Value>,
    kind: &'a Option<String>,
    message: &'a str,
    retry_after_ms: Option<u64>,
    stacktrace: Option<&'a str>,
    status_code: Option<u16>,
}

impl<'a> ExecutionResponse<'a> {
    fn new(execution: &'a Execution, include_stacktrace: bool) -> Self {
        let output = &execution.output;
        let error = output.error.as_ref().map(|e| ErrorView {
            additional_prompt_content: &e.additional_prompt_content,
            can_retry: e.can_retry,
            developer_message: &e.developer_message,
            extra: &e.extra,
            kind: &e.kind,
            message: &e.message,
            retry_after_ms: e.retry_after_ms,
            stacktrace: e.stacktrace.as_deref().filter(|_| include_stacktrace),
            status_code: e.status_code,
        });
        Self {
            duration: execution.duration_ms,
            execution_id: &execution.execution_id,
            execution_type: "immediate",
            finished_at: execution
                .finished_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            id: &execution.id,
            message: None,
            name: None,
            output: OutputView {
                authorization: execution.authorization.as_ref().map(|a| a.to_json()),
                error,
                logs: output.logs.as_deref().unwrap_or_default(),
                value: &output.value,
            },
            run_at: None,
            status: if execution.success {
                "success"
            } else {
                "failed"
            },
            success: execution.success,
        }
    }
}
