//! `/v1/admin/user_connections`, `/v1/admin/auth_providers`, `/v1/admin/users/{id}`
//! (`reference/arcade-api.md` §1), and `/v1/admin/users/{id}/tokens` (Switchboard's own:
//! user tokens for MCP clients). Admin routes need an API key.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::checked_user;
use super::error::ApiError;
use super::extract::AppJson;
use super::pagination::Page;
use crate::config::parse_duration;
use crate::identity::{UserTokenError, mint_user_token};
use crate::state::AppState;
use crate::store::{ConnectionFilter, ConnectionRecord};

pub fn router(prefix: &str) -> Router<AppState> {
    let at = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&at("/admin/user_connections"), get(list_connections))
        .route(
            &at("/admin/user_connections/{id}"),
            delete(delete_connection),
        )
        .route(
            &at("/admin/auth_providers"),
            get(list_providers).post(create_provider),
        )
        .route(
            &at("/admin/auth_providers/{id}"),
            get(get_provider)
                .patch(update_provider)
                .put(update_provider)
                .delete(delete_provider),
        )
        .route(&at("/admin/users/{id}"), delete(delete_user))
        .route(&at("/admin/users/{id}/tokens"), post(create_user_token))
}

#[derive(Debug, Deserialize)]
pub struct IdPath {
    id: String,
}

#[derive(Debug, Deserialize, Default)]
pub struct ConnectionsQuery {
    limit: Option<String>,
    offset: Option<String>,
    #[serde(rename = "provider[id]")]
    provider_id: Option<String>,
    #[serde(rename = "user[id]")]
    user_id: Option<String>,
    /// Plain `user_id=` too, for people typing URLs.
    #[serde(rename = "user_id")]
    plain_user_id: Option<String>,
}

fn connection_view(state: &AppState, c: &ConnectionRecord) -> Value {
    let provider = state.oauth.providers().by_id(&c.provider_id);
    json!({
        "id": c.id,
        "connection_id": c.id,
        "connection_status": if c.status == "active" { "active" } else { "needs_reauthorization" },
        "provider_id": c.provider_id,
        "provider_type": "oauth2",
        "provider_description": provider.and_then(|p| p.description.clone()),
        "provider_user_info": c.user_info.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()).unwrap_or_else(|| json!({})),
        "scopes": c.scopes,
        "user_id": c.user_id,
        "expires_at": c.expires_at_ms.and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.to_rfc3339()),
        "updated_at": chrono::DateTime::from_timestamp_millis(c.updated_at_ms).map(|t| t.to_rfc3339()),
    })
}

/// GET /v1/admin/user_connections
async fn list_connections(
    State(state): State<AppState>,
    Query(q): Query<ConnectionsQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = Page::from_query(q.limit.as_deref(), q.offset.as_deref());
    let user_id = q.user_id.or(q.plain_user_id).filter(|s| !s.is_empty());
    if let Some(user_id) = &user_id {
        checked_user(user_id)?;
    }
    let filter = ConnectionFilter {
        user_id,
        provider_id: q.provider_id.filter(|s| !s.is_empty()),
        limit: page.limit as u32,
        offset: page.offset as u32,
    };
    let (rows, total) = state.oauth.list_connections(&filter).await?;
    let items: Vec<Value> = rows.iter().map(|c| connection_view(&state, c)).collect();
    let total = total as usize;
    Ok(Json(json!({
        "items": items,
        "total_count": total,
        "offset": page.offset,
        "limit": page.limit,
        "page_count": total.div_ceil(page.limit),
    })))
}

/// DELETE /v1/admin/user_connections/{id}: revokes at the provider where it can.
async fn delete_connection(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    match state.oauth.revoke_connection(&p.id).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::not_found(format!(
            "connection '{}' not found",
            p.id
        ))),
    }
}

/// GET /v1/admin/auth_providers (a list envelope, not paginated).
async fn list_providers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let items = state.oauth.provider_views().await?;
    Ok(Json(json!({"items": items, "total_count": items.len()})))
}

async fn get_provider(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
) -> Result<Json<Value>, ApiError> {
    state
        .oauth
        .provider_view(&p.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("auth provider '{}' not found", p.id)))
}

/// POST /v1/admin/auth_providers
async fn create_provider(
    State(state): State<AppState>,
    AppJson(body): AppJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let view = state.oauth.put_provider(&id, body, true).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// PATCH (and PUT) /v1/admin/auth_providers/{id}: fields given replace stored ones.
async fn update_provider(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
    AppJson(body): AppJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let auth = state.oauth;
    let Some(existing) = auth.store().get_stored_provider(&p.id).await? else {
        return Err(ApiError::not_found(format!(
            "auth provider '{}' not found among providers added over the API",
            p.id
        )));
    };
    let mut merged: Value =
        serde_json::from_str(&existing.config_json).unwrap_or_else(|_| json!({}));
    if let (Some(m), Some(patch)) = (merged.as_object_mut(), body.as_object()) {
        for (k, v) in patch {
            m.insert(k.clone(), v.clone());
        }
    }
    Ok(Json(auth.put_provider(&p.id, merged, false).await?))
}

async fn delete_provider(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    if state.oauth.delete_provider(&p.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "auth provider '{}' not found",
            p.id
        )))
    }
}

/// DELETE /v1/admin/users/{id}: destroys the user's data key and connections.
async fn delete_user(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    if state.oauth.delete_user(checked_user(&p.id)?).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "user '{}' has no data here",
            p.id
        )))
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct CreateUserTokenBody {
    /// How long the token lives (`30d`, `12h`, seconds); absent: until revoked.
    ttl: Option<String>,
}

/// POST /v1/admin/users/{id}/tokens: a user token bound to this user, for MCP clients. The
/// token is in this response only. The body is optional.
async fn create_user_token(
    State(state): State<AppState>,
    Path(p): Path<IdPath>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user_id = checked_user(&p.id)?;
    // An empty body (curl -X POST) means the defaults.
    let body: CreateUserTokenBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateUserTokenBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?
    };
    let ttl = body
        .ttl
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .map(parse_duration)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("ttl: {e}")))?;
    // The gateway's clock, which the token's expiry is later checked against.
    let now = state.clock.now_ms();
    let token = match mint_user_token(&state.store, user_id, ttl, now).await {
        Ok(token) => token,
        Err(e @ (UserTokenError::InvalidUser(_) | UserTokenError::TtlTooLong)) => {
            return Err(ApiError::bad_request(e.to_string()));
        }
        Err(UserTokenError::Store(e)) => return Err(ApiError::internal(e)),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": token.record.id,
            "token": token.plaintext,
            "user_id": token.record.user_id,
            "expires_at": token
                .record
                .expires_at_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339()),
        })),
    ))
}
