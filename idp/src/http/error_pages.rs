//! Renders the error pages [`super::errors`] describes, as the response leaves the application:
//! in the language the handler chose for its page, and — for a signed-in person — with the site
//! navigation (我的專區, 系統管理, …), so an error never strands someone who is signed in. Also
//! gives the framework's own refusals (a body over the size limit, before any handler runs) the
//! same localized pages instead of its plain English text.

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest};
use serde::Serialize;

use super::errors::{oauth, Failure, PageText};
use super::pages::page_context;
use super::viewer::{Nav, Viewer};
use crate::state::AppState;
use crate::templates::Lang;

/// The language of the page a request is answered with, as the handler last negotiated it
/// ([`super::lang_of`] remembers it here), so its error page speaks the same language.
#[derive(Debug, Clone, Copy)]
struct PageLang(Lang);

/// Remembers `lang` as the language of the request's page (and so of its error page).
pub fn remember(req: &HttpRequest, lang: Lang) {
    req.extensions_mut().insert(PageLang(lang));
}

/// Renders the page of a failure that is one; every other response passes unchanged. The
/// status and headers stay those the mapping gave (`Retry-After`, …); only the body is rendered.
pub async fn finish(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let described = res.response().error().map(|e| e.as_error::<Failure>().map(|f| f.page_text().cloned()));
    let (res, text) = match described {
        None | Some(Some(None)) => return res,
        Some(Some(Some(text))) => (res, text),
        Some(None) => match framework_refusal(res.request(), res.status()) {
            None => return res,
            Some(f) => {
                let text = f.page_text().cloned();
                let res = res.into_response(actix_web::ResponseError::error_response(&f));
                match text {
                    Some(text) => (res, text),
                    None => return res,
                }
            }
        },
    };
    let Some(state) = res.request().app_data::<web::Data<AppState>>().cloned() else { return res };
    let lang = res.request().extensions().get::<PageLang>().map(|l| l.0);
    let lang = lang.unwrap_or_else(|| super::lang_of(res.request(), None));
    let nav = if res.status().is_server_error() {
        // A server error or an outage: rendered from the embedded templates alone, asking
        // nothing of the dependencies that may be what failed.
        None
    } else {
        match super::viewer::viewer(&state, res.request()).await {
            Ok(v) => v.as_ref().map(Viewer::navigation),
            Err(e) => {
                tracing::warn!(error = %e, "error page shown without the navigation");
                None
            }
        }
    };
    let body = render(&state, lang, &text, nav);
    res.map_body(|_, _| BoxBody::new(body))
}

/// The data of `error.hbs`.
#[derive(Debug, Serialize)]
struct ErrorPage {
    /// What went wrong, in the person's words.
    message: String,
    /// The technical reason, where the mapping shows one.
    detail: Option<String>,
    /// The site navigation, for a signed-in person.
    nav: Option<Nav>,
}

/// The error page's HTML; if the template itself fails, the message alone.
fn render(state: &AppState, lang: Lang, text: &PageText, nav: Option<Nav>) -> String {
    let message = state.templates.text(lang, text.key);
    let data = ErrorPage { message: message.clone(), detail: text.detail.clone(), nav };
    page_context(&data)
        .and_then(|mut ctx| {
            // On the answer to a POST-only path, the language switch leads to the form's page.
            super::lang_switch::apply(&mut ctx, super::pages::other_lang(lang));
            state.templates.render("error", lang, text.title_key, ctx)
        })
        .unwrap_or(message)
}

/// What the framework's own refusal (an extractor's, before the handler ran) means: a body over
/// the size limit is 413 「送出的資料過大」 for a browser, RFC 6749 `invalid_request` for a
/// client (one that does not ask for HTML).
fn framework_refusal(req: &HttpRequest, status: StatusCode) -> Option<Failure> {
    if status != StatusCode::PAYLOAD_TOO_LARGE {
        return None;
    }
    let wants_page = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|m| m.split(';').next().is_some_and(|m| m.trim() == "text/html")));
    Some(if wants_page {
        Failure::page(StatusCode::PAYLOAD_TOO_LARGE, "err_too_large", None)
    } else {
        oauth(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "the request body is too large")
    })
}
