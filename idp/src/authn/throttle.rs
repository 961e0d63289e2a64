//! Throttling of sign-in attempts per person and per client address.
//!
//! An attempt is counted *before* the password is checked (an atomic increment in the ephemeral
//! store, then a comparison with the limit), so a burst of parallel requests cannot slip more
//! guesses past the limit than a slow series could. Per person there is no hard lock: after
//! `max_failures_per_account` attempts, each further one must wait a delay that doubles each
//! time, up to `throttle_max_delay` — guessing stays impractical, yet nobody can lock a colleague
//! out for longer than that delay. A successful sign-in clears the person's count and gives back
//! its address slot, so an office behind one address is not throttled by its own sign-ins.
//!
//! Keys never hold a national ID or account name in clear: a person is counted under the keyed
//! national-ID index the register uses (`DataProtector::index`), whichever of national ID or
//! custom account was typed, once the account is resolved.

use std::sync::Arc;
use std::time::Duration;

use crate::crypto::DataProtector;
use crate::national_id::NationalId;
use crate::store::ephemeral::Key;
use crate::store::ephemeral::{Ephemeral, EphemeralError};

/// Limits from configuration, and the key that makes counter names opaque.
#[derive(Clone)]
pub struct Throttle {
    /// Attempts per person allowed without waiting.
    pub per_account: u64,
    /// Attempts per client address within `window` (failures; successes give theirs back).
    pub per_address: u64,
    /// The fixed window of the per-address count.
    pub window: Duration,
    /// The first wait once `per_account` attempts are used up; doubles with each further one.
    pub delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// A person's count is forgotten after this long without an attempt.
    pub reset_after: Duration,
    pub protector: Arc<DataProtector>,
}

/// The opaque counter name of one person (or of one unknown identifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountKey(String);

impl AccountKey {
    fn count(&self) -> Key {
        Key::throttle_account(&self.0)
    }

    fn gate(&self) -> Key {
        Key::throttle_gate(&self.0)
    }
}

fn address_key(address: &str) -> Key {
    Key::throttle_address(address)
}

/// The wait before the `n`-th attempt beyond the free ones (`n` ≥ 1): `delay · 2^(n-1)`, capped.
pub fn delay_for(delay: Duration, max_delay: Duration, n: u64) -> Duration {
    let exp = u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX).min(30);
    delay.saturating_mul(1u32 << exp).min(max_delay)
}

/// The answer to "may this attempt be checked?".
pub enum Admission {
    /// Go ahead; report the outcome through the attempt.
    Allowed(Attempt),
    /// Not now; the person may try again after this long.
    Refused { retry_after: Duration },
}

/// An admitted attempt: already counted as a failure; a success takes that back.
#[must_use = "report a success with `succeeded`; a failure needs nothing more"]
pub struct Attempt {
    key: AccountKey,
    address: String,
}

impl Attempt {
    /// The password was right: forget the person's failures, give back the address slot.
    pub async fn succeeded(self, throttle: &Throttle, store: &Ephemeral) -> Result<(), EphemeralError> {
        throttle.clear(store, &self.key).await?;
        store.decr(&address_key(&self.address)).await
    }

    /// The password was wrong: the attempt stays counted.
    pub fn failed(self) {}

    /// The check could not be made (storage failed): take the attempt back, so a failed request
    /// leaves no trace in the counts.
    pub async fn abandoned(self, store: &Ephemeral) -> Result<(), EphemeralError> {
        store.decr(&self.key.count()).await?;
        store.decr(&address_key(&self.address)).await
    }
}

impl Throttle {
    /// The counter of a person, by national ID.
    pub fn key_for_person(&self, nid: &NationalId) -> AccountKey {
        AccountKey(self.protector.index(nid.expose()))
    }

    /// The counter for what someone typed: a national ID is counted as that person; anything
    /// else under a keyed hash of its lower-case form (callers that can resolve a custom account
    /// to its person should use [`Throttle::key_for_person`], so both spellings share a count).
    pub fn key_for_identifier(&self, identifier: &str) -> AccountKey {
        match NationalId::parse(identifier) {
            Ok(nid) => self.key_for_person(&nid),
            Err(_) => {
                AccountKey(self.protector.index(&format!("throttle-account\u{0}{}", identifier.trim().to_lowercase())))
            }
        }
    }

    /// Counts an attempt for `key` from `address` and decides, atomically, whether it may be
    /// checked. Refused attempts are not counted (they were never checked).
    pub async fn begin(&self, store: &Ephemeral, key: &AccountKey, address: &str) -> Result<Admission, EphemeralError> {
        let addr = address_key(address);
        if store.incr(&addr, self.window).await? > self.per_address {
            store.decr(&addr).await?;
            let retry_after = store.remaining(&addr).await?.unwrap_or(self.window);
            return Ok(Admission::Refused { retry_after });
        }
        let n = store.incr_refresh(&key.count(), self.reset_after).await?;
        // The last free attempt and every later one must take the gate, which stays closed for
        // the wait the *next* attempt owes: of parallel attempts, exactly one gets through.
        if n >= self.per_account {
            let wait = delay_for(self.delay, self.max_delay, n + 1 - self.per_account);
            if !store.put_new(&key.gate(), b"1", wait).await? {
                store.decr(&key.count()).await?;
                store.decr(&addr).await?;
                let retry_after = store.remaining(&key.gate()).await?.unwrap_or(self.delay);
                return Ok(Admission::Refused { retry_after });
            }
        }
        Ok(Admission::Allowed(Attempt { key: key.clone(), address: address.to_string() }))
    }

    async fn clear(&self, store: &Ephemeral, key: &AccountKey) -> Result<(), EphemeralError> {
        store.delete(&key.count()).await?;
        store.delete(&key.gate()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_account: u64, per_address: u64, delay_ms: u64) -> Throttle {
        Throttle {
            per_account,
            per_address,
            window: Duration::from_secs(60),
            delay: Duration::from_millis(delay_ms),
            max_delay: Duration::from_millis(delay_ms * 4),
            reset_after: Duration::from_secs(60),
            protector: Arc::new(DataProtector::from_key(&[7u8; 32])),
        }
    }

    #[test]
    fn delays_double_and_stop_at_the_cap() {
        let (d, cap) = (Duration::from_secs(2), Duration::from_secs(900));
        let waits: Vec<u64> = (1..=12).map(|n| delay_for(d, cap, n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]);
        assert_eq!(delay_for(d, cap, u64::MAX), cap, "no overflow, however many attempts");
    }

    #[test]
    fn keys_are_keyed_and_never_the_identifier() {
        let t = throttle(5, 50, 10);
        let nid = NationalId::parse("A123456789").unwrap();
        let by_nid = t.key_for_identifier(" a123456789 ");
        assert_eq!(by_nid, t.key_for_person(&nid), "typed national IDs count as the person");
        assert_eq!(by_nid.0, t.protector.index("A123456789"), "the register's index");
        assert!(!by_nid.count().as_str().contains("A123456789"));
        let name = t.key_for_identifier("Ming.Wang");
        assert_eq!(name, t.key_for_identifier("ming.wang"));
        assert!(!name.count().as_str().to_lowercase().contains("ming"));
        assert_ne!(name.0, crate::crypto::sha256_b64(b"ming.wang"), "not a bare hash");
    }

    async fn allowed(t: &Throttle, s: &Ephemeral, key: &AccountKey, addr: &str) -> Option<Attempt> {
        match t.begin(s, key, addr).await.unwrap() {
            Admission::Allowed(a) => Some(a),
            Admission::Refused { .. } => None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_attempts_get_no_more_than_the_free_ones() {
        let t = Arc::new(throttle(5, 1000, 60_000));
        let s = Ephemeral::open("memory://", "t:").await.unwrap();
        let key = t.key_for_identifier("A123456789");
        let mut tasks = Vec::new();
        for _ in 0..30 {
            let (t, s, key) = (t.clone(), s.clone(), key.clone());
            tasks.push(tokio::spawn(async move { allowed(&t, &s, &key, "10.0.0.1").await.is_some() }));
        }
        let mut through = 0;
        for task in tasks {
            through += usize::from(task.await.unwrap());
        }
        assert_eq!(through, 5);
    }

    #[tokio::test]
    async fn after_the_free_attempts_each_waits_longer_and_success_clears() {
        let t = throttle(2, 1000, 150);
        let s = Ephemeral::open("memory://", "t:").await.unwrap();
        let key = t.key_for_identifier("ming.wang");
        allowed(&t, &s, &key, "a").await.unwrap().failed();
        allowed(&t, &s, &key, "a").await.unwrap().failed();
        let Admission::Refused { retry_after } = t.begin(&s, &key, "a").await.unwrap() else {
            panic!("the third attempt must wait")
        };
        assert!(retry_after <= Duration::from_millis(150));
        tokio::time::sleep(Duration::from_millis(200)).await;
        allowed(&t, &s, &key, "a").await.expect("after the wait, one more try").failed();
        // The next wait is twice as long.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(allowed(&t, &s, &key, "a").await.is_none(), "the wait doubled");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ok = allowed(&t, &s, &key, "a").await.expect("after the doubled wait");
        ok.succeeded(&t, &s).await.unwrap();
        for _ in 0..2 {
            allowed(&t, &s, &key, "a").await.expect("a success starts over").failed();
        }
        let other = t.key_for_identifier("li.meihua");
        allowed(&t, &s, &other, "a").await.unwrap().abandoned(&s).await.unwrap();
        allowed(&t, &s, &other, "a").await.expect("an abandoned attempt is not counted").failed();
        assert!(allowed(&t, &s, &other, "a").await.is_some());
    }

    /// The waits themselves, without sleeping: each gate is opened by deleting it, as its expiry
    /// would, and the refusal that follows says how long the next gate is set for.
    #[tokio::test]
    async fn each_attempt_beyond_the_free_ones_doubles_the_wait_up_to_the_cap() {
        let t = Throttle { max_delay: Duration::from_secs(1000), ..throttle(2, 1000, 100_000) };
        let s = Ephemeral::open("memory://", "t:").await.unwrap();
        let key = t.key_for_identifier("ming.wang");
        allowed(&t, &s, &key, "a").await.expect("first free attempt").failed();
        let mut waits = Vec::new();
        for _ in 0..6 {
            allowed(&t, &s, &key, "a").await.expect("the gate is open").failed();
            let Admission::Refused { retry_after } = t.begin(&s, &key, "a").await.unwrap() else {
                panic!("the gate closes behind every attempt once the free ones are used")
            };
            waits.push(retry_after);
            s.delete(&key.gate()).await.unwrap();
        }
        let expected = [100, 200, 400, 800, 1000, 1000];
        for (got, want) in waits.iter().zip(expected) {
            // Half the expected wait tells neighbours apart, whatever the test's own delays.
            let want = Duration::from_secs(want);
            assert!(*got <= want && *got > want / 2, "waits {waits:?}, expected {expected:?} s");
        }
    }

    #[tokio::test]
    async fn the_address_limit_counts_failures_not_successes() {
        let t = throttle(100, 3, 10);
        let s = Ephemeral::open("memory://", "t:").await.unwrap();
        for i in 0..10 {
            let key = t.key_for_identifier(&format!("person{i}"));
            allowed(&t, &s, &key, "office")
                .await
                .expect("successes give their slot back")
                .succeeded(&t, &s)
                .await
                .unwrap();
        }
        for i in 0..3 {
            allowed(&t, &s, &t.key_for_identifier(&format!("guess{i}")), "office").await.unwrap().failed();
        }
        assert!(allowed(&t, &s, &t.key_for_identifier("guess9"), "office").await.is_none());
        assert!(allowed(&t, &s, &t.key_for_identifier("guess9"), "elsewhere").await.is_some());
    }
}
