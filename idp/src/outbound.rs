//! Answers from other services — the CAs' CRL and OCSP servers, NHI's verification service, the
//! ownership service, clients' `jwks_uri` — read with a size limit while they arrive, so a
//! misbehaving or hostile peer cannot make the IdP buffer without end.
//!
//! The URLs a third party registers (`jwks_uri`, `backchannel_logout_uri`) are fetched by the
//! provider from inside the network, so they must not reach loopback, private or link-local
//! addresses (server-side request forgery). The check is made on the addresses a name resolves
//! to, by the resolver of the HTTP client that then connects to exactly those addresses, so a
//! name that resolves to a public address when checked and to an internal one a moment later
//! (DNS rebinding) cannot slip past; IP literals, which skip resolution, are checked before the
//! request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the answer broke off: {0}")]
    Transport(String),
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes (or announces more).
pub async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| BodyError::Transport(e.without_url().to_string()))? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether a third party's URL must not reach this address: loopback, private, link-local,
/// unspecified, shared (CGNAT), benchmarking, reserved, broadcast and multicast ranges, in
/// IPv4 and IPv6, including IPv4 addresses embedded in IPv6 (mapped, compatible, NAT64, 6to4).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_internal_v4(v4);
    }
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) embed an IPv4 address
    // in the last 32 bits; 6to4 (2002::/16) in the 32 bits after the prefix.
    let low = Ipv4Addr::new((seg[6] >> 8) as u8, seg[6] as u8, (seg[7] >> 8) as u8, seg[7] as u8);
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return is_internal_v4(low);
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_internal_v4(low);
    }
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::new((seg[1] >> 8) as u8, seg[1] as u8, (seg[2] >> 8) as u8, seg[2] as u8);
        return is_internal_v4(v4);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard-only 100::/64
}

/// Why a third party's URL is not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("`{0}` is not an absolute http(s) URL with a host")]
    Malformed(String),
    #[error("`{0}` points at an internal address")]
    Internal(String),
}

/// Checks a third party's URL before the provider fetches it or registers it. An IP literal is
/// checked here; a name is checked on every address it resolves to now (at registration), and
/// again by [`ClientHttp`]'s resolver at each use. A name that does not resolve now is let
/// through: there is nothing to check yet, and every use is checked anyway.
pub async fn check_url(url: &str) -> Result<(), UrlRefusal> {
    let host = literal_check(url)?;
    let Some(host) = host else { return Ok(()) };
    let port = url::Url::parse(url).ok().and_then(|u| u.port_or_known_default()).unwrap_or(443);
    let lookup = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), port))).await;
    if let Ok(Ok(addrs)) = lookup {
        if addrs.into_iter().any(|a| is_internal(a.ip())) {
            return Err(UrlRefusal::Internal(url.to_string()));
        }
    }
    Ok(())
}

/// Refuses malformed URLs and internal IP literals; returns the host name still to resolve.
fn literal_check(url: &str) -> Result<Option<String>, UrlRefusal> {
    let u = url::Url::parse(url).map_err(|_| UrlRefusal::Malformed(url.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(UrlRefusal::Malformed(url.to_string()));
    }
    match u.host() {
        Some(url::Host::Ipv4(ip)) if is_internal_v4(ip) => Err(UrlRefusal::Internal(url.to_string())),
        Some(url::Host::Ipv6(ip)) if is_internal_v6(ip) => Err(UrlRefusal::Internal(url.to_string())),
        Some(url::Host::Domain(d)) => Ok(Some(d.to_string())),
        Some(_) => Ok(None),
        None => Err(UrlRefusal::Malformed(url.to_string())),
    }
}

/// A resolver that drops internal addresses: the HTTP client connects only to what it returns.
struct PublicOnly;

#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to no public address")]
struct NoPublicAddress(String);

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = addrs.filter(|a| !is_internal(a.ip())).collect();
            if public.is_empty() {
                tracing::warn!(host = %host, "a client URL resolves to no public address; not fetched");
                return Err(Box::new(NoPublicAddress(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Outgoing HTTP to clients' own URLs: operators' clients are trusted with any address, third
/// parties' (dynamically registered) requests go through the public-only resolver.
#[derive(Clone)]
pub struct ClientHttp {
    trusted: reqwest::Client,
    guarded: reqwest::Client,
    allow_internal: bool,
}

impl ClientHttp {
    /// `trusted` is the provider's ordinary client; the guarded one has the same limits.
    /// `allow_internal` (`outbound.allow_private_addresses`) switches the check off, for tests.
    pub fn new(trusted: reqwest::Client, allow_internal: bool) -> Result<Self, reqwest::Error> {
        let guarded = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .dns_resolver(Arc::new(PublicOnly))
            .build()?;
        Ok(Self { trusted, guarded, allow_internal })
    }

    /// Whether third parties' URLs are checked at all.
    pub fn checks(&self) -> bool {
        !self.allow_internal
    }

    /// The HTTP client to fetch `url` for a client with, or why it must not be fetched.
    pub fn for_url(&self, third_party: bool, url: &str) -> Result<&reqwest::Client, UrlRefusal> {
        if !third_party || self.allow_internal {
            return Ok(&self.trusted);
        }
        literal_check(url)?;
        Ok(&self.guarded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised_in_every_form() {
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "ff02::1",
        ] {
            assert!(is_internal(a.parse().unwrap()), "{a} is internal");
        }
        for a in ["8.8.8.8", "203.74.1.1", "172.32.0.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "2002:808:808::"] {
            assert!(!is_internal(a.parse().unwrap()), "{a} is public");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_on_literals_and_resolved_names() {
        for u in [
            "https://127.0.0.1/jwks",
            "https://[::1]/jwks",
            "https://[::ffff:7f00:1]/jwks",
            "http://169.254.169.254/latest/meta-data/",
            "https://10.0.0.8:8443/logout",
            "https://localhost/jwks",
        ] {
            assert_eq!(check_url(u).await, Err(UrlRefusal::Internal(u.into())), "{u}");
        }
        assert!(matches!(check_url("file:///etc/passwd").await, Err(UrlRefusal::Malformed(_))));
        assert_eq!(check_url("https://8.8.8.8/jwks").await, Ok(()));
    }

    #[tokio::test]
    async fn the_guarded_client_never_connects_to_an_internal_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let http = ClientHttp::new(reqwest::Client::new(), false).unwrap();
        // A name that resolves to loopback (as a rebound name would) is not connected to.
        let url = format!("http://localhost:{port}/jwks");
        let client = http.for_url(true, &url).unwrap();
        assert!(client.get(&url).send().await.is_err());
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "no connection reached the listener");
        // An IP literal is refused before any request.
        assert!(http.for_url(true, &format!("http://127.0.0.1:{port}/")).is_err());
        // Operators' clients, and every client with the check switched off, are trusted.
        assert!(http.for_url(false, &format!("http://127.0.0.1:{port}/")).is_ok());
        let open = ClientHttp::new(reqwest::Client::new(), true).unwrap();
        assert!(open.for_url(true, &format!("http://127.0.0.1:{port}/")).is_ok());
    }
}
