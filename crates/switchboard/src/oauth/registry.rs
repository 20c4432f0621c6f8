//! The providers a requirement can name: those in the config, and those added over
//! `/v1/admin/auth_providers` (kept in the store). On an id clash the config wins.
//! Stored providers are re-read when a lookup misses and after local admin changes;
//! another replica's change shows up on its next miss or reload.

use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::config::{AuthProviderConfig, SecretValue};
use crate::store::{Store, StoredProviderRecord};
use crate::vault::{SealContext, field};

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

    /// Re-reads providers kept in the store.
    pub async fn reload(&self, store: &dyn Store, keys: &UserKeys) -> Result<(), AuthError> {
        let records = store.list_stored_providers().await?;
        let mut providers = Vec::with_capacity(records.len());
        for record in records {
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
        Ok(())
    }
}

/// A stored provider back to the config shape the provider layer resolves.
pub async fn stored_to_config(
    record: &StoredProviderRecord,
    keys: &UserKeys,
) -> Result<AuthProviderConfig, AuthError> {
    let json: Value = serde_json::from_str(&record.config_json).map_err(|e| {
        AuthError::Config(format!(
            "stored provider '{}' is not valid JSON: {e}",
            record.id
        ))
    })?;
    let client_secret = match &record.client_secret_sealed {
        Some(sealed) => {
            let key = keys.get_or_create(SYSTEM_USER).await?;
            let ctx = SealContext::new(SYSTEM_USER, &record.id, field::CLIENT_SECRET);
            Some(SecretValue::new(key.open_string(&ctx, sealed)?.expose()))
        }
        None => None,
    };
    Ok(config_from_json(&record.id, &json, client_secret))
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
        for k in [
            "id",
            "description",
            "enabled",
            "type",
            "provider_id",
            "client_id",
            "client_secret",
        ] {
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
