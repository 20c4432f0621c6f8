//! Every tool call's request span names the user it runs for and the tool, whichever door
//! and path it came through (REST hot route or router, MCP direct path or rmcp): the
//! executor records them, so a log line of a call can be tied to its user.

mod common;

use common::logs::capture_logs_on_this_thread;
use common::mcp_client::{Client, kit_gateway};
use serde_json::{Value, json};

/// The lines of the span `request` that name `user` as its user.
fn span_lines_for<'a>(logs: &'a str, user: &str) -> Vec<&'a str> {
    let needle = format!("user_id={user}");
    logs.lines()
        .filter(|l| l.contains("request{") && l.contains(&needle))
        .collect()
}

// A current-thread runtime (the default): the gateway logs on the test's thread, where
// the capture listens.
#[tokio::test]
async fn every_tool_call_names_its_user_and_tool_in_the_request_span() {
    let logs = capture_logs_on_this_thread();
    let (gw, _worker) = kit_gateway(|_| {}).await;

    // REST: the hot route and the router (a trailing slash is not a hot path).
    for (path, user) in [
        ("/v1/tools/execute", "span-rest-hot"),
        ("/v1/orgs/o/projects/p/tools/execute", "span-rest-routed"),
    ] {
        let res = gw
            .http
            .post(gw.url(path))
            .bearer_auth(&gw.key)
            .json(&json!({
                "tool_name": "Kit.Echo",
                "input": {"message": "hi"},
                "user_id": user,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["success"], true, "{path}: {body}");
    }

    // MCP: stateless on the hot path, and a 2025-11-25 session through rmcp, each on the
    // user's own endpoint.
    let modern = Client::new(&gw, "/v1/mcps/span-mcp-modern/mcp");
    let reply = modern
        .modern(
            1,
            "tools/call",
            json!({"name": "Kit_Echo", "arguments": {"message": "hi"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["result"]["isError"], false, "{}", reply.body);

    let mut session = Client::new(&gw, "/v1/mcps/span-mcp-session/mcp/");
    session.initialize(json!({})).await;
    let reply = session.call("Kit_Echo", json!({"message": "hi"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["result"]["isError"], false, "{}", reply.body);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for (user, tool) in [
        ("span-rest-hot", "tool=Kit.Echo"),
        ("span-rest-routed", "tool=Kit.Echo"),
        ("span-mcp-modern", "tool=Kit_Echo"),
        ("span-mcp-session", "tool=Kit_Echo"),
    ] {
        let lines = span_lines_for(&logs, user);
        assert!(
            lines.iter().any(|l| l.contains(tool)),
            "no request span line names user {user} and {tool}; its lines: {lines:#?}"
        );
    }
}
