//! The database side of a person's tokens at the token endpoint, one trip per request: whether
//! the person may still have them ([`super::token_use`]), the claims the ID token carries, and
//! the next refresh token — for a code in one connection, for a refresh in one transaction with
//! the spending of the old token. Every database access is a hop to the blocking pool and, on
//! PostgreSQL, a pool checkout and a network round trip; gathering them here keeps a refresh to
//! one hop instead of five.

use diesel::Connection;
use serde_json::{Map, Value};

use super::authorize::CodeGrant;
use super::claims;
use super::clients::{self, Client};
use super::refresh::{self, Redeem, RefreshGrant};
use super::resource;
use super::subject::subject_for;
use super::token_error::TokenError;
use super::token_use::usable_account;
use crate::audit::{self, Event};
use crate::crypto::DataProtector;
use crate::error::InfraError;
use crate::store::db::DbConn;

/// What the database gave for a person's tokens.
#[derive(Debug)]
pub struct PersonPart {
    /// The person's claims for the ID token (the protocol's own are added by the caller).
    pub id_token_claims: Map<String, Value>,
    /// The claims the `claims` parameter asked for in the ID token, as far as the scopes release them.
    pub requested: Map<String, Value>,
    /// The next refresh token of the family, when one is issued.
    pub refresh_token: Option<String>,
}

/// The refusal when the person behind a grant may no longer have tokens.
fn gone() -> TokenError {
    TokenError::InvalidGrant("the account can no longer sign in".into())
}

/// For a code being redeemed: the person must still be allowed; their claims, with those the
/// `claims` parameter asked for in the ID token; the first refresh token of the family (`next`),
/// if one is issued.
pub fn for_code(
    conn: &mut DbConn,
    protector: &DataProtector,
    client: &Client,
    grant: &CodeGrant,
    next: Option<&RefreshGrant>,
    now: i64,
) -> Result<Result<PersonPart, TokenError>, InfraError> {
    let Some((account, person)) = usable_account(conn, protector, &grant.account_id)? else {
        return Ok(Err(gone()));
    };
    let id_token_claims = claims::for_id_token(conn, &account, &person, &grant.scope)?;
    let requested = if grant.id_token_claims.is_empty() {
        Map::new()
    } else {
        let sub = subject_for(protector, client, &account.id);
        let released = claims::userinfo(conn, &sub, &account, &person, &grant.scope)?;
        super::claims_request::pick(&released, &grant.id_token_claims)
    };
    let refresh_token = next.map(|g| refresh::issue(conn, g, now)).transpose()?;
    Ok(Ok(PersonPart { id_token_claims, requested, refresh_token }))
}

/// What a refresh asks for besides the token: a narrower scope, and the API the access token is
/// for (RFC 8707), both within the token's grant.
pub struct RefreshAsk<'a> {
    pub token: &'a str,
    /// The DPoP key the request proved (RFC 9449), if any.
    pub jkt: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
    /// When the next refresh token expires.
    pub expires_at: i64,
}

/// A refresh that went through: the grant as it is now (scope narrowed, resource settled) and
/// what the database gave for it, the next refresh token included.
#[derive(Debug)]
pub struct Rotated {
    pub grant: RefreshGrant,
    pub part: PersonPart,
}

/// Why the rotation's transaction ends: refused with the token left as it was (rolled back), or
/// the database failing.
enum Abort {
    Refused(TokenError),
    Infra(InfraError),
}

impl From<InfraError> for Abort {
    fn from(e: InfraError) -> Self {
        Abort::Infra(e)
    }
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Abort::Infra(e.into())
    }
}

/// A refresh-token rotation, whole or not at all, in one transaction: the old token is spent
/// (its reuse revokes the family, a token bound to another DPoP key is refused, both audited);
/// then what the request asks of it is settled — a wider scope or another resource is refused
/// and the spend rolled back, so the token stays usable, while reuse detection comes first and
/// cannot be sidestepped by asking for too much; then the person must still be allowed (if not,
/// the token stays spent); then the next token of the family is stored.
pub fn rotate(
    conn: &mut DbConn,
    protector: &DataProtector,
    client: &Client,
    ask: &RefreshAsk<'_>,
    now: i64,
) -> Result<Result<Rotated, TokenError>, InfraError> {
    let outcome = conn.transaction::<_, Abort, _>(|conn| {
        let grant = match refresh::redeem(conn, ask.token, &client.client_id, ask.jkt, now)? {
            Redeem::Ok(g) => g,
            Redeem::Invalid => {
                return Ok(Err(TokenError::InvalidGrant("the refresh token is invalid, expired or revoked".into())))
            }
            Redeem::Reused { family_id: _, account_id } => {
                let detail = "a used refresh token was presented; its family was revoked".into();
                refused(conn, "token.refresh_reuse", "family_revoked", &account_id, client, detail, now)?;
                return Ok(Err(TokenError::InvalidGrant("the refresh token was already used".into())));
            }
            Redeem::WrongKey { account_id } => {
                let detail = "a DPoP-bound refresh token came without a proof of its key".into();
                refused(conn, "token.dpop_refused", "wrong_key", &account_id, client, detail, now)?;
                return Ok(Err(TokenError::InvalidGrant("the refresh token is bound to another DPoP key".into())));
            }
        };
        let scope = refreshed_scope(&grant.scope, ask.scope).map_err(Abort::Refused)?;
        let resource =
            resource::settle(grant.resource.as_deref(), ask.resource, false).map_err(|e| Abort::Refused(e.into()))?;
        if let Some(uri) = &resource {
            if clients::resource_server_for(conn, uri)?.is_none() {
                let e = resource::InvalidTarget("the resource is not an API registered here".into());
                return Err(Abort::Refused(e.into()));
            }
        }
        let Some((account, person)) = usable_account(conn, protector, &grant.account_id)? else {
            return Ok(Err(gone()));
        };
        let id_token_claims = claims::for_id_token(conn, &account, &person, &scope)?;
        let next = RefreshGrant {
            scope,
            expires_at: ask.expires_at,
            // A public client's token is bound to the key it proved: it has no client
            // authentication to protect it (RFC 9449 §5).
            dpop_jkt: if client.public { ask.jkt.map(str::to_string) } else { None },
            resource,
            ..grant
        };
        let refresh_token = Some(refresh::issue(conn, &next, now)?);
        Ok(Ok(Rotated { grant: next, part: PersonPart { id_token_claims, requested: Map::new(), refresh_token } }))
    });
    match outcome {
        Ok(done) => Ok(done),
        Err(Abort::Refused(e)) => Ok(Err(e)),
        Err(Abort::Infra(e)) => Err(e),
    }
}

/// The scope of a refreshed token: the granted one, or a narrower one asked for, never a wider
/// one (RFC 6749 §6).
fn refreshed_scope(granted: &[String], asked: Option<&str>) -> Result<Vec<String>, TokenError> {
    let Some(asked) = asked else { return Ok(granted.to_vec()) };
    let asked: Vec<String> = asked.split(' ').filter(|x| !x.is_empty()).map(str::to_string).collect();
    if asked.iter().any(|a| !granted.contains(a)) {
        return Err(TokenError::InvalidScope("the scope exceeds what was granted".into()));
    }
    Ok(asked)
}

/// The audit record of a refused refresh, in the rotation's transaction.
fn refused(
    conn: &mut DbConn,
    event: &'static str,
    outcome: &'static str,
    account_id: &str,
    client: &Client,
    detail: String,
    now: i64,
) -> Result<(), InfraError> {
    let e = Event {
        event,
        outcome,
        account_id: Some(account_id),
        client_id: Some(&client.client_id),
        detail,
        ..Default::default()
    };
    audit::record(conn, e, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_may_narrow_the_scope_never_widen_it() {
        let granted: Vec<String> = ["openid", "profile", "offline_access"].map(String::from).to_vec();
        assert_eq!(refreshed_scope(&granted, None).unwrap(), granted);
        assert_eq!(refreshed_scope(&granted, Some(" openid  profile ")).unwrap(), ["openid", "profile"]);
        assert!(matches!(refreshed_scope(&granted, Some("openid email")), Err(TokenError::InvalidScope(_))));
    }
}
