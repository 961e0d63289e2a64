//! CSRF protection for every form: a random token in an HttpOnly cookie that the form must echo
//! (double submit), compared in constant time. Stateless, so any node can check it.

use actix_web::cookie::Cookie;
use actix_web::HttpRequest;

use crate::crypto::{constant_time_eq, random_token};
use crate::state::AppState;

const CSRF_COOKIE: &str = "idp_csrf";

/// The token for a form, and the cookie to set if the browser had none.
pub fn token(state: &AppState, req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    match req.cookie(CSRF_COOKIE) {
        Some(c) if c.value().len() >= 32 => (c.value().to_string(), None),
        _ => {
            let t = random_token(32);
            let c = super::cookie(state, CSRF_COOKIE, t.clone(), None);
            (t, Some(c))
        }
    }
}

/// Whether the submitted token matches the cookie.
pub fn verify(req: &HttpRequest, submitted: Option<&str>) -> bool {
    match (req.cookie(CSRF_COOKIE), submitted) {
        (Some(c), Some(s)) if c.value().len() >= 32 => constant_time_eq(c.value().as_bytes(), s.as_bytes()),
        _ => false,
    }
}
