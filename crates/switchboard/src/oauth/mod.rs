//! Per-user OAuth 2.0: which provider serves a requirement, authorization flows (short
//! link, state, PKCE, callback, user verification), grants sealed in the vault, and
//! refresh that runs once at a time per connection across replicas.
//!
//! Plaintext tokens exist only inside a [`Grant`] handed to one dispatch, and in the one
//! reply of `/v1/auth/authorize` that Arcade's protocol requires (`context.token`).
//! Must not: log or put in an error a token, code, state, verifier or client secret.

mod admin;
mod connection_cache;
mod flows;
mod grants;
pub mod pages;
pub mod provider;
mod registry;
mod user_keys;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

pub use admin::{Revocation, provider_view};
pub use connection_cache::TTL as CONNECTION_CACHE_TTL;
pub use flows::{CallbackOutcome, CallbackParams, FLOW_RETENTION};
pub use grants::Grant;
pub use registry::{ProviderRegistry, SYSTEM_USER, config_from_json, stored_to_config};
pub use user_keys::UserKeys;

use crate::config::{OAuthSettings, UserVerifier};
use crate::store::{Store, StoreError};
use crate::vault::{SecretString, Vault, VaultError};
use provider::{OAuthError, Provider};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The user must (re)authorize; carries the flow to show them.
    #[error("authorization required: {}", .0.describe())]
    NeedsAuthorization(Box<Authorization>),
    #[error("no auth provider is configured for {0}")]
    UnknownProvider(String),
    #[error("authorization '{0}' not found")]
    UnknownFlow(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    /// The provider is down or slow; the connection keeps its tokens. Retryable.
    #[error("the provider could not refresh the token right now: {0}")]
    ProviderUnavailable(String),
    #[error("auth provider configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<OAuthError> for AuthError {
    fn from(e: OAuthError) -> Self {
        AuthError::ProviderUnavailable(e.to_string())
    }
}

/// Arcade's flow states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStatus {
    NotStarted,
    Pending,
    Completed,
    Failed,
}

impl FlowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::NotStarted => "not_started",
            FlowStatus::Pending => "pending",
            FlowStatus::Completed => "completed",
            FlowStatus::Failed => "failed",
        }
    }

    /// From a stored flow status (`awaiting_verification` is still pending to clients).
    pub fn from_stored(s: &str) -> Self {
        match s {
            "completed" => FlowStatus::Completed,
            "failed" => FlowStatus::Failed,
            _ => FlowStatus::Pending,
        }
    }
}

/// Arcade's AuthorizationResponse (`reference/arcade-api.md` §1).
#[derive(Debug)]
pub struct Authorization {
    pub id: Option<String>,
    pub status: FlowStatus,
    pub url: Option<String>,
    pub scopes: Vec<String>,
    pub provider_id: String,
    pub user_id: String,
    /// Only for a completed authorization answered to `/v1/auth/authorize`.
    pub token: Option<SecretString>,
    pub user_info: Option<Value>,
    pub failure_reason: Option<String>,
}

impl Authorization {
    fn describe(&self) -> String {
        match &self.url {
            Some(url) => format!("connect your '{}' account at {url}", self.provider_id),
            None => format!("connect your '{}' account", self.provider_id),
        }
    }

    /// The wire shape. `context.token` appears only when this carries a token.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "status": self.status.as_str(),
            "url": self.url,
            "scopes": self.scopes,
            "provider_id": self.provider_id,
            "user_id": self.user_id,
        });
        if self.token.is_some() || self.user_info.is_some() {
            v["context"] = json!({
                "token": self.token.as_ref().map(SecretString::expose),
                "user_info": self.user_info.clone().unwrap_or_else(|| json!({})),
            });
        }
        if let Some(reason) = &self.failure_reason {
            v["status_reason"] = json!(reason);
        }
        v
    }
}

/// A requirement as a tool or client states it.
#[derive(Debug, Clone, Default)]
pub struct Requirement {
    /// One provider, by config id.
    pub id: Option<String>,
    /// A service, e.g. `google`.
    pub provider_id: Option<String>,
    pub scopes: Vec<String>,
}

impl Requirement {
    pub fn from_wire(req: &switchboard_wire::AuthRequirement) -> Self {
        Self {
            id: req.id.clone(),
            provider_id: req.provider_id.clone(),
            scopes: req
                .oauth2
                .as_ref()
                .map(|o| o.scopes.clone())
                .unwrap_or_default(),
        }
    }

    fn label(&self) -> String {
        self.id
            .clone()
            .or_else(|| self.provider_id.clone())
            .unwrap_or_else(|| "an unnamed provider".into())
    }
}

pub struct AuthService {
    store: Arc<dyn Store>,
    keys: UserKeys,
    providers: ProviderRegistry,
    http: reqwest::Client,
    /// The policy `http` enforces (`net::guarded_client`); provider URLs are checked
    /// against it when an admin sets them, for an early, clear error.
    outbound: crate::net::OutboundPolicy,
    public_url: String,
    settings: OAuthSettings,
    /// Wakes long-polls in this process when a flow changes; other replicas' changes are
    /// seen by polling the store.
    flow_changed: tokio::sync::Notify,
    refresh: grants::RefreshCoordinator,
    connections: connection_cache::ConnectionCache,
    /// Added to the wall clock for flow and token expiry; tests move it forward instead
    /// of sleeping. Zero in service.
    clock_offset_ms: AtomicI64,
}

impl AuthService {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        providers: ProviderRegistry,
        http: reqwest::Client,
        public_url: &str,
        settings: OAuthSettings,
    ) -> Self {
        Self {
            keys: UserKeys::new(store.clone(), vault),
            store,
            providers,
            http,
            outbound: crate::net::OutboundPolicy::default(),
            public_url: public_url.trim_end_matches('/').to_string(),
            settings,
            flow_changed: tokio::sync::Notify::new(),
            refresh: grants::RefreshCoordinator::new(),
            connections: connection_cache::ConnectionCache::default(),
            clock_offset_ms: AtomicI64::new(0),
        }
    }

    /// Background upkeep until `shutdown` changes: drops cached connection rows that other
    /// replicas or processes change (see `connection_cache`), and sweeps old flows every
    /// few minutes (see `flows`). Run it beside the server.
    pub async fn run_upkeep(&self, shutdown: tokio::sync::watch::Receiver<bool>) {
        tokio::join!(
            connection_cache::watch(self.store.clone(), &self.connections, shutdown.clone()),
            self.sweep_flows_periodically(shutdown),
        );
    }

    /// Moves this service's clock (flow and token expiry) forward by `by`. For tests, which
    /// would otherwise sleep until a flow or a token expires.
    #[doc(hidden)]
    pub fn advance_clock(&self, by: Duration) {
        self.clock_offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Now, by this service's clock (see [`AuthService::advance_clock`]).
    pub fn now(&self) -> i64 {
        Self::now_ms() + self.clock_offset_ms.load(Ordering::SeqCst)
    }

    /// Sets the policy the `http` client given to [`AuthService::new`] enforces.
    pub fn with_outbound_policy(mut self, policy: crate::net::OutboundPolicy) -> Self {
        self.outbound = policy;
        self
    }

    pub fn outbound_policy(&self) -> &crate::net::OutboundPolicy {
        &self.outbound
    }

    pub fn providers(&self) -> &ProviderRegistry {
        &self.providers
    }

    pub fn keys(&self) -> &UserKeys {
        &self.keys
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// `{public_url}/v1/oauth/callback`: one redirect URI for every provider.
    pub fn redirect_uri(&self) -> String {
        format!("{}/v1/oauth/callback", self.public_url)
    }

    fn verifier_url(&self) -> Option<&str> {
        match &self.settings.user_verifier {
            UserVerifier::Url(url) => Some(url),
            UserVerifier::Unset | UserVerifier::Disabled => None,
        }
    }

    /// Re-reads providers kept in the store.
    pub async fn reload_providers(&self) -> Result<(), AuthError> {
        self.providers.reload(self.store.as_ref(), &self.keys).await
    }

    fn provider_for(&self, req: &Requirement) -> Result<Arc<Provider>, AuthError> {
        self.providers
            .for_requirement(req.id.as_deref(), req.provider_id.as_deref())
            .ok_or_else(|| AuthError::UnknownProvider(format!("'{}'", req.label())))
    }

    /// Resolves a provider, re-reading stored providers once on a miss (another replica
    /// may have added it).
    async fn provider_for_fresh(&self, req: &Requirement) -> Result<Arc<Provider>, AuthError> {
        match self.provider_for(req) {
            Ok(p) => Ok(p),
            Err(_) => {
                self.reload_providers().await?;
                self.provider_for(req)
            }
        }
    }

    /// Deletes a user's data key, connections and flows.
    pub async fn delete_user(&self, user_id: &str) -> Result<bool, AuthError> {
        let deleted = self.store.delete_user(user_id).await?;
        self.connections.forget_user(user_id);
        self.keys.forget(user_id);
        Ok(deleted)
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// The longest `/v1/auth/status?wait=` holds a request: clients time out at 60 s.
pub const MAX_STATUS_WAIT: Duration = Duration::from_secs(59);

/// Sorted, de-duplicated scopes.
pub fn normalise_scopes(scopes: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = scopes
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}
