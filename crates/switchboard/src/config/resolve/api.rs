//! `api:` (listener, public URL, TLS, limits, MCP sessions) and the seed layout's `http:`
//! (server timeouts, CORS). `api:` wins where both set a timeout.

use std::time::Duration;

use serde_norway::Mapping;

use super::positive;
use crate::config::model::{ApiConfig, CorsConfig, TlsConfig};
use crate::config::reader::{Map, Reader, Unset};

/// `api:` plus the seed layout's `http:` (timeouts, CORS).
pub(super) fn api(r: &mut Reader<'_>, root: &Map<'_>, empty: &Mapping) -> ApiConfig {
    let defaults = ApiConfig::default();
    let api = r.section_or(root, "api", empty);
    let http = r.section_or(root, "http", empty);
    r.check_keys(
        &api,
        &[
            "host",
            "port",
            "development",
            "public_url",
            "tls",
            "read_timeout",
            "write_timeout",
            "idle_timeout",
            "max_request_body_size",
            "allowed_origins",
            "allowed_hosts",
            "mcp_session_keep_alive",
            "mcp_direct_tool_calls",
            "max_connections",
            "mcp_max_sessions",
            "mcp_max_sessions_per_user",
            "mcp_session_lifetime",
        ],
        &["rate_limit"],
    );
    r.check_keys(
        &http,
        &["read_timeout", "write_timeout", "idle_timeout", "cors"],
        &[],
    );

    let host = r
        .text(&api, "host", Unset::UseDefault)
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or(defaults.host);
    let port = r.port(&api, "port", defaults.port);
    let development = r.flag(&api, "development", false);
    let tls = r.section(&api, "tls").and_then(|tls| tls_config(r, &tls));
    let public_url = match r.text(&api, "public_url", Unset::UseDefault) {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            url.trim_end_matches('/').to_owned()
        }
        Some(url) if !url.is_empty() => {
            r.error(
                api.child("public_url"),
                format!("{url:?} must start with http:// or https://"),
            );
            String::new()
        }
        _ => default_public_url(&host, port, tls.is_some()),
    };
    let cors = match r.section(&http, "cors") {
        Some(cors) => {
            r.check_keys(&cors, &["allowed_origins", "allowed_methods"], &[]);
            let allowed_origins = r.strings(&cors, "allowed_origins");
            for (i, origin) in allowed_origins.iter().enumerate() {
                if let Err(reason) = check_cors_origin(origin) {
                    r.error(format!("{}[{i}]", cors.child("allowed_origins")), reason);
                }
            }
            let allowed_methods = r.strings(&cors, "allowed_methods");
            for (i, method) in allowed_methods.iter().enumerate() {
                if http::Method::from_bytes(method.as_bytes()).is_err() {
                    r.error(
                        format!("{}[{i}]", cors.child("allowed_methods")),
                        format!("'{method}' is not an HTTP method"),
                    );
                }
            }
            CorsConfig {
                allowed_origins,
                allowed_methods,
            }
        }
        None => CorsConfig::default(),
    };
    ApiConfig {
        read_timeout: timeout(r, &api, &http, "read_timeout", defaults.read_timeout),
        write_timeout: timeout(r, &api, &http, "write_timeout", defaults.write_timeout),
        idle_timeout: timeout(r, &api, &http, "idle_timeout", defaults.idle_timeout),
        max_request_body_size: r.count(
            &api,
            "max_request_body_size",
            1,
            defaults.max_request_body_size,
        ),
        host,
        port,
        development,
        public_url,
        tls,
        cors,
        allowed_origins: r.strings(&api, "allowed_origins"),
        allowed_hosts: r.strings(&api, "allowed_hosts"),
        mcp_session_keep_alive: positive(
            r,
            &api,
            "mcp_session_keep_alive",
            defaults.mcp_session_keep_alive,
        ),
        mcp_direct_tool_calls: r.flag(
            &api,
            "mcp_direct_tool_calls",
            defaults.mcp_direct_tool_calls,
        ),
        max_connections: r.count(&api, "max_connections", 1, defaults.max_connections),
        mcp_max_sessions: r.count(&api, "mcp_max_sessions", 1, defaults.mcp_max_sessions),
        mcp_max_sessions_per_user: r.count(
            &api,
            "mcp_max_sessions_per_user",
            1,
            defaults.mcp_max_sessions_per_user,
        ),
        mcp_session_lifetime: positive(
            r,
            &api,
            "mcp_session_lifetime",
            defaults.mcp_session_lifetime,
        ),
    }
}

/// Arcade puts server timeouts under `api:`, the seed layout under `http:`; `api:` wins.
fn timeout(
    r: &mut Reader<'_>,
    api: &Map<'_>,
    http: &Map<'_>,
    key: &str,
    default: Duration,
) -> Duration {
    if api.has(key) {
        if http.has(key) {
            r.warn(
                http.child(key),
                format!("also set as {}; using that", api.child(key)),
            );
        }
        r.duration(api, key, default)
    } else {
        r.duration(http, key, default)
    }
}

/// A browser `Origin` as CORS compares it: `*`, or `scheme://host[:port]` and nothing more.
fn check_cors_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let parsed =
        url::Url::parse(origin).map_err(|e| format!("'{origin}' is not an origin: {e}"))?;
    let bare = parsed.path() == "/" && parsed.query().is_none() && parsed.fragment().is_none();
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || !bare {
        return Err(format!(
            "'{origin}' is not an origin: write scheme://host[:port], e.g. https://app.example.com"
        ));
    }
    if origin.ends_with('/') {
        return Err(format!("'{origin}': an origin has no trailing slash"));
    }
    Ok(())
}

fn tls_config(r: &mut Reader<'_>, tls: &Map<'_>) -> Option<TlsConfig> {
    r.check_keys(tls, &["enabled", "cert_file", "key_file"], &[]);
    // A `tls:` section with files and no `enabled:` means TLS is wanted.
    if !r.flag(tls, "enabled", true) {
        return None;
    }
    let file = |r: &mut Reader<'_>, key: &str| match r.text(tls, key, Unset::Error) {
        Some(path) if !path.is_empty() => Some(r.base_dir().join(path)),
        Some(_) => {
            r.error(tls.child(key), "TLS is enabled but this is empty");
            None
        }
        None => {
            if !tls.has(key) {
                r.error(tls.child(key), "TLS is enabled but this is not set");
            }
            None
        }
    };
    let cert_file = file(r, "cert_file");
    let key_file = file(r, "key_file");
    Some(TlsConfig {
        cert_file: cert_file?,
        key_file: key_file?,
    })
}

/// `http://{host}:{port}`, with `localhost` for wildcard and loopback hosts (a browser
/// cannot open `0.0.0.0`, and OAuth providers register `localhost`).
fn default_public_url(host: &str, port: u16, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match host {
        "0.0.0.0" | "::" | "[::]" | "127.0.0.1" | "::1" | "[::1]" => "localhost".to_owned(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_owned(),
    };
    format!("{scheme}://{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_and_loopback_hosts_become_localhost_in_the_public_url() {
        assert_eq!(
            default_public_url("0.0.0.0", 9099, false),
            "http://localhost:9099"
        );
        assert_eq!(default_public_url("::", 80, false), "http://localhost:80");
        assert_eq!(
            default_public_url("127.0.0.1", 9099, true),
            "https://localhost:9099"
        );
        assert_eq!(
            default_public_url("gw.example.com", 8443, true),
            "https://gw.example.com:8443"
        );
        assert_eq!(
            default_public_url("fd00::1", 9099, false),
            "http://[fd00::1]:9099"
        );
    }
}
