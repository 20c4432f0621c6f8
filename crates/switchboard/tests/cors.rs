//! `http.cors`: which browser origins get their preflights answered, on REST and MCP. A
//! real gateway on 127.0.0.1:0. (Refusing a foreign `Origin` or `Host` is in `edge.rs`.)

mod common;

use common::*;
use serde_json::json;

/// `http.cors`: browser apps on an allowed origin get their preflights answered and can
/// read the answers (REST and MCP); other origins get no grant; without `http.cors`
/// no origin but the gateway's own (and loopback) is let in.
#[tokio::test]
async fn cors_grants_the_configured_origins_on_rest_and_mcp() {
    let gw = start_gateway(|c| {
        c.api.cors.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let preflight = |path: &str, origin: &'static str| {
        gw.http
            .request(reqwest::Method::OPTIONS, gw.url(path))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type,mcp-protocol-version",
            )
            .send()
    };
    for path in ["/v1/tools/execute", "/v1/mcps/alice/mcp"] {
        let res = preflight(path, "https://app.example.com").await.unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let h = res.headers();
        assert_eq!(
            h["access-control-allow-origin"], "https://app.example.com",
            "{path}"
        );
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST"),
            "{path}"
        );
        assert!(
            h["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("mcp-protocol-version"),
            "{path}"
        );
        let res = preflight(path, "https://evil.example").await.unwrap();
        assert!(
            res.headers().get("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    let res = gw
        .http
        .post(gw.url("/v1/tools/execute"))
        .header("Origin", "https://app.example.com")
        .header("Authorization", &gw.key)
        .json(&json!({"tool_name": "Builtin.Echo", "input": {"message": "hi"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        exposed.contains("x-should-retry") && exposed.contains("mcp-session-id"),
        "{exposed}"
    );

    // No `http.cors`: no grants, and another origin is refused (`api::guard`).
    let plain = start_gateway(|_| {}).await;
    let res = plain
        .http
        .post(plain.url("/v1/tools/execute"))
        .header("Origin", "https://app.example.com")
        .header("Authorization", &plain.key)
        .json(&json!({"tool_name": "Builtin.Echo", "input": {"message": "hi"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}
