//! Issue 16, items 7 and 8: the gateway's requests to provider URLs (which an admin or a
//! config document sets) follow no redirect, and reach internal addresses (loopback,
//! private, link-local, metadata) only when `network.allowlist` lists them. Real HTTP:
//! an in-process gateway, the fake provider, and small hostile servers that record what
//! reaches them.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use common::fake_provider::{CLIENT_ID, CLIENT_SECRET, FakeProvider};
use common::flows::{browse, call, flow_status, oauth_config, open_link};
use common::{TestGateway, start_gateway_on};
use reqwest::Method;
use serde_json::{Value, json};
use switchboard::config::Config;
use tokio::net::TcpListener;

const ROOT_KEY: &str = "network-guard-test-root-key-0123456789abcdef";

/// Everything that reached a hostile server: one line per request, its body included.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// An "internal service" on `bind`: answers anything with JSON an attacker wants stored.
async fn internal_service(bind: &str) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
        let record = record.clone();
        async move {
            record
                .0
                .lock()
                .unwrap()
                .push(format!("{uri} {}", String::from_utf8_lossy(&body)));
            axum::Json(json!({
                "access_token": "at-from-internal",
                "token_type": "Bearer",
                "sub": "internal-service",
                "internal_secret": "db-password-of-the-internal-service",
            }))
        }
    });
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

/// A token endpoint that answers every request with `307` to `to` (which keeps the
/// method and body: a follower would POST the client secret there).
async fn redirector(to: String) -> SocketAddr {
    let app = Router::new().fallback(move || {
        let to = to.clone();
        async move {
            Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, to)
                .body(axum::body::Body::empty())
                .unwrap()
                .into_response()
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A bare TCP port that counts connections and closes them at once.
async fn counting_port() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, accepted)
}

/// A gateway outside dev mode with the provider `fake`: authorization at the fake
/// provider, token and user-info endpoints where the test says.
async fn gateway(
    fake: &FakeProvider,
    token_url: &str,
    user_info_url: &str,
    allowlist: &[&str],
) -> TestGateway {
    let mut provider = fake.provider_config("fake");
    provider.extra = json!({
        "authorization": {"url": fake.url("/authorize")},
        "token": {"url": token_url, "auth_method": "client_secret_post"},
        "user_info": {"url": user_info_url},
    });
    let allowlist: Vec<String> = allowlist.iter().map(|s| s.to_string()).collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_gateway_on(listener, move |c: &mut Config| {
        oauth_config(c, ROOT_KEY);
        c.auth_providers.push(provider);
        c.network.allowlist = allowlist;
    })
    .await
}

/// Runs alice's flow up to the callback (the gateway then calls the token and user-info
/// endpoints) and returns the flow's final status.
async fn run_flow(gw: &TestGateway, fake: &FakeProvider) -> Value {
    let (status, auth) = call(
        gw,
        Method::POST,
        "/v1/auth/authorize",
        Some(json!({"auth_requirement": {"provider_id": "fake"}, "user_id": "alice"})),
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    assert_eq!(auth["status"], "pending", "{auth}");
    let provider_url = open_link(auth["url"].as_str().unwrap()).await;
    let approval = fake.approve(&provider_url, "alice-at-fake");
    browse(&approval.callback_url()).await;
    flow_status(gw, auth["id"].as_str().unwrap(), 5).await
}

async fn connections(gw: &TestGateway) -> Vec<Value> {
    let (status, body) = call(gw, Method::GET, "/v1/admin/user_connections", None).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

fn reason(st: &Value) -> String {
    st["status_reason"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_token_endpoint_redirect_is_not_followed_and_the_secret_stays_home() {
    let fake = FakeProvider::start().await;
    let (elsewhere, seen) = internal_service("127.0.0.1:0").await;
    let hop = redirector(format!("http://{elsewhere}/token")).await;
    // Both servers are allowed: only the redirect is under test.
    let gw = gateway(
        &fake,
        &format!("http://{hop}/token"),
        &fake.url("/userinfo"),
        &["127.0.0.1"],
    )
    .await;

    let st = run_flow(&gw, &fake).await;

    assert!(
        seen.all().is_empty(),
        "the redirect was followed: {:?}",
        seen.all()
    );
    assert_eq!(st["status"], "failed", "{st}");
    let why = reason(&st);
    assert!(why.contains("307") && why.contains("redirect"), "{why}");
    assert!(!why.contains(CLIENT_SECRET), "{why}");
    assert!(connections(&gw).await.is_empty());
}

#[tokio::test]
async fn token_endpoints_at_internal_addresses_are_refused_and_nothing_is_stored() {
    let fake = FakeProvider::start().await;
    let port = fake.addr.port();
    let (v6, v6_seen) = internal_service("[::1]:0").await;
    let cases = [
        (
            format!("http://127.0.0.1:{port}/token"),
            "127.0.0.1",
            "loopback",
        ),
        (
            format!("http://0x7f000001:{port}/token"),
            "127.0.0.1",
            "loopback",
        ),
        (
            format!("http://localhost:{port}/token"),
            "localhost",
            "loopback",
        ),
        (format!("http://{v6}/token"), "::1", "loopback"),
        (
            "http://169.254.169.254/latest/api/token".to_string(),
            "169.254.169.254",
            "cloud metadata",
        ),
    ];
    for (token_url, host, kind) in cases {
        let gw = gateway(&fake, &token_url, &fake.url("/userinfo"), &[]).await;
        let st = run_flow(&gw, &fake).await;
        assert_eq!(st["status"], "failed", "{token_url}: {st}");
        let why = reason(&st);
        assert!(
            why.contains(host) && why.contains(kind) && why.contains("network.allowlist"),
            "{token_url}: {why}"
        );
        assert!(connections(&gw).await.is_empty(), "{token_url}");
    }
    assert_eq!(
        fake.code_exchanges(),
        0,
        "a refused token endpoint got a code"
    );
    assert!(v6_seen.all().is_empty(), "{:?}", v6_seen.all());
}

/// The literal is checked before connecting (reqwest never resolves it), the name when
/// it resolves: not even a TCP handshake reaches the internal port.
#[tokio::test]
async fn literals_and_names_are_refused_before_any_connection_is_made() {
    let fake = FakeProvider::start().await;
    let (port, accepted) = counting_port().await;
    for token_url in [
        format!("http://0x7f000001:{port}/token"),
        format!("http://localhost:{port}/token"),
    ] {
        let gw = gateway(&fake, &token_url, &fake.url("/userinfo"), &[]).await;
        let st = run_flow(&gw, &fake).await;
        assert_eq!(st["status"], "failed", "{st}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            0,
            "{token_url}: a connection was made"
        );
    }
}

#[tokio::test]
async fn a_user_info_url_at_an_internal_service_is_refused_and_its_answer_never_stored() {
    let fake = FakeProvider::start().await;
    let (internal_v4, seen_v4) = internal_service("127.0.0.2:0").await;
    let (internal_v6, seen_v6) = internal_service("[::1]:0").await;
    let port = internal_v4.port();
    for user_info in [
        format!("http://{internal_v4}/admin/secrets"),
        format!("http://0x7f000002:{port}/admin/secrets"),
        format!("http://{internal_v6}/admin/secrets"),
    ] {
        // The token endpoint (the fake, 127.0.0.1) is listed; 127.0.0.2 and ::1 are not.
        let gw = gateway(&fake, &fake.url("/token"), &user_info, &["127.0.0.1/32"]).await;
        let st = run_flow(&gw, &fake).await;
        // A provider whose user info fails still connects, without user info.
        assert_eq!(st["status"], "completed", "{user_info}: {st}");
        let conns = connections(&gw).await;
        assert_eq!(conns.len(), 1);
        assert!(
            !conns[0].to_string().contains("internal"),
            "{user_info}: the internal answer was stored: {}",
            conns[0]
        );
    }
    assert!(seen_v4.all().is_empty(), "{:?}", seen_v4.all());
    assert!(seen_v6.all().is_empty(), "{:?}", seen_v6.all());
}

#[tokio::test]
async fn the_same_endpoints_work_when_network_allowlist_lists_them() {
    let fake = FakeProvider::start().await;
    let port = fake.addr.port();
    let (internal, seen) = internal_service("127.0.0.2:0").await;
    let cases = [
        (
            format!("http://0x7f000001:{port}/token"),
            vec!["127.0.0.0/30"],
        ),
        (format!("http://localhost:{port}/token"), vec!["localhost"]),
    ];
    for (token_url, allowlist) in cases {
        let gw = gateway(
            &fake,
            &token_url,
            &format!("http://{internal}/me"),
            &allowlist,
        )
        .await;
        let st = run_flow(&gw, &fake).await;
        assert_eq!(st["status"], "completed", "{token_url}: {st}");
        assert_eq!(connections(&gw).await.len(), 1, "{token_url}");
    }
    // The first case lists 127.0.0.2 too: the user info was fetched there.
    assert_eq!(seen.all().len(), 1, "{:?}", seen.all());
}

#[tokio::test]
async fn the_admin_api_refuses_provider_endpoints_at_internal_addresses() {
    let fake = FakeProvider::start().await;
    let gw = gateway(&fake, &fake.url("/token"), &fake.url("/userinfo"), &[]).await;
    let body = |token: &str, user_info: &str| {
        json!({
            "id": "added",
            "provider_id": "added",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authorization": {"url": "https://idp.example/authorize"},
            "token": {"url": token},
            "user_info": {"url": user_info},
        })
    };
    for (token, user_info, field, host) in [
        (
            "http://0x7f000001/token",
            "https://idp.example/me",
            "token.url",
            "127.0.0.1",
        ),
        (
            "https://idp.example/token",
            "http://169.254.169.254/",
            "user_info.url",
            "169.254.169.254",
        ),
        (
            "https://idp.example/token",
            "http://[::ffff:10.0.0.1]/",
            "user_info.url",
            "10.0.0.1",
        ),
        (
            "https://localhost/token",
            "https://idp.example/me",
            "token.url",
            "localhost",
        ),
    ] {
        let (status, refused) = call(
            &gw,
            Method::POST,
            "/v1/admin/auth_providers",
            Some(body(token, user_info)),
        )
        .await;
        assert_eq!(status, 400, "{token} {user_info}: {refused}");
        let message = refused["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(field) && message.contains(host),
            "{message}"
        );
        assert!(!message.contains(CLIENT_SECRET), "{message}");
    }

    // The Arcade layout, and PATCH.
    let oauth2 = |token: &str| {
        json!({
            "authorize_request": {"endpoint": "https://idp.example/authorize"},
            "token_request": {"endpoint": token},
        })
    };
    let (status, created) = call(
        &gw,
        Method::POST,
        "/v1/admin/auth_providers",
        Some(json!({
            "id": "arcade-layout",
            "provider_id": "arcade-layout",
            "client_id": CLIENT_ID,
            "oauth2": oauth2("https://idp.example/token"),
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, refused) = call(
        &gw,
        Method::PATCH,
        "/v1/admin/auth_providers/arcade-layout",
        Some(json!({"oauth2": oauth2("http://[::1]:8080/token")})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("oauth2.token_request.endpoint") && message.contains("::1"),
        "{message}"
    );
}

#[tokio::test]
async fn the_admin_api_accepts_internal_endpoints_the_allowlist_lists() {
    let fake = FakeProvider::start().await;
    let gw = gateway(
        &fake,
        &fake.url("/token"),
        &fake.url("/userinfo"),
        &["10.0.0.0/8"],
    )
    .await;
    let (status, created) = call(
        &gw,
        Method::POST,
        "/v1/admin/auth_providers",
        Some(json!({
            "id": "corp",
            "provider_id": "corp",
            "client_id": CLIENT_ID,
            "authorization": {"url": "https://idp.example/authorize"},
            "token": {"url": "http://10.1.2.3/token"},
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
}

/// `engine.yaml` with one custom provider and `extra` lines appended.
fn load_engine_yaml(extra: &str) -> switchboard::config::Loaded {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.yaml");
    let yaml = format!(
        "
api: {{development: false}}
auth:
  user_verifier: none
  providers:
    - id: corp
      type: oauth2
      client_id: c
      client_secret: s
      authorization: {{url: 'https://idp.example/authorize'}}
      token: {{url: 'http://169.254.169.254/token'}}
      user_info: {{url: 'http://[::ffff:10.0.0.1]/me'}}
{extra}"
    );
    std::fs::write(&path, yaml).unwrap();
    switchboard::config::load(&switchboard::config::LoadOptions {
        config_path: Some(path),
        env_file: None,
        env: Default::default(),
        data_dir: dir.path().to_owned(),
        config_home: None,
    })
    .unwrap()
}

#[test]
fn config_check_warns_at_the_key_of_an_endpoint_at_an_internal_address() {
    let loaded = load_engine_yaml("");
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    for (key, host) in [
        ("auth.providers[0].token.url", "169.254.169.254"),
        ("auth.providers[0].user_info.url", "10.0.0.1"),
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(key) && w.contains(host)),
            "no warning at {key}: {warnings:#?}"
        );
    }
    assert!(
        !warnings.iter().any(|w| w.contains("authorization")),
        "{warnings:#?}"
    );

    let listed = load_engine_yaml("network:\n  allowlist: ['169.254.169.254', '10.0.0.0/8']\n");
    let warnings: Vec<String> = listed.warnings.iter().map(ToString::to_string).collect();
    assert!(
        !warnings.iter().any(|w| w.contains("network.allowlist")),
        "{warnings:#?}"
    );
}
