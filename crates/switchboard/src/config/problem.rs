//! What loading can report: a [`Problem`] per finding (with its key path) and the
//! [`ConfigError`] that ends a load.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The file cannot be served as written.
    Error,
    /// Loaded, but something is ignored or was guessed (e.g. an `llm:` section).
    Warning,
}

/// One finding about the configuration. `path` is the key path in the file
/// (`tools.directors[0].workers[1].http.secret`), empty for the file as a whole.
/// Messages never contain a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    pub severity: Severity,
}

impl Problem {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            severity: Severity::Error,
        }
    }

    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            severity: Severity::Warning,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// `error: api.port: invalid port "x" (expected 0-65535)`, or without the path when the
/// problem is about the whole file.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.severity, self.message)
        } else {
            write!(f, "{}: {}: {}", self.severity, self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file (or a named `--env` file) could not be read at all.
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// The file was read but has at least one error. Holds every error and warning found,
    /// in file order; `Display` prints one per line.
    #[error("{}", lines(.0))]
    Invalid(Vec<Problem>),
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
