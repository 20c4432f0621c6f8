//! `switchboard executions list`: the execution log, newest first, straight from the store.
//!
//! Owns the table; the filter and its limits are [`ExecutionFilter`]'s.
//! Must not: write to the log or prune it (the gateway does), or show inputs and outputs
//! (the log has none).

use std::process::ExitCode;

use clap::Subcommand;
use comfy_table::Table;

use super::LoadedConfig;
use super::keys::format_ms;
use crate::store::{self, ExecutionFilter};

#[derive(Debug, Subcommand)]
pub enum ExecutionsCommand {
    /// Recorded tool calls, newest first (one row per call; no inputs or outputs).
    List {
        /// Only this user's calls.
        #[arg(long, value_parser = crate::identity::user_id::parse)]
        user: Option<String>,
        /// Only this tool, as recorded: `Toolkit.Tool` (e.g. `Github.CreateIssue`).
        #[arg(long)]
        tool: Option<String>,
        /// At most this many rows (1–1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub async fn run(loaded: LoadedConfig, cmd: ExecutionsCommand) -> anyhow::Result<ExitCode> {
    let ExecutionsCommand::List { user, tool, limit } = cmd;
    if !(1..=ExecutionFilter::MAX_LIMIT).contains(&limit) {
        anyhow::bail!(
            "--limit must be between 1 and {}",
            ExecutionFilter::MAX_LIMIT
        );
    }
    let store = store::open(&loaded.config.storage).await?;
    let records = store
        .list_executions(&ExecutionFilter {
            user_id: user,
            tool_name: tool,
            limit,
        })
        .await?;
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "Started",
        "User",
        "Tool",
        "Version",
        "Status",
        "Error",
        "Duration",
        "Execution ID",
    ]);
    for r in &records {
        table.add_row([
            format_ms(r.started_at_ms),
            r.user_id.clone().unwrap_or_else(|| "-".into()),
            r.tool_name.clone(),
            r.tool_version.clone().unwrap_or_else(|| "-".into()),
            r.status.clone(),
            r.error_kind.clone().unwrap_or_else(|| "-".into()),
            format!("{:.1} ms", r.duration_ms),
            r.execution_id.clone(),
        ]);
    }
    println!("{table}");
    if records.is_empty() {
        println!("No recorded calls match.");
    } else if records.len() == limit as usize {
        println!("Showing the newest {limit}; --limit shows more.");
    }
    Ok(ExitCode::SUCCESS)
}
