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
            return Err(
                "an empty entry; give a host name, *.domain, an IP address or a CIDR".into(),
            );
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
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
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

    /// Whether this entry names `host` (a host name, not an address literal), compared
    /// without case and without a trailing dot.
    pub fn matches_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self {
            AllowEntry::Host(name) => host == *name,
            AllowEntry::Suffix(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            AllowEntry::Cidr { .. } => false,
        }
    }

    /// Whether this entry's range holds `ip`; IPv4-mapped IPv6 addresses compare as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let AllowEntry::Cidr { network, prefix } = self else {
            return false;
        };
        match (network.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(ip) & mask == u32::from(net) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(ip) & mask == u128::from(net) & mask
            }
            _ => false,
        }
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

    fn entry(s: &str) -> AllowEntry {
        AllowEntry::parse(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_entries_match_the_name_without_case_or_trailing_dot() {
        let e = entry("idp.internal");
        assert!(e.matches_host("idp.internal"));
        assert!(e.matches_host("IDP.Internal."));
        assert!(!e.matches_host("x.idp.internal"));
        assert!(!e.matches_host("idp.internal.evil.example"));
        assert!(!e.contains(ip("10.0.0.1")));
    }

    #[test]
    fn wildcards_match_names_below_the_domain_only() {
        let e = entry("*.corp.example");
        assert!(e.matches_host("a.corp.example"));
        assert!(e.matches_host("b.a.CORP.example"));
        assert!(!e.matches_host("corp.example"));
        assert!(!e.matches_host("evilcorp.example"));
        assert!(!e.matches_host("a.corp.example.evil"));
        assert!(!e.matches_host(".corp.example"));
    }

    #[test]
    fn ranges_hold_their_addresses_and_mapped_forms_of_them() {
        let e = entry("10.1.0.0/16");
        assert!(e.contains(ip("10.1.0.1")));
        assert!(e.contains(ip("10.1.255.255")));
        assert!(e.contains(ip("::ffff:10.1.2.3")));
        assert!(!e.contains(ip("10.2.0.1")));
        assert!(!e.matches_host("10.1.0.1"));
        let one = entry("127.0.0.1");
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let v6 = entry("fd00::/8");
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fc00::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(entry("[::1]").contains(ip("::1")));
        assert!(entry("0.0.0.0/0").contains(ip("169.254.169.254")));
    }
}
