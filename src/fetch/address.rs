//! Which addresses the fetcher contacts: public unicast only, unless `PNC_FETCH_ALLOW` names the
//! address (a CIDR) or the host name.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One entry of `PNC_FETCH_ALLOW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// Addresses in this network (a bare address is a /32 or /128).
    Net(ipnet::IpNet),
    /// This host name (lower case), whatever it resolves to.
    Host(String),
}

impl Allow {
    /// Parse a comma-separated list (`127.0.0.5/32, ocsp.oem.example`).
    pub fn parse_list(s: &str) -> Result<Vec<Allow>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Ok(n) = part.parse::<ipnet::IpNet>() {
                out.push(Allow::Net(n));
            } else if let Ok(a) = part.parse::<IpAddr>() {
                out.push(Allow::Net(ipnet::IpNet::from(a)));
            } else if part.len() <= 253
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                out.push(Allow::Host(part.to_ascii_lowercase()));
            } else {
                return Err(format!(
                    "PNC_FETCH_ALLOW: '{}' is neither a CIDR, an address nor a host name",
                    part.chars().take(64).collect::<String>()
                ));
            }
        }
        Ok(out)
    }

    /// Whether this entry allows `ip` reached as `host`.
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        match self {
            Allow::Net(n) => n.contains(&ip),
            Allow::Host(h) => h.eq_ignore_ascii_case(host),
        }
    }
}

/// An IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible IPv6 address as the IPv4 address it
/// carries; others unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Why the fetcher does not contact `ip` by default, or `None` for a public unicast address.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(a) => v4_reason(a),
        IpAddr::V6(a) => v6_reason(a),
    }
}

fn in4(a: Ipv4Addr, net: [u8; 4], bits: u8) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    (u32::from(a) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn v4_reason(a: Ipv4Addr) -> Option<&'static str> {
    let table: &[([u8; 4], u8, &'static str)] = &[
        ([0, 0, 0, 0], 8, "unspecified / this network"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([10, 0, 0, 0], 8, "private (RFC 1918)"),
        ([172, 16, 0, 0], 12, "private (RFC 1918)"),
        ([192, 168, 0, 0], 16, "private (RFC 1918)"),
        ([169, 254, 0, 0], 16, "link-local (cloud metadata)"),
        ([100, 64, 0, 0], 10, "shared address space (CGNAT)"),
        ([192, 0, 0, 0], 24, "IETF protocol assignments"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    table
        .iter()
        .find(|(net, bits, _)| in4(a, *net, *bits))
        .map(|(_, _, why)| *why)
}

fn v6_reason(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    if a.is_unspecified() {
        return Some("unspecified");
    }
    if a.is_loopback() {
        return Some("loopback");
    }
    if s[0] & 0xfe00 == 0xfc00 {
        return Some("unique local (ULA)");
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return Some("link-local");
    }
    if s[0] & 0xff00 == 0xff00 {
        return Some("multicast");
    }
    // IPv4 carried inside IPv6 (compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16): judged
    // by the IPv4 address it reaches.
    let embedded =
        if s[..6] == [0, 0, 0, 0, 0, 0] || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]) {
            Some(Ipv4Addr::new(
                (s[6] >> 8) as u8,
                s[6] as u8,
                (s[7] >> 8) as u8,
                s[7] as u8,
            ))
        } else if s[0] == 0x2002 {
            Some(Ipv4Addr::new(
                (s[1] >> 8) as u8,
                s[1] as u8,
                (s[2] >> 8) as u8,
                s[2] as u8,
            ))
        } else {
            None
        };
    if let Some(v4) = embedded
        && let Some(why) = v4_reason(v4)
    {
        return Some(why);
    }
    None
}
