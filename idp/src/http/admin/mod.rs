//! Operator pages (`/admin/…`, role `operator`): clients, registration tokens, announcements,
//! register and agency imports, signing keys and the audit log. Every change an operator makes
//! here is audited with their account id and address, like the CLI's changes are with `cli`.

mod announcements;
mod audit_log;
mod clients;
mod imports;
mod keys;
mod tokens;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::errors::Failure;
use super::form::CheckedForm;
use super::pages::{render_page, NoData};
use super::viewer::{require_signed_in, Nav, Viewer};
use super::{client_address, csrf, lang_of};
use crate::audit::{self, Actor, Event};
use crate::error::now;
use crate::state::AppState;
use crate::templates::Lang;

/// Routes of the operator pages.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin").route(web::get().to(index)))
        .service(
            web::resource("/admin/clients").route(web::get().to(clients::list)).route(web::post().to(clients::create)),
        )
        .service(web::resource("/admin/clients/new").route(web::get().to(clients::new_form)))
        .service(
            web::resource("/admin/clients/{id}")
                .route(web::get().to(clients::edit_form))
                .route(web::post().to(clients::update)),
        )
        .service(web::resource("/admin/clients/{id}/secret").route(web::post().to(clients::rotate_secret)))
        .service(web::resource("/admin/clients/{id}/state").route(web::post().to(clients::set_state)))
        .service(web::resource("/admin/clients/{id}/delete").route(web::post().to(clients::delete)))
        .service(
            web::resource("/admin/registration-tokens")
                .route(web::get().to(tokens::form))
                .route(web::post().to(tokens::issue)),
        )
        .service(
            web::resource("/admin/announcements")
                .route(web::get().to(announcements::list))
                .route(web::post().to(announcements::create)),
        )
        .service(
            web::resource("/admin/announcements/{id}")
                .route(web::get().to(announcements::edit_form))
                .route(web::post().to(announcements::update)),
        )
        .service(web::resource("/admin/announcements/{id}/expire").route(web::post().to(announcements::expire)))
        .service(web::resource("/admin/imports").route(web::get().to(imports::form)))
        .service(
            // Reads its own (larger) body after the role check: pasted register files exceed
            // the site's usual form limit.
            web::resource("/admin/imports/{kind}").route(web::post().to(imports::submit)),
        )
        .service(web::resource("/admin/keys").route(web::get().to(keys::list)))
        .service(web::resource("/admin/keys/rotate").route(web::post().to(keys::rotate)))
        .service(web::resource("/admin/audit").route(web::get().to(audit_log::search)));
}

/// The signed-in operator behind a request, with the page language and their address.
pub(crate) struct Operator {
    pub viewer: Viewer,
    pub lang: Lang,
    pub address: String,
}

impl Operator {
    /// The operator, or the sign-in page, or 403 (audited: probing the operator pages is worth
    /// knowing about).
    pub async fn of(state: &AppState, req: &HttpRequest) -> Result<Self, Failure> {
        let lang = lang_of(req, None);
        let viewer = require_signed_in(state, req).await?;
        let address = client_address(req);
        if !viewer.has("operator") {
            let (id, addr, path) = (viewer.account.id.clone(), address.clone(), req.path().chars().take(100).collect());
            audit::record_logged(&state.db, move |c| {
                let e = Event { detail: path, ..Event::own("admin.access", "forbidden", &id, &addr) };
                audit::record(c, e, now())
            })
            .await;
            return Err(Failure::page(StatusCode::FORBIDDEN, "err_forbidden", None));
        }
        Ok(Self { viewer, lang, address })
    }

    /// The operator as the audit trail names them.
    pub fn actor(&self) -> Actor {
        Actor::person(&self.viewer.account.id, &self.address)
    }

    /// Records what the operator looked at that no domain function records itself (a search of
    /// the audit log). Details carry ids and counts, never personal data.
    pub async fn audit(
        &self,
        state: &AppState,
        event: &'static str,
        outcome: &'static str,
        client_id: Option<String>,
        detail: String,
    ) -> Result<(), Failure> {
        let actor = self.actor();
        state
            .db
            .run(move |c| {
                let e = Event { client_id: client_id.as_deref(), detail, ..actor.event(event, outcome) };
                audit::record(c, e, now())
            })
            .await
            .map_err(Failure::from)
    }

    /// Renders an operator page: the CSRF token for its forms, the navigation, the wide layout,
    /// and the page's own data (`body`) beside them.
    pub fn show<T: Serialize>(
        &self,
        state: &AppState,
        req: &HttpRequest,
        status: StatusCode,
        template: &str,
        title_key: &str,
        body: &T,
    ) -> Result<HttpResponse, Failure> {
        let (token, cookie) = csrf::token(state, req);
        let page = AdminPage { csrf: &token, nav: self.viewer.navigation(), wide: true, body };
        render_page(state, self.lang, status, template, title_key, &page, cookie.into_iter().collect())
    }

    /// A posted form, after its CSRF token has been checked.
    pub fn form(&self, req: &HttpRequest, body: &[u8]) -> Result<CheckedForm, Failure> {
        Ok(CheckedForm::read(req, body)?)
    }
}

/// What every operator page has, with the page's own data beside it.
#[derive(Debug, Serialize)]
struct AdminPage<'a, T: Serialize> {
    csrf: &'a str,
    nav: Nav,
    wide: bool,
    #[serde(flatten)]
    body: &'a T,
}

/// The data of `admin_secret.hbs`: a secret shown once — a new client's, a rotated one (with
/// when the replaced one stops), or a registration token.
#[derive(Debug, Default, Serialize)]
pub(crate) struct SecretPage<'a> {
    pub client: Option<clients::ClientSummary>,
    pub secret: Option<&'a str>,
    pub notice_key: Option<&'a str>,
    pub old_valid_until: Option<String>,
    pub token: Option<&'a str>,
    pub expires: Option<String>,
}

/// A form field, trimmed; absent and empty read as "".
pub(crate) fn field(p: &CheckedForm, name: &str) -> String {
    p.text(name)
}

/// `GET /admin`: what operators can do here.
async fn index(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    op.show(&state, &req, StatusCode::OK, "admin_index", "admin_title", &NoData {})
}
