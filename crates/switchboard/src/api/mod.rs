//! The REST API, Arcade-compatible (`reference/arcade-api.md` §1), under `/v1/...` and
//! again under `/v1/orgs/{org}/projects/{project}/...` (Arcade's tools rewrite paths to
//! that form for non-`arc_` tokens).
//! Must not: run pipeline steps itself; handlers adapt HTTP to `exec/` and back.

mod admin;
mod auth;
mod error;
mod extract;
mod guard;
mod pagination;
mod policy;
mod service;
mod tools;
mod workers;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::json;

pub use error::{ApiError, ErrorBody};
pub use service::ApiService;

use crate::state::AppState;

/// Where the REST API answers: Arcade's plain paths, and the same under an org and project.
/// Each route is written out under both, rather than nested: a nested router strips its
/// prefix from every request (another router pass, a rebuilt URI and its allocations, ~3 %
/// of a tool call's instructions).
const API_PREFIXES: [&str; 2] = ["/v1", "/v1/orgs/{org}/projects/{project}"];

/// Routes that need a caller (API key, or dev-mode loopback).
fn protected(state: &AppState, prefix: &str) -> Router<AppState> {
    Router::new()
        .merge(tools::router(prefix))
        .merge(workers::router(prefix))
        .merge(auth::router(prefix))
        .merge(admin::router(prefix))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            extract::require_caller,
        ))
}

fn v1(state: &AppState, prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/health"), get(health))
        .merge(auth::browser_router(prefix))
        .merge(protected(state, prefix))
}

/// The gateway's HTTP service: every route, the hot ones served before the router
/// unless CORS is on (then the router's CORS layer answers for every route).
pub fn service(state: AppState) -> ApiService {
    let mcp = crate::mcp::endpoint(state.clone());
    let cors = cors_layer(&state.config.api.cors);
    let hot_routes = cors.is_none();
    let mut router = router(state.clone(), mcp.clone());
    if let Some(cors) = cors {
        router = router.layer(cors);
    }
    ApiService::new(router, state, mcp, hot_routes)
}

/// `http.cors`, for browser apps that call the API from other origins: preflights
/// answered, the allowed origins and methods granted (any request header), and the
/// headers a client reads exposed. `None` when no origin is allowed.
fn cors_layer(config: &crate::config::CorsConfig) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    if config.allowed_origins.is_empty() {
        return None;
    }
    // Checked when the config was loaded; anything unparsable is skipped here.
    let origins = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let methods: Vec<Method> = if config.allowed_methods.is_empty() {
        vec![Method::GET, Method::POST, Method::DELETE]
    } else {
        config
            .allowed_methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods(methods)
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers([
                HeaderName::from_static("mcp-session-id"),
                HeaderName::from_static("x-should-retry"),
                axum::http::header::WWW_AUTHENTICATE,
            ]),
    )
}

fn router(state: AppState, mcp: crate::mcp::Endpoint) -> Router {
    let mut api = Router::new();
    for prefix in API_PREFIXES {
        api = api.merge(v1(&state, prefix));
    }
    let api = api
        // MCP authenticates on its own (user tokens, WWW-Authenticate, dev loopback).
        .merge(crate::mcp::router(mcp))
        .fallback(not_found);
    policy::layered(api, &state.config.api).with_state(state)
}

/// GET /v1/health: no key needed (Arcade's CLI sends an empty one).
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"healthy": true}))),
        Err(e) => {
            tracing::error!(error = %e, "health check: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"healthy": false})),
            )
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}
