//! `auth.providers[]` entries resolved into [`Provider`]s.
//!
//! Three shapes are read, and may be mixed with a built-in template:
//! - Arcade's long form: `oauth2{scope_delimiter, pkce{enabled, code_challenge_method},
//!   authorize_request, token_request, refresh_request, user_info_request}`, each request
//!   with `endpoint`, `params` (values may hold `{{placeholders}}`), `auth_method`,
//!   `request_content_type`, `response_map` (dotted paths such as `$.authed_user.id`).
//! - The short custom form: `authorization{url, method}`, `token{url, method,
//!   auth_method}`, `scopes[]`.
//! - Our additions: `revoke{url}` (or `oauth2.revoke_request.endpoint`), `user_info{url,
//!   id_path}`, `oauth2.tenant` (Microsoft), `token_lifetime` (sandbox only).
//!
//! PKCE (S256) is on for every provider, custom ones included, unless the entry says
//! `oauth2.pkce.enabled: false` (in either form) or the catalog knows the service cannot
//! take it (Slack, LinkedIn...; config can turn it on there).
//!
//! Placeholders, by request: authorize `{{client_id}} {{redirect_uri}} {{scopes}}
//! {{state}} {{code_challenge}} {{code_challenge_method}} {{existing_scopes}}`; token
//! `{{client_id}} {{client_secret}} {{redirect_uri}} {{code}} {{code_verifier}}`; refresh
//! `{{client_id}} {{client_secret}} {{refresh_token}}`. A parameter that is empty, as
//! written or once filled, is left out (`code_challenge` without PKCE; `scope: ""` removes
//! the standard `scope`).
//!
//!
//! One parser per request, each reading its long and short form and then applying the
//! template: [`authorize`] (with scopes and PKCE), [`exchange`] (code exchange and
//! refresh), [`user_info`], [`revoke`]. [`request`] reads any `*_request` section,
//! [`entry`] the JSON with key paths, [`vars`] the `{{placeholders}}`. This file picks the
//! template, the client and the tenant and assembles the [`Provider`].

mod authorize;
mod entry;
mod exchange;
mod request;
mod revoke;
mod user_info;
mod vars;

use std::time::Duration;

use serde_json::{Map, Value};

use super::catalog::{Template, builtin_ids, builtin_template};
use super::{DEFAULT_TIMEOUT, Endpoints, Provider, ProviderSource, Quirks};
use crate::config::{AuthProviderConfig, SecretValue, parse_duration};
use entry::{Entry, Obj, UrlFiller};
pub(crate) use vars::Vars;

/// A provider entry that cannot be used; `path` is relative to the entry
/// (`oauth2.token_request.endpoint`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ProviderConfigError {
    pub path: String,
    pub message: String,
}

fn err<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, ProviderConfigError> {
    Err(ProviderConfigError {
        path: path.into(),
        message: message.into(),
    })
}

/// The sandbox's client when none is configured: it is the gateway's own server.
pub const SANDBOX_CLIENT_ID: &str = switchboard_sandbox::DEFAULT_CLIENT_ID;
pub const SANDBOX_CLIENT_SECRET: &str = switchboard_sandbox::DEFAULT_CLIENT_SECRET;
/// Microsoft's tenant when `oauth2.tenant` is not set: any account.
pub const DEFAULT_MICROSOFT_TENANT: &str = "common";

/// Resolves one config entry. `public_url` is the gateway's own (`api.public_url`), for
/// the sandbox's endpoints.
pub fn resolve_provider(
    cfg: &AuthProviderConfig,
    public_url: &str,
) -> Result<Provider, ProviderConfigError> {
    if cfg.provider_type != "oauth2" {
        return err(
            "type",
            format!(
                "unsupported provider type {:?} (only oauth2)",
                cfg.provider_type
            ),
        );
    }
    let empty = Map::new();
    let entry = Entry::read(cfg, &empty)?;
    // Each request as written, in both forms; an endpoint given twice is an error here.
    let authorize = authorize::read(&entry)?;
    let exchange = exchange::read(&entry)?;
    let user_info = user_info::read(&entry)?;
    let revoke = revoke::read(&entry)?;

    // A custom provider's missing endpoint is named in the form the entry uses.
    let (authorize_path, token_path) = if authorize.short_form || exchange.short_form() {
        ("authorization.url", "token.url")
    } else {
        (
            "oauth2.authorize_request.endpoint",
            "oauth2.token_request.endpoint",
        )
    };
    let custom_endpoints = authorize.endpoint.is_some() && exchange.endpoint.is_some();
    let template = template(cfg, custom_endpoints, authorize_path, token_path)?;
    let sandbox = template.is_some_and(|t| t.provider_id == "sandbox");
    let (client_id, client_secret) = client(cfg, &entry, sandbox)?;
    let urls = UrlFiller::new(public_url, tenant(&entry, template)?, &client_id);

    // Then each request with the template applied and its URLs filled.
    let authorization = authorize.resolve(&entry, template, &urls, authorize_path)?;
    let exchange = exchange.resolve(template, &urls, token_path)?;
    let revoke = revoke.resolve(template, &urls)?;
    let user_info = user_info.resolve(template, &urls, &client_id)?;
    let token_lifetime = token_lifetime(&entry.root, sandbox)?;

    Ok(Provider {
        id: cfg.id.clone(),
        provider_id: cfg
            .provider_id
            .clone()
            .unwrap_or_else(|| "oauth2".to_owned()),
        description: cfg.description.clone(),
        builtin: template.is_some(),
        client_id,
        client_secret,
        endpoints: Endpoints {
            authorize: authorization.url,
            token: exchange.token_url,
            refresh: exchange.refresh_url,
            revoke,
            user_info,
        },
        scope_delimiter: authorization.scope_delimiter,
        pkce: authorization.pkce,
        client_auth: exchange.client_auth,
        body_format: exchange.body_format,
        authorize_params: authorization.params,
        token_params: exchange.token_params,
        refresh_params: exchange.refresh_params,
        default_scopes: authorization.default_scopes,
        token_response_map: exchange.token_response_map,
        refresh_response_map: exchange.refresh_response_map,
        quirks: template.map_or(Quirks::NONE, |t| t.quirks),
        token_lifetime,
        timeout: DEFAULT_TIMEOUT,
        source: ProviderSource::Config,
    })
}

/// The catalog template `provider_id` names. An unknown id is a custom provider only when
/// the entry gives both endpoints (`custom_endpoints`); `oauth2` or none is always custom.
fn template(
    cfg: &AuthProviderConfig,
    custom_endpoints: bool,
    authorize_path: &str,
    token_path: &str,
) -> Result<Option<&'static Template>, ProviderConfigError> {
    match cfg.provider_id.as_deref() {
        None | Some("oauth2") => Ok(None),
        Some(id) => match builtin_template(id) {
            Some(t) => Ok(Some(t)),
            None if custom_endpoints => Ok(None),
            None => err(
                "provider_id",
                format!(
                    "unknown provider_id '{id}' (built-in: {}); a custom provider needs \
                     {authorize_path} and {token_path}",
                    builtin_ids().join(", ")
                ),
            ),
        },
    }
}

/// The client id and secret: the entry's own, else Arcade's `oauth2.client_id` /
/// `oauth2.client_secret`, else (sandbox only) the sandbox's built-in client.
fn client(
    cfg: &AuthProviderConfig,
    entry: &Entry<'_>,
    sandbox: bool,
) -> Result<(String, Option<SecretValue>), ProviderConfigError> {
    let client_id = match (cfg.client_id.clone(), entry.oauth2_string("client_id")?) {
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) if sandbox => SANDBOX_CLIENT_ID.to_owned(),
        (None, None) => return err("client_id", "required"),
    };
    let client_secret = match (&cfg.client_secret, entry.oauth2_string("client_secret")?) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(s)) => Some(SecretValue::new(s)),
        (None, None) if sandbox => Some(SecretValue::new(SANDBOX_CLIENT_SECRET)),
        (None, None) => None,
    };
    Ok((client_id, client_secret))
}

/// `oauth2.tenant`: Microsoft only, for its `{tenant}` URLs.
fn tenant(
    entry: &Entry<'_>,
    template: Option<&'static Template>,
) -> Result<String, ProviderConfigError> {
    let tenant = entry.oauth2_string("tenant")?;
    if tenant.is_some() && template.is_none_or(|t| t.provider_id != "microsoft") {
        return err("oauth2.tenant", "only for provider_id microsoft");
    }
    Ok(tenant.unwrap_or_else(|| DEFAULT_MICROSOFT_TENANT.to_owned()))
}

/// `token_lifetime`: how long the sandbox's access tokens live (sandbox only).
fn token_lifetime(root: &Obj<'_>, sandbox: bool) -> Result<Option<Duration>, ProviderConfigError> {
    match root.map.get("token_lifetime") {
        None | Some(Value::Null) => Ok(None),
        Some(_) if !sandbox => err("token_lifetime", "only for provider_id sandbox"),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s > 0.0 && s.is_finite() => Ok(Some(Duration::from_secs_f64(s))),
            _ => err("token_lifetime", "must be a positive duration"),
        },
        Some(Value::String(s)) => match parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(Some(d)),
            Ok(_) => err("token_lifetime", "must be a positive duration"),
            Err(e) => err("token_lifetime", e),
        },
        Some(_) => err("token_lifetime", "must be a duration such as 5m"),
    }
}

#[cfg(test)]
mod tests;
