//! 權限與兼辦管理 → 重設員工密碼: HR staff reset the passwords of their own agency's employees,
//! the helpdesk anyone's, as seed 001 §2–3 describe: search by national ID, the employee with a
//! required e-mail field, a confirmation step, then a one-time password is mailed and never
//! shown. Every attempt, allowed or refused, is audited with who, whom and from where.
//!
//! The forms carry the register entry's opaque id between steps, never the national ID, and
//! every step checks the permission again: a hidden field is only a hint of what was shown.
//!
//! Accounts holding `operator` or `helpdesk` are refused here whoever asks (only the CLI on the
//! server resets them), and a reset ends the old password, the account's sessions (with
//! back-channel logout) and refresh tokens at once.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::errors::Failure;
use super::form::CheckedForm;
use super::pages::render_page;
use super::viewer::{require_signed_in, see_other, Nav, Viewer};
use super::{client_address, csrf, lang_of};
use crate::accounts::one_time::{self, IssueError, IssueRequest, ResetBy, PRIVILEGED_ROLES};
use crate::accounts::{self, roles, self_service, Person, PersonStatus};
use crate::audit::{self, Actor, Event};
use crate::error::{now, InfraError};
use crate::national_id::NationalId;
use crate::oidc::backchannel;
use crate::state::AppState;
use crate::templates::Lang;

/// The search page; also where every other step's GET leads back to.
const START: &str = "/hr/reset-password";

/// The routes of this page.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(START).route(web::get().to(search_page)))
        // The short address the site navigation links to.
        .service(web::resource("/hr/reset").route(web::get().to(back)))
        .service(web::resource("/hr/reset-password/search").route(web::post().to(search)).route(web::get().to(back)))
        .service(web::resource("/hr/reset-password/confirm").route(web::post().to(confirm)).route(web::get().to(back)))
        .service(web::resource("/hr/reset-password/issue").route(web::post().to(issue)).route(web::get().to(back)));
}

/// Why a reset is refused. Each has its own message, so the HR user knows what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The caller is neither HR staff nor helpdesk.
    NotAuthorised,
    /// HR staff asked for someone of another agency.
    OtherAgency,
    /// The person is separated: no password for people not in service.
    Separated,
    /// No one with this national ID is in the register.
    NotInRegister,
    /// The account holds `operator` or `helpdesk`: reset only on the server, never from the web,
    /// so nobody gains through a reset more than they hold.
    Privileged,
}

impl Refusal {
    fn key(self) -> &'static str {
        match self {
            Refusal::NotAuthorised => "hr_err_not_authorised",
            Refusal::OtherAgency => "hr_err_other_agency",
            Refusal::Separated => "hr_err_separated",
            Refusal::NotInRegister => "hr_err_not_in_register",
            Refusal::Privileged => "hr_err_privileged",
        }
    }

    /// The audit outcome.
    fn outcome(self) -> &'static str {
        match self {
            Refusal::NotAuthorised => "forbidden",
            Refusal::OtherAgency => "other_agency",
            Refusal::Separated => "separated",
            Refusal::NotInRegister => "not_in_register",
            Refusal::Privileged => "privileged",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refusal::NotInRegister => StatusCode::NOT_FOUND,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

/// Whose passwords a signed-in person may reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Authority<'a> {
    /// The helpdesk: anyone in the register.
    Anyone,
    /// HR staff (and, with the card work, agency-card sessions): employees of this agency.
    Agency(&'a str),
}

/// The viewer's authority to reset passwords, if any. The one place that decides who may use
/// this page; agency-card sessions will be added here.
fn authority(viewer: &Viewer) -> Option<Authority<'_>> {
    if viewer.has("helpdesk") {
        Some(Authority::Anyone)
    } else if let Some(agency) = viewer.session.acting_agency.as_deref() {
        // An agency-card session acts for the agency on the card (seeds 001 §2 (2)).
        Some(Authority::Agency(agency))
    } else if viewer.has("hr_staff") {
        Some(Authority::Agency(&viewer.person.agency_code))
    } else {
        None
    }
}

/// Whether `viewer` may reset `target`'s password; `target_roles` are the roles granted to the
/// target's account (none if it has no account yet). The agency is checked before anything
/// else, so HR staff learn nothing about another agency's people beyond that they are not theirs.
pub fn may_reset(viewer: &Viewer, target: &Person, target_roles: &[String]) -> Result<(), Refusal> {
    match authority(viewer) {
        None => return Err(Refusal::NotAuthorised),
        Some(Authority::Agency(code)) if target.agency_code != code => return Err(Refusal::OtherAgency),
        Some(_) => {}
    }
    if target.status == PersonStatus::Separated {
        return Err(Refusal::Separated);
    }
    if target_roles.iter().any(|r| PRIVILEGED_ROLES.contains(&r.as_str())) {
        return Err(Refusal::Privileged);
    }
    Ok(())
}

/// Who the viewer resets as, named for the notice; `agency_name` is the target's agency, which
/// for HR staff and agency cards is their own.
fn reset_by<'a>(viewer: &'a Viewer, agency_name: &'a str) -> ResetBy<'a> {
    match authority(viewer) {
        Some(Authority::Agency(_)) if viewer.session.acting_agency.is_some() => {
            ResetBy::AgencyCard { agency: agency_name, holder: &viewer.person.name }
        }
        Some(Authority::Agency(_)) => ResetBy::HrStaff { name: &viewer.person.name, agency: agency_name },
        // The helpdesk, and (unreachable: `begin` refused them) people with no authority.
        _ => ResetBy::Helpdesk,
    }
}

/// The role the viewer acted in, for the audit detail.
fn acting_as(viewer: &Viewer) -> &'static str {
    match authority(viewer) {
        Some(Authority::Anyone) => "helpdesk",
        Some(Authority::Agency(_)) if viewer.session.acting_agency.is_some() => "agency_card",
        Some(Authority::Agency(_)) => "hr_staff",
        None => "none",
    }
}

/// Records one attempt that issued nothing (issuing is audited by `one_time::issue_by`): who
/// (the viewer's account), whom (the account if there is one, and the masked national ID in the
/// detail), from where, and how it ended.
async fn record(
    state: &AppState,
    viewer: &Viewer,
    address: &str,
    outcome: &'static str,
    target_account: Option<String>,
    target: Option<&NationalId>,
) {
    let actor = Actor::person(&viewer.account.id, address);
    let detail = match target {
        Some(nid) => format!("for {nid} as {}", acting_as(viewer)),
        None => format!("as {}", acting_as(viewer)),
    };
    audit::record_logged(&state.db, move |c| {
        let e = Event { account_id: target_account.as_deref(), detail, ..actor.event("password.reset", outcome) };
        audit::record(c, e, now())
    })
    .await
}

/// The signed-in viewer who may use this page at all; others get 403 (audited).
async fn begin(state: &AppState, req: &HttpRequest) -> Result<Viewer, Failure> {
    let viewer = require_signed_in(state, req).await?;
    if authority(&viewer).is_none() {
        record(state, &viewer, &client_address(req), Refusal::NotAuthorised.outcome(), None, None).await;
        return Err(Failure::page(StatusCode::FORBIDDEN, Refusal::NotAuthorised.key(), None));
    }
    Ok(viewer)
}

/// What every page of this flow has: the CSRF token, the site navigation, the language switch;
/// and the page's own data beside them.
#[derive(Debug, Serialize)]
struct HrPage<'a, T: Serialize> {
    csrf: &'a str,
    nav: Nav,
    switch_query: String,
    #[serde(flatten)]
    body: &'a T,
}

/// The search form's own data.
#[derive(Debug, Serialize)]
struct SearchBody<'a> {
    error_key: Option<&'a str>,
}

/// The person found, as the reset's pages show them, with the outcome's message or the
/// one-time password's lifetime.
#[derive(Debug, Serialize)]
struct TargetBody<'a> {
    person_id: &'a str,
    name: &'a str,
    national_id: String,
    agency: &'a str,
    unit: &'a str,
    email: &'a str,
    error_key: Option<&'a str>,
    hours: Option<i64>,
}

/// A page of this flow with the CSRF token and the site navigation in it.
fn show<T: Serialize>(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    viewer: &Viewer,
    status: StatusCode,
    template: &str,
    body: &T,
) -> Result<HttpResponse, Failure> {
    let (token, cookie) = csrf::token(state, req);
    let page =
        HrPage { csrf: &token, nav: viewer.navigation(), switch_query: format!("ui_locales={}", other(lang)), body };
    render_page(state, lang, status, template, "hr_reset_title", &page, cookie.into_iter().collect())
}

use super::pages::other_lang as other;

/// The search form, with an optional message.
fn search_form(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    viewer: &Viewer,
    status: StatusCode,
    error_key: Option<&str>,
) -> Result<HttpResponse, Failure> {
    show(state, req, lang, viewer, status, "hr_reset", &SearchBody { error_key })
}

/// A register entry as the HR user sees it: national ID masked, agency by name.
struct Target {
    person: Person,
    account_id: Option<String>,
    /// Roles granted to the account (`helpdesk`, `operator`).
    roles: Vec<String>,
    agency_name: String,
}

impl Target {
    fn body<'a>(&'a self, email: &'a str) -> TargetBody<'a> {
        TargetBody {
            person_id: &self.person.id,
            name: &self.person.name,
            national_id: self.person.national_id.to_string(),
            agency: &self.agency_name,
            unit: &self.person.unit,
            email,
            error_key: None,
            hours: None,
        }
    }
}

/// Looks a register entry up by national ID or by its id.
async fn find(state: &AppState, by: Lookup) -> Result<Option<Target>, InfraError> {
    let protector = state.protector.clone();
    state
        .db
        .run(move |c| -> Result<_, InfraError> {
            let person = match by {
                Lookup::NationalId(nid) => accounts::person_by_national_id(c, &protector, &nid)?,
                Lookup::Id(id) => accounts::person_by_id(c, &protector, &id)?,
            };
            let Some(person) = person else { return Ok(None) };
            let account_id = accounts::account_of_person(c, &person.id)?.map(|a| a.id);
            let roles = match &account_id {
                Some(id) => roles::granted(c, id)?,
                None => vec![],
            };
            let agency_name =
                self_service::agency_name(c, &person.agency_code)?.unwrap_or_else(|| person.agency_code.clone());
            Ok(Some(Target { person, account_id, roles, agency_name }))
        })
        .await
}

enum Lookup {
    NationalId(NationalId),
    Id(String),
}

/// Finds the target named by a form's `person` field and checks the viewer may reset it;
/// `Err` is the answer to give instead: a refusal (audited) is the search form and its message.
async fn checked_target(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    viewer: &Viewer,
    person_id: String,
) -> Result<Target, Result<HttpResponse, Failure>> {
    let address = client_address(req);
    if person_id.is_empty() || person_id.len() > 64 {
        return Err(Err(Failure::page(StatusCode::BAD_REQUEST, "err_bad_request", None)));
    }
    let target = find(state, Lookup::Id(person_id)).await.map_err(|e| Err(Failure::from(e)))?;
    let Some(target) = target else {
        record(state, viewer, &address, Refusal::NotInRegister.outcome(), None, None).await;
        return Err(refusal_page(state, req, lang, viewer, Refusal::NotInRegister));
    };
    if let Err(r) = may_reset(viewer, &target.person, &target.roles) {
        record(state, viewer, &address, r.outcome(), target.account_id.clone(), Some(&target.person.national_id)).await;
        return Err(refusal_page(state, req, lang, viewer, r));
    }
    Ok(target)
}

/// A refusal: the search form again, with the refusal's message and status.
fn refusal_page(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    viewer: &Viewer,
    r: Refusal,
) -> Result<HttpResponse, Failure> {
    search_form(state, req, lang, viewer, r.status(), Some(r.key()))
}

/// `GET /hr/reset-password`: the search form.
pub async fn search_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = begin(&state, &req).await?;
    search_form(&state, &req, lang, &viewer, StatusCode::OK, None)
}

/// `GET` on a step: the steps are form posts, so a bookmarked or language-switched step starts over.
async fn back(req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req, None);
    see_other(&format!("{START}?ui_locales={}", lang.tag()))
}

/// `POST /hr/reset-password/search`: finds the employee and shows them with the e-mail field.
pub async fn search(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = begin(&state, &req).await?;
    let params = CheckedForm::read(&req, &body)?;
    let address = client_address(&req);
    let Ok(nid) = NationalId::parse(&params.text("national_id")) else {
        record(&state, &viewer, &address, "invalid_national_id", None, None).await;
        return search_form(&state, &req, lang, &viewer, StatusCode::UNPROCESSABLE_ENTITY, Some("hr_err_national_id"));
    };
    let target = find(&state, Lookup::NationalId(nid.clone())).await?;
    let Some(target) = target else {
        record(&state, &viewer, &address, Refusal::NotInRegister.outcome(), None, Some(&nid)).await;
        return refusal_page(&state, &req, lang, &viewer, Refusal::NotInRegister);
    };
    if let Err(r) = may_reset(&viewer, &target.person, &target.roles) {
        record(&state, &viewer, &address, r.outcome(), target.account_id.clone(), Some(&nid)).await;
        return refusal_page(&state, &req, lang, &viewer, r);
    }
    // Looking someone up is itself access to personal data: audited too.
    record(&state, &viewer, &address, "found", target.account_id.clone(), Some(&nid)).await;
    let body = target.body(&target.person.email);
    show(&state, &req, lang, &viewer, StatusCode::OK, "hr_reset_found", &body)
}

/// `POST /hr/reset-password/confirm`: the confirmation step (確定 / 取消) before anything changes.
pub async fn confirm(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = begin(&state, &req).await?;
    let params = CheckedForm::read(&req, &body)?;
    let target = match checked_target(&state, &req, lang, &viewer, params.text("person")).await {
        Ok(t) => t,
        Err(answer) => return answer,
    };
    let email = params.text("email");
    if crate::accounts::activation::check_email(&email).is_err() {
        let body = TargetBody { error_key: Some("err_email_invalid"), ..target.body(&email) };
        return show(&state, &req, lang, &viewer, StatusCode::UNPROCESSABLE_ENTITY, "hr_reset_found", &body);
    }
    show(&state, &req, lang, &viewer, StatusCode::OK, "hr_reset_confirm", &target.body(&email))
}

/// `POST /hr/reset-password/issue`: issues and mails the one-time password, never showing it.
pub async fn issue(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = begin(&state, &req).await?;
    let params = CheckedForm::read(&req, &body)?;
    let target = match checked_target(&state, &req, lang, &viewer, params.text("person")).await {
        Ok(t) => t,
        Err(answer) => return answer,
    };
    let email = params.text("email");
    let address = client_address(&req);
    let (protector, mailer) = (state.protector.clone(), state.mailer.clone());
    let (nid, to, issued_by) = (target.person.national_id.clone(), email.clone(), viewer.account.id.clone());
    let (who, agency_name) = (viewer.clone(), target.agency_name.clone());
    let actor = Actor::person(&viewer.account.id, &address);
    let ttl = state.config.login.one_time_password_ttl.as_secs() as i64;
    let issued = state
        .db
        .run(move |c| -> Result<_, InfraError> {
            let by = reset_by(&who, &agency_name);
            let request = IssueRequest { national_id: &nid, email: &to, issued_by: &issued_by, by, ttl_secs: ttl };
            Ok(one_time::issue_by(c, &protector, &mailer, &request, &actor, now()))
        })
        .await?;
    // `issue_by` audited the outcome, whichever it was.
    match issued {
        Ok(issued) => {
            backchannel::notify_all(&state, &issued.ended.sids).await;
            let body = TargetBody { hours: Some(ttl / 3600), ..target.body(email.trim()) };
            show(&state, &req, lang, &viewer, StatusCode::OK, "hr_reset_done", &body)
        }
        Err(IssueError::BadEmail(_)) => {
            let body = TargetBody { error_key: Some("err_email_invalid"), ..target.body(&email) };
            show(&state, &req, lang, &viewer, StatusCode::UNPROCESSABLE_ENTITY, "hr_reset_found", &body)
        }
        Err(IssueError::Infra(InfraError::Mail(e))) => {
            // Nothing was stored (the transaction rolled back): say so, and let them try again.
            tracing::warn!(error = %e, "one-time password not delivered");
            let body = TargetBody { error_key: Some("hr_err_mail"), ..target.body(&email) };
            show(&state, &req, lang, &viewer, StatusCode::BAD_GATEWAY, "hr_reset_found", &body)
        }
        Err(IssueError::NotInRegister) => refusal_page(&state, &req, lang, &viewer, Refusal::NotInRegister),
        Err(IssueError::Privileged) => {
            // Granted between the search and the confirmation: the domain refuses it too.
            refusal_page(&state, &req, lang, &viewer, Refusal::Privileged)
        }
        Err(IssueError::Separated) => refusal_page(&state, &req, lang, &viewer, Refusal::Separated),
        Err(IssueError::Infra(e)) => Err(Failure::from(e)),
    }
}
