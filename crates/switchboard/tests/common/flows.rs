//! OAuth test setup shared by the flow tests: root keys, a gateway config that completes
//! flows at the callback and may reach the fake provider on loopback, and the browser's
//! side of a flow.

use reqwest::Method;
use serde_json::{Value, json};
use switchboard::config::{Config, RootKeyConfig, SecretValue, UserVerifier};

use super::TestGateway;

/// One default root key `k1` with `value`.
pub fn root_keys(value: &str) -> Vec<RootKeyConfig> {
    vec![RootKeyConfig {
        id: "k1".into(),
        default: true,
        value: SecretValue::new(value),
    }]
}

/// Root keys, no user verifier (a flow completes at the callback), and loopback allowed:
/// outside dev mode the fake provider's address must be listed.
pub fn oauth_config(c: &mut Config, root_key: &str) {
    c.security.root_keys = root_keys(root_key);
    c.oauth.user_verifier = UserVerifier::Disabled;
    c.network.allowlist.push("127.0.0.1".into());
}

/// A browser that shows redirects instead of following them.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A request to `path` with the gateway's API key: status and JSON body (`Null` if none).
pub async fn call(
    gw: &TestGateway,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call_url(gw, method, &gw.url(path), body).await
}

/// Like [`call`], to a whole URL.
pub async fn call_url(
    gw: &TestGateway,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = gw
        .http
        .request(method, url)
        .header("Authorization", format!("Bearer {}", gw.key));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `/v1/auth/authorize` for `user` with the provider `fake` and `scopes`: the answer.
pub async fn authorize(gw: &TestGateway, user: &str, scopes: &[&str]) -> Value {
    let (status, body) = call(
        gw,
        Method::POST,
        "/v1/auth/authorize",
        Some(json!({
            "auth_requirement": {"provider_id": "fake", "oauth2": {"scopes": scopes}},
            "user_id": user,
        })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A browser GET: status, body text, `Location`.
pub async fn browse(url: &str) -> (u16, String, Option<String>) {
    let res = browser().get(url).send().await.unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, res.text().await.unwrap(), location)
}

/// Follows the gateway's short link: the provider URL it redirects to.
pub async fn open_link(link: &str) -> String {
    let (status, body, location) = browse(link).await;
    assert_eq!(
        status, 303,
        "the link should redirect to the provider: {body}"
    );
    location.expect("a Location")
}

/// The flow's status, waiting up to `wait_s` seconds for it to finish.
pub async fn flow_status(gw: &TestGateway, id: &str, wait_s: u32) -> Value {
    let (status, body) = call(
        gw,
        Method::GET,
        &format!("/v1/auth/status?id={id}&wait={wait_s}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}
