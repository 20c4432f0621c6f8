//! `auth:`: the OAuth providers (`auth.providers[]`, their provider-specific keys kept as
//! JSON for `oauth::provider` to resolve) and the settings of the per-user flows
//! (`user_verifier`, `flow_ttl`, `refresh_skew`, `elicitation_timeout`).

use serde_norway::Mapping;

use super::{positive, required_id};
use crate::config::model::{
    AuthProviderConfig, OAuthSettings, PROVIDER_FIELDS, SecretValue, UserVerifier,
};
use crate::config::reader::{Map, Reader, Unset};

pub(super) fn providers(
    r: &mut Reader<'_>,
    root: &Map<'_>,
    empty: &Mapping,
) -> Vec<(AuthProviderConfig, String)> {
    let auth = r.section_or(root, "auth", empty);
    r.check_keys(
        &auth,
        &[
            "providers",
            "user_verifier",
            "flow_ttl",
            "refresh_skew",
            "elicitation_timeout",
        ],
        &[],
    );
    let mut providers = Vec::new();
    for item in r.list(&auth, "providers") {
        let enabled = r.flag(&item, "enabled", true);
        let p = Map {
            disabled: !enabled,
            ..item
        };
        let Some(id) = required_id(r, &p, "provider") else {
            continue;
        };
        let provider_type = r.text(&p, "type", Unset::Error).unwrap_or_default();
        if provider_type.is_empty() {
            if !p.has("type") {
                r.error(
                    p.child("type"),
                    format!("provider {id} has no type (use oauth2)"),
                );
            }
        } else if provider_type != "oauth2" {
            r.error(
                p.child("type"),
                format!("unknown provider type {provider_type:?} (only oauth2 is supported)"),
            );
        }
        let description = r.text(&p, "description", Unset::UseDefault);
        let provider_id = r
            .text(&p, "provider_id", Unset::Error)
            .filter(|s| !s.is_empty());
        let client_id = r
            .text(&p, "client_id", Unset::Error)
            .filter(|s| !s.is_empty());
        let client_secret = r
            .text(&p, "client_secret", Unset::Error)
            .filter(|s| !s.is_empty());
        if enabled {
            if client_id.is_none() && !p.has("client_id") {
                r.error(
                    p.child("client_id"),
                    format!("provider {id} has no client_id"),
                );
            }
            if provider_id.is_none()
                && !p.has("provider_id")
                && !p.has("oauth2")
                && !p.has("authorization")
            {
                r.error(
                    p.path.clone(),
                    format!("provider {id} needs provider_id (a known provider such as google), an oauth2 section, or authorization/token URLs"),
                );
            }
        }
        let mut extra = serde_json::Map::new();
        for (key, value) in p.map {
            let Some(key) = key.as_str() else { continue };
            if !PROVIDER_FIELDS.contains(&key) {
                let json = r.json(&p.child(key), value, p.disabled);
                extra.insert(key.to_owned(), json);
            }
        }
        let provider = AuthProviderConfig {
            id,
            description,
            enabled,
            provider_type,
            provider_id,
            client_id,
            client_secret: client_secret.map(SecretValue::new),
            extra: serde_json::Value::Object(extra),
        };
        providers.push((provider, p.path.clone()));
    }
    providers
}

/// `auth.user_verifier`, `auth.flow_ttl`, `auth.refresh_skew`, `auth.elicitation_timeout`.
/// Outside dev mode, providers without a verifier need an explicit `user_verifier: none`:
/// without one, a shared authorization link could bind someone else's account.
pub(super) fn oauth_settings(
    r: &mut Reader<'_>,
    root: &Map<'_>,
    empty: &Mapping,
    development: bool,
    any_provider: bool,
) -> OAuthSettings {
    let defaults = OAuthSettings::default();
    let auth = r.section_or(root, "auth", empty);
    let path = "auth.user_verifier".to_string();
    let user_verifier = match auth.map.get("user_verifier") {
        None => UserVerifier::Unset,
        Some(value) => match value.as_str() {
            Some(s) if s.trim().eq_ignore_ascii_case("none") => UserVerifier::Disabled,
            _ => {
                let verifier = r.section_or(&auth, "user_verifier", empty);
                r.check_keys(&verifier, &["url"], &[]);
                match r
                    .text(&verifier, "url", Unset::Error)
                    .filter(|u| !u.trim().is_empty())
                {
                    Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                        UserVerifier::Url(url)
                    }
                    Some(url) => {
                        r.error(
                            format!("{path}.url"),
                            format!("must be an http(s) URL, got {url:?}"),
                        );
                        UserVerifier::Unset
                    }
                    None => {
                        r.error(path.clone(), "expected `none` or a mapping with `url`");
                        UserVerifier::Unset
                    }
                }
            }
        },
    };
    if user_verifier == UserVerifier::Unset && !development && any_provider {
        r.error(
            path,
            "outside dev mode, set auth.user_verifier.url (your app's page that confirms the user) or `user_verifier: none` to accept the risk",
        );
    }
    OAuthSettings {
        user_verifier,
        flow_ttl: positive(r, &auth, "flow_ttl", defaults.flow_ttl),
        refresh_skew: r.duration(&auth, "refresh_skew", defaults.refresh_skew),
        elicitation_timeout: positive(
            r,
            &auth,
            "elicitation_timeout",
            defaults.elicitation_timeout,
        ),
    }
}
