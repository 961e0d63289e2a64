//! `/verify-email`: the link in the verification mail. Opening it only shows a 確認 button (a
//! mail scanner that follows links proves nothing and spends nothing); pressing it posts the
//! token with the CSRF token, and the domain rule (`accounts::email_verification`) decides.
//! Also the one helper every page that sets an address calls to mail the link.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::errors::Failure;
use super::form::CheckedForm;
use super::pages::render_page;
use super::{client_address, csrf, lang_of};
use crate::accounts::email_verification::{self, Outcome};
use crate::error::now;
use crate::oidc::params::Params;
use crate::state::AppState;

/// Mails a verification link for `email` to the account; whether it went out. Failures are
/// logged and audited, never shown as the request's failure: what the person did (activation,
/// a change) is done, and 我的專區 offers to send the link again.
pub async fn send_link(state: &AppState, account_id: &str, name: &str, email: &str, address: &str) -> bool {
    let (mailer, issuer) = (state.mailer.clone(), state.config.issuer.clone());
    let ttl = state.config.login.email_verification_ttl.as_secs() as i64;
    let (id, name, email, address) = (account_id.to_string(), name.to_string(), email.to_string(), address.to_string());
    let sent = state
        .db
        .run(move |c| email_verification::send(c, &mailer, &issuer, &id, &name, &email, ttl, &address, now()))
        .await;
    match sent {
        Ok(sent) => sent,
        Err(e) => {
            tracing::error!(error = %e, "verification link not created");
            false
        }
    }
}

/// What a link that cannot verify anything says, and with which status.
fn refusal(outcome: &Outcome) -> Option<(StatusCode, &'static str)> {
    match outcome {
        Outcome::Verified { .. } => None,
        Outcome::Unknown => Some((StatusCode::NOT_FOUND, "verify_email_err_unknown")),
        Outcome::Used { .. } => Some((StatusCode::GONE, "verify_email_err_used")),
        Outcome::Expired { .. } => Some((StatusCode::GONE, "verify_email_err_expired")),
        Outcome::AddressChanged { .. } => Some((StatusCode::CONFLICT, "verify_email_err_address_changed")),
    }
}

fn token_of(req: &HttpRequest) -> String {
    Params::parse(req.query_string().as_bytes())
        .ok()
        .and_then(|q| q.get("token").ok().flatten().map(str::to_string))
        .unwrap_or_default()
}

/// The data of `verify_email.hbs`: the confirmation form, or that it is done.
#[derive(Debug, Default, Serialize)]
struct VerifyPage<'a> {
    csrf: Option<&'a str>,
    token: Option<&'a str>,
    switch_query: Option<String>,
    switch_href: Option<String>,
    done: bool,
}

/// `GET /verify-email?token=…`: the confirmation page, or why the link cannot be used.
pub async fn confirm_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let token = token_of(&req);
    let t = token.clone();
    let outcome = state.db.run(move |c| email_verification::look(c, &t, now())).await?;
    if let Some((status, key)) = refusal(&outcome) {
        return Err(Failure::page(status, key, Some(state.templates.text(lang, "verify_email_resend_hint"))));
    }
    let (csrf_token, cookie) = csrf::token(&state, &req);
    let other = lang.other();
    // The language switch keeps the link usable.
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", &token)
        .append_pair("ui_locales", other.tag())
        .finish();
    let page =
        VerifyPage { csrf: Some(&csrf_token), token: Some(&token), switch_query: Some(query), ..VerifyPage::default() };
    render_page(&state, lang, StatusCode::OK, "verify_email", "verify_email_title", &page, cookie.into_iter().collect())
}

/// `POST /verify-email`: follows the link.
pub async fn confirm_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let form = CheckedForm::read(&req, &body)?;
    let token = form.secret("token");
    let address = client_address(&req);
    let outcome = state.db.run(move |c| email_verification::verify(c, &token, &address, now())).await?;
    if let Some((status, key)) = refusal(&outcome) {
        return Err(Failure::page(status, key, Some(state.templates.text(lang, "verify_email_resend_hint"))));
    }
    // The answer to a POST: the language switch leads to 我的專區, not back to a used link.
    let other = lang.other();
    let page = VerifyPage {
        done: true,
        switch_href: Some(format!("/me?ui_locales={}", other.tag())),
        ..VerifyPage::default()
    };
    render_page(&state, lang, StatusCode::OK, "verify_email", "verify_email_title", &page, vec![])
}
