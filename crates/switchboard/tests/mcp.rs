//! The MCP endpoints driven with raw JSON-RPC over HTTP, as an MCP client would: a real
//! gateway on 127.0.0.1:0, a TDK worker, and a fake OAuth provider for the authorization
//! prompts (the test plays the browser).

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::fake_provider::FakeProvider;
use common::flows::{browse, open_link};
use common::mcp::{Sse, reply_body};
use common::*;
use serde_json::{Value, json};
use switchboard::config::{
    Config, GatewayConfig, RootKeyConfig, SecretValue, StorageConfig, UserVerifier,
};
use switchboard::identity::mint_user_token;
use switchboard_tdk::{Auth, Tool, ToolContext, ToolError, Toolkit};
use tokio::net::TcpListener;

const LEGACY: &str = "2025-11-25";
const MODERN: &str = "2026-07-28";

/// What a response came back as: status, headers we care about, and the JSON-RPC body.
struct Reply {
    status: u16,
    session: Option<String>,
    www_authenticate: Option<String>,
    body: Value,
}

fn rpc(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A handshake as the spec has it, for `version`.
fn init_params(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    })
}

/// A 2026-07-28 request. Its client declares URL elicitation unless the params bring
/// their own `_meta` client capabilities.
fn modern(id: i64, method: &str, mut params: Value) -> Value {
    let caps = params
        .pointer("/_meta/io.modelcontextprotocol~1clientCapabilities")
        .cloned()
        .unwrap_or_else(|| json!({"elicitation": {"url": {}}}));
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": caps,
    });
    rpc(id, method, params)
}

/// A client of one endpoint with one credential (`None`: no Authorization header).
#[derive(Clone)]
struct Client<'a> {
    gw: &'a TestGateway,
    path: String,
    auth: Option<String>,
    session: Option<String>,
    headers: Vec<(String, String)>,
    /// The handshake version `initialize` asks for and a session's requests name.
    version: &'static str,
}

impl<'a> Client<'a> {
    fn new(gw: &'a TestGateway, path: &str) -> Self {
        Self {
            gw,
            path: path.into(),
            auth: Some(format!("Bearer {}", gw.key)),
            session: None,
            headers: Vec::new(),
            version: LEGACY,
        }
    }

    /// A handshake-era client of `version` rather than 2025-11-25.
    fn version(mut self, version: &'static str) -> Self {
        self.version = version;
        self
    }

    fn auth(mut self, auth: Option<String>) -> Self {
        self.auth = auth;
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut req = self
            .gw
            .http
            .request(method, self.gw.url(&self.path))
            .header("Accept", "application/json, text/event-stream");
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        if let Some(s) = &self.session {
            req = req
                .header("Mcp-Session-Id", s)
                .header("MCP-Protocol-Version", self.version);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req
    }

    async fn send_raw(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.unwrap();
        let header = |n: &str| res.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        let session = header("mcp-session-id");
        let www_authenticate = header("www-authenticate");
        let status = res.status().as_u16();
        let body = reply_body(res).await;
        Reply {
            status,
            session,
            www_authenticate,
            body,
        }
    }

    async fn post(&self, body: Value) -> Reply {
        self.send_raw(self.request(reqwest::Method::POST).json(&body))
            .await
    }

    /// `initialize` + `notifications/initialized`; keeps the session id.
    async fn initialize(&mut self, capabilities: Value) -> Value {
        let mut params = init_params(self.version);
        params["capabilities"] = capabilities;
        let r = self.post(rpc(0, "initialize", params)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        self.session = Some(r.session.expect("an Mcp-Session-Id"));
        let n = self
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(n.status, 202);
        r.body["result"].clone()
    }

    /// A `tools/call` with an id of its own: a session's requests in flight must not
    /// share one.
    async fn call(&self, tool: &str, arguments: Value) -> Reply {
        static NEXT_ID: AtomicI64 = AtomicI64::new(100);
        self.post(rpc(
            NEXT_ID.fetch_add(1, Ordering::Relaxed),
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        ))
        .await
    }

    /// A modern-era request with its headers.
    async fn modern(&self, id: i64, method: &str, params: Value) -> Reply {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut req = self
            .request(reqwest::Method::POST)
            .header("MCP-Protocol-Version", MODERN)
            .header("Mcp-Method", method);
        if let Some(name) = name {
            req = req.header("Mcp-Name", name);
        }
        self.send_raw(req.json(&modern(id, method, params))).await
    }
}

async fn kit_gateway(customise: impl FnOnce(&mut Config)) -> (TestGateway, TestWorker) {
    let worker = start_worker("Kit").await;
    let url = worker.url();
    let gw = start_gateway(move |c| {
        c.workers.push(worker_config("kit", &url));
        customise(c);
    })
    .await;
    (gw, worker)
}

/// A gateway `echo` that serves `Kit.Echo` alone.
/// A named gateway `slug` that serves one whole toolkit.
fn toolkit_gateway(slug: &str, toolkit: &str) -> GatewayConfig {
    GatewayConfig {
        slug: slug.into(),
        description: None,
        tools: vec![],
        toolkits: vec![toolkit.into()],
    }
}

fn echo_gateway() -> GatewayConfig {
    GatewayConfig {
        slug: "echo".into(),
        description: None,
        tools: vec!["Kit.Echo".into()],
        toolkits: vec![],
    }
}

fn tool_names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

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

// --- Authorization prompts ---------------------------------------------------------

const ROOT_KEY: &str = "mcp-tests-root-key-0123456789abcdef";

fn acct_toolkit() -> Toolkit {
    Toolkit::new("Acct", "1.0.0")
        .tool(
            Tool::new(
                "Me",
                "Who I am at the provider",
                |ctx: ToolContext, _i: Empty| {
                    let user = ctx.user_id().map(str::to_owned);
                    let has_token = ctx.token().is_some();
                    async move {
                        Ok::<_, ToolError>(json!({"user_id": user, "has_token": has_token}))
                    }
                },
            )
            .requires_auth(Auth::oauth2("fake").scopes(["read"])),
        )
        .tool(
            Tool::new(
                "Post",
                "Post a message as the user",
                |ctx: ToolContext, i: EchoInput| {
                    let user = ctx.user_id().map(str::to_owned);
                    async move { Ok::<_, ToolError>(json!({"user_id": user, "posted": i.message})) }
                },
            )
            .requires_auth(Auth::oauth2("fake").scopes(["read"])),
        )
}

struct AuthEnv {
    gw: TestGateway,
    fake: FakeProvider,
    _worker: TestWorker,
}

async fn auth_env(customise: impl FnOnce(&mut Config)) -> AuthEnv {
    let fake = FakeProvider::start().await;
    let worker = start_toolkit_worker(acct_toolkit()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = worker.url();
    let provider = fake.provider_config("fake");
    let gw = start_gateway_on(listener, move |c| {
        c.security.root_keys = vec![RootKeyConfig {
            id: "k1".into(),
            default: true,
            value: SecretValue::new(ROOT_KEY),
        }];
        c.auth_providers.push(provider);
        // Outside dev mode the fake provider's loopback address must be listed.
        c.network.allowlist.push("127.0.0.1".into());
        c.workers.push(worker_config("acct", &url));
        c.oauth.user_verifier = UserVerifier::Disabled;
        customise(c);
    })
    .await;
    AuthEnv {
        gw,
        fake,
        _worker: worker,
    }
}

/// The user opens the gateway's link and approves at the provider.
async fn complete_flow(fake: &FakeProvider, link: &str, subject: &str) {
    let provider_url = open_link(link).await;
    let approval = fake.approve(&provider_url, subject);
    let (status, page, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 200, "{page}");
}

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

#[tokio::test]
async fn another_replica_serves_a_session_and_opens_a_request_state() {
    let fake = FakeProvider::start().await;
    let worker = start_toolkit_worker(acct_toolkit()).await;
    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("shared.sqlite");
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (url, provider, db) = (worker.url(), fake.provider_config("fake"), db.clone());
        replicas.push(
            start_gateway_on(listener, move |c| {
                c.security.root_keys = vec![RootKeyConfig {
                    id: "k1".into(),
                    default: true,
                    value: SecretValue::new(ROOT_KEY),
                }];
                c.auth_providers.push(provider);
                c.network.allowlist.push("127.0.0.1".into());
                c.workers.push(worker_config("acct", &url));
                c.oauth.user_verifier = UserVerifier::Disabled;
                c.storage = StorageConfig::Sqlite { path: db };
            })
            .await,
        );
    }
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

/// A session's `tools/call` of `Kit_Echo`: its HTTP status and content type (JSON when
/// answered directly, an event stream when rmcp answered it).
async fn echo_reply_type(c: &Client<'_>, id: i64) -> (u16, String) {
    let res = c
        .request(reqwest::Method::POST)
        .json(&rpc(
            id,
            "tools/call",
            json!({"name": "Kit_Echo", "arguments": {"message": "hi"}}),
        ))
        .send()
        .await
        .unwrap();
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    (res.status().as_u16(), content_type)
}

/// Whether an event stream ends (or breaks) within `within`.
async fn stream_ends(mut res: reqwest::Response, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => return true,
        }
    }
}

/// Calls answered directly still count as use: a session busy with nothing but
/// `tools/call` stays live in rmcp (its event stream stays open) past the keep-alive,
/// while an idle one is parked (its stream ends).
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
    let watch = tokio::spawn(stream_ends(stream, Duration::from_secs(3)));
    let mut direct = 0;
    for _ in 0..30 {
        let (status, content_type) = echo_reply_type(&busy, 1).await;
        assert_eq!(status, 200);
        direct += usize::from(content_type.starts_with("application/json"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !watch.await.unwrap(),
        "the busy session's stream stayed open"
    );
    assert!(
        direct >= 20,
        "most calls were answered directly ({direct}/30)"
    );
}

/// `notifications/cancelled` stops a handshake-era call answered directly, as rmcp stops
/// the calls it runs: the worker's long call is dropped and the request answers at once.
#[tokio::test]
async fn a_cancelled_direct_call_stops_at_once() {
    let (gw, _w) = kit_gateway(|_| {}).await;
    let mut c = Client::new(&gw, "/v1/mcps/alice/mcp");
    c.initialize(json!({})).await;
    let started = std::time::Instant::now();
    let call = c.post(rpc(
        41,
        "tools/call",
        json!({"name": "Kit_Sleep", "arguments": {"millis": 20000}}),
    ));
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let note = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 41, "reason": "the user gave up"},
        });
        c.post(note).await
    };
    let (reply, noted) = tokio::join!(call, cancel);
    assert_eq!(noted.status, 202);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the call stopped: {:?}",
        started.elapsed()
    );
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
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let expired = alice.modern(2, "tools/call", late).await;
    assert_eq!(expired.body["error"]["code"], -32602, "{}", expired.body);
    let message = expired.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("expired"), "{message}");
}
