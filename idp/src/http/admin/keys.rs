//! Signing keys: the same list and rotation as `idp keys list` / `idp keys rotate`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{field, Operator};
use crate::error::{now, InfraError};
use crate::http::errors::Failure;
use crate::oidc::keys::{self, KeyPolicy};
use crate::portal::taipei;
use crate::state::AppState;

/// The data of `admin_keys.hbs`.
#[derive(Debug, Serialize)]
struct KeysPage {
    keys: Vec<KeyRow>,
    notices: Vec<String>,
    delay_minutes: i64,
}

/// One signing key, its state and its times in Taipei time.
#[derive(Debug, Serialize)]
struct KeyRow {
    kid: String,
    alg: String,
    state: &'static str,
    state_key: String,
    created: String,
    activates: String,
    retires: String,
    unpublished: String,
}

async fn page(
    state: &AppState,
    req: &HttpRequest,
    op: &Operator,
    notices: Vec<String>,
) -> Result<HttpResponse, Failure> {
    let policy = KeyPolicy::from_config(&state.config);
    let all = state.db.run(move |c| keys::list(c, policy.retention, now())).await?;
    let opt = |t: Option<i64>| t.map(taipei::format).unwrap_or_else(|| "—".into());
    let keys = all
        .iter()
        .map(|k| KeyRow {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            state: k.state.as_str(),
            state_key: format!("key_state_{}", k.state.as_str()),
            created: taipei::format(k.created_at),
            activates: taipei::format(k.activates_at),
            retires: opt(k.retired_at),
            unpublished: opt(k.unpublished_at),
        })
        .collect();
    let page = KeysPage { keys, notices, delay_minutes: policy.activation_delay / 60 };
    op.show(state, req, StatusCode::OK, "admin_keys", "admin_keys_title", &page)
}

/// `GET /admin/keys`.
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    page(&state, &req, &op, vec![]).await
}

/// `POST /admin/keys/rotate` with `alg` (`ES256`, `RS256` or `all`) and optionally `now=1`
/// (emergency: the new key signs at once).
pub async fn rotate(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    let p = op.form(&req, &body)?;
    let alg = field(&p, "alg");
    let algs = keys::algorithms_named(if alg.is_empty() { "all" } else { &alg });
    if algs.is_empty() {
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_bad_request", None));
    }
    let at_once = field(&p, "now") == "1";
    let policy = KeyPolicy::from_config(&state.config);
    let (protector, keyset, actor) = (state.protector.clone(), state.keys.clone(), op.actor());
    let report = state
        .db
        .run(move |c| -> Result<_, InfraError> {
            let t = now();
            let report = keys::rotate_by(c, &protector, &algs, at_once, policy, &actor, t)?;
            // This node publishes the new key at once; the others on their next reload.
            keyset.reload(c, &protector, t)?;
            Ok(report)
        })
        .await?;
    page(&state, &req, &op, report.details).await
}
