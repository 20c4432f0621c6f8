//! `network:`: the hosts outbound requests (providers, user verifier) may reach.

use serde_norway::Mapping;

use crate::config::model::NetworkConfig;
use crate::config::reader::{Map, Reader};

/// `network.allowlist`: each entry a host name, a `*.` wildcard, an IP address or a CIDR.
pub(super) fn network(r: &mut Reader<'_>, root: &Map<'_>, empty: &Mapping) -> NetworkConfig {
    let network = r.section_or(root, "network", empty);
    r.check_keys(&network, &["allowlist"], &[]);
    let allowlist = r.strings(&network, "allowlist");
    for (i, entry) in allowlist.iter().enumerate() {
        if let Err(reason) = crate::net::AllowEntry::parse(entry) {
            r.error(format!("{}[{i}]", network.child("allowlist")), reason);
        }
    }
    NetworkConfig { allowlist }
}
