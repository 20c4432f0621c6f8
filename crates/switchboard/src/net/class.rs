//! What kind of address an IP is, as far as the outbound guard cares: public (always
//! reachable) or one of the kinds an attacker would aim a URL at.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kind of an address. Everything but `Public` is refused unless allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    /// 127.0.0.0/8, ::1. Dev mode allows these.
    Loopback,
    /// RFC 1918, IPv6 unique local (fc00::/7) and site-local (fec0::/10), local-use NAT64.
    Private,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// A cloud metadata service: 169.254.169.254, fd00:ec2::254, Azure's 168.63.129.16.
    Metadata,
    /// 100.64.0.0/10, carrier-grade NAT (Alibaba's metadata service lives there).
    SharedNat,
    /// 0.0.0.0/8, ::. Connecting to 0.0.0.0 reaches the local host on Linux.
    Unspecified,
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// Documentation, benchmarking, IETF protocol and future-use ranges, discard-only,
    /// Teredo: nothing a provider lives at.
    Reserved,
    /// An IPv6 form that carries an IPv4 address of the given kind (NAT64 64:ff9b::/96,
    /// 6to4 2002::/16, IPv4-compatible ::a.b.c.d); the IPv4-mapped form is classified as
    /// the IPv4 address itself.
    Embedded {
        form: &'static str,
        v4: Ipv4Addr,
    },
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressClass::Public => f.write_str("public"),
            AddressClass::Loopback => f.write_str("loopback"),
            AddressClass::Private => f.write_str("private"),
            AddressClass::LinkLocal => f.write_str("link-local"),
            AddressClass::Metadata => f.write_str("cloud metadata"),
            AddressClass::SharedNat => f.write_str("shared (carrier-grade NAT)"),
            AddressClass::Unspecified => f.write_str("unspecified"),
            AddressClass::Multicast => f.write_str("multicast"),
            AddressClass::Broadcast => f.write_str("broadcast"),
            AddressClass::Reserved => f.write_str("reserved"),
            AddressClass::Embedded { form, v4 } => {
                write!(f, "{form} form of {v4}, a {} address", classify_v4(*v4))
            }
        }
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// Classifies `ip`; an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is its IPv4 address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip.to_canonical() {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    // Azure's wire server is a public address only reachable from inside Azure.
    const METADATA: [Ipv4Addr; 2] = [
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(168, 63, 129, 16),
    ];
    if METADATA.contains(&ip) {
        AddressClass::Metadata
    } else if in_v4(ip, [0, 0, 0, 0], 8) {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if in_v4(ip, [100, 64, 0, 0], 10) {
        AddressClass::SharedNat
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if in_v4(ip, [192, 0, 0, 0], 24)
        || in_v4(ip, [192, 0, 2, 0], 24)
        || in_v4(ip, [198, 51, 100, 0], 24)
        || in_v4(ip, [203, 0, 113, 0], 24)
        || in_v4(ip, [198, 18, 0, 0], 15)
        || in_v4(ip, [240, 0, 0, 0], 4)
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn v6(s: &str) -> Ipv6Addr {
    // Only called with the literals below, which are valid.
    s.parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let bits = u128::from(ip);
    let low_v4 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let embedded = |form: &'static str, v4: Ipv4Addr| match classify_v4(v4) {
        AddressClass::Public => AddressClass::Public,
        _ => AddressClass::Embedded { form, v4 },
    };
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip == v6("fd00:ec2::254") {
        AddressClass::Metadata
    } else if bits >> 32 == 0 {
        // IPv4-compatible (deprecated): never public, whatever it carries.
        match embedded("IPv4-compatible", low_v4) {
            AddressClass::Public => AddressClass::Reserved,
            other => other,
        }
    } else if in_v6(ip, v6("64:ff9b::"), 96) {
        embedded("NAT64", low_v4)
    } else if in_v6(ip, v6("2002::"), 16) {
        embedded("6to4", Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32))
    } else if in_v6(ip, v6("fc00::"), 7)
        || in_v6(ip, v6("fec0::"), 10)
        || in_v6(ip, v6("64:ff9b:1::"), 48)
    {
        AddressClass::Private
    } else if in_v6(ip, v6("fe80::"), 10) {
        AddressClass::LinkLocal
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if in_v6(ip, v6("2001:db8::"), 32)
        || in_v6(ip, v6("2001::"), 32)
        || in_v6(ip, v6("100::"), 64)
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(class(ip), AddressClass::Public, "{ip}");
        }
    }

    #[test]
    fn every_internal_range_has_its_class() {
        let cases = [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.255.254", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("10.0.0.1", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.31.255.255", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("fc00::1", AddressClass::Private),
            ("fd12:3456::1", AddressClass::Private),
            ("fec0::1", AddressClass::Private),
            ("64:ff9b:1::a00:1", AddressClass::Private),
            ("169.254.0.1", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("169.254.169.254", AddressClass::Metadata),
            ("fd00:ec2::254", AddressClass::Metadata),
            ("168.63.129.16", AddressClass::Metadata),
            ("100.64.0.1", AddressClass::SharedNat),
            ("100.127.255.255", AddressClass::SharedNat),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("224.0.0.1", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("240.0.0.1", AddressClass::Reserved),
            ("192.0.2.1", AddressClass::Reserved),
            ("198.18.0.1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Reserved),
            ("2001:0:4136:e378::1", AddressClass::Reserved),
            ("::8.8.8.8", AddressClass::Reserved),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_of_internal_ipv4_addresses_are_refused_like_them() {
        // IPv4-mapped: the IPv4 address itself.
        assert_eq!(class("::ffff:127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("::ffff:169.254.169.254"), AddressClass::Metadata);
        assert_eq!(class("::ffff:10.1.2.3"), AddressClass::Private);
        // Compatible, NAT64 and 6to4 carry it inside.
        for ip in [
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a00:1::1",
        ] {
            assert!(
                matches!(class(ip), AddressClass::Embedded { .. }),
                "{ip}: {}",
                class(ip)
            );
        }
        assert_eq!(
            class("64:ff9b::a9fe:a9fe").to_string(),
            "NAT64 form of 169.254.169.254, a cloud metadata address"
        );
    }
}
