//! Issue 16, items 2, 6 and 10, as an attacker would try them against a real gateway on
//! 127.0.0.1:0:
//! - a provider's client secret, sent in any layout the admin API takes (top level,
//!   Arcade's `oauth2.client_secret`, a literal secret among a request's `params`), never
//!   reaches the database file; rows stored in plaintext before are sealed on start;
//! - a token endpoint that echoes the request's `Authorization: Basic` header or the
//!   client secret into its `error_description` gets it nowhere (callback page, stored
//!   failure reason, REST flow status, log), in any encoding;
//! - a custom provider uses PKCE S256 unless its config opts out.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use common::fake_provider::{CLIENT_ID, CLIENT_SECRET, FakeProvider};
use common::flows::{browse, call, flow_status, oauth_config, open_link};
use common::logs::capture_logs_on_this_thread;
use common::postgres::with_postgres;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use switchboard::config::{AuthProviderConfig, Config, SecretValue, StorageConfig};
use switchboard::oauth::provider::{OAuthError, Provider, resolve_provider};
use switchboard::server::Gateway;
use switchboard::store::StoredProviderRecord;
use tokio::net::TcpListener;
use url::Url;

const ROOT_KEY: &str = "provider-security-root-key-0123456789";

/// Root keys, no user verifier (the flow completes at the callback), and the test's
/// providers on loopback allowed.
fn base(c: &mut Config) {
    oauth_config(c, ROOT_KEY);
}

/// Starts a flow for `user` with the provider whose config id is `id`; returns the flow
/// id and the provider URL the user's browser is sent to.
async fn start_flow(gw: &TestGateway, id: &str, user: &str) -> (String, String) {
    let (status, auth) = call(
        gw,
        Method::POST,
        "/v1/auth/authorize",
        Some(
            json!({"auth_requirement": {"id": id, "oauth2": {"scopes": ["read"]}},
                    "user_id": user}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    assert_eq!(auth["status"], "pending", "{auth}");
    let provider_url = open_link(auth["url"].as_str().unwrap()).await;
    (auth["id"].as_str().unwrap().to_owned(), provider_url)
}

/// The whole flow against the fake provider; the fake checks the client secret and the
/// PKCE verifier, so a completed flow proves both were right.
async fn connect(gw: &TestGateway, fake: &FakeProvider, id: &str, user: &str) -> String {
    let (flow_id, provider_url) = start_flow(gw, id, user).await;
    let approval = fake.approve(&provider_url, &format!("{user}-login"));
    let (status, page, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 200, "{page}");
    let done = flow_status(gw, &flow_id, 5).await;
    assert_eq!(done["status"], "completed", "{done}");
    provider_url
}

/// `stored_providers` as the SQLite file holds it, read with a connection of our own.
async fn stored_rows(dir: &Path) -> Vec<(String, String, Option<String>)> {
    use sqlx::Connection;
    let db = files_under(dir)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "db"))
        .expect("a SQLite file");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query_as("SELECT id, config_json, client_secret_sealed FROM stored_providers ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

// --- 2. Client secrets at rest ---------------------------------------------------------

const PATCHED_SECRET: &str = "patched-client-secret-abcdef0123456789";
const PARAM_SECRET: &str = "literal-param-api-key-9876543210";

/// A `PATCH` of the stored provider `id`.
async fn patch_provider(gw: &TestGateway, id: &str, patch: Value) -> (u16, Value) {
    let path = format!("/v1/admin/auth_providers/{id}");
    call(gw, Method::PATCH, &path, Some(patch)).await
}

/// Arcade's long form (what arcadepy's `auth_providers.create(oauth2={...})` sends),
/// pointed at the fake provider, with the client inside `oauth2`.
fn arcade_layout(fake: &FakeProvider, secret: &str) -> Value {
    json!({
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "pkce": {"enabled": true, "code_challenge_method": "S256"},
        "authorize_request": {"endpoint": fake.url("/authorize")},
        "token_request": {
            "endpoint": fake.url("/token"),
            "params": {"api_key": PARAM_SECRET, "client_secret": "{{client_secret}}"},
        },
    })
}

#[tokio::test]
async fn a_client_secret_sent_in_either_layout_or_patched_never_reaches_the_database_file() {
    let fake = FakeProvider::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = start_gateway_on(listener, base).await;

    // The top-level layout.
    let mut top = fake.provider_extra();
    top["id"] = json!("top");
    top["client_id"] = json!(CLIENT_ID);
    top["client_secret"] = json!(CLIENT_SECRET);
    let (status, created) = call(&gw, Method::POST, "/v1/admin/auth_providers", Some(top)).await;
    assert_eq!(status, 201, "{created}");
    // Arcade's layout, as arcadepy sends it.
    let arcade = json!({"id": "arcade", "description": "Arcade layout",
                        "oauth2": arcade_layout(&fake, CLIENT_SECRET)});
    let (status, created_arcade) =
        call(&gw, Method::POST, "/v1/admin/auth_providers", Some(arcade)).await;
    assert_eq!(status, 201, "{created_arcade}");
    for view in [&created, &created_arcade] {
        let text = view.to_string();
        assert!(
            !text.contains(CLIENT_SECRET) && !text.contains(PARAM_SECRET),
            "{text}"
        );
        assert_eq!(view["client_secret"]["exists"], true, "{view}");
        assert_eq!(view["oauth2"]["client_secret"]["exists"], true, "{view}");
        assert_eq!(
            view["oauth2"]["client_secret"]["binding"], "static",
            "{view}"
        );
    }

    // PATCH in Arcade's layout with another secret, then back; and a PATCH without one.
    let patch = json!({"oauth2": arcade_layout(&fake, PATCHED_SECRET)});
    let (status, patched) = patch_provider(&gw, "arcade", patch).await;
    assert_eq!(status, 200, "{patched}");
    assert!(!patched.to_string().contains(PATCHED_SECRET), "{patched}");
    assert_eq!(patched["oauth2"]["client_secret"]["exists"], true);
    let rows = stored_rows(gw.dir.path()).await;
    assert!(
        rows.iter()
            .all(|(_, json, _)| !json.contains(PATCHED_SECRET)),
        "{rows:?}"
    );
    let patch = json!({"oauth2": arcade_layout(&fake, CLIENT_SECRET)});
    let (status, patched) = patch_provider(&gw, "arcade", patch).await;
    assert_eq!(status, 200, "{patched}");
    let (status, patched) = patch_provider(&gw, "top", json!({"description": "renamed"})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["client_secret"]["exists"], true);

    // The flows work with the sealed secrets: the fake checks the client secret.
    connect(&gw, &fake, "top", "alice").await;
    connect(&gw, &fake, "arcade", "bob").await;

    let rows = stored_rows(gw.dir.path()).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (id, json, sealed) in &rows {
        for secret in [CLIENT_SECRET, PATCHED_SECRET, PARAM_SECRET] {
            assert!(
                !json.contains(secret),
                "{id}: a secret in config_json: {json}"
            );
        }
        assert!(
            sealed.is_some(),
            "{id}: the client secret is sealed in its column"
        );
    }
    for file in files_under(gw.dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in [CLIENT_SECRET, PATCHED_SECRET, PARAM_SECRET] {
            assert!(
                !bytes_contain(&bytes, secret),
                "a provider secret is in {}",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn a_client_secret_given_twice_with_different_values_is_refused() {
    let fake = FakeProvider::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = start_gateway_on(listener, base).await;
    let body = json!({"id": "twice", "client_secret": "one-secret-value",
                      "oauth2": arcade_layout(&fake, "another-secret-value")});
    let (status, refused) = call(&gw, Method::POST, "/v1/admin/auth_providers", Some(body)).await;
    assert_eq!(status, 400, "{refused}");
    let text = refused.to_string();
    assert!(text.contains("client_secret"), "{text}");
    assert!(!text.contains("one-secret-value") && !text.contains("another-secret-value"));
    assert!(
        gw.store
            .get_stored_provider("twice")
            .await
            .unwrap()
            .is_none()
    );
}

/// What an earlier version stored for arcadepy's `create(oauth2={...client_secret...})`.
fn plaintext_row(fake: &FakeProvider) -> StoredProviderRecord {
    StoredProviderRecord {
        id: "legacy".into(),
        config_json: json!({"id": "legacy", "oauth2": arcade_layout(fake, CLIENT_SECRET)})
            .to_string(),
        client_secret_sealed: None,
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

/// Stores a plaintext row, then starts a gateway on the same store: on start the row is
/// sealed and rewritten, once; the provider still completes a flow.
async fn plaintext_row_is_sealed_on_start(storage: Option<StorageConfig>) {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    base(&mut config);
    if let Some(storage) = storage {
        config.storage = storage;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    config.api.public_url = format!("http://{}", listener.local_addr().unwrap());
    {
        let store = switchboard::store::open(&config.storage).await.unwrap();
        store
            .put_stored_provider(&plaintext_row(&fake), true)
            .await
            .unwrap();
    }
    let sqlite = !matches!(config.storage, StorageConfig::Postgres { .. });
    let data_dir = dir.path().to_path_buf();
    let gateway = Gateway::start(config).await.expect("gateway starts");
    let gw = serve_gateway(gateway, listener, dir).await;
    if sqlite {
        // Not in the database file, its free pages or its write-ahead log either.
        for file in files_under(&data_dir) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes_contain(&bytes, CLIENT_SECRET) && !bytes_contain(&bytes, PARAM_SECRET),
                "a plaintext secret is left in {}",
                file.display()
            );
        }
    }

    let sealed = gw
        .store
        .get_stored_provider("legacy")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !sealed.config_json.contains(CLIENT_SECRET),
        "{}",
        sealed.config_json
    );
    assert!(
        !sealed.config_json.contains(PARAM_SECRET),
        "{}",
        sealed.config_json
    );
    assert!(sealed.client_secret_sealed.is_some());
    assert!(sealed.updated_at_ms > 1, "the row was rewritten");

    // Loading again changes nothing: sealing is idempotent.
    let (status, view) = call(&gw, Method::GET, "/v1/admin/auth_providers/legacy", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["oauth2"]["client_secret"]["exists"], true, "{view}");
    assert!(!view.to_string().contains(CLIENT_SECRET));
    let again = gw
        .store
        .get_stored_provider("legacy")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, sealed);

    connect(&gw, &fake, "legacy", "carol").await;
}

#[tokio::test]
async fn a_provider_stored_in_plaintext_before_is_sealed_on_start_on_sqlite() {
    plaintext_row_is_sealed_on_start(None).await;
}

#[tokio::test]
async fn a_provider_stored_in_plaintext_before_is_sealed_on_start_on_postgres() {
    with_postgres("sb_provsec", |url| {
        plaintext_row_is_sealed_on_start(Some(StorageConfig::Postgres {
            url: SecretValue::new(url),
        }))
    })
    .await;
}

// --- 6. Secrets echoed back by a provider ----------------------------------------------

/// Has characters that every encoding changes (`/`, `+`, `~`, `=`, a space).
const HOSTILE_SECRET: &str = "hostile/client+secret~value= 0123456789";
const HOSTILE_CLIENT: &str = "hostile-client";

/// How the hostile provider echoes what it got into `error_description`.
#[derive(Debug, Clone, Copy)]
enum Echo {
    /// The `Authorization` header as received (`Basic base64(id:secret)`).
    Header,
    /// The Basic credential decoded, `client_id:client_secret`.
    DecodedPair,
    /// The Basic credential re-encoded URL-safe, without padding.
    PairUrlSafe,
    /// The request body as received (form-encoded `client_secret=...`).
    Body,
    /// The whole body in base64: the secret at an arbitrary offset.
    BodyBase64,
    /// The client secret it knows, raw.
    Secret,
    SecretBase64,
    SecretUrlSafeNoPad,
    /// Percent-encoded as RFC 3986 does (`%2F`, `%20`).
    SecretPercent,
}

const ECHOES: [Echo; 9] = [
    Echo::Header,
    Echo::DecodedPair,
    Echo::PairUrlSafe,
    Echo::Body,
    Echo::BodyBase64,
    Echo::Secret,
    Echo::SecretBase64,
    Echo::SecretUrlSafeNoPad,
    Echo::SecretPercent,
];

fn percent_encode_all(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A provider whose endpoints answer errors quoting what they received.
#[derive(Clone)]
struct Hostile {
    addr: SocketAddr,
    echo: Arc<Mutex<Echo>>,
    /// Requests that reached any endpoint.
    hits: Arc<AtomicUsize>,
}

impl Hostile {
    async fn start() -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hostile = Hostile {
            addr: listener.local_addr().unwrap(),
            echo: Arc::new(Mutex::new(Echo::Header)),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/token", post(hostile_answer))
            .route("/revoke", post(hostile_answer))
            .route("/userinfo", get(hostile_answer))
            .with_state(hostile.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        hostile
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn set(&self, echo: Echo) {
        *self.echo.lock().unwrap() = echo;
    }

    /// A custom provider at this server; `basic`: `client_secret_basic`, else the
    /// secret goes in the form body.
    fn config(&self, id: &str, basic: bool) -> AuthProviderConfig {
        let auth_method = if basic {
            "client_secret_basic"
        } else {
            "client_secret_post"
        };
        AuthProviderConfig {
            id: id.into(),
            description: Some("Hostile".into()),
            enabled: true,
            provider_type: "oauth2".into(),
            provider_id: Some("hostile".into()),
            client_id: Some(HOSTILE_CLIENT.into()),
            client_secret: Some(SecretValue::new(HOSTILE_SECRET)),
            extra: json!({
                "authorization": {"url": self.url("/authorize")},
                "token": {"url": self.url("/token"), "auth_method": auth_method},
                "revoke": {"url": self.url("/revoke")},
                "user_info": {"url": self.url("/userinfo")},
            }),
        }
    }
}

async fn hostile_answer(State(h): State<Hostile>, headers: HeaderMap, body: Bytes) -> Response {
    h.hits.fetch_add(1, Ordering::SeqCst);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let pair = authorization
        .strip_prefix("Basic ")
        .and_then(|b| STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let echo = match *h.echo.lock().unwrap() {
        Echo::Header => authorization,
        Echo::DecodedPair => pair,
        Echo::PairUrlSafe => URL_SAFE_NO_PAD.encode(&pair),
        Echo::Body => body_text,
        Echo::BodyBase64 => STANDARD.encode(&body),
        Echo::Secret => HOSTILE_SECRET.to_owned(),
        Echo::SecretBase64 => STANDARD.encode(HOSTILE_SECRET),
        Echo::SecretUrlSafeNoPad => URL_SAFE_NO_PAD.encode(HOSTILE_SECRET),
        Echo::SecretPercent => percent_encode_all(HOSTILE_SECRET),
    };
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "error": "invalid_client",
            "error_description": format!("client authentication failed for [{echo}]"),
        })),
    )
        .into_response()
}

/// Every form the secret (alone or in the Basic pair) could leak in.
fn leaks_of(secrets: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let pair = format!("{HOSTILE_CLIENT}:{HOSTILE_SECRET}");
    for s in secrets.iter().copied().chain([pair.as_str()]) {
        out.push(s.to_owned());
        out.push(url::form_urlencoded::byte_serialize(s.as_bytes()).collect());
        out.push(percent_encode_all(s));
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            out.push(engine.encode(s));
        }
    }
    // Inside a longer base64 text (a whole echoed body): the characters that depend on
    // the secret's bytes alone, raw or form-encoded, at each of the three alignments.
    for s in [
        HOSTILE_SECRET.to_owned(),
        url::form_urlencoded::byte_serialize(HOSTILE_SECRET.as_bytes()).collect(),
    ] {
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(s.as_bytes());
            for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
                let encoded = engine.encode(&shifted);
                out.push(
                    encoded[(8 * offset).div_ceil(6)..(8 * (offset + s.len())) / 6].to_owned(),
                );
            }
        }
    }
    // The distinctive middle of the secret, in case a longer encoding was cut.
    out.push("client+secret~value".into());
    out.push("client%2Bsecret".into());
    out
}

fn assert_no_leak(what: &str, text: &str, leaks: &[String]) {
    for leak in leaks {
        assert!(
            !text.contains(leak.as_str()),
            "{what} holds the secret as {leak:?}: {text}"
        );
    }
}

// Current-thread runtime: the gateway and the hostile provider log on this thread, so the
// capture sees every line.
#[tokio::test]
async fn a_token_endpoint_echoing_the_client_secret_gets_it_nowhere() {
    let logs = capture_logs_on_this_thread();
    let hostile = Hostile::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = hostile.clone();
    let gw = start_gateway_on(listener, move |c| {
        base(c);
        c.auth_providers.push(h.config("hostile-basic", true));
        c.auth_providers.push(h.config("hostile-post", false));
    })
    .await;
    let leaks = leaks_of(&[HOSTILE_SECRET]);

    for (i, echo) in ECHOES.into_iter().enumerate() {
        hostile.set(echo);
        for provider in ["hostile-basic", "hostile-post"] {
            let user = format!("victim-{i}-{provider}");
            let (flow_id, provider_url) = start_flow(&gw, provider, &user).await;
            let q: HashMap<String, String> = Url::parse(&provider_url)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect();
            let mut callback = Url::parse(&q["redirect_uri"]).unwrap();
            callback
                .query_pairs_mut()
                .append_pair("code", &format!("code-{i}-{provider}"))
                .append_pair("state", &q["state"]);
            let (status, page, _) = browse(callback.as_str()).await;
            assert_eq!(status, 502, "{echo:?}: {page}");
            assert!(page.contains("invalid_client"), "{echo:?}: {page}");
            assert_no_leak(&format!("{echo:?} callback page"), &page, &leaks);

            let flow = gw.store.get_flow(&flow_id).await.unwrap().unwrap();
            let reason = flow.failure_reason.unwrap_or_default();
            assert!(reason.contains("invalid_client"), "{reason}");
            assert_no_leak(&format!("{echo:?} stored failure_reason"), &reason, &leaks);

            let (_, status_body) = call(
                &gw,
                Method::GET,
                &format!("/v1/auth/status?id={flow_id}"),
                None,
            )
            .await;
            assert_eq!(status_body["status"], "failed", "{status_body}");
            assert_no_leak(
                &format!("{echo:?} flow status"),
                &status_body.to_string(),
                &leaks,
            );
        }
    }
    assert_eq!(hostile.hits.load(Ordering::SeqCst), ECHOES.len() * 2);
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logged.contains("authorization flow failed"),
        "the capture works"
    );
    assert_no_leak("the log", &logged, &leaks);
}

fn hostile_provider(hostile: &Hostile, basic: bool) -> Provider {
    resolve_provider(&hostile.config("direct", basic), "http://127.0.0.1:9").unwrap()
}

fn assert_clean(what: &str, e: &OAuthError, leaks: &[String]) {
    let text = e.to_string();
    assert!(text.contains("invalid_client"), "{what}: {text}");
    assert_no_leak(what, &text, leaks);
}

#[tokio::test]
async fn refresh_user_info_and_revocation_errors_carry_no_echoed_secret_or_token() {
    switchboard::tls::install_crypto_provider();
    let hostile = Hostile::start().await;
    let http = reqwest::Client::new();
    const RT: &str = "refresh/token+sent~by-the-gateway";
    const AT: &str = "access/token+sent~by-the-gateway";
    let leaks = leaks_of(&[HOSTILE_SECRET, RT, AT]);
    for echo in ECHOES {
        hostile.set(echo);
        for basic in [true, false] {
            let p = hostile_provider(&hostile, basic);
            let e = p.refresh(&http, RT).await.unwrap_err();
            assert_clean(&format!("refresh {echo:?}"), &e, &leaks);
            let e = p.revoke(&http, RT).await.unwrap_err();
            assert_clean(&format!("revoke {echo:?}"), &e, &leaks);
        }
    }
    // User info gets the access token as a bearer; a provider may quote it back.
    let p = hostile_provider(&hostile, true);
    hostile.set(Echo::Header);
    let e = p.user_info(&http, AT).await.unwrap_err();
    assert_clean("user info header", &e, &leaks);
    hostile.set(Echo::Secret);
    let e = p.user_info(&http, AT).await.unwrap_err();
    assert_clean("user info secret", &e, &leaks);
    let long = p.scrub(&"x".repeat(5000));
    assert!(long.chars().count() <= 303, "provider text is capped");
}

// --- 10. PKCE by default -----------------------------------------------------------------

/// The fake provider as a custom provider with no word about PKCE (or `pkce` as given).
fn custom_fake(fake: &FakeProvider, id: &str, pkce: Option<Value>) -> AuthProviderConfig {
    let mut extra = json!({
        "authorization": {"url": fake.url("/authorize")},
        "token": {"url": fake.url("/token"), "auth_method": "client_secret_post"},
    });
    if let Some(pkce) = pkce {
        extra["oauth2"] = json!({ "pkce": pkce });
    }
    AuthProviderConfig {
        id: id.into(),
        description: None,
        enabled: true,
        provider_type: "oauth2".into(),
        provider_id: None,
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(SecretValue::new(CLIENT_SECRET)),
        extra,
    }
}

#[tokio::test]
async fn a_custom_provider_sends_an_s256_challenge_and_its_verifier_by_default() {
    let fake = FakeProvider::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let f = fake.clone();
    let gw = start_gateway_on(listener, move |c| {
        base(c);
        c.auth_providers.push(custom_fake(&f, "custom", None));
    })
    .await;
    let provider_url = connect(&gw, &fake, "custom", "alice").await;
    let q: HashMap<String, String> = Url::parse(&provider_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256"),
        "{provider_url}"
    );
    assert!(q.get("code_challenge").is_some_and(|c| c.len() >= 43));
    // The fake refuses a code whose challenge the token request's `code_verifier` does
    // not answer, so the completed flow proves the verifier was sent.
    let (status, view) = call(&gw, Method::GET, "/v1/admin/auth_providers/custom", None).await;
    assert_eq!(status, 200);
    assert_eq!(view["oauth2"]["pkce"]["enabled"], true, "{view}");
}

#[tokio::test]
async fn a_custom_provider_can_opt_out_of_pkce() {
    let fake = FakeProvider::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let f = fake.clone();
    let gw = start_gateway_on(listener, move |c| {
        base(c);
        c.auth_providers
            .push(custom_fake(&f, "no-pkce", Some(json!({"enabled": false}))));
    })
    .await;
    let provider_url = connect(&gw, &fake, "no-pkce", "alice").await;
    let q: HashMap<String, String> = Url::parse(&provider_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(!q.contains_key("code_challenge"), "{provider_url}");
    assert!(!q.contains_key("code_challenge_method"), "{provider_url}");
}
