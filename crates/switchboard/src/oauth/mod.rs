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
mod pending_grant;
pub mod provider;
mod registry;
mod user_keys;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

pub use admin::{Revocation, provider_view};
/// The longest a cached connection row is trusted (while the change watcher vouches).
pub use connection_cache::WATCHED_TTL as CONNECTION_CACHE_WATCHED_TTL;
pub use flows::{CallbackOutcome, CallbackParams, FLOW_RETENTION};
pub use grants::Grant;
pub use registry::{ProviderRegistry, SYSTEM_USER, config_from_json, stored_to_config};
pub use user_keys::UserKeys;

use crate::clock::Clock;
use crate::config::{OAuthSettings, UserVerifier};
use crate::store::{Store, StoreError};
use crate::vault::{SecretString, Vault, VaultError};
use provider::{OAuthError, Provider};

/// Why an [`AuthService`] call did not give what was asked.
///
/// Messages are fit to show the caller and to log: they name users, providers, flows and
/// scopes, never a token, code, state, verifier or client secret (provider text is
/// scrubbed before it lands here). The REST API maps the first five variants to 403, 400
/// or 404, `ProviderUnavailable` to 502 and the last three to 500; the executor turns
/// `NeedsAuthorization` into the authorization a tool call answers with, and
/// `ProviderUnavailable` into a retryable tool error.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The user must (re)authorize: no connection, one without the scopes wanted, or one
    /// whose refresh token is dead. Carries the flow (and its URL) to show them.
    #[error("authorization required: {}", .0.describe())]
    NeedsAuthorization(Box<Authorization>),
    /// No enabled provider has this id or serves this service (a requirement is resolved
    /// again after re-reading the providers other replicas stored). `0` is the name asked
    /// for, quoted.
    #[error("no auth provider is configured for {0}")]
    UnknownProvider(String),
    /// No flow with this id (never started, or swept after [`FLOW_RETENTION`]).
    #[error("authorization '{0}' not found")]
    UnknownFlow(String),
    /// The caller may not do this: confirm another user's flow, or change a provider
    /// that comes from the config file.
    #[error("{0}")]
    Forbidden(String),
    /// The request itself is wrong (a flow not awaiting verification, a bad provider
    /// body) or the row it names went away meanwhile (a connection removed mid-refresh).
    #[error("{0}")]
    BadRequest(String),
    /// The provider is down, slow or answered nonsense; the connection keeps its tokens.
    /// Retryable.
    #[error("the provider could not refresh the token right now: {0}")]
    ProviderUnavailable(String),
    /// A provider that does not resolve, or a stored value that does not read back (a
    /// pending grant, a stored provider's JSON): an operator's problem, not the caller's.
    #[error("auth provider configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sealed value did not open (wrong user, provider or field; a root key removed).
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

/// Per-user OAuth for the whole gateway: one per process, shared behind an `Arc` by the
/// REST API, MCP and the executor, and built the same way by the CLI.
///
/// What it answers, by caller:
/// - the executor: [`grant`](Self::grant) (the user's token for a requirement, refreshed
///   when due, else [`AuthError::NeedsAuthorization`] with a flow) and
///   [`grant_after_rejection`](Self::grant_after_rejection) when a worker says the token
///   was refused;
/// - `/v1/auth/*` and the browser: [`authorize`](Self::authorize),
///   [`follow_link`](Self::follow_link), [`callback`](Self::callback),
///   [`confirm_user`](Self::confirm_user), [`status`](Self::status);
/// - the admin API and CLI: providers ([`put_provider`](Self::put_provider),
///   [`provider_views`](Self::provider_views)...), connections
///   ([`list_connections`](Self::list_connections),
///   [`revoke_connection`](Self::revoke_connection)), [`delete_user`](Self::delete_user),
///   and [`keys`](Self::keys) for `vault rotate`.
///
/// Every token, verifier and client secret is sealed under the user's data key before it
/// reaches the store, and opened only into a [`SecretString`]. State shared between
/// replicas lives in the store (flows, connections, the version that makes refresh run
/// once); what this holds in memory (data keys, connection rows, providers) is a cache
/// that [`run_upkeep`](Self::run_upkeep) keeps honest. Run that beside the server.
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
    /// Flow and token expiry, and the connection cache's TTL, by this clock; tests
    /// advance it instead of sleeping.
    clock: Clock,
}

impl AuthService {
    /// `http` must be the guarded client (`net::guarded_client`) that enforces the
    /// outbound policy; say which with [`with_outbound_policy`](Self::with_outbound_policy).
    /// `public_url` is where browsers reach this gateway (the redirect URI is built from
    /// it). Nothing is read from the store until the first call.
    pub fn new(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        providers: ProviderRegistry,
        http: reqwest::Client,
        public_url: &str,
        settings: OAuthSettings,
        clock: Clock,
    ) -> Self {
        Self {
            keys: UserKeys::new(store.clone(), vault, clock.clone()),
            store,
            providers,
            http,
            outbound: crate::net::OutboundPolicy::default(),
            public_url: public_url.trim_end_matches('/').to_string(),
            settings,
            flow_changed: tokio::sync::Notify::new(),
            refresh: grants::RefreshCoordinator::new(),
            connections: connection_cache::ConnectionCache::new(clock.clone()),
            clock,
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

    /// The clock flows and tokens expire by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now, in ms since the epoch, by [`AuthService::clock`].
    fn now(&self) -> i64 {
        self.clock.now_ms()
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
        self.providers
            .reload(self.store.as_ref(), &self.keys, &self.clock)
            .await
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
