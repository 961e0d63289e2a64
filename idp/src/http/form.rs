//! The one way a handler reads a posted form.
//!
//! ```ignore
//! let form = CheckedForm::read(&req, &body)?; // 413 / 400 / 403 pages on failure
//! let email = form.text("email");        // identifiers and text: surrounding whitespace trimmed
//! let password = form.secret("password"); // passwords, PINs, codes, tokens: exactly as sent
//! ```
//!
//! Reading checks, in this order: the body size ([`MAX_BODY`], or [`MAX_UPLOAD`] for
//! [`CheckedForm::read_upload`]), the form encoding and per-value limits of [`Params`], that no
//! field is repeated (a repeated field is refused, never "first/last wins"), and the CSRF token
//! (`csrf_token`, double submit, constant-time). A handler that needs the person's role first
//! (operator pages) checks it before reading the form, so nobody else learns how forms fail.

use actix_web::HttpRequest;

use super::csrf;
use crate::oidc::params::{ParamError, Params};

/// The largest request body (forms and token requests are small); the server refuses larger
/// ones with 413 before any handler runs.
pub const MAX_BODY: usize = 64 * 1024;
/// The largest upload form (a CSV import): its file field may be this long.
pub const MAX_UPLOAD: usize = 32 * 1024 * 1024;

/// Why a posted form was refused (what each means to the person is in [`super::errors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    TooLarge,
    Malformed(ParamError),
    Repeated(String),
    Csrf,
}

/// A posted form whose size, encoding, uniqueness of fields and CSRF token have been checked.
#[derive(Debug, Clone)]
pub struct CheckedForm(Params);

impl CheckedForm {
    /// Reads an ordinary form; a refusal becomes a page in the request's language through the
    /// one error mapping (`?` in a handler).
    pub fn read(req: &HttpRequest, body: &[u8]) -> Result<Self, FormError> {
        Self::check(body, MAX_BODY, None, |submitted| csrf::verify(req, submitted))
    }

    /// Reads a form that carries one file field (`file`), which alone may exceed the per-value
    /// limit of protocol parameters, up to [`MAX_UPLOAD`].
    pub fn read_upload(req: &HttpRequest, body: &[u8], file: &str) -> Result<Self, FormError> {
        Self::check(body, MAX_UPLOAD, Some(file), |submitted| csrf::verify(req, submitted))
    }

    /// The checks themselves, with the CSRF comparison passed in (so they can be tested alone).
    pub fn check(
        body: &[u8],
        max_body: usize,
        file: Option<&str>,
        csrf_ok: impl FnOnce(Option<&str>) -> bool,
    ) -> Result<Self, FormError> {
        if body.len() > max_body {
            return Err(FormError::TooLarge);
        }
        let params = match file {
            None => Params::parse(body),
            Some(file) => Params::parse_with_file(body, file, max_body),
        }
        .map_err(FormError::Malformed)?;
        if let Some(name) = params.first_duplicate() {
            return Err(FormError::Repeated(name.chars().take(64).collect()));
        }
        let token = params.get("csrf_token").ok().flatten();
        if !csrf_ok(token) {
            return Err(FormError::Csrf);
        }
        Ok(Self(params))
    }

    /// An identifier or a line of text: surrounding whitespace trimmed; absent reads as "".
    pub fn text(&self, name: &str) -> String {
        self.raw(name).trim().to_string()
    }

    /// A password, PIN, one-time code, bearer token or uploaded file: exactly as sent
    /// (whitespace can be part of a secret); absent reads as "".
    pub fn secret(&self, name: &str) -> String {
        self.raw(name).to_string()
    }

    /// Whether the field came back with a value (a ticked box).
    pub fn is_set(&self, name: &str) -> bool {
        !self.raw(name).is_empty()
    }

    fn raw(&self, name: &str) -> &str {
        // Repeated fields were refused when the form was read, so `get` cannot fail here.
        self.0.get(name).ok().flatten().unwrap_or("")
    }

    /// A form built without the checks, for unit tests of what handlers do with one.
    #[cfg(test)]
    pub fn unchecked(body: &str) -> Self {
        Self(Params::parse(body.as_bytes()).expect("test form"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn check(body: &str) -> Result<CheckedForm, FormError> {
        CheckedForm::check(body.as_bytes(), MAX_BODY, None, |t| t == Some(TOKEN))
    }

    #[test]
    fn text_is_trimmed_and_secrets_are_not() {
        let f = check(&format!("csrf_token={TOKEN}&email=+a%40b.tw%09&password=+pw+&pin=%201234")).unwrap();
        assert_eq!(f.text("email"), "a@b.tw");
        assert_eq!(f.secret("password"), " pw ");
        assert_eq!(f.secret("pin"), " 1234");
        assert_eq!(f.text("absent"), "");
        assert_eq!(f.secret("absent"), "");
        assert!(f.is_set("email"));
        assert!(!f.is_set("absent"));
    }

    #[test]
    fn a_missing_or_wrong_csrf_token_is_refused() {
        assert_eq!(check("email=a").unwrap_err(), FormError::Csrf);
        assert_eq!(check("csrf_token=guess&email=a").unwrap_err(), FormError::Csrf);
        assert_eq!(check("csrf_token=&email=a").unwrap_err(), FormError::Csrf);
    }

    #[test]
    fn a_repeated_field_is_refused_even_the_csrf_token() {
        let e = check(&format!("csrf_token={TOKEN}&decision=deny&decision=allow")).unwrap_err();
        assert_eq!(e, FormError::Repeated("decision".into()));
        let e = check(&format!("csrf_token={TOKEN}&csrf_token={TOKEN}")).unwrap_err();
        assert_eq!(e, FormError::Repeated("csrf_token".into()));
    }

    #[test]
    fn size_and_encoding_are_checked_before_the_token() {
        let big = format!("csrf_token={TOKEN}&x={}", "a".repeat(MAX_BODY));
        assert_eq!(check(&big).unwrap_err(), FormError::TooLarge);
        assert_eq!(check("x=%ff").unwrap_err(), FormError::Malformed(ParamError::Encoding));
        let long = format!("csrf_token={TOKEN}&x={}", "a".repeat(crate::oidc::params::MAX_VALUE + 1));
        assert!(matches!(check(&long).unwrap_err(), FormError::Malformed(ParamError::TooLong(_))));
    }

    #[test]
    fn only_the_named_file_field_of_an_upload_may_be_long() {
        let csv = "a".repeat(crate::oidc::params::MAX_VALUE * 4);
        let upload = |body: &str| CheckedForm::check(body.as_bytes(), MAX_UPLOAD, Some("csv"), |t| t == Some(TOKEN));
        let f = upload(&format!("csrf_token={TOKEN}&csv={csv}")).unwrap();
        assert_eq!(f.secret("csv").len(), csv.len());
        assert!(matches!(upload(&format!("csrf_token={TOKEN}&other={csv}")), Err(FormError::Malformed(_))));
        assert!(matches!(upload(&format!("csrf_token={TOKEN}&csv=1&csv=2")), Err(FormError::Repeated(_))));
    }
}
