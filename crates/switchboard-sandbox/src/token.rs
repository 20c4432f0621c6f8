//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6; RFC 7636 §4.5) and revocation
//! (RFC 7009).
//!
//! Codes are single-use: a replayed code is refused and the tokens minted from it are
//! revoked (§4.1.2). Refresh tokens rotate: each refresh returns a new one and retires the
//! old; presenting a retired one is refused and, by default, revokes the grant (see
//! [`super::SandboxSettings::revoke_family_on_refresh_reuse`]).

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::consent::parse_scopes;
use super::state::{Issued, Lifetimes, Refused};
use super::{Sandbox, constant_time_eq};

/// Errors of the token and revocation endpoints; each names its RFC 6749 §5.2 code.
#[derive(Debug, thiserror::Error)]
pub(super) enum TokenError {
    /// 400 `invalid_request`: a parameter is missing, repeated or malformed.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// 401 `invalid_client`: unknown client, wrong secret or no client authentication.
    #[error("client authentication failed")]
    InvalidClient,
    /// 400 `invalid_grant`: the code or refresh token is unknown, expired, used, revoked,
    /// issued to another client, or its redirect URI or PKCE verifier does not match.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// 400 `invalid_scope`: a refresh asked for a scope the grant does not hold.
    #[error("the requested scope exceeds the grant")]
    InvalidScope,
    /// 400 `unsupported_grant_type`.
    #[error("only authorization_code and refresh_token are supported")]
    UnsupportedGrantType,
    /// 500 `server_error`: a failure injected by a test.
    #[error("injected failure")]
    Injected,
}

impl TokenError {
    fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidGrant(_) => "invalid_grant",
            TokenError::InvalidScope => "invalid_scope",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::Injected => "server_error",
        }
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let status = match self {
            TokenError::InvalidClient => StatusCode::UNAUTHORIZED,
            TokenError::Injected => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = json!({"error": self.code(), "error_description": self.to_string()});
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // §5.2: required when the client tried the Authorization header; harmless otherwise.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="sandbox""#),
            );
        }
        no_store(response)
    }
}

/// The form of `POST /oauth/token`.
#[derive(Deserialize)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The form of `POST /oauth/revoke`.
#[derive(Deserialize)]
pub(super) struct RevokeForm {
    token: Option<String>,
    // Accepted and ignored: both kinds of token are looked up anyway (RFC 7009 §2.1).
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// §5.1.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
    scope: String,
}

/// `POST /oauth/token`.
pub(super) async fn token(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    sandbox.count(|c| &c.token_requests);
    let latency = sandbox.inner.faults.token_latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let result = match form {
        Ok(Form(form)) => exchange(&sandbox, &headers, form),
        Err(_) => Err(TokenError::InvalidRequest(
            "the body must be a form with each parameter at most once",
        )),
    };
    match result {
        Ok(issued) => {
            let body = TokenResponse {
                access_token: issued.access_token,
                token_type: "Bearer",
                expires_in: sandbox.settings().access_token_lifetime.as_secs(),
                refresh_token: issued.refresh_token,
                scope: issued.scopes.join(" "),
            };
            no_store(Json(body).into_response())
        }
        Err(error) => {
            if matches!(error, TokenError::InvalidGrant(_)) {
                sandbox.count(|c| &c.invalid_grants);
            }
            tracing::debug!(error = error.code(), "sandbox: token request refused");
            error.into_response()
        }
    }
}

fn exchange(sandbox: &Sandbox, headers: &HeaderMap, form: TokenForm) -> Result<Issued, TokenError> {
    match form.grant_type.as_deref() {
        Some("authorization_code") => sandbox.count(|c| &c.code_exchanges),
        Some("refresh_token") => sandbox.count(|c| &c.refresh_requests),
        _ => {}
    }
    take_injected_failure(sandbox)?;
    let client_id = authenticate(
        sandbox,
        headers,
        form.client_id.as_deref(),
        form.client_secret.as_deref(),
    )?;
    match form.grant_type.as_deref() {
        Some("authorization_code") => redeem_code(sandbox, &client_id, &form),
        Some("refresh_token") => refresh(sandbox, &client_id, &form),
        None => Err(TokenError::InvalidRequest("grant_type is required")),
        Some(_) => Err(TokenError::UnsupportedGrantType),
    }
}

/// §4.1.3 and RFC 7636 §4.6.
fn redeem_code(sandbox: &Sandbox, client_id: &str, form: &TokenForm) -> Result<Issued, TokenError> {
    let code = form
        .code
        .as_deref()
        .ok_or(TokenError::InvalidRequest("code is required"))?;
    let now = sandbox.now();
    // One lock from lookup to minting, so two concurrent exchanges of one code cannot
    // both succeed.
    let mut grants = sandbox.grants();
    let entry = match grants.use_code(code, now) {
        Ok(entry) => entry,
        Err(Refused::Replayed(family)) => {
            if let Some(family) = family {
                grants.revoke_family(family);
            }
            tracing::warn!(
                "sandbox: an authorization code was replayed; tokens issued from it are revoked"
            );
            return Err(TokenError::InvalidGrant("the code was already used"));
        }
        Err(Refused::Expired) => return Err(TokenError::InvalidGrant("the code has expired")),
        Err(Refused::Unknown) => return Err(TokenError::InvalidGrant("unknown code")),
    };
    if entry.grant.client_id != client_id {
        return Err(TokenError::InvalidGrant(
            "the code was issued to another client",
        ));
    }
    if form.redirect_uri.as_deref() != Some(entry.redirect_uri.as_str()) {
        return Err(TokenError::InvalidGrant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&entry.code_challenge, form.code_verifier.as_deref()) {
        (Some(challenge), Some(verifier)) => {
            if !valid_verifier(verifier)
                || !constant_time_eq(s256(verifier).as_bytes(), challenge.as_bytes())
            {
                return Err(TokenError::InvalidGrant(
                    "code_verifier does not match the challenge",
                ));
            }
        }
        (Some(_), None) => return Err(TokenError::InvalidGrant("code_verifier is required")),
        // OAuth 2.1 §4.1.3: a verifier without a challenge hints at a PKCE downgrade.
        (None, Some(_)) => {
            return Err(TokenError::InvalidGrant(
                "code_verifier sent but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    grants
        .issue_from_code(code, now, lifetimes(sandbox))
        .ok_or(TokenError::InvalidGrant("unknown code"))
}

/// §6, with rotation.
fn refresh(sandbox: &Sandbox, client_id: &str, form: &TokenForm) -> Result<Issued, TokenError> {
    let token = form
        .refresh_token
        .as_deref()
        .ok_or(TokenError::InvalidRequest("refresh_token is required"))?;
    let now = sandbox.now();
    // One lock from lookup to rotation, so a refresh token is exchanged at most once.
    let mut grants = sandbox.grants();
    let entry = match grants.peek_refresh(token, now) {
        Ok(entry) => entry,
        Err(Refused::Replayed(family)) => {
            if let (Some(family), true) =
                (family, sandbox.settings().revoke_family_on_refresh_reuse)
            {
                grants.revoke_family(family);
                tracing::warn!("sandbox: a rotated refresh token was reused; its grant is revoked");
            }
            return Err(TokenError::InvalidGrant(
                "the refresh token was already used",
            ));
        }
        Err(Refused::Expired) => {
            return Err(TokenError::InvalidGrant("the refresh token has expired"));
        }
        Err(Refused::Unknown) => return Err(TokenError::InvalidGrant("unknown refresh token")),
    };
    if entry.grant.client_id != client_id {
        return Err(TokenError::InvalidGrant(
            "the refresh token was issued to another client",
        ));
    }
    // §6: a scope may narrow the grant, never widen it; absent means the whole grant.
    let scopes = match form.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        None => entry.grant.scopes.clone(),
        Some(requested) => {
            let requested = parse_scopes(Some(requested)).ok_or(TokenError::InvalidScope)?;
            if !requested.iter().all(|s| entry.grant.scopes.contains(s)) {
                return Err(TokenError::InvalidScope);
            }
            requested
        }
    };
    grants
        .rotate_refresh(token, scopes, now, lifetimes(sandbox))
        .ok_or(TokenError::InvalidGrant("unknown refresh token"))
}

/// `POST /oauth/revoke`: RFC 7009. 200 whether or not the token was known.
pub(super) async fn revoke(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Response {
    sandbox.count(|c| &c.revoke_requests);
    let Ok(Form(form)) = form else {
        return TokenError::InvalidRequest(
            "the body must be a form with each parameter at most once",
        )
        .into_response();
    };
    let client_id = match authenticate(
        &sandbox,
        &headers,
        form.client_id.as_deref(),
        form.client_secret.as_deref(),
    ) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let Some(token) = form.token.as_deref() else {
        return TokenError::InvalidRequest("token is required").into_response();
    };
    // A token of another client is left alone, and the answer is the same.
    if sandbox.grants().revoke_token(token, &client_id) {
        tracing::debug!("sandbox: grant revoked");
    }
    no_store(StatusCode::OK.into_response())
}

/// §2.3.1: HTTP Basic or `client_id` + `client_secret` in the body, not both.
fn authenticate(
    sandbox: &Sandbox,
    headers: &HeaderMap,
    body_id: Option<&str>,
    body_secret: Option<&str>,
) -> Result<String, TokenError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
        });
    let (id, secret) = match basic {
        Some(encoded) => {
            if body_secret.is_some() {
                return Err(TokenError::InvalidRequest(
                    "use HTTP Basic or client_secret in the body, not both",
                ));
            }
            let (id, secret) = decode_basic(encoded).ok_or(TokenError::InvalidClient)?;
            if body_id.is_some_and(|body_id| body_id != id) {
                return Err(TokenError::InvalidClient);
            }
            (id, secret)
        }
        None => match (body_id, body_secret) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => return Err(TokenError::InvalidClient),
        },
    };
    let settings = sandbox.settings();
    // Both compared whatever the first gives, so timing tells nothing about which failed.
    let id_ok = constant_time_eq(id.as_bytes(), settings.client_id.as_bytes());
    let secret_ok = constant_time_eq(secret.as_bytes(), settings.client_secret.as_bytes());
    if id_ok && secret_ok {
        Ok(id)
    } else {
        Err(TokenError::InvalidClient)
    }
}

/// `base64(urlencode(id) ":" urlencode(secret))`, per §2.3.1.
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let decoded = String::from_utf8(bytes).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Undoes application/x-www-form-urlencoded on one value.
fn form_decode(value: &str) -> String {
    url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// RFC 7636 §4.1: 43–128 unreserved characters.
fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.2: `BASE64URL(SHA256(ASCII(verifier)))`.
fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn lifetimes(sandbox: &Sandbox) -> Lifetimes {
    let s = sandbox.settings();
    Lifetimes {
        code: s.code_lifetime,
        access: s.access_token_lifetime,
        refresh: s.refresh_token_lifetime,
    }
}

/// Takes one injected failure, if any are left.
fn take_injected_failure(sandbox: &Sandbox) -> Result<(), TokenError> {
    let left = &sandbox.inner.faults.fail_token_requests;
    if left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        sandbox.count(|c| &c.injected_failures);
        return Err(TokenError::Injected);
    }
    Ok(())
}

/// §5.1: token responses must not be cached.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("my%20client:s%3Acret+x");
        assert_eq!(
            decode_basic(&encoded),
            Some(("my client".to_owned(), "s:cret x".to_owned()))
        );
    }
}
