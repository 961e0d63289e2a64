//! The userinfo endpoint (OpenID Connect Core §5.3): which token was presented (RFC 6750 §2,
//! one way only), whether it speaks for a person who may still use it, and the claims its
//! scopes release.

use serde_json::Value;

use super::access::{self, AccessClaims};
use super::dpop::{self, DpopError};
use super::{claims, subject::subject_for, token_use};
use crate::error::InfraError;
use crate::state::AppState;

/// Why userinfo answers with an error instead of claims.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    #[error("a bearer token is required")]
    Missing,
    #[error("send the token one way only")]
    Twice,
    #[error("the access token is invalid or expired")]
    InvalidToken,
    #[error("this token does not represent a person")]
    NotAPerson,
    #[error("the openid scope is required")]
    NoOpenid,
    /// A DPoP-bound token whose proof is missing or wrong (RFC 9449 §7).
    #[error("{0}")]
    Dpop(DpopError),
    #[error(transparent)]
    Server(#[from] InfraError),
}

impl From<DpopError> for UserinfoError {
    fn from(e: DpopError) -> Self {
        match e {
            DpopError::Infra(e) => UserinfoError::Server(e),
            e => UserinfoError::Dpop(e),
        }
    }
}

/// An access token as it came: by which `Authorization` scheme, or in the form body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub token: String,
    /// Sent as `Authorization: DPoP …` (RFC 9449 §7.1) rather than `Bearer` or in the body.
    pub dpop_scheme: bool,
}

/// The one token presented, from the `Authorization` header (`Bearer` or `DPoP`, with whether
/// it was `DPoP`) or the form body.
pub fn presented(from_header: Option<(bool, String)>, from_body: Option<String>) -> Result<Presented, UserinfoError> {
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(UserinfoError::Twice),
        (Some((dpop_scheme, token)), None) => Ok(Presented { token, dpop_scheme }),
        (None, Some(token)) => Ok(Presented { token, dpop_scheme: false }),
        (None, None) => Err(UserinfoError::Missing),
    }
}

/// How the binding of a token decides its presentation: a DPoP-bound token only with the
/// `DPoP` scheme (and then a proof of its key, checked by the caller), an unbound one never
/// with it (RFC 9449 §7.1). `Some(jkt)`: the key the proof must be signed by.
pub fn required_key<'a>(claims: &'a AccessClaims, p: &Presented) -> Result<Option<&'a str>, UserinfoError> {
    match (&claims.cnf, p.dpop_scheme) {
        (Some(cnf), true) => Ok(Some(cnf.jkt.as_str())),
        (None, false) => Ok(None),
        (Some(_), false) => {
            Err(DpopError::Invalid("a DPoP-bound token needs the DPoP scheme and a proof".into()).into())
        }
        (None, true) => Err(UserinfoError::InvalidToken),
    }
}

/// The account a verified access token speaks for, if it may read userinfo at all.
pub fn account_of(claims: &AccessClaims) -> Result<String, UserinfoError> {
    // A client_credentials token speaks for no person.
    let account = claims.account.clone().ok_or(UserinfoError::NotAPerson)?;
    if !claims.scopes().iter().any(|s| s == "openid") {
        return Err(UserinfoError::NoOpenid);
    }
    Ok(account)
}

/// The claims for an access token; `proofs` are the request's `DPoP` headers and `method` its
/// HTTP method, for a DPoP-bound token.
pub async fn userinfo(
    state: &AppState,
    presented: &Presented,
    proofs: &[String],
    method: &str,
    now: i64,
) -> Result<Value, UserinfoError> {
    let token = presented.token.as_str();
    let claims = access::verify(state, token, now).await?.ok_or(UserinfoError::InvalidToken)?;
    // A token asked for one API (RFC 8707 `resource`) is that API's, not a key to userinfo.
    if claims.aud != state.config.issuer {
        return Err(UserinfoError::InvalidToken);
    }
    if let Some(jkt) = required_key(&claims, presented)? {
        let proof = dpop::single(proofs)?.ok_or_else(|| DpopError::Invalid("a DPoP proof is required".into()))?;
        let url = dpop::endpoint_url(state, "/userinfo");
        let expect = dpop::Expect { method, url: &url, access_token: Some(token) };
        if dpop::verify(state, proof, &expect, now).await? != jkt {
            return Err(DpopError::Invalid("the DPoP proof is signed by another key than the token's".into()).into());
        }
    }
    let account_id = account_of(&claims)?;
    let client = state.client_cache.get(&state.db, &claims.client_id).await?.ok_or(UserinfoError::InvalidToken)?;
    let protector = state.protector.clone();
    let scope = claims.scopes();
    state
        .db
        .run(move |c| -> Result<_, InfraError> {
            let Some((a, p)) = token_use::usable_account(c, &protector, &account_id)? else { return Ok(None) };
            let sub = subject_for(&protector, &client, &a.id);
            claims::userinfo(c, &sub, &a, &p, &scope).map(Some)
        })
        .await?
        .ok_or(UserinfoError::InvalidToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_token_is_presented() {
        assert_eq!(
            presented(Some((false, "a".into())), None).unwrap(),
            Presented { token: "a".into(), dpop_scheme: false }
        );
        assert_eq!(
            presented(Some((true, "a".into())), None).unwrap(),
            Presented { token: "a".into(), dpop_scheme: true }
        );
        assert_eq!(presented(None, Some("b".into())).unwrap(), Presented { token: "b".into(), dpop_scheme: false });
        assert!(matches!(presented(Some((false, "a".into())), Some("a".into())), Err(UserinfoError::Twice)));
        assert!(matches!(presented(None, None), Err(UserinfoError::Missing)));
    }

    #[test]
    fn a_bound_token_goes_only_with_the_dpop_scheme_and_an_unbound_one_never() {
        let mut bound = claims("openid", true);
        bound.cnf = Some(dpop::Confirmation { jkt: "k".into() });
        let unbound = claims("openid", true);
        let (dpop, bearer) =
            (Presented { token: "t".into(), dpop_scheme: true }, Presented { token: "t".into(), dpop_scheme: false });
        assert_eq!(required_key(&bound, &dpop).unwrap(), Some("k"));
        assert!(
            matches!(required_key(&bound, &bearer), Err(UserinfoError::Dpop(DpopError::Invalid(_)))),
            "a bound token as Bearer"
        );
        assert_eq!(required_key(&unbound, &bearer).unwrap(), None);
        assert!(matches!(required_key(&unbound, &dpop), Err(UserinfoError::InvalidToken)), "a bearer token as DPoP");
    }

    fn claims(scope: &str, person: bool) -> AccessClaims {
        let who = person.then(|| ("acct-1".to_string(), "sid-1".to_string(), 0, "loa-1".to_string()));
        AccessClaims::new("https://idp".into(), "sub".into(), "rp".into(), scope.into(), "j".into(), 0, 60, who)
    }

    #[test]
    fn only_a_persons_openid_token_reads_userinfo() {
        assert_eq!(account_of(&claims("openid profile", true)).unwrap(), "acct-1");
        assert!(matches!(account_of(&claims("openid", false)), Err(UserinfoError::NotAPerson)));
        assert!(matches!(account_of(&claims("profile email", true)), Err(UserinfoError::NoOpenid)));
        assert!(matches!(account_of(&claims("openidx", true)), Err(UserinfoError::NoOpenid)), "whole words only");
    }
}
