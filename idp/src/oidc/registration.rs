//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), free of
//! HTTP-framework types.
//!
//! Registration is not open: an operator hands out single-use, expiring *initial access tokens*
//! (`idp clients issue-registration-token`), stored only as their SHA-256. A registration consumes
//! one and yields a client plus a *registration access token* with which that client — and only
//! that client — can read, replace or delete its own metadata. Clients registered this way are
//! third parties: people are always asked for consent, and they can never receive the
//! `national_id` scope (only operators grant it, through the CLI).

use std::time::Duration;

use diesel::prelude::*;
use serde_json::{json, Map, Value};

use super::clients::{self, Client, ClientError, NewClient};
use crate::audit::{self, Actor, Event};
use crate::crypto::{random_token, sha256_b64};
use crate::error::InfraError;
use crate::store::db::schema::registration_tokens;
use crate::store::db::{DbConn, DbError};

/// Largest registration request body accepted: metadata is small, and a bound keeps hostile
/// requests from costing memory and parse time.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Most top-level members in a request, counting ignored (unknown) ones.
const MAX_MEMBERS: usize = 100;
/// Most redirect URIs (and post-logout redirect URIs) per client.
const MAX_URIS: usize = 20;
/// Most entries in the other lists (grant types, response types, ACR values, scopes, keys).
const MAX_ITEMS: usize = 10;
/// Longest single URI or string value other than the name.
const MAX_VALUE_LEN: usize = 2000;
/// Longest an initial access token may live: it is a bearer credential that sits in an e-mail
/// or a ticket until used, so it should not outlive the on-boarding it was made for.
pub const MAX_INITIAL_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest presented token we look up; real ones are 43 characters.
const MAX_TOKEN_LEN: usize = 512;
/// Used or expired initial access tokens are forgotten this long after they expire (the audit
/// trail keeps the story).
const FORGET_AFTER_SECS: i64 = 7 * 24 * 3600;

/// Why a registration or management request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The bearer token is missing, unknown, used, expired, or not this client's; RFC 6750
    /// `invalid_token`. Deliberately one variant: callers must not learn which.
    #[error("invalid_token")]
    InvalidToken,
    /// A well-formed request that contradicts the client (RFC 7592 §2.2): `invalid_request`.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Bad metadata (`invalid_redirect_uri`, `invalid_client_metadata`) or infrastructure.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl From<InfraError> for RegistrationError {
    fn from(e: InfraError) -> Self {
        RegistrationError::Client(ClientError::Infra(e))
    }
}

impl From<DbError> for RegistrationError {
    fn from(e: DbError) -> Self {
        InfraError::from(e).into()
    }
}

impl From<diesel::result::Error> for RegistrationError {
    fn from(e: diesel::result::Error) -> Self {
        InfraError::from(e).into()
    }
}

/// The ID token algorithm of a client that registers itself without naming one (OpenID Connect
/// Dynamic Registration §2).
pub const DEFAULT_ID_TOKEN_ALG: &str = "RS256";

/// A freshly issued initial access token; `token` is shown once and never stored.
#[derive(Debug)]
pub struct InitialAccessToken {
    pub token: String,
    pub expires_at: i64,
}

/// Issues a single-use initial access token valid for `ttl` (at most
/// [`MAX_INITIAL_ACCESS_TOKEN_TTL`]); only its SHA-256 is stored. Long-dead tokens are swept on
/// the way, so the table stays small without a separate job. Issued for `actor` (the command
/// line, an operator page), audited as `registration_token.issue` in the same transaction.
pub fn issue_initial_access_token(
    conn: &mut DbConn,
    ttl: Duration,
    actor: &Actor,
    now: i64,
) -> Result<InitialAccessToken, InfraError> {
    if ttl.is_zero() || ttl > MAX_INITIAL_ACCESS_TOKEN_TTL {
        return Err(InfraError::Internal("the token lifetime must be between 1 second and 30 days".into()));
    }
    let token = random_token(32);
    let expires_at = now.saturating_add(ttl.as_secs() as i64);
    conn.transaction(|conn| {
        diesel::delete(registration_tokens::table.filter(registration_tokens::expires_at.lt(now - FORGET_AFTER_SECS)))
            .execute(conn)?;
        diesel::insert_into(registration_tokens::table)
            .values((
                registration_tokens::id.eq(sha256_b64(token.as_bytes())),
                registration_tokens::created_at.eq(now),
                registration_tokens::expires_at.eq(expires_at),
            ))
            .execute(conn)?;
        let e =
            Event { detail: format!("expires at {expires_at}"), ..actor.event("registration_token.issue", "success") };
        audit::record(conn, e, now)?;
        Ok(InitialAccessToken { token, expires_at })
    })
}

/// Uses up an initial access token: true exactly once for a live token. A single conditional
/// UPDATE, so two concurrent registrations (even on two nodes) can never both succeed.
pub fn consume_initial_access_token(conn: &mut DbConn, presented: &str, now: i64) -> Result<bool, InfraError> {
    if presented.is_empty() || presented.len() > MAX_TOKEN_LEN {
        return Ok(false);
    }
    let id = sha256_b64(presented.as_bytes());
    let n = diesel::update(
        registration_tokens::table
            .filter(registration_tokens::id.eq(id))
            .filter(registration_tokens::used_at.is_null())
            .filter(registration_tokens::expires_at.gt(now)),
    )
    .set(registration_tokens::used_at.eq(Some(now)))
    .execute(conn)?;
    Ok(n == 1)
}

/// A parsed registration or update request.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// What the client asked for, already with this provider's defaults and policy applied.
    pub client: NewClient,
    /// `client_id` as sent: ignored on registration (the provider chooses), required and
    /// checked on update (RFC 7592 §2.2).
    pub client_id: Option<String>,
    /// `client_secret` as sent: on update it must be the current secret (RFC 7592 §2.2).
    pub client_secret: Option<String>,
}

fn meta_err(m: impl Into<String>) -> ClientError {
    ClientError::Metadata(m.into())
}

/// A string member; `null` counts as absent (RFC 7592: an omitted or null value is unset).
fn string(obj: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, ClientError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(meta_err(format!("{key} is too long"))),
        Some(_) => Err(meta_err(format!("{key} must be a string"))),
    }
}

/// An array-of-strings member, duplicates dropped (order kept).
/// A boolean member; absent is `false` (RFC 9126 §6, RFC 9449 §5.2).
fn flag(obj: &Map<String, Value>, key: &str) -> Result<bool, ClientError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(meta_err(format!("{key} must be true or false"))),
    }
}

fn strings(
    obj: &Map<String, Value>,
    key: &str,
    max_items: usize,
    err: fn(String) -> ClientError,
) -> Result<Option<Vec<String>>, ClientError> {
    let items = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(err(format!("{key} must be an array of strings"))),
    };
    if items.len() > max_items {
        return Err(err(format!("{key} may have at most {max_items} entries")));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(s) if s.len() <= MAX_VALUE_LEN => {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
            Value::String(_) => return Err(err(format!("a value in {key} is too long"))),
            _ => return Err(err(format!("{key} must be an array of strings"))),
        }
    }
    Ok(Some(out))
}

/// Parses an RFC 7591 §2 registration request (also the body of an RFC 7592 update) into a
/// [`NewClient`]. Unknown members are ignored, as RFC 7591 §2 asks; known ones with the wrong
/// shape, unsupported values or values this provider's policy refuses are
/// `invalid_client_metadata` (or `invalid_redirect_uri`). The deeper checks (URI rules, auth
/// method and grant combinations, keys) are [`clients::create`]'s and [`clients::replace`]'s,
/// so operator and dynamic registrations follow one rule set.
pub fn parse(body: &[u8]) -> Result<Metadata, ClientError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(meta_err("the request is larger than 64 KiB"));
    }
    // serde_json bounds nesting depth itself, so hostile nesting is an error, not a crash.
    let value: Value =
        serde_json::from_slice(body).map_err(|e| meta_err(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(meta_err("the body must be a JSON object"));
    };
    if obj.len() > MAX_MEMBERS {
        return Err(meta_err(format!("at most {MAX_MEMBERS} members are accepted")));
    }

    // The provider shows the name on the consent page, so a third party must give one.
    let name = string(&obj, "client_name", 1000)?.ok_or_else(|| meta_err("client_name is required"))?;
    if name.chars().any(char::is_control) {
        return Err(meta_err("client_name must not contain control characters"));
    }
    let redirect_uris = strings(&obj, "redirect_uris", MAX_URIS, ClientError::RedirectUri)?.unwrap_or_default();
    let mut new = NewClient::new(&name, redirect_uris);
    new.consent_required = true;

    new.grant_types = strings(&obj, "grant_types", MAX_ITEMS, ClientError::Metadata)?
        .unwrap_or_else(|| vec!["authorization_code".into()]);
    for g in &new.grant_types {
        if !clients::GRANT_TYPES.contains(&g.as_str()) {
            return Err(meta_err(format!("grant type `{g}` is not supported")));
        }
    }
    let code_flow = new.grant_types.iter().any(|g| g == "authorization_code");
    // RFC 7591 §2.1: `code` goes with `authorization_code`, and this provider has no other
    // response type (no implicit or hybrid flows).
    if let Some(response_types) = strings(&obj, "response_types", MAX_ITEMS, ClientError::Metadata)? {
        if let Some(other) = response_types.iter().find(|r| r.as_str() != "code") {
            return Err(meta_err(format!("response type `{other}` is not supported; only `code` is")));
        }
        if response_types.is_empty() == code_flow {
            return Err(meta_err("response_types [\"code\"] and grant type authorization_code go together"));
        }
    }

    if let Some(method) = string(&obj, "token_endpoint_auth_method", 100)? {
        new.token_endpoint_auth_method = method;
    }
    new.scope = match string(&obj, "scope", MAX_VALUE_LEN)? {
        Some(requested) => {
            // RFC 6749 §3.3: space-delimited; repeated spaces and values are harmless.
            let mut scope: Vec<String> = Vec::new();
            for s in requested.split(' ').filter(|s| !s.is_empty()) {
                if !scope.iter().any(|x| x == s) {
                    scope.push(s.to_string());
                }
            }
            if scope.len() > MAX_ITEMS {
                return Err(meta_err(format!("scope may have at most {MAX_ITEMS} values")));
            }
            scope
        }
        None => {
            let mut s: Vec<String> = ["openid", "profile", "email", "agency", "roles"].map(String::from).to_vec();
            if new.grant_types.iter().any(|g| g == "refresh_token") {
                s.push("offline_access".into());
            }
            s
        }
    };
    if new.scope.iter().any(|s| s == "national_id") {
        return Err(meta_err("the national_id scope is granted only by operators"));
    }
    // As for operators' clients: a code-flow client without `openid` could never sign anyone in.
    if code_flow && !new.scope.iter().any(|s| s == "openid") {
        new.scope.insert(0, "openid".into());
    }

    new.post_logout_redirect_uris =
        strings(&obj, "post_logout_redirect_uris", MAX_URIS, ClientError::Metadata)?.unwrap_or_default();
    new.backchannel_logout_uri = string(&obj, "backchannel_logout_uri", MAX_VALUE_LEN)?;
    // OpenID Connect Dynamic Registration §2: omitted, the ID token algorithm is RS256 (an
    // operator's clients default to ES256 instead, see [`NewClient::new`]).
    new.id_token_alg = string(&obj, "id_token_signed_response_alg", 20)?.unwrap_or_else(|| DEFAULT_ID_TOKEN_ALG.into());
    if let Some(subject_type) = string(&obj, "subject_type", 20)? {
        new.subject_type = subject_type;
    }
    if let Some(acr) = strings(&obj, "default_acr_values", MAX_ITEMS, ClientError::Metadata)? {
        // Only the first (preferred) value is kept, as the client's minimum assurance; asking
        // for a level this provider cannot assert is refused rather than silently weakened.
        if let Some(first) = acr.into_iter().next() {
            if !super::ACR_VALUES.contains(&first.as_str()) {
                return Err(meta_err(format!("acr `{first}` is not supported")));
            }
            new.min_acr = Some(first);
        }
    }
    new.jwks_uri = string(&obj, "jwks_uri", MAX_VALUE_LEN)?;
    new.request_object_signing_alg = string(&obj, "request_object_signing_alg", 20)?;
    new.require_signed_request_object = match obj.get("require_signed_request_object") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(meta_err("require_signed_request_object must be a boolean")),
    };
    new.require_pushed_authorization_requests = flag(&obj, "require_pushed_authorization_requests")?;
    new.dpop_bound_access_tokens = flag(&obj, "dpop_bound_access_tokens")?;
    // The provider itself fetches these two; a third party must not point it at plain-http
    // services next to it (operators may, through the CLI, for development).
    for (key, uri) in [("jwks_uri", &new.jwks_uri), ("backchannel_logout_uri", &new.backchannel_logout_uri)] {
        if uri.as_deref().is_some_and(|u| !u.starts_with("https://")) {
            return Err(meta_err(format!("{key} must be an https URL")));
        }
    }
    new.jwks = match obj.get("jwks") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(set)) => {
            if set.get("keys").and_then(Value::as_array).is_some_and(|k| k.len() > MAX_ITEMS) {
                return Err(meta_err(format!("jwks may hold at most {MAX_ITEMS} keys")));
            }
            Some(v.clone())
        }
        Some(_) => return Err(meta_err("jwks must be a JWK set object")),
    };

    let client_id = match obj.get("client_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(meta_err("client_id must be a string")),
    };
    let client_secret = match obj.get("client_secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(meta_err("client_secret must be a string")),
    };
    Ok(Metadata { client: new, client_id, client_secret })
}

/// Refuses a third party's `jwks_uri` or `backchannel_logout_uri` that points at an internal
/// address (checked again at each use, see [`crate::outbound`]). `checks` is false only when
/// `outbound.allow_private_addresses` is on.
pub async fn check_urls(meta: Result<Metadata, ClientError>, checks: bool) -> Result<Metadata, ClientError> {
    let meta = meta?;
    if checks {
        let c = &meta.client;
        for (key, uri) in [("jwks_uri", &c.jwks_uri), ("backchannel_logout_uri", &c.backchannel_logout_uri)] {
            if let Some(uri) = uri {
                crate::outbound::check_url(uri).await.map_err(|e| meta_err(format!("{key}: {e}")))?;
            }
        }
    }
    Ok(meta)
}

/// The RFC 7591 §3.2.1 / RFC 7592 §3 client information: the registered metadata (the serde
/// form of [`Client`] uses the RFC's names) plus what the provider adds. Never the secret or
/// the registration access token: the caller adds those where the RFC asks.
fn client_information(client: &Client, base: &str) -> Result<Value, InfraError> {
    let mut v = serde_json::to_value(client).map_err(|e| InfraError::Internal(e.to_string()))?;
    let code_flow = client.allows_grant("authorization_code");
    v["response_types"] = if code_flow { json!(["code"]) } else { json!([]) };
    if client.has_secret() {
        // RFC 7591 §3.2.1: 0 means the secret does not expire.
        v["client_secret_expires_at"] = json!(0);
    }
    v["registration_client_uri"] = json!(format!("{}/register/{}", base.trim_end_matches('/'), client.client_id));
    Ok(v)
}

/// `POST /register`: consumes the initial access token, creates the client and gives it a
/// registration access token, all in one transaction. The token is checked before the
/// metadata (`meta` is the parse result, passed in unopened) so an unauthenticated caller
/// learns nothing; a request refused for its metadata rolls back and leaves the token usable,
/// since nothing was registered with it.
pub fn register(
    conn: &mut DbConn,
    presented: &str,
    meta: Result<Metadata, ClientError>,
    base: &str,
    address: &str,
    now: i64,
) -> Result<Value, RegistrationError> {
    conn.transaction(|c| {
        if !consume_initial_access_token(c, presented, now)? {
            return Err(RegistrationError::InvalidToken);
        }
        let mut new = meta?.client;
        new.client_id = None;
        new.consent_required = true;
        if new.grant_types.iter().any(|g| g == "client_credentials") {
            // Tokens with no person behind them are for services an operator knows of.
            return Err(ClientError::Metadata(CLIENT_CREDENTIALS_NEEDS_OPERATOR.into()).into());
        }
        let (client, secret) = clients::create(c, new, now).map_err(|e| match e {
            // Random 128-bit ids do not collide; if one ever did, it is the provider's fault.
            ClientError::Exists(id) => ClientError::Infra(InfraError::Internal(format!("client id {id} collided"))),
            e => e,
        })?;
        let registration_token = clients::issue_registration_access_token(c, &client.client_id)?;
        audit::record(
            c,
            Event {
                event: "client.register",
                outcome: "success",
                actor: Some("initial-access-token"),
                client_id: Some(&client.client_id),
                address: Some(address),
                detail: format!("token_endpoint_auth_method {}", client.token_endpoint_auth_method),
                ..Default::default()
            },
            now,
        )?;
        let mut v = client_information(&client, base)?;
        if let Some(secret) = secret {
            v["client_secret"] = json!(secret);
        }
        v["registration_access_token"] = json!(registration_token);
        Ok(v)
    })
}

/// The client a registration access token belongs to. Unknown clients and wrong tokens look
/// the same from outside (RFC 7592 §3: never reveal whether a client exists), including in
/// the work done: a token is hashed either way.
fn authenticate(conn: &mut DbConn, client_id: &str, presented: &str) -> Result<Client, RegistrationError> {
    let client = if client_id.is_empty() || client_id.len() > 100 || presented.len() > MAX_TOKEN_LEN {
        None
    } else {
        clients::get(conn, client_id)?
    };
    match client {
        Some(c) if c.registration_token_matches(presented) => Ok(c),
        Some(_) => Err(RegistrationError::InvalidToken),
        None => {
            std::hint::black_box(sha256_b64(presented.as_bytes()));
            Err(RegistrationError::InvalidToken)
        }
    }
}

/// `GET /register/{client_id}` (RFC 7592 §2.1): the current metadata, without the secret (only
/// its hash is kept) and without a new registration access token (it is not rotated).
pub fn read(conn: &mut DbConn, client_id: &str, presented: &str, base: &str) -> Result<Value, RegistrationError> {
    let client = authenticate(conn, client_id, presented)?;
    Ok(client_information(&client, base)?)
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the metadata. The body must name the
/// client, and may repeat the current secret but not choose a new one; omitted members take
/// their defaults, as the RFC's replace semantics say.
pub fn update(
    conn: &mut DbConn,
    client_id: &str,
    presented: &str,
    meta: Result<Metadata, ClientError>,
    base: &str,
    address: &str,
    now: i64,
) -> Result<Value, RegistrationError> {
    conn.transaction(|c| {
        let current = authenticate(c, client_id, presented)?;
        let meta = meta?;
        if meta.client_id.as_deref() != Some(client_id) {
            return Err(RegistrationError::InvalidRequest("client_id in the body must be this client's".into()));
        }
        if let Some(secret) = &meta.client_secret {
            if !current.secret_matches(secret) {
                return Err(RegistrationError::InvalidRequest("client_secret is not the current secret".into()));
            }
        }
        let new = keep_operator_settings(&current, meta.client)?;
        let updated = clients::replace(c, client_id, new, now)?;
        audit::record(
            c,
            Event {
                event: "client.update",
                outcome: "success",
                actor: Some(client_id),
                client_id: Some(client_id),
                address: Some(address),
                ..Default::default()
            },
            now,
        )?;
        Ok(client_information(&updated, base)?)
    })
}

/// Why a third party's request for `client_credentials` is refused.
const CLIENT_CREDENTIALS_NEEDS_OPERATOR: &str =
    "grant type client_credentials needs an operator's permission (idp clients update --allow-client-credentials)";

/// What a client's own update (RFC 7592) cannot change, whatever its metadata document says:
/// who may use it, how the portal lists it, consent (it stays a third party), the minimum
/// assurance an operator raised (it may ask for more, never less), the `national_id` scope an
/// operator granted, and `client_credentials` without an operator's permission. Enabled/disabled,
/// the resource-server and client-credentials permissions are not part of the metadata at all.
/// `require_pushed_authorization_requests` and `dpop_bound_access_tokens` once on stay on; the
/// FAPI 2.0 profile and the resource URI are an operator's alone.
fn keep_operator_settings(current: &Client, mut new: NewClient) -> Result<NewClient, ClientError> {
    if new.grant_types.iter().any(|g| g == "client_credentials") && !current.client_credentials_allowed {
        return Err(ClientError::Metadata(CLIENT_CREDENTIALS_NEEDS_OPERATOR.into()));
    }
    new.audience = current.audience.clone();
    new.portal = current.portal.clone();
    new.consent_required = true;
    new.client_credentials_allowed = current.client_credentials_allowed;
    new.resource_server = current.resource_server;
    new.resource_uri = current.resource_uri.clone();
    new.fapi2 = current.fapi2;
    // A client may ask to sign its requests, but not stop when it (or an operator) chose to.
    new.require_signed_request_object |= current.require_signed_request_object;
    // Like the minimum assurance: an update may switch these protections on, never off, since
    // an operator's choice and the client's own look the same.
    new.require_pushed_authorization_requests |= current.require_pushed_authorization_requests;
    new.dpop_bound_access_tokens |= current.dpop_bound_access_tokens;
    new.min_acr = match (&current.min_acr, new.min_acr) {
        (Some(held), Some(asked)) if super::acr_satisfies(&asked, held) => Some(asked),
        (Some(held), _) => Some(held.clone()),
        (None, asked) => asked,
    };
    if current.allows_scope("national_id") && !new.scope.iter().any(|s| s == "national_id") {
        new.scope.push("national_id".into());
    }
    Ok(new)
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): removes the client with its consents and
/// refresh tokens; the registration access token dies with it.
pub fn delete(
    conn: &mut DbConn,
    client_id: &str,
    presented: &str,
    address: &str,
    now: i64,
) -> Result<(), RegistrationError> {
    conn.transaction(|c| {
        authenticate(c, client_id, presented)?;
        clients::delete(c, client_id)?;
        audit::record(
            c,
            Event {
                event: "client.delete",
                outcome: "success",
                actor: Some(client_id),
                client_id: Some(client_id),
                address: Some(address),
                ..Default::default()
            },
            now,
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dynamically registered client after an operator's changes.
    fn operated(min_acr: Option<&str>, scope: &str, cc_allowed: bool) -> Client {
        Client::try_from(crate::store::db::models::ClientRow {
            id: "c1".into(),
            name: "App".into(),
            secret_hash: Some("h".into()),
            kind: "confidential".into(),
            redirect_uris: r#"["https://app.example/cb"]"#.into(),
            post_logout_redirect_uris: "[]".into(),
            id_token_alg: "ES256".into(),
            created_at: 0,
            token_endpoint_auth_method: "client_secret_basic".into(),
            grant_types: r#"["authorization_code"]"#.into(),
            scope: scope.into(),
            subject_type: "public".into(),
            consent: "required".into(),
            min_acr: min_acr.map(str::to_string),
            jwks: None,
            jwks_uri: None,
            backchannel_logout_uri: None,
            registration_token_hash: Some("t".into()),
            updated_at: 0,
            audience: "hr-staff".into(),
            portal_category: Some("B.人事資料服務".into()),
            portal_description: None,
            portal_url: Some("https://app.example/".into()),
            disabled_at: None,
            client_credentials_allowed: cc_allowed,
            resource_server: true,
            request_object_signing_alg: None,
            require_signed_request_object: false,
            require_pushed_authorization_requests: true,
            dpop_bound_access_tokens: true,
            fapi2: false,
            resource_uri: Some("https://app.example/api".into()),
        })
        .unwrap()
    }

    #[test]
    fn an_initial_access_token_works_once_and_only_before_its_expiry() {
        let db = crate::store::db::Db::connect("sqlite://:memory:", 1).unwrap();
        db.migrate().unwrap();
        let mut c = db.get().unwrap();
        let issue = |c: &mut DbConn, ttl| issue_initial_access_token(c, Duration::from_secs(ttl), &Actor::cli(), 1_000);
        let t = issue(&mut c, 600).unwrap();
        assert_eq!(t.expires_at, 1_600);
        assert!(!consume_initial_access_token(&mut c, &t.token, 1_600).unwrap(), "dead at expires_at");
        assert!(!consume_initial_access_token(&mut c, "made-up", 1_000).unwrap());
        assert!(consume_initial_access_token(&mut c, &t.token, 1_599).unwrap(), "refusals did not use it up");
        assert!(!consume_initial_access_token(&mut c, &t.token, 1_599).unwrap(), "single use");
        let longest = MAX_INITIAL_ACCESS_TOKEN_TTL.as_secs();
        assert!(issue(&mut c, 0).is_err() && issue(&mut c, longest + 1).is_err());
        assert_eq!(issue(&mut c, longest).unwrap().expires_at, 1_000 + longest as i64);
    }

    #[test]
    fn an_update_keeps_every_operator_setting() {
        let asked = |v: Value| parse_json(v).unwrap().client;
        let full = json!({
            "client_name": "App", "redirect_uris": ["https://app.example/cb"], "scope": "openid profile",
            "default_acr_values": ["loa-1"], "grant_types": ["authorization_code"],
        });
        let current = operated(Some("loa-2"), "openid profile national_id", false);
        let kept = keep_operator_settings(&current, asked(full.clone())).unwrap();
        assert_eq!(kept.audience, clients::Audience::HrStaff);
        assert_eq!(kept.portal, current.portal);
        assert_eq!(kept.min_acr.as_deref(), Some("loa-2"), "a client cannot lower the operator's minimum");
        assert!(kept.scope.iter().any(|s| s == "national_id"), "an operator's grant stays");
        assert!(kept.consent_required && kept.resource_server && !kept.client_credentials_allowed);
        assert!(kept.require_pushed_authorization_requests, "PAR once required stays required");
        assert!(kept.dpop_bound_access_tokens, "DPoP once required stays required");
        assert_eq!(kept.resource_uri.as_deref(), Some("https://app.example/api"), "the operator's resource URI stays");
        let mut profiled = current.clone();
        profiled.fapi2 = true;
        assert!(keep_operator_settings(&profiled, asked(full.clone())).unwrap().fapi2, "the profile stays");
        assert!(
            !keep_operator_settings(
                &current,
                asked(json!({"client_name": "A", "redirect_uris": ["https://app.example/cb"], "fapi2": true}))
            )
            .unwrap()
            .fapi2,
            "nor can a client switch it on"
        );
        let off = json!({"client_name": "A", "redirect_uris": ["https://app.example/cb"],
            "require_pushed_authorization_requests": false, "dpop_bound_access_tokens": false});
        let kept = keep_operator_settings(&current, asked(off)).unwrap();
        assert!(kept.require_pushed_authorization_requests && kept.dpop_bound_access_tokens, "not switched off");
        // Asking for more assurance than the operator set is fine.
        let low = operated(Some("loa-1"), "openid", false);
        let mut more = full.clone();
        more["default_acr_values"] = json!(["loa-2"]);
        assert_eq!(keep_operator_settings(&low, asked(more)).unwrap().min_acr.as_deref(), Some("loa-2"));
        // client_credentials only with the operator's permission.
        let mut cc = full;
        cc["grant_types"] = json!(["authorization_code", "client_credentials"]);
        assert!(matches!(keep_operator_settings(&current, asked(cc.clone())), Err(ClientError::Metadata(_))));
        assert!(keep_operator_settings(&operated(None, "openid", true), asked(cc)).is_ok());
        // Signed request objects, once required, stay required; a client may ask for them.
        let mut signing = operated(None, "openid", false);
        signing.require_signed_request_object = true;
        let plain = json!({ "client_name": "App", "redirect_uris": ["https://app.example/cb"] });
        assert!(keep_operator_settings(&signing, asked(plain.clone())).unwrap().require_signed_request_object);
        let mut ask = plain;
        ask["require_signed_request_object"] = json!(true);
        let unsigned = operated(None, "openid", false);
        assert!(keep_operator_settings(&unsigned, asked(ask)).unwrap().require_signed_request_object);
        assert!(
            !keep_operator_settings(&unsigned, asked(json!({ "client_name": "A", "redirect_uris": [] })))
                .unwrap()
                .require_signed_request_object
        );
    }

    fn parse_json(v: Value) -> Result<Metadata, ClientError> {
        parse(v.to_string().as_bytes())
    }

    #[test]
    fn par_and_dpop_metadata_are_booleans_off_by_default() {
        let base = json!({"client_name": "A", "redirect_uris": ["https://app.example/cb"]});
        let m = parse_json(base.clone()).unwrap().client;
        assert!(!m.require_pushed_authorization_requests && !m.dpop_bound_access_tokens);
        let mut on = base.clone();
        on["require_pushed_authorization_requests"] = json!(true);
        on["dpop_bound_access_tokens"] = json!(true);
        let m = parse_json(on).unwrap().client;
        assert!(m.require_pushed_authorization_requests && m.dpop_bound_access_tokens);
        for key in ["require_pushed_authorization_requests", "dpop_bound_access_tokens"] {
            let mut bad = base.clone();
            bad[key] = json!("yes");
            assert!(matches!(parse_json(bad), Err(ClientError::Metadata(_))), "{key}");
        }
    }

    #[test]
    fn defaults_follow_rfc_7591_and_third_party_policy() {
        let m = parse_json(json!({"client_name": "App", "redirect_uris": ["https://app.example/cb"], "x-unknown": 1}))
            .unwrap();
        assert_eq!(m.client.grant_types, vec!["authorization_code"]);
        assert_eq!(m.client.token_endpoint_auth_method, "client_secret_basic");
        assert!(m.client.consent_required);
        assert!(m.client.scope.iter().any(|s| s == "openid"));
        assert!(!m.client.scope.iter().any(|s| s == "offline_access" || s == "national_id"));
        assert!(m.client_id.is_none());
        assert_eq!(m.client.id_token_alg, "RS256", "OpenID Connect Dynamic Registration §2");
        let es = parse_json(json!({"client_name": "App", "id_token_signed_response_alg": "ES256"})).unwrap();
        assert_eq!(es.client.id_token_alg, "ES256");
    }

    #[test]
    fn scope_acr_and_response_types() {
        let m = parse_json(json!({
            "client_name": "App", "redirect_uris": ["https://app.example/cb"], "scope": "profile  email profile",
            "default_acr_values": ["loa-2", "loa-1"], "response_types": ["code"],
        }))
        .unwrap();
        assert_eq!(m.client.scope, vec!["openid", "profile", "email"]);
        assert_eq!(m.client.min_acr.as_deref(), Some("loa-2"));
        let bad = |v: Value| matches!(parse_json(v), Err(ClientError::Metadata(_)));
        assert!(bad(json!({"client_name": "A", "scope": "openid national_id"})));
        assert!(bad(json!({"client_name": "A", "response_types": ["token"]})));
        assert!(bad(json!({"client_name": "A", "response_types": []})));
        assert!(bad(json!({"client_name": "A", "grant_types": ["implicit"]})));
        assert!(bad(json!({"client_name": "A", "default_acr_values": ["urn:gold"]})));
        assert!(bad(json!({"client_name": "A", "jwks": "nope"})));
        assert!(bad(json!({"client_name": 5})));
        assert!(bad(json!({"redirect_uris": ["https://a.example/"]})));
        assert!(matches!(
            parse_json(json!({"client_name": "A", "redirect_uris": "https://a.example/"})),
            Err(ClientError::RedirectUri(_))
        ));
    }

    #[test]
    fn hostile_bodies_are_refused_not_panicked_on() {
        for body in
            [&b""[..], b"[]", b"null", b"\xff\xfe", b"{\"client_name\": \"a\"", br#"{"client_name": "a\u0000"}"#]
        {
            assert!(parse(body).is_err());
        }
        let deep = "[".repeat(10_000);
        assert!(parse(deep.as_bytes()).is_err());
        let big = format!("{{\"client_name\": \"{}\"}}", "a".repeat(MAX_REQUEST_BYTES));
        assert!(parse(big.as_bytes()).is_err());
        let many: Map<String, Value> = (0..=MAX_MEMBERS).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(parse(Value::Object(many).to_string().as_bytes()).is_err());
        let uris: Vec<String> = (0..=MAX_URIS).map(|i| format!("https://a.example/{i}")).collect();
        assert!(matches!(
            parse_json(json!({"client_name": "A", "redirect_uris": uris})),
            Err(ClientError::RedirectUri(_))
        ));
    }
}
