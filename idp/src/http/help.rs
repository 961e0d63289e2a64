//! The pages that help people get started, as the portal they know has them (seed 000 Step 1,
//! seeds 001–004): 環境檢測 (the environment check, run in the browser by `card.js`),
//! 使用說明 (first sign-in, card binding, unlocking a card) and 常見問題. They are open to
//! everyone, signed in or not; a signed-in person keeps the site navigation.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::errors::Failure;
use super::forgot::Helpdesk;
use super::lang_of;
use super::pages::{render_page, NoData};
use super::viewer::Nav;
use crate::config::LinksConfig;
use crate::state::AppState;

/// Routes of the help pages.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/environment").route(web::get().to(environment)))
        .service(web::resource("/environment/popup").route(web::get().to(popup_probe)))
        .service(web::resource("/help").route(web::get().to(guide)))
        .service(web::resource("/faq").route(web::get().to(faq)));
}

/// The Content-Security-Policy of pages whose script talks to the components on the person's
/// computer: the card component's status image (`img-src`) and NHI's component (`connect-src`)
/// are allowed besides this site; everything else stays as strict as the site-wide policy.
pub fn components_csp(state: &AppState) -> String {
    let certs = &state.config.certificates;
    format!(
        "default-src 'self'; img-src 'self' {}; connect-src 'self' {}; frame-ancestors 'none'; base-uri 'none'; \
         object-src 'none'",
        certs.component_url(),
        certs.health_component_url()
    )
}

/// Gives a page the policy of [`components_csp`] (login, environment check, card binding).
pub fn allow_components(state: &AppState, r: &mut HttpResponse) {
    if let Ok(v) = header::HeaderValue::from_str(&components_csp(state)) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// What every help page shows: the official download and unlock pages (`links.*`), the
/// helpdesk's contact (`site.*`), which card sign-ins this site offers, and the navigation for
/// a signed-in person.
#[derive(Debug, Serialize)]
struct HelpPage<'a> {
    #[serde(flatten)]
    helpdesk: Helpdesk<'a>,
    links: &'a LinksConfig,
    card_enabled: bool,
    health_enabled: bool,
    card_component: &'a str,
    health_component: &'a str,
    nav: Option<Nav>,
}

async fn context<'a>(state: &'a AppState, req: &HttpRequest) -> Result<HelpPage<'a>, Failure> {
    let certs = &state.config.certificates;
    Ok(HelpPage {
        helpdesk: Helpdesk::of(state),
        links: &state.config.links,
        card_enabled: state.card.is_some(),
        health_enabled: certs.health_enabled(),
        card_component: certs.component_url(),
        health_component: certs.health_component_url(),
        nav: super::viewer::viewer(state, req).await?.map(|v| v.navigation()),
    })
}

/// `GET /environment`: 人事服務網環境檢測. The checks run in the browser (the components answer
/// only there): the card component and its version, a reader with a card, pop-ups, NHI's
/// component. Every result, passed or failed, is already on the page in both languages; the
/// script only shows the right one, so the wording stays with the translations.
pub async fn environment(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let page = context(&state, &req).await?;
    let mut r = render_page(&state, lang, StatusCode::OK, "environment", "env_title", &page, vec![])?;
    allow_components(&state, &mut r);
    Ok(r)
}

/// `GET /environment/popup`: the small window the pop-up check opens; it tells its opener it
/// could open and closes itself (`card.js`).
pub async fn popup_probe(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    render_page(&state, lang, StatusCode::OK, "environment_popup", "env_popup_title", &NoData {}, vec![])
}

/// `GET /help`: 使用說明 — first sign-in in the seeds' three ways, binding a card (方法一,
/// 方法二), unlocking a locked card, the personal-data notice.
pub async fn guide(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let page = context(&state, &req).await?;
    render_page(&state, lang, StatusCode::OK, "help", "help_title", &page, vec![])
}

/// `GET /faq`: 常見問題, the questions the seeds answer.
pub async fn faq(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let lang = lang_of(&req, None);
    let page = context(&state, &req).await?;
    render_page(&state, lang, StatusCode::OK, "faq", "faq_title", &page, vec![])
}
