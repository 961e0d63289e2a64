//! OpenID Connect endpoints other than authorization: discovery, keys, token, introspection,
//! revocation, userinfo and logout.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use diesel::Connection;
use serde_json::{json, Map};

use super::authorize::current_session;
use super::errors::{bearer, bearer_required, internal, invalid_client, oauth, page, server_error, Failure};
use super::pages::render;
use super::{audit_request, client_address, csrf, lang_of, removal, SESSION_COOKIE};
use crate::accounts::{self, PersonStatus};
use crate::audit::{self, Event};
use crate::authn::session;
use crate::error::{now, InfraError};
use crate::oidc::authorize;
use crate::oidc::client_auth::BasicCredentials;
use crate::oidc::params::Params;
use crate::oidc::subject::subject_for;
use crate::oidc::token::{self, TokenError};
use crate::oidc::{access, backchannel, claims, introspection};
use crate::state::AppState;

fn json_no_store(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .body(body.to_string())
}

/// `GET /.well-known/openid-configuration`
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(state.discovery.as_str().to_owned())
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414)
pub async fn oauth_metadata(state: web::Data<AppState>) -> HttpResponse {
    let body = crate::oidc::discovery::oauth_authorization_server(&state.config.issuer, state.card.is_some());
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(body.to_string())
}

/// `GET /jwks`
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(state.keys.jwks_body().as_str().to_owned())
}

/// Decodes `Authorization: Basic` client credentials (RFC 6749 §2.3.1: form-encoded, then base64).
fn basic_credentials(req: &HttpRequest) -> BasicCredentials {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| ()).and_then(|b| String::from_utf8(b).map_err(|_| ()));
    Some(decoded.and_then(|s| {
        let (id, secret) = s.split_once(':').ok_or(())?;
        let dec = |v: &str| {
            let plus = v.replace('+', "%20");
            url::form_urlencoded::parse(format!("v={plus}").as_bytes()).next().map(|(_, v)| v.into_owned()).ok_or(())
        };
        Ok((dec(id)?, dec(secret)?))
    }))
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    })
}

/// The form body of a back-end endpoint, or the RFC 6749 error for a malformed one.
fn form_params(req: &HttpRequest, body: &[u8]) -> Result<Params, Failure> {
    if !is_form(req) {
        return Err(oauth(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Params::parse(body).map_err(|e| oauth(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()))
}

/// Turns a token-endpoint-style error into its response (RFC 6749 §5.2).
async fn token_failure(state: &AppState, req: &HttpRequest, e: TokenError) -> Failure {
    match e {
        TokenError::InvalidClient { description, basic } => {
            audit_request(state, "token.client_auth", "failure", None, client_address(req)).await;
            invalid_client(&description, basic)
        }
        TokenError::Server(e) => server_error(&e, "token"),
        e => {
            let description = match &e {
                TokenError::InvalidRequest(d)
                | TokenError::InvalidGrant(d)
                | TokenError::InvalidScope(d)
                | TokenError::UnauthorizedClient(d) => d.clone(),
                _ => "grant_type is not supported".into(),
            };
            oauth(StatusCode::BAD_REQUEST, e.code(), &description)
        }
    }
}

/// `POST /token`
pub async fn token(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let params = form_params(&req, &body)?;
    match token::exchange(&state, &params, basic_credentials(&req)).await {
        Ok(body) => Ok(json_no_store(body)),
        Err(e) => Err(token_failure(&state, &req, e).await),
    }
}

/// `POST /introspect` (RFC 7662)
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let params = form_params(&req, &body)?;
    match introspection::introspect(&state, &params, basic_credentials(&req)).await {
        Ok(body) => Ok(json_no_store(body)),
        Err(e) => Err(token_failure(&state, &req, e).await),
    }
}

/// `POST /revoke` (RFC 7009)
pub async fn revoke(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let params = form_params(&req, &body)?;
    match introspection::revoke(&state, &params, basic_credentials(&req)).await {
        Ok(()) => Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).finish()),
        Err(e) => Err(token_failure(&state, &req, e).await),
    }
}

/// `GET|POST /userinfo`
pub async fn userinfo(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let from_body = if req.method() == actix_web::http::Method::POST && is_form(&req) {
        Params::parse(&body).ok().and_then(|p| p.get("access_token").ok().flatten().map(str::to_string))
    } else {
        None
    };
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return Err(bearer(StatusCode::BAD_REQUEST, "invalid_request", "send the token one way only"))
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => return Err(bearer_required()),
    };
    let invalid = || bearer(StatusCode::UNAUTHORIZED, "invalid_token", "the access token is invalid or expired");
    let server = |e: InfraError| server_error(&e, "userinfo");
    let claims = access::verify(&state, &token, now()).await.map_err(server)?.ok_or_else(invalid)?;
    let Some(account_id) = claims.account.clone() else {
        // A client_credentials token speaks for no person.
        return Err(bearer(StatusCode::FORBIDDEN, "insufficient_scope", "this token does not represent a person"));
    };
    if !claims.scopes().iter().any(|s| s == "openid") {
        return Err(bearer(StatusCode::FORBIDDEN, "insufficient_scope", "the openid scope is required"));
    }
    let client = state.client_cache.get(&state, &claims.client_id).await.map_err(server)?.ok_or_else(invalid)?;
    let protector = state.protector.clone();
    let scope = claims.scopes();
    let body = state
        .db
        .run(move |c| -> Result<_, InfraError> {
            let Some((a, p)) = accounts::account_with_person(c, &protector, &account_id)? else { return Ok(None) };
            if p.status != PersonStatus::Active {
                return Ok(None);
            }
            let sub = subject_for(&protector, &client, &a.id);
            claims::userinfo(c, &sub, &a, &p, &scope).map(Some)
        })
        .await
        .map_err(server)?
        .ok_or_else(invalid)?;
    Ok(json_no_store(body))
}

pub async fn logout_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let raw = req.query_string().as_bytes().to_vec();
    logout(state, req, raw, false).await
}

pub async fn logout_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    logout(state, req, body.to_vec(), true).await
}

/// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). With a valid `id_token_hint`
/// the session ends at once; without one the person confirms first, so a third-party page
/// cannot sign people out behind their back.
async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    raw: Vec<u8>,
    post: bool,
) -> Result<HttpResponse, Failure> {
    let lang0 = lang_of(&req, None);
    let params = Params::parse(&raw)
        .map_err(|e| page(&state, lang0, StatusCode::BAD_REQUEST, "err_bad_request", Some(e.to_string())))?;
    if let Some(dup) = params.first_duplicate() {
        return Err(page(
            &state,
            lang0,
            StatusCode::BAD_REQUEST,
            "err_bad_request",
            Some(format!("parameter `{dup}` is repeated")),
        ));
    }
    let get = |n: &str| params.get(n).ok().flatten().map(str::to_string);
    let lang = lang_of(&req, get("ui_locales").as_deref());
    let hint =
        get("id_token_hint").and_then(|t| state.keys.verify_own(&t)).filter(|c| c["iss"] == json!(state.config.issuer));
    if get("id_token_hint").is_some() && hint.is_none() {
        return Err(page(
            &state,
            lang,
            StatusCode::BAD_REQUEST,
            "err_bad_request",
            Some("id_token_hint is not a valid ID token of this provider".into()),
        ));
    }
    let hint_client = hint.as_ref().and_then(|c| c["aud"].as_str().map(str::to_string));
    let client_id = match (get("client_id"), hint_client) {
        (Some(a), Some(b)) if a != b => {
            return Err(page(
                &state,
                lang,
                StatusCode::BAD_REQUEST,
                "err_bad_request",
                Some("client_id does not match id_token_hint".into()),
            ))
        }
        (a, b) => a.or(b),
    };
    let post_logout = get("post_logout_redirect_uri");
    if let Some(uri) = &post_logout {
        let Some(id) = client_id.clone() else {
            return Err(page(
                &state,
                lang,
                StatusCode::BAD_REQUEST,
                "err_post_logout_redirect_uri",
                Some("client_id or id_token_hint is required".into()),
            ));
        };
        let client = state.client_cache.get(&state, &id).await.map_err(|e| internal(&state, lang, e))?;
        if !client.is_some_and(|c| c.has_post_logout_redirect_uri(uri)) {
            return Err(page(&state, lang, StatusCode::BAD_REQUEST, "err_post_logout_redirect_uri", None));
        }
    }
    let confirmed = post && get("confirm").as_deref() == Some("yes");
    if confirmed && !csrf::verify(&req, get("csrf_token").as_deref()) {
        return Err(page(&state, lang, StatusCode::FORBIDDEN, "err_csrf", None));
    }
    let session_token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let current = current_session(&state, &req).await.map_err(|e| internal(&state, lang, e))?;
    let hint_matches = match (&hint, &current) {
        (Some(h), Some(s)) => {
            let aud = h["aud"].as_str().unwrap_or("").to_string();
            let client = state.client_cache.get(&state, &aud).await.map_err(|e| internal(&state, lang, e))?;
            client.is_some_and(|c| h["sub"].as_str() == Some(subject_for(&state.protector, &c, &s.account_id).as_str()))
        }
        (Some(_), None) => true,
        _ => false,
    };
    if !confirmed && !hint_matches {
        let (csrf, csrf_cookie) = csrf::token(&state, &req);
        let mut ctx = Map::new();
        ctx.insert("csrf".into(), json!(csrf));
        ctx.insert("post_logout_redirect_uri".into(), json!(post_logout));
        ctx.insert("client_id".into(), json!(client_id));
        ctx.insert("state".into(), json!(get("state")));
        return render(&state, lang, StatusCode::OK, "logout", "logout_title", ctx, csrf_cookie.into_iter().collect());
    }
    if let Some(token) = session_token.filter(|t| t.len() <= 64) {
        let addr = client_address(&req);
        let ended = state
            .db
            .run(move |c| -> Result<_, InfraError> {
                c.transaction(|c| {
                    let ended = session::end(c, &token)?;
                    if let Some(s) = &ended {
                        // Queued with the ending itself, so a crash right after loses no delivery.
                        backchannel::mark_ended(c, std::slice::from_ref(&s.sid), now())?;
                        audit::record(c, Event::own("logout", "success", &s.account_id, &addr), now())?;
                    }
                    Ok(ended)
                })
            })
            .await
            .map_err(|e| internal(&state, lang, e))?;
        if let Some(s) = ended {
            // Delivery happens in the background; the person is not kept waiting.
            if let Err(e) = backchannel::notify(&state, &s.sid).await {
                tracing::error!(error = %e, "back-channel logout");
            }
        }
    }
    let clear = removal(&state, SESSION_COOKIE);
    match post_logout {
        Some(uri) => {
            let url = match get("state") {
                Some(s) => authorize::redirect_with(&uri, &[("state", &s)]),
                None => uri,
            };
            Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, url)).cookie(clear).finish())
        }
        None => render(&state, lang, StatusCode::OK, "logged_out", "logged_out_title", Map::new(), vec![clear]),
    }
}
