//! The providers a requirement can name: those in the config, and those added over
//! `/v1/admin/auth_providers` (kept in the store). On an id clash the config wins.
//! Stored providers are re-read when a lookup misses and after local admin changes;
//! another replica's change shows up on its next miss or reload.
//!
//! No secret of a stored provider is kept in plaintext: the client secret (top level or
//! Arcade's `oauth2.client_secret`) is sealed into its own column, and any other secret
//! (a literal `client_secret`, `api_key`... among a request's `params`) is sealed in place
//! as `{"$sealed": "..."}`, bound to its provider and key path. Rows written before this
//! rule are sealed and rewritten the first time they are loaded.

use std::sync::{Arc, RwLock};

use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::config::{AuthProviderConfig, SecretValue};
use crate::store::{Store, StoredProviderRecord};
use crate::vault::{DataKey, SealContext, field};

use super::AuthError;
use super::provider::{Provider, ProviderSource, resolve_provider};
use super::user_keys::UserKeys;

/// Data keys of provider client secrets belong to this pseudo-user.
pub const SYSTEM_USER: &str = "__switchboard_system__";

pub struct ProviderRegistry {
    config: Vec<Arc<Provider>>,
    /// Problems with config providers found at start, already logged.
    stored: RwLock<Vec<Arc<Provider>>>,
    public_url: String,
}

impl ProviderRegistry {
    pub fn new(configs: &[AuthProviderConfig], public_url: &str) -> Result<Self, AuthError> {
        let mut config = Vec::new();
        for cfg in configs.iter().filter(|c| c.enabled) {
            let provider = resolve_provider(cfg, public_url)
                .map_err(|e| AuthError::Config(format!("auth.providers '{}': {e}", cfg.id)))?;
            config.push(Arc::new(provider.with_source(ProviderSource::Config)));
        }
        Ok(Self {
            config,
            stored: RwLock::new(Vec::new()),
            public_url: public_url.to_string(),
        })
    }

    pub fn config_providers(&self) -> &[Arc<Provider>] {
        &self.config
    }

    pub fn all(&self) -> Vec<Arc<Provider>> {
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        self.config
            .iter()
            .cloned()
            .chain(stored.iter().filter(|s| !self.is_config_id(&s.id)).cloned())
            .collect()
    }

    pub fn is_config_id(&self, id: &str) -> bool {
        self.config.iter().any(|p| p.id == id)
    }

    pub fn by_id(&self, id: &str) -> Option<Arc<Provider>> {
        self.find(|p| p.id == id)
    }

    /// The first provider matching, config first; on the call path, so no list is built.
    fn find(&self, matches: impl Fn(&Provider) -> bool) -> Option<Arc<Provider>> {
        if let Some(p) = self.config.iter().find(|p| matches(p)) {
            return Some(p.clone());
        }
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        stored
            .iter()
            .find(|p| !self.is_config_id(&p.id) && matches(p))
            .cloned()
    }

    /// A requirement names one provider (`id`) or a service (`provider_id`, e.g.
    /// `google`: the first provider of that service). arcade-mcp-server sends a custom
    /// provider's id as `provider_id`, so a service miss falls back to an id match.
    pub fn for_requirement(
        &self,
        id: Option<&str>,
        service: Option<&str>,
    ) -> Option<Arc<Provider>> {
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            return self.by_id(id);
        }
        let service = service.filter(|s| !s.is_empty())?;
        self.find(|p| p.provider_id == service)
            .or_else(|| self.by_id(service))
    }

    /// Re-reads providers kept in the store; a row sealed on the way is stamped by `clock`.
    pub async fn reload(
        &self,
        store: &dyn Store,
        keys: &UserKeys,
        clock: &Clock,
    ) -> Result<(), AuthError> {
        let records = store.list_stored_providers().await?;
        let mut providers = Vec::with_capacity(records.len());
        let mut sealed_any = false;
        for record in records {
            let record = match seal_stored_plaintext(store, keys, &record, clock.now_ms()).await {
                Ok(sealed) => {
                    sealed_any |= sealed.config_json != record.config_json;
                    sealed
                }
                Err(e) => {
                    tracing::warn!(provider = %record.id, error = %e, "could not seal the plaintext secrets of a stored auth provider");
                    record
                }
            };
            match stored_to_config(&record, keys).await.and_then(|cfg| {
                resolve_provider(&cfg, &self.public_url)
                    .map_err(|e| AuthError::Config(e.to_string()))
            }) {
                Ok(p) => providers.push(Arc::new(p.with_source(ProviderSource::Store))),
                Err(e) => {
                    tracing::warn!(provider = %record.id, error = %e, "stored auth provider is not usable")
                }
            }
        }
        *self.stored.write().unwrap_or_else(|p| p.into_inner()) = providers;
        if sealed_any && let Err(e) = store.scrub_old_copies().await {
            tracing::warn!(error = %e, "could not drop the store's old copies of the sealed provider rows");
        }
        Ok(())
    }
}

/// A stored provider back to the config shape the provider layer resolves.
pub async fn stored_to_config(
    record: &StoredProviderRecord,
    keys: &UserKeys,
) -> Result<AuthProviderConfig, AuthError> {
    let mut json = parse_stored(record)?;
    let key = keys.get_or_create(SYSTEM_USER).await?;
    let client_secret = match &record.client_secret_sealed {
        Some(sealed) => Some(SecretValue::new(open_client_secret(
            &key, &record.id, sealed,
        )?)),
        None => None,
    };
    open_secrets_in_place(&record.id, &mut json, &key)?;
    Ok(config_from_json(&record.id, &json, client_secret))
}

fn parse_stored(record: &StoredProviderRecord) -> Result<Value, AuthError> {
    serde_json::from_str(&record.config_json).map_err(|e| {
        AuthError::Config(format!(
            "stored provider '{}' is not valid JSON: {e}",
            record.id
        ))
    })
}

/// A row written before secrets were sealed wherever they sit (Arcade's
/// `oauth2.client_secret` was kept as sent): its plaintext secrets sealed and the row
/// rewritten, unless another writer changed it meanwhile. Rows without plaintext come
/// back as they are, so this runs on every load at the cost of a JSON walk.
async fn seal_stored_plaintext(
    store: &dyn Store,
    keys: &UserKeys,
    record: &StoredProviderRecord,
    now_ms: i64,
) -> Result<StoredProviderRecord, AuthError> {
    let mut json = parse_stored(record)?;
    if !has_plaintext_secrets(&json) {
        return Ok(record.clone());
    }
    let key = keys.get_or_create(SYSTEM_USER).await?;
    let taken = take_client_secret(&mut json).map_err(AuthError::Config)?;
    // A sealed column was the secret in use (the top level won over `oauth2`): keep it.
    let client_secret_sealed = match (&record.client_secret_sealed, taken) {
        (Some(sealed), _) => Some(sealed.clone()),
        (None, Some(plain)) => Some(seal_client_secret(&key, &record.id, &plain)),
        (None, None) => None,
    };
    seal_secrets_in_place(&record.id, &mut json, &key);
    let sealed = StoredProviderRecord {
        config_json: json.to_string(),
        client_secret_sealed,
        updated_at_ms: now_ms,
        ..record.clone()
    };
    // Only if unchanged: an admin edit, or another replica sealing it first, wins; the
    // next load sees that row. The sealed copy serves meanwhile (same secrets).
    if store
        .replace_stored_provider_if_unchanged(&sealed, &record.config_json)
        .await?
    {
        tracing::info!(provider = %record.id, "sealed plaintext secrets of a stored auth provider");
    }
    Ok(sealed)
}

/// Marks a value sealed in place in a stored provider's JSON.
const SEALED_KEY: &str = "$sealed";
/// Requests in `oauth2` whose `params` may carry a literal secret.
const REQUEST_SECTIONS: &[&str] = &[
    "authorize_request",
    "token_request",
    "refresh_request",
    "user_info_request",
    "revoke_request",
    "token_introspection_request",
];

pub fn seal_client_secret(key: &DataKey, id: &str, secret: &str) -> String {
    key.seal_str(
        &SealContext::new(SYSTEM_USER, id, field::CLIENT_SECRET),
        secret,
    )
}

fn open_client_secret(key: &DataKey, id: &str, sealed: &str) -> Result<String, AuthError> {
    let ctx = SealContext::new(SYSTEM_USER, id, field::CLIENT_SECRET);
    Ok(key.open_string(&ctx, sealed)?.expose().to_owned())
}

/// Takes the client secret out of a provider's mapping, from the top level or from
/// `oauth2` (Arcade's admin API and arcadepy send it there). An object there (the masked
/// `{exists, binding...}` a GET answered, sent back) means "unchanged". Both given with
/// different values is a mistake worth saying.
pub fn take_client_secret(json: &mut Value) -> Result<Option<String>, String> {
    fn take(map: &mut Map<String, Value>, path: &str) -> Result<Option<String>, String> {
        match map.remove("client_secret") {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            None | Some(Value::Null | Value::String(_) | Value::Object(_)) => Ok(None),
            Some(_) => Err(format!("{path} must be a string")),
        }
    }
    let top = match json.as_object_mut() {
        Some(map) => take(map, "client_secret")?,
        None => None,
    };
    let inner = match json.get_mut("oauth2").and_then(Value::as_object_mut) {
        Some(map) => take(map, "oauth2.client_secret")?,
        None => None,
    };
    match (top, inner) {
        (Some(a), Some(b)) if a != b => Err(
            "client_secret is given both at the top level and in oauth2, with different values; give it once"
                .into(),
        ),
        (a, b) => Ok(a.or(b)),
    }
}

/// A request parameter whose name says it carries a secret.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "assertion",
        "credential",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// Text beyond `{{placeholders}}`: a literal value, not one filled in per request.
fn holds_literal(value: &str) -> bool {
    let mut rest = value;
    let mut literal = String::new();
    while let Some(start) = rest.find("{{") {
        literal.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                literal.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    literal.push_str(rest);
    !literal.trim().is_empty()
}

/// Calls `f` with the key path and value of every secret-named request parameter.
fn for_each_secret_param<E>(
    json: &mut Value,
    mut f: impl FnMut(&str, &mut Value) -> Result<(), E>,
) -> Result<(), E> {
    let Some(oauth2) = json.get_mut("oauth2").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for section in REQUEST_SECTIONS {
        let Some(params) = oauth2
            .get_mut(*section)
            .and_then(|r| r.get_mut("params"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (name, value) in params.iter_mut() {
            if is_secret_param(name) {
                f(&format!("oauth2.{section}.params.{name}"), value)?;
            }
        }
    }
    Ok(())
}

fn param_field(path: &str) -> String {
    format!("{}:{path}", field::CLIENT_SECRET)
}

/// Any secret in plaintext: a client secret in the mapping, or a literal in a
/// secret-named parameter.
pub fn has_plaintext_secrets(json: &Value) -> bool {
    let plain = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if plain(json.get("client_secret"))
        || plain(json.get("oauth2").and_then(|o| o.get("client_secret")))
    {
        return true;
    }
    let mut found = false;
    let mut copy = json.clone();
    let _ = for_each_secret_param(&mut copy, |_, value| {
        found |= value.as_str().is_some_and(holds_literal);
        Ok::<(), ()>(())
    });
    found
}

/// Seals, in place, every literal secret-named request parameter.
pub fn seal_secrets_in_place(id: &str, json: &mut Value, key: &DataKey) {
    let _ = for_each_secret_param(json, |path, value| {
        if let Some(plain) = value.as_str().filter(|s| holds_literal(s)) {
            let field = param_field(path);
            let sealed = key.seal_str(&SealContext::new(SYSTEM_USER, id, &field), plain);
            *value = json!({ SEALED_KEY: sealed });
        }
        Ok::<(), ()>(())
    });
}

/// Opens, in place, what [`seal_secrets_in_place`] sealed.
pub fn open_secrets_in_place(id: &str, json: &mut Value, key: &DataKey) -> Result<(), AuthError> {
    for_each_secret_param(json, |path, value| {
        if let Some(sealed) = value.get(SEALED_KEY).and_then(Value::as_str) {
            let field = param_field(path);
            let plain = key.open_string(&SealContext::new(SYSTEM_USER, id, &field), sealed)?;
            *value = Value::String(plain.expose().to_owned());
        }
        Ok(())
    })
}

/// Builds an [`AuthProviderConfig`] from a provider's JSON mapping (admin API body).
pub fn config_from_json(
    id: &str,
    json: &Value,
    client_secret: Option<SecretValue>,
) -> AuthProviderConfig {
    let text = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
    let mut extra = json.clone();
    if let Some(map) = extra.as_object_mut() {
        for k in crate::config::PROVIDER_FIELDS {
            map.remove(k);
        }
    }
    AuthProviderConfig {
        id: id.to_string(),
        description: text("description"),
        enabled: json.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        provider_type: text("type").unwrap_or_else(|| "oauth2".into()),
        provider_id: text("provider_id"),
        client_id: text("client_id"),
        client_secret,
        extra,
    }
}
