//! `switchboard serve`: print where everything is, serve until SIGINT/SIGTERM, then let
//! in-flight calls finish.
//!
//! Owns the process around the gateway: logging set-up, SIGINT/SIGTERM, the open-file
//! limit, `--host`/`--port`/`--threads`, the listeners (one per thread, `SO_REUSEPORT`)
//! and the startup summary on stdout.
//! Must not: build the gateway's parts (that is `server::Gateway::start`) or serve
//! connections (that is `http_server`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use super::LoadedConfig;
use crate::config::StorageConfig;
use crate::server::Gateway;
use crate::telemetry;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen on this address instead of api.host.
    #[arg(long)]
    pub host: Option<String>,
    /// Listen on this port instead of api.port (0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
    /// Threads serving requests, each with its own listener on the address (default:
    /// one per CPU).
    #[arg(long, env = "SWITCHBOARD_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

pub async fn run(loaded: LoadedConfig, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let LoadedConfig {
        mut config,
        warnings,
    } = loaded;
    telemetry::init(&config.telemetry.level, &config.telemetry.encoding);
    let stop = shutdown_signal().context("could not listen for SIGINT and SIGTERM")?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    // Before anything opens a file: the connection cap is worked out from this limit.
    raise_descriptor_limit();
    if let Some(host) = args.host {
        config.api.host = host;
    }
    if let Some(port) = args.port {
        config.api.port = port;
    }
    let bind = format!("{}:{}", config.api.host, config.api.port);
    let threads = args.threads.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let (listener, shards) = listen(&bind, threads)
        .await
        .with_context(|| format!("could not listen on {bind}"))?;
    let addr = listener
        .local_addr()
        .context("listener has no local address")?;

    let source = config
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults (no config file found)".into());
    let storage = match &config.storage {
        StorageConfig::Sqlite { path } => format!("sqlite {}", path.display()),
        StorageConfig::Postgres { .. } => "postgres".to_string(),
    };
    let development = config.api.development;
    let scheme = if config.api.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let gateway = Gateway::start(config).await?;

    let host = if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    };
    let base = format!("{scheme}://{host}:{}", addr.port());
    println!(
        "Switchboard {} listening on {addr}",
        env!("CARGO_PKG_VERSION")
    );
    println!("  config    {source}");
    println!("  storage   {storage}");
    println!("  REST API  {base}/v1");
    println!(
        "  MCP       {base}/v1/mcps/{{user_id}}/mcp  (also {base}/mcp/{{gateway}} and {base}/mcp)"
    );
    for w in gateway.registry.workers() {
        let status = w.status();
        let state = if !w.config.enabled {
            "disabled".to_string()
        } else if status.healthy {
            format!("healthy, {} tools", status.tools.len())
        } else {
            format!("unreachable: {}", status.message)
        };
        println!("  worker    {} ({state})", w.config.id);
    }
    for u in gateway.registry.upstreams() {
        let status = u.status();
        let state = if !u.config.enabled {
            "disabled".to_string()
        } else if status.healthy {
            format!("reachable, {} tools", status.tools.len())
        } else {
            format!("unreachable: {}", status.message)
        };
        println!("  upstream  {} {} ({state})", u.config.id, u.config.uri);
    }
    println!(
        "  tools     {}",
        gateway.registry.catalog().snapshot().len()
    );
    if development {
        let banner = "DEV MODE: requests from loopback addresses need no API key, and workers without a secret use 'dev'. Do not expose this gateway.";
        println!("\n  !!! {banner}\n");
        tracing::warn!("{banner}");
    }
    gateway
        .serve_sharded(listener, shards, stop)
        .await
        .context("server error")?;
    println!("Switchboard stopped");
    Ok(ExitCode::SUCCESS)
}

/// `threads` listeners on `bind`, all with `SO_REUSEPORT` so the kernel spreads new
/// connections over them; the first is for the calling runtime, the others are handed
/// to their own threads.
///
/// The address is first bound once without `SO_REUSEPORT`, so a port another process
/// holds is an error as usual (with the option alone, a second gateway started by
/// mistake would silently share the port); that also resolves port 0.
async fn listen(
    bind: &str,
    threads: usize,
) -> std::io::Result<(TcpListener, Vec<std::net::TcpListener>)> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(bind).await? {
        let probe = match TcpListener::bind(addr).await {
            Ok(probe) => probe,
            Err(e) => {
                last_error = Some(e);
                continue;
            }
        };
        // `SO_REUSEPORT` is a Unix socket option; elsewhere one thread serves.
        if threads <= 1 || cfg!(not(unix)) {
            if threads > 1 {
                tracing::warn!("several serving threads need SO_REUSEPORT (Unix); serving on one");
            }
            return Ok((probe, Vec::new()));
        }
        let addr = probe.local_addr()?;
        drop(probe);
        let first = bind_reuseport(addr)?;
        let mut shards = Vec::with_capacity(threads - 1);
        for _ in 1..threads {
            shards.push(bind_reuseport(addr)?.into_std()?);
        }
        return Ok((first, shards));
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

fn bind_reuseport(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit: the default soft limit (often 1024)
/// is far below what a gateway serving many clients needs, and the hard limit is what the
/// operator allows.
fn raise_descriptor_limit() {
    match crate::http_server::raise_descriptor_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!(before, after, "raised the open-file limit (RLIMIT_NOFILE)");
        }
        Ok((_, limit)) => tracing::debug!(limit, "open-file limit (RLIMIT_NOFILE)"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// Listens for SIGINT and SIGTERM from the moment it is called, and resolves on either.
/// Called first thing in `serve`, so a signal that arrives while the gateway is still
/// starting stops it cleanly once it serves, instead of killing the process.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        stopping();
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        stopping();
    })
}

fn stopping() {
    tracing::info!("shutting down: no new requests; waiting for calls in flight");
}
