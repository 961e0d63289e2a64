//! DPoP (RFC 9449): proofs that a request comes from the holder of a key, and tokens bound to
//! that key, so a stolen access or refresh token is worthless without the private key.
//!
//! A proof is a JWT signed by the client's key, with the public key in its header (`jwk`), the
//! method (`htm`) and URL (`htu`) of the one request it is for, when it was made (`iat`), a
//! unique id (`jti`), the server's nonce (`nonce`) and, on a resource request, the hash of the
//! access token it goes with (`ath`). The key's SHA-256 thumbprint (RFC 7638, `jkt`) is what
//! tokens are bound to (`cnf.jkt`).
//!
//! [`check`] is the pure part (form, signature, claims, nonce), tested with fixed times;
//! [`verify`] adds the one stateful rule: a `jti` is accepted once within the window, on every
//! node (the ephemeral store, `put_new`). The nonce needs no storage: it is a keyed hash of the
//! current five-minute period (the data-protection key every node shares), and the previous
//! period's is accepted too, so a nonce handed out just before the change still works.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::crypto::DataProtector;
use crate::error::InfraError;
use crate::state::AppState;
use crate::store::ephemeral::Key;

/// How long one server nonce is handed out.
const NONCE_PERIOD: i64 = 300;
/// The longest proof accepted; real ones are well under 2 KB even with an RSA key.
const MAX_PROOF_LEN: usize = 8192;
/// Members of a JWK that only a private key has: a proof carrying them is refused.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// The key a token is bound to (`cnf`, RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

/// Why a proof was refused.
#[derive(Debug, thiserror::Error)]
pub enum DpopError {
    /// `invalid_dpop_proof`: malformed, badly signed, for another request, stale, or replayed.
    #[error("{0}")]
    Invalid(String),
    /// `use_dpop_nonce`: well formed, but without the current server nonce.
    #[error("the DPoP proof must carry the server's current nonce")]
    UseNonce,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl DpopError {
    /// The RFC 9449 error code.
    pub fn code(&self) -> &'static str {
        match self {
            DpopError::Invalid(_) => "invalid_dpop_proof",
            DpopError::UseNonce => "use_dpop_nonce",
            DpopError::Infra(_) => "server_error",
        }
    }
}

fn invalid(d: impl Into<String>) -> DpopError {
    DpopError::Invalid(d.into())
}

/// The request a proof must be for.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// `POST`, `GET`, ….
    pub method: &'a str,
    /// The endpoint's URL, without query or fragment.
    pub url: &'a str,
    /// The access token presented with the proof (a resource request), whose hash must be `ath`.
    pub access_token: Option<&'a str>,
}

/// A proof that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The thumbprint of the key that signed it.
    pub jkt: String,
    pub jti: String,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// The server nonce of the period `now` falls in.
pub fn nonce(protector: &DataProtector, now: i64) -> String {
    period_nonce(protector, now.div_euclid(NONCE_PERIOD))
}

fn period_nonce(protector: &DataProtector, period: i64) -> String {
    protector.index(&format!("dpop-nonce:{period}"))
}

/// Whether `n` is this period's nonce or the previous one's.
fn nonce_is_current(protector: &DataProtector, n: &str, now: i64) -> bool {
    let period = now.div_euclid(NONCE_PERIOD);
    [period, period - 1]
        .iter()
        .any(|p| crate::crypto::constant_time_eq(period_nonce(protector, *p).as_bytes(), n.as_bytes()))
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK: the required members in lexicographic
/// order, no white space. `None` for a key type proofs may not use.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str).map(|v| Value::from(v).to_string());
    let canonical = match jwk.get("kty").and_then(Value::as_str)? {
        "EC" => format!(r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#, s("crv")?, s("x")?, s("y")?),
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, s("e")?, s("n")?),
        "OKP" => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, s("crv")?, s("x")?),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// The `ath` of an access token: its SHA-256, base64url.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Whether two URLs name the same endpoint once the query and fragment are dropped (RFC 9449
/// §4.3 step 9; `url` normalises case, default ports and dot segments).
fn same_endpoint(htu: &str, expected: &str) -> bool {
    let strip = |u: &str| {
        url::Url::parse(u).ok().map(|mut u| {
            u.set_query(None);
            u.set_fragment(None);
            u
        })
    };
    matches!((strip(htu), strip(expected)), (Some(a), Some(b)) if a == b)
}

/// Checks a proof against the request it came with, without storage (RFC 9449 §4.3): one JWT
/// of type `dpop+jwt`, an allowed asymmetric algorithm, a public key in the header that verifies
/// the signature, `htm`/`htu` of this request, `iat` within `window` seconds of `now`, `ath` of
/// the access token if one came, and — when `require_nonce` — a current server nonce.
pub fn check(
    proof: &str,
    expect: &Expect<'_>,
    protector: &DataProtector,
    require_nonce: bool,
    window: i64,
    now: i64,
) -> Result<Checked, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(invalid("the DPoP proof is too long"));
    }
    let header = jsonwebtoken::decode_header(proof).map_err(|_| invalid("the DPoP proof is not a signed JWT"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(invalid("the DPoP proof's typ must be dpop+jwt"));
    }
    let alg = format!("{:?}", header.alg);
    if !super::DPOP_ALGORITHMS.contains(&alg.as_str()) {
        return Err(invalid(format!("DPoP proofs signed with {alg} are not accepted")));
    }
    // The raw header, for the JWK exactly as sent (its thumbprint, and private members the
    // typed form would drop).
    let raw_header: Value = proof
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("the DPoP proof's header is malformed"))?;
    let jwk = raw_header.get("jwk").filter(|j| j.is_object()).ok_or_else(|| invalid("the DPoP proof has no jwk"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.get(m).is_some()) {
        return Err(invalid("the DPoP proof's jwk must be a public key"));
    }
    let jkt = thumbprint(jwk).ok_or_else(|| invalid("the DPoP proof's jwk is not an EC, RSA or OKP public key"))?;
    let typed = header.jwk.ok_or_else(|| invalid("the DPoP proof's jwk is malformed"))?;
    let key = DecodingKey::from_jwk(&typed).map_err(|_| invalid("the DPoP proof's jwk is malformed"))?;
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<ProofClaims>(proof, &key, &validation)
        .map_err(|_| invalid("the DPoP proof's signature or claims are invalid"))?
        .claims;
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(invalid("the DPoP proof's jti is missing or too long"));
    }
    if claims.htm != expect.method {
        return Err(invalid("the DPoP proof is for another HTTP method"));
    }
    if !same_endpoint(&claims.htu, expect.url) {
        return Err(invalid("the DPoP proof is for another URL"));
    }
    if (claims.iat - now).abs() > window {
        return Err(invalid("the DPoP proof's iat is too far from now"));
    }
    match (expect.access_token, &claims.ath) {
        (Some(token), Some(ath)) => {
            if !crate::crypto::constant_time_eq(access_token_hash(token).as_bytes(), ath.as_bytes()) {
                return Err(invalid("the DPoP proof's ath is not the access token's hash"));
            }
        }
        (Some(_), None) => return Err(invalid("the DPoP proof has no ath for the access token")),
        (None, _) => {}
    }
    if require_nonce && !claims.nonce.as_deref().is_some_and(|n| nonce_is_current(protector, n, now)) {
        return Err(DpopError::UseNonce);
    }
    Ok(Checked { jkt, jti: claims.jti })
}

/// The one `DPoP` header of a request, if any: a second one is refused (RFC 9449 §4.3 step 1).
pub fn single(headers: &[String]) -> Result<Option<&str>, DpopError> {
    match headers {
        [] => Ok(None),
        [one] => Ok(Some(one.as_str())),
        _ => Err(invalid("send one DPoP header only")),
    }
}

/// Checks a proof with [`check`] and accepts its `jti` once within the window, on every node.
/// Returns the key's thumbprint.
pub async fn verify(state: &AppState, proof: &str, expect: &Expect<'_>, now: i64) -> Result<String, DpopError> {
    let tokens = &state.config.tokens;
    let window = tokens.dpop_proof_window.as_secs() as i64;
    let checked = check(proof, expect, &state.protector, tokens.dpop_require_nonce, window, now)?;
    // Remembered for the whole span an `iat` could be accepted in, so a replay is always caught.
    let remember = Duration::from_secs((2 * window + 1) as u64);
    let fresh = state
        .eph
        .put_new(&Key::dpop_proof(&checked.jkt, &checked.jti), b"1", remember)
        .await
        .map_err(InfraError::from)?;
    if !fresh {
        return Err(invalid("the DPoP proof was already used"));
    }
    Ok(checked.jkt)
}

/// The URL of one of this provider's endpoints, as proofs name it.
pub fn endpoint_url(state: &AppState, path: &str) -> String {
    format!("{}{path}", state.config.base())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    const URL: &str = "https://idp.example/token";
    const NOW: i64 = 1_800_000_000;

    struct ClientKey {
        pkcs8: Vec<u8>,
        jwk: Value,
    }

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn key() -> ClientKey {
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let p = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])});
        ClientKey { pkcs8: pkcs8.as_ref().to_vec(), jwk }
    }

    fn proof(k: &ClientKey, typ: &str, jwk: &Value, claims: &Value) -> String {
        let mut h = jsonwebtoken::Header::new(Algorithm::ES256);
        h.typ = Some(typ.into());
        h.jwk = Some(serde_json::from_value(jwk.clone()).unwrap());
        let mut token = jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_ec_der(&k.pkcs8)).unwrap();
        if jwk.get("d").is_some() {
            // The typed header drops private members; put the raw one in its place.
            let header = json!({"typ": typ, "alg": "ES256", "jwk": jwk});
            let rest = token.split_once('.').unwrap().1.to_string();
            token = format!("{}.{rest}", b64(header.to_string().as_bytes()));
        }
        token
    }

    fn protector() -> DataProtector {
        DataProtector::from_key(&[7u8; 32])
    }

    fn claims(p: &DataProtector) -> Value {
        json!({"jti": "j-1", "htm": "POST", "htu": URL, "iat": NOW, "nonce": nonce(p, NOW)})
    }

    fn run(p: &DataProtector, proof: &str, token: Option<&str>, require_nonce: bool) -> Result<Checked, DpopError> {
        check(proof, &Expect { method: "POST", url: URL, access_token: token }, p, require_nonce, 60, NOW)
    }

    fn refused(r: Result<Checked, DpopError>) -> String {
        match r {
            Err(DpopError::Invalid(d)) => d,
            other => panic!("expected invalid_dpop_proof, got {other:?}"),
        }
    }

    #[test]
    fn a_good_proof_names_its_keys_thumbprint() {
        let (k, p) = (key(), protector());
        let ok = run(&p, &proof(&k, "dpop+jwt", &k.jwk, &claims(&p)), None, true).unwrap();
        assert_eq!(ok.jkt, thumbprint(&k.jwk).unwrap());
        assert_eq!(ok.jti, "j-1");
        // The URL is compared without query and fragment, after normalisation.
        let mut c = claims(&p);
        c["htu"] = json!("https://IDP.example:443/token?x=1#f");
        assert!(run(&p, &proof(&k, "dpop+jwt", &k.jwk, &c), None, true).is_ok());
    }

    #[test]
    fn the_rfc_7638_example_thumbprint() {
        let jwk = json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(thumbprint(&jwk).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(thumbprint(&json!({"kty": "oct", "k": "c2VjcmV0"})), None, "no symmetric keys");
    }

    #[test]
    fn a_proof_for_another_request_or_time_is_refused() {
        let (k, p) = (key(), protector());
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = claims(&p);
            f(&mut c);
            run(&p, &proof(&k, "dpop+jwt", &k.jwk, &c), None, true)
        };
        assert!(refused(with(&|c| c["htm"] = json!("GET"))).contains("method"));
        assert!(refused(with(&|c| c["htu"] = json!("https://idp.example/userinfo"))).contains("URL"));
        assert!(refused(with(&|c| c["htu"] = json!("https://other.example/token"))).contains("URL"));
        assert!(refused(with(&|c| c["iat"] = json!(NOW - 61))).contains("iat"), "stale");
        assert!(refused(with(&|c| c["iat"] = json!(NOW + 61))).contains("iat"), "from the future");
        assert!(with(&|c| c["iat"] = json!(NOW - 60)).is_ok(), "the window is inclusive");
        assert!(refused(with(&|c| c["jti"] = json!(""))).contains("jti"));
        assert!(refused(with(&|c| {
            c.as_object_mut().unwrap().remove("htu");
        }))
        .contains("claims"));
    }

    #[test]
    fn the_proof_must_be_a_public_key_dpop_jwt_with_a_matching_signature() {
        let (k, p) = (key(), protector());
        assert!(refused(run(&p, &proof(&k, "JWT", &k.jwk, &claims(&p)), None, true)).contains("typ"));
        let other = key();
        assert!(refused(run(&p, &proof(&k, "dpop+jwt", &other.jwk, &claims(&p)), None, true)).contains("signature"));
        let mut private = k.jwk.clone();
        private["d"] = json!(b64(&[1u8; 32]));
        assert!(refused(run(&p, &proof(&k, "dpop+jwt", &private, &claims(&p)), None, true)).contains("public"));
        // HS256 with a shared secret proves nothing about a key.
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.typ = Some("dpop+jwt".into());
        let hs = jsonwebtoken::encode(&h, &claims(&p), &jsonwebtoken::EncodingKey::from_secret(b"s")).unwrap();
        assert!(refused(run(&p, &hs, None, true)).contains("HS256"));
        assert!(refused(run(&p, "not-a-jwt", None, true)).contains("JWT"));
    }

    #[test]
    fn a_resource_request_needs_the_hash_of_its_access_token() {
        let (k, p) = (key(), protector());
        let mut c = claims(&p);
        c["ath"] = json!(access_token_hash("the-token"));
        let with_ath = proof(&k, "dpop+jwt", &k.jwk, &c);
        assert!(run(&p, &with_ath, Some("the-token"), true).is_ok());
        assert!(refused(run(&p, &with_ath, Some("another-token"), true)).contains("ath"));
        let without = proof(&k, "dpop+jwt", &k.jwk, &claims(&p));
        assert!(refused(run(&p, &without, Some("the-token"), true)).contains("ath"));
    }

    #[test]
    fn the_nonce_rotates_and_the_previous_one_is_still_accepted() {
        let (k, p) = (key(), protector());
        let at = |n: &str| {
            let mut c = claims(&p);
            c["nonce"] = json!(n);
            run(&p, &proof(&k, "dpop+jwt", &k.jwk, &c), None, true)
        };
        assert_ne!(nonce(&p, NOW), nonce(&p, NOW + NONCE_PERIOD), "a new nonce each period");
        assert!(at(&nonce(&p, NOW - NONCE_PERIOD)).is_ok(), "the previous period's");
        assert!(matches!(at(&nonce(&p, NOW - 2 * NONCE_PERIOD)), Err(DpopError::UseNonce)), "older");
        assert!(matches!(at(&nonce(&p, NOW + NONCE_PERIOD)), Err(DpopError::UseNonce)), "not yet");
        assert!(matches!(at("made-up"), Err(DpopError::UseNonce)));
        let other_server = DataProtector::from_key(&[8u8; 32]);
        assert!(matches!(at(&nonce(&other_server, NOW)), Err(DpopError::UseNonce)), "another deployment's");
        let mut c = claims(&p);
        c.as_object_mut().unwrap().remove("nonce");
        let no_nonce = proof(&k, "dpop+jwt", &k.jwk, &c);
        assert!(matches!(run(&p, &no_nonce, None, true), Err(DpopError::UseNonce)));
        assert!(run(&p, &no_nonce, None, false).is_ok(), "unless the nonce is switched off");
    }

    #[test]
    fn one_dpop_header_only() {
        assert_eq!(single(&[]).unwrap(), None);
        assert_eq!(single(&["a".into()]).unwrap(), Some("a"));
        assert!(matches!(single(&["a".into(), "b".into()]), Err(DpopError::Invalid(_))));
    }
}
