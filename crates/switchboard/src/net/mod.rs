//! The guard on the gateway's own outbound requests to URLs an admin or a document can
//! set (provider endpoints, user-info URLs, upstream servers): `network.allowlist`.
//!
//! Public addresses are allowed; loopback, private, link-local, metadata and the other
//! internal kinds of [`AddressClass`] are refused unless the host or the address is in
//! `network.allowlist`; dev mode also allows loopback (the sandbox provider lives on the
//! gateway's own address). [`guarded_client`] applies it to the address each connection
//! is actually made to, so a name that resolves differently later (DNS rebinding) cannot
//! pass; [`OutboundPolicy::check_url`] is the cheap early check for configuration time.
//!
//! Worker URLs are not guarded: workers are operator infrastructure, usually on private
//! addresses, and only the config file names them.

mod allowlist;
mod class;
mod guard;

use std::net::IpAddr;

pub use allowlist::AllowEntry;
pub use class::{AddressClass, classify};
pub use guard::{guarded_client, refusal};

/// Where outbound requests may go. The default refuses every non-public address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboundPolicy {
    allow: Vec<AllowEntry>,
    /// Dev mode: loopback is allowed.
    loopback: bool,
}

/// An outbound request the policy refused. Names the host (never a URL: its path or
/// query could carry a secret) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to connect to {host}: {reason}")]
pub struct Refused {
    pub host: String,
    pub reason: String,
}

impl OutboundPolicy {
    /// `allowlist` entries as in `network.allowlist`; `development` allows loopback.
    pub fn new(allowlist: &[String], development: bool) -> Result<Self, String> {
        let allow = allowlist
            .iter()
            .map(|e| AllowEntry::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("network.allowlist: {e}"))?;
        Ok(Self {
            allow,
            loopback: development,
        })
    }

    /// Whether `host` (a name) is listed by name or wildcard: all its addresses are allowed.
    pub fn allows_host(&self, host: &str) -> bool {
        self.allow.iter().any(|e| e.matches_host(host))
    }

    /// Checks `ip`, reached through the name `host` when there is one.
    pub fn check_ip(&self, host: Option<&str>, ip: IpAddr) -> Result<(), Refused> {
        match self.refusal_reason(host, ip) {
            None => Ok(()),
            Some(reason) => Err(Refused {
                host: host.map_or_else(|| ip.to_string(), str::to_owned),
                reason,
            }),
        }
    }

    /// `None` when allowed; otherwise the address and its kind.
    fn refusal_reason(&self, host: Option<&str>, ip: IpAddr) -> Option<String> {
        let class = classify(ip);
        let allowed = class == AddressClass::Public
            || (self.loopback && class == AddressClass::Loopback)
            || host.is_some_and(|h| self.allows_host(h))
            || self.allow.iter().any(|e| e.contains(ip));
        (!allowed).then(|| format!("{ip} is a {class} address{}", self.hint(class)))
    }

    fn hint(&self, class: AddressClass) -> &'static str {
        if class == AddressClass::Loopback {
            " (allowed only in dev mode or when listed in network.allowlist)"
        } else {
            " not listed in network.allowlist"
        }
    }

    /// The check that needs no DNS: a URL whose host is an address literal (in any
    /// spelling the URL parser accepts: `0x7f000001`, `[::ffff:127.0.0.1]`) or a
    /// `localhost` name outside the policy is refused. Other names are checked when
    /// they are resolved, by [`guarded_client`].
    pub fn check_url(&self, url: &str) -> Result<(), Refused> {
        let Ok(parsed) = url::Url::parse(url) else {
            // Not a URL the client could request either; the caller reports its syntax.
            return Ok(());
        };
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(None, ip.into()),
            Some(url::Host::Ipv6(ip)) => self.check_ip(None, ip.into()),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                // RFC 6761: these names are loopback whatever DNS says.
                let loopback = name == "localhost" || name.ends_with(".localhost");
                if loopback && !self.loopback && !self.allows_host(&name) {
                    return Err(Refused {
                        host: name,
                        reason: format!(
                            "a localhost name is a loopback address{}",
                            self.hint(AddressClass::Loopback)
                        ),
                    });
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// The URLs the gateway itself requests in an auth provider document (either layout:
/// `oauth2.*_request.endpoint` or the `token`/`user_info`/`revoke` `url`s), with their key
/// paths under `prefix`. The authorization endpoint is left out: the user's browser
/// visits it, not the gateway; so are `params` (values sent, not requested) and the
/// introspection endpoint (accepted, never called).
pub fn provider_endpoint_urls(prefix: &str, doc: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(path: String, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
        let serde_json::Value::Object(map) = value else {
            return;
        };
        for (key, value) in map {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match value {
                serde_json::Value::String(url) if key == "url" || key == "endpoint" => {
                    out.push((child, url.clone()));
                }
                _ if matches!(
                    key.as_str(),
                    "authorization"
                        | "authorize_request"
                        | "params"
                        | "token_introspection_request"
                ) => {}
                _ => walk(child, value, out),
            }
        }
    }
    let mut out = Vec::new();
    walk(prefix.to_owned(), doc, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], development: bool) -> OutboundPolicy {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        OutboundPolicy::new(&allow, development).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_addresses_pass_and_internal_ones_are_refused_by_default() {
        let p = OutboundPolicy::default();
        assert!(p.check_ip(Some("idp.example"), ip("93.184.216.34")).is_ok());
        for bad in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "169.254.169.254",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
            "100.64.0.1",
            "0.0.0.0",
        ] {
            assert!(p.check_ip(None, ip(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn dev_mode_allows_loopback_and_nothing_else() {
        let p = policy(&[], true);
        assert!(p.check_ip(None, ip("127.0.0.1")).is_ok());
        assert!(p.check_ip(None, ip("::1")).is_ok());
        assert!(p.check_ip(None, ip("::ffff:127.0.0.1")).is_ok());
        assert!(p.check_ip(None, ip("10.0.0.1")).is_err());
        assert!(p.check_ip(None, ip("169.254.169.254")).is_err());
    }

    #[test]
    fn listed_hosts_wildcards_and_ranges_are_allowed() {
        let p = policy(&["idp.internal", "*.corp.example", "10.1.0.0/16"], false);
        assert!(p.check_ip(Some("idp.internal"), ip("10.9.9.9")).is_ok());
        assert!(
            p.check_ip(Some("sso.corp.example"), ip("192.168.0.1"))
                .is_ok()
        );
        assert!(p.check_ip(Some("other.internal"), ip("10.1.2.3")).is_ok());
        assert!(p.check_ip(Some("other.internal"), ip("10.2.0.1")).is_err());
        assert!(p.check_ip(Some("corp.example"), ip("192.168.0.1")).is_err());
    }

    #[test]
    fn refusals_name_the_host_and_the_kind_of_address() {
        let err = OutboundPolicy::default()
            .check_ip(Some("rebind.example"), ip("169.254.169.254"))
            .unwrap_err();
        assert_eq!(err.host, "rebind.example");
        assert_eq!(
            err.to_string(),
            "refusing to connect to rebind.example: 169.254.169.254 is a cloud metadata address not listed in network.allowlist"
        );
    }

    #[test]
    fn url_checks_see_every_spelling_of_an_address_literal() {
        let p = OutboundPolicy::default();
        for url in [
            "http://127.0.0.1:8080/token",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://169.254.169.254/latest/meta-data/",
            "https://localhost/token",
            "https://a.b.localhost./token",
        ] {
            assert!(p.check_url(url).is_err(), "{url}");
        }
        assert!(p.check_url("https://idp.example/token").is_ok());
        assert!(p.check_url("https://8.8.8.8/").is_ok());
        let listed = policy(&["127.0.0.1", "localhost"], false);
        assert!(listed.check_url("http://0x7f000001/").is_ok());
        assert!(listed.check_url("http://localhost:1/").is_ok());
        assert!(policy(&[], true).check_url("http://localhost:1/").is_ok());
    }

    #[test]
    fn provider_documents_yield_the_urls_the_gateway_requests_with_their_paths() {
        let doc = serde_json::json!({
            "authorization": {"url": "http://127.0.0.1/auth"},
            "token": {"url": "http://10.0.0.1/token"},
            "user_info": {"url": "http://10.0.0.2/me"},
            "oauth2": {
                "authorize_request": {"endpoint": "http://127.0.0.1/auth"},
                "token_request": {"endpoint": "http://10.0.0.3/t",
                                  "params": {"resource": "http://10.0.0.9/"}},
                "revoke_request": {"endpoint": "http://10.0.0.4/r"}
            }
        });
        let mut urls = provider_endpoint_urls("auth.providers[0]", &doc);
        urls.sort();
        let paths: Vec<&str> = urls.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "auth.providers[0].oauth2.revoke_request.endpoint",
                "auth.providers[0].oauth2.token_request.endpoint",
                "auth.providers[0].token.url",
                "auth.providers[0].user_info.url",
            ]
        );
        assert_eq!(provider_endpoint_urls("", &doc).len(), 4);
    }
}
