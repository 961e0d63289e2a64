//! Signed request objects at the authorization endpoint (RFC 9101, OpenID Connect Core §6.1):
//! the authorization request as a JWT the client signed with one of its registered keys, so
//! nothing in it — redirect URI, scope, nonce, `claims` — can be altered on its way through the
//! browser.
//!
//! Only the request *by value* (`request`) is taken here; `request_uri` is left to the pushed
//! authorization requests, since fetching a client-named URL from the authorization endpoint
//! would let any browser make this server call out.
//!
//! What a verified object yields replaces the query: RFC 9101 §6.3 has the server use only the
//! parameters inside the object, whatever the query says, except `client_id`, which names the
//! client whose keys verify it and must agree with the object's. The result is plain
//! [`Params`], checked afterwards by [`super::authorize::validate`] like any other request, so
//! there is one set of rules for what a request may ask.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::authorize::AuthorizeError;
use super::client_auth::verify_with;
use super::clients::{Client, REQUEST_OBJECT_ALGS};
use super::params::Params;
use crate::audit::{self, Event};
use crate::error::InfraError;
use crate::state::AppState;
use crate::store::ephemeral::Key;

/// The longest `request` value accepted: larger than other parameters, since it carries them
/// all, a signature and perhaps a `claims` request.
pub const MAX_REQUEST_OBJECT: usize = 16 * 1024;
/// The longest a request object may be valid, from `nbf` (or `iat`) to `exp`, in seconds; FAPI's
/// 60 minutes.
const MAX_LIFETIME: i64 = 3600;
/// Clock difference tolerated between the client and this server, in seconds.
const LEEWAY: i64 = 30;
/// Members of the object that are about the JWT itself, not authorization parameters.
const JWT_MEMBERS: [&str; 7] = ["iss", "aud", "exp", "nbf", "iat", "jti", "sub"];

/// A refused request object. `reason` is the audit outcome; `description` goes to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    pub description: String,
}

fn refused(reason: &'static str, description: impl Into<String>) -> Refused {
    Refused { reason, description: description.into() }
}

impl Refused {
    /// The error as the authorization endpoint gives it: back to the client when the query's
    /// own redirect URI is registered (nothing in an unverified object is trusted), otherwise
    /// a page. A missing object is `invalid_request`; a bad one `invalid_request_object`.
    pub fn to_authorize_error(&self, query: &Params, client: &Client) -> AuthorizeError {
        match query.get("redirect_uri").ok().flatten().filter(|u| client.has_redirect_uri(u)) {
            Some(uri) => AuthorizeError::Redirect {
                redirect_uri: uri.to_string(),
                state: query.get("state").ok().flatten().map(str::to_string),
                error: if self.reason == "missing" { "invalid_request" } else { "invalid_request_object" },
                description: self.description.clone(),
                form_post: query.get("response_mode").ok().flatten() == Some("form_post"),
            },
            None => AuthorizeError::Page { key: "err_request_object", detail: self.description.clone() },
        }
    }
}

/// Why the parameters could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum RequestObjectError {
    #[error("{}", .0.description)]
    Refused(Refused),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<Refused> for RequestObjectError {
    fn from(r: Refused) -> Self {
        RequestObjectError::Refused(r)
    }
}

/// The parameters of an authorization request for `client`: the query's own, or — when it
/// carries `request` — those of the verified request object. A client that must sign its
/// requests gets nothing without one. Every refusal is audited as `authorize.request_object`.
pub async fn effective(
    state: &AppState,
    query: Params,
    client: &Client,
    address: &str,
    now: i64,
) -> Result<Params, RequestObjectError> {
    let outcome = match query.get("request") {
        Err(e) => Err(refused("malformed", e.to_string()).into()),
        Ok(None) if client.require_signed_request_object => {
            Err(refused("missing", "this client must send its authorization requests as signed request objects").into())
        }
        Ok(None) => return Ok(query),
        Ok(Some(jwt)) => verified(state, jwt, &query, client, now).await,
    };
    if let Err(RequestObjectError::Refused(r)) = &outcome {
        let (reason, detail, client_id, address) =
            (r.reason, r.description.clone(), client.client_id.clone(), address.to_string());
        state
            .db
            .run(move |c| {
                let e = Event {
                    event: "authorize.request_object",
                    outcome: reason,
                    client_id: Some(&client_id),
                    address: Some(&address),
                    detail,
                    ..Default::default()
                };
                audit::record(c, e, now)
            })
            .await?;
    }
    outcome
}

/// Checks the signature (alg, key, `iss`, `aud`, `exp`, `nbf`), then the rest, then uses up the
/// `jti`; only then are the object's parameters taken.
async fn verified(
    state: &AppState,
    jwt: &str,
    query: &Params,
    client: &Client,
    now: i64,
) -> Result<Params, RequestObjectError> {
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|_| refused("unsigned", "request must be a JWT signed with one of the client's keys"))?;
    let alg = algorithm_name(header.alg);
    if !REQUEST_OBJECT_ALGS.contains(&alg) {
        return Err(refused("algorithm", format!("request objects may not be signed with {alg}")).into());
    }
    if client.request_object_signing_alg.as_deref().is_some_and(|want| want != alg) {
        return Err(
            refused("algorithm", "the request object is not signed with the client's registered algorithm").into()
        );
    }
    let jwks = state
        .client_cache
        .jwks_for(&state.client_http, client)
        .await
        .ok_or_else(|| refused("no_keys", "the client has no registered keys to verify its request object"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[client.client_id.as_str()]);
    validation.set_audience(&[state.config.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY as u64;
    let claims: Map<String, Value> = verify_with(&jwks, jwt, header.kid.as_ref(), &validation).ok_or_else(|| {
        refused("signature", "the request object's signature, issuer, audience or validity period is wrong")
    })?;
    let params = parameters(&claims, &client.client_id, query, now)?;
    if let Some(jti) = claims.get("jti") {
        let jti = jti.as_str().filter(|j| !j.is_empty() && j.len() <= 256);
        let jti = jti.ok_or_else(|| refused("malformed", "jti must be a string of at most 256 characters"))?;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
        let ttl = Duration::from_secs((exp - now).max(0) as u64 + LEEWAY as u64 + 1);
        let seen = state.eph.incr(&Key::request_object(&client.client_id, jti), ttl).await.map_err(InfraError::from)?;
        if seen > 1 {
            return Err(refused("replayed", "this request object was already used").into());
        }
    }
    Ok(params)
}

fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::PS256 => "PS256",
        Algorithm::ES256 => "ES256",
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => "HS*",
        _ => "this algorithm",
    }
}

/// The authorization parameters of a verified object's claims: its validity period is short
/// and not in the future, it holds no nested request, its `client_id` and `response_type`
/// agree with the query's (OpenID Connect Core §6.1), and the query's other parameters are
/// dropped. Values that are not strings (`max_age`, the `claims` object) become their JSON text.
fn parameters(claims: &Map<String, Value>, client_id: &str, query: &Params, now: i64) -> Result<Params, Refused> {
    let time = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| refused("malformed", format!("{name} must be a number"))),
    };
    let (exp, nbf, iat) = (time("exp")?.unwrap_or(now), time("nbf")?, time("iat")?);
    if iat.is_some_and(|iat| iat > now + LEEWAY) {
        return Err(refused("validity", "the request object was issued in the future"));
    }
    let start = nbf.or(iat).unwrap_or(now).min(now);
    if exp - start > MAX_LIFETIME {
        return Err(refused("validity", format!("a request object may be valid for at most {MAX_LIFETIME} seconds")));
    }
    if claims.contains_key("request") || claims.contains_key("request_uri") {
        return Err(refused("malformed", "a request object may not hold request or request_uri"));
    }
    for name in ["client_id", "response_type"] {
        let outside = query.get(name).ok().flatten();
        let inside = claims.get(name);
        let agrees = match (name, inside) {
            (_, None) => true,
            ("client_id", Some(v)) => v.as_str() == Some(client_id),
            (_, Some(v)) => outside.is_none() || v.as_str() == outside,
        };
        if !agrees {
            return Err(refused("mismatch", format!("{name} in the request object differs from the request's")));
        }
    }
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("client_id", client_id);
    for (name, value) in claims {
        if JWT_MEMBERS.contains(&name.as_str()) || name == "client_id" {
            continue;
        }
        match value {
            Value::Null => {}
            Value::String(s) => {
                form.append_pair(name, s);
            }
            other => {
                form.append_pair(name, &other.to_string());
            }
        }
    }
    // Parsed like any request, so the same size and count limits hold inside the object.
    Params::parse(form.finish().as_bytes()).map_err(|e| refused("malformed", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_000_000;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn query(q: &str) -> Params {
        Params::parse(q.as_bytes()).unwrap()
    }

    fn base() -> Value {
        json!({
            "iss": "app", "aud": "https://idp", "exp": NOW + 300, "iat": NOW, "jti": "j-1",
            "client_id": "app", "response_type": "code", "scope": "openid profile",
            "redirect_uri": "https://app.example/cb", "max_age": 60,
            "claims": { "id_token": { "acr": { "essential": true, "values": ["loa-2"] } } }
        })
    }

    #[test]
    fn only_the_objects_parameters_are_used_and_non_strings_become_json() {
        let q = query(
            "client_id=app&response_type=code&scope=openid%20national_id&redirect_uri=https://evil.example/cb&nonce=q",
        );
        let p = parameters(&claims(base()), "app", &q, NOW).unwrap();
        assert_eq!(p.get("scope").unwrap(), Some("openid profile"), "the object's scope, not the query's");
        assert_eq!(p.get("redirect_uri").unwrap(), Some("https://app.example/cb"));
        assert_eq!(p.get("nonce").unwrap(), None, "a parameter only in the query is ignored");
        assert_eq!(p.get("max_age").unwrap(), Some("60"));
        assert_eq!(p.get("client_id").unwrap(), Some("app"));
        let asked: Value = serde_json::from_str(p.get("claims").unwrap().unwrap()).unwrap();
        assert_eq!(asked["id_token"]["acr"]["values"][0], "loa-2");
        for jwt in JWT_MEMBERS {
            assert!(!p.has(jwt), "{jwt} is the JWT's, not a parameter");
        }
    }

    #[test]
    fn client_id_and_response_type_must_agree_with_the_query() {
        let q = query("client_id=app&response_type=code");
        let mut other = base();
        other["client_id"] = json!("other-app");
        assert_eq!(parameters(&claims(other), "app", &q, NOW).unwrap_err().reason, "mismatch");
        let mut token = base();
        token["response_type"] = json!("token");
        assert_eq!(parameters(&claims(token), "app", &q, NOW).unwrap_err().reason, "mismatch");
        // Without client_id in the object the query's (whose keys verified it) is used.
        let mut bare = base();
        bare.as_object_mut().unwrap().remove("client_id");
        assert_eq!(parameters(&claims(bare), "app", &q, NOW).unwrap().get("client_id").unwrap(), Some("app"));
    }

    #[test]
    fn long_lived_future_and_nested_objects_are_refused() {
        let q = query("client_id=app");
        let mut long = base();
        long["exp"] = json!(NOW + MAX_LIFETIME + 1);
        assert_eq!(parameters(&claims(long), "app", &q, NOW).unwrap_err().reason, "validity");
        let mut just = base();
        just["exp"] = json!(NOW + MAX_LIFETIME);
        assert!(parameters(&claims(just), "app", &q, NOW).is_ok(), "the limit is inclusive");
        let mut backdated = base();
        backdated["iat"] = json!(NOW - 7200);
        backdated["exp"] = json!(NOW + 60);
        assert_eq!(parameters(&claims(backdated), "app", &q, NOW).unwrap_err().reason, "validity");
        let mut future = base();
        future["iat"] = json!(NOW + LEEWAY + 1);
        assert_eq!(parameters(&claims(future), "app", &q, NOW).unwrap_err().reason, "validity");
        let mut nested = base();
        nested["request"] = json!("eyJ...");
        assert_eq!(parameters(&claims(nested), "app", &q, NOW).unwrap_err().reason, "malformed");
        let mut bad_time = base();
        bad_time["nbf"] = json!("soon");
        assert_eq!(parameters(&claims(bad_time), "app", &q, NOW).unwrap_err().reason, "malformed");
    }

    #[test]
    fn a_refusal_goes_back_only_to_the_querys_registered_redirect_uri() {
        let mut client = Client::default();
        client.client_id = "app".into();
        client.redirect_uris = vec!["https://app.example/cb".into()];
        let r = refused("signature", "bad");
        let q = query("client_id=app&redirect_uri=https://app.example/cb&state=s1");
        assert!(matches!(r.to_authorize_error(&q, &client),
            AuthorizeError::Redirect { error: "invalid_request_object", state: Some(s), .. } if s == "s1"));
        let q = query("client_id=app&redirect_uri=https://evil.example/cb");
        assert!(matches!(r.to_authorize_error(&q, &client), AuthorizeError::Page { key: "err_request_object", .. }));
        let q = query("client_id=app");
        assert!(matches!(r.to_authorize_error(&q, &client), AuthorizeError::Page { .. }));
        let missing = refused("missing", "sign it");
        let q = query("client_id=app&redirect_uri=https://app.example/cb");
        assert!(matches!(
            missing.to_authorize_error(&q, &client),
            AuthorizeError::Redirect { error: "invalid_request", .. }
        ));
    }
}
