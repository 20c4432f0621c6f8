//! What the `engine.yaml` tests share: a file in a fresh directory, loaded with given
//! environment variables, and the lines of its problems.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use switchboard::config::{ConfigError, LoadOptions, Loaded, load};
use tempfile::TempDir;

pub fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn options(config: &Path, env: HashMap<String, String>) -> LoadOptions {
    LoadOptions {
        config_path: Some(config.to_owned()),
        env_file: None,
        env,
        data_dir: PathBuf::from("/data/switchboard"),
        config_home: None,
    }
}

/// A fresh directory holding `engine.yaml` with `yaml` in it.
pub fn workspace(yaml: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.yaml");
    fs::write(&path, yaml).unwrap();
    (dir, path)
}

pub fn load_yaml(yaml: &str, vars: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let (_dir, path) = workspace(yaml);
    load(&options(&path, env(vars)))
}

/// Every problem line of a failed load.
pub fn problems(result: Result<Loaded, ConfigError>) -> Vec<String> {
    match result {
        Err(ConfigError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(loaded) => panic!(
            "expected errors, loaded with warnings {:?}",
            loaded.warnings
        ),
    }
}

pub fn assert_has(lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|l| l == expected),
        "expected line\n  {expected}\ngot\n  {}",
        lines.join("\n  ")
    );
}

pub fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded.warnings.iter().map(ToString::to_string).collect()
}
