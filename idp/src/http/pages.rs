//! Plain pages: home, stylesheet, health checks, and the page-rendering helper.

use actix_web::cookie::Cookie;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::errors::{internal, Failure};
use super::{lang_of, SESSION_COOKIE};
use crate::accounts;
use crate::authn::session;
use crate::error::{now, InfraError};
use crate::state::AppState;
use crate::templates::{Lang, STYLE_CSS};

/// Renders a page with a status and cookies to set.
pub fn render(
    state: &AppState,
    lang: Lang,
    status: StatusCode,
    page: &str,
    title_key: &str,
    ctx: Map<String, Value>,
    cookies: Vec<Cookie<'static>>,
) -> Result<HttpResponse, Failure> {
    let body = state.templates.render(page, lang, title_key, ctx).map_err(|e| internal(state, lang, e))?;
    let mut r = HttpResponse::build(status);
    r.content_type("text/html; charset=utf-8").insert_header((header::CACHE_CONTROL, "no-store"));
    for c in cookies {
        r.cookie(c);
    }
    Ok(r.body(body))
}

/// Home: who is signed in, if anyone.
pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let mut ctx = Map::new();
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        let token = cookie.value().to_string();
        let protector = state.protector.clone();
        let found = state
            .db
            .run(move |c| -> Result<_, InfraError> {
                let Some(s) = session::find(c, &token, now())? else { return Ok(None) };
                let Some(a) = accounts::account_by_id(c, &s.account_id)? else { return Ok(None) };
                let p = accounts::person_by_id(c, &protector, &a.person_id)?;
                Ok(p.map(|p| (a, p)))
            })
            .await
            .map_err(|e| internal(&state, lang, e))?;
        if let Some((account, person)) = found {
            ctx.insert("name".into(), json!(person.name));
            ctx.insert("account_name".into(), json!(account.account_name));
        }
    }
    render(&state, lang, StatusCode::OK, "home", "home_title", ctx, vec![])
}

pub async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLE_CSS)
}

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Readiness: the database and the ephemeral store answer.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state
        .db
        .run(|c| -> Result<(), InfraError> {
            use diesel::connection::SimpleConnection;
            c.batch_execute("SELECT 1").map_err(InfraError::from)
        })
        .await;
    let eph = state.eph.get("readyz").await;
    match (db, eph) {
        (Ok(()), Ok(_)) => HttpResponse::Ok().content_type("text/plain").body("ready"),
        _ => HttpResponse::ServiceUnavailable().content_type("text/plain").body("not ready"),
    }
}
