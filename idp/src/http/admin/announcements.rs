//! 最新公告: operators create, edit and expire the home page's announcements. Times are typed
//! and shown in Taipei time.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{field, Operator};
use crate::error::{now, InfraError};
use crate::http::errors::Failure;
use crate::http::form::CheckedForm;
use crate::portal::{self, taipei, AnnouncementError, AnnouncementInput};
use crate::state::AppState;
use crate::store::db::models::AnnouncementRow;

fn row_json(a: &AnnouncementRow, at: i64) -> Value {
    let live = a.published_at <= at && a.expires_at.is_none_or(|e| e > at);
    json!({
        "id": a.id,
        "title": a.title,
        "body": a.body,
        "published": taipei::format(a.published_at),
        "published_input": taipei::format_input(a.published_at),
        "expires": a.expires_at.map(taipei::format),
        "expires_input": a.expires_at.map(taipei::format_input),
        "live": live,
        "scheduled": a.published_at > at,
    })
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

fn typed(p: &CheckedForm) -> Value {
    json!({
        "title": field(p, "title"),
        "body": field(p, "body"),
        "published_input": field(p, "published_at"),
        "expires_input": field(p, "expires_at"),
    })
}

async fn list_page(
    state: &AppState,
    req: &HttpRequest,
    op: &Operator,
    status: StatusCode,
    mut ctx: Map<String, Value>,
) -> Result<HttpResponse, Failure> {
    let at = now();
    let all = state.db.run(portal::all_announcements).await?;
    ctx.insert("announcements".into(), Value::Array(all.iter().map(|a| row_json(a, at)).collect()));
    op.show(state, req, status, "admin_announcements", "admin_announcements_title", ctx)
}

/// `GET /admin/announcements`: every announcement and the form for a new one.
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    list_page(&state, &req, &op, StatusCode::OK, Map::new()).await
}

/// `POST /admin/announcements`.
pub async fn create(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&req, &body)?;
    let at = now();
    let refuse = |key: &'static str| {
        let mut ctx = Map::new();
        ctx.insert("error_key".into(), json!(key));
        ctx.insert("form".into(), typed(&p));
        ctx
    };
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
    let mut ctx = Map::new();
    ctx.insert("form".into(), row_json(&a, now()));
    op.show(&state, &req, StatusCode::OK, "admin_announcement_form", "admin_announcement_edit_title", ctx)
}

/// `POST /admin/announcements/{id}`.
pub async fn update(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&req, &body)?;
    let id = id_of(&req);
    let at = now();
    let refuse = |key: &'static str| -> Result<HttpResponse, Failure> {
        let mut ctx = Map::new();
        let mut form = typed(&p);
        form["id"] = json!(id);
        ctx.insert("form".into(), form);
        ctx.insert("error_key".into(), json!(key));
        op.show(
            &state,
            &req,
            StatusCode::UNPROCESSABLE_ENTITY,
            "admin_announcement_form",
            "admin_announcement_edit_title",
            ctx,
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
