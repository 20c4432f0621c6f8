//! What a call with a grant adds to the gateway, measured in-process (issue 3, "Benchmark").
//!
//! The end-to-end benchmark sees the grant as the difference of two ~200 µs figures on a
//! noisy VM; this program times only the added work, with sub-µs resolution:
//! `Requirement::from_wire` + `AuthService::grant` (provider lookup, connection from the
//! 2 s cache or the store, the user's data key, opening the sealed access token) + the
//! worker request's `context.authorization` built and serialized, then everything dropped.
//! The baseline builds and serializes the same worker request with `authorization: None`.
//!
//! Setup: a real gateway (SQLite in a temp dir, dev mode, sandbox provider with a 24 h
//! token lifetime so nothing refreshes mid-run) and the Demo worker, in-process; user
//! `bench` is connected through the real flow, then both servers stop so that no health
//! check or request runs during the loops.
//!
//! `cargo bench -p switchboard --bench grant_cost [-- --calls N]`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Map, json};
use switchboard::catalog::ToolEntry;
use switchboard::config::{self, AuthProviderConfig, SecretValue, WorkerConfig};
use switchboard::identity::generate_key;
use switchboard::oauth::{AuthService, Grant, Requirement};
use switchboard::server::Gateway;
use switchboard_wire::{
    ToolAuthorizationContextRef, ToolCallRequestRef, ToolContextRef, ToolReferenceRef,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const USER: &str = "bench";
const PROVIDER: &str = "sandbox";
const TOOL: &str = "Demo.TokenFingerprint";
const WORKER_SECRET: &str = "bench-worker-secret";

fn main() -> anyhow::Result<()> {
    let calls = calls_arg()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(calls))
}

/// `--calls N` (default 200,000); anything else (cargo passes `--bench`) is ignored.
fn calls_arg() -> anyhow::Result<usize> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--calls" {
            let n = args.next().context("--calls needs a number")?;
            return n.parse().context("--calls needs a number");
        }
    }
    Ok(200_000)
}

/// One measured loop.
struct Stats {
    label: &'static str,
    calls: usize,
    mean_ns: f64,
    p50_ns: u64,
    p99_ns: u64,
    cpu_ns: u64,
}

impl Stats {
    fn cpu_us(&self) -> f64 {
        self.cpu_ns as f64 / self.calls as f64 / 1000.0
    }
}

async fn run(calls: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (auth, tool) = connected_gateway(dir.path()).await?;
    let wire = tool
        .definition
        .requirements
        .authorization
        .clone()
        .with_context(|| format!("{TOOL} declares no authorization"))?;

    // The grant path, with the connection row from the 2 s cache (a store read every 2 s).
    let grant_call = async || -> anyhow::Result<usize> {
        let req = Requirement::from_wire(&wire);
        let grant = auth.grant(USER, &req).await?;
        worker_request_len(&tool, Some(&grant))
    };
    // What a cache miss adds: the store read `grant` makes when the cache has no row.
    // The cache has no switch, so this is the cached path plus that read.
    let uncached_call = async || -> anyhow::Result<usize> {
        let row = auth.store().get_connection(USER, PROVIDER).await?;
        black_box(row.context("the bench user has no connection")?);
        grant_call().await
    };
    let baseline_call = async || worker_request_len(&tool, None);

    // The grant path must carry a token (a longer body), and must not refresh mid-run.
    if grant_call().await? <= baseline_call().await? {
        bail!("the grant loop's worker request carries no token");
    }
    let version = async || -> anyhow::Result<i64> {
        let row = auth.store().get_connection(USER, PROVIDER).await?;
        Ok(row.context("the bench user has no connection")?.version)
    };
    let version_before = version().await?;

    let warmup = (calls / 10).max(1000);
    measure("warm-up", warmup, &baseline_call).await?;
    measure("warm-up", warmup, &grant_call).await?;
    let baseline = measure("no grant (baseline)", calls, &baseline_call).await?;
    let grant = measure("grant, connection cache", calls, &grant_call).await?;
    let uncached = measure("grant + store read (cache miss)", calls, &uncached_call).await?;
    if version().await? != version_before {
        bail!("the connection was refreshed during the run; the figures include a refresh");
    }
    print_report(&baseline, &[&grant, &uncached])
}

/// Builds and serializes the worker request as `Executor::dispatch` does, then drops it
/// (and the grant with it); returns the body length so nothing is optimised away.
fn worker_request_len(tool: &ToolEntry, grant: Option<&Grant>) -> anyhow::Result<usize> {
    let execution_id = uuid::Uuid::now_v7().to_string();
    let created_at = chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let empty = json!({});
    let inputs = Map::new();
    let request = ToolCallRequestRef {
        run_id: None,
        execution_id: Some(&execution_id),
        created_at: Some(&created_at),
        tool: ToolReferenceRef {
            name: &tool.definition.name,
            toolkit: &tool.toolkit,
            version: tool.version.as_deref(),
        },
        inputs: &inputs,
        context: ToolContextRef {
            authorization: grant.map(|g| ToolAuthorizationContextRef {
                token: Some(g.token.expose()),
                user_info: Some(g.user_info.as_ref().unwrap_or(&empty)),
            }),
            secrets: &[],
            metadata: &[],
            user_id: Some(USER),
        },
    };
    Ok(black_box(serde_json::to_vec(&request)?).len())
}

/// Runs `call` `calls` times; per-call wall time from `Instant` deltas, CPU of the whole
/// process (every thread) from before/after.
async fn measure<F>(label: &'static str, calls: usize, mut call: F) -> anyhow::Result<Stats>
where
    F: AsyncFnMut() -> anyhow::Result<usize>,
{
    let mut samples = Vec::with_capacity(calls);
    let cpu_before = process_cpu_ns()?;
    for _ in 0..calls {
        let started = Instant::now();
        black_box(call().await?);
        samples.push(started.elapsed().as_nanos() as u64);
    }
    let cpu_ns = process_cpu_ns()?.saturating_sub(cpu_before);
    let mean_ns = samples.iter().sum::<u64>() as f64 / calls as f64;
    samples.sort_unstable();
    let at = |q: f64| samples[((calls as f64 * q) as usize).min(calls - 1)];
    Ok(Stats {
        label,
        calls,
        mean_ns,
        p50_ns: at(0.50),
        p99_ns: at(0.99),
        cpu_ns,
    })
}

/// CPU time of every thread of this process: the first field (ns on CPU) of each
/// `/proc/self/task/*/schedstat`. Threads that exit between two readings drop out.
fn process_cpu_ns() -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let path = task?.path().join("schedstat");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            // The thread exited after the directory was listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| path.display().to_string()),
        };
        let first = text.split_whitespace().next().unwrap_or("0");
        total += first
            .parse::<u64>()
            .with_context(|| format!("{}: {text:?}", path.display()))?;
    }
    Ok(total)
}

fn print_report(baseline: &Stats, grants: &[&Stats]) -> anyhow::Result<()> {
    let us = |ns: f64| ns / 1000.0;
    println!(
        "| Loop | Calls | Wall mean (µs/call) | Wall p50 (µs) | Wall p99 (µs) | Process CPU (µs/call) | Added CPU vs baseline (µs/call) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for s in std::iter::once(baseline).chain(grants.iter().copied()) {
        let added = if std::ptr::eq(s, baseline) {
            "—".to_string()
        } else {
            format!("{:.2}", s.cpu_us() - baseline.cpu_us())
        };
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {added} |",
            s.label,
            s.calls,
            us(s.mean_ns),
            us(s.p50_ns as f64),
            us(s.p99_ns as f64),
            s.cpu_us(),
        );
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo")?;
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim());
    println!();
    println!(
        "Machine: {cpus} CPUs (`nproc`), {model}. Current-thread tokio runtime; process CPU is \
         the sum over every thread of `/proc/self/task/*/schedstat` (the SQLite worker thread included)."
    );
    Ok(())
}

/// Starts the Demo worker and a gateway in `dir`, connects [`USER`] to the sandbox through
/// the real flow, stops both servers, and returns the executor's `AuthService` and the
/// catalog entry of [`TOOL`].
async fn connected_gateway(
    dir: &std::path::Path,
) -> anyhow::Result<(Arc<AuthService>, Arc<ToolEntry>)> {
    switchboard::tls::install_crypto_provider();
    let worker_listener = TcpListener::bind("127.0.0.1:0").await?;
    let gateway_listener = TcpListener::bind("127.0.0.1:0").await?;
    let worker_url = format!("http://{}", worker_listener.local_addr()?);
    let gateway_url = format!("http://{}", gateway_listener.local_addr()?);

    let worker = switchboard_tdk::Worker::new(WORKER_SECRET).toolkit(demo_worker::toolkit(
        &format!("{gateway_url}/sandbox/api"),
        reqwest::Client::new(),
    ));
    let (stop_worker, stopped) = oneshot::channel::<()>();
    let worker_task = tokio::spawn(worker.serve(worker_listener, async move {
        let _ = stopped.await;
    }));

    let mut config = config::defaults(dir);
    config.api.development = true;
    config.api.public_url = gateway_url.clone();
    config.builtin_toolkit = false;
    config.workers = vec![WorkerConfig {
        id: "demo".into(),
        enabled: true,
        director: None,
        uri: worker_url,
        secret: Some(SecretValue::new(WORKER_SECRET)),
        timeout: Duration::from_secs(5),
        retry: 1,
    }];
    config.auth_providers = vec![AuthProviderConfig {
        id: PROVIDER.into(),
        description: None,
        enabled: true,
        provider_type: "oauth2".into(),
        provider_id: Some(PROVIDER.into()),
        client_id: None,
        client_secret: None,
        extra: json!({"token_lifetime": "24h"}),
    }];
    let gateway = Gateway::start(config).await?;
    let auth = gateway.state.executor.auth().clone();
    let tool = gateway.registry.catalog().snapshot().resolve(TOOL, None)?;
    let key = generate_key("grant-cost-bench", chrono::Utc::now().timestamp_millis());
    gateway.state.store.insert_api_key(&key.record).await?;
    let (stop_gateway, stopped) = oneshot::channel::<()>();
    let gateway_task = tokio::spawn(gateway.serve(gateway_listener, async move {
        let _ = stopped.await;
    }));

    connect_sandbox_user(&gateway_url, &key.plaintext).await?;

    let _ = stop_gateway.send(());
    let _ = stop_worker.send(());
    tokio::time::timeout(Duration::from_secs(10), gateway_task)
        .await
        .context("the gateway did not stop")???;
    tokio::time::timeout(Duration::from_secs(10), worker_task)
        .await
        .context("the worker did not stop")???;
    Ok((auth, tool))
}

/// Plays the browser: `POST /v1/auth/authorize` → the short link (303 to the sandbox) →
/// the consent form with Allow (303 to the callback) → `/v1/oauth/callback`, then checks
/// `/v1/auth/status` says `completed`.
async fn connect_sandbox_user(gateway_url: &str, key: &str) -> anyhow::Result<()> {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let res = browser
        .post(format!("{gateway_url}/v1/auth/authorize"))
        .bearer_auth(key)
        .json(&json!({
            "auth_requirement": {"provider_id": PROVIDER, "oauth2": {"scopes": ["profile"]}},
            "user_id": USER,
        }))
        .send()
        .await?;
    let status = res.status();
    let flow: serde_json::Value = res.json().await?;
    if !status.is_success() {
        bail!("POST /v1/auth/authorize answered {status}: {flow}");
    }
    let link = flow["url"]
        .as_str()
        .context("the authorize reply has no url")?;
    let consent = redirect_target(&browser.get(link).send().await?, "the short link")?;
    let page = browser.get(consent.clone()).send().await?;
    if !page.status().is_success() {
        bail!("the consent page answered {}", page.status());
    }
    // The form's hidden fields are the authorize request's parameters.
    let mut form: Vec<(String, String)> = consent.query_pairs().into_owned().collect();
    form.push(("username".into(), USER.into()));
    form.push(("decision".into(), "allow".into()));
    let mut action = consent.clone();
    action.set_query(None);
    let callback = redirect_target(
        &browser.post(action).form(&form).send().await?,
        "the consent form",
    )?;
    let res = browser.get(callback).send().await?;
    if !res.status().is_success() {
        bail!("the OAuth callback answered {}", res.status());
    }
    let id = flow["id"]
        .as_str()
        .context("the authorize reply has no id")?;
    let done: serde_json::Value = browser
        .get(format!("{gateway_url}/v1/auth/status"))
        .query(&[("id", id), ("wait", "5")])
        .bearer_auth(key)
        .send()
        .await?
        .json()
        .await?;
    if done["status"] != "completed" {
        bail!("the flow did not complete: {}", done["status"]);
    }
    Ok(())
}

/// The `Location` of a 3xx answer, resolved against the request URL.
fn redirect_target(res: &reqwest::Response, what: &str) -> anyhow::Result<reqwest::Url> {
    if !res.status().is_redirection() {
        bail!("{what} answered {} instead of a redirect", res.status());
    }
    let location = res
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .with_context(|| format!("{what} redirected without a Location"))?;
    Ok(res.url().join(location)?)
}
