//! The login-transaction store: an authorization request waiting, under a random id, while the
//! person signs in, binds a card or answers the consent page. Kept in the ephemeral store (any
//! node can continue it) for `login.transaction_ttl`.

use super::authorize::AuthRequest;
use crate::crypto::random_token;
use crate::error::InfraError;
use crate::state::AppState;
use crate::store::ephemeral::Key;

/// The longest transaction id accepted from a request (ids are 32 characters).
const MAX_ID: usize = 64;

/// Why a named transaction cannot be continued.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// Expired, already used, or never issued.
    #[error("the login transaction is gone")]
    Gone,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Whether `tx` can name a transaction at all (checked before the store is asked).
fn well_formed(tx: &str) -> bool {
    !tx.is_empty() && tx.len() <= MAX_ID
}

/// Stores a login transaction and returns its id.
pub async fn start(state: &AppState, req: &AuthRequest) -> Result<String, InfraError> {
    let tx = random_token(24);
    state.eph.put_json(&Key::login_transaction(&tx), req, state.config.login.transaction_ttl).await?;
    Ok(tx)
}

/// Writes a transaction back under its id, e.g. once the consent page has been shown.
pub async fn save(state: &AppState, tx: &str, req: &AuthRequest) -> Result<(), InfraError> {
    state.eph.put_json(&Key::login_transaction(tx), req, state.config.login.transaction_ttl).await?;
    Ok(())
}

/// Takes a transaction out of the store: at most one request can.
pub async fn take(state: &AppState, tx: &str) -> Result<AuthRequest, TransactionError> {
    if !well_formed(tx) {
        return Err(TransactionError::Gone);
    }
    state
        .eph
        .take_json::<AuthRequest>(&Key::login_transaction(tx))
        .await
        .map_err(InfraError::from)?
        .ok_or(TransactionError::Gone)
}

/// Forgets a finished transaction.
pub async fn end(state: &AppState, tx: &str) {
    let _ = state.eph.delete(&Key::login_transaction(tx)).await;
}

/// The transaction a form or query names, if it names one (an empty `tx` names none).
pub async fn load(state: &AppState, tx: Option<&str>) -> Result<Option<AuthRequest>, TransactionError> {
    let Some(tx) = tx.filter(|t| !t.is_empty()) else { return Ok(None) };
    if !well_formed(tx) {
        return Err(TransactionError::Gone);
    }
    let found = state.eph.get_json::<AuthRequest>(&Key::login_transaction(tx)).await.map_err(InfraError::from)?;
    found.map(Some).ok_or(TransactionError::Gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_the_store_is_asked() {
        assert!(well_formed(&random_token(24)));
        assert!(well_formed(&"a".repeat(MAX_ID)));
        assert!(!well_formed(&"a".repeat(MAX_ID + 1)));
        assert!(!well_formed(""));
    }
}
