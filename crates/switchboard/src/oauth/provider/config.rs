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
//! Errors name the key path relative to the provider entry and never hold a value.

use std::time::Duration;

use serde_json::{Map, Value};

use super::catalog::{PkceSupport, Template, UserInfoMethod, builtin_ids, builtin_template};
use super::token::path_segments;
use super::{
    BodyFormat, ClientAuth, DEFAULT_TIMEOUT, Endpoints, Provider, ProviderSource, Quirks,
    ResponseMap, RevokeEndpoint, RevokeStyle, UserInfoEndpoint,
};
use crate::config::{AuthProviderConfig, SecretValue, parse_duration};

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
pub const SANDBOX_CLIENT_ID: &str = "sandbox-client";
pub const SANDBOX_CLIENT_SECRET: &str = "sandbox-secret";
/// Microsoft's tenant when `oauth2.tenant` is not set: any account.
pub const DEFAULT_MICROSOFT_TENANT: &str = "common";

const TOP_KEYS: &[&str] = &[
    "oauth2",
    "authorization",
    "token",
    "scopes",
    "revoke",
    "user_info",
    "token_lifetime",
];
const OAUTH2_KEYS: &[&str] = &[
    "scope_delimiter",
    "pkce",
    "authorize_request",
    "token_request",
    "refresh_request",
    "user_info_request",
    "revoke_request",
    // Arcade's admin API form carries the client inside `oauth2`.
    "client_id",
    "client_secret",
    // Ours: Microsoft's `{tenant}`.
    "tenant",
    // Arcade: accepted and not used (no introspection here).
    "token_introspection_request",
];
const REQUEST_KEYS: &[&str] = &[
    "endpoint",
    "method",
    "auth_method",
    "params",
    "request_content_type",
    "response_content_type",
    "response_map",
    "triggers",
    // Arcade fields with no effect here: answers are parsed whatever their format.
    "auth_header_value_format",
    "expiration_format",
];
const RESPONSE_MAP_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "expires_in",
    "scope",
    "token_type",
    "user_id",
];

const AUTHORIZE_VARS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "scopes",
    "state",
    "code_challenge",
    "code_challenge_method",
    "existing_scopes",
];
const TOKEN_VARS: &[&str] = &[
    "client_id",
    "client_secret",
    "redirect_uri",
    "code",
    "code_verifier",
];
const REFRESH_VARS: &[&str] = &["client_id", "client_secret", "refresh_token"];

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
    let root = match &cfg.extra {
        Value::Object(map) => Obj::root(map),
        Value::Null => Obj::root(&empty),
        _ => return err("", "a provider entry must be a mapping"),
    };
    root.check_keys(TOP_KEYS)?;
    let oauth2 = root.obj("oauth2")?;
    if let Some(o) = &oauth2 {
        o.check_keys(OAUTH2_KEYS)?;
    }
    let sub = |key: &str| -> Result<Option<Obj<'_>>, ProviderConfigError> {
        match &oauth2 {
            Some(o) => o.obj(key),
            None => Ok(None),
        }
    };
    let authorize_req = parse_request(sub("authorize_request")?, AUTHORIZE_VARS)?;
    let token_req = parse_request(sub("token_request")?, TOKEN_VARS)?;
    let refresh_req = parse_request(sub("refresh_request")?, REFRESH_VARS)?;
    let user_info_req = parse_request(sub("user_info_request")?, &[])?;
    let revoke_req = parse_request(sub("revoke_request")?, &[])?;

    let authorization = root.obj("authorization")?;
    let token_short = root.obj("token")?;
    let revoke_short = root.obj("revoke")?;
    let user_info_short = root.obj("user_info")?;
    let short_url = |o: &Option<Obj<'_>>,
                     known: &[&str]|
     -> Result<Option<(String, String)>, ProviderConfigError> {
        let Some(o) = o else { return Ok(None) };
        o.check_keys(known)?;
        Ok(o.string("url")?.map(|u| (u, o.key_path("url"))))
    };
    let authorization_url = short_url(&authorization, &["url", "method"])?;
    let token_url = short_url(&token_short, &["url", "method", "auth_method"])?;
    let revoke_url = short_url(&revoke_short, &["url"])?;
    let user_info_url = short_url(&user_info_short, &["url", "id_path"])?;
    if let Some(a) = &authorization {
        check_method(a, &["GET"])?;
    }
    if let Some(t) = &token_short {
        check_method(t, &["POST"])?;
    }

    let authorize_override = one_of(&authorize_req.endpoint, &authorization_url)?;
    let token_override = one_of(&token_req.endpoint, &token_url)?;
    let refresh_override = refresh_req.endpoint.clone();
    let revoke_override = one_of(&revoke_req.endpoint, &revoke_url)?;
    let user_info_override = one_of(&user_info_req.endpoint, &user_info_url)?;

    let short_form = authorization.is_some() || token_short.is_some();
    let (authorize_path, token_path) = if short_form {
        ("authorization.url", "token.url")
    } else {
        (
            "oauth2.authorize_request.endpoint",
            "oauth2.token_request.endpoint",
        )
    };

    let template: Option<&'static Template> = match cfg.provider_id.as_deref() {
        None | Some("oauth2") => None,
        Some(id) => match builtin_template(id) {
            Some(t) => Some(t),
            None if authorize_override.is_some() && token_override.is_some() => None,
            None => {
                return err(
                    "provider_id",
                    format!(
                        "unknown provider_id '{id}' (built-in: {}); a custom provider needs \
                         {authorize_path} and {token_path}",
                        builtin_ids().join(", ")
                    ),
                );
            }
        },
    };
    let provider_id = cfg
        .provider_id
        .clone()
        .unwrap_or_else(|| "oauth2".to_owned());
    let sandbox = template.is_some_and(|t| t.provider_id == "sandbox");

    let client_id = match (cfg.client_id.clone(), oauth2_string(&oauth2, "client_id")?) {
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) if sandbox => SANDBOX_CLIENT_ID.to_owned(),
        (None, None) => return err("client_id", "required"),
    };
    let client_secret = match (&cfg.client_secret, oauth2_string(&oauth2, "client_secret")?) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(s)) => Some(SecretValue::new(s)),
        (None, None) if sandbox => Some(SecretValue::new(SANDBOX_CLIENT_SECRET)),
        (None, None) => None,
    };

    let tenant = oauth2_string(&oauth2, "tenant")?;
    if tenant.is_some() && template.is_none_or(|t| t.provider_id != "microsoft") {
        return err("oauth2.tenant", "only for provider_id microsoft");
    }
    let tenant = tenant.unwrap_or_else(|| DEFAULT_MICROSOFT_TENANT.to_owned());
    let fill_url = |url: &str, path: &str| -> Result<String, ProviderConfigError> {
        let client_id_segment = url::form_urlencoded::byte_serialize(client_id.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        let url = url
            .replace("{public_url}", public_url.trim_end_matches('/'))
            .replace("{tenant}", &tenant)
            .replace("{client_id}", &client_id_segment);
        check_url(&url, path)?;
        Ok(url)
    };

    // Endpoints: config overrides, else the template's, else (custom) required.
    let authorize = match (&authorize_override, template) {
        (Some((url, path)), _) => fill_url(url, path)?,
        (None, Some(t)) => fill_url(t.authorize_url, "provider_id")?,
        (None, None) => return err(authorize_path, "required for a custom provider"),
    };
    let token = match (&token_override, template) {
        (Some((url, path)), _) => fill_url(url, path)?,
        (None, Some(t)) => fill_url(t.token_url, "provider_id")?,
        (None, None) => return err(token_path, "required for a custom provider"),
    };
    let refresh = match (&refresh_override, template.and_then(|t| t.refresh_url)) {
        (Some((url, path)), _) => fill_url(url, path)?,
        // Figma: its own refresh endpoint, unless token was moved too (a test double).
        (None, Some(url)) if token_override.is_none() => fill_url(url, "provider_id")?,
        _ => token.clone(),
    };
    let revoke = match (&revoke_override, template.and_then(|t| t.revoke)) {
        (Some((url, path)), t) => Some(RevokeEndpoint {
            url: fill_url(url, path)?,
            style: t.map_or(RevokeStyle::Rfc7009, |t| t.style),
        }),
        (None, Some(t)) => Some(RevokeEndpoint {
            url: fill_url(t.url, "provider_id")?,
            style: t.style,
        }),
        (None, None) => None,
    };
    let user_info = resolve_user_info(
        template,
        &user_info_override,
        &user_info_req,
        &user_info_short,
        &client_id,
        &fill_url,
    )?;

    let scope_delimiter = match oauth2_string(&oauth2, "scope_delimiter")? {
        Some(d) => d,
        None => template.map_or(" ", |t| t.scope_delimiter).to_owned(),
    };

    let pkce = resolve_pkce(&oauth2, template)?;

    let mut client_auth = template.map_or(ClientAuth::Post, |t| t.client_auth);
    let short_auth = match &token_short {
        Some(t) => t
            .string("auth_method")?
            .map(|m| (m, t.key_path("auth_method"))),
        None => None,
    };
    // Later wins: the token request's own setting is the most specific.
    for (method, path) in [
        &refresh_req.auth_method,
        &short_auth,
        &token_req.auth_method,
    ]
    .into_iter()
    .flatten()
    {
        client_auth = parse_client_auth(method, path)?;
    }

    let body_format = token_req
        .content_type
        .or(refresh_req.content_type)
        .unwrap_or(template.map_or(BodyFormat::Form, |t| t.body_format));

    let mut authorize_params: Vec<(String, String)> = template
        .map(|t| t.authorize_params)
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for (k, v) in authorize_req.params {
        match authorize_params.iter_mut().find(|(key, _)| *key == k) {
            Some(existing) => existing.1 = v,
            None => authorize_params.push((k, v)),
        }
    }

    let mut default_scopes: Vec<String> = template
        .map(|t| t.default_scopes)
        .unwrap_or_default()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for scope in root
        .strings("scopes", &scope_delimiter)?
        .unwrap_or_default()
    {
        if !default_scopes.contains(&scope) {
            default_scopes.push(scope);
        }
    }

    let token_lifetime = match root.map.get("token_lifetime") {
        None | Some(Value::Null) => None,
        Some(_) if !sandbox => return err("token_lifetime", "only for provider_id sandbox"),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s)),
            _ => return err("token_lifetime", "must be a positive duration"),
        },
        Some(Value::String(s)) => match parse_duration(s) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => return err("token_lifetime", "must be a positive duration"),
            Err(e) => return err("token_lifetime", e),
        },
        Some(_) => return err("token_lifetime", "must be a duration such as 5m"),
    };

    let refresh_response_map = if refresh_req.response_map == ResponseMap::default() {
        token_req.response_map.clone()
    } else {
        refresh_req.response_map
    };

    Ok(Provider {
        id: cfg.id.clone(),
        provider_id,
        description: cfg.description.clone(),
        builtin: template.is_some(),
        client_id,
        client_secret,
        endpoints: Endpoints {
            authorize,
            token,
            refresh,
            revoke,
            user_info,
        },
        scope_delimiter,
        pkce,
        client_auth,
        body_format,
        authorize_params,
        token_params: token_req.params,
        refresh_params: refresh_req.params,
        default_scopes,
        token_response_map: token_req.response_map,
        refresh_response_map,
        quirks: template.map_or(Quirks::NONE, |t| t.quirks),
        token_lifetime,
        timeout: DEFAULT_TIMEOUT,
        source: ProviderSource::Config,
    })
}

fn resolve_pkce(
    oauth2: &Option<Obj<'_>>,
    template: Option<&'static Template>,
) -> Result<bool, ProviderConfigError> {
    // A custom provider gets S256 unless its config opts out: without PKCE a stolen code
    // can be injected into another user's flow, and a server that does not know the
    // parameters must ignore them (RFC 6749 §3.1, §3.2).
    let support = template.map_or(PkceSupport::On, |t| t.pkce);
    let Some(pkce) = oauth2
        .as_ref()
        .map(|o| o.obj("pkce"))
        .transpose()?
        .flatten()
    else {
        return Ok(support != PkceSupport::Off);
    };
    pkce.check_keys(&["enabled", "code_challenge_method"])?;
    if let Some(method) = pkce.string("code_challenge_method")?
        && method != "S256"
    {
        return err(
            pkce.key_path("code_challenge_method"),
            "only S256 is supported",
        );
    }
    match pkce.bool("enabled")? {
        Some(false) if support == PkceSupport::Required => err(
            pkce.key_path("enabled"),
            "this provider requires PKCE; it cannot be disabled",
        ),
        Some(enabled) => Ok(enabled),
        // A `pkce` section without `enabled` means it is wanted.
        None => Ok(true),
    }
}

fn resolve_user_info(
    template: Option<&'static Template>,
    url_override: &Option<(String, String)>,
    request: &RequestCfg,
    short: &Option<Obj<'_>>,
    client_id: &str,
    fill_url: &dyn Fn(&str, &str) -> Result<String, ProviderConfigError>,
) -> Result<Option<UserInfoEndpoint>, ProviderConfigError> {
    let base = template.and_then(|t| t.user_info);
    let mut url = match (url_override, base) {
        (Some((url, path)), _) => fill_url(url, path)?,
        (None, Some(b)) => fill_url(b.url, "provider_id")?,
        (None, None) => return Ok(None),
    };
    let mut method = base.map_or(UserInfoMethod::Get, |b| b.method);
    if let Some((m, path)) = &request.method {
        method = match m.as_str() {
            "GET" => UserInfoMethod::Get,
            "POST" if matches!(method, UserInfoMethod::PostJson(_)) => method,
            "POST" => UserInfoMethod::PostEmpty,
            _ => return err(path.as_str(), "must be GET or POST"),
        };
    }
    if !request.params.is_empty() {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&request.params)
            .finish();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query);
    }
    let mut headers: Vec<(String, String)> = base
        .map(|b| b.headers)
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if let Some(name) = base.and_then(|b| b.client_id_header) {
        headers.push((name.to_owned(), client_id.to_owned()));
    }
    let mut id_path = base.map(|b| b.id_path.to_owned());
    if let Some(path) = &request.response_map.user_id {
        id_path = Some(path.clone());
    }
    if let Some(short) = short
        && let Some(path) = short.string("id_path")?
    {
        if path_segments(&path).is_none() {
            return err(
                short.key_path("id_path"),
                "not a dotted path such as $.data.id",
            );
        }
        id_path = Some(path);
    }
    Ok(Some(UserInfoEndpoint {
        url,
        method,
        headers,
        id_path,
        on_token_grant: request.triggers.0.unwrap_or(true),
        on_token_refresh: request.triggers.1.unwrap_or(false),
    }))
}

/// One of Arcade's `*_request` sections.
#[derive(Default)]
struct RequestCfg {
    /// (value, key path) pairs, so later errors can name where a value came from.
    endpoint: Option<(String, String)>,
    method: Option<(String, String)>,
    auth_method: Option<(String, String)>,
    params: Vec<(String, String)>,
    content_type: Option<BodyFormat>,
    response_map: ResponseMap,
    triggers: (Option<bool>, Option<bool>),
}

fn parse_request(obj: Option<Obj<'_>>, vars: &[&str]) -> Result<RequestCfg, ProviderConfigError> {
    let Some(o) = obj else {
        return Ok(RequestCfg::default());
    };
    o.check_keys(REQUEST_KEYS)?;
    let with_path = |key: &str| -> Result<Option<(String, String)>, ProviderConfigError> {
        Ok(o.string(key)?.map(|v| (v, o.key_path(key))))
    };
    let mut cfg = RequestCfg {
        endpoint: with_path("endpoint")?,
        method: with_path("method")?.map(|(m, p)| (m.to_ascii_uppercase(), p)),
        auth_method: with_path("auth_method")?,
        ..RequestCfg::default()
    };
    let name = o.path.rsplit('.').next().unwrap_or_default();
    let allowed_methods: &[&str] = match name {
        "authorize_request" => &["GET"],
        "user_info_request" => &["GET", "POST"],
        _ => &["POST"],
    };
    check_method(&o, allowed_methods)?;

    if let Some(params) = o.obj("params")? {
        for (key, value) in params.map {
            let path = params.key_path(key);
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return err(path, "must be a string"),
            };
            for var in placeholders(&value) {
                if !vars.contains(&var) {
                    let allowed = if vars.is_empty() {
                        "none here".to_owned()
                    } else {
                        vars.iter()
                            .map(|v| format!("{{{{{v}}}}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    };
                    return err(
                        path,
                        format!("unknown placeholder {{{{{var}}}}} (allowed: {allowed})"),
                    );
                }
            }
            cfg.params.push((key.clone(), value));
        }
    }
    cfg.content_type = match o.string("request_content_type")?.as_deref() {
        None => None,
        Some("application/x-www-form-urlencoded") => Some(BodyFormat::Form),
        Some("application/json") => Some(BodyFormat::Json),
        Some(_) => {
            return err(
                o.key_path("request_content_type"),
                "must be application/x-www-form-urlencoded or application/json",
            );
        }
    };
    if let Some(map) = o.obj("response_map")? {
        for (key, value) in map.map {
            let path = map.key_path(key);
            let Some(expr) = value.as_str() else {
                return err(path, "must be a path such as $.access_token");
            };
            if path_segments(expr).is_none() {
                return err(
                    path,
                    "only dotted paths are supported (e.g. $.authed_user.access_token)",
                );
            }
            let slot = match key.as_str() {
                "access_token" => &mut cfg.response_map.access_token,
                "refresh_token" => &mut cfg.response_map.refresh_token,
                "expires_in" => &mut cfg.response_map.expires_in,
                "scope" | "scopes" => &mut cfg.response_map.scope,
                "token_type" => &mut cfg.response_map.token_type,
                "user_id" | "id" => &mut cfg.response_map.user_id,
                _ => {
                    return err(
                        path,
                        format!(
                            "unsupported response_map key (supported: {})",
                            RESPONSE_MAP_KEYS.join(", ")
                        ),
                    );
                }
            };
            *slot = Some(expr.to_owned());
        }
    }
    if let Some(triggers) = o.obj("triggers")? {
        triggers.check_keys(&["on_token_grant", "on_token_refresh"])?;
        cfg.triggers = (
            triggers.bool("on_token_grant")?,
            triggers.bool("on_token_refresh")?,
        );
    }
    Ok(cfg)
}

fn check_method(o: &Obj<'_>, allowed: &[&str]) -> Result<(), ProviderConfigError> {
    if let Some(method) = o.string("method")?
        && !allowed.contains(&method.to_ascii_uppercase().as_str())
    {
        return err(
            o.key_path("method"),
            format!("must be {}", allowed.join(" or ")),
        );
    }
    Ok(())
}

fn parse_client_auth(method: &str, path: &str) -> Result<ClientAuth, ProviderConfigError> {
    match method {
        "" | "client_secret_post" => Ok(ClientAuth::Post),
        "client_secret_basic" => Ok(ClientAuth::Basic),
        _ => err(path, "must be client_secret_post or client_secret_basic"),
    }
}

/// The endpoint given by the long or the short form; both is ambiguous.
fn one_of(
    long: &Option<(String, String)>,
    short: &Option<(String, String)>,
) -> Result<Option<(String, String)>, ProviderConfigError> {
    match (long, short) {
        (Some((_, long_path)), Some((_, short_path))) => err(
            short_path.as_str(),
            format!("give either this or {long_path}, not both"),
        ),
        (Some(x), None) | (None, Some(x)) => Ok(Some(x.clone())),
        (None, None) => Ok(None),
    }
}

fn check_url(url: &str, path: &str) -> Result<(), ProviderConfigError> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        _ => err(path, "must be an absolute http(s) URL"),
    }
}

fn oauth2_string(
    oauth2: &Option<Obj<'_>>,
    key: &str,
) -> Result<Option<String>, ProviderConfigError> {
    match oauth2 {
        Some(o) => o.string(key),
        None => Ok(None),
    }
}

/// The `{{name}}` placeholders in a parameter value.
pub(crate) fn placeholders(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        let start = rest.find("{{")?;
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        rest = &after[end + 2..];
        Some(after[..end].trim())
    })
}

/// Values for placeholders in one request; `None` fills as empty.
#[derive(Default)]
pub(crate) struct Vars<'a> {
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub scopes: Option<&'a str>,
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> &str {
        let value = match name {
            "client_id" => self.client_id,
            "client_secret" => self.client_secret,
            "redirect_uri" => self.redirect_uri,
            "scopes" => self.scopes,
            "state" => self.state,
            "code" => self.code,
            "code_verifier" => self.code_verifier,
            "code_challenge" => self.code_challenge,
            "refresh_token" => self.refresh_token,
            "code_challenge_method" => self.code_challenge.map(|_| "S256"),
            // Our scopes are already the union of old and new.
            _ => None,
        };
        value.unwrap_or("")
    }

    /// Fills `{{name}}`s; `None` when the value is empty (as configured, or once filled):
    /// the parameter is then left out, so `scope: ""` removes the standard one.
    fn fill(&self, value: &str) -> Option<String> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        let mut had = false;
        while let Some(start) = rest.find("{{") {
            let Some(end) = rest[start + 2..].find("}}") else {
                break;
            };
            had = true;
            out.push_str(&rest[..start]);
            out.push_str(self.get(rest[start + 2..start + 2 + end].trim()));
            rest = &rest[start + 2 + end + 2..];
        }
        out.push_str(rest);
        let value = if had { out.trim().to_owned() } else { out };
        (!value.is_empty()).then_some(value)
    }

    /// Applies configured parameters over `params`: same key replaces, new key appends,
    /// a placeholder that fills to nothing removes.
    pub fn merge(&self, params: &mut Vec<(String, String)>, extra: &[(String, String)]) {
        for (key, value) in extra {
            match self.fill(value) {
                Some(v) => match params.iter_mut().find(|(k, _)| k == key) {
                    Some(existing) => existing.1 = v,
                    None => params.push((key.clone(), v)),
                },
                None => params.retain(|(k, _)| k != key),
            }
        }
    }
}

/// A JSON object in the entry, with its key path for errors.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn root(map: &'a Map<String, Value>) -> Self {
        Obj {
            map,
            path: String::new(),
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn check_keys(&self, known: &[&str]) -> Result<(), ProviderConfigError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => err(
                self.key_path(key),
                format!("unknown key (known here: {})", known.join(", ")),
            ),
            None => Ok(()),
        }
    }

    fn obj(&self, key: &str) -> Result<Option<Obj<'a>>, ProviderConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj {
                map,
                path: self.key_path(key),
            })),
            Some(_) => err(self.key_path(key), "must be a mapping"),
        }
    }

    /// A string (numbers accepted as written); empty counts as absent.
    fn string(&self, key: &str) -> Result<Option<String>, ProviderConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => err(self.key_path(key), "must be a string"),
        }
    }

    /// A boolean, or `true`/`false` as text (what `${env:...}` expands to).
    fn bool(&self, key: &str) -> Result<Option<bool>, ProviderConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => err(self.key_path(key), "must be true or false"),
        }
    }

    /// A list of strings, or one string split on `delimiter`.
    fn strings(
        &self,
        key: &str,
        delimiter: &str,
    ) -> Result<Option<Vec<String>>, ProviderConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(delimiter)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    _ => err(format!("{}[{i}]", self.key_path(key)), "must be a string"),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => err(self.key_path(key), "must be a list of strings"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PUBLIC: &str = "http://localhost:9099/";

    fn entry(provider_id: Option<&str>, extra: Value) -> AuthProviderConfig {
        AuthProviderConfig {
            id: "p".into(),
            description: None,
            enabled: true,
            provider_type: "oauth2".into(),
            provider_id: provider_id.map(str::to_owned),
            client_id: Some("cid".into()),
            client_secret: Some(SecretValue::new("csecret")),
            extra,
        }
    }

    fn fails(cfg: AuthProviderConfig) -> String {
        resolve_provider(&cfg, PUBLIC).unwrap_err().to_string()
    }

    #[test]
    fn a_builtin_provider_needs_only_its_client() {
        let p = resolve_provider(&entry(Some("google"), json!({})), PUBLIC).unwrap();
        assert_eq!(p.provider_id, "google");
        assert_eq!(p.endpoints.token, "https://oauth2.googleapis.com/token");
        assert_eq!(p.endpoints.refresh, p.endpoints.token);
        assert!(p.pkce && p.builtin);
        assert_eq!(p.source, ProviderSource::Config);
    }

    #[test]
    fn arcades_long_form_makes_a_custom_provider() {
        let cfg = entry(
            None,
            json!({"oauth2": {
                "scope_delimiter": ",",
                "pkce": {"enabled": true, "code_challenge_method": "S256"},
                "authorize_request": {"endpoint": "https://h.example/auth",
                    "params": {"response_type": "code", "client_id": "{{client_id}}",
                               "audience": "api"}},
                "token_request": {"endpoint": "https://h.example/token",
                    "auth_method": "client_secret_basic",
                    "request_content_type": "application/json",
                    "params": {"grant_type": "authorization_code", "code": "{{code}}"},
                    "response_map": {"access_token": "$.data.token"}},
                "refresh_request": {"endpoint": "https://h.example/refresh"},
                "user_info_request": {"endpoint": "https://h.example/me",
                    "triggers": {"on_token_grant": true, "on_token_refresh": true}}
            }}),
        );
        let p = resolve_provider(&cfg, PUBLIC).unwrap();
        assert_eq!(p.provider_id, "oauth2");
        assert!(!p.builtin && p.pkce);
        assert_eq!(p.scope_delimiter, ",");
        assert_eq!(p.client_auth, ClientAuth::Basic);
        assert_eq!(p.body_format, BodyFormat::Json);
        assert_eq!(p.endpoints.refresh, "https://h.example/refresh");
        assert_eq!(
            p.token_response_map.access_token.as_deref(),
            Some("$.data.token")
        );
        assert_eq!(p.refresh_response_map, p.token_response_map);
        let ui = p.endpoints.user_info.unwrap();
        assert!(ui.on_token_refresh);
        assert_eq!(p.authorize_params.len(), 3);
    }

    #[test]
    fn the_seeds_short_custom_form_makes_a_custom_provider() {
        let cfg = entry(
            None,
            json!({
                "authorization": {"url": "https://auth.example.com/oauth/authorize", "method": "GET"},
                "token": {"url": "https://auth.example.com/oauth/token", "method": "POST",
                          "auth_method": "client_secret_post"},
                "scopes": ["read", "write"],
                "revoke": {"url": "https://auth.example.com/oauth/revoke"},
                "user_info": {"url": "https://auth.example.com/me", "id_path": "$.user.id"}
            }),
        );
        let p = resolve_provider(&cfg, PUBLIC).unwrap();
        assert_eq!(
            p.endpoints.authorize,
            "https://auth.example.com/oauth/authorize"
        );
        assert_eq!(p.client_auth, ClientAuth::Post);
        assert_eq!(p.default_scopes, ["read", "write"]);
        assert!(
            p.pkce,
            "a custom provider uses PKCE unless its config opts out"
        );
        assert_eq!(p.endpoints.revoke.unwrap().style, RevokeStyle::Rfc7009);
        assert_eq!(
            p.endpoints.user_info.unwrap().id_path.as_deref(),
            Some("$.user.id")
        );
    }

    #[test]
    fn a_builtins_endpoints_can_be_overridden_in_either_form() {
        let long = entry(
            Some("github"),
            json!({"oauth2": {"token_request": {"endpoint": "http://127.0.0.1:1/token"},
                              "user_info_request": {"endpoint": "http://127.0.0.1:1/user"}}}),
        );
        let p = resolve_provider(&long, PUBLIC).unwrap();
        assert_eq!(p.endpoints.token, "http://127.0.0.1:1/token");
        assert_eq!(p.endpoints.refresh, "http://127.0.0.1:1/token");
        assert_eq!(
            p.endpoints.authorize,
            "https://github.com/login/oauth/authorize"
        );
        assert!(p.quirks.form_encoded_unless_json_accepted);
        let ui = p.endpoints.user_info.unwrap();
        assert_eq!(ui.url, "http://127.0.0.1:1/user");
        assert_eq!(ui.id_path.as_deref(), Some("id"));

        let short = entry(
            Some("google"),
            json!({"authorization": {"url": "http://127.0.0.1:1/auth"}}),
        );
        let p = resolve_provider(&short, PUBLIC).unwrap();
        assert_eq!(p.endpoints.authorize, "http://127.0.0.1:1/auth");
        assert!(
            p.authorize_params
                .iter()
                .any(|(k, v)| k == "access_type" && v == "offline")
        );
    }

    #[test]
    fn an_unknown_provider_id_without_endpoints_lists_the_builtins() {
        let msg = fails(entry(Some("myspace"), json!({})));
        assert!(msg.starts_with("provider_id: unknown provider_id 'myspace' (built-in: asana,"));
        assert!(msg.contains("google"));
    }

    #[test]
    fn an_unknown_provider_id_with_endpoints_is_a_custom_provider() {
        let cfg = entry(
            Some("hooli"),
            json!({"authorization": {"url": "https://hooli.example/a"},
                   "token": {"url": "https://hooli.example/t"}}),
        );
        let p = resolve_provider(&cfg, PUBLIC).unwrap();
        assert_eq!(p.provider_id, "hooli");
        assert!(!p.builtin);
    }

    #[test]
    fn a_custom_provider_without_a_token_endpoint_names_the_key() {
        let cfg = entry(
            None,
            json!({"oauth2": {"authorize_request": {"endpoint": "https://h.example/a"}}}),
        );
        assert_eq!(
            fails(cfg),
            "oauth2.token_request.endpoint: required for a custom provider"
        );
        let short = entry(
            None,
            json!({"authorization": {"url": "https://h.example/a"}}),
        );
        assert_eq!(fails(short), "token.url: required for a custom provider");
    }

    #[test]
    fn a_missing_client_id_is_an_error_except_for_the_sandbox() {
        let mut cfg = entry(Some("slack"), json!({}));
        cfg.client_id = None;
        assert_eq!(fails(cfg), "client_id: required");

        let mut sandbox = entry(Some("sandbox"), json!({"token_lifetime": "90s"}));
        sandbox.client_id = None;
        sandbox.client_secret = None;
        let p = resolve_provider(&sandbox, PUBLIC).unwrap();
        assert_eq!(p.client_id, SANDBOX_CLIENT_ID);
        assert_eq!(p.client_secret.unwrap().expose(), SANDBOX_CLIENT_SECRET);
        assert_eq!(
            p.endpoints.authorize,
            "http://localhost:9099/sandbox/oauth/authorize"
        );
        assert_eq!(
            p.endpoints.user_info.unwrap().url,
            "http://localhost:9099/sandbox/api/me"
        );
        assert_eq!(
            p.endpoints.revoke.unwrap().url,
            "http://localhost:9099/sandbox/oauth/revoke"
        );
        assert_eq!(p.token_lifetime, Some(Duration::from_secs(90)));
        assert!(p.pkce);
        assert_eq!(p.client_auth, ClientAuth::Post);
    }

    #[test]
    fn the_client_may_come_from_arcades_oauth2_section() {
        let mut cfg = entry(
            Some("zoom"),
            json!({"oauth2": {"client_id": "inner", "client_secret": "s2"}}),
        );
        cfg.client_id = None;
        cfg.client_secret = None;
        let p = resolve_provider(&cfg, PUBLIC).unwrap();
        assert_eq!(p.client_id, "inner");
        assert_eq!(p.client_auth, ClientAuth::Basic);
    }

    #[test]
    fn a_non_oauth2_type_is_refused() {
        let mut cfg = entry(Some("google"), json!({}));
        cfg.provider_type = "saml".into();
        assert!(fails(cfg).starts_with("type: unsupported provider type"));
    }

    #[test]
    fn microsofts_tenant_defaults_to_common_and_can_be_set() {
        let p = resolve_provider(&entry(Some("microsoft"), json!({})), PUBLIC).unwrap();
        assert!(
            p.endpoints
                .authorize
                .contains("/common/oauth2/v2.0/authorize")
        );
        assert!(p.default_scopes.contains(&"offline_access".to_owned()));
        let cfg = entry(
            Some("microsoft"),
            json!({"oauth2": {"tenant": "contoso.onmicrosoft.com"}}),
        );
        let p = resolve_provider(&cfg, PUBLIC).unwrap();
        assert_eq!(
            p.endpoints.token,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(
            fails(entry(Some("google"), json!({"oauth2": {"tenant": "x"}})))
                .starts_with("oauth2.tenant:")
        );
    }

    #[test]
    fn pkce_follows_the_catalog_and_config_but_x_cannot_turn_it_off() {
        let on = |id, extra| {
            resolve_provider(&entry(Some(id), extra), PUBLIC)
                .unwrap()
                .pkce
        };
        assert!(!on("slack", json!({})));
        assert!(on("slack", json!({"oauth2": {"pkce": {"enabled": true}}})));
        assert!(!on(
            "google",
            json!({"oauth2": {"pkce": {"enabled": false}}})
        ));
        assert_eq!(
            fails(entry(
                Some("x"),
                json!({"oauth2": {"pkce": {"enabled": false}}})
            )),
            "oauth2.pkce.enabled: this provider requires PKCE; it cannot be disabled"
        );
        assert!(
            fails(entry(
                Some("x"),
                json!({"oauth2": {"pkce": {"enabled": true, "code_challenge_method": "plain"}}})
            ))
            .starts_with("oauth2.pkce.code_challenge_method:")
        );
    }

    #[test]
    fn a_custom_provider_uses_pkce_by_default_and_can_opt_out() {
        let endpoints = json!({"authorization": {"url": "https://h.example/a"},
                               "token": {"url": "https://h.example/t"}});
        let custom = |extra: Value| resolve_provider(&entry(None, extra), PUBLIC).unwrap().pkce;
        assert!(custom(endpoints.clone()));
        let mut off = endpoints.clone();
        off["oauth2"] = json!({"pkce": {"enabled": false}});
        assert!(!custom(off));
        let long = json!({"oauth2": {
            "authorize_request": {"endpoint": "https://h.example/a"},
            "token_request": {"endpoint": "https://h.example/t"}}});
        assert!(custom(long.clone()));
        let mut off = long;
        off["oauth2"]["pkce"] = json!({"enabled": "false"});
        assert!(!custom(off));
        // An unknown service with its own endpoints is custom too.
        assert!(
            resolve_provider(&entry(Some("hooli"), endpoints), PUBLIC)
                .unwrap()
                .pkce
        );
    }

    #[test]
    fn mistakes_are_named_by_their_key_path() {
        let cases = [
            (
                json!({"oauth2": {"token_request": {"endpoint": "not a url"}}}),
                "oauth2.token_request.endpoint: must be an absolute http(s) URL",
            ),
            (
                json!({"oauth2": {"tokn_request": {}}}),
                "oauth2.tokn_request: unknown key",
            ),
            (
                json!({"token": {"url": "https://a.example/t", "auth_method": "private_key_jwt"}}),
                "token.auth_method: must be",
            ),
            (
                json!({"oauth2": {"authorize_request": {"params": {"secret": "{{client_secret}}"}}}}),
                "oauth2.authorize_request.params.secret: unknown placeholder {{client_secret}}",
            ),
            (
                json!({"oauth2": {"token_request": {"response_map": {"access_token": "$..token"}}}}),
                "oauth2.token_request.response_map.access_token: only dotted paths",
            ),
            (
                json!({"oauth2": {"token_request": {"endpoint": "https://a.example/t"}}, "token": {"url": "https://a.example/t"}}),
                "token.url: give either this or oauth2.token_request.endpoint",
            ),
            (
                json!({"token_lifetime": "5m"}),
                "token_lifetime: only for provider_id sandbox",
            ),
            (
                json!({"oauth2": {"token_request": {"method": "GET"}}}),
                "oauth2.token_request.method: must be POST",
            ),
        ];
        for (extra, expected) in cases {
            let msg = fails(entry(Some("google"), extra));
            assert!(msg.starts_with(expected), "{msg}");
        }
    }

    #[test]
    fn placeholders_fill_and_empty_ones_drop_the_parameter() {
        let vars = Vars {
            client_id: Some("cid"),
            state: Some("st"),
            ..Vars::default()
        };
        let mut params = vec![("client_id".to_owned(), "old".to_owned())];
        vars.merge(
            &mut params,
            &[
                ("client_id".into(), "{{client_id}}".into()),
                ("state".into(), "x-{{ state }}".into()),
                ("code_challenge".into(), "{{code_challenge}}".into()),
                ("scope".into(), "{{scopes}} {{existing_scopes}}".into()),
                ("client_id".into(), "".into()),
            ],
        );
        assert_eq!(params, [("state".to_owned(), "x-st".to_owned())]);
        assert_eq!(
            placeholders("a {{b}} {{ c }}").collect::<Vec<_>>(),
            ["b", "c"]
        );
    }
}
