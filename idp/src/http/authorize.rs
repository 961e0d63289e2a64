//! The authorization endpoint and what follows a sign-in: assurance, consent, and the response
//! to the client (query redirect or form post).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map};

use super::errors::{internal, page, Failure};
use super::pages::render;
use super::{audit_request, client_address, csrf, lang_of, SESSION_COOKIE};
use crate::accounts::{self, AccountState, PersonStatus};
use crate::authn::session::{self, Session};
use crate::crypto::random_token;
use crate::error::{now, InfraError};
use crate::oidc::authorize::{self, AuthRequest, AuthorizeError, CodeGrant};
use crate::oidc::clients::{Audience, Client};
use crate::oidc::params::Params;
use crate::oidc::subject::subject_for;
use crate::oidc::{acr_satisfies, backchannel, consent};
use crate::state::AppState;
use crate::templates::Lang;

pub async fn authorize_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    authorize(state, req, web::Bytes::new(), false).await
}

pub async fn authorize_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    authorize(state, req, body, true).await
}

/// The live session of the request's cookie whose person may still sign in.
pub async fn current_session(state: &AppState, req: &HttpRequest) -> Result<Option<Session>, InfraError> {
    Ok(signed_in(state, req).await?.map(|(s, _, _)| s))
}

/// The live session of the request's cookie with its account and register entry (looked up
/// together: every page that needs the session also needs who it is).
pub async fn signed_in(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<(Session, accounts::Account, accounts::Person)>, InfraError> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else { return Ok(None) };
    let token = cookie.value().to_string();
    if token.len() > 64 {
        return Ok(None);
    }
    let protector = state.protector.clone();
    state
        .db
        .run(move |c| -> Result<_, InfraError> {
            let Some(s) = session::find(c, &token, now())? else { return Ok(None) };
            let Some((a, p)) = accounts::account_with_person(c, &protector, &s.account_id)? else { return Ok(None) };
            Ok((a.state == AccountState::Active && p.status == PersonStatus::Active).then_some((s, a, p)))
        })
        .await
}

/// Sends the response parameters back to the client: a redirect with a query, or an
/// auto-submitted form (OAuth 2.0 Form Post Response Mode).
pub fn respond(redirect_uri: &str, pairs: &[(&str, &str)], form_post: bool, status: StatusCode) -> HttpResponse {
    if !form_post {
        let url = authorize::redirect_with(redirect_uri, pairs);
        return HttpResponse::build(status)
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish();
    }
    let esc = handlebars::html_escape;
    let nonce = random_token(16);
    let inputs: String = pairs
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v)))
        .collect();
    let body = format!(
        "<!DOCTYPE html><html lang=\"zh-TW\"><head><meta charset=\"utf-8\"><title>…</title></head><body>\
         <form method=\"post\" action=\"{}\">{inputs}<noscript><button type=\"submit\">繼續 / Continue</button></noscript></form>\
         <script nonce=\"{nonce}\">document.forms[0].submit();</script></body></html>",
        esc(redirect_uri)
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            format!("default-src 'none'; script-src 'nonce-{nonce}'; frame-ancestors 'none'; base-uri 'none'"),
        ))
        .body(body)
}

/// An error sent back to a trusted redirect URI, with `state` and `iss`.
fn error_response(state: &AppState, auth: &AuthRequest, error: &str, description: &str) -> HttpResponse {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(s) = &auth.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.config.issuer));
    respond(&auth.redirect_uri, &pairs, auth.form_post(), StatusCode::FOUND)
}

async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
    post: bool,
) -> Result<HttpResponse, Failure> {
    let raw: &[u8] = if post { &body } else { req.query_string().as_bytes() };
    let lang0 = lang_of(&req, None);
    let params = Params::parse(raw)
        .map_err(|e| page(&state, lang0, StatusCode::BAD_REQUEST, "err_bad_request", Some(e.to_string())))?;
    let lang = lang_of(&req, params.get("ui_locales").ok().flatten());
    let target = match authorize::target(&params) {
        Ok(t) => t,
        Err(e) => return show(&state, lang, e),
    };
    let client = state.client_cache.get(&state, target.client_id).await.map_err(|e| internal(&state, lang, e))?;
    let Some(client) = client.filter(|c| !c.disabled) else {
        return Err(page(&state, lang, StatusCode::BAD_REQUEST, "err_client_unknown", None));
    };
    let auth = match authorize::validate(&params, &client) {
        Ok(a) => a,
        Err(e) => return show(&state, lang, e),
    };
    // The hint names who should be signed in; a session of someone else does not count.
    let hinted_sub = match &auth.id_token_hint {
        None => None,
        Some(hint) => match state.keys.verify_own(hint) {
            Some(c) if c["iss"] == json!(state.config.issuer) && c["aud"] == json!(client.client_id) => {
                c["sub"].as_str().map(str::to_string)
            }
            _ => {
                return Ok(error_response(
                    &state,
                    &auth,
                    "invalid_request",
                    "id_token_hint is not a valid ID token for this client",
                ))
            }
        },
    };
    let session = current_session(&state, &req).await.map_err(|e| internal(&state, lang, e))?;
    let now = now();
    let usable = session.filter(|s| {
        let fresh = auth.max_age.is_none_or(|m| now - s.auth_time <= m);
        let same = hinted_sub.as_ref().is_none_or(|h| *h == subject_for(&state.protector, &client, &s.account_id));
        fresh && same
    });
    let force_login = auth.prompt.iter().any(|p| p == "login");
    match usable {
        Some(s) if !force_login => continue_authorization(&state, lang, &auth, &client, &s, StatusCode::FOUND).await,
        _ if auth.prompt.iter().any(|p| p == "none") => {
            Ok(error_response(&state, &auth, "login_required", "the person is not signed in"))
        }
        _ => {
            let tx = super::login::start_transaction(&state, &auth).await.map_err(|e| internal(&state, lang, e))?;
            Ok(HttpResponse::Found().insert_header((header::LOCATION, format!("/login?tx={tx}"))).finish())
        }
    }
}

fn show(state: &AppState, lang: Lang, e: AuthorizeError) -> Result<HttpResponse, Failure> {
    match e {
        AuthorizeError::Page { key, detail } => Err(page(state, lang, StatusCode::BAD_REQUEST, key, Some(detail))),
        AuthorizeError::Redirect { redirect_uri, state: st, error, description, form_post } => {
            let mut pairs = vec![("error", error), ("error_description", description.as_str())];
            if let Some(s) = &st {
                pairs.push(("state", s));
            }
            pairs.push(("iss", &state.config.issuer));
            Ok(respond(&redirect_uri, &pairs, form_post, StatusCode::FOUND))
        }
    }
}

/// After a sign-in (or with an existing session): check the client's assurance requirement and
/// consent, then answer the client.
pub async fn continue_authorization(
    state: &AppState,
    lang: Lang,
    auth: &AuthRequest,
    client: &Client,
    session: &Session,
    status: StatusCode,
) -> Result<HttpResponse, Failure> {
    if client.audience != Audience::Everyone {
        let (id, protector) = (session.account_id.clone(), state.protector.clone());
        let person = state
            .db
            .run(move |c| Ok::<_, InfraError>(accounts::account_with_person(c, &protector, &id)?.map(|(_, p)| p)))
            .await
            .map_err(|e| internal(state, lang, e))?;
        if !person.is_some_and(|p| client.audience.admits(&p)) {
            return Ok(error_response(
                state,
                auth,
                "access_denied",
                "this application is not available to this person",
            ));
        }
    }
    if let Some(min) = &client.min_acr {
        let interactive = !auth.prompt.iter().any(|p| p == "none");
        if !acr_satisfies(&session.acr, min) && interactive && state.card.is_some() {
            // Step-up: the person signs in again with a card; the request continues after.
            let tx = super::login::start_transaction(state, auth).await.map_err(|e| internal(state, lang, e))?;
            return Ok(HttpResponse::build(status)
                .insert_header((header::LOCATION, format!("/login?tx={tx}&card=required")))
                .finish());
        }
        if !acr_satisfies(&session.acr, min) {
            return Ok(error_response(
                state,
                auth,
                "unmet_authentication_requirements",
                &format!("this application requires assurance {min}"),
            ));
        }
    }
    if client.consent_required {
        let (account, client_id, scope) = (session.account_id.clone(), client.client_id.clone(), auth.scope.clone());
        let covered = state
            .db
            .run(move |c| consent::covers(c, &account, &client_id, &scope))
            .await
            .map_err(|e| internal(state, lang, e))?;
        let asked = auth.prompt.iter().any(|p| p == "consent");
        if asked || !covered {
            if auth.prompt.iter().any(|p| p == "none") {
                return Ok(error_response(
                    state,
                    auth,
                    "consent_required",
                    "the person has not approved this application",
                ));
            }
            let tx = super::login::start_transaction(state, auth).await.map_err(|e| internal(state, lang, e))?;
            return Ok(HttpResponse::build(status)
                .insert_header((header::LOCATION, format!("/consent?tx={tx}")))
                .finish());
        }
    }
    finish_authorization(state, lang, auth, session, status).await
}

/// Issues a code for a signed-in person and answers the client.
pub async fn finish_authorization(
    state: &AppState,
    lang: Lang,
    auth: &AuthRequest,
    session: &Session,
    status: StatusCode,
) -> Result<HttpResponse, Failure> {
    let grant = CodeGrant {
        client_id: auth.client_id.clone(),
        redirect_uri: auth.redirect_uri.clone(),
        account_id: session.account_id.clone(),
        sid: session.sid.clone(),
        auth_time: session.auth_time,
        acr: session.acr.clone(),
        amr: session.amr.clone(),
        nonce: auth.nonce.clone(),
        scope: auth.scope.clone(),
        code_challenge: auth.code_challenge.clone(),
    };
    let (code, key) = authorize::new_code();
    state
        .eph
        .put_json(&key, &grant, state.config.tokens.code_ttl)
        .await
        .map_err(|e| internal(state, lang, e.into()))?;
    // Only clients that can be told about a logout need to be remembered with the session.
    let client = state.client_cache.get(state, &auth.client_id).await.map_err(|e| internal(state, lang, e))?;
    if client.is_some_and(|c| c.backchannel_logout_uri.is_some()) {
        let (sid, client_id, account_id) = (session.sid.clone(), auth.client_id.clone(), session.account_id.clone());
        state
            .db
            .run(move |c| backchannel::record(c, &sid, &client_id, &account_id, now()))
            .await
            .map_err(|e| internal(state, lang, e))?;
    }
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = &auth.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.config.issuer));
    let status = if auth.form_post() { StatusCode::OK } else { status };
    Ok(respond(&auth.redirect_uri, &pairs, auth.form_post(), status))
}

/// `GET /consent?tx=…`: what the application asks for, with allow and deny.
pub async fn consent_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let q = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let tx = q.get("tx").ok().flatten().unwrap_or("").to_string();
    let (auth, client, _session, lang) = consent_context(&state, &req, &tx).await?;
    let (csrf, csrf_cookie) = csrf::token(&state, &req);
    let scopes: Vec<_> = auth
        .scope
        .iter()
        .filter(|s| *s != "openid")
        .map(|s| json!({ "name": s, "text": state.templates.text(lang, &format!("scope_{s}")) }))
        .collect();
    let mut ctx = Map::new();
    ctx.insert("csrf".into(), json!(csrf));
    ctx.insert("tx".into(), json!(tx));
    ctx.insert("client_name".into(), json!(client.client_name));
    ctx.insert("scopes".into(), json!(scopes));
    render(&state, lang, StatusCode::OK, "consent", "consent_title", ctx, csrf_cookie.into_iter().collect())
}

/// `POST /consent`: `decision=allow` or `decision=deny`.
pub async fn consent_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let lang0 = lang_of(&req, None);
    let form =
        Params::parse(&body).map_err(|_| page(&state, lang0, StatusCode::BAD_REQUEST, "err_bad_request", None))?;
    if !csrf::verify(&req, form.get("csrf_token").ok().flatten()) {
        return Err(page(&state, lang0, StatusCode::FORBIDDEN, "err_csrf", None));
    }
    let tx = form.get("tx").ok().flatten().unwrap_or("").to_string();
    let (auth, client, session, lang) = consent_context(&state, &req, &tx).await?;
    super::login::end_transaction(&state, &tx).await;
    let address = client_address(&req);
    match form.get("decision").ok().flatten() {
        Some("allow") => {
            let (account, client_id, scope) =
                (session.account_id.clone(), client.client_id.clone(), auth.scope.clone());
            state
                .db
                .run(move |c| -> Result<(), InfraError> {
                    consent::grant(c, &account, &client_id, &scope, now())?;
                    let e = crate::audit::Event {
                        event: "consent.grant",
                        outcome: "success",
                        actor: Some(&account),
                        account_id: Some(&account),
                        client_id: Some(&client_id),
                        address: Some(&address),
                        detail: scope.join(" "),
                    };
                    crate::audit::record(c, e, now())
                })
                .await
                .map_err(|e| internal(&state, lang, e))?;
            finish_authorization(&state, lang, &auth, &session, StatusCode::SEE_OTHER).await
        }
        Some("deny") => {
            audit_request(&state, "consent.deny", "denied", Some(session.account_id.clone()), address).await;
            Ok(error_response(&state, &auth, "access_denied", "the person denied the request"))
        }
        _ => Err(page(
            &state,
            lang,
            StatusCode::BAD_REQUEST,
            "err_bad_request",
            Some("decision must be allow or deny".into()),
        )),
    }
}

async fn consent_context(
    state: &AppState,
    req: &HttpRequest,
    tx: &str,
) -> Result<(AuthRequest, std::sync::Arc<Client>, Session, Lang), Failure> {
    let lang0 = lang_of(req, None);
    let auth = super::login::transaction_or_page(state, lang0, Some(tx))
        .await?
        .ok_or_else(|| page(state, lang0, StatusCode::BAD_REQUEST, "err_tx", None))?;
    let lang = lang_of(req, auth.ui_locales.as_deref());
    let session = current_session(state, req)
        .await
        .map_err(|e| internal(state, lang, e))?
        .ok_or_else(|| page(state, lang, StatusCode::BAD_REQUEST, "err_tx", None))?;
    let client = state
        .client_cache
        .get(state, &auth.client_id)
        .await
        .map_err(|e| internal(state, lang, e))?
        .ok_or_else(|| page(state, lang, StatusCode::BAD_REQUEST, "err_client_unknown", None))?;
    Ok((auth, client, session, lang))
}
