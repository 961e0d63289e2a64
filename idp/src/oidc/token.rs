//! The token endpoint: `authorization_code`, `refresh_token` (rotation, reuse detection) and
//! `client_credentials`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::access::{self, AccessClaims};
use super::authorize::CodeGrant;
use super::client_auth::{self, BasicCredentials};
use super::clients::Client;
use super::dpop::{self, Confirmation, DpopError};
use super::params::Params;
use super::person_tokens;
use super::refresh::{self, RefreshGrant};
use super::resource::{self, InvalidTarget};
use super::subject::subject_for;
use crate::audit::{self, Event};
use crate::crypto::{constant_time_eq, random_token};
use crate::error::InfraError;
use crate::state::AppState;
use crate::store::ephemeral::Key;

pub use super::token_error::TokenError;

/// What a code's redemption issues, put in the code's place the moment it is redeemed, so a
/// replay can revoke it. `redeemed_at` tells it apart from an unredeemed [`CodeGrant`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Redeemed {
    redeemed_at: i64,
    client_id: String,
    jti: String,
    exp: i64,
    family_id: String,
}

/// What a code's slot in the store held when a redemption swapped its marker in.
enum Slot {
    Unredeemed(Box<CodeGrant>),
    Redeemed(Redeemed),
    Unknown,
}

impl Slot {
    fn of(bytes: Option<Vec<u8>>) -> Self {
        let Some(b) = bytes else { return Slot::Unknown };
        if let Ok(r) = serde_json::from_slice::<Redeemed>(&b) {
            return Slot::Redeemed(r);
        }
        match serde_json::from_slice::<CodeGrant>(&b) {
            Ok(g) => Slot::Unredeemed(Box::new(g)),
            Err(_) => Slot::Unknown,
        }
    }
}

/// The key a token request proved with its `DPoP` header, if it sent one (RFC 9449 §5). Checked
/// before the client authenticates or any grant is spent, so a client told to retry with the
/// server's nonce (`use_dpop_nonce`) still has its code, its refresh token and its assertion.
pub async fn proof_at(state: &AppState, dpop: &[String], path: &str, now: i64) -> Result<Option<String>, TokenError> {
    let Some(proof) = dpop::single(dpop)? else { return Ok(None) };
    let url = dpop::endpoint_url(state, path);
    let expect = dpop::Expect { method: "POST", url: &url, access_token: None };
    Ok(Some(dpop::verify(state, proof, &expect, now).await?))
}

/// Handles a token request received at `now`; `dpop` holds the request's `DPoP` headers.
pub async fn exchange(
    state: &AppState,
    params: &Params,
    basic: BasicCredentials,
    dpop: &[String],
    now: i64,
) -> Result<Value, TokenError> {
    let asked = resource::requested(params)?;
    if let Some(dup) = params.first_duplicate() {
        return Err(TokenError::InvalidRequest(format!("parameter `{dup}` is repeated")));
    }
    let grant_type = params.get("grant_type").ok().flatten();
    let jkt = proof_at(state, dpop, "/token", now).await?;
    let client = client_auth::authenticate(state, params, basic, "/token", now).await?;
    if client.dpop_bound_access_tokens && jkt.is_none() {
        return Err(DpopError::Invalid("this client's tokens are DPoP-bound: send a DPoP proof".into()).into());
    }
    let jkt = jkt.as_deref();
    let grant_type = grant_type.ok_or_else(|| TokenError::InvalidRequest("grant_type is missing".into()))?;
    if !super::clients::GRANT_TYPES.contains(&grant_type) {
        return Err(TokenError::UnsupportedGrantType);
    }
    if !client.allows_grant(grant_type) {
        return Err(TokenError::UnauthorizedClient(format!("this client may not use {grant_type}")));
    }
    let asked = asked.as_deref();
    let answer = match grant_type {
        "authorization_code" => authorization_code(state, params, &client, jkt, asked, now).await,
        "refresh_token" => refresh_token(state, params, &client, jkt, asked, now).await,
        _ => client_credentials(state, params, &client, jkt, asked, now).await,
    };
    crate::metrics::token(grant_type, answer.as_ref().err().map(TokenError::code));
    answer
}

async fn authorization_code(
    state: &AppState,
    params: &Params,
    client: &Client,
    jkt: Option<&str>,
    asked: Option<&str>,
    now: i64,
) -> Result<Value, TokenError> {
    let get = |n: &str| params.get(n).ok().flatten();
    let code = get("code").ok_or_else(|| TokenError::InvalidRequest("code is missing".into()))?;
    let redirect_uri =
        get("redirect_uri").ok_or_else(|| TokenError::InvalidRequest("redirect_uri is missing".into()))?;
    // The code is marked redeemed — swapped atomically for a record of what this redemption will
    // issue — before anything else. Of two redemptions, here or on another node, exactly one
    // gets the grant, and the other always finds the record and revokes what it names (the
    // revocation list is keyed by `jti`, so revoking a token not yet signed works).
    let marker = Redeemed {
        redeemed_at: now,
        client_id: client.client_id.clone(),
        jti: random_token(16),
        exp: now + state.config.tokens.access_token_ttl.as_secs() as i64,
        family_id: random_token(16),
    };
    let key = Key::code(code);
    let bytes = serde_json::to_vec(&marker).map_err(|e| InfraError::Internal(e.to_string()))?;
    let ttl = state.config.tokens.access_token_ttl;
    let grant = match Slot::of(state.eph.swap(&key, &bytes, ttl).await.map_err(InfraError::from)?) {
        Slot::Unredeemed(g) => *g,
        Slot::Redeemed(first) => {
            replayed_code(state, first, now).await?;
            return Err(TokenError::InvalidGrant("the code is invalid, expired or already used".into()));
        }
        Slot::Unknown => {
            // Nothing to protect here: do not leave a record behind for a made-up code.
            state.eph.delete(&key).await.map_err(InfraError::from)?;
            return Err(TokenError::InvalidGrant("the code is invalid, expired or already used".into()));
        }
    };
    if grant.client_id != client.client_id {
        return Err(TokenError::InvalidGrant("the code was issued to another client".into()));
    }
    if grant.redirect_uri != redirect_uri {
        return Err(TokenError::InvalidGrant("redirect_uri does not match the authorization request".into()));
    }
    check_pkce(grant.code_challenge.as_deref(), get("code_verifier"))?;
    // RFC 9449 §10: a code asked for with `dpop_jkt` (or pushed with a proof) is redeemed only
    // with a proof of that key.
    if grant.dpop_jkt.is_some() && grant.dpop_jkt.as_deref() != jkt {
        return Err(TokenError::InvalidGrant("the code is bound to another DPoP key".into()));
    }
    let resource = served_resource(state, grant.resource.as_deref(), asked, true).await?;
    let session = SessionFacts {
        account_id: grant.account_id.clone(),
        sid: grant.sid.clone(),
        auth_time: grant.auth_time,
        acr: grant.acr.clone(),
        amr: grant.amr.clone(),
    };
    let family = issues_refresh_token(&grant.scope, client).then(|| marker.family_id.clone());
    let next = family.as_ref().map(|family_id| RefreshGrant {
        family_id: family_id.clone(),
        account_id: grant.account_id.clone(),
        client_id: client.client_id.clone(),
        scope: grant.scope.clone(),
        sid: grant.sid.clone(),
        auth_time: grant.auth_time,
        acr: grant.acr.clone(),
        amr: grant.amr.clone(),
        expires_at: now + state.config.tokens.refresh_token_ttl.as_secs() as i64,
        dpop_jkt: if client.public { jkt.map(str::to_string) } else { None },
        resource: resource.clone(),
    });
    let part = {
        let (protector, client, grant) = (state.protector.clone(), client.clone(), grant.clone());
        state.db.run(move |c| person_tokens::for_code(c, &protector, &client, &grant, next.as_ref(), now)).await??
    };
    let issued = sign_user_tokens(
        state,
        client,
        &session,
        &grant.scope,
        grant.nonce.as_deref(),
        part,
        marker.jti.clone(),
        Binding { jkt, resource: resource.as_deref() },
        now,
    )?;
    // A replay that came while the tokens were being issued revoked the access token, but maybe
    // before the refresh family existed: finish its work. (It left its own record in the slot.)
    let still_ours = matches!(Slot::of(state.eph.get(&key).await.map_err(InfraError::from)?),
        Slot::Redeemed(r) if r.jti == marker.jti);
    if !still_ours {
        if let Some(f) = family {
            state.db.run(move |c| refresh::revoke_family(c, &f, now)).await?;
        }
    }
    Ok(issued.body)
}

/// PKCE (RFC 7636 §4.6): a code whose request carried an S256 challenge is redeemed only with
/// the verifier it was computed from (43–128 characters); a code without one takes no verifier.
fn check_pkce(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), TokenError> {
    match (challenge, verifier) {
        (Some(challenge), Some(verifier)) => {
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            let well_formed = (43..=128).contains(&verifier.len());
            if !well_formed || !constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
                return Err(TokenError::InvalidGrant("code_verifier does not match the code_challenge".into()));
            }
            Ok(())
        }
        (Some(_), None) => Err(TokenError::InvalidGrant("code_verifier is missing".into())),
        (None, Some(_)) => {
            Err(TokenError::InvalidGrant("no code_challenge was sent with the authorization request".into()))
        }
        (None, None) => Ok(()),
    }
}

/// A refresh token comes only with `offline_access` granted, to a client allowed the grant.
fn issues_refresh_token(scope: &[String], client: &Client) -> bool {
    scope.iter().any(|s| s == "offline_access") && client.allows_grant("refresh_token")
}

/// The scopes a client may ask for on its own behalf: ones it is registered for, but never
/// `openid` or `offline_access`, since no person stands behind the token.
fn service_scope<'a>(client: &Client, asked: Option<&'a str>) -> Result<Vec<&'a str>, TokenError> {
    let asked: Vec<&str> = asked.unwrap_or("").split(' ').filter(|s| !s.is_empty()).collect();
    for s in &asked {
        if matches!(*s, "openid" | "offline_access") || !client.allows_scope(s) {
            return Err(TokenError::InvalidScope(format!("scope `{s}` is not available to this client")));
        }
    }
    Ok(asked)
}

/// A code presented again: revoke what its first redemption issued (RFC 6749 §4.1.2).
async fn replayed_code(state: &AppState, first: Redeemed, now: i64) -> Result<(), InfraError> {
    access::revoke(state, &first.jti, first.exp, now).await?;
    let family = first.family_id.clone();
    state
        .db
        .run(move |c| -> Result<(), InfraError> {
            let account = refresh::revoke_family_owner(c, &family, now)?;
            audit::record(
                c,
                Event {
                    event: "token.code_replay",
                    outcome: "revoked",
                    account_id: account.as_deref(),
                    client_id: Some(&first.client_id),
                    detail: "an authorization code was presented twice; its tokens were revoked".into(),
                    ..Default::default()
                },
                now,
            )
        })
        .await
}

async fn refresh_token(
    state: &AppState,
    params: &Params,
    client: &Client,
    jkt: Option<&str>,
    asked: Option<&str>,
    now: i64,
) -> Result<Value, TokenError> {
    let token = params
        .get("refresh_token")
        .ok()
        .flatten()
        .ok_or_else(|| TokenError::InvalidRequest("refresh_token is missing".into()))?
        .to_string();
    let scope = params.get("scope").ok().flatten().map(str::to_string);
    let (protector, owned_client) = (state.protector.clone(), client.clone());
    let (jkt_owned, resource) = (jkt.map(str::to_string), asked.map(str::to_string));
    let expires_at = now + state.config.tokens.refresh_token_ttl.as_secs() as i64;
    let rotated = state
        .db
        .run(move |c| {
            let ask = person_tokens::RefreshAsk {
                token: &token,
                jkt: jkt_owned.as_deref(),
                scope: scope.as_deref(),
                resource: resource.as_deref(),
                expires_at,
            };
            person_tokens::rotate(c, &protector, &owned_client, &ask, now)
        })
        .await??;
    let grant = rotated.grant;
    let session = SessionFacts {
        account_id: grant.account_id.clone(),
        sid: grant.sid.clone(),
        auth_time: grant.auth_time,
        acr: grant.acr.clone(),
        amr: grant.amr.clone(),
    };
    let binding = Binding { jkt, resource: grant.resource.as_deref() };
    let issued =
        sign_user_tokens(state, client, &session, &grant.scope, None, rotated.part, random_token(16), binding, now)?;
    Ok(issued.body)
}

async fn client_credentials(
    state: &AppState,
    params: &Params,
    client: &Client,
    jkt: Option<&str>,
    resource: Option<&str>,
    now: i64,
) -> Result<Value, TokenError> {
    let resource = served_resource(state, None, resource, true).await?;
    let asked = service_scope(client, params.get("scope").ok().flatten())?;
    let ttl = state.config.tokens.access_token_ttl.as_secs() as i64;
    let mut claims = AccessClaims::new(
        state.config.issuer.clone(),
        client.client_id.clone(),
        client.client_id.clone(),
        asked.join(" "),
        random_token(16),
        now,
        now + ttl,
        None,
    );
    claims.cnf = jkt.map(|k| Confirmation { jkt: k.to_string() });
    if let Some(r) = resource {
        claims.aud = r;
    }
    let token = access::sign(state, &claims)?;
    let mut body = json!({ "access_token": token, "token_type": token_type(jkt), "expires_in": ttl });
    if !asked.is_empty() {
        body["scope"] = json!(claims.scope);
    }
    Ok(body)
}

/// The resource the tokens are for ([`resource::settle`]), which must still be an enabled
/// resource server's: one disabled or removed since the grant gets no more tokens.
async fn served_resource(
    state: &AppState,
    granted: Option<&str>,
    asked: Option<&str>,
    first: bool,
) -> Result<Option<String>, TokenError> {
    let Some(uri) = resource::settle(granted, asked, first)? else { return Ok(None) };
    let lookup = uri.clone();
    match state.db.run(move |c| super::clients::resource_server_for(c, &lookup)).await? {
        Some(_) => Ok(Some(uri)),
        None => Err(InvalidTarget("the resource is not an API registered here".into()).into()),
    }
}

/// What an access token is bound to: the DPoP key proved (RFC 9449) and the API it is for
/// (RFC 8707; `None`: the provider itself, for userinfo).
#[derive(Clone, Copy)]
struct Binding<'a> {
    jkt: Option<&'a str>,
    resource: Option<&'a str>,
}

/// The facts of the sign-in behind a token.
struct SessionFacts {
    account_id: String,
    sid: String,
    auth_time: i64,
    acr: String,
    amr: Vec<String>,
}

struct Issued {
    body: Value,
}

/// `DPoP` for a token bound to a key, `Bearer` otherwise (RFC 9449 §5).
fn token_type(jkt: Option<&str>) -> &'static str {
    if jkt.is_some() {
        "DPoP"
    } else {
        "Bearer"
    }
}

/// Signs the access token (with the given `jti`, bound to the DPoP key `jkt` if one was
/// proved) and the ID token, from what the database gave for the person
/// ([`person_tokens::PersonPart`], the next refresh token included).
#[allow(clippy::too_many_arguments)]
fn sign_user_tokens(
    state: &AppState,
    client: &Client,
    s: &SessionFacts,
    scope: &[String],
    nonce: Option<&str>,
    part: person_tokens::PersonPart,
    jti: String,
    binding: Binding<'_>,
    now: i64,
) -> Result<Issued, TokenError> {
    let jkt = binding.jkt;
    let at_ttl = state.config.tokens.access_token_ttl.as_secs() as i64;
    let sub = subject_for(&state.protector, client, &s.account_id);
    let mut claims = AccessClaims::new(
        state.config.issuer.clone(),
        sub.clone(),
        client.client_id.clone(),
        scope.join(" "),
        jti,
        now,
        now + at_ttl,
        Some((s.account_id.clone(), s.sid.clone(), s.auth_time, s.acr.clone())),
    );
    claims.cnf = jkt.map(|k| Confirmation { jkt: k.to_string() });
    if let Some(r) = binding.resource {
        claims.aud = r.to_string();
    }
    let access_token = access::sign(state, &claims)?;
    let digest = Sha256::digest(access_token.as_bytes());
    let mut id_claims = json!({
        "iss": state.config.issuer,
        "sub": sub,
        "aud": client.client_id,
        "azp": client.client_id,
        "iat": now,
        "exp": now + state.config.tokens.id_token_ttl.as_secs() as i64,
        "auth_time": s.auth_time,
        "acr": s.acr,
        "amr": s.amr,
        "sid": s.sid,
        "at_hash": URL_SAFE_NO_PAD.encode(&digest[..16]),
    });
    if let Some(nonce) = nonce {
        id_claims["nonce"] = json!(nonce);
    }
    if let Some(obj) = id_claims.as_object_mut() {
        for (name, value) in part.requested {
            obj.insert(name, value);
        }
        for (k, v) in part.id_token_claims {
            // The protocol's claims are never replaced by a person's.
            obj.entry(k).or_insert(v);
        }
    }
    let id_token = state.keys.sign(&client.id_token_signed_response_alg, Some("JWT"), &id_claims, now)?;
    let mut body = json!({
        "access_token": access_token,
        "token_type": token_type(jkt),
        "expires_in": at_ttl,
        "id_token": id_token,
        "scope": scope.join(" "),
    });
    if let Some(rt) = part.refresh_token {
        body["refresh_token"] = json!(rt);
    }
    Ok(Issued { body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::client_auth::ClientAuthError;

    fn client(grants: &[&str], scopes: &[&str]) -> Client {
        let mut c = Client::default();
        c.client_id = "app".into();
        c.grant_types = grants.iter().map(|g| g.to_string()).collect();
        c.scope = scopes.iter().map(|s| s.to_string()).collect();
        c
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn invalid_grant(r: Result<(), TokenError>) -> bool {
        matches!(r, Err(TokenError::InvalidGrant(_)))
    }

    #[test]
    fn pkce_needs_the_verifier_of_the_challenge_and_only_then() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_pkce(Some(challenge), Some(verifier)).is_ok());
        assert!(invalid_grant(check_pkce(Some(challenge), Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl"))));
        assert!(invalid_grant(check_pkce(Some(challenge), None)), "the verifier is missing");
        assert!(invalid_grant(check_pkce(None, Some(verifier))), "a verifier for a code without a challenge");
        assert!(check_pkce(None, None).is_ok());
        // A verifier outside 43..=128 characters is refused even when its hash matches.
        let short = "a".repeat(42);
        let hash = |v: &str| URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()));
        assert!(invalid_grant(check_pkce(Some(&hash(&short)), Some(&short))));
        for n in [43, 128] {
            let v = "a".repeat(n);
            assert!(check_pkce(Some(&hash(&v)), Some(&v)).is_ok(), "{n} characters");
        }
        let long = "a".repeat(129);
        assert!(invalid_grant(check_pkce(Some(&hash(&long)), Some(&long))));
    }

    #[test]
    fn a_refresh_token_needs_offline_access_and_the_grant() {
        let both = client(&["authorization_code", "refresh_token"], &["openid", "offline_access"]);
        let code_only = client(&["authorization_code"], &["openid", "offline_access"]);
        assert!(issues_refresh_token(&strings(&["openid", "offline_access"]), &both));
        assert!(!issues_refresh_token(&strings(&["openid"]), &both));
        assert!(!issues_refresh_token(&strings(&["openid", "offline_access"]), &code_only));
    }

    #[test]
    fn a_service_token_has_only_registered_scopes_and_no_person_s() {
        let c = client(&["client_credentials"], &["openid", "offline_access", "hr.read", "hr.write"]);
        assert_eq!(service_scope(&c, None).unwrap(), Vec::<&str>::new());
        assert_eq!(service_scope(&c, Some("hr.read  hr.write")).unwrap(), ["hr.read", "hr.write"]);
        for bad in ["openid", "offline_access", "hr.read hr.admin"] {
            assert!(matches!(service_scope(&c, Some(bad)), Err(TokenError::InvalidScope(_))), "{bad}");
        }
    }

    #[test]
    fn a_code_slot_tells_a_redemption_record_from_a_grant() {
        let marker = Redeemed {
            redeemed_at: 1,
            client_id: "app".into(),
            jti: "jti-1".into(),
            exp: 2,
            family_id: "fam-1".into(),
        };
        let grant = CodeGrant {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            account_id: "acc-1".into(),
            sid: "sid-1".into(),
            auth_time: 1,
            acr: "loa-1".into(),
            amr: vec![],
            nonce: None,
            scope: strings(&["openid"]),
            code_challenge: None,
            id_token_claims: vec![],
            dpop_jkt: None,
            resource: None,
        };
        let marker = serde_json::to_vec(&marker).unwrap();
        let grant = serde_json::to_vec(&grant).unwrap();
        assert!(matches!(Slot::of(Some(marker)), Slot::Redeemed(r) if r.jti == "jti-1"));
        assert!(matches!(Slot::of(Some(grant)), Slot::Unredeemed(g) if g.account_id == "acc-1"));
        assert!(matches!(Slot::of(Some(b"not json".to_vec())), Slot::Unknown));
        assert!(matches!(Slot::of(None), Slot::Unknown));
    }

    #[test]
    fn each_error_has_its_rfc_6749_code() {
        assert_eq!(TokenError::InvalidGrant(String::new()).code(), "invalid_grant");
        assert_eq!(TokenError::InvalidScope(String::new()).code(), "invalid_scope");
        assert_eq!(TokenError::UnsupportedGrantType.code(), "unsupported_grant_type");
        let e: TokenError = ClientAuthError::InvalidClient { description: "x".into(), basic: true }.into();
        assert!(matches!(e, TokenError::InvalidClient { basic: true, .. }));
        assert_eq!(e.code(), "invalid_client");
    }
}
