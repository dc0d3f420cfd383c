//! Where webhooks may go. A shop registers the URL, so it could name an
//! address inside our network (a metadata service, an admin port, a
//! database): deliveries refuse loopback, private, link-local, unique-local,
//! CGNAT and other non-public destinations unless the operator allows them
//! (`--webhook-allow`). The check runs at send time on the resolved
//! addresses, and the request goes to an address that passed it (the HTTP
//! client connects to what this resolver returned), so a name that
//! resolves differently later (DNS rebinding) gains nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The destinations webhooks may reach.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    allow: Arc<Vec<IpNet>>,
}

/// A destination refused by [`Egress`]; its text is what the delivery log shows.
#[derive(Debug, thiserror::Error)]
#[error("the endpoint's address is not a public one; deliveries there are refused")]
pub struct Refused;

impl Egress {
    /// Public addresses, plus the blocks in `allow`.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self {
            allow: Arc::new(allow),
        }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip)) || is_public(ip)
    }
}

/// Not loopback, private, link-local, unique-local, CGNAT, unspecified,
/// multicast, broadcast or reserved (IPv4-mapped IPv6 is judged as IPv4).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF 192.0.0/24
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // Addresses that carry an IPv4 one (and reach it through a
            // gateway or a tunnel) are refused whole, whatever they carry.
            let embeds_v4 = (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 64:ff9b::/96, 64:ff9b:1::/48
                || s[0] == 0x2002 // 6to4 2002::/16
                || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32
                || s[..6].iter().all(|&x| x == 0); // IPv4-compatible ::/96 (also :: and ::1)
            !(embeds_v4
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique-local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0) // site-local fec0::/10
        }
    }
}

impl Resolve for Egress {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = self.clone();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let permitted: Vec<SocketAddr> = found.filter(|a| egress.permits(a.ip())).collect();
            if permitted.is_empty() {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_destinations_unless_allowed() {
        let egress = Egress::default();
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "::127.0.0.1",
            "2002:a00:1::1",
            "fec0::1",
            "2001:0:4136:e378::1",
        ] {
            assert!(!egress.permits(ip(inside)), "{inside} is refused");
        }
        for outside in ["93.184.216.34", "8.8.8.8", "100.128.0.1", "2606:4700::1111"] {
            assert!(egress.permits(ip(outside)), "{outside} is allowed");
        }
        let allowed = Egress::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(allowed.permits(ip("10.9.9.9")));
        assert!(!allowed.permits(ip("192.168.1.1")));
    }
}
