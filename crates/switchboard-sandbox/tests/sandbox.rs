//! The sandbox OAuth 2.0 server, driven over HTTP as a browser and a client would: the
//! router is nested under `/sandbox` as the gateway does, on 127.0.0.1:0, with a clock
//! the tests advance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, WWW_AUTHENTICATE};
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard_sandbox::{Sandbox, SandboxSettings};
use tokio::net::TcpListener;
use url::Url;

const CLIENT_ID: &str = "sandbox-client";
const CLIENT_SECRET: &str = "sandbox-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback?keep=1";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more";

struct Harness {
    base: String,
    http: reqwest::Client,
    sandbox: Sandbox,
    /// Milliseconds the sandbox's clock is ahead of real time.
    offset_ms: Arc<AtomicU64>,
}

async fn start() -> Harness {
    start_with(SandboxSettings::default()).await
}

async fn start_with(settings: SandboxSettings) -> Harness {
    // reqwest is built without a crypto provider; Err only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let offset_ms = Arc::new(AtomicU64::new(0));
    let offset = offset_ms.clone();
    let origin = Instant::now();
    let sandbox = Sandbox::with_clock(
        settings,
        Arc::new(move || origin + Duration::from_millis(offset.load(Ordering::SeqCst))),
    );
    let app = Router::new().nest("/sandbox", sandbox.router());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Harness {
        base: format!("http://{addr}/sandbox"),
        http,
        sandbox,
        offset_ms,
    }
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The hidden fields of the consent form, unescaped as a browser would.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|rest| {
            let name = rest
                .split("name=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value = rest
                .split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (
                name.to_owned(),
                html_escape::decode_html_entities(value).into_owned(),
            )
        })
        .collect()
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    async fn consent_page(&self, params: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.url("/oauth/authorize"))
            .query(params)
            .send()
            .await
            .unwrap()
    }

    /// Loads the consent page, submits its form as a browser would, returns the redirect.
    async fn decide(&self, params: &[(&str, &str)], username: &str, decision: &str) -> Url {
        let page = self.consent_page(params).await;
        assert_eq!(page.status(), StatusCode::OK);
        let mut form = hidden_fields(&page.text().await.unwrap());
        form.push(("username".into(), username.into()));
        form.push(("decision".into(), decision.into()));
        let res = self
            .http
            .post(self.url("/oauth/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        Url::parse(res.headers()[LOCATION].to_str().unwrap()).unwrap()
    }

    /// A code for `username` with PKCE over [`VERIFIER`] and the given scope.
    async fn code(&self, username: &str, scope: &str) -> String {
        let challenge = challenge(VERIFIER);
        let back = self
            .decide(
                &[
                    ("response_type", "code"),
                    ("client_id", CLIENT_ID),
                    ("redirect_uri", REDIRECT_URI),
                    ("scope", scope),
                    ("state", "st"),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ],
                username,
                "allow",
            )
            .await;
        query_param(&back, "code").unwrap()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut body: Vec<(&str, &str)> =
            vec![("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)];
        body.extend_from_slice(form);
        let res = self
            .http
            .post(self.url("/oauth/token"))
            .form(&body)
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap())
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ])
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// Tokens for `username`: the whole code flow.
    async fn tokens(&self, username: &str, scope: &str) -> Value {
        let code = self.code(username, scope).await;
        let (status, body) = self.exchange(&code, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn me(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/api/me"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    async fn me_status(&self, access_token: &str) -> StatusCode {
        self.me(access_token).await.status()
    }
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_owned()
}

#[tokio::test]
async fn the_code_flow_with_pkce_gives_tokens_that_api_me_knows() {
    let h = start().await;
    let challenge = challenge(VERIFIER);
    let state = "a&b=\"c\"<d>";
    let back = h
        .decide(
            &[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "profile files.read"),
                ("state", state),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
            "jane.doe",
            "allow",
        )
        .await;
    assert_eq!(back.path(), "/callback");
    assert_eq!(query_param(&back, "keep").as_deref(), Some("1"));
    assert_eq!(query_param(&back, "state").as_deref(), Some(state));
    let code = query_param(&back, "code").unwrap();

    let (status, tokens) = h.exchange(&code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(s(&tokens, "access_token").starts_with("sbx_at_"));
    assert!(s(&tokens, "refresh_token").starts_with("sbx_rt_"));
    assert_eq!(s(&tokens, "token_type"), "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(s(&tokens, "scope"), "profile files.read");

    let res = h.me(&s(&tokens, "access_token")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["username"], "jane.doe");
    assert_eq!(me["name"], "Jane Doe");
    assert_eq!(me["email"], "jane.doe@sandbox.example");
    assert_eq!(me["scopes"], serde_json::json!(["profile", "files.read"]));
    let id = s(&me, "id");

    // The same username is the same account on a second connection; another is not.
    let again = h.tokens("jane.doe", "").await;
    let me_again: Value = h.me(&s(&again, "access_token")).await.json().await.unwrap();
    assert_eq!(s(&me_again, "id"), id);
    assert_eq!(me_again["scopes"], serde_json::json!(["profile"]));
    let other = h.tokens("bob", "").await;
    let bob: Value = h.me(&s(&other, "access_token")).await.json().await.unwrap();
    assert_ne!(s(&bob, "id"), id);

    let stats = h.sandbox.stats();
    assert_eq!((stats.codes_issued, stats.code_exchanges), (3, 3));
}

#[tokio::test]
async fn a_wrong_or_missing_code_verifier_is_invalid_grant() {
    let h = start().await;
    let code = h.code("sandbox-user", "").await;
    let wrong = "x".repeat(50);
    let (status, body) = h.exchange(&code, &wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    // The attempt spent the code: the right verifier comes too late.
    let (_, body) = h.exchange(&code, VERIFIER).await;
    assert_eq!(body["error"], "invalid_grant");

    let code = h.code("sandbox-user", "").await;
    let (status, body) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
        ])
        .await;
    assert_eq!(
        (status, s(&body, "error")),
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
}

#[tokio::test]
async fn a_replayed_code_is_invalid_grant_and_revokes_what_it_issued() {
    let h = start().await;
    let code = h.code("sandbox-user", "").await;
    let (status, tokens) = h.exchange(&code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h.me_status(&s(&tokens, "access_token")).await,
        StatusCode::OK
    );

    let (status, body) = h.exchange(&code, VERIFIER).await;
    assert_eq!(
        (status, s(&body, "error")),
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    assert_eq!(
        h.me_status(&s(&tokens, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    let (_, body) = h.refresh(&s(&tokens, "refresh_token")).await;
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_code_with_another_redirect_uri_or_past_its_lifetime_is_invalid_grant() {
    let h = start().await;
    let code = h.code("sandbox-user", "").await;
    let (_, body) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(body["error"], "invalid_grant");

    let code = h.code("sandbox-user", "").await;
    h.advance(Duration::from_secs(61));
    let (_, body) = h.exchange(&code, VERIFIER).await;
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_rotates_and_reusing_the_old_refresh_token_revokes_the_grant() {
    let h = start().await;
    let first = h.tokens("sandbox-user", "profile files.read").await;
    let (status, second) = h.refresh(&s(&first, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(s(&second, "refresh_token"), s(&first, "refresh_token"));
    assert_ne!(s(&second, "access_token"), s(&first, "access_token"));
    assert_eq!(s(&second, "scope"), "profile files.read");
    assert_eq!(
        h.me_status(&s(&second, "access_token")).await,
        StatusCode::OK
    );

    let (status, body) = h.refresh(&s(&first, "refresh_token")).await;
    assert_eq!(
        (status, s(&body, "error")),
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    // Reuse means a copy leaked: the whole grant goes.
    assert_eq!(
        h.me_status(&s(&second, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    let (_, body) = h.refresh(&s(&second, "refresh_token")).await;
    assert_eq!(body["error"], "invalid_grant");

    let stats = h.sandbox.stats();
    assert_eq!((stats.refresh_requests, stats.invalid_grants), (3, 2));
}

#[tokio::test]
async fn reuse_can_be_refused_without_revoking_the_grant() {
    let h = start_with(SandboxSettings {
        revoke_family_on_refresh_reuse: false,
        ..Default::default()
    })
    .await;
    let first = h.tokens("sandbox-user", "").await;
    let (_, second) = h.refresh(&s(&first, "refresh_token")).await;
    let (_, body) = h.refresh(&s(&first, "refresh_token")).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        h.me_status(&s(&second, "access_token")).await,
        StatusCode::OK
    );
    let (status, _) = h.refresh(&s(&second, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
    let h = start().await;
    let first = h.tokens("sandbox-user", "profile files.read").await;
    let rt = s(&first, "refresh_token");
    let (status, body) = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
            ("scope", "profile admin"),
        ])
        .await;
    assert_eq!(
        (status, s(&body, "error")),
        (StatusCode::BAD_REQUEST, "invalid_scope".into())
    );

    // The refused widening did not spend the refresh token.
    let (status, narrow) = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
            ("scope", "files.read"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{narrow}");
    assert_eq!(s(&narrow, "scope"), "files.read");
    let me: Value = h
        .me(&s(&narrow, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["scopes"], serde_json::json!(["files.read"]));

    // The grant itself is unchanged: the next refresh may have it all back.
    let (_, full) = h.refresh(&s(&narrow, "refresh_token")).await;
    assert_eq!(s(&full, "scope"), "profile files.read");
}

#[tokio::test]
async fn an_expired_access_token_gets_401_invalid_token() {
    let h = start_with(SandboxSettings {
        access_token_lifetime: Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let tokens = h.tokens("sandbox-user", "").await;
    assert_eq!(tokens["expires_in"], 5);
    let at = s(&tokens, "access_token");
    assert_eq!(h.me_status(&at).await, StatusCode::OK);

    h.advance(Duration::from_secs(6));
    let res = h.me(&at).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token""#
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");

    // The refresh token outlives it.
    let (status, fresh) = h.refresh(&s(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h.me_status(&s(&fresh, "access_token")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn api_me_without_a_known_bearer_token_is_401() {
    let h = start().await;
    let res = h.http.get(h.url("/api/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token""#
    );
    assert_eq!(
        h.me_status("sbx_at_made-up").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_the_state() {
    let h = start().await;
    let back = h
        .decide(
            &[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT_URI),
                ("state", "xyz 1"),
            ],
            "sandbox-user",
            "deny",
        )
        .await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("xyz 1"));
    assert_eq!(query_param(&back, "keep").as_deref(), Some("1"));
    assert_eq!(query_param(&back, "code"), None);
    assert_eq!(h.sandbox.stats().codes_issued, 0);
}

#[tokio::test]
async fn a_bad_client_secret_is_invalid_client_and_basic_auth_works() {
    let h = start().await;
    let code = h.code("sandbox-user", "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", VERIFIER),
    ];
    for (id, secret) in [(CLIENT_ID, "wrong"), ("someone-else", CLIENT_SECRET)] {
        let res = h
            .http
            .post(h.url("/oauth/token"))
            .form(&[&form[..], &[("client_id", id), ("client_secret", secret)]].concat())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    let res = h
        .http
        .post(h.url("/oauth/token"))
        .basic_auth(CLIENT_ID, Some("wrong"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Client authentication failed before the code was looked at, so it is still good.
    let res = h
        .http
        .post(h.url("/oauth/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unsupported_grant_type_is_refused() {
    let h = start().await;
    let (status, body) = h.token(&[("grant_type", "password")]).await;
    assert_eq!(
        (status, s(&body, "error")),
        (StatusCode::BAD_REQUEST, "unsupported_grant_type".into())
    );
}

#[tokio::test]
async fn the_consent_page_escapes_a_hostile_scope_and_client_values() {
    let h = start().await;
    let hostile = "<script>alert(\"x\")</script>";
    let res = h
        .consent_page(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("scope", hostile),
            ("state", "\"><script>alert(1)</script>"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(html.contains("Switchboard Sandbox"));
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    // The hidden fields still carry the exact values back.
    let fields = hidden_fields(&html);
    assert!(
        fields.contains(&("scope".into(), hostile.into())),
        "{fields:?}"
    );
}

#[tokio::test]
async fn a_bad_client_or_redirect_uri_gets_a_page_never_a_redirect() {
    let h = start().await;
    let cases: [&[(&str, &str)]; 5] = [
        &[("response_type", "code"), ("redirect_uri", REDIRECT_URI)],
        &[
            ("response_type", "code"),
            ("client_id", "evil"),
            ("redirect_uri", REDIRECT_URI),
        ],
        &[("response_type", "code"), ("client_id", CLIENT_ID)],
        &[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "/relative"),
        ],
        &[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", "javascript:alert(1)"),
        ],
    ];
    for params in cases {
        let res = h.consent_page(params).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{params:?}");
        assert!(res.headers().get(LOCATION).is_none());
        assert!(res.text().await.unwrap().contains("refused"));
    }
    // With a usable redirect URI, other errors go back to the client.
    let res = h
        .consent_page(&[
            ("response_type", "token"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("state", "s1"),
        ])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = Url::parse(res.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("unsupported_response_type")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("s1"));

    let res = h
        .consent_page(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", challenge(VERIFIER).as_str()),
            ("code_challenge_method", "plain"),
        ])
        .await;
    let back = Url::parse(res.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn an_invalid_username_shows_the_form_again_and_issues_no_code() {
    let h = start().await;
    let res = h
        .http
        .post(h.url("/oauth/authorize"))
        .form(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("username", "<b>bad name</b>"),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = res.text().await.unwrap();
    assert!(html.contains("Sign in as") && !html.contains("<b>"));
    assert_eq!(h.sandbox.stats().codes_issued, 0);
}

#[tokio::test]
async fn revoking_either_token_ends_the_grant_and_unknown_tokens_still_get_200() {
    let h = start().await;
    let revoke = |token: String| {
        h.http
            .post(h.url("/oauth/revoke"))
            .form(&[
                ("token", token),
                ("client_id", CLIENT_ID.into()),
                ("client_secret", CLIENT_SECRET.into()),
            ])
            .send()
    };
    let a = h.tokens("sandbox-user", "").await;
    assert_eq!(
        revoke(s(&a, "refresh_token")).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        h.me_status(&s(&a, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    let (_, body) = h.refresh(&s(&a, "refresh_token")).await;
    assert_eq!(body["error"], "invalid_grant");

    let b = h.tokens("sandbox-user", "").await;
    assert_eq!(
        revoke(s(&b, "access_token")).await.unwrap().status(),
        StatusCode::OK
    );
    let (_, body) = h.refresh(&s(&b, "refresh_token")).await;
    assert_eq!(body["error"], "invalid_grant");

    assert_eq!(
        revoke("sbx_rt_unknown".into()).await.unwrap().status(),
        StatusCode::OK
    );

    let c = h.tokens("sandbox-user", "").await;
    let res = h
        .http
        .post(h.url("/oauth/revoke"))
        .form(&[("token", s(&c, "access_token"))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.me_status(&s(&c, "access_token")).await, StatusCode::OK);
}

#[tokio::test]
async fn an_injected_failure_answers_500_once_and_changes_nothing() {
    let h = start().await;
    let tokens = h.tokens("sandbox-user", "").await;
    h.sandbox.fail_next_token_requests(1);
    let (status, body) = h.refresh(&s(&tokens, "refresh_token")).await;
    assert_eq!(
        (status, s(&body, "error")),
        (StatusCode::INTERNAL_SERVER_ERROR, "server_error".into())
    );
    let (status, _) = h.refresh(&s(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK);
    let stats = h.sandbox.stats();
    assert_eq!((stats.refresh_requests, stats.injected_failures), (2, 1));
}
