//! Which file to load, and the environment to expand it with (`engine.env` under the
//! real environment).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::LoadOptions;
use super::problem::ConfigError;

/// `--config`, else `$SWITCHBOARD_CONFIG` (from `opts.env`), else
/// `{config_home}/switchboard/engine.yaml` if it exists, else `None` (built-in defaults).
/// A path named explicitly is returned even if missing, so loading reports it.
pub fn discover(opts: &LoadOptions) -> Option<PathBuf> {
    if let Some(path) = &opts.config_path {
        return Some(path.clone());
    }
    if let Some(path) = opts
        .env
        .get("SWITCHBOARD_CONFIG")
        .filter(|p| !p.trim().is_empty())
    {
        return Some(PathBuf::from(path));
    }
    let home = opts
        .config_home
        .as_ref()?
        .join("switchboard")
        .join("engine.yaml");
    home.is_file().then_some(home)
}

/// The variables `${env:}` sees: the env file's, overridden by `opts.env`. The env file
/// is `opts.env_file` (must exist) or `engine.env` in `config_dir` (optional).
pub(super) fn environment(
    opts: &LoadOptions,
    config_dir: &Path,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut env = match &opts.env_file {
        Some(path) => read_env_file(path)?,
        None => {
            let path = config_dir.join("engine.env");
            if path.exists() {
                read_env_file(&path)?
            } else {
                HashMap::new()
            }
        }
    };
    env.extend(opts.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(env)
}

/// Parses a dotenv file without touching the process environment.
pub(super) fn read_env_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let read_error = |message: String| ConfigError::Read {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut vars = HashMap::new();
    for item in dotenvy::from_read_iter(io::Cursor::new(text.as_bytes())) {
        match item {
            // Like dotenv's own loader, the first definition of a name wins.
            Ok((key, value)) => {
                vars.entry(key).or_insert(value);
            }
            // The offending line may hold a secret: name its number, never its text.
            Err(dotenvy::Error::LineParse(line, _)) => {
                let number = text
                    .lines()
                    .position(|l| l.trim() == line.trim())
                    .map_or_else(String::new, |i| format!(" {}", i + 1));
                return Err(read_error(format!(
                    "invalid line{number} (expected KEY=value)"
                )));
            }
            Err(err) => return Err(read_error(err.to_string())),
        }
    }
    Ok(vars)
}
