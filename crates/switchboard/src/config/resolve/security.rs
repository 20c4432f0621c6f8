//! The sections that hold secret values: `security.root_keys` (what seals user secrets at
//! rest) and the top-level `secrets:` (tool secrets injected at dispatch). Values are
//! wrapped in [`SecretValue`] as soon as they are read.

use std::collections::BTreeMap;

use serde_norway::Mapping;

use super::required_id;
use crate::config::model::{RootKeyConfig, SecretValue};
use crate::config::reader::{Map, Reader, Unset};

pub(super) fn root_keys(
    r: &mut Reader<'_>,
    root: &Map<'_>,
    empty: &Mapping,
) -> Vec<(RootKeyConfig, String)> {
    let security = r.section_or(root, "security", empty);
    r.check_keys(&security, &["root_keys"], &[]);
    let mut keys = Vec::new();
    for key in r.list(&security, "root_keys") {
        r.check_keys(&key, &["id", "default", "value"], &[]);
        let default = r.flag(&key, "default", false);
        let Some(id) = required_id(r, &key, "root key") else {
            continue;
        };
        let value = r.text(&key, "value", Unset::Error);
        match &value {
            Some(v) if v.is_empty() => {
                r.error(key.child("value"), format!("root key {id} is empty"))
            }
            None if !key.has("value") => {
                r.error(key.child("value"), format!("root key {id} has no value"))
            }
            _ => {}
        }
        let value = SecretValue::new(value.unwrap_or_default());
        keys.push((RootKeyConfig { id, default, value }, key.path.clone()));
    }
    keys
}

/// Top-level `secrets: {KEY: value}`: tool secrets injected at dispatch.
pub(super) fn secrets(r: &mut Reader<'_>, root: &Map<'_>) -> BTreeMap<String, SecretValue> {
    let mut secrets = BTreeMap::new();
    let Some(map) = r.section(root, "secrets") else {
        return secrets;
    };
    for key in map.keys() {
        if let Some(value) = r.text(&map, key, Unset::Error) {
            secrets.insert(key.to_owned(), SecretValue::new(value));
        }
    }
    secrets
}
