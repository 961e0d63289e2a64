//! Plain pages: home, stylesheet, health checks, and the page-rendering helper.

use actix_web::cookie::Cookie;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};

use super::errors::Failure;
use super::lang_of;
use super::viewer::{Nav, Viewer};
use crate::error::{now, InfraError};
use crate::state::AppState;
use crate::templates::{Lang, STYLE_CSS};

/// Renders a page from its typed data (a `#[derive(Serialize)]` struct per page, so a missing or
/// misspelt field is a compile error), with a status and cookies to set.
pub fn render_page<T: serde::Serialize>(
    state: &AppState,
    lang: Lang,
    status: StatusCode,
    page: &str,
    title_key: &str,
    data: &T,
    cookies: Vec<Cookie<'static>>,
) -> Result<HttpResponse, Failure> {
    render(state, lang, status, page, title_key, page_context(data)?, cookies)
}

/// The template context of a page's typed data: its fields at the top level, as `layout.hbs`
/// and the page expect them.
pub fn page_context<T: serde::Serialize>(data: &T) -> Result<Map<String, Value>, InfraError> {
    match serde_json::to_value(data) {
        // An absent value reads as "not there" to the templates (and lets `layout.hbs`'s
        // defaults apply), as a missing key did.
        Ok(Value::Object(mut map)) => {
            map.retain(|_, v| !v.is_null());
            Ok(map)
        }
        Ok(_) => Err(InfraError::Internal("page data is not a struct".into())),
        Err(e) => Err(InfraError::Internal(format!("page data: {e}"))),
    }
}

/// Renders a page's template context with a status and cookies to set.
fn render(
    state: &AppState,
    lang: Lang,
    status: StatusCode,
    page: &str,
    title_key: &str,
    mut ctx: Map<String, Value>,
    cookies: Vec<Cookie<'static>>,
) -> Result<HttpResponse, Failure> {
    super::lang_switch::apply(&mut ctx, other_lang(lang));
    let body = state.templates.render(page, lang, title_key, ctx)?;
    let mut r = HttpResponse::build(status);
    r.content_type("text/html; charset=utf-8").insert_header((header::CACHE_CONTROL, "no-store"));
    for c in cookies {
        r.cookie(c);
    }
    Ok(r.body(body))
}

/// The language tag the switch offers on a page in `lang`.
pub fn other_lang(lang: Lang) -> &'static str {
    lang.other().tag()
}

/// The data of a page that shows nothing but its text.
#[derive(Debug, Serialize)]
pub struct NoData {}

/// The data of `home.hbs`.
#[derive(Debug, Serialize)]
struct HomePage {
    /// Who is signed in (nobody: the sign-in button instead).
    name: Option<String>,
    account_name: Option<String>,
    nav: Option<Nav>,
    figures: Figures,
    announcements: Vec<Announcement>,
}

/// The three figures at the top of the home page.
#[derive(Debug, Serialize)]
struct Figures {
    online: i64,
    today: i64,
    total: i64,
}

/// One of 最新公告, with its publication time in Taipei time.
#[derive(Debug, Serialize)]
struct Announcement {
    title: String,
    body: String,
    published: String,
    published_iso: String,
}

/// Home: the figures and 最新公告 for everyone; for a signed-in person also who they are and
/// the navigation their roles open. Everything comes from the database, so every node agrees.
pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let viewer = super::viewer::viewer(&state, &req).await?;
    let at = now();
    let (figures, live) = state
        .db
        .run(move |c| -> Result<_, InfraError> {
            Ok((crate::portal::figures(c, at)?, crate::portal::live_announcements(c, at, 20)?))
        })
        .await?;
    let data = HomePage {
        name: viewer.as_ref().map(|v| v.person.name.clone()),
        account_name: viewer.as_ref().and_then(|v| v.account.account_name.clone()),
        nav: viewer.as_ref().map(Viewer::navigation),
        figures: Figures { online: figures.online, today: figures.today, total: figures.total },
        announcements: live
            .into_iter()
            .map(|a| Announcement {
                published: crate::portal::taipei::format(a.published_at),
                published_iso: format!("{}+08:00", crate::portal::taipei::format_input(a.published_at)),
                title: a.title,
                body: a.body,
            })
            .collect(),
    };
    render_page(&state, lang, StatusCode::OK, "home", "home_title", &data, vec![])
}

pub async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLE_CSS)
}

/// The header logo (`site.logo_file`, or the built-in emblem).
pub async fn logo(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    image(&state.site.logo, &req)
}

/// The browser-tab icon (`site.favicon_file`, or the built-in emblem).
pub async fn favicon(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    image(&state.site.favicon, &req)
}

/// An image of the site's identity. Pages link it with its version in the query, so a browser
/// may keep it a day and still sees a new file at once; a revalidation whose `If-None-Match`
/// names the current version gets 304. An operator's SVG runs no script and loads nothing:
/// its own policy forbids both.
fn image(image: &crate::site::Image, req: &HttpRequest) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == image.etag || tag.trim() == "*"));
    let mut r = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    r.insert_header((header::ETAG, image.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; sandbox"));
    if fresh {
        r.finish()
    } else {
        r.content_type(image.content_type).body(image.bytes.to_vec())
    }
}

/// The login page's card script: gets a challenge, asks the local card component to sign it
/// (popup + postMessage, as government sites do), posts the signature back.
pub async fn card_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(crate::templates::CARD_JS)
}

/// Liveness: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Readiness: the database and the ephemeral store answer, within a second in all; and the
/// process is not stopping. A balancer sends traffic only to nodes that say "ready".
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let not_ready = |why: &str| {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(format!("not ready: {why}"))
    };
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        return not_ready("stopping");
    }
    // Both at once, each bounded: a dependency that hangs must not make this check hang.
    let within = READINESS_BOUND;
    let probe = crate::store::ephemeral::Key::readiness_probe();
    let (db, eph) = tokio::join!(state.db.ping(within), tokio::time::timeout(within, state.eph.get(&probe)));
    match (db, eph) {
        (Ok(()), Ok(Ok(_))) => HttpResponse::Ok().content_type("text/plain").body("ready"),
        (Err(e), _) => {
            tracing::warn!(error = %e, "not ready: database");
            not_ready("database")
        }
        (_, Ok(Err(e))) => {
            tracing::warn!(error = %e, "not ready: ephemeral store");
            not_ready("ephemeral store")
        }
        (_, Err(_)) => {
            tracing::warn!("not ready: ephemeral store did not answer in time");
            not_ready("ephemeral store")
        }
    }
}

/// How long `/readyz` waits for each dependency.
const READINESS_BOUND: std::time::Duration = std::time::Duration::from_millis(900);
