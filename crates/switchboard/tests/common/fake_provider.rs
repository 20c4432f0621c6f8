//! A fake OAuth 2.0 provider on 127.0.0.1:0 that the test drives and that misbehaves on
//! demand (a real provider can't): refresh modes switchable at runtime, counters of what
//! reached it, per-subject tokens, PKCE S256 checked, and an in-memory "API" that tools
//! ask whether a token is live.
//!
//! The browser step is the test's: [`FakeProvider::approve`] reads the authorization URL
//! the gateway redirected to, remembers the PKCE challenge and returns the callback URL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard::config::{AuthProviderConfig, SecretValue};
use tokio::net::TcpListener;
use url::Url;

pub const CLIENT_ID: &str = "fake-client";
pub const CLIENT_SECRET: &str = "fake-client-secret-0123456789";

/// How the token endpoint answers `grant_type=refresh_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMode {
    /// A new access token; the same refresh token echoed back.
    Normal,
    /// A new access token and a new refresh token; the old one is then `invalid_grant`.
    Rotate,
    /// Every refresh is `invalid_grant`.
    InvalidGrant,
    /// HTTP 500.
    ServerError,
    /// Sleeps, then answers as `Normal`.
    Slow(Duration),
    /// A new access token and no `refresh_token` field.
    OmitRefreshToken,
}

/// What the user approved, to be sent back to the gateway's callback.
#[derive(Debug, Clone)]
pub struct Approval {
    pub code: String,
    pub state: String,
    pub redirect_uri: String,
    pub scope: String,
    pub code_challenge: Option<String>,
}

impl Approval {
    /// `{redirect_uri}?code=..&state=..`, what the provider redirects the browser to.
    pub fn callback_url(&self) -> String {
        let mut url = Url::parse(&self.redirect_uri).expect("redirect_uri is a URL");
        url.query_pairs_mut()
            .append_pair("code", &self.code)
            .append_pair("state", &self.state);
        url.to_string()
    }
}

struct PendingCode {
    subject: String,
    challenge: Option<String>,
    redirect_uri: String,
    scope: String,
}

#[derive(Default)]
struct Tokens {
    /// Live access token → subject.
    access: HashMap<String, String>,
    /// Live refresh token → subject.
    refresh: HashMap<String, String>,
    /// Subject → newest access / refresh token issued.
    latest_access: HashMap<String, String>,
    latest_refresh: HashMap<String, String>,
    /// Subject → refreshes answered with new tokens.
    refreshed: HashMap<String, usize>,
}

struct Inner {
    mode: Mutex<RefreshMode>,
    expires_in: AtomicI64,
    refreshes: AtomicUsize,
    code_exchanges: AtomicUsize,
    invalid_grants: AtomicUsize,
    seq: AtomicUsize,
    codes: Mutex<HashMap<String, PendingCode>>,
    tokens: Mutex<Tokens>,
    revoked: Mutex<Vec<String>>,
    /// Every token and code ever issued, for leak searches.
    issued: Mutex<Vec<String>>,
}

#[derive(Clone)]
pub struct FakeProvider {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

fn sha256_b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(s.as_bytes()))
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({"error": error}))).into_response()
}

impl FakeProvider {
    pub async fn start() -> FakeProvider {
        let inner = Arc::new(Inner {
            mode: Mutex::new(RefreshMode::Normal),
            expires_in: AtomicI64::new(3600),
            refreshes: AtomicUsize::new(0),
            code_exchanges: AtomicUsize::new(0),
            invalid_grants: AtomicUsize::new(0),
            seq: AtomicUsize::new(0),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(Tokens::default()),
            revoked: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let fake = FakeProvider { addr, inner };
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/revoke", post(revoke))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The short custom form, with PKCE, revocation and user info.
    pub fn provider_extra(&self) -> Value {
        json!({
            "authorization": {"url": self.url("/authorize")},
            "token": {"url": self.url("/token"), "auth_method": "client_secret_post"},
            "revoke": {"url": self.url("/revoke")},
            "user_info": {"url": self.url("/userinfo")},
            "oauth2": {"pkce": {"enabled": true, "code_challenge_method": "S256"}},
        })
    }

    /// A config provider `id` for the service `fake`.
    pub fn provider_config(&self, id: &str) -> AuthProviderConfig {
        AuthProviderConfig {
            id: id.into(),
            description: Some("Fake Provider".into()),
            enabled: true,
            provider_type: "oauth2".into(),
            provider_id: Some("fake".into()),
            client_id: Some(CLIENT_ID.into()),
            client_secret: Some(SecretValue::new(CLIENT_SECRET)),
            extra: self.provider_extra(),
        }
    }

    pub fn set_mode(&self, mode: RefreshMode) {
        *self.inner.mode.lock().unwrap() = mode;
    }

    /// `expires_in` of tokens issued from now on.
    pub fn set_expires_in(&self, seconds: i64) {
        self.inner.expires_in.store(seconds, Ordering::SeqCst);
    }

    /// Refresh requests that reached the token endpoint, whatever the answer.
    pub fn refreshes(&self) -> usize {
        self.inner.refreshes.load(Ordering::SeqCst)
    }

    /// Refreshes answered with new tokens for `subject` (refused ones are not counted).
    pub fn refreshes_of(&self, subject: &str) -> usize {
        self.inner
            .tokens
            .lock()
            .unwrap()
            .refreshed
            .get(subject)
            .copied()
            .unwrap_or(0)
    }

    pub fn code_exchanges(&self) -> usize {
        self.inner.code_exchanges.load(Ordering::SeqCst)
    }

    /// `invalid_grant` answers given (to codes or refresh tokens).
    pub fn invalid_grants(&self) -> usize {
        self.inner.invalid_grants.load(Ordering::SeqCst)
    }

    /// Tokens sent to `/revoke`.
    pub fn revoked(&self) -> Vec<String> {
        self.inner.revoked.lock().unwrap().clone()
    }

    /// Every access token, refresh token and code this provider issued.
    pub fn issued(&self) -> Vec<String> {
        self.inner.issued.lock().unwrap().clone()
    }

    /// The subject a live access token belongs to: what the provider's API would accept.
    pub fn api_subject(&self, access_token: &str) -> Option<String> {
        self.inner
            .tokens
            .lock()
            .unwrap()
            .access
            .get(access_token)
            .cloned()
    }

    pub fn latest_access_token(&self, subject: &str) -> Option<String> {
        self.inner
            .tokens
            .lock()
            .unwrap()
            .latest_access
            .get(subject)
            .cloned()
    }

    pub fn latest_refresh_token(&self, subject: &str) -> Option<String> {
        self.inner
            .tokens
            .lock()
            .unwrap()
            .latest_refresh
            .get(subject)
            .cloned()
    }

    /// The provider's API stops accepting `subject`'s access tokens (as after a password
    /// change or an early expiry); refresh tokens stay good.
    pub fn invalidate_access_tokens(&self, subject: &str) {
        self.inner
            .tokens
            .lock()
            .unwrap()
            .access
            .retain(|_, s| s != subject);
    }

    /// The user at the provider (`subject`) consents: reads the authorization URL the
    /// gateway redirected to, remembers the code with its PKCE challenge, and returns
    /// what to send back to the gateway's callback.
    pub fn approve(&self, authorize_url: &str, subject: &str) -> Approval {
        let url = Url::parse(authorize_url).expect("authorization URL");
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert!(
            authorize_url.starts_with(&self.url("/authorize")),
            "the browser was sent to {authorize_url}, not this provider"
        );
        assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
        assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
        let code = self.issue("code", subject);
        let approval = Approval {
            code: code.clone(),
            state: q.get("state").cloned().expect("state in the URL"),
            redirect_uri: q.get("redirect_uri").cloned().expect("redirect_uri"),
            scope: q.get("scope").cloned().unwrap_or_default(),
            code_challenge: q.get("code_challenge").cloned(),
        };
        self.inner.codes.lock().unwrap().insert(
            code,
            PendingCode {
                subject: subject.into(),
                challenge: approval.code_challenge.clone(),
                redirect_uri: approval.redirect_uri.clone(),
                scope: approval.scope.clone(),
            },
        );
        approval
    }

    /// The user declines: the callback URL with `error=access_denied`.
    pub fn deny(&self, authorize_url: &str) -> String {
        let url = Url::parse(authorize_url).expect("authorization URL");
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let mut back = Url::parse(&q["redirect_uri"]).expect("redirect_uri");
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "The user denied the request")
            .append_pair("state", &q["state"]);
        back.to_string()
    }

    fn issue(&self, kind: &str, subject: &str) -> String {
        let n = self.inner.seq.fetch_add(1, Ordering::SeqCst);
        let value = format!("{kind}-{subject}-{n}-{}", uuid::Uuid::new_v4().simple());
        self.inner.issued.lock().unwrap().push(value.clone());
        value
    }

    /// A new access token (and refresh token unless `refresh` says otherwise) for
    /// `subject`, registered as live.
    fn tokens_for(&self, subject: &str, refresh: RefreshIssue<'_>, scope: &str) -> Value {
        let access = self.issue("at", subject);
        let refresh_token = match refresh {
            RefreshIssue::New => Some(self.issue("rt", subject)),
            RefreshIssue::Echo(rt) => Some(rt.to_owned()),
            RefreshIssue::Omit => None,
        };
        let mut t = self.inner.tokens.lock().unwrap();
        t.access.insert(access.clone(), subject.into());
        t.latest_access.insert(subject.into(), access.clone());
        if let Some(rt) = &refresh_token {
            t.refresh.insert(rt.clone(), subject.into());
            t.latest_refresh.insert(subject.into(), rt.clone());
        }
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.inner.expires_in.load(Ordering::SeqCst),
        });
        if !scope.is_empty() {
            body["scope"] = json!(scope);
        }
        if let Some(rt) = refresh_token {
            body["refresh_token"] = json!(rt);
        }
        body
    }

    fn invalid_grant(&self) -> Response {
        self.inner.invalid_grants.fetch_add(1, Ordering::SeqCst);
        oauth_error(StatusCode::BAD_REQUEST, "invalid_grant")
    }
}

enum RefreshIssue<'a> {
    New,
    Echo(&'a str),
    Omit,
}

#[derive(serde::Deserialize)]
struct AuthorizeQuery {
    redirect_uri: String,
    state: String,
    /// Who signs in; the test appends it, as a user would type it.
    login: Option<String>,
}

/// A browser that follows the redirect here signs in as `login` and consents at once.
async fn authorize(
    State(fake): State<FakeProvider>,
    Query(q): Query<AuthorizeQuery>,
    uri: axum::http::Uri,
) -> Response {
    let full = format!("{}{}", fake.url(""), uri);
    let approval = fake.approve(&full, q.login.as_deref().unwrap_or("user"));
    debug_assert_eq!(approval.state, q.state);
    debug_assert_eq!(approval.redirect_uri, q.redirect_uri);
    Redirect::to(&approval.callback_url()).into_response()
}

async fn token(
    State(fake): State<FakeProvider>,
    Form(p): Form<HashMap<String, String>>,
) -> Response {
    if p.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || p.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => exchange(&fake, &p),
        Some("refresh_token") => refresh(&fake, &p).await,
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

fn exchange(fake: &FakeProvider, p: &HashMap<String, String>) -> Response {
    fake.inner.code_exchanges.fetch_add(1, Ordering::SeqCst);
    let Some(code) = p.get("code") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    // A code works once.
    let Some(pending) = fake.inner.codes.lock().unwrap().remove(code) else {
        return fake.invalid_grant();
    };
    if p.get("redirect_uri") != Some(&pending.redirect_uri) {
        return fake.invalid_grant();
    }
    if let Some(challenge) = &pending.challenge {
        let ok = p
            .get("code_verifier")
            .is_some_and(|v| sha256_b64(v) == *challenge);
        if !ok {
            return fake.invalid_grant();
        }
    }
    Json(fake.tokens_for(&pending.subject, RefreshIssue::New, &pending.scope)).into_response()
}

async fn refresh(fake: &FakeProvider, p: &HashMap<String, String>) -> Response {
    fake.inner.refreshes.fetch_add(1, Ordering::SeqCst);
    let mode = *fake.inner.mode.lock().unwrap();
    match mode {
        RefreshMode::InvalidGrant => return fake.invalid_grant(),
        RefreshMode::ServerError => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "the provider fell over").into_response();
        }
        RefreshMode::Slow(d) => tokio::time::sleep(d).await,
        _ => {}
    }
    let Some(rt) = p.get("refresh_token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let subject = {
        let mut t = fake.inner.tokens.lock().unwrap();
        let subject = t.refresh.get(rt).cloned();
        if subject.is_some() && mode == RefreshMode::Rotate {
            // The old refresh token dies the moment it is used.
            t.refresh.remove(rt);
        }
        subject
    };
    let Some(subject) = subject else {
        return fake.invalid_grant();
    };
    *fake
        .inner
        .tokens
        .lock()
        .unwrap()
        .refreshed
        .entry(subject.clone())
        .or_default() += 1;
    let issue = match mode {
        RefreshMode::Rotate => RefreshIssue::New,
        RefreshMode::OmitRefreshToken => RefreshIssue::Omit,
        _ => RefreshIssue::Echo(rt),
    };
    Json(fake.tokens_for(&subject, issue, "")).into_response()
}

async fn userinfo(State(fake): State<FakeProvider>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| fake.api_subject(t)) {
        Some(subject) => {
            Json(json!({"sub": subject, "name": format!("{subject} at Fake")})).into_response()
        }
        None => oauth_error(StatusCode::UNAUTHORIZED, "invalid_token"),
    }
}

async fn revoke(
    State(fake): State<FakeProvider>,
    Form(p): Form<HashMap<String, String>>,
) -> Response {
    let Some(token) = p.get("token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    fake.inner.revoked.lock().unwrap().push(token.clone());
    let mut t = fake.inner.tokens.lock().unwrap();
    t.access.remove(token);
    t.refresh.remove(token);
    StatusCode::OK.into_response()
}
