//! Imports of the agency table and the personnel register from the HR reporting system's CSV.
//!
//! All or nothing: every row is checked first and every problem is reported with its line
//! number; only a file without problems is applied, in one transaction.

use std::collections::{HashMap, HashSet};
use std::fmt;

use diesel::prelude::*;

use crate::audit::{self, Actor, Event};
use crate::crypto::{random_token, DataProtector};
use crate::error::InfraError;
use crate::national_id::NationalId;
use crate::store::db::models::{AgencyRow, PersonRow};
use crate::store::db::schema::{accounts, agencies, one_time_passwords, people};
use crate::store::db::DbConn;

use super::PersonStatus;

/// The agency table's header.
pub const AGENCY_COLUMNS: [&str; 4] = ["code", "name", "parent_code", "oid"];
/// The personnel register's header.
pub const PERSONNEL_COLUMNS: [&str; 8] =
    ["national_id", "name", "agency_code", "unit", "person_category", "concurrent_duty", "status", "email"];

/// The largest file accepted; the full register of 360,000 people is about 40 MB.
pub const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;

/// One problem in an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why an import applied nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{} problem(s) found; nothing was imported", .0.len())]
    Invalid(Vec<LineError>),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<diesel::result::Error> for ImportError {
    fn from(e: diesel::result::Error) -> Self {
        ImportError::Infra(e.into())
    }
}

/// What an import changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// People who became separated, whose sessions were ended.
    pub separated: usize,
    /// Sessions ended by separation; their applications are owed a back-channel logout, which
    /// the running servers send (the sessions are marked in the import's transaction).
    pub ended_sessions: Vec<String>,
}

/// Reads CSV rows as UTF-8 strings with their line numbers, checking the header and the
/// column count of every row; problems go to `errors`.
fn read_rows(bytes: &[u8], header: &[&str], errors: &mut Vec<LineError>) -> Vec<(u64, Vec<String>)> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                errors.push(LineError { line, message: format!("unreadable CSV: {e}") });
                break;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(line);
        let mut fields = Vec::with_capacity(record.len());
        let mut utf8 = true;
        for field in record.iter() {
            match std::str::from_utf8(field) {
                Ok(s) => fields.push(s.trim().to_string()),
                Err(_) => utf8 = false,
            }
        }
        if !utf8 {
            errors.push(LineError { line, message: "not valid UTF-8".into() });
            first = false;
            continue;
        }
        if first {
            first = false;
            if fields != header {
                errors.push(LineError { line, message: format!("the header must be `{}`", header.join(",")) });
                return rows;
            }
            continue;
        }
        if fields.len() == 1 && fields[0].is_empty() {
            continue; // a blank line
        }
        if fields.len() != header.len() {
            errors.push(LineError {
                line,
                message: format!("expected {} columns, found {}", header.len(), fields.len()),
            });
            continue;
        }
        rows.push((line, fields));
    }
    if first {
        errors.push(LineError {
            line: 1,
            message: format!("the file is empty; the header must be `{}`", header.join(",")),
        });
    }
    rows
}

fn is_agency_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_oid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() >= 2 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Which register a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    /// The agency table (機關代碼檔).
    Agencies,
    /// The personnel register (公務人力資料庫).
    Personnel,
}

impl Register {
    /// The audit event of an import.
    pub fn event(self) -> &'static str {
        match self {
            Register::Agencies => "agencies.import",
            Register::Personnel => "personnel.import",
        }
    }
}

impl ImportReport {
    /// The counts, as the audit detail and the command line show them.
    pub fn summary(&self) -> String {
        format!(
            "inserted {}, updated {}, unchanged {}, separated {}",
            self.inserted, self.updated, self.unchanged, self.separated
        )
    }
}

/// Imports a register file for `actor` (the command line, an operator page): applied and
/// audited as `agencies.import` / `personnel.import` in one transaction; a refused file is
/// audited as `rejected` with the number of problems (never their text, which may quote people).
pub fn import(
    conn: &mut DbConn,
    protector: &DataProtector,
    register: Register,
    bytes: &[u8],
    actor: &Actor,
    now: i64,
) -> Result<ImportReport, ImportError> {
    let event = register.event();
    let applied = conn.transaction(|conn| {
        let report = match register {
            Register::Agencies => import_agencies(conn, bytes, now)?,
            Register::Personnel => import_personnel(conn, protector, bytes, now)?,
        };
        audit::record(conn, Event { detail: report.summary(), ..actor.event(event, "success") }, now)?;
        Ok(report)
    });
    if let Err(ImportError::Invalid(errors)) = &applied {
        let detail = format!("{} problem(s)", errors.len());
        audit::record(conn, Event { detail, ..actor.event(event, "rejected") }, now)?;
    }
    applied
}

/// Imports the agency table (機關代碼檔): `code,name,parent_code,oid`, upserting by code.
pub fn import_agencies(conn: &mut DbConn, bytes: &[u8], now: i64) -> Result<ImportReport, ImportError> {
    let mut errors = Vec::new();
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(ImportError::Invalid(vec![LineError { line: 0, message: "the file is too large".into() }]));
    }
    let rows = read_rows(bytes, &AGENCY_COLUMNS, &mut errors);
    conn.transaction(|conn| {
        let existing: HashMap<String, AgencyRow> = agencies::table
            .select(AgencyRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|a| (a.code.clone(), a))
            .collect();
        let in_file: HashSet<&str> = rows.iter().map(|(_, f)| f[0].as_str()).collect();
        let mut seen = HashSet::new();
        let mut valid = Vec::new();
        for (line, f) in &rows {
            let line = *line;
            let (code, name, parent, oid) = (&f[0], &f[1], &f[2], &f[3]);
            let mut bad = |m: String| errors.push(LineError { line, message: m });
            if !is_agency_code(code) {
                bad(format!("agency code `{code}` must be 1–20 letters or digits"));
                continue;
            }
            if !seen.insert(code.clone()) {
                bad(format!("agency code `{code}` appears more than once"));
                continue;
            }
            if name.is_empty() || name.chars().count() > 200 {
                bad("name must be 1–200 characters".into());
                continue;
            }
            if !parent.is_empty() && !existing.contains_key(parent) && !in_file.contains(parent.as_str()) {
                bad(format!("parent_code `{parent}` is not a known agency"));
                continue;
            }
            if !oid.is_empty() && !is_oid(oid) {
                bad(format!("oid `{oid}` is not a dotted object identifier"));
                continue;
            }
            valid.push(AgencyRow {
                code: code.clone(),
                name: name.clone(),
                parent_code: (!parent.is_empty()).then(|| parent.clone()),
                oid: (!oid.is_empty()).then(|| oid.clone()),
                updated_at: now,
            });
        }
        if !errors.is_empty() {
            return Err(ImportError::Invalid(std::mem::take(&mut errors)));
        }
        let mut report = ImportReport::default();
        for row in valid {
            match existing.get(&row.code) {
                Some(old) if old.name == row.name && old.parent_code == row.parent_code && old.oid == row.oid => {
                    report.unchanged += 1
                }
                Some(_) => {
                    diesel::update(agencies::table.find(&row.code)).set(&row).execute(conn)?;
                    report.updated += 1;
                }
                None => {
                    diesel::insert_into(agencies::table).values(&row).execute(conn)?;
                    report.inserted += 1;
                }
            }
        }
        Ok(report)
    })
}

fn is_email(s: &str) -> bool {
    s.len() <= 254 && s.parse::<lettre::Address>().is_ok()
}

/// Imports the personnel register: upserts by national ID; people who become separated have
/// their sessions, refresh tokens and one-time passwords ended in the same transaction, the
/// sessions marked for back-channel logout.
pub fn import_personnel(
    conn: &mut DbConn,
    protector: &DataProtector,
    bytes: &[u8],
    now: i64,
) -> Result<ImportReport, ImportError> {
    let mut errors = Vec::new();
    if bytes.len() > MAX_IMPORT_BYTES {
        return Err(ImportError::Invalid(vec![LineError { line: 0, message: "the file is too large".into() }]));
    }
    let rows = read_rows(bytes, &PERSONNEL_COLUMNS, &mut errors);
    conn.transaction(|conn| {
        let agency_codes: HashSet<String> = agencies::table.select(agencies::code).load(conn)?.into_iter().collect();
        let mut seen = HashMap::new();
        let mut valid = Vec::new();
        for (line, f) in &rows {
            let line = *line;
            let mut bad = |m: String| errors.push(LineError { line, message: m });
            let nid = match NationalId::parse(&f[0]) {
                Ok(n) => n,
                Err(e) => {
                    // The value itself is personal data: never echo it.
                    bad(format!("national_id is invalid: {e}"));
                    continue;
                }
            };
            if let Some(first) = seen.insert(nid.clone(), line) {
                bad(format!("national_id {nid} already appears on line {first}"));
                continue;
            }
            let (name, agency, unit, category, duty, status, email) = (&f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7]);
            if name.is_empty() || name.chars().count() > 100 {
                bad("name must be 1–100 characters".into());
                continue;
            }
            if !agency_codes.contains(agency) {
                bad(format!("agency_code `{agency}` is not in the agency table"));
                continue;
            }
            if unit.chars().count() > 100 || category.chars().count() > 10 || duty.chars().count() > 10 {
                bad("unit, person_category or concurrent_duty is too long".into());
                continue;
            }
            let Some(status) = PersonStatus::parse(status) else {
                bad(format!("status `{status}` must be active or separated"));
                continue;
            };
            if !email.is_empty() && !is_email(email) {
                bad(format!("email `{email}` is not a mail address"));
                continue;
            }
            valid.push((nid, f.clone(), status));
        }
        if !errors.is_empty() {
            return Err(ImportError::Invalid(std::mem::take(&mut errors)));
        }
        let mut report = ImportReport::default();
        for (nid, f, status) in valid {
            let index = protector.index(nid.expose());
            let existing: Option<PersonRow> = people::table
                .filter(people::national_id_index.eq(&index))
                .select(PersonRow::as_select())
                .first(conn)
                .optional()?;
            let mut row = PersonRow {
                id: random_token(16),
                national_id_index: index,
                national_id_sealed: protector.seal(nid.expose().as_bytes()),
                name: f[1].clone(),
                agency_code: f[2].clone(),
                unit: f[3].clone(),
                person_category: f[4].clone(),
                concurrent_duty: f[5].clone(),
                status: status.as_str().into(),
                email: f[7].clone(),
                updated_at: now,
            };
            match existing {
                None => {
                    diesel::insert_into(people::table).values(&row).execute(conn)?;
                    report.inserted += 1;
                }
                Some(old) => {
                    let same = old.name == row.name
                        && old.agency_code == row.agency_code
                        && old.unit == row.unit
                        && old.person_category == row.person_category
                        && old.concurrent_duty == row.concurrent_duty
                        && old.status == row.status
                        && old.email == row.email;
                    if same {
                        report.unchanged += 1;
                        continue;
                    }
                    row.id = old.id.clone();
                    row.national_id_sealed = old.national_id_sealed.clone();
                    diesel::update(people::table.find(&old.id)).set(&row).execute(conn)?;
                    report.updated += 1;
                    if status == PersonStatus::Separated && old.status != row.status {
                        report.ended_sessions.extend(end_access(conn, &old.id, now)?);
                        report.separated += 1;
                    }
                }
            }
        }
        Ok(report)
    })
}

/// Ends every session (marked for back-channel logout), refresh token and pending one-time
/// password of a person's account; returns the ended sessions' ids.
fn end_access(conn: &mut DbConn, person_id: &str, now: i64) -> Result<Vec<String>, InfraError> {
    let account_ids: Vec<String> =
        accounts::table.filter(accounts::person_id.eq(person_id)).select(accounts::id).load(conn)?;
    let mut sids = Vec::new();
    for id in &account_ids {
        sids.extend(super::access::end_sessions_and_tokens(conn, id, None, now)?.sids);
    }
    diesel::delete(one_time_passwords::table.filter(one_time_passwords::account_id.eq_any(&account_ids)))
        .execute(conn)?;
    Ok(sids)
}

/// Every agency code with the certificate policy OID its agency cards carry (if registered),
/// for mapping a presented agency card to its agency.
pub fn agency_oids(conn: &mut DbConn) -> Result<Vec<(String, Option<String>)>, InfraError> {
    Ok(agencies::table.select((agencies::code, agencies::oid)).load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_report_header_columns_and_encoding_problems_with_line_numbers() {
        let mut errors = Vec::new();
        let csv = b"code,name,parent_code,oid\nA1,X,,\nA2,Y\nA3,\xff\xfe,,\n";
        let rows = read_rows(csv, &AGENCY_COLUMNS, &mut errors);
        assert_eq!(rows.len(), 1);
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![3, 4]);
        let mut errors = Vec::new();
        read_rows(b"id,name\n", &AGENCY_COLUMNS, &mut errors);
        assert_eq!(errors[0].line, 1);
    }
}
