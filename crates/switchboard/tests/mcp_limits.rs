//! MCP sessions are bounded (issue 16, item 4): in number per user and credential and in
//! total, in size, and in time. Real HTTP against a gateway on 127.0.0.1:0.

mod common;

use std::time::Duration;

use common::mcp_client::*;
use common::*;
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::identity::generate_key;
use switchboard::store::McpSessionCount;

fn handshake() -> Value {
    json!({
        "protocolVersion": LEGACY,
        "capabilities": {"elicitation": {"url": {}}},
        "clientInfo": {"name": "limits-test", "version": "1"},
    })
}

/// A client of `user`'s endpoint through `auth` (`None`: no credential).
fn client<'a>(gw: &'a TestGateway, user: &str, auth: Option<&str>) -> Client<'a> {
    Client::new(gw, &format!("/v1/mcps/{user}/mcp")).auth(auth.map(str::to_owned))
}

/// Sends an `initialize` with `params` for `user` through `auth` (`None`: no credential).
async fn start_with(gw: &TestGateway, user: &str, auth: Option<&str>, params: Value) -> Reply {
    client(gw, user, auth)
        .post(rpc(0, "initialize", params))
        .await
}

async fn start(gw: &TestGateway, user: &str, auth: &str) -> Reply {
    start_with(gw, user, Some(auth), handshake()).await
}

/// Starts a session that must be admitted; returns its id.
async fn started(gw: &TestGateway, user: &str, auth: &str) -> String {
    let s = start(gw, user, auth).await;
    assert_eq!(s.status, 200, "{}", s.body);
    s.session.expect("an Mcp-Session-Id")
}

async fn end(gw: &TestGateway, user: &str, auth: &str, session: &str) {
    let mut c = client(gw, user, Some(auth));
    c.session = Some(session.into());
    let res = c.request(reqwest::Method::DELETE).send().await.unwrap();
    assert!(res.status().is_success(), "DELETE: {}", res.status());
}

/// Sessions in the store: this user's through this credential, and everyone's.
async fn stored(gw: &TestGateway, user: &str, credential: &str) -> McpSessionCount {
    gw.store
        .count_mcp_sessions(user, credential, 0)
        .await
        .unwrap()
}

/// A second API key on the gateway: another credential. Returns its header and its id.
async fn another_key(gw: &TestGateway) -> (String, String) {
    let key = generate_key("second", 0);
    gw.store.insert_api_key(&key.record).await.unwrap();
    (format!("Bearer {}", key.plaintext), key.record.id)
}

fn refusal_message(s: &Reply) -> &str {
    s.body["error"]["message"].as_str().unwrap_or_default()
}

async fn capped(customise: impl FnOnce(&mut Config)) -> (TestGateway, String) {
    let gw = start_gateway(customise).await;
    let auth = format!("Bearer {}", gw.key);
    (gw, auth)
}

#[tokio::test]
async fn past_its_cap_a_user_is_refused_through_that_credential_only_until_a_session_ends() {
    let (gw, key) = capped(|c| {
        c.api.mcp_max_sessions_per_user = 2;
        c.api.mcp_max_sessions = 100;
    })
    .await;
    let first = started(&gw, "alice", &key).await;
    started(&gw, "alice", &key).await;

    let refused = start(&gw, "alice", &key).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.session.is_none());
    let message = refusal_message(&refused);
    assert!(
        message.contains("api.mcp_max_sessions_per_user = 2"),
        "{message}"
    );
    assert!(message.contains("DELETE"), "{message}");
    assert_eq!(
        stored(&gw, "alice", "").await.total,
        2,
        "nothing was created"
    );

    // Another user through the same key, and alice through other credentials, are other
    // buckets.
    started(&gw, "bob", &key).await;
    let (second_key, _) = another_key(&gw).await;
    started(&gw, "alice", &second_key).await;
    let token = format!("Bearer {}", gw.user_token("alice").await);
    started(&gw, "alice", &token).await;
    started(&gw, "alice", &token).await;
    assert_eq!(start(&gw, "alice", &token).await.status, 429);

    // Ending a session frees its slot.
    end(&gw, "alice", &key, &first).await;
    started(&gw, "alice", &key).await;
    assert_eq!(start(&gw, "alice", &key).await.status, 429);
}

#[tokio::test]
async fn past_the_total_cap_every_caller_is_refused_until_a_session_ends() {
    let (gw, key) = capped(|c| {
        c.api.mcp_max_sessions_per_user = 10;
        c.api.mcp_max_sessions = 3;
    })
    .await;
    started(&gw, "alice", &key).await;
    started(&gw, "alice", &key).await;
    let bobs = started(&gw, "bob", &key).await;

    let refused = start(&gw, "carol", &key).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.session.is_none());
    let message = refusal_message(&refused);
    assert!(message.contains("api.mcp_max_sessions = 3"), "{message}");
    let (second_key, _) = another_key(&gw).await;
    assert_eq!(start(&gw, "dave", &second_key).await.status, 503);
    assert_eq!(stored(&gw, "", "").await.total, 3, "nothing was created");

    end(&gw, "bob", &key, &bobs).await;
    started(&gw, "carol", &key).await;
}

#[tokio::test]
async fn in_dev_mode_loopback_callers_share_one_credential() {
    let gw = start_gateway(|c| {
        c.api.development = true;
        c.api.mcp_max_sessions_per_user = 1;
    })
    .await;
    let first = start_with(&gw, "alice", None, handshake()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(stored(&gw, "alice", "loopback").await.caller, 1);
    let second = start_with(&gw, "alice", None, handshake()).await;
    assert_eq!(second.status, 429, "{}", second.body);
}

#[tokio::test]
async fn a_huge_initialize_is_refused_and_a_large_one_is_stored_small() {
    let (gw, key) = capped(|_| {}).await;
    let megabyte = "x".repeat(1 << 20);

    let mut huge = handshake();
    huge["clientInfo"]["name"] = json!(megabyte);
    let refused = start_with(&gw, "alice", Some(&key), huge).await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert!(refused.session.is_none());
    assert_eq!(stored(&gw, "", "").await.total, 0);

    // Under the size limit, but every part a client can grow is grown.
    let blob = "y".repeat(12_000);
    let mut large = handshake();
    large["capabilities"]["experimental"] = json!({"blob": {"data": blob}});
    large["capabilities"]["roots"] = json!({"listChanged": true, "junk": blob});
    large["clientInfo"] = json!({"name": blob, "version": "1", "title": "t", "description": blob});
    large["_meta"] = json!({"junk": "z".repeat(5_000)});
    let s = start_with(&gw, "alice", Some(&key), large).await;
    assert_eq!(s.status, 200, "{}", s.body);
    let session = s.session.unwrap();
    let row = gw.store.get_mcp_session(&session).await.unwrap().unwrap();
    assert!(
        row.client_json.len() <= 1024,
        "{} bytes stored: {}",
        row.client_json.len(),
        row.client_json
    );
    let kept: Value = serde_json::from_str(&row.client_json).unwrap();
    assert_eq!(kept["clientInfo"]["name"].as_str().unwrap().len(), 256);
    assert_eq!(kept["capabilities"]["elicitation"], json!({"url": {}}));
    assert!(kept["capabilities"].get("experimental").is_none());

    // The session works as before.
    let mut c = client(&gw, "alice", Some(&key));
    c.session = Some(session);
    let r = c
        .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    assert_eq!(r.status, 202);
}

#[tokio::test]
async fn the_sweep_deletes_sessions_idle_past_the_configured_lifetime_only() {
    let hour = Duration::from_secs(3600);
    let (gw, key) = capped(|c| c.api.mcp_session_lifetime = hour).await;
    let a = started(&gw, "alice", &key).await;
    let b = started(&gw, "bob", &key).await;
    let seen = gw
        .store
        .get_mcp_session(&a)
        .await
        .unwrap()
        .unwrap()
        .last_seen_ms;
    // Bob's session was last seen two hours before alice's.
    gw.store
        .touch_mcp_session(&b, seen - 2 * 3600 * 1000)
        .await
        .unwrap();

    let swept = switchboard::mcp::sweep_sessions(gw.store.as_ref(), hour, seen + 1000);
    assert_eq!(swept.await.unwrap(), 1);
    assert!(gw.store.get_mcp_session(&a).await.unwrap().is_some());
    assert!(gw.store.get_mcp_session(&b).await.unwrap().is_none());

    // An hour on, alice's goes too.
    let swept = switchboard::mcp::sweep_sessions(gw.store.as_ref(), hour, seen + 3600 * 1000 + 1);
    assert_eq!(swept.await.unwrap(), 1);
    assert!(gw.store.get_mcp_session(&a).await.unwrap().is_none());
}

#[tokio::test]
async fn expired_sessions_are_swept_without_any_traffic() {
    // Swept every quarter of the lifetime: every 500 ms here.
    let (gw, key) = capped(|c| c.api.mcp_session_lifetime = Duration::from_secs(2)).await;
    let session = started(&gw, "alice", &key).await;
    // As if last seen long ago: no need to wait out the lifetime.
    gw.store.touch_mcp_session(&session, 1).await.unwrap();
    let store = gw.store.clone();
    let gone = eventually(|| {
        let store = store.clone();
        let session = session.clone();
        async move { store.get_mcp_session(&session).await.unwrap().is_none() }
    })
    .await;
    assert!(gone, "the expired session is still stored");
}
