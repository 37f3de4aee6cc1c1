//! The address a request comes from, as rate limits and the audit log should see it: the
//! socket's peer, or — when that peer is a declared TLS-terminating proxy (`PNC_TRUSTED_PROXIES`)
//! — the nearest untrusted address in `X-Forwarded-For`. No I/O.
//!
//! `X-Forwarded-For` is believed only from trusted proxies: anyone else could put any address
//! there and get a fresh rate-limit bucket with every request.

use std::net::IpAddr;

use ipnet::IpNet;

/// Where a request comes from (in every request's extensions, set by `crate::server`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key rate limits use: the address itself for IPv4, its /64 for IPv6 (one host
    /// usually holds a whole /64, so single IPv6 addresses are free to an attacker).
    pub fn limit_key(&self) -> IpAddr {
        match self.0 {
            IpAddr::V4(_) => self.0,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut s = v6.segments();
                    s[4..].fill(0);
                    IpAddr::V6(s.into())
                }
            },
        }
    }
}

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A `PNC_TRUSTED_PROXIES` entry that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("PNC_TRUSTED_PROXIES: '{0}' is not an address or CIDR (e.g. 10.0.0.0/8, ::1)")]
pub struct ProxyListError(pub String);

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parse a comma- or space-separated list of addresses and CIDRs (empty: none).
    pub fn parse(list: &str) -> Result<TrustedProxies, ProxyListError> {
        let mut out = Vec::new();
        for item in list
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| ProxyListError(item.to_string()))?;
            out.push(net);
        }
        Ok(TrustedProxies(out))
    }

    /// From `PNC_TRUSTED_PROXIES`.
    pub fn from_env() -> Result<TrustedProxies, ProxyListError> {
        TrustedProxies::parse(&std::env::var("PNC_TRUSTED_PROXIES").unwrap_or_default())
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request from `peer` carrying these `X-Forwarded-For` values (in header
    /// order): `peer` unless it is trusted; then the rightmost entry that is not a trusted proxy
    /// (entries further left were written by whoever sent the request, and prove nothing).
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> ClientIp {
        if !self.trusts(peer) {
            return ClientIp(peer);
        }
        let entries: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        for e in entries.iter().rev() {
            match parse_entry(e) {
                Some(ip) if self.trusts(ip) => continue,
                Some(ip) => return ClientIp(ip),
                // Garbage where an address should be: stop believing the header here.
                None => break,
            }
        }
        ClientIp(peer)
    }
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_entry(e: &str) -> Option<IpAddr> {
    let e = e.trim();
    if let Ok(ip) = e.parse() {
        return Some(ip);
    }
    if let Ok(sa) = e.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    e.strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let t = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap();
        let xff = ["203.0.113.9, 10.1.2.3"];
        assert_eq!(
            t.client(ip("192.0.2.1"), xff.into_iter()),
            ClientIp(ip("192.0.2.1"))
        );
        assert_eq!(
            t.client(ip("10.0.0.5"), xff.into_iter()),
            ClientIp(ip("203.0.113.9"))
        );
        // A forged entry to the left of the real one changes nothing.
        let forged = ["1.2.3.4", "203.0.113.9"];
        assert_eq!(
            t.client(ip("::1"), forged.into_iter()),
            ClientIp(ip("203.0.113.9"))
        );
        assert_eq!(
            t.client(ip("::1"), ["[2001:db8::7]:443"].into_iter()),
            ClientIp(ip("2001:db8::7"))
        );
        assert_eq!(
            t.client(ip("10.0.0.5"), ["garbage"].into_iter()),
            ClientIp(ip("10.0.0.5"))
        );
        assert_eq!(
            t.client(ip("10.0.0.5"), std::iter::empty()),
            ClientIp(ip("10.0.0.5"))
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        let none = TrustedProxies::parse("").unwrap();
        assert_eq!(
            none.client(ip("10.0.0.5"), xff.into_iter()),
            ClientIp(ip("10.0.0.5"))
        );
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let a = ClientIp(ip("2001:db8:1:2:aaaa::1")).limit_key();
        let b = ClientIp(ip("2001:db8:1:2:bbbb::9")).limit_key();
        let c = ClientIp(ip("2001:db8:1:3::1")).limit_key();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            ClientIp(ip("::ffff:192.0.2.7")).limit_key(),
            ip("192.0.2.7")
        );
        assert_eq!(ClientIp(ip("192.0.2.7")).limit_key(), ip("192.0.2.7"));
    }
}
