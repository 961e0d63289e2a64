//! The certificate authority's online ownership check (docs/cards-and-pki.md "The same-person check on first
//! card login"). A citizen certificate carries only the holder's name and the last four characters
//! of the national ID, so two people with the same name and the same last four cannot be told
//! apart from the certificate alone. Where a deployment may ask the CA whether a certificate
//! belongs to a full national ID, `certificates.ownership_verifier_url` switches that question on.
//!
//! The CA's real interface and credentials differ per deployment, so the IdP speaks one small JSON
//! contract and an operator fronts the CA with an adapter that speaks it:
//!
//! ```text
//! POST {ownership_verifier_url}
//! Authorization: Bearer <token from ownership_verifier_token_file>
//! Content-Type: application/json
//!
//! {"certificate": "<base64 DER of the end-entity certificate>", "national_id": "<full national ID>"}
//!
//! 200 {"owner": true}   the certificate belongs to that national ID
//! 200 {"owner": false}  it does not
//! ```
//!
//! Anything else — no answer within `certificates.fetch_timeout`, another status, a redirect, a
//! body that is not that JSON — means the service is unavailable: the caller binds nothing (never
//! treat silence as a yes). The national ID and the token are never logged.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::binding::PresentedCard;
use crate::config::CertificatesConfig;
use crate::error::InfraError;
use crate::national_id::NationalId;

/// A larger answer than this is not the contract's one-field object.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Why the service gave no usable answer; shown to the person as "try again later".
#[derive(Debug, thiserror::Error)]
#[error("the ownership service is unavailable: {0}")]
pub struct Unavailable(String);

/// The bearer credential; its `Debug` does not show it, so it cannot reach a log by accident.
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The configured online service: where it is, its credential (read once at start, so a missing
/// or unreadable file stops the server instead of failing the first person who identifies) and
/// how long to wait for it.
#[derive(Debug)]
pub struct OnlineOwnership {
    url: String,
    token: Token,
    timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    owner: bool,
}

impl OnlineOwnership {
    /// `None` when `certificates.ownership_verifier_url` is empty (the certificate alone decides).
    pub fn from_config(c: &CertificatesConfig) -> Result<Option<Self>, InfraError> {
        if c.ownership_verifier_url.is_empty() {
            return Ok(None);
        }
        let token = read_token(&c.ownership_verifier_token_file)?;
        Ok(Some(Self { url: c.ownership_verifier_url.clone(), token: Token(token), timeout: c.fetch_timeout }))
    }

    /// Which cards the service can speak for: citizen certificates only. A health card's owner is
    /// already known in full from NHI's service, and an agency card stands for an agency, not a
    /// person (its binding is decided by the HR-staff rule).
    pub fn applies_to(card: &PresentedCard) -> bool {
        card.kind == "citizen"
    }

    /// Asks whether the certificate (base64 DER) belongs to `national_id`.
    pub async fn is_owner(
        &self,
        http: &reqwest::Client,
        certificate_b64: &str,
        national_id: &NationalId,
    ) -> Result<bool, Unavailable> {
        let body = serde_json::json!({ "certificate": certificate_b64, "national_id": national_id.expose() });
        let response =
            http.post(&self.url).bearer_auth(&self.token.0).timeout(self.timeout).json(&body).send().await.map_err(
                |e| Unavailable(if e.is_timeout() { "timed out".into() } else { e.without_url().to_string() }),
            )?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(Unavailable(format!("status {}", status.as_u16())));
        }
        let bytes =
            crate::outbound::read_limited(response, MAX_ANSWER_BYTES).await.map_err(|e| Unavailable(e.to_string()))?;
        let answer: Answer = serde_json::from_slice(&bytes).map_err(|_| Unavailable("malformed answer".into()))?;
        Ok(answer.owner)
    }
}

/// The token file's first line. It must be usable as an HTTP header value.
fn read_token(path: &Path) -> Result<String, InfraError> {
    let bad = |why: &str| {
        InfraError::Internal(format!("certificates.ownership_verifier_token_file {}: {why}", path.display()))
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(bad("the file is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("the token must be printable ASCII without spaces"));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, token_file: &Path) -> CertificatesConfig {
        CertificatesConfig {
            ownership_verifier_url: url.into(),
            ownership_verifier_token_file: token_file.into(),
            ..CertificatesConfig::default()
        }
    }

    #[test]
    fn ownership_service_is_off_without_a_url_and_needs_a_readable_non_empty_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        assert!(OnlineOwnership::from_config(&config("", &file)).unwrap().is_none());
        let url = "http://127.0.0.1:9/ownership/verify";
        assert!(OnlineOwnership::from_config(&config(url, &file)).is_err(), "missing file");
        std::fs::write(&file, "\n").unwrap();
        assert!(OnlineOwnership::from_config(&config(url, &file)).is_err(), "empty file");
        std::fs::write(&file, "s3cret-token\n").unwrap();
        let online = OnlineOwnership::from_config(&config(url, &file)).unwrap().unwrap();
        assert_eq!(online.token.0, "s3cret-token");
        assert!(!format!("{online:?}").contains("s3cret"), "the token stays out of Debug output");
    }
}
