//! The one server this tool may talk to. The base URL must be loopback (the tool is a load
//! generator: pointed at anything else it would be an attack), every endpoint is re-rooted onto
//! that base URL, and redirects are never followed, so no request can leave the base origin.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use url::{Host, Url};

/// Parses the base URL and refuses anything that is not `http(s)://` on a loopback address.
/// `localhost` is accepted only if every address it resolves to is loopback.
pub async fn loopback_base(raw: &str) -> Result<Url> {
    let url = Url::parse(raw).with_context(|| format!("base URL `{raw}`"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("base URL must be http:// or https://, not `{}`", url.scheme());
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("base URL must not carry credentials");
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            let port = url.port_or_known_default().unwrap_or(80);
            let addrs: Vec<IpAddr> = tokio::net::lookup_host(("localhost", port))
                .await
                .context("resolving localhost")?
                .map(|a| a.ip())
                .collect();
            !addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback)
        }
        _ => false,
    };
    if !loopback {
        bail!("refusing `{raw}`: the load tool only targets loopback addresses (127.0.0.0/8, [::1], localhost)");
    }
    let mut url = url;
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(url)
}

/// The endpoints the scenarios use, all under the base URL.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub discovery: Url,
    pub jwks: Url,
    pub authorize: Url,
    pub token: Url,
    pub userinfo: Url,
    pub login: Url,
    pub activate: Url,
    /// Absent when the server does not advertise RFC 7662 introspection.
    pub introspection: Option<Url>,
    /// `grant_types_supported` as advertised.
    pub grant_types: Vec<String>,
}

#[derive(Deserialize)]
struct Discovery {
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
    #[serde(default)]
    grant_types_supported: Option<Vec<String>>,
}

/// Re-roots an advertised endpoint onto the base URL: only its path is kept, so a discovery
/// document naming another host (a production issuer, say) cannot redirect the load.
fn rebase(base: &Url, advertised: Option<&str>, default: &str) -> Result<Url> {
    let path = advertised.and_then(|a| Url::parse(a).ok()).map(|u| u.path().to_string());
    let path = path.as_deref().unwrap_or(default).trim_start_matches('/');
    Ok(base.join(path)?)
}

impl Endpoints {
    /// Reads the discovery document and derives every endpoint from it.
    pub async fn discover(http: &reqwest::Client, base: &Url) -> Result<Self> {
        let discovery = base.join(".well-known/openid-configuration")?;
        let resp = http
            .get(discovery.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("GET {discovery}"))?;
        if !resp.status().is_success() {
            bail!("GET {discovery}: HTTP {}", resp.status());
        }
        let d: Discovery = resp.json().await.context("discovery document")?;
        // RFC 8414 §2: when the list is absent the default is authorization_code and implicit.
        let grant_types = d.grant_types_supported.unwrap_or_else(|| vec!["authorization_code".into()]);
        Ok(Self {
            jwks: rebase(base, d.jwks_uri.as_deref(), "jwks")?,
            authorize: rebase(base, d.authorization_endpoint.as_deref(), "authorize")?,
            token: rebase(base, d.token_endpoint.as_deref(), "token")?,
            userinfo: rebase(base, d.userinfo_endpoint.as_deref(), "userinfo")?,
            introspection: match d.introspection_endpoint.as_deref() {
                Some(i) => Some(rebase(base, Some(i), "introspect")?),
                None => None,
            },
            login: base.join("login")?,
            activate: base.join("activate")?,
            discovery,
            grant_types,
        })
    }

    pub fn supports_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_loopback_is_accepted() {
        for ok in ["http://127.0.0.1:8080", "http://127.8.9.10/", "http://[::1]:1/", "https://127.0.0.1/x"] {
            assert!(loopback_base(ok).await.is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.1/",
            "http://example.com/",
            "http://8.8.8.8/",
            "ftp://127.0.0.1/",
            "http://user:pw@127.0.0.1/",
            "http://0.0.0.0:8080/",
        ] {
            assert!(loopback_base(bad).await.is_err(), "{bad}");
        }
    }

    #[test]
    fn advertised_endpoints_stay_on_the_base() {
        let base = Url::parse("http://127.0.0.1:9000/").unwrap();
        let u = rebase(&base, Some("https://sso.example.gov.tw/token"), "x").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:9000/token");
        let u = rebase(&base, None, "jwks").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:9000/jwks");
    }
}
