//! Consent: what a person allowed a client, remembered until revoked.

use diesel::prelude::*;

use crate::audit::{self, Actor, Event};
use crate::error::InfraError;
use crate::store::db::models::ConsentRow;
use crate::store::db::schema::consents;
use crate::store::db::DbConn;

/// Whether the person already allowed every scope asked for.
pub fn covers(conn: &mut DbConn, account_id: &str, client_id: &str, scope: &[String]) -> Result<bool, InfraError> {
    let row: Option<ConsentRow> =
        consents::table.find((account_id, client_id)).select(ConsentRow::as_select()).get_result(conn).optional()?;
    Ok(row.is_some_and(|r| {
        let granted: Vec<&str> = r.scope.split(' ').collect();
        scope.iter().all(|s| granted.contains(&s.as_str()))
    }))
}

/// Records the consent a person (`actor`, signed in as that account) gave, adding to what was
/// allowed before, audited as `consent.grant` with the scopes in the same transaction.
pub fn grant_by(
    conn: &mut DbConn,
    actor: &Actor,
    client_id: &str,
    scope: &[String],
    now: i64,
) -> Result<(), InfraError> {
    let account_id = actor.id.as_str();
    conn.transaction(|conn| {
        let row: Option<ConsentRow> = consents::table
            .find((account_id, client_id))
            .select(ConsentRow::as_select())
            .get_result(conn)
            .optional()?;
        let mut all: Vec<String> = row.map(|r| r.scope.split(' ').map(str::to_string).collect()).unwrap_or_default();
        for s in scope {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        diesel::delete(consents::table.find((account_id, client_id))).execute(conn)?;
        diesel::insert_into(consents::table)
            .values(ConsentRow {
                account_id: account_id.into(),
                client_id: client_id.into(),
                scope: all.join(" "),
                created_at: now,
            })
            .execute(conn)?;
        let e = Event {
            account_id: Some(account_id),
            client_id: Some(client_id),
            detail: scope.join(" "),
            ..actor.event("consent.grant", "success")
        };
        audit::record(conn, e, now)
    })
}

/// Withdraws consent.
pub fn revoke(conn: &mut DbConn, account_id: &str, client_id: &str) -> Result<bool, InfraError> {
    Ok(diesel::delete(consents::table.find((account_id, client_id))).execute(conn)? > 0)
}
