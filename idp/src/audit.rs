//! The audit trail: every security event is written to the database (for the operators'
//! search) and to the log. Details never carry a full national ID, password or token.

use diesel::prelude::*;

use crate::crypto::random_token;
use crate::error::InfraError;
use crate::store::db::models::AuditRow;
use crate::store::db::schema::audit_events;
use crate::store::db::{Db, DbConn};

/// Who made a change, as the audit trail names them: `cli` (an operator on the server), or a
/// person's account id and the address they came from (the operator and HR pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub address: Option<String>,
}

impl Actor {
    /// An operator on the server's command line.
    pub fn cli() -> Self {
        Self::named("cli")
    }

    /// A named channel without an address, e.g. `helpdesk:cli`, `demo`, `system`.
    pub fn named(id: &str) -> Self {
        Self { id: id.into(), address: None }
    }

    /// A signed-in person acting from an address.
    pub fn person(account_id: &str, address: &str) -> Self {
        Self { id: account_id.into(), address: Some(address.into()) }
    }

    /// An event this actor caused; the other fields are filled in by the caller.
    pub fn event<'a>(&'a self, event: &'a str, outcome: &'a str) -> Event<'a> {
        Event { event, outcome, actor: Some(&self.id), address: self.address.as_deref(), ..Default::default() }
    }
}

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
    crate::metrics::audited(e.event, e.outcome);
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

/// Records an event where failing to record must not change the answer (a refusal, a page
/// view): the failure is logged instead. `record` builds and writes the event on a connection.
pub async fn record_logged<F>(db: &Db, record: F)
where
    F: FnOnce(&mut DbConn) -> Result<(), InfraError> + Send + 'static,
{
    if let Err(e) = db.run(record).await {
        tracing::error!(error = %e, "audit event not recorded");
    }
}

/// The most recent events, newest first.
pub fn recent(conn: &mut DbConn, limit: i64) -> Result<Vec<AuditRow>, InfraError> {
    Ok(audit_events::table.order(audit_events::at.desc()).limit(limit).select(AuditRow::as_select()).load(conn)?)
}

/// What the operators' audit-log page searches for; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub event: Option<String>,
    pub outcome: Option<String>,
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    /// From this time on (inclusive, epoch seconds).
    pub from: Option<i64>,
    /// Before this time (exclusive).
    pub until: Option<i64>,
}

/// One page of matching events, newest first, and whether more follow. Fetches one row more
/// than asked instead of counting, so paging a large log stays cheap.
pub fn search(conn: &mut DbConn, q: &Query, offset: i64, limit: i64) -> Result<(Vec<AuditRow>, bool), InfraError> {
    let mut query = audit_events::table.into_boxed();
    if let Some(v) = &q.event {
        query = query.filter(audit_events::event.eq(v.clone()));
    }
    if let Some(v) = &q.outcome {
        query = query.filter(audit_events::outcome.eq(v.clone()));
    }
    if let Some(v) = &q.account_id {
        query = query.filter(audit_events::account_id.eq(v.clone()).or(audit_events::actor.eq(v.clone())));
    }
    if let Some(v) = &q.client_id {
        query = query.filter(audit_events::client_id.eq(v.clone()));
    }
    if let Some(v) = q.from {
        query = query.filter(audit_events::at.ge(v));
    }
    if let Some(v) = q.until {
        query = query.filter(audit_events::at.lt(v));
    }
    let mut rows: Vec<AuditRow> = query
        .order((audit_events::at.desc(), audit_events::id.desc()))
        .offset(offset.max(0))
        .limit(limit + 1)
        .select(AuditRow::as_select())
        .load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    Ok((rows, more))
}

/// Masks anything shaped like a national ID (a letter and nine digits) in free text, so a
/// detail written carelessly by some future caller still never shows one in full.
pub fn mask_national_ids(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let shaped = i + 10 <= chars.len()
            && chars[i].is_ascii_alphabetic()
            && chars[i + 1..i + 10].iter().all(char::is_ascii_digit);
        if shaped {
            out.extend(&chars[i..i + 3]);
            out.push_str("*****");
            out.extend(&chars[i + 8..i + 10]);
            i += 10;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn national_ids_in_free_text_are_masked() {
        assert_eq!(super::mask_national_ids("for A123456789 ok"), "for A12*****89 ok");
        assert_eq!(super::mask_national_ids("A123456789"), "A12*****89");
        assert_eq!(super::mask_national_ids("xA1234567890 A12345678 A12*****89"), "xA12*****890 A12345678 A12*****89");
    }
}
