//! `switchboard configure claude|vscode|cursor --user ID`: mints a user token and writes
//! this gateway into an MCP client's config file, in that client's own location and format,
//! leaving every other server in the file as it was.
//!
//! Owns each client's file location and format, the merge into an existing file (a backup
//! kept, a bad file refused before anything is minted) and the endpoint URL.
//! Must not: change any other server entry or key in the file, or print the token it
//! writes anywhere but the file (or stdout with `--print`, which the user asked for).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use super::LoadedConfig;
use super::users_tokens::parse_ttl;
use crate::config::Config;
use crate::identity::mint_user_token;
use crate::store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Client {
    /// Claude Desktop (through `npx mcp-remote`: its config cannot send headers).
    Claude,
    /// VS Code: `.vscode/mcp.json` in the current directory.
    Vscode,
    /// Cursor: `~/.cursor/mcp.json`.
    Cursor,
}

#[derive(Debug, Args)]
pub struct ConfigureArgs {
    /// The MCP client to set up.
    pub client: Client,
    /// The user the client acts for; a fresh token bound to this user goes in the file.
    #[arg(long, value_parser = crate::identity::user_id::parse)]
    pub user: String,
    /// Serve only this gateway's tools (`/mcp/{slug}`, from `gateways:` in the config).
    #[arg(long, value_name = "SLUG")]
    pub gateway: Option<String>,
    /// Print the JSON snippet instead of writing the file.
    #[arg(long)]
    pub print: bool,
    /// The gateway's base URL as the client reaches it (default: `api.public_url`).
    #[arg(long, value_name = "BASE")]
    pub url: Option<String>,
    /// Write this file instead of the client's usual one.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Token lifetime, e.g. `90d`; without it the token lives until revoked.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
}

impl Client {
    fn label(self) -> &'static str {
        match self {
            Client::Claude => "Claude Desktop",
            Client::Vscode => "VS Code",
            Client::Cursor => "Cursor",
        }
    }

    /// The key under which the client keeps its servers.
    fn servers_key(self) -> &'static str {
        match self {
            Client::Vscode => "servers",
            Client::Claude | Client::Cursor => "mcpServers",
        }
    }

    /// Where the client reads its config: VS Code per workspace, the others per user.
    fn default_path(self) -> anyhow::Result<PathBuf> {
        let home = || dirs::home_dir().context("cannot find the home directory; use --file");
        Ok(match self {
            Client::Vscode => std::env::current_dir()
                .context("cannot read the current directory; use --file")?
                .join(".vscode")
                .join("mcp.json"),
            Client::Cursor => home()?.join(".cursor").join("mcp.json"),
            Client::Claude => claude_config_dir(home)?.join("claude_desktop_config.json"),
        })
    }

    /// This client's entry for our server.
    fn entry(self, url: &str, token: &str) -> Value {
        let bearer = format!("Bearer {token}");
        match self {
            Client::Vscode => json!({
                "type": "http",
                "url": url,
                "headers": {"Authorization": bearer},
            }),
            Client::Cursor => json!({
                "url": url,
                "headers": {"Authorization": bearer},
            }),
            // mcp-remote's documented form for a header with a space in its value: the
            // value comes from the environment, so no shell or argv splitting can break it.
            Client::Claude => json!({
                "command": "npx",
                "args": ["-y", "mcp-remote", url, "--header", "Authorization:${AUTH_HEADER}"],
                "env": {"AUTH_HEADER": bearer},
            }),
        }
    }
}

#[cfg(target_os = "macos")]
fn claude_config_dir(home: impl Fn() -> anyhow::Result<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(home()?
        .join("Library")
        .join("Application Support")
        .join("Claude"))
}

#[cfg(target_os = "windows")]
fn claude_config_dir(_home: impl Fn() -> anyhow::Result<PathBuf>) -> anyhow::Result<PathBuf> {
    // %APPDATA% (the roaming profile), which is what `config_dir` returns on Windows.
    Ok(dirs::config_dir()
        .context("cannot find %APPDATA%; use --file")?
        .join("Claude"))
}

#[cfg(not(any(target_os = "macos", target_os = "windows")))]
fn claude_config_dir(home: impl Fn() -> anyhow::Result<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(home()?.join(".config").join("Claude"))
}

/// `{base}/v1/mcps/{user}/mcp`, or `{base}/mcp/{slug}` for a gateway; path segments are
/// percent-encoded.
pub fn endpoint_url(base: &str, user: &str, gateway: Option<&str>) -> anyhow::Result<String> {
    let mut url = url::Url::parse(base.trim())
        .with_context(|| format!("{base:?} is not a URL (set api.public_url or pass --url)"))?;
    {
        let Ok(mut segments) = url.path_segments_mut() else {
            bail!("{base:?} cannot be a base URL (set api.public_url or pass --url)");
        };
        segments.pop_if_empty();
        match gateway {
            Some(slug) => segments.extend(["mcp", slug]),
            None => segments.extend(["v1", "mcps", user, "mcp"]),
        };
    }
    Ok(url.to_string())
}

/// The server's name in the client's list: `switchboard`, or `switchboard-{slug}`.
fn server_name(gateway: Option<&str>) -> String {
    match gateway {
        Some(slug) => format!("switchboard-{slug}"),
        None => "switchboard".into(),
    }
}

fn check_gateway(config: &Config, slug: &str) -> anyhow::Result<()> {
    if config.gateways.iter().any(|g| g.slug == slug) {
        return Ok(());
    }
    let known: Vec<&str> = config.gateways.iter().map(|g| g.slug.as_str()).collect();
    if known.is_empty() {
        bail!("unknown gateway '{slug}': the config defines no gateways (gateways: [...])");
    }
    bail!(
        "unknown gateway '{slug}'; known gateways: {}",
        known.join(", ")
    )
}

/// `existing` (a client config, or nothing) with our entry inserted or replaced under
/// `servers_key`; everything else is kept as it was.
pub fn merge_entry(
    existing: Option<Value>,
    servers_key: &str,
    name: &str,
    entry: Value,
) -> anyhow::Result<Value> {
    let mut root = existing.unwrap_or_else(|| json!({}));
    let Some(object) = root.as_object_mut() else {
        bail!("the file's top level is not a JSON object");
    };
    let servers = object
        .entry(servers_key)
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(servers) = servers.as_object_mut() else {
        bail!("\"{servers_key}\" in the file is not a JSON object");
    };
    servers.insert(name.to_string(), entry);
    Ok(root)
}

pub async fn run(loaded: LoadedConfig, args: ConfigureArgs) -> anyhow::Result<ExitCode> {
    let config = &loaded.config;
    let gateway = args.gateway.as_deref().map(str::trim);
    if let Some(slug) = gateway {
        check_gateway(config, slug)?;
    }
    // Checked by clap already; exactly as given, never trimmed.
    let user = args.user.as_str();
    let base = args.url.as_deref().unwrap_or(&config.api.public_url);
    let url = endpoint_url(base, user, gateway)?;
    let name = server_name(gateway);

    // Read (and validate) the file before minting, so a bad file leaves no stray token.
    let path = match (&args.file, args.print) {
        (Some(path), _) => path.clone(),
        (None, false) => args.client.default_path()?,
        // Nothing is written: no need to find the client's directory.
        (None, true) => PathBuf::new(),
    };
    let existing = if args.print { None } else { read_json(&path)? };
    let had_file = existing.is_some();
    // Validate the merge with a placeholder, then again with the real token.
    merge_entry(
        existing.clone(),
        args.client.servers_key(),
        &name,
        Value::Null,
    )
    .with_context(|| format!("cannot add a server to {}", path.display()))?;

    let store = store::open(&config.storage).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let token = mint_user_token(&store, user, args.ttl, now).await?;
    let entry = args.client.entry(&url, &token.plaintext);

    if args.print {
        let snippet = merge_entry(None, args.client.servers_key(), &name, entry)?;
        eprintln!(
            "{} config for user '{user}' ({url}); it holds a new user token (id {}) for this user only:",
            args.client.label(),
            token.record.id
        );
        println!("{}", serde_json::to_string_pretty(&snippet)?);
        return Ok(ExitCode::SUCCESS);
    }

    let merged = merge_entry(existing, args.client.servers_key(), &name, entry)?;
    let backup = write_config(&path, &merged, had_file)?;
    println!(
        "Wrote server '{name}' ({url}) for user '{user}' to {}.",
        path.display()
    );
    if let Some(backup) = backup {
        println!("The previous file is kept as {}.", backup.display());
    }
    println!(
        "The file holds a new user token (id {}) that acts for '{user}' only: keep it private; revoke it with `switchboard users token revoke {}`. Restart {} to pick it up.",
        token.record.id,
        token.record.id,
        args.client.label()
    );
    Ok(ExitCode::SUCCESS)
}

/// The file as JSON, `None` when it does not exist (or is empty).
fn read_json(path: &Path) -> anyhow::Result<Option<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text).map(Some).with_context(|| {
        format!(
            "{} is not plain JSON (comments are not supported); fix it or use --print and paste by hand",
            path.display()
        )
    })
}

/// Writes `value` pretty-printed: parent directories created, an existing file copied to
/// `<name>.bak` first, the new content put in place by a rename so a crash leaves either
/// file whole. Returns the backup's path.
fn write_config(path: &Path, value: &Value, had_file: bool) -> anyhow::Result<Option<PathBuf>> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let backup = if had_file && path.exists() {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".bak");
        let backup = path.with_file_name(name);
        std::fs::copy(path, &backup)
            .with_context(|| format!("cannot back up {}", path.display()))?;
        Some(backup)
    } else {
        None
    };
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".switchboard-tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    restrict_permissions(&tmp, path)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(backup)
}

/// The file now holds a token: keep the old file's mode, or make a new one owner-only.
#[cfg(unix)]
fn restrict_permissions(tmp: &Path, original: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(original)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o600);
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set permissions on {}", tmp.display()))
}

#[cfg(not(unix))]
fn restrict_permissions(_tmp: &Path, _original: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_are_built_under_the_base_with_encoded_segments() {
        assert_eq!(
            endpoint_url("https://sb.example.com/", "alice", None).unwrap(),
            "https://sb.example.com/v1/mcps/alice/mcp"
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:9099", "a b/c", None).unwrap(),
            "http://127.0.0.1:9099/v1/mcps/a%20b%2Fc/mcp"
        );
        assert_eq!(
            endpoint_url("https://x.test/gw", "alice", Some("sales")).unwrap(),
            "https://x.test/gw/mcp/sales"
        );
        assert!(endpoint_url("not a url", "alice", None).is_err());
    }

    #[test]
    fn merging_keeps_other_servers_and_replaces_ours() {
        let existing = json!({"theme": "dark", "mcpServers": {"other": {"url": "x"}, "switchboard": {"url": "old"}}});
        let merged = merge_entry(
            Some(existing),
            "mcpServers",
            "switchboard",
            json!({"url": "new"}),
        )
        .unwrap();
        assert_eq!(
            merged,
            json!({"theme": "dark", "mcpServers": {"other": {"url": "x"}, "switchboard": {"url": "new"}}})
        );
        assert!(merge_entry(Some(json!([])), "servers", "s", json!({})).is_err());
        assert!(merge_entry(Some(json!({"servers": 3})), "servers", "s", json!({})).is_err());
    }
}
