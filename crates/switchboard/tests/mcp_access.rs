//! Who may use an MCP endpoint, and what it serves them: a session is its user's alone,
//! user tokens act only for their user while API keys act for anyone, dev mode's loopback
//! callers, foreign origins and hosts, and named gateways that serve only their tools.
//! Raw JSON-RPC over HTTP against a real gateway on 127.0.0.1:0 and a TDK worker.

mod common;

use common::mcp_client::*;
use common::*;
use serde_json::json;
use switchboard::config::GatewayConfig;
use switchboard::identity::mint_user_token;

#[tokio::test]
async fn a_session_is_refused_on_another_users_path_and_session_rules_hold() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let mut alice = Client::new(&gw, "/v1/mcps/alice/mcp");
    alice.initialize(json!({})).await;

    let mut on_bob = Client::new(&gw, "/v1/mcps/bob/mcp");
    on_bob.session = alice.session.clone();
    let r = on_bob.call("Kit_WhoAmI", json!({})).await;
    assert_eq!(r.status, 404, "{}", r.body);

    let no_session = Client::new(&gw, "/v1/mcps/alice/mcp");
    assert_eq!(no_session.post(rpc(1, "ping", json!({}))).await.status, 400);
    let mut unknown = Client::new(&gw, "/v1/mcps/alice/mcp");
    unknown.session = Some("no-such-session".into());
    assert_eq!(unknown.post(rpc(1, "ping", json!({}))).await.status, 404);

    let bad_version = alice
        .send_raw(
            gw.http
                .post(gw.url("/v1/mcps/alice/mcp"))
                .header("Authorization", format!("Bearer {}", gw.key))
                .header("Accept", "application/json, text/event-stream")
                .header("Mcp-Session-Id", alice.session.clone().unwrap())
                .header("MCP-Protocol-Version", "1999-01-01")
                .json(&rpc(1, "ping", json!({}))),
        )
        .await;
    assert_eq!(bad_version.status, 400);

    // The session still works for its own user.
    let r = alice.call("Kit_WhoAmI", json!({})).await;
    assert_eq!(r.body["result"]["structuredContent"]["user_id"], "alice");
}

#[tokio::test]
async fn user_tokens_act_only_for_their_user_and_api_keys_for_anyone() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let token = mint_user_token(&gw.store, "alice", None, 0).await.unwrap();
    let bearer = Some(format!("Bearer {}", token.plaintext));

    let mut own = Client::new(&gw, "/v1/mcps/alice/mcp").auth(bearer.clone());
    own.initialize(json!({})).await;
    let r = own.call("Kit_WhoAmI", json!({})).await;
    assert_eq!(r.body["result"]["structuredContent"]["user_id"], "alice");

    let other = Client::new(&gw, "/v1/mcps/bob/mcp").auth(bearer.clone());
    let r = other.post(rpc(0, "initialize", json!({}))).await;
    assert_eq!(r.status, 403);
    let other_header = Client::new(&gw, "/mcp")
        .auth(bearer.clone())
        .header("Arcade-User-Id", "bob");
    assert_eq!(
        other_header
            .post(rpc(0, "initialize", json!({})))
            .await
            .status,
        403
    );

    // /mcp with the token alone: its own user.
    let mut bare = Client::new(&gw, "/mcp").auth(bearer);
    bare.initialize(json!({})).await;
    let r = bare.call("Kit_WhoAmI", json!({})).await;
    assert_eq!(r.body["result"]["structuredContent"]["user_id"], "alice");

    // An API key names the user with Arcade-User-Id; without one it's a 400.
    let mut key = Client::new(&gw, "/mcp").header("Arcade-User-Id", "carol");
    key.initialize(json!({})).await;
    let r = key.call("Kit_WhoAmI", json!({})).await;
    assert_eq!(r.body["result"]["structuredContent"]["user_id"], "carol");
    let nobody = Client::new(&gw, "/mcp");
    assert_eq!(
        nobody.post(rpc(0, "initialize", json!({}))).await.status,
        400
    );

    let anonymous = Client::new(&gw, "/v1/mcps/alice/mcp").auth(None);
    let r = anonymous.post(rpc(0, "initialize", json!({}))).await;
    assert_eq!(r.status, 401);
    assert!(r.www_authenticate.unwrap().starts_with("Bearer"));
    let wrong = Client::new(&gw, "/v1/mcps/alice/mcp").auth(Some("Bearer sbu_nope".into()));
    assert_eq!(
        wrong.post(rpc(0, "initialize", json!({}))).await.status,
        401
    );
}

#[tokio::test]
async fn dev_mode_loopback_callers_act_as_the_path_user_without_a_credential() {
    let (gw, _w) = kit_gateway(|c| c.api.development = true).await;
    let mut c = Client::new(&gw, "/v1/mcps/dana/mcp").auth(None);
    c.initialize(json!({})).await;
    let r = c.call("Kit_WhoAmI", json!({})).await;
    assert_eq!(r.body["result"]["structuredContent"]["user_id"], "dana");
}

#[tokio::test]
async fn a_gateway_serves_only_its_tools_and_an_unknown_slug_is_404() {
    let (gw, _w) = kit_gateway(|c| {
        c.gateways.push(GatewayConfig {
            slug: "echo".into(),
            description: Some("just echo".into()),
            tools: vec!["Kit.Echo".into()],
            toolkits: vec![],
        })
    })
    .await;
    let mut c = Client::new(&gw, "/mcp/echo").header("Arcade-User-Id", "alice");
    c.initialize(json!({})).await;
    let list = c.post(rpc(1, "tools/list", json!({}))).await;
    assert_eq!(tool_names(&list.body["result"]), vec!["Kit_Echo"]);
    let r = c.call("Kit_Add", json!({"a": 1, "b": 2})).await;
    assert_eq!(r.body["error"]["code"], -32602);
    let r = c.call("Kit_Echo", json!({"message": "x"})).await;
    assert_eq!(r.body["result"]["content"][0]["text"], "x");

    // The session belongs to the gateway it was opened on.
    let mut all = Client::new(&gw, "/mcp").header("Arcade-User-Id", "alice");
    all.session = c.session.clone();
    assert_eq!(all.post(rpc(1, "ping", json!({}))).await.status, 404);

    let nope = Client::new(&gw, "/mcp/nope").header("Arcade-User-Id", "alice");
    assert_eq!(nope.post(rpc(0, "initialize", json!({}))).await.status, 404);
}

#[tokio::test]
async fn foreign_origins_and_hosts_are_refused() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let evil = Client::new(&gw, "/v1/mcps/alice/mcp").header("Origin", "https://evil.example");
    assert_eq!(evil.post(rpc(0, "initialize", json!({}))).await.status, 403);
    let local = Client::new(&gw, "/v1/mcps/alice/mcp").header("Origin", "http://localhost:6274");
    assert_eq!(
        local
            .post(rpc(0, "initialize", init_params(LEGACY)))
            .await
            .status,
        200
    );
    let rebound = Client::new(&gw, "/v1/mcps/alice/mcp").header("Host", "evil.example:80");
    assert_eq!(
        rebound.post(rpc(0, "initialize", json!({}))).await.status,
        403
    );
}

/// `gateways: [{toolkits: [...]}]`: exactly the tools of the toolkits named, in both eras;
/// a tool of another toolkit is an unknown tool there (-32602) and never runs.
#[tokio::test]
async fn a_gateway_selecting_a_toolkit_serves_exactly_its_tools_and_refuses_the_rest() {
    let kit = start_worker("Kit").await;
    let other = start_worker("Other").await;
    let (kit_url, other_url) = (kit.url(), other.url());
    let gw = start_gateway(move |c| {
        c.workers.push(worker_config("kit", &kit_url));
        c.workers.push(worker_config("other", &other_url));
        c.gateways.push(toolkit_gateway("kit", "Kit"));
    })
    .await;
    let kit_tools: Vec<String> = ["Add", "Echo", "Flaky", "NeedsSecret", "Sleep", "WhoAmI"]
        .iter()
        .map(|t| format!("Kit_{t}"))
        .collect();

    // Without a gateway both toolkits are served.
    let everything = Client::new(&gw, "/mcp").header("Arcade-User-Id", "alice");
    let all = everything.modern(1, "tools/list", json!({})).await;
    let all = tool_names(&all.body["result"]);
    assert!(all.contains(&"Other_Echo".to_string()), "{all:?}");

    let mut session = Client::new(&gw, "/mcp/kit").header("Arcade-User-Id", "alice");
    session.initialize(json!({})).await;
    let list = session.post(rpc(2, "tools/list", json!({}))).await;
    assert_eq!(tool_names(&list.body["result"]), kit_tools, "{}", list.body);
    let stateless = Client::new(&gw, "/mcp/kit").header("Arcade-User-Id", "alice");
    let list = stateless.modern(3, "tools/list", json!({})).await;
    assert_eq!(tool_names(&list.body["result"]), kit_tools, "{}", list.body);

    for name in ["Other_Echo", "Other.Echo"] {
        let arguments = json!({"message": "x"});
        let r = session.call(name, arguments.clone()).await;
        assert_eq!(r.body["error"]["code"], -32602, "{name}: {}", r.body);
        let r = stateless
            .modern(
                4,
                "tools/call",
                json!({"name": name, "arguments": arguments}),
            )
            .await;
        assert_eq!(r.body["error"]["code"], -32602, "{name}: {}", r.body);
    }
    assert_eq!(other.invocations(), 0, "the other toolkit never ran");

    let r = session.call("Kit_Echo", json!({"message": "x"})).await;
    assert_eq!(r.body["result"]["content"][0]["text"], "x", "{}", r.body);
    let r = stateless
        .modern(
            5,
            "tools/call",
            json!({"name": "Kit_Echo", "arguments": {"message": "y"}}),
        )
        .await;
    assert_eq!(r.body["result"]["content"][0]["text"], "y", "{}", r.body);
}

#[tokio::test]
async fn two_users_thousand_interleaved_calls_never_cross() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let mut alice = Client::new(&gw, "/v1/mcps/alice/mcp");
    alice.initialize(json!({})).await;
    let bob_token = mint_user_token(&gw.store, "bob", None, 0).await.unwrap();
    let mut bob = Client::new(&gw, "/mcp").auth(Some(format!("Bearer {}", bob_token.plaintext)));
    bob.initialize(json!({})).await;
    for round in 0..50 {
        let calls = (0..20).map(|i| {
            let (client, user) = if (round + i) % 2 == 0 {
                (&alice, "alice")
            } else {
                (&bob, "bob")
            };
            async move {
                let r = client.call("Kit_WhoAmI", json!({})).await;
                (
                    user,
                    r.body["result"]["structuredContent"]["user_id"].clone(),
                )
            }
        });
        for (user, got) in futures::future::join_all(calls).await {
            assert_eq!(got, json!(user));
        }
    }
}
