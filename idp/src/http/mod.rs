//! Thin HTTP handlers grouped by surface. They translate requests into domain calls and the
//! results back into pages, redirects or JSON; the protocol and identity logic lives elsewhere.

pub mod admin;
pub mod authorize;
pub mod card;
pub mod card_tls;
pub mod csrf;
pub mod error_pages;
pub mod errors;
pub mod forgot;
pub mod form;
pub mod forwarded;
pub mod help;
pub mod hr;
pub mod lang_switch;
pub mod login;
pub mod me;
pub mod oidc;
pub mod pages;
pub mod portal;
pub mod registration;
pub mod verify_email;
pub mod viewer;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::{web, HttpRequest};

use crate::state::AppState;
use crate::templates::Lang;

/// Name of the SSO session cookie.
pub const SESSION_COOKIE: &str = "idp_session";
/// Name of the cookie that carries an activation in progress.
pub const ACTIVATION_COOKIE: &str = "idp_activation";

/// Routes of the whole site.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/.well-known/openid-configuration").route(web::get().to(oidc::discovery)))
        .service(web::resource("/.well-known/oauth-authorization-server").route(web::get().to(oidc::oauth_metadata)))
        .service(web::resource("/jwks").route(web::get().to(oidc::jwks)))
        .service(
            web::resource("/authorize")
                .route(web::get().to(authorize::authorize_get))
                .route(web::post().to(authorize::authorize_post)),
        )
        .service(
            web::resource("/consent")
                .route(web::get().to(authorize::consent_page))
                .route(web::post().to(authorize::consent_submit)),
        )
        .service(web::resource("/token").route(web::post().to(oidc::token)))
        .service(web::resource("/par").route(web::post().to(oidc::pushed_authorization_request)))
        .service(web::resource("/introspect").route(web::post().to(oidc::introspect)))
        .service(web::resource("/revoke").route(web::post().to(oidc::revoke)))
        .service(web::resource("/register").route(web::post().to(registration::register)))
        .service(
            web::resource("/register/{client_id}")
                .route(web::get().to(registration::read))
                .route(web::put().to(registration::update))
                .route(web::delete().to(registration::delete)),
        )
        .service(web::resource("/userinfo").route(web::get().to(oidc::userinfo)).route(web::post().to(oidc::userinfo)))
        .service(
            web::resource("/logout").route(web::get().to(oidc::logout_get)).route(web::post().to(oidc::logout_post)),
        )
        .service(
            web::resource("/login").route(web::get().to(login::login_page)).route(web::post().to(login::login_submit)),
        )
        .service(
            web::resource(forgot::PATH).route(web::get().to(forgot::form_page)).route(web::post().to(forgot::submit)),
        )
        .service(
            web::resource("/activate")
                .route(web::get().to(login::activate_page))
                .route(web::post().to(login::activate_submit)),
        )
        .service(
            web::resource(crate::accounts::email_verification::PATH)
                .route(web::get().to(verify_email::confirm_page))
                .route(web::post().to(verify_email::confirm_submit)),
        )
        .service(web::resource("/").route(web::get().to(pages::home)))
        .service(web::resource("/apps").route(web::get().to(portal::apps)))
        .configure(admin::routes)
        .service(web::resource("/static/style.css").route(web::get().to(pages::style)))
        .service(web::resource("/static/card.js").route(web::get().to(pages::card_js)))
        .service(web::resource("/static/logo").route(web::get().to(pages::logo)))
        .service(web::resource("/favicon.ico").route(web::get().to(pages::favicon)))
        .service(web::resource("/card/challenge").route(web::get().to(card::new_challenge)))
        .service(web::resource("/card/login").route(web::post().to(card::card_login)))
        .service(web::resource("/card/health").route(web::post().to(card::health_login)))
        .service(web::resource("/card/handoff").route(web::get().to(card_tls::handoff)))
        .service(web::resource("/card/proxy-login").route(web::get().to(card_tls::proxy_login)))
        .service(
            web::resource("/card/identify")
                .route(web::get().to(card::identify_page))
                .route(web::post().to(card::identify_submit)),
        )
        .service(web::resource("/healthz").route(web::get().to(pages::healthz)))
        .service(web::resource("/readyz").route(web::get().to(pages::readyz)))
        .configure(help::routes)
        .configure(hr::routes)
        .configure(me::routes);
}

/// The page language for a request: `ui_locales` in the query, else `Accept-Language`. The
/// answer is remembered with the request as the language of its page, so an error page that
/// ends the request speaks it too (see [`error_pages`]).
pub fn lang_of(req: &HttpRequest, ui_locales: Option<&str>) -> Lang {
    let from_query = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "ui_locales")
        .map(|(_, v)| v.into_owned());
    let accept = req.headers().get("accept-language").and_then(|v| v.to_str().ok());
    let lang = Lang::negotiate(from_query.as_deref().or(ui_locales), accept);
    error_pages::remember(req, lang);
    lang
}

/// The client's address, for throttling and the audit log: the TCP peer, or — only when the
/// peer is one of `certificates.trusted_proxies` — the address that proxy forwarded in
/// `X-Forwarded-For` (see [`forwarded::TrustedProxies::client`]).
pub fn client_address(req: &HttpRequest) -> String {
    let proxies = req
        .app_data::<web::Data<AppState>>()
        .map(|s| forwarded::TrustedProxies::parse(&s.config.certificates.trusted_proxies))
        .unwrap_or_default();
    forwarded::client_ip(&proxies, req).map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into())
}

/// Records an anonymous or failed event from a request; a failure to record is logged, never
/// shown to the person (their request already has its answer).
pub async fn audit_request(
    state: &AppState,
    event: &'static str,
    outcome: &'static str,
    account: Option<String>,
    address: String,
) {
    crate::audit::record_logged(&state.db, move |c| {
        let e = crate::audit::Event {
            event,
            outcome,
            account_id: account.as_deref(),
            address: Some(&address),
            ..Default::default()
        };
        crate::audit::record(c, e, crate::error::now())
    })
    .await;
}

/// A cookie with the flags every cookie of this site carries.
pub fn cookie(state: &AppState, name: &'static str, value: String, max_age_secs: Option<i64>) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies())
        .finish();
    if let Some(age) = max_age_secs {
        c.set_max_age(CookieDuration::seconds(age));
    }
    c
}

/// A cookie that removes `name` from the browser.
pub fn removal(state: &AppState, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(state, name, String::new(), Some(0));
    c.make_removal();
    c
}
