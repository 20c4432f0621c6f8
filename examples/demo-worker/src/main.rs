//! `demo-worker`: serves the Demo toolkit over Arcade's worker protocol.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use switchboard_tdk::Worker;

#[derive(Parser)]
#[command(
    name = "demo-worker",
    version,
    about = "An example Switchboard worker (the Demo toolkit)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one; the real port is printed).
    #[arg(long, default_value_t = 8002)]
    port: u16,
    /// The secret the engine signs its worker tokens with.
    #[arg(long, env = "ARCADE_WORKER_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Without a secret, use "dev" (for local experiments only).
    #[arg(long)]
    dev: bool,
    /// Base URL of the sandbox OAuth provider's API (`/me` lives below it).
    #[arg(long, env = "DEMO_API_BASE_URL", default_value = demo_worker::DEFAULT_API_BASE_URL)]
    api_base_url: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // reqwest is built without a TLS provider of its own; `Err` means one is already set.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let secret = match (args.secret.filter(|s| !s.is_empty()), args.dev) {
        (Some(secret), _) => secret,
        (None, true) => "dev".to_owned(),
        (None, false) => anyhow::bail!(
            "no worker secret: pass --secret or set ARCADE_WORKER_SECRET (or --dev to use \"dev\")"
        ),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let worker = Worker::new(secret).toolkit(demo_worker::toolkit(&args.api_base_url, http));

    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    println!("demo-worker listening on http://{addr}");
    tracing::info!(tools = worker.tool_count(), api_base_url = %args.api_base_url, "serving the Demo toolkit");
    worker
        .serve(listener, shutdown_signal())
        .await
        .context("serving")?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down; letting in-flight calls finish");
}
