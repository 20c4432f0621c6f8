//! REST errors: every failure leaves as `{name, message}` (Arcade's error body) with the
//! status arcadepy/arcadejs map to their exception types. `exec/` and `identity/` know
//! no HTTP; their errors meet HTTP here, once.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::catalog::ResolveError;
use crate::exec::ExecError;
use crate::identity::IdentityError;
use crate::oauth::AuthError;

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub name: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// A 5xx: the cause is logged here, the caller learns nothing about internals.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

fn error_name(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal_error",
        _ => "error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            name: error_name(self.status).to_string(),
            message: self.message,
        };
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<ExecError> for ApiError {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Resolve(
                r @ (ResolveError::UnknownTool(_) | ResolveError::UnknownVersion { .. }),
            ) => ApiError::not_found(r.to_string()),
            ExecError::NotTheUser(e) => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            ExecError::BadRequest(m) => ApiError::bad_request(m),
            ExecError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        ApiError::from(ExecError::from(e))
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Missing | IdentityError::Invalid => {
                ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
            }
            IdentityError::Store(cause) => ApiError::internal(cause),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::UnknownFlow(_) => ApiError::not_found(e.to_string()),
            AuthError::UnknownProvider(_) | AuthError::BadRequest(_) => {
                ApiError::bad_request(e.to_string())
            }
            AuthError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            AuthError::NeedsAuthorization(_) => ApiError::new(StatusCode::FORBIDDEN, e.to_string()),
            AuthError::ProviderUnavailable(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
            AuthError::Config(_) | AuthError::Store(_) | AuthError::Vault(_) => {
                ApiError::internal(e)
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Conflict(what) => {
                ApiError::new(StatusCode::CONFLICT, format!("{what} already exists"))
            }
            other => ApiError::internal(other),
        }
    }
}
