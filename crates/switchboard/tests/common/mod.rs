//! A fresh gateway per test: SQLite in a temp dir, an API key, optional TDK workers, all
//! on 127.0.0.1:0.
#![allow(dead_code)]

pub mod binary;
pub mod fake_provider;
pub mod flows;
pub mod logs;
pub mod mcp;
pub mod mcp_client;
pub mod postgres;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard::clock::Clock;
use switchboard::config::{self, Config, SecretValue, WorkerConfig};
use switchboard::identity::generate_key;
use switchboard::server::Gateway;
use switchboard::store::{ExecutionFilter, ExecutionRecord, Store};
use switchboard_tdk::{Tool, ToolContext, ToolError, Toolkit, Worker};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const WORKER_SECRET: &str = "test-worker-secret";

pub struct TestWorker {
    pub addr: SocketAddr,
    pub invocations: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl TestWorker {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn invocations(&self) -> usize {
        self.invocations.load(Ordering::SeqCst)
    }

    /// Stops the worker and waits until its port is closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.handle.await;
    }
}

#[derive(Deserialize, JsonSchema)]
pub struct EchoInput {
    /// The message to echo.
    pub message: String,
}

#[derive(Deserialize, JsonSchema)]
pub struct AddInput {
    pub a: f64,
    pub b: f64,
}

#[derive(Deserialize, JsonSchema)]
pub struct SleepInput {
    pub millis: u64,
}

#[derive(Deserialize, JsonSchema)]
pub struct Empty {}

/// A toolkit named `toolkit` with Echo, Add, Sleep, WhoAmI (user id), NeedsSecret
/// (secret KIT_KEY) and Flaky (retryable error).
pub fn test_toolkit(toolkit: &str, invocations: Arc<AtomicUsize>) -> Toolkit {
    let count = move || {
        let c = invocations.clone();
        move || {
            c.fetch_add(1, Ordering::SeqCst);
        }
    };
    let (c1, c2, c3, c4, c5, c6) = (count(), count(), count(), count(), count(), count());
    Toolkit::new(toolkit, "1.0.0")
        .description("test toolkit")
        .tool(Tool::new("Echo", "Echo a message", move |_ctx: ToolContext, i: EchoInput| {
            c1();
            async move { Ok::<_, ToolError>(i.message) }
        }))
        .tool(Tool::new("Add", "Add two numbers", move |_ctx: ToolContext, i: AddInput| {
            c2();
            async move { Ok::<_, ToolError>(i.a + i.b) }
        }))
        .tool(Tool::new("Sleep", "Sleep", move |_ctx: ToolContext, i: SleepInput| {
            c3();
            async move {
                tokio::time::sleep(Duration::from_millis(i.millis)).await;
                Ok::<_, ToolError>(json!({"slept": i.millis}))
            }
        }))
        .tool(Tool::new("WhoAmI", "The user id the gateway sent", move |ctx: ToolContext, _i: Empty| {
            c4();
            let user = ctx.user_id().map(str::to_string);
            async move { Ok::<_, ToolError>(json!({"user_id": user})) }
        }))
        .tool(
            Tool::new("NeedsSecret", "Uses KIT_KEY", move |ctx: ToolContext, _i: Empty| {
                c5();
                let len = ctx.secret("KIT_KEY").map(str::len);
                async move { Ok::<_, ToolError>(json!({"length": len?})) }
            })
            .secret("KIT_KEY"),
        )
        .tool(Tool::new("Flaky", "Always asks to retry", move |_ctx: ToolContext, _i: Empty| {
            c6();
            async move { Err::<Value, _>(ToolError::retry("try again later").retry_after_ms(500)) }
        }))
}

pub async fn start_worker_on(listener: TcpListener, toolkit_name: &str) -> TestWorker {
    start_worker_on_with_secret(listener, toolkit_name, WORKER_SECRET)
}

/// Like [`start_worker`], but the worker accepts tokens signed with `secret`.
pub async fn start_worker_with_secret(toolkit_name: &str, secret: &str) -> TestWorker {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    start_worker_on_with_secret(listener, toolkit_name, secret)
}

fn start_worker_on_with_secret(
    listener: TcpListener,
    toolkit_name: &str,
    secret: &str,
) -> TestWorker {
    let addr = listener.local_addr().expect("bound");
    let invocations = Arc::new(AtomicUsize::new(0));
    let worker = Worker::new(secret).toolkit(test_toolkit(toolkit_name, invocations.clone()));
    let (tx, rx) = oneshot::channel();
    let handle = tokio::spawn(async move {
        let _ = worker
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await;
    });
    TestWorker {
        addr,
        invocations,
        stop: Some(tx),
        handle,
    }
}

/// A port held for a whole test that behaves like a worker that is down (every
/// connection is closed at once, before any answer) until [`SwitchablePort::forward_to`]
/// points it at a real worker. Holding the port avoids dropping it and binding it again
/// later, which races with every other test process on the machine.
pub struct SwitchablePort {
    pub addr: SocketAddr,
    upstream: Arc<std::sync::Mutex<Option<SocketAddr>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl SwitchablePort {
    pub async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let upstream = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        let target = upstream.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Some(to) = *target.lock().expect("not poisoned") else {
                    continue; // dropped: the connection closes unanswered
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self {
            addr,
            upstream,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, connections reach `to`.
    pub fn forward_to(&self, to: SocketAddr) {
        *self.upstream.lock().expect("not poisoned") = Some(to);
    }
}

impl Drop for SwitchablePort {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

pub async fn start_worker(toolkit_name: &str) -> TestWorker {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    start_worker_on(listener, toolkit_name).await
}

pub fn worker_config(id: &str, url: &str) -> WorkerConfig {
    WorkerConfig {
        id: id.into(),
        enabled: true,
        director: None,
        uri: url.into(),
        secret: Some(SecretValue::new(WORKER_SECRET)),
        timeout: Duration::from_secs(5),
        retry: 1,
    }
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub key: String,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The gateway's clock: a test reaches an expiry by advancing it (a manual clock when
    /// the gateway was started here), never by sleeping.
    pub clock: Clock,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Defaults for tests: not dev mode, SQLite in `dir`, quick health checks, fast log flush.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = config::defaults(dir);
    c.api.development = false;
    c.worker_health_interval = Duration::from_millis(200);
    c.execution_logging.write_batch_timeout = Duration::from_millis(20);
    c
}

pub async fn start_gateway(customise: impl FnOnce(&mut Config)) -> TestGateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    customise(&mut config);
    let gateway = Gateway::start_with_clock(config, Clock::manual())
        .await
        .expect("gateway starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    serve_gateway(gateway, listener, dir).await
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .get(self.url(path))
            .header("Authorization", &self.key)
            .send()
            .await
            .expect("sent");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn execute(&self, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.url("/v1/tools/execute"))
            .header("Authorization", format!("Bearer {}", self.key))
            .json(&body)
            .send()
            .await
            .expect("sent");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A fresh user token for `user`, made over REST with the gateway's API key.
    pub async fn user_token(&self, user: &str) -> String {
        let res = self
            .http
            .post(self.url(&format!("/v1/admin/users/{user}/tokens")))
            .header("Authorization", &self.key)
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), 201, "a user token is made");
        let body: Value = res.json().await.expect("JSON");
        body["token"].as_str().expect("a token").to_owned()
    }

    /// Waits (bounded) until `n` execution records are stored.
    pub async fn executions(&self, n: usize) -> Vec<ExecutionRecord> {
        for _ in 0..100 {
            let got = self
                .store
                .list_executions(&ExecutionFilter {
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .expect("list");
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.store
            .list_executions(&ExecutionFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list")
    }

    /// Signals shutdown and waits for the server to finish (drain included).
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.handle.await.expect("server task")
    }

    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Every file below `dir`, in its subdirectories too.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Whether `needle`'s bytes stand anywhere in `haystack`.
pub fn bytes_contain(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Polls until `check` holds (bounded: 5 s).
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..250 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Like [`start_gateway`], on a listener bound by the caller, with `api.public_url` set to
/// its address (OAuth redirect URIs must reach this gateway).
pub async fn start_gateway_on(
    listener: TcpListener,
    customise: impl FnOnce(&mut Config),
) -> TestGateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.api.public_url = format!("http://{}", listener.local_addr().expect("addr"));
    customise(&mut config);
    let gateway = Gateway::start_with_clock(config, Clock::manual())
        .await
        .expect("gateway starts");
    serve_gateway(gateway, listener, dir).await
}

/// Serves a gateway the caller built, with an API key of its own (unique per listener,
/// so replicas on one database don't clash).
pub async fn serve_gateway(
    gateway: Gateway,
    listener: TcpListener,
    dir: tempfile::TempDir,
) -> TestGateway {
    let addr = listener.local_addr().expect("addr");
    let store = gateway.state.store.clone();
    let clock = gateway.state.clock.clone();
    let key = generate_key(&format!("test-{}", addr.port()), 0);
    store.insert_api_key(&key.record).await.expect("key stored");
    let (tx, rx) = oneshot::channel();
    let handle = tokio::spawn(gateway.serve(listener, async move {
        let _ = rx.await;
    }));
    TestGateway {
        addr,
        key: key.plaintext,
        store,
        http: reqwest::Client::new(),
        dir,
        clock,
        stop: Some(tx),
        handle,
    }
}

/// A TDK worker serving `toolkit`; `invocations` stays at zero (count in the handlers).
pub async fn start_toolkit_worker(toolkit: Toolkit) -> TestWorker {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let worker = Worker::new(WORKER_SECRET).toolkit(toolkit);
    let (tx, rx) = oneshot::channel();
    let handle = tokio::spawn(async move {
        let _ = worker
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await;
    });
    TestWorker {
        addr,
        invocations: Arc::new(AtomicUsize::new(0)),
        stop: Some(tx),
        handle,
    }
}

/// A port that accepts every connection and closes it at once, counting them. Reached
/// over `https://`, each attempt fails in the TLS handshake: a connection failure, before
/// any request could be sent.
pub struct ClosingPort {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl ClosingPort {
    pub async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // Counted before the close the client sees.
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Self {
            addr,
            accepted,
            accept,
        }
    }

    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for ClosingPort {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One TDK worker address that serves `first`'s toolkit until [`ShiftingWorker::shift`],
/// then `second`'s: a worker whose tool list changes while it stays up.
pub struct ShiftingWorker {
    pub addr: SocketAddr,
    second: Arc<std::sync::atomic::AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl ShiftingWorker {
    pub async fn start(first: Toolkit, second: Toolkit) -> Self {
        use tower::ServiceExt as _;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let a = Worker::new(WORKER_SECRET).toolkit(first).router();
        let b = Worker::new(WORKER_SECRET).toolkit(second).router();
        let second = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let which = second.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let router = if which.load(Ordering::SeqCst) {
                b.clone()
            } else {
                a.clone()
            };
            async move { router.oneshot(req).await }
        });
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            second,
            stop: Some(tx),
            handle,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on the worker serves the second toolkit.
    pub fn shift(&self) {
        self.second.store(true, Ordering::SeqCst);
    }
}

impl Drop for ShiftingWorker {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.handle.abort();
    }
}
