//! Refresh tokens: stored by hash, rotated on every use. A family is everything rotated from one
//! authorization code; presenting an already-used token revokes the whole family, since either
//! the client or an attacker holds a stolen copy (OAuth 2.0 Security BCP §4.14).

use diesel::prelude::*;

use crate::crypto::{random_token, sha256_b64};
use crate::error::InfraError;
use crate::store::db::models::RefreshTokenRow;
use crate::store::db::schema::refresh_tokens;
use crate::store::db::DbConn;

/// What a refresh token carries forward.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub family_id: String,
    pub account_id: String,
    pub client_id: String,
    pub scope: Vec<String>,
    pub sid: String,
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    pub expires_at: i64,
}

impl From<RefreshTokenRow> for RefreshGrant {
    fn from(r: RefreshTokenRow) -> Self {
        Self {
            family_id: r.family_id,
            account_id: r.account_id,
            client_id: r.client_id,
            scope: r.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
            sid: r.sid,
            auth_time: r.auth_time,
            acr: r.acr,
            amr: serde_json::from_str(&r.amr).unwrap_or_default(),
            expires_at: r.expires_at,
        }
    }
}

/// Stores a new refresh token of a family; returns the token (shown to the client only).
pub fn issue(conn: &mut DbConn, grant: &RefreshGrant, now: i64) -> Result<String, InfraError> {
    let token = random_token(32);
    let row = RefreshTokenRow {
        id: sha256_b64(token.as_bytes()),
        family_id: grant.family_id.clone(),
        account_id: grant.account_id.clone(),
        client_id: grant.client_id.clone(),
        scope: grant.scope.join(" "),
        sid: grant.sid.clone(),
        auth_time: grant.auth_time,
        acr: grant.acr.clone(),
        amr: serde_json::to_string(&grant.amr).map_err(|e| InfraError::Internal(e.to_string()))?,
        created_at: now,
        expires_at: grant.expires_at,
        used_at: None,
        revoked_at: None,
    };
    diesel::insert_into(refresh_tokens::table).values(&row).execute(conn)?;
    Ok(token)
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Redeem {
    /// Valid and now spent; the caller issues the next one of the family.
    Ok(RefreshGrant),
    /// Unknown, expired, revoked, or issued to another client.
    Invalid,
    /// Already used: the family has been revoked.
    Reused { family_id: String, account_id: String },
}

/// Spends a refresh token, atomically: two concurrent uses cannot both succeed, and the loser
/// is treated as reuse.
pub fn redeem(conn: &mut DbConn, token: &str, client_id: &str, now: i64) -> Result<Redeem, InfraError> {
    let id = sha256_b64(token.as_bytes());
    conn.transaction(|conn| {
        let row: Option<RefreshTokenRow> =
            refresh_tokens::table.find(&id).select(RefreshTokenRow::as_select()).get_result(conn).optional()?;
        let Some(row) = row else { return Ok(Redeem::Invalid) };
        if row.client_id != client_id || row.revoked_at.is_some() || row.expires_at <= now {
            return Ok(Redeem::Invalid);
        }
        let spent = diesel::update(refresh_tokens::table.find(&id).filter(refresh_tokens::used_at.is_null()))
            .set(refresh_tokens::used_at.eq(now))
            .execute(conn)?;
        if spent != 1 {
            revoke_family(conn, &row.family_id, now)?;
            return Ok(Redeem::Reused { family_id: row.family_id, account_id: row.account_id });
        }
        Ok(Redeem::Ok(row.into()))
    })
}

/// Revokes every token of a family.
pub fn revoke_family(conn: &mut DbConn, family_id: &str, now: i64) -> Result<usize, InfraError> {
    Ok(diesel::update(refresh_tokens::table.filter(refresh_tokens::family_id.eq(family_id)))
        .filter(refresh_tokens::revoked_at.is_null())
        .set(refresh_tokens::revoked_at.eq(now))
        .execute(conn)?)
}

/// Revokes a family and returns the account it belonged to (`None` when it has no tokens).
pub fn revoke_family_owner(conn: &mut DbConn, family_id: &str, now: i64) -> Result<Option<String>, InfraError> {
    revoke_family(conn, family_id, now)?;
    Ok(refresh_tokens::table
        .filter(refresh_tokens::family_id.eq(family_id))
        .select(refresh_tokens::account_id)
        .first(conn)
        .optional()?)
}

/// Looks a refresh token up without spending it (introspection, revocation).
pub fn find(conn: &mut DbConn, token: &str) -> Result<Option<RefreshTokenRow>, InfraError> {
    Ok(refresh_tokens::table
        .find(sha256_b64(token.as_bytes()))
        .select(RefreshTokenRow::as_select())
        .first(conn)
        .optional()?)
}

/// Revokes every refresh token of an account (separation, password reset).
pub fn revoke_account(conn: &mut DbConn, account_id: &str, now: i64) -> Result<usize, InfraError> {
    Ok(diesel::update(refresh_tokens::table.filter(refresh_tokens::account_id.eq(account_id)))
        .filter(refresh_tokens::revoked_at.is_null())
        .set(refresh_tokens::revoked_at.eq(now))
        .execute(conn)?)
}
