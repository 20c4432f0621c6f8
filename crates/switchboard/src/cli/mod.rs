//! The `switchboard` command line: parse, load the config once, dispatch in one `match`.
//! Command results go to standard output (a new key alone on the last line); logs and
//! diagnostics go to standard error.
//!
//! Owns the command tree, where the config comes from (`--config`, `--env-file`,
//! `SWITCHBOARD_DATA_DIR`, discovery), `config check`, and the one runtime each command
//! runs on. One file per command family; each takes a [`LoadedConfig`] and returns an
//! exit code.
//! Must not: hold a rule of its own. A command calls what `serve` calls (the store,
//! `identity`, `oauth`, `workers`, `server`'s builders), so the command line and the API
//! cannot disagree; nothing here is imported by the gateway.

mod auth;
mod configure;
mod executions;
mod keys;
mod serve;
mod tables;
mod users_tokens;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, ConfigError, LoadOptions, Loaded};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Multi-tenant MCP and tool-calling gateway"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file (else $SWITCHBOARD_CONFIG, else ~/.config/switchboard/engine.yaml, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Env file to load instead of engine.env beside the config (the real environment wins).
    #[arg(long = "env", global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Configured workers.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Tools the gateway serves.
    #[command(subcommand)]
    Tools(ToolsCommand),
    /// OAuth providers and users' connections.
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Users' data in the vault.
    #[command(subcommand)]
    Users(auth::UsersCommand),
    /// Root keys and data keys.
    #[command(subcommand)]
    Vault(auth::VaultCommand),
    /// Write an MCP client's config (Claude Desktop, VS Code, Cursor) with a new user token.
    Configure(configure::ConfigureArgs),
    /// The execution log: one record per tool call.
    #[command(subcommand)]
    Executions(executions::ExecutionsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the config and print every problem with its key path; exit 1 on any error.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Probe each configured worker and upstream MCP server and show ID, Enabled, Toolkits,
    /// Status (with upstreams configured, also Type and URI).
    List,
}

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// List the tools of the built-in toolkit and every reachable worker.
    List {
        /// Only this toolkit (any case).
        #[arg(long)]
        toolkit: Option<String>,
    },
}

/// Entry point for `main`: runs the command and turns the one error into a message.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Single-threaded: `serve` adds a thread (and runtime) per core itself, and every
    // other command is a few requests to the store.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let options = load_options(&cli.global);
    match cli.command {
        Command::Config(ConfigCommand::Check) => Ok(config_check(&options)),
        Command::Serve(args) => serve::run(load_config(&options)?, args).await,
        Command::Keys(cmd) => keys::run(load_config(&options)?, cmd).await,
        Command::Worker(WorkerCommand::List) => tables::worker_list(load_config(&options)?).await,
        Command::Tools(ToolsCommand::List { toolkit }) => {
            tables::tools_list(load_config(&options)?, toolkit).await
        }
        Command::Auth(cmd) => auth::run(load_config(&options)?, cmd).await,
        Command::Users(cmd) => auth::users(load_config(&options)?, cmd).await,
        Command::Vault(cmd) => auth::vault(load_config(&options)?, cmd).await,
        Command::Configure(args) => configure::run(load_config(&options)?, args).await,
        Command::Executions(cmd) => executions::run(load_config(&options)?, cmd).await,
    }
}

fn load_options(global: &GlobalArgs) -> LoadOptions {
    let env: HashMap<String, String> = std::env::vars().collect();
    let data_dir = env
        .get("SWITCHBOARD_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::data_dir().map(|d| d.join("switchboard")))
        .unwrap_or_else(|| PathBuf::from(".switchboard"));
    LoadOptions {
        config_path: global.config.clone(),
        env_file: global.env_file.clone(),
        env,
        data_dir,
        config_home: dirs::config_dir(),
    }
}

/// The config in force: the discovered file, else built-in defaults. Warnings are logged.
pub struct LoadedConfig {
    pub config: Config,
    pub warnings: Vec<config::Problem>,
}

fn load_config(options: &LoadOptions) -> anyhow::Result<LoadedConfig> {
    match config::discover(options) {
        None => Ok(LoadedConfig {
            config: config::defaults(&options.data_dir),
            warnings: Vec::new(),
        }),
        Some(path) => {
            let opts = LoadOptions {
                config_path: Some(path.clone()),
                ..options.clone()
            };
            match config::load(&opts) {
                Ok(Loaded { config, warnings }) => Ok(LoadedConfig { config, warnings }),
                Err(ConfigError::Invalid(problems)) => {
                    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    anyhow::bail!("{} is not valid:\n{}", path.display(), lines.join("\n"))
                }
                Err(e) => Err(e).with_context(|| format!("could not load {}", path.display())),
            }
        }
    }
}

fn config_check(options: &LoadOptions) -> ExitCode {
    let Some(path) = config::discover(options) else {
        println!(
            "no config file found; `switchboard serve` would run on built-in defaults (dev mode, SQLite)"
        );
        return ExitCode::SUCCESS;
    };
    let opts = LoadOptions {
        config_path: Some(path.clone()),
        ..options.clone()
    };
    match config::load(&opts) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("{w}");
            }
            // The files `api.tls` names are read as `serve` would read them.
            if let Some(tls) = &loaded.config.api.tls
                && let Err(e) = crate::tls::acceptor(&tls.cert_file, &tls.key_file)
            {
                println!("error: {e}");
                println!("{}: 1 error(s)", path.display());
                return ExitCode::FAILURE;
            }
            println!("{}: OK", path.display());
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid(problems)) => {
            for p in &problems {
                println!("{p}");
            }
            let errors = problems
                .iter()
                .filter(|p| p.severity == config::Severity::Error)
                .count();
            println!("{}: {errors} error(s)", path.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
