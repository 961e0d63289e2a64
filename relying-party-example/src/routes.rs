//! HTTP handlers: `/`, `/login`, `/callback` and `/logout`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use openidconnect::CsrfToken;
use serde::Deserialize;

use crate::config::Config;
use crate::oidc::{Oidc, PendingLogin, SignedIn};
use crate::pages;
use crate::store::Store;

/// Cookie naming the pending sign-in (state, nonce, PKCE verifier).
const TX_COOKIE: &str = "rp_tx";
/// Cookie naming the signed-in session.
const SESSION_COOKIE: &str = "rp_session";

/// Shared state of all workers.
pub struct AppState {
    pub config: Arc<Config>,
    pub oidc: Oidc,
    /// Sign-ins started at `/login` and not yet completed at `/callback`.
    pub pending: Store<PendingLogin>,
    pub sessions: Store<Arc<SignedIn>>,
    /// `state` values sent with logout requests, so the home page can confirm
    /// the sign-out when the IdP sends the browser back.
    pub logouts: Store<()>,
}

impl AppState {
    pub fn new(config: Arc<Config>, oidc: Oidc) -> Self {
        AppState {
            config,
            oidc,
            // Ten minutes is plenty to type a password and pass MFA.
            pending: Store::new(Duration::from_secs(10 * 60), 10_000),
            sessions: Store::new(Duration::from_secs(8 * 60 * 60), 10_000),
            logouts: Store::new(Duration::from_secs(10 * 60), 10_000),
        }
    }
}

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/login", web::get().to(login))
        .route("/callback", web::get().to(callback))
        .route("/logout", web::get().to(logout));
}

#[derive(Deserialize)]
struct HomeQuery {
    state: Option<String>,
}

/// `GET /`: the signed-in user's claims, or a sign-in link.
async fn home(req: HttpRequest, app: web::Data<AppState>, query: web::Query<HomeQuery>) -> HttpResponse {
    let cookie = req.cookie(SESSION_COOKIE);
    if let Some(session) = cookie.as_ref().and_then(|c| app.sessions.get(c.value())) {
        return html(StatusCode::OK, pages::signed_in(&session));
    }

    // Back from the IdP's end-session endpoint with our logout `state`.
    let notice = query.state.as_deref().and_then(|s| app.logouts.take(s)).map(|()| "您已登出。 / You have signed out.");
    let mut response = html(StatusCode::OK, pages::signed_out(notice));
    if cookie.is_some() {
        // The session expired or the app restarted; drop the stale cookie.
        add_removal_cookie(&mut response, &app.config, SESSION_COOKIE);
    }
    response
}

/// `GET /login`: remembers state, nonce and PKCE verifier server-side and
/// sends the browser to the IdP.
async fn login(app: web::Data<AppState>) -> HttpResponse {
    let (url, pending) = match app.oidc.begin_login().await {
        Ok(started) => started,
        Err(err) => {
            // The IdP refused the pushed request, or could not be reached.
            eprintln!("login: {err:#}");
            return html(
                StatusCode::BAD_GATEWAY,
                pages::error("無法開始登入", "Cannot start the sign-in", &format!("{err:#}")),
            );
        }
    };
    let key = app.pending.insert(pending);
    eprintln!("login: sending the browser to the IdP's authorization endpoint");
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.to_string()))
        .cookie(cookie(&app.config, TX_COOKIE, key, Some(app.pending.ttl())))
        .finish()
}

/// The authorization response parameters (RFC 6749 §4.1.2, RFC 9207).
#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    error_uri: Option<String>,
}

/// `GET /callback`: validates the authorization response, redeems the code
/// and starts a local session.
async fn callback(req: HttpRequest, app: web::Data<AppState>, query: web::Query<CallbackQuery>) -> HttpResponse {
    // Taken, not read: a pending sign-in can be completed at most once.
    let pending = req.cookie(TX_COOKIE).and_then(|c| app.pending.take(c.value()));
    let mut response = match handle_callback(&app, &query, pending).await {
        Ok(session_key) => HttpResponse::Found()
            .insert_header((header::LOCATION, app.config.base_url.to_string()))
            .cookie(cookie(&app.config, SESSION_COOKIE, session_key, None))
            .finish(),
        Err(failure) => {
            eprintln!("callback: {}", failure.log);
            html(failure.status, pages::error(failure.heading_zh, failure.heading_en, &failure.detail))
        }
    };
    add_removal_cookie(&mut response, &app.config, TX_COOKIE);
    response
}

/// Why a callback was rejected: what to show and what to log.
struct Failure {
    status: StatusCode,
    heading_zh: &'static str,
    heading_en: &'static str,
    detail: String,
    log: String,
}

impl Failure {
    fn bad_request(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Failure {
            status: StatusCode::BAD_REQUEST,
            heading_zh: "登入失敗",
            heading_en: "Sign-in failed",
            log: detail.clone(),
            detail,
        }
    }
}

/// The checks of the callback, in the order the specs ask for them. Returns
/// the new session's key.
async fn handle_callback(
    app: &AppState,
    query: &CallbackQuery,
    pending: Option<PendingLogin>,
) -> Result<String, Failure> {
    // RFC 9207: a response from a different issuer (mix-up attack) is
    // rejected before anything else, error responses included.
    match &query.iss {
        Some(iss) if iss != app.oidc.issuer() => {
            return Err(Failure::bad_request(format!(
                "iss 參數不符。 / The iss parameter {iss:?} does not match the issuer {:?}.",
                app.oidc.issuer()
            )));
        }
        None if app.oidc.iss_parameter_required() => {
            return Err(Failure::bad_request(
                "缺少 iss 參數。 / The iss parameter is missing although the IdP advertises \
                 authorization_response_iss_parameter_supported.",
            ));
        }
        _ => {}
    }

    if let Some(error) = &query.error {
        let mut detail = format!("身分提供者回報錯誤 / The IdP returned an error: {error}");
        if let Some(description) = &query.error_description {
            detail.push_str(&format!(" — {description}"));
        }
        if let Some(uri) = &query.error_uri {
            detail.push_str(&format!(" ({uri})"));
        }
        return Err(Failure { log: format!("the IdP returned error {error:?}"), ..Failure::bad_request(detail) });
    }

    let Some(pending) = pending else {
        return Err(Failure::bad_request(
            "沒有進行中的登入，或已逾時；請重新登入。 / No sign-in is in progress here, or it \
             expired; please sign in again.",
        ));
    };

    // CSRF protection: the response must belong to the request this browser
    // started.
    if query.state.as_deref() != Some(pending.csrf_state.secret().as_str()) {
        return Err(Failure::bad_request(
            "state 參數不符。 / The state parameter does not match the sign-in in progress.",
        ));
    }

    let Some(code) = query.code.clone() else {
        return Err(Failure::bad_request("缺少授權碼。 / The response carries no authorization code."));
    };

    let signed_in = app.oidc.finish_login(code, pending).await.map_err(|err| {
        let text = format!("{err:#}");
        Failure {
            status: StatusCode::BAD_GATEWAY,
            heading_zh: "登入失敗",
            heading_en: "Sign-in failed",
            detail: format!("無法完成登入。 / Could not complete the sign-in: {text}"),
            log: text,
        }
    })?;

    eprintln!("callback: signed in subject {:?}", signed_in.claims.subject().as_str());
    // A fresh key on every sign-in, so a session id planted before sign-in
    // (session fixation) is never promoted to a signed-in one.
    Ok(app.sessions.insert(Arc::new(signed_in)))
}

/// `GET /logout`: ends the local session and continues with RP-initiated
/// logout at the IdP.
async fn logout(req: HttpRequest, app: web::Data<AppState>) -> HttpResponse {
    let session = req.cookie(SESSION_COOKIE).and_then(|c| app.sessions.take(c.value()));
    let state = CsrfToken::new_random();
    let target = app.oidc.logout_url(session.as_deref().map(|s| &s.id_token), state.clone());
    let location = match target {
        Some(url) => {
            app.logouts.insert_at(state.secret().clone(), ());
            eprintln!("logout: local session ended; sending the browser to the IdP's end_session_endpoint");
            url.to_string()
        }
        None => {
            eprintln!("logout: local session ended; the IdP advertises no end_session_endpoint");
            app.config.base_url.to_string()
        }
    };
    let mut response = HttpResponse::Found().insert_header((header::LOCATION, location)).finish();
    add_removal_cookie(&mut response, &app.config, SESSION_COOKIE);
    response
}

/// An HTML response.
fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body)
}

/// Builds one of our cookies: HttpOnly so scripts cannot read it, SameSite=Lax
/// so it is still sent on the top-level redirect back from the IdP, and
/// Secure whenever the app is served over https. `max_age: None` makes a
/// browser-session cookie.
fn cookie(config: &Config, name: &'static str, value: String, max_age: Option<Duration>) -> Cookie<'static> {
    let mut builder = Cookie::build(name, value)
        .path(config.cookie_path().to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(config.cookies_secure());
    if let Some(max_age) = max_age {
        let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        builder = builder.max_age(time::Duration::seconds(seconds));
    }
    builder.finish()
}

/// Tells the browser to forget a cookie.
fn add_removal_cookie(response: &mut HttpResponse, config: &Config, name: &'static str) {
    let mut removal = cookie(config, name, String::new(), None);
    removal.make_removal();
    if let Err(err) = response.add_cookie(&removal) {
        eprintln!("cannot clear cookie {name}: {err}");
    }
}
