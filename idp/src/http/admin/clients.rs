//! Client applications: list, create (secret shown once), edit, rotate the secret (shown once),
//! disable or enable, delete. Changes take effect on this node at once and on the others within
//! their few-second client cache.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{field, Operator, SecretPage};
use crate::error::{now, InfraError};
use crate::http::errors::Failure;
use crate::http::form::CheckedForm;
use crate::oidc::clients::{self, Audience, Client, ClientError, NewClient, Portal};
use crate::state::AppState;

/// The seeds' categories, offered as suggestions in the form.
const SEED_CATEGORIES: [&str; 4] =
    ["A.人事資料填報及考核", "B.人事資料服務", "D.其他人事總處業務", "非人事總處機關及系統"];

/// The client form as typed, so a refused form comes back with what the operator wrote.
#[derive(Debug, Clone, Default, Serialize)]
struct ClientForm {
    client_id: String,
    name: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    audience: String,
    agency_codes: String,
    portal_category: String,
    portal_description: String,
    portal_url: String,
    scope: String,
    consent_required: bool,
    auth_method: String,
    resource_server: bool,
    client_credentials_allowed: bool,
    require_signed_request_object: bool,
    require_par: bool,
    dpop_bound: bool,
    fapi2: bool,
    resource_uri: String,
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn opt(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.trim().to_string())
}

impl ClientForm {
    fn read(p: &CheckedForm) -> Self {
        Self {
            client_id: field(p, "client_id"),
            name: field(p, "name"),
            redirect_uris: field(p, "redirect_uris"),
            post_logout_redirect_uris: field(p, "post_logout_redirect_uris"),
            audience: field(p, "audience"),
            agency_codes: field(p, "agency_codes"),
            portal_category: field(p, "portal_category"),
            portal_description: field(p, "portal_description"),
            portal_url: field(p, "portal_url"),
            scope: field(p, "scope"),
            consent_required: field(p, "consent_required") == "1",
            auth_method: field(p, "token_endpoint_auth_method"),
            resource_server: field(p, "resource_server") == "1",
            client_credentials_allowed: field(p, "client_credentials_allowed") == "1",
            require_signed_request_object: field(p, "require_signed_request_object") == "1",
            require_par: field(p, "require_pushed_authorization_requests") == "1",
            dpop_bound: field(p, "dpop_bound_access_tokens") == "1",
            fapi2: field(p, "fapi2") == "1",
            resource_uri: field(p, "resource_uri"),
        }
    }

    fn of(c: &Client) -> Self {
        let (audience, agency_codes) = match &c.audience {
            Audience::Everyone => ("everyone".into(), String::new()),
            Audience::HrStaff => ("hr-staff".into(), String::new()),
            Audience::Agencies(codes) => ("agency".into(), codes.join(",")),
        };
        Self {
            client_id: c.client_id.clone(),
            name: c.client_name.clone(),
            redirect_uris: c.redirect_uris.join("\n"),
            post_logout_redirect_uris: c.post_logout_redirect_uris.join("\n"),
            audience,
            agency_codes,
            portal_category: c.portal.category.clone().unwrap_or_default(),
            portal_description: c.portal.description.clone().unwrap_or_default(),
            portal_url: c.portal.url.clone().unwrap_or_default(),
            scope: c.scope.join(" "),
            consent_required: c.consent_required,
            auth_method: c.token_endpoint_auth_method.clone(),
            resource_server: c.resource_server,
            client_credentials_allowed: c.client_credentials_allowed,
            require_signed_request_object: c.require_signed_request_object,
            require_par: c.require_pushed_authorization_requests,
            dpop_bound: c.dpop_bound_access_tokens,
            fapi2: c.fapi2,
            resource_uri: c.resource_uri.clone().unwrap_or_default(),
        }
    }

    fn audience(&self) -> Result<Audience, ClientError> {
        let text = match self.audience.as_str() {
            "agency" => format!("agency:{}", self.agency_codes),
            other => other.to_string(),
        };
        Audience::parse(&text).map_err(ClientError::Metadata)
    }

    /// The metadata for `clients::create`, or for `clients::replace` on top of `existing`
    /// (whose protocol settings — algorithms, grants, keys — this form does not edit).
    fn to_new(&self, existing: Option<&Client>) -> Result<NewClient, ClientError> {
        let mut n = NewClient::new(&self.name, lines(&self.redirect_uris));
        if let Some(e) = existing {
            n.id_token_alg = e.id_token_signed_response_alg.clone();
            n.token_endpoint_auth_method = e.token_endpoint_auth_method.clone();
            n.grant_types = e.grant_types.clone();
            n.subject_type = e.subject_type.clone();
            n.min_acr = e.min_acr.clone();
            n.jwks = e.jwks.clone();
            n.jwks_uri = e.jwks_uri.clone();
            n.backchannel_logout_uri = e.backchannel_logout_uri.clone();
            n.request_object_signing_alg = e.request_object_signing_alg.clone();
        } else {
            n.client_id = opt(&self.client_id);
            match self.auth_method.as_str() {
                "" | "client_secret_basic" => {}
                m @ ("client_secret_post" | "none") => n.token_endpoint_auth_method = m.into(),
                other => return Err(ClientError::Metadata(format!("token_endpoint_auth_method `{other}`"))),
            }
        }
        n.post_logout_redirect_uris = lines(&self.post_logout_redirect_uris);
        if let Some(scope) = clients::operator_scope(&self.scope) {
            n.scope = scope;
        }
        n.consent_required = self.consent_required;
        n.resource_server = self.resource_server;
        n.client_credentials_allowed = self.client_credentials_allowed;
        n.require_signed_request_object = self.require_signed_request_object;
        n.require_pushed_authorization_requests = self.require_par;
        n.dpop_bound_access_tokens = self.dpop_bound;
        n.fapi2 = self.fapi2;
        n.resource_uri = opt(&self.resource_uri);
        n.audience = self.audience()?;
        n.portal = Portal {
            category: opt(&self.portal_category),
            description: opt(&self.portal_description),
            url: opt(&self.portal_url),
        };
        Ok(n)
    }

    /// The form's page data, as `admin_client_form.hbs` shows it.
    fn page(&self) -> ClientFormPage<'_> {
        ClientFormPage {
            form: FormView {
                typed: self,
                aud_everyone: self.audience == "everyone" || self.audience.is_empty(),
                aud_hr_staff: self.audience == "hr-staff",
                aud_agency: self.audience == "agency",
                auth_post: self.auth_method == "client_secret_post",
                auth_none: self.auth_method == "none",
            },
            categories: &SEED_CATEGORIES,
            editing: None,
            error_key: None,
            detail: None,
        }
    }
}

/// The data of `admin_client_form.hbs`: the form as typed or stored, the seeds' categories,
/// the client being edited, and why a save was refused.
#[derive(Debug, Serialize)]
struct ClientFormPage<'a> {
    form: FormView<'a>,
    categories: &'static [&'static str],
    editing: Option<ClientSummary>,
    error_key: Option<&'static str>,
    detail: Option<String>,
}

/// The client form's fields as typed, with the choices among them the template marks.
#[derive(Debug, Serialize)]
struct FormView<'a> {
    #[serde(flatten)]
    typed: &'a ClientForm,
    aud_everyone: bool,
    aud_hr_staff: bool,
    aud_agency: bool,
    auth_post: bool,
    auth_none: bool,
}

/// A client in the list and at the head of its pages.
#[derive(Debug, Serialize)]
pub(crate) struct ClientSummary {
    client_id: String,
    name: String,
    /// Shown by its label in the page's language, never as the stored value (`everyone`).
    audience_key: &'static str,
    agencies: String,
    category: Option<String>,
    disabled: bool,
    public: bool,
}

/// The data of `admin_clients.hbs`.
#[derive(Debug, Serialize)]
struct ClientsPage {
    clients: Vec<ClientSummary>,
}

impl ClientForm {}

fn client_id_of(req: &HttpRequest) -> String {
    req.match_info().get("id").unwrap_or("").to_string()
}

async fn load(state: &AppState, id: &str) -> Result<Client, Failure> {
    let key = id.to_string();
    match state.db.run(move |c| clients::get(c, &key)).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(Failure::not_found()),
        Err(e) => Err(Failure::from(e)),
    }
}

fn summary(c: &Client) -> ClientSummary {
    ClientSummary {
        client_id: c.client_id.clone(),
        name: c.client_name.clone(),
        audience_key: match &c.audience {
            Audience::Everyone => "audience_everyone",
            Audience::HrStaff => "audience_hr_staff",
            Audience::Agencies(_) => "audience_agency_list",
        },
        agencies: match &c.audience {
            Audience::Agencies(codes) => codes.join("、"),
            _ => String::new(),
        },
        category: c.portal.category.clone(),
        disabled: c.disabled,
        public: c.public,
    }
}

/// `GET /admin/clients`.
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let all = state.db.run(clients::list).await?;
    let page = ClientsPage { clients: all.iter().map(summary).collect() };
    op.show(&state, &req, StatusCode::OK, "admin_clients", "admin_clients_title", &page)
}

/// `GET /admin/clients/new`.
pub async fn new_form(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let form = ClientForm { scope: NewClient::new("", vec![]).scope.join(" "), ..Default::default() };
    op.show(&state, &req, StatusCode::OK, "admin_client_form", "admin_client_new_title", &form.page())
}

fn refused(
    state: &AppState,
    req: &HttpRequest,
    op: &Operator,
    form: &ClientForm,
    editing: Option<&Client>,
    e: ClientError,
) -> Result<HttpResponse, Failure> {
    if let ClientError::Infra(e) = e {
        return Err(Failure::from(e));
    }
    let title = if editing.is_some() { "admin_client_edit_title" } else { "admin_client_new_title" };
    let page = ClientFormPage {
        editing: editing.map(summary),
        error_key: Some("err_client_invalid"),
        detail: Some(e.to_string()),
        ..form.page()
    };
    op.show(state, req, StatusCode::UNPROCESSABLE_ENTITY, "admin_client_form", title, &page)
}

/// `POST /admin/clients`: creates a client and shows its secret this once.
pub async fn create(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&req, &body)?;
    let form = ClientForm::read(&p);
    let new = match form.to_new(None) {
        Ok(n) => n,
        Err(e) => return refused(&state, &req, &op, &form, None, e),
    };
    // The database error and the refusal travel separately: `Db::run` wants an `InfraError`.
    let actor = op.actor();
    let created =
        state.db.run(move |c| -> Result<_, InfraError> { Ok(clients::create_by(c, new, &actor, now())) }).await?;
    let (client, secret) = match created {
        Ok(done) => done,
        Err(e) => return refused(&state, &req, &op, &form, None, e),
    };
    let page = SecretPage {
        client: Some(summary(&client)),
        secret: secret.as_deref(),
        notice_key: Some("admin_client_created"),
        ..SecretPage::default()
    };
    op.show(&state, &req, StatusCode::OK, "admin_secret", "admin_client_created", &page)
}

/// `GET /admin/clients/{id}`.
pub async fn edit_form(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let client = load(&state, &client_id_of(&req)).await?;
    let form = ClientForm::of(&client);
    let page = ClientFormPage { editing: Some(summary(&client)), ..form.page() };
    op.show(&state, &req, StatusCode::OK, "admin_client_form", "admin_client_edit_title", &page)
}

/// `POST /admin/clients/{id}`: saves the edited metadata.
pub async fn update(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&req, &body)?;
    let existing = load(&state, &client_id_of(&req)).await?;
    let form = ClientForm::read(&p);
    let new = match form.to_new(Some(&existing)) {
        Ok(n) => n,
        Err(e) => return refused(&state, &req, &op, &form, Some(&existing), e),
    };
    let (id, actor) = (existing.client_id.clone(), op.actor());
    let saved =
        state.db.run(move |c| -> Result<_, InfraError> { Ok(clients::edit_by(c, &id, new, &actor, now())) }).await?;
    match saved {
        Ok(Some(_)) => {}
        Ok(None) => return Err(Failure::not_found()),
        Err(e) => return refused(&state, &req, &op, &form, Some(&existing), e),
    }
    state.client_cache.forget(&existing.client_id);
    Ok(super::super::viewer::see_other(&format!("/admin/clients/{}", existing.client_id)))
}

/// `POST /admin/clients/{id}/secret`: a new secret, shown once; the old one keeps working for
/// `old_secret_valid_for` (`0`, the default: it stops at once).
pub async fn rotate_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let form = op.form(&req, &body)?;
    let overlap = match field(&form, "old_secret_valid_for") {
        f if f.is_empty() => "0".to_string(),
        f => f,
    };
    let overlap = clients::parse_secret_overlap(&overlap)
        .map_err(|e| Failure::page(StatusCode::BAD_REQUEST, "err_bad_request", Some(e)))?;
    let client = load(&state, &client_id_of(&req)).await?;
    let (id, actor) = (client.client_id.clone(), op.actor());
    let rotated = state.db.run(move |c| clients::rotate_secret_by(c, &id, overlap, &actor, now())).await?;
    state.client_cache.forget(&client.client_id);
    let page = SecretPage {
        client: Some(summary(&client)),
        secret: rotated.as_ref().map(|r| r.secret.as_str()),
        old_valid_until: rotated.as_ref().and_then(|r| r.old_valid_until).map(crate::mail::local_time),
        ..SecretPage::default()
    };
    op.show(&state, &req, StatusCode::OK, "admin_secret", "admin_secret_rotated", &page)
}

/// `POST /admin/clients/{id}/state` with `disabled=1` or `0`.
pub async fn set_state(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&req, &body)?;
    let disable = field(&p, "disabled") == "1";
    let id = client_id_of(&req);
    let (key, actor) = (id.clone(), op.actor());
    let found = state.db.run(move |c| clients::set_disabled_by(c, &key, disable, &actor, now())).await?;
    if !found {
        return Err(Failure::not_found());
    }
    state.client_cache.forget(&id);
    Ok(super::super::viewer::see_other(&format!("/admin/clients/{id}")))
}

/// `POST /admin/clients/{id}/delete` with `confirm=1`.
pub async fn delete(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&req, &body)?;
    let id = client_id_of(&req);
    if field(&p, "confirm") != "1" {
        let client = load(&state, &id).await?;
        let form = ClientForm::of(&client);
        let page =
            ClientFormPage { editing: Some(summary(&client)), error_key: Some("err_confirm_delete"), ..form.page() };
        return op.show(
            &state,
            &req,
            StatusCode::UNPROCESSABLE_ENTITY,
            "admin_client_form",
            "admin_client_edit_title",
            &page,
        );
    }
    let (key, actor) = (id.clone(), op.actor());
    let found = state.db.run(move |c| clients::delete_by(c, &key, &actor, now())).await?;
    if !found {
        return Err(Failure::not_found());
    }
    state.client_cache.forget(&id);
    Ok(super::super::viewer::see_other("/admin/clients"))
}
