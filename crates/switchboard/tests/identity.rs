//! Who is calling: user tokens next to API keys, through the library's `Authenticator`
//! and over REST.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard::clock::Clock;
use switchboard::identity::{
    Authenticator, Caller, IdentityError, generate_key, generate_user_token, mint_user_token,
};
use switchboard::store::{SqliteStore, Store};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn store() -> Arc<dyn Store> {
    Arc::new(SqliteStore::open_in_memory().await.unwrap())
}

/// No cache, so every call sees the store as it is now.
fn uncached(store: &Arc<dyn Store>) -> Authenticator {
    Authenticator::new(store.clone(), false, Duration::ZERO, Clock::system())
}

#[tokio::test]
async fn a_user_token_authenticates_as_its_user_and_may_act_for_that_user_only() {
    let store = store().await;
    let token = mint_user_token(&store, "alice", None, now_ms())
        .await
        .unwrap();
    let auth = Authenticator::new(
        store.clone(),
        false,
        Duration::from_secs(10),
        Clock::system(),
    );

    for header in [
        format!("Bearer {}", token.plaintext),
        token.plaintext.clone(),
    ] {
        let caller = auth.authenticate(Some(&header), None).await.unwrap();
        assert_eq!(
            caller,
            Caller::UserToken {
                token_id: token.record.id.clone(),
                user_id: "alice".into(),
            }
        );
        assert_eq!(caller.bound_user(), Some("alice"));
        assert!(caller.may_act_for("alice"));
        assert!(!caller.may_act_for("bob"));
    }
}

#[tokio::test]
async fn a_user_token_is_refused_once_its_lifetime_has_passed_by_the_authenticators_clock() {
    let store = store().await;
    let clock = Clock::manual();
    // Cached lookups too: a cached token must not outlive its expiry either.
    let auth = Authenticator::new(store.clone(), false, Duration::from_secs(10), clock.clone());
    let hour = Duration::from_secs(3600);
    let token = mint_user_token(&store, "alice", Some(hour), clock.now_ms())
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token.plaintext);
    assert!(auth.authenticate(Some(&bearer), None).await.is_ok());

    clock.advance(hour);
    let err = auth.authenticate(Some(&bearer), None).await.unwrap_err();
    assert!(matches!(err, IdentityError::Invalid), "{err:?}");
    let err = Authenticator::new(store.clone(), false, Duration::ZERO, clock.clone())
        .authenticate(Some(&bearer), None)
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::Invalid), "{err:?}");

    // One minted now, inside its lifetime, works.
    let fresh = mint_user_token(&store, "alice", Some(hour), clock.now_ms())
        .await
        .unwrap();
    assert!(
        auth.authenticate(Some(&fresh.plaintext), None)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_revoked_api_key_works_until_its_cached_lookup_is_older_than_the_ttl() {
    let store = store().await;
    let clock = Clock::manual();
    let ttl = Duration::from_secs(10);
    let auth = Authenticator::new(store.clone(), false, ttl, clock.clone());
    let key = generate_key("ci", clock.now_ms());
    store.insert_api_key(&key.record).await.unwrap();
    assert!(auth.authenticate(Some(&key.plaintext), None).await.is_ok());

    store
        .revoke_api_key(&key.record.id, clock.now_ms())
        .await
        .unwrap();
    assert!(
        auth.authenticate(Some(&key.plaintext), None).await.is_ok(),
        "the cached lookup is trusted for the TTL"
    );
    clock.advance(ttl);
    let err = auth
        .authenticate(Some(&key.plaintext), None)
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::Invalid), "{err:?}");
}

#[tokio::test]
async fn a_revoked_user_token_is_refused() {
    let store = store().await;
    let token = mint_user_token(&store, "alice", None, now_ms())
        .await
        .unwrap();
    let auth = uncached(&store);
    assert!(
        auth.authenticate(Some(&token.plaintext), None)
            .await
            .is_ok()
    );
    assert!(
        store
            .revoke_user_token(&token.record.id, now_ms())
            .await
            .unwrap()
    );
    let err = auth
        .authenticate(Some(&token.plaintext), None)
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::Invalid), "{err:?}");
}

#[tokio::test]
async fn an_unknown_user_token_or_one_never_stored_is_refused() {
    let store = store().await;
    let never_stored = generate_user_token("alice", None, now_ms()).unwrap();
    for bad in [never_stored.plaintext.as_str(), "sbu_nope"] {
        let err = uncached(&store)
            .authenticate(Some(bad), None)
            .await
            .unwrap_err();
        assert!(matches!(err, IdentityError::Invalid), "{bad}: {err:?}");
    }
}

#[tokio::test]
async fn api_keys_still_authenticate_and_may_act_for_anyone() {
    let store = store().await;
    let key = generate_key("ci", now_ms());
    store.insert_api_key(&key.record).await.unwrap();
    let caller = uncached(&store)
        .authenticate(Some(&format!("Bearer {}", key.plaintext)), None)
        .await
        .unwrap();
    assert!(matches!(caller, Caller::ApiKey { ref name, .. } if name == "ci"));
    assert_eq!(caller.bound_user(), None);
    assert!(caller.may_act_for("alice") && caller.may_act_for("bob"));
}

#[tokio::test]
async fn dev_mode_loopback_without_a_credential_may_act_for_anyone() {
    let store = store().await;
    let auth = Authenticator::new(store, true, Duration::from_secs(10), Clock::system());
    let loopback: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let caller = auth.authenticate(None, Some(loopback)).await.unwrap();
    assert_eq!(caller, Caller::DevLoopback);
    assert!(caller.may_act_for("anyone"));
    let remote: SocketAddr = "10.0.0.8:5000".parse().unwrap();
    assert!(matches!(
        auth.authenticate(None, Some(remote)).await,
        Err(IdentityError::Missing)
    ));
}

#[tokio::test]
async fn a_user_token_on_the_rest_api_is_a_403_that_says_to_use_an_api_key() {
    let gw = start_gateway(|_| {}).await;
    let token = mint_user_token(&gw.store, "alice", None, now_ms())
        .await
        .unwrap();
    for (method, path) in [
        ("GET", "/v1/tools"),
        ("POST", "/v1/tools/execute"),
        ("POST", "/v1/admin/users/alice/tokens"),
    ] {
        let res = gw
            .http
            .request(method.parse().unwrap(), gw.url(path))
            .header("Authorization", format!("Bearer {}", token.plaintext))
            .json(&json!({"tool_name": "Math.Add", "user_id": "alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            json!({"name": "forbidden", "message": "user tokens are for MCP endpoints; use an API key"})
        );
    }
    // The API key still works there.
    let (status, _) = gw.get("/v1/tools").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_admin_route_mints_a_user_token_that_authenticates_as_that_user() {
    let gw = start_gateway(|_| {}).await;
    let post = |body: Option<Value>| {
        let mut req = gw
            .http
            .post(gw.url("/v1/admin/users/alice%40example.com/tokens"))
            .header("Authorization", format!("Bearer {}", gw.key));
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };

    let res = post(Some(json!({"ttl": "30d"}))).await.unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user_id"], "alice@example.com");
    let token = body["token"].as_str().unwrap();
    assert!(token.starts_with("sbu_") && token.len() == 44, "{body}");
    let expires = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let expected = now_ms() + 30 * 86_400_000;
    assert!((expires - expected).abs() < 600_000, "{body}");

    let caller = uncached(&gw.store)
        .authenticate(Some(token), None)
        .await
        .unwrap();
    assert_eq!(
        caller,
        Caller::UserToken {
            token_id: body["id"].as_str().unwrap().into(),
            user_id: "alice@example.com".into(),
        }
    );

    // No body: a token without expiry.
    let res = post(None).await.unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_at"], Value::Null);

    // A bad lifetime is a 400 naming the field.
    let res = post(Some(json!({"ttl": "soon"}))).await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().starts_with("ttl: "),
        "{body}"
    );

    // Without an API key there is no token.
    let res = gw
        .http
        .post(gw.url("/v1/admin/users/alice/tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
