//! Extractors and middleware: JSON bodies that fail with our error shape, and the
//! API-key check that puts the [`Caller`] into request extensions.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::identity::Caller;
use crate::state::AppState;

/// `Json<T>` whose rejections (malformed JSON, wrong content type, too large) are
/// `{name, message}` errors naming the problem.
///
/// A body sent as `application/json` is read with plain `serde_json`; axum's own parse,
/// which tracks the path of every field (~4 % of a tool call's instructions), runs only
/// to word the error when that fails, so the messages are axum's either way.
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !plain_json(req.headers()) {
            // Other JSON media types and every refusal: axum decides.
            return match axum::Json::<T>::from_request(req, state).await {
                Ok(axum::Json(v)) => Ok(AppJson(v)),
                Err(rejection) => Err(refused(rejection)),
            };
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| refused(JsonRejection::BytesRejection(r)))?;
        if let Ok(value) = serde_json::from_slice(&bytes) {
            return Ok(AppJson(value));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(AppJson(v)),
            Err(rejection) => Err(refused(rejection)),
        }
    }
}

/// `Content-Type: application/json`, with or without parameters.
fn plain_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn refused(rejection: JsonRejection) -> ApiError {
    let message = match &rejection {
        JsonRejection::JsonSyntaxError(e) => {
            format!("malformed JSON body: {}", inner_cause(e))
        }
        JsonRejection::JsonDataError(e) => {
            format!("invalid request body: {}", inner_cause(e))
        }
        JsonRejection::MissingJsonContentType(_) => {
            "expected a request with `Content-Type: application/json`".to_string()
        }
        other => other.body_text(),
    };
    ApiError::new(rejection.status(), message)
}

fn inner_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    cause
}

/// Requires an API key (or dev-mode loopback) on every route it wraps.
pub async fn require_caller(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = rest_caller(&state, req.headers(), peer(&req)).await?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// Who sends a REST request: an API key, or dev-mode loopback. User tokens act for one
/// user and belong to the MCP endpoints; here they are refused with a 403.
pub(super) async fn rest_caller(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Caller, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller: Caller = state.identity.authenticate(authorization, peer).await?;
    if let Caller::UserToken { .. } = caller {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "user tokens are for MCP endpoints; use an API key",
        ));
    }
    if let Caller::ApiKey { name, .. } = &caller {
        tracing::Span::current().record("caller", tracing::field::display(name));
    }
    Ok(caller)
}

/// The client's address, where the listener recorded it.
pub(super) fn peer(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}
