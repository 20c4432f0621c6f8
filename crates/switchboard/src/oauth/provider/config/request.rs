//! One of Arcade's `oauth2.*_request` sections (`endpoint`, `method`, `auth_method`,
//! `params`, `request_content_type`, `response_map`, `triggers`), read the same way for
//! every request; what each value means is up to that request's parser.

use serde_json::Value;

use super::entry::{Obj, check_method};
use super::vars::placeholders;
use super::{ProviderConfigError, err};
use crate::oauth::provider::token::path_segments;
use crate::oauth::provider::{BodyFormat, ResponseMap};

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

/// One of Arcade's `*_request` sections.
#[derive(Default)]
pub(super) struct RequestCfg {
    /// (value, key path) pairs, so later errors can name where a value came from.
    pub endpoint: Option<(String, String)>,
    pub method: Option<(String, String)>,
    pub auth_method: Option<(String, String)>,
    pub params: Vec<(String, String)>,
    pub content_type: Option<BodyFormat>,
    pub response_map: ResponseMap,
    pub triggers: (Option<bool>, Option<bool>),
}

pub(super) fn parse_request(
    obj: Option<Obj<'_>>,
    vars: &[&str],
) -> Result<RequestCfg, ProviderConfigError> {
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
