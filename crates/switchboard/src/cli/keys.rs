//! `switchboard keys create|list|revoke`: API keys straight in the store.
//!
//! Owns these commands' messages and the date format the other tables share
//! (`format_ms`). A key is made by `identity::generate_key`, as the admin API makes it.
//! Must not: print a key except the new one, once, alone on the last line (scripts read
//! it there); the list shows ids, names and hints only.

use std::process::ExitCode;

use clap::Subcommand;
use comfy_table::Table;

use super::LoadedConfig;
use crate::identity::generate_key;
use crate::store::{self, StoreError};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once, alone on the last line.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id or name.
    Revoke { id: String },
}

pub async fn run(loaded: LoadedConfig, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let store = store::open(&loaded.config.storage).await?;
    let now = chrono::Utc::now().timestamp_millis();
    match cmd {
        KeysCommand::Create { name } => {
            let name = name.trim().to_string();
            if name.is_empty() {
                anyhow::bail!("--name must not be empty");
            }
            let key = generate_key(&name, now);
            match store.insert_api_key(&key.record).await {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => {
                    anyhow::bail!("an active key named '{name}' already exists")
                }
                Err(e) => return Err(e.into()),
            }
            println!(
                "Created API key '{name}' (id {}). It is shown once; store it now:",
                key.record.id
            );
            println!("{}", key.plaintext);
        }
        KeysCommand::List => {
            let keys = store.list_api_keys().await?;
            let mut table = Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(["ID", "Name", "Key", "Created", "Status"]);
            for k in keys {
                let status = if k.revoked_at_ms.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                table.add_row([
                    k.id,
                    k.name,
                    k.hint,
                    format_ms(k.created_at_ms),
                    status.to_string(),
                ]);
            }
            println!("{table}");
        }
        KeysCommand::Revoke { id } => {
            if store.revoke_api_key(&id, now).await? {
                println!("Revoked key '{id}'. Gateways stop accepting it within 10 seconds.");
            } else {
                eprintln!("error: no active key with id or name '{id}'");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}
