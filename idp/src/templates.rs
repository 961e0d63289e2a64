//! Pages rendered with Handlebars from `templates/`, embedded into the binary so one file
//! is the whole deployment. Traditional Chinese is the default language, English the second.

use std::collections::HashMap;

use handlebars::Handlebars;
use serde_json::{Map, Value};

use crate::error::InfraError;
pub use crate::lang::Lang;
use crate::site::Site;

mod field_errors;

const PAGES: [(&str, &str); 36] = [
    ("card_identify", include_str!("../../templates/card_identify.hbs")),
    ("consent", include_str!("../../templates/consent.hbs")),
    ("layout", include_str!("../../templates/layout.hbs")),
    ("login", include_str!("../../templates/login.hbs")),
    ("activate", include_str!("../../templates/activate.hbs")),
    ("activated", include_str!("../../templates/activated.hbs")),
    ("error", include_str!("../../templates/error.hbs")),
    ("logout", include_str!("../../templates/logout.hbs")),
    ("logged_out", include_str!("../../templates/logged_out.hbs")),
    ("home", include_str!("../../templates/home.hbs")),
    ("apps", include_str!("../../templates/apps.hbs")),
    ("admin_index", include_str!("../../templates/admin_index.hbs")),
    ("admin_clients", include_str!("../../templates/admin_clients.hbs")),
    ("admin_client_form", include_str!("../../templates/admin_client_form.hbs")),
    ("admin_secret", include_str!("../../templates/admin_secret.hbs")),
    ("admin_registration_tokens", include_str!("../../templates/admin_registration_tokens.hbs")),
    ("admin_announcements", include_str!("../../templates/admin_announcements.hbs")),
    ("admin_announcement_form", include_str!("../../templates/admin_announcement_form.hbs")),
    ("admin_imports", include_str!("../../templates/admin_imports.hbs")),
    ("admin_import_report", include_str!("../../templates/admin_import_report.hbs")),
    ("admin_keys", include_str!("../../templates/admin_keys.hbs")),
    ("admin_audit", include_str!("../../templates/admin_audit.hbs")),
    ("hr_reset", include_str!("../../templates/hr_reset.hbs")),
    ("hr_reset_found", include_str!("../../templates/hr_reset_found.hbs")),
    ("hr_reset_confirm", include_str!("../../templates/hr_reset_confirm.hbs")),
    ("hr_reset_done", include_str!("../../templates/hr_reset_done.hbs")),
    ("me", include_str!("../../templates/me.hbs")),
    ("forgot", include_str!("../../templates/forgot.hbs")),
    ("forgot_sent", include_str!("../../templates/forgot_sent.hbs")),
    ("forgot_ask", include_str!("../../templates/forgot_ask.hbs")),
    ("environment", include_str!("../../templates/environment.hbs")),
    ("environment_popup", include_str!("../../templates/environment_popup.hbs")),
    ("help", include_str!("../../templates/help.hbs")),
    ("faq", include_str!("../../templates/faq.hbs")),
    ("helpdesk_contact", include_str!("../../templates/helpdesk_contact.hbs")),
    ("verify_email", include_str!("../../templates/verify_email.hbs")),
];

/// Which navigation entry a page belongs to, so the layout marks it as the current page
/// (`aria-current="page"`); pages outside the navigation mark none.
fn nav_entry(page: &str) -> &'static str {
    match page {
        "home" => "home",
        "apps" => "apps",
        "me" => "me",
        p if p.starts_with("hr_reset") => "hr",
        p if p.starts_with("admin_") => "admin",
        "help" => "help",
        "faq" => "faq",
        "environment" => "environment",
        _ => "",
    }
}

/// The card sign-in script, served at `/static/card.js`.
pub const CARD_JS: &str = include_str!("../../templates/static/card.js");

/// The stylesheet, served at `/static/style.css`.
pub const STYLE_CSS: &str = include_str!("../../templates/static/style.css");

/// The template registry and the translations.
pub struct Templates {
    hb: Handlebars<'static>,
    strings: HashMap<&'static str, Map<String, Value>>,
    /// Who runs the site: every page gets it as `site` (header, footer, helpdesk contact).
    site: Site,
}

impl Templates {
    /// Compiles every page with the built-in site identity.
    pub fn new() -> Result<Self, InfraError> {
        Self::for_site(Site::default())
    }

    /// Compiles every page; a broken template fails at start, not on first use.
    pub fn for_site(site: Site) -> Result<Self, InfraError> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(false);
        hb.register_helper("field", Box::new(field_errors::helper));
        for (name, source) in PAGES {
            hb.register_template_string(name, source)
                .map_err(|e| InfraError::Internal(format!("template {name}: {e}")))?;
        }
        let mut strings = HashMap::new();
        for (lang, source) in [
            ("zh-TW", include_str!("../../templates/i18n/zh-TW.json")),
            ("en", include_str!("../../templates/i18n/en.json")),
        ] {
            let map: Map<String, Value> =
                serde_json::from_str(source).map_err(|e| InfraError::Internal(format!("translations {lang}: {e}")))?;
            strings.insert(lang, map);
        }
        Ok(Self { hb, strings, site })
    }

    /// A translated message.
    pub fn text(&self, lang: Lang, key: &str) -> String {
        self.strings.get(lang.tag()).and_then(|m| m.get(key)).and_then(Value::as_str).unwrap_or(key).to_string()
    }

    /// Renders a page; `title_key` and the `error` key (if any) are translated here.
    pub fn render(
        &self,
        page: &str,
        lang: Lang,
        title_key: &str,
        mut ctx: Map<String, Value>,
    ) -> Result<String, InfraError> {
        let t = self.strings.get(lang.tag()).cloned().unwrap_or_default();
        ctx.insert("title".into(), Value::String(self.text(lang, title_key)));
        if let Some(Value::String(key)) = ctx.get("error_key").cloned() {
            ctx.insert("error".into(), Value::String(self.text(lang, &key)));
            ctx.insert("invalid".into(), serde_json::json!(field_errors::fields_for(&key)));
        }
        ctx.insert("t".into(), Value::Object(t));
        ctx.insert("current".into(), Value::String(nav_entry(page).into()));
        ctx.insert("site".into(), self.site.context(lang));
        ctx.insert("lang".into(), Value::String(lang.tag().into()));
        let other = lang.other();
        ctx.insert("other_lang".into(), Value::String(other.tag().into()));
        if !ctx.contains_key("switch_query") {
            ctx.insert("switch_query".into(), Value::String(format!("ui_locales={}", other.tag())));
        }
        self.hb.render(page, &Value::Object(ctx)).map_err(|e| InfraError::Internal(format!("render {page}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_key_has_both_translations() {
        let t = Templates::new().unwrap();
        let zh = &t.strings["zh-TW"];
        let en = &t.strings["en"];
        let mut zk: Vec<_> = zh.keys().collect();
        let mut ek: Vec<_> = en.keys().collect();
        zk.sort();
        ek.sort();
        assert_eq!(zk, ek);
        for e in [
            crate::accounts::activation::ActivationError::AccountFormat,
            crate::accounts::activation::ActivationError::AccountLikeNationalId,
            crate::accounts::activation::ActivationError::AccountTaken,
            crate::accounts::activation::ActivationError::EmailInvalid,
            crate::accounts::activation::ActivationError::PasswordTooShort,
            crate::accounts::activation::ActivationError::PasswordTooLong,
            crate::accounts::activation::ActivationError::PasswordPersonal,
            crate::accounts::activation::ActivationError::PasswordCommon,
            crate::accounts::activation::ActivationError::PasswordMismatch,
        ] {
            assert!(zh.contains_key(&e.key()), "missing {}", e.key());
        }
    }

    #[test]
    fn every_page_of_the_navigation_marks_its_entry() {
        for (page, entry) in [
            ("home", "home"),
            ("apps", "apps"),
            ("me", "me"),
            ("hr_reset_found", "hr"),
            ("admin_clients", "admin"),
            ("help", "help"),
            ("faq", "faq"),
            ("environment", "environment"),
            ("login", ""),
        ] {
            assert_eq!(nav_entry(page), entry, "{page}");
            assert!(PAGES.iter().any(|(p, _)| *p == page), "{page} is a page");
        }
    }
}
