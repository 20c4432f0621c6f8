//! `/v1/auth/authorize`, `/v1/tools/authorize`, `/v1/auth/status`, `/v1/auth/confirm_user`
//! (`reference/arcade-api.md` §1), and the browser-facing `/v1/oauth/link/{token}` and
//! `/v1/oauth/callback`, which need no API key.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::AppJson;
use crate::identity::user_id;
use crate::oauth::{CallbackOutcome, CallbackParams, FlowStatus, Requirement, pages};
use crate::state::AppState;

/// Routes that need a caller.
pub fn router(prefix: &str) -> Router<AppState> {
    let at = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&at("/auth/authorize"), post(authorize))
        .route(&at("/auth/status"), get(status))
        .route(&at("/auth/confirm_user"), post(confirm_user))
        .route(&at("/tools/authorize"), post(authorize_tool))
}

/// Routes a browser follows: no API key; the link token and `state` are the credentials.
pub fn browser_router(prefix: &str) -> Router<AppState> {
    let at = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&at("/oauth/link/{token}"), get(follow_link))
        .route(&at("/oauth/callback"), get(callback))
}

#[derive(Debug, Deserialize)]
pub struct AuthRequirementBody {
    #[serde(default)]
    provider_id: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    provider_type: Option<String>,
    #[serde(default)]
    oauth2: Option<OAuth2Body>,
}

#[derive(Debug, Deserialize)]
pub struct OAuth2Body {
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct AuthorizeBody {
    auth_requirement: AuthRequirementBody,
    user_id: String,
    #[serde(default)]
    next_uri: Option<String>,
}

/// A user id as given, or a 400: never trimmed, so "alice " can't reach alice's grants
/// (`identity::user_id`). Every REST route that takes a user id goes through here.
pub(super) fn checked_user(user_id: &str) -> Result<&str, ApiError> {
    user_id::check(user_id).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn checked_next_uri(next_uri: Option<&str>) -> Result<Option<&str>, ApiError> {
    match next_uri.filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(n) if n.starts_with("https://") || n.starts_with("http://") => Ok(Some(n)),
        Some(_) => Err(ApiError::bad_request(
            "next_uri must be an absolute http(s) URL",
        )),
    }
}

/// POST /v1/auth/authorize
async fn authorize(
    State(state): State<AppState>,
    AppJson(body): AppJson<AuthorizeBody>,
) -> Result<Json<Value>, ApiError> {
    let req = body.auth_requirement;
    if req
        .provider_type
        .as_deref()
        .is_some_and(|t| !t.is_empty() && t != "oauth2")
    {
        return Err(ApiError::bad_request(
            "auth_requirement.provider_type must be oauth2",
        ));
    }
    if req.provider_id.as_deref().unwrap_or("").is_empty()
        && req.id.as_deref().unwrap_or("").is_empty()
    {
        return Err(ApiError::bad_request(
            "auth_requirement needs provider_id or id",
        ));
    }
    let user_id = checked_user(&body.user_id)?;
    let requirement = Requirement {
        id: req.id,
        provider_id: req.provider_id,
        scopes: req.oauth2.map(|o| o.scopes).unwrap_or_default(),
    };
    let auth = state
        .oauth
        .authorize(
            user_id,
            &requirement,
            checked_next_uri(body.next_uri.as_deref())?,
        )
        .await?;
    Ok(Json(auth.to_json()))
}

#[derive(Debug, Deserialize)]
pub struct ToolAuthorizeBody {
    tool_name: String,
    #[serde(default)]
    tool_version: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    next_uri: Option<String>,
}

/// POST /v1/tools/authorize: the tool's own requirement; `completed` when it needs none.
async fn authorize_tool(
    State(state): State<AppState>,
    AppJson(body): AppJson<ToolAuthorizeBody>,
) -> Result<Json<Value>, ApiError> {
    let tool = state
        .workers
        .catalog()
        .snapshot()
        .resolve(&body.tool_name, body.tool_version.as_deref())?;
    let user_id = checked_user(body.user_id.as_deref().unwrap_or(""))?;
    let Some(wire) = &tool.definition.requirements.authorization else {
        return Ok(Json(
            json!({"status": FlowStatus::Completed.as_str(), "user_id": user_id, "scopes": []}),
        ));
    };
    let requirement = Requirement::from_wire(wire);
    let auth = state
        .oauth
        .authorize(
            user_id,
            &requirement,
            checked_next_uri(body.next_uri.as_deref())?,
        )
        .await?;
    Ok(Json(auth.to_json()))
}

#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    id: Option<String>,
    wait: Option<String>,
}

/// GET /v1/auth/status?id=&wait=: `wait` in seconds, at most 59; the token itself is never
/// part of a status reply.
async fn status(
    State(state): State<AppState>,
    Query(q): Query<StatusQuery>,
) -> Result<Json<Value>, ApiError> {
    let id =
        q.id.filter(|i| !i.is_empty())
            .ok_or_else(|| ApiError::bad_request("id is required"))?;
    let wait = match q.wait.as_deref().filter(|w| !w.is_empty()) {
        None => Duration::ZERO,
        Some(w) => w
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(59.0)))
            .ok_or_else(|| {
                ApiError::bad_request("wait must be a number of seconds (at most 59)")
            })?,
    };
    let auth = state.oauth.status(&id, wait).await?;
    Ok(Json(auth.to_json()))
}

#[derive(Debug, Deserialize)]
pub struct ConfirmBody {
    flow_id: String,
    user_id: String,
}

/// POST /v1/auth/confirm_user: only the flow's own user makes the grant usable.
async fn confirm_user(
    State(state): State<AppState>,
    AppJson(body): AppJson<ConfirmBody>,
) -> Result<Json<Value>, ApiError> {
    let user_id = checked_user(&body.user_id)?;
    let (auth_id, next_uri) = state
        .oauth
        .confirm_user(body.flow_id.trim(), user_id)
        .await?;
    Ok(Json(json!({"auth_id": auth_id, "next_uri": next_uri})))
}

/// GET /v1/oauth/link/{token}: the short link users are given.
async fn follow_link(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.oauth.follow_link(&token).await {
        Ok(url) => no_store(Redirect::to(&url).into_response()),
        Err(outcome) => outcome_response(outcome),
    }
}

/// GET /v1/oauth/callback: one redirect URI for every provider.
async fn callback(State(state): State<AppState>, Query(params): Query<CallbackParams>) -> Response {
    outcome_response(state.oauth.callback(params).await)
}

fn outcome_response(outcome: CallbackOutcome) -> Response {
    match outcome {
        CallbackOutcome::Redirect(url) => no_store(Redirect::to(&url).into_response()),
        CallbackOutcome::Page {
            status,
            title,
            message,
        } => pages::render(status, &title, &message),
    }
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}
