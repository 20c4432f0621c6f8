//! MCP sessions and the protocol's eras, driven with raw JSON-RPC over HTTP as an MCP
//! client would: the 2025 handshake era (sessions, their event streams, keep-alive, another
//! replica), the stateless 2026-07-28 era, the spec's errors, pagination and result
//! shapes. A real gateway on 127.0.0.1:0 and a TDK worker.
//!
//! Who may use an endpoint is in `mcp_access.rs`, authorization prompts in
//! `mcp_authorization.rs`, the direct path against rmcp in `mcp_fast_path.rs`; more
//! protocol details in `mcp_protocol.rs`, session limits in `mcp_limits.rs`.

mod common;

use std::time::Duration;

use common::fake_provider::FakeProvider;
use common::flows::oauth_config;
use common::mcp::Sse;
use common::mcp_client::*;
use common::*;
use serde_json::{Value, json};
use switchboard_tdk::{Tool, ToolContext, ToolError, Toolkit};
use tokio::net::TcpListener;

#[tokio::test]
async fn legacy_session_initializes_lists_and_calls_for_the_path_user() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let mut alice = Client::new(&gw, "/v1/mcps/alice/mcp");
    let init = alice.initialize(json!({})).await;
    assert_eq!(init["protocolVersion"], LEGACY);
    assert_eq!(init["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(init["serverInfo"]["name"], "switchboard");

    let list = alice.post(rpc(1, "tools/list", json!({}))).await;
    assert_eq!(list.status, 200);
    let names = tool_names(&list.body["result"]);
    assert!(names.contains(&"Kit_Echo".to_string()), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted, "stable, sorted order");
    let echo = list.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Kit_Echo")
        .unwrap();
    assert_eq!(echo["inputSchema"]["type"], "object");
    assert_eq!(echo["inputSchema"]["required"], json!(["message"]));

    let who = alice.call("Kit_WhoAmI", json!({})).await;
    assert_eq!(who.body["result"]["structuredContent"]["user_id"], "alice");
    let echo = alice.call("Kit.Echo", json!({"message": "hi"})).await;
    assert_eq!(echo.body["result"]["content"][0]["text"], "hi");
    assert_eq!(
        echo.body["result"]["structuredContent"],
        json!({"result": "hi"})
    );
    assert_eq!(echo.body["result"]["isError"], false);

    let flaky = alice.call("Kit_Flaky", json!({})).await;
    assert_eq!(flaky.body["result"]["isError"], true, "{}", flaky.body);
    let meta = &flaky.body["result"]["_meta"]["arcade"];
    assert_eq!(meta["canRetry"], true);
    assert_eq!(meta["retryAfterMs"], 500);
    assert!(meta["errorKind"].is_string());

    let unknown = alice.call("Kit_Nope", json!({})).await;
    assert_eq!(unknown.body["error"]["code"], -32602, "{}", unknown.body);
    // Arguments that fail the schema are a tool result the model can act on (SEP-1303).
    let bad = alice.call("Kit_Add", json!({"a": "x", "b": 1})).await;
    assert_eq!(bad.body["result"]["isError"], true, "{}", bad.body);

    for method in ["ping", "logging/setLevel"] {
        let r = alice.post(rpc(3, method, json!({"level": "info"}))).await;
        assert_eq!(r.body["result"], json!({}), "{method}");
    }
    let nope = alice.post(rpc(4, "resources/nope", json!({}))).await;
    assert_eq!(nope.body["error"]["code"], -32601);

    let del = alice.send_raw(alice.request(reqwest::Method::DELETE)).await;
    assert_eq!(
        del.status, 200,
        "the SDKs take 202 for a failed termination"
    );
    let gone = alice.post(rpc(5, "ping", json!({}))).await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn initialize_echoes_a_supported_version_and_refuses_a_client_that_accepts_one_type() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let c = Client::new(&gw, "/v1/mcps/alice/mcp");
    let r = c
        .post(rpc(0, "initialize", init_params("2025-06-18")))
        .await;
    assert_eq!(r.body["result"]["protocolVersion"], "2025-06-18");
    let r = c
        .post(rpc(0, "initialize", init_params("1999-01-01")))
        .await;
    assert_eq!(r.body["result"]["protocolVersion"], LEGACY);
    // A handshake without the clientInfo the spec requires: invalid params.
    let r = c
        .post(rpc(0, "initialize", json!({"protocolVersion": LEGACY})))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].clone()),
        (400, json!(-32602))
    );

    // The spec has every POST accept both JSON and SSE.
    for accept in ["text/event-stream", "application/json"] {
        let res = gw
            .http
            .post(gw.url("/v1/mcps/alice/mcp"))
            .header("Authorization", format!("Bearer {}", gw.key))
            .header("Accept", accept)
            .json(&rpc(0, "initialize", init_params(LEGACY)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 406, "{accept}");
    }
}

#[tokio::test]
async fn modern_era_is_stateless_with_discover_headers_and_result_types() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let c = Client::new(&gw, "/v1/mcps/bob/mcp");
    let d = c.modern(1, "server/discover", json!({})).await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert!(d.session.is_none());
    let d = &d.body["result"];
    assert_eq!(d["resultType"], "complete");
    assert!(
        d["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN))
    );

    let list = c.modern(2, "tools/list", json!({})).await;
    assert_eq!(list.body["result"]["resultType"], "complete");
    assert!(tool_names(&list.body["result"]).contains(&"Kit_WhoAmI".to_string()));

    let who = c
        .modern(
            3,
            "tools/call",
            json!({"name": "Kit_WhoAmI", "arguments": {}}),
        )
        .await;
    assert_eq!(who.body["result"]["resultType"], "complete");
    assert_eq!(who.body["result"]["structuredContent"]["user_id"], "bob");

    // Header disagreeing with the body, and a version we don't speak.
    let mismatch = c
        .send_raw(
            c.request(reqwest::Method::POST)
                .header("MCP-Protocol-Version", MODERN)
                .header("Mcp-Method", "tools/list")
                .json(&modern(4, "ping", json!({}))),
        )
        .await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(mismatch.body["error"]["code"], -32020);
    let mut future = rpc(5, "ping", json!({}));
    future["params"]["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2099-01-01"});
    let unsupported = c
        .send_raw(
            c.request(reqwest::Method::POST)
                .header("MCP-Protocol-Version", "2099-01-01")
                .header("Mcp-Method", "ping")
                .json(&future),
        )
        .await;
    assert_eq!(unsupported.status, 400);
    assert_eq!(unsupported.body["error"]["code"], -32022);
    assert!(unsupported.body["error"]["data"]["supported"].is_array());

    let get = c
        .send_raw(
            c.request(reqwest::Method::GET)
                .header("MCP-Protocol-Version", MODERN),
        )
        .await;
    assert_eq!(get.status, 405);
}

#[tokio::test]
async fn a_session_parked_after_its_keep_alive_is_restored_by_its_next_request() {
    let (gw, _w) = kit_gateway(|c| c.api.mcp_session_keep_alive = Duration::from_secs(1)).await;
    let mut alice = Client::new(&gw, "/v1/mcps/alice/mcp");
    alice.initialize(json!({})).await;
    // Idle past the keep-alive: rmcp drops the live session; the store row remains.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = alice.call("Kit_WhoAmI", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["result"]["structuredContent"]["user_id"], "alice");
    // Parked or live, the session is still bound to its user.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut on_bob = Client::new(&gw, "/v1/mcps/bob/mcp");
    on_bob.session = alice.session.clone();
    assert_eq!(on_bob.call("Kit_WhoAmI", json!({})).await.status, 404);
}

#[tokio::test]
async fn every_endpoint_also_answers_with_a_trailing_slash() {
    let (gw, _w) = kit_gateway(|c| c.gateways.push(echo_gateway())).await;
    for (path, user, tools) in [
        ("/v1/mcps/bob/mcp/", "bob", 2),
        ("/mcp/", "bob", 2),
        ("/mcp/echo/", "bob", 1),
    ] {
        let c = Client::new(&gw, path).header("Arcade-User-Id", user);
        let list = c.modern(1, "tools/list", json!({})).await;
        assert_eq!(list.status, 200, "{path}: {}", list.body);
        let names = tool_names(&list.body["result"]);
        assert!(names.len() >= tools, "{path}: {names:?}");
        let who = c
            .modern(
                2,
                "tools/call",
                json!({"name": "Kit_Echo", "arguments": {"message": "hi"}}),
            )
            .await;
        assert_eq!(who.body["result"]["content"][0]["text"], "hi", "{path}");
    }
    let nope = Client::new(&gw, "/mcp/nope/").header("Arcade-User-Id", "bob");
    assert_eq!(nope.modern(1, "tools/list", json!({})).await.status, 404);
}

#[tokio::test]
async fn bad_input_gets_the_spec_errors_and_the_gateway_keeps_serving() {
    let (gw, _w) = kit_gateway(|c| c.api.max_request_body_size = 2048).await;
    let c = Client::new(&gw, "/v1/mcps/alice/mcp");
    let raw = |body: &'static str, content_type: &'static str| {
        c.request(reqwest::Method::POST)
            .header("Content-Type", content_type)
            .body(body)
    };
    let r = c.send_raw(raw("{not json", "application/json")).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].clone()),
        (400, json!(-32700))
    );
    let r = c
        .send_raw(raw(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            "application/json",
        ))
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].clone()),
        (400, json!(-32600))
    );
    let r = c
        .send_raw(raw(
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            "text/plain",
        ))
        .await;
    assert_eq!(r.status, 415);
    // Refused before the message is read: an invalid request with no id to answer.
    assert_eq!(r.body["jsonrpc"], "2.0", "{}", r.body);
    assert_eq!(r.body["id"], Value::Null);
    assert_eq!(r.body["error"]["code"], -32600, "{}", r.body);
    assert!(r.body["error"]["message"].is_string());
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"padding": "x".repeat(5000)}});
    let r = c.post(big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["jsonrpc"], "2.0", "{}", r.body);
    assert_eq!(r.body["id"], Value::Null);
    assert_eq!(r.body["error"]["code"], -32600, "{}", r.body);
    assert!(r.body["error"]["message"].is_string());
    let r = c
        .post(json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}))
        .await;
    assert_eq!(r.status, 400);

    let mut ok = Client::new(&gw, "/v1/mcps/alice/mcp");
    ok.initialize(json!({})).await;
    let r = ok.call("Kit_Echo", json!({"message": "still here"})).await;
    assert_eq!(r.body["result"]["content"][0]["text"], "still here");
}

#[tokio::test]
async fn tools_list_pages_with_an_opaque_cursor() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let mut c = Client::new(&gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({})).await;
    let r = c
        .post(rpc(1, "tools/list", json!({"cursor": "not-a-cursor"})))
        .await;
    assert_eq!(r.body["error"]["code"], -32602);
    let r = c.post(rpc(1, "tools/list", json!({}))).await;
    assert!(
        r.body["result"].get("nextCursor").is_none(),
        "few tools: one page"
    );
}

// --- Era rules, pagination, selections and result shapes ---------------------------

const OLDER: &str = "2025-06-18";

/// A POST with exactly these headers (beyond `Accept` and the credential) and this body.
fn post_with(c: &Client<'_>, headers: &[(&str, &str)], body: &Value) -> reqwest::RequestBuilder {
    let mut req = c.request(reqwest::Method::POST);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.json(body)
}

/// SEP-2243: the headers must agree with the body; a call whose `Mcp-Name` or
/// `MCP-Protocol-Version` says otherwise is refused with -32020 and never runs, and the
/// stateless era has no DELETE.
#[tokio::test]
async fn modern_headers_that_disagree_with_the_body_are_refused_and_the_tool_never_runs() {
    let (gw, worker) = kit_gateway(|_| {}).await;
    let c = Client::new(&gw, "/v1/mcps/bob/mcp");
    let echo = json!({"name": "Kit_Echo", "arguments": {"message": "hi"}});
    let call_headers = |version: &'static str, name: &'static str| {
        [
            ("MCP-Protocol-Version", version),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", name),
        ]
    };

    // `Mcp-Name` names another tool than the body; the header's version is not the one in
    // the body's `_meta`, either way round.
    let mut older_meta = modern(2, "tools/call", echo.clone());
    older_meta["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(LEGACY);
    let disagreeing = [
        (
            call_headers(MODERN, "Kit_Add"),
            modern(1, "tools/call", echo.clone()),
        ),
        (call_headers(MODERN, "Kit_Echo"), older_meta),
        (
            call_headers(LEGACY, "Kit_Echo"),
            modern(3, "tools/call", echo.clone()),
        ),
    ];
    for (headers, body) in &disagreeing {
        let r = c.send_raw(post_with(&c, headers, body)).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].clone()),
            (400, json!(-32020)),
            "{headers:?}: {}",
            r.body
        );
    }
    assert_eq!(
        worker.invocations(),
        0,
        "no refused call reached the worker"
    );

    // Headers that agree: the same call runs.
    let r = c.modern(4, "tools/call", echo).await;
    assert_eq!(r.body["result"]["content"][0]["text"], "hi", "{}", r.body);
    assert_eq!(worker.invocations(), 1);

    // POST only: DELETE in the stateless era is 405, and says what is allowed.
    let res = c
        .request(reqwest::Method::DELETE)
        .header("MCP-Protocol-Version", MODERN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    assert!(
        allow.contains("POST") && !allow.contains("DELETE"),
        "{allow}"
    );
}

/// A session opened at 2025-06-18 works past its handshake with that version on every
/// request. A request naming another supported version is not the session's, so it is not
/// answered on the direct path (`direct::admit`); rmcp, which takes any version it knows,
/// answers it. An unsupported version is refused.
#[tokio::test]
async fn a_2025_06_18_session_lists_and_calls_and_another_version_goes_through_rmcp() {
    // A long keep-alive: every call of the session's own version may take the direct path.
    let (gw, _w) = kit_gateway(|c| c.api.mcp_session_keep_alive = Duration::from_secs(600)).await;
    let mut c = Client::new(&gw, "/v1/mcps/alice/mcp").version(OLDER);
    let init = c.initialize(json!({})).await;
    assert_eq!(init["protocolVersion"], OLDER);

    let list = c.post(rpc(1, "tools/list", json!({}))).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let names = tool_names(&list.body["result"]);
    assert!(names.contains(&"Kit_Echo".to_string()), "{names:?}");
    assert!(
        list.body["result"].get("resultType").is_none(),
        "{}",
        list.body
    );

    let who = c.call("Kit_WhoAmI", json!({})).await;
    assert_eq!(who.status, 200, "{}", who.body);
    assert_eq!(who.body["result"]["structuredContent"]["user_id"], "alice");
    assert_eq!(who.body["result"]["isError"], false);
    assert!(
        who.body["result"].get("resultType").is_none(),
        "{}",
        who.body
    );
    let (status, content_type) = echo_reply_type(&c, 2).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );

    // The same session under 2025-11-25: answered, by rmcp.
    let newer = c.clone().version(LEGACY);
    let (status, content_type) = echo_reply_type(&newer, 3).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let r = newer.call("Kit_Echo", json!({"message": "via rmcp"})).await;
    assert_eq!(
        r.body["result"]["content"][0]["text"], "via rmcp",
        "{}",
        r.body
    );
    let list = newer.post(rpc(4, "tools/list", json!({}))).await;
    assert_eq!(tool_names(&list.body["result"]), names);

    // A version nobody speaks: 400, and the session carries on.
    let unknown = c.clone().version("1999-01-01");
    let r = unknown.call("Kit_Echo", json!({"message": "x"})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c.call("Kit_Echo", json!({"message": "still here"})).await;
    assert_eq!(r.body["result"]["content"][0]["text"], "still here");
}

/// A toolkit `Many` of `n` tools, `Tool000`…, each returning its own number.
fn many_toolkit(n: usize) -> Toolkit {
    (0..n).fold(Toolkit::new("Many", "1.0.0"), |kit, i| {
        kit.tool(Tool::new(
            format!("Tool{i:03}"),
            "One of many",
            move |_ctx: ToolContext, _i: Empty| async move { Ok::<_, ToolError>(i) },
        ))
    })
}

/// Every page of `tools/list`, following `nextCursor` to its end (at most 20 pages): the
/// names in the order served, and how many pages there were.
async fn walk_tools(c: &Client<'_>, modern_era: bool) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 1..=20 {
        let params = match &cursor {
            Some(cursor) => json!({"cursor": cursor}),
            None => json!({}),
        };
        let r = if modern_era {
            c.modern(page, "tools/list", params).await
        } else {
            c.post(rpc(page, "tools/list", params)).await
        };
        assert_eq!(r.status, 200, "{}", r.body);
        let got = tool_names(&r.body["result"]);
        assert!(!got.is_empty(), "page {page} is empty");
        assert!(got.len() <= 100, "page {page} holds {} tools", got.len());
        names.extend(got);
        match r.body["result"].get("nextCursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (names, usize::try_from(page).unwrap()),
        }
    }
    panic!("nextCursor never ended");
}

#[tokio::test]
async fn tools_list_walks_every_page_of_a_large_catalog_once_and_in_the_same_order() {
    const TOOLS: usize = 250;
    let worker = start_toolkit_worker(many_toolkit(TOOLS)).await;
    let url = worker.url();
    let gw = start_gateway(move |c| c.workers.push(worker_config("many", &url))).await;
    let expected: Vec<String> = (0..TOOLS).map(|i| format!("Many_Tool{i:03}")).collect();

    let mut c = Client::new(&gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({})).await;
    let (first, pages) = walk_tools(&c, false).await;
    assert_eq!(pages, 3, "250 tools, 100 a page");
    let unique: std::collections::HashSet<&String> = first.iter().collect();
    assert_eq!(unique.len(), first.len(), "no tool twice");
    // The gateway's own builtin tools come first; then every one of ours, in order.
    let ours: Vec<String> = first
        .iter()
        .filter(|n| n.starts_with("Many_"))
        .cloned()
        .collect();
    assert_eq!(ours, expected, "every tool once, in the stable order");
    let (second, _) = walk_tools(&c, false).await;
    assert_eq!(second, first, "the same order on a second walk");
    let stateless = Client::new(&gw, "/v1/mcps/alice/mcp");
    let (modern_walk, pages) = walk_tools(&stateless, true).await;
    assert_eq!(
        (modern_walk, pages),
        (first, 3),
        "the stateless era pages alike"
    );

    // Not a cursor, one past the end ("999"), a negative offset ("-1"): invalid params.
    for bad in ["not-a-cursor", "OTk5", "LTE"] {
        let params = json!({"cursor": bad});
        let r = c.post(rpc(7, "tools/list", params.clone())).await;
        assert_eq!(r.body["error"]["code"], -32602, "{bad}: {}", r.body);
        let r = stateless.modern(8, "tools/list", params).await;
        assert_eq!(r.body["error"]["code"], -32602, "{bad}: {}", r.body);
    }
    // A tool of the last page is as callable as any.
    let r = c.call("Many_Tool249", json!({})).await;
    assert_eq!(
        r.body["result"]["structuredContent"],
        json!({"result": 249}),
        "{}",
        r.body
    );
}

/// A structured result's text is its JSON, the same value as `structuredContent`; a value
/// that is not an object is its JSON text too, wrapped under `result` as structure.
#[tokio::test]
async fn an_object_result_is_json_text_equal_to_its_structured_content() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let mut session = Client::new(&gw, "/v1/mcps/alice/mcp");
    session.initialize(json!({})).await;
    let stateless = Client::new(&gw, "/v1/mcps/alice/mcp");
    for (tool, arguments) in [
        ("Kit_WhoAmI", json!({})),
        ("Kit_Sleep", json!({"millis": 1})),
        ("Kit_Add", json!({"a": 2, "b": 3})),
    ] {
        let params = json!({"name": tool, "arguments": arguments});
        for r in [
            session.call(tool, arguments.clone()).await,
            stateless.modern(1, "tools/call", params).await,
        ] {
            let result = &r.body["result"];
            assert_eq!(result["isError"], false, "{tool}: {}", r.body);
            let content = result["content"].as_array().unwrap();
            assert_eq!(content.len(), 1, "{tool}: {}", r.body);
            assert_eq!(content[0]["type"], "text");
            let text: Value = serde_json::from_str(content[0]["text"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("{tool}: the text is not JSON: {e}"));
            let structured = &result["structuredContent"];
            assert!(structured.is_object(), "{tool}: {}", r.body);
            if tool == "Kit_Add" {
                assert_eq!(text, json!(5.0));
                assert_eq!(structured, &json!({"result": 5.0}));
            } else {
                assert!(text.is_object(), "{tool}: {text}");
                assert_eq!(&text, structured, "{tool}");
            }
        }
    }
}

#[tokio::test]
async fn get_opens_a_standalone_event_stream_for_a_session() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let mut c = Client::new(&gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({})).await;
    let res = c.request(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    drop(res);
    let mut other = Client::new(&gw, "/v1/mcps/bob/mcp");
    other.session = c.session.clone();
    let res = other.request(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
}

#[tokio::test]
async fn another_replica_serves_a_session_and_opens_a_request_state() {
    let fake = FakeProvider::start().await;
    let worker = start_toolkit_worker(acct_toolkit()).await;
    let (_shared, replicas) = replicas(|c| {
        oauth_config(c, ROOT_KEY);
        c.auth_providers.push(fake.provider_config("fake"));
        c.workers.push(worker_config("acct", &worker.url()));
    })
    .await;
    let (a, b) = (&replicas[0], &replicas[1]);

    let mut on_a = Client::new(a, "/v1/mcps/alice/mcp");
    on_a.initialize(json!({})).await;
    let mut on_b = Client::new(b, "/v1/mcps/alice/mcp");
    on_b.session = on_a.session.clone();
    let r = on_b.post(rpc(1, "tools/list", json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(tool_names(&r.body["result"]).contains(&"Acct_Me".to_string()));

    let call = json!({"name": "Acct_Me", "arguments": {}});
    let first = Client::new(a, "/v1/mcps/alice/mcp")
        .modern(1, "tools/call", call.clone())
        .await;
    let result = &first.body["result"];
    let link = result["inputRequests"]["authorize"]["params"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    complete_flow(&fake, &link, "alice-login").await;
    let mut retry = call;
    retry["requestState"] = result["requestState"].clone();
    retry["inputResponses"] = json!({"authorize": {"action": "accept"}});
    let done = Client::new(b, "/v1/mcps/alice/mcp")
        .modern(2, "tools/call", retry)
        .await;
    assert_eq!(
        done.body["result"]["resultType"], "complete",
        "{}",
        done.body
    );
    assert_eq!(done.body["result"]["structuredContent"]["user_id"], "alice");
}

#[tokio::test]
async fn a_session_stream_hears_tools_list_changed_when_a_worker_brings_new_tools() {
    // The worker's port is bound but not served until the session is listening.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let gw = start_gateway(move |c| c.workers.push(worker_config("late", &url))).await;
    let mut c = Client::new(&gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({})).await;
    let res = c.request(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mut stream = Sse::new(res);
    let _worker = start_worker_on(listener, "Late").await;
    let note = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("a notification within 30 s");
    assert_eq!(note["method"], "notifications/tools/list_changed");
    let list = c.post(rpc(1, "tools/list", json!({}))).await;
    assert!(tool_names(&list.body["result"]).contains(&"Late_Echo".to_string()));
}

/// The read and idle timeouts bound waiting for a request, not answering one: a
/// session's event stream stays open well past them.
#[tokio::test]
async fn an_event_stream_outlives_the_read_and_idle_timeouts() {
    let (gw, _w) = kit_gateway(|c| {
        c.api.read_timeout = Duration::from_secs(1);
        c.api.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut c = Client::new(&gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({})).await;
    let stream = c.request(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert!(
        !stream_ends(stream, Duration::from_secs(3)).await,
        "the stream is still open after three times the timeouts"
    );
    let r = c.call("Kit_Echo", json!({"message": "still here"})).await;
    assert_eq!(r.body["result"]["content"][0]["text"], "still here");
}
