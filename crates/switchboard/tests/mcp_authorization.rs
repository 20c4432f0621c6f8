//! Authorization prompts over MCP: a tool that needs a grant the user lacks asks for it,
//! as a URL elicitation that waits for the flow, as an error result carrying the link,
//! or (2026-07-28) as `input_required` with a sealed `requestState` the retry brings back.
//! Real HTTP: a gateway on 127.0.0.1:0, a TDK worker, and the fake OAuth provider (the
//! test plays the browser).

mod common;

use std::time::Duration;

use common::mcp::Sse;
use common::mcp_client::*;
use serde_json::{Value, json};

#[tokio::test]
async fn a_client_without_url_elicitation_gets_the_link_as_an_error_result() {
    let env = auth_env(|_| {}).await;
    let mut c = Client::new(&env.gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({"elicitation": {}})).await;
    let r = c.call("Acct_Me", json!({})).await;
    let result = &r.body["result"];
    assert_eq!(result["isError"], true, "{}", r.body);
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("⚠ Authorization required"), "{text}");
    let extra: Value =
        serde_json::from_str(result["content"][1]["text"].as_str().unwrap()).unwrap();
    let link = extra["authorization_url"].as_str().unwrap().to_owned();
    assert!(text.contains(&link));
    assert!(extra["llm_instructions"].as_str().unwrap().contains(&link));

    complete_flow(&env.fake, &link, "alice-login").await;
    let r = c.call("Acct_Me", json!({})).await;
    assert_eq!(
        r.body["result"]["structuredContent"]["has_token"], true,
        "{}",
        r.body
    );
}

async fn call_streaming(c: &Client<'_>, tool: &str) -> Sse {
    let res = c
        .request(reqwest::Method::POST)
        .json(&rpc(
            9,
            "tools/call",
            json!({"name": tool, "arguments": {}}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    Sse::new(res)
}

async fn answer(c: &Client<'_>, ask: &Value, action: &str) {
    let r = c
        .post(json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": action}}))
        .await;
    assert_eq!(r.status, 202);
}

#[tokio::test]
async fn url_elicitation_waits_for_the_flow_and_returns_the_tools_result_in_the_same_call() {
    let env = auth_env(|_| {}).await;
    let mut c = Client::new(&env.gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({"elicitation": {"url": {}}})).await;
    let mut stream = call_streaming(&c, "Acct_Me").await;
    let ask = stream.next().await;
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    assert_eq!(ask["params"]["mode"], "url");
    let link = ask["params"]["url"].as_str().unwrap().to_owned();

    // Another user's session can't answer for this call.
    let mut bob = Client::new(&env.gw, "/v1/mcps/bob/mcp");
    bob.initialize(json!({})).await;
    answer(&bob, &ask, "decline").await;

    // Notifications not tied to a request travel on the session's standalone stream.
    let mut standalone = Sse::new(c.request(reqwest::Method::GET).send().await.unwrap());
    answer(&c, &ask, "accept").await;
    complete_flow(&env.fake, &link, "alice-login").await;
    let result = stream.next().await;
    assert_eq!(result["id"], 9);
    assert_eq!(
        result["result"]["structuredContent"]["user_id"], "alice",
        "{result}"
    );
    assert_eq!(result["result"]["structuredContent"]["has_token"], true);
    let done = standalone.next().await;
    assert_eq!(
        done["method"], "notifications/elicitation/complete",
        "{done}"
    );
    assert!(done["params"]["elicitationId"].is_string());
}

#[tokio::test]
async fn declining_or_cancelling_the_elicitation_is_an_error_result_that_says_so() {
    let env = auth_env(|_| {}).await;
    let mut c = Client::new(&env.gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({"elicitation": {"url": {}}})).await;
    for (action, word) in [("decline", "declined"), ("cancel", "cancelled")] {
        let mut stream = call_streaming(&c, "Acct_Me").await;
        let ask = stream.next().await;
        answer(&c, &ask, action).await;
        let result = stream.next().await;
        assert_eq!(result["result"]["isError"], true);
        let text = result["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(word), "{text}");
    }
}

#[tokio::test]
async fn an_elicitation_that_never_completes_times_out_with_the_link() {
    let env = auth_env(|c| c.oauth.elicitation_timeout = Duration::from_millis(300)).await;
    let mut c = Client::new(&env.gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({"elicitation": {"url": {}}})).await;
    let mut stream = call_streaming(&c, "Acct_Me").await;
    let ask = stream.next().await;
    answer(&c, &ask, "accept").await;
    let result = stream.next().await;
    assert_eq!(result["result"]["isError"], true);
    let text = result["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("did not complete in time"), "{text}");
    assert!(text.contains(ask["params"]["url"].as_str().unwrap()));
}

#[tokio::test]
async fn a_modern_client_without_url_elicitation_gets_the_link_as_an_error_result() {
    let env = auth_env(|_| {}).await;
    let c = Client::new(&env.gw, "/v1/mcps/alice/mcp");
    let call = json!({"name": "Acct_Me", "arguments": {},
        "_meta": {"io.modelcontextprotocol/clientCapabilities": {}}});
    let reply = c.modern(1, "tools/call", call).await;
    let result = &reply.body["result"];
    assert_eq!(result["resultType"], "complete", "{}", reply.body);
    assert_eq!(result["isError"], true);
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("/v1/oauth/link/"), "{text}");
}

#[tokio::test]
async fn modern_input_required_carries_a_sealed_state_and_the_retry_runs_the_tool() {
    let env = auth_env(|_| {}).await;
    let c = Client::new(&env.gw, "/v1/mcps/alice/mcp");
    let call = json!({"name": "Acct_Me", "arguments": {}});
    let first = c.modern(1, "tools/call", call.clone()).await;
    let result = &first.body["result"];
    assert_eq!(result["resultType"], "input_required", "{}", first.body);
    let ask = &result["inputRequests"]["authorize"];
    assert_eq!(ask["method"], "elicitation/create");
    assert_eq!(ask["params"]["mode"], "url");
    let link = ask["params"]["url"].as_str().unwrap().to_owned();
    let state = result["requestState"].as_str().unwrap().to_owned();

    let retry = |state: String| {
        let mut p = call.clone();
        p["requestState"] = json!(state);
        p["inputResponses"] = json!({"authorize": {"action": "accept"}});
        p
    };
    // Still pending: asked again (no wait without `accept`).
    let mut pending = call.clone();
    pending["requestState"] = json!(state.clone());
    let again = c.modern(2, "tools/call", pending).await;
    assert_eq!(again.body["result"]["resultType"], "input_required");

    // Tampered, or carried to another user's endpoint: refused.
    let mut tampered = state.clone();
    tampered.insert(
        3,
        if tampered.as_bytes()[3] == b'A' {
            'B'
        } else {
            'A'
        },
    );
    let r = c.modern(3, "tools/call", retry(tampered)).await;
    assert_eq!(r.body["error"]["code"], -32602, "{}", r.body);
    let bob = Client::new(&env.gw, "/v1/mcps/bob/mcp");
    let r = bob.modern(4, "tools/call", retry(state.clone())).await;
    assert_eq!(r.body["error"]["code"], -32602, "{}", r.body);

    complete_flow(&env.fake, &link, "alice-login").await;
    let done = c.modern(5, "tools/call", retry(state)).await;
    let result = &done.body["result"];
    assert_eq!(result["resultType"], "complete", "{}", done.body);
    assert_eq!(result["structuredContent"]["user_id"], "alice");
    assert_eq!(result["structuredContent"]["has_token"], true);
}

#[tokio::test]
async fn a_request_state_is_refused_for_another_call_and_after_it_expires() {
    let env = auth_env(|c| {
        c.gateways.push(toolkit_gateway("acct", "Acct"));
    })
    .await;
    let alice = Client::new(&env.gw, "/v1/mcps/alice/mcp");
    let post = |message: &str| json!({"name": "Acct_Post", "arguments": {"message": message}});
    let first = alice.modern(1, "tools/call", post("hello")).await;
    let result = &first.body["result"];
    assert_eq!(result["resultType"], "input_required", "{}", first.body);
    let link = result["inputRequests"]["authorize"]["params"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = result["requestState"].clone();
    let retry = |mut call: Value| {
        call["requestState"] = state.clone();
        call["inputResponses"] = json!({"authorize": {"action": "accept"}});
        call
    };
    complete_flow(&env.fake, &link, "alice-login").await;

    // The same user, with the flow complete, but not the call the state was minted for:
    // other arguments, another tool, another endpoint.
    let other_arguments = alice.modern(2, "tools/call", retry(post("goodbye"))).await;
    let other_tool = alice
        .modern(
            3,
            "tools/call",
            retry(json!({"name": "Acct_Me", "arguments": {}})),
        )
        .await;
    let other_endpoint = Client::new(&env.gw, "/mcp/acct")
        .header("Arcade-User-Id", "alice")
        .modern(4, "tools/call", retry(post("hello")))
        .await;
    for refused in [other_arguments, other_tool, other_endpoint] {
        assert_eq!(refused.body["error"]["code"], -32602, "{}", refused.body);
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("another call"), "{message}");
    }

    // The call itself, retried, runs.
    let done = alice.modern(5, "tools/call", retry(post("hello"))).await;
    let result = &done.body["result"];
    assert_eq!(result["resultType"], "complete", "{}", done.body);
    assert_eq!(result["structuredContent"]["posted"], "hello");
    assert_eq!(result["structuredContent"]["user_id"], "alice");

    // A state lives as long as its flow (`auth.flow_ttl`).
    let short = auth_env(|c| c.oauth.flow_ttl = Duration::from_secs(1)).await;
    let alice = Client::new(&short.gw, "/v1/mcps/alice/mcp");
    let first = alice.modern(1, "tools/call", post("hello")).await;
    let mut late = post("hello");
    late["requestState"] = first.body["result"]["requestState"].clone();
    assert!(late["requestState"].is_string(), "{}", first.body);
    short.gw.clock.advance(Duration::from_millis(1_100));
    let expired = alice.modern(2, "tools/call", late).await;
    assert_eq!(expired.body["error"]["code"], -32602, "{}", expired.body);
    let message = expired.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("expired"), "{message}");
}
