//! The scenarios: what is prepared once (untimed) and what one timed iteration does.
//!
//! Everything an iteration needs — URLs, `Authorization` headers, form bodies, session cookies —
//! is built at setup, so the timed path does as little client-side work as possible (the tool
//! shares two cores with the server it measures).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::browser::{Browser, SESSION_COOKIE};
use crate::target::Endpoints;

/// A scenario as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// GET /.well-known/openid-configuration
    Discovery,
    /// GET /jwks
    Jwks,
    /// POST /token grant_type=client_credentials, client_secret_basic
    ClientCredentials,
    /// POST /introspect of one access token, client authenticated
    Introspection,
    /// GET /authorize with a session → code → POST /token → GET /userinfo
    Sso,
}

impl Scenario {
    pub const ALL: [Scenario; 5] =
        [Scenario::Discovery, Scenario::Jwks, Scenario::ClientCredentials, Scenario::Introspection, Scenario::Sso];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Discovery => "discovery",
            Scenario::Jwks => "jwks",
            Scenario::ClientCredentials => "client-credentials",
            Scenario::Introspection => "introspection",
            Scenario::Sso => "sso",
        }
    }

    /// Names of the timed steps of one iteration (more than one only for the round trip).
    pub fn steps(self) -> &'static [&'static str] {
        match self {
            Scenario::Sso => &["authorize", "token", "userinfo"],
            _ => &[],
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A client's credentials.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientCreds {
    pub client_id: String,
    pub client_secret: String,
}

impl ClientCreds {
    /// Reads the JSON that `idp clients create --json` prints.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: expected client_id and client_secret", path.display()))
    }

    /// `client_secret_basic` (RFC 6749 §2.3.1: each part form-encoded, then base64).
    fn basic(&self) -> Result<HeaderValue> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let raw = format!("{}:{}", enc(&self.client_id), enc(&self.client_secret));
        let mut v = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw)))?;
        v.set_sensitive(true);
        Ok(v)
    }
}

/// What the SSO scenario needs besides the endpoints.
pub struct SsoSetup {
    pub client: ClientCreds,
    pub redirect_uri: String,
    pub scope: String,
    pub username: String,
    pub password: String,
    /// Browser sessions to establish (one per closed-loop worker).
    pub sessions: usize,
}

/// Why an iteration failed; counted by kind.
#[derive(Debug)]
pub struct IterError(pub String);

fn status_err(step: &str, got: StatusCode) -> IterError {
    IterError(format!("{step}: HTTP {}", got.as_u16()))
}

fn transport_err(step: &str, e: &reqwest::Error) -> IterError {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "transport"
    };
    IterError(format!("{step}: {kind}"))
}

/// A scenario ready to run.
pub enum Prepared {
    Get {
        url: Url,
    },
    Form {
        step: &'static str,
        url: Url,
        auth: HeaderValue,
        body: Arc<str>,
        /// A substring that a good answer contains.
        expect: &'static str,
    },
    Sso {
        authorize: Url,
        token: Url,
        userinfo: Url,
        auth: HeaderValue,
        redirect_uri_enc: String,
        sessions: Vec<HeaderValue>,
    },
}

const FORM: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// Obtains one access token by the client_credentials grant.
async fn client_credentials_token(http: &Client, ep: &Endpoints, creds: &ClientCreds) -> Result<String> {
    let r = http
        .post(ep.token.clone())
        .header(AUTHORIZATION, creds.basic()?)
        .header(CONTENT_TYPE, FORM)
        .body("grant_type=client_credentials")
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    if status != StatusCode::OK {
        bail!("client_credentials token: HTTP {status}: {text}");
    }
    Ok(serde_json::from_str::<TokenAnswer>(&text).context("token response")?.access_token)
}

fn authorize_url(ep: &Endpoints, sso: &SsoSetup) -> Url {
    let mut url = ep.authorize.clone();
    url.query_pairs_mut()
        .append_pair("client_id", &sso.client.client_id)
        .append_pair("redirect_uri", &sso.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", &sso.scope)
        .append_pair("state", "load")
        .append_pair("nonce", "load-nonce");
    url
}

/// Signs in `n` browser sessions (a few at a time: each sign-in costs the server one Argon2id
/// hash) and returns their cookies, ready to send.
async fn sign_in_sessions(base: &Url, ep: &Endpoints, sso: &SsoSetup) -> Result<Vec<HeaderValue>> {
    let authorize = authorize_url(ep, sso);
    let mut sessions = Vec::with_capacity(sso.sessions);
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    while sessions.len() < sso.sessions {
        while started < sso.sessions && pending.len() < 2 {
            let (base, ep, authorize) = (base.clone(), ep.clone(), authorize.clone());
            let (user, pw) = (sso.username.clone(), sso.password.clone());
            pending.spawn(async move {
                let b = Browser::new(&base)?;
                let cookie = b.sign_in(&ep, &user, &pw).await?;
                // One untimed authorization: checks the client and grants consent if asked.
                let location = b.authorize_once(authorize).await?;
                if !location.contains("code=") {
                    bail!("the authorization request was refused: {location}");
                }
                anyhow::Ok(cookie)
            });
            started += 1;
        }
        let Some(done) = pending.join_next().await else { break };
        let cookie = done??;
        let mut v = HeaderValue::from_str(&format!("{SESSION_COOKIE}={cookie}"))?;
        v.set_sensitive(true);
        sessions.push(v);
    }
    Ok(sessions)
}

impl Prepared {
    /// Checks the server supports the scenario and prepares it. `Ok(None)` means the server
    /// does not offer it (the reason is printed); errors are setup failures.
    pub async fn setup(
        scenario: Scenario,
        http: &Client,
        base: &Url,
        ep: &Endpoints,
        cc: Option<&ClientCreds>,
        sso: Option<&SsoSetup>,
    ) -> Result<Option<Self>> {
        let skip = |why: String| {
            eprintln!("idp-load: skipping {scenario}: {why}");
            Ok(None)
        };
        match scenario {
            Scenario::Discovery => Ok(Some(Prepared::Get { url: ep.discovery.clone() })),
            Scenario::Jwks => Ok(Some(Prepared::Get { url: ep.jwks.clone() })),
            Scenario::ClientCredentials | Scenario::Introspection => {
                if !ep.supports_grant("client_credentials") {
                    return skip(format!("grant_types_supported is {:?}, without client_credentials", ep.grant_types));
                }
                let Some(cc) = cc else {
                    return skip("no client_credentials client given (--cc-client)".into());
                };
                if scenario == Scenario::ClientCredentials {
                    return Ok(Some(Prepared::Form {
                        step: "token",
                        url: ep.token.clone(),
                        auth: cc.basic()?,
                        body: "grant_type=client_credentials".into(),
                        expect: "\"access_token\"",
                    }));
                }
                let Some(url) = ep.introspection.clone() else {
                    return skip("the discovery document has no introspection_endpoint".into());
                };
                let token = client_credentials_token(http, ep, cc).await?;
                let body: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("token", &token)
                    .append_pair("token_type_hint", "access_token")
                    .finish();
                let p = Prepared::Form {
                    step: "introspect",
                    url,
                    auth: cc.basic()?,
                    body: body.into(),
                    expect: "\"active\":true",
                };
                // The token must introspect as active, or every timed answer would be a miss.
                let mut steps = [Duration::ZERO; 3];
                p.once(http, 0, &mut steps).await.map_err(|e| anyhow::anyhow!("introspection check: {}", e.0))?;
                Ok(Some(p))
            }
            Scenario::Sso => {
                let Some(sso) = sso else {
                    return skip("no SSO client and account given (--sso-client, --username, --password)".into());
                };
                let sessions = sign_in_sessions(base, ep, sso).await?;
                let p = Prepared::Sso {
                    authorize: authorize_url(ep, sso),
                    token: ep.token.clone(),
                    userinfo: ep.userinfo.clone(),
                    auth: sso.client.basic()?,
                    redirect_uri_enc: url::form_urlencoded::byte_serialize(sso.redirect_uri.as_bytes()).collect(),
                    sessions,
                };
                let mut steps = [Duration::ZERO; 3];
                p.once(http, 0, &mut steps).await.map_err(|e| anyhow::anyhow!("SSO round-trip check: {}", e.0))?;
                Ok(Some(p))
            }
        }
    }

    /// How many distinct browser sessions an open-loop run can rotate through.
    pub fn sessions(&self) -> usize {
        match self {
            Prepared::Sso { sessions, .. } => sessions.len(),
            _ => 1,
        }
    }

    /// One timed iteration. `worker` picks the browser session; `steps` receives the duration
    /// of each step of a multi-step scenario.
    pub async fn once(&self, http: &Client, worker: usize, steps: &mut [Duration; 3]) -> Result<(), IterError> {
        match self {
            Prepared::Get { url } => {
                let r = http.get(url.clone()).send().await.map_err(|e| transport_err("get", &e))?;
                let status = r.status();
                r.bytes().await.map_err(|e| transport_err("get", &e))?;
                if status != StatusCode::OK {
                    return Err(status_err("get", status));
                }
                Ok(())
            }
            Prepared::Form { step, url, auth, body, expect } => {
                let r = http
                    .post(url.clone())
                    .header(AUTHORIZATION, auth.clone())
                    .header(CONTENT_TYPE, FORM)
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|e| transport_err(step, &e))?;
                let status = r.status();
                let bytes = r.bytes().await.map_err(|e| transport_err(step, &e))?;
                if status != StatusCode::OK {
                    return Err(status_err(step, status));
                }
                if !contains(&bytes, expect.as_bytes()) {
                    return Err(IterError(format!("{step}: answer lacks {expect}")));
                }
                Ok(())
            }
            Prepared::Sso { authorize, token, userinfo, auth, redirect_uri_enc, sessions } => {
                let cookie = sessions[worker % sessions.len()].clone();
                let t0 = Instant::now();
                let r = http
                    .get(authorize.clone())
                    .header(COOKIE, cookie)
                    .send()
                    .await
                    .map_err(|e| transport_err("authorize", &e))?;
                let status = r.status();
                let location = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
                r.bytes().await.map_err(|e| transport_err("authorize", &e))?;
                if status != StatusCode::FOUND && status != StatusCode::SEE_OTHER {
                    return Err(status_err("authorize", status));
                }
                let code = location
                    .as_deref()
                    .and_then(code_of)
                    .ok_or_else(|| IterError("authorize: redirect without code".into()))?;
                let t1 = Instant::now();
                steps[0] = t1 - t0;
                let r = http
                    .post(token.clone())
                    .header(AUTHORIZATION, auth.clone())
                    .header(CONTENT_TYPE, FORM)
                    .body(format!("grant_type=authorization_code&code={code}&redirect_uri={redirect_uri_enc}"))
                    .send()
                    .await
                    .map_err(|e| transport_err("token", &e))?;
                let status = r.status();
                let bytes = r.bytes().await.map_err(|e| transport_err("token", &e))?;
                if status != StatusCode::OK {
                    return Err(status_err("token", status));
                }
                let answer: TokenAnswer =
                    serde_json::from_slice(&bytes).map_err(|_| IterError("token: no access_token".into()))?;
                let t2 = Instant::now();
                steps[1] = t2 - t1;
                let r = http
                    .get(userinfo.clone())
                    .bearer_auth(&answer.access_token)
                    .send()
                    .await
                    .map_err(|e| transport_err("userinfo", &e))?;
                let status = r.status();
                r.bytes().await.map_err(|e| transport_err("userinfo", &e))?;
                if status != StatusCode::OK {
                    return Err(status_err("userinfo", status));
                }
                steps[2] = t2.elapsed();
                Ok(())
            }
        }
    }
}

/// The `code` query parameter of a redirect, as sent (codes are URL-safe base64, so the raw
/// text can go straight into the token request's form body).
fn code_of(location: &str) -> Option<&str> {
    let query = location.split_once('?')?.1;
    let query = query.split('#').next()?;
    query.split('&').find_map(|p| p.strip_prefix("code=")).filter(|c| !c.is_empty())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_found_in_the_redirect() {
        assert_eq!(code_of("http://127.0.0.1:9/cb?code=abc_-1&state=load&iss=x"), Some("abc_-1"));
        assert_eq!(code_of("http://127.0.0.1:9/cb?state=s&code=z"), Some("z"));
        assert_eq!(code_of("http://127.0.0.1:9/cb?error=access_denied"), None);
        assert_eq!(code_of("http://127.0.0.1:9/cb?code="), None);
    }

    #[test]
    fn basic_credentials_are_form_encoded_then_base64() {
        let c = ClientCreds { client_id: "a b".into(), client_secret: "p:w".into() };
        let v = c.basic().unwrap();
        let raw = STANDARD.decode(v.to_str().unwrap().strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "a+b:p%3Aw");
    }
}
