//! 最新公告: operators create, edit and expire the home page's announcements. Times are typed
//! and shown in Taipei time.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{field, Operator};
use crate::error::{now, InfraError};
use crate::http::errors::Failure;
use crate::http::form::CheckedForm;
use crate::portal::{self, taipei, AnnouncementError, AnnouncementInput};
use crate::state::AppState;
use crate::store::db::models::AnnouncementRow;

/// An announcement as the list and the form show it: stored, or as typed into a refused form.
#[derive(Debug, Default, Serialize)]
struct AnnouncementView {
    id: Option<String>,
    title: String,
    body: String,
    published: Option<String>,
    published_input: String,
    expires: Option<String>,
    expires_input: Option<String>,
    live: bool,
    scheduled: bool,
}

/// The data of `admin_announcements.hbs` and `admin_announcement_form.hbs`.
#[derive(Debug, Default, Serialize)]
struct AnnouncementsPage {
    announcements: Option<Vec<AnnouncementView>>,
    form: Option<AnnouncementView>,
    error_key: Option<&'static str>,
}

fn view(a: &AnnouncementRow, at: i64) -> AnnouncementView {
    AnnouncementView {
        id: Some(a.id.clone()),
        title: a.title.clone(),
        body: a.body.clone(),
        published: Some(taipei::format(a.published_at)),
        published_input: taipei::format_input(a.published_at),
        expires: a.expires_at.map(taipei::format),
        expires_input: a.expires_at.map(taipei::format_input),
        live: a.published_at <= at && a.expires_at.is_none_or(|e| e > at),
        scheduled: a.published_at > at,
    }
}

/// Reads the form; an empty publication time means now, an empty expiry means never.
fn read(p: &CheckedForm, at: i64) -> Result<AnnouncementInput, &'static str> {
    let published_at = match field(p, "published_at").as_str() {
        "" => at,
        s => taipei::parse_local(s).ok_or("err_announcement_time")?,
    };
    let expires_at = match field(p, "expires_at").as_str() {
        "" => None,
        s => Some(taipei::parse_local(s).ok_or("err_announcement_time")?),
    };
    Ok(AnnouncementInput { title: field(p, "title"), body: field(p, "body"), published_at, expires_at })
}

fn typed(p: &CheckedForm) -> AnnouncementView {
    AnnouncementView {
        title: field(p, "title"),
        body: field(p, "body"),
        published_input: field(p, "published_at"),
        expires_input: Some(field(p, "expires_at")),
        ..AnnouncementView::default()
    }
}

async fn list_page(
    state: &AppState,
    req: &HttpRequest,
    op: &Operator,
    status: StatusCode,
    mut page: AnnouncementsPage,
) -> Result<HttpResponse, Failure> {
    let at = now();
    let all = state.db.run(portal::all_announcements).await?;
    page.announcements = Some(all.iter().map(|a| view(a, at)).collect());
    op.show(state, req, status, "admin_announcements", "admin_announcements_title", &page)
}

/// `GET /admin/announcements`: every announcement and the form for a new one.
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    list_page(&state, &req, &op, StatusCode::OK, AnnouncementsPage::default()).await
}

/// `POST /admin/announcements`.
pub async fn create(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&req, &body)?;
    let at = now();
    let refuse =
        |key: &'static str| AnnouncementsPage { error_key: Some(key), form: Some(typed(&p)), announcements: None };
    let input = match read(&p, at) {
        Ok(i) => i,
        Err(key) => return list_page(&state, &req, &op, StatusCode::UNPROCESSABLE_ENTITY, refuse(key)).await,
    };
    let actor = op.actor();
    let done = state
        .db
        .run(move |c| -> Result<_, InfraError> { Ok(portal::create_announcement_by(c, input, &actor, at)) })
        .await?;
    match done {
        Ok(_) => Ok(crate::http::viewer::see_other("/admin/announcements")),
        Err(AnnouncementError::Invalid(key)) => {
            list_page(&state, &req, &op, StatusCode::UNPROCESSABLE_ENTITY, refuse(key)).await
        }
        Err(AnnouncementError::Infra(e)) => Err(Failure::from(e)),
    }
}

fn id_of(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or("").to_string()
}

/// `GET /admin/announcements/{id}`.
pub async fn edit_form(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let id = id_of(&req);
    let found = state.db.run(move |c| portal::announcement(c, &id)).await?;
    let Some(a) = found else { return Err(Failure::not_found()) };
    let page = AnnouncementsPage { form: Some(view(&a, now())), ..AnnouncementsPage::default() };
    op.show(&state, &req, StatusCode::OK, "admin_announcement_form", "admin_announcement_edit_title", &page)
}

/// `POST /admin/announcements/{id}`.
pub async fn update(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&req, &body)?;
    let id = id_of(&req);
    let at = now();
    let refuse = |key: &'static str| -> Result<HttpResponse, Failure> {
        let form = AnnouncementView { id: Some(id.clone()), ..typed(&p) };
        let page = AnnouncementsPage { form: Some(form), error_key: Some(key), announcements: None };
        op.show(
            &state,
            &req,
            StatusCode::UNPROCESSABLE_ENTITY,
            "admin_announcement_form",
            "admin_announcement_edit_title",
            &page,
        )
    };
    let input = match read(&p, at) {
        Ok(i) => i,
        Err(key) => return refuse(key),
    };
    let (key, actor) = (id.clone(), op.actor());
    let done = state
        .db
        .run(move |c| -> Result<_, InfraError> { Ok(portal::update_announcement_by(c, &key, input, &actor, at)) })
        .await?;
    match done {
        Ok(true) => Ok(crate::http::viewer::see_other("/admin/announcements")),
        Ok(false) => Err(Failure::not_found()),
        Err(AnnouncementError::Invalid(key)) => refuse(key),
        Err(AnnouncementError::Infra(e)) => Err(Failure::from(e)),
    }
}

/// `POST /admin/announcements/{id}/expire`: takes it off the home page now.
pub async fn expire(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    op.form(&req, &body)?;
    let id = id_of(&req);
    let actor = op.actor();
    let found = state.db.run(move |c| portal::expire_announcement_by(c, &id, &actor, now())).await?;
    if !found {
        return Err(Failure::not_found());
    }
    Ok(crate::http::viewer::see_other("/admin/announcements"))
}
