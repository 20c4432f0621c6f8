//! The token requests: the code exchange (`oauth2.token_request`, or the short
//! `token{url, method, auth_method}`) and the refresh (`oauth2.refresh_request`), which takes
//! from the code exchange what it does not set (endpoint, body format, response map).

use super::entry::{Entry, Obj, UrlFiller, one_of};
use super::request::{RequestCfg, parse_request};
use super::{ProviderConfigError, err};
use crate::oauth::provider::catalog::Template;
use crate::oauth::provider::{BodyFormat, ClientAuth, ResponseMap};

const TOKEN_VARS: &[&str] = &[
    "client_id",
    "client_secret",
    "redirect_uri",
    "code",
    "code_verifier",
];
const REFRESH_VARS: &[&str] = &["client_id", "client_secret", "refresh_token"];

/// Both token requests as written, before a template is applied.
pub(super) struct TokenRequests<'a> {
    token: RequestCfg,
    refresh: RequestCfg,
    /// `token`, the short form, when given.
    short: Option<Obj<'a>>,
    /// The code exchange's endpoint from either form, with its key path.
    pub endpoint: Option<(String, String)>,
}

/// How code exchanges and refreshes are sent and read.
pub(super) struct Exchange {
    pub token_url: String,
    pub refresh_url: String,
    pub client_auth: ClientAuth,
    pub body_format: BodyFormat,
    pub token_params: Vec<(String, String)>,
    pub refresh_params: Vec<(String, String)>,
    pub token_response_map: ResponseMap,
    pub refresh_response_map: ResponseMap,
}

pub(super) fn read<'a>(entry: &Entry<'a>) -> Result<TokenRequests<'a>, ProviderConfigError> {
    let token = parse_request(entry.oauth2_obj("token_request")?, TOKEN_VARS)?;
    let refresh = parse_request(entry.oauth2_obj("refresh_request")?, REFRESH_VARS)?;
    let short = entry.short_form("token", &["url", "method", "auth_method"], &["POST"])?;
    Ok(TokenRequests {
        endpoint: one_of(&token.endpoint, &short.url)?,
        token,
        refresh,
        short: short.section,
    })
}

impl TokenRequests<'_> {
    /// Written in the short form (`token:`).
    pub fn short_form(&self) -> bool {
        self.short.is_some()
    }

    /// `required_path` names the missing endpoint of a custom provider.
    pub fn resolve(
        self,
        template: Option<&'static Template>,
        urls: &UrlFiller<'_>,
        required_path: &str,
    ) -> Result<Exchange, ProviderConfigError> {
        let token_url =
            urls.required(&self.endpoint, template.map(|t| t.token_url), required_path)?;
        let refresh_url = match (&self.refresh.endpoint, template.and_then(|t| t.refresh_url)) {
            (Some((url, path)), _) => urls.fill(url, path)?,
            // Figma: its own refresh endpoint, unless token was moved too (a test double).
            (None, Some(url)) if self.endpoint.is_none() => urls.fill(url, "provider_id")?,
            _ => token_url.clone(),
        };

        let mut client_auth = template.map_or(ClientAuth::Post, |t| t.client_auth);
        let short_auth = match &self.short {
            Some(t) => t
                .string("auth_method")?
                .map(|m| (m, t.key_path("auth_method"))),
            None => None,
        };
        // Later wins: the token request's own setting is the most specific.
        for (method, path) in [
            &self.refresh.auth_method,
            &short_auth,
            &self.token.auth_method,
        ]
        .into_iter()
        .flatten()
        {
            client_auth = parse_client_auth(method, path)?;
        }

        let body_format = self
            .token
            .content_type
            .or(self.refresh.content_type)
            .unwrap_or(template.map_or(BodyFormat::Form, |t| t.body_format));
        let refresh_response_map = if self.refresh.response_map == ResponseMap::default() {
            self.token.response_map.clone()
        } else {
            self.refresh.response_map
        };
        Ok(Exchange {
            token_url,
            refresh_url,
            client_auth,
            body_format,
            token_params: self.token.params,
            refresh_params: self.refresh.params,
            token_response_map: self.token.response_map,
            refresh_response_map,
        })
    }
}

fn parse_client_auth(method: &str, path: &str) -> Result<ClientAuth, ProviderConfigError> {
    match method {
        "" | "client_secret_post" => Ok(ClientAuth::Post),
        "client_secret_basic" => Ok(ClientAuth::Basic),
        _ => err(path, "must be client_secret_post or client_secret_basic"),
    }
}
