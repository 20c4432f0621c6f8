//! The revocation request (RFC 7009, or the service's own style from the catalog): reads
//! `oauth2.revoke_request.endpoint` or the short `revoke{url}`, over the template's.

use super::entry::{Entry, UrlFiller, one_of};
use super::request::parse_request;
use crate::oauth::provider::catalog::Template;
use crate::oauth::provider::{ProviderConfigError, RevokeEndpoint, RevokeStyle};

/// The revocation endpoint as written, with its key path.
pub(super) struct RevokeRequest {
    endpoint: Option<(String, String)>,
}

pub(super) fn read(entry: &Entry<'_>) -> Result<RevokeRequest, ProviderConfigError> {
    let request = parse_request(entry.oauth2_obj("revoke_request")?, &[])?;
    let short = entry.short_form("revoke", &["url"], &[])?;
    Ok(RevokeRequest {
        endpoint: one_of(&request.endpoint, &short.url)?,
    })
}

impl RevokeRequest {
    /// `None` when neither config nor the template has a revocation endpoint.
    pub fn resolve(
        self,
        template: Option<&'static Template>,
        urls: &UrlFiller<'_>,
    ) -> Result<Option<RevokeEndpoint>, ProviderConfigError> {
        Ok(match (&self.endpoint, template.and_then(|t| t.revoke)) {
            (Some((url, path)), t) => Some(RevokeEndpoint {
                url: urls.fill(url, path)?,
                style: t.map_or(RevokeStyle::Rfc7009, |t| t.style),
            }),
            (None, Some(t)) => Some(RevokeEndpoint {
                url: urls.fill(t.url, "provider_id")?,
                style: t.style,
            }),
            (None, None) => None,
        })
    }
}
