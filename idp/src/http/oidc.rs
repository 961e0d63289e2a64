//! OpenID Connect endpoints other than authorization: discovery, keys, token, introspection,
//! revocation, userinfo and logout.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;

use super::errors::Failure;
use super::pages::{render_page, NoData};
use super::viewer::current_session;
use super::{client_address, csrf, lang_of, removal, SESSION_COOKIE};
use crate::error::now;
use crate::oidc::client_auth::BasicCredentials;
use crate::oidc::params::Params;
use crate::oidc::token::{self, TokenError};
use crate::oidc::{dpop, introspection, logout, par, userinfo};
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
        .body(state.keys.jwks_body(now()).as_str().to_owned())
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
        return Err(TokenError::InvalidRequest("the body must be application/x-www-form-urlencoded".into()).into());
    }
    Params::parse(body).map_err(|e| TokenError::InvalidRequest(e.to_string()).into())
}

/// The answer for a refused token, introspection or revocation request, audited as the
/// mapping says (a failed client authentication).
async fn refused(state: &AppState, req: &HttpRequest, e: TokenError) -> Failure {
    Failure::from(e).audited(state, "token.client_auth", client_address(req)).await
}

/// Every `DPoP` header of a request, as sent (a value that is not text counts, and fails).
fn dpop_headers(req: &HttpRequest) -> Vec<String> {
    req.headers().get_all("dpop").map(|v| v.to_str().unwrap_or("").to_string()).collect()
}

/// The server's current DPoP nonce, sent with every answer of the token and PAR endpoints so a
/// client has it before its next proof (RFC 9449 §8).
fn current_nonce(state: &AppState) -> String {
    dpop::nonce(&state.protector, now())
}

/// `POST /token`
pub async fn token(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let params = form_params(&req, &body)?;
    match token::exchange(&state, &params, basic_credentials(&req), &dpop_headers(&req), now()).await {
        Ok(body) => {
            let mut r = json_no_store(body);
            insert_nonce(&mut r, current_nonce(&state));
            Ok(r)
        }
        Err(e) => Err(refused(&state, &req, e).await.with_dpop_nonce(current_nonce(&state))),
    }
}

fn insert_nonce(r: &mut HttpResponse, nonce: String) {
    if let Ok(v) = header::HeaderValue::from_str(&nonce) {
        r.headers_mut().insert(header::HeaderName::from_static("dpop-nonce"), v);
    }
}

/// `POST /par` (RFC 9126): 201 with `request_uri` and `expires_in`.
pub async fn pushed_authorization_request(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let params = form_params(&req, &body)?;
    match par::push(&state, &params, basic_credentials(&req), &dpop_headers(&req), now()).await {
        Ok(body) => {
            let mut r = json_no_store(body);
            *r.status_mut() = StatusCode::CREATED;
            insert_nonce(&mut r, current_nonce(&state));
            Ok(r)
        }
        Err(e) => Err(refused(&state, &req, e).await.with_dpop_nonce(current_nonce(&state))),
    }
}

/// `POST /introspect` (RFC 7662)
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let params = form_params(&req, &body)?;
    match introspection::introspect(&state, &params, basic_credentials(&req), now()).await {
        Ok(body) => Ok(json_no_store(body)),
        Err(e) => Err(refused(&state, &req, e).await),
    }
}

/// `POST /revoke` (RFC 7009)
pub async fn revoke(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let params = form_params(&req, &body)?;
    match introspection::revoke(&state, &params, basic_credentials(&req), now()).await {
        Ok(()) => Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).finish()),
        Err(e) => Err(refused(&state, &req, e).await),
    }
}

/// `GET|POST /userinfo`
pub async fn userinfo(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer") || s.eq_ignore_ascii_case("dpop"))
        .map(|(s, t)| (s.eq_ignore_ascii_case("dpop"), t.trim().to_string()));
    let from_body = if req.method() == actix_web::http::Method::POST && is_form(&req) {
        Params::parse(&body).ok().and_then(|p| p.get("access_token").ok().flatten().map(str::to_string))
    } else {
        None
    };
    let presented = userinfo::presented(from_header, from_body)?;
    let method = req.method().as_str().to_string();
    match userinfo::userinfo(&state, &presented, &dpop_headers(&req), &method, now()).await {
        Ok(body) => {
            let mut r = json_no_store(body);
            if presented.dpop_scheme {
                insert_nonce(&mut r, current_nonce(&state));
            }
            Ok(r)
        }
        Err(e) => {
            let f = Failure::from(e);
            Err(if presented.dpop_scheme { f.with_dpop_nonce(current_nonce(&state)) } else { f })
        }
    }
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

/// The data of `logout.hbs`: 確定要登出嗎？, posting back what the request carried.
#[derive(Debug, Serialize)]
struct LogoutPage {
    csrf: String,
    post_logout_redirect_uri: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
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
    let params = Params::parse(&raw)?;
    if let Some(dup) = params.first_duplicate() {
        return Err(Failure::page(
            StatusCode::BAD_REQUEST,
            "err_bad_request",
            Some(format!("parameter `{dup}` is repeated")),
        ));
    }
    let lang = lang_of(&req, params.get("ui_locales").ok().flatten());
    let request = logout::check(&state, &params, now()).await?;
    let confirmed = post && params.get("confirm").ok().flatten() == Some("yes");
    if confirmed && !csrf::verify(&req, params.get("csrf_token").ok().flatten()) {
        return Err(Failure::page(StatusCode::FORBIDDEN, "err_csrf", None));
    }
    let current = current_session(&state, &req).await?;
    let hint_names_session = match (&request.hint, &current) {
        (Some(h), Some(s)) => Some(logout::hint_names(&state, h, s).await?),
        _ => None,
    };
    if !logout::ends_now(confirmed, request.hint.is_some(), hint_names_session) {
        let (csrf, csrf_cookie) = csrf::token(&state, &req);
        let data = LogoutPage {
            csrf,
            post_logout_redirect_uri: request.post_logout_redirect_uri,
            client_id: request.client_id,
            state: request.state,
        };
        let cookies = csrf_cookie.into_iter().collect();
        return render_page(&state, lang, StatusCode::OK, "logout", "logout_title", &data, cookies);
    }
    if let Some(token) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()) {
        logout::end_session(&state, token, client_address(&req), now()).await?;
    }
    let clear = removal(&state, SESSION_COOKIE);
    match request.post_logout_redirect_uri {
        Some(uri) => {
            let url = logout::redirect_after(&uri, request.state.as_deref());
            Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, url)).cookie(clear).finish())
        }
        None => render_page(&state, lang, StatusCode::OK, "logged_out", "logged_out_title", &NoData {}, vec![clear]),
    }
}
