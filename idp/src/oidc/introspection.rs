//! Token introspection (RFC 7662) and revocation (RFC 7009). Both require client
//! authentication; a client may revoke only its own tokens.

use serde_json::{json, Value};

use super::access;
use super::client_auth::{self, BasicCredentials};
use super::clients::Client;
use super::params::Params;
use super::refresh;
use super::token::TokenError;
use super::token_use;
use crate::state::AppState;

/// Whether a client may learn about a token issued to `issued_to` for `resource` (RFC 8707; `None`:
/// for the provider itself): its own tokens always; others' only when an operator made it a
/// resource server — and a token meant for one API only by that API, so one API cannot read
/// another's tokens. To anyone else such a token is simply inactive (RFC 7662 §2.2), so
/// introspection cannot be used to probe other clients' tokens.
fn may_see(client: &Client, issued_to: &str, resource: Option<&str>) -> bool {
    if client.client_id == issued_to {
        return true;
    }
    match resource {
        None => client.resource_server,
        Some(r) => client.resource_server && client.resource_uri.as_deref() == Some(r),
    }
}

/// `POST /introspect`, answered as at `now`.
pub async fn introspect(
    state: &AppState,
    params: &Params,
    basic: BasicCredentials,
    now: i64,
) -> Result<Value, TokenError> {
    if let Some(dup) = params.first_duplicate() {
        return Err(TokenError::InvalidRequest(format!("parameter `{dup}` is repeated")));
    }
    let client = client_auth::authenticate(state, params, basic, "/introspect", now).await?;
    if client.token_endpoint_auth_method == "none" {
        return Err(TokenError::UnauthorizedClient("public clients cannot introspect".into()));
    }
    let token =
        params.get("token").ok().flatten().ok_or_else(|| TokenError::InvalidRequest("token is missing".into()))?;
    let hint = params.get("token_type_hint").ok().flatten();
    let inactive = json!({ "active": false });
    if hint != Some("refresh_token") {
        if let Some(c) = access::verify(state, token, now).await? {
            let resource = (c.aud != state.config.issuer).then_some(c.aud.as_str());
            if !may_see(&client, &c.client_id, resource) {
                return Ok(inactive);
            }
            if let Some(account) = &c.account {
                if !token_use::may_use(state, account).await? {
                    return Ok(inactive);
                }
            }
            // RFC 9449 §6.2: a bound token is reported with its key, so an API that introspects
            // can demand the proof.
            let token_type = if c.cnf.is_some() { "DPoP" } else { "Bearer" };
            let mut v = json!({
                "active": true, "token_type": token_type, "scope": c.scope, "client_id": c.client_id,
                "sub": c.sub, "aud": c.aud, "iss": c.iss, "exp": c.exp, "iat": c.iat, "jti": c.jti,
            });
            if let Some(cnf) = &c.cnf {
                v["cnf"] = json!(cnf);
            }
            if let Some(acr) = c.acr {
                v["acr"] = json!(acr);
            }
            if let Some(t) = c.auth_time {
                v["auth_time"] = json!(t);
            }
            return Ok(v);
        }
    }
    let t = token.to_string();
    let row = state.db.run(move |c| refresh::find(c, &t)).await?;
    if let Some(r) = row.filter(|r| may_see(&client, &r.client_id, r.resource.as_deref())) {
        let live = r.used_at.is_none() && r.revoked_at.is_none() && r.expires_at > now;
        if live && token_use::may_use(state, &r.account_id).await? {
            let client = state.client_cache.get(&state.db, &r.client_id).await?;
            let sub = client
                .map(|c| super::subject::subject_for(&state.protector, &c, &r.account_id))
                .unwrap_or_else(|| r.account_id.clone());
            let mut v = json!({
                "active": true, "token_type": "refresh_token", "scope": r.scope, "client_id": r.client_id,
                "sub": sub, "iss": state.config.issuer, "exp": r.expires_at, "iat": r.created_at,
            });
            if let Some(jkt) = r.dpop_jkt {
                v["cnf"] = json!({ "jkt": jkt });
            }
            return Ok(v);
        }
    }
    Ok(inactive)
}

/// `POST /revoke`. Unknown tokens are answered with success, as RFC 7009 §2.2 asks.
pub async fn revoke(state: &AppState, params: &Params, basic: BasicCredentials, now: i64) -> Result<(), TokenError> {
    if let Some(dup) = params.first_duplicate() {
        return Err(TokenError::InvalidRequest(format!("parameter `{dup}` is repeated")));
    }
    let client = client_auth::authenticate(state, params, basic, "/revoke", now).await?;
    let token =
        params.get("token").ok().flatten().ok_or_else(|| TokenError::InvalidRequest("token is missing".into()))?;
    if let Some(c) = access::verify(state, token, now).await? {
        if c.client_id != client.client_id {
            return Err(TokenError::UnauthorizedClient("the token was issued to another client".into()));
        }
        access::revoke(state, &c.jti, c.exp, now).await?;
        return Ok(());
    }
    let t = token.to_string();
    let row = state.db.run(move |c| refresh::find(c, &t)).await?;
    if let Some(r) = row {
        if r.client_id != client.client_id {
            return Err(TokenError::UnauthorizedClient("the token was issued to another client".into()));
        }
        state.db.run(move |c| refresh::revoke_family(c, &r.family_id, now)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_for_one_api_is_seen_by_that_api_and_its_client_only() {
        let mut own = Client::default();
        own.client_id = "app".into();
        let mut hr_api = Client::default();
        hr_api.client_id = "hr-api".into();
        hr_api.resource_server = true;
        hr_api.resource_uri = Some("https://hr.example/api".into());
        let mut other_api = hr_api.clone();
        other_api.client_id = "mail-api".into();
        other_api.resource_uri = Some("https://mail.example/api".into());
        let mut stranger = Client::default();
        stranger.client_id = "stranger".into();
        let for_hr = Some("https://hr.example/api");
        assert!(may_see(&own, "app", for_hr), "its own client");
        assert!(may_see(&hr_api, "app", for_hr), "the API it is for");
        assert!(!may_see(&other_api, "app", for_hr), "not another API");
        assert!(!may_see(&stranger, "app", for_hr));
        // A token for the provider itself: any resource server, as before.
        assert!(may_see(&other_api, "app", None));
        assert!(!may_see(&stranger, "app", None));
    }
}
