//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when an SSO session ends, every
//! client that received tokens in it and registered a `backchannel_logout_uri` gets a signed
//! logout token, retried with back-off when it cannot be delivered.
//!
//! Sessions ended by a password reset, a password change or separation are marked in the same
//! transaction that ends them ([`mark_ended`]); the marked rows are the queue. The request that
//! ended them delivers at once, and every node also sweeps the queue ([`spawn_pending_delivery`])
//! so a logout ended from the CLI, or by a node that stopped, is still sent. A row is claimed by
//! deleting it, so two nodes never both send one.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::json;

use super::subject::subject_for;
use crate::crypto::random_token;
use crate::error::{now, InfraError};
use crate::state::AppState;
use crate::store::db::models::SessionClientRow;
use crate::store::db::schema::session_clients;
use crate::store::db::DbConn;

/// The event that marks a logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Delays between delivery attempts.
const RETRIES: [u64; 3] = [1, 4, 16];
/// How often each node looks for ended sessions whose logout has not been sent.
const PENDING_SWEEP: Duration = Duration::from_secs(3);
/// Ended sessions handled per sweep.
const PENDING_BATCH: i64 = 100;

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

/// Marks ended sessions as owing their applications a logout token, in the caller's
/// transaction; returns how many deliveries are owed.
pub fn mark_ended(conn: &mut DbConn, sids: &[String], now: i64) -> Result<usize, InfraError> {
    if sids.is_empty() {
        return Ok(0);
    }
    Ok(diesel::update(session_clients::table.filter(session_clients::sid.eq_any(sids)))
        .set(session_clients::ended_at.eq(now))
        .execute(conn)?)
}

/// Sends logout tokens for each of these ended sessions (see [`notify`]); failures are logged,
/// and anything marked but not sent stays queued for the sweep.
pub async fn notify_all(state: &AppState, sids: &[String]) {
    for sid in sids {
        if let Err(e) = notify(state, sid).await {
            tracing::error!(error = %e, "back-channel logout");
        }
    }
}

/// Sends what is queued: every ended session whose logout tokens have not been sent yet.
pub async fn deliver_pending(state: &AppState) -> Result<usize, InfraError> {
    let sids: Vec<String> = state
        .db
        .run(|c| -> Result<_, InfraError> {
            Ok(session_clients::table
                .filter(session_clients::ended_at.is_not_null())
                .select(session_clients::sid)
                .distinct()
                .limit(PENDING_BATCH)
                .load(c)?)
        })
        .await?;
    let mut sent = 0;
    for sid in &sids {
        sent += notify(state, sid).await?;
    }
    Ok(sent)
}

/// Sweeps the queue of owed logout tokens on this node, from now on.
pub fn spawn_pending_delivery(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PENDING_SWEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = deliver_pending(&state).await {
                tracing::warn!(error = %e, "back-channel logout queue not swept");
            }
        }
    });
}

/// Sends logout tokens for an ended session, in the background; returns how many are on their way.
pub async fn notify(state: &AppState, sid: &str) -> Result<usize, InfraError> {
    let key = sid.to_string();
    let rows: Vec<SessionClientRow> = state
        .db
        .run(move |c| -> Result<_, InfraError> {
            let rows = session_clients::table
                .filter(session_clients::sid.eq(&key))
                .select(SessionClientRow::as_select())
                .load(c)?;
            // Claimed by deleting: of two nodes sweeping at once, only one sends each token.
            let mut claimed = Vec::with_capacity(rows.len());
            for row in rows {
                let gone = diesel::delete(session_clients::table.find((&row.sid, &row.client_id))).execute(c)?;
                if gone == 1 {
                    claimed.push(row);
                }
            }
            Ok(claimed)
        })
        .await?;
    let mut sent = 0;
    for row in rows {
        let Some(client) = state.client_cache.get(state, &row.client_id).await? else { continue };
        let Some(uri) = client.backchannel_logout_uri.clone() else { continue };
        let now = now();
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
        let token = state.keys.sign(&client.id_token_signed_response_alg, Some("logout+jwt"), &claims)?;
        let http = match state.client_http.for_url(client.third_party(), &uri) {
            Ok(http) => http.clone(),
            Err(e) => {
                tracing::warn!(client = %client.client_id, error = %e, "back-channel logout not sent");
                continue;
            }
        };
        let client_id = client.client_id.clone();
        tokio::spawn(async move {
            for (attempt, delay) in std::iter::once(0).chain(RETRIES).enumerate() {
                tokio::time::sleep(Duration::from_secs(delay)).await;
                let result = http.post(&uri).form(&[("logout_token", token.as_str())]).send().await;
                match result {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) => {
                        tracing::warn!(client = %client_id, status = r.status().as_u16(), attempt, "back-channel logout refused")
                    }
                    Err(e) => {
                        tracing::warn!(client = %client_id, error = %e, attempt, "back-channel logout not delivered")
                    }
                }
            }
            tracing::error!(client = %client_id, "back-channel logout given up after retries");
        });
        sent += 1;
    }
    Ok(sent)
}
