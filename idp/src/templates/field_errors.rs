//! Which form field a page's error message is about, so the page that comes back with the error
//! puts the keyboard focus on that field, marks it `aria-invalid` and points its
//! `aria-describedby` at the message (WCAG 3.3.1). A person using a screen reader then hears what
//! is wrong where they have to fix it, instead of having to find the field again from the top.
//!
//! Error keys are shared between pages (`err_email_invalid` on activation, 我的專區, the HR reset
//! and 忘記密碼), and the inputs they concern have the same `id` on every page, so one table serves
//! them all. Errors that concern no single field (a throttle, an expired form) are not listed: the
//! message alone is announced and the page's usual first field keeps the focus.

use handlebars::{Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason};
use serde_json::Value;

/// The `id` of the page's error message (`layout.hbs`), which invalid fields are described by.
pub const MESSAGE_ID: &str = "page-error";

/// Error key → the fields it concerns, in the order they appear on the page (the first one
/// gets the focus).
const FIELDS: &[(&str, &[&str])] = &[
    ("err_credentials", &["username", "password"]),
    ("err_account_format", &["account"]),
    ("err_account_like_national_id", &["account"]),
    ("err_account_taken", &["account"]),
    ("err_email_invalid", &["email"]),
    ("err_password_short", &["password"]),
    ("err_password_long", &["password"]),
    ("err_password_personal", &["password"]),
    ("err_password_common", &["password"]),
    ("err_password_mismatch", &["password_confirm"]),
    ("me_err_current_password", &["current_password"]),
    ("hr_err_national_id", &["national_id"]),
    ("forgot_err_national_id", &["national_id"]),
    ("err_identify_not_in_register", &["identifier"]),
    ("err_identify_not_owner", &["identifier"]),
    ("err_identify_password_required", &["password"]),
    ("err_announcement_title", &["title"]),
    ("err_announcement_body", &["body"]),
    ("err_announcement_time", &["published_at", "expires_at"]),
    ("err_announcement_expiry", &["expires_at"]),
    ("err_audit_date", &["from", "to"]),
];

/// The fields a page error concerns; empty for errors about the whole form.
pub fn fields_for(error_key: &str) -> &'static [&'static str] {
    FIELDS.iter().find(|(key, _)| *key == error_key).map(|(_, fields)| *fields).unwrap_or(&[])
}

/// `{{field "email" "email-help" autofocus=true}}` inside an `<input>` tag writes the field's
/// accessibility attributes: `aria-describedby` (the help text, and the page error when the field
/// is invalid), `aria-invalid`, and `autofocus` on the first invalid field — or, when no field
/// is invalid, on the field marked `autofocus=true` (the page's natural first field).
///
/// The invalid fields come from the root context's `invalid` list, which `Templates::render`
/// fills from the page's `error_key` with [`fields_for`].
pub fn helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    ctx: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let id = h.param(0).and_then(|p| p.value().as_str()).ok_or(RenderErrorReason::ParamNotFoundForIndex("field", 0))?;
    let help = h.param(1).and_then(|p| p.value().as_str());
    let wants_focus = h.hash_get("autofocus").is_some_and(|v| v.value().as_bool() == Some(true));
    let invalid: Vec<&str> = match ctx.data().get("invalid") {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    out.write(&attributes(id, help, wants_focus, &invalid))?;
    Ok(())
}

/// The attribute text for one field (leading space included), given the page's invalid fields.
/// Ids are written only when they are plain (letters, digits, `_`, `-`): they come from the
/// templates, never from input, and this keeps it so.
fn attributes(id: &str, help: Option<&str>, wants_focus: bool, invalid: &[&str]) -> String {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let help = help.filter(|h| plain(h));
    let mut attrs = String::new();
    let is_invalid = plain(id) && invalid.contains(&id);
    let described: Vec<&str> = is_invalid.then_some(MESSAGE_ID).into_iter().chain(help).collect();
    if !described.is_empty() {
        attrs.push_str(&format!(" aria-describedby=\"{}\"", described.join(" ")));
    }
    if is_invalid {
        attrs.push_str(" aria-invalid=\"true\"");
    }
    let focus = if invalid.is_empty() { wants_focus } else { is_invalid && invalid.first() == Some(&id) };
    if focus {
        attrs.push_str(" autofocus");
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_without_error_keeps_its_help_and_natural_focus() {
        assert_eq!(attributes("email", Some("email-help"), false, &[]), " aria-describedby=\"email-help\"");
        assert_eq!(attributes("username", None, true, &[]), " autofocus");
        assert_eq!(attributes("password", None, false, &[]), "");
    }

    #[test]
    fn the_first_invalid_field_takes_the_focus_from_the_natural_one() {
        let invalid = ["username", "password"];
        assert_eq!(
            attributes("username", None, true, &invalid),
            " aria-describedby=\"page-error\" aria-invalid=\"true\" autofocus"
        );
        assert_eq!(
            attributes("password", None, false, &invalid),
            " aria-describedby=\"page-error\" aria-invalid=\"true\""
        );
        // An error on a later field moves the focus away from the page's first field.
        assert_eq!(
            attributes("account", Some("account-help"), true, &["password"]),
            " aria-describedby=\"account-help\""
        );
        assert_eq!(
            attributes("password", Some("password-help"), false, &["password"]),
            " aria-describedby=\"page-error password-help\" aria-invalid=\"true\" autofocus"
        );
    }

    #[test]
    fn ids_that_are_not_plain_are_never_written() {
        assert_eq!(attributes("x\" onfocus=\"alert(1)", Some("a\"b"), false, &["x\" onfocus=\"alert(1)"]), "");
    }

    #[test]
    fn errors_about_the_whole_form_concern_no_field() {
        assert!(fields_for("err_throttled").is_empty());
        assert!(fields_for("err_csrf").is_empty());
        assert_eq!(fields_for("err_password_mismatch"), ["password_confirm"]);
    }

    /// A renamed input or message key would silently lose the focus: every listed key is a
    /// translated message, and every listed field is marked with the helper in some page.
    #[test]
    fn every_listed_key_is_translated_and_every_field_is_on_a_page() {
        let zh: serde_json::Map<String, Value> =
            serde_json::from_str(include_str!("../../../templates/i18n/zh-TW.json")).unwrap();
        for (key, fields) in FIELDS {
            assert!(zh.contains_key(*key), "{key} is not a message");
            for field in *fields {
                let marked = format!("{{{{field \"{field}\"");
                assert!(
                    super::super::PAGES.iter().any(|(_, source)| source.contains(&marked)),
                    "no page marks {field} ({key})"
                );
            }
        }
    }
}
