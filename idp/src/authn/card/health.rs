//! The health-insurance card (健保卡). It carries no personal signing key, and what the browser
//! can read from it proves nothing (docs/cards-and-pki.md): the page obtains a card token from NHI's local
//! component, and only NHI's verification service can say whose card it is. This adapter is the
//! one place that speaks to that service (`certificates.health_verifier_url`); its exact API is
//! deployment-specific, so the request and answer shapes live here only.

use std::time::Duration;

use serde::Deserialize;

use crate::national_id::NationalId;

/// Who the verification service says holds the card.
#[derive(Debug, Clone)]
pub struct HealthIdentity {
    pub national_id: NationalId,
    pub card_number: String,
}

/// Why no identity came back. Never a login.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("the verification service refused the card token")]
    Refused,
    #[error("the verification service did not answer: {0}")]
    Unavailable(String),
    #[error("the verification service answered something unexpected")]
    Malformed,
}

/// A larger answer than this is not the service's two-field object.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
struct Answer {
    national_id: String,
    card_number: String,
}

/// Asks the verification service who holds the card behind `card_token`.
pub async fn verify(http: &reqwest::Client, url: &str, card_token: &str) -> Result<HealthIdentity, HealthError> {
    if card_token.is_empty() || card_token.len() > 8192 {
        return Err(HealthError::Refused);
    }
    let response = http
        .post(url)
        .timeout(Duration::from_secs(5))
        .json(&serde_json::json!({ "card_token": card_token }))
        .send()
        .await
        .map_err(|e| HealthError::Unavailable(if e.is_timeout() { "timed out".into() } else { e.to_string() }))?;
    match response.status().as_u16() {
        200 => {}
        400..=499 => return Err(HealthError::Refused),
        s => return Err(HealthError::Unavailable(format!("status {s}"))),
    }
    let bytes = crate::outbound::read_limited(response, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| HealthError::Unavailable(e.to_string()))?;
    let answer: Answer = serde_json::from_slice(&bytes).map_err(|_| HealthError::Malformed)?;
    let national_id = NationalId::parse(&answer.national_id).map_err(|_| HealthError::Malformed)?;
    let card_number = answer.card_number.trim().to_string();
    if card_number.is_empty() || card_number.len() > 32 || !card_number.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(HealthError::Malformed);
    }
    Ok(HealthIdentity { national_id, card_number })
}
