//! Administration of connections and providers: listing, revoking (at the provider where
//! it offers revocation, then here), and providers kept in the store.

use serde_json::{Value, json};

use super::provider::{Provider, ProviderSource, resolve_provider};
use super::registry::{
    SYSTEM_USER, config_from_json, open_secrets_in_place, seal_client_secret,
    seal_secrets_in_place, take_client_secret,
};
use super::{AuthError, AuthService};
use crate::config::SecretValue;
use crate::store::{ConnectionFilter, ConnectionRecord, StoredProviderRecord};
use crate::vault::{SealContext, field};

/// What deleting a connection did at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    /// The provider has no revocation endpoint.
    NotOffered,
    /// The provider refused or was unreachable; the connection is deleted here anyway.
    Failed,
}

impl AuthService {
    pub async fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<(Vec<ConnectionRecord>, u64), AuthError> {
        Ok(self.store.list_connections(filter).await?)
    }

    /// Revokes the grant at the provider when it can, then deletes the connection.
    /// `None` when there is no such connection.
    pub async fn revoke_connection(&self, id: &str) -> Result<Option<Revocation>, AuthError> {
        let Some(conn) = self.store.get_connection_by_id(id).await? else {
            return Ok(None);
        };
        let revocation = match self.providers.by_id(&conn.provider_id) {
            None => Revocation::NotOffered,
            Some(provider) => self.revoke_at_provider(&provider, &conn).await,
        };
        self.store.delete_connection(id).await?;
        self.connections.forget(&conn.user_id, &conn.provider_id);
        tracing::info!(connection = %id, user_id = %conn.user_id, provider = %conn.provider_id, ?revocation, "connection revoked");
        Ok(Some(revocation))
    }

    async fn revoke_at_provider(&self, provider: &Provider, conn: &ConnectionRecord) -> Revocation {
        if provider.endpoints.revoke.is_none() {
            return Revocation::NotOffered;
        }
        let opened = async {
            let key = self.keys.get_or_create(&conn.user_id).await?;
            let ctx = |f: &'static str| SealContext::new(&conn.user_id, &conn.provider_id, f);
            let access = key.open_string(&ctx(field::ACCESS_TOKEN), &conn.access_token_sealed)?;
            let refresh = match &conn.refresh_token_sealed {
                Some(s) => Some(key.open_string(&ctx(field::REFRESH_TOKEN), s)?),
                None => None,
            };
            Ok::<_, AuthError>((access, refresh))
        };
        let (access, refresh) = match opened.await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(connection = %conn.id, error = %e, "could not open tokens to revoke them");
                return Revocation::Failed;
            }
        };
        match provider
            .revoke_grant(
                &self.http,
                access.expose(),
                refresh.as_ref().map(|r| r.expose()),
            )
            .await
        {
            Ok(true) => Revocation::Revoked,
            Ok(false) => Revocation::NotOffered,
            Err(e) => {
                tracing::warn!(connection = %conn.id, provider = %provider.id, error = %e, "revocation at the provider failed");
                Revocation::Failed
            }
        }
    }

    /// Every provider, config first; a stored one whose id the config also uses is
    /// listed as shadowed.
    pub async fn provider_views(&self) -> Result<Vec<Value>, AuthError> {
        self.reload_providers().await?;
        let redirect_uri = self.redirect_uri();
        let mut out: Vec<Value> = self
            .providers
            .config_providers()
            .iter()
            .map(|p| provider_view(p, None, &redirect_uri))
            .collect();
        for record in self.store.list_stored_providers().await? {
            let shadowed = self.providers.is_config_id(&record.id);
            match self
                .providers
                .by_id(&record.id)
                .filter(|p| p.source == ProviderSource::Store)
            {
                Some(p) => out.push(provider_view(&p, None, &redirect_uri)),
                None => {
                    let json: Value =
                        serde_json::from_str(&record.config_json).unwrap_or(Value::Null);
                    let note = if shadowed {
                        "shadowed: the config file defines a provider with this id, and the config wins"
                    } else {
                        "not usable: its configuration does not resolve"
                    };
                    out.push(json!({
                        "id": record.id,
                        "source": "store",
                        "provider_id": json.get("provider_id"),
                        "description": json.get("description"),
                        "status": note,
                    }));
                }
            }
        }
        Ok(out)
    }

    pub async fn provider_view(&self, id: &str) -> Result<Option<Value>, AuthError> {
        Ok(self
            .provider_views()
            .await?
            .into_iter()
            .find(|v| v["id"] == id))
    }

    /// Validates and stores a provider. `create`: the id must be new. A config
    /// provider's id is refused: the config would win and the stored one never serve.
    pub async fn put_provider(
        &self,
        id: &str,
        mut body: Value,
        create: bool,
    ) -> Result<Value, AuthError> {
        if id.trim().is_empty() {
            return Err(AuthError::BadRequest("id is required".into()));
        }
        if self.providers.is_config_id(id) {
            return Err(AuthError::Forbidden(format!(
                "provider '{id}' is defined in the config file, which wins over providers added here; choose another id or edit the config"
            )));
        }
        let Some(map) = body.as_object_mut() else {
            return Err(AuthError::BadRequest(
                "the body must be a JSON object".into(),
            ));
        };
        map.insert("id".into(), json!(id));
        // The client secret leaves the mapping wherever it was sent (top level, or
        // Arcade's `oauth2.client_secret`) and is sealed into its own column; any other
        // secret is sealed in place. Nothing secret is stored as sent.
        let secret = take_client_secret(&mut body).map_err(AuthError::BadRequest)?;
        let key = self.keys.get_or_create(SYSTEM_USER).await?;
        // A PATCH body is merged over the stored mapping, whose secrets are sealed: open
        // them to check the whole, seal again to store.
        open_secrets_in_place(id, &mut body, &key).map_err(|_| {
            AuthError::BadRequest("a sealed value does not belong to this provider".into())
        })?;
        let existing = self.store.get_stored_provider(id).await?;
        let config = config_from_json(id, &body, secret.clone().map(SecretValue::new));
        resolve_provider(&config, &self.public_url)
            .map_err(|e| AuthError::BadRequest(format!("provider '{id}': {e}")))?;
        // Early and clear; the guarded client refuses these at request time anyway.
        for (path, url) in crate::net::provider_endpoint_urls("", &body) {
            if let Err(refused) = self.outbound.check_url(&url) {
                return Err(AuthError::BadRequest(format!(
                    "provider '{id}': {path}: {refused}"
                )));
            }
        }
        let sealed_secret = match secret {
            Some(s) => Some(seal_client_secret(&key, id, &s)),
            // PATCH without a secret keeps the stored one.
            None => existing
                .as_ref()
                .and_then(|e| e.client_secret_sealed.clone()),
        };
        seal_secrets_in_place(id, &mut body, &key);
        let now = self.now();
        let record = StoredProviderRecord {
            id: id.to_string(),
            config_json: body.to_string(),
            client_secret_sealed: sealed_secret,
            created_at_ms: existing.as_ref().map(|e| e.created_at_ms).unwrap_or(now),
            updated_at_ms: now,
        };
        self.store.put_stored_provider(&record, create).await?;
        self.reload_providers().await?;
        self.provider_view(id).await?.ok_or_else(|| {
            AuthError::Config(format!("provider '{id}' was stored but does not resolve"))
        })
    }

    pub async fn delete_provider(&self, id: &str) -> Result<bool, AuthError> {
        if self.providers.is_config_id(id) && self.store.get_stored_provider(id).await?.is_none() {
            return Err(AuthError::Forbidden(format!(
                "provider '{id}' is defined in the config file; remove it there"
            )));
        }
        let deleted = self.store.delete_stored_provider(id).await?;
        self.reload_providers().await?;
        Ok(deleted)
    }
}

/// A provider as admins see it: never its client secret.
pub fn provider_view(p: &Provider, status: Option<&str>, redirect_uri: &str) -> Value {
    let client_secret = json!({
        "binding": "static",
        "editable": p.source == ProviderSource::Store,
        "exists": p.client_secret.is_some(),
    });
    json!({
        "id": p.id,
        "description": p.description,
        "enabled": true,
        "type": "oauth2",
        "provider_id": p.provider_id,
        "client_id": p.client_id,
        "client_secret": client_secret,
        "source": match p.source { ProviderSource::Config => "config", ProviderSource::Store => "store" },
        // Arcade's shape (AuthProviderResponse.oauth2): the secret only as set or not.
        "oauth2": {
            "client_id": p.client_id,
            "client_secret": client_secret,
            "redirect_uri": redirect_uri,
            "authorize_url": p.endpoints.authorize,
            "token_url": p.endpoints.token,
            "pkce": {"enabled": p.pkce, "code_challenge_method": "S256"},
            "scope_delimiter": p.scope_delimiter,
        },
        "status": status.unwrap_or("active"),
    })
}
