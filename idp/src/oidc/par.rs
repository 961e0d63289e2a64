//! Pushed authorization requests (RFC 9126): a client sends its authorization request straight
//! to the provider, authenticated, and gets back a short-lived `request_uri` to send the person's
//! browser to `/authorize` with. The request's parameters never travel through the browser, so
//! nobody on the way can read or change them, and a client that requires it
//! (`require_pushed_authorization_requests`) cannot be asked for a code by a made-up URL.
//!
//! The pushed parameters are checked by [`authorize::validate`], the very function `/authorize`
//! uses, when they are pushed (so the client hears of a mistake at once) and again when they
//! come back (the client may have changed in between). They are kept in the ephemeral store as
//! the form they arrived in, under the hash of the `request_uri`, and taken once: of two uses,
//! on one node or two, exactly one gets them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::authorize::{self, AuthorizeError};
use super::client_auth::{self, BasicCredentials};
use super::params::Params;
use super::token::{self, TokenError};
use crate::audit::{self, Event};
use crate::crypto::random_token;
use crate::error::InfraError;
use crate::state::AppState;
use crate::store::ephemeral::Key;

/// How every `request_uri` this provider hands out begins (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The parameters that authenticate the client at the push; they are not part of the
/// authorization request and are not kept.
const CLIENT_AUTHENTICATION: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

/// What a `request_uri` stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pushed {
    client_id: String,
    /// The authorization request's parameters, form-encoded as `/authorize` reads them.
    params: String,
    /// When it stops working (epoch seconds); the store's expiry says the same.
    expires_at: i64,
}

/// Why `/authorize` could not use a `request_uri`; shown as a page, since no redirect URI can be
/// trusted without the request.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("the request_uri is unknown, expired, already used or another application's")]
    Gone,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// The authorization request of a push: the body without what authenticated the client, and
/// with the authenticated client's id (a client using Basic need not repeat it).
fn authorization_params(body: &Params, client_id: &str, dpop_jkt: Option<&str>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    out.append_pair("client_id", client_id);
    for (k, v) in body.pairs() {
        if k != "client_id" && !CLIENT_AUTHENTICATION.contains(&k) {
            out.append_pair(k, v);
        }
    }
    if let (Some(jkt), false) = (dpop_jkt, body.has("dpop_jkt")) {
        out.append_pair("dpop_jkt", jkt);
    }
    out.finish()
}

/// `POST /par`: authenticates the client (every method of the token endpoint), checks the
/// request exactly as `/authorize` would, and keeps it under a new `request_uri`. A `DPoP`
/// proof binds the code to its key (RFC 9449 §10.1), and must agree with `dpop_jkt` if both
/// came. Audited as `par.push`.
pub async fn push(
    state: &AppState,
    body: &Params,
    basic: BasicCredentials,
    dpop: &[String],
    now: i64,
) -> Result<Value, TokenError> {
    super::resource::requested(body)?;
    if let Some(dup) = body.first_duplicate() {
        return Err(TokenError::InvalidRequest(format!("parameter `{dup}` is repeated")));
    }
    let jkt = token::proof_at(state, dpop, "/par", now).await?;
    let client = client_auth::authenticate(state, body, basic, "/par", now).await?;
    if body.has("request_uri") {
        // RFC 9126 §2.1: a pushed request cannot point at another one.
        return Err(TokenError::InvalidRequest("request_uri cannot be pushed".into()));
    }
    let asked = body.get("dpop_jkt").ok().flatten();
    if let (Some(asked), Some(proved)) = (asked, jkt.as_deref()) {
        if asked != proved {
            return Err(super::dpop::DpopError::Invalid("dpop_jkt is not the key of the DPoP proof".into()).into());
        }
    }
    let params = authorization_params(body, &client.client_id, jkt.as_deref());
    let parsed = Params::parse(params.as_bytes()).map_err(|e| TokenError::InvalidRequest(e.to_string()))?;
    if let Err(e) = authorize::validate(&parsed, &client) {
        let (error, description) = match e {
            AuthorizeError::Page { detail, .. } => ("invalid_request", detail),
            AuthorizeError::Redirect { error, description, .. } => (error, description),
        };
        audit_push(state, &client.client_id, "refused", &description, now).await?;
        return Err(TokenError::Authorization { error, description });
    }
    let ttl = state.config.tokens.request_uri_ttl;
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_token(32));
    let pushed = Pushed { client_id: client.client_id.clone(), params, expires_at: now + ttl.as_secs() as i64 };
    state.eph.put_json(&Key::pushed_request(&request_uri), &pushed, ttl).await.map_err(InfraError::from)?;
    let detail = if jkt.is_some() { "bound to a DPoP key" } else { "" };
    audit_push(state, &client.client_id, "success", detail, now).await?;
    Ok(json!({ "request_uri": request_uri, "expires_in": ttl.as_secs() }))
}

async fn audit_push(
    state: &AppState,
    client_id: &str,
    outcome: &'static str,
    detail: &str,
    now: i64,
) -> Result<(), InfraError> {
    let (client_id, detail) = (client_id.to_string(), detail.to_string());
    state
        .db
        .run(move |c| {
            let e = Event { event: "par.push", outcome, client_id: Some(&client_id), detail, ..Default::default() };
            audit::record(c, e, now)
        })
        .await
}

/// The parameters `/authorize` acts on. A request with a `request_uri` of this provider stands
/// for its pushed request, taken once, and only for the client that pushed it; every other
/// parameter beside `client_id` and `request_uri` is ignored (RFC 9126 §4, as RFC 9101 §5 for
/// request objects). Any other request is its own parameters. The flag says whether it was
/// pushed. A refused `request_uri` is audited as `par.use` / `refused`.
pub async fn resolve(state: &AppState, params: Params, now: i64) -> Result<(Params, bool), ResolveError> {
    let uri = match params.get("request_uri") {
        Ok(Some(uri)) if uri.starts_with(REQUEST_URI_PREFIX) => uri.to_string(),
        _ => return Ok((params, false)),
    };
    let client_id = params.get("client_id").ok().flatten().map(str::to_string);
    let key = Key::pushed_request(&uri);
    // Looked at before it is taken, so another client's attempt does not spend the request.
    let found: Option<Pushed> = state.eph.get_json(&key).await.map_err(InfraError::from)?;
    let usable = found.filter(|p| Some(&p.client_id) == client_id.as_ref() && now < p.expires_at);
    let taken = match usable {
        Some(_) => state.eph.take_json::<Pushed>(&key).await.map_err(InfraError::from)?,
        None => None,
    };
    let Some(pushed) = taken.filter(|p| Some(&p.client_id) == client_id.as_ref()) else {
        let (client, detail) = (client_id.clone(), "unknown, expired, used or another client's request_uri");
        state
            .db
            .run(move |c| {
                let e = Event {
                    event: "par.use",
                    outcome: "refused",
                    client_id: client.as_deref(),
                    detail: detail.into(),
                    ..Default::default()
                };
                audit::record(c, e, now)
            })
            .await?;
        return Err(ResolveError::Gone);
    };
    let params = Params::parse(pushed.params.as_bytes()).map_err(|e| InfraError::Internal(e.to_string()))?;
    Ok((params, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_request_has_the_clients_id_and_none_of_its_credentials() {
        let body = Params::parse(
            b"client_secret=s3cret&response_type=code&scope=openid&client_assertion=x&client_assertion_type=y&state=a%20b",
        )
        .unwrap();
        let kept = Params::parse(authorization_params(&body, "app", None).as_bytes()).unwrap();
        assert_eq!(kept.get("client_id").unwrap(), Some("app"));
        assert_eq!(kept.get("state").unwrap(), Some("a b"));
        assert_eq!(kept.get("response_type").unwrap(), Some("code"));
        for secret in CLIENT_AUTHENTICATION {
            assert!(!kept.has(secret), "{secret} is not kept");
        }
        // A proof's key becomes dpop_jkt unless the client named one (checked to agree).
        let bound = Params::parse(authorization_params(&body, "app", Some("jkt-1")).as_bytes()).unwrap();
        assert_eq!(bound.get("dpop_jkt").unwrap(), Some("jkt-1"));
        let named = Params::parse(b"client_id=app&dpop_jkt=jkt-2").unwrap();
        let kept = Params::parse(authorization_params(&named, "app", Some("jkt-2")).as_bytes()).unwrap();
        assert_eq!(kept.get("dpop_jkt").unwrap(), Some("jkt-2"), "not repeated");
    }
}
