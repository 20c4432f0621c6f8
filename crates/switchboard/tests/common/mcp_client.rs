//! An MCP client of raw JSON-RPC over HTTP, as the MCP tests drive the gateway: requests
//! of either era, a session's handshake, and the gateways they run against (a `Kit`
//! worker; an `Acct` worker whose tools need the fake OAuth provider).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchboard::config::{Config, GatewayConfig, StorageConfig};
use switchboard_tdk::{Auth, Tool, ToolContext, ToolError, Toolkit};
use tokio::net::TcpListener;

use super::fake_provider::FakeProvider;
use super::flows::{browse, oauth_config, open_link};
use super::mcp::reply_body;
use super::{
    EchoInput, Empty, TestGateway, TestWorker, start_gateway, start_gateway_on,
    start_toolkit_worker, start_worker, worker_config,
};

pub const LEGACY: &str = "2025-11-25";
pub const MODERN: &str = "2026-07-28";

/// What a response came back as: status, headers we care about, and the JSON-RPC body.
pub struct Reply {
    pub status: u16,
    pub session: Option<String>,
    pub www_authenticate: Option<String>,
    pub body: Value,
}

/// A JSON-RPC request.
pub fn rpc(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A handshake as the spec has it, for `version`.
pub fn init_params(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    })
}

/// A 2026-07-28 request. Its client declares URL elicitation unless the params bring
/// their own `_meta` client capabilities.
pub fn modern(id: i64, method: &str, mut params: Value) -> Value {
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
pub struct Client<'a> {
    pub gw: &'a TestGateway,
    pub path: String,
    pub auth: Option<String>,
    pub session: Option<String>,
    pub headers: Vec<(String, reqwest::header::HeaderValue)>,
    /// The handshake version `initialize` asks for and a session's requests name.
    pub version: &'static str,
}

impl<'a> Client<'a> {
    pub fn new(gw: &'a TestGateway, path: &str) -> Self {
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
    pub fn version(mut self, version: &'static str) -> Self {
        self.version = version;
        self
    }

    pub fn auth(mut self, auth: Option<String>) -> Self {
        self.auth = auth;
        self
    }

    /// A header sent with every request; its value as raw bytes (non-ASCII ones travel as
    /// they are).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        let value = reqwest::header::HeaderValue::from_bytes(value.as_ref()).unwrap();
        self.headers.push((name.into(), value));
        self
    }

    pub fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
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

    pub async fn send_raw(&self, req: reqwest::RequestBuilder) -> Reply {
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

    pub async fn post(&self, body: Value) -> Reply {
        self.send_raw(self.request(reqwest::Method::POST).json(&body))
            .await
    }

    /// `initialize`, and when it is accepted `notifications/initialized`, keeping the
    /// session id: the `initialize` reply.
    pub async fn handshake(&mut self, capabilities: Value) -> Reply {
        let mut params = init_params(self.version);
        params["capabilities"] = capabilities;
        let r = self.post(rpc(0, "initialize", params)).await;
        if r.status == 200 {
            self.session = Some(r.session.clone().expect("an Mcp-Session-Id"));
            let n = self
                .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .await;
            assert_eq!(n.status, 202);
        }
        r
    }

    /// A handshake that must succeed: its result.
    pub async fn initialize(&mut self, capabilities: Value) -> Value {
        let r = self.handshake(capabilities).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["result"].clone()
    }

    /// A `tools/call` with an id of its own: a session's requests in flight must not
    /// share one.
    pub async fn call(&self, tool: &str, arguments: Value) -> Reply {
        static NEXT_ID: AtomicI64 = AtomicI64::new(100);
        self.post(rpc(
            NEXT_ID.fetch_add(1, Ordering::Relaxed),
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        ))
        .await
    }

    /// A modern-era request with its headers, to send.
    pub fn modern_request(&self, id: i64, method: &str, params: Value) -> reqwest::RequestBuilder {
        let mut req = self
            .request(reqwest::Method::POST)
            .header("MCP-Protocol-Version", MODERN)
            .header("Mcp-Method", method);
        if let Some(name) = params.get("name").and_then(Value::as_str) {
            req = req.header("Mcp-Name", name);
        }
        req.json(&modern(id, method, params))
    }

    /// A modern-era request with its headers.
    pub async fn modern(&self, id: i64, method: &str, params: Value) -> Reply {
        self.send_raw(self.modern_request(id, method, params)).await
    }
}

/// A TDK worker serving the `Kit` test toolkit, and a configuration step that adds it as
/// worker `kit` and then runs `customise`.
pub async fn with_kit(
    customise: impl FnOnce(&mut Config),
) -> (TestWorker, impl FnOnce(&mut Config)) {
    let worker = start_worker("Kit").await;
    let url = worker.url();
    let configure = move |c: &mut Config| {
        c.workers.push(worker_config("kit", &url));
        customise(c);
    };
    (worker, configure)
}

/// A gateway serving the `Kit` test toolkit from a TDK worker, configured by `customise`.
pub async fn kit_gateway(customise: impl FnOnce(&mut Config)) -> (TestGateway, TestWorker) {
    let (worker, configure) = with_kit(customise).await;
    (start_gateway(configure).await, worker)
}

/// Two gateways on one SQLite database, as replicas, each configured by `customise`; the
/// database lives in the returned directory.
pub async fn replicas(customise: impl Fn(&mut Config)) -> (tempfile::TempDir, Vec<TestGateway>) {
    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("shared.sqlite");
    let mut gateways = Vec::new();
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        gateways.push(
            start_gateway_on(listener, |c| {
                customise(c);
                c.storage = StorageConfig::Sqlite { path: db.clone() };
            })
            .await,
        );
    }
    (shared, gateways)
}

/// A named gateway `slug` that serves one whole toolkit.
pub fn toolkit_gateway(slug: &str, toolkit: &str) -> GatewayConfig {
    GatewayConfig {
        slug: slug.into(),
        description: None,
        tools: vec![],
        toolkits: vec![toolkit.into()],
    }
}

/// A gateway `echo` that serves `Kit.Echo` alone.
pub fn echo_gateway() -> GatewayConfig {
    GatewayConfig {
        slug: "echo".into(),
        description: None,
        tools: vec!["Kit.Echo".into()],
        toolkits: vec![],
    }
}

/// The tool names of a `tools/list` result, in the order served.
pub fn tool_names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A session's `tools/call` of `Kit_Echo`: its HTTP status and content type (JSON when
/// answered directly, an event stream when rmcp answered it).
pub async fn echo_reply_type(c: &Client<'_>, id: i64) -> (u16, String) {
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
pub async fn stream_ends(mut res: reqwest::Response, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Err(_) => return false,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => return true,
        }
    }
}

/// The root key of the gateways whose tools need authorization.
pub const ROOT_KEY: &str = "mcp-tests-root-key-0123456789abcdef";

/// A toolkit `Acct` whose tools need the fake provider's `read` scope.
pub fn acct_toolkit() -> Toolkit {
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

/// A gateway serving [`acct_toolkit`], and the fake provider it authorizes with.
pub struct AuthEnv {
    pub gw: TestGateway,
    pub fake: FakeProvider,
    _worker: TestWorker,
}

/// An [`AuthEnv`], its gateway configured by `customise`.
pub async fn auth_env(customise: impl FnOnce(&mut Config)) -> AuthEnv {
    let fake = FakeProvider::start().await;
    let worker = start_toolkit_worker(acct_toolkit()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = worker.url();
    let provider = fake.provider_config("fake");
    let gw = start_gateway_on(listener, move |c| {
        oauth_config(c, ROOT_KEY);
        c.auth_providers.push(provider);
        c.workers.push(worker_config("acct", &url));
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
pub async fn complete_flow(fake: &FakeProvider, link: &str, subject: &str) {
    let provider_url = open_link(link).await;
    let approval = fake.approve(&provider_url, subject);
    let (status, page, _) = browse(&approval.callback_url()).await;
    assert_eq!(status, 200, "{page}");
}
