//! The language switch on a page that answers a POST. The switch is a link (`?ui_locales=…`
//! relative to the page's URL), so on a POST's answer it would fetch the POST's URL with GET:
//! for a form that also has a GET page that is the form again, in the other language; for a
//! POST-only path it would be a dead end, and it must never repeat the POST. So a POST to a
//! POST-only path switches language on the page the form belongs to: 重設員工密碼's steps on
//! its search page, a client's actions on the client's page, 我的專區's forms on 我的專區, a card
//! sign-in on the sign-in page, a sign-out on the home page.

use actix_web::http::Method;
use serde_json::{Map, Value};

tokio::task_local! {
    /// The page a POST being answered belongs to, for the layout's language switch.
    static FORM_PAGE: Option<String>;
}

/// The GET page a POST to `path` belongs to, when `path` has no GET page of its own that
/// shows the same form (or shows something else, as `/logout`'s confirmation).
pub fn form_page(method: &Method, path: &str) -> Option<String> {
    if method != Method::POST {
        return None;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let page = match segments.as_slice() {
        ["hr", "reset-password", "search" | "confirm" | "issue"] => "/hr/reset-password".to_string(),
        ["admin", "clients", _, "delete"] => "/admin/clients".to_string(),
        ["admin", "clients", id, "secret" | "state"] => format!("/admin/clients/{id}"),
        ["admin", "announcements", _, "expire"] => "/admin/announcements".to_string(),
        ["admin", "imports", _] => "/admin/imports".to_string(),
        ["admin", "keys", "rotate"] => "/admin/keys".to_string(),
        ["me", _, ..] => "/me".to_string(),
        ["card", "login" | "health"] => "/login".to_string(),
        ["logout"] => "/".to_string(),
        _ => return None,
    };
    Some(page)
}

/// Runs `fut` (a request being answered) with the page its form belongs to at hand.
pub async fn scope<F: std::future::Future>(page: Option<String>, fut: F) -> F::Output {
    FORM_PAGE.scope(page, fut).await
}

/// Points the layout's language switch at the form's page when this page answers a POST to a
/// POST-only path; other pages keep their own switch.
pub fn apply(ctx: &mut Map<String, Value>, other_lang: &str) {
    if ctx.contains_key("switch_href") {
        return;
    }
    if let Ok(Some(page)) = FORM_PAGE.try_with(|p| p.clone()) {
        ctx.insert("switch_href".into(), Value::String(format!("{page}?ui_locales={other_lang}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_only_paths_switch_language_on_their_forms_page_and_nothing_else_moves() {
        for (path, page) in [
            ("/hr/reset-password/search", Some("/hr/reset-password")),
            ("/hr/reset-password/issue", Some("/hr/reset-password")),
            ("/admin/clients/abc/secret", Some("/admin/clients/abc")),
            ("/admin/clients/abc/delete", Some("/admin/clients")),
            ("/admin/imports/register", Some("/admin/imports")),
            ("/me/password", Some("/me")),
            ("/card/login", Some("/login")),
            ("/logout", Some("/")),
            ("/login", None),
            ("/activate", None),
            ("/forgot-password", None),
            ("/card/identify", None),
            ("/admin/clients", None),
            ("/admin/clients/abc", None),
        ] {
            assert_eq!(form_page(&Method::POST, path).as_deref(), page, "{path}");
            assert_eq!(form_page(&Method::GET, path), None, "GET {path} keeps its own switch");
        }
    }
}
