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
use crate::oidc::logout::LogoutError;
use crate::oidc::transaction::TransactionError;
use crate::oidc::userinfo::UserinfoError;
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
    /// The server's DPoP nonce (RFC 9449 §8), sent as `DPoP-Nonce`.
    dpop_nonce: Option<String>,
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
        if let Some(n) = &self.dpop_nonce {
            r.insert_header((DPOP_NONCE, n.clone()));
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
            dpop_nonce: None,
        }
    }

    /// Whether this is the answer for a dependency that is down (so a caller that knows a
    /// trusted redirect URI can send the error there instead).
    pub fn is_unavailable(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE && self.retry_after.is_some()
    }

    /// The same answer with the server's DPoP nonce (RFC 9449 §8).
    pub fn with_dpop_nonce(mut self, nonce: String) -> Self {
        self.dpop_nonce = Some(nonce);
        self
    }
}

/// The header that carries the server's DPoP nonce.
pub const DPOP_NONCE: &str = "DPoP-Nonce";

/// A refused DPoP proof at a protected resource (RFC 9449 §7.1): 401 with a `DPoP` challenge
/// naming the error and the algorithms accepted.
pub fn dpop_challenge(error: &str, description: &str) -> Failure {
    let mut f = oauth(StatusCode::UNAUTHORIZED, error, description);
    let algs = crate::oidc::dpop::ALGORITHMS.join(" ");
    f.www_authenticate = Some(format!("DPoP error=\"{error}\", error_description=\"{description}\", algs=\"{algs}\""));
    f
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
        dpop_nonce: None,
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

/// The page for a login transaction that cannot be continued: 400 「登入作業已逾時」 when it is gone.
pub fn transaction_page(state: &AppState, lang: Lang, e: TransactionError) -> Failure {
    match e {
        TransactionError::Gone => page(state, lang, StatusCode::BAD_REQUEST, "err_tx", None),
        TransactionError::Infra(e) => internal(state, lang, e),
    }
}

/// What a refused logout means to the person: status, page text, and whether the page names
/// the reason (for the relying party's developer).
fn logout_meaning(e: &LogoutError) -> (StatusCode, &'static str, bool) {
    match e {
        LogoutError::BadHint | LogoutError::ClientMismatch => (StatusCode::BAD_REQUEST, "err_bad_request", true),
        LogoutError::RedirectWithoutClient => (StatusCode::BAD_REQUEST, "err_post_logout_redirect_uri", true),
        LogoutError::UnregisteredRedirect => (StatusCode::BAD_REQUEST, "err_post_logout_redirect_uri", false),
        LogoutError::Server(_) => (StatusCode::INTERNAL_SERVER_ERROR, "err_server", false),
    }
}

/// The page for a refused logout request.
pub fn logout_refused(state: &AppState, lang: Lang, e: LogoutError) -> Failure {
    match e {
        LogoutError::Server(infra) => internal(state, lang, infra),
        e => {
            let (status, key, named) = logout_meaning(&e);
            page(state, lang, status, key, named.then(|| e.to_string()))
        }
    }
}

/// What a userinfo refusal means to the client (RFC 6750 §3.1); the description is the
/// error's own text.
impl From<UserinfoError> for Failure {
    fn from(e: UserinfoError) -> Self {
        let (status, code) = match &e {
            UserinfoError::Missing => return bearer_required(),
            UserinfoError::Server(infra) => return server_error(infra, "userinfo"),
            UserinfoError::Dpop(d) => return dpop_challenge(d.code(), &d.to_string()),
            UserinfoError::Twice => (StatusCode::BAD_REQUEST, "invalid_request"),
            UserinfoError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            UserinfoError::NotAPerson | UserinfoError::NoOpenid => (StatusCode::FORBIDDEN, "insufficient_scope"),
        };
        bearer(status, code, &e.to_string())
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
        dpop_nonce: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ephemeral::EphemeralError;

    fn parts(f: &Failure) -> (u16, String, Option<String>, Option<u32>) {
        let code = serde_json::from_str::<serde_json::Value>(&f.body).unwrap()["error"].as_str().unwrap().to_string();
        (f.status.as_u16(), code, f.www_authenticate.clone(), f.retry_after)
    }

    #[test]
    fn every_logout_refusal_has_a_4xx_page_in_both_languages() {
        let templates = crate::templates::Templates::new().unwrap();
        let refusals = [
            (LogoutError::BadHint, "err_bad_request", true),
            (LogoutError::ClientMismatch, "err_bad_request", true),
            (LogoutError::RedirectWithoutClient, "err_post_logout_redirect_uri", true),
            (LogoutError::UnregisteredRedirect, "err_post_logout_redirect_uri", false),
        ];
        for (e, key, named) in refusals {
            assert_eq!(logout_meaning(&e), (StatusCode::BAD_REQUEST, key, named), "{e:?}");
            for lang in [Lang::ZhTw, Lang::En] {
                let text = templates.text(lang, key);
                assert!(text != key && !text.is_empty(), "{key} has no {} text", lang.tag());
            }
        }
        let zh = templates.text(Lang::ZhTw, "err_post_logout_redirect_uri");
        assert!(zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "Chinese first: {zh}");
        let server = LogoutError::Server(InfraError::Internal("x".into()));
        assert_eq!(logout_meaning(&server).0, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn every_userinfo_error_has_its_status_code_and_challenge() {
        let table: Vec<(UserinfoError, u16, &str)> = vec![
            (UserinfoError::Missing, 401, "invalid_token"),
            (UserinfoError::Twice, 400, "invalid_request"),
            (UserinfoError::InvalidToken, 401, "invalid_token"),
            (UserinfoError::NotAPerson, 403, "insufficient_scope"),
            (UserinfoError::NoOpenid, 403, "insufficient_scope"),
            (UserinfoError::Server(InfraError::Internal("boom".into())), 500, "server_error"),
            (UserinfoError::Server(EphemeralError::Unavailable("down".into()).into()), 503, "temporarily_unavailable"),
        ];
        for (e, status, code) in table {
            let what = format!("{e:?}");
            let server = matches!(e, UserinfoError::Server(_));
            let missing = matches!(e, UserinfoError::Missing);
            let (s, c, challenge, retry) = parts(&Failure::from(e));
            assert_eq!((s, c.as_str()), (status, code), "{what}");
            match (server, missing) {
                (true, _) => assert_eq!(challenge, None, "{what}"),
                // RFC 6750 §3.1: no error code in the challenge when no token was sent at all.
                (false, true) => assert_eq!(challenge.as_deref(), Some("Bearer realm=\"idp\"")),
                (false, false) => assert!(challenge.unwrap().contains(&format!("error=\"{code}\"")), "{what}"),
            }
            assert_eq!(retry.is_some(), status == 503, "{what}: Retry-After only while a dependency is down");
        }
    }
}
