//! Access tokens as signed JWTs (RFC 9068, `typ: at+jwt`), so APIs can check them locally, plus
//! a revocation list in the ephemeral store (checked by userinfo and introspection) for tokens
//! revoked before they expire.

use serde::{Deserialize, Serialize};

use crate::error::InfraError;
use crate::state::AppState;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The person's subject as the client sees it, or the client itself for client_credentials.
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// The account behind the token (absent for client_credentials); internal, opaque.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
}

impl AccessClaims {
    pub fn scopes(&self) -> Vec<String> {
        self.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect()
    }
}

fn revoked_key(jti: &str) -> String {
    format!("revoked:{jti}")
}

/// Signs an access token.
pub fn sign(state: &AppState, claims: &AccessClaims) -> Result<String, InfraError> {
    state.keys.sign("ES256", Some("at+jwt"), claims)
}

/// Verifies an access token of this provider: signature, type, issuer, expiry and the
/// revocation list. `None` for anything else.
pub async fn verify(state: &AppState, token: &str, now: i64) -> Result<Option<AccessClaims>, InfraError> {
    if token.len() > 4096 {
        return Ok(None);
    }
    let Some(header) = jsonwebtoken::decode_header(token).ok() else { return Ok(None) };
    if header.typ.as_deref() != Some("at+jwt") {
        return Ok(None);
    }
    let Some(value) = state.keys.verify_own(token) else { return Ok(None) };
    let Ok(claims) = serde_json::from_value::<AccessClaims>(value) else { return Ok(None) };
    if claims.iss != state.config.issuer || claims.exp <= now {
        return Ok(None);
    }
    if state.eph.get(&revoked_key(&claims.jti)).await?.is_some() {
        return Ok(None);
    }
    Ok(Some(claims))
}

/// Revokes an access token until it would have expired anyway.
pub async fn revoke(state: &AppState, jti: &str, exp: i64, now: i64) -> Result<(), InfraError> {
    let remaining = (exp - now).max(1) as u64;
    state.eph.put(&revoked_key(jti), b"1", std::time::Duration::from_secs(remaining)).await?;
    Ok(())
}
