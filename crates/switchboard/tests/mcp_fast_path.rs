//! The direct path (`mcp/direct.rs`: `tools/call` answered without rmcp) and the hot
//! routes (`api::service`: MCP POSTs served before the router) must answer exactly as the
//! slow paths do, keep a session as alive, and stop on cancellation as rmcp does. Raw
//! JSON-RPC over HTTP against real gateways on 127.0.0.1:0.

mod common;

use std::time::Duration;

use common::eventually;
use common::mcp_client::*;
use serde_json::{Value, json};

/// A reply's body with what differs between two gateways masked: the `requestState`
/// sealed with each one's key and the authorization links with their flow ids.
fn comparable(mut body: Value) -> Value {
    fn mask(v: &mut Value) {
        match v {
            Value::Object(fields) => {
                for (k, v) in fields.iter_mut() {
                    if k == "requestState" || k == "elicitationId" {
                        *v = json!("…");
                    } else {
                        mask(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(mask),
            Value::String(s) if s.contains("http://127.0.0.1:") => {
                *s = "a link".into();
            }
            _ => {}
        }
    }
    mask(&mut body);
    body
}

/// A JSON-RPC answer to request 7 or 8: a result or an error.
fn answered(body: &Value) -> bool {
    body["id"].is_i64() && (body["result"].is_object() || body["error"].is_object())
}

/// Every `tools/call` outcome, in both eras, through a gateway that answers calls
/// directly and through one that sends every message to rmcp: the same JSON-RPC answers,
/// and handshake-era calls visibly took the direct path (plain JSON, where rmcp answers a
/// session's request as an event stream).
#[tokio::test]
async fn direct_tool_calls_answer_exactly_as_rmcp_does() {
    let (direct, _w1) = kit_gateway(|_| {}).await;
    let (through_rmcp, _w2) = kit_gateway(|c| c.api.mcp_direct_tool_calls = false).await;
    let auth_direct = auth_env(|_| {}).await;
    let auth_rmcp = auth_env(|c| c.api.mcp_direct_tool_calls = false).await;
    let calls: Vec<(&str, Value)> = vec![
        ("Kit_Echo", json!({"message": "hi"})),
        ("Kit_Add", json!({"a": 2, "b": 3})),
        ("Kit_Add", json!({"a": "two"})),
        ("Kit_Flaky", json!({})),
        ("Kit_WhoAmI", json!({})),
        ("Kit_NoSuchTool", json!({})),
        ("Acct_Me", json!({})),
    ];
    let mut compared = 0;
    for (gw_direct, gw_rmcp) in [(&direct, &through_rmcp), (&auth_direct.gw, &auth_rmcp.gw)] {
        let mut sessions = Vec::new();
        for gw in [gw_direct, gw_rmcp] {
            let mut c = Client::new(gw, "/v1/mcps/alice/mcp");
            c.initialize(json!({})).await;
            sessions.push(c);
        }
        for (tool, arguments) in &calls {
            // Handshake era, a client without URL elicitation.
            let params = json!({"name": tool, "arguments": arguments});
            let req = |c: &Client<'_>| {
                c.request(reqwest::Method::POST)
                    .json(&rpc(7, "tools/call", params.clone()))
            };
            let a = sessions[0].send_raw(req(&sessions[0])).await;
            let b = sessions[1].send_raw(req(&sessions[1])).await;
            assert_eq!((a.status, b.status), (200, 200), "{tool}");
            assert!(answered(&a.body), "{tool}: {}", a.body);
            assert_eq!(comparable(a.body), comparable(b.body), "{tool}, session");
            // 2026-07-28, with and without URL elicitation.
            for caps in [json!({"elicitation": {"url": {}}}), json!({})] {
                let mut params = params.clone();
                params["_meta"] = json!({"io.modelcontextprotocol/clientCapabilities": caps});
                let a = Client::new(gw_direct, "/v1/mcps/alice/mcp")
                    .modern(8, "tools/call", params.clone())
                    .await;
                let b = Client::new(gw_rmcp, "/v1/mcps/alice/mcp")
                    .modern(8, "tools/call", params)
                    .await;
                assert_eq!(a.status, b.status, "{tool}");
                assert!(answered(&a.body), "{tool}: {}", a.body);
                assert_eq!(comparable(a.body), comparable(b.body), "{tool}, {caps}");
            }
            compared += 3;
        }
        // The session's call took the direct path: JSON, not rmcp's event stream.
        for (c, expected) in sessions
            .iter()
            .zip(["application/json", "text/event-stream"])
        {
            let (_, content_type) = echo_reply_type(c, 9).await;
            assert!(content_type.starts_with(expected), "{content_type}");
        }
    }
    assert_eq!(compared, 2 * 3 * calls.len());
}

/// Calls answered directly still count as use: a session busy with nothing but
/// `tools/call` stays live in rmcp (its event stream stays open) past the keep-alive,
/// while an idle one is parked (its stream ends). The direct path hands a call to rmcp
/// once in each quarter of the keep-alive (`direct::admit`), so the busy session's calls
/// come back both ways: JSON when answered directly, an event stream through rmcp.
/// (The keep-alive is rmcp's own timer: real time passes here, as for a socket timeout.)
#[tokio::test]
async fn a_session_busy_only_with_direct_calls_stays_live_past_its_keep_alive() {
    let (gw, _w) = kit_gateway(|c| c.api.mcp_session_keep_alive = Duration::from_secs(1)).await;
    let mut idle = Client::new(&gw, "/v1/mcps/alice/mcp");
    idle.initialize(json!({})).await;
    let stream = idle.request(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert!(
        stream_ends(stream, Duration::from_secs(4)).await,
        "an idle session is parked and its stream ends"
    );

    let mut busy = Client::new(&gw, "/v1/mcps/alice/mcp");
    busy.initialize(json!({})).await;
    let stream = busy.request(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    // Three keep-alives of nothing but calls.
    let watch = tokio::spawn(stream_ends(stream, Duration::from_secs(3)));
    let (mut direct, mut through_rmcp) = (0, 0);
    while !watch.is_finished() {
        let (status, content_type) = echo_reply_type(&busy, 1).await;
        assert_eq!(status, 200);
        if content_type.starts_with("application/json") {
            direct += 1;
        } else {
            through_rmcp += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !watch.await.unwrap(),
        "the busy session's stream stayed open"
    );
    assert!(
        direct > 0 && through_rmcp > 0,
        "calls were answered directly ({direct}) and rmcp heard from the session ({through_rmcp})"
    );
}

/// `notifications/cancelled` stops a handshake-era call answered directly, as rmcp stops
/// the calls it runs: the request answers with the cancellation at once. The tool sleeps
/// past the worker's timeout (5 s in tests), so a call left running would answer with a
/// timeout instead.
#[tokio::test]
async fn a_cancelled_direct_call_stops_at_once() {
    let (gw, worker) = kit_gateway(|_| {}).await;
    let mut c = Client::new(&gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({})).await;
    let call = c.post(rpc(
        41,
        "tools/call",
        json!({"name": "Kit_Sleep", "arguments": {"millis": 20000}}),
    ));
    let cancel = async {
        // Once the worker runs the call, the gateway has it in flight to cancel.
        assert!(
            eventually(|| async { worker.invocations() == 1 }).await,
            "the call reached the worker"
        );
        let note = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 41, "reason": "the user gave up"},
        });
        c.post(note).await
    };
    let (reply, noted) = tokio::join!(call, cancel);
    assert_eq!(noted.status, 202);
    assert_eq!(reply.body["id"], 41, "{}", reply.body);
    assert_eq!(
        reply.body["error"]["message"], "the call was cancelled",
        "{}",
        reply.body
    );
    // Another id of the session is not touched by a cancellation of this one.
    let r = c.call("Kit_Echo", json!({"message": "still here"})).await;
    assert_eq!(
        r.body["result"]["structuredContent"]["result"],
        "still here"
    );
}

/// `POST` to an MCP endpoint is served before the router (`api::service`); the same URL
/// with a trailing slash still goes through it. Every kind of request, good and bad, in
/// both eras and on each endpoint form, gets the same answer from both.
#[tokio::test]
async fn the_hot_mcp_routes_answer_exactly_as_the_router_does() {
    let (gw, _w) = kit_gateway(|c| {
        c.api.max_request_body_size = 2048;
        c.gateways.push(echo_gateway())
    })
    .await;
    let token = gw.user_token("bob").await;
    let raw = |body: &'static str, content_type: &'static str| {
        move |c: &Client<'_>| {
            c.request(reqwest::Method::POST)
                .header("Content-Type", content_type)
                .body(body)
        }
    };
    let mut compared = 0;
    for (hot, routed) in [
        ("/v1/mcps/alice/mcp", "/v1/mcps/alice/mcp/"),
        ("/mcp", "/mcp/"),
        ("/mcp/echo", "/mcp/echo/"),
        ("/mcp/nope", "/mcp/nope/"),
    ] {
        let mut pair = Vec::new();
        for path in [hot, routed] {
            pair.push(Client::new(&gw, path).header("Arcade-User-Id", "alice"));
        }
        // Status, whether a session id came back, WWW-Authenticate, the body.
        type Seen = (u16, bool, Option<String>, Value);
        let mut replies: Vec<Vec<Seen>> = vec![Vec::new(); 2];
        for (c, replies) in pair.iter_mut().zip(&mut replies) {
            let mut note = |r: Reply| {
                replies.push((
                    r.status,
                    r.session.is_some(),
                    r.www_authenticate,
                    comparable(r.body),
                ))
            };
            // The handshake era: a session, its list and calls.
            let init = c.post(rpc(0, "initialize", init_params(LEGACY))).await;
            c.session = init.session.clone();
            note(init);
            if c.session.is_some() {
                note(
                    c.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                        .await,
                );
                note(c.post(rpc(1, "tools/list", json!({}))).await);
                note(
                    c.post(rpc(
                        2,
                        "tools/call",
                        json!({"name": "Kit_Echo", "arguments": {"message": "hi"}}),
                    ))
                    .await,
                );
                note(
                    c.post(rpc(
                        3,
                        "tools/call",
                        json!({"name": "Kit_Add", "arguments": {"a": "two"}}),
                    ))
                    .await,
                );
                note(c.post(rpc(4, "ping", json!({}))).await);
                c.session = None;
            }
            // The stateless era.
            note(c.modern(5, "tools/list", json!({})).await);
            note(
                c.modern(
                    6,
                    "tools/call",
                    json!({"name": "Kit_Echo", "arguments": {"message": "hi"}}),
                )
                .await,
            );
            note(
                c.modern(
                    7,
                    "tools/call",
                    json!({"name": "Kit_Nope", "arguments": {}}),
                )
                .await,
            );
            note(c.modern(8, "no/such/method", json!({})).await);
            // Bad input, and bad callers.
            for send in [
                raw("{not json", "application/json"),
                raw(
                    r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
                    "application/json",
                ),
                raw(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, "text/plain"),
                raw(
                    r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
                    "application/json",
                ),
            ] {
                note(c.send_raw(send(c)).await);
            }
            let big = rpc(9, "initialize", json!({"padding": "x".repeat(5000)}));
            note(c.post(big).await);
            let stranger = c.clone().auth(None);
            note(
                stranger
                    .post(rpc(0, "initialize", init_params(LEGACY)))
                    .await,
            );
            let bob = c.clone().auth(Some(format!("Bearer {token}")));
            note(bob.post(rpc(0, "initialize", init_params(LEGACY))).await);
            let evil = c.clone().header("Origin", "https://evil.example");
            note(evil.post(rpc(0, "initialize", init_params(LEGACY))).await);
            let unknown_session = c.clone().header("Mcp-Session-Id", "no-such-session");
            note(unknown_session.post(rpc(1, "tools/list", json!({}))).await);
        }
        assert_eq!(replies[0].len(), replies[1].len(), "{hot}");
        for (n, (a, b)) in replies[0].iter().zip(&replies[1]).enumerate() {
            assert_eq!(a, b, "{hot} against {routed}, request {n}");
            compared += 1;
        }
    }
    assert!(compared >= 4 * 14, "{compared}");
}
