//! `switchboard users token create|list|revoke`: user tokens (bound to one user, for MCP
//! clients) straight in the store.
//!
//! Owns these commands' messages and `--ttl` parsing (shared with `configure`). A token is
//! minted by `identity::mint_user_token`, as the admin API mints it.
//! Must not: open the vault (tokens need the store only), or print a token except the new
//! one, once, alone on the last line; the list shows ids, users, hints and dates.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use comfy_table::Table;

use super::LoadedConfig;
use super::keys::format_ms;
use crate::config::parse_duration;
use crate::identity::mint_user_token;
use crate::store;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token that acts for USER only; it is printed once, alone on the last line.
    Create {
        #[arg(value_parser = crate::identity::user_id::parse)]
        user: String,
        /// Lifetime, e.g. `30d`, `12h`; without it the token lives until revoked.
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<Duration>,
    },
    /// List user tokens (never their secrets), newest first.
    List {
        /// Only this user's tokens.
        #[arg(long, value_parser = crate::identity::user_id::parse)]
        user: Option<String>,
    },
    /// Revoke a user token by id.
    Revoke { id: String },
}

/// `--ttl` for clap: [`parse_duration`], refusing zero.
pub(super) fn parse_ttl(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("a token lifetime must be longer than zero".into()),
        d => Ok(d),
    }
}

pub async fn run(loaded: LoadedConfig, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let store = store::open(&loaded.config.storage).await?;
    let now = chrono::Utc::now().timestamp_millis();
    match cmd {
        TokenCommand::Create { user, ttl } => {
            let token = mint_user_token(&store, &user, ttl, now).await?;
            let expiry = match token.record.expires_at_ms {
                Some(at) => format!("expires {}", format_ms(at)),
                None => "never expires".into(),
            };
            println!(
                "Created a user token for user '{}' (id {}, {expiry}). It acts for this user only, on MCP endpoints. It is shown once; store it now:",
                token.record.user_id, token.record.id
            );
            println!("{}", token.plaintext);
        }
        TokenCommand::List { user } => {
            let tokens = store.list_user_tokens(user.as_deref()).await?;
            if tokens.is_empty() {
                println!("No user tokens.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(["ID", "User", "Token", "Created", "Expires", "Status"]);
            for t in tokens {
                let status = if t.revoked_at_ms.is_some() {
                    "revoked"
                } else if t.expires_at_ms.is_some_and(|at| at <= now) {
                    "expired"
                } else {
                    "active"
                };
                table.add_row([
                    t.id,
                    t.user_id,
                    t.hint,
                    format_ms(t.created_at_ms),
                    t.expires_at_ms
                        .map(format_ms)
                        .unwrap_or_else(|| "never".into()),
                    status.to_string(),
                ]);
            }
            println!("{table}");
        }
        TokenCommand::Revoke { id } => {
            if store.revoke_user_token(&id, now).await? {
                println!(
                    "Revoked user token '{id}'. Gateways stop accepting it within 10 seconds."
                );
            } else {
                eprintln!("error: no active user token with id '{id}'");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
