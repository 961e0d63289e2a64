//! The sign-in and activation pages.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::errors::Failure;
use super::form::CheckedForm;
use super::pages::render_page;
use super::{audit_request, client_address, cookie, csrf, lang_of, removal, ACTIVATION_COOKIE, SESSION_COOKIE};
use crate::accounts::activation::{self, ActivateError, ActivationForm};
use crate::accounts::{self};
use crate::audit::{self, Event};
use crate::authn::password::{check_off_thread, complete, load, LoginError, LoginOutcome};
use crate::authn::session;
use crate::authn::throttle::Admission;
use crate::crypto::random_token;
use crate::error::{now, InfraError};
use crate::oidc::authorize::AuthRequest;
use crate::oidc::params::Params;
use crate::oidc::{transaction, ACR_PASSWORD};
use crate::state::AppState;
use crate::store::ephemeral::Key;
use crate::templates::Lang;

/// An activation in progress, keyed by the activation cookie.
#[derive(Debug, Serialize, Deserialize)]
struct PendingActivation {
    account_id: String,
    tx: Option<String>,
}

/// A posted sign-in form (password or card): parsed, its CSRF token checked, with the login transaction it continues
/// (if any) and the language that transaction asks for.
pub struct LoginForm {
    pub form: CheckedForm,
    pub auth: Option<AuthRequest>,
    pub lang: Lang,
}

impl LoginForm {
    pub async fn read(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<Self, Failure> {
        let form = CheckedForm::read(req, body)?;
        let tx = form.text("tx");
        let auth = transaction::load(state, (!tx.is_empty()).then_some(tx.as_str())).await?;
        let lang = lang_of(req, auth.as_ref().and_then(|a| a.ui_locales.as_deref()));
        Ok(Self { form, auth, lang })
    }
}

/// The data of `login.hbs`: the password form, and the card and health-card parts when they
/// are configured.
#[derive(Debug, Serialize)]
struct LoginPage<'a> {
    csrf: &'a str,
    tx: &'a str,
    username: &'a str,
    error_key: Option<&'a str>,
    switch_query: String,
    card_script: bool,
    health_enabled: bool,
    health_component: Option<&'a str>,
    card_enabled: bool,
    card_component: Option<&'a str>,
    links: Option<CardLinks<'a>>,
    card_required: bool,
    card_tls_url: Option<String>,
}

/// Where to get the card component.
#[derive(Debug, Serialize)]
struct CardLinks<'a> {
    card_component: &'a str,
}

/// The data of `activate.hbs`.
#[derive(Debug, Serialize)]
struct ActivatePage<'a> {
    csrf: &'a str,
    account: &'a str,
    email: &'a str,
    error_key: Option<&'a str>,
}

/// The data of `activated.hbs`.
#[derive(Debug, Serialize)]
struct ActivatedPage {
    switch_href: String,
    login_url: String,
    verify_sent: bool,
}

fn login_form(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    status: StatusCode,
    tx: Option<&str>,
    username: &str,
    error_key: Option<&str>,
) -> Result<HttpResponse, Failure> {
    let (csrf, csrf_cookie) = csrf::token(state, req);
    let switch_query = match tx {
        Some(tx) => format!("tx={tx}&ui_locales={}", if lang == Lang::ZhTw { "en" } else { "zh-TW" }),
        None => format!("ui_locales={}", if lang == Lang::ZhTw { "en" } else { "zh-TW" }),
    };
    let health = state.config.certificates.health_enabled();
    let card = state.card.as_ref().map(|_| {
        let required =
            url::form_urlencoded::parse(req.query_string().as_bytes()).any(|(k, v)| k == "card" && v == "required");
        // `bind` ties the handoff back to this browser (a hash of its CSRF cookie).
        let tls_url = state.config.card_login.enabled().then(|| {
            let mut url = format!(
                "{}/card/tls-login?ui_locales={}&bind={}",
                state.config.card_login.public_url(),
                lang.tag(),
                crate::crypto::sha256_b64(csrf.as_bytes())
            );
            if let Some(tx) = tx {
                url.push_str("&tx=");
                url.extend(url::form_urlencoded::byte_serialize(tx.as_bytes()));
            }
            url
        });
        (required, tls_url)
    });
    let page = LoginPage {
        csrf: &csrf,
        tx: tx.unwrap_or(""),
        username,
        error_key,
        switch_query,
        card_script: card.is_some() || health,
        health_enabled: health,
        health_component: health.then(|| state.config.certificates.health_component_url()),
        card_enabled: card.is_some(),
        card_component: card.as_ref().map(|_| state.config.certificates.component_url()),
        links: card.as_ref().map(|_| CardLinks { card_component: &state.config.links.card_component }),
        card_required: card.as_ref().is_some_and(|(required, _)| *required),
        card_tls_url: card.and_then(|(_, url)| url),
    };
    let cookies = csrf_cookie.into_iter().collect();
    let mut r = render_page(state, lang, status, "login", "login_title", &page, cookies)?;
    super::help::allow_components(state, &mut r);
    Ok(r)
}

fn query(req: &HttpRequest) -> Params {
    Params::parse(req.query_string().as_bytes()).unwrap_or_default()
}

/// `GET /login`: the sign-in form, for a transaction or for the site itself.
pub async fn login_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let q = query(&req);
    let tx = q.get("tx").ok().flatten();
    let auth = transaction::load(&state, tx).await?;
    let lang = lang_of(&req, auth.as_ref().and_then(|a| a.ui_locales.as_deref()));
    let hint = auth.as_ref().and_then(|a| a.login_hint.clone()).unwrap_or_default();
    login_form(&state, &req, lang, StatusCode::OK, tx, &hint, None)
}

/// `POST /login`: checks the password (or one-time password) and continues.
pub async fn login_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let LoginForm { form, auth, lang } = LoginForm::read(&state, &req, &body).await?;
    let tx = form.text("tx");
    let tx_opt = (!tx.is_empty()).then_some(tx.as_str());
    let username = form.text("username");
    let password = form.secret("password");
    let address = client_address(&req);
    if username.is_empty() || password.is_empty() || username.chars().count() > 64 || password.chars().count() > 128 {
        return login_form(&state, &req, lang, StatusCode::UNAUTHORIZED, tx_opt, &username, Some("err_credentials"));
    }
    // Read the account, release the connection, then count the attempt (under the person, so
    // national ID and custom account share one count) before any password is compared.
    let protector = state.protector.clone();
    let u = username.clone();
    let stored = state.db.run(move |c| load(c, &protector, &u)).await?;
    let key = match stored.person() {
        Some(person) => state.throttle.key_for_person(&person.national_id),
        None => state.throttle.key_for_identifier(&username),
    };
    let attempt = match state.throttle.begin(&state.eph, &key, &address).await {
        Ok(Admission::Allowed(attempt)) => attempt,
        Ok(Admission::Refused { retry_after }) => {
            audit_request(&state, "login.password", "throttled", None, address.clone()).await;
            let mut resp = login_form(
                &state,
                &req,
                lang,
                StatusCode::TOO_MANY_REQUESTS,
                tx_opt,
                &username,
                Some("err_throttled"),
            )?;
            let secs = retry_after.as_millis().div_ceil(1000).max(1);
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(resp);
        }
        Err(e) => return Err(Failure::from(e)),
    };
    let checked = check_off_thread(stored, password, now()).await;
    let outcome = match checked {
        Ok(checked) => match state.db.run(move |c| -> Result<_, InfraError> { Ok(complete(c, checked)) }).await {
            Ok(outcome) => outcome,
            Err(e) => Err(LoginError::Infra(e)),
        },
        Err(e) => Err(e),
    };
    match outcome {
        Err(LoginError::Infra(e)) => {
            let _ = attempt.abandoned(&state.eph).await;
            Err(Failure::from(e))
        }
        Err(e) => {
            let (key, status, reason) = match e {
                LoginError::OneTimePasswordExpired => ("err_otp_expired", StatusCode::UNAUTHORIZED, "otp_expired"),
                LoginError::Separated => ("err_separated", StatusCode::FORBIDDEN, "separated"),
                _ => ("err_credentials", StatusCode::UNAUTHORIZED, "bad_credentials"),
            };
            attempt.failed();
            audit_request(&state, "login.password", reason, None, address.clone()).await;
            login_form(&state, &req, lang, status, tx_opt, &username, Some(key))
        }
        Ok(LoginOutcome::MustActivate { account, .. }) => {
            let _ = attempt.succeeded(&state.throttle, &state.eph).await;
            begin_activation(&state, lang, &account.id, tx_opt, "login.one_time_password", &address).await
        }
        Ok(LoginOutcome::SignedIn { account, .. }) => {
            let _ = attempt.succeeded(&state.throttle, &state.eph).await;
            let opened = SignIn {
                account_id: &account.id,
                acr: ACR_PASSWORD,
                amr: &["pwd"],
                acting_agency: None,
                event: "login.password",
            };
            open_session(&state, &req, opened, auth, tx_opt).await
        }
    }
}

/// Sends a person whose account was never activated to the activation form.
pub async fn begin_activation(
    state: &AppState,
    lang: Lang,
    account_id: &str,
    tx: Option<&str>,
    event: &'static str,
    address: &str,
) -> Result<HttpResponse, Failure> {
    let token = random_token(32);
    let pending = PendingActivation { account_id: account_id.to_string(), tx: tx.map(str::to_string) };
    state.eph.put_json(&Key::activation(&token), &pending, state.config.login.transaction_ttl).await?;
    let (id, addr) = (account_id.to_string(), address.to_string());
    state.db.run(move |c| audit::record(c, Event::own(event, "success", &id, &addr), now())).await?;
    let ttl = state.config.login.transaction_ttl.as_secs() as i64;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/activate?ui_locales={}", lang.tag())))
        .cookie(cookie(state, ACTIVATION_COOKIE, token, Some(ttl)))
        .finish())
}

/// A successful sign-in, as every method reports it.
pub struct SignIn<'a> {
    pub account_id: &'a str,
    pub acr: &'a str,
    pub amr: &'a [&'a str],
    /// For agency-card sessions: the agency the session acts for.
    pub acting_agency: Option<&'a str>,
    /// The audit event, e.g. `login.password` or `login.card`.
    pub event: &'static str,
}

/// Opens a new SSO session (ending any previous one of this browser: no session fixation),
/// then continues the authorization request, or goes home.
pub async fn open_session(
    state: &AppState,
    req: &HttpRequest,
    sign_in: SignIn<'_>,
    auth: Option<AuthRequest>,
    tx: Option<&str>,
) -> Result<HttpResponse, Failure> {
    let old = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let ttl = state.config.login.session_ttl.as_secs() as i64;
    let (id, addr) = (sign_in.account_id.to_string(), client_address(req));
    let (acr, amr, event) =
        (sign_in.acr.to_string(), sign_in.amr.iter().map(|s| s.to_string()).collect::<Vec<_>>(), sign_in.event);
    let acting = sign_in.acting_agency.map(str::to_string);
    let protector = state.protector.clone();
    let (token, sess, person) = state
        .db
        .run(move |c| -> Result<_, InfraError> {
            if let Some(old) = old {
                session::end(c, &old)?;
            }
            let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
            let (token, sess) = session::create_acting(c, &id, &acr, &amr, acting.as_deref(), now(), ttl)?;
            audit::record(c, Event::own(event, "success", &id, &addr), now())?;
            let person = accounts::account_with_person(c, &protector, &id)?.map(|(_, p)| p);
            Ok((token, sess, person))
        })
        .await?;
    let session_cookie = cookie(state, SESSION_COOKIE, token, None);
    let mut resp = match auth {
        Some(mut auth) => {
            if let Some(tx) = tx {
                transaction::end(state, tx).await;
            }
            // The sign-in was made for this request: it answers `prompt=login` and `max_age`.
            auth.interaction.signed_in = Some(sess.sid.clone());
            let signed_in = person.map(|p| (sess, p));
            super::authorize::gate(state, req, auth, signed_in, StatusCode::SEE_OTHER).await?
        }
        None => HttpResponse::SeeOther().insert_header((header::LOCATION, "/")).finish(),
    };
    resp.add_cookie(&session_cookie)?;
    Ok(resp)
}

async fn pending_activation(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<(String, PendingActivation)>, InfraError> {
    let Some(c) = req.cookie(ACTIVATION_COOKIE) else { return Ok(None) };
    let token = c.value().to_string();
    if token.len() > 64 {
        return Ok(None);
    }
    Ok(state.eph.get_json::<PendingActivation>(&Key::activation(&token)).await?.map(|p| (token, p)))
}

fn activation_form(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    status: StatusCode,
    account: &str,
    email: &str,
    error_key: Option<String>,
) -> Result<HttpResponse, Failure> {
    let (csrf, csrf_cookie) = csrf::token(state, req);
    let page = ActivatePage { csrf: &csrf, account, email, error_key: error_key.as_deref() };
    render_page(state, lang, status, "activate", "activate_title", &page, csrf_cookie.into_iter().collect())
}

/// `GET /activate`: the activation form after a one-time-password sign-in.
pub async fn activate_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    match pending_activation(&state, &req).await {
        Ok(Some((_, pending))) => {
            let id = pending.account_id.clone();
            let protector = state.protector.clone();
            let prefill = state
                .db
                .run(move |c| -> Result<_, InfraError> {
                    let found = accounts::account_with_person(c, &protector, &id)?;
                    Ok(found.map(|(a, p)| (a.account_name.unwrap_or_default(), a.email.unwrap_or(p.email))))
                })
                .await?;
            let (account, email) = prefill.unwrap_or_default();
            activation_form(&state, &req, lang, StatusCode::OK, &account, &email, None)
        }
        Ok(None) => Err(Failure::page(StatusCode::BAD_REQUEST, "err_activation_expired", None)),
        Err(e) => Err(Failure::from(e)),
    }
}

/// `POST /activate`: sets custom account, e-mail and password.
pub async fn activate_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let params = CheckedForm::read(&req, &body)?;
    let Some((token, pending)) = pending_activation(&state, &req).await? else {
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_activation_expired", None));
    };
    let form = ActivationForm {
        account: params.text("account"),
        email: params.text("email"),
        password: params.secret("password"),
        password_confirm: params.secret("password_confirm"),
    };
    let (account_name, email) = (form.account.clone(), form.email.clone());
    let id = pending.account_id.clone();
    let protector = state.protector.clone();
    let address = client_address(&req);
    let lookup = id.clone();
    let person = state
        .db
        .run(move |c| accounts::account_with_person(c, &protector, &lookup))
        .await?
        .map(|(_, person)| person)
        .ok_or_else(|| Failure::from(InfraError::Internal("account vanished".into())))?;
    let (name, sent_from) = (person.name.clone(), address.clone());
    // The rules, then Argon2id off the async threads; the database call after it only writes.
    let result = match tokio::task::spawn_blocking({
        let (form, person) = (form.clone(), person.clone());
        move || activation::prepare(&form, &person)
    })
    .await
    .unwrap_or_else(|e| Err(InfraError::Internal(format!("activation: {e}")).into()))
    {
        Ok(hash) => {
            state
                .db
                .run(move |c| -> Result<Result<(), ActivateError>, InfraError> {
                    let r = activation::activate(c, &id, &person, &form, &hash, now());
                    if r.is_ok() {
                        audit::record(c, Event::own("account.activate", "success", &id, &address), now())?;
                    }
                    Ok(r)
                })
                .await?
        }
        Err(e) => Err(e),
    };
    match result {
        Err(ActivateError::Rule(rule)) => activation_form(
            &state,
            &req,
            lang,
            StatusCode::UNPROCESSABLE_ENTITY,
            &account_name,
            &email,
            Some(rule.key()),
        ),
        Err(ActivateError::Infra(e)) => Err(Failure::from(e)),
        Ok(()) => {
            let _ = state.eph.delete(&Key::activation(&token)).await;
            // The address just set is proven by the mailed link, not by typing it.
            let sent = super::verify_email::send_link(&state, &pending.account_id, &name, &email, &sent_from).await;
            let login_url = match &pending.tx {
                Some(tx) => format!("/login?tx={tx}"),
                None => "/login".into(),
            };
            // This page is the answer to a POST: the language switch leads on to the sign-in
            // page in the other language, not back to an activation that has ended.
            let other = lang.other();
            let sep = if login_url.contains('?') { '&' } else { '?' };
            let page = ActivatedPage {
                switch_href: format!("{login_url}{sep}ui_locales={}", other.tag()),
                login_url,
                verify_sent: sent,
            };
            render_page(
                &state,
                lang,
                StatusCode::OK,
                "activated",
                "activated_title",
                &page,
                vec![removal(&state, ACTIVATION_COOKIE)],
            )
        }
    }
}
