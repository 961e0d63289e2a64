//! Access tokens as signed JWTs (RFC 9068, `typ: at+jwt`), so APIs can check them locally, plus
//! a revocation list in the ephemeral store (checked by userinfo and introspection) for tokens
//! revoked before they expire.
//!
//! An access token carries nothing that links one person across clients: its `sub` is the
//! client's own subject (pairwise where the client is), and the account and SSO session behind
//! it travel only inside `ctx`, sealed (AES-256-GCM, a fresh nonce each time) with the server's
//! data-protection key. Two pairwise clients comparing their tokens find nothing in common but
//! the issuer and the times; the provider opens `ctx` when introspection, userinfo or
//! revocation need the account, with no lookup table to keep.

use serde::{Deserialize, Serialize};

use crate::error::InfraError;
use crate::state::AppState;
use crate::store::ephemeral::Key;

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
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acr: Option<String>,
    /// The DPoP key the token is bound to (RFC 9449 §6.1); a bound token is accepted only with
    /// a proof signed by that key.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cnf: Option<super::dpop::Confirmation>,
    /// The account and session, sealed; set by [`sign`], opened by [`verify`].
    #[serde(skip_serializing_if = "Option::is_none", default)]
    ctx: Option<String>,
    /// The account behind the token (absent for client_credentials). Never in the JWT in clear.
    #[serde(skip)]
    pub account: Option<String>,
    /// The SSO session the token was issued in. Never in the JWT in clear.
    #[serde(skip)]
    pub sid: Option<String>,
}

/// What `ctx` seals.
#[derive(Serialize, Deserialize)]
struct Context {
    /// Purpose tag, so a value sealed for another use can never pass for a token context.
    p: String,
    a: String,
    s: Option<String>,
}

const CONTEXT_PURPOSE: &str = "access-token";

impl AccessClaims {
    /// The claims of a new token. `account` and `sid` are sealed into `ctx` when it is signed.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        iss: String,
        sub: String,
        client_id: String,
        scope: String,
        jti: String,
        iat: i64,
        exp: i64,
        person: Option<(String, String, i64, String)>,
    ) -> Self {
        let (account, sid, auth_time, acr) = match person {
            Some((a, s, t, acr)) => (Some(a), Some(s), Some(t), Some(acr)),
            None => (None, None, None, None),
        };
        Self {
            aud: iss.clone(),
            iss,
            sub,
            client_id,
            scope,
            jti,
            iat,
            exp,
            auth_time,
            acr,
            cnf: None,
            ctx: None,
            account,
            sid,
        }
    }

    pub fn scopes(&self) -> Vec<String> {
        self.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect()
    }
}

/// Signs an access token with the key active at its issue time (`iat`).
pub fn sign(state: &AppState, claims: &AccessClaims) -> Result<String, InfraError> {
    let mut sealed = claims.clone();
    sealed.ctx = claims.account.as_ref().map(|a| {
        let context = Context { p: CONTEXT_PURPOSE.into(), a: a.clone(), s: claims.sid.clone() };
        // A struct of strings always serializes.
        state.protector.seal(serde_json::to_string(&context).unwrap_or_default().as_bytes())
    });
    state.keys.sign("ES256", Some("at+jwt"), &sealed, claims.iat)
}

/// Opens a token's `ctx`: `Some((account, sid))`, or `None` if it is not one this server sealed.
fn open_context(state: &AppState, ctx: &str) -> Option<(String, Option<String>)> {
    let plain = state.protector.open(ctx).ok()?;
    let c: Context = serde_json::from_slice(&plain).ok()?;
    (c.p == CONTEXT_PURPOSE).then_some((c.a, c.s))
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
    let Some(value) = state.keys.verify_own(token, now) else { return Ok(None) };
    let Ok(mut claims) = serde_json::from_value::<AccessClaims>(value) else { return Ok(None) };
    if claims.iss != state.config.issuer || claims.exp <= now {
        return Ok(None);
    }
    if let Some(ctx) = claims.ctx.take() {
        let Some((account, sid)) = open_context(state, &ctx) else { return Ok(None) };
        (claims.account, claims.sid) = (Some(account), sid);
    }
    if state.eph.get(&Key::revoked_access_token(&claims.jti)).await?.is_some() {
        return Ok(None);
    }
    Ok(Some(claims))
}

/// Revokes an access token until it would have expired anyway.
pub async fn revoke(state: &AppState, jti: &str, exp: i64, now: i64) -> Result<(), InfraError> {
    let remaining = (exp - now).max(1) as u64;
    state.eph.put(&Key::revoked_access_token(jti), b"1", std::time::Duration::from_secs(remaining)).await?;
    Ok(())
}
