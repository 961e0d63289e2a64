//! Sign-in with custom account or national ID plus a password or a one-time password.

use std::sync::Mutex;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use diesel::prelude::*;

use crate::accounts::{self, Account, AccountState, Person, PersonStatus};
use crate::crypto::{constant_time_eq, sha256_b64, DataProtector};
use crate::error::InfraError;
use crate::store::db::models::OneTimePasswordRow;
use crate::store::db::schema::one_time_passwords;
use crate::store::db::DbConn;

/// Argon2id's memory cost at the OWASP-recommended parameters, in KiB (19 MiB).
const MEMORY_KIB: u32 = 19 * 1024;

/// Argon2id at the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    #[allow(clippy::expect_used)] // constant, known-valid parameters
    let params = Params::new(MEMORY_KIB, 2, 1, None).expect("argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Working memory kept for the next Argon2id computation, at most this many buffers.
const POOLED: usize = 4;
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Runs `f` with 19 MiB of Argon2 working memory taken from the pool (or allocated), and puts
/// it back. Allocating and freeing 19 MiB per sign-in left the allocator holding over a
/// gigabyte after a burst of sign-ins (freed blocks of that size stay in its arenas); reused,
/// the memory stays at one buffer per computation that ran at once, and no page is faulted in
/// again.
fn with_memory<T>(f: impl FnOnce(&mut [Block]) -> T) -> T {
    let taken = MEMORY.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut blocks = taken.unwrap_or_else(|| vec![Block::default(); MEMORY_KIB as usize]);
    let out = f(&mut blocks);
    let mut pool = MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    if pool.len() < POOLED {
        pool.push(blocks);
    }
    out
}

/// Hashes a password a person chose.
pub fn hash_password(password: &str) -> Result<String, InfraError> {
    let fail = |e: String| InfraError::Internal(format!("password hashing: {e}"));
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(|e| fail(e.to_string()))?;
    let hasher = argon2();
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(|blocks| hasher.hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut output, blocks))
        .map_err(|e| fail(e.to_string()))?;
    let output = Output::new(&output).map_err(|e| fail(e.to_string()))?;
    let params = ParamsString::try_from(hasher.params()).map_err(|e| fail(e.to_string()))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Checks a password against a stored Argon2 hash (in constant time over the output). A hash
/// made with other parameters than today's is still checked, with memory of its own size.
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed)) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else { return false };
    let hasher = Argon2::new(algorithm, version, params.clone());
    let mut output = vec![0u8; expected.len()];
    let computed = if params.block_count() <= MEMORY_KIB as usize {
        with_memory(|blocks| hasher.hash_password_into_with_memory(password.as_bytes(), salt_raw, &mut output, blocks))
    } else {
        hasher.hash_password_into(password.as_bytes(), salt_raw, &mut output)
    };
    computed.is_ok() && constant_time_eq(&output, expected.as_bytes())
}

/// Spends the same time as a real verification, so unknown accounts cannot be told apart by timing.
fn dummy_verify(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default());
    let _ = verify_password(password, hash);
}

/// What a successful sign-in leads to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// A normal sign-in with the account's own password.
    SignedIn { account: Account, person: Person },
    /// A one-time password was used (and is now spent): the person must activate the account.
    MustActivate { account: Account, person: Person },
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong account or password")]
    BadCredentials,
    #[error("the one-time password has expired")]
    OneTimePasswordExpired,
    #[error("the person is separated")]
    Separated,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<diesel::result::Error> for LoginError {
    fn from(e: diesel::result::Error) -> Self {
        LoginError::Infra(e.into())
    }
}

/// What a sign-in is checked against, read in one short use of a database connection: the
/// register entry and account the identifier names (if any) and its pending one-time password.
pub struct Stored {
    found: Option<(Person, Account)>,
    one_time: Option<OneTimePasswordRow>,
}

impl Stored {
    /// The person the identifier resolved to, if any (to count attempts under the person).
    pub fn person(&self) -> Option<&Person> {
        self.found.as_ref().map(|(p, _)| p)
    }
}

/// Reads what [`check`] needs. No secret is examined here, so the connection is held briefly.
pub fn load(conn: &mut DbConn, protector: &DataProtector, identifier: &str) -> Result<Stored, InfraError> {
    let Some((person, Some(account))) = accounts::find_by_identifier(conn, protector, identifier)? else {
        return Ok(Stored { found: None, one_time: None });
    };
    let one_time: Option<OneTimePasswordRow> = one_time_passwords::table
        .find(&account.id)
        .select(OneTimePasswordRow::as_select())
        .get_result(conn)
        .optional()
        .map_err(InfraError::from)?;
    Ok(Stored { found: Some((person, account)), one_time })
}

/// A password that matched, before anything is written.
#[derive(Debug)]
pub enum Checked {
    /// The account's own password.
    Password { account: Account, person: Person },
    /// The pending one-time password (its stored hash, to consume exactly that one).
    OneTime { account: Account, person: Person, password_hash: String },
}

/// Compares the password with what was stored: Argon2id (CPU and memory heavy), so run it
/// with [`check_off_thread`], never while holding a database connection.
pub fn check(stored: Stored, password: &str, now: i64) -> Result<Checked, LoginError> {
    let Some((person, account)) = stored.found else {
        dummy_verify(password);
        return Err(LoginError::BadCredentials);
    };
    if let Some(otp) = stored.one_time {
        if constant_time_eq(sha256_b64(password.as_bytes()).as_bytes(), otp.password_hash.as_bytes()) {
            if otp.expires_at <= now {
                return Err(LoginError::OneTimePasswordExpired);
            }
            if person.status == PersonStatus::Separated {
                return Err(LoginError::Separated);
            }
            return Ok(Checked::OneTime { account, person, password_hash: otp.password_hash });
        }
    }
    let ok = match (&account.password_hash, account.state) {
        (Some(hash), AccountState::Active) => verify_password(password, hash),
        _ => {
            dummy_verify(password);
            false
        }
    };
    if !ok {
        return Err(LoginError::BadCredentials);
    }
    if person.status == PersonStatus::Separated {
        return Err(LoginError::Separated);
    }
    Ok(Checked::Password { account, person })
}

/// Password checks running at once; each Argon2id verification holds 19 MiB.
static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// [`check`] on a blocking thread, a few at a time, so the async workers and the database pool
/// stay free while Argon2id runs.
pub async fn check_off_thread(stored: Stored, password: String, now: i64) -> Result<Checked, LoginError> {
    let _permit = CHECKS.acquire().await.map_err(|e| InfraError::Internal(format!("password check: {e}")))?;
    tokio::task::spawn_blocking(move || check(stored, &password, now))
        .await
        .map_err(|e| InfraError::Internal(format!("password check: {e}")))?
}

/// Writes what a match leads to: a one-time password is consumed (delete-where-hash-matches,
/// so of concurrent sign-ins with it only one succeeds).
pub fn complete(conn: &mut DbConn, checked: Checked) -> Result<LoginOutcome, LoginError> {
    match checked {
        Checked::Password { account, person } => Ok(LoginOutcome::SignedIn { account, person }),
        Checked::OneTime { account, person, password_hash } => {
            let deleted = diesel::delete(
                one_time_passwords::table
                    .filter(one_time_passwords::account_id.eq(&account.id))
                    .filter(one_time_passwords::password_hash.eq(&password_hash)),
            )
            .execute(conn)?;
            if deleted != 1 {
                return Err(LoginError::BadCredentials);
            }
            Ok(LoginOutcome::MustActivate { account, person })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::national_id::NationalId;

    #[test]
    fn argon2id_hashes_verify_and_carry_owasp_parameters() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn hashes_agree_with_the_library_s_own_hasher_and_verifier_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_password("correct horse battery").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2().verify_password(b"correct horse battery", &parsed).is_ok(), "the library accepts ours");
        assert!(argon2().verify_password(b"correct horse batterx", &parsed).is_err());
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = argon2().hash_password(b"pw-1", &salt).unwrap().to_string();
        assert!(verify_password("pw-1", &theirs) && !verify_password("pw-2", &theirs), "we accept the library's");
        // Other parameters (a smaller and a larger memory cost) and Argon2i are still checked.
        for (alg, m) in [(Algorithm::Argon2id, 8 * 1024), (Algorithm::Argon2id, 24 * 1024), (Algorithm::Argon2i, 4096)]
        {
            let other = Argon2::new(alg, Version::V0x13, Params::new(m, 1, 1, None).unwrap());
            let h = other.hash_password(b"pw-3", &salt).unwrap().to_string();
            assert!(verify_password("pw-3", &h) && !verify_password("pw-4", &h), "{h}");
        }
        // A truncated or tampered output is refused.
        let cut = &ours[..ours.len() - 4];
        assert!(!verify_password("correct horse battery", cut));
    }

    fn stored(password_hash: Option<String>, state: AccountState, status: PersonStatus) -> Stored {
        let person = Person {
            id: "p-1".into(),
            national_id: NationalId::parse("A123456789").unwrap(),
            name: "王小明".into(),
            agency_code: "A21000000I".into(),
            unit: "資訊處".into(),
            person_category: "01".into(),
            concurrent_duty: String::new(),
            status,
            email: String::new(),
        };
        let account = Account {
            id: "acc-1".into(),
            person_id: "p-1".into(),
            account_name: Some("ming.wang".into()),
            email: None,
            password_hash,
            state,
            email_verified: false,
        };
        Stored { found: Some((person, account)), one_time: None }
    }

    fn with_one_time(mut s: Stored, password: &str, expires_at: i64) -> Stored {
        s.one_time = Some(OneTimePasswordRow {
            account_id: "acc-1".into(),
            password_hash: sha256_b64(password.as_bytes()),
            issued_by: "hr".into(),
            created_at: 0,
            expires_at,
        });
        s
    }

    #[test]
    fn the_password_signs_in_an_active_account_of_a_person_still_employed() {
        use AccountState::{Active, Pending};
        use PersonStatus::{Active as Employed, Separated};
        let hash = || Some(hash_password("correct horse battery").unwrap());
        let s = stored(hash(), Active, Employed);
        assert_eq!(s.person().map(|p| p.id.as_str()), Some("p-1"));
        assert!(matches!(check(s, "correct horse battery", 100), Ok(Checked::Password { .. })));
        assert!(matches!(
            check(stored(hash(), Active, Employed), "correct horse batterx", 100),
            Err(LoginError::BadCredentials)
        ));
        // A pending account has no password yet, whatever is stored.
        assert!(matches!(
            check(stored(hash(), Pending, Employed), "correct horse battery", 100),
            Err(LoginError::BadCredentials)
        ));
        // Separation is told only to someone who knew the password.
        assert!(matches!(
            check(stored(hash(), Active, Separated), "correct horse battery", 100),
            Err(LoginError::Separated)
        ));
        assert!(matches!(
            check(stored(hash(), Active, Separated), "correct horse batterx", 100),
            Err(LoginError::BadCredentials)
        ));
        let unknown = Stored { found: None, one_time: None };
        assert!(unknown.person().is_none());
        assert!(matches!(check(unknown, "correct horse battery", 100), Err(LoginError::BadCredentials)));
    }

    #[test]
    fn the_one_time_password_works_until_it_expires_and_never_for_a_separated_person() {
        use PersonStatus::{Active as Employed, Separated};
        let pending = |status| with_one_time(stored(None, AccountState::Pending, status), "Otp-12345678", 1_000);
        match check(pending(Employed), "Otp-12345678", 999) {
            Ok(Checked::OneTime { password_hash, .. }) => assert_eq!(password_hash, sha256_b64(b"Otp-12345678")),
            other => panic!("a live one-time password signs in, got {other:?}"),
        }
        assert!(matches!(check(pending(Employed), "Otp-12345678", 1_000), Err(LoginError::OneTimePasswordExpired)));
        assert!(matches!(check(pending(Separated), "Otp-12345678", 999), Err(LoginError::Separated)));
        assert!(matches!(check(pending(Employed), "Otp-12345679", 999), Err(LoginError::BadCredentials)));
        // An account's own password still works while a one-time password is pending.
        let hash = Some(hash_password("correct horse battery").unwrap());
        let active = with_one_time(stored(hash, AccountState::Active, Employed), "Otp-12345678", 1_000);
        assert!(matches!(check(active, "correct horse battery", 999), Ok(Checked::Password { .. })));
    }
}
