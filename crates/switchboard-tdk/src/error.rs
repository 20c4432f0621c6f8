//! Tool errors: what a handler returns when it fails, with the Arcade error kind the
//! gateway and the model see (`reference/arcade-api.md` §5).

use serde_json::Value;
use switchboard_wire::{ToolCallError, error_kind};

/// The Arcade error kinds a tool run can end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input does not fit the tool's parameters.
    BadInputValue,
    /// The tool produced a value it could not serialize.
    BadOutputValue,
    /// A transient failure: the caller may retry, perhaps after `retry_after_ms`.
    Retry,
    /// The tool failed and retrying will not help.
    Fatal,
    /// The call lacks something the tool needs: a token, a secret, metadata.
    ContextRequired,
    /// The upstream API refused the credentials (HTTP 401/403).
    UpstreamAuth,
    /// The upstream API rejected the request (other HTTP 4xx).
    UpstreamBadRequest,
    /// The upstream API has no such resource (HTTP 404).
    UpstreamNotFound,
    /// The upstream API is rate limiting (HTTP 429).
    UpstreamRateLimit,
    /// The upstream API failed (HTTP 5xx).
    UpstreamServerError,
    /// The upstream API answered with a status that maps to nothing above.
    UpstreamUnmapped,
    /// The upstream API did not answer in time.
    NetworkTimeout,
    /// The upstream API could not be reached.
    NetworkUnreachable,
}

impl ErrorKind {
    /// The kind's name on the wire, e.g. `TOOL_RUNTIME_RETRY`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadInputValue => error_kind::TOOL_RUNTIME_BAD_INPUT_VALUE,
            ErrorKind::BadOutputValue => error_kind::TOOL_RUNTIME_BAD_OUTPUT_VALUE,
            ErrorKind::Retry => error_kind::TOOL_RUNTIME_RETRY,
            ErrorKind::Fatal => error_kind::TOOL_RUNTIME_FATAL,
            ErrorKind::ContextRequired => error_kind::TOOL_RUNTIME_CONTEXT_REQUIRED,
            ErrorKind::UpstreamAuth => error_kind::UPSTREAM_RUNTIME_AUTH_ERROR,
            ErrorKind::UpstreamBadRequest => error_kind::UPSTREAM_RUNTIME_BAD_REQUEST,
            ErrorKind::UpstreamNotFound => error_kind::UPSTREAM_RUNTIME_NOT_FOUND,
            ErrorKind::UpstreamRateLimit => error_kind::UPSTREAM_RUNTIME_RATE_LIMIT,
            ErrorKind::UpstreamServerError => error_kind::UPSTREAM_RUNTIME_SERVER_ERROR,
            ErrorKind::UpstreamUnmapped => error_kind::UPSTREAM_RUNTIME_UNMAPPED,
            ErrorKind::NetworkTimeout => error_kind::NETWORK_TRANSPORT_RUNTIME_TIMEOUT,
            ErrorKind::NetworkUnreachable => error_kind::NETWORK_TRANSPORT_RUNTIME_UNREACHABLE,
        }
    }

    /// The upstream kind for an HTTP status, as arcade_core's `UpstreamError` maps it.
    pub fn from_upstream_status(status: u16) -> ErrorKind {
        match status {
            401 | 403 => ErrorKind::UpstreamAuth,
            404 => ErrorKind::UpstreamNotFound,
            429 => ErrorKind::UpstreamRateLimit,
            400..=499 => ErrorKind::UpstreamBadRequest,
            500..=599 => ErrorKind::UpstreamServerError,
            _ => ErrorKind::UpstreamUnmapped,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a tool run failed. The `message` goes to the caller (and often to a model), so it
/// must never hold a token or a secret value.
///
/// ```
/// # use switchboard_tdk::ToolError;
/// let e = ToolError::retry("the index is rebuilding").retry_after_ms(500);
/// let e = ToolError::upstream(404, "no such repository");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("[{kind}] {message}")]
pub struct ToolError {
    kind: ErrorKind,
    can_retry: bool,
    message: String,
    /// Rarely set, so boxed: keeps `Result<_, ToolError>` small on the success path.
    details: Option<Box<Details>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Details {
    developer_message: Option<String>,
    retry_after_ms: Option<u64>,
    additional_prompt_content: Option<String>,
    status_code: Option<u16>,
    extra: Option<Value>,
}

impl ToolError {
    /// An error of any kind; `can_retry` starts as the kind suggests.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let can_retry = matches!(
            kind,
            ErrorKind::Retry
                | ErrorKind::UpstreamRateLimit
                | ErrorKind::UpstreamServerError
                | ErrorKind::NetworkTimeout
                | ErrorKind::NetworkUnreachable
        );
        ToolError {
            kind,
            can_retry,
            message: message.into(),
            details: None,
        }
    }

    fn details(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Box::default)
    }

    /// A transient failure (`TOOL_RUNTIME_RETRY`, `can_retry: true`).
    pub fn retry(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Retry, message)
    }

    /// A failure retrying will not fix (`TOOL_RUNTIME_FATAL`).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Fatal, message)
    }

    /// Input the tool cannot use (`TOOL_RUNTIME_BAD_INPUT_VALUE`).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInputValue, message)
    }

    /// The call lacks a token, secret or metadata the tool needs
    /// (`TOOL_RUNTIME_CONTEXT_REQUIRED`).
    pub fn context_required(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ContextRequired, message)
    }

    /// An upstream API answered `status`: 401/403 → auth error, 404 → not found,
    /// 429 → rate limit, 5xx → server error, other 4xx → bad request.
    pub fn upstream(status: u16, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::from_upstream_status(status), message).status_code(status)
    }

    /// Detail for whoever runs the tool, not for the model.
    pub fn developer_message(mut self, message: impl Into<String>) -> Self {
        self.details().developer_message = Some(message.into());
        self
    }

    /// Text the model should read before it retries (e.g. how to fix its input).
    pub fn additional_prompt_content(mut self, content: impl Into<String>) -> Self {
        self.details().additional_prompt_content = Some(content.into());
        self
    }

    /// How long the caller should wait before retrying; implies `can_retry`.
    pub fn retry_after_ms(mut self, millis: u64) -> Self {
        self.details().retry_after_ms = Some(millis);
        self.can_retry = true;
        self
    }

    /// Overrides whether the caller may retry.
    pub fn can_retry(mut self, can_retry: bool) -> Self {
        self.can_retry = can_retry;
        self
    }

    /// The HTTP status that caused this error, if it came from an upstream.
    pub fn status_code(mut self, status: u16) -> Self {
        self.details().status_code = Some(status);
        self
    }

    /// Structured detail passed through as `error.extra`.
    pub fn extra(mut self, extra: Value) -> Self {
        self.details().extra = Some(extra);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error as it goes on the wire in `output.error`.
    pub fn into_wire(self) -> ToolCallError {
        let d = self.details.map(|d| *d).unwrap_or_default();
        ToolCallError {
            message: self.message,
            kind: Some(self.kind.as_str().to_owned()),
            developer_message: d.developer_message,
            can_retry: self.can_retry,
            additional_prompt_content: d.additional_prompt_content,
            retry_after_ms: d.retry_after_ms,
            stacktrace: None,
            status_code: d.status_code,
            extra: d.extra,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_statuses_map_to_arcade_kinds() {
        let kind = |s| ToolError::upstream(s, "x").kind();
        assert_eq!(kind(401), ErrorKind::UpstreamAuth);
        assert_eq!(kind(403), ErrorKind::UpstreamAuth);
        assert_eq!(kind(404), ErrorKind::UpstreamNotFound);
        assert_eq!(kind(429), ErrorKind::UpstreamRateLimit);
        assert_eq!(kind(422), ErrorKind::UpstreamBadRequest);
        assert_eq!(kind(503), ErrorKind::UpstreamServerError);
        assert_eq!(kind(302), ErrorKind::UpstreamUnmapped);
    }

    #[test]
    fn retry_error_on_the_wire_can_be_retried_after_a_delay() {
        let wire = ToolError::retry("busy")
            .retry_after_ms(250)
            .additional_prompt_content("wait a bit")
            .into_wire();
        assert_eq!(wire.kind.as_deref(), Some("TOOL_RUNTIME_RETRY"));
        assert!(wire.can_retry);
        assert_eq!(wire.retry_after_ms, Some(250));
        assert_eq!(
            wire.additional_prompt_content.as_deref(),
            Some("wait a bit")
        );
    }

    #[test]
    fn fatal_and_auth_errors_cannot_be_retried() {
        assert!(!ToolError::fatal("no").into_wire().can_retry);
        let auth = ToolError::upstream(401, "expired").into_wire();
        assert!(!auth.can_retry);
        assert_eq!(auth.status_code, Some(401));
    }
}
