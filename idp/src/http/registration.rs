//! Dynamic client registration endpoints: `POST /register` (RFC 7591) with an operator's
//! initial access token, and `GET|PUT|DELETE /register/{client_id}` (RFC 7592) with the
//! client's registration access token. The protocol lives in [`crate::oidc::registration`];
//! this file only reads the request and shapes the answer. Every failure is JSON.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::client_address;
use super::errors::{bearer_required, invalid_token, oauth, Failure};
use crate::error::now;
use crate::oidc::clients::ClientError;
use crate::oidc::registration::{self, Metadata, MAX_REQUEST_BYTES};
use crate::state::AppState;

/// The bearer token of the request. No `Authorization: Bearer` at all is RFC 6750 §3.1's
/// "no authentication information" (a bare challenge); a malformed one is `invalid_token`.
fn bearer_token(req: &HttpRequest) -> Result<String, Failure> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else { return Err(bearer_required()) };
    if values.next().is_some() {
        return Err(invalid_token());
    }
    let value = value.to_str().map_err(|_| invalid_token())?;
    let Some((scheme, token)) = value.split_once(' ') else { return Err(bearer_required()) };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(bearer_required());
    }
    let token = token.trim();
    // RFC 6750 §2.1 b64token.
    let b64token = |t: &str| {
        let body = t.trim_end_matches('=');
        !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    };
    if token.len() > 512 || !b64token(token) {
        return Err(invalid_token());
    }
    Ok(token.to_string())
}

/// The request body, within the registration limit.
async fn body(payload: web::Payload) -> Result<web::Bytes, Failure> {
    match payload.to_bytes_limited(MAX_REQUEST_BYTES).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(oauth(StatusCode::BAD_REQUEST, "invalid_request", "the request body could not be read")),
        Err(_) => {
            Err(oauth(StatusCode::PAYLOAD_TOO_LARGE, "invalid_client_metadata", "the request is larger than 64 KiB"))
        }
    }
}

/// The metadata of a JSON body; anything but `application/json` is `invalid_client_metadata`
/// (RFC 7591 §3.1 requires JSON).
fn metadata(req: &HttpRequest, body: &[u8]) -> Result<Metadata, ClientError> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(ClientError::Metadata("Content-Type must be application/json".into()));
    }
    registration::parse(body)
}

fn json_response(status: StatusCode, v: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .body(v.to_string())
}

/// `POST /register`
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Failure> {
    let token = bearer_token(&req)?;
    let body = body(payload).await?;
    let meta = registration::check_urls(metadata(&req, &body), state.client_http.checks()).await;
    let address = client_address(&req);
    let (base, addr) = (state.config.base().to_string(), address.clone());
    match state.db.run(move |c| registration::register(c, &token, meta, &base, &addr, now())).await {
        Ok(v) => Ok(json_response(StatusCode::CREATED, &v)),
        Err(e) => Err(Failure::from(e).audited(&state, "client.register", address).await),
    }
}

fn client_id(req: &HttpRequest) -> String {
    req.match_info().query("client_id").to_string()
}

/// `GET /register/{client_id}`
pub async fn read(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let token = bearer_token(&req)?;
    let (id, base) = (client_id(&req), state.config.base().to_string());
    match state.db.run(move |c| registration::read(c, &id, &token, &base)).await {
        Ok(v) => Ok(json_response(StatusCode::OK, &v)),
        Err(e) => Err(Failure::from(e).audited(&state, "client.read", client_address(&req)).await),
    }
}

/// `PUT /register/{client_id}`
pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Failure> {
    let token = bearer_token(&req)?;
    let body = body(payload).await?;
    let meta = registration::check_urls(metadata(&req, &body), state.client_http.checks()).await;
    let address = client_address(&req);
    let id = client_id(&req);
    let (id2, base, addr) = (id.clone(), state.config.base().to_string(), address.clone());
    match state.db.run(move |c| registration::update(c, &id2, &token, meta, &base, &addr, now())).await {
        Ok(v) => {
            // This node sees the change at once; others within the cache's few seconds.
            state.client_cache.forget(&id);
            Ok(json_response(StatusCode::OK, &v))
        }
        Err(e) => Err(Failure::from(e).audited(&state, "client.update", address).await),
    }
}

/// `DELETE /register/{client_id}`
pub async fn delete(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let token = bearer_token(&req)?;
    let address = client_address(&req);
    let id = client_id(&req);
    let (id2, addr) = (id.clone(), address.clone());
    match state.db.run(move |c| registration::delete(c, &id2, &token, &addr, now())).await {
        Ok(()) => {
            state.client_cache.forget(&id);
            Ok(HttpResponse::NoContent().insert_header((header::CACHE_CONTROL, "no-store")).finish())
        }
        Err(e) => Err(Failure::from(e).audited(&state, "client.delete", address).await),
    }
}
