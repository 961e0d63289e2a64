//! The one place where failures become HTTP responses: rendered pages with a 4xx/5xx status
//! for people, RFC 6749 JSON for clients. Internal errors are logged (without personal data)
//! and shown as a generic message. A dependency that is down or not answering
//! ([`InfraError::unavailable`]) is never a 500: it is a 503 with `Retry-After` — the
//! 系統暫時無法使用 page for people, `temporarily_unavailable` for clients.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Map};

use crate::error::InfraError;
use crate::state::AppState;
use crate::templates::Lang;

/// A response that ends a request early.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    body: String,
    content_type: &'static str,
    www_authenticate: Option<String>,
    location: Option<String>,
    retry_after: Option<u32>,
}

/// What `Retry-After` says while a dependency is down: long enough not to hammer a node that is
/// waiting for its database, short enough that people are not kept away after it is back.
pub const RETRY_AFTER_SECS: u32 = 5;

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        r.content_type(self.content_type).insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(w) = &self.www_authenticate {
            r.insert_header((header::WWW_AUTHENTICATE, w.clone()));
        }
        if let Some(l) = &self.location {
            r.insert_header((header::LOCATION, l.clone()));
        }
        if let Some(secs) = self.retry_after {
            r.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        r.body(self.body.clone())
    }
}

impl Failure {
    /// Ends the request with a redirect (e.g. to the sign-in page).
    pub fn redirect(location: &str) -> Self {
        Failure {
            status: StatusCode::SEE_OTHER,
            body: String::new(),
            content_type: "text/plain",
            www_authenticate: None,
            location: Some(location.to_string()),
            retry_after: None,
        }
    }

    /// Whether this is the answer for a dependency that is down (so a caller that knows a
    /// trusted redirect URI can send the error there instead).
    pub fn is_unavailable(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE && self.retry_after.is_some()
    }
}

/// A page that explains what went wrong.
pub fn page(state: &AppState, lang: Lang, status: StatusCode, key: &str, detail: Option<String>) -> Failure {
    titled_page(state, lang, status, "error_title", key, detail)
}

fn titled_page(
    state: &AppState,
    lang: Lang,
    status: StatusCode,
    title_key: &str,
    key: &str,
    detail: Option<String>,
) -> Failure {
    let mut ctx = Map::new();
    ctx.insert("message".into(), state.templates.text(lang, key).into());
    if let Some(d) = detail {
        ctx.insert("detail".into(), d.into());
    }
    let body =
        state.templates.render("error", lang, title_key, ctx).unwrap_or_else(|_| state.templates.text(lang, key));
    Failure {
        status,
        body,
        content_type: "text/html; charset=utf-8",
        www_authenticate: None,
        location: None,
        retry_after: None,
    }
}

/// The page for an infrastructure failure: 503 系統暫時無法使用 when a dependency is down or
/// not answering, else 500.
pub fn internal(state: &AppState, lang: Lang, e: InfraError) -> Failure {
    crate::metrics::infra_error(&e);
    match e.unavailable() {
        Some(dependency) => {
            tracing::warn!(dependency, error = %e, "dependency unavailable");
            unavailable_page(state, lang)
        }
        None => {
            tracing::error!(error = %e, "internal error");
            page(state, lang, StatusCode::INTERNAL_SERVER_ERROR, "err_server", None)
        }
    }
}

/// 503 系統暫時無法使用，請稍後再試 with `Retry-After`. Rendered from the embedded templates
/// alone, so it needs none of the dependencies that are down.
pub fn unavailable_page(state: &AppState, lang: Lang) -> Failure {
    let mut f = titled_page(state, lang, StatusCode::SERVICE_UNAVAILABLE, "unavailable_title", "err_unavailable", None);
    f.retry_after = Some(RETRY_AFTER_SECS);
    f
}

/// The JSON answer of a client-facing endpoint (token, userinfo, introspection, revocation,
/// registration) for an infrastructure failure: 503 `temporarily_unavailable` with
/// `Retry-After` when a dependency is down, else 500 `server_error`.
pub fn server_error(e: &InfraError, endpoint: &'static str) -> Failure {
    crate::metrics::infra_error(e);
    match e.unavailable() {
        Some(dependency) => {
            tracing::warn!(dependency, endpoint, error = %e, "dependency unavailable");
            let mut f = oauth(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the service is temporarily unavailable, try again later",
            );
            f.retry_after = Some(RETRY_AFTER_SECS);
            f
        }
        None => {
            tracing::error!(endpoint, error = %e, "internal error");
            oauth(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
        }
    }
}

/// An OAuth error as JSON (RFC 6749 §5.2).
pub fn oauth(status: StatusCode, error: &str, description: &str) -> Failure {
    let body = json!({ "error": error, "error_description": description }).to_string();
    Failure {
        status,
        body,
        content_type: "application/json",
        www_authenticate: None,
        location: None,
        retry_after: None,
    }
}

/// `invalid_client` with the challenge RFC 6749 asks for when Basic was used.
pub fn invalid_client(description: &str, basic: bool) -> Failure {
    let mut f = oauth(StatusCode::UNAUTHORIZED, "invalid_client", description);
    if basic {
        f.www_authenticate = Some("Basic realm=\"idp\"".into());
    }
    f
}

/// A bearer-token error for protected resources (RFC 6750 §3).
pub fn bearer(status: StatusCode, error: &str, description: &str) -> Failure {
    let mut f = oauth(status, error, description);
    f.www_authenticate = Some(format!("Bearer error=\"{error}\", error_description=\"{description}\""));
    f
}

/// The challenge for a request that carried no token at all (RFC 6750 §3.1: no error code).
pub fn bearer_required() -> Failure {
    let mut f = oauth(StatusCode::UNAUTHORIZED, "invalid_token", "a bearer token is required");
    f.www_authenticate = Some("Bearer realm=\"idp\"".into());
    f
}
