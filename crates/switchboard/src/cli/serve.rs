//! `switchboard serve`: print where everything is, serve until SIGINT/SIGTERM, then let
//! in-flight calls finish.

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
}

pub async fn run(loaded: LoadedConfig, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let LoadedConfig {
        mut config,
        warnings,
    } = loaded;
    telemetry::init(&config.telemetry.level, &config.telemetry.encoding);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if let Some(host) = args.host {
        config.api.host = host;
    }
    if let Some(port) = args.port {
        config.api.port = port;
    }
    let bind = format!("{}:{}", config.api.host, config.api.port);
    let listener = TcpListener::bind(&bind)
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
    let gateway = Gateway::start(config).await?;

    let host = if addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        addr.ip().to_string()
    };
    let base = format!("http://{host}:{}", addr.port());
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
        .serve(listener, shutdown_signal())
        .await
        .context("server error")?;
    println!("Switchboard stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
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
    tracing::info!("shutting down: no new requests; waiting for calls in flight");
}
