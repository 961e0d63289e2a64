//! Settings read from the environment.
//!
//! Everything is read once at start-up so that a typo shows up immediately
//! instead of in the middle of a sign-in.

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use openidconnect::{ClientId, ClientSecret, IssuerUrl, Scope};
use serde::Deserialize;
use url::Url;

/// The command that registers this example with the IdP; shown whenever no
/// client credentials could be found, so the fix is one copy-and-paste away.
pub const REGISTER_COMMAND: &str = "idp clients create --name \"Relying party example\" \
     --redirect-uri http://127.0.0.1:8081/callback \
     --post-logout-redirect-uri http://127.0.0.1:8081/";

/// Where the client credentials are looked for when `RP_CLIENT_ID` is unset.
const DEFAULT_CLIENT_FILE: &str = "idp-data/demo-client.json";

/// Scopes always requested. `openid` itself is added by the `openidconnect`
/// client, so it is not listed here.
const BASE_SCOPES: [&str; 2] = ["profile", "email"];

/// The relying party's configuration.
pub struct Config {
    /// The IdP's issuer identifier; must match the `issuer` in its discovery
    /// document character for character (including any trailing slash).
    pub issuer: IssuerUrl,
    /// Socket address the web server listens on.
    pub bind: String,
    /// Public URL of this app, always ending in `/`, so that `callback` and
    /// the post-logout address can be derived with [`Url::join`] even when the
    /// app sits below a path prefix behind a reverse proxy.
    pub base_url: Url,
    pub client_id: ClientId,
    /// `None` makes this a public client that relies on PKCE alone.
    pub client_secret: Option<ClientSecret>,
    /// Scopes requested in addition to `openid`.
    pub scopes: Vec<Scope>,
    /// `RP_USE_PAR`: push the authorization request to the IdP's
    /// `pushed_authorization_request_endpoint` (RFC 9126) and send the browser
    /// only the `request_uri`.
    pub use_par: bool,
    /// `RP_USE_DPOP`: bind the tokens to a key this app holds (RFC 9449), so a
    /// leaked access or refresh token is useless without it.
    pub use_dpop: bool,
}

/// The shape of `RP_CLIENT_FILE`: the JSON printed by `idp clients create`.
/// Unknown fields are ignored so the IdP may print more than these two.
#[derive(Deserialize)]
struct ClientFile {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, which makes the parsing
    /// testable without touching the real environment.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        // An empty variable is treated as unset: `RP_CLIENT_SECRET= cargo run`
        // is the natural way to say "no secret".
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let issuer_raw = var("RP_ISSUER").unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        let issuer = IssuerUrl::new(issuer_raw.clone())
            .with_context(|| format!("RP_ISSUER is not a valid URL: {issuer_raw:?}"))?;

        let bind = var("RP_BIND").unwrap_or_else(|| "127.0.0.1:8081".to_owned());

        let base_raw = var("RP_BASE_URL").unwrap_or_else(|| format!("http://{bind}"));
        let mut base_url =
            Url::parse(&base_raw).with_context(|| format!("RP_BASE_URL is not a valid URL: {base_raw:?}"))?;
        if base_url.cannot_be_a_base() || base_url.query().is_some() || base_url.fragment().is_some() {
            bail!("RP_BASE_URL must be a plain http(s) URL without query or fragment: {base_raw:?}");
        }
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }

        let (client_id, client_secret) = match var("RP_CLIENT_ID") {
            Some(id) => (id, var("RP_CLIENT_SECRET")),
            None => {
                let file = var("RP_CLIENT_FILE").unwrap_or_else(|| DEFAULT_CLIENT_FILE.to_owned());
                let creds = read_client_file(Path::new(&file))?;
                let secret = creds.client_secret.filter(|s| !s.trim().is_empty());
                (creds.client_id, secret)
            }
        };
        if client_id.trim().is_empty() {
            bail!("the client_id is empty");
        }

        let mut scopes: Vec<Scope> = Vec::new();
        let extra = var("RP_SCOPES").unwrap_or_default();
        for scope in BASE_SCOPES.into_iter().chain(extra.split_whitespace()) {
            // `openid` is always sent by the library; sending it twice would
            // only make the authorization URL look odd.
            if scope != "openid" && !scopes.iter().any(|s| s.as_str() == scope) {
                scopes.push(Scope::new(scope.to_owned()));
            }
        }

        let switch = |name: &str| -> anyhow::Result<bool> {
            match var(name).as_deref().map(str::trim) {
                None | Some("0" | "false" | "no") => Ok(false),
                Some("1" | "true" | "yes") => Ok(true),
                Some(other) => bail!("{name} must be 1 or 0, not {other:?}"),
            }
        };

        Ok(Config {
            use_par: switch("RP_USE_PAR")?,
            use_dpop: switch("RP_USE_DPOP")?,
            issuer,
            bind,
            base_url,
            client_id: ClientId::new(client_id),
            client_secret: client_secret.map(ClientSecret::new),
            scopes,
        })
    }

    /// Where the IdP sends the browser back with the authorization code.
    pub fn redirect_url(&self) -> anyhow::Result<Url> {
        Ok(self.base_url.join("callback")?)
    }

    /// Where the IdP sends the browser after signing out: the home page.
    pub fn post_logout_url(&self) -> Url {
        self.base_url.clone()
    }

    /// Cookies get the `Secure` flag only when the app is served over https,
    /// otherwise browsers would drop them on the plain-http development setup.
    pub fn cookies_secure(&self) -> bool {
        self.base_url.scheme() == "https"
    }

    /// Cookies are scoped to the app's own path.
    pub fn cookie_path(&self) -> &str {
        self.base_url.path()
    }
}

/// Reads the client credentials file, explaining how to create it when it is
/// missing.
fn read_client_file(path: &Path) -> anyhow::Result<ClientFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(anyhow!(missing_client_message(path)));
        }
        Err(err) => {
            return Err(anyhow!(err)).with_context(|| format!("cannot read client file {}", path.display()));
        }
    };
    serde_json::from_str(&text).with_context(|| {
        format!("client file {} is not a JSON object with \"client_id\" and \"client_secret\"", path.display())
    })
}

/// The message shown when the app has no client registration to use.
fn missing_client_message(path: &Path) -> String {
    format!(
        "no OAuth client configured: RP_CLIENT_ID is not set and {} does not exist.\n\
         Register this app with the IdP first:\n\n    {REGISTER_COMMAND}\n\n\
         then either save the JSON it prints (with \"client_id\" and \"client_secret\") to {} \
         (or point RP_CLIENT_FILE at it), or set RP_CLIENT_ID and RP_CLIENT_SECRET.",
        path.display(),
        path.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() -> anyhow::Result<()> {
        let c = config(&[("RP_CLIENT_ID", "abc")])?;
        assert_eq!(c.issuer.as_str(), "http://127.0.0.1:8080");
        assert_eq!(c.bind, "127.0.0.1:8081");
        assert_eq!(c.redirect_url()?.as_str(), "http://127.0.0.1:8081/callback");
        assert_eq!(c.post_logout_url().as_str(), "http://127.0.0.1:8081/");
        assert!(c.client_secret.is_none());
        let scopes: Vec<&str> = c.scopes.iter().map(|s| s.as_str()).collect();
        assert_eq!(scopes, ["profile", "email"]);
        assert!(!c.cookies_secure());
        assert!(!c.use_par && !c.use_dpop, "plain OpenID Connect unless switched on");
        Ok(())
    }

    #[test]
    fn par_and_dpop_switches() -> anyhow::Result<()> {
        let c = config(&[("RP_CLIENT_ID", "abc"), ("RP_USE_PAR", "1"), ("RP_USE_DPOP", "true")])?;
        assert!(c.use_par && c.use_dpop);
        assert!(config(&[("RP_CLIENT_ID", "abc"), ("RP_USE_PAR", "maybe")]).is_err());
        Ok(())
    }

    #[test]
    fn base_url_with_prefix_and_extra_scopes() -> anyhow::Result<()> {
        let c = config(&[
            ("RP_CLIENT_ID", "abc"),
            ("RP_CLIENT_SECRET", "s3cret"),
            ("RP_BASE_URL", "https://app.example/rp"),
            ("RP_SCOPES", "openid  phone email offline_access"),
        ])?;
        assert_eq!(c.redirect_url()?.as_str(), "https://app.example/rp/callback");
        assert_eq!(c.cookie_path(), "/rp/");
        assert!(c.cookies_secure());
        assert!(c.client_secret.is_some());
        let scopes: Vec<&str> = c.scopes.iter().map(|s| s.as_str()).collect();
        assert_eq!(scopes, ["profile", "email", "phone", "offline_access"]);
        Ok(())
    }

    #[test]
    fn missing_client_explains_registration() {
        let result = config(&[("RP_CLIENT_FILE", "/nonexistent/demo-client.json")]);
        let message = match result {
            Ok(_) => String::new(),
            Err(err) => format!("{err:#}"),
        };
        assert!(message.contains("idp clients create"), "{message}");
        assert!(message.contains("RP_CLIENT_ID"), "{message}");
    }

    #[test]
    fn client_file_is_read() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("rp-example-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("client.json");
        std::fs::write(&file, r#"{"client_id": "cid", "client_secret": "csecret", "name": "x"}"#)?;
        let path = file.to_string_lossy().into_owned();
        let c = config(&[("RP_CLIENT_FILE", &path)]);
        std::fs::remove_dir_all(&dir)?;
        let c = c?;
        assert_eq!(c.client_id.as_str(), "cid");
        assert_eq!(c.client_secret.as_ref().map(|s| s.secret().as_str()), Some("csecret"));
        Ok(())
    }
}
