//! The token endpoint: client authentication and the authorization-code exchange.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::authorize::{code_key, CodeGrant};
use super::clients::{self, Client};
use super::params::Params;
use crate::accounts::{self, PersonStatus};
use crate::crypto::{constant_time_eq, random_token, sha256_b64};
use crate::error::{now, InfraError};
use crate::state::AppState;

/// An OAuth error of the token endpoint (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    #[error("invalid_client: {description}")]
    InvalidClient { description: String, basic: bool },
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error(transparent)]
    Server(#[from] InfraError),
}

impl TokenError {
    /// The RFC 6749 error code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient { .. } => "invalid_client",
            TokenError::InvalidGrant(_) => "invalid_grant",
            TokenError::UnauthorizedClient(_) => "unauthorized_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::Server(_) => "server_error",
        }
    }
}

/// What an access token stands for; stored under the token's hash until it expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessGrant {
    pub account_id: String,
    pub client_id: String,
    pub scope: Vec<String>,
    pub sid: String,
    pub exp: i64,
}

/// The store key of an access token.
pub fn access_key(token: &str) -> String {
    format!("at:{}", sha256_b64(token.as_bytes()))
}

/// Credentials from an `Authorization: Basic` header, already decoded; `Err` if malformed.
pub type BasicCredentials = Option<Result<(String, String), ()>>;

/// Authenticates the client by `client_secret_basic`, `client_secret_post` or, for public
/// clients, `none`. Exactly one method may be used.
pub async fn authenticate_client(
    state: &AppState,
    params: &Params,
    basic: BasicCredentials,
) -> Result<Client, TokenError> {
    let invalid = |d: &str, basic: bool| TokenError::InvalidClient { description: d.into(), basic };
    let body_id = params.get("client_id").map_err(|e| TokenError::InvalidRequest(e.to_string()))?;
    let body_secret = params.get("client_secret").map_err(|e| TokenError::InvalidRequest(e.to_string()))?;
    let (client_id, secret, basic_used) = match basic {
        Some(Err(())) => return Err(invalid("the Authorization header is malformed", true)),
        Some(Ok((id, secret))) => {
            if body_secret.is_some() {
                return Err(TokenError::InvalidRequest("use one client authentication method only".into()));
            }
            if body_id.is_some_and(|b| b != id) {
                return Err(TokenError::InvalidRequest("client_id does not match the Authorization header".into()));
            }
            (id, Some(secret), true)
        }
        None => match body_id {
            Some(id) => (id.to_string(), body_secret.map(str::to_string), false),
            None => return Err(invalid("client authentication is required", false)),
        },
    };
    let id = client_id.clone();
    let client = state.db.run(move |c| clients::get(c, &id)).await?;
    let Some(client) = client else {
        return Err(invalid("unknown client or wrong secret", basic_used));
    };
    match (client.public, secret) {
        (true, None) => Ok(client),
        (true, Some(_)) => Err(invalid("public clients have no secret", basic_used)),
        (false, Some(s)) if client.secret_matches(&s) => Ok(client),
        (false, _) => Err(invalid("unknown client or wrong secret", basic_used)),
    }
}

/// Handles a token request.
pub async fn exchange(state: &AppState, params: &Params, basic: BasicCredentials) -> Result<Value, TokenError> {
    if let Some(dup) = params.first_duplicate() {
        return Err(TokenError::InvalidRequest(format!("parameter `{dup}` is repeated")));
    }
    let grant_type = params.get("grant_type").ok().flatten();
    let client = authenticate_client(state, params, basic).await?;
    match grant_type {
        None => Err(TokenError::InvalidRequest("grant_type is missing".into())),
        Some("authorization_code") => authorization_code(state, params, &client).await,
        Some(_) => Err(TokenError::UnsupportedGrantType),
    }
}

async fn authorization_code(state: &AppState, params: &Params, client: &Client) -> Result<Value, TokenError> {
    let get = |n: &str| params.get(n).ok().flatten();
    let code = get("code").ok_or_else(|| TokenError::InvalidRequest("code is missing".into()))?;
    let redirect_uri =
        get("redirect_uri").ok_or_else(|| TokenError::InvalidRequest("redirect_uri is missing".into()))?;
    // Taken atomically: a second redemption, here or on another node, finds nothing.
    let grant: CodeGrant = state
        .eph
        .take_json(&code_key(code))
        .await
        .map_err(InfraError::from)?
        .ok_or_else(|| TokenError::InvalidGrant("the code is invalid, expired or already used".into()))?;
    if grant.client_id != client.client_id {
        return Err(TokenError::InvalidGrant("the code was issued to another client".into()));
    }
    if grant.redirect_uri != redirect_uri {
        return Err(TokenError::InvalidGrant("redirect_uri does not match the authorization request".into()));
    }
    match (&grant.code_challenge, get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            let well_formed = (43..=128).contains(&verifier.len());
            if !well_formed || !constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
                return Err(TokenError::InvalidGrant("code_verifier does not match the code_challenge".into()));
            }
        }
        (Some(_), None) => return Err(TokenError::InvalidGrant("code_verifier is missing".into())),
        (None, Some(_)) => {
            return Err(TokenError::InvalidGrant("no code_challenge was sent with the authorization request".into()))
        }
        (None, None) => {}
    }
    let account_id = grant.account_id.clone();
    let protector = state.protector.clone();
    let person = state
        .db
        .run(move |c| -> Result<_, InfraError> {
            let Some(account) = accounts::account_by_id(c, &account_id)? else { return Ok(None) };
            accounts::person_by_id(c, &protector, &account.person_id)
        })
        .await?;
    if !person.is_some_and(|p| p.status == PersonStatus::Active) {
        return Err(TokenError::InvalidGrant("the account can no longer sign in".into()));
    }
    issue_tokens(state, client, &grant).await
}

/// Issues the access token and ID token for a redeemed code.
async fn issue_tokens(state: &AppState, client: &Client, grant: &CodeGrant) -> Result<Value, TokenError> {
    let now = now();
    let at_ttl = state.config.tokens.access_token_ttl.as_secs() as i64;
    let access_token = random_token(32);
    let access = AccessGrant {
        account_id: grant.account_id.clone(),
        client_id: client.client_id.clone(),
        scope: grant.scope.clone(),
        sid: grant.sid.clone(),
        exp: now + at_ttl,
    };
    state
        .eph
        .put_json(&access_key(&access_token), &access, state.config.tokens.access_token_ttl)
        .await
        .map_err(InfraError::from)?;
    let digest = Sha256::digest(access_token.as_bytes());
    let mut claims = json!({
        "iss": state.config.issuer,
        "sub": grant.account_id,
        "aud": client.client_id,
        "azp": client.client_id,
        "iat": now,
        "exp": now + state.config.tokens.id_token_ttl.as_secs() as i64,
        "auth_time": grant.auth_time,
        "acr": grant.acr,
        "amr": grant.amr,
        "sid": grant.sid,
        "at_hash": URL_SAFE_NO_PAD.encode(&digest[..16]),
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    let id_token = state.keys.sign(&client.id_token_signed_response_alg, Some("JWT"), &claims)?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": at_ttl,
        "id_token": id_token,
        "scope": grant.scope.join(" "),
    }))
}
