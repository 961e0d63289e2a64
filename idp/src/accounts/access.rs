//! Ending what a password opened: an account's SSO sessions and refresh tokens, with the
//! sessions' applications owed a back-channel logout. One function for every path that needs it
//! (a reset by HR staff, an agency card, the helpdesk or the CLI; a password change; separation),
//! so none can forget a part. It runs inside the caller's transaction: if the caller's work fails
//! (a mail that cannot be sent), nothing is ended.

use diesel::prelude::*;

use crate::error::InfraError;
use crate::oidc::backchannel;
use crate::store::db::schema::{refresh_tokens, sessions};
use crate::store::db::DbConn;

/// What was ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ended {
    /// The public ids of the ended sessions; send them [`backchannel::notify_all`] after commit.
    pub sids: Vec<String>,
    /// Refresh tokens revoked.
    pub refresh_tokens: usize,
}

/// Ends every session of the account except `keep` (the session of the person making the
/// change, for a password change), and revokes every refresh token not issued in `keep`.
pub fn end_sessions_and_tokens(
    conn: &mut DbConn,
    account_id: &str,
    keep: Option<&str>,
    now: i64,
) -> Result<Ended, InfraError> {
    conn.transaction(|conn| {
        let mut q = sessions::table.filter(sessions::account_id.eq(account_id)).into_boxed();
        if let Some(keep) = keep {
            q = q.filter(sessions::sid.ne(keep.to_string()));
        }
        let found: Vec<(String, String)> = q.select((sessions::id, sessions::sid)).load(conn)?;
        let ids: Vec<&String> = found.iter().map(|(id, _)| id).collect();
        diesel::delete(sessions::table.filter(sessions::id.eq_any(ids))).execute(conn)?;
        let sids: Vec<String> = found.into_iter().map(|(_, sid)| sid).collect();
        backchannel::mark_ended(conn, &sids, now)?;
        let mut tokens = refresh_tokens::table
            .filter(refresh_tokens::account_id.eq(account_id))
            .filter(refresh_tokens::revoked_at.is_null())
            .into_boxed();
        if let Some(keep) = keep {
            tokens = tokens.filter(refresh_tokens::sid.ne(keep.to_string()));
        }
        let ids: Vec<String> = tokens.select(refresh_tokens::id).load(conn)?;
        let refresh_tokens = diesel::update(refresh_tokens::table.filter(refresh_tokens::id.eq_any(&ids)))
            .set(refresh_tokens::revoked_at.eq(now))
            .execute(conn)?;
        Ok(Ended { sids, refresh_tokens })
    })
}
