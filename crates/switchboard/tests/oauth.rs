//! Per-user OAuth end to end: a real gateway on 127.0.0.1:0, a real TDK worker whose tools
//! need a grant, and a fake OAuth 2.0 provider (`common::fake_provider`) that counts what
//! reaches it and misbehaves on demand. The test plays the browser.
//!
//! Tools return the SHA-256 of the token they received and the provider's subject for it,
//! so tests prove which token arrived without any token in a result.
//!
//! The two-replica tests need PostgreSQL (`SWITCHBOARD_TEST_POSTGRES_URL`), each in a fresh
//! schema; without it they skip with a note, unless `CI` is set: then they fail.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::fake_provider::{CLIENT_SECRET, FakeProvider, RefreshMode};
use common::flows::{authorize, browse, call, flow_status, oauth_config, open_link, root_keys};
use common::logs::capture_logs_on_this_thread;
use common::postgres::with_postgres;
use common::*;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard::config::{Config, SecretValue, StorageConfig, UserVerifier};
use switchboard::store::{ConnectionRecord, Store};
use switchboard::vault::{SealContext, Vault, WrappedKey, field};
use switchboard_tdk::{Auth, Tool, ToolContext, ToolError, Toolkit};
use switchboard_wire::error_kind;
use tokio::net::TcpListener;

const ROOT_KEY: &str = "oauth-tests-root-key-0123456789abcdef";
const ALICE_AT_FAKE: &str = "alice-login";
const BOB_AT_FAKE: &str = "bob-login";

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `Acct.Me` (scope `read`) and `Acct.Write` (scope `write`) call the fake provider's API
/// with the token they got: a token it no longer accepts is an upstream 401.
/// `Acct.Broken` is always refused with 401.
fn acct_toolkit(fake: FakeProvider, calls: Arc<AtomicUsize>) -> Toolkit {
    let api_tool = |name: &str, scope: &str| {
        let fake = fake.clone();
        let calls = calls.clone();
        Tool::new(
            name,
            "Who the provider says the token belongs to",
            move |ctx: ToolContext, _i: Empty| {
                calls.fetch_add(1, Ordering::SeqCst);
                let token = ctx.token().map(str::to_owned);
                let user = ctx.user_id().map(str::to_owned);
                let info_sub = ctx.user_info().and_then(|i| i.get("sub")).cloned();
                let fake = fake.clone();
                async move {
                    let token = token.ok_or_else(|| ToolError::context_required("no token"))?;
                    match fake.api_subject(&token) {
                        Some(subject) => Ok(json!({
                            "user_id": user,
                            "subject": subject,
                            "token_sha256": sha(&token),
                            "user_info_sub": info_sub,
                        })),
                        None => Err(ToolError::upstream(401, "the provider refused the token")),
                    }
                }
            },
        )
        .requires_auth(Auth::oauth2("fake").scopes([scope]))
    };
    let broken_calls = calls.clone();
    Toolkit::new("Acct", "1.0.0")
        .description("tools on the user's fake account")
        .tool(api_tool("Me", "read"))
        .tool(api_tool("Write", "write"))
        .tool(
            Tool::new(
                "Broken",
                "Always refused",
                move |_ctx: ToolContext, _i: Empty| {
                    broken_calls.fetch_add(1, Ordering::SeqCst);
                    async move { Err::<Value, _>(ToolError::upstream(401, "refused, always")) }
                },
            )
            .requires_auth(Auth::oauth2("fake").scopes(["read"])),
        )
}

struct Env {
    gw: Arc<TestGateway>,
    fake: FakeProvider,
    /// Tool handler runs.
    calls: Arc<AtomicUsize>,
    _worker: TestWorker,
}

/// Provider, worker and a gateway on SQLite; `customise` runs last.
async fn env(customise: impl FnOnce(&mut Config)) -> Env {
    let fake = FakeProvider::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let worker = start_toolkit_worker(acct_toolkit(fake.clone(), calls.clone())).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = start_gateway_on(listener, |c| {
        configure(c, &fake, &worker);
        customise(c);
    })
    .await;
    Env {
        gw: Arc::new(gw),
        fake,
        calls,
        _worker: worker,
    }
}

fn configure(c: &mut Config, fake: &FakeProvider, worker: &TestWorker) {
    oauth_config(c, ROOT_KEY);
    c.auth_providers.push(fake.provider_config("fake"));
    c.workers.push(worker_config("acct", &worker.url()));
}

/// Every grant counts as expiring: the skew is longer than any token the fake issues
/// until the test raises `expires_in`.
fn always_expiring(c: &mut Config) {
    c.oauth.refresh_skew = Duration::from_secs(3600);
}

/// Moves the gateways' clocks past the 1-second tokens a test connected with: a token is
/// refreshed ahead of expiry only in the last half of its lifetime (issue 16), so a fresh
/// one is not due yet.
fn let_the_tokens_expire(gateways: &[&TestGateway]) {
    for gw in gateways {
        gw.clock.advance(Duration::from_millis(1_100));
    }
}

/// The whole flow for `user`, who is `subject` at the provider. Returns the flow id.
async fn connect(
    gw: &TestGateway,
    fake: &FakeProvider,
    user: &str,
    subject: &str,
    scopes: &[&str],
) -> String {
    let auth = authorize(gw, user, scopes).await;
    assert_eq!(auth["status"], "pending", "{auth}");
    let provider_url = open_link(auth["url"].as_str().unwrap()).await;
    let approval = fake.approve(&provider_url, subject);
    let (status, page, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 200, "{page}");
    let id = auth["id"].as_str().unwrap().to_owned();
    let done = flow_status(gw, &id, 5).await;
    assert_eq!(done["status"], "completed", "{done}");
    id
}

async fn run(gw: &TestGateway, tool: &str, user: &str) -> (u16, Value) {
    gw.execute(json!({"tool_name": tool, "input": {}, "user_id": user}))
        .await
}

/// Runs `Acct.Me` and expects success with `subject`'s newest token.
async fn me_ok(env: &Env, user: &str, subject: &str) -> Value {
    let (status, body) = run(&env.gw, "Acct.Me", user).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    let value = body["output"]["value"].clone();
    assert_eq!(value["user_id"], user);
    assert_eq!(value["subject"], subject);
    assert_eq!(
        value["token_sha256"],
        sha(&env.fake.latest_access_token(subject).unwrap()),
        "the worker got an older token than the provider's newest"
    );
    value
}

async fn connections(gw: &TestGateway, user: Option<&str>) -> Vec<Value> {
    let path = match user {
        Some(u) => format!("/v1/admin/user_connections?user_id={u}"),
        None => "/v1/admin/user_connections".into(),
    };
    let (status, body) = call(gw, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn stored(gw: &TestGateway, user: &str) -> ConnectionRecord {
    gw.store
        .get_connection(user, "fake")
        .await
        .unwrap()
        .expect("a connection")
}

/// Opens a stored refresh token with the root key, as the gateway would.
async fn stored_refresh_token(store: &dyn Store, user: &str) -> Option<String> {
    let vault = Vault::from_config(&root_keys(ROOT_KEY)).unwrap();
    let record = store.get_user_key(user).await.unwrap().unwrap();
    let key = vault
        .open_data_key(
            user,
            &WrappedKey {
                root_key_id: record.root_key_id,
                blob: record.wrapped_key,
            },
        )
        .unwrap();
    let conn = store.get_connection(user, "fake").await.unwrap().unwrap();
    conn.refresh_token_sealed.map(|sealed| {
        key.open_string(
            &SealContext::new(user, "fake", field::REFRESH_TOKEN),
            &sealed,
        )
        .unwrap()
        .expose()
        .to_owned()
    })
}

/// `n` concurrent `Acct.Me` calls for `user`, spread round-robin over `gateways`, each in
/// its own task. Returns each call's (status, body).
async fn concurrent_me(gateways: &[Arc<TestGateway>], user: &str, n: usize) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let gw = gateways[i % gateways.len()].clone();
            let user = user.to_owned();
            tokio::spawn(async move { run(&gw, "Acct.Me", &user).await })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn assert_all_carry(results: &[(u16, Value)], token: &str) {
    let want = sha(token);
    for (status, body) in results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["success"], true, "{body}");
        assert_eq!(body["output"]["value"]["token_sha256"], want, "{body}");
    }
}

// --- PostgreSQL, for two replicas ----------------------------------------------------------

/// Two gateways (own pools, own AuthService, own public URL) on one PostgreSQL schema,
/// same root keys, one worker and provider; every grant counts as expiring.
async fn two_replicas(pg_url: &str, mode: RefreshMode) -> (Env, Arc<TestGateway>) {
    two_replicas_with(pg_url, mode, always_expiring).await
}

async fn two_replicas_with(
    pg_url: &str,
    mode: RefreshMode,
    customise: fn(&mut Config),
) -> (Env, Arc<TestGateway>) {
    let fake = FakeProvider::start().await;
    fake.set_mode(mode);
    let calls = Arc::new(AtomicUsize::new(0));
    let worker = start_toolkit_worker(acct_toolkit(fake.clone(), calls.clone())).await;
    let mut gateways = Vec::new();
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw = start_gateway_on(listener, |c| {
            configure(c, &fake, &worker);
            customise(c);
            c.storage = StorageConfig::Postgres {
                url: SecretValue::new(pg_url),
            };
        })
        .await;
        gateways.push(Arc::new(gw));
    }
    let b = gateways.pop().unwrap();
    let a = gateways.pop().unwrap();
    (
        Env {
            gw: a,
            fake,
            calls,
            _worker: worker,
        },
        b,
    )
}

// --- Tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn full_flow_through_rest_gives_the_worker_that_users_token() {
    let env = env(|_| {}).await;
    let gw = &env.gw;

    let auth = authorize(gw, "alice", &["read"]).await;
    assert_eq!(auth["status"], "pending");
    assert_eq!(auth["user_id"], "alice");
    let link = auth["url"].as_str().unwrap();
    assert!(
        link.starts_with(&gw.url("/v1/oauth/link/")),
        "the user gets the gateway's own short link: {link}"
    );

    // The link sends the browser to the provider with state and PKCE S256, once.
    let provider_url = open_link(link).await;
    let q: std::collections::HashMap<String, String> = url::Url::parse(&provider_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["redirect_uri"], gw.url("/v1/oauth/callback"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["code_challenge"].len() >= 43);
    assert!(q["state"].len() >= 32);
    assert!(q["scope"].split(' ').any(|s| s == "read"), "{provider_url}");
    let (status, _, _) = browse(link).await;
    assert_eq!(status, 400, "a short link works once");

    // The browser signs in at the provider, which redirects back to the gateway.
    let (status, _, back) = browse(&format!("{provider_url}&login={ALICE_AT_FAKE}")).await;
    assert_eq!(status, 303);
    let (status, page, _) = browse(&back.unwrap()).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("connected"), "{page}");
    assert_eq!(env.fake.code_exchanges(), 1);
    assert_eq!(env.fake.invalid_grants(), 0, "PKCE verifier accepted");

    let id = auth["id"].as_str().unwrap();
    let done = flow_status(gw, id, 5).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(
        done.get("context").is_none(),
        "a status reply carries no token"
    );

    let value = me_ok(&env, "alice", ALICE_AT_FAKE).await;
    assert_eq!(
        value["user_info_sub"], ALICE_AT_FAKE,
        "user info reaches the worker"
    );

    // Authorizing again answers at once with the token (arcade-mcp-server relies on it).
    let again = authorize(gw, "alice", &["read"]).await;
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(
        again["context"]["token"],
        env.fake.latest_access_token(ALICE_AT_FAKE).unwrap()
    );
    assert_eq!(env.fake.code_exchanges(), 1);

    let conns = connections(gw, Some("alice")).await;
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0]["connection_status"], "active");
    assert_eq!(conns[0]["provider_id"], "fake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_executes_with_an_expired_token_cause_exactly_one_refresh() {
    let env = env(always_expiring).await;
    env.fake.set_expires_in(1);
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let_the_tokens_expire(&[&env.gw]);
    let before = stored(&env.gw, "alice").await;
    let old = env.fake.latest_access_token(ALICE_AT_FAKE).unwrap();
    env.fake.set_expires_in(86_400);

    let results = concurrent_me(std::slice::from_ref(&env.gw), "alice", 100).await;

    assert_eq!(
        env.fake.refreshes(),
        1,
        "exactly one refresh reached the provider"
    );
    let new = env.fake.latest_access_token(ALICE_AT_FAKE).unwrap();
    assert_ne!(new, old);
    assert_all_carry(&results, &new);
    let after = stored(&env.gw, "alice").await;
    assert_eq!(after.status, "active");
    assert_eq!(after.id, before.id);
    assert_eq!(after.version, before.version + 1);
    assert!(
        after.refresh_token_sealed.is_some(),
        "the refresh token is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_is_single_flight_across_two_replicas() {
    with_postgres("sb_oauth", |pg_url| async move {
        // A slow provider: replica B's callers meet A's lease, not a finished refresh.
        let (env, b) = two_replicas(&pg_url, RefreshMode::Slow(Duration::from_millis(300))).await;
        env.fake.set_expires_in(1);
        connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
        let_the_tokens_expire(&[&env.gw, &b]);
        let before = stored(&env.gw, "alice").await;
        env.fake.set_expires_in(86_400);

        let results = concurrent_me(&[env.gw.clone(), b.clone()], "alice", 100).await;

        assert_eq!(env.fake.refreshes(), 1, "one refresh across both replicas");
        assert_all_carry(
            &results,
            &env.fake.latest_access_token(ALICE_AT_FAKE).unwrap(),
        );
        let after = stored(&b, "alice").await;
        assert_eq!(after.status, "active");
        assert_eq!(after.version, before.version + 1);
    })
    .await;
}

/// Rotation, then proof that the stored refresh token is the newest: it opens to the
/// provider's newest, and the next refresh (forced by a 401) is accepted.
async fn assert_rotation_lost_nothing(env: &Env, gateways: &[Arc<TestGateway>]) {
    assert_eq!(env.fake.refreshes(), 1);
    assert_eq!(
        env.fake.invalid_grants(),
        0,
        "nobody reused a rotated refresh token"
    );
    let conn = stored(&env.gw, "alice").await;
    assert_eq!(conn.status, "active");
    assert_eq!(
        stored_refresh_token(env.gw.store.as_ref(), "alice").await,
        env.fake.latest_refresh_token(ALICE_AT_FAKE),
        "the stored refresh token is the newest one"
    );
    env.fake.invalidate_access_tokens(ALICE_AT_FAKE);
    for gw in gateways {
        let (status, body) = run(gw, "Acct.Me", "alice").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true, "{body}");
    }
    assert_eq!(
        env.fake.refreshes(),
        2,
        "one more refresh, with the newest token"
    );
    assert_eq!(env.fake.invalid_grants(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_refresh_token_race_loses_nothing() {
    let env = env(always_expiring).await;
    env.fake.set_mode(RefreshMode::Rotate);
    env.fake.set_expires_in(1);
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let_the_tokens_expire(&[&env.gw]);
    env.fake.set_expires_in(86_400);

    let results = concurrent_me(std::slice::from_ref(&env.gw), "alice", 50).await;
    assert_all_carry(
        &results,
        &env.fake.latest_access_token(ALICE_AT_FAKE).unwrap(),
    );
    assert_rotation_lost_nothing(&env, std::slice::from_ref(&env.gw)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_refresh_token_race_across_two_replicas_loses_nothing() {
    with_postgres("sb_oauth", |pg_url| async move {
        let (env, b) = two_replicas(&pg_url, RefreshMode::Rotate).await;
        env.fake.set_expires_in(1);
        connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
        let_the_tokens_expire(&[&env.gw, &b]);
        env.fake.set_expires_in(86_400);

        let both = [env.gw.clone(), b.clone()];
        let results = concurrent_me(&both, "alice", 60).await;
        assert_all_carry(
            &results,
            &env.fake.latest_access_token(ALICE_AT_FAKE).unwrap(),
        );
        assert_rotation_lost_nothing(&env, &both).await;
    })
    .await;
}

#[tokio::test]
async fn invalid_grant_on_refresh_asks_for_reauthorization() {
    let env = env(always_expiring).await;
    env.fake.set_expires_in(1);
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let_the_tokens_expire(&[&env.gw]);
    let before = stored(&env.gw, "alice").await;
    env.fake.set_mode(RefreshMode::InvalidGrant);

    let (status, body) = run(&env.gw, "Acct.Me", "alice").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(
        body["output"]["error"]["kind"],
        error_kind::TOOL_REQUIREMENTS_NOT_MET
    );
    let authz = &body["output"]["authorization"];
    assert_eq!(authz["status"], "pending", "{body}");
    let url = authz["url"].as_str().expect("an authorization URL");
    assert!(body["message"].as_str().unwrap().contains("uthoriz"));
    assert_eq!(env.fake.refreshes(), 1);

    let conns = connections(&env.gw, Some("alice")).await;
    assert_eq!(conns.len(), 1, "the connection is kept, marked");
    assert_eq!(conns[0]["connection_status"], "needs_reauthorization");

    // Another call asks again without hammering the provider.
    let (status, _) = run(&env.gw, "Acct.Me", "alice").await;
    assert_eq!(status, 403);
    assert_eq!(env.fake.refreshes(), 1);

    // The user re-authorizes through the URL they were given: the connection is back.
    env.fake.set_mode(RefreshMode::Normal);
    env.fake.set_expires_in(86_400);
    let provider_url = open_link(url).await;
    let approval = env.fake.approve(&provider_url, ALICE_AT_FAKE);
    let (status, page, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 200, "{page}");
    let conns = connections(&env.gw, Some("alice")).await;
    assert_eq!(conns[0]["connection_status"], "active");
    assert_eq!(stored(&env.gw, "alice").await.id, before.id);
    me_ok(&env, "alice", ALICE_AT_FAKE).await;
}

#[tokio::test]
async fn provider_500_on_refresh_fails_retryably_and_keeps_tokens() {
    let env = env(always_expiring).await;
    env.fake.set_expires_in(1);
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let_the_tokens_expire(&[&env.gw]);
    let before = stored(&env.gw, "alice").await;
    env.fake.set_mode(RefreshMode::ServerError);

    let (status, body) = run(&env.gw, "Acct.Me", "alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], false);
    let error = &body["output"]["error"];
    assert_eq!(
        error["kind"],
        error_kind::UPSTREAM_RUNTIME_SERVER_ERROR,
        "{body}"
    );
    assert_eq!(error["can_retry"], true);
    assert!(
        body["output"]["authorization"].is_null(),
        "no re-authorization asked"
    );
    assert_eq!(env.fake.refreshes(), 1);
    let calls = env.calls.load(Ordering::SeqCst);

    let after = stored(&env.gw, "alice").await;
    assert_eq!(after, before, "the connection is unchanged");

    // The provider recovers: the kept refresh token works.
    env.fake.set_mode(RefreshMode::Normal);
    env.fake.set_expires_in(86_400);
    me_ok(&env, "alice", ALICE_AT_FAKE).await;
    assert_eq!(env.fake.refreshes(), 2);
    assert_eq!(env.calls.load(Ordering::SeqCst), calls + 1);
}

#[tokio::test]
async fn worker_401_triggers_one_refresh_and_one_retry() {
    let env = env(|_| {}).await;
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let old = env.fake.latest_access_token(ALICE_AT_FAKE).unwrap();
    me_ok(&env, "alice", ALICE_AT_FAKE).await;
    assert_eq!(env.fake.refreshes(), 0, "a fresh token is not refreshed");

    env.fake.invalidate_access_tokens(ALICE_AT_FAKE);
    let calls = env.calls.load(Ordering::SeqCst);
    me_ok(&env, "alice", ALICE_AT_FAKE).await;
    assert_ne!(env.fake.latest_access_token(ALICE_AT_FAKE).unwrap(), old);
    assert_eq!(env.fake.refreshes(), 1);
    assert_eq!(
        env.calls.load(Ordering::SeqCst),
        calls + 2,
        "called, then retried once"
    );

    // A tool refused even with the new token: one refresh, one retry, then the error.
    let calls = env.calls.load(Ordering::SeqCst);
    let (status, body) = run(&env.gw, "Acct.Broken", "alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["output"]["error"]["status_code"], 401, "{body}");
    assert_eq!(env.fake.refreshes(), 2);
    assert_eq!(env.calls.load(Ordering::SeqCst), calls + 2);
    assert_eq!(stored(&env.gw, "alice").await.status, "active");
}

#[tokio::test]
async fn replayed_oauth_state_is_rejected_and_changes_nothing() {
    let env = env(|_| {}).await;
    let auth = authorize(&env.gw, "alice", &["read"]).await;
    let provider_url = open_link(auth["url"].as_str().unwrap()).await;
    let approval = env.fake.approve(&provider_url, ALICE_AT_FAKE);
    let (status, _, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 200);
    let before = stored(&env.gw, "alice").await;

    let (status, page, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 400, "{page}");
    // The same state with a fresh code is a replay too.
    let second = env.fake.approve(&provider_url, BOB_AT_FAKE);
    assert_eq!(second.state, approval.state);
    let (status, _, _) = browse(&second.callback_url()).await;
    assert_eq!(status, 400);

    assert_eq!(env.fake.code_exchanges(), 1, "no second token request");
    assert_eq!(
        stored(&env.gw, "alice").await,
        before,
        "connection unchanged"
    );
    assert_eq!(connections(&env.gw, None).await.len(), 1);
    let done = flow_status(&env.gw, auth["id"].as_str().unwrap(), 0).await;
    assert_eq!(done["status"], "completed");
    me_ok(&env, "alice", ALICE_AT_FAKE).await;
}

#[tokio::test]
async fn expired_flow_is_refused() {
    let env = env(|c| c.oauth.flow_ttl = Duration::from_secs(1)).await;

    // A link clicked too late.
    let auth = authorize(&env.gw, "alice", &["read"]).await;
    env.gw.clock.advance(Duration::from_millis(1200));
    let (status, page, _) = browse(auth["url"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    assert!(page.to_lowercase().contains("expired"), "{page}");
    let st = flow_status(&env.gw, auth["id"].as_str().unwrap(), 0).await;
    assert_eq!(st["status"], "failed", "{st}");

    // A callback that comes back too late.
    let auth = authorize(&env.gw, "bob", &["read"]).await;
    let provider_url = open_link(auth["url"].as_str().unwrap()).await;
    let approval = env.fake.approve(&provider_url, BOB_AT_FAKE);
    env.gw.clock.advance(Duration::from_millis(1200));
    let (status, page, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 400, "{page}");
    let st = flow_status(&env.gw, auth["id"].as_str().unwrap(), 0).await;
    assert_eq!(st["status"], "failed", "{st}");

    assert_eq!(env.fake.code_exchanges(), 0, "the code was never exchanged");
    assert!(
        connections(&env.gw, None).await.is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn access_denied_fails_the_flow_with_that_reason() {
    let env = env(|_| {}).await;
    let auth = authorize(&env.gw, "alice", &["read"]).await;
    let provider_url = open_link(auth["url"].as_str().unwrap()).await;
    let (status, page, _) = browse(&env.fake.deny(&provider_url)).await;
    assert_eq!(status, 400);
    assert!(page.contains("access_denied"), "{page}");
    assert!(!page.contains("<script"), "a plain page");

    let st = flow_status(&env.gw, auth["id"].as_str().unwrap(), 5).await;
    assert_eq!(st["status"], "failed");
    assert!(
        st["status_reason"]
            .as_str()
            .unwrap()
            .contains("access_denied"),
        "{st}"
    );
    assert_eq!(env.fake.code_exchanges(), 0);
    assert!(connections(&env.gw, None).await.is_empty());
    let (status, body) = run(&env.gw, "Acct.Me", "alice").await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn confirm_by_the_wrong_user_is_refused_and_binds_nothing() {
    const VERIFIER: &str = "https://app.example.test/verify";
    let env = env(|c| c.oauth.user_verifier = UserVerifier::Url(VERIFIER.into())).await;
    let gw = &env.gw;

    let auth = authorize(gw, "alice", &["read"]).await;
    let flow_id = auth["id"].as_str().unwrap().to_owned();
    let provider_url = open_link(auth["url"].as_str().unwrap()).await;
    let approval = env.fake.approve(&provider_url, ALICE_AT_FAKE);
    let (status, _, location) = browse(&approval.callback_url()).await;
    assert_eq!(status, 303);
    assert_eq!(
        location.unwrap(),
        format!("{VERIFIER}?flow_id={flow_id}"),
        "the browser goes to the verifier with the flow id"
    );
    assert_eq!(flow_status(gw, &flow_id, 0).await["status"], "pending");

    // Before confirmation a call gets an authorization URL, not the token.
    let calls = env.calls.load(Ordering::SeqCst);
    let (status, body) = run(gw, "Acct.Me", "alice").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["output"]["authorization"]["url"].is_string());
    assert_eq!(
        env.calls.load(Ordering::SeqCst),
        calls,
        "the tool did not run"
    );

    let (status, body) = call(
        gw,
        Method::POST,
        "/v1/auth/confirm_user",
        Some(json!({"flow_id": flow_id, "user_id": "mallory"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let st = flow_status(gw, &flow_id, 0).await;
    assert_eq!(st["status"], "failed", "{st}");
    assert!(
        connections(gw, None).await.is_empty(),
        "nothing bound to anyone"
    );
    // The cancelled flow cannot be confirmed afterwards, even by its own user.
    let (status, _) = call(
        gw,
        Method::POST,
        "/v1/auth/confirm_user",
        Some(json!({"flow_id": flow_id, "user_id": "alice"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(connections(gw, None).await.is_empty());

    // A fresh flow confirmed by its own user works.
    let auth = authorize(gw, "alice", &["read"]).await;
    let flow_id = auth["id"].as_str().unwrap().to_owned();
    let provider_url = open_link(auth["url"].as_str().unwrap()).await;
    let approval = env.fake.approve(&provider_url, ALICE_AT_FAKE);
    let (status, _, location) = browse(&approval.callback_url()).await;
    assert_eq!(status, 303);
    assert!(location.unwrap().ends_with(&flow_id));
    let (status, body) = call(
        gw,
        Method::POST,
        "/v1/auth/confirm_user",
        Some(json!({"flow_id": flow_id, "user_id": "alice"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth_id"], flow_id);
    assert_eq!(flow_status(gw, &flow_id, 0).await["status"], "completed");
    me_ok(&env, "alice", ALICE_AT_FAKE).await;
    assert!(connections(gw, Some("mallory")).await.is_empty());
}

#[tokio::test]
async fn insufficient_scope_starts_a_flow_for_the_union() {
    let env = env(|_| {}).await;
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let before = stored(&env.gw, "alice").await;

    let (status, body) = run(&env.gw, "Acct.Write", "alice").await;
    assert_eq!(status, 403, "{body}");
    let authz = &body["output"]["authorization"];
    assert_eq!(authz["scopes"], json!(["read", "write"]), "{body}");
    let provider_url = open_link(authz["url"].as_str().unwrap()).await;
    let approval = env.fake.approve(&provider_url, ALICE_AT_FAKE);
    let asked: HashSet<&str> = approval.scope.split(' ').collect();
    assert!(
        asked.contains("read") && asked.contains("write"),
        "{provider_url}"
    );

    // Meanwhile the existing grant still serves what it covers.
    assert_eq!(stored(&env.gw, "alice").await, before);
    me_ok(&env, "alice", ALICE_AT_FAKE).await;

    let (status, _, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 200);
    let (status, body) = run(&env.gw, "Acct.Write", "alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    me_ok(&env, "alice", ALICE_AT_FAKE).await;
    let conns = connections(&env.gw, Some("alice")).await;
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0]["scopes"], json!(["read", "write"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_thousand_interleaved_calls_never_cross() {
    let env = env(|_| {}).await;
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    connect(&env.gw, &env.fake, "bob", BOB_AT_FAKE, &["read"]).await;
    let expected = |subject: &str| sha(&env.fake.latest_access_token(subject).unwrap());
    let (alice_sha, bob_sha) = (expected(ALICE_AT_FAKE), expected(BOB_AT_FAKE));
    assert_ne!(alice_sha, bob_sha);

    let gw = env.gw.clone();
    let results: Vec<(&str, u16, Value)> = futures::stream::iter(0..1000)
        .map(|i| {
            let gw = gw.clone();
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            async move {
                let (status, body) = tokio::spawn(async move { run(&gw, "Acct.Me", user).await })
                    .await
                    .unwrap();
                (user, status, body)
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;

    let mut crossings = 0;
    for (user, status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["success"], true, "{body}");
        let v = &body["output"]["value"];
        let (subject, want) = match *user {
            "alice" => (ALICE_AT_FAKE, &alice_sha),
            _ => (BOB_AT_FAKE, &bob_sha),
        };
        if v["user_id"] != *user || v["subject"] != subject || v["token_sha256"] != **want {
            crossings += 1;
        }
    }
    assert_eq!(results.len(), 1000);
    assert_eq!(crossings, 0, "a call carried another user's token");
    assert_eq!(env.fake.refreshes(), 0);
}

// Current-thread runtime: the gateway, worker and provider all run on this thread, so
// the capture sees every log line they write.
#[tokio::test]
async fn tokens_never_reach_the_database_file_logs_or_results() {
    let logs = capture_logs_on_this_thread();

    let env = env(always_expiring).await;
    env.fake.set_mode(RefreshMode::Rotate);
    env.fake.set_expires_in(1);
    let mut bodies = Vec::new();
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let_the_tokens_expire(&[&env.gw]);
    // A refresh ahead of expiry, a refresh after a 401, a refused refresh.
    env.fake.set_expires_in(86_400);
    bodies.push(me_ok(&env, "alice", ALICE_AT_FAKE).await);
    env.fake.invalidate_access_tokens(ALICE_AT_FAKE);
    bodies.push(me_ok(&env, "alice", ALICE_AT_FAKE).await);
    bodies.push(run(&env.gw, "Acct.Broken", "alice").await.1);
    connect(&env.gw, &env.fake, "bob", BOB_AT_FAKE, &["read"]).await;
    env.fake.set_mode(RefreshMode::InvalidGrant);
    env.fake.invalidate_access_tokens(BOB_AT_FAKE);
    bodies.push(run(&env.gw, "Acct.Me", "bob").await.1);
    bodies.push(json!(connections(&env.gw, None).await));
    bodies.push(
        call(&env.gw, Method::GET, "/v1/admin/auth_providers", None)
            .await
            .1,
    );
    assert!(env.fake.refreshes() >= 3);

    let mut secrets = env.fake.issued();
    assert!(
        secrets.len() >= 6,
        "tokens and codes were issued: {}",
        secrets.len()
    );
    secrets.push(CLIENT_SECRET.to_owned());
    secrets.push(ROOT_KEY.to_owned());

    let db_files = files_under(env.gw.dir.path());
    assert!(
        db_files
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".db")),
        "{db_files:?}"
    );
    let logged = logs.0.lock().unwrap().clone();
    assert!(
        bytes_contain(&logged, "refreshing token"),
        "the capture works: the gateway's own refresh log line is there"
    );
    for secret in &secrets {
        for file in &db_files {
            let bytes = std::fs::read(file).unwrap();
            assert!(
                !bytes_contain(&bytes, secret),
                "a secret issued by the provider is in {}",
                file.display()
            );
        }
        assert!(!bytes_contain(&logged, secret), "a secret is in the logs");
        for body in &bodies {
            assert!(
                !body.to_string().contains(secret.as_str()),
                "a secret is in {body}"
            );
        }
    }
}

#[tokio::test]
async fn deleting_a_user_destroys_their_key_and_connections() {
    let env = env(|_| {}).await;
    let gw = &env.gw;
    connect(gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    connect(gw, &env.fake, "bob", BOB_AT_FAKE, &["read"]).await;
    connect(gw, &env.fake, "carol", "carol-login", &["read"]).await;

    let (status, _) = call(gw, Method::DELETE, "/v1/admin/users/alice", None).await;
    assert_eq!(status, 204);
    assert!(connections(gw, Some("alice")).await.is_empty());
    assert!(gw.store.get_user_key("alice").await.unwrap().is_none());
    let (status, _) = call(gw, Method::DELETE, "/v1/admin/users/alice", None).await;
    assert_eq!(status, 404, "nothing of alice's is left");
    let (status, body) = run(gw, "Acct.Me", "alice").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["output"]["authorization"]["url"].is_string());
    // Others keep theirs.
    me_ok(&env, "bob", BOB_AT_FAKE).await;

    // Bob's sealed tokens copied onto Carol's row do not open as Carol's.
    let bob = stored(gw, "bob").await;
    let mut carol = stored(gw, "carol").await;
    carol.access_token_sealed = bob.access_token_sealed.clone();
    carol.refresh_token_sealed = bob.refresh_token_sealed.clone();
    gw.store.upsert_connection(&carol).await.unwrap();
    let bob_sha = sha(&env.fake.latest_access_token(BOB_AT_FAKE).unwrap());
    let calls = env.calls.load(Ordering::SeqCst);
    let (status, body) = run(gw, "Acct.Me", "carol").await;
    assert_ne!(status, 200, "{body}");
    assert!(!body.to_string().contains(&bob_sha));
    assert_eq!(
        env.calls.load(Ordering::SeqCst),
        calls,
        "no token reached the tool"
    );

    // Within one user too: a sealed refresh token moved into the access token field.
    let mut swapped = stored(gw, "bob").await;
    swapped.access_token_sealed = swapped.refresh_token_sealed.clone().unwrap();
    gw.store.upsert_connection(&swapped).await.unwrap();
    // Writing the store behind the gateway's back: its row cache serves bob's untampered
    // row until it expires (or the change watcher drops it), at the latest after the TTL
    // it has while the watcher vouches for it.
    gw.clock
        .advance(switchboard::oauth::CONNECTION_CACHE_WATCHED_TTL);
    let (status, body) = run(gw, "Acct.Me", "bob").await;
    assert_ne!(status, 200, "{body}");
    assert_eq!(env.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_revoked_on_one_replica_is_refused_by_the_other_within_seconds() {
    with_postgres("sb_oauth", |pg_url| async move {
        let (env, b) = two_replicas_with(&pg_url, RefreshMode::Rotate, |_| {}).await;
        let a = &env.gw;
        connect(a, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
        // B reads the row once and keeps it: while its change watcher runs, an entry
        // lives minutes, not the 2 s it lives unwatched.
        let (status, body) = run(&b, "Acct.Me", "alice").await;
        assert_eq!(status, 200, "{body}");
        b.clock.advance(Duration::from_millis(2_500));
        let (status, body) = run(&b, "Acct.Me", "alice").await;
        assert_eq!(status, 200, "{body}");

        let conn = connections(a, Some("alice")).await.remove(0);
        let id = conn["id"].as_str().unwrap();
        let (status, _) = call(
            a,
            Method::DELETE,
            &format!("/v1/admin/user_connections/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 204);
        // Only the store's change log tells B; it must stop using the grant.
        assert!(
            common::eventually(|| async {
                let (status, body) = run(&b, "Acct.Me", "alice").await;
                status == 403 && body["output"]["authorization"]["url"].is_string()
            })
            .await,
            "replica B kept using a revoked connection"
        );
    })
    .await;
}

#[tokio::test]
async fn admin_connection_delete_revokes_at_the_provider_and_provider_crud_works() {
    let env = env(|_| {}).await;
    let gw = &env.gw;
    connect(gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let conn = connections(gw, Some("alice")).await.remove(0);
    let id = conn["id"].as_str().unwrap();
    let (status, _) = call(
        gw,
        Method::DELETE,
        &format!("/v1/admin/user_connections/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        env.fake.revoked(),
        vec![env.fake.latest_refresh_token(ALICE_AT_FAKE).unwrap()],
        "the grant was revoked at the provider"
    );
    assert!(connections(gw, Some("alice")).await.is_empty());
    let (status, _) = run(gw, "Acct.Me", "alice").await;
    assert_eq!(status, 403);
    let (status, _) = call(
        gw,
        Method::DELETE,
        &format!("/v1/admin/user_connections/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // A provider added over the API.
    let mut body = env.fake.provider_extra();
    for (k, v) in [
        ("id", json!("fake-extra")),
        ("description", json!("Added over the API")),
        ("provider_id", json!("fake")),
        ("client_id", json!(common::fake_provider::CLIENT_ID)),
        ("client_secret", json!(CLIENT_SECRET)),
    ] {
        body[k] = v;
    }
    let (status, created) = call(
        gw,
        Method::POST,
        "/v1/admin/auth_providers",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(!created.to_string().contains(CLIENT_SECRET));
    assert_eq!(created["source"], "store");
    let (status, got) = call(gw, Method::GET, "/v1/admin/auth_providers/fake-extra", None).await;
    assert_eq!(status, 200);
    assert!(!got.to_string().contains(CLIENT_SECRET), "{got}");
    assert_eq!(got["client_secret"]["exists"], true);
    let (status, patched) = call(
        gw,
        Method::PATCH,
        "/v1/admin/auth_providers/fake-extra",
        Some(json!({"description": "Renamed"})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["description"], "Renamed");

    // Used in a flow: its stored client secret is what the provider checks.
    let (status, auth) = call(
        gw,
        Method::POST,
        "/v1/auth/authorize",
        Some(json!({"auth_requirement": {"id": "fake-extra", "oauth2": {"scopes": ["read"]}}, "user_id": "dave"})),
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    let provider_url = open_link(auth["url"].as_str().unwrap()).await;
    let approval = env.fake.approve(&provider_url, "dave-login");
    let (status, page, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 200, "{page}");
    let dave = connections(gw, Some("dave")).await;
    assert_eq!(dave.len(), 1);
    assert_eq!(dave[0]["provider_id"], "fake-extra");

    let (status, _) = call(
        gw,
        Method::DELETE,
        "/v1/admin/auth_providers/fake-extra",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(gw, Method::GET, "/v1/admin/auth_providers/fake-extra", None).await;
    assert_eq!(status, 404);

    // The config's id cannot be taken over the API.
    body["id"] = json!("fake");
    let (status, refused) = call(gw, Method::POST, "/v1/admin/auth_providers", Some(body)).await;
    assert_eq!(status, 403, "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("'fake'") && message.contains("config"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_401s_cause_exactly_one_refresh() {
    let env = env(|_| {}).await;
    env.fake
        .set_mode(RefreshMode::Slow(Duration::from_millis(200)));
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let before = stored(&env.gw, "alice").await;
    env.fake.invalidate_access_tokens(ALICE_AT_FAKE);

    let results = concurrent_me(std::slice::from_ref(&env.gw), "alice", 100).await;

    assert_eq!(
        env.fake.refreshes(),
        1,
        "every refused call reused one refresh"
    );
    assert_all_carry(
        &results,
        &env.fake.latest_access_token(ALICE_AT_FAKE).unwrap(),
    );
    let after = stored(&env.gw, "alice").await;
    assert_eq!(after.status, "active");
    assert_eq!(after.version, before.version + 1);
}

#[tokio::test]
async fn a_refresh_answer_without_a_refresh_token_keeps_the_old_one() {
    let env = env(always_expiring).await;
    env.fake.set_mode(RefreshMode::OmitRefreshToken);
    env.fake.set_expires_in(1);
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let_the_tokens_expire(&[&env.gw]);
    let original = stored_refresh_token(env.gw.store.as_ref(), "alice").await;
    assert!(original.is_some());
    env.fake.set_expires_in(86_400);

    me_ok(&env, "alice", ALICE_AT_FAKE).await;
    assert_eq!(env.fake.refreshes(), 1);
    assert_eq!(
        stored_refresh_token(env.gw.store.as_ref(), "alice").await,
        original,
        "the refresh token is kept"
    );
    // And it still works.
    env.fake.invalidate_access_tokens(ALICE_AT_FAKE);
    me_ok(&env, "alice", ALICE_AT_FAKE).await;
    assert_eq!(env.fake.refreshes(), 2);
    assert_eq!(stored(&env.gw, "alice").await.status, "active");
}

#[tokio::test]
async fn a_provider_slower_than_its_timeout_fails_retryably_and_keeps_tokens() {
    let env = env(always_expiring).await;
    env.fake.set_expires_in(1);
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    let_the_tokens_expire(&[&env.gw]);
    let before = stored(&env.gw, "alice").await;
    // Past the provider timeout (10 s).
    env.fake
        .set_mode(RefreshMode::Slow(Duration::from_secs(12)));

    let (status, body) = run(&env.gw, "Acct.Me", "alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(
        body["output"]["error"]["kind"],
        error_kind::UPSTREAM_RUNTIME_SERVER_ERROR,
        "{body}"
    );
    assert_eq!(body["output"]["error"]["can_retry"], true);
    assert_eq!(stored(&env.gw, "alice").await, before, "tokens kept");
}

/// A token the upstream refuses, whose refresh the provider refuses too: the user must
/// re-authorize, and this very call should say so as every other "requirements not met"
/// answer does (HTTP 403, `output.authorization` with the URL), so arcadepy and
/// arcadejs clients can run their authorize-then-retry flow.
#[tokio::test]
async fn a_refused_token_whose_refresh_is_refused_answers_with_an_authorization() {
    let env = env(|_| {}).await;
    connect(&env.gw, &env.fake, "alice", ALICE_AT_FAKE, &["read"]).await;
    env.fake.set_mode(RefreshMode::InvalidGrant);
    env.fake.invalidate_access_tokens(ALICE_AT_FAKE);

    let (status, body) = run(&env.gw, "Acct.Me", "alice").await;
    assert_eq!(env.fake.refreshes(), 1);
    assert_eq!(
        body["output"]["error"]["kind"],
        error_kind::TOOL_REQUIREMENTS_NOT_MET,
        "{body}"
    );
    let conns = connections(&env.gw, Some("alice")).await;
    assert_eq!(conns[0]["connection_status"], "needs_reauthorization");
    assert!(
        body["output"]["authorization"]["url"].is_string(),
        "the authorization is in output.authorization: {body}"
    );
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn a_completed_flow_redirects_to_next_uri() {
    let env = env(|_| {}).await;
    let (status, auth) = call(
        &env.gw,
        Method::POST,
        "/v1/auth/authorize",
        Some(json!({
            "auth_requirement": {"provider_id": "fake", "oauth2": {"scopes": ["read"]}},
            "user_id": "alice",
            "next_uri": "https://app.example.test/done?x=1",
        })),
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    let provider_url = open_link(auth["url"].as_str().unwrap()).await;
    let approval = env.fake.approve(&provider_url, ALICE_AT_FAKE);
    let (status, _, location) = browse(&approval.callback_url()).await;
    assert_eq!(status, 303);
    assert_eq!(location.unwrap(), "https://app.example.test/done?x=1");
    me_ok(&env, "alice", ALICE_AT_FAKE).await;
}
