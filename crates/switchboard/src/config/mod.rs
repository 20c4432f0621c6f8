//! `engine.yaml`: discovery, `engine.env`, `${env:VAR}` / `${file:PATH}` expansion, both
//! layouts (seed style and Arcade 2.0), durations, and the checks `config check` prints.
//! Must not: open sockets or databases; it only reads files and the environment map it
//! is handed (tests pass their own map: `std::env::set_var` races parallel tests).
//!
//! The API is [`load`] (find, read, resolve, check), [`discover`], [`defaults`] and
//! [`parse_duration`]; the result is the [`Config`] in `model.rs`.

mod check;
mod discover;
mod duration;
mod expand;
pub mod model;
mod problem;
mod reader;
mod resolve;

pub use discover::discover;
pub use duration::parse_duration;
pub use model::*;
pub use problem::{ConfigError, Problem, Severity};
pub use resolve::defaults;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where to look and what to expand with. The caller fills it from the command line and
/// the process; tests build their own.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config FILE`.
    pub config_path: Option<PathBuf>,
    /// `--env FILE`; otherwise `engine.env` beside the config file, if it exists.
    pub env_file: Option<PathBuf>,
    /// The process environment. It wins over the env file.
    pub env: HashMap<String, String>,
    /// Where the default SQLite database goes (`dirs::data_dir()/switchboard`).
    pub data_dir: PathBuf,
    /// `dirs::config_dir()`; discovery looks for `{config_home}/switchboard/engine.yaml`.
    pub config_home: Option<PathBuf>,
}

/// A usable configuration and what was ignored or guessed on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

/// Finds the file ([`discover`]), reads it and its env file, and resolves it. With no
/// file anywhere, returns [`defaults`]. Any error gives [`ConfigError::Invalid`] with
/// every error and warning found.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let Some(path) = discover(opts) else {
        // Nothing to expand, but a named `--env` file that is missing is still a mistake.
        if let Some(env_file) = &opts.env_file {
            discover::read_env_file(env_file)?;
        }
        tracing::debug!("no configuration file; using built-in defaults");
        return Ok(Loaded {
            config: defaults(&opts.data_dir),
            warnings: Vec::new(),
        });
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let env = discover::environment(opts, dir)?;
    tracing::debug!(path = %path.display(), "loading configuration");

    let mut problems = Vec::new();
    let config = resolve::resolve(&text, &path, &env, &opts.data_dir, &mut problems);
    match config {
        Some(config) if !problems.iter().any(Problem::is_error) => Ok(Loaded {
            config,
            warnings: problems,
        }),
        _ => Err(ConfigError::Invalid(problems)),
    }
}
