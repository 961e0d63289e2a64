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

use crate::browser::Browser;
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
    /// POST /token grant_type=refresh_token, keeping the rotated token for the next iteration
    Refresh,
    /// GET /authorize without a session → POST /login with the password → redirect with code
    PasswordSignIn,
    /// GET /card/challenge → CMS signature by a software card → POST /card/login (bound card)
    CardSignIn,
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::Discovery,
        Scenario::Jwks,
        Scenario::ClientCredentials,
        Scenario::Introspection,
        Scenario::Sso,
        Scenario::Refresh,
        Scenario::PasswordSignIn,
        Scenario::CardSignIn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Discovery => "discovery",
            Scenario::Jwks => "jwks",
            Scenario::ClientCredentials => "client-credentials",
            Scenario::Introspection => "introspection",
            Scenario::Sso => "sso",
            Scenario::Refresh => "refresh",
            Scenario::PasswordSignIn => "password-sign-in",
            Scenario::CardSignIn => "card-sign-in",
        }
    }

    /// Names of the timed steps of one iteration (more than one only for the round trip).
    pub fn steps(self) -> &'static [&'static str] {
        match self {
            Scenario::Sso => &["authorize", "token", "userinfo"],
            Scenario::PasswordSignIn => &["authorize", "login"],
            Scenario::CardSignIn => &["challenge", "login"],
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
    /// The target is the peer provider, whose interaction pages sign in by themselves (no
    /// `/login` form): sessions are made by following its redirects.
    pub peer: bool,
    /// A software card bound to the account, for the card scenario.
    pub card: Option<SoftCard>,
}

/// A software card: certificate and PKCS#8 key (DER), as `idp dev pki` writes them.
pub struct SoftCard {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl SoftCard {
    /// Reads `NAME.pem` and the `NAME.key.pem` beside it.
    pub fn from_file(cert: &std::path::Path) -> Result<Self> {
        use rustls_pki_types::pem::PemObject;
        let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("{}", p.display()));
        let cert_der = rustls_pki_types::CertificateDer::from_pem_slice(&read(cert)?)
            .with_context(|| format!("{}: not a PEM certificate", cert.display()))?;
        let key_path = std::path::PathBuf::from(cert.to_string_lossy().replace(".pem", ".key.pem"));
        let key = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&read(&key_path)?)
            .with_context(|| format!("{}: not a PKCS#8 key", key_path.display()))?;
        Ok(Self { cert: cert_der.to_vec(), key: key.secret_pkcs8_der().to_vec() })
    }
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
    Refresh {
        token: Url,
        auth: HeaderValue,
        /// One rotating refresh token per chain; a chain is never used by two requests at
        /// once (that would be a replay, and the server would revoke the family).
        chains: Vec<tokio::sync::Mutex<String>>,
    },
    PasswordSignIn {
        /// The authorization request, sent without a session.
        authorize: Url,
        login: Url,
        /// The CSRF cookie and the form's token (a double submit: reusable).
        csrf_cookie: HeaderValue,
        /// `&username=…&password=…` with the CSRF token, form-encoded; `tx` is added per
        /// iteration.
        form: String,
    },
    CardSignIn {
        challenge: Url,
        login: Url,
        csrf_cookie: HeaderValue,
        /// `csrf_token=…&tx=&ret_code=0`, form-encoded.
        form: String,
        card: Arc<SoftCard>,
    },
}

#[derive(Deserialize)]
struct RefreshAnswer {
    refresh_token: String,
}

#[derive(Deserialize)]
struct ChallengeAnswer {
    id: String,
    challenge: String,
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

fn authorize_url(ep: &Endpoints, sso: &SsoSetup, scope: &str) -> Url {
    let mut url = ep.authorize.clone();
    url.query_pairs_mut()
        .append_pair("client_id", &sso.client.client_id)
        .append_pair("redirect_uri", &sso.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", scope)
        .append_pair("state", "load")
        .append_pair("nonce", "load-nonce");
    url
}

/// Signs in `n` browser sessions (a few at a time: each sign-in costs the server one Argon2id
/// hash), runs `authorize` once in each (giving consent if asked; untimed) and returns each
/// session's cookies, ready to send, with the redirect that answered the client.
async fn sign_in_sessions(
    base: &Url,
    ep: &Endpoints,
    sso: &SsoSetup,
    authorize: &Url,
) -> Result<Vec<(HeaderValue, String)>> {
    let mut sessions = Vec::with_capacity(sso.sessions);
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    while sessions.len() < sso.sessions {
        while started < sso.sessions && pending.len() < 2 {
            let (base, ep, authorize) = (base.clone(), ep.clone(), authorize.clone());
            let (user, pw, peer) = (sso.username.clone(), sso.password.clone(), sso.peer);
            pending.spawn(async move {
                let b = Browser::new(&base)?;
                let location = if peer {
                    b.follow_to_client(authorize.clone()).await?
                } else {
                    b.sign_in(&ep, &user, &pw).await?;
                    // One untimed authorization: checks the client and grants consent if asked.
                    b.authorize_once(authorize.clone()).await?
                };
                if code_of(&location).is_none() {
                    bail!("the authorization request was refused: {location}");
                }
                let cookie = b.cookie_header(&authorize).context("no session cookie after sign-in")?;
                anyhow::Ok((cookie, location))
            });
            started += 1;
        }
        let Some(done) = pending.join_next().await else { break };
        sessions.push(done??);
    }
    Ok(sessions)
}

/// Redeems an authorization code (setup only) and returns the token answer's JSON.
async fn redeem(http: &Client, ep: &Endpoints, sso: &SsoSetup, code: &str) -> Result<String> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &sso.redirect_uri)
        .finish();
    let r = http
        .post(ep.token.clone())
        .header(AUTHORIZATION, sso.client.basic()?)
        .header(CONTENT_TYPE, FORM)
        .body(body)
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    if status != StatusCode::OK {
        bail!("code redemption: HTTP {status}: {text}");
    }
    Ok(text)
}

fn form_enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A CSRF cookie and the login form's token, from one visit to `/login`.
async fn csrf_pair(base: &Url, ep: &Endpoints) -> Result<(HeaderValue, String)> {
    let b = Browser::new(base)?;
    let page = b.get(ep.login.clone()).await?;
    let token = page.input("csrf_token").context("login page has no csrf_token field")?;
    let cookie = b.cookie_header(&ep.login).context("the login page set no CSRF cookie")?;
    Ok((cookie, token))
}

/// Binds the software card to the account (first card sign-in, then the identify step), as a
/// person does once; later card sign-ins need only the card.
async fn bind_card(base: &Url, ep: &Endpoints, sso: &SsoSetup, card: &SoftCard) -> Result<()> {
    let b = Browser::new(base)?;
    let page = b.get(ep.login.clone()).await?;
    let csrf = page.input("csrf_token").context("login page has no csrf_token field")?;
    let ch: ChallengeAnswer =
        serde_json::from_str(&b.get(base.join("card/challenge")?).await?.body).context("card challenge")?;
    let sig = STANDARD.encode(
        test_pki::pkcs7::sign_pkcs7(&card.cert, &card.key, ch.challenge.as_bytes())
            .map_err(|e| anyhow::anyhow!("signing the challenge: {e}"))?,
    );
    let done = b
        .post(
            base.join("card/login")?,
            &[("csrf_token", &csrf), ("tx", ""), ("ret_code", "0"), ("challenge_id", &ch.id), ("signature", &sig)],
        )
        .await?;
    if !matches!(done.status.as_u16(), 302 | 303) {
        bail!("card sign-in: HTTP {} (is the card's CA trusted?)", done.status);
    }
    if done.location.as_deref().is_some_and(|l| l.starts_with("/card/identify")) {
        let form = b.get(base.join("card/identify")?).await?;
        let csrf = form.input("csrf_token").context("identify page has no csrf_token field")?;
        let bound = b
            .post(base.join("card/identify")?, &[("csrf_token", &csrf), ("identifier", sso.username.as_str())])
            .await?;
        if !matches!(bound.status.as_u16(), 302 | 303) {
            bail!("binding the card to {}: HTTP {}", sso.username, bound.status);
        }
    }
    Ok(())
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
            Scenario::Sso | Scenario::Refresh | Scenario::PasswordSignIn | Scenario::CardSignIn => {
                let Some(sso) = sso else {
                    return skip("no SSO client and account given (--sso-client, --username, --password)".into());
                };
                let p = match scenario {
                    Scenario::Sso => {
                        let authorize = authorize_url(ep, sso, &sso.scope);
                        let sessions = sign_in_sessions(base, ep, sso, &authorize).await?;
                        Prepared::Sso {
                            authorize,
                            token: ep.token.clone(),
                            userinfo: ep.userinfo.clone(),
                            auth: sso.client.basic()?,
                            redirect_uri_enc: form_enc(&sso.redirect_uri),
                            sessions: sessions.into_iter().map(|(cookie, _)| cookie).collect(),
                        }
                    }
                    Scenario::Refresh => {
                        if !ep.supports_grant("refresh_token") {
                            return skip("grant_types_supported has no refresh_token".into());
                        }
                        let authorize = authorize_url(ep, sso, "openid offline_access");
                        let mut chains = Vec::new();
                        for (_, location) in sign_in_sessions(base, ep, sso, &authorize).await? {
                            let code = code_of(&location).context("no code")?;
                            let answer = redeem(http, ep, sso, code).await?;
                            let r: RefreshAnswer = serde_json::from_str(&answer)
                                .context("no refresh_token in the token answer (offline_access refused?)")?;
                            chains.push(tokio::sync::Mutex::new(r.refresh_token));
                        }
                        Prepared::Refresh { token: ep.token.clone(), auth: sso.client.basic()?, chains }
                    }
                    Scenario::PasswordSignIn => {
                        if sso.peer {
                            return skip("the peer set-up has no password form".into());
                        }
                        let (csrf_cookie, token) = csrf_pair(base, ep).await?;
                        Prepared::PasswordSignIn {
                            authorize: authorize_url(ep, sso, &sso.scope),
                            login: ep.login.clone(),
                            csrf_cookie,
                            form: format!(
                                "csrf_token={}&username={}&password={}",
                                form_enc(&token),
                                form_enc(&sso.username),
                                form_enc(&sso.password)
                            ),
                        }
                    }
                    _ => {
                        let Some(card) = &sso.card else {
                            return skip("no software card given (--card)".into());
                        };
                        bind_card(base, ep, sso, card).await?;
                        let (csrf_cookie, token) = csrf_pair(base, ep).await?;
                        Prepared::CardSignIn {
                            challenge: base.join("card/challenge")?,
                            login: base.join("card/login")?,
                            csrf_cookie,
                            form: format!("csrf_token={}&tx=&ret_code=0", form_enc(&token)),
                            card: Arc::new(SoftCard { cert: card.cert.clone(), key: card.key.clone() }),
                        }
                    }
                };
                let mut steps = [Duration::ZERO; 3];
                p.once(http, 0, &mut steps).await.map_err(|e| anyhow::anyhow!("{scenario} check: {}", e.0))?;
                Ok(Some(p))
            }
        }
    }

    /// How many distinct browser sessions an open-loop run can rotate through.
    pub fn sessions(&self) -> usize {
        match self {
            Prepared::Sso { sessions, .. } => sessions.len(),
            Prepared::Refresh { chains, .. } => chains.len(),
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
            Prepared::Refresh { token, auth, chains } => {
                // This worker's chain, or any free one; wait for it only if all are busy.
                let n = chains.len();
                let free = (0..n).find_map(|i| chains[(worker + i) % n].try_lock().ok());
                let mut chain = match free {
                    Some(guard) => guard,
                    None => chains[worker % n].lock().await,
                };
                let r = http
                    .post(token.clone())
                    .header(AUTHORIZATION, auth.clone())
                    .header(CONTENT_TYPE, FORM)
                    .body(format!("grant_type=refresh_token&refresh_token={}", form_enc(&chain)))
                    .send()
                    .await
                    .map_err(|e| transport_err("refresh", &e))?;
                let status = r.status();
                let bytes = r.bytes().await.map_err(|e| transport_err("refresh", &e))?;
                if status != StatusCode::OK {
                    return Err(status_err("refresh", status));
                }
                let answer: RefreshAnswer =
                    serde_json::from_slice(&bytes).map_err(|_| IterError("refresh: no refresh_token".into()))?;
                *chain = answer.refresh_token;
                Ok(())
            }
            Prepared::PasswordSignIn { authorize, login, csrf_cookie, form } => {
                let t0 = Instant::now();
                let location = redirect(http.get(authorize.clone()).header(COOKIE, csrf_cookie.clone()), "authorize")
                    .await?
                    .ok_or_else(|| IterError("authorize: no redirect".into()))?;
                let tx = query_param(&location, "tx").ok_or_else(|| IterError("authorize: no tx".into()))?;
                let t1 = Instant::now();
                steps[0] = t1 - t0;
                let post = http
                    .post(login.clone())
                    .header(COOKIE, csrf_cookie.clone())
                    .header(CONTENT_TYPE, FORM)
                    .body(format!("{form}&tx={tx}"));
                let location = redirect(post, "login").await?.unwrap_or_default();
                if code_of(&location).is_none() {
                    return Err(IterError("login: redirect without code".into()));
                }
                steps[1] = t1.elapsed();
                Ok(())
            }
            Prepared::CardSignIn { challenge, login, csrf_cookie, form, card } => {
                let t0 = Instant::now();
                let r = http.get(challenge.clone()).send().await.map_err(|e| transport_err("challenge", &e))?;
                let status = r.status();
                let bytes = r.bytes().await.map_err(|e| transport_err("challenge", &e))?;
                if status != StatusCode::OK {
                    return Err(status_err("challenge", status));
                }
                let ch: ChallengeAnswer =
                    serde_json::from_slice(&bytes).map_err(|_| IterError("challenge: not JSON".into()))?;
                // The card's signature is the tool's work (a real card does it in hardware).
                let cms = test_pki::pkcs7::sign_pkcs7(&card.cert, &card.key, ch.challenge.as_bytes())
                    .map_err(|_| IterError("challenge: signing failed".into()))?;
                let t1 = Instant::now();
                steps[0] = t1 - t0;
                let post =
                    http.post(login.clone()).header(COOKIE, csrf_cookie.clone()).header(CONTENT_TYPE, FORM).body(
                        format!(
                            "{form}&challenge_id={}&signature={}",
                            form_enc(&ch.id),
                            form_enc(&STANDARD.encode(cms))
                        ),
                    );
                let location = redirect(post, "login").await?;
                if location.as_deref() != Some("/") {
                    return Err(IterError("login: not signed in".into()));
                }
                steps[1] = t1.elapsed();
                Ok(())
            }
        }
    }
}

/// Sends a request that must answer with a redirect (302 or 303) and returns its `Location`.
async fn redirect(req: reqwest::RequestBuilder, step: &str) -> Result<Option<String>, IterError> {
    let r = req.send().await.map_err(|e| transport_err(step, &e))?;
    let status = r.status();
    let location = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    r.bytes().await.map_err(|e| transport_err(step, &e))?;
    if status != StatusCode::FOUND && status != StatusCode::SEE_OTHER {
        return Err(status_err(step, status));
    }
    Ok(location)
}

/// A query parameter of a redirect, as sent.
fn query_param<'a>(location: &'a str, name: &str) -> Option<&'a str> {
    let query = location.split_once('?')?.1;
    let query = query.split('#').next()?;
    query.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('=')).filter(|c| !c.is_empty())
}

/// The `code` query parameter of a redirect, as sent (codes are URL-safe base64, so the raw
/// text can go straight into the token request's form body).
fn code_of(location: &str) -> Option<&str> {
    query_param(location, "code")
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
