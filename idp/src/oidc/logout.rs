//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): which client asks, where the
//! person may be sent afterwards, whether the session ends at once or only after the person
//! confirms, and the ending itself (with its back-channel notices and audit record).

use diesel::Connection;
use serde_json::{json, Value};

use super::params::Params;
use super::subject::subject_for;
use super::{authorize, backchannel};
use crate::audit::{self, Event};
use crate::authn::session::{self, Session};
use crate::error::InfraError;
use crate::state::AppState;

/// Why a logout request is refused.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error("id_token_hint is not a valid ID token of this provider")]
    BadHint,
    #[error("client_id does not match id_token_hint")]
    ClientMismatch,
    #[error("client_id or id_token_hint is required")]
    RedirectWithoutClient,
    #[error("post_logout_redirect_uri is not registered for the client")]
    UnregisteredRedirect,
    #[error(transparent)]
    Server(#[from] InfraError),
}

/// A logout request whose hint, client and redirect have been checked.
#[derive(Debug)]
pub struct LogoutRequest {
    /// The claims of a valid `id_token_hint` of this provider.
    pub hint: Option<Value>,
    pub client_id: Option<String>,
    /// Registered for `client_id`.
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// The client a logout speaks for: `client_id` and the hint's audience must agree.
pub fn client_of(client_id: Option<String>, hint_audience: Option<String>) -> Result<Option<String>, LogoutError> {
    match (client_id, hint_audience) {
        (Some(a), Some(b)) if a != b => Err(LogoutError::ClientMismatch),
        (a, b) => Ok(a.or(b)),
    }
}

/// Checks a logout request's parameters (repeated ones were refused by the caller).
pub async fn check(state: &AppState, params: &Params, now: i64) -> Result<LogoutRequest, LogoutError> {
    let get = |n: &str| params.get(n).ok().flatten().map(str::to_string);
    let hint = get("id_token_hint")
        .and_then(|t| state.keys.verify_own(&t, now))
        .filter(|c| c["iss"] == json!(state.config.issuer));
    if get("id_token_hint").is_some() && hint.is_none() {
        return Err(LogoutError::BadHint);
    }
    let hint_audience = hint.as_ref().and_then(|c| c["aud"].as_str().map(str::to_string));
    let client_id = client_of(get("client_id"), hint_audience)?;
    let post_logout_redirect_uri = get("post_logout_redirect_uri");
    if let Some(uri) = &post_logout_redirect_uri {
        let id = client_id.clone().ok_or(LogoutError::RedirectWithoutClient)?;
        let client = state.client_cache.get(&state.db, &id).await?;
        if !client.is_some_and(|c| c.has_post_logout_redirect_uri(uri)) {
            return Err(LogoutError::UnregisteredRedirect);
        }
    }
    Ok(LogoutRequest { hint, client_id, post_logout_redirect_uri, state: get("state") })
}

/// Whether the session ends without asking: after the person confirmed, or with a valid hint
/// that names the signed-in person (`hint_names_session`: `None` when nobody is signed in, so
/// there is nothing a forged hint could end). Without a hint, only a confirmation ends it.
pub fn ends_now(confirmed: bool, has_hint: bool, hint_names_session: Option<bool>) -> bool {
    confirmed || (has_hint && hint_names_session.unwrap_or(true))
}

/// Whether the hint's subject is the signed-in person, as the hint's client sees them.
pub async fn hint_names(state: &AppState, hint: &Value, session: &Session) -> Result<bool, InfraError> {
    let aud = hint["aud"].as_str().unwrap_or("").to_string();
    let client = state.client_cache.get(&state.db, &aud).await?;
    Ok(client
        .is_some_and(|c| hint["sub"].as_str() == Some(subject_for(&state.protector, &c, &session.account_id).as_str())))
}

/// Ends the session of a cookie's token: its back-channel notices are queued and the logout
/// audited with the ending itself, so a crash right after loses no delivery.
pub async fn end_session(state: &AppState, token: String, address: String, now: i64) -> Result<(), InfraError> {
    if token.len() > 64 {
        return Ok(());
    }
    let ended = state
        .db
        .run(move |c| -> Result<_, InfraError> {
            c.transaction(|c| {
                let ended = session::end(c, &token)?;
                if let Some(s) = &ended {
                    backchannel::mark_ended(c, std::slice::from_ref(&s.sid), now)?;
                    audit::record(c, Event::own("logout", "success", &s.account_id, &address), now)?;
                }
                Ok(ended)
            })
        })
        .await?;
    if let Some(s) = ended {
        // Delivery happens in the background; the person is not kept waiting.
        if let Err(e) = backchannel::notify(state, &s.sid, now).await {
            tracing::error!(error = %e, "back-channel logout");
        }
    }
    Ok(())
}

/// Where the person goes after logging out, `state` echoed (RP-Initiated Logout §3).
pub fn redirect_after(post_logout_redirect_uri: &str, state: Option<&str>) -> String {
    match state {
        Some(s) => authorize::redirect_with(post_logout_redirect_uri, &[("state", s)]),
        None => post_logout_redirect_uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_id_and_the_hints_audience_must_agree() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(client_of(s("rp"), s("rp")).unwrap(), s("rp"));
        assert_eq!(client_of(s("rp"), None).unwrap(), s("rp"));
        assert_eq!(client_of(None, s("rp")).unwrap(), s("rp"));
        assert_eq!(client_of(None, None).unwrap(), None);
        assert!(matches!(client_of(s("rp"), s("other")), Err(LogoutError::ClientMismatch)));
    }

    #[test]
    fn a_session_ends_without_asking_only_on_confirmation_or_a_hint_for_its_person() {
        assert!(ends_now(true, false, None), "confirmed");
        assert!(ends_now(true, false, Some(false)), "confirmed, whatever a hint says");
        assert!(ends_now(false, true, Some(true)), "the hint names the signed-in person");
        assert!(!ends_now(false, true, Some(false)), "a hint for someone else asks first");
        assert!(ends_now(false, true, None), "a hint and nobody signed in: nothing to protect");
        assert!(!ends_now(false, false, Some(true)), "no hint, no confirmation: ask");
        assert!(!ends_now(false, false, None));
    }

    #[test]
    fn the_redirect_echoes_state() {
        assert_eq!(redirect_after("https://rp/bye", None), "https://rp/bye");
        assert!(redirect_after("https://rp/bye", Some("x y")).starts_with("https://rp/bye?state=x"));
    }
}
