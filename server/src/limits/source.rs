//! Where a connection comes from: the peer address, or the client address a trusted proxy
//! forwards in `X-Forwarded-For`; and the key the per-source limits count it under.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use hyper::header::{HeaderMap, HeaderName};

/// The header a reverse proxy names the client in (the de-facto standard one).
pub const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address a connection is counted under.
///
/// `peer` is the TCP peer. Only if it is one of `trusted` (the configured reverse proxies) is
/// `X-Forwarded-For` read: from its right end (the entry the nearest proxy appended), skipping
/// entries that are themselves trusted proxies, the first other address is the client. A
/// missing or unreadable header, or one naming only trusted proxies, leaves the peer. A client
/// that is not a trusted proxy cannot choose its source by sending the header itself.
pub fn source_of(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer_ip = canonical(peer.ip());
    if !trusted.iter().any(|t| canonical(*t) == peer_ip) {
        return peer_ip;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all(FORWARDED_FOR) {
        let Ok(text) = value.to_str() else {
            return peer_ip;
        };
        hops.extend(text.split(','));
    }
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // A hop we cannot read: do not trust anything left of it.
            return peer_ip;
        };
        if !trusted.iter().any(|t| canonical(*t) == ip) {
            return ip;
        }
    }
    peer_ip
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// IPv4-mapped IPv6 addresses as IPv4, so one client is one source whichever way it arrives.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key a source is limited under: an IPv4 address, or an IPv6 address's /64 prefix (one
/// end site usually holds a whole /64, so counting single IPv6 addresses would limit nothing).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use hyper::header::HeaderValue;

    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(FORWARDED_FOR, HeaderValue::from_static(v));
        }
        h
    }

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let h = headers(&["203.0.113.7"]);
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            source_of(peer("198.51.100.9:4000"), &h, &[proxy]),
            "198.51.100.9".parse::<IpAddr>().unwrap(),
            "an untrusted peer cannot choose its source"
        );
        assert_eq!(
            source_of(peer("10.0.0.1:4000"), &h, &[proxy]),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            source_of(peer("10.0.0.1:4000"), &HeaderMap::new(), &[proxy]),
            proxy,
            "no header: the proxy itself"
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        // The client sent a forged first entry; the proxies appended the real ones.
        let h = headers(&["1.1.1.1, 203.0.113.7", "10.0.0.2"]);
        assert_eq!(
            source_of(peer("10.0.0.1:1"), &h, &trusted),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        let h = headers(&["[2001:db8::5]:443, 198.51.100.1:80"]);
        assert_eq!(
            source_of(peer("10.0.0.1:1"), &h, &trusted),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        let h = headers(&["garbage, 203.0.113.7, nonsense"]);
        assert_eq!(
            source_of(peer("10.0.0.1:1"), &h, &trusted),
            "10.0.0.1".parse::<IpAddr>().unwrap(),
            "an unreadable hop ends the walk at the proxy"
        );
    }

    #[test]
    fn ipv6_sources_are_counted_by_prefix() {
        let a = source_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = source_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = source_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            source_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
