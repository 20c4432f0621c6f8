//! JSON-RPC 2.0 framing and the protocol versions this gateway speaks.

use serde_json::{Value, json};

/// The stateless era (no `initialize`, no sessions; `server/discover`, `resultType`).
pub const MODERN_VERSION: &str = "2026-07-28";
/// Handshake-era versions, newest first; the first is offered when the client's isn't known.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// `_meta` key carrying a modern request's protocol version.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// Modern era: a header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// Modern era: the protocol version is not one we speak.
pub const UNSUPPORTED_VERSION: i64 = -32022;

pub fn all_versions() -> Vec<&'static str> {
    let mut v = vec![MODERN_VERSION];
    v.extend_from_slice(LEGACY_VERSIONS);
    v
}

pub fn is_legacy(version: &str) -> bool {
    LEGACY_VERSIONS.contains(&version)
}

/// The client's version if we speak it, else our latest handshake version.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| LEGACY_VERSIONS.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(LEGACY_VERSIONS[0])
}

/// A JSON-RPC error object, ready to send.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    pub fn internal() -> Self {
        Self::new(INTERNAL_ERROR, "internal error")
    }

    pub fn to_json(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            e["data"] = data.clone();
        }
        e
    }
}

pub fn response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

pub fn error_response(id: &Value, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": error.to_json()})
}

/// One message a client POSTed, classified.
#[derive(Debug)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
    },
    /// The client's answer to a request the server sent (elicitation).
    Response {
        id: Value,
        body: Value,
    },
}

/// Classifies a parsed body; the error is an Invalid Request message.
pub fn classify(body: Value) -> Result<Incoming, String> {
    let Value::Object(mut map) = body else {
        return Err("a JSON-RPC message must be an object".into());
    };
    if map.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err("jsonrpc must be \"2.0\"".into());
    }
    let id = map.remove("id");
    if let Some(id) = &id
        && !(id.is_string() || id.is_number())
    {
        return Err("id must be a string or a number".into());
    }
    match map.remove("method") {
        Some(Value::String(method)) => {
            let params = map.remove("params").unwrap_or(Value::Null);
            if !(params.is_null() || params.is_object()) {
                return Err("params must be an object".into());
            }
            Ok(match id {
                Some(id) => Incoming::Request { id, method, params },
                None => Incoming::Notification { method },
            })
        }
        Some(_) => Err("method must be a string".into()),
        None => match id {
            Some(id) if map.contains_key("result") || map.contains_key("error") => {
                Ok(Incoming::Response {
                    id,
                    body: Value::Object(map),
                })
            }
            _ => Err("not a request, notification or response".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_a_known_version_and_offers_the_latest_otherwise() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("1999-01-01")), LEGACY_VERSIONS[0]);
        assert_eq!(negotiate(None), LEGACY_VERSIONS[0]);
    }

    #[test]
    fn messages_are_classified_by_their_members() {
        let r = classify(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).unwrap();
        assert!(matches!(r, Incoming::Request { .. }));
        let n = classify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert!(matches!(n, Ok(Incoming::Notification { .. })));
        let a = classify(json!({"jsonrpc": "2.0", "id": "e1", "result": {"action": "accept"}}));
        assert!(matches!(a, Ok(Incoming::Response { .. })));
        assert!(classify(json!({"id": 1, "method": "ping"})).is_err());
        assert!(classify(json!({"jsonrpc": "2.0", "id": {}, "method": "ping"})).is_err());
    }
}
