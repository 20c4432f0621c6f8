//! The user-info request: who a token belongs to, asked after the code exchange (and after
//! a refresh when `triggers` says so). Reads `oauth2.user_info_request` (endpoint, method,
//! params as query, `response_map.user_id`, `triggers`) or the short `user_info{url,
//! id_path}`, over the template's.

use super::entry::{Entry, Obj, UrlFiller, one_of, owned_pairs};
use super::request::{RequestCfg, parse_request};
use super::{ProviderConfigError, err};
use crate::oauth::provider::UserInfoEndpoint;
use crate::oauth::provider::catalog::{Template, UserInfoMethod};
use crate::oauth::provider::token::path_segments;

/// The user-info request as written, before a template is applied.
pub(super) struct UserInfoRequest<'a> {
    request: RequestCfg,
    /// `user_info`, the short form, when given.
    short: Option<Obj<'a>>,
    /// The endpoint from either form, with its key path.
    endpoint: Option<(String, String)>,
}

pub(super) fn read<'a>(entry: &Entry<'a>) -> Result<UserInfoRequest<'a>, ProviderConfigError> {
    let request = parse_request(entry.oauth2_obj("user_info_request")?, &[])?;
    let short = entry.short_form("user_info", &["url", "id_path"], &[])?;
    Ok(UserInfoRequest {
        endpoint: one_of(&request.endpoint, &short.url)?,
        request,
        short: short.section,
    })
}

impl UserInfoRequest<'_> {
    /// `None` when neither config nor the template has a user-info endpoint.
    pub fn resolve(
        self,
        template: Option<&'static Template>,
        urls: &UrlFiller<'_>,
        client_id: &str,
    ) -> Result<Option<UserInfoEndpoint>, ProviderConfigError> {
        let base = template.and_then(|t| t.user_info);
        let Some(mut url) = urls.pick(&self.endpoint, base.map(|b| b.url))? else {
            return Ok(None);
        };
        let mut method = base.map_or(UserInfoMethod::Get, |b| b.method);
        if let Some((m, path)) = &self.request.method {
            method = match m.as_str() {
                "GET" => UserInfoMethod::Get,
                "POST" if matches!(method, UserInfoMethod::PostJson(_)) => method,
                "POST" => UserInfoMethod::PostEmpty,
                _ => return err(path.as_str(), "must be GET or POST"),
            };
        }
        if !self.request.params.is_empty() {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&self.request.params)
                .finish();
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&query);
        }
        let mut headers = owned_pairs(base.map(|b| b.headers));
        if let Some(name) = base.and_then(|b| b.client_id_header) {
            headers.push((name.to_owned(), client_id.to_owned()));
        }
        let mut id_path = base.map(|b| b.id_path.to_owned());
        if let Some(path) = &self.request.response_map.user_id {
            id_path = Some(path.clone());
        }
        if let Some(short) = &self.short
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
            on_token_grant: self.request.triggers.0.unwrap_or(true),
            on_token_refresh: self.request.triggers.1.unwrap_or(false),
        }))
    }
}
