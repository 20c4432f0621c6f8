//! The sandbox's resource API: `GET /api/me`, what the example worker's OAuth tool calls
//! with the user's token (RFC 6750 bearer usage).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Sandbox;

/// Who the token's user is. Stable per username, so a reconnect finds the same account.
#[derive(Debug, Serialize)]
struct Me {
    id: String,
    username: String,
    name: String,
    email: String,
    /// Every scope the token carries: informational, nothing is enforced.
    scopes: Vec<String>,
}

/// `GET /api/me`.
pub(super) async fn me(State(sandbox): State<Sandbox>, headers: HeaderMap) -> Response {
    sandbox.count(|c| &c.api_requests);
    let Some(token) = bearer(&headers) else {
        return invalid_token();
    };
    let now = sandbox.now();
    // Copy out what the answer needs and let go of the lock before serializing.
    let found = sandbox
        .grants()
        .access(token, now)
        .map(|e| (e.grant.username.clone(), e.scopes.clone()));
    let Some((username, scopes)) = found else {
        return invalid_token();
    };
    Json(Me {
        id: user_id(&username),
        name: display_name(&username),
        email: format!("{username}@sandbox.example"),
        username,
        scopes,
    })
    .into_response()
}

/// RFC 6750 §2.1: `Authorization: Bearer <token>`, scheme case-insensitive.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// RFC 6750 §3.1, one answer for missing, unknown, expired and revoked tokens.
fn invalid_token() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "invalid_token"})),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer error="invalid_token""#),
    );
    response
}

/// `sbx_user_` and 16 hex digits of SHA-256 over the username: stable, and not the username.
fn user_id(username: &str) -> String {
    let digest = Sha256::digest(format!("switchboard-sandbox-user:{username}").as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sbx_user_{hex}")
}

/// `jane.doe` → `Jane Doe`; a username of punctuation only is its own name.
fn display_name(username: &str) -> String {
    let name = username
        .split(['.', '_', '-'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        username.to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_per_username_and_differ_between_users() {
        assert_eq!(user_id("alice"), user_id("alice"));
        assert_ne!(user_id("alice"), user_id("bob"));
        assert!(user_id("alice").starts_with("sbx_user_") && user_id("alice").len() == 25);
    }

    #[test]
    fn display_names_are_capitalised_words() {
        assert_eq!(display_name("sandbox-user"), "Sandbox User");
        assert_eq!(display_name("jane.doe_2"), "Jane Doe 2");
        assert_eq!(display_name("---"), "---");
    }
}
