//! 忘記密碼 on the sign-in page (seed 000, 作法二, with 作法三 for where it cannot help).
//!
//! The answer is the same page whether or not anything matched, and it is given before any
//! lookup: the request is checked for form and CSRF, counted against the throttle (by the typed
//! national ID, the typed address and the client address, none of which says who is
//! registered), and the work itself — lookup, one-time password, mail, audit — runs after the
//! answer, in [`accounts::forgot::request`]. So neither the page nor its timing tells whether a
//! national ID or an address is on record.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::errors::Failure;
use super::form::CheckedForm;
use super::pages::render_page;
use super::{audit_request, client_address, csrf, lang_of};
use crate::accounts::{self, forgot::Outcome};
use crate::audit::{self, Event};
use crate::authn::throttle::{Admission, Throttle};
use crate::error::{now, InfraError};
use crate::national_id::NationalId;
use crate::state::AppState;
use crate::store::ephemeral::Scope;
use crate::templates::Lang;

/// Where the form lives.
pub const PATH: &str = "/forgot-password";

/// The audit event of every request.
const EVENT: &str = "password.forgot";

/// `GET /forgot-password`: the form.
pub async fn form_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    form(&state, &req, lang, StatusCode::OK, "", "", None)
}

/// `POST /forgot-password`: counts the request, answers, then does the work.
pub async fn submit(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let form_in = CheckedForm::read(&req, &body)?;
    let (typed_nid, email) = (form_in.text("national_id"), form_in.text("email"));
    let nid = match NationalId::parse(&typed_nid) {
        Ok(nid) if accounts::activation::check_email(&email).is_ok() => nid,
        parsed => {
            let key = if parsed.is_err() { "forgot_err_national_id" } else { "err_email_invalid" };
            return form(&state, &req, lang, StatusCode::UNPROCESSABLE_ENTITY, &typed_nid, &email, Some(key));
        }
    };
    let address = client_address(&req);
    match admit(&state, &nid, &email, &address).await {
        Ok(None) => {}
        Ok(Some(retry_after)) => {
            audit_request(&state, EVENT, "throttled", None, address).await;
            let mut resp = form(
                &state,
                &req,
                lang,
                StatusCode::TOO_MANY_REQUESTS,
                &typed_nid,
                &email,
                Some("forgot_err_throttled"),
            )?;
            let secs = retry_after.as_millis().div_ceil(1000).max(1);
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(resp);
        }
        Err(e) => return Err(Failure::from(e)),
    }
    let work = state.clone();
    actix_web::rt::spawn(async move { fulfil(&work, nid, email, address).await });
    let page = SentPage { hours: state.config.login.one_time_password_ttl.as_secs() / 3600 };
    render_page(&state, lang, StatusCode::OK, "forgot_sent", "forgot_sent_title", &page, vec![])
}

/// The throttle of this page, from `forgot.*`; its counters live apart from the sign-in's, so
/// asking for someone never delays their sign-in.
fn throttle(state: &AppState, per_address: u64) -> Throttle {
    let c = &state.config.forgot;
    Throttle {
        per_account: c.per_person,
        per_address,
        window: c.window,
        delay: c.delay,
        max_delay: c.max_delay,
        reset_after: c.forget_after,
        protector: state.protector.clone(),
    }
}

/// Counts the request per person and client address, then per typed e-mail address; `Some`
/// is how long to wait when either is used up (and then nothing is counted).
async fn admit(state: &AppState, nid: &NationalId, email: &str, address: &str) -> Result<Option<Duration>, InfraError> {
    let (people, mails) = (state.eph.scoped(Scope::ForgotPerson), state.eph.scoped(Scope::ForgotMail));
    let by_person = throttle(state, state.config.forgot.per_address);
    let person = match by_person.begin(&people, &by_person.key_for_person(nid), address).await? {
        Admission::Allowed(attempt) => attempt,
        Admission::Refused { retry_after } => return Ok(Some(retry_after)),
    };
    // The client address is counted once, above.
    let by_mail = throttle(state, u64::MAX);
    let key = by_mail.key_for_identifier(&email.to_lowercase());
    match by_mail.begin(&mails, &key, address).await? {
        Admission::Allowed(attempt) => {
            attempt.failed();
            person.failed();
            Ok(None)
        }
        Admission::Refused { retry_after } => {
            person.abandoned(&people).await?;
            Ok(Some(retry_after))
        }
    }
}

/// The work behind an answer already given: the request itself and its audit record. Failures
/// are logged (without the national ID or the address) and audited; the person was told whom
/// to ask if no mail comes.
async fn fulfil(state: &AppState, nid: NationalId, email: String, address: String) {
    let (protector, mailer) = (state.protector.clone(), state.mailer.clone());
    let ttl = state.config.login.one_time_password_ttl.as_secs() as i64;
    let detail = format!("for {nid}");
    let done = state.db.run(move |c| accounts::forgot::request(c, &protector, &mailer, &nid, &email, ttl, now())).await;
    let (outcome, account) = match &done {
        Ok(o) => (o.name(), o.account_id().map(str::to_string)),
        Err(InfraError::Mail(e)) => {
            tracing::warn!(error = %e, "one-time password not delivered");
            ("mail_failed", None)
        }
        Err(e) => {
            tracing::error!(error = %e, "forgotten-password request failed");
            ("error", None)
        }
    };
    if let Ok(Outcome::Issued { .. }) = &done {
        tracing::info!("one-time password mailed on request");
    }
    let recorded = state
        .db
        .run(move |c| {
            let e = Event {
                event: EVENT,
                outcome,
                account_id: account.as_deref(),
                address: Some(&address),
                detail,
                ..Default::default()
            };
            audit::record(c, e, now())
        })
        .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, "audit event not recorded");
    }
}

/// Whom to ask where a page cannot help: the helpdesk's contact from `site.*`, each left out
/// when not set.
#[derive(Debug, Serialize)]
pub(super) struct Helpdesk<'a> {
    helpdesk_phone: Option<&'a str>,
    helpdesk_hours: Option<&'a str>,
    helpdesk_email: Option<&'a str>,
}

impl<'a> Helpdesk<'a> {
    pub(super) fn of(state: &'a AppState) -> Self {
        let s = &state.config.site;
        let set = |v: &'a String| Some(v.trim()).filter(|v| !v.is_empty());
        Self {
            helpdesk_phone: set(&s.helpdesk_phone),
            helpdesk_hours: set(&s.helpdesk_hours),
            helpdesk_email: set(&s.helpdesk_email),
        }
    }
}

/// The data of `forgot.hbs`.
#[derive(Debug, Serialize)]
struct ForgotPage<'a> {
    csrf: &'a str,
    national_id: &'a str,
    email: &'a str,
    error_key: Option<&'a str>,
}

/// The data of `forgot_sent.hbs`.
#[derive(Debug, Serialize)]
struct SentPage {
    hours: u64,
}

/// The form, with what was typed and an optional message.
fn form(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    status: StatusCode,
    national_id: &str,
    email: &str,
    error_key: Option<&str>,
) -> Result<HttpResponse, Failure> {
    let (token, cookie) = csrf::token(state, req);
    let page = ForgotPage { csrf: &token, national_id, email, error_key };
    render_page(state, lang, status, "forgot", "forgot_title", &page, cookie.into_iter().collect())
}
