//! Relying applications registered by operators (CLI) or by dynamic registration.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::Value;

use crate::audit::{self, Actor, Event};
use crate::crypto::{constant_time_eq, random_token, sha256_b64};
use crate::error::InfraError;
use crate::store::db::models::ClientRow;
use crate::store::db::schema::clients;
use crate::store::db::DbConn;

use super::SUPPORTED_SCOPES;

/// Grant types a client may be allowed.
pub const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];
/// Client authentication methods at the token, introspection and revocation endpoints.
pub const AUTH_METHODS: [&str; 4] = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"];
/// Algorithms a request object may be signed with; never `none`, never a shared-secret MAC.
pub const REQUEST_OBJECT_ALGS: [&str; 3] = ["RS256", "PS256", "ES256"];

/// A registered client. Field names follow RFC 7591 so the JSON form is the registration
/// response's.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(test, derive(Default))]
pub struct Client {
    pub client_id: String,
    pub client_name: String,
    /// Public clients (browser or native apps) have no secret and must use PKCE.
    #[serde(skip)]
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub id_token_signed_response_alg: String,
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    /// The scopes this client may be granted (space-separated in JSON).
    #[serde(serialize_with = "space_separated")]
    pub scope: Vec<String>,
    pub subject_type: String,
    /// Whether people must approve this client (`false` for first-party applications).
    #[serde(skip)]
    pub consent_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_acr_values: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_session_required: bool,
    /// The algorithm the client signs request objects with (RFC 9101); `None`: any of
    /// [`REQUEST_OBJECT_ALGS`]. Verified with the client's `jwks` or `jwks_uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object_signing_alg: Option<String>,
    /// Whether every authorization request of the client must be a signed request object
    /// (RFC 9101 §10.5), so nothing it sends can be altered in the browser.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_signed_request_object: bool,
    #[serde(skip)]
    pub min_acr: Option<String>,
    /// Who may use the application: `everyone`, `hr-staff`, or `agency:CODE[,CODE]`.
    #[serde(skip)]
    pub audience: Audience,
    /// How the portal (應用系統) lists it: category, description and link.
    #[serde(skip)]
    pub portal: Portal,
    /// A disabled client can neither start sign-ins nor redeem anything.
    #[serde(skip)]
    pub disabled: bool,
    /// Operator permission for a dynamically registered client to use `client_credentials`;
    /// its own metadata cannot grant it.
    #[serde(skip)]
    pub client_credentials_allowed: bool,
    /// Operator permission to introspect tokens issued to other clients (an API that accepts
    /// them). Without it a client introspects only its own tokens.
    #[serde(skip)]
    pub resource_server: bool,
    /// RFC 9126 §6: authorization requests of this client must be pushed (`/par`) first.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    /// RFC 9449 §5.2: every token request of this client must carry a DPoP proof, so its
    /// access tokens are always bound to a key it holds.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// Operator setting: the client follows the FAPI 2.0 Security Profile — `private_key_jwt`
    /// only, pushed requests, PKCE S256, DPoP-bound tokens, codes of at most
    /// [`FAPI2_CODE_TTL`], assertions addressed to the issuer alone. Switching it on switches
    /// PAR and DPoP on with it (see [`NewClient::fapi2`]).
    #[serde(skip)]
    pub fapi2: bool,
    /// Operator setting for a resource server: the URI clients ask for it by (RFC 8707
    /// `resource`); access tokens asked for with it have it as their audience.
    #[serde(skip)]
    pub resource_uri: Option<String>,
    #[serde(skip)]
    secret_hash: Option<String>,
    #[serde(skip)]
    registration_token_hash: Option<String>,
    /// The replaced secret's hash and until when (epoch seconds) it still works, during a
    /// rotation with overlap ([`rotate_secret_with_overlap`]).
    #[serde(skip)]
    previous_secret: Option<(String, i64)>,
    #[serde(rename = "client_id_issued_at")]
    pub created_at: i64,
}

/// Which of a client's secrets a presented one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretMatch {
    Current,
    /// The one replaced by a rotation with overlap, which works until `until`.
    Previous {
        until: i64,
    },
    No,
}

/// Who may use a client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Audience {
    #[default]
    Everyone,
    HrStaff,
    Agencies(Vec<String>),
}

impl Audience {
    /// Parses `everyone`, `hr-staff` or `agency:CODE[,CODE]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "everyone" => Ok(Self::Everyone),
            "hr-staff" => Ok(Self::HrStaff),
            other => match other.strip_prefix("agency:") {
                Some(list) => {
                    let codes: Vec<String> =
                        list.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
                    if codes.is_empty()
                        || codes.iter().any(|c| c.len() > 20 || !c.bytes().all(|b| b.is_ascii_alphanumeric()))
                    {
                        return Err(format!("audience `{s}`: agency codes are letters and digits"));
                    }
                    Ok(Self::Agencies(codes))
                }
                None => Err(format!("audience `{s}` must be everyone, hr-staff or agency:CODE[,CODE]")),
            },
        }
    }

    pub fn as_string(&self) -> String {
        match self {
            Self::Everyone => "everyone".into(),
            Self::HrStaff => "hr-staff".into(),
            Self::Agencies(c) => format!("agency:{}", c.join(",")),
        }
    }

    /// Whether a person may use the client.
    pub fn admits(&self, person: &crate::accounts::Person) -> bool {
        match self {
            Self::Everyone => true,
            Self::HrStaff => crate::accounts::roles::is_hr_staff(person),
            Self::Agencies(codes) => codes.contains(&person.agency_code),
        }
    }
}

/// Portal presentation of a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Portal {
    /// e.g. `A. 人事資料填報及考核`; clients without a category are not listed.
    pub category: Option<String>,
    pub description: Option<String>,
    /// Where the portal links to (the application's own start page).
    pub url: Option<String>,
}

fn space_separated<S: serde::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.join(" "))
}

impl Client {
    /// Checks a presented secret in constant time. The secret is a generated 256-bit value, so
    /// a fast hash is enough and keeps the token endpoint fast.
    pub fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret_hash {
            Some(h) => constant_time_eq(sha256_b64(presented.as_bytes()).as_bytes(), h.as_bytes()),
            None => false,
        }
    }

    /// Checks a presented secret against the current one and, until its time, the one it
    /// replaced. Both comparisons are made, in constant time, whatever the outcome.
    pub fn check_secret(&self, presented: &str, now: i64) -> SecretMatch {
        let hash = sha256_b64(presented.as_bytes());
        let matches = |h: Option<&String>| h.is_some_and(|h| constant_time_eq(hash.as_bytes(), h.as_bytes()));
        let current = matches(self.secret_hash.as_ref());
        let previous = matches(self.previous_secret.as_ref().map(|(h, _)| h));
        match self.previous_secret {
            _ if current => SecretMatch::Current,
            Some((_, until)) if previous && now < until => SecretMatch::Previous { until },
            _ => SecretMatch::No,
        }
    }

    /// Until when the replaced secret still works, if a rotation's overlap is running.
    pub fn previous_secret_valid_until(&self, now: i64) -> Option<i64> {
        self.previous_secret.as_ref().map(|(_, until)| *until).filter(|until| now < *until)
    }

    /// Whether the client authenticates with a shared secret.
    pub fn has_secret(&self) -> bool {
        self.secret_hash.is_some()
    }

    /// Checks an RFC 7592 registration access token.
    pub fn registration_token_matches(&self, presented: &str) -> bool {
        match &self.registration_token_hash {
            Some(h) => constant_time_eq(sha256_b64(presented.as_bytes()).as_bytes(), h.as_bytes()),
            None => false,
        }
    }

    /// Exact, character-for-character redirect URI matching.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether the client may use a grant: it must be registered with it, and a third party
    /// uses `client_credentials` (tokens with no person behind them) only with an operator's
    /// permission.
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
            && (grant != "client_credentials" || !self.third_party() || self.client_credentials_allowed)
    }

    /// Whether the client registered itself (RFC 7591) rather than being created by an operator:
    /// only such clients hold a registration access token. Their URLs are not trusted.
    pub fn third_party(&self) -> bool {
        self.registration_token_hash.is_some()
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }

    /// The sector of a pairwise client: the host all its redirect URIs share.
    pub fn sector(&self) -> Option<String> {
        self.redirect_uris.first().and_then(|u| url::Url::parse(u).ok()).and_then(|u| u.host_str().map(str::to_string))
    }
}

fn json_list(s: &str, id: &str) -> Result<Vec<String>, InfraError> {
    serde_json::from_str::<Vec<String>>(s).map_err(|e| InfraError::Internal(format!("client {id}: {e}")))
}

impl TryFrom<ClientRow> for Client {
    type Error = InfraError;
    fn try_from(r: ClientRow) -> Result<Self, InfraError> {
        let jwks = match &r.jwks {
            Some(j) => {
                Some(serde_json::from_str(j).map_err(|e| InfraError::Internal(format!("client {}: {e}", r.id)))?)
            }
            None => None,
        };
        Ok(Self {
            redirect_uris: json_list(&r.redirect_uris, &r.id)?,
            post_logout_redirect_uris: json_list(&r.post_logout_redirect_uris, &r.id)?,
            grant_types: json_list(&r.grant_types, &r.id)?,
            scope: r.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            public: r.kind == "public",
            id_token_signed_response_alg: r.id_token_alg,
            token_endpoint_auth_method: r.token_endpoint_auth_method,
            subject_type: r.subject_type,
            consent_required: r.consent == "required",
            default_acr_values: r.min_acr.clone().map(|a| vec![a]),
            min_acr: r.min_acr,
            audience: Audience::parse(&r.audience).unwrap_or(Audience::HrStaff),
            portal: Portal { category: r.portal_category, description: r.portal_description, url: r.portal_url },
            disabled: r.disabled_at.is_some(),
            client_credentials_allowed: r.client_credentials_allowed,
            resource_server: r.resource_server,
            require_pushed_authorization_requests: r.require_pushed_authorization_requests,
            dpop_bound_access_tokens: r.dpop_bound_access_tokens,
            fapi2: r.fapi2,
            resource_uri: r.resource_uri,
            jwks,
            jwks_uri: r.jwks_uri,
            request_object_signing_alg: r.request_object_signing_alg,
            require_signed_request_object: r.require_signed_request_object,
            backchannel_logout_session_required: r.backchannel_logout_uri.is_some(),
            backchannel_logout_uri: r.backchannel_logout_uri,
            secret_hash: r.secret_hash,
            previous_secret: None,
            registration_token_hash: r.registration_token_hash,
            client_id: r.id,
            client_name: r.name,
            created_at: r.created_at,
        })
    }
}

/// What an operator (or a registration request) asks for.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: Option<String>,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub id_token_alg: String,
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub scope: Vec<String>,
    pub subject_type: String,
    pub consent_required: bool,
    pub min_acr: Option<String>,
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub audience: Audience,
    pub portal: Portal,
    /// Operator settings (see [`Client`]); never taken from a registration request.
    pub client_credentials_allowed: bool,
    pub resource_server: bool,
    /// See [`Client::request_object_signing_alg`].
    pub request_object_signing_alg: Option<String>,
    /// See [`Client::require_signed_request_object`].
    pub require_signed_request_object: bool,
    /// Client metadata of RFC 9126 §6 and RFC 9449 §5.2 (see [`Client`]).
    pub require_pushed_authorization_requests: bool,
    pub dpop_bound_access_tokens: bool,
    /// See [`Client::fapi2`]; an operator setting. On, it implies the two settings above.
    pub fapi2: bool,
    /// See [`Client::resource_uri`]; an operator setting, for resource servers only.
    pub resource_uri: Option<String>,
}

impl NewClient {
    /// The settings the FAPI 2.0 profile implies switched on with it.
    fn with_profile(mut self) -> Self {
        if self.fapi2 {
            self.require_pushed_authorization_requests = true;
            self.dpop_bound_access_tokens = true;
        }
        self
    }

    /// A confidential first-party code-flow client with every default.
    pub fn new(name: &str, redirect_uris: Vec<String>) -> Self {
        Self {
            client_id: None,
            name: name.into(),
            redirect_uris,
            post_logout_redirect_uris: vec![],
            id_token_alg: "ES256".into(),
            token_endpoint_auth_method: "client_secret_basic".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scope: ["openid", "profile", "email", "agency", "roles", "offline_access"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            subject_type: "public".into(),
            consent_required: false,
            min_acr: None,
            jwks: None,
            jwks_uri: None,
            backchannel_logout_uri: None,
            audience: Audience::Everyone,
            portal: Portal::default(),
            client_credentials_allowed: false,
            resource_server: false,
            request_object_signing_alg: None,
            require_signed_request_object: false,
            require_pushed_authorization_requests: false,
            dpop_bound_access_tokens: false,
            fapi2: false,
            resource_uri: None,
        }
    }
}

/// Why a client was not created; the codes are RFC 7591's.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid_redirect_uri: {0}")]
    RedirectUri(String),
    #[error("invalid_client_metadata: {0}")]
    Metadata(String),
    #[error("a client with id `{0}` already exists")]
    Exists(String),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<diesel::result::Error> for ClientError {
    fn from(e: diesel::result::Error) -> Self {
        ClientError::Infra(e.into())
    }
}

/// Scopes as an operator types them (the `--scope` option, the form's field): separated by any
/// white space; nothing typed keeps [`NewClient::new`]'s default. Taken as typed, `openid`
/// included or not, on the command line as on the operator pages.
pub fn operator_scope(text: &str) -> Option<Vec<String>> {
    let scope: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    (!scope.is_empty()).then_some(scope)
}

/// A redirect URI must be absolute, without fragment, and use https — or http on a loopback
/// host, for development and native apps (RFC 8252).
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let u = url::Url::parse(uri).map_err(|e| format!("`{uri}` is not an absolute URL: {e}"))?;
    if u.fragment().is_some() {
        return Err(format!("`{uri}` must not contain a fragment"));
    }
    if uri.len() > 2000 {
        return Err("a redirect URI may be at most 2000 characters".into());
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" => match u.host_str() {
            Some("localhost" | "127.0.0.1" | "[::1]") => Ok(()),
            _ => Err(format!("`{uri}`: plain http is only allowed for localhost")),
        },
        s => Err(format!("`{uri}`: scheme `{s}` is not allowed")),
    }
}

/// Checks metadata and builds the row (without id, secret or times).
fn validate(new: &NewClient) -> Result<(), ClientError> {
    let meta = |m: String| Err(ClientError::Metadata(m));
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return meta("client_name must be 1–200 characters".into());
    }
    for g in &new.grant_types {
        if !GRANT_TYPES.contains(&g.as_str()) {
            return meta(format!("grant type `{g}` is not supported"));
        }
    }
    if new.grant_types.is_empty() {
        return meta("at least one grant type is required".into());
    }
    if !AUTH_METHODS.contains(&new.token_endpoint_auth_method.as_str()) {
        return meta(format!("token_endpoint_auth_method `{}` is not supported", new.token_endpoint_auth_method));
    }
    let public = new.token_endpoint_auth_method == "none";
    if public && new.grant_types.iter().any(|g| g == "client_credentials") {
        return meta("public clients cannot use client_credentials".into());
    }
    let code_flow = new.grant_types.iter().any(|g| g == "authorization_code");
    if new.grant_types.iter().any(|g| g == "refresh_token") && !code_flow {
        return meta("refresh_token needs authorization_code".into());
    }
    if code_flow && new.redirect_uris.is_empty() {
        return Err(ClientError::RedirectUri("at least one redirect URI is required".into()));
    }
    for uri in &new.redirect_uris {
        check_redirect_uri(uri).map_err(ClientError::RedirectUri)?;
    }
    for uri in &new.post_logout_redirect_uris {
        check_redirect_uri(uri).map_err(|e| ClientError::Metadata(format!("post_logout_redirect_uri {e}")))?;
    }
    if let Some(uri) = &new.portal.url {
        check_redirect_uri(uri).map_err(|e| ClientError::Metadata(format!("portal url {e}")))?;
    }
    for (what, v, max) in
        [("portal category", &new.portal.category, 100), ("portal description", &new.portal.description, 500)]
    {
        if v.as_ref().is_some_and(|v| v.chars().count() > max) {
            return meta(format!("{what} may be at most {max} characters"));
        }
    }
    if let Some(uri) = &new.backchannel_logout_uri {
        check_redirect_uri(uri).map_err(|e| ClientError::Metadata(format!("backchannel_logout_uri {e}")))?;
    }
    if !matches!(new.id_token_alg.as_str(), "ES256" | "RS256") {
        return meta("id_token_signed_response_alg must be ES256 or RS256".into());
    }
    for s in &new.scope {
        if !SUPPORTED_SCOPES.contains(&s.as_str()) {
            return meta(format!("scope `{s}` is not supported"));
        }
    }
    match new.subject_type.as_str() {
        "public" => {}
        "pairwise" => {
            let hosts: std::collections::HashSet<_> = new
                .redirect_uris
                .iter()
                .filter_map(|u| url::Url::parse(u).ok()?.host_str().map(str::to_string))
                .collect();
            if hosts.len() != 1 {
                return meta("pairwise clients need redirect URIs on one host".into());
            }
        }
        other => return meta(format!("subject_type `{other}` is not supported")),
    }
    if let Some(acr) = &new.min_acr {
        if !super::ACR_VALUES.contains(&acr.as_str()) {
            return meta(format!("acr `{acr}` is not supported"));
        }
    }
    if let Some(alg) = &new.request_object_signing_alg {
        if !REQUEST_OBJECT_ALGS.contains(&alg.as_str()) {
            return meta(format!("request_object_signing_alg must be one of {}", REQUEST_OBJECT_ALGS.join(", ")));
        }
    }
    // Request objects are verified with the client's own keys, as private_key_jwt assertions are.
    let signs_requests = new.request_object_signing_alg.is_some() || new.require_signed_request_object;
    if new.token_endpoint_auth_method == "private_key_jwt" || signs_requests || new.jwks.is_some() {
        let what = if signs_requests { "signed request objects" } else { "private_key_jwt" };
        match (&new.jwks, &new.jwks_uri) {
            (Some(_), Some(_)) => return meta("give jwks or jwks_uri, not both".into()),
            (None, None) => return meta(format!("{what} needs jwks or jwks_uri")),
            (Some(jwks), None) => {
                if serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(jwks.clone()).is_err() {
                    return meta("jwks is not a JWK set".into());
                }
            }
            (None, Some(uri)) => {
                if !uri.starts_with("https://") && check_redirect_uri(uri).is_err() {
                    return meta("jwks_uri must be https".into());
                }
            }
        }
    }
    check_fapi2(new.fapi2, &new.token_endpoint_auth_method).map_err(ClientError::Metadata)?;
    check_resource_uri(new.resource_server, new.resource_uri.as_deref()).map_err(ClientError::Metadata)?;
    Ok(())
}

/// The longest an authorization code of a FAPI 2.0 client lives (FAPI 2.0 Security Profile
/// §5.3.2.1: at most 60 seconds), whatever `tokens.code_ttl` says.
pub const FAPI2_CODE_TTL: Duration = Duration::from_secs(60);

impl Client {
    /// How long this client's authorization codes live, given the configured lifetime.
    pub fn code_ttl(&self, configured: Duration) -> Duration {
        if self.fapi2 {
            configured.min(FAPI2_CODE_TTL)
        } else {
            configured
        }
    }
}

/// FAPI 2.0 allows only sender-constrained client authentication: `private_key_jwt` here (mTLS
/// client certificates are not offered), so never a shared secret.
fn check_fapi2(fapi2: bool, auth_method: &str) -> Result<(), String> {
    if fapi2 && auth_method != "private_key_jwt" {
        return Err("the FAPI 2.0 profile needs token_endpoint_auth_method private_key_jwt (no client secret)".into());
    }
    Ok(())
}

/// A resource server's URI (RFC 8707 §2): absolute, without fragment or query, and only on a
/// client an operator made a resource server.
fn check_resource_uri(resource_server: bool, uri: Option<&str>) -> Result<(), String> {
    let Some(uri) = uri else { return Ok(()) };
    if !resource_server {
        return Err("resource_uri is for resource servers only".into());
    }
    super::resource::check_uri(uri).map_err(|e| format!("resource_uri {e}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, InfraError> {
    serde_json::to_string(v).map_err(|e| InfraError::Internal(e.to_string()))
}

/// Registers a client; returns it and, for secret-based clients, the secret (shown once).
pub fn create(conn: &mut DbConn, new: NewClient, now: i64) -> Result<(Client, Option<String>), ClientError> {
    let new = new.with_profile();
    validate(&new)?;
    refuse_taken_resource_uri(conn, new.resource_uri.as_deref(), None)?;
    let id = match &new.client_id {
        Some(id) => {
            let starts_well = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
            if id.len() > 100 || !starts_well || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                return Err(ClientError::Metadata(
                    "a client id must be 1–100 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
                        .into(),
                ));
            }
            id.clone()
        }
        None => new_client_id(),
    };
    let public = new.token_endpoint_auth_method == "none";
    let secret = new.token_endpoint_auth_method.starts_with("client_secret").then(|| random_token(32));
    let row = ClientRow {
        id: id.clone(),
        name: new.name.trim().to_string(),
        secret_hash: secret.as_deref().map(|s| sha256_b64(s.as_bytes())),
        kind: if public { "public" } else { "confidential" }.into(),
        redirect_uris: to_json(&new.redirect_uris)?,
        post_logout_redirect_uris: to_json(&new.post_logout_redirect_uris)?,
        id_token_alg: new.id_token_alg,
        created_at: now,
        token_endpoint_auth_method: new.token_endpoint_auth_method,
        grant_types: to_json(&new.grant_types)?,
        scope: new.scope.join(" "),
        subject_type: new.subject_type,
        consent: if new.consent_required { "required" } else { "pre-approved" }.into(),
        min_acr: new.min_acr,
        jwks: new.jwks.as_ref().map(to_json).transpose()?,
        jwks_uri: new.jwks_uri,
        backchannel_logout_uri: new.backchannel_logout_uri,
        registration_token_hash: None,
        updated_at: now,
        audience: new.audience.as_string(),
        portal_category: new.portal.category,
        portal_description: new.portal.description,
        portal_url: new.portal.url,
        disabled_at: None,
        client_credentials_allowed: new.client_credentials_allowed,
        resource_server: new.resource_server,
        request_object_signing_alg: new.request_object_signing_alg,
        require_signed_request_object: new.require_signed_request_object,
        require_pushed_authorization_requests: new.require_pushed_authorization_requests,
        dpop_bound_access_tokens: new.dpop_bound_access_tokens,
        fapi2: new.fapi2,
        resource_uri: new.resource_uri,
    };
    match diesel::insert_into(clients::table).values(&row).execute(conn) {
        Ok(_) => {}
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            return Err(ClientError::Exists(id))
        }
        Err(e) => return Err(InfraError::from(e).into()),
    }
    Ok((row.try_into()?, secret))
}

/// Registers a client for an operator (the command line, `/admin/clients`), audited as
/// `client.create` (with its audience) in the same transaction.
pub fn create_by(
    conn: &mut DbConn,
    new: NewClient,
    actor: &Actor,
    now: i64,
) -> Result<(Client, Option<String>), ClientError> {
    conn.transaction(|c| {
        let (client, secret) = create(c, new, now)?;
        let e = Event {
            client_id: Some(&client.client_id),
            detail: client.audience.as_string(),
            ..actor.event("client.create", "success")
        };
        audit::record(c, e, now)?;
        Ok((client, secret))
    })
}

/// Replaces a client's metadata from the operator page's form, with the settings RFC 7592
/// leaves to operators (consent, permissions), audited as `client.update`. `None`: no such
/// client.
pub fn edit_by(
    conn: &mut DbConn,
    id: &str,
    new: NewClient,
    actor: &Actor,
    now: i64,
) -> Result<Option<Client>, ClientError> {
    conn.transaction(|c| {
        if get(c, id)?.is_none() {
            return Ok(None);
        }
        let new = new.with_profile();
        let consent = if new.consent_required { "required" } else { "pre-approved" };
        let (rs, cc, fapi2) = (new.resource_server, new.client_credentials_allowed, new.fapi2);
        let resource_uri = new.resource_uri.clone();
        refuse_taken_resource_uri(c, resource_uri.as_deref(), Some(id))?;
        replace(c, id, new, now)?;
        diesel::update(clients::table.find(id))
            .set((
                clients::consent.eq(consent),
                clients::resource_server.eq(rs),
                clients::client_credentials_allowed.eq(cc),
                clients::fapi2.eq(fapi2),
                clients::resource_uri.eq(resource_uri),
            ))
            .execute(c)?;
        let client = get(c, id)?.ok_or_else(|| ClientError::Metadata("unknown client".into()))?;
        audit_update(c, &client, actor, now)?;
        Ok(Some(client))
    })
}

/// Audits a changed client as `client.update`, with the settings only an operator decides.
fn audit_update(conn: &mut DbConn, c: &Client, actor: &Actor, now: i64) -> Result<(), InfraError> {
    let detail = format!(
        "audience {}, min_acr {}, client_credentials_allowed {}, resource_server {}, require_signed_request_object {}, \
         require_pushed_authorization_requests {}, dpop_bound_access_tokens {}, fapi2 {}, resource_uri {}",
        c.audience.as_string(),
        c.min_acr.as_deref().unwrap_or("none"),
        c.client_credentials_allowed,
        c.resource_server,
        c.require_signed_request_object,
        c.require_pushed_authorization_requests,
        c.dpop_bound_access_tokens,
        c.fapi2,
        c.resource_uri.as_deref().unwrap_or("none")
    );
    audit::record(conn, Event { client_id: Some(&c.client_id), detail, ..actor.event("client.update", "success") }, now)
}

/// [`change_by_operator`] for `actor`, audited as `client.update` in the same transaction.
pub fn change_by(
    conn: &mut DbConn,
    id: &str,
    change: &OperatorChange,
    actor: &Actor,
    now: i64,
) -> Result<Option<Client>, ClientError> {
    conn.transaction(|c| {
        let Some(client) = change_by_operator(c, id, change, now)? else { return Ok(None) };
        audit_update(c, &client, actor, now)?;
        Ok(Some(client))
    })
}

/// Removes a client for `actor`, audited as `client.delete`; returns whether it existed.
pub fn delete_by(conn: &mut DbConn, id: &str, actor: &Actor, now: i64) -> Result<bool, InfraError> {
    conn.transaction(|c| {
        if !delete(c, id)? {
            return Ok(false);
        }
        audit::record(c, Event { client_id: Some(id), ..actor.event("client.delete", "success") }, now)?;
        Ok(true)
    })
}

/// Disables or re-enables a client for `actor`, audited as `client.disable` / `client.enable`;
/// returns whether it exists.
pub fn set_disabled_by(
    conn: &mut DbConn,
    id: &str,
    disabled: bool,
    actor: &Actor,
    now: i64,
) -> Result<bool, InfraError> {
    conn.transaction(|c| {
        if !set_disabled(c, id, disabled, now)? {
            return Ok(false);
        }
        let event = if disabled { "client.disable" } else { "client.enable" };
        audit::record(c, Event { client_id: Some(id), ..actor.event(event, "success") }, now)?;
        Ok(true)
    })
}

/// A new secret for `actor` (shown once), audited as `client.rotate_secret` (`no_secret` for a
/// client without one).
pub fn rotate_secret_by(
    conn: &mut DbConn,
    id: &str,
    overlap: Duration,
    actor: &Actor,
    now: i64,
) -> Result<Option<RotatedSecret>, InfraError> {
    conn.transaction(|c| {
        let rotated = rotate_secret_with_overlap(c, id, overlap, now)?;
        let outcome = if rotated.is_some() { "success" } else { "no_secret" };
        let detail = rotated.as_ref().map(|r| rotation_detail(r.old_valid_until)).unwrap_or_default();
        audit::record(c, Event { client_id: Some(id), detail, ..actor.event("client.rotate_secret", outcome) }, now)?;
        Ok(rotated)
    })
}

/// Gives a client a registration access token (RFC 7592); returns the token, shown once.
pub fn issue_registration_access_token(conn: &mut DbConn, id: &str) -> Result<String, InfraError> {
    let token = random_token(32);
    diesel::update(clients::table.find(id))
        .set(clients::registration_token_hash.eq(sha256_b64(token.as_bytes())))
        .execute(conn)?;
    Ok(token)
}

/// Replaces a client's metadata (RFC 7592 PUT); the id, secret and registration token stay.
pub fn replace(conn: &mut DbConn, id: &str, new: NewClient, now: i64) -> Result<Client, ClientError> {
    validate(&new)?;
    let existing = get(conn, id)?.ok_or_else(|| ClientError::Metadata("unknown client".into()))?;
    if existing.token_endpoint_auth_method != new.token_endpoint_auth_method {
        return Err(ClientError::Metadata("token_endpoint_auth_method cannot change".into()));
    }
    diesel::update(clients::table.find(id))
        .set((
            clients::name.eq(new.name.trim()),
            clients::redirect_uris.eq(to_json(&new.redirect_uris)?),
            clients::post_logout_redirect_uris.eq(to_json(&new.post_logout_redirect_uris)?),
            clients::id_token_alg.eq(&new.id_token_alg),
            clients::grant_types.eq(to_json(&new.grant_types)?),
            clients::scope.eq(new.scope.join(" ")),
            clients::subject_type.eq(&new.subject_type),
            clients::min_acr.eq(&new.min_acr),
            clients::jwks.eq(new.jwks.as_ref().map(to_json).transpose()?),
            clients::jwks_uri.eq(&new.jwks_uri),
            clients::backchannel_logout_uri.eq(&new.backchannel_logout_uri),
            clients::audience.eq(new.audience.as_string()),
            clients::portal_category.eq(&new.portal.category),
            clients::portal_description.eq(&new.portal.description),
            clients::portal_url.eq(&new.portal.url),
            clients::request_object_signing_alg.eq(&new.request_object_signing_alg),
            clients::require_signed_request_object.eq(new.require_signed_request_object),
            clients::require_pushed_authorization_requests.eq(new.require_pushed_authorization_requests),
            clients::dpop_bound_access_tokens.eq(new.dpop_bound_access_tokens),
            clients::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(InfraError::from)?;
    get(conn, id)?.ok_or_else(|| ClientError::Metadata("unknown client".into()))
}

/// What an operator changes on an existing client; `None` leaves a setting as it is. These are
/// the settings a client's own RFC 7592 update can never change.
#[derive(Debug, Clone, Default)]
pub struct OperatorChange {
    pub audience: Option<Audience>,
    /// `Some(None)` removes the minimum.
    pub min_acr: Option<Option<String>>,
    pub client_credentials_allowed: Option<bool>,
    pub resource_server: Option<bool>,
    /// Whether the client's authorization requests must be signed request objects.
    pub require_signed_request_object: Option<bool>,
    pub require_pushed_authorization_requests: Option<bool>,
    pub dpop_bound_access_tokens: Option<bool>,
    /// Switching the FAPI 2.0 profile on switches PAR and DPoP on with it; while it is on,
    /// they cannot be switched off.
    pub fapi2: Option<bool>,
    /// `Some(None)` removes the resource server's URI.
    pub resource_uri: Option<Option<String>>,
}

/// Applies an operator's change; returns the client, or `None` if there is none with this id.
pub fn change_by_operator(
    conn: &mut DbConn,
    id: &str,
    change: &OperatorChange,
    now: i64,
) -> Result<Option<Client>, ClientError> {
    if let Some(Some(acr)) = &change.min_acr {
        if !super::ACR_VALUES.contains(&acr.as_str()) {
            return Err(ClientError::Metadata(format!("acr `{acr}` is not supported")));
        }
    }
    let Some(current) = get(conn, id)? else { return Ok(None) };
    if change.client_credentials_allowed == Some(true) && current.public {
        return Err(ClientError::Metadata("public clients cannot use client_credentials".into()));
    }
    let audience = change.audience.clone().unwrap_or(current.audience).as_string();
    let min_acr = change.min_acr.clone().unwrap_or(current.min_acr);
    let cc = change.client_credentials_allowed.unwrap_or(current.client_credentials_allowed);
    let rs = change.resource_server.unwrap_or(current.resource_server);
    let signed = change.require_signed_request_object.unwrap_or(current.require_signed_request_object);
    if signed && current.jwks.is_none() && current.jwks_uri.is_none() {
        return Err(ClientError::Metadata("signed request objects need jwks or jwks_uri".into()));
    }
    let fapi2 = change.fapi2.unwrap_or(current.fapi2);
    check_fapi2(fapi2, &current.token_endpoint_auth_method).map_err(ClientError::Metadata)?;
    let par = change.require_pushed_authorization_requests.unwrap_or(current.require_pushed_authorization_requests);
    let dpop = change.dpop_bound_access_tokens.unwrap_or(current.dpop_bound_access_tokens);
    if fapi2
        && (!par || !dpop)
        && (change.require_pushed_authorization_requests.is_some() || change.dpop_bound_access_tokens.is_some())
    {
        return Err(ClientError::Metadata("the FAPI 2.0 profile keeps PAR and DPoP on".into()));
    }
    let (par, dpop) = (par || fapi2, dpop || fapi2);
    let resource_uri = change.resource_uri.clone().unwrap_or(current.resource_uri);
    check_resource_uri(rs, resource_uri.as_deref()).map_err(ClientError::Metadata)?;
    refuse_taken_resource_uri(conn, resource_uri.as_deref(), Some(id))?;
    diesel::update(clients::table.find(id))
        .set((
            clients::audience.eq(audience),
            clients::min_acr.eq(min_acr),
            clients::client_credentials_allowed.eq(cc),
            clients::resource_server.eq(rs),
            clients::require_signed_request_object.eq(signed),
            clients::require_pushed_authorization_requests.eq(par),
            clients::dpop_bound_access_tokens.eq(dpop),
            clients::fapi2.eq(fapi2),
            clients::resource_uri.eq(resource_uri),
            clients::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(InfraError::from)?;
    Ok(get(conn, id)?)
}

/// One API per resource URI: another client (not `except`) that already has it is a refusal.
fn refuse_taken_resource_uri(conn: &mut DbConn, uri: Option<&str>, except: Option<&str>) -> Result<(), ClientError> {
    let Some(uri) = uri else { return Ok(()) };
    let holder: Option<String> = clients::table
        .filter(clients::resource_uri.eq(uri))
        .select(clients::id)
        .first(conn)
        .optional()
        .map_err(InfraError::from)?;
    match holder {
        Some(h) if Some(h.as_str()) != except => {
            Err(ClientError::Metadata(format!("resource_uri {uri} is already the URI of another resource server")))
        }
        _ => Ok(()),
    }
}

/// The enabled resource server a resource URI names (RFC 8707), if any.
pub fn resource_server_for(conn: &mut DbConn, uri: &str) -> Result<Option<Client>, InfraError> {
    let id: Option<String> = clients::table
        .filter(clients::resource_uri.eq(uri))
        .filter(clients::resource_server.eq(true))
        .filter(clients::disabled_at.is_null())
        .select(clients::id)
        .first(conn)
        .optional()?;
    match id {
        Some(id) => get(conn, &id),
        None => Ok(None),
    }
}

/// A client by id, with the secret a rotation replaced while it still works.
pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<Client>, InfraError> {
    let found: Option<(ClientRow, Option<String>, Option<i64>)> = clients::table
        .find(id)
        .select((ClientRow::as_select(), clients::previous_secret_hash, clients::previous_secret_expires_at))
        .get_result(conn)
        .optional()?;
    found
        .map(|(row, hash, until)| {
            let mut client = Client::try_from(row)?;
            client.previous_secret = hash.zip(until);
            Ok(client)
        })
        .transpose()
}

/// Every client, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<Client>, InfraError> {
    clients::table
        .order((clients::created_at.asc(), clients::id.asc()))
        .select(ClientRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Client::try_from)
        .collect()
}

/// Removes a client; returns whether it existed.
pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, InfraError> {
    use crate::store::db::schema::{consents, refresh_tokens};
    diesel::delete(consents::table.filter(consents::client_id.eq(id))).execute(conn)?;
    diesel::delete(refresh_tokens::table.filter(refresh_tokens::client_id.eq(id))).execute(conn)?;
    Ok(diesel::delete(clients::table.find(id)).execute(conn)? > 0)
}

/// Disables or re-enables a client; returns whether it exists.
pub fn set_disabled(conn: &mut DbConn, id: &str, disabled: bool, now: i64) -> Result<bool, InfraError> {
    let at = disabled.then_some(now);
    Ok(diesel::update(clients::table.find(id))
        .set((clients::disabled_at.eq(at), clients::updated_at.eq(now)))
        .execute(conn)?
        > 0)
}

/// The shortest overlap a rotation may give the old secret (zero aside): every node's client
/// cache is refreshed well within it.
pub const MIN_SECRET_OVERLAP: Duration = Duration::from_secs(60);
/// The longest: an overlap is for rolling an application out, not a second permanent secret.
pub const MAX_SECRET_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses how long the old secret keeps working: `0` (it stops at once) or a human duration
/// (`humantime` syntax: `1h`, `7d`) between [`MIN_SECRET_OVERLAP`] and [`MAX_SECRET_OVERLAP`].
pub fn parse_secret_overlap(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime_serde::re::humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e}"))?;
    if d.is_zero() {
        return Ok(d);
    }
    if d < MIN_SECRET_OVERLAP || d > MAX_SECRET_OVERLAP {
        return Err("the old secret may keep working for 0, or between 1 minute and 30 days".into());
    }
    Ok(d)
}

/// The audit detail of a rotation: when the old secret stops (epoch seconds), never a secret.
pub fn rotation_detail(old_valid_until: Option<i64>) -> String {
    match old_valid_until {
        Some(until) => format!("old secret valid until {until}"),
        None => "old secret stopped".into(),
    }
}

/// A new client secret from [`rotate_secret_with_overlap`].
#[derive(Debug)]
pub struct RotatedSecret {
    /// Shown once; only its hash is stored.
    pub secret: String,
    /// Until when (epoch seconds) the replaced secret still works; `None`: it stopped at once.
    pub old_valid_until: Option<i64>,
}

/// Replaces a client's secret, the replaced one working beside it for `overlap` (as Keycloak's
/// client secret rotation does), so an application can be rolled out without an outage. The
/// end is a time stored with the client, so it is the same on every node. A secret replaced
/// earlier, still in its overlap, stops now: there are never more than two. One statement, so
/// two rotations at once cannot lose a secret halfway. `None` for a client without a secret or
/// no client.
pub fn rotate_secret_with_overlap(
    conn: &mut DbConn,
    id: &str,
    overlap: Duration,
    now: i64,
) -> Result<Option<RotatedSecret>, InfraError> {
    let secret = random_token(32);
    let old_valid_until = (!overlap.is_zero()).then(|| now.saturating_add(overlap.as_secs() as i64));
    let target = clients::table.find(id).filter(clients::secret_hash.is_not_null());
    let new_hash = clients::secret_hash.eq(sha256_b64(secret.as_bytes()));
    // In an UPDATE every right-hand side sees the row as it was, so `previous_secret_hash =
    // secret_hash` takes the secret being replaced.
    let n = match old_valid_until {
        Some(until) => diesel::update(target)
            .set((
                clients::previous_secret_hash.eq(clients::secret_hash.nullable()),
                clients::previous_secret_expires_at.eq(Some(until)),
                new_hash,
                clients::updated_at.eq(now),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                clients::previous_secret_hash.eq(None::<String>),
                clients::previous_secret_expires_at.eq(None::<i64>),
                new_hash,
                clients::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok((n == 1).then_some(RotatedSecret { secret, old_valid_until }))
}

/// A generated client id: 128 random bits in lower-case hex. Never starts with `-` (which a
/// command line would take for an option) and reads unambiguously over the phone.
fn new_client_id() -> String {
    let raw = crate::crypto::random_bytes(16);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_secrets(current: &str, previous: Option<(&str, i64)>) -> Client {
        Client {
            secret_hash: Some(sha256_b64(current.as_bytes())),
            previous_secret: previous.map(|(s, until)| (sha256_b64(s.as_bytes()), until)),
            ..Client::default()
        }
    }

    #[test]
    fn the_replaced_secret_works_until_its_time_and_not_a_second_longer() {
        let c = with_secrets("new", Some(("old", 1000)));
        assert_eq!(c.check_secret("new", 999), SecretMatch::Current);
        assert_eq!(c.check_secret("new", 5000), SecretMatch::Current);
        assert_eq!(c.check_secret("old", 999), SecretMatch::Previous { until: 1000 });
        assert_eq!(c.check_secret("old", 1000), SecretMatch::No, "the end is exclusive");
        assert_eq!(c.check_secret("other", 999), SecretMatch::No);
        assert_eq!(c.check_secret("", 999), SecretMatch::No);
        assert_eq!(c.previous_secret_valid_until(999), Some(1000));
        assert_eq!(c.previous_secret_valid_until(1000), None);
        // Without an overlap only the current one works; registration checks stay current-only.
        let c = with_secrets("new", None);
        assert_eq!(c.check_secret("old", 0), SecretMatch::No);
        assert!(!with_secrets("new", Some(("old", 1000))).secret_matches("old"));
    }

    #[test]
    fn overlaps_are_zero_or_between_a_minute_and_thirty_days() {
        assert_eq!(parse_secret_overlap("0"), Ok(Duration::ZERO));
        assert_eq!(parse_secret_overlap("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_secret_overlap("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_secret_overlap("1m"), Ok(MIN_SECRET_OVERLAP));
        for bad in ["59s", "31d", "soon", "", "-1h"] {
            assert!(parse_secret_overlap(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_client_ids_are_hex_and_never_look_like_an_option() {
        for _ in 0..2000 {
            let id = super::new_client_id();
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
        }
    }
}
