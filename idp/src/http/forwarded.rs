//! What a trusted reverse proxy tells about the client: its address (`X-Forwarded-For`) and,
//! for card sign-in, its TLS client certificate (one configured header).
//!
//! Both are believed only when the TCP peer is one of `certificates.trusted_proxies`; from
//! anyone else these headers are the client's own words and are ignored.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// One entry of `certificates.trusted_proxies`: an address, or a network such as `10.0.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    addr: IpAddr,
    prefix: u8,
}

impl ProxyNet {
    /// Parses `192.0.2.7`, `2001:db8::1`, `10.0.0.0/8` or `2001:db8::/32`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 peer counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The configured trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ProxyNet>);

impl TrustedProxies {
    /// Parses the configured list; entries that do not parse are left out (configuration
    /// validation refuses them at start).
    pub fn parse(entries: &[String]) -> Self {
        Self(entries.iter().filter_map(|e| ProxyNet::parse(e)).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client address: the TCP peer, unless it is a trusted proxy, in which case the
    /// rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (each proxy appends
    /// the address it saw; anything further left may be made up by the client). An entry that
    /// does not parse ends the walk at the last address a trusted proxy vouched for.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let hops = forwarded_for.iter().flat_map(|h| h.split(',')).map(str::trim).filter(|h| !h.is_empty());
        let mut client = peer;
        for hop in hops.collect::<Vec<_>>().into_iter().rev() {
            let Some(ip) = parse_hop(hop) else { return client };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly bracketed (`[2001:db8::1]`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The client address of a request, as [`TrustedProxies::client`] decides it.
pub fn client_ip(proxies: &TrustedProxies, req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let values: Vec<&str> =
        req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    Some(proxies.client(peer, &values))
}

/// Where a trusted proxy puts the client certificate (`certificates.proxy_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertHeader {
    /// nginx's URL-escaped PEM, `X-SSL-Client-Cert: $ssl_client_escaped_cert`.
    XSslClientCert,
    /// RFC 9440 `Client-Cert` (with `Client-Cert-Chain`).
    ClientCert,
    /// The proxy forwards no certificate: `/card/proxy-login` is off.
    None,
}

impl CertHeader {
    /// The configured value; `None` (Rust's) when empty or unknown.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-ssl-client-cert" => Some(Self::XSslClientCert),
            "client-cert" => Some(Self::ClientCert),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The header names this choice reads.
    fn own(self) -> &'static [&'static str] {
        match self {
            Self::XSslClientCert => &["x-ssl-client-cert"],
            Self::ClientCert => &["client-cert", "client-cert-chain"],
            Self::None => &[],
        }
    }

    /// A certificate header other than the configured one, if the request carries one. Its
    /// presence means the proxy passed a client-written header through: refuse, never read it.
    pub fn foreign_header(self, req: &HttpRequest) -> Option<&'static str> {
        CERT_HEADERS.iter().copied().find(|h| !self.own().contains(h) && req.headers().contains_key(*h))
    }
}

/// Headers that some proxy or another uses for a client certificate.
pub const CERT_HEADERS: &[&str] = &[
    "client-cert",
    "client-cert-chain",
    "x-ssl-client-cert",
    "x-client-cert",
    "x-ssl-cert",
    "ssl-client-cert",
    "x-forwarded-client-cert",
    "x-arr-clientcert",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn proxy_entries_are_addresses_or_networks() {
        assert!(ProxyNet::parse("10.0.0.0/8").unwrap().contains(ip("10.200.3.4")));
        assert!(!ProxyNet::parse("10.0.0.0/8").unwrap().contains(ip("11.0.0.1")));
        assert!(ProxyNet::parse("192.0.2.7").unwrap().contains(ip("::ffff:192.0.2.7")));
        assert!(ProxyNet::parse("2001:db8::/32").unwrap().contains(ip("2001:db8:1::5")));
        assert!(ProxyNet::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.1")));
        assert!(!ProxyNet::parse("192.0.2.7").unwrap().contains(ip("2001:db8::1")));
        for bad in ["", "proxy.internal", "10.0.0.0/33", "::/129", "10.0.0.1/x"] {
            assert_eq!(ProxyNet::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let p = proxies(&["10.0.0.1", "10.1.0.0/16"]);
        // Not from a proxy: the header is the client's own words.
        assert_eq!(p.client(ip("198.51.100.9"), &["203.0.113.5"]), ip("198.51.100.9"));
        // From the proxy: the rightmost untrusted entry; made-up entries further left are ignored.
        assert_eq!(p.client(ip("10.0.0.1"), &["1.2.3.4, 203.0.113.5"]), ip("203.0.113.5"));
        assert_eq!(p.client(ip("10.0.0.1"), &["1.2.3.4", "203.0.113.5, 10.1.2.3"]), ip("203.0.113.5"));
        // Nothing forwarded, garbage, or only proxies: the last address a proxy vouched for.
        assert_eq!(p.client(ip("10.0.0.1"), &[]), ip("10.0.0.1"));
        assert_eq!(p.client(ip("10.0.0.1"), &["203.0.113.5, not-an-ip"]), ip("10.0.0.1"));
        assert_eq!(p.client(ip("10.0.0.1"), &["10.1.0.9"]), ip("10.1.0.9"));
        assert_eq!(p.client(ip("10.0.0.1"), &["[2001:db8::7]"]), ip("2001:db8::7"));
        // No proxies configured: never believed.
        assert_eq!(proxies(&[]).client(ip("10.0.0.1"), &["203.0.113.5"]), ip("10.0.0.1"));
    }

    #[test]
    fn only_the_configured_certificate_header_is_the_proxys() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("X-SSL-Client-Cert", ""))
            .insert_header(("Client-Cert", ":AQID:"))
            .to_http_request();
        assert_eq!(CertHeader::XSslClientCert.foreign_header(&req), Some("client-cert"));
        assert_eq!(CertHeader::ClientCert.foreign_header(&req), Some("x-ssl-client-cert"));
        let req = actix_web::test::TestRequest::default().insert_header(("Client-Cert", ":AQID:")).to_http_request();
        assert_eq!(CertHeader::ClientCert.foreign_header(&req), None);
        assert_eq!(CertHeader::parse(" X-SSL-Client-Cert "), Some(CertHeader::XSslClientCert));
        assert_eq!(CertHeader::parse(""), None);
        assert_eq!(CertHeader::parse("x-client-cert"), None);
    }
}
