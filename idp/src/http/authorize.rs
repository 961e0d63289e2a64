//! The authorization endpoint and what follows a sign-in: assurance, consent, and the response
//! to the client (query redirect or form post).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;

use super::errors::Failure;
use super::form::CheckedForm;
use super::pages::render_page;
use super::viewer::signed_in;
use super::{audit_request, client_address, csrf, lang_of};
use crate::accounts::Person;
use crate::authn::session::Session;
use crate::crypto::random_token;
use crate::error::now;
use crate::oidc::authorize::{self, AuthRequest, AuthorizeError, CodeGrant};
use crate::oidc::clients::{self, Client};
use crate::oidc::gate::{self, Hint, Outcome};
use crate::oidc::params::Params;
use crate::oidc::request_object::{self, RequestObjectError};
use crate::oidc::subject::subject_for;
use crate::oidc::{backchannel, consent, par, transaction};
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
    let query = Params::parse_with_file(raw, "request", request_object::MAX_REQUEST_OBJECT)?;
    // A pushed request (RFC 9126) comes back by its request_uri: its parameters, taken once.
    let (query, pushed) = par::resolve(&state, query, now()).await.map_err(|e| match e {
        par::ResolveError::Gone => Failure::page(StatusCode::BAD_REQUEST, "err_request_uri", None),
        par::ResolveError::Infra(e) => e.into(),
    })?;
    // The language the request asks for, of its error pages from here on.
    lang_of(&req, query.get("ui_locales").ok().flatten());
    let client_id = match authorize::target(&query) {
        Ok(t) => t.client_id.to_string(),
        Err(e) => return show(&state, e),
    };
    let client = state.client_cache.get(&state.db, &client_id).await?;
    let Some(client) = client.filter(|c| !c.disabled) else {
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_client_unknown", None));
    };
    // A signed request object, when sent (or required), replaces the query's parameters.
    let params = match request_object::effective(&state, query.clone(), &client, &client_address(&req), now()).await {
        Ok(p) => p,
        Err(RequestObjectError::Refused(r)) => return show(&state, r.to_authorize_error(&query, &client)),
        Err(RequestObjectError::Infra(e)) => return Err(e.into()),
    };
    let auth = match authorize::validate(&params, &client) {
        Ok(a) => AuthRequest { pushed, ..a },
        Err(e) => return show(&state, e),
    };
    // From here the client and its redirect URI are known and trusted: a dependency that is down
    // is reported to the client (RFC 6749 §4.1.2.1 `temporarily_unavailable`), which can tell its
    // user and try again, rather than leaving the person on this site's 503 page.
    let back = auth.clone();
    let answer = match signed_in(&state, &req).await {
        Ok(session) => gate(&state, &req, auth, session.map(|(s, _, p)| (s, p)), StatusCode::FOUND).await,
        Err(e) => Err(Failure::from(e)),
    };
    match answer {
        Err(f) if f.is_unavailable() => Ok(unavailable_redirect(&state, &back)),
        other => other,
    }
}

/// `temporarily_unavailable` sent back to a trusted redirect URI, with `Retry-After`.
fn unavailable_redirect(state: &AppState, auth: &AuthRequest) -> HttpResponse {
    let mut r = error_response(
        state,
        auth,
        "temporarily_unavailable",
        "the service is temporarily unavailable, try again later",
    );
    if let Ok(v) = header::HeaderValue::from_str(&super::errors::RETRY_AFTER_SECS.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn show(state: &AppState, e: AuthorizeError) -> Result<HttpResponse, Failure> {
    match e {
        AuthorizeError::Page { key, detail } => Err(Failure::page(StatusCode::BAD_REQUEST, key, Some(detail))),
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

/// The client as configured now, or the page for one that is gone.
async fn current_client(state: &AppState, client_id: &str) -> Result<std::sync::Arc<Client>, Failure> {
    state
        .client_cache
        .get(&state.db, client_id)
        .await?
        .ok_or_else(|| Failure::page(StatusCode::BAD_REQUEST, "err_client_unknown", None))
}

/// Gathers what [`gate::decide`] needs (the client as configured now, the hint, the person's
/// subject and consent on record) and asks it.
async fn decide(
    state: &AppState,
    auth: &AuthRequest,
    session: Option<&(Session, Person)>,
) -> Result<(Outcome, std::sync::Arc<Client>), Failure> {
    let client = current_client(state, &auth.client_id).await?;
    let hint = match &auth.id_token_hint {
        None => Hint::Absent,
        Some(h) => match state.keys.verify_own(h, now()) {
            Some(c) if c["iss"] == json!(state.config.issuer) && c["aud"] == json!(client.client_id) => {
                c["sub"].as_str().map_or(Hint::Invalid, |s| Hint::Names(s.to_string()))
            }
            _ => Hint::Invalid,
        },
    };
    let subject = session.map(|(s, _)| subject_for(&state.protector, &client, &s.account_id));
    let consent_on_record = match session {
        Some((s, _)) if client.consent_required => {
            let (account, client_id, scope) = (s.account_id.clone(), client.client_id.clone(), auth.scope.clone());
            state.db.run(move |c| consent::covers(c, &account, &client_id, &scope)).await?
        }
        _ => false,
    };
    let resource_served = match auth.resource.clone() {
        None => true,
        Some(uri) => state.db.run(move |c| clients::resource_server_for(c, &uri)).await?.is_some(),
    };
    let inputs = gate::Inputs {
        client: &client,
        resource_served,
        request: auth,
        session: session.map(|(s, _)| s),
        person: session.map(|(_, p)| p),
        subject: subject.as_deref(),
        hint: &hint,
        consent_on_record,
        card_sign_in: state.card.is_some(),
        now: now(),
    };
    Ok((gate::decide(&inputs), client))
}

/// The one way to answer an authorization request: from `/authorize`, at the end of every
/// sign-in, and after consent. Asks the gate, then renders what it decided.
pub async fn gate(
    state: &AppState,
    req: &HttpRequest,
    auth: AuthRequest,
    session: Option<(Session, Person)>,
    status: StatusCode,
) -> Result<HttpResponse, Failure> {
    let (outcome, client) = decide(state, &auth, session.as_ref()).await?;
    render_outcome(state, req, auth, &client, session.as_ref().map(|(s, _)| s), outcome, status).await
}

#[allow(clippy::too_many_arguments)]
async fn render_outcome(
    state: &AppState,
    req: &HttpRequest,
    mut auth: AuthRequest,
    client: &Client,
    session: Option<&Session>,
    outcome: Outcome,
    status: StatusCode,
) -> Result<HttpResponse, Failure> {
    let interact = |auth: AuthRequest, query: &'static str| async move {
        let tx = transaction::start(state, &auth).await?;
        Ok::<_, Failure>(
            HttpResponse::build(status).insert_header((header::LOCATION, query.replace("{tx}", &tx))).finish(),
        )
    };
    match (outcome, session) {
        (Outcome::IssueCode, Some(s)) => finish_authorization(state, &auth, client, s, status).await,
        (Outcome::SignIn, _) | (Outcome::IssueCode, None) => interact(auth, "/login?tx={tx}").await,
        (Outcome::StepUp, _) => interact(auth, "/login?tx={tx}&card=required").await,
        (Outcome::AskConsent, s) => {
            auth.interaction.consent_asked = s.map(|s| s.sid.clone());
            interact(auth, "/consent?tx={tx}").await
        }
        (Outcome::Redirect { error, description }, s) => {
            if matches!(error, "access_denied" | "unmet_authentication_requirements") {
                let account = s.map(|s| s.account_id.clone());
                audit_request(state, "authorize.refused", error, account, client_address(req)).await;
            }
            Ok(error_response(state, &auth, error, description))
        }
        (Outcome::Show { key }, _) => Err(Failure::page(StatusCode::BAD_REQUEST, key, None)),
    }
}

/// Issues a code for a signed-in person and answers the client. Only the gate's
/// [`Outcome::IssueCode`] leads here.
async fn finish_authorization(
    state: &AppState,
    auth: &AuthRequest,
    client: &Client,
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
        id_token_claims: auth.claims.as_ref().map(|c| c.id_token_claims()).unwrap_or_default(),
        dpop_jkt: auth.dpop_jkt.clone(),
        resource: auth.resource.clone(),
    };
    let (code, key) = authorize::new_code();
    state.eph.put_json(&key, &grant, client.code_ttl(state.config.tokens.code_ttl)).await?;
    // Only clients that can be told about a logout need to be remembered with the session.
    if client.backchannel_logout_uri.is_some() {
        let (sid, client_id, account_id) = (session.sid.clone(), auth.client_id.clone(), session.account_id.clone());
        state.db.run(move |c| backchannel::record(c, &sid, &client_id, &account_id, now())).await?;
    }
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = &auth.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.config.issuer));
    let status = if auth.form_post() { StatusCode::OK } else { status };
    Ok(respond(&auth.redirect_uri, &pairs, auth.form_post(), status))
}

/// The data of `consent.hbs`: who asks for what, with allow and deny.
#[derive(Debug, Serialize)]
struct ConsentPage {
    csrf: String,
    tx: String,
    client_name: String,
    scopes: Vec<ScopeLine>,
}

/// A scope asked for (other than `openid`), in the person's words.
#[derive(Debug, Serialize)]
struct ScopeLine {
    name: String,
    text: String,
}

/// `GET /consent?tx=…`: what the application asks for, with allow and deny. Only the session the
/// gate asked consent of may see it; showing it is recorded, so only a page that was shown can
/// be answered.
pub async fn consent_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let q = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let tx = q.get("tx").ok().flatten().unwrap_or("").to_string();
    let (mut auth, client, (session, _), lang) = consent_context(&state, &req, &tx, false).await?;
    if auth.interaction.consent_asked.as_deref() != Some(session.sid.as_str()) {
        audit_request(&state, "consent.refused", "not_asked", Some(session.account_id.clone()), client_address(&req))
            .await;
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_tx", None));
    }
    auth.interaction.consent_shown = Some(session.sid.clone());
    transaction::save(&state, &tx, &auth).await?;
    let (csrf, csrf_cookie) = csrf::token(&state, &req);
    let scopes = auth
        .scope
        .iter()
        .filter(|s| *s != "openid")
        .map(|s| ScopeLine { text: state.templates.text(lang, &format!("scope_{s}")), name: s.clone() })
        .collect();
    let data = ConsentPage { csrf, tx, client_name: client.client_name.clone(), scopes };
    render_page(&state, lang, StatusCode::OK, "consent", "consent_title", &data, csrf_cookie.into_iter().collect())
}

/// `POST /consent`: `decision=allow` or `decision=deny`, for a consent page this session was
/// shown. The transaction is taken (single use), and an approval goes through the gate again:
/// consent never stands in for the audience, the card requirement or a fresh sign-in.
pub async fn consent_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let form = CheckedForm::read(&req, &body)?;
    let tx = form.text("tx");
    let decision = match form.text("decision").as_str() {
        "allow" => true,
        "deny" => false,
        _ => {
            return Err(Failure::page(
                StatusCode::BAD_REQUEST,
                "err_bad_request",
                Some("decision must be allow or deny".into()),
            ))
        }
    };
    let (mut auth, client, (session, person), _) = consent_context(&state, &req, &tx, true).await?;
    let address = client_address(&req);
    if auth.interaction.consent_shown.as_deref() != Some(session.sid.as_str()) {
        audit_request(&state, "consent.refused", "not_shown", Some(session.account_id.clone()), address).await;
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_tx", None));
    }
    if !decision {
        audit_request(&state, "consent.deny", "denied", Some(session.account_id.clone()), address).await;
        return Ok(error_response(&state, &auth, "access_denied", "the person denied the request"));
    }
    auth.interaction.consent_given = Some(session.sid.clone());
    let signed_in = (session, person);
    let (outcome, _) = decide(&state, &auth, Some(&signed_in)).await?;
    let session = signed_in.0;
    if outcome == Outcome::IssueCode {
        let actor = crate::audit::Actor::person(&session.account_id, &address);
        let (client_id, scope) = (client.client_id.clone(), auth.scope.clone());
        state.db.run(move |c| consent::grant_by(c, &actor, &client_id, &scope, now())).await?;
    }
    render_outcome(&state, &req, auth, &client, Some(&session), outcome, StatusCode::SEE_OTHER).await
}

/// The transaction, client and live session a consent page or answer belongs to. `take` removes
/// the transaction (an answer is single use).
async fn consent_context(
    state: &AppState,
    req: &HttpRequest,
    tx: &str,
    take: bool,
) -> Result<(AuthRequest, std::sync::Arc<Client>, (Session, Person), Lang), Failure> {
    let auth =
        if take { transaction::take(state, tx).await.map(Some) } else { transaction::load(state, Some(tx)).await };
    let auth = auth?.ok_or_else(|| Failure::page(StatusCode::BAD_REQUEST, "err_tx", None))?;
    let lang = lang_of(req, auth.ui_locales.as_deref());
    let session = signed_in(state, req)
        .await?
        .map(|(s, _, p)| (s, p))
        .ok_or_else(|| Failure::page(StatusCode::BAD_REQUEST, "err_tx", None))?;
    let client = current_client(state, &auth.client_id).await?;
    Ok((auth, client, session, lang))
}
