//! Signing keys and their rotation.
//!
//! Each algorithm — ES256 (the default) and RS256 (for clients that ask for it) — has one key
//! that signs at a time. Keys live in the database with the private part sealed by the data key,
//! so every node signs with the same keys and a rotation made by the CLI anywhere reaches all of
//! them. Where a key is in its lifecycle follows from its timestamps alone ([`lifecycle`]), so
//! every node reaches the same answer from the same rows, and the rules are tested with an
//! explicit `now` instead of sleeping:
//!
//! - **next**: made by `idp keys rotate`; published in the JWKS but not signing until
//!   `activates_at`, so every node and relying parties' cached JWKS have it before the first
//!   token signed with it arrives.
//! - **active**: the newest key of its algorithm whose `activates_at` has passed; it signs.
//! - **retiring**: replaced by a newer active key at `retired_at`; it no longer signs but stays
//!   published and accepted until `retired_at` + retention (the longest token lifetime plus a
//!   margin), so everything it signed can be verified until it expires.
//! - **expired**: gone from the JWKS and from verification; the row is deleted at the next
//!   rotation.
//!
//! Signing never touches the database: each node holds a snapshot of the keys (with their
//! timestamps, so a `next` key starts signing on time without a reload), and a background task
//! reloads the snapshot every `keys.reload_interval` to pick up rotations.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::prelude::*;
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::audit::{self, Actor, Event};
use crate::config::Config;
use crate::crypto::{random_token, DataProtector};
use crate::error::{now, InfraError};
use crate::store::db::models::SigningKeyRow;
use crate::store::db::schema::signing_keys;
use crate::store::db::{Db, DbConn};

/// The algorithms we sign with; each has its own key and lifecycle.
pub const ALGORITHMS: [&str; 2] = ["ES256", "RS256"];

/// Added to the longest token lifetime (with the reload interval) before a replaced key leaves
/// the JWKS: it covers clock differences between nodes and relying parties.
const RETENTION_MARGIN_SECS: i64 = 300;

/// A token naming an unknown key id makes the node reload early (a key rotated with `--now` on
/// another node), but at most this often, so forged tokens cannot make it hammer the database.
const MIN_RELOAD_GAP: Duration = Duration::from_secs(5);

/// Where a key is in its lifecycle at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Next,
    Active,
    Retiring,
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Expired => "expired",
        }
    }

    /// Whether the key is in the JWKS and accepted when verifying our own tokens.
    pub fn is_published(self) -> bool {
        self != KeyState::Expired
    }
}

/// The timestamps of one key: all its lifecycle depends on (epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTimes {
    pub kid: String,
    pub alg: String,
    pub created_at: i64,
    pub activates_at: i64,
    /// As stored: set by the rotation that replaced the key.
    pub retired_at: Option<i64>,
}

impl From<&SigningKeyRow> for KeyTimes {
    fn from(r: &SigningKeyRow) -> Self {
        Self {
            kid: r.kid.clone(),
            alg: r.alg.clone(),
            created_at: r.created_at,
            activates_at: r.activates_at,
            retired_at: r.retired_at,
        }
    }
}

/// A key's lifecycle at one moment, as `idp keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyStatus {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    pub created_at: i64,
    pub activates_at: i64,
    /// When it stops (or stopped) signing: its successor's activation; none while nothing
    /// replaces it.
    pub retired_at: Option<i64>,
    /// When it leaves the JWKS.
    pub unpublished_at: Option<i64>,
}

/// How long keys wait and linger, in seconds, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// From rotation to signing (`keys.activation_delay`).
    pub activation_delay: i64,
    /// From retirement to leaving the JWKS: the longest token lifetime, plus the reload
    /// interval (a node may sign with a replaced key until it reloads, after `--now`), plus a
    /// margin for clocks.
    pub retention: i64,
}

fn secs_ceil(d: Duration) -> i64 {
    let s = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i64::try_from(s).unwrap_or(i64::MAX)
}

impl KeyPolicy {
    pub fn from_config(config: &Config) -> Self {
        let longest = config.tokens.id_token_ttl.max(config.tokens.access_token_ttl);
        Self {
            activation_delay: secs_ceil(config.keys.activation_delay),
            retention: secs_ceil(longest)
                .saturating_add(secs_ceil(config.keys.reload_interval))
                .saturating_add(RETENTION_MARGIN_SECS),
        }
    }
}

/// Orders the keys of one algorithm: later activation wins, then later creation; within one
/// second (timestamps are whole seconds) a key a rotation has replaced comes before the one
/// that replaced it, which has no `retired_at` yet; the kid settles the rest (two nodes making
/// a first key at once), so every node breaks ties the same way.
fn order(k: &KeyTimes) -> (i64, i64, i64, &str) {
    (k.activates_at, k.created_at, k.retired_at.unwrap_or(i64::MAX), k.kid.as_str())
}

/// The key that signs for `alg`: the newest whose activation has passed. If none has — a node
/// whose clock runs behind the one that made the very first key — the oldest one signs: a key
/// with nothing before it has no cached JWKS to wait for.
fn signer<'a, I>(keys: I, alg: &str, now: i64) -> Option<&'a KeyTimes>
where
    I: Iterator<Item = &'a KeyTimes> + Clone,
{
    let same = keys.filter(move |k| k.alg == alg);
    same.clone()
        .filter(|k| k.activates_at <= now)
        .max_by(|a, b| order(a).cmp(&order(b)))
        .or_else(|| same.min_by(|a, b| order(a).cmp(&order(b))))
}

/// The lifecycle of `key` among `keys` (which include it) at `now`, without allocating: this
/// runs on the verification path.
fn place<'a, I>(keys: I, key: &KeyTimes, now: i64, retention: i64) -> (KeyState, Option<i64>, Option<i64>)
where
    I: Iterator<Item = &'a KeyTimes> + Clone,
{
    // A key is replaced when the next key of its algorithm activates; the stored value covers
    // a successor that has since been deleted by hand.
    let successor =
        keys.clone().filter(|k| k.alg == key.alg && order(k) > order(key)).min_by(|a, b| order(a).cmp(&order(b)));
    let retired_at = successor.map(|s| s.activates_at).or(key.retired_at);
    let unpublished_at = retired_at.map(|r| r.saturating_add(retention));
    let state = if signer(keys, &key.alg, now).is_some_and(|s| s.kid == key.kid) {
        KeyState::Active
    } else if key.activates_at > now {
        KeyState::Next
    } else {
        match unpublished_at {
            Some(u) if now >= u => KeyState::Expired,
            _ => KeyState::Retiring,
        }
    };
    (state, retired_at, unpublished_at)
}

/// Every key's lifecycle at `now`, in the order given.
pub fn lifecycle(keys: &[KeyTimes], now: i64, retention: i64) -> Vec<KeyStatus> {
    keys.iter()
        .map(|k| {
            let (state, retired_at, unpublished_at) = place(keys.iter(), k, now, retention);
            KeyStatus {
                kid: k.kid.clone(),
                alg: k.alg.clone(),
                state,
                created_at: k.created_at,
                activates_at: k.activates_at,
                retired_at,
                unpublished_at,
            }
        })
        .collect()
}

fn algorithm(name: &str) -> Result<Algorithm, InfraError> {
    match name {
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        other => Err(InfraError::Internal(format!("unsupported signing algorithm `{other}`"))),
    }
}

/// Makes a new key pair; it signs from `now` unless the caller moves `activates_at`.
fn generate(alg: Algorithm, protector: &DataProtector, now: i64) -> Result<SigningKeyRow, InfraError> {
    let kid = random_token(12);
    let (private, jwk, name) = if alg == Algorithm::ES256 {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| InfraError::Internal("EC key generation failed".into()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| InfraError::Internal("EC key parse failed".into()))?;
        let point = pair.public_key().as_ref(); // 0x04 || x || y
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        (pkcs8.as_ref().to_vec(), jwk, "ES256")
    } else {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| InfraError::Internal(format!("RSA key generation: {e}")))?;
        let der = key.to_pkcs1_der().map_err(|e| InfraError::Internal(format!("RSA key encoding: {e}")))?;
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        });
        (der.as_bytes().to_vec(), jwk, "RS256")
    };
    Ok(SigningKeyRow {
        kid,
        alg: name.into(),
        private_sealed: protector.seal(&private),
        public_jwk: jwk.to_string(),
        created_at: now,
        retired_at: None,
        activates_at: now,
    })
}

/// Makes a first key, signing at once, for every algorithm that has none; returns their kids.
pub fn ensure_keys(conn: &mut DbConn, protector: &DataProtector, now: i64) -> Result<Vec<String>, InfraError> {
    let mut made = Vec::new();
    for name in ALGORITHMS {
        let exists: i64 = signing_keys::table.filter(signing_keys::alg.eq(name)).count().get_result(conn)?;
        if exists == 0 {
            let row = generate(algorithm(name)?, protector, now)?;
            diesel::insert_into(signing_keys::table).values(&row).execute(conn)?;
            tracing::info!(kid = %row.kid, alg = name, "signing key created");
            made.push(row.kid);
        }
    }
    Ok(made)
}

fn all_times(conn: &mut DbConn) -> Result<Vec<KeyTimes>, InfraError> {
    let rows: Vec<(String, String, i64, i64, Option<i64>)> = signing_keys::table
        .select((
            signing_keys::kid,
            signing_keys::alg,
            signing_keys::created_at,
            signing_keys::activates_at,
            signing_keys::retired_at,
        ))
        .load(conn)?;
    let mut keys: Vec<KeyTimes> = rows
        .into_iter()
        .map(|(kid, alg, created_at, activates_at, retired_at)| KeyTimes {
            kid,
            alg,
            created_at,
            activates_at,
            retired_at,
        })
        .collect();
    keys.sort_by(|a, b| (a.alg.as_str(), order(a)).cmp(&(b.alg.as_str(), order(b))));
    Ok(keys)
}

/// Every stored key and its lifecycle at `now`, by algorithm and activation (for `idp keys list`).
pub fn list(conn: &mut DbConn, retention: i64, now: i64) -> Result<Vec<KeyStatus>, InfraError> {
    Ok(lifecycle(&all_times(conn)?, now, retention))
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new key.
    pub key: KeyTimes,
    /// The key that signed until now, and signs until the new one activates.
    pub replaces: Option<String>,
    /// Keys from an earlier rotation that had not started signing: the new key supersedes them,
    /// and having signed nothing they can leave the JWKS at once.
    pub withdrawn: Vec<String>,
}

/// Makes a new key for `alg` that signs from `activates_at` (`now` for an emergency rotation);
/// the key signing now keeps signing until then, and stays published afterwards until its
/// tokens have expired.
pub fn rotate(
    conn: &mut DbConn,
    protector: &DataProtector,
    alg: &str,
    activates_at: i64,
    now: i64,
) -> Result<Rotation, InfraError> {
    rotate_then(conn, protector, alg, activates_at, now, |_, _| Ok(()))
}

/// [`rotate`], with `then` run in the rotation's transaction (to audit it).
fn rotate_then(
    conn: &mut DbConn,
    protector: &DataProtector,
    alg: &str,
    activates_at: i64,
    now: i64,
    then: impl FnOnce(&mut DbConn, &Rotation) -> Result<(), InfraError>,
) -> Result<Rotation, InfraError> {
    let algo = algorithm(alg)?;
    // On a database no server has used yet there is nothing to rotate from: the first keys
    // sign at once, and the new one takes over from them like from any other.
    ensure_keys(conn, protector, now)?;
    // RSA generation is slow: outside the transaction.
    let mut row = generate(algo, protector, now)?;
    row.activates_at = activates_at.max(now);
    let key = KeyTimes::from(&row);
    conn.transaction(|c| {
        let before = all_times(c)?;
        let replaces = signer(before.iter(), alg, now).map(|k| k.kid.clone());
        let withdrawn: Vec<String> = before
            .iter()
            .filter(|k| k.alg == alg && k.activates_at > now && Some(&k.kid) != replaces.as_ref())
            .map(|k| k.kid.clone())
            .collect();
        for kid in &withdrawn {
            diesel::delete(signing_keys::table.find(kid)).execute(c)?;
        }
        // Whatever had not retired yet (the signing key, scheduled to hand over to a pending
        // key or not) now hands over to the new key.
        diesel::update(
            signing_keys::table
                .filter(signing_keys::alg.eq(alg))
                .filter(signing_keys::retired_at.is_null().or(signing_keys::retired_at.gt(now))),
        )
        .set(signing_keys::retired_at.eq(Some(row.activates_at)))
        .execute(c)?;
        diesel::insert_into(signing_keys::table).values(&row).execute(c)?;
        let rotation = Rotation { key, replaces, withdrawn };
        then(c, &rotation)?;
        Ok(rotation)
    })
}

/// The algorithms an operator names: `all` or one of [`ALGORITHMS`], in any case; none for
/// anything else.
pub fn algorithms_named(name: &str) -> Vec<&'static str> {
    if name.eq_ignore_ascii_case("all") {
        ALGORITHMS.to_vec()
    } else {
        ALGORITHMS.iter().copied().filter(|a| a.eq_ignore_ascii_case(name)).collect()
    }
}

/// An epoch time as RFC 3339 (UTC, whole seconds).
pub fn rfc3339(t: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    humantime_serde::re::humantime::format_rfc3339_seconds(at).to_string()
}

/// What a rotation for `alg` did, as its audit detail says it.
pub fn rotation_detail(alg: &str, r: &Rotation, at_once: bool, retention: i64) -> String {
    let activates_at = r.key.activates_at;
    let mut detail = format!(
        "{alg}: new key {} signs from {}{}",
        r.key.kid,
        rfc3339(activates_at),
        if at_once { " (at once)" } else { "" }
    );
    if let Some(old) = &r.replaces {
        detail.push_str(&format!(
            "; replaces {old}, published until {}",
            rfc3339(activates_at.saturating_add(retention))
        ));
    }
    if !r.withdrawn.is_empty() {
        detail.push_str(&format!("; withdrew pending {}", r.withdrawn.join(" ")));
    }
    detail
}

/// What an operator's rotation did: one line per algorithm, as audited, and the expired keys
/// it removed.
#[derive(Debug, Clone, Default)]
pub struct RotationReport {
    pub details: Vec<String>,
    pub removed: Vec<String>,
}

/// Rotates the keys of `algs` for `actor` (the command line, `/admin/keys`): each rotation
/// audited as `key.rotate` in its own transaction; `at_once` is an emergency rotation (the new
/// key signs now instead of after the policy's activation delay). Then removes expired keys.
pub fn rotate_by(
    conn: &mut DbConn,
    protector: &DataProtector,
    algs: &[&str],
    at_once: bool,
    policy: KeyPolicy,
    actor: &Actor,
    now: i64,
) -> Result<RotationReport, InfraError> {
    let activates_at = if at_once { now } else { now.saturating_add(policy.activation_delay) };
    let mut report = RotationReport::default();
    for alg in algs {
        let mut detail = String::new();
        rotate_then(conn, protector, alg, activates_at, now, |c, r| {
            detail = rotation_detail(alg, r, at_once, policy.retention);
            audit::record(c, Event { detail: detail.clone(), ..actor.event("key.rotate", "success") }, now)
        })?;
        report.details.push(detail);
    }
    report.removed = delete_expired(conn, policy.retention, now)?;
    Ok(report)
}

/// Deletes the keys that have left the JWKS; returns their kids.
pub fn delete_expired(conn: &mut DbConn, retention: i64, now: i64) -> Result<Vec<String>, InfraError> {
    let expired: Vec<String> =
        list(conn, retention, now)?.into_iter().filter(|k| k.state == KeyState::Expired).map(|k| k.kid).collect();
    for kid in &expired {
        diesel::delete(signing_keys::table.find(kid)).execute(conn)?;
    }
    Ok(expired)
}

/// The parts of a key that never change once made, shared between snapshots.
struct Material {
    alg: Algorithm,
    signing: SigningPair,
    decoding: DecodingKey,
    jwk: Value,
}

/// A private key parsed once. Signing through `jsonwebtoken::EncodingKey` re-parses the PKCS#8
/// document on every token, which was over a third of the cost of an ES256 signature.
enum SigningPair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl SigningPair {
    /// JWS signature bytes (ES256: the fixed-size r‖s form; RS256: PKCS#1 v1.5).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, InfraError> {
        let rng = SystemRandom::new();
        let failed = |_| InfraError::Internal("signing failed".into());
        match self {
            SigningPair::Ec(pair) => pair.sign(&rng, message).map(|s| s.as_ref().to_vec()).map_err(failed),
            SigningPair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature).map_err(failed)?;
                Ok(signature)
            }
        }
    }
}

impl Material {
    fn open(row: &SigningKeyRow, protector: &DataProtector) -> Result<Self, InfraError> {
        let alg = algorithm(&row.alg)?;
        let private = protector.open(&row.private_sealed)?;
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_str(&row.public_jwk).map_err(|e| InfraError::Internal(format!("key {}: {e}", row.kid)))?;
        let decoding =
            DecodingKey::from_jwk(&jwk).map_err(|e| InfraError::Internal(format!("key {}: {e}", row.kid)))?;
        let bad = |e: String| InfraError::Internal(format!("key {}: {e}", row.kid));
        let signing = if alg == Algorithm::RS256 {
            SigningPair::Rsa(RsaKeyPair::from_der(&private).map_err(|e| bad(e.to_string()))?)
        } else {
            SigningPair::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &private, &SystemRandom::new())
                    .map_err(|e| bad(e.to_string()))?,
            )
        };
        let jwk =
            serde_json::from_str(&row.public_jwk).map_err(|e| InfraError::Internal(format!("key {}: {e}", row.kid)))?;
        Ok(Self { alg, signing, decoding, jwk })
    }
}

/// The keys one node knows, as of its last reload; sorted by algorithm, then [`order`].
struct Snapshot {
    times: Vec<KeyTimes>,
    material: Vec<Arc<Material>>,
}

impl Snapshot {
    /// Opens the rows' keys, reusing what `previous` already opened (keys never change once
    /// made; only their timestamps do). Expired keys are not opened at all.
    fn build(
        rows: &[SigningKeyRow],
        previous: Option<&Snapshot>,
        protector: &DataProtector,
        retention: i64,
        now: i64,
    ) -> Result<Self, InfraError> {
        let mut all: Vec<KeyTimes> = rows.iter().map(KeyTimes::from).collect();
        all.sort_by(|a, b| (a.alg.as_str(), order(a)).cmp(&(b.alg.as_str(), order(b))));
        let rows: Vec<&SigningKeyRow> = all.iter().filter_map(|t| rows.iter().find(|r| r.kid == t.kid)).collect();
        let mut times = Vec::new();
        let mut material = Vec::new();
        for (row, t) in rows.iter().zip(&all) {
            if !place(all.iter(), t, now, retention).0.is_published() {
                continue;
            }
            let known =
                previous.and_then(|p| p.times.iter().position(|o| o.kid == t.kid).map(|i| p.material[i].clone()));
            let m = match known {
                Some(m) => m,
                None => Arc::new(Material::open(row, protector)?),
            };
            times.push(t.clone());
            material.push(m);
        }
        Ok(Self { times, material })
    }

    fn signer(&self, alg: &str, now: i64) -> Option<(&KeyTimes, &Material)> {
        let t = signer(self.times.iter(), alg, now)?;
        let i = self.times.iter().position(|o| o.kid == t.kid)?;
        Some((t, &self.material[i]))
    }
}

/// The node's signing keys: signs, verifies its own tokens and publishes the JWKS, all from an
/// in-memory snapshot that [`spawn_reloader`] keeps fresh.
pub struct KeySet {
    current: RwLock<Arc<Snapshot>>,
    retention: i64,
    /// Asks the reloader for an early reload (a token named a key we do not know yet).
    wake: Arc<Notify>,
    /// The serialized JWKS, per snapshot and second: what is published only changes with a
    /// reload or as time passes a key's timestamps.
    jwks_cache: std::sync::Mutex<Option<JwksCache>>,
}

struct JwksCache {
    snapshot: Arc<Snapshot>,
    at: i64,
    body: Arc<String>,
}

impl KeySet {
    /// Loads the keys, first making any that do not exist yet (first start).
    pub fn load_or_generate(
        conn: &mut DbConn,
        protector: &DataProtector,
        policy: KeyPolicy,
        now: i64,
    ) -> Result<Self, InfraError> {
        ensure_keys(conn, protector, now)?;
        let rows: Vec<SigningKeyRow> = signing_keys::table.select(SigningKeyRow::as_select()).load(conn)?;
        Self::from_rows(&rows, protector, policy, now)
    }

    fn from_rows(
        rows: &[SigningKeyRow],
        protector: &DataProtector,
        policy: KeyPolicy,
        now: i64,
    ) -> Result<Self, InfraError> {
        let snapshot = Snapshot::build(rows, None, protector, policy.retention, now)?;
        Ok(Self {
            current: RwLock::new(Arc::new(snapshot)),
            retention: policy.retention,
            wake: Arc::new(Notify::new()),
            jwks_cache: std::sync::Mutex::new(None),
        })
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock still holds a complete snapshot: replacing it is a single assignment.
        self.current.read().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Re-reads the keys from the database (blocking; run it off the async executor).
    pub fn reload(&self, conn: &mut DbConn, protector: &DataProtector, now: i64) -> Result<(), InfraError> {
        let rows: Vec<SigningKeyRow> = signing_keys::table.select(SigningKeyRow::as_select()).load(conn)?;
        self.replace(&rows, protector, now)
    }

    fn replace(&self, rows: &[SigningKeyRow], protector: &DataProtector, now: i64) -> Result<(), InfraError> {
        let old = self.snapshot();
        let new = Snapshot::build(rows, Some(&old), protector, self.retention, now)?;
        for t in new.times.iter().filter(|t| !old.times.iter().any(|o| o.kid == t.kid)) {
            tracing::info!(kid = %t.kid, alg = %t.alg, activates_at = t.activates_at, "signing key loaded");
        }
        let new = Arc::new(new);
        match self.current.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
        Ok(())
    }

    /// The JWKS document serialized, as served at `/jwks`: every key that is next, active or
    /// retiring at `now`. Built once a second at most.
    pub fn jwks_body(&self, now: i64) -> Arc<String> {
        let snapshot = self.snapshot();
        let mut cache = self.jwks_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref().filter(|c| c.at == now && Arc::ptr_eq(&c.snapshot, &snapshot)) {
            return c.body.clone();
        }
        let body = Arc::new(self.jwks(now).to_string());
        *cache = Some(JwksCache { snapshot, at: now, body: body.clone() });
        body
    }

    /// The JWKS document: every key that is next, active or retiring at `now`.
    pub fn jwks(&self, now: i64) -> Value {
        let snap = self.snapshot();
        let keys: Vec<&Value> = snap
            .times
            .iter()
            .zip(&snap.material)
            .filter(|(t, _)| place(snap.times.iter(), t, now, self.retention).0.is_published())
            .map(|(_, m)| &m.jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// Signs claims as a JWT with the key active at `now` for `alg` (`ES256` unless `RS256` is
    /// asked for).
    pub fn sign<T: serde::Serialize>(
        &self,
        alg: &str,
        typ: Option<&str>,
        claims: &T,
        now: i64,
    ) -> Result<String, InfraError> {
        let alg = if alg == "RS256" { "RS256" } else { "ES256" };
        let snap = self.snapshot();
        let (times, key) =
            snap.signer(alg, now).ok_or_else(|| InfraError::Internal(format!("no signing key for {alg}")))?;
        let mut header = Header::new(key.alg);
        header.kid = Some(times.kid.clone());
        if let Some(typ) = typ {
            header.typ = Some(typ.into());
        }
        let failed = |e: serde_json::Error| InfraError::Internal(format!("signing: {e}"));
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(failed)?);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(failed)?));
        let signature = key.signing.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }

    /// Verifies a JWT this provider signed with a key still published, returning its claims.
    /// Expiry is not checked (an `id_token_hint` may be expired); audience and issuer are left
    /// to the caller. `now` decides which keys are still published.
    pub fn verify_own(&self, token: &str, now: i64) -> Option<Value> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let kid = header.kid?;
        let snap = self.snapshot();
        let Some(i) = snap.times.iter().position(|t| t.kid == kid) else {
            // Perhaps rotated with `--now` on another node: look again soon.
            self.wake.notify_one();
            return None;
        };
        let key = &snap.material[i];
        if key.alg != header.alg || !place(snap.times.iter(), &snap.times[i], now, self.retention).0.is_published() {
            return None;
        }
        let mut validation = jsonwebtoken::Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &key.decoding, &validation).ok().map(|d| d.claims)
    }
}

/// Keeps a node's keys fresh: reloads them every `every`, or early (at most every few seconds)
/// when a token named an unknown key. Ends when the key set is dropped. A failed reload keeps
/// the keys loaded before: signing goes on.
pub fn spawn_reloader(keys: &Arc<KeySet>, db: Db, protector: Arc<DataProtector>, every: Duration) {
    let weak = Arc::downgrade(keys);
    let wake = keys.wake.clone();
    tokio::spawn(async move {
        let mut last = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = wake.notified() => tokio::time::sleep(MIN_RELOAD_GAP.saturating_sub(last.elapsed())).await,
            }
            let Some(keys) = weak.upgrade() else { return };
            let p = protector.clone();
            let result = db.run(move |c| keys.reload(c, &p, now())).await;
            last = Instant::now();
            if let Err(e) = result {
                tracing::warn!(error = %e, "signing keys: reload failed; the keys loaded before stay in use");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const RETENTION: i64 = 3600 + 30 + 300;

    fn key(kid: &str, alg: &str, created_at: i64, activates_at: i64, retired_at: Option<i64>) -> KeyTimes {
        KeyTimes { kid: kid.into(), alg: alg.into(), created_at, activates_at, retired_at }
    }

    fn states(keys: &[KeyTimes], now: i64) -> Vec<(String, KeyState)> {
        lifecycle(keys, now, RETENTION).into_iter().map(|s| (s.kid, s.state)).collect()
    }

    fn st(kid: &str, s: KeyState) -> (String, KeyState) {
        (kid.to_string(), s)
    }

    #[test]
    fn a_rotated_key_is_next_then_active_and_the_old_one_retires_then_expires() {
        use KeyState::*;
        // `a` signs since 1000; at 5000 a rotation makes `b`, activating at 5600.
        let keys = [key("a", "ES256", 1000, 1000, Some(5600)), key("b", "ES256", 5000, 5600, None)];
        assert_eq!(states(&keys, 5000), [st("a", Active), st("b", Next)]);
        assert_eq!(states(&keys, 5599), [st("a", Active), st("b", Next)]);
        assert_eq!(states(&keys, 5600), [st("a", Retiring), st("b", Active)]);
        assert_eq!(states(&keys, 5600 + RETENTION - 1), [st("a", Retiring), st("b", Active)]);
        assert_eq!(states(&keys, 5600 + RETENTION), [st("a", Expired), st("b", Active)]);
        let a = &lifecycle(&keys, 5000, RETENTION)[0];
        assert_eq!((a.retired_at, a.unpublished_at), (Some(5600), Some(5600 + RETENTION)));
        let b = &lifecycle(&keys, 5000, RETENTION)[1];
        assert_eq!((b.retired_at, b.unpublished_at), (None, None));
    }

    #[test]
    fn an_emergency_rotation_signs_at_once_and_keeps_the_old_key_published() {
        use KeyState::*;
        let keys = [key("a", "ES256", 1000, 1000, Some(5000)), key("b", "ES256", 5000, 5000, None)];
        assert_eq!(states(&keys, 5000), [st("a", Retiring), st("b", Active)]);
        assert_eq!(states(&keys, 5000 + RETENTION), [st("a", Expired), st("b", Active)]);
    }

    #[test]
    fn algorithms_rotate_independently() {
        use KeyState::*;
        let keys = [
            key("e1", "ES256", 1000, 1000, Some(5600)),
            key("e2", "ES256", 5000, 5600, None),
            key("r1", "RS256", 1000, 1000, None),
        ];
        assert_eq!(states(&keys, 6000), [st("e1", Retiring), st("e2", Active), st("r1", Active)]);
    }

    #[test]
    fn successors_decide_retirement_even_without_a_stored_time() {
        use KeyState::*;
        // Two nodes made a first key at the same moment: both agree on one signer (later kid),
        // the other stays published for its tokens.
        let keys = [key("x", "ES256", 1000, 1000, None), key("y", "ES256", 1000, 1000, None)];
        assert_eq!(states(&keys, 1000), [st("x", Retiring), st("y", Active)]);
        assert_eq!(states(&keys, 1000 + RETENTION), [st("x", Expired), st("y", Active)]);
        // Keys from before rotation existed: a key replaced by a later one retires at its
        // successor's activation.
        let keys = [
            key("a", "ES256", 1000, 1000, None),
            key("b", "ES256", 2000, 2600, None),
            key("c", "ES256", 3000, 3600, None),
        ];
        assert_eq!(states(&keys, 3000), [st("a", Retiring), st("b", Active), st("c", Next)]);
        assert_eq!(lifecycle(&keys, 3000, RETENTION)[0].retired_at, Some(2600));
        assert_eq!(lifecycle(&keys, 3000, RETENTION)[1].retired_at, Some(3600));
    }

    #[test]
    fn an_emergency_rotation_in_the_same_second_still_hands_over() {
        use KeyState::*;
        // Timestamps are whole seconds: the first key and its replacement can share all of
        // them but `retired_at`, whatever their kids.
        for (old, new) in [("z", "a"), ("a", "z")] {
            let keys = [key(old, "ES256", 1000, 1000, Some(1000)), key(new, "ES256", 1000, 1000, None)];
            assert_eq!(states(&keys, 1000), [st(old, Retiring), st(new, Active)]);
        }
    }

    #[test]
    fn a_node_whose_clock_runs_behind_still_signs_with_the_first_key() {
        let keys = [key("a", "ES256", 1000, 1000, None)];
        assert_eq!(states(&keys, 990), [st("a", KeyState::Active)]);
    }

    #[test]
    fn the_policy_covers_the_longest_token_and_a_margin() {
        let mut config = Config::default();
        config.tokens.access_token_ttl = Duration::from_secs(7200);
        let p = KeyPolicy::from_config(&config);
        assert_eq!(p.activation_delay, 600);
        assert_eq!(p.retention, 7200 + 30 + RETENTION_MARGIN_SECS);
    }

    fn protector() -> DataProtector {
        DataProtector::from_key(&[7u8; 32])
    }

    fn kid_of(jwt: &str) -> String {
        jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
    }

    fn jwks_kids(keys: &KeySet, now: i64) -> Vec<String> {
        let v = keys.jwks(now);
        v["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn the_key_set_signs_with_the_active_key_and_publishes_next_and_retiring_ones() {
        let p = protector();
        let policy = KeyPolicy { activation_delay: 600, retention: RETENTION };
        let mut old = generate(Algorithm::ES256, &p, 1000).unwrap();
        let mut new = generate(Algorithm::ES256, &p, 5000).unwrap();
        let rsa = generate(Algorithm::RS256, &p, 1000).unwrap();
        new.activates_at = 5600;
        old.retired_at = Some(5600);
        let keys = KeySet::from_rows(&[old.clone(), new.clone(), rsa.clone()], &p, policy, 5000).unwrap();
        let claims = json!({ "sub": "s" });

        // Before activation: the old key signs; both are published.
        let t_old = keys.sign("ES256", Some("JWT"), &claims, 5000).unwrap();
        assert_eq!(kid_of(&t_old), old.kid);
        let mut published = jwks_kids(&keys, 5000);
        published.sort();
        let mut expected = vec![old.kid.clone(), new.kid.clone(), rsa.kid.clone()];
        expected.sort();
        assert_eq!(published, expected);
        assert_eq!(kid_of(&keys.sign("RS256", None, &claims, 5000).unwrap()), rsa.kid);
        assert_eq!(kid_of(&keys.sign("none", None, &claims, 5000).unwrap()), old.kid, "ES256 unless RS256");

        // At activation the new key signs, without a reload; the old one still verifies.
        let t_new = keys.sign("ES256", None, &claims, 5600).unwrap();
        assert_eq!(kid_of(&t_new), new.kid);
        assert_eq!(keys.verify_own(&t_old, 5600).unwrap()["sub"], "s");
        assert_eq!(keys.verify_own(&t_new, 5600).unwrap()["sub"], "s");

        // After retention the old key is gone from the JWKS and from verification.
        let gone = 5600 + RETENTION;
        assert!(!jwks_kids(&keys, gone).contains(&old.kid));
        assert!(keys.verify_own(&t_old, gone).is_none());
        assert!(keys.verify_own(&t_new, gone).is_some());

        // A tampered token does not verify.
        let mut forged = t_new.clone();
        forged.pop();
        forged.push(if t_new.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.verify_own(&forged, 5600).is_none());
    }

    /// `sign`, `verify_own` and `jwks_body` answer for the `now` they are given, to the second:
    /// the new key signs from its `activates_at` and not the second before, and the replaced
    /// key is published and verifies up to the last second of its retention and not at its end.
    #[test]
    fn the_key_set_switches_and_unpublishes_at_the_exact_second() {
        let p = protector();
        let policy = KeyPolicy { activation_delay: 600, retention: RETENTION };
        let mut old = generate(Algorithm::ES256, &p, 1000).unwrap();
        let mut new = generate(Algorithm::ES256, &p, 5000).unwrap();
        new.activates_at = 5600;
        old.retired_at = Some(5600);
        let keys = KeySet::from_rows(&[old.clone(), new.clone()], &p, policy, 5000).unwrap();
        let claims = json!({ "sub": "s" });

        assert_eq!(kid_of(&keys.sign("ES256", None, &claims, 5599).unwrap()), old.kid, "the second before");
        assert_eq!(kid_of(&keys.sign("ES256", None, &claims, 5600).unwrap()), new.kid, "from activates_at");

        let t_old = keys.sign("ES256", None, &claims, 5599).unwrap();
        let gone = 5600 + RETENTION;
        assert!(keys.verify_own(&t_old, gone - 1).is_some(), "last second of retention");
        assert!(keys.verify_own(&t_old, gone).is_none(), "retention ended");
        assert!(jwks_kids(&keys, gone - 1).contains(&old.kid));
        assert!(!jwks_kids(&keys, gone).contains(&old.kid));

        // The served body is cached per second, never across one.
        let body_at =
            |now| serde_json::from_str::<Value>(&keys.jwks_body(now)).unwrap()["keys"].as_array().unwrap().len();
        assert_eq!(body_at(gone - 1), 2);
        assert_eq!(body_at(gone), 1);
        assert_eq!(body_at(gone - 1), 2, "an earlier `now` is answered for itself");
    }

    #[test]
    fn a_reload_picks_up_new_keys_and_moved_timestamps() {
        let p = protector();
        let policy = KeyPolicy { activation_delay: 600, retention: RETENTION };
        let old = generate(Algorithm::ES256, &p, 1000).unwrap();
        let keys = KeySet::from_rows(std::slice::from_ref(&old), &p, policy, 2000).unwrap();
        let mut new = generate(Algorithm::ES256, &p, 2000).unwrap();
        new.activates_at = 2600;
        keys.replace(&[old.clone(), new.clone()], &p, 2000).unwrap();
        assert!(jwks_kids(&keys, 2000).contains(&new.kid));
        assert_eq!(kid_of(&keys.sign("ES256", None, &json!({}), 2000).unwrap()), old.kid);
        new.activates_at = 1500;
        keys.replace(&[old.clone(), new.clone()], &p, 2000).unwrap();
        assert_eq!(kid_of(&keys.sign("ES256", None, &json!({}), 2000).unwrap()), new.kid);
    }

    #[test]
    fn rotation_in_the_database_lists_withdraws_and_deletes() {
        let db = Db::connect("sqlite://:memory:", 1).unwrap();
        db.migrate().unwrap();
        let mut conn = db.get().unwrap();
        let p = protector();
        let made = ensure_keys(&mut conn, &p, 1000).unwrap();
        assert_eq!(made.len(), 2);
        assert!(ensure_keys(&mut conn, &p, 1000).unwrap().is_empty(), "only once");
        let first = made[0].clone();

        let r = rotate(&mut conn, &p, "ES256", 5600, 5000).unwrap();
        assert_eq!(r.replaces.as_deref(), Some(first.as_str()));
        assert!(r.withdrawn.is_empty());
        let list_at = |conn: &mut DbConn, now| {
            list(conn, RETENTION, now)
                .unwrap()
                .into_iter()
                .filter(|k| k.alg == "ES256")
                .map(|k| (k.kid, k.state))
                .collect::<Vec<_>>()
        };
        assert_eq!(list_at(&mut conn, 5000), [st(&first, KeyState::Active), st(&r.key.kid, KeyState::Next)]);

        // Rotating again before activation supersedes the pending key, which signed nothing.
        let r2 = rotate(&mut conn, &p, "ES256", 5700, 5100).unwrap();
        assert_eq!(r2.withdrawn, std::slice::from_ref(&r.key.kid));
        assert_eq!(list_at(&mut conn, 5100), [st(&first, KeyState::Active), st(&r2.key.kid, KeyState::Next)]);
        assert_eq!(list_at(&mut conn, 5700), [st(&first, KeyState::Retiring), st(&r2.key.kid, KeyState::Active)]);

        // The server side sees the same: loaded at 5100 it signs with the first key, at 5700
        // with the new one.
        let keys =
            KeySet::load_or_generate(&mut conn, &p, KeyPolicy { activation_delay: 600, retention: RETENTION }, 5100)
                .unwrap();
        assert_eq!(kid_of(&keys.sign("ES256", None, &json!({}), 5100).unwrap()), first);
        assert_eq!(kid_of(&keys.sign("ES256", None, &json!({}), 5700).unwrap()), r2.key.kid);

        // Nothing is deleted while published; afterwards the row goes.
        assert!(delete_expired(&mut conn, RETENTION, 5700 + RETENTION - 1).unwrap().is_empty());
        assert_eq!(delete_expired(&mut conn, RETENTION, 5700 + RETENTION).unwrap(), [first]);
        assert_eq!(list_at(&mut conn, 5700 + RETENTION), [st(&r2.key.kid, KeyState::Active)]);

        // An emergency rotation in the very second the first key was made takes over.
        let rs_first = made[1].clone();
        let rs = rotate(&mut conn, &p, "RS256", 1000, 1000).unwrap();
        assert_eq!(rs.replaces.as_deref(), Some(rs_first.as_str()));
        let rs_states: Vec<_> = list(&mut conn, RETENTION, 1000)
            .unwrap()
            .into_iter()
            .filter(|k| k.alg == "RS256")
            .map(|k| (k.kid, k.state))
            .collect();
        assert!(rs_states.contains(&st(&rs.key.kid, KeyState::Active)), "{rs_states:?}");
        assert!(rs_states.contains(&st(&rs_first, KeyState::Retiring)), "{rs_states:?}");

        assert!(rotate(&mut conn, &p, "HS256", 6000, 6000).is_err());
    }

    #[test]
    fn an_emergency_rotation_over_a_pending_one_takes_over_at_once() {
        let db = Db::connect("sqlite://:memory:", 1).unwrap();
        db.migrate().unwrap();
        let mut conn = db.get().unwrap();
        let p = protector();
        let first = ensure_keys(&mut conn, &p, 1000).unwrap().remove(0);
        let pending = rotate(&mut conn, &p, "ES256", 5600, 5000).unwrap();
        let urgent = rotate(&mut conn, &p, "ES256", 5200, 5200).unwrap();
        assert_eq!(urgent.replaces.as_deref(), Some(first.as_str()));
        assert_eq!(urgent.withdrawn, std::slice::from_ref(&pending.key.kid));
        let es: Vec<KeyStatus> =
            list(&mut conn, RETENTION, 5200).unwrap().into_iter().filter(|k| k.alg == "ES256").collect();
        assert_eq!(es.len(), 2);
        assert_eq!(
            (es[0].kid.as_str(), es[0].state, es[0].retired_at),
            (first.as_str(), KeyState::Retiring, Some(5200))
        );
        assert_eq!((es[1].kid.as_str(), es[1].state), (urgent.key.kid.as_str(), KeyState::Active));
        // The stored retirement moved too, from the withdrawn key's activation to now.
        let stored: Option<i64> =
            signing_keys::table.find(&first).select(signing_keys::retired_at).first(&mut *conn).unwrap();
        assert_eq!(stored, Some(5200));
    }
}
