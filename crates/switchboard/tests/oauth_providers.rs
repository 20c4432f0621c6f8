//! The provider layer against a fake provider on 127.0.0.1:0 that answers like Google,
//! Slack v2, GitHub (form-encoded unless asked for JSON), Twitch, Notion and the Basic-auth
//! providers, and misbehaves on demand: `invalid_grant`, 500, slow answers, errors that
//! echo the secrets they were sent. Plus config entries read from real `engine.yaml` text.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine;
use serde_json::{Value, json};
use switchboard::config::{AuthProviderConfig, LoadOptions, SecretValue, load};
use switchboard::oauth::provider::{
    ClientAuth, OAuthError, Provider, ProviderSource, resolve_provider,
};
use switchboard::vault::SecretString;
use tokio::net::TcpListener;

const CLIENT_ID: &str = "cid-123";
const CLIENT_SECRET: &str = "csecret-abcdef";

/// One request the fake received.
#[derive(Debug, Clone)]
struct Seen {
    route: String,
    accept: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    client_id_header: Option<String>,
    params: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn last(&self, route: &str) -> Seen {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .rev()
            .find(|s| s.route == route)
            .cloned()
            .unwrap_or_else(|| panic!("no request to {route}"))
    }
}

fn header(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn params_of(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    if header(headers, header::CONTENT_TYPE).is_some_and(|c| c.contains("json")) {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    }
}

fn basic() -> String {
    let creds =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    format!("Basic {creds}")
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn form_answer(body: &str) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body.to_owned(),
    )
        .into_response()
}

/// Misbehaviour shared by every token route, chosen by the refresh token or code sent.
async fn trouble(p: &HashMap<String, String>) -> Option<Response> {
    let value = p
        .get("refresh_token")
        .or_else(|| p.get("code"))
        .map(String::as_str)
        .unwrap_or_default();
    match value {
        "rt-boom" => Some((StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response()),
        "rt-busy" => Some(json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily_unavailable"}),
        )),
        "rt-slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some(json_answer(StatusCode::OK, json!({"access_token": "late"})))
        }
        "rt-echo-secret" => Some(json_answer(
            StatusCode::BAD_REQUEST,
            json!({
                "error": "invalid_request",
                "error_description": format!(
                    "refresh_token {value} for client {} with secret {} is malformed",
                    p.get("client_id").cloned().unwrap_or_default(),
                    p.get("client_secret").cloned().unwrap_or_default(),
                ),
            }),
        )),
        "rt-echo-dead" => Some(json_answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": format!("token {value} revoked")}),
        )),
        "rt-unauthorized" => Some((StatusCode::UNAUTHORIZED, "").into_response()),
        "rt-html" => Some(
            (
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>maintenance</body></html>",
            )
                .into_response(),
        ),
        "rt-no-access-token" => Some(json_answer(StatusCode::OK, json!({"token_type": "bearer"}))),
        _ => None,
    }
}

async fn token(
    State(fake): State<Fake>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params_of(&headers, &body);
    fake.seen.lock().unwrap().push(Seen {
        route: format!("{kind}/token"),
        accept: header(&headers, header::ACCEPT),
        authorization: header(&headers, header::AUTHORIZATION),
        content_type: header(&headers, header::CONTENT_TYPE),
        client_id_header: None,
        params: p.clone(),
    });
    if let Some(r) = trouble(&p).await {
        return r;
    }
    let refresh = p.get("grant_type").map(String::as_str) == Some("refresh_token");
    let rt = p.get("refresh_token").cloned().unwrap_or_default();
    let code = p.get("code").cloned().unwrap_or_default();
    match kind.as_str() {
        // Google: 400 invalid_grant for a dead refresh token; refresh answers carry no
        // refresh_token.
        "google" => {
            if rt == "rt-dead" {
                return json_answer(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
                );
            }
            if code == "bad-scope" {
                return json_answer(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_scope", "error_description": "Some requested scopes were invalid."}),
                );
            }
            if refresh {
                json_answer(
                    StatusCode::OK,
                    json!({"access_token": "ya29.refreshed", "expires_in": 3599,
                           "scope": "openid https://www.googleapis.com/auth/gmail.readonly",
                           "token_type": "Bearer"}),
                )
            } else {
                json_answer(
                    StatusCode::OK,
                    json!({"access_token": "ya29.first", "refresh_token": "1//rt-google",
                           "expires_in": 3599, "refresh_token_expires_in": 604799,
                           "scope": "openid https://www.googleapis.com/auth/gmail.readonly",
                           "token_type": "Bearer", "id_token": "eyJ.secret.jwt"}),
                )
            }
        }
        // Slack v2: errors as 200 {"ok":false}; user token under authed_user; refresh
        // answers flat, with a rotated refresh token.
        "slack" => {
            let fail = |e: &str| json_answer(StatusCode::OK, json!({"ok": false, "error": e}));
            match (rt.as_str(), code.as_str()) {
                ("rt-dead", _) => fail("invalid_refresh_token"),
                ("rt-revoked", _) => fail("token_revoked"),
                ("rt-grant", _) => fail("invalid_grant"),
                (_, "bad-code") => fail("invalid_code"),
                _ if refresh => json_answer(
                    StatusCode::OK,
                    json!({"ok": true, "access_token": "xoxp-refreshed", "refresh_token": "xoxe-1-rotated",
                           "expires_in": 43200, "token_type": "user", "scope": "search:read,users:read"}),
                ),
                _ => json_answer(
                    StatusCode::OK,
                    json!({"ok": true, "app_id": "A1", "access_token": "xoxb-bot-token",
                           "token_type": "bot", "scope": "commands", "bot_user_id": "UBOT",
                           "team": {"id": "T42", "name": "Acme"}, "enterprise": null,
                           "incoming_webhook": {"url": "https://hooks.slack.com/secret"},
                           "authed_user": {"id": "U7", "scope": "search:read,users:read",
                                           "access_token": "xoxp-user-token", "token_type": "user",
                                           "refresh_token": "xoxe-1-first", "expires_in": 43200}}),
                ),
            }
        }
        // GitHub: form-encoded unless Accept: application/json; errors in a 200 body.
        "github" | "github-stubborn" => {
            let wants_json = kind == "github"
                && header(&headers, header::ACCEPT).is_some_and(|a| a.contains("application/json"));
            let answer: Vec<(&str, String)> = match (rt.as_str(), code.as_str()) {
                ("rt-dead", _) => vec![
                    ("error", "bad_refresh_token".into()),
                    (
                        "error_description",
                        "The refresh token passed is incorrect or expired.".into(),
                    ),
                ],
                (_, "bad-code") => vec![
                    ("error", "bad_verification_code".into()),
                    (
                        "error_description",
                        "The code passed is incorrect or expired.".into(),
                    ),
                ],
                _ => vec![
                    ("access_token", "ghu_access".into()),
                    ("expires_in", "28800".into()),
                    ("refresh_token", "ghr_rotated".into()),
                    ("refresh_token_expires_in", "15811200".into()),
                    ("scope", "repo,gist".into()),
                    ("token_type", "bearer".into()),
                ],
            };
            if wants_json {
                let map: serde_json::Map<String, Value> = answer
                    .into_iter()
                    .map(|(k, v)| {
                        let v = v
                            .parse::<u64>()
                            .map(Value::from)
                            .unwrap_or(Value::String(v));
                        (k.to_owned(), v)
                    })
                    .collect();
                json_answer(StatusCode::OK, Value::Object(map))
            } else {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(answer)
                    .finish();
                form_answer(&body)
            }
        }
        // Twitch: `scope` is a JSON array.
        "twitch" => json_answer(
            StatusCode::OK,
            json!({"access_token": "tw-at", "refresh_token": "tw-rt", "expires_in": 14124,
                   "scope": ["chat:read", "user:read:email"], "token_type": "bearer"}),
        ),
        // Basic-auth providers (Reddit, X, Zoom, Notion): refuse anything else.
        "basic" | "notion" => {
            if header(&headers, header::AUTHORIZATION).as_deref() != Some(basic().as_str())
                || p.contains_key("client_secret")
            {
                return json_answer(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
            }
            if kind == "notion"
                && !header(&headers, header::CONTENT_TYPE).is_some_and(|c| c.contains("json"))
            {
                return json_answer(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
            }
            json_answer(
                StatusCode::OK,
                json!({"access_token": "basic-at", "refresh_token": "basic-rt-next",
                       "expires_in": 7200, "token_type": "bearer", "bot_id": "b1",
                       "workspace_id": "w1", "owner": {"type": "user", "user": {"id": "nu-1"}}}),
            )
        }
        _ => (StatusCode::NOT_FOUND, "no such fake").into_response(),
    }
}

async fn user_info(
    State(fake): State<Fake>,
    Path(kind): Path<String>,
    headers: HeaderMap,
) -> Response {
    let auth = header(&headers, header::AUTHORIZATION);
    fake.seen.lock().unwrap().push(Seen {
        route: format!("{kind}/me"),
        accept: header(&headers, header::ACCEPT),
        authorization: auth.clone(),
        content_type: None,
        client_id_header: header(&headers, "client-id"),
        params: HashMap::new(),
    });
    let token = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_default();
    match (kind.as_str(), token) {
        (_, "at-boom") => (StatusCode::BAD_GATEWAY, "bad gateway").into_response(),
        ("slack", "xoxp-user-token") => json_answer(
            StatusCode::OK,
            json!({"ok": true, "user_id": "U7", "team_id": "T42"}),
        ),
        ("slack", _) => json_answer(
            StatusCode::OK,
            json!({"ok": false, "error": "invalid_auth"}),
        ),
        ("github", "ghu_access") => {
            json_answer(StatusCode::OK, json!({"id": 583231, "login": "octocat"}))
        }
        ("twitch", "tw-at") if header(&headers, "client-id").as_deref() == Some(CLIENT_ID) => {
            json_answer(
                StatusCode::OK,
                json!({"data": [{"id": "141981764", "login": "twitchdev"}]}),
            )
        }
        ("google", "ya29.first") => json_answer(
            StatusCode::OK,
            json!({"sub": "110169484474386276334", "email": "a@example.com"}),
        ),
        _ => json_answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Bad credentials"}),
        ),
    }
}

async fn revoke(
    State(fake): State<Fake>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params_of(&headers, &body);
    fake.seen.lock().unwrap().push(Seen {
        route: format!("{kind}/revoke"),
        accept: header(&headers, header::ACCEPT),
        authorization: header(&headers, header::AUTHORIZATION),
        content_type: header(&headers, header::CONTENT_TYPE),
        client_id_header: None,
        params: p.clone(),
    });
    match kind.as_str() {
        "google" => match p.get("token").map(String::as_str) {
            Some("rt-boom") => (StatusCode::INTERNAL_SERVER_ERROR, "").into_response(),
            Some("already-dead") => json_answer(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_token", "error_description": "Token expired or revoked"}),
            ),
            Some(_) => StatusCode::OK.into_response(),
            None => json_answer(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"})),
        },
        "slack" => json_answer(StatusCode::OK, json!({"ok": true, "revoked": true})),
        "github" => {
            if header(&headers, header::AUTHORIZATION).as_deref() == Some(basic().as_str())
                && p.contains_key("access_token")
            {
                StatusCode::NO_CONTENT.into_response()
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_fake() -> (SocketAddr, Fake) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/{kind}/token", post(token))
        .route("/{kind}/me", any(user_info))
        .route("/{kind}/revoke", any(revoke))
        .route("/github/applications/{client}/token", any(github_revoke))
        .with_state(fake.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, fake)
}

async fn github_revoke(
    state: State<Fake>,
    Path(client): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    assert_eq!(client, CLIENT_ID);
    revoke(state, Path("github".into()), headers, body).await
}

fn http() -> reqwest::Client {
    switchboard::server::http_client().unwrap()
}

fn entry(provider_id: Option<&str>, extra: Value) -> AuthProviderConfig {
    AuthProviderConfig {
        id: format!("{}-test", provider_id.unwrap_or("custom")),
        description: Some("test".into()),
        enabled: true,
        provider_type: "oauth2".into(),
        provider_id: provider_id.map(str::to_owned),
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(SecretValue::new(CLIENT_SECRET)),
        extra,
    }
}

/// A built-in provider with every endpoint moved to the fake (Arcade's long form).
fn builtin_at(addr: SocketAddr, provider_id: &str, kind: &str) -> Provider {
    let base = format!("http://{addr}/{kind}");
    let cfg = entry(
        Some(provider_id),
        json!({"oauth2": {
            "authorize_request": {"endpoint": format!("{base}/authorize")},
            "token_request": {"endpoint": format!("{base}/token")},
            "user_info_request": {"endpoint": format!("{base}/me"), "triggers": {"on_token_grant": true}},
            "revoke_request": {"endpoint": format!("{base}/revoke")},
        }}),
    );
    resolve_provider(&cfg, "http://localhost:9099").unwrap()
}

fn assert_clean(err: &OAuthError, secrets: &[&str]) {
    let shown = format!("{err} {err:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret:?} leaked into {shown}");
    }
}

// ---- Google ----------------------------------------------------------------------------

#[tokio::test]
async fn google_code_exchange_posts_the_client_and_verifier_and_reads_the_grant() {
    let (addr, fake) = start_fake().await;
    let google = builtin_at(addr, "google", "google");
    let tokens = google
        .exchange_code(
            &http(),
            "http://gw/v1/oauth/callback",
            "code-1",
            Some("verifier-xyz"),
        )
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "ya29.first");
    assert_eq!(
        tokens.refresh_token.as_ref().map(SecretString::expose),
        Some("1//rt-google")
    );
    assert_eq!(tokens.expires_in, Some(3599));
    assert_eq!(
        tokens.scopes.as_deref().unwrap(),
        ["openid", "https://www.googleapis.com/auth/gmail.readonly"]
    );
    assert_eq!(tokens.extra, json!({"refresh_token_expires_in": 604799}));

    let seen = fake.last("google/token");
    assert_eq!(seen.params["grant_type"], "authorization_code");
    assert_eq!(seen.params["code"], "code-1");
    assert_eq!(seen.params["code_verifier"], "verifier-xyz");
    assert_eq!(seen.params["redirect_uri"], "http://gw/v1/oauth/callback");
    assert_eq!(seen.params["client_id"], CLIENT_ID);
    assert_eq!(seen.params["client_secret"], CLIENT_SECRET);
    assert_eq!(seen.authorization, None);
    assert_eq!(seen.accept.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn google_refresh_without_a_refresh_token_returns_none_so_the_old_one_is_kept() {
    let (addr, fake) = start_fake().await;
    let google = builtin_at(addr, "google", "google");
    let tokens = google.refresh(&http(), "1//rt-google").await.unwrap();
    assert_eq!(tokens.access_token.expose(), "ya29.refreshed");
    assert!(tokens.refresh_token.is_none());
    assert!(!google.quirks.rotates_refresh_token);
    assert!(google.quirks.refresh_omits_refresh_token);
    assert_eq!(
        fake.last("google/token").params["grant_type"],
        "refresh_token"
    );
}

#[tokio::test]
async fn google_authorization_url_asks_for_offline_access_and_consent() {
    let (addr, _fake) = start_fake().await;
    let google = builtin_at(addr, "google", "google");
    let url = google.authorization_url("http://gw/cb", "state-1", &["openid".into()], Some("ch"));
    assert!(url.starts_with(&format!("http://{addr}/google/authorize?")));
    assert!(url.contains("access_type=offline"));
    assert!(url.contains("prompt=consent"));
    assert!(url.contains("code_challenge=ch&code_challenge_method=S256"));
}

#[tokio::test]
async fn a_dead_refresh_token_is_invalid_grant_for_google_slack_and_github() {
    let (addr, _fake) = start_fake().await;
    let http = http();
    for kind in ["google", "slack", "github"] {
        let p = builtin_at(addr, kind, kind);
        let e = p.refresh(&http, "rt-dead").await.unwrap_err();
        assert!(matches!(e, OAuthError::InvalidGrant(_)), "{kind}: {e:?}");
        assert!(!e.is_retryable());
    }
    let slack = builtin_at(addr, "slack", "slack");
    for rt in ["rt-revoked", "rt-grant"] {
        let e = slack.refresh(&http, rt).await.unwrap_err();
        assert!(matches!(e, OAuthError::InvalidGrant(_)), "{rt}: {e:?}");
    }
}

#[tokio::test]
async fn other_oauth_errors_are_rejected_with_their_code() {
    let (addr, _fake) = start_fake().await;
    let http = http();
    let google = builtin_at(addr, "google", "google");
    let e = google
        .exchange_code(&http, "http://gw/cb", "bad-scope", None)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        OAuthError::Rejected {
            error: "invalid_scope".into(),
            description: Some("Some requested scopes were invalid.".into())
        }
    );
    assert_eq!(e.error_code(), Some("invalid_scope"));

    let github = builtin_at(addr, "github", "github");
    let e = github
        .exchange_code(&http, "http://gw/cb", "bad-code", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OAuthError::Rejected { error, .. } if error == "bad_verification_code"),
        "{e:?}"
    );

    let slack = builtin_at(addr, "slack", "slack");
    let e = slack
        .exchange_code(&http, "http://gw/cb", "bad-code", None)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        OAuthError::Rejected {
            error: "invalid_code".into(),
            description: None
        }
    );

    let e = google.refresh(&http, "rt-unauthorized").await.unwrap_err();
    assert!(
        matches!(&e, OAuthError::Rejected { error, .. } if error == "http_401"),
        "{e:?}"
    );
}

// ---- Failures that keep the tokens --------------------------------------------------------

#[tokio::test]
async fn a_provider_500_or_503_is_unavailable_and_retryable() {
    let (addr, _fake) = start_fake().await;
    let google = builtin_at(addr, "google", "google");
    for rt in ["rt-boom", "rt-busy"] {
        let e = google.refresh(&http(), rt).await.unwrap_err();
        assert!(matches!(e, OAuthError::Unavailable(_)), "{rt}: {e:?}");
        assert!(e.is_retryable());
    }
}

#[tokio::test]
async fn a_slow_provider_times_out_as_unavailable() {
    let (addr, _fake) = start_fake().await;
    let mut google = builtin_at(addr, "google", "google");
    google.timeout = Duration::from_millis(200);
    let e = google.refresh(&http(), "rt-slow").await.unwrap_err();
    assert!(
        matches!(&e, OAuthError::Unavailable(m) if m.contains("did not answer")),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable() {
    // Bound but never listening, and held: connections are refused, and no other test
    // process can take the port meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let google = builtin_at(addr, "google", "google");
    let e = google.refresh(&http(), "rt-any").await.unwrap_err();
    assert!(matches!(e, OAuthError::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn answers_that_are_not_token_responses_are_bad_responses() {
    let (addr, _fake) = start_fake().await;
    let google = builtin_at(addr, "google", "google");
    for rt in ["rt-html", "rt-no-access-token"] {
        let e = google.refresh(&http(), rt).await.unwrap_err();
        assert!(matches!(e, OAuthError::BadResponse(_)), "{rt}: {e:?}");
    }
}

#[tokio::test]
async fn a_provider_echoing_secrets_does_not_leak_them_into_the_error() {
    let (addr, _fake) = start_fake().await;
    let google = builtin_at(addr, "google", "google");
    let e = google.refresh(&http(), "rt-echo-secret").await.unwrap_err();
    assert!(matches!(&e, OAuthError::Rejected { error, .. } if error == "invalid_request"));
    assert!(e.to_string().contains("is malformed"), "{e}");
    assert_clean(&e, &["rt-echo-secret", CLIENT_SECRET]);

    let e = google.refresh(&http(), "rt-echo-dead").await.unwrap_err();
    assert!(matches!(e, OAuthError::InvalidGrant(_)));
    assert_clean(&e, &["rt-echo-dead", CLIENT_SECRET]);
}

// ---- Slack v2 ---------------------------------------------------------------------------

#[tokio::test]
async fn slack_exchange_takes_the_user_token_from_authed_user_and_keeps_no_secret_extras() {
    let (addr, _fake) = start_fake().await;
    let slack = builtin_at(addr, "slack", "slack");
    let tokens = slack
        .exchange_code(&http(), "http://gw/cb", "code-ok", None)
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "xoxp-user-token");
    assert_eq!(
        tokens.refresh_token.as_ref().map(SecretString::expose),
        Some("xoxe-1-first")
    );
    assert_eq!(tokens.expires_in, Some(43200));
    assert_eq!(
        tokens.scopes.as_deref().unwrap(),
        ["search:read", "users:read"]
    );
    assert_eq!(tokens.provider_user_id.as_deref(), Some("U7"));
    assert_eq!(tokens.extra["team_id"], "T42");
    let extra = tokens.extra.to_string();
    assert!(
        !extra.contains("xoxb") && !extra.contains("hooks.slack.com"),
        "{extra}"
    );
    assert!(!format!("{tokens:?}").contains("xoxp-user-token"));
}

#[tokio::test]
async fn slack_refresh_reads_the_flat_answer_and_the_rotated_refresh_token() {
    let (addr, _fake) = start_fake().await;
    let slack = builtin_at(addr, "slack", "slack");
    let tokens = slack.refresh(&http(), "xoxe-1-first").await.unwrap();
    assert_eq!(tokens.access_token.expose(), "xoxp-refreshed");
    assert_eq!(
        tokens.refresh_token.as_ref().map(SecretString::expose),
        Some("xoxe-1-rotated")
    );
    assert!(slack.quirks.rotates_refresh_token);
}

#[tokio::test]
async fn slack_user_info_and_revocation_use_auth_test_and_auth_revoke() {
    let (addr, fake) = start_fake().await;
    let slack = builtin_at(addr, "slack", "slack");
    let info = slack
        .user_info(&http(), "xoxp-user-token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slack.user_id_from_info(&info).as_deref(), Some("U7"));
    let e = slack.user_info(&http(), "xoxp-stale").await.unwrap_err();
    assert!(
        matches!(&e, OAuthError::Rejected { error, .. } if error == "invalid_auth"),
        "{e:?}"
    );

    assert!(
        slack
            .revoke_grant(&http(), "xoxp-user-token", Some("xoxe-1"))
            .await
            .unwrap()
    );
    let seen = fake.last("slack/revoke");
    assert_eq!(
        seen.authorization.as_deref(),
        Some("Bearer xoxp-user-token")
    );
}

// ---- GitHub ----------------------------------------------------------------------------

#[tokio::test]
async fn github_is_asked_for_json_and_its_answer_is_read() {
    let (addr, fake) = start_fake().await;
    let github = builtin_at(addr, "github", "github");
    let tokens = github.refresh(&http(), "ghr_old").await.unwrap();
    assert_eq!(tokens.access_token.expose(), "ghu_access");
    assert_eq!(
        tokens.refresh_token.as_ref().map(SecretString::expose),
        Some("ghr_rotated")
    );
    assert_eq!(tokens.expires_in, Some(28800));
    assert_eq!(tokens.scopes.as_deref().unwrap(), ["repo", "gist"]);
    assert_eq!(
        fake.last("github/token").accept.as_deref(),
        Some("application/json")
    );
}

#[tokio::test]
async fn a_form_encoded_github_answer_is_read_too() {
    let (addr, _fake) = start_fake().await;
    let github = builtin_at(addr, "github", "github-stubborn");
    let tokens = github
        .exchange_code(&http(), "http://gw/cb", "code-ok", None)
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "ghu_access");
    assert_eq!(tokens.expires_in, Some(28800));
    assert_eq!(tokens.extra["refresh_token_expires_in"], 15811200);
    let e = github.refresh(&http(), "rt-dead").await.unwrap_err();
    assert!(matches!(e, OAuthError::InvalidGrant(_)), "{e:?}");
    let e = github
        .exchange_code(&http(), "http://gw/cb", "bad-code", None)
        .await
        .unwrap_err();
    assert!(matches!(&e, OAuthError::Rejected { error, .. } if error == "bad_verification_code"));
}

#[tokio::test]
async fn github_user_id_is_numeric_and_revocation_deletes_with_basic_auth() {
    let (addr, fake) = start_fake().await;
    let base = format!("http://{addr}/github");
    let cfg = entry(
        Some("github"),
        json!({
            "token": {"url": format!("{base}/token")},
            "user_info": {"url": format!("{base}/me")},
            "revoke": {"url": format!("{base}/applications/{{client_id}}/token")},
        }),
    );
    let github = resolve_provider(&cfg, "http://localhost:9099").unwrap();
    let info = github
        .user_info(&http(), "ghu_access")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(github.user_id_from_info(&info).as_deref(), Some("583231"));
    let e = github.user_info(&http(), "ghu_expired").await.unwrap_err();
    assert!(matches!(&e, OAuthError::Rejected { error, .. } if error == "invalid_token"));
    assert_clean(&e, &["ghu_expired"]);

    assert!(
        github
            .revoke_grant(&http(), "ghu_access", Some("ghr_x"))
            .await
            .unwrap()
    );
    let seen = fake.last("github/revoke");
    assert_eq!(seen.authorization.as_deref(), Some(basic().as_str()));
    assert_eq!(seen.params["access_token"], "ghu_access");
}

// ---- Other quirks ------------------------------------------------------------------------

#[tokio::test]
async fn basic_auth_providers_send_the_client_in_the_header_only() {
    let (addr, fake) = start_fake().await;
    for provider_id in ["reddit", "x", "zoom", "dropbox", "spotify"] {
        let p = builtin_at(addr, provider_id, "basic");
        assert_eq!(p.client_auth, ClientAuth::Basic, "{provider_id}");
        let tokens = p.refresh(&http(), "basic-rt").await.unwrap();
        assert_eq!(
            tokens.refresh_token.as_ref().map(SecretString::expose),
            Some("basic-rt-next")
        );
        let seen = fake.last("basic/token");
        assert!(!seen.params.contains_key("client_secret"), "{provider_id}");
        assert!(!seen.params.contains_key("client_id"), "{provider_id}");
    }
}

#[tokio::test]
async fn notion_sends_json_with_basic_auth_and_names_the_owner() {
    let (addr, fake) = start_fake().await;
    let notion = builtin_at(addr, "notion", "notion");
    let tokens = notion
        .exchange_code(&http(), "http://gw/cb", "code-ok", None)
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "basic-at");
    assert_eq!(tokens.provider_user_id.as_deref(), Some("nu-1"));
    assert_eq!(tokens.extra["workspace_id"], "w1");
    let seen = fake.last("notion/token");
    assert!(seen.content_type.unwrap().contains("application/json"));
    assert_eq!(seen.params["code"], "code-ok");
}

#[tokio::test]
async fn twitch_scope_array_is_read_and_user_info_sends_the_client_id() {
    let (addr, fake) = start_fake().await;
    let twitch = builtin_at(addr, "twitch", "twitch");
    let tokens = twitch
        .exchange_code(&http(), "http://gw/cb", "code-ok", None)
        .await
        .unwrap();
    assert_eq!(
        tokens.scopes.as_deref().unwrap(),
        ["chat:read", "user:read:email"]
    );
    let info = twitch
        .user_info(&http(), tokens.access_token.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        twitch.user_id_from_info(&info).as_deref(),
        Some("141981764")
    );
    assert_eq!(
        fake.last("twitch/me").client_id_header.as_deref(),
        Some(CLIENT_ID)
    );
}

#[tokio::test]
async fn x_requires_pkce_and_each_rotating_provider_says_so() {
    let x = resolve_provider(&entry(Some("x"), json!({})), "http://localhost:9099").unwrap();
    assert!(x.pkce && x.quirks.rotates_refresh_token);
    for id in [
        "discord",
        "x",
        "zoom",
        "box",
        "atlassian",
        "slack",
        "github",
        "microsoft",
        "sandbox",
    ] {
        let p = resolve_provider(&entry(Some(id), json!({})), "http://localhost:9099").unwrap();
        assert!(p.quirks.rotates_refresh_token, "{id}");
    }
    for id in ["google", "dropbox", "reddit", "linkedin"] {
        let p = resolve_provider(&entry(Some(id), json!({})), "http://localhost:9099").unwrap();
        assert!(!p.quirks.rotates_refresh_token, "{id}");
    }
}

// ---- User info and revocation --------------------------------------------------------------

#[tokio::test]
async fn user_info_failures_map_like_token_failures() {
    let (addr, _fake) = start_fake().await;
    let google = builtin_at(addr, "google", "google");
    let info = google
        .user_info(&http(), "ya29.first")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        google.user_id_from_info(&info).as_deref(),
        Some("110169484474386276334")
    );
    let e = google.user_info(&http(), "at-boom").await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");

    let mut no_info = google.clone();
    no_info.endpoints.user_info = None;
    assert_eq!(
        no_info.user_info(&http(), "ya29.first").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn rfc7009_revocation_sends_the_refresh_token_and_counts_dead_ones_as_revoked() {
    let (addr, fake) = start_fake().await;
    let google = builtin_at(addr, "google", "google");
    assert!(
        google
            .revoke_grant(&http(), "ya29.first", Some("1//rt-google"))
            .await
            .unwrap()
    );
    let seen = fake.last("google/revoke");
    assert_eq!(seen.params["token"], "1//rt-google");
    assert!(google.revoke(&http(), "already-dead").await.unwrap());
    let e = google.revoke(&http(), "rt-boom").await.unwrap_err();
    assert!(e.is_retryable());

    let microsoft = resolve_provider(&entry(Some("microsoft"), json!({})), "http://x").unwrap();
    assert!(!microsoft.revoke(&http(), "anything").await.unwrap());
}

// ---- Custom providers and placeholders ----------------------------------------------------

#[tokio::test]
async fn a_custom_provider_applies_params_placeholders_and_response_map() {
    let (addr, fake) = start_fake().await;
    let base = format!("http://{addr}/slack");
    let cfg = entry(
        Some("hooli"),
        json!({"oauth2": {
            "scope_delimiter": ",",
            "authorize_request": {"endpoint": format!("{base}/authorize"),
                "params": {"user_scope": "{{scopes}}", "scope": "", "team": "T42"}},
            "token_request": {"endpoint": format!("{base}/token"),
                "params": {"extra_client": "{{client_id}}", "verifier_copy": "{{code_verifier}}"},
                "response_map": {"access_token": "$.authed_user.access_token",
                                 "refresh_token": "$.authed_user.refresh_token",
                                 "user_id": "$.authed_user.id"}},
            "refresh_request": {"params": {"rt_copy": "{{refresh_token}}"}}
        }}),
    );
    let hooli = resolve_provider(&cfg, "http://localhost:9099").unwrap();
    assert_eq!(hooli.provider_id, "hooli");
    assert_eq!(hooli.source, ProviderSource::Config);

    let url = hooli.authorization_url("http://gw/cb", "s1", &["a".into(), "b".into()], None);
    assert!(url.contains("user_scope=a%2Cb"), "{url}");
    assert!(url.contains("team=T42"));
    assert!(!url.contains("&scope="), "{url}");

    let tokens = hooli
        .exchange_code(&http(), "http://gw/cb", "code-ok", None)
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "xoxp-user-token");
    assert_eq!(tokens.provider_user_id.as_deref(), Some("U7"));
    let seen = fake.last("slack/token");
    assert_eq!(seen.params["extra_client"], CLIENT_ID);
    assert!(!seen.params.contains_key("verifier_copy"));

    hooli.refresh(&http(), "xoxe-1-first").await.unwrap();
    let seen = fake.last("slack/token");
    assert_eq!(seen.params["rt_copy"], "xoxe-1-first");
}

// ---- Config read from engine.yaml ----------------------------------------------------------

fn load_providers(yaml: &str) -> Vec<AuthProviderConfig> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.yaml");
    std::fs::write(&path, yaml).unwrap();
    let env: HashMap<String, String> = [
        ("HOOLI_CLIENT_ID".to_owned(), "hooli-id".to_owned()),
        ("HOOLI_CLIENT_SECRET".to_owned(), "hooli-secret".to_owned()),
    ]
    .into();
    let loaded = load(&LoadOptions {
        config_path: Some(path),
        env_file: None,
        env,
        data_dir: dir.path().to_owned(),
        config_home: None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    loaded.config.auth_providers
}

#[test]
fn arcades_long_form_from_yaml_resolves_with_expanded_secrets() {
    let providers = load_providers(
        r#"
auth:
  user_verifier: none
  providers:
    - id: hooli
      description: "Hooli OAuth 2.0 provider"
      enabled: true
      type: oauth2
      client_id: ${env:HOOLI_CLIENT_ID}
      client_secret: ${env:HOOLI_CLIENT_SECRET}
      oauth2:
        scope_delimiter: ","
        pkce:
          enabled: true
          code_challenge_method: S256
        authorize_request:
          endpoint: "https://hooli.example/oauth/authorize"
          params:
            response_type: code
            client_id: "{{client_id}}"
            redirect_uri: "{{redirect_uri}}"
            scope: "{{scopes}}"
            state: "{{state}}"
        token_request:
          endpoint: "https://hooli.example/oauth/token"
          auth_method: client_secret_basic
          params:
            grant_type: authorization_code
            redirect_uri: "{{redirect_uri}}"
        refresh_request:
          endpoint: "https://hooli.example/oauth/refresh"
        user_info_request:
          endpoint: "https://api.hooli.example/me"
          triggers:
            on_token_grant: true
            on_token_refresh: false
    - id: google-internal
      type: oauth2
      provider_id: google
      client_id: internal
      client_secret: s1
    - id: google-external
      type: oauth2
      provider_id: google
      client_id: external
      client_secret: s2
      oauth2:
        token_request:
          endpoint: "http://127.0.0.1:1/token"
"#,
    );
    let resolved: Vec<Provider> = providers
        .iter()
        .map(|p| resolve_provider(p, "http://localhost:9099").unwrap())
        .collect();
    let hooli = &resolved[0];
    assert_eq!(
        (hooli.id.as_str(), hooli.provider_id.as_str()),
        ("hooli", "oauth2")
    );
    assert_eq!(hooli.client_id, "hooli-id");
    assert_eq!(
        hooli.client_secret.as_ref().unwrap().expose(),
        "hooli-secret"
    );
    assert_eq!(hooli.client_auth, ClientAuth::Basic);
    assert!(hooli.pkce);
    assert_eq!(
        hooli.endpoints.refresh,
        "https://hooli.example/oauth/refresh"
    );
    let url = hooli.authorization_url("http://gw/cb", "st", &["r".into(), "w".into()], Some("c"));
    assert!(
        url.contains("scope=r%2Cw") && url.contains("client_id=hooli-id"),
        "{url}"
    );

    // Two providers for one service, one with its token endpoint moved.
    assert_eq!(resolved[1].provider_id, "google");
    assert_eq!(resolved[2].provider_id, "google");
    assert_eq!(
        resolved[1].endpoints.token,
        "https://oauth2.googleapis.com/token"
    );
    assert_eq!(resolved[2].endpoints.token, "http://127.0.0.1:1/token");
    assert_eq!(
        resolved[2].endpoints.authorize,
        resolved[1].endpoints.authorize
    );
}

#[test]
fn the_seeds_short_custom_form_from_yaml_resolves() {
    let providers = load_providers(
        r#"
auth:
  user_verifier: none
  providers:
    - id: custom-service
      description: "Custom OAuth service"
      enabled: true
      type: oauth2
      authorization:
        url: https://auth.example.com/oauth/authorize
        method: GET
      token:
        url: https://auth.example.com/oauth/token
        method: POST
        auth_method: client_secret_post
      client_id: ${env:HOOLI_CLIENT_ID}
      client_secret: ${env:HOOLI_CLIENT_SECRET}
      scopes:
        - read
        - write
"#,
    );
    let p = resolve_provider(&providers[0], "http://localhost:9099").unwrap();
    assert_eq!(p.provider_id, "oauth2");
    assert_eq!(p.endpoints.token, "https://auth.example.com/oauth/token");
    assert_eq!(p.client_auth, ClientAuth::Post);
    assert_eq!(p.default_scopes, ["read", "write"]);
}

#[test]
fn config_mistakes_name_the_key() {
    let unknown = resolve_provider(&entry(Some("myspace"), json!({})), "http://x").unwrap_err();
    assert_eq!(unknown.path, "provider_id");
    assert!(
        unknown
            .message
            .starts_with("unknown provider_id 'myspace' (built-in: ")
    );

    let mut no_client = entry(Some("google"), json!({}));
    no_client.client_id = None;
    assert_eq!(
        resolve_provider(&no_client, "http://x")
            .unwrap_err()
            .to_string(),
        "client_id: required"
    );

    let no_token = entry(
        None,
        json!({"oauth2": {"authorize_request": {"endpoint": "https://a.example/auth"}}}),
    );
    assert_eq!(
        resolve_provider(&no_token, "http://x")
            .unwrap_err()
            .to_string(),
        "oauth2.token_request.endpoint: required for a custom provider"
    );
}
