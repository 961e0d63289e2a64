//! Initial access tokens for dynamic client registration, shown once (only their hash is kept).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{field, Operator, SecretPage};
use crate::error::now;
use crate::http::errors::Failure;
use crate::http::pages::NoData;
use crate::oidc::registration;
use crate::state::AppState;

/// The lifetimes offered, in hours; the last is the longest allowed (30 days).
const TTL_HOURS: [u64; 4] = [1, 24, 168, 720];

/// `GET /admin/registration-tokens`.
pub async fn form(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    op.show(&state, &req, StatusCode::OK, "admin_registration_tokens", "admin_tokens_title", &NoData {})
}

/// `POST /admin/registration-tokens` with `ttl_hours`.
pub async fn issue(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&req, &body)?;
    let hours = field(&p, "ttl_hours").parse::<u64>().ok().filter(|h| TTL_HOURS.contains(h)).unwrap_or(24);
    let ttl = Duration::from_secs(hours * 3600);
    let actor = op.actor();
    let issued = state.db.run(move |c| registration::issue_initial_access_token(c, ttl, &actor, now())).await?;
    let expires = crate::portal::taipei::format(issued.expires_at);
    let page = SecretPage { token: Some(&issued.token), expires: Some(expires), ..SecretPage::default() };
    op.show(&state, &req, StatusCode::OK, "admin_secret", "admin_token_issued", &page)
}
