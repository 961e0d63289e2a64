//! Throttling of failed sign-ins per account and per client address.
//!
//! Counters live in the ephemeral store and expire with their window, so a burst of wrong
//! passwords slows an attacker down without letting anyone lock another person out for good.

use std::time::Duration;

use crate::crypto::sha256_b64;
use crate::store::ephemeral::{Ephemeral, EphemeralError};

/// Limits from configuration.
#[derive(Debug, Clone)]
pub struct Throttle {
    pub per_account: u64,
    pub per_address: u64,
    pub window: Duration,
}

fn account_key(identifier: &str) -> String {
    // Hashed: the identifier may be a national ID, which must not sit in Redis in clear.
    format!("thr:acct:{}", sha256_b64(identifier.trim().to_lowercase().as_bytes()))
}

fn address_key(address: &str) -> String {
    format!("thr:addr:{address}")
}

fn count(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Throttle {
    /// Whether further attempts for this identifier or from this address must wait.
    pub async fn is_blocked(&self, store: &Ephemeral, identifier: &str, address: &str) -> Result<bool, EphemeralError> {
        let a = count(store.get(&account_key(identifier)).await?);
        let b = count(store.get(&address_key(address)).await?);
        Ok(a >= self.per_account || b >= self.per_address)
    }

    /// Counts one failure against both.
    pub async fn record_failure(
        &self,
        store: &Ephemeral,
        identifier: &str,
        address: &str,
    ) -> Result<(), EphemeralError> {
        store.incr(&account_key(identifier), self.window).await?;
        store.incr(&address_key(address), self.window).await?;
        Ok(())
    }

    /// Forgets an account's failures after a successful sign-in.
    pub async fn record_success(&self, store: &Ephemeral, identifier: &str) -> Result<(), EphemeralError> {
        store.delete(&account_key(identifier)).await
    }
}
