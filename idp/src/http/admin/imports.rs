//! Register and agency imports from the operator pages: the CSV is pasted into a form (no
//! JavaScript, no upload component), checked and applied exactly as `idp personnel import` /
//! `idp agencies import` do — all or nothing, with every problem reported by line number.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::Operator;
use crate::accounts::register::{self, ImportError, LineError, Register, AGENCY_COLUMNS, PERSONNEL_COLUMNS};
use crate::error::{now, InfraError};
use crate::http::errors::Failure;
use crate::http::form::{CheckedForm, FormError, MAX_UPLOAD};
use crate::oidc::params::ParamError;
use crate::state::AppState;

/// The largest import form accepted; bigger registers go through `idp personnel import`.
pub const MAX_FORM_BYTES: usize = MAX_UPLOAD;

/// The data of `admin_imports.hbs` and `admin_import_report.hbs`: the columns each file has,
/// and after an import what it did or why nothing was applied.
#[derive(Debug, Default, Serialize)]
struct ImportPage<'a> {
    agency_header: String,
    personnel_header: String,
    kind_key: Option<&'a str>,
    report: Option<Counts>,
    problems: Option<Vec<Problem<'a>>>,
    error_key: Option<&'a str>,
}

impl ImportPage<'_> {
    fn new() -> Self {
        Self {
            agency_header: AGENCY_COLUMNS.join(","),
            personnel_header: PERSONNEL_COLUMNS.join(","),
            ..Self::default()
        }
    }
}

/// What an applied import did.
#[derive(Debug, Serialize)]
struct Counts {
    inserted: usize,
    updated: usize,
    unchanged: usize,
    separated: usize,
}

/// One line of a refused file.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    line: u64,
    message: &'a str,
}

impl<'a> From<&'a LineError> for Problem<'a> {
    fn from(e: &'a LineError) -> Self {
        Self { line: e.line, message: &e.message }
    }
}

/// `GET /admin/imports`.
pub async fn form(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    op.show(&state, &req, StatusCode::OK, "admin_imports", "admin_imports_title", &ImportPage::new())
}

/// `POST /admin/imports/{agencies|personnel}` with `csv`.
pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Failure> {
    let op = Operator::of(&state, &req).await?;
    // The body is read only now, after the role check, so that nobody but an operator can make
    // the server take in a large upload.
    let body = match payload.to_bytes_limited(MAX_FORM_BYTES).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return Err(FormError::Malformed(ParamError::Encoding).into()),
        Err(_) => return Err(FormError::TooLarge.into()),
    };
    let personnel = match req.match_info().get("kind") {
        Some("personnel") => true,
        Some("agencies") => false,
        _ => return Err(Failure::not_found()),
    };
    // The CSV is the one field allowed past the per-value limit of protocol parameters.
    let form = CheckedForm::read_upload(&req, &body, "csv")?;
    let bytes = form.secret("csv").replace("\r\n", "\n").into_bytes();
    let protector = state.protector.clone();
    let register = if personnel { Register::Personnel } else { Register::Agencies };
    let actor = op.actor();
    // As long as the file is: no deadline on the work once it has its connection.
    let result = state
        .db
        .run_long(move |c| -> Result<_, InfraError> {
            Ok(register::import(c, &protector, register, bytes.as_slice(), &actor, now()))
        })
        .await?;
    let kind_key = Some(if personnel { "admin_import_personnel" } else { "admin_import_agencies" });
    match result {
        Ok(r) => {
            let report =
                Counts { inserted: r.inserted, updated: r.updated, unchanged: r.unchanged, separated: r.separated };
            let page = ImportPage { kind_key, report: Some(report), ..ImportPage::new() };
            Ok(op.show(&state, &req, StatusCode::OK, "admin_import_report", "admin_import_done", &page)?)
        }
        Err(ImportError::Invalid(errors)) => {
            let problems = Some(errors.iter().map(Problem::from).collect());
            let page = ImportPage { kind_key, problems, error_key: Some("err_import_rejected"), ..ImportPage::new() };
            Ok(op.show(
                &state,
                &req,
                StatusCode::UNPROCESSABLE_ENTITY,
                "admin_import_report",
                "admin_import_rejected",
                &page,
            )?)
        }
        Err(ImportError::Infra(e)) => Err(Failure::from(e)),
    }
}
