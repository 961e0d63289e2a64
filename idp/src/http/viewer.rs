//! Who is looking at a page: the signed-in person with their account, register entry and roles.
//! Every portal, HR and operator page starts here.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use super::errors::Failure;
use super::SESSION_COOKIE;
use crate::accounts::{self, roles, Account, AccountState, Person, PersonStatus};
use crate::authn::session::{self, Session};
use crate::error::{now, InfraError};
use crate::state::AppState;

/// The signed-in person.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub session: Session,
    pub account: Account,
    pub person: Person,
    /// `employee`, `hr_staff` (from the register) and granted roles (`helpdesk`, `operator`).
    pub roles: Vec<String>,
}

impl Viewer {
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The `nav` context of `layout.hbs`: the site navigation a signed-in person gets on every
    /// page, with the links their roles open (the pages themselves check the roles again).
    pub fn navigation(&self) -> Nav {
        Nav {
            name: self.person.name.clone(),
            hr: self.has("hr_staff") || self.has("helpdesk") || self.has("agency_card"),
            operator: self.has("operator"),
        }
    }
}

/// The site navigation of `layout.hbs` for a signed-in person.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Nav {
    /// Shown as who is signed in.
    pub name: String,
    /// 權限與兼辦管理 (HR staff, helpdesk, an agency card).
    pub hr: bool,
    /// 系統管理 (operators).
    pub operator: bool,
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

/// The signed-in person, if any (an active account of an active person with a live session).
pub async fn viewer(state: &AppState, req: &HttpRequest) -> Result<Option<Viewer>, InfraError> {
    let Some((mut session, account, person)) = signed_in(state, req).await? else { return Ok(None) };
    let id = account.id.clone();
    let granted = state.db.run(move |c| roles::granted(c, &id)).await?;
    let mut all: Vec<String> = roles::roles(&person).into_iter().map(str::to_string).collect();
    all.extend(granted);
    if let Some(agency) = session.acting_agency.as_deref() {
        // Signed in with an agency card: acts for that agency (password resets) for as long as
        // the register still makes this person HR staff of it; after an import that moved them,
        // the session goes on as their own, without the agency's authority.
        if roles::is_hr_staff(&person) && person.agency_code == agency {
            all.push("agency_card".into());
        } else {
            session.acting_agency = None;
        }
    }
    Ok(Some(Viewer { session, account, person, roles: all }))
}

/// The signed-in person, or a redirect to the sign-in page (which comes back to `back_to`).
pub async fn require_signed_in(state: &AppState, req: &HttpRequest) -> Result<Viewer, Failure> {
    match viewer(state, req).await? {
        Some(v) => Ok(v),
        None => Err(Failure::redirect("/login")),
    }
}

/// A plain redirect response (used after successful form posts).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location.to_string())).finish()
}
