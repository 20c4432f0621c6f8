//! The authorization request: where the user is sent and what that URL carries. Reads
//! `oauth2.authorize_request` or the short `authorization{url, method}`, the top-level
//! `scopes`, `oauth2.scope_delimiter` and `oauth2.pkce`, over the template's.

use super::entry::{Entry, UrlFiller, one_of, owned_pairs};
use super::request::parse_request;
use super::{ProviderConfigError, err};
use crate::oauth::provider::catalog::{PkceSupport, Template};

const AUTHORIZE_VARS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "scopes",
    "state",
    "code_challenge",
    "code_challenge_method",
    "existing_scopes",
];

/// The authorization request as written, before a template is applied.
pub(super) struct AuthorizeRequest {
    params: Vec<(String, String)>,
    /// Written in the short form (`authorization:`).
    pub short_form: bool,
    /// The endpoint from either form, with its key path.
    pub endpoint: Option<(String, String)>,
}

/// What the authorization URL is built from.
pub(super) struct Authorization {
    pub url: String,
    pub params: Vec<(String, String)>,
    pub scope_delimiter: String,
    pub default_scopes: Vec<String>,
    pub pkce: bool,
}

pub(super) fn read(entry: &Entry<'_>) -> Result<AuthorizeRequest, ProviderConfigError> {
    let request = parse_request(entry.oauth2_obj("authorize_request")?, AUTHORIZE_VARS)?;
    let short = entry.short_form("authorization", &["url", "method"], &["GET"])?;
    Ok(AuthorizeRequest {
        endpoint: one_of(&request.endpoint, &short.url)?,
        params: request.params,
        short_form: short.section.is_some(),
    })
}

impl AuthorizeRequest {
    /// `required_path` names the missing endpoint of a custom provider.
    pub fn resolve(
        self,
        entry: &Entry<'_>,
        template: Option<&'static Template>,
        urls: &UrlFiller<'_>,
        required_path: &str,
    ) -> Result<Authorization, ProviderConfigError> {
        let url = urls.required(
            &self.endpoint,
            template.map(|t| t.authorize_url),
            required_path,
        )?;
        let scope_delimiter = match entry.oauth2_string("scope_delimiter")? {
            Some(d) => d,
            None => template.map_or(" ", |t| t.scope_delimiter).to_owned(),
        };
        let pkce = pkce(entry, template)?;

        let mut params = owned_pairs(template.map(|t| t.authorize_params));
        for (k, v) in self.params {
            match params.iter_mut().find(|(key, _)| *key == k) {
                Some(existing) => existing.1 = v,
                None => params.push((k, v)),
            }
        }

        let mut default_scopes: Vec<String> = template
            .map(|t| t.default_scopes)
            .unwrap_or_default()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for scope in entry
            .root
            .strings("scopes", &scope_delimiter)?
            .unwrap_or_default()
        {
            if !default_scopes.contains(&scope) {
                default_scopes.push(scope);
            }
        }
        Ok(Authorization {
            url,
            params,
            scope_delimiter,
            default_scopes,
            pkce,
        })
    }
}

/// `oauth2.pkce`, over what the catalog knows of the service.
fn pkce(
    entry: &Entry<'_>,
    template: Option<&'static Template>,
) -> Result<bool, ProviderConfigError> {
    // A custom provider gets S256 unless its config opts out: without PKCE a stolen code
    // can be injected into another user's flow, and a server that does not know the
    // parameters must ignore them (RFC 6749 §3.1, §3.2).
    let support = template.map_or(PkceSupport::On, |t| t.pkce);
    let Some(pkce) = entry.oauth2_obj("pkce")? else {
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
