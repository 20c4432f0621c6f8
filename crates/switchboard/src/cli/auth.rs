//! `switchboard auth providers|connections|revoke`, `users delete`, `vault rotate`: the
//! same OAuth service `serve` uses, straight on the store.
//!
//! Owns these commands' arguments, tables and messages. The work is
//! [`AuthService`]'s, built as `serve` builds it (root keys from the config, the sandbox
//! provider in dev mode), so revoking or deleting here is what the admin API does.
//! Must not: open a sealed value itself, or print a token, code or client secret
//! (connections show scopes and dates only). `users token` needs no vault and goes to
//! `users_tokens` before one is opened.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use comfy_table::Table;

use super::LoadedConfig;
use super::keys::format_ms;
use crate::clock::Clock;
use crate::oauth::{AuthService, Revocation};
use crate::server::{auth_service, load_root_keys};
use crate::store::{self, ConnectionFilter};

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Auth providers: from the config and added over the admin API.
    Providers,
    /// Users' connections (never their tokens).
    Connections {
        /// Only this user's connections.
        #[arg(long, value_parser = crate::identity::user_id::parse)]
        user: Option<String>,
    },
    /// Revoke a connection (at the provider where it offers revocation) and delete it.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Delete a user's data key, connections, flows, user tokens and MCP sessions.
    Delete {
        #[arg(value_parser = crate::identity::user_id::parse)]
        id: String,
    },
    /// User tokens: bearer tokens that act for one user, for MCP clients.
    #[command(subcommand)]
    Token(super::users_tokens::TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Re-wrap every user's data key under the current default root key. Keep the old
    /// root key in the config until this has run on the store.
    Rotate,
}

async fn service(loaded: &LoadedConfig) -> anyhow::Result<Arc<AuthService>> {
    let mut config = loaded.config.clone();
    if config.api.development
        && !config
            .auth_providers
            .iter()
            .any(|p| p.provider_id.as_deref() == Some("sandbox"))
    {
        // `serve` adds the sandbox provider in dev mode; list it the same way.
        config
            .auth_providers
            .push(crate::config::AuthProviderConfig {
                id: "sandbox".into(),
                description: Some("Switchboard Sandbox (dev mode)".into()),
                enabled: true,
                provider_type: "oauth2".into(),
                provider_id: Some("sandbox".into()),
                client_id: None,
                client_secret: None,
                extra: serde_json::json!({}),
            });
    }
    let store = store::open(&config.storage).await?;
    let root_keys = load_root_keys(&config)?;
    Ok(auth_service(&config, store, &root_keys, Clock::system()).await?)
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    t
}

pub async fn run(loaded: LoadedConfig, cmd: AuthCommand) -> anyhow::Result<ExitCode> {
    let auth = service(&loaded).await?;
    match cmd {
        AuthCommand::Providers => {
            let mut t = table(&["ID", "Provider", "Source", "Client ID", "Status"]);
            for p in auth.provider_views().await? {
                let text = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                t.add_row([
                    text("id"),
                    text("provider_id"),
                    text("source"),
                    text("client_id"),
                    text("status"),
                ]);
            }
            println!("{t}");
        }
        AuthCommand::Connections { user } => {
            let filter = ConnectionFilter {
                user_id: user,
                limit: 1000,
                ..Default::default()
            };
            let (rows, total) = auth.list_connections(&filter).await?;
            if rows.is_empty() {
                println!("No connections.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&[
                "ID", "User", "Provider", "Status", "Scopes", "Expires", "Updated",
            ]);
            for c in rows {
                t.add_row([
                    c.id,
                    c.user_id,
                    c.provider_id,
                    c.status,
                    c.scopes.join(" "),
                    c.expires_at_ms
                        .map(format_ms)
                        .unwrap_or_else(|| "never".into()),
                    format_ms(c.updated_at_ms),
                ]);
            }
            println!("{t}");
            if total > 1000 {
                println!("(showing 1000 of {total})");
            }
        }
        AuthCommand::Revoke { id } => match auth.revoke_connection(&id).await? {
            Some(revocation) => {
                let at_provider = match revocation {
                    Revocation::Revoked => "revoked at the provider",
                    Revocation::NotOffered => "the provider offers no revocation",
                    Revocation::Failed => "revocation at the provider failed; see the log",
                };
                println!("Deleted connection {id} ({at_provider}).");
            }
            None => {
                eprintln!("error: no connection with id '{id}'");
                return Ok(ExitCode::FAILURE);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn users(loaded: LoadedConfig, cmd: UsersCommand) -> anyhow::Result<ExitCode> {
    // Tokens need only the store, not the vault.
    if let UsersCommand::Token(cmd) = cmd {
        return super::users_tokens::run(loaded, cmd).await;
    }
    let auth = service(&loaded).await?;
    match cmd {
        UsersCommand::Delete { id } => {
            if auth.delete_user(&id).await? {
                println!(
                    "Deleted user '{id}': data key, connections, flows, user tokens and MCP sessions destroyed."
                );
            } else {
                eprintln!("error: user '{id}' has no data here");
                return Ok(ExitCode::FAILURE);
            }
        }
        // Handled above, before the vault is opened.
        UsersCommand::Token(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn vault(loaded: LoadedConfig, cmd: VaultCommand) -> anyhow::Result<ExitCode> {
    let auth = service(&loaded).await?;
    match cmd {
        VaultCommand::Rotate => {
            let (rewrapped, current) = auth.keys().rotate_all().await?;
            println!(
                "Re-wrapped {rewrapped} data key(s) under root key '{}' ({current} already were). Old root keys can be removed from the config once every replica runs with the new default.",
                auth.keys().vault().default_root_key_id()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
