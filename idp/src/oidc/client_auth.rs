//! Client authentication at the token, introspection and revocation endpoints:
//! `client_secret_basic`, `client_secret_post`, `private_key_jwt` (RFC 7523, with `jti` replay
//! refused) and `none` for public clients. Exactly one method per request.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::clients::{Client, SecretMatch};
use super::params::Params;
use crate::error::InfraError;
use crate::state::AppState;

/// The assertion type of `private_key_jwt`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest a client assertion may live, in seconds.
const MAX_ASSERTION_LIFETIME: i64 = 600;

/// Verifies a JWT signed with one of `jwks` (the header's `kid` picks it when given), for
/// `private_key_jwt` assertions and signed request objects alike; `None` when no key verifies it
/// under `validation`.
pub fn verify_with<T: serde::de::DeserializeOwned>(
    jwks: &JwkSet,
    token: &str,
    kid: Option<&String>,
    validation: &Validation,
) -> Option<T> {
    jwks.keys
        .iter()
        .filter(|k| kid.is_none() || k.common.key_id.as_ref() == kid)
        .filter_map(|k| DecodingKey::from_jwk(k).ok())
        .find_map(|k| jsonwebtoken::decode::<T>(token, &k, validation).ok())
        .map(|d| d.claims)
}

/// Why client authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{description}")]
    InvalidClient { description: String, basic: bool },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Credentials from an `Authorization: Basic` header, already decoded; `Err` if malformed.
pub type BasicCredentials = Option<Result<(String, String), ()>>;

fn invalid(d: &str, basic: bool) -> ClientAuthError {
    ClientAuthError::InvalidClient { description: d.into(), basic }
}

/// Authenticates the client of a token, introspection or revocation request.
pub async fn authenticate(
    state: &AppState,
    params: &Params,
    basic: BasicCredentials,
    endpoint: &str,
    now: i64,
) -> Result<Arc<Client>, ClientAuthError> {
    let get = |n: &str| params.get(n).map_err(|e| ClientAuthError::InvalidRequest(e.to_string()));
    let body_id = get("client_id")?;
    let body_secret = get("client_secret")?;
    let assertion_type = get("client_assertion_type")?;
    let assertion = get("client_assertion")?;
    let methods = usize::from(basic.is_some()) + usize::from(body_secret.is_some()) + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(ClientAuthError::InvalidRequest("use one client authentication method only".into()));
    }
    if let Some(assertion) = assertion {
        if assertion_type != Some(JWT_BEARER) {
            return Err(ClientAuthError::InvalidRequest("client_assertion_type must be jwt-bearer".into()));
        }
        return private_key_jwt(state, assertion, body_id, endpoint, now).await;
    }
    let (client_id, secret, basic_used) = match basic {
        Some(Err(())) => return Err(invalid("the Authorization header is malformed", true)),
        Some(Ok((id, secret))) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(ClientAuthError::InvalidRequest(
                    "client_id does not match the Authorization header".into(),
                ));
            }
            (id, Some(secret), true)
        }
        None => match body_id {
            Some(id) => (id.to_string(), body_secret.map(str::to_string), false),
            None => return Err(invalid("client authentication is required", false)),
        },
    };
    let Some(client) = state.client_cache.get(&state.db, &client_id).await?.filter(|c| !c.disabled) else {
        return Err(invalid(WRONG, basic_used));
    };
    match (client.token_endpoint_auth_method.as_str(), secret) {
        ("none", None) => Ok(client),
        ("client_secret_basic" | "client_secret_post", Some(s)) => {
            client_secret(state, client, &s, now).await?.ok_or_else(|| invalid(WRONG, basic_used))
        }
        _ => Err(invalid(WRONG, basic_used)),
    }
}

const WRONG: &str = "unknown client or wrong credentials";

/// Checks a client secret. The current secret of the cached client is enough. Anything else is
/// decided by the database, since the cached copy may predate a rotation made on another node
/// or by the CLI: a secret it does not know may be the new one, and a replaced one may have
/// been cut short. So the replaced secret of a rotation with overlap stops at its time on every
/// node, and a new one works on every node at once.
async fn client_secret(
    state: &AppState,
    cached: Arc<Client>,
    presented: &str,
    now: i64,
) -> Result<Option<Arc<Client>>, InfraError> {
    if cached.check_secret(presented, now) == SecretMatch::Current {
        return Ok(Some(cached));
    }
    let fresh = state.client_cache.load(&state.db, &cached.client_id).await?.filter(|c| !c.disabled);
    Ok(match fresh {
        Some(c) => match c.check_secret(presented, now) {
            SecretMatch::Current => Some(c),
            SecretMatch::Previous { until } => {
                tracing::info!(client = %c.client_id, until, "client authenticated with its replaced secret");
                Some(c)
            }
            SecretMatch::No => None,
        },
        None => None,
    })
}

#[derive(serde::Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    exp: i64,
    iat: Option<i64>,
    jti: Option<String>,
}

/// Clock skew forgiven on an assertion's `exp`, as between two servers' clocks.
const ASSERTION_LEEWAY: i64 = 30;

/// Whether an assertion expiring at `exp` is past it at `now`, skew forgiven: it is still
/// accepted in the second `exp + ASSERTION_LEEWAY`, and refused from the next one.
fn expired(exp: i64, now: i64) -> bool {
    exp + ASSERTION_LEEWAY < now
}

async fn private_key_jwt(
    state: &AppState,
    assertion: &str,
    body_id: Option<&str>,
    endpoint: &str,
    now: i64,
) -> Result<Arc<Client>, ClientAuthError> {
    let bad = |d: &str| invalid(d, false);
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| bad("client_assertion is not a JWT"))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256) {
        return Err(bad("client_assertion algorithm is not allowed"));
    }
    // The issuer names the client; read it before verifying to find the keys.
    let unverified: AssertionClaims = {
        let mut v = Validation::new(header.alg);
        v.insecure_disable_signature_validation();
        v.validate_aud = false;
        v.validate_exp = false;
        jsonwebtoken::decode(assertion, &DecodingKey::from_secret(&[]), &v)
            .map_err(|_| bad("client_assertion claims are malformed"))?
            .claims
    };
    if body_id.is_some_and(|b| b != unverified.iss) {
        return Err(ClientAuthError::InvalidRequest("client_id does not match the assertion".into()));
    }
    let Some(client) = state.client_cache.get(&state.db, &unverified.iss).await?.filter(|c| !c.disabled) else {
        return Err(bad(WRONG));
    };
    if client.token_endpoint_auth_method != "private_key_jwt" {
        return Err(bad("this client does not use private_key_jwt"));
    }
    let jwks = state
        .client_cache
        .jwks_for(&state.client_http, &client)
        .await
        .ok_or_else(|| bad("the client's keys are unavailable"))?;
    let base = state.config.base();
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[client.client_id.as_str()]);
    if client.fapi2 {
        // FAPI 2.0 Security Profile §5.3.2.1: the issuer identifier, and nothing else, so an
        // assertion made for one endpoint (or another server) cannot be replayed elsewhere.
        validation.set_audience(std::slice::from_ref(&state.config.issuer));
    } else {
        validation.set_audience(&[
            base.to_string(),
            state.config.issuer.clone(),
            format!("{base}{endpoint}"),
            format!("{base}/token"),
        ]);
    }
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    // Expiry is checked below against the time this request is handled at, not the library's
    // own reading of the clock.
    validation.validate_exp = false;
    let verified = verify_with::<AssertionClaims>(&jwks, assertion, header.kid.as_ref(), &validation)
        .filter(|c| !expired(c.exp, now))
        .ok_or_else(|| bad("client_assertion signature, audience or expiry is invalid"))?;
    if verified.sub != client.client_id {
        return Err(bad("client_assertion sub must be the client id"));
    }
    // Measured from `iat` when given, so an assertion made to last an hour is refused even in its
    // last minutes; never from later than now, so a future `iat` cannot stretch it.
    let issued = verified.iat.map_or(now, |iat| iat.min(now));
    if verified.exp - issued > MAX_ASSERTION_LIFETIME {
        return Err(bad("client_assertion lives too long"));
    }
    let jti = verified
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| bad("client_assertion jti is required"))?;
    // Replay: a jti may be used once while its assertion is valid.
    let key = crate::store::ephemeral::Key::client_assertion(&client.client_id, &jti);
    let seen = state
        .eph
        .incr(&key, Duration::from_secs((verified.exp - now).max(1) as u64 + 60))
        .await
        .map_err(InfraError::from)?;
    if seen > 1 {
        return Err(bad("client_assertion jti was already used"));
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assertion_is_accepted_through_the_leeway_second_and_refused_the_next() {
        assert!(!expired(1_000, 999));
        assert!(!expired(1_000, 1_000));
        assert!(!expired(1_000, 1_000 + ASSERTION_LEEWAY), "skew forgiven to the last second");
        assert!(expired(1_000, 1_000 + ASSERTION_LEEWAY + 1));
    }
}
