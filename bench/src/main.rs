//! `switchboard-bench`: REST execute and MCP tools/call through the gateway versus straight
//! to a TDK worker and through `bare-proxy` (the floor of any HTTP/1.1 hop), at several
//! concurrencies, with the CPU per call of the process in front of the worker. Its targets
//! are ratios against the bare proxy in the same run. Prints Markdown for BENCHMARKS.md. A
//! report, not a test: it exits 0 when targets are missed.

mod load;
mod procs;
mod report;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

use load::{Env, Phase, Target};
use procs::{Machine, Proc};
use report::{CpuTicks, IdleSessions, PhaseResult, Report};

#[derive(Parser)]
#[command(
    name = "switchboard-bench",
    about = "Gateway versus direct worker calls"
)]
struct Args {
    /// Measured requests per phase at concurrency ≥ 16; concurrency 1 runs a quarter.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Divide every request count by 10.
    #[arg(long)]
    quick: bool,
    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Measured rounds per phase; their order alternates to cancel drift.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Where `switchboard`, `demo-worker` and `bare-proxy` are (default: beside this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Extra environment for the gateway process only, KEY=VALUE, repeatable (for
    /// experiments, e.g. TOKIO_WORKER_THREADS=1 or LD_PRELOAD=libjemalloc.so.2).
    #[arg(long, value_parser = parse_env_pair)]
    gateway_env: Vec<(String, String)>,
    /// Run the gateway with `execution_logging.enabled: false` (to see what the log costs).
    #[arg(long)]
    no_execution_log: bool,
    /// `execution_logging.write_batch_size` for the gateway (default: the gateway's own).
    #[arg(long)]
    execution_log_batch: Option<usize>,
    /// Idle legacy MCP sessions opened after the phases to measure their memory (0: skip).
    #[arg(long, default_value_t = 10_000)]
    idle_sessions: usize,
    /// The gateway's `api.mcp_session_keep_alive`, in seconds: how long an idle session
    /// stays live in memory before it is parked in the store. The idle-session memory is
    /// read while the sessions are live and again once they are parked.
    #[arg(long, default_value_t = 60)]
    mcp_session_keep_alive: u64,
    /// Run only these phases (ids, comma-separated; default: all), e.g. to profile one.
    #[arg(long, value_delimiter = ',')]
    phases: Vec<String>,
    /// Run `bare-proxy` on a current-thread tokio runtime (default: multi-thread, like the
    /// gateway).
    #[arg(long)]
    proxy_current_thread: bool,
}

fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    // reqwest is built without a TLS provider of its own; `Err` means one is already set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.concurrency.contains(&0) || args.rounds == 0 {
        bail!("--concurrency values and --rounds must be at least 1");
    }

    let bin_dir = match args.bin_dir.clone() {
        Some(d) => d,
        None => std::env::current_exe()
            .context("locating this program")?
            .parent()
            .context("this program has no directory")?
            .to_path_buf(),
    };
    let phases = selected_phases(&args.phases)?;
    let bins = Bins {
        gateway: bin_dir.join("switchboard"),
        worker: bin_dir.join("demo-worker"),
        // Started only when a selected phase goes through it.
        proxy: phases
            .iter()
            .any(|p| p.target == Target::BareProxy)
            .then(|| bin_dir.join("bare-proxy")),
    };
    for bin in [Some(&bins.gateway), Some(&bins.worker), bins.proxy.as_ref()]
        .into_iter()
        .flatten()
    {
        if !bin.is_file() {
            bail!(
                "{} not found; build it first: cargo build --release -p switchboard \
                 -p demo-worker -p switchboard-bench",
                bin.display()
            );
        }
    }

    let dir = std::env::temp_dir().join(format!("switchboard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = bench(&args, &bins, phases, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The phases `--phases` keeps (all when it is empty), in `load::phases()` order.
fn selected_phases(ids: &[String]) -> anyhow::Result<Vec<Phase>> {
    let mut phases = load::phases();
    if ids.is_empty() {
        return Ok(phases);
    }
    phases.retain(|p| ids.iter().any(|id| id == p.id));
    if phases.is_empty() {
        bail!(
            "--phases matched none of: {}",
            load::phases()
                .iter()
                .map(|p| p.id)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(phases)
}

/// The programs under test; `proxy` is `None` when no selected phase needs `bare-proxy`.
struct Bins {
    gateway: PathBuf,
    worker: PathBuf,
    proxy: Option<PathBuf>,
}

/// Starts the processes, runs every phase, prints the report. The `Proc` guards kill the
/// children when this returns, on success or error.
async fn bench(args: &Args, bins: &Bins, phases: Vec<Phase>, dir: &Path) -> anyhow::Result<()> {
    let machine = Machine::read();
    let clk_tck = procs::clock_ticks_per_sec();
    let secret = random_hex();

    let root_key = random_hex();
    // Chosen first: the worker's `Demo.TokenFingerprint`/`WhoAmI` need the sandbox API's
    // address, which lives on the gateway.
    let port = free_port()?;

    eprintln!("starting demo-worker…");
    let mut cmd = Command::new(&bins.worker);
    cmd.args(["--host", "127.0.0.1", "--port", "0", "--api-base-url"])
        .arg(format!("http://127.0.0.1:{port}/sandbox/api"))
        .env("ARCADE_WORKER_SECRET", &secret)
        .env("RUST_LOG", "warn");
    let mut worker = Proc::spawn("demo-worker", cmd, dir.join("worker.log"))?;
    let worker_url = worker
        .wait_for_line("demo-worker listening on ", Duration::from_secs(15))?
        .trim_end_matches('/')
        .to_owned();

    let mut proxy = match &bins.proxy {
        Some(bin) => {
            eprintln!("starting bare-proxy…");
            let mut cmd = Command::new(bin);
            cmd.arg("--upstream")
                .arg(&worker_url)
                .env("ARCADE_WORKER_SECRET", &secret);
            if args.proxy_current_thread {
                cmd.arg("--current-thread");
            }
            let mut p = Proc::spawn("bare-proxy", cmd, dir.join("proxy.log"))?;
            let url = p
                .wait_for_line("bare-proxy listening on ", Duration::from_secs(15))?
                .trim_end_matches('/')
                .to_owned();
            Some((p, url))
        }
        None => None,
    };

    let config = dir.join("engine.yaml");
    // The idle sessions are one user's through one key: the caps must leave room for them
    // and for the session phases' own.
    let max_sessions = args.idle_sessions + 1_000;
    let mut yaml = gateway_config(
        port,
        dir,
        &worker_url,
        args.mcp_session_keep_alive,
        max_sessions,
    );
    if args.no_execution_log {
        yaml.push_str("execution_logging:\n  enabled: false\n");
    } else if let Some(n) = args.execution_log_batch {
        yaml.push_str(&format!("execution_logging:\n  write_batch_size: {n}\n"));
    }
    std::fs::write(&config, yaml).with_context(|| format!("writing {}", config.display()))?;
    let api_key = create_key(&bins.gateway, &config, &secret, &root_key)?;

    eprintln!("starting the gateway…");
    let worker_secret = secret.clone();
    let gateway_cmd = || {
        let mut cmd = Command::new(&bins.gateway);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env("BENCH_WORKER_SECRET", &worker_secret)
            .env("BENCH_ROOT_KEY", &root_key);
        cmd.envs(args.gateway_env.iter().map(|(k, v)| (k, v)));
        cmd
    };
    let mut gateway = Proc::spawn("switchboard", gateway_cmd(), dir.join("gateway.log"))?;
    let gateway_url = format!("http://127.0.0.1:{port}");

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    wait_ready(&client, &mut gateway, &gateway_url, &api_key).await?;
    eprintln!("connecting the bench user's sandbox account…");
    connect_sandbox_user(&gateway_url, &api_key, load::BENCH_USER)
        .await
        .with_context(|| format!("gateway log:\n{}", procs::log_tail(&gateway.log)))?;

    let proxy_url = proxy.as_ref().map(|(_, url)| url.clone());
    let env = Arc::new(Env::new(
        client,
        gateway_url,
        worker_url,
        proxy_url,
        api_key,
        secret,
    ));
    if phases.iter().any(|p| p.id == load::MCP_SESSION_GRANT) {
        // As many sessions as the largest concurrency: like that many clients, each with
        // its own session, none idle long enough to be parked.
        let count = args.concurrency.iter().copied().max().unwrap_or(1);
        let sessions = load::open_phase_sessions(&env, count)
            .await
            .context("opening the session-era phase's MCP sessions")?;
        let _ = env.mcp_sessions.set(sessions);
    }
    let pids = Pids {
        gateway: gateway.pid().to_string(),
        proxy: proxy.as_ref().map(|(p, _)| p.pid().to_string()),
        worker: worker.pid().to_string(),
    };

    let mut results = Vec::new();
    for &c in &args.concurrency {
        let mut count = if c == 1 {
            args.requests / 4
        } else {
            args.requests
        };
        if args.quick {
            count /= 10;
        }
        let count = count.max(c).max(args.rounds);
        let warmup = (count / 10).max(200).max(4 * c);
        for phase in &phases {
            eprintln!("c={c}: warming up {}…", phase.id);
            let batch = load::run_batch(&env, phase, c, warmup).await?;
            load::ensure_clean(phase, &batch)?;
        }
        let mut merged: Vec<PhaseResult> = (0..phases.len())
            .map(|i| PhaseResult {
                phase: i,
                concurrency: c,
                latencies_ns: Vec::with_capacity(count),
                errors: 0,
                elapsed: Duration::ZERO,
                cpu: CpuTicks::default(),
            })
            .collect();
        for round in 0..args.rounds {
            let per_round = count / args.rounds + usize::from(round < count % args.rounds);
            let mut order: Vec<usize> = (0..phases.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                eprintln!(
                    "c={c}: round {}/{}: {} × {per_round}",
                    round + 1,
                    args.rounds,
                    phases[i].id
                );
                gateway.ensure_running()?;
                worker.ensure_running()?;
                if let Some((p, _)) = &mut proxy {
                    p.ensure_running()?;
                }
                let (batch, cpu) = measure(&env, &phases[i], c, per_round, &pids).await?;
                let m = &mut merged[i];
                m.latencies_ns.extend(batch.latencies_ns);
                m.errors += batch.errors;
                m.elapsed += batch.elapsed;
                m.cpu += cpu;
                if batch.errors > 0 {
                    eprintln!(
                        "  {} errors; first: {}",
                        batch.errors,
                        batch.first_error.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        for mut m in merged {
            m.latencies_ns.sort_unstable();
            results.push(m);
        }
    }

    if std::fs::read_to_string(&gateway.log).is_ok_and(|l| l.contains("records dropped")) {
        eprintln!(
            "warning: the gateway dropped execution records (buffer full); its CPU per call \
             is understated"
        );
    }
    gateway.ensure_running()?;
    let gateway_peak_rss_kib = procs::peak_rss_kib(gateway.pid());
    let idle = if args.idle_sessions > 0 {
        // On a fresh gateway: after the load phases the heap holds megabytes of freed
        // memory that sessions fill without growing RSS (the figure came out negative).
        // A fresh process counts everything the sessions cause (pool connections, SQLite
        // page cache, first allocations), so the figure is an upper bound.
        eprintln!("restarting the gateway for the idle-session measurement…");
        drop(gateway);
        gateway = Proc::spawn(
            "switchboard",
            gateway_cmd(),
            dir.join("gateway-sessions.log"),
        )?;
        wait_ready(&env.client, &mut gateway, &env.gateway_url, &env.api_key).await?;
        let keep_alive = Duration::from_secs(args.mcp_session_keep_alive);
        Some(
            idle_sessions(
                &env,
                gateway.pid(),
                &dir.join("sb.db"),
                args.idle_sessions,
                keep_alive,
            )
            .await?,
        )
    } else {
        None
    };

    let report = Report {
        machine: &machine,
        phases: &phases,
        results: &results,
        clk_tck,
        rounds: args.rounds,
        gateway_env: &args.gateway_env,
        execution_log: !args.no_execution_log,
        gateway_peak_rss_kib,
        worker_peak_rss_kib: procs::peak_rss_kib(worker.pid()),
        proxy_runtime: proxy.as_ref().map(|_| {
            if args.proxy_current_thread {
                "current-thread"
            } else {
                "multi-thread"
            }
        }),
        proxy_peak_rss_kib: proxy
            .as_ref()
            .and_then(|(p, _)| procs::peak_rss_kib(p.pid())),
        idle: idle.as_ref(),
    };
    println!("{}", report.markdown());
    Ok(())
}

/// `/proc` ids of the processes whose CPU is read around each batch.
struct Pids {
    gateway: String,
    proxy: Option<String>,
    worker: String,
}

fn cpu_now(pids: &Pids) -> anyhow::Result<CpuTicks> {
    Ok(CpuTicks {
        gateway: procs::cpu_ticks(&pids.gateway)?,
        proxy: match &pids.proxy {
            Some(pid) => procs::cpu_ticks(pid)?,
            None => 0,
        },
        worker: procs::cpu_ticks(&pids.worker)?,
        load: procs::cpu_ticks("self")?,
    })
}

/// One measured batch and the CPU each process spent on it. After the batch, waits past
/// the gateway's execution-log batch timeout (200 ms) so the writes the batch caused are
/// counted with it, not with the next phase.
async fn measure(
    env: &Arc<Env>,
    phase: &Phase,
    concurrency: usize,
    count: usize,
    pids: &Pids,
) -> anyhow::Result<(load::Batch, CpuTicks)> {
    let before = cpu_now(pids)?;
    let batch = load::run_batch(env, phase, concurrency, count).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = cpu_now(pids)? - before;
    Ok((batch, cpu))
}

/// The gateway's VmRSS before and after opening `count` idle legacy sessions (16 at a
/// time): 2 s after the last one opened (live in memory), and again 5 s after the
/// keep-alive has passed (parked in the store).
async fn idle_sessions(
    env: &Arc<Env>,
    gateway_pid: u32,
    db: &Path,
    count: usize,
    keep_alive: Duration,
) -> anyhow::Result<IdleSessions> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = procs::rss_kib(gateway_pid).context("reading the gateway's VmRSS")?;
    let db_before = sqlite_bytes(db);
    eprintln!("opening {count} idle legacy MCP sessions…");
    let s = load::open_legacy_sessions(env, count, 16).await?;
    if s.errors > 0 {
        eprintln!(
            "  {} sessions failed; first: {}",
            s.errors,
            s.first_error.as_deref().unwrap_or("?")
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = procs::rss_kib(gateway_pid).context("reading the gateway's VmRSS")?;
    let db_after = sqlite_bytes(db);
    let parked_wait = (keep_alive + Duration::from_secs(5)).saturating_sub(Duration::from_secs(2));
    eprintln!(
        "waiting {:.0} s for the sessions to pass the keep-alive…",
        parked_wait.as_secs_f64()
    );
    tokio::time::sleep(parked_wait).await;
    let parked = procs::rss_kib(gateway_pid).context("reading the gateway's VmRSS")?;
    Ok(IdleSessions {
        keep_alive,
        rss_parked_kib: parked,
        db_before_bytes: db_before,
        db_after_bytes: db_after,
        opened: s.opened,
        errors: s.errors,
        elapsed: s.elapsed,
        rss_before_kib: before,
        rss_after_kib: after,
    })
}

/// Sizes of the SQLite database file and of its WAL: where the sessions actually live.
fn sqlite_bytes(db: &Path) -> (u64, u64) {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    (len(db), len(Path::new(&wal)))
}

/// The gateway's engine.yaml. The worker secret and root key come from the environment so
/// they are not written to disk. Dev mode, because the sandbox OAuth server (the grant
/// phase's provider) only runs there; every request still carries the API key, which dev
/// mode checks like any other. The sandbox token lives 24 h so no refresh happens mid-run.
fn gateway_config(
    port: u16,
    dir: &Path,
    worker_url: &str,
    keep_alive_s: u64,
    max_sessions: usize,
) -> String {
    format!(
        "api:\n  host: 127.0.0.1\n  port: {port}\n  development: true\n  \
         public_url: http://127.0.0.1:{port}\n  mcp_session_keep_alive: {keep_alive_s}s\n  \
         mcp_max_sessions: {max_sessions}\n  mcp_max_sessions_per_user: {max_sessions}\n\
         storage:\n  sqlite:\n    path: {db}\n\
         security:\n  root_keys:\n    - {{id: bench, default: true, value: \"${{env:BENCH_ROOT_KEY}}\"}}\n\
         auth:\n  providers:\n    - {{id: sandbox, type: oauth2, provider_id: sandbox, \
         client_id: sandbox-client, token_lifetime: 24h}}\n\
         telemetry:\n  logging:\n    level: warn\n    encoding: text\n\
         workers:\n  - id: demo\n    enabled: true\n    http:\n      uri: \"{worker_url}\"\n      \
         secret: ${{env:BENCH_WORKER_SECRET}}\n      timeout: 30s\n      retry: 1\n",
        db = dir.join("sb.db").display(),
    )
}

/// `switchboard keys create`: the key is alone on the last line of stdout.
fn create_key(
    gateway_bin: &Path,
    config: &Path,
    secret: &str,
    root_key: &str,
) -> anyhow::Result<String> {
    let out = Command::new(gateway_bin)
        .args(["keys", "create", "--name", "bench", "--config"])
        .arg(config)
        .env("BENCH_WORKER_SECRET", secret)
        .env("BENCH_ROOT_KEY", root_key)
        .output()
        .context("running switchboard keys create")?;
    if !out.status.success() {
        bail!(
            "switchboard keys create failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8(out.stdout).context("keys create printed non-UTF-8")?;
    stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .context("switchboard keys create printed no key")
}

/// Waits for `/v1/health`, then for the Demo toolkit to be in the catalog.
async fn wait_ready(
    client: &reqwest::Client,
    gateway: &mut Proc,
    url: &str,
    key: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut healthy = false;
    loop {
        gateway.ensure_running()?;
        if !healthy {
            healthy = client
                .get(format!("{url}/v1/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
        }
        if healthy {
            let res = client
                .get(format!("{url}/v1/tools/Demo.Echo"))
                .bearer_auth(key)
                .send()
                .await;
            if res.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the gateway was not ready with Demo.Echo within 30 s (healthy: {healthy}); its log:\n{}",
                procs::log_tail(&gateway.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connects `user`'s sandbox account through the real flow, playing the browser:
/// `POST /v1/auth/authorize` → the short link (303 to the sandbox) → the consent page →
/// the consent form with Allow (303 to the callback) → `/v1/oauth/callback`.
async fn connect_sandbox_user(gateway_url: &str, key: &str, user: &str) -> anyhow::Result<()> {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the browser client")?;
    let res = browser
        .post(format!("{gateway_url}/v1/auth/authorize"))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "auth_requirement": {"provider_id": "sandbox", "oauth2": {"scopes": ["profile"]}},
            "user_id": user,
        }))
        .send()
        .await
        .context("POST /v1/auth/authorize")?;
    let status = res.status();
    let flow: serde_json::Value = res.json().await.context("authorize reply")?;
    if !status.is_success() {
        bail!("POST /v1/auth/authorize answered {status}: {flow}");
    }
    if flow["status"] == "completed" {
        return Ok(());
    }
    let link = flow["url"]
        .as_str()
        .context("the authorize reply has no url")?;
    let consent = redirect_target(&browser.get(link).send().await?, "the short link")?;

    let res = browser.get(consent.clone()).send().await?;
    if !res.status().is_success() {
        bail!("the consent page answered {}", res.status());
    }
    // The form's hidden fields are the authorize request's parameters, as a browser sends them.
    let mut form: Vec<(String, String)> = consent.query_pairs().into_owned().collect();
    form.push(("username".into(), "bench".into()));
    form.push(("decision".into(), "allow".into()));
    let mut action = consent.clone();
    action.set_query(None);
    let res = browser.post(action).form(&form).send().await?;
    let callback = redirect_target(&res, "the consent form")?;

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
        .await
        .context("auth status reply")?;
    if done["status"] != "completed" {
        bail!("the flow did not complete: {done}");
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
    res.url()
        .join(location)
        .with_context(|| format!("{what} redirected to a bad URL"))
}

/// A free loopback port (released just before the gateway binds it).
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// 128 random bits as hex, from the standard library's randomly seeded hasher.
fn random_hex() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(Instant::now().elapsed().as_nanos());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}
