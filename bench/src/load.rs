//! Phases (what one request is) and the closed-loop load generator that runs them.
//!
//! A scenario is one more [`Phase`] in [`phases`]: e.g. the tool that needs an OAuth grant,
//! MCP `tools/call`, or the same worker call through a bare HTTP/1.1 proxy (the floor any
//! gateway hop costs). The report compares each with the floor and the direct call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

/// Which server a phase's requests go to: the process in front of the worker, whose CPU
/// per call the report shows (see `CpuTicks::front`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The switchboard gateway.
    Gateway,
    /// `bare-proxy`: forwards the body to the worker's invoke endpoint, nothing else.
    BareProxy,
    /// The worker itself; nothing in front.
    Direct,
}

/// Everything a request builder may need; shared by all tasks of a run.
pub struct Env {
    /// One client for every phase: same pool, same keep-alive, same settings.
    pub client: reqwest::Client,
    /// e.g. `http://127.0.0.1:PORT` (no trailing slash).
    pub gateway_url: String,
    pub worker_url: String,
    /// `bare-proxy`'s URL; `None` when no selected phase needs it (it is not started).
    pub proxy_url: Option<String>,
    pub api_key: String,
    pub worker_secret: String,
    /// (issued at, token): a worker token is signed once per 30 s, not per request, so
    /// the direct path does not pay for signing on the load generator's shared CPUs.
    token: Mutex<(u64, String)>,
    /// Open 2025-11-25 sessions for the session-era MCP phase, used in turn.
    pub mcp_sessions: OnceLock<Vec<String>>,
    /// Numbers that phase's requests: ids in flight in a session must differ.
    mcp_next_id: AtomicU64,
}

impl Env {
    pub fn new(
        client: reqwest::Client,
        gateway_url: String,
        worker_url: String,
        proxy_url: Option<String>,
        api_key: String,
        worker_secret: String,
    ) -> Self {
        Self {
            client,
            gateway_url,
            worker_url,
            proxy_url,
            api_key,
            worker_secret,
            mcp_sessions: OnceLock::new(),
            mcp_next_id: AtomicU64::new(1),
            token: Mutex::new((0, String::new())),
        }
    }

    /// A worker JWT valid for at least 30 more seconds.
    pub fn worker_token(&self) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        // A poisoned lock only means another task panicked while holding it; the cached
        // token is still a whole value.
        let mut cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if cached.1.is_empty() || now.saturating_sub(cached.0) >= 30 {
            let token = switchboard_wire::jwt::sign(&self.worker_secret, now)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            *cached = (now, token);
        }
        Ok(cached.1.clone())
    }
}

/// One kind of request, measured on its own at each concurrency.
pub struct Phase {
    /// Short id, unique; `--phases` and the report name phases by it.
    pub id: &'static str,
    /// What the table shows.
    pub label: &'static str,
    pub target: Target,
    /// Builds one request. Called per request, so keep it cheap.
    pub request: fn(&Env) -> anyhow::Result<reqwest::RequestBuilder>,
    /// Whether an answer (status, whole body) counts as a success.
    pub ok: fn(reqwest::StatusCode, &[u8]) -> bool,
}

pub const GATEWAY_ECHO: &str = "gateway-echo";
pub const GATEWAY_ECHO_ROUTED: &str = "gateway-echo-routed";
pub const DIRECT_ECHO: &str = "direct-echo";
pub const GATEWAY_GRANT: &str = "gateway-grant";
pub const GATEWAY_TWIN: &str = "gateway-no-grant";
pub const MCP_ECHO: &str = "mcp-call-echo";
pub const MCP_GRANT: &str = "mcp-call-grant";
pub const MCP_SESSION_GRANT: &str = "mcp-session-call-grant";
pub const DIRECT_GRANT: &str = "direct-grant";
pub const BARE_PROXY_ECHO: &str = "bare-proxy-echo";

/// The user every gateway call is made for; its sandbox account is connected before the
/// phases run.
pub const BENCH_USER: &str = "bench";

const EXECUTE_ECHO_BODY: &str =
    r#"{"tool_name":"Demo.Echo","input":{"message":"hi"},"user_id":"bench"}"#;
/// `Demo.TokenFingerprint` needs the user's sandbox grant: the gateway reads the connection,
/// opens the token from the vault and puts it in the worker request; the worker hashes it
/// locally (no upstream call), so the difference to `Demo.Echo` is the grant's cost.
const EXECUTE_GRANT_BODY: &str =
    r#"{"tool_name":"Demo.TokenFingerprint","input":{},"user_id":"bench"}"#;
/// The grant's control: `Demo.Fingerprint` does `TokenFingerprint`'s work and gives the
/// same answer on a fixed stand-in token, without a grant. The requests differ only by
/// `context.authorization`, so the difference is what the grant costs.
const EXECUTE_TWIN_BODY: &str = r#"{"tool_name":"Demo.Fingerprint","input":{},"user_id":"bench"}"#;
const INVOKE_ECHO_BODY: &str = r#"{"tool":{"name":"Echo","toolkit":"Demo"},"inputs":{"message":"hi"},"context":{"user_id":"bench"}}"#;
/// The worker side of the grant phases: the same tool with a made-up token (the worker
/// only hashes it), so the gateway's whole share shows against it.
const INVOKE_GRANT_BODY: &str = r#"{"tool":{"name":"TokenFingerprint","toolkit":"Demo"},"inputs":{},"context":{"authorization":{"token":"bench-token"},"user_id":"bench"}}"#;
/// MCP `tools/call` in the stateless 2026-07-28 era: no session, the version and the
/// client's capabilities ride in `_meta` (none declared: no URL elicitation).
/// The MCP side of the floor comparison: the bare proxy's tool, through MCP.
const MCP_CALL_ECHO_BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"Demo_Echo","arguments":{"message":"hi"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
const MCP_CALL_GRANT_BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"Demo_TokenFingerprint","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
pub const MCP_MODERN: &str = "2026-07-28";
pub const MCP_LEGACY: &str = "2025-11-25";
const MCP_ACCEPT: &str = "application/json, text/event-stream";
const MCP_INITIALIZE_BODY: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#;
const MCP_INITIALIZED_BODY: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// A POST to the bench user's MCP endpoint with the API key and the headers every MCP
/// POST carries.
fn mcp_post(env: &Env) -> reqwest::RequestBuilder {
    env.client
        .post(format!("{}/v1/mcps/{BENCH_USER}/mcp", env.gateway_url))
        .header(AUTHORIZATION, format!("Bearer {}", env.api_key))
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, MCP_ACCEPT)
}

/// REST execute and worker invoke: HTTP 200 and a tool result with `"success":true`
/// (both the gateway and the worker write compact JSON).
fn tool_ok(status: reqwest::StatusCode, body: &[u8]) -> bool {
    status.is_success() && contains(body, b"\"success\":true")
}

/// MCP `tools/call`: HTTP 200, a JSON-RPC result (JSON or one SSE event), not `isError`.
fn mcp_ok(status: reqwest::StatusCode, body: &[u8]) -> bool {
    status == reqwest::StatusCode::OK
        && contains(body, b"\"result\"")
        && !contains(body, b"\"isError\":true")
}

/// `POST /v1/tools/execute` with the API key and `body`.
fn rest_execute(env: &Env, body: &'static str) -> reqwest::RequestBuilder {
    rest_execute_at(env, "/v1/tools/execute", body)
}

/// `POST {path}` with the API key and `body`: the org/project form of execute goes through
/// the router rather than the hot route taken before it.
fn rest_execute_at(env: &Env, path: &str, body: &'static str) -> reqwest::RequestBuilder {
    env.client
        .post(format!("{}{path}", env.gateway_url))
        .header(AUTHORIZATION, format!("Bearer {}", env.api_key))
        .header(CONTENT_TYPE, "application/json")
        .body(body)
}

/// Every phase, in the order they run within a round (the reverse in odd rounds): the
/// gateway's, then the bare proxy's, then the worker's alone.
pub fn phases() -> Vec<Phase> {
    vec![
        Phase {
            id: GATEWAY_ECHO,
            label: "gateway: REST execute Demo.Echo",
            target: Target::Gateway,
            request: |env| Ok(rest_execute(env, EXECUTE_ECHO_BODY)),
            ok: tool_ok,
        },
        Phase {
            id: GATEWAY_ECHO_ROUTED,
            label: "gateway: REST execute Demo.Echo through the router (org/project path)",
            target: Target::Gateway,
            request: |env| {
                Ok(rest_execute_at(
                    env,
                    "/v1/orgs/bench/projects/bench/tools/execute",
                    EXECUTE_ECHO_BODY,
                ))
            },
            ok: tool_ok,
        },
        Phase {
            id: GATEWAY_TWIN,
            label: "gateway: REST execute Demo.Fingerprint (the same tool without a grant)",
            target: Target::Gateway,
            request: |env| Ok(rest_execute(env, EXECUTE_TWIN_BODY)),
            ok: tool_ok,
        },
        Phase {
            id: GATEWAY_GRANT,
            label: "gateway: REST execute Demo.TokenFingerprint (grant)",
            target: Target::Gateway,
            request: |env| Ok(rest_execute(env, EXECUTE_GRANT_BODY)),
            ok: tool_ok,
        },
        Phase {
            id: MCP_ECHO,
            label: "gateway: MCP tools/call Demo_Echo (2026-07-28)",
            target: Target::Gateway,
            request: |env| {
                Ok(mcp_post(env)
                    .header("MCP-Protocol-Version", MCP_MODERN)
                    .header("Mcp-Method", "tools/call")
                    .header("Mcp-Name", "Demo_Echo")
                    .body(MCP_CALL_ECHO_BODY))
            },
            ok: mcp_ok,
        },
        Phase {
            id: MCP_GRANT,
            label: "gateway: MCP tools/call Demo_TokenFingerprint (grant, 2026-07-28)",
            target: Target::Gateway,
            request: |env| {
                Ok(mcp_post(env)
                    .header("MCP-Protocol-Version", MCP_MODERN)
                    .header("Mcp-Method", "tools/call")
                    .header("Mcp-Name", "Demo_TokenFingerprint")
                    .body(MCP_CALL_GRANT_BODY))
            },
            ok: mcp_ok,
        },
        Phase {
            id: MCP_SESSION_GRANT,
            label: "gateway: MCP tools/call Demo_TokenFingerprint (grant, 2025-11-25 session)",
            target: Target::Gateway,
            request: |env| {
                let sessions = env
                    .mcp_sessions
                    .get()
                    .filter(|s| !s.is_empty())
                    .context("no MCP sessions were opened")?;
                let id = env.mcp_next_id.fetch_add(1, Ordering::Relaxed);
                let session = &sessions[id as usize % sessions.len()];
                Ok(mcp_post(env)
                    .header("MCP-Protocol-Version", MCP_LEGACY)
                    .header("Mcp-Session-Id", session.as_str())
                    .body(format!(
                        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"Demo_TokenFingerprint","arguments":{{}}}}}}"#
                    )))
            },
            ok: mcp_ok,
        },
        Phase {
            id: BARE_PROXY_ECHO,
            label: "floor: bare HTTP/1.1 proxy → worker invoke Demo.Echo",
            target: Target::BareProxy,
            request: |env| {
                let url = env
                    .proxy_url
                    .as_deref()
                    .context("bare-proxy was not started")?;
                // The proxy ignores the path (same as direct-echo's, for the same request
                // line) and adds the worker JWT itself, as the gateway does.
                Ok(env
                    .client
                    .post(format!("{url}/worker/tools/invoke"))
                    .header(CONTENT_TYPE, "application/json")
                    .body(INVOKE_ECHO_BODY))
            },
            ok: tool_ok,
        },
        Phase {
            id: DIRECT_ECHO,
            label: "direct: worker invoke Demo.Echo",
            target: Target::Direct,
            request: |env| {
                Ok(env
                    .client
                    .post(format!("{}/worker/tools/invoke", env.worker_url))
                    .header(AUTHORIZATION, format!("Bearer {}", env.worker_token()?))
                    .header(CONTENT_TYPE, "application/json")
                    .body(INVOKE_ECHO_BODY))
            },
            ok: tool_ok,
        },
        Phase {
            id: DIRECT_GRANT,
            label: "direct: worker invoke Demo.TokenFingerprint",
            target: Target::Direct,
            request: |env| {
                Ok(env
                    .client
                    .post(format!("{}/worker/tools/invoke", env.worker_url))
                    .header(AUTHORIZATION, format!("Bearer {}", env.worker_token()?))
                    .header(CONTENT_TYPE, "application/json")
                    .body(INVOKE_GRANT_BODY))
            },
            ok: tool_ok,
        },
    ]
}

/// What one batch of requests measured.
#[derive(Default)]
pub struct Batch {
    /// Latency of each successful request, in nanoseconds.
    pub latencies_ns: Vec<u64>,
    pub elapsed: Duration,
    pub errors: u64,
    /// The first failure, to show when everything fails.
    pub first_error: Option<String>,
}

/// Runs `count` requests of `phase` with `concurrency` requests in flight (closed loop:
/// each task sends its next request when the previous answer is read).
pub async fn run_batch(
    env: &Arc<Env>,
    phase: &Phase,
    concurrency: usize,
    count: usize,
) -> anyhow::Result<Batch> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (env, next, request, ok) = (env.clone(), next.clone(), phase.request, phase.ok);
        tasks.push(tokio::spawn(async move {
            let mut batch = Batch {
                latencies_ns: Vec::with_capacity(count / concurrency + 1),
                ..Batch::default()
            };
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let req = request(&env)?;
                let t0 = Instant::now();
                let outcome = send(req, ok).await;
                let dt = t0.elapsed();
                match outcome {
                    Ok(()) => batch.latencies_ns.push(dt.as_nanos() as u64),
                    Err(e) => {
                        batch.errors += 1;
                        batch.first_error.get_or_insert(e);
                    }
                }
            }
            anyhow::Ok(batch)
        }));
    }
    let mut total = Batch::default();
    for task in tasks {
        let b = task.await.context("load task panicked")??;
        total.latencies_ns.extend(b.latencies_ns);
        total.errors += b.errors;
        if total.first_error.is_none() {
            total.first_error = b.first_error;
        }
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// Sends one request and reads the whole body; `ok` judges the answer.
async fn send(
    req: reqwest::RequestBuilder,
    ok: fn(reqwest::StatusCode, &[u8]) -> bool,
) -> Result<(), String> {
    let res = req.send().await.map_err(|e| format!("transport: {e}"))?;
    let status = res.status();
    let body = res
        .bytes()
        .await
        .map_err(|e| format!("reading body: {e}"))?;
    if ok(status, &body) {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&body);
        Err(format!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        ))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Fails unless a warm-up batch answered every request well.
pub fn ensure_clean(phase: &Phase, batch: &Batch) -> anyhow::Result<()> {
    if batch.errors > 0 {
        bail!(
            "{}: {} of {} warm-up requests failed; first: {}",
            phase.label,
            batch.errors,
            batch.errors as usize + batch.latencies_ns.len(),
            batch.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

/// What opening idle legacy sessions did.
pub struct Sessions {
    pub opened: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// Opens `count` 2025-11-25 sessions (`initialize`, then `notifications/initialized` with
/// the returned `Mcp-Session-Id`), `concurrency` at a time, and leaves them idle.
pub async fn open_legacy_sessions(
    env: &Arc<Env>,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Sessions> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (env, next) = (env.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut opened, mut errors, mut first) = (0usize, 0usize, None);
            while next.fetch_add(1, Ordering::Relaxed) < count {
                match open_session(&env).await {
                    Ok(_) => opened += 1,
                    Err(e) => {
                        errors += 1;
                        first.get_or_insert(e);
                    }
                }
            }
            (opened, errors, first)
        }));
    }
    let mut total = Sessions {
        opened: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (opened, errors, first) = task.await.context("session task panicked")?;
        total.opened += opened;
        total.errors += errors;
        if total.first_error.is_none() {
            total.first_error = first;
        }
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// One session per load task (64, the largest concurrency), for the session-era phase.
pub async fn open_phase_sessions(env: &Env, count: usize) -> anyhow::Result<Vec<String>> {
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count {
        sessions.push(open_session(env).await.map_err(|e| anyhow::anyhow!(e))?);
    }
    Ok(sessions)
}

async fn open_session(env: &Env) -> Result<String, String> {
    let res = mcp_post(env)
        .body(MCP_INITIALIZE_BODY)
        .send()
        .await
        .map_err(|e| format!("initialize: transport: {e}"))?;
    let status = res.status();
    let session = res
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res
        .bytes()
        .await
        .map_err(|e| format!("initialize: reading body: {e}"))?;
    let Some(session) = session.filter(|_| status == reqwest::StatusCode::OK) else {
        let text = String::from_utf8_lossy(&body);
        return Err(format!(
            "initialize: HTTP {status} (session id: none): {}",
            text.chars().take(300).collect::<String>()
        ));
    };
    let res = mcp_post(env)
        .header("Mcp-Session-Id", &session)
        .header("MCP-Protocol-Version", MCP_LEGACY)
        .body(MCP_INITIALIZED_BODY)
        .send()
        .await
        .map_err(|e| format!("notifications/initialized: transport: {e}"))?;
    let status = res.status();
    let _ = res.bytes().await;
    if status.is_success() {
        Ok(session)
    } else {
        Err(format!("notifications/initialized: HTTP {status}"))
    }
}
