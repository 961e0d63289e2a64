//! A client's own signing key, as a relying party holds it: the private half signs client
//! assertions (`private_key_jwt`) and request objects, the public half is registered as a JWK.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

pub struct ClientKey {
    alg: jsonwebtoken::Algorithm,
    kid: String,
    encoding: jsonwebtoken::EncodingKey,
    /// The public half (an EC key names its algorithm, ES256; an RSA one does not, so the
    /// same key may sign RS256 and PS256).
    pub jwk: Value,
}

impl ClientKey {
    /// A P-256 key signing ES256.
    pub fn ec(kid: &str) -> Self {
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        // An uncompressed point: 0x04, then x and y of 32 bytes each.
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        let encoding = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
        Self { alg: jsonwebtoken::Algorithm::ES256, kid: kid.into(), encoding, jwk }
    }

    /// A 2048-bit RSA key signing with `alg` (RS256 or PS256).
    pub fn rsa(kid: &str, alg: jsonwebtoken::Algorithm) -> Self {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let b64 = |b: Vec<u8>| URL_SAFE_NO_PAD.encode(b);
        let jwk = json!({ "kty": "RSA", "kid": kid, "use": "sig",
            "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be()) });
        let encoding = jsonwebtoken::EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes());
        Self { alg, kid: kid.into(), encoding, jwk }
    }

    /// The key set a client registers: this key alone.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// A JWT of `claims` with the key's `kid` (a client assertion).
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_typed(None, claims)
    }

    /// The same with a `typ` header (`oauth-authz-req+jwt` for a request object).
    pub fn sign_typed(&self, typ: Option<&str>, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        if let Some(t) = typ {
            header.typ = Some(t.into());
        }
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}
