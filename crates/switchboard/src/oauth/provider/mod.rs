//! OAuth 2.0 providers: what a configured `auth.providers[]` entry means, and the HTTP
//! conversations with it (authorization URL, code exchange, refresh, user info, revoke).
//!
//! - [`catalog`]: built-in templates (real endpoints, quirks named in the code).
//! - [`config`]: `AuthProviderConfig` (Arcade's long form, the short custom form, our
//!   additions) resolved against a template into a [`Provider`].
//! - [`client`]: the HTTP calls; every failure becomes an [`OAuthError`] whose kind tells
//!   the caller what to do (re-authorize, retry, give up).
//! - [`token`]: token responses in every shape providers send them.
//!
//! Must not: store, cache or log tokens; know users, flows or the vault. A token given to
//! or returned by this module lives in the caller's hands. No token, code, verifier or
//! client secret appears in an error message: provider text is scrubbed of every secret
//! that was sent in the request before it goes into an [`OAuthError`].

pub mod catalog;
pub mod client;
pub mod config;
pub mod token;

use std::time::Duration;

use crate::config::SecretValue;

pub use catalog::{
    PkceSupport, Quirks, RevokeStyle, Template, TokenKind, UserInfoMethod, builtin_ids,
    builtin_template,
};
pub use config::{ProviderConfigError, resolve_provider};
pub use token::TokenSet;

/// Per request to a provider; a slower provider is `Unavailable` (retryable).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A provider ready to use: a template with config applied, or a custom one.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The config id (`google-internal`); what a requirement's `id` names.
    pub id: String,
    /// The service (`google`); what a requirement's `provider_id` names. `oauth2` for a
    /// custom provider without one.
    pub provider_id: String,
    pub description: Option<String>,
    /// True when `provider_id` named a catalog template.
    pub builtin: bool,
    pub client_id: String,
    pub client_secret: Option<SecretValue>,
    pub endpoints: Endpoints,
    pub scope_delimiter: String,
    /// Send a PKCE S256 challenge (and verifier) in this provider's flows.
    pub pkce: bool,
    pub client_auth: ClientAuth,
    /// Body format of token and refresh requests.
    pub body_format: BodyFormat,
    /// Added to the authorization URL after the standard parameters; may hold
    /// `{{placeholders}}` (see [`config`]).
    pub authorize_params: Vec<(String, String)>,
    /// Added to the code exchange body (Arcade `token_request.params`).
    pub token_params: Vec<(String, String)>,
    /// Added to the refresh body (Arcade `refresh_request.params`).
    pub refresh_params: Vec<(String, String)>,
    /// Requested on every authorization, besides what a tool asks for.
    pub default_scopes: Vec<String>,
    /// Arcade `token_request.response_map` (dotted paths), tried before the defaults.
    pub token_response_map: ResponseMap,
    /// Arcade `refresh_request.response_map`; the token one when not given.
    pub refresh_response_map: ResponseMap,
    pub quirks: Quirks,
    /// Sandbox only: lifetime of the access tokens the sandbox issues.
    pub token_lifetime: Option<Duration>,
    /// Per HTTP request to this provider.
    pub timeout: Duration,
    pub source: ProviderSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorize: String,
    pub token: String,
    /// Usually the token endpoint (Figma has its own).
    pub refresh: String,
    pub revoke: Option<RevokeEndpoint>,
    pub user_info: Option<UserInfoEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeEndpoint {
    pub url: String,
    pub style: RevokeStyle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfoEndpoint {
    pub url: String,
    pub method: UserInfoMethod,
    /// Sent with the request (API versions, Twitch's `Client-Id`).
    pub headers: Vec<(String, String)>,
    /// Where the stable user id is; `None`: `sub`, then `id`.
    pub id_path: Option<String>,
    /// Arcade `user_info_request.triggers`: fetch after the code exchange (default true)
    /// and after each refresh (default false).
    pub on_token_grant: bool,
    pub on_token_refresh: bool,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic `client_id:client_secret`.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the body.
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Form,
    Json,
}

/// Where a provider's definition came from: `engine.yaml`, or the admin API's store.
/// On an id clash the config one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderSource {
    Config,
    Store,
}

/// Dotted paths (`$.authed_user.access_token`, `data[0].id`) to pick token fields out of
/// a token response, from Arcade's `response_map`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseMap {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<String>,
    pub scope: Option<String>,
    pub token_type: Option<String>,
    pub user_id: Option<String>,
}

/// What went wrong talking to a provider, by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The grant is dead (refresh token expired, revoked or rotated away; code bad or
    /// used): the connection needs re-authorization.
    #[error("the provider refused the grant (re-authorization needed): {0}")]
    InvalidGrant(String),
    /// Any other OAuth error answer: `invalid_scope`, `bad_verification_code`, Slack's
    /// `{"ok":false,"error":...}`, a bare 4xx.
    #[error("the provider rejected the request: {error}{}", describe(.description))]
    Rejected {
        error: String,
        description: Option<String>,
    },
    /// 5xx, 429, timeout, connection failure: retry later and keep the tokens.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// A 2xx answer that is not a usable token response.
    #[error("the provider answered something unexpected: {0}")]
    BadResponse(String),
}

fn describe(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

impl OAuthError {
    /// Retrying later may succeed; the tokens in hand are still good.
    pub fn is_retryable(&self) -> bool {
        matches!(self, OAuthError::Unavailable(_))
    }

    /// The OAuth `error` code when the provider gave one (`invalid_scope`,
    /// `access_denied`), for flow failure reasons.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            OAuthError::Rejected { error, .. } => Some(error),
            OAuthError::InvalidGrant(_) => Some("invalid_grant"),
            _ => None,
        }
    }
}

impl Provider {
    /// Marks where this provider came from (resolve_provider says `Config`).
    pub fn with_source(mut self, source: ProviderSource) -> Self {
        self.source = source;
        self
    }

    /// Which token [`Provider::revoke`] wants to revoke the whole grant, if it can.
    pub fn revoke_token_kind(&self) -> Option<TokenKind> {
        self.endpoints.revoke.as_ref().map(|r| r.style.token_kind())
    }

    /// The stable user id in a user-info answer: the endpoint's path, else `sub`, else
    /// `id` (strings or numbers).
    pub fn user_id_from_info(&self, info: &serde_json::Value) -> Option<String> {
        let configured = self
            .endpoints
            .user_info
            .as_ref()
            .and_then(|u| u.id_path.as_deref());
        configured
            .into_iter()
            .chain(["sub", "id"])
            .find_map(|path| token::scalar_string(token::get_path(info, path)?))
    }

    /// Scopes as one parameter value.
    pub fn join_scopes(&self, scopes: &[String]) -> String {
        scopes.join(&self.scope_delimiter)
    }
}
