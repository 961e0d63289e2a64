//! What a person manages about their own account in 我的專區: custom account and e-mail,
//! password, their SSO sessions and the applications connected to them. Plain domain
//! functions (no HTTP types) so the rules can be tested and reused; the account rules are the
//! activation rules themselves ([`super::activation`]), never a copy that could drift.

use std::collections::BTreeMap;

use diesel::prelude::*;

use super::access::{self, Ended};
use super::activation::{self, ActivateError, ActivationError};
use super::{Account, Person};
use crate::authn::password::{hash_password, verify_password};
use crate::error::InfraError;
use crate::oidc::consent;
use crate::store::db::models::{ConsentRow, SessionRow};
use crate::store::db::schema::{accounts, agencies, clients, consents, refresh_tokens, sessions};
use crate::store::db::DbConn;

/// The agency's name from the agency table, for the profile; `None` if the code is unknown.
pub fn agency_name(conn: &mut DbConn, code: &str) -> Result<Option<String>, InfraError> {
    Ok(agencies::table.find(code).select(agencies::name).get_result(conn).optional()?)
}

/// Changes the custom account and e-mail, under the same rules as activation.
pub fn change_account(
    conn: &mut DbConn,
    account_id: &str,
    account_name: &str,
    email: &str,
    now: i64,
) -> Result<(), ActivateError> {
    activation::check_account(account_name)?;
    activation::check_email(email)?;
    if activation::account_taken(conn, account_name, account_id)? {
        return Err(ActivationError::AccountTaken.into());
    }
    let name = account_name.trim();
    let verified = super::email_verification::verified_after_change(conn, account_id, email)?;
    let updated = diesel::update(accounts::table.find(account_id))
        .set((
            accounts::account_name.eq(name),
            accounts::account_name_key.eq(name.to_lowercase()),
            accounts::email.eq(email.trim()),
            accounts::email_verified_at.eq(verified),
            accounts::updated_at.eq(now),
        ))
        .execute(conn);
    activation::name_claimed(updated)
}

/// Why a password change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PasswordChangeError {
    /// The current password was wrong (or the account has none): the change needs proof that
    /// the person at the keyboard knows it, not just a session cookie.
    #[error("the current password is wrong")]
    WrongCurrent,
    #[error("{0}")]
    Rule(#[from] ActivationError),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<diesel::result::Error> for PasswordChangeError {
    fn from(e: diesel::result::Error) -> Self {
        PasswordChangeError::Infra(e.into())
    }
}

/// Which sessions a password change leaves signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherSessions<'a> {
    /// End every other session and refresh token of the account, keeping this session (the one
    /// making the change) and the tokens issued in it: 「同時登出其他裝置」, the default.
    End { current: &'a str },
    /// Leave them: the person unticked the box.
    Keep,
}

/// The part of a password change that needs no database: the current password is checked
/// (Argon2id) and the new one follows the activation rules (it must differ from the custom
/// account, e-mail and national ID); returns the new one's hash. It costs tens of milliseconds
/// of CPU, so it runs off the async threads and never inside a database call, where it would
/// hold a pooled connection (and the query time bound) through the hashing.
pub fn prepare_password_change(
    account: &Account,
    person: &Person,
    current: &str,
    new: &str,
    confirm: &str,
) -> Result<String, PasswordChangeError> {
    let matches = account.password_hash.as_deref().is_some_and(|h| verify_password(current, h));
    if !matches {
        return Err(PasswordChangeError::WrongCurrent);
    }
    let name = account.account_name.as_deref().unwrap_or_default();
    let email = account.email.as_deref().unwrap_or(&person.email);
    activation::check_password(new, confirm, name, email, person)?;
    Ok(hash_password(new)?)
}

/// Stores a password prepared by [`prepare_password_change`]. In the same transaction the other
/// sessions and refresh tokens end unless `others` keeps them; returns what ended (send
/// back-channel logout for its sessions after this returns).
pub fn change_password(
    conn: &mut DbConn,
    account_id: &str,
    hash: &str,
    others: OtherSessions<'_>,
    now: i64,
) -> Result<Ended, PasswordChangeError> {
    conn.transaction(|conn| {
        diesel::update(accounts::table.find(account_id))
            .set((accounts::password_hash.eq(hash), accounts::updated_at.eq(now)))
            .execute(conn)
            .map_err(InfraError::from)?;
        match others {
            OtherSessions::End { current } => {
                Ok(access::end_sessions_and_tokens(conn, account_id, Some(current), now)?)
            }
            OtherSessions::Keep => Ok(Ended::default()),
        }
    })
}

/// A live SSO session of the account, as 我的專區 lists it (never the cookie or its hash).
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub sid: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub amr: Vec<String>,
}

/// The account's live sessions, newest first.
pub fn sessions_of(conn: &mut DbConn, account_id: &str, now: i64) -> Result<Vec<SessionInfo>, InfraError> {
    let rows: Vec<SessionRow> = sessions::table
        .filter(sessions::account_id.eq(account_id))
        .filter(sessions::expires_at.gt(now))
        .order(sessions::created_at.desc())
        .select(SessionRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| SessionInfo {
            sid: r.sid,
            created_at: r.created_at,
            expires_at: r.expires_at,
            amr: serde_json::from_str(&r.amr).unwrap_or_default(),
        })
        .collect())
}

/// Which of the account's sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum EndSessions<'a> {
    /// One session by its public id.
    One(&'a str),
    /// Every session but this one (the one the person is using).
    AllExcept(&'a str),
}

/// Ends sessions of this account only (a sid of someone else's session matches nothing);
/// returns the ended sessions' ids so back-channel logout can be sent for each. Their logout
/// notices are queued as of `now`.
pub fn end_sessions(
    conn: &mut DbConn,
    account_id: &str,
    which: EndSessions<'_>,
    now: i64,
) -> Result<Vec<String>, InfraError> {
    conn.transaction(|conn| {
        let mut q = sessions::table.filter(sessions::account_id.eq(account_id)).into_boxed();
        q = match which {
            EndSessions::One(sid) => q.filter(sessions::sid.eq(sid.to_string())),
            EndSessions::AllExcept(sid) => q.filter(sessions::sid.ne(sid.to_string())),
        };
        let ids: Vec<(String, String)> = q.select((sessions::id, sessions::sid)).load(conn)?;
        for (id, _) in &ids {
            diesel::delete(sessions::table.find(id)).execute(conn)?;
        }
        let sids: Vec<String> = ids.into_iter().map(|(_, sid)| sid).collect();
        // Their back-channel logouts are queued in the same transaction that ends them.
        crate::oidc::backchannel::mark_ended(conn, &sids, now)?;
        Ok(sids)
    })
}

/// An application connected to the account: it holds consent, live refresh tokens, or both.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub client_id: String,
    /// The client's name; `None` if the client has since been deleted.
    pub name: Option<String>,
    /// What the person allowed (empty for pre-approved first-party clients).
    pub consented_scope: Vec<String>,
    /// Refresh tokens that can still be used.
    pub live_tokens: usize,
}

/// The applications connected to the account, by client id.
pub fn connected_apps(conn: &mut DbConn, account_id: &str, now: i64) -> Result<Vec<ConnectedApp>, InfraError> {
    let mut apps: BTreeMap<String, ConnectedApp> = BTreeMap::new();
    let consented: Vec<ConsentRow> =
        consents::table.filter(consents::account_id.eq(account_id)).select(ConsentRow::as_select()).load(conn)?;
    for c in consented {
        let scope = c.scope.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect();
        apps.insert(
            c.client_id.clone(),
            ConnectedApp { client_id: c.client_id, name: None, consented_scope: scope, live_tokens: 0 },
        );
    }
    // Refresh tokens that still work: not used (rotated), revoked or expired.
    let live: Vec<String> = refresh_tokens::table
        .filter(refresh_tokens::account_id.eq(account_id))
        .filter(refresh_tokens::used_at.is_null())
        .filter(refresh_tokens::revoked_at.is_null())
        .filter(refresh_tokens::expires_at.gt(now))
        .select(refresh_tokens::client_id)
        .load(conn)?;
    for client_id in live {
        apps.entry(client_id.clone())
            .or_insert_with(|| ConnectedApp { client_id, name: None, consented_scope: vec![], live_tokens: 0 })
            .live_tokens += 1;
    }
    for app in apps.values_mut() {
        app.name = clients::table.find(&app.client_id).select(clients::name).get_result(conn).optional()?;
    }
    Ok(apps.into_values().collect())
}

/// What disconnecting an application withdrew.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disconnected {
    pub consent: bool,
    pub refresh_tokens: usize,
}

/// Disconnects an application: withdraws consent (the next sign-in asks again, for clients
/// that ask) and revokes every refresh token it holds for this account, in one transaction.
/// Access tokens already issued are short-lived and cannot be listed; they run out on their own.
pub fn disconnect_app(
    conn: &mut DbConn,
    account_id: &str,
    client_id: &str,
    now: i64,
) -> Result<Disconnected, InfraError> {
    conn.transaction(|conn| {
        let consent = consent::revoke(conn, account_id, client_id)?;
        let refresh_tokens = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::account_id.eq(account_id))
                .filter(refresh_tokens::client_id.eq(client_id))
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::revoked_at.eq(now))
        .execute(conn)?;
        Ok(Disconnected { consent, refresh_tokens })
    })
}
