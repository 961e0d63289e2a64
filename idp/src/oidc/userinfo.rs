//! The userinfo endpoint (OpenID Connect Core §5.3): which token was presented (RFC 6750 §2,
//! one way only), whether it speaks for a person who may still use it, and the claims its
//! scopes release.

use serde_json::Value;

use super::access::{self, AccessClaims};
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
    #[error(transparent)]
    Server(#[from] InfraError),
}

/// The one token presented, from the `Authorization` header or the form body.
pub fn presented(from_header: Option<String>, from_body: Option<String>) -> Result<String, UserinfoError> {
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(UserinfoError::Twice),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (None, None) => Err(UserinfoError::Missing),
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

/// The claims for an access token.
pub async fn userinfo(state: &AppState, token: &str, now: i64) -> Result<Value, UserinfoError> {
    let claims = access::verify(state, token, now).await?.ok_or(UserinfoError::InvalidToken)?;
    let account_id = account_of(&claims)?;
    let client = state.client_cache.get(state, &claims.client_id).await?.ok_or(UserinfoError::InvalidToken)?;
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
        assert_eq!(presented(Some("a".into()), None).unwrap(), "a");
        assert_eq!(presented(None, Some("b".into())).unwrap(), "b");
        assert!(matches!(presented(Some("a".into()), Some("a".into())), Err(UserinfoError::Twice)));
        assert!(matches!(presented(None, None), Err(UserinfoError::Missing)));
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
