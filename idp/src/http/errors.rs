//! The one place where failures become HTTP responses: what each domain error means to a person
//! (status, page text, whether the page names the reason) and to a client (status, RFC 6749 /
//! 6750 error code, challenge), and which refusals are audited with what outcome. Handlers
//! only write `?`.
//!
//! Why `From<DomainError> for Failure` and not a trait that takes the language: a page's
//! language and the navigation of the person looking at it belong to the request, not to the
//! error, and the navigation needs a session lookup that a synchronous conversion cannot make.
//! So a [`Failure`] for a person only *describes* its page (status, message key, detail); the
//! handler's language (remembered by [`super::lang_of`]) and the signed-in person's navigation
//! are added when the response leaves the application, in [`super::error_pages`]. Client-facing
//! failures (JSON, redirects) are complete when they are made.
//!
//! Internal errors are logged (without personal data) and shown as a generic message. A
//! dependency that is down or not answering ([`InfraError::unavailable`]) is never a 500: it is
//! a 503 with `Retry-After` — the 系統暫時無法使用 page for people, `temporarily_unavailable`
//! for clients.

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::form::FormError;
use crate::crypto::CryptoError;
use crate::error::InfraError;
use crate::oidc::clients::ClientError;
use crate::oidc::logout::LogoutError;
use crate::oidc::params::ParamError;
use crate::oidc::registration::RegistrationError;
use crate::oidc::token::TokenError;
use crate::oidc::transaction::TransactionError;
use crate::oidc::userinfo::UserinfoError;
use crate::store::db::DbError;
use crate::store::ephemeral::EphemeralError;

/// A response that ends a request early. Boxed: it is the error of every handler's `Result`,
/// which stays one pointer wide on the success path.
#[derive(Debug)]
pub struct Failure(Box<Parts>);

/// What a [`Failure`] answers with.
#[derive(Debug)]
pub struct Parts {
    status: StatusCode,
    body: Body,
    www_authenticate: Option<String>,
    location: Option<String>,
    retry_after: Option<u32>,
    /// The server's DPoP nonce (RFC 9449 §8), sent as `DPoP-Nonce`.
    dpop_nonce: Option<String>,
    /// The outcome a refusal is audited with (see [`Failure::audited`]), if it is one.
    audit: Option<&'static str>,
}

/// What a failure's body is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    /// A page for a person, rendered in the request's language with the viewer's navigation.
    Page(PageText),
    /// RFC 6749 §5.2 JSON for a client.
    Json(String),
    /// Nothing (a redirect).
    Empty,
}

/// The words of an error page, as message keys of the translations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageText {
    /// The page's heading.
    pub title_key: &'static str,
    /// What went wrong, in the person's words.
    pub key: &'static str,
    /// The technical reason, shown to the relying party's developer where it helps (never
    /// personal data).
    pub detail: Option<String>,
}

/// What `Retry-After` says while a dependency is down: long enough not to hammer a node that is
/// waiting for its database, short enough that people are not kept away after it is back.
pub const RETRY_AFTER_SECS: u32 = 5;

impl std::ops::Deref for Failure {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl std::ops::DerefMut for Failure {
    fn deref_mut(&mut self) -> &mut Parts {
        &mut self.0
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    /// The response without its page: [`super::error_pages`] replaces the body of a page
    /// failure with the rendered page (the message key stands in for it until then).
    fn error_response(&self) -> HttpResponse {
        match &self.body {
            Body::Page(text) => self.respond("text/html; charset=utf-8", text.key.to_string()),
            Body::Json(json) => self.respond("application/json", json.clone()),
            Body::Empty => self.respond("text/plain", String::new()),
        }
    }
}

impl Failure {
    fn new(status: StatusCode, body: Body) -> Self {
        Failure(Box::new(Parts {
            status,
            body,
            www_authenticate: None,
            location: None,
            retry_after: None,
            dpop_nonce: None,
            audit: None,
        }))
    }

    /// An error page: `status` with the message `key` (and the technical `detail`), rendered in
    /// the request's language.
    pub fn page(status: StatusCode, key: &'static str, detail: Option<String>) -> Self {
        Self::new(status, Body::Page(PageText { title_key: "error_title", key, detail }))
    }

    /// 404 「找不到此頁面」.
    pub fn not_found() -> Self {
        Self::page(StatusCode::NOT_FOUND, "err_not_found", None)
    }

    /// Ends the request with a redirect (e.g. to the sign-in page).
    pub fn redirect(location: &str) -> Self {
        let mut f = Self::new(StatusCode::SEE_OTHER, Body::Empty);
        f.location = Some(location.to_string());
        f
    }

    /// Whether this is the answer for a dependency that is down (so a caller that knows a
    /// trusted redirect URI can send the error there instead).
    pub fn is_unavailable(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE && self.retry_after.is_some()
    }

    /// The status this failure answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The page this failure shows a person, if it is a page.
    pub fn page_text(&self) -> Option<&PageText> {
        match &self.body {
            Body::Page(text) => Some(text),
            _ => None,
        }
    }

    /// The response for this failure with `body` (the rendered page) as its body.
    pub fn respond(&self, content_type: &str, body: String) -> HttpResponse {
        let mut r = HttpResponse::build(self.status);
        r.content_type(content_type).insert_header((header::CACHE_CONTROL, "no-store"));
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
        r.body(body)
    }

    /// Records the refusal in the audit log under `event` when the mapping says it is audited
    /// (e.g. a failed client authentication), then hands the failure on.
    pub async fn audited(self, state: &crate::state::AppState, event: &'static str, address: String) -> Self {
        if let Some(outcome) = self.audit {
            super::audit_request(state, event, outcome, None, address).await;
        }
        self
    }

    fn audit_as(mut self, outcome: &'static str) -> Self {
        self.audit = Some(outcome);
        self
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
    let algs = crate::oidc::DPOP_ALGORITHMS.join(" ");
    f.www_authenticate = Some(format!("DPoP error=\"{error}\", error_description=\"{description}\", algs=\"{algs}\""));
    f
}

/// An infrastructure failure, for a person: 503 系統暫時無法使用 (with `Retry-After`) when a
/// dependency is down or not answering, else 500. Logged here, once, without personal data.
impl From<InfraError> for Failure {
    fn from(e: InfraError) -> Self {
        crate::metrics::dependency_error(e.dependency());
        match e.unavailable() {
            Some(dependency) => {
                tracing::warn!(dependency, error = %e, "dependency unavailable");
                unavailable_page()
            }
            None => {
                tracing::error!(error = %e, "internal error");
                Failure::page(StatusCode::INTERNAL_SERVER_ERROR, "err_server", None)
            }
        }
    }
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        InfraError::from(e).into()
    }
}

impl From<EphemeralError> for Failure {
    fn from(e: EphemeralError) -> Self {
        InfraError::from(e).into()
    }
}

impl From<CryptoError> for Failure {
    fn from(e: CryptoError) -> Self {
        InfraError::from(e).into()
    }
}

/// A response header that could not be built (a cookie the handler made): a server error.
impl From<actix_web::error::HttpError> for Failure {
    fn from(e: actix_web::error::HttpError) -> Self {
        InfraError::Internal(format!("response header: {e}")).into()
    }
}

/// 503 系統暫時無法使用，請稍後再試 with `Retry-After`. Rendered from the embedded templates
/// alone (and without looking up the viewer), so it needs none of the dependencies that are down.
fn unavailable_page() -> Failure {
    let text = PageText { title_key: "unavailable_title", key: "err_unavailable", detail: None };
    let mut f = Failure::new(StatusCode::SERVICE_UNAVAILABLE, Body::Page(text));
    f.retry_after = Some(RETRY_AFTER_SECS);
    f
}

/// The JSON answer of a client-facing endpoint (token, userinfo, introspection, revocation,
/// registration) for an infrastructure failure: 503 `temporarily_unavailable` with
/// `Retry-After` when a dependency is down, else 500 `server_error`.
pub fn server_error(e: &InfraError, endpoint: &'static str) -> Failure {
    crate::metrics::dependency_error(e.dependency());
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

/// A request whose parameters cannot be read (bad encoding, a repeated or over-long value): 400
/// with the reason, for the relying party's developer.
impl From<ParamError> for Failure {
    fn from(e: ParamError) -> Self {
        Failure::page(StatusCode::BAD_REQUEST, "err_bad_request", Some(e.to_string()))
    }
}

/// A posted form that was refused before the handler read it: 413 too large, 400 malformed or
/// a repeated field (named), 403 a missing or wrong CSRF token.
impl From<FormError> for Failure {
    fn from(e: FormError) -> Self {
        match e {
            FormError::TooLarge => Failure::page(StatusCode::PAYLOAD_TOO_LARGE, "err_too_large", None),
            FormError::Malformed(p) => p.into(),
            FormError::Repeated(name) => ParamError::Duplicate(name).into(),
            FormError::Csrf => Failure::page(StatusCode::FORBIDDEN, "err_csrf", None),
        }
    }
}

/// A login transaction that cannot be continued: 400 「登入作業已逾時」 when it is gone.
impl From<TransactionError> for Failure {
    fn from(e: TransactionError) -> Self {
        match e {
            TransactionError::Gone => Failure::page(StatusCode::BAD_REQUEST, "err_tx", None),
            TransactionError::Infra(e) => e.into(),
        }
    }
}

/// What a refused logout means to the person: status, page text, and whether the page names
/// the reason (for the relying party's developer; an unregistered redirect is not repeated).
fn logout_meaning(e: &LogoutError) -> (StatusCode, &'static str, bool) {
    match e {
        LogoutError::BadHint | LogoutError::ClientMismatch => (StatusCode::BAD_REQUEST, "err_bad_request", true),
        LogoutError::RedirectWithoutClient => (StatusCode::BAD_REQUEST, "err_post_logout_redirect_uri", true),
        LogoutError::UnregisteredRedirect => (StatusCode::BAD_REQUEST, "err_post_logout_redirect_uri", false),
        LogoutError::Server(_) => (StatusCode::INTERNAL_SERVER_ERROR, "err_server", false),
    }
}

/// A refused logout request (see [`logout_meaning`]).
impl From<LogoutError> for Failure {
    fn from(e: LogoutError) -> Self {
        match e {
            LogoutError::Server(infra) => infra.into(),
            e => {
                let (status, key, named) = logout_meaning(&e);
                Failure::page(status, key, named.then(|| e.to_string()))
            }
        }
    }
}

/// A refusal of the token, introspection or revocation endpoint (RFC 6749 §5.2). A failed
/// client authentication is audited (outcome `failure`): guessing secrets is worth knowing about.
impl From<TokenError> for Failure {
    fn from(e: TokenError) -> Self {
        let description = match e {
            TokenError::InvalidClient { description, basic } => {
                return invalid_client(&description, basic).audit_as("failure")
            }
            TokenError::Server(e) => return server_error(&e, "token"),
            TokenError::InvalidRequest(ref d)
            | TokenError::InvalidGrant(ref d)
            | TokenError::InvalidScope(ref d)
            | TokenError::InvalidTarget(ref d)
            | TokenError::UnauthorizedClient(ref d) => d.clone(),
            TokenError::UnsupportedGrantType => "grant_type is not supported".into(),
            TokenError::Dpop(ref d) => d.to_string(),
            TokenError::Authorization { ref description, .. } => description.clone(),
        };
        oauth(StatusCode::BAD_REQUEST, e.code(), &description)
    }
}

/// A refused registration or management request (RFC 7591 §3.2.2, RFC 7592), audited with
/// its outcome; the description never carries the token.
impl From<RegistrationError> for Failure {
    fn from(e: RegistrationError) -> Self {
        match e {
            RegistrationError::InvalidToken => invalid_token().audit_as("invalid_token"),
            RegistrationError::InvalidRequest(d) => {
                oauth(StatusCode::BAD_REQUEST, "invalid_request", &ascii_description(&d)).audit_as("invalid_request")
            }
            RegistrationError::Client(ClientError::RedirectUri(d)) => {
                oauth(StatusCode::BAD_REQUEST, "invalid_redirect_uri", &ascii_description(&d))
                    .audit_as("invalid_metadata")
            }
            RegistrationError::Client(ClientError::Metadata(d)) => {
                oauth(StatusCode::BAD_REQUEST, "invalid_client_metadata", &ascii_description(&d))
                    .audit_as("invalid_metadata")
            }
            RegistrationError::Client(ClientError::Infra(e)) => server_error(&e, "registration"),
            RegistrationError::Client(e @ ClientError::Exists(_)) => {
                tracing::error!(error = %e, "client registration failed");
                oauth(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the request could not be completed")
            }
        }
    }
}

/// RFC 6749 §5.2 limits `error_description` to printable ASCII without `"` and `\`; metadata
/// errors may quote what the client sent, so anything else is replaced.
fn ascii_description(text: &str) -> String {
    text.chars()
        .take(300)
        .map(|c| match c {
            '–' | '—' => '-',
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
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
    Failure::new(status, Body::Json(body))
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

/// RFC 6750 `invalid_token` for a registration or management token that is malformed, unknown,
/// used, expired or not this client's (deliberately one answer: callers must not learn which).
pub fn invalid_token() -> Failure {
    bearer(StatusCode::UNAUTHORIZED, "invalid_token", "the access token is invalid, used or expired")
}

/// The challenge for a request that carried no token at all (RFC 6750 §3.1: no error code).
pub fn bearer_required() -> Failure {
    let mut f = oauth(StatusCode::UNAUTHORIZED, "invalid_token", "a bearer token is required");
    f.www_authenticate = Some("Bearer realm=\"idp\"".into());
    f
}

#[cfg(test)]
mod tests {
    //! The mapping table: one row per variant of every domain error that reaches a handler. Each
    //! table starts with a `match` that names every variant without a wildcard, so a new variant
    //! does not compile until it has its row here.

    use super::*;
    use crate::oidc::dpop::DpopError;

    /// A row of the token table: error, status, code, challenge, audit outcome.
    type TokenRow = (TokenError, u16, &'static str, Option<&'static str>, Option<&'static str>);

    /// (status, OAuth error code, challenge, Retry-After, audit outcome) of a client failure.
    fn client(f: &Failure) -> (u16, String, Option<String>, Option<u32>, Option<&'static str>) {
        let Body::Json(body) = &f.body else { panic!("{f:?} is not JSON") };
        let code = serde_json::from_str::<serde_json::Value>(body).unwrap()["error"].as_str().unwrap().to_string();
        (f.status.as_u16(), code, f.www_authenticate.clone(), f.retry_after, f.audit)
    }

    /// (status, message key, detail) of a page failure, after checking that the key has words in
    /// both languages, Chinese first.
    fn page(f: &Failure) -> (u16, &'static str, Option<String>) {
        let text = f.page_text().unwrap_or_else(|| panic!("{f:?} is not a page"));
        let templates = crate::templates::Templates::new().unwrap();
        for key in [text.key, text.title_key] {
            for lang in [crate::templates::Lang::ZhTw, crate::templates::Lang::En] {
                let words = templates.text(lang, key);
                assert!(words != key && !words.is_empty(), "{key} has no {} text", lang.tag());
            }
            let zh = templates.text(crate::templates::Lang::ZhTw, key);
            assert!(zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "Chinese first: {zh}");
        }
        (f.status.as_u16(), text.key, text.detail.clone())
    }

    fn down() -> InfraError {
        EphemeralError::Unavailable("down".into()).into()
    }

    #[test]
    fn infrastructure_is_500_or_503_with_retry_after_never_blaming_the_person() {
        let f = Failure::from(InfraError::Internal("boom".into()));
        assert_eq!(page(&f), (500, "err_server", None));
        assert_eq!(f.retry_after, None);
        let f = Failure::from(down());
        assert_eq!(page(&f), (503, "err_unavailable", None));
        assert_eq!(f.page_text().unwrap().title_key, "unavailable_title");
        assert_eq!(f.retry_after, Some(RETRY_AFTER_SECS));
        assert!(f.is_unavailable());
        let f = Failure::from(EphemeralError::Unavailable("down".into()));
        assert!(f.is_unavailable(), "the ephemeral store's own error converts alike");
        for (e, status, code) in
            [(InfraError::Internal("x".into()), 500, "server_error"), (down(), 503, "temporarily_unavailable")]
        {
            let (s, c, challenge, retry, audit) = client(&server_error(&e, "token"));
            assert_eq!((s, c.as_str(), challenge, audit), (status, code, None, None));
            assert_eq!(retry.is_some(), status == 503);
        }
    }

    #[test]
    fn every_form_refusal_has_its_page() {
        let rows = [
            (FormError::TooLarge, 413, "err_too_large", false),
            (FormError::Malformed(ParamError::Encoding), 400, "err_bad_request", true),
            (FormError::Repeated("decision".into()), 400, "err_bad_request", true),
            (FormError::Csrf, 403, "err_csrf", false),
        ];
        for (e, status, key, detailed) in rows {
            match &e {
                FormError::TooLarge | FormError::Malformed(_) | FormError::Repeated(_) | FormError::Csrf => {}
            }
            let what = format!("{e:?}");
            let (s, k, detail) = page(&Failure::from(e));
            assert_eq!((s, k, detail.is_some()), (status, key, detailed), "{what}");
        }
        let (_, _, detail) = page(&Failure::from(FormError::Repeated("decision".into())));
        assert!(detail.unwrap().contains("decision"), "the repeated field is named");
    }

    #[test]
    fn a_gone_transaction_is_400_and_its_store_failing_is_not_the_persons_fault() {
        for (e, status, key) in [
            (TransactionError::Gone, 400, "err_tx"),
            (TransactionError::Infra(InfraError::Internal("x".into())), 500, "err_server"),
            (TransactionError::Infra(down()), 503, "err_unavailable"),
        ] {
            match &e {
                TransactionError::Gone | TransactionError::Infra(_) => {}
            }
            assert_eq!(page(&Failure::from(e)), (status, key, None));
        }
    }

    #[test]
    fn every_logout_refusal_has_a_4xx_page_in_both_languages() {
        let refusals = [
            (LogoutError::BadHint, "err_bad_request", true),
            (LogoutError::ClientMismatch, "err_bad_request", true),
            (LogoutError::RedirectWithoutClient, "err_post_logout_redirect_uri", true),
            (LogoutError::UnregisteredRedirect, "err_post_logout_redirect_uri", false),
            (LogoutError::Server(InfraError::Internal("x".into())), "err_server", false),
        ];
        for (e, key, named) in refusals {
            match &e {
                LogoutError::BadHint
                | LogoutError::ClientMismatch
                | LogoutError::RedirectWithoutClient
                | LogoutError::UnregisteredRedirect
                | LogoutError::Server(_) => {}
            }
            let server = matches!(e, LogoutError::Server(_));
            let text = e.to_string();
            let (status, k, detail) = page(&Failure::from(e));
            assert_eq!((status, k), (if server { 500 } else { 400 }, key), "{text}");
            assert_eq!(detail, named.then_some(text));
        }
        assert_eq!(page(&Failure::from(LogoutError::Server(down()))).0, 503);
    }

    #[test]
    fn a_bad_parameter_is_400_with_the_reason() {
        let (status, key, detail) = page(&Failure::from(ParamError::Duplicate("scope".into())));
        assert_eq!((status, key), (400, "err_bad_request"));
        assert!(detail.unwrap().contains("scope"));
    }

    #[test]
    fn every_userinfo_error_has_its_status_code_and_challenge() {
        let table: Vec<(UserinfoError, u16, &str)> = vec![
            (UserinfoError::Missing, 401, "invalid_token"),
            (UserinfoError::Twice, 400, "invalid_request"),
            (UserinfoError::InvalidToken, 401, "invalid_token"),
            (UserinfoError::NotAPerson, 403, "insufficient_scope"),
            (UserinfoError::NoOpenid, 403, "insufficient_scope"),
            (UserinfoError::Dpop(DpopError::Invalid("why".into())), 401, "invalid_dpop_proof"),
            (UserinfoError::Dpop(DpopError::UseNonce), 401, "use_dpop_nonce"),
            (UserinfoError::Server(InfraError::Internal("boom".into())), 500, "server_error"),
            (UserinfoError::Server(down()), 503, "temporarily_unavailable"),
        ];
        for (e, status, code) in table {
            match &e {
                UserinfoError::Missing
                | UserinfoError::Twice
                | UserinfoError::InvalidToken
                | UserinfoError::NotAPerson
                | UserinfoError::NoOpenid
                | UserinfoError::Dpop(_)
                | UserinfoError::Server(_) => {}
            }
            let what = format!("{e:?}");
            let server = matches!(e, UserinfoError::Server(_));
            let missing = matches!(e, UserinfoError::Missing);
            let (s, c, challenge, retry, audit) = client(&Failure::from(e));
            assert_eq!((s, c.as_str(), audit), (status, code, None), "{what}");
            match (server, missing) {
                (true, _) => assert_eq!(challenge, None, "{what}"),
                // RFC 6750 §3.1: no error code in the challenge when no token was sent at all.
                (false, true) => assert_eq!(challenge.as_deref(), Some("Bearer realm=\"idp\"")),
                (false, false) => assert!(challenge.unwrap().contains(&format!("error=\"{code}\"")), "{what}"),
            }
            assert_eq!(retry.is_some(), status == 503, "{what}: Retry-After only while a dependency is down");
        }
    }

    #[test]
    fn every_token_error_has_its_code_and_only_client_authentication_is_audited() {
        let d = || "why".to_string();
        let table: Vec<TokenRow> = vec![
            (TokenError::InvalidRequest(d()), 400, "invalid_request", None, None),
            (
                TokenError::InvalidClient { description: d(), basic: false },
                401,
                "invalid_client",
                None,
                Some("failure"),
            ),
            (
                TokenError::InvalidClient { description: d(), basic: true },
                401,
                "invalid_client",
                Some("Basic realm=\"idp\""),
                Some("failure"),
            ),
            (TokenError::InvalidGrant(d()), 400, "invalid_grant", None, None),
            (TokenError::InvalidScope(d()), 400, "invalid_scope", None, None),
            (TokenError::InvalidTarget(d()), 400, "invalid_target", None, None),
            (TokenError::UnauthorizedClient(d()), 400, "unauthorized_client", None, None),
            (TokenError::UnsupportedGrantType, 400, "unsupported_grant_type", None, None),
            (TokenError::Dpop(DpopError::Invalid(d())), 400, "invalid_dpop_proof", None, None),
            (TokenError::Dpop(DpopError::UseNonce), 400, "use_dpop_nonce", None, None),
            (TokenError::Authorization { error: "invalid_scope", description: d() }, 400, "invalid_scope", None, None),
            (TokenError::Server(InfraError::Internal("x".into())), 500, "server_error", None, None),
            (TokenError::Server(down()), 503, "temporarily_unavailable", None, None),
        ];
        for (e, status, code, challenge, audited) in table {
            match &e {
                TokenError::InvalidRequest(_)
                | TokenError::InvalidClient { .. }
                | TokenError::InvalidGrant(_)
                | TokenError::InvalidScope(_)
                | TokenError::InvalidTarget(_)
                | TokenError::UnauthorizedClient(_)
                | TokenError::UnsupportedGrantType
                | TokenError::Dpop(_)
                | TokenError::Authorization { .. }
                | TokenError::Server(_) => {}
            }
            let what = format!("{e:?}");
            let (s, c, ch, retry, audit) = client(&Failure::from(e));
            assert_eq!((s, c.as_str(), ch.as_deref(), audit), (status, code, challenge, audited), "{what}");
            assert_eq!(retry.is_some(), status == 503, "{what}");
        }
    }

    #[test]
    fn every_registration_refusal_has_its_code_and_audit_outcome() {
        let table: Vec<(RegistrationError, u16, &str, Option<&str>)> = vec![
            (RegistrationError::InvalidToken, 401, "invalid_token", Some("invalid_token")),
            (RegistrationError::InvalidRequest("x".into()), 400, "invalid_request", Some("invalid_request")),
            (ClientError::RedirectUri("x".into()).into(), 400, "invalid_redirect_uri", Some("invalid_metadata")),
            (ClientError::Metadata("x".into()).into(), 400, "invalid_client_metadata", Some("invalid_metadata")),
            (ClientError::Exists("x".into()).into(), 500, "server_error", None),
            (ClientError::Infra(InfraError::Internal("x".into())).into(), 500, "server_error", None),
            (ClientError::Infra(down()).into(), 503, "temporarily_unavailable", None),
        ];
        for (e, status, code, audited) in table {
            match &e {
                RegistrationError::InvalidToken
                | RegistrationError::InvalidRequest(_)
                | RegistrationError::Client(
                    ClientError::RedirectUri(_)
                    | ClientError::Metadata(_)
                    | ClientError::Exists(_)
                    | ClientError::Infra(_),
                ) => {}
            }
            let what = format!("{e:?}");
            let (s, c, challenge, _, audit) = client(&Failure::from(e));
            assert_eq!((s, c.as_str(), audit), (status, code, audited), "{what}");
            assert_eq!(challenge.is_some(), code == "invalid_token", "{what}: RFC 6750 challenge");
        }
        let quoted = ClientError::Metadata("“név” — \"x\\y\"".into());
        let f = Failure::from(RegistrationError::from(quoted));
        let Body::Json(body) = &f.body else { unreachable!() };
        let description = serde_json::from_str::<serde_json::Value>(body).unwrap()["error_description"].clone();
        assert_eq!(description, json!("?n?v? - 'x'y'"), "RFC 6749 §5.2: printable ASCII without quote or backslash");
    }

    #[test]
    fn a_redirect_keeps_its_location_and_has_no_page() {
        let f = Failure::redirect("/login");
        assert_eq!((f.status(), f.location.as_deref(), f.page_text()), (StatusCode::SEE_OTHER, Some("/login"), None));
        assert_eq!(page(&Failure::not_found()), (404, "err_not_found", None));
    }
}
