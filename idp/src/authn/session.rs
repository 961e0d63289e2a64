//! SSO sessions: what the `idp_session` cookie points at. Stored in the database (by the hash
//! of the cookie value) so that every node sees them and a restart keeps them.

use diesel::prelude::*;

use crate::crypto::{random_token, sha256_b64};
use crate::error::InfraError;
use crate::store::db::models::SessionRow;
use crate::store::db::schema::sessions;
use crate::store::db::DbConn;

/// A live SSO session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The public session id (`sid` claim); not the cookie value.
    pub sid: String,
    pub account_id: String,
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    pub expires_at: i64,
    /// For a session opened with an agency card: the agency it acts for.
    pub acting_agency: Option<String>,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Self {
            sid: r.sid,
            account_id: r.account_id,
            auth_time: r.auth_time,
            acr: r.acr,
            amr: serde_json::from_str(&r.amr).unwrap_or_default(),
            expires_at: r.expires_at,
            acting_agency: r.acting_agency,
        }
    }
}

/// Opens a session; returns the cookie value (shown to the browser only) and the session.
pub fn create(
    conn: &mut DbConn,
    account_id: &str,
    acr: &str,
    amr: &[&str],
    now: i64,
    ttl_secs: i64,
) -> Result<(String, Session), InfraError> {
    create_acting(conn, account_id, acr, amr, None, now, ttl_secs)
}

/// Opens a session, optionally acting for an agency (agency-card sign-in).
pub fn create_acting(
    conn: &mut DbConn,
    account_id: &str,
    acr: &str,
    amr: &[&str],
    acting_agency: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> Result<(String, Session), InfraError> {
    let token = random_token(32);
    let row = SessionRow {
        id: sha256_b64(token.as_bytes()),
        sid: random_token(16),
        account_id: account_id.to_string(),
        auth_time: now,
        acr: acr.to_string(),
        amr: serde_json::to_string(amr).map_err(|e| InfraError::Internal(e.to_string()))?,
        created_at: now,
        expires_at: now + ttl_secs,
        acting_agency: acting_agency.map(str::to_string),
    };
    diesel::insert_into(sessions::table).values(&row).execute(conn)?;
    Ok((token, row.into()))
}

/// The live session a cookie value points at.
pub fn find(conn: &mut DbConn, token: &str, now: i64) -> Result<Option<Session>, InfraError> {
    let row: Option<SessionRow> = sessions::table
        .find(sha256_b64(token.as_bytes()))
        .select(SessionRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row.filter(|r| r.expires_at > now).map(Session::from))
}

/// Ends the session a cookie value points at; returns it if there was one.
pub fn end(conn: &mut DbConn, token: &str) -> Result<Option<Session>, InfraError> {
    let id = sha256_b64(token.as_bytes());
    let row: Option<SessionRow> =
        sessions::table.find(&id).select(SessionRow::as_select()).get_result(conn).optional()?;
    diesel::delete(sessions::table.find(&id)).execute(conn)?;
    Ok(row.map(Session::from))
}

/// Removes expired sessions.
pub fn purge_expired(conn: &mut DbConn, now: i64) -> Result<usize, InfraError> {
    Ok(diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)?)
}
