//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when an SSO session ends, every
//! client that received tokens in it and registered a `backchannel_logout_uri` gets a signed
//! logout token, retried with back-off when it cannot be delivered.
//!
//! Deliveries go through an outbox table (`logout_outbox`), so a restart or a killed node delays
//! them but drops none. The transaction that ends a session moves its (session, client) rows
//! from `session_clients` into the outbox ([`mark_ended`]); every node then claims due rows
//! ([`deliver_due`]: `FOR UPDATE SKIP LOCKED` on PostgreSQL, the single process on SQLite), which
//! moves `next_attempt_at` forward by a lease and counts the attempt, delivers, and marks the row
//! done or due again after 1, 4 and 16 s; after the last retry it is given up and audited. A node
//! that dies holding a claim only delays that row until the lease runs out. The finishing update
//! names the attempt it claimed, so a node whose lease ran out cannot overwrite a newer attempt,
//! and two nodes never both send the same attempt.

use std::sync::LazyLock;
use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;

use super::subject::subject_for;
use crate::audit::{self, Event};
use crate::crypto::random_token;
use crate::error::{now, InfraError};
use crate::state::AppState;
use crate::store::db::models::{OutboxRow, SessionClientRow};
use crate::store::db::schema::{clients, logout_outbox, session_clients};
use crate::store::db::DbConn;

/// The event that marks a logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Delays between delivery attempts, in seconds: the first attempt is at once, then these.
pub const RETRIES: [i64; 3] = [1, 4, 16];
/// How long a claimed row belongs to the node that claimed it: longer than one attempt can take
/// (signing plus [`POST_TIMEOUT`]), so a live node never loses a row it is still sending.
const LEASE_SECS: i64 = 15;
/// How long one delivery attempt may take before it counts as failed.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often each node looks for due rows; retries are due in whole seconds.
const SWEEP: Duration = Duration::from_secs(1);
/// Rows claimed per sweep.
const BATCH: i64 = 50;

/// Wakes this node's delivery loop as soon as a session ended here, instead of at the next sweep.
static NUDGE: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

/// Remembers that a client received tokens in a session.
pub fn record(conn: &mut DbConn, sid: &str, client_id: &str, account_id: &str, now: i64) -> Result<(), InfraError> {
    let exists: i64 = session_clients::table.find((sid, client_id)).count().get_result(conn)?;
    if exists == 0 {
        let row = SessionClientRow {
            sid: sid.into(),
            client_id: client_id.into(),
            account_id: account_id.into(),
            created_at: now,
            ended_at: None,
        };
        match diesel::insert_into(session_clients::table).values(&row).execute(conn) {
            Ok(_)
            | Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Queues the logout tokens these ended sessions owe, in the caller's transaction (so a session
/// is never ended without its deliveries on record); returns how many deliveries are owed.
/// Clients without a `backchannel_logout_uri` are owed nothing.
pub fn mark_ended(conn: &mut DbConn, sids: &[String], now: i64) -> Result<usize, InfraError> {
    if sids.is_empty() {
        return Ok(0);
    }
    let rows: Vec<SessionClientRow> = session_clients::table
        .filter(session_clients::sid.eq_any(sids))
        .select(SessionClientRow::as_select())
        .load(conn)?;
    let client_ids: Vec<&str> = rows.iter().map(|r| r.client_id.as_str()).collect();
    let receiving: Vec<String> = clients::table
        .filter(clients::id.eq_any(&client_ids))
        .filter(clients::backchannel_logout_uri.is_not_null())
        .select(clients::id)
        .load(conn)?;
    let mut owed = 0;
    for row in rows.iter().filter(|r| receiving.contains(&r.client_id)) {
        let queued = OutboxRow {
            sid: row.sid.clone(),
            client_id: row.client_id.clone(),
            account_id: row.account_id.clone(),
            created_at: now,
            next_attempt_at: now,
            attempts: 0,
            done_at: None,
            outcome: None,
        };
        // In a savepoint: a row another transaction queued at the same moment (a reset and a
        // sign-out of the same session) is a duplicate to skip, and must not abort the caller's
        // transaction on PostgreSQL.
        let inserted = conn.transaction(|c| diesel::insert_into(logout_outbox::table).values(&queued).execute(c));
        match inserted {
            Ok(_) => owed += 1,
            Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    diesel::delete(session_clients::table.filter(session_clients::sid.eq_any(sids))).execute(conn)?;
    Ok(owed)
}

/// Wakes the delivery loop for sessions whose deliveries [`mark_ended`] queued.
pub async fn notify_all(_state: &AppState, sids: &[String]) {
    if !sids.is_empty() {
        NUDGE.notify_one();
    }
}

/// Queues the logout tokens one ended session owes (when its ending did not already) and wakes
/// the delivery loop; returns how many were queued now.
pub async fn notify(state: &AppState, sid: &str, now: i64) -> Result<usize, InfraError> {
    let sids = vec![sid.to_string()];
    let queued = state.db.run(move |c| c.transaction(|c| mark_ended(c, &sids, now))).await?;
    NUDGE.notify_one();
    Ok(queued)
}

/// Owed deliveries not finished yet, due or not (the `/metrics` outbox depth).
pub fn pending(conn: &mut DbConn) -> Result<i64, InfraError> {
    Ok(logout_outbox::table.filter(logout_outbox::done_at.is_null()).count().get_result(conn)?)
}

/// Claims due rows for this node: each one's attempt count goes up by one and it is not due
/// again until the lease has run out. On PostgreSQL rows another node is claiming are skipped
/// (`FOR UPDATE SKIP LOCKED`), so the claims of two nodes never overlap.
fn claim(conn: &mut DbConn, now: i64) -> Result<Vec<OutboxRow>, InfraError> {
    conn.transaction(|c| {
        let due = || {
            logout_outbox::table
                .filter(logout_outbox::done_at.is_null())
                .filter(logout_outbox::next_attempt_at.le(now))
                .order(logout_outbox::next_attempt_at)
                .limit(BATCH)
        };
        let mut rows: Vec<OutboxRow> = match c {
            DbConn::Postgresql(pg) => due().for_update().skip_locked().select(OutboxRow::as_select()).load(pg)?,
            // One process owns a SQLite file, and its sweeps run one at a time.
            DbConn::Sqlite(lite) => due().select(OutboxRow::as_select()).load(lite)?,
        };
        for row in &mut rows {
            row.attempts += 1;
            diesel::update(logout_outbox::table.find((&row.sid, &row.client_id)))
                .set((logout_outbox::attempts.eq(row.attempts), logout_outbox::next_attempt_at.eq(now + LEASE_SECS)))
                .execute(c)?;
        }
        Ok(rows)
    })
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Delivered,
    Failed,
    /// The client is gone or no longer has a back-channel address: nothing to retry.
    NoEndpoint,
}

/// Records how the attempt this node claimed ended; returns the row's final outcome, if any.
/// Only the holder of that very attempt can finish it.
fn finish(conn: &mut DbConn, row: &OutboxRow, attempt: Attempt, now: i64) -> Result<Option<&'static str>, InfraError> {
    conn.transaction(|c| {
        let mine = logout_outbox::table
            .find((&row.sid, &row.client_id))
            .filter(logout_outbox::attempts.eq(row.attempts))
            .filter(logout_outbox::done_at.is_null());
        let retry = usize::try_from(row.attempts - 1).ok().and_then(|i| RETRIES.get(i));
        let (done, outcome) = match (attempt, retry) {
            (Attempt::Delivered, _) => (true, "delivered"),
            (Attempt::NoEndpoint, _) => (true, "no_endpoint"),
            (Attempt::Failed, Some(_)) => (false, "retry"),
            (Attempt::Failed, None) => (true, "given_up"),
        };
        let changed = if done {
            diesel::update(mine).set((logout_outbox::done_at.eq(now), logout_outbox::outcome.eq(outcome))).execute(c)?
        } else {
            // Times are whole seconds and `now` is rounded down, so one second more keeps the
            // promised wait a lower bound: the retry comes at least `delay` after the failure.
            let delay = retry.copied().unwrap_or(0);
            diesel::update(mine).set(logout_outbox::next_attempt_at.eq(now + delay + 1)).execute(c)?
        };
        if changed == 0 {
            // The lease ran out and another node has claimed the row since.
            return Ok(None);
        }
        if outcome == "given_up" {
            audit::record(
                c,
                Event {
                    event: "backchannel.logout",
                    outcome: "given_up",
                    actor: Some("system"),
                    account_id: Some(&row.account_id),
                    client_id: Some(&row.client_id),
                    detail: format!("{} attempts", row.attempts),
                    ..Default::default()
                },
                now,
            )?;
        }
        Ok(done.then_some(outcome))
    })
}

/// Claims the deliveries due at `now` (each leased to this node for a while).
async fn claim_due(state: &AppState, now: i64) -> Result<Vec<OutboxRow>, InfraError> {
    state.db.run(move |c| claim(c, now)).await
}

/// Makes one attempt at a claimed delivery, with a logout token issued at `now`, and counts it.
async fn attempt(state: &AppState, row: &OutboxRow, now: i64) -> Attempt {
    let attempt = match send(state, row, now).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(client = %row.client_id, error = %e, "back-channel logout not prepared");
            Attempt::Failed
        }
    };
    crate::metrics::backchannel_attempt(match attempt {
        Attempt::Delivered => "delivered",
        Attempt::Failed => "failed",
        Attempt::NoEndpoint => "no_endpoint",
    });
    attempt
}

/// Records how an attempt ended, at `now` (when it ended: the next try is scheduled from then).
async fn record_attempt(state: &AppState, row: &OutboxRow, attempt: Attempt, now: i64) {
    let r = row.clone();
    match state.db.run(move |c| finish(c, &r, attempt, now)).await {
        Ok(Some("given_up")) => {
            crate::metrics::backchannel_attempt("given_up");
            tracing::error!(client = %row.client_id, attempts = row.attempts, "back-channel logout given up after retries");
        }
        Ok(_) => {}
        // The row stays claimed until its lease runs out, then is tried again.
        Err(e) => {
            tracing::warn!(client = %row.client_id, error = %e, "back-channel logout outcome not recorded")
        }
    }
}

/// One attempt: signs a fresh logout token and posts it.
async fn send(state: &AppState, row: &OutboxRow, now: i64) -> Result<Attempt, InfraError> {
    let Some(client) = state.client_cache.get(&state.db, &row.client_id).await? else { return Ok(Attempt::NoEndpoint) };
    let Some(uri) = client.backchannel_logout_uri.clone() else { return Ok(Attempt::NoEndpoint) };
    let claims = json!({
        "iss": state.config.issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": random_token(16),
        "sub": subject_for(&state.protector, &client, &row.account_id),
        "sid": row.sid,
        "events": { EVENT: {} },
    });
    let token = state.keys.sign(&client.id_token_signed_response_alg, Some("logout+jwt"), &claims, now)?;
    let http = match state.client_http.for_url(client.third_party(), &uri) {
        Ok(http) => http.clone(),
        Err(e) => {
            tracing::warn!(client = %client.client_id, error = %e, "back-channel logout not sent");
            return Ok(Attempt::Failed);
        }
    };
    let attempt = row.attempts;
    let result = http.post(&uri).timeout(POST_TIMEOUT).form(&[("logout_token", token.as_str())]).send().await;
    Ok(match result {
        Ok(r) if r.status().is_success() => Attempt::Delivered,
        Ok(r) => {
            tracing::warn!(client = %client.client_id, status = r.status().as_u16(), attempt, "back-channel logout refused");
            Attempt::Failed
        }
        Err(e) => {
            tracing::warn!(client = %client.client_id, error = %e, attempt, "back-channel logout not delivered");
            Attempt::Failed
        }
    })
}

/// Runs this node's delivery loop: a sweep every second, and at once when a session ended here;
/// each claimed delivery is attempted in a task of its own. The loop is where this background
/// work reads the clock ([`now`]), once per step, and hands the time to the steps.
pub fn spawn_pending_delivery(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = NUDGE.notified() => {}
            }
            let rows = match claim_due(&state, now()).await {
                Ok(rows) => rows,
                Err(e) => {
                    crate::metrics::dependency_error("database");
                    tracing::warn!(error = %e, "back-channel logout outbox not swept");
                    continue;
                }
            };
            for row in rows {
                let state = state.clone();
                tokio::spawn(async move {
                    let attempt = attempt(&state, &row, now()).await;
                    record_attempt(&state, &row, attempt, now()).await;
                });
            }
        }
    });
}
