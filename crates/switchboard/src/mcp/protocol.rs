//! Protocol answers the endpoint gives itself, where rmcp's own would not follow the spec
//! or the SDKs: a DELETE that ended a session, and `initialize` sent in the stateless era.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const PROTOCOL_VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
const METHOD_NOT_FOUND: i64 = -32601;
/// The first revision without `initialize` (and without sessions).
const STATELESS_ERA: &str = "2026-07-28";

/// A DELETE that ended a session: rmcp answers 202, which the MCP SDKs take for a failure
/// (the Python SDK logs "Session termination failed: 202"); the request is complete, so 200.
pub(super) fn session_ended(response: &mut Response<Body>) {
    if response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::OK;
    }
}

/// `initialize` that is not a handshake, from a client of the stateless era (its
/// `MCP-Protocol-Version` is 2026-07-28 or later): the method was removed there, so 404
/// with -32601 and the request's id, as for any method the server does not have.
/// A real handshake (valid params) is still served whatever the header says.
pub(super) fn removed_initialize(headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let version = headers
        .get(PROTOCOL_VERSION_HEADER)
        .and_then(|v| v.to_str().ok())?;
    // Dated versions compare as text.
    if version.trim() < STATELESS_ERA {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: Option<Value>,
    }
    let id = serde_json::from_slice::<Id>(body)
        .ok()
        .and_then(|m| m.id)
        .unwrap_or(Value::Null);
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": METHOD_NOT_FOUND,
            "message": format!(
                "initialize is not a method of protocol version {STATELESS_ERA}: call server/discover"
            ),
        },
    });
    Some(
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_a_stateless_era_initialize_is_refused_and_keeps_its_id() {
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}"#;
        let mut headers = HeaderMap::new();
        assert!(removed_initialize(&headers, body).is_none());
        headers.insert(
            PROTOCOL_VERSION_HEADER,
            HeaderValue::from_static("2025-11-25"),
        );
        assert!(removed_initialize(&headers, body).is_none());
        headers.insert(
            PROTOCOL_VERSION_HEADER,
            HeaderValue::from_static("2026-07-28"),
        );
        let refusal = removed_initialize(&headers, body).unwrap();
        assert_eq!(refusal.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn only_an_accepted_answer_becomes_ok() {
        let mut accepted = StatusCode::ACCEPTED.into_response();
        session_ended(&mut accepted);
        assert_eq!(accepted.status(), StatusCode::OK);
        let mut missing = StatusCode::NOT_FOUND.into_response();
        session_ended(&mut missing);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
