//! The periodic clean-up: expired sessions (and what they left in `session_clients`), one-time
//! passwords and registration tokens, consents of deleted clients, finished back-channel
//! deliveries, and audit events past `audit.retention`.
//!
//! Every node runs the loop, but one at a time does the work: on PostgreSQL the purge runs in one
//! transaction that first takes `pg_try_advisory_xact_lock`, and a node that does not get the
//! lock skips that round (the lock ends with the transaction, also when the node dies); on
//! SQLite the single process is alone anyway.

use std::time::Duration;

use diesel::prelude::*;

use crate::config::Config;
use crate::error::{now, InfraError};
use crate::state::AppState;
use crate::store::db::schema::{
    audit_events, clients, consents, logout_outbox, one_time_passwords, registration_tokens, session_clients, sessions,
};
use crate::store::db::DbConn;

/// The advisory lock key of the clean-up ("idpclean" in ASCII, truncated to fit).
const LOCK_KEY: i64 = 0x6964_7063_6c65_616e;
/// Tokens recorded for a session are kept this long past its end at least, so a record made in
/// the same instant as a sign-in is never taken for a leftover.
const SESSION_CLIENT_GRACE: i64 = 3600;
/// An expired one-time password is kept this long, so a person who types it late is told it has
/// expired (一次性密碼已逾期) and whom to ask, instead of only that the password is wrong.
const EXPIRED_ONE_TIME_PASSWORD_KEEP: i64 = 30 * 24 * 3600;

/// How many rows one round removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    pub sessions: usize,
    pub session_clients: usize,
    pub one_time_passwords: usize,
    pub registration_tokens: usize,
    pub consents: usize,
    pub outbox: usize,
    pub audit_events: usize,
}

impl Purged {
    pub fn total(&self) -> usize {
        self.sessions
            + self.session_clients
            + self.one_time_passwords
            + self.registration_tokens
            + self.consents
            + self.outbox
            + self.audit_events
    }
}

/// What to keep, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub audit_secs: i64,
    pub outbox_secs: i64,
}

impl Retention {
    pub fn from_config(config: &Config) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self { audit_secs: secs(config.audit.retention), outbox_secs: secs(config.cleanup.outbox_keep) }
    }
}

/// One round; `None` when another node holds the clean-up lock.
pub fn run_once(conn: &mut DbConn, now: i64, keep: Retention) -> Result<Option<Purged>, InfraError> {
    conn.transaction(|c| {
        if let DbConn::Postgresql(pg) = c {
            let sql = format!("pg_try_advisory_xact_lock({LOCK_KEY})");
            let got: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&sql)).get_result(pg)?;
            if !got {
                return Ok(None);
            }
        }
        let mut p = Purged { sessions: crate::authn::session::purge_expired(c, now)?, ..Default::default() };
        // Rows of sessions that are gone: ended sessions moved theirs to the outbox, so what is
        // left belongs to sessions that expired, which owe no logout token.
        let recorded: Vec<String> = session_clients::table
            .filter(session_clients::created_at.le(now - SESSION_CLIENT_GRACE))
            .select(session_clients::sid)
            .distinct()
            .load(c)?;
        let live: Vec<String> =
            sessions::table.filter(sessions::sid.eq_any(&recorded)).select(sessions::sid).load(c)?;
        let gone: Vec<&String> = recorded.iter().filter(|s| !live.contains(s)).collect();
        p.session_clients = diesel::delete(session_clients::table.filter(session_clients::sid.eq_any(gone)))
            .filter(session_clients::ended_at.is_null())
            .execute(c)?;
        p.one_time_passwords = diesel::delete(
            one_time_passwords::table.filter(one_time_passwords::expires_at.le(now - EXPIRED_ONE_TIME_PASSWORD_KEEP)),
        )
        .execute(c)?;
        p.registration_tokens =
            diesel::delete(registration_tokens::table.filter(registration_tokens::expires_at.le(now))).execute(c)?;
        let consented: Vec<String> = consents::table.select(consents::client_id).distinct().load(c)?;
        let existing: Vec<String> =
            clients::table.filter(clients::id.eq_any(&consented)).select(clients::id).load(c)?;
        let deleted: Vec<&String> = consented.iter().filter(|id| !existing.contains(id)).collect();
        p.consents = diesel::delete(consents::table.filter(consents::client_id.eq_any(deleted))).execute(c)?;
        p.outbox = diesel::delete(
            logout_outbox::table
                .filter(logout_outbox::done_at.is_not_null())
                .filter(logout_outbox::done_at.le(now - keep.outbox_secs)),
        )
        .execute(c)?;
        p.audit_events =
            diesel::delete(audit_events::table.filter(audit_events::at.lt(now - keep.audit_secs))).execute(c)?;
        Ok(Some(p))
    })
}

/// Runs the clean-up on this node every `cleanup.interval`, the first round at start.
pub fn spawn(state: AppState) {
    let keep = Retention::from_config(&state.config);
    let every = state.config.cleanup.interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match state.db.run(move |c| run_once(c, now(), keep)).await {
                Ok(Some(p)) if p.total() > 0 => tracing::info!(?p, "clean-up: expired and finished rows removed"),
                Ok(Some(_)) => tracing::debug!("clean-up: nothing to remove"),
                Ok(None) => tracing::debug!("clean-up: another node is at it"),
                Err(e) => {
                    crate::metrics::dependency_error("database");
                    tracing::warn!(error = %e, "clean-up failed; tried again next round");
                }
            }
        }
    });
}
