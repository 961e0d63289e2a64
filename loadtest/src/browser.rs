//! Plays a browser through the IdP's own pages, for setup only (never timed): signing in
//! through `/login` (CSRF double-submit cookie and the hidden `csrf_token` field), activating
//! an account after a one-time password, and granting consent if a client asks for it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderValue, LOCATION, SET_COOKIE};
use reqwest::{redirect, Response, StatusCode};
use url::Url;

use crate::target::Endpoints;

/// The name of the IdP's SSO session cookie.
pub const SESSION_COOKIE: &str = "idp_session";

/// A cookie-keeping client that does not follow redirects (each hop is checked, and nothing
/// outside the base URL is ever fetched).
pub struct Browser {
    http: reqwest::Client,
    jar: Arc<Jar>,
    base: Url,
}

/// A response read whole.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    async fn read(r: Response) -> Result<Self> {
        let status = r.status();
        let location = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let set_cookies =
            r.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
        Ok(Self { status, location, set_cookies, body: r.text().await? })
    }

    /// The value of a named `<input>` in the page (the IdP's templates put `name` before
    /// `value`).
    pub fn input(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\""))?;
        let rest = &self.body[at..];
        let rest = &rest[rest.find("value=\"")? + 7..];
        Some(html_unescape(&rest[..rest.find('"')?]))
    }

    /// The value of a cookie this response set.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies.iter().find_map(|c| {
            let first = c.split(';').next()?;
            let (k, v) = first.split_once('=')?;
            (k.trim() == name && !v.is_empty()).then(|| v.trim().to_string())
        })
    }

    fn expect(&self, what: &str, status: &[u16]) -> Result<()> {
        if !status.contains(&self.status.as_u16()) {
            let snippet: String = self.body.chars().take(300).collect();
            bail!("{what}: HTTP {} (expected {status:?}): {snippet}", self.status);
        }
        Ok(())
    }
}

fn html_unescape(s: &str) -> String {
    s.replace("&#x3D;", "=")
        .replace("&#x2F;", "/")
        .replace("&#x60;", "`")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Browser {
    pub fn new(base: &Url) -> Result<Self> {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .user_agent("idp-load (setup)")
            .build()?;
        Ok(Self { http, jar, base: base.clone() })
    }

    /// The `Cookie` header this browser would send to `url` (marked sensitive), if any.
    pub fn cookie_header(&self, url: &Url) -> Option<HeaderValue> {
        let mut v = self.jar.cookies(url)?;
        v.set_sensitive(true);
        Some(v)
    }

    /// Follows an authorization request through redirects on the base origin (a provider's
    /// own interaction pages that sign in by themselves, as the peer set-up's do) and returns
    /// the first redirect that leaves it: the answer to the client.
    pub async fn follow_to_client(&self, authorize: Url) -> Result<String> {
        let mut url = authorize;
        for _ in 0..10 {
            let page = self.get(url.clone()).await?;
            page.expect("authorization (following the provider's redirects)", &[302, 303])?;
            let location = page.location.context("a redirect without Location")?;
            let next = self.base.join(&location)?;
            if next.origin() != self.base.origin() {
                return Ok(location);
            }
            url = next;
        }
        bail!("more than 10 redirects without reaching the client")
    }

    /// Resolves a `Location` (absolute or relative) and refuses to leave the base origin.
    fn resolve(&self, location: &str) -> Result<Url> {
        let url = self.base.join(location)?;
        if url.origin() != self.base.origin() {
            bail!("refusing to follow a redirect off the base URL: {url}");
        }
        Ok(url)
    }

    pub async fn get(&self, url: Url) -> Result<Page> {
        Page::read(self.http.get(url.clone()).send().await.with_context(|| format!("GET {url}"))?).await
    }

    pub async fn post(&self, url: Url, form: &[(&str, &str)]) -> Result<Page> {
        Page::read(self.http.post(url.clone()).form(form).send().await.with_context(|| format!("POST {url}"))?).await
    }

    /// Opens `/login` and submits the form; returns the answer to the POST.
    async fn submit_login(&self, ep: &Endpoints, username: &str, password: &str) -> Result<Page> {
        let page = self.get(ep.login.clone()).await?;
        page.expect("login page", &[200])?;
        let csrf = page.input("csrf_token").context("login page has no csrf_token field")?;
        let tx = page.input("tx").unwrap_or_default();
        self.post(
            ep.login.clone(),
            &[("csrf_token", &csrf), ("tx", &tx), ("username", username), ("password", password)],
        )
        .await
    }

    /// Signs in with an account's password and returns the SSO session cookie value.
    pub async fn sign_in(&self, ep: &Endpoints, username: &str, password: &str) -> Result<String> {
        let page = self.submit_login(ep, username, password).await?;
        page.expect("sign-in (is the account activated and the password right?)", &[302, 303])?;
        page.cookie(SESSION_COOKIE).context("sign-in set no session cookie")
    }

    /// First sign-in with a one-time password, then the activation form.
    pub async fn activate(
        &self,
        ep: &Endpoints,
        username: &str,
        one_time_password: &str,
        account: &str,
        email: &str,
        password: &str,
    ) -> Result<()> {
        let page = self.submit_login(ep, username, one_time_password).await?;
        page.expect("sign-in with the one-time password", &[302, 303])?;
        let next = self.resolve(page.location.as_deref().context("no redirect after sign-in")?)?;
        if next.path() != ep.activate.path() {
            bail!("expected a redirect to activation, got {next}");
        }
        let form = self.get(next).await?;
        form.expect("activation page", &[200])?;
        let csrf = form.input("csrf_token").context("activation page has no csrf_token field")?;
        let done = self
            .post(
                ep.activate.clone(),
                &[
                    ("csrf_token", &csrf),
                    ("account", account),
                    ("email", email),
                    ("password", password),
                    ("password_confirm", password),
                ],
            )
            .await?;
        done.expect("activation", &[200])
    }

    /// Runs one authorization request with this browser's session. If the IdP shows a consent
    /// page, consent is given (it is remembered, so the timed round trips skip it). Returns the
    /// `Location` of the final redirect to the client.
    pub async fn authorize_once(&self, authorize: Url) -> Result<String> {
        let page = self.get(authorize).await?;
        let page = if page.status == StatusCode::OK && page.body.contains("action=\"/consent\"") {
            let csrf = page.input("csrf_token").context("consent page has no csrf_token field")?;
            let tx = page.input("tx").unwrap_or_default();
            let url = self.base.join("consent")?;
            self.post(url, &[("csrf_token", &csrf), ("tx", &tx), ("decision", "allow")]).await?
        } else {
            page
        };
        page.expect("authorization with a session", &[302, 303])?;
        page.location.context("authorization gave no redirect")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_and_cookies_are_read() {
        let page = Page {
            status: StatusCode::OK,
            location: None,
            set_cookies: vec!["idp_csrf=abc; Path=/; HttpOnly".into(), "idp_session=s3cr3t; Path=/".into()],
            body: r#"<input type="hidden" name="csrf_token" value="a&#x3D;b"><input name="tx" value="">"#.into(),
        };
        assert_eq!(page.input("csrf_token").as_deref(), Some("a=b"));
        assert_eq!(page.input("tx").as_deref(), Some(""));
        assert_eq!(page.cookie(SESSION_COOKIE).as_deref(), Some("s3cr3t"));
        assert_eq!(page.cookie("missing"), None);
    }
}
