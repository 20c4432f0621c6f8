//! `${env:VAR}` and `${file:PATH}` inside string values, also embedded
//! (`http://${env:HOST}:8002`). Other `${...}` text is left as written: it may belong to a
//! URL template. Whether an unresolved reference is an error is the caller's call (it
//! depends on the key and on whether the worker or provider is enabled).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ExpandError {
    /// `${env:NAME}` with `NAME` absent from the environment and `engine.env`.
    Unset(String),
    /// `${file:PATH}` that cannot be read.
    File { path: PathBuf, reason: String },
    /// A reference that is not well formed (`${env:X` without `}`, `${env:}`).
    Syntax(String),
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Unset(name) => write!(f, "environment variable {name} is not set"),
            ExpandError::File { path, reason } => {
                write!(f, "cannot read file {}: {reason}", path.display())
            }
            ExpandError::Syntax(message) => f.write_str(message),
        }
    }
}

/// Expands every reference in `text`. Relative `${file:}` paths resolve against
/// `base_dir` (the config file's directory); file contents lose trailing newlines.
pub(super) fn expand(
    text: &str,
    env: &HashMap<String, String>,
    base_dir: &Path,
) -> Result<String, ExpandError> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let (kind, body) = if let Some(body) = after.strip_prefix("env:") {
            ("env", body)
        } else if let Some(body) = after.strip_prefix("file:") {
            ("file", body)
        } else {
            out.push_str("${");
            rest = after;
            continue;
        };
        let end = body.find('}').ok_or_else(|| {
            ExpandError::Syntax(format!("unterminated ${{{kind}:...}} (missing }})"))
        })?;
        let name = body[..end].trim();
        if name.is_empty() {
            return Err(ExpandError::Syntax(format!("empty ${{{kind}:}} reference")));
        }
        if kind == "env" {
            let value = env
                .get(name)
                .ok_or_else(|| ExpandError::Unset(name.to_owned()))?;
            out.push_str(value);
        } else {
            out.push_str(&read_file(&base_dir.join(name))?);
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn read_file(path: &Path) -> Result<String, ExpandError> {
    let fail = |reason: String| ExpandError::File {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
    // Files written by editors and `echo` end in a newline that is not part of the value.
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_references_expand_whole_and_embedded() {
        let env = env(&[("HOST", "w1"), ("PORT", "8002")]);
        let dir = Path::new(".");
        assert_eq!(expand("${env:HOST}", &env, dir), Ok("w1".into()));
        assert_eq!(
            expand("http://${env:HOST}:${env:PORT}/x", &env, dir),
            Ok("http://w1:8002/x".into())
        );
        assert_eq!(expand("plain", &env, dir), Ok("plain".into()));
    }

    #[test]
    fn an_unset_variable_is_named() {
        assert_eq!(
            expand("a${env:NOPE}b", &HashMap::new(), Path::new(".")),
            Err(ExpandError::Unset("NOPE".into()))
        );
    }

    #[test]
    fn foreign_dollar_braces_are_left_alone_and_broken_references_rejected() {
        let none = HashMap::new();
        let dir = Path::new(".");
        assert_eq!(expand("${user}/x", &none, dir), Ok("${user}/x".into()));
        assert!(matches!(
            expand("${env:X", &none, dir),
            Err(ExpandError::Syntax(_))
        ));
        assert!(matches!(
            expand("${env:}", &none, dir),
            Err(ExpandError::Syntax(_))
        ));
    }

    #[test]
    fn file_references_are_relative_to_the_base_dir_and_lose_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s3cret\n").unwrap();
        assert_eq!(
            expand("${file:secret.txt}", &HashMap::new(), dir.path()),
            Ok("s3cret".into())
        );
        assert!(matches!(
            expand("${file:missing.txt}", &HashMap::new(), dir.path()),
            Err(ExpandError::File { .. })
        ));
    }
}
