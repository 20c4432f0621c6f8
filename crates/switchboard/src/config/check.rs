//! Checks across items: unique ids and exactly one default root key. Checks on a single
//! value (a port, a duration, a worker's secret) happen where it is read, in `resolve`.

use std::collections::HashMap;

use super::model::{AuthProviderConfig, McpUpstreamConfig, NetworkConfig, RootKeyConfig};
use super::reader::Reader;

/// Reports every id seen before, at the later item's `.id`, naming the first one.
pub(super) fn unique_ids<'a>(
    r: &mut Reader<'_>,
    what: &str,
    items: impl Iterator<Item = (&'a str, &'a str)>,
) {
    let mut first_seen: HashMap<&str, &str> = HashMap::new();
    for (id, path) in items {
        match first_seen.get(id) {
            Some(first) => r.error(
                format!("{path}.id"),
                format!("duplicate {what} id {id:?} (first at {first})"),
            ),
            None => {
                first_seen.insert(id, path);
            }
        }
    }
}

/// More than one default is an error; none (with some keys) makes the first the default.
pub(super) fn one_default_root_key(r: &mut Reader<'_>, keys: &mut [(RootKeyConfig, String)]) {
    let defaults: Vec<&str> = keys
        .iter()
        .filter(|(k, _)| k.default)
        .map(|(_, path)| path.as_str())
        .collect();
    if let [first, rest @ ..] = defaults.as_slice() {
        let extra: Vec<String> = rest.iter().map(|path| format!("{path}.default")).collect();
        for path in extra {
            r.error(
                path,
                format!("more than one root key is marked default (also {first})"),
            );
        }
    } else if let Some((first, _)) = keys.first_mut() {
        first.default = true;
        let id = first.id.clone();
        r.warn(
            "security.root_keys",
            format!("no root key is marked default; using the first, {id}"),
        );
    }
}

/// A provider endpoint whose host is an address literal (or a `localhost` name) outside
/// `network.allowlist` is a warning at its key: every request to it would be refused.
/// Names are checked when resolved, at request time.
pub(super) fn provider_endpoints(
    r: &mut Reader<'_>,
    providers: &[(AuthProviderConfig, String)],
    network: &NetworkConfig,
    development: bool,
) {
    // A bad entry is already an error at its key.
    let Ok(policy) = crate::net::OutboundPolicy::new(&network.allowlist, development) else {
        return;
    };
    for (provider, path) in providers.iter().filter(|(p, _)| p.enabled) {
        for (key, url) in crate::net::provider_endpoint_urls(path, &provider.extra) {
            if let Err(refused) = policy.check_url(&url) {
                r.warn(key, format!("{refused}; requests to it will fail"));
            }
        }
    }
}

/// An enabled upstream MCP server whose URL the outbound guard refuses on sight (an
/// address literal or `localhost` outside `network.allowlist`): said at load, at its key,
/// rather than only as failed listings later. Names are checked when they resolve.
pub(super) fn upstream_uris(
    r: &mut Reader<'_>,
    upstreams: &[(McpUpstreamConfig, String)],
    network: &NetworkConfig,
    development: bool,
) {
    let Ok(policy) = crate::net::OutboundPolicy::new(&network.allowlist, development) else {
        return;
    };
    for (upstream, path) in upstreams.iter().filter(|(u, _)| u.enabled) {
        if let Err(refused) = policy.check_url(&upstream.uri) {
            r.warn(
                format!("{path}.mcp.uri"),
                format!(
                    "worker {}: {refused}; the gateway will not reach it",
                    upstream.id
                ),
            );
        }
    }
}
