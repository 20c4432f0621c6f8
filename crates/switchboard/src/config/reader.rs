//! Typed reads from the YAML tree that know their key path, expand `${env:}`/`${file:}`
//! at the moment a value is read, and collect problems instead of stopping at the first.
//!
//! Sections we never read (like `llm`) are therefore never expanded: their unset
//! variables cannot fail a load.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_norway::{Mapping, Value};

use super::duration::parse_duration;
use super::expand::{ExpandError, expand};
use super::problem::Problem;

/// What an unresolved `${env:}` (or unreadable `${file:}`) means for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unset {
    /// The key has a built-in default: an unset variable means "not configured here".
    UseDefault,
    /// No sensible default (credentials, URLs, storage): an unset variable is an error.
    Error,
}

/// A mapping in the document and where it sits.
#[derive(Debug, Clone)]
pub(super) struct Map<'v> {
    pub path: String,
    pub map: &'v Mapping,
    /// Inside a disabled worker or provider: unresolved references there are fine.
    pub disabled: bool,
}

/// One scalar as written, after expansion.
enum Scalar {
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl<'v> Map<'v> {
    pub fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Whether the key is present with a non-null value.
    pub fn has(&self, key: &str) -> bool {
        !matches!(self.map.get(key), None | Some(Value::Null))
    }

    /// Keys of this mapping, as strings (non-string keys are skipped: YAML allows them,
    /// no section of ours uses them).
    pub fn keys(&self) -> impl Iterator<Item = &'v str> + use<'v> {
        self.map.keys().filter_map(Value::as_str)
    }
}

pub(super) struct Reader<'a> {
    env: &'a HashMap<String, String>,
    base_dir: &'a Path,
    pub problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    pub fn new(env: &'a HashMap<String, String>, base_dir: &'a Path) -> Self {
        Self {
            env,
            base_dir,
            problems: Vec::new(),
        }
    }

    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::error(path, message));
    }

    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::warning(path, message));
    }

    pub fn base_dir(&self) -> &Path {
        self.base_dir
    }

    /// A nested mapping; `None` when absent or null. Inherits `disabled`.
    pub fn section<'m>(&mut self, parent: &Map<'m>, key: &str) -> Option<Map<'m>> {
        let path = parent.child(key);
        match parent.map.get(key)? {
            Value::Null => None,
            Value::Mapping(map) => Some(Map {
                path,
                map,
                disabled: parent.disabled,
            }),
            _ => {
                self.error(path, "expected a mapping of keys to values");
                None
            }
        }
    }

    /// Like [`Self::section`], but an absent section reads as an empty one (so defaults apply
    /// through the same code path).
    pub fn section_or<'m>(&mut self, parent: &Map<'m>, key: &str, empty: &'m Mapping) -> Map<'m> {
        self.section(parent, key).unwrap_or_else(|| Map {
            path: parent.child(key),
            map: empty,
            disabled: parent.disabled,
        })
    }

    /// A list of strings (`allowed_origins:`); a single string counts as a list of one.
    pub fn strings(&mut self, m: &Map<'_>, key: &str) -> Vec<String> {
        let path = m.child(key);
        match m.map.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(raw)) => self
                .expand_at(&path, raw, Unset::Error, m.disabled)
                .into_iter()
                .collect(),
            Some(Value::Sequence(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    match item {
                        Value::String(raw) => {
                            out.extend(self.expand_at(&item_path, raw, Unset::Error, m.disabled));
                        }
                        _ => self.error(item_path, "expected a string"),
                    }
                }
                out
            }
            Some(_) => {
                self.error(path, "expected a list of strings");
                Vec::new()
            }
        }
    }

    /// A list of mappings (`workers:`, `providers:`), each with its `key[i]` path.
    pub fn list<'m>(&mut self, parent: &Map<'m>, key: &str) -> Vec<Map<'m>> {
        let path = parent.child(key);
        let items = match parent.map.get(key) {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Sequence(items)) => items,
            Some(_) => {
                self.error(path, "expected a list");
                return Vec::new();
            }
        };
        let mut maps = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            match item {
                Value::Mapping(map) => {
                    maps.push(Map {
                        path: item_path,
                        map,
                        disabled: parent.disabled,
                    });
                }
                _ => self.error(item_path, "expected a mapping of keys to values"),
            }
        }
        maps
    }

    /// Expands one string at `path`. `None` when unresolved; whether that was reported
    /// depends on `unset` and `disabled`.
    pub fn expand_at(
        &mut self,
        path: &str,
        raw: &str,
        unset: Unset,
        disabled: bool,
    ) -> Option<String> {
        match expand(raw, self.env, self.base_dir) {
            Ok(text) => Some(text),
            Err(ExpandError::Syntax(message)) => {
                self.error(path, message);
                None
            }
            Err(_) if disabled => None,
            Err(err @ ExpandError::Unset(_)) if unset == Unset::UseDefault => {
                tracing::debug!(path, "{err}; using the default");
                None
            }
            Err(err) => {
                self.error(path, err.to_string());
                None
            }
        }
    }

    fn scalar(&mut self, m: &Map<'_>, key: &str, unset: Unset) -> Option<Scalar> {
        let path = m.child(key);
        match m.map.get(key)? {
            Value::Null => None,
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Some(Scalar::Int(i)),
                None => n.as_f64().map(Scalar::Float),
            },
            Value::String(raw) => self
                .expand_at(&path, raw, unset, m.disabled)
                .map(Scalar::Text),
            Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
                self.error(path, "expected a single value");
                None
            }
        }
    }

    /// A string value (numbers and booleans are taken as written).
    pub fn text(&mut self, m: &Map<'_>, key: &str, unset: Unset) -> Option<String> {
        Some(match self.scalar(m, key, unset)? {
            Scalar::Text(s) => s,
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
        })
    }

    /// A boolean; also `"true"`/`"false"` (and yes/no, on/off, 1/0) after expansion, so
    /// `development: ${env:API_DEVELOPMENT}` works.
    pub fn flag(&mut self, m: &Map<'_>, key: &str, default: bool) -> bool {
        let parsed = match self.scalar(m, key, Unset::UseDefault) {
            None => return default,
            Some(Scalar::Bool(b)) => Some(b),
            Some(Scalar::Int(0)) => Some(false),
            Some(Scalar::Int(1)) => Some(true),
            Some(Scalar::Text(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "" => return default,
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            Some(_) => None,
        };
        parsed.unwrap_or_else(|| {
            let shown = self.shown(m, key);
            self.error(m.child(key), format!("expected true or false, got {shown}"));
            default
        })
    }

    /// A whole number in `min..=max`; `what` names it in the error ("port", "count").
    pub fn integer(
        &mut self,
        m: &Map<'_>,
        key: &str,
        min: i64,
        max: i64,
        what: &str,
    ) -> Option<i64> {
        let parsed = match self.scalar(m, key, Unset::UseDefault)? {
            Scalar::Int(i) => Some(i),
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            Scalar::Text(s) if s.trim().is_empty() => return None,
            Scalar::Text(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match parsed {
            Some(i) if (min..=max).contains(&i) => Some(i),
            _ => {
                let shown = self.shown(m, key);
                self.error(
                    m.child(key),
                    format!("invalid {what} {shown} (expected {min}-{max})"),
                );
                None
            }
        }
    }

    pub fn port(&mut self, m: &Map<'_>, key: &str, default: u16) -> u16 {
        self.integer(m, key, 0, 65535, "port")
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default)
    }

    pub fn count(&mut self, m: &Map<'_>, key: &str, min: i64, default: usize) -> usize {
        self.integer(m, key, min, i64::from(u32::MAX), "number")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(default)
    }

    /// A duration (`30s`, `1m`, `200ms`, or seconds as a number or string).
    pub fn duration(&mut self, m: &Map<'_>, key: &str, default: Duration) -> Duration {
        let parsed = match self.scalar(m, key, Unset::UseDefault) {
            None => return default,
            Some(Scalar::Text(s)) if s.trim().is_empty() => return default,
            Some(Scalar::Text(s)) => parse_duration(&s),
            Some(Scalar::Int(i)) => parse_duration(&i.to_string()),
            Some(Scalar::Float(f)) => parse_duration(&f.to_string()),
            Some(Scalar::Bool(b)) => parse_duration(&b.to_string()),
        };
        parsed.unwrap_or_else(|message| {
            self.error(m.child(key), message);
            default
        })
    }

    /// The value as written, quoted, for an error message. Only used for keys that never
    /// hold secrets (ports, flags, durations).
    fn shown(&self, m: &Map<'_>, key: &str) -> String {
        match m.map.get(key) {
            Some(Value::String(raw)) => match expand(raw, self.env, self.base_dir) {
                Ok(text) => format!("{text:?}"),
                Err(_) => format!("{raw:?}"),
            },
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => "this value".into(),
        }
    }

    /// Warns about keys of `m` that are neither `used` nor `unused` (a typo, or a setting
    /// from a newer schema), and about `unused` ones: accepted, but with no effect yet.
    pub fn check_keys(&mut self, m: &Map<'_>, used: &[&str], unused: &[&str]) {
        for key in m.keys() {
            if used.contains(&key) {
                continue;
            }
            let message = if unused.contains(&key) {
                "accepted but not used by Switchboard yet"
            } else {
                "unknown key; ignored"
            };
            self.warn(m.child(key), message);
        }
    }

    /// A whole subtree as JSON with every string expanded (a provider's `oauth2:`
    /// mapping, kept for the OAuth module). Unresolved strings become `""`.
    pub fn json(&mut self, path: &str, value: &Value, disabled: bool) -> serde_json::Value {
        use serde_json::Value as J;
        match value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    J::from(i)
                } else if let Some(u) = n.as_u64() {
                    J::from(u)
                } else {
                    n.as_f64()
                        .and_then(serde_json::Number::from_f64)
                        .map_or(J::Null, J::Number)
                }
            }
            Value::String(raw) => J::String(
                self.expand_at(path, raw, Unset::Error, disabled)
                    .unwrap_or_default(),
            ),
            Value::Sequence(items) => J::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.json(&format!("{path}[{i}]"), item, disabled))
                    .collect(),
            ),
            Value::Mapping(map) => {
                let mut object = serde_json::Map::new();
                for (k, v) in map {
                    let key = match k {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            self.error(path, "mapping keys must be plain strings");
                            continue;
                        }
                    };
                    let child = join(path, &key);
                    object.insert(key, self.json(&child, v, disabled));
                }
                J::Object(object)
            }
            Value::Tagged(tagged) => self.json(path, &tagged.value, disabled),
        }
    }
}
