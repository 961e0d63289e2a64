//! Imports of the agency table and the personnel register from the HR reporting system's CSV.
//!
//! All or nothing: every problem is reported with its line number, and a file with any problem
//! applies nothing. The personnel register is streamed: rows are read, checked and written in
//! chunks inside one transaction (rolled back at the end if any line was wrong), and only the
//! rows that differ from the register are written, so a re-import of a million people with a
//! few changes writes only those few.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, Read};

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
/// Problems listed at most; beyond them only their number is reported.
pub const MAX_LISTED_PROBLEMS: usize = 1000;
/// Rows read, checked and written together: one look-up of the register and one multi-row
/// insert per chunk (11 values a row stay far below both backends' bind-parameter limits).
const CHUNK: usize = 1000;

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

/// The problems of one file: the first [`MAX_LISTED_PROBLEMS`] with their lines, then a count.
#[derive(Default)]
struct Problems {
    listed: Vec<LineError>,
    more: u64,
}

impl Problems {
    fn push(&mut self, line: u64, message: String) {
        if self.listed.len() < MAX_LISTED_PROBLEMS {
            self.listed.push(LineError { line, message });
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    fn into_error(mut self) -> ImportError {
        if self.more > 0 {
            let line = self.listed.last().map_or(0, |e| e.line);
            self.listed.push(LineError { line, message: format!("and {} more problem(s) after this line", self.more) });
        }
        ImportError::Invalid(self.listed)
    }
}

/// Reads CSV rows one at a time as UTF-8 strings with their line numbers, checking the header
/// and the column count of every row, and hands each good row to `row`; problems go to
/// `problems`. Holds one row at a time, whatever the size of the input.
fn for_each_row(
    input: impl Read,
    header: &[&str],
    problems: &mut Problems,
    mut row: impl FnMut(u64, Vec<String>, &mut Problems) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    // A final `\n` is added so that every row, the last one too, ends in one (see `line` below).
    let mut input = BufReader::with_capacity(256 * 1024, input.take(MAX_IMPORT_BYTES as u64 + 1).chain(&b"\n"[..]));
    let starts_with_bom = match input.fill_buf() {
        Ok(start) => start.starts_with(b"\xEF\xBB\xBF"),
        Err(e) => {
            problems.push(1, format!("unreadable: {e}"));
            return Ok(());
        }
    };
    if starts_with_bom {
        input.consume(3);
    }
    // Rows end at `\n` only (a `\r` before it is trimmed with the field). csv's own record
    // positions are those of the bytes it skipped before a record, so with its default CRLF
    // terminator every line number of a file exported on Windows was one too low, and a row
    // after a blank line got the blank line's number.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                problems.push(line, format!("unreadable CSV: {e}"));
                break;
            }
        }
        // One more than the limit: the `\n` added at the end.
        if reader.position().byte() > MAX_IMPORT_BYTES as u64 + 1 {
            problems.push(0, "the file is too large".into());
            return Ok(());
        }
        // The reader stands just past the row's final `\n`; the row began as many lines
        // before as it holds line breaks (inside quoted fields), plus that one.
        let breaks = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
        let line = reader.position().line().saturating_sub(1 + breaks).max(line);
        let mut fields = Vec::with_capacity(record.len());
        let mut utf8 = true;
        for field in record.iter() {
            match std::str::from_utf8(field) {
                Ok(s) => fields.push(s.trim().to_string()),
                Err(_) => utf8 = false,
            }
        }
        if !utf8 {
            problems.push(line, "not valid UTF-8".into());
            first = false;
            continue;
        }
        if first {
            first = false;
            if fields != header {
                problems.push(line, format!("the header must be `{}`", header.join(",")));
                return Ok(());
            }
            continue;
        }
        if fields.len() == 1 && fields[0].is_empty() {
            continue; // a blank line
        }
        if fields.len() != header.len() {
            problems.push(line, format!("expected {} columns, found {}", header.len(), fields.len()));
            continue;
        }
        row(line, fields, problems)?;
    }
    if first {
        problems.push(1, format!("the file is empty; the header must be `{}`", header.join(",")));
    }
    Ok(())
}

/// Every good row of a small file, for the agency table.
fn read_rows(
    input: impl Read,
    header: &[&str],
    problems: &mut Problems,
) -> Result<Vec<(u64, Vec<String>)>, ImportError> {
    let mut rows = Vec::new();
    for_each_row(input, header, problems, |line, fields, _| {
        rows.push((line, fields));
        Ok(())
    })?;
    Ok(rows)
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
    input: impl Read,
    actor: &Actor,
    now: i64,
) -> Result<ImportReport, ImportError> {
    let event = register.event();
    let applied = conn.transaction(|conn| {
        let report = match register {
            Register::Agencies => import_agencies(conn, input, now)?,
            Register::Personnel => import_personnel(conn, protector, input, now)?,
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
pub fn import_agencies(conn: &mut DbConn, input: impl Read, now: i64) -> Result<ImportReport, ImportError> {
    let mut problems = Problems::default();
    let rows = read_rows(input, &AGENCY_COLUMNS, &mut problems)?;
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
            let mut bad = |m: String| problems.push(line, m);
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
        if !problems.is_empty() {
            return Err(std::mem::take(&mut problems).into_error());
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

/// A checked row of the personnel register, waiting for its chunk to be written.
struct PersonLine {
    nid: NationalId,
    index: String,
    fields: Vec<String>,
    status: PersonStatus,
}

/// Imports the personnel register: upserts by national ID; people who become separated have
/// their sessions, refresh tokens and one-time passwords ended in the same transaction, the
/// sessions marked for back-channel logout. Streamed in chunks of [`CHUNK`] rows; after the
/// first problem nothing more is written, the rest is only checked, and the transaction is
/// rolled back. What grows with the file is one hash-table entry a person (a 64-bit hash of the
/// national ID's index and its first line, about 17–34 bytes with the table's spare room), to
/// report a repeat: some 32 MiB for a million people, against a 100 MB file.
pub fn import_personnel(
    conn: &mut DbConn,
    protector: &DataProtector,
    input: impl Read,
    now: i64,
) -> Result<ImportReport, ImportError> {
    conn.transaction(|conn| {
        let agency_codes: HashSet<String> = agencies::table.select(agencies::code).load(conn)?.into_iter().collect();
        let mut problems = Problems::default();
        // A repeat is found by a 64-bit hash of the keyed index: the index is an HMAC, so
        // nobody can make two national IDs collide on purpose, and a chance collision (about
        // 1 in 30 million for a million people) refuses the file rather than merging people.
        let hasher = std::collections::hash_map::RandomState::new();
        let mut first_line: HashMap<u64, u32> = HashMap::new();
        let mut chunk: Vec<PersonLine> = Vec::with_capacity(CHUNK);
        let mut report = ImportReport::default();
        for_each_row(input, &PERSONNEL_COLUMNS, &mut problems, |line, f, problems| {
            let mut bad = |m: String| problems.push(line, m);
            let nid = match NationalId::parse(&f[0]) {
                Ok(n) => n,
                Err(e) => {
                    // The value itself is personal data: never echo it.
                    bad(format!("national_id is invalid: {e}"));
                    return Ok(());
                }
            };
            let index = protector.index(nid.expose());
            let line32 = u32::try_from(line).unwrap_or(u32::MAX);
            if let Some(first) = first_line.insert(hasher.hash_one(&index), line32) {
                first_line.insert(hasher.hash_one(&index), first);
                bad(format!("national_id {nid} already appears on line {first}"));
                return Ok(());
            }
            let (name, agency, unit, category, duty, status, email) = (&f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7]);
            if name.is_empty() || name.chars().count() > 100 {
                bad("name must be 1–100 characters".into());
                return Ok(());
            }
            if !agency_codes.contains(agency) {
                bad(format!("agency_code `{agency}` is not in the agency table"));
                return Ok(());
            }
            if unit.chars().count() > 100 || category.chars().count() > 10 || duty.chars().count() > 10 {
                bad("unit, person_category or concurrent_duty is too long".into());
                return Ok(());
            }
            let Some(status) = PersonStatus::parse(status) else {
                bad(format!("status `{status}` must be active or separated"));
                return Ok(());
            };
            if !email.is_empty() && !is_email(email) {
                bad(format!("email `{email}` is not a mail address"));
                return Ok(());
            }
            if problems.is_empty() {
                chunk.push(PersonLine { nid, index, fields: f, status });
                if chunk.len() == CHUNK {
                    write_people(conn, protector, &mut chunk, &mut report, now)?;
                }
            }
            Ok(())
        })?;
        if !problems.is_empty() {
            return Err(problems.into_error());
        }
        write_people(conn, protector, &mut chunk, &mut report, now)?;
        Ok(report)
    })
}

/// Writes one chunk: one look-up of who is already registered, one multi-row insert of the
/// new, an update for each changed row only; empties `chunk`.
fn write_people(
    conn: &mut DbConn,
    protector: &DataProtector,
    chunk: &mut Vec<PersonLine>,
    report: &mut ImportReport,
    now: i64,
) -> Result<(), ImportError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let indexes: Vec<&str> = chunk.iter().map(|p| p.index.as_str()).collect();
    let mut existing: HashMap<String, PersonRow> = people::table
        .filter(people::national_id_index.eq_any(&indexes))
        .select(PersonRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|p| (p.national_id_index.clone(), p))
        .collect();
    let mut new = Vec::new();
    for PersonLine { nid, index, fields: f, status } in chunk.drain(..) {
        let old = existing.remove(&index);
        let mut row = PersonRow {
            id: String::new(),
            national_id_index: index,
            national_id_sealed: String::new(),
            name: f[1].clone(),
            agency_code: f[2].clone(),
            unit: f[3].clone(),
            person_category: f[4].clone(),
            concurrent_duty: f[5].clone(),
            status: status.as_str().into(),
            email: f[7].clone(),
            updated_at: now,
        };
        let Some(old) = old else {
            row.id = random_token(16);
            row.national_id_sealed = protector.seal(nid.expose().as_bytes());
            new.push(row);
            continue;
        };
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
    report.inserted += new.len();
    if !new.is_empty() {
        // diesel builds a multi-row insert for each backend, not for the enum over both.
        let insert = diesel::insert_into(people::table).values(&new);
        match conn {
            DbConn::Postgresql(pg) => insert.execute(pg)?,
            DbConn::Sqlite(lite) => insert.execute(lite)?,
        };
    }
    Ok(())
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
        let mut problems = Problems::default();
        let csv = b"\xEF\xBB\xBFcode,name,parent_code,oid\nA1,X,,\nA2,Y\nA3,\xff\xfe,,\n";
        let rows = read_rows(&csv[..], &AGENCY_COLUMNS, &mut problems).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(problems.listed.iter().map(|e| e.line).collect::<Vec<_>>(), vec![3, 4]);
        let mut problems = Problems::default();
        read_rows(&b"id,name\n"[..], &AGENCY_COLUMNS, &mut problems).unwrap();
        assert_eq!(problems.listed[0].line, 1);
    }

    /// A reader handing out at most three bytes a call, as a slow upload or pipe does.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn streamed_rows_keep_their_line_numbers_across_reads_quoted_newlines_and_blank_lines() {
        // Lines 1–2 end in CRLF (line 2 with a quoted empty field); line 3 holds a quoted field
        // spanning two lines, so the next row starts on line 5; line 6 is blank, line 7 has a column too few, line 8 is not UTF-8, line 9 has no final line break.
        let csv = "\u{FEFF}code,name,parent_code,oid\r\nA1,甲,,\"\"\r\nA2,\"two\nlines\",A1,\nA3,丙,,\n\nA4,丁,\n"
            .as_bytes()
            .iter()
            .copied()
            .chain(*b"A5,\xff,,\nA6,\xe6\x88\x8a,,")
            .collect::<Vec<u8>>();
        let mut problems = Problems::default();
        let mut seen = Vec::new();
        for_each_row(Trickle(&csv), &AGENCY_COLUMNS, &mut problems, |line, fields, _| {
            seen.push((line, fields[0].clone(), fields[1].clone()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (2, "A1".into(), "甲".into()),
                (3, "A2".into(), "two\nlines".into()),
                (5, "A3".into(), "丙".into()),
                (9, "A6".into(), "戊".into()),
            ]
        );
        let lines: Vec<(u64, &str)> = problems.listed.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(lines, vec![(7, "expected 4 columns, found 3"), (8, "not valid UTF-8")]);
    }

    #[test]
    fn problems_beyond_the_listed_ones_are_counted() {
        let mut problems = Problems::default();
        for line in 0..MAX_LISTED_PROBLEMS as u64 + 5 {
            problems.push(line + 2, "bad".into());
        }
        let ImportError::Invalid(listed) = problems.into_error() else { panic!("not a refusal") };
        assert_eq!(listed.len(), MAX_LISTED_PROBLEMS + 1);
        assert!(listed[MAX_LISTED_PROBLEMS].message.contains("5 more"), "{:?}", listed.last());
    }
}
