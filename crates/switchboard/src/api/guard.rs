//! `Host` and `Origin`, checked on every request before anything else runs (REST, MCP,
//! the sandbox), in every mode: the defence against DNS rebinding and against pages on
//! other origins driving the gateway from a user's browser.
//!
//! - `Host` must name this gateway: `api.allowed_hosts` when set, else loopback names and
//!   the bind address; `api.public_url`'s host always. A page on `evil.example` whose name
//!   now resolves to 127.0.0.1 sends `Host: evil.example` and is refused.
//! - A request with an `Origin` (a browser's, on fetches and form posts) must come from an
//!   allowed origin: `api.allowed_origins` (loopback origins when it is empty),
//!   `http.cors.allowed_origins`, `public_url`'s origin, or the gateway's own origin (the
//!   `Origin` names the `Host` the request was sent to, which passed the check above: the
//!   sandbox's consent form posts back that way). Requests without `Origin` (API clients,
//!   SDKs, navigations) pass. A CORS preflight from another origin is refused, so no grant.
//!
//! Exempt: `GET`/`HEAD` of `/v1/health` (both checks: load balancers and orchestrators
//! probe it by IP, and it tells nothing), and from the `Origin` check only, the pages a
//! user's browser navigates to from elsewhere: the OAuth callback, link pages and the
//! sandbox's consent page (`GET` only; a navigation usually sends no `Origin`, but some
//! browsers do after a cross-origin redirect). Everything else, state-changing or not, is
//! refused: a cross-origin page has no business reading tool lists either.

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use crate::config::ApiConfig;

/// Names that always mean this machine.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// What `Host` and `Origin` are checked against, worked out once from the config.
#[derive(Debug)]
pub struct Guard {
    /// `api.allowed_hosts`, trimmed. Empty: loopback names and `bind`.
    hosts: Vec<String>,
    /// The listening address when it names one host (not `0.0.0.0` or `::`).
    bind: Option<String>,
    /// `public_url`'s host, without brackets: always allowed.
    public_host: Option<String>,
    /// Allowed origins as browsers write them (`scheme://host[:port]`), lower case.
    origins: Vec<String>,
    /// `*` in `api.allowed_origins` or `http.cors.allowed_origins`.
    any_origin: bool,
    /// `api.allowed_origins` is empty: loopback origins (any port) are allowed.
    loopback_origins: bool,
}

impl Guard {
    pub fn new(api: &ApiConfig) -> Self {
        let public = url::Url::parse(&api.public_url).ok();
        let public_host = public
            .as_ref()
            .and_then(|u| u.host_str())
            .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase());
        let bind = api.host.trim();
        let bind = (!bind.is_empty() && !["0.0.0.0", "::", "[::]"].contains(&bind))
            .then(|| host_name(bind).to_ascii_lowercase());
        let listed = api.allowed_origins.iter().chain(&api.cors.allowed_origins);
        let mut origins: Vec<String> = listed
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .collect();
        let any_origin = origins.iter().any(|o| o == "*");
        if let Some(public) = &public {
            origins.push(public.origin().ascii_serialization().to_ascii_lowercase());
        }
        Self {
            hosts: api
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
            bind,
            public_host,
            origins,
            any_origin,
            loopback_origins: api.allowed_origins.is_empty(),
        }
    }

    /// The refusal to send (403) if `req` may not go on.
    pub fn refusal(&self, req: &Request) -> Option<Response> {
        let headers = req.headers();
        // A `Host` that is not text matches nothing; none at all is no browser's request.
        let host = match headers.get(header::HOST) {
            Some(value) => Some(value.to_str().unwrap_or("")),
            None => req.uri().authority().map(|a| a.as_str()),
        };
        let origin = headers.get(header::ORIGIN);
        if origin.is_none() && host.is_none_or(|h| self.host_allowed(h)) {
            // The common case: an API client on an allowed name.
            return None;
        }
        let path = req.uri().path();
        let method = req.method();
        let navigation = method == Method::GET || method == Method::HEAD;
        if navigation && is_health(path) {
            return None;
        }
        if let Some(host) = host
            && !self.host_allowed(host)
        {
            tracing::warn!(host, path, "request refused: Host not allowed");
            return Some(refusal(
                path,
                "Host header not allowed: this gateway answers only to its own names \
                 (api.allowed_hosts, api.public_url)",
            ));
        }
        // No `Origin`: not a browser's cross-origin request.
        let origin = origin?;
        if navigation && is_browser_page(path) {
            return None;
        }
        let origin = origin.to_str().unwrap_or("");
        if !self.origin_allowed(origin, host) {
            tracing::warn!(origin, path, "request refused: Origin not allowed");
            return Some(refusal(
                path,
                "Origin not allowed: cross-origin browser requests are refused \
                 (api.allowed_origins, http.cors.allowed_origins)",
            ));
        }
        None
    }

    /// `Host` against DNS rebinding: `api.allowed_hosts`, else loopback names and the bind
    /// host; `public_url`'s host in either case (any port).
    pub fn host_allowed(&self, host: &str) -> bool {
        let (name, port) = split_host(host);
        if self.hosts.is_empty() && LOOPBACK.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return true;
        }
        if self
            .public_host
            .as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(name))
        {
            return true;
        }
        if self.hosts.is_empty() {
            return self
                .bind
                .as_deref()
                .is_some_and(|b| b.eq_ignore_ascii_case(name));
        }
        // An entry with a port allows that port only; without one, any port.
        self.hosts.iter().any(|allowed| {
            let (allowed_name, allowed_port) = split_host(allowed);
            allowed == "*"
                || allowed_name.eq_ignore_ascii_case(name)
                    && allowed_port.is_none_or(|p| Some(p) == port)
        })
    }

    /// `Origin`: the listed origins, loopback origins when `api.allowed_origins` is empty,
    /// `public_url`'s origin, and the origin of `host` itself (same-origin).
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().trim_end_matches('/');
        if self.any_origin {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        let Some(authority) = authority else {
            // `null` (sandboxed frames, `file:`) and anything that is not http(s).
            return false;
        };
        if host.is_some_and(|h| h.trim().eq_ignore_ascii_case(authority)) {
            return true;
        }
        if self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        self.loopback_origins && {
            let (name, _) = split_host(authority);
            !authority.contains(['/', '@']) && LOOPBACK.iter().any(|n| n.eq_ignore_ascii_case(name))
        }
    }
}

/// `GET /v1/health`, under either API prefix.
fn is_health(path: &str) -> bool {
    path == "/v1/health" || under_org(path).is_some_and(|rest| rest == "/health")
}

/// Pages a browser is sent to from another site: the OAuth callback, link pages and the
/// sandbox's consent page.
fn is_browser_page(path: &str) -> bool {
    let rest = under_org(path).or_else(|| path.strip_prefix("/v1"));
    if let Some(rest) = rest
        && (rest == "/oauth/callback" || rest.starts_with("/oauth/link/"))
    {
        return true;
    }
    path == "/sandbox/oauth/authorize"
}

/// What follows `/v1/orgs/{org}/projects/{project}`.
fn under_org(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/orgs/")?;
    let (org, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("projects/")?;
    let (project, tail) = rest.split_at(rest.find('/')?);
    (!org.is_empty() && !project.is_empty()).then_some(tail)
}

/// The MCP endpoints answer in JSON-RPC.
fn is_mcp(path: &str) -> bool {
    path == "/mcp" || path.starts_with("/mcp/") || path.starts_with("/v1/mcps/")
}

/// A 403 in the shape the route's clients read: JSON-RPC on MCP, `{name, message}` else.
fn refusal(path: &str, message: &str) -> Response {
    if is_mcp(path) {
        let body = json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": -32600, "message": message},
        });
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    ApiError::new(StatusCode::FORBIDDEN, message).into_response()
}

/// `example.com:80` → (`example.com`, `80`); `[::1]:80` → (`::1`, `80`); `::1` → (`::1`).
fn split_host(host: &str) -> (&str, Option<&str>) {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        let (name, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (name, after.strip_prefix(':').filter(|p| is_port(p)));
    }
    match host.rsplit_once(':') {
        // More than one colon, no brackets: a bare IPv6 address.
        Some((name, _)) if name.contains(':') => (host, None),
        Some((name, port)) if is_port(port) => (name, Some(port)),
        _ => (host, None),
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn host_name(host: &str) -> &str {
    split_host(host).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> crate::config::Config {
        let mut c = crate::config::defaults(std::path::Path::new("/tmp"));
        c.api.public_url = "https://gw.example.com".into();
        c
    }

    fn guard(c: &crate::config::Config) -> Guard {
        Guard::new(&c.api)
    }

    #[test]
    fn loopback_and_public_hosts_pass_and_others_are_refused() {
        let g = guard(&config());
        for ok in ["localhost:9099", "127.0.0.1", "[::1]:80", "gw.example.com"] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example.com", "evil.example.com:9099", "10.0.0.1"] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let mut c = config();
        c.api.allowed_hosts = vec!["mcp.internal".into(), "[fd00::1]:8443".into()];
        let g = guard(&c);
        assert!(g.host_allowed("mcp.internal:443"));
        assert!(g.host_allowed("[fd00::1]:8443"));
        assert!(
            !g.host_allowed("[fd00::1]:9999"),
            "a listed port is the only one"
        );
        assert!(
            g.host_allowed("gw.example.com:443"),
            "public_url's host always"
        );
        assert!(!g.host_allowed("localhost"));
    }

    #[test]
    fn the_bind_host_is_allowed_unless_it_is_a_wildcard() {
        let mut c = config();
        c.api.host = "10.1.2.3".into();
        assert!(guard(&c).host_allowed("10.1.2.3:9099"));
        c.api.host = "0.0.0.0".into();
        assert!(!guard(&c).host_allowed("0.0.0.0:9099"));
    }

    #[test]
    fn origins_default_to_loopback_and_follow_the_allow_list_when_set() {
        let g = guard(&config());
        assert!(g.origin_allowed("http://localhost:6274", None));
        assert!(g.origin_allowed("http://127.0.0.1:3000", None));
        assert!(g.origin_allowed("http://[::1]:3000", None));
        assert!(g.origin_allowed("https://gw.example.com", None));
        assert!(!g.origin_allowed("https://evil.example.com", None));
        assert!(!g.origin_allowed("http://localhost.evil.example", None));
        assert!(!g.origin_allowed("null", None));
        let mut c = config();
        c.api.allowed_origins = vec!["https://app.example.com".into()];
        c.api.cors.allowed_origins = vec!["https://spa.example.com".into()];
        let g = guard(&c);
        assert!(g.origin_allowed("https://app.example.com", None));
        assert!(g.origin_allowed("https://SPA.example.com/", None));
        assert!(g.origin_allowed("https://gw.example.com", None));
        assert!(!g.origin_allowed("http://localhost:6274", None));
    }

    #[test]
    fn a_page_of_the_gateway_itself_is_same_origin() {
        let g = guard(&config());
        let host = Some("10.0.0.7:9099");
        assert!(g.origin_allowed("http://10.0.0.7:9099", host));
        assert!(!g.origin_allowed("http://10.0.0.7:9100", host));
    }

    #[test]
    fn exempt_paths_are_exactly_the_health_check_and_browser_pages() {
        for health in ["/v1/health", "/v1/orgs/o/projects/p/health"] {
            assert!(is_health(health), "{health}");
        }
        for not in ["/v1/healthz", "/v1/orgs/o/projects/p/x/health", "/health"] {
            assert!(!is_health(not), "{not}");
        }
        for page in [
            "/v1/oauth/callback",
            "/v1/oauth/link/abc",
            "/v1/orgs/o/projects/p/oauth/callback",
            "/sandbox/oauth/authorize",
        ] {
            assert!(is_browser_page(page), "{page}");
        }
        for not in ["/v1/auth/authorize", "/sandbox/oauth/token", "/v1/oauth/x"] {
            assert!(!is_browser_page(not), "{not}");
        }
    }
}
