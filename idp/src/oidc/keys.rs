//! Signing keys: one ES256 key (the default) and one RS256 key (for clients that ask for it),
//! generated on first start, stored in the database with the private part sealed by the data
//! key, and shared by every node. Published as a JWKS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::prelude::*;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

use crate::crypto::{random_token, DataProtector};
use crate::error::InfraError;
use crate::store::db::models::SigningKeyRow;
use crate::store::db::schema::signing_keys;
use crate::store::db::DbConn;

/// A key ready to sign.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
}

/// The keys in use, and every published public key for verification.
pub struct KeySet {
    es256: SigningKey,
    rs256: SigningKey,
    published: Vec<(String, Algorithm, DecodingKey)>,
    jwks: Value,
}

fn alg_name(alg: Algorithm) -> &'static str {
    if alg == Algorithm::RS256 {
        "RS256"
    } else {
        "ES256"
    }
}

fn generate(alg: Algorithm, protector: &DataProtector, now: i64) -> Result<SigningKeyRow, InfraError> {
    let kid = random_token(12);
    let (private, jwk) = if alg == Algorithm::ES256 {
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
        (pkcs8.as_ref().to_vec(), jwk)
    } else {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| InfraError::Internal(format!("RSA key generation: {e}")))?;
        let der = key.to_pkcs1_der().map_err(|e| InfraError::Internal(format!("RSA key encoding: {e}")))?;
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        });
        (der.as_bytes().to_vec(), jwk)
    };
    Ok(SigningKeyRow {
        kid,
        alg: alg_name(alg).into(),
        private_sealed: protector.seal(&private),
        public_jwk: jwk.to_string(),
        created_at: now,
        retired_at: None,
    })
}

impl KeySet {
    /// Loads the keys, generating any that do not exist yet.
    pub fn load_or_generate(conn: &mut DbConn, protector: &DataProtector, now: i64) -> Result<Self, InfraError> {
        for alg in [Algorithm::ES256, Algorithm::RS256] {
            let exists: i64 = signing_keys::table
                .filter(signing_keys::alg.eq(alg_name(alg)))
                .filter(signing_keys::retired_at.is_null())
                .count()
                .get_result(conn)?;
            if exists == 0 {
                let row = generate(alg, protector, now)?;
                diesel::insert_into(signing_keys::table).values(&row).execute(conn)?;
            }
        }
        let rows: Vec<SigningKeyRow> = signing_keys::table
            .filter(signing_keys::retired_at.is_null())
            .order((signing_keys::created_at.desc(), signing_keys::kid.asc()))
            .select(SigningKeyRow::as_select())
            .load(conn)?;
        let mut es256 = None;
        let mut rs256 = None;
        let mut published = Vec::new();
        let mut keys = Vec::new();
        for row in rows {
            let private = protector.open(&row.private_sealed)?;
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&row.public_jwk)
                .map_err(|e| InfraError::Internal(format!("key {}: {e}", row.kid)))?;
            let decoding =
                DecodingKey::from_jwk(&jwk).map_err(|e| InfraError::Internal(format!("key {}: {e}", row.kid)))?;
            let (alg, encoding) = if row.alg == "RS256" {
                (Algorithm::RS256, EncodingKey::from_rsa_der(&private))
            } else {
                (Algorithm::ES256, EncodingKey::from_ec_der(&private))
            };
            let slot = if alg == Algorithm::RS256 { &mut rs256 } else { &mut es256 };
            if slot.is_none() {
                *slot = Some(SigningKey { kid: row.kid.clone(), alg, encoding });
            }
            published.push((row.kid.clone(), alg, decoding));
            keys.push(serde_json::from_str::<Value>(&row.public_jwk).map_err(|e| InfraError::Internal(e.to_string()))?);
        }
        let missing = || InfraError::Internal("no signing key".into());
        Ok(Self {
            es256: es256.ok_or_else(missing)?,
            rs256: rs256.ok_or_else(missing)?,
            published,
            jwks: json!({ "keys": keys }),
        })
    }

    /// The JWKS document.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Signs claims as a JWT with the key for `alg` (`ES256` unless `RS256` is asked for).
    pub fn sign<T: serde::Serialize>(&self, alg: &str, typ: Option<&str>, claims: &T) -> Result<String, InfraError> {
        let key = if alg == "RS256" { &self.rs256 } else { &self.es256 };
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        if let Some(typ) = typ {
            header.typ = Some(typ.into());
        }
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| InfraError::Internal(format!("signing: {e}")))
    }

    /// Verifies a JWT this provider signed, returning its claims. Expiry is not checked
    /// (an `id_token_hint` may be expired); audience and issuer are left to the caller.
    pub fn verify_own(&self, token: &str) -> Option<Value> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let kid = header.kid?;
        let (_, alg, key) = self.published.iter().find(|(k, a, _)| *k == kid && *a == header.alg)?;
        let mut validation = jsonwebtoken::Validation::new(*alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, key, &validation).ok().map(|d| d.claims)
    }
}
