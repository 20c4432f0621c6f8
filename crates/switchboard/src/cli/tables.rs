//! `switchboard worker list` and `tools list`: probe the configured workers and upstream
//! MCP servers directly (the same clients and registry `serve` uses), so they work with or
//! without a running gateway.
//!
//! Owns these two tables only.
//! Must not: talk to a running gateway or write to the store: the probe is a fresh
//! registry's, and its result is printed and dropped.

use std::process::ExitCode;
use std::sync::Arc;

use comfy_table::Table;

use super::LoadedConfig;
use crate::builtin;
use crate::catalog::CatalogHandle;
use crate::server::upstream_handles;
use crate::workers::{WorkerHttp, WorkerRegistry};

async fn registry(loaded: &LoadedConfig) -> anyhow::Result<WorkerRegistry> {
    let config = &loaded.config;
    let builtin_tools = if config.builtin_toolkit {
        builtin::definitions()
    } else {
        Vec::new()
    };
    let registry = WorkerRegistry::new(
        &config.workers,
        config.api.development,
        WorkerHttp::new()?,
        builtin_tools,
        Arc::new(CatalogHandle::default()),
    )?
    .with_upstreams(upstream_handles(config)?);
    registry.refresh_all().await;
    registry.close_upstreams().await;
    Ok(registry)
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    t
}

/// One row per worker, then one per upstream MCP server. With upstreams configured, the
/// table gains `Type` (`http` or `mcp`) and `URI` columns.
pub async fn worker_list(loaded: LoadedConfig) -> anyhow::Result<ExitCode> {
    let registry = registry(&loaded).await?;
    let kinds = !registry.upstreams().is_empty();
    let mut t = if kinds {
        table(&["ID", "Type", "Enabled", "URI", "Toolkits", "Status"])
    } else {
        table(&["ID", "Enabled", "Toolkits", "Status"])
    };
    let status = |enabled: bool, healthy: bool, message: &str| {
        if !enabled {
            "Disabled".to_string()
        } else if healthy {
            "Running".to_string()
        } else {
            format!("Unreachable ({message})")
        }
    };
    let flag = |enabled: bool| if enabled { "True" } else { "False" }.to_string();
    for w in registry.workers() {
        let s = w.status();
        let state = status(w.config.enabled, s.healthy, &s.message);
        let toolkits = s.toolkits().join(", ");
        let enabled = flag(w.config.enabled);
        if kinds {
            t.add_row([
                w.config.id.clone(),
                "http".into(),
                enabled,
                w.config.uri.clone(),
                toolkits,
                state,
            ]);
        } else {
            t.add_row([w.config.id.clone(), enabled, toolkits, state]);
        }
    }
    for u in registry.upstreams() {
        let s = u.status();
        let toolkits = if s.tools.is_empty() {
            String::new()
        } else {
            u.config.id.clone()
        };
        t.add_row([
            u.config.id.clone(),
            "mcp".into(),
            flag(u.config.enabled),
            u.config.uri.clone(),
            toolkits,
            status(u.config.enabled, s.healthy, &s.message),
        ]);
    }
    if registry.workers().is_empty() && !kinds {
        println!("No workers configured.");
    } else {
        println!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tools_list(loaded: LoadedConfig, toolkit: Option<String>) -> anyhow::Result<ExitCode> {
    let registry = registry(&loaded).await?;
    let mut t = table(&["Name", "Version", "Source", "Description"]);
    let mut shown = 0;
    for tool in registry.catalog().snapshot().sorted() {
        if toolkit
            .as_deref()
            .is_some_and(|k| !tool.toolkit.eq_ignore_ascii_case(k))
        {
            continue;
        }
        let mut description = tool
            .definition
            .description
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        if description.chars().count() > 70 {
            description = description.chars().take(69).collect::<String>() + "…";
        }
        t.add_row([
            tool.qualified_name.clone(),
            tool.version.clone().unwrap_or_default(),
            tool.source.label().to_string(),
            description,
        ]);
        shown += 1;
    }
    if shown == 0 {
        println!("No tools found.");
    } else {
        println!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}
