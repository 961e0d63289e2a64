//! 我的專區: the signed-in person's own area — profile from the register, custom account and
//! e-mail, password, sessions and connected applications. One page with one form per action;
//! each form posts to its own path and comes back to the page (post/redirect/get), or re-shows
//! the page with the message when the input is refused.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::errors::Failure;
use super::form::CheckedForm;
use super::pages::render_page;
use super::viewer::{require_signed_in, see_other, Nav, Viewer};
use super::{client_address, csrf, lang_of};
use crate::accounts::activation::ActivateError;
use crate::accounts::self_service::{self, EndSessions, OtherSessions, PasswordChangeError};
use crate::audit::{self, Event};
use crate::authn::throttle::Admission;
use crate::error::{now, InfraError};
use crate::mail::local_time;
use crate::oidc::backchannel;
use crate::oidc::params::Params;
use crate::state::AppState;
use crate::templates::Lang;

const PAGE: &str = "/me";

/// The routes of 我的專區.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(PAGE).route(web::get().to(me_page)))
        .service(web::resource("/me/account").route(web::post().to(change_account)).route(web::get().to(back)))
        .service(
            web::resource("/me/verify-email").route(web::post().to(resend_verification)).route(web::get().to(back)),
        )
        .service(web::resource("/me/password").route(web::post().to(change_password)).route(web::get().to(back)))
        .service(web::resource("/me/sessions/end").route(web::post().to(end_sessions)).route(web::get().to(back)))
        .service(web::resource("/me/apps/revoke").route(web::post().to(revoke_app)).route(web::get().to(back)))
        .service(
            web::resource("/me/cards/unbind").route(web::post().to(super::card::unbind)).route(web::get().to(back)),
        );
}

/// Messages shown after a successful action, by the `done` query value. Only these keys can
/// be shown, so the query cannot put arbitrary text on the page.
const DONE: [(&str, &str); 8] = [
    ("account", "me_done_account"),
    ("account_verify", "me_done_account_verify"),
    ("verify_sent", "me_done_verify_sent"),
    ("verify_failed", "me_done_verify_failed"),
    ("password", "me_done_password"),
    ("password_others", "me_done_password_others"),
    ("sessions", "me_done_sessions"),
    ("app", "me_done_app"),
];

use super::pages::other_lang as other;

/// Where a form sends the person back to, keeping the language.
fn done(lang: Lang, what: &str) -> HttpResponse {
    see_other(&format!("{PAGE}?done={what}&ui_locales={}", lang.tag()))
}

/// What the page needs besides the viewer.
struct Data {
    agency_name: String,
    sessions: Vec<self_service::SessionInfo>,
    apps: Vec<self_service::ConnectedApp>,
}

async fn load(state: &AppState, viewer: &Viewer) -> Result<Data, InfraError> {
    let (account_id, agency) = (viewer.account.id.clone(), viewer.person.agency_code.clone());
    state
        .db
        .run(move |c| -> Result<_, InfraError> {
            let now = now();
            Ok(Data {
                agency_name: self_service::agency_name(c, &agency)?.unwrap_or(agency),
                sessions: self_service::sessions_of(c, &account_id, now)?,
                apps: self_service::connected_apps(c, &account_id, now)?,
            })
        })
        .await
}

/// Method names for the sessions list.
fn method_key(amr: &[String]) -> &'static str {
    if amr.iter().any(|m| m == "sc") {
        "me_method_card"
    } else if amr.iter().any(|m| m == "otp") {
        "me_method_otp"
    } else {
        "me_method_password"
    }
}

/// The data of `me.hbs` (我的專區).
#[derive(Debug, Serialize)]
struct MePage<'a> {
    csrf: &'a str,
    nav: Nav,
    wide: bool,
    switch_query: String,
    name: &'a str,
    national_id: String,
    agency: &'a str,
    unit: &'a str,
    account: &'a str,
    email: &'a str,
    email_verified: bool,
    email_on_account: bool,
    cards: Vec<CardRow>,
    card_enabled: bool,
    card_component: Option<&'a str>,
    has_other_sessions: bool,
    sessions: Vec<SessionRow>,
    apps: Vec<AppRow>,
    error_key: Option<&'a str>,
    notice: Option<String>,
}

/// One signed-in session of 我的專區's list.
#[derive(Debug, Serialize)]
struct SessionRow {
    sid: String,
    created: String,
    expires: String,
    method: String,
    current: bool,
}

/// One bound card.
#[derive(Debug, Serialize)]
struct CardRow {
    id: String,
    kind: String,
    subject: String,
    created: String,
    last_used: Option<String>,
}

/// One connected application.
#[derive(Debug, Serialize)]
struct AppRow {
    client_id: String,
    name: String,
    scopes: String,
    consented: bool,
    tokens: usize,
}

/// Renders 我的專區 with the forms' current values and an optional message.
#[allow(clippy::too_many_arguments)]
async fn show(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    viewer: &Viewer,
    status: StatusCode,
    account_value: Option<&str>,
    email_value: Option<&str>,
    error_key: Option<&str>,
) -> Result<HttpResponse, Failure> {
    let data = load(state, viewer).await?;
    let (token, cookie) = csrf::token(state, req);
    let p = &viewer.person;
    let a = &viewer.account;
    let account_name = a.account_name.clone().unwrap_or_default();
    let email = a.email.clone().unwrap_or_else(|| p.email.clone());
    let t = |k: &str| state.templates.text(lang, k);
    let sessions = data
        .sessions
        .iter()
        .map(|s| SessionRow {
            sid: s.sid.clone(),
            created: local_time(s.created_at),
            expires: local_time(s.expires_at),
            method: t(method_key(&s.amr)),
            current: s.sid == viewer.session.sid,
        })
        .collect();
    let account_id = viewer.account.id.clone();
    let cards = state.db.run(move |c| crate::accounts::binding::list(c, &account_id)).await?;
    let cards = cards
        .iter()
        .map(|b| CardRow {
            id: b.id.clone(),
            kind: t(if b.kind == "agency" { "me_card_agency" } else { "me_card_citizen" }),
            subject: b.subject.clone(),
            created: local_time(b.created_at),
            last_used: b.last_used_at.map(local_time),
        })
        .collect();
    let apps = data
        .apps
        .iter()
        .map(|app| {
            let scopes: Vec<String> = app
                .consented_scope
                .iter()
                .filter(|s| s.as_str() != "openid")
                .map(|s| t(&format!("scope_{s}")))
                .collect();
            AppRow {
                client_id: app.client_id.clone(),
                name: app.name.clone().unwrap_or_else(|| app.client_id.clone()),
                scopes: scopes.join("、"),
                consented: !app.consented_scope.is_empty(),
                tokens: app.live_tokens,
            }
        })
        .collect();
    let notice = if error_key.is_some() { None } else { done_key(req).map(t) };
    let page = MePage {
        csrf: &token,
        nav: viewer.navigation(),
        wide: true,
        switch_query: format!("ui_locales={}", other(lang)),
        name: &p.name,
        national_id: p.national_id.to_string(),
        agency: &data.agency_name,
        unit: &p.unit,
        account: account_value.unwrap_or(&account_name),
        email: email_value.unwrap_or(&email),
        // Verified only for the account's own address, and only once its link was followed.
        email_verified: a.email_verified,
        email_on_account: a.email.as_deref().is_some_and(|e| !e.is_empty()),
        cards,
        card_enabled: state.card.is_some(),
        card_component: state.card.as_ref().map(|_| state.config.certificates.component_url()),
        has_other_sessions: data.sessions.iter().any(|s| s.sid != viewer.session.sid),
        sessions,
        apps,
        error_key,
        notice,
    };
    let mut r = render_page(state, lang, status, "me", "me_title", &page, cookie.into_iter().collect())?;
    super::help::allow_components(state, &mut r);
    Ok(r)
}

fn done_key(req: &HttpRequest) -> Option<&'static str> {
    let q = Params::parse(req.query_string().as_bytes()).ok()?;
    let what = q.get("done").ok().flatten()?;
    DONE.iter().find(|(k, _)| *k == what).map(|(_, v)| *v)
}

/// Records an event the person caused on their own account.
async fn record(
    state: &AppState,
    viewer: &Viewer,
    req: &HttpRequest,
    event: &'static str,
    outcome: &'static str,
    detail: String,
) {
    let (id, address) = (viewer.account.id.clone(), client_address(req));
    audit::record_logged(&state.db, move |c| {
        let e = Event { detail, ..Event::own(event, outcome, &id, &address) };
        audit::record(c, e, now())
    })
    .await;
}

/// `GET /me`.
pub async fn me_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = require_signed_in(&state, &req).await?;
    show(&state, &req, lang, &viewer, StatusCode::OK, None, None, None).await
}

/// `POST /me/verify-email`: mails a new verification link for the account's own address
/// (the register's address, shown while none is set, is not the person's to verify).
pub async fn resend_verification(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = require_signed_in(&state, &req).await?;
    CheckedForm::read(&req, &body)?;
    let email = viewer.account.email.clone().filter(|e| !e.is_empty());
    let Some(email) = email.filter(|_| !viewer.account.email_verified) else {
        return Ok(done(lang, "account"));
    };
    let address = client_address(&req);
    let sent = super::verify_email::send_link(&state, &viewer.account.id, &viewer.person.name, &email, &address).await;
    Ok(done(lang, if sent { "verify_sent" } else { "verify_failed" }))
}

/// `GET` on a form's path (a bookmark, the language link): back to the page.
async fn back(req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    see_other(&format!("{PAGE}?ui_locales={}", lang.tag()))
}

/// `POST /me/account`: a new custom account and e-mail, under the activation rules.
pub async fn change_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = require_signed_in(&state, &req).await?;
    let params = CheckedForm::read(&req, &body)?;
    let (account, email) = (params.text("account"), params.text("email"));
    let id = viewer.account.id.clone();
    let (a, e) = (account.clone(), email.clone());
    let result = state
        .db
        .run(move |c| -> Result<_, InfraError> { Ok(self_service::change_account(c, &id, &a, &e, now())) })
        .await?;
    match result {
        Ok(()) => {
            let mut changed = vec![];
            if viewer.account.account_name.as_deref() != Some(account.trim()) {
                changed.push("account name");
            }
            if viewer.account.email.as_deref() != Some(email.trim()) {
                changed.push("e-mail");
            }
            let detail =
                if changed.is_empty() { "nothing changed".into() } else { format!("{} changed", changed.join(", ")) };
            record(&state, &viewer, &req, "account.change", "success", detail).await;
            let old = viewer.account.email.as_deref().unwrap_or_default();
            if old.trim().eq_ignore_ascii_case(email.trim()) {
                return Ok(done(lang, "account"));
            }
            // A new address: proven by its own link before `email_verified` says so.
            let (id, name, address) = (&viewer.account.id, &viewer.person.name, client_address(&req));
            let sent = super::verify_email::send_link(&state, id, name, email.trim(), &address).await;
            Ok(done(lang, if sent { "account_verify" } else { "verify_failed" }))
        }
        Err(ActivateError::Rule(rule)) => {
            let key = rule.key();
            show(
                &state,
                &req,
                lang,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&account),
                Some(&email),
                Some(&key),
            )
            .await
        }
        Err(ActivateError::Infra(e)) => Err(Failure::from(e)),
    }
}

/// `POST /me/password`: the current password, then the new one twice.
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = require_signed_in(&state, &req).await?;
    let params = CheckedForm::read(&req, &body)?;
    let address = client_address(&req);
    // Guessing the current password from a borrowed session counts in the person's sign-in
    // throttle, before the password is compared (parallel guesses get no more tries).
    let throttle_key = state.throttle.key_for_person(&viewer.person.national_id);
    let attempt = match state.throttle.begin(&state.eph, &throttle_key, &address).await {
        Ok(Admission::Allowed(attempt)) => attempt,
        Ok(Admission::Refused { .. }) => {
            record(&state, &viewer, &req, "account.password_change", "throttled", String::new()).await;
            return show(&state, &req, lang, &viewer, StatusCode::TOO_MANY_REQUESTS, None, None, Some("err_throttled"))
                .await;
        }
        Err(e) => return Err(Failure::from(e)),
    };
    let (current, new, confirm) =
        (params.secret("current_password"), params.secret("password"), params.secret("password_confirm"));
    if current.chars().count() > 128 {
        attempt.failed();
        return show(
            &state,
            &req,
            lang,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            None,
            Some("me_err_current_password"),
        )
        .await;
    }
    let (account, person) = (viewer.account.clone(), viewer.person.clone());
    let keep_others = keeps_other_sessions(&params);
    let sid = viewer.session.sid.clone();
    // Argon2id twice (the current password, the new hash) off the async threads, then a short
    // database call that only writes.
    let prepared = tokio::task::spawn_blocking(move || {
        self_service::prepare_password_change(&account, &person, &current, &new, &confirm)
    })
    .await
    .unwrap_or_else(|e| Err(InfraError::Internal(format!("password change: {e}")).into()));
    let result = match prepared {
        Ok(hash) => {
            let id = viewer.account.id.clone();
            let stored = state
                .db
                .run(move |c| -> Result<_, InfraError> {
                    let others = if keep_others { OtherSessions::Keep } else { OtherSessions::End { current: &sid } };
                    Ok(self_service::change_password(c, &id, &hash, others, now()))
                })
                .await;
            match stored {
                Ok(r) => r,
                Err(e) => {
                    let _ = attempt.abandoned(&state.eph).await;
                    return Err(Failure::from(e));
                }
            }
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(ended) => {
            let _ = attempt.succeeded(&state.throttle, &state.eph).await;
            let detail = if keep_others {
                "other sessions kept".to_string()
            } else {
                format!("other sessions ended: {}, refresh tokens revoked: {}", ended.sids.len(), ended.refresh_tokens)
            };
            record(&state, &viewer, &req, "account.password_change", "success", detail).await;
            backchannel::notify_all(&state, &ended.sids).await;
            Ok(done(lang, if keep_others { "password" } else { "password_others" }))
        }
        Err(PasswordChangeError::WrongCurrent) => {
            attempt.failed();
            record(&state, &viewer, &req, "account.password_change", "wrong_password", String::new()).await;
            show(
                &state,
                &req,
                lang,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                None,
                Some("me_err_current_password"),
            )
            .await
        }
        Err(PasswordChangeError::Rule(rule)) => {
            // The current password was right; only the new one broke a rule.
            let _ = attempt.succeeded(&state.throttle, &state.eph).await;
            let key = rule.key();
            show(&state, &req, lang, &viewer, StatusCode::UNPROCESSABLE_ENTITY, None, None, Some(&key)).await
        }
        Err(PasswordChangeError::Infra(e)) => {
            let _ = attempt.abandoned(&state.eph).await;
            Err(Failure::from(e))
        }
    }
}

/// Whether a password change leaves the other sessions signed in: only when the form offered
/// the choice (`sign_out_offered`) and the box 「同時登出其他裝置」 (`sign_out_others`) came back
/// unticked. A post without the marker (an old form, a script) signs the others out: the safe
/// side, as after a reset.
fn keeps_other_sessions(params: &CheckedForm) -> bool {
    let offered = params.text("sign_out_offered") == "1";
    let ticked = params.is_set("sign_out_others");
    offered && !ticked
}

/// `POST /me/sessions/end`: `sid` ends one session, `all=others` every other one. Each ended
/// session's applications are told through back-channel logout.
pub async fn end_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = require_signed_in(&state, &req).await?;
    let params = CheckedForm::read(&req, &body)?;
    let sid = params.text("sid");
    let current = viewer.session.sid.clone();
    let (id, all) = (viewer.account.id.clone(), params.text("all") == "others");
    if !all && (sid.is_empty() || sid.len() > 64) {
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_bad_request", None));
    }
    let at = now();
    let ended = state
        .db
        .run(move |c| -> Result<_, InfraError> {
            let which = if all { EndSessions::AllExcept(&current) } else { EndSessions::One(&sid) };
            self_service::end_sessions(c, &id, which, at)
        })
        .await?;
    record(&state, &viewer, &req, "session.end", "success", format!("{} session(s) ended", ended.len())).await;
    for sid in &ended {
        if let Err(e) = backchannel::notify(&state, sid, at).await {
            tracing::error!(error = %e, "back-channel logout");
        }
    }
    // Ending the session in use is signing out: the sign-in page, not a page that needs one.
    if ended.contains(&viewer.session.sid) {
        return Ok(see_other(&format!("/login?ui_locales={}", lang.tag())));
    }
    Ok(done(lang, "sessions"))
}

/// `POST /me/apps/revoke`: withdraws consent and revokes the application's refresh tokens.
pub async fn revoke_app(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = require_signed_in(&state, &req).await?;
    let params = CheckedForm::read(&req, &body)?;
    let client_id = params.text("client_id");
    if client_id.is_empty() || client_id.len() > 256 {
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_bad_request", None));
    }
    let (id, client) = (viewer.account.id.clone(), client_id.clone());
    let gone = state
        .db
        .run(move |c| -> Result<_, InfraError> { self_service::disconnect_app(c, &id, &client, now()) })
        .await?;
    let (account_id, address) = (viewer.account.id.clone(), client_address(&req));
    let detail = format!("consent withdrawn: {}, refresh tokens revoked: {}", gone.consent, gone.refresh_tokens);
    audit::record_logged(&state.db, move |c| {
        let e = Event {
            client_id: Some(&client_id),
            detail,
            ..Event::own("consent.revoke", "success", &account_id, &address)
        };
        audit::record(c, e, now())
    })
    .await;
    Ok(done(lang, "app"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeps(body: &str) -> bool {
        keeps_other_sessions(&CheckedForm::unchecked(body))
    }

    #[test]
    fn other_sessions_are_kept_only_when_the_offered_box_is_unticked() {
        assert!(!keeps("sign_out_offered=1&sign_out_others=1"), "ticked (the default): sign out");
        assert!(keeps("sign_out_offered=1"), "unticked: keep");
        assert!(!keeps(""), "no choice offered: sign out");
        assert!(!keeps("sign_out_others=1"));
        assert!(!keeps("sign_out_offered=0"));
    }
}
