//! MCP protocol details the SDKs and the conformance suite hold the gateway to: tool input
//! errors as tool results (SEP-1303) in every era and on both paths, a DELETE that answers
//! 200, a requestState that another process on the same data opens, and the 2026-07-28
//! methods (`subscriptions/listen`, removed `initialize`, prompt/resource lists with caching
//! hints, `completion/complete`). Raw JSON-RPC over HTTP against a real gateway.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use common::fake_provider::FakeProvider;
use common::mcp::Sse;
use common::mcp_client::*;
use common::*;
use serde_json::{Value, json};
use switchboard::config::UserVerifier;

// --- SEP-1303: tool input errors are tool results -------------------------------------

/// Arguments that fail the tool's schema come back as a result with `isError` and the
/// validation message, whichever era and whichever path (direct or rmcp) answers; an
/// unknown tool stays a JSON-RPC -32602.
#[tokio::test]
async fn arguments_that_fail_the_schema_are_an_error_result_in_every_era_and_on_both_paths() {
    for direct in [true, false] {
        let (gw, worker) = kit_gateway(|c| c.api.mcp_direct_tool_calls = direct).await;
        let bad = json!({"name": "Kit_Add", "arguments": {"a": "x", "b": 1}});
        let unknown = json!({"name": "Kit_Nope", "arguments": {}});
        let mut answers = Vec::new();
        for version in ["2025-06-18", "2025-11-25"] {
            let mut c = Client::new(&gw, "/v1/mcps/alice/mcp").version(version);
            c.initialize(json!({})).await;
            answers.push((
                version,
                c.post(rpc(1, "tools/call", bad.clone())).await,
                c.post(rpc(2, "tools/call", unknown.clone())).await,
            ));
        }
        let c = Client::new(&gw, "/v1/mcps/alice/mcp");
        answers.push((
            MODERN,
            c.modern(1, "tools/call", bad.clone()).await,
            c.modern(2, "tools/call", unknown.clone()).await,
        ));
        for (era, Reply { status, body, .. }, Reply { body: unknown, .. }) in answers {
            let at = format!("{era}, direct {direct}: {body}");
            assert_eq!(status, 200, "{at}");
            assert!(body.get("error").is_none(), "{at}");
            assert_eq!(body["result"]["isError"], true, "{at}");
            let text = body["result"]["content"][0]["text"].as_str().unwrap();
            assert!(text.contains("Invalid input for tool 'Kit.Add'"), "{at}");
            assert_eq!(unknown["error"]["code"], -32602, "{era}: {unknown}");
        }
        assert_eq!(worker.invocations(), 0, "a tool never runs with bad input");
    }
}

// --- DELETE ---------------------------------------------------------------------------

/// The MCP SDKs take anything but 200/204 as a failed termination (the Python SDK logs
/// "Session termination failed: 202").
#[tokio::test]
async fn deleting_a_session_answers_200_and_ends_it() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let mut c = Client::new(&gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({})).await;
    let res = c.request(reqwest::Method::DELETE).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let r = c.post(rpc(1, "tools/list", json!({}))).await;
    assert_eq!(r.status, 404, "the session is gone");
}

// --- requestState across processes ----------------------------------------------------

/// With no root key configured, the gateway generates one beside its SQLite database; a
/// second process on the same data has the same key, so it opens a requestState the
/// first sealed (before, each process sealed with a key of its own).
#[tokio::test]
async fn a_request_state_sealed_by_one_process_opens_in_another_on_the_same_data() {
    let fake = FakeProvider::start().await;
    let worker = start_toolkit_worker(acct_toolkit()).await;
    let (_shared, gateways) = replicas(|c| {
        c.security.root_keys.clear();
        c.auth_providers.push(fake.provider_config("fake"));
        c.workers.push(worker_config("acct", &worker.url()));
        c.oauth.user_verifier = UserVerifier::Disabled;
    })
    .await;
    let call = json!({"name": "Acct_Me", "arguments": {}});
    let first = Client::new(&gateways[0], "/v1/mcps/alice/mcp");
    let asked = first.modern(1, "tools/call", call.clone()).await.body;
    let state = asked["result"]["requestState"].clone();
    assert!(state.is_string(), "{asked}");

    let mut retry = call;
    retry["requestState"] = state;
    let second = Client::new(&gateways[1], "/v1/mcps/alice/mcp");
    let Reply {
        status,
        body: again,
        ..
    } = second.modern(2, "tools/call", retry).await;
    assert_eq!(status, 200, "{again}");
    // Still waiting for the user: asked again, not refused as tampered.
    assert_eq!(again["result"]["resultType"], "input_required", "{again}");
}

// --- 2026-07-28 methods ---------------------------------------------------------------

#[tokio::test]
async fn initialize_in_the_stateless_era_is_a_removed_method_with_its_request_id() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let c = Client::new(&gw, "/v1/mcps/alice/mcp");
    let Reply { status, body, .. } = c.modern(41, "initialize", json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], -32601, "{body}");
    assert_eq!(body["id"], 41, "{body}");
}

#[tokio::test]
async fn prompt_and_resource_lists_are_empty_with_caching_hints_and_completion_answers_empty() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let c = Client::new(&gw, "/v1/mcps/alice/mcp");
    let discover = c.modern(1, "server/discover", json!({})).await.body;
    let capabilities = &discover["result"]["capabilities"];
    for capability in ["prompts", "resources", "completions", "tools"] {
        assert!(capabilities[capability].is_object(), "{discover}");
    }
    for (method, items) in [
        ("prompts/list", "prompts"),
        ("resources/list", "resources"),
        ("resources/templates/list", "resourceTemplates"),
    ] {
        let Reply { status, body, .. } = c.modern(2, method, json!({})).await;
        assert_eq!(status, 200, "{method}: {body}");
        let result = &body["result"];
        assert_eq!(result[items], json!([]), "{method}: {body}");
        assert!(result["ttlMs"].as_u64().is_some(), "{method}: {body}");
        assert!(
            ["public", "private"].contains(&result["cacheScope"].as_str().unwrap_or("")),
            "{method}: {body}"
        );
    }
    let complete = json!({
        "ref": {"type": "ref/prompt", "name": "nothing"},
        "argument": {"name": "arg", "value": "x"},
    });
    let body = c
        .modern(3, "completion/complete", complete.clone())
        .await
        .body;
    assert_eq!(body["result"]["completion"]["values"], json!([]), "{body}");
    let mut session = Client::new(&gw, "/v1/mcps/alice/mcp");
    session.initialize(json!({})).await;
    let body = session
        .post(rpc(4, "completion/complete", complete))
        .await
        .body;
    assert_eq!(body["result"]["completion"]["values"], json!([]), "{body}");
}

async fn listen(c: &Client<'_>, id: i64, filter: Value) -> Sse {
    let res = c
        .modern_request(id, "subscriptions/listen", json!({"notifications": filter}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    Sse::new(res)
}

/// `subscriptions/listen`: the acknowledgement first, with the filter the gateway accepted
/// (tool list changes only), every message tagged with the subscription id, and
/// `notifications/tools/list_changed` when the endpoint's tools change.
#[tokio::test]
async fn a_listener_is_acknowledged_and_hears_tool_list_changes_tagged_with_its_id() {
    let invocations = Arc::new(AtomicUsize::new(0));
    let shifting = ShiftingWorker::start(
        test_toolkit("Kit", invocations.clone()),
        test_toolkit("Kat", invocations),
    )
    .await;
    let url = shifting.url();
    let gw = start_gateway(move |c| c.workers.push(worker_config("shifting", &url))).await;
    let c = Client::new(&gw, "/v1/mcps/alice/mcp");

    let mut prompts_only = listen(&c, 7, json!({"promptsListChanged": true})).await;
    let ack = prompts_only.next().await;
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(ack["params"]["notifications"], json!({}), "{ack}");

    let mut tools = listen(&c, 8, json!({"toolsListChanged": true})).await;
    let ack = tools.next().await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true})
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        8
    );

    shifting.shift();
    let note = tokio::time::timeout(Duration::from_secs(30), tools.next())
        .await
        .expect("a notification within 30 s");
    assert_eq!(note["method"], "notifications/tools/list_changed", "{note}");
    assert_eq!(
        note["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], 8,
        "{note}"
    );
}
