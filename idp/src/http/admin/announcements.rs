//! 最新公告: operators create, edit and expire the home page's announcements. Times are typed
//! and shown in Taipei time.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{field, Operator};
use crate::error::{now, InfraError};
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
) -> Result<HttpResponse, actix_web::Error> {
    let at = now();
    let all = state.db.run(portal::all_announcements).await.map_err(|e| op.internal(state, e))?;
    ctx.insert("announcements".into(), Value::Array(all.iter().map(|a| row_json(a, at)).collect()));
    Ok(op.show(state, req, status, "admin_announcements", "admin_announcements_title", ctx)?)
}

/// `GET /admin/announcements`: every announcement and the form for a new one.
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    let op = Operator::of(&state, &req).await?;
    list_page(&state, &req, &op, StatusCode::OK, Map::new()).await
}

/// `POST /admin/announcements`.
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, actix_web::Error> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&state, &req, &body)?;
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
    let by = op.viewer.account.id.clone();
    let done = state
        .db
        .run(move |c| -> Result<_, InfraError> { Ok(portal::create_announcement(c, input, &by, at)) })
        .await
        .map_err(|e| op.internal(&state, e))?;
    match done {
        Ok(id) => {
            op.audit(&state, "announcement.create", "success", None, format!("announcement {id}")).await?;
            Ok(crate::http::viewer::see_other("/admin/announcements"))
        }
        Err(AnnouncementError::Invalid(key)) => {
            list_page(&state, &req, &op, StatusCode::UNPROCESSABLE_ENTITY, refuse(key)).await
        }
        Err(AnnouncementError::Infra(e)) => Err(op.internal(&state, e).into()),
    }
}

fn id_of(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or("").to_string()
}

/// `GET /admin/announcements/{id}`.
pub async fn edit_form(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    let op = Operator::of(&state, &req).await?;
    let id = id_of(&req);
    let found = state.db.run(move |c| portal::announcement(c, &id)).await.map_err(|e| op.internal(&state, e))?;
    let Some(a) = found else { return Err(op.not_found(&state).into()) };
    let mut ctx = Map::new();
    ctx.insert("form".into(), row_json(&a, now()));
    Ok(op.show(&state, &req, StatusCode::OK, "admin_announcement_form", "admin_announcement_edit_title", ctx)?)
}

/// `POST /admin/announcements/{id}`.
pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, actix_web::Error> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&state, &req, &body)?;
    let id = id_of(&req);
    let at = now();
    let refuse = |key: &'static str| -> Result<HttpResponse, actix_web::Error> {
        let mut ctx = Map::new();
        let mut form = typed(&p);
        form["id"] = json!(id);
        ctx.insert("form".into(), form);
        ctx.insert("error_key".into(), json!(key));
        Ok(op.show(
            &state,
            &req,
            StatusCode::UNPROCESSABLE_ENTITY,
            "admin_announcement_form",
            "admin_announcement_edit_title",
            ctx,
        )?)
    };
    let input = match read(&p, at) {
        Ok(i) => i,
        Err(key) => return refuse(key),
    };
    let key = id.clone();
    let done = state
        .db
        .run(move |c| -> Result<_, InfraError> { Ok(portal::update_announcement(c, &key, input, at)) })
        .await
        .map_err(|e| op.internal(&state, e))?;
    match done {
        Ok(true) => {
            op.audit(&state, "announcement.update", "success", None, format!("announcement {id}")).await?;
            Ok(crate::http::viewer::see_other("/admin/announcements"))
        }
        Ok(false) => Err(op.not_found(&state).into()),
        Err(AnnouncementError::Invalid(key)) => refuse(key),
        Err(AnnouncementError::Infra(e)) => Err(op.internal(&state, e).into()),
    }
}

/// `POST /admin/announcements/{id}/expire`: takes it off the home page now.
pub async fn expire(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, actix_web::Error> {
    let op = Operator::of(&state, &req).await?;
    op.form(&state, &req, &body)?;
    let id = id_of(&req);
    let key = id.clone();
    let found =
        state.db.run(move |c| portal::expire_announcement(c, &key, now())).await.map_err(|e| op.internal(&state, e))?;
    if !found {
        return Err(op.not_found(&state).into());
    }
    op.audit(&state, "announcement.expire", "success", None, format!("announcement {id}")).await?;
    Ok(crate::http::viewer::see_other("/admin/announcements"))
}
