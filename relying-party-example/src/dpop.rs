//! DPoP (RFC 9449) for the `openidconnect` crate, which has no DPoP support
//! of its own: an HTTP client the library's requests go through, which adds a
//! fresh proof to every token and userinfo request, sends a bound access token
//! with the `DPoP` scheme instead of `Bearer`, remembers the IdP's
//! `DPoP-Nonce` and retries once when the IdP asks for it (`use_dpop_nonce`).

use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::http::{self, header::HeaderValue, HeaderName};
use openidconnect::{HttpRequest, HttpResponse};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use sha2::{Digest, Sha256};

/// This app's DPoP key, made at start-up and never written anywhere: tokens
/// bound to it die with the process, which is what a leaked token should do.
pub struct DpopKey {
    pkcs8: Vec<u8>,
    jwk: serde_json::Value,
    /// The last nonce the IdP handed out.
    nonce: Mutex<Option<String>>,
}

/// A failed request, as the library expects its HTTP client to report it.
#[derive(Debug)]
pub struct HttpFailure(String);

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpFailure {}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl DpopKey {
    pub fn generate() -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate a DPoP key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow::anyhow!("cannot load the DPoP key"))?;
        // An uncompressed P-256 point: 0x04, then x and y of 32 bytes each.
        let point = pair.public_key().as_ref();
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        });
        Ok(Self { pkcs8: pkcs8.as_ref().to_vec(), jwk, nonce: Mutex::new(None) })
    }

    /// A proof for one request: method, URL without query, now, a random id,
    /// the IdP's nonce if known, and the access token's hash on a resource
    /// request.
    // The example is a separate application: it reads its own clock for the proof's `iat`
    // (the provider's rule of one clock reading at the edge does not apply to it).
    #[allow(clippy::disallowed_methods)]
    pub fn proof(&self, method: &str, url: &str, access_token: Option<&str>) -> Result<String, HttpFailure> {
        let mut htu = url::Url::parse(url).map_err(|e| HttpFailure(format!("bad URL {url}: {e}")))?;
        htu.set_query(None);
        htu.set_fragment(None);
        let mut jti = [0u8; 16];
        SystemRandom::new().fill(&mut jti).map_err(|_| HttpFailure("no randomness".into()))?;
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| HttpFailure(e.to_string()))?
            .as_secs();
        let mut claims = serde_json::json!({"jti": b64(&jti), "htm": method, "htu": htu.as_str(), "iat": iat});
        if let Some(n) = self.nonce.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            claims["nonce"] = n.into();
        }
        if let Some(token) = access_token {
            claims["ath"] = b64(&Sha256::digest(token.as_bytes())).into();
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(self.jwk.clone()).map_err(|e| HttpFailure(e.to_string()))?);
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8))
            .map_err(|e| HttpFailure(format!("cannot sign the DPoP proof: {e}")))
    }

    fn remember_nonce(&self, response: &reqwest::Response) {
        if let Some(n) = response.headers().get("dpop-nonce").and_then(|v| v.to_str().ok()) {
            *self.nonce.lock().unwrap_or_else(|p| p.into_inner()) = Some(n.to_string());
        }
    }

    /// Sends one of the library's requests with a proof; once more with a new
    /// proof if the IdP answers `use_dpop_nonce`.
    pub async fn send(&self, http: &reqwest::Client, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        // The library sends the access token as `Bearer`; a bound token goes
        // with the `DPoP` scheme and its hash in the proof.
        let access_token = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        for attempt in 0..2 {
            let proof = self.proof(parts.method.as_str(), &url, access_token.as_deref())?;
            let mut r = http.request(parts.method.clone(), &url).body(body.clone());
            for (name, value) in &parts.headers {
                if name != http::header::AUTHORIZATION || access_token.is_none() {
                    r = r.header(name, value);
                }
            }
            if let Some(t) = &access_token {
                r = r.header(http::header::AUTHORIZATION, format!("DPoP {t}"));
            }
            let response = r.header("DPoP", proof).send().await.map_err(|e| HttpFailure(e.to_string()))?;
            self.remember_nonce(&response);
            let status = response.status();
            let challenge = response
                .headers()
                .get(http::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.map_err(|e| HttpFailure(e.to_string()))?.to_vec();
            let asks_nonce = challenge.contains("use_dpop_nonce")
                || serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| v["error"] == "use_dpop_nonce");
            if attempt == 0 && asks_nonce {
                continue;
            }
            let mut out = http::Response::builder().status(status.as_u16());
            for (name, value) in &headers {
                if let (Ok(n), Ok(v)) =
                    (HeaderName::from_bytes(name.as_str().as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
                {
                    out = out.header(n, v);
                }
            }
            return out.body(bytes).map_err(|e| HttpFailure(e.to_string()));
        }
        Err(HttpFailure("the IdP asked for a new DPoP nonce twice".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_names_the_request_and_carries_the_public_key_only() -> anyhow::Result<()> {
        let key = DpopKey::generate()?;
        *key.nonce.lock().unwrap_or_else(|p| p.into_inner()) = Some("n-1".into());
        let proof = key.proof("GET", "https://idp.example/userinfo?x=1", Some("tok"))?;
        let part = |i: usize| -> anyhow::Result<serde_json::Value> {
            let seg = proof.split('.').nth(i).ok_or_else(|| anyhow::anyhow!("segment {i}"))?;
            Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg)?)?)
        };
        let (header, claims) = (part(0)?, part(1)?);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(header["jwk"]["x"].is_string() && header["jwk"].get("d").is_none());
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://idp.example/userinfo", "without the query");
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["ath"], b64(&Sha256::digest(b"tok")));
        Ok(())
    }
}
