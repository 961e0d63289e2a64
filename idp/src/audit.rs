//! The audit trail: every security event is written to the database (for the operators'
//! search) and to the log. Details never carry a full national ID, password or token.

use diesel::prelude::*;

use crate::crypto::random_token;
use crate::error::InfraError;
use crate::store::db::models::AuditRow;
use crate::store::db::schema::audit_events;
use crate::store::db::DbConn;

/// One security event.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    /// What happened, e.g. `login.password`, `personnel.import`, `client.create`.
    pub event: &'a str,
    /// `success` or `failure` (or a more precise reason).
    pub outcome: &'a str,
    /// Who did it: `cli`, an account id, or `anonymous`.
    pub actor: Option<&'a str>,
    /// Whose account it concerns.
    pub account_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    /// The client address.
    pub address: Option<&'a str>,
    /// Free text without personal data.
    pub detail: String,
}

impl<'a> Event<'a> {
    /// An event a person caused on their own account, from an address.
    pub fn own(event: &'a str, outcome: &'a str, account_id: &'a str, address: &'a str) -> Self {
        Self {
            event,
            outcome,
            actor: Some(account_id),
            account_id: Some(account_id),
            address: Some(address),
            ..Default::default()
        }
    }
}

/// Records an event.
pub fn record(conn: &mut DbConn, e: Event<'_>, now: i64) -> Result<(), InfraError> {
    tracing::info!(
        target: "audit",
        event = e.event,
        outcome = e.outcome,
        actor = e.actor,
        account = e.account_id,
        client = e.client_id,
        address = e.address,
        detail = %e.detail,
        "audit"
    );
    let row = AuditRow {
        id: random_token(12),
        at: now,
        event: e.event.into(),
        outcome: e.outcome.into(),
        actor: e.actor.map(Into::into),
        account_id: e.account_id.map(Into::into),
        client_id: e.client_id.map(Into::into),
        address: e.address.map(Into::into),
        detail: e.detail,
    };
    diesel::insert_into(audit_events::table).values(&row).execute(conn)?;
    Ok(())
}

/// The most recent events, newest first.
pub fn recent(conn: &mut DbConn, limit: i64) -> Result<Vec<AuditRow>, InfraError> {
    Ok(audit_events::table.order(audit_events::at.desc()).limit(limit).select(AuditRow::as_select()).load(conn)?)
}
