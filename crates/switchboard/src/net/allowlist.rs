//! One `network.allowlist` entry: a host name, a `*.` wildcard, an IP address or a CIDR.

use std::net::IpAddr;

/// A parsed `network.allowlist` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// An exact host name, lower-cased (`idp.internal`).
    Host(String),
    /// `*.corp.example`: any name under `corp.example` (not `corp.example` itself).
    Suffix(String),
    /// An address range; a bare address is a range of one.
    Cidr { network: IpAddr, prefix: u8 },
}

impl AllowEntry {
    pub fn parse(entry: &str) -> Result<AllowEntry, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("an empty entry; give a host name, *.domain, an IP address or a CIDR".into());
        }
        if let Some((addr, prefix)) = entry.split_once('/') {
            let network: IpAddr = addr
                .trim_matches(['[', ']'])
                .parse()
                .map_err(|_| format!("'{entry}': '{addr}' is not an IP address"))?;
            let max = if network.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{entry}': the prefix length must be 0 to {max}"))?;
            return Ok(AllowEntry::Cidr { network, prefix });
        }
        if let Ok(addr) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(AllowEntry::Cidr {
                network: addr,
                prefix,
            });
        }
        let (wildcard, name) = match entry.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        let valid_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if name.len() > 253 || !name.split('.').all(valid_label) {
            return Err(format!(
                "'{entry}' is not a host name, *.domain, an IP address or a CIDR"
            ));
        }
        let name = name.to_ascii_lowercase();
        Ok(if wildcard {
            AllowEntry::Suffix(name)
        } else {
            AllowEntry::Host(name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_as_hosts_wildcards_addresses_and_ranges() {
        assert_eq!(
            AllowEntry::parse("IdP.internal").unwrap(),
            AllowEntry::Host("idp.internal".into())
        );
        assert_eq!(
            AllowEntry::parse("*.corp.example").unwrap(),
            AllowEntry::Suffix("corp.example".into())
        );
        assert!(matches!(
            AllowEntry::parse("10.1.0.0/16").unwrap(),
            AllowEntry::Cidr { prefix: 16, .. }
        ));
        assert!(matches!(
            AllowEntry::parse("::1").unwrap(),
            AllowEntry::Cidr { prefix: 128, .. }
        ));
        for bad in ["", "10.0.0.0/33", "not a host", "http://x", "*.", "a..b"] {
            assert!(AllowEntry::parse(bad).is_err(), "{bad}");
        }
    }
}
