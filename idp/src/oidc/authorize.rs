//! The authorization request: validation in the order the specifications require (client and
//! redirect URI first, and nothing redirected until both are trusted), and the code grant.

use serde::{Deserialize, Serialize};

use super::claims_request::{self, ClaimsRequest};
use super::clients::Client;
use super::params::{ParamError, Params};
use super::SUPPORTED_SCOPES;
use crate::crypto::random_token;
use crate::store::ephemeral::Key;

/// A validated authorization request, kept in the login transaction while the person signs in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    /// `query` or `form_post`.
    #[serde(default)]
    pub response_mode: String,
    /// Requested assurance levels, in order of preference (voluntary).
    #[serde(default)]
    pub acr_values: Vec<String>,
    /// An ID token the client sent as a hint of who should be signed in.
    #[serde(default)]
    pub id_token_hint: Option<String>,
    /// The `claims` parameter (OpenID Connect Core §5.5), when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsRequest>,
    /// What this browser has done for the request so far (sign-in, consent), for the gate.
    #[serde(default)]
    pub interaction: Interaction,
    /// The DPoP key the code will be bound to (RFC 9449 §10: `dpop_jkt`, or the key of the proof
    /// that came with the pushed request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// Whether the request was pushed first (RFC 9126) and came back by its `request_uri`. Set
    /// only by [`super::par::resolve`], never from a parameter.
    #[serde(default)]
    pub pushed: bool,
    /// The API the access token is asked for (RFC 8707), checked to be a registered resource
    /// server by the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// What has happened in this browser for one authorization request, kept with the request in its
/// login transaction. Each field names the session (`sid`) it happened in, so a step done in one
/// session never counts for another, and a transaction carried to another browser is worthless.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    /// The session opened by a sign-in made for this request (satisfies `prompt=login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in: Option<String>,
    /// The session the gate asked consent of: only this session may be shown the consent page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_asked: Option<String>,
    /// The session that was shown the consent page: only this session may answer it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_shown: Option<String>,
    /// The session that approved the consent page for this request (satisfies `prompt=consent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_given: Option<String>,
}

impl AuthRequest {
    /// Whether the response goes back as an auto-submitted form.
    pub fn form_post(&self) -> bool {
        self.response_mode == "form_post"
    }
}

/// A failed request: either shown as a page (the redirect URI is not trusted) or sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Shown to the person; `key` is a page message.
    Page { key: &'static str, detail: String },
    /// Returned to the client's redirect URI.
    Redirect { redirect_uri: String, state: Option<String>, error: &'static str, description: String, form_post: bool },
}

/// The parameters that decide whether errors may be redirected.
pub struct Target<'a> {
    pub client_id: &'a str,
    pub redirect_uri: Option<&'a str>,
}

/// Step one: client id and redirect URI, before the client is loaded.
pub fn target(params: &Params) -> Result<Target<'_>, AuthorizeError> {
    let page = |key, e: ParamError| AuthorizeError::Page { key, detail: e.to_string() };
    let client_id = params.get("client_id").map_err(|e| page("err_bad_request", e))?;
    let redirect_uri = params.get("redirect_uri").map_err(|e| page("err_bad_request", e))?;
    let client_id =
        client_id.ok_or(AuthorizeError::Page { key: "err_client_missing", detail: "client_id is missing".into() })?;
    Ok(Target { client_id, redirect_uri })
}

fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Step two: with the client known, check the redirect URI exactly, then everything else.
pub fn validate(params: &Params, client: &Client) -> Result<AuthRequest, AuthorizeError> {
    let redirect_uri = match params.get("redirect_uri") {
        Ok(Some(uri)) if client.has_redirect_uri(uri) => uri.to_string(),
        Ok(Some(_)) => {
            return Err(AuthorizeError::Page {
                key: "err_redirect_uri",
                detail: "redirect_uri is not registered for this client".into(),
            })
        }
        Ok(None) => {
            return Err(AuthorizeError::Page { key: "err_redirect_uri", detail: "redirect_uri is missing".into() })
        }
        Err(e) => return Err(AuthorizeError::Page { key: "err_bad_request", detail: e.to_string() }),
    };
    let state = params.get("state").ok().flatten().map(str::to_string);
    let response_mode = params.get("response_mode").ok().flatten().unwrap_or("query").to_string();
    let form_post = response_mode == "form_post";
    let fail = |error: &'static str, description: String| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description,
        form_post,
    };
    let resource = super::resource::requested(params).map_err(|e| fail("invalid_target", e.0))?;
    if let Some(dup) = params.first_duplicate() {
        return Err(fail("invalid_request", format!("parameter `{dup}` is repeated")));
    }
    let get = |name: &str| params.get(name).ok().flatten();
    if params.has("request_uri") {
        return Err(fail("request_uri_not_supported", "request_uri is not supported".into()));
    }
    match get("response_type") {
        None => return Err(fail("invalid_request", "response_type is missing".into())),
        Some("code") => {}
        Some(_) => return Err(fail("unsupported_response_type", "only response_type=code is supported".into())),
    }
    if !matches!(response_mode.as_str(), "query" | "form_post") {
        return Err(fail("invalid_request", "response_mode must be query or form_post".into()));
    }
    let mut requested: Vec<&str> = get("scope").unwrap_or("").split(' ').filter(|s| !s.is_empty()).collect();
    if !requested.contains(&"openid") {
        return Err(fail("invalid_scope", "the openid scope is required".into()));
    }
    let claims = match get("claims") {
        None => None,
        Some(text) => Some(claims_request::parse(text).map_err(|e| fail("invalid_request", e))?),
    };
    // A claim asked for by name asks for the scope that releases it (and its consent).
    for s in claims.iter().flat_map(ClaimsRequest::scopes) {
        requested.push(s);
    }
    // Scopes the client may not have (or that do not exist) are left out, not refused.
    let mut scope: Vec<String> = Vec::new();
    for s in SUPPORTED_SCOPES {
        if requested.contains(&s) && client.allows_scope(s) {
            scope.push(s.to_string());
        }
    }
    if !scope.iter().any(|s| s == "openid") {
        return Err(fail("invalid_scope", "this client may not use the openid scope".into()));
    }
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) => None,
        (Some(c), Some("S256")) if is_pkce_value(c) => Some(c.to_string()),
        (Some(_), Some("S256")) => return Err(fail("invalid_request", "code_challenge is malformed".into())),
        (Some(_), _) => return Err(fail("invalid_request", "code_challenge_method must be S256".into())),
        (None, Some(_)) => return Err(fail("invalid_request", "code_challenge is missing".into())),
    };
    if client.public && code_challenge.is_none() {
        return Err(fail("invalid_request", "public clients must use PKCE (S256)".into()));
    }
    if client.fapi2 && code_challenge.is_none() {
        return Err(fail("invalid_request", "this application follows FAPI 2.0: PKCE (S256) is required".into()));
    }
    let prompt: Vec<String> =
        get("prompt").unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect();
    for p in &prompt {
        if !matches!(p.as_str(), "none" | "login" | "consent" | "select_account") {
            return Err(fail("invalid_request", format!("prompt value `{p}` is not supported")));
        }
    }
    if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
        return Err(fail("invalid_request", "prompt=none cannot be combined with other values".into()));
    }
    let max_age = match get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => return Err(fail("invalid_request", "max_age must be a non-negative integer".into())),
        },
    };
    let nonce = get("nonce").map(str::to_string);
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(fail("invalid_request", "nonce is too long".into()));
    }
    // A JWK SHA-256 thumbprint: 32 bytes, base64url without padding.
    let dpop_jkt = get("dpop_jkt").map(str::to_string);
    if dpop_jkt
        .as_ref()
        .is_some_and(|j| j.len() != 43 || !j.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)))
    {
        return Err(fail("invalid_request", "dpop_jkt is not a JWK SHA-256 thumbprint".into()));
    }
    Ok(AuthRequest {
        client_id: client.client_id.clone(),
        redirect_uri,
        scope,
        state,
        nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint: get("login_hint").map(str::to_string),
        ui_locales: get("ui_locales").map(str::to_string),
        response_mode,
        acr_values: get("acr_values").unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        id_token_hint: get("id_token_hint").map(str::to_string),
        claims,
        interaction: Default::default(),
        dpop_jkt,
        pushed: false,
        resource,
    })
}

/// What an authorization code stands for; stored under the code's hash, taken once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub account_id: String,
    pub sid: String,
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    pub nonce: Option<String>,
    pub scope: Vec<String>,
    pub code_challenge: Option<String>,
    /// Claims about the person the `claims` parameter asked for in the ID token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token_claims: Vec<String>,
    /// The DPoP key the code may only be redeemed with (RFC 9449 §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// The API the tokens are for (RFC 8707), from the authorization request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// A fresh code and the ephemeral-store key it is kept under.
pub fn new_code() -> (String, Key) {
    let code = random_token(32);
    let key = Key::code(&code);
    (code, key)
}

/// Appends response parameters to a redirect URI, keeping its own query.
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    }
}
