//! People and their accounts: the personnel register, accounts created on first identity proof,
//! activation, and one-time passwords.

pub mod access;
pub mod activation;
pub mod binding;
pub mod email_verification;
pub mod forgot;
pub mod one_time;
pub mod ownership;
pub mod register;
pub mod roles;
pub mod self_service;

use diesel::prelude::*;

use crate::crypto::DataProtector;
use crate::error::InfraError;
use crate::national_id::NationalId;
use crate::store::db::models::{AccountRow, PersonRow};
use crate::store::db::schema::{accounts, people};
use crate::store::db::DbConn;

/// Whether a register entry is currently employed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonStatus {
    Active,
    Separated,
}

impl PersonStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "separated" => Some(Self::Separated),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Separated => "separated",
        }
    }
}

/// A register entry, with the national ID opened.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub national_id: NationalId,
    pub name: String,
    pub agency_code: String,
    pub unit: String,
    pub person_category: String,
    pub concurrent_duty: String,
    pub status: PersonStatus,
    pub email: String,
}

impl Person {
    fn from_row(row: PersonRow, protector: &DataProtector) -> Result<Self, InfraError> {
        let nid = protector.open(&row.national_id_sealed)?;
        let nid = String::from_utf8(nid)
            .ok()
            .and_then(|s| NationalId::parse(&s).ok())
            .ok_or_else(|| InfraError::Internal("stored national ID does not parse".into()))?;
        Ok(Self {
            id: row.id,
            national_id: nid,
            name: row.name,
            agency_code: row.agency_code,
            unit: row.unit,
            person_category: row.person_category,
            concurrent_duty: row.concurrent_duty,
            status: PersonStatus::parse(&row.status).unwrap_or(PersonStatus::Separated),
            email: row.email,
        })
    }
}

/// Whether an account has been activated (custom account, e-mail and password set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// Created by a first identity proof; must go through activation before anything else.
    Pending,
    Active,
}

/// An account, one per register person. `id` is the opaque subject identifier.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub person_id: String,
    pub account_name: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub state: AccountState,
    /// Whether `email` was proven by a followed verification link (and has not changed since).
    pub email_verified: bool,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Self {
        Self {
            id: row.id,
            person_id: row.person_id,
            account_name: row.account_name,
            email: row.email,
            password_hash: row.password_hash,
            state: if row.state == "active" { AccountState::Active } else { AccountState::Pending },
            email_verified: row.email_verified_at.is_some(),
        }
    }
}

/// Looks a person up by national ID.
pub fn person_by_national_id(
    conn: &mut DbConn,
    protector: &DataProtector,
    nid: &NationalId,
) -> Result<Option<Person>, InfraError> {
    let row = people::table
        .filter(people::national_id_index.eq(protector.index(nid.expose())))
        .select(PersonRow::as_select())
        .first(conn)
        .optional()?;
    row.map(|r| Person::from_row(r, protector)).transpose()
}

/// Looks a person up by id.
pub fn person_by_id(conn: &mut DbConn, protector: &DataProtector, id: &str) -> Result<Option<Person>, InfraError> {
    let row = people::table.find(id).select(PersonRow::as_select()).get_result(conn).optional()?;
    row.map(|r| Person::from_row(r, protector)).transpose()
}

/// The account of a person, if one was created.
pub fn account_of_person(conn: &mut DbConn, person_id: &str) -> Result<Option<Account>, InfraError> {
    Ok(accounts::table
        .filter(accounts::person_id.eq(person_id))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()?
        .map(Account::from))
}

/// An account by its opaque id.
pub fn account_by_id(conn: &mut DbConn, id: &str) -> Result<Option<Account>, InfraError> {
    Ok(accounts::table.find(id).select(AccountRow::as_select()).get_result(conn).optional()?.map(Account::from))
}

/// An account with its register entry, in one query: every step of a sign-in (session check,
/// token, userinfo) needs both, and on PostgreSQL each query is a network round trip.
pub fn account_with_person(
    conn: &mut DbConn,
    protector: &DataProtector,
    id: &str,
) -> Result<Option<(Account, Person)>, InfraError> {
    let row: Option<(AccountRow, PersonRow)> = accounts::table
        .inner_join(people::table)
        .filter(accounts::id.eq(id))
        .select((AccountRow::as_select(), PersonRow::as_select()))
        .get_result(conn)
        .optional()?;
    row.map(|(a, p)| Ok((Account::from(a), Person::from_row(p, protector)?))).transpose()
}

/// Resolves what a person typed as "account or national ID" to their account and register
/// entry. National-ID-shaped input is looked up as a national ID (custom accounts can never
/// have that shape), anything else as a custom account, case-insensitively.
pub fn find_by_identifier(
    conn: &mut DbConn,
    protector: &DataProtector,
    identifier: &str,
) -> Result<Option<(Person, Option<Account>)>, InfraError> {
    let identifier = identifier.trim();
    if let Ok(nid) = NationalId::parse(identifier) {
        let Some(person) = person_by_national_id(conn, protector, &nid)? else { return Ok(None) };
        let account = account_of_person(conn, &person.id)?;
        return Ok(Some((person, account)));
    }
    let row = accounts::table
        .filter(accounts::account_name_key.eq(identifier.to_lowercase()))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()?;
    let Some(account) = row.map(Account::from) else { return Ok(None) };
    let Some(person) = person_by_id(conn, protector, &account.person_id)? else { return Ok(None) };
    Ok(Some((person, Some(account))))
}

/// Returns the person's account, creating a pending one (with a fresh opaque id) if needed.
pub fn ensure_account(conn: &mut DbConn, person: &Person, now: i64) -> Result<Account, InfraError> {
    if let Some(a) = account_of_person(conn, &person.id)? {
        return Ok(a);
    }
    let row = AccountRow {
        id: crate::crypto::random_token(16),
        person_id: person.id.clone(),
        account_name: None,
        account_name_key: None,
        email: None,
        password_hash: None,
        state: "pending".into(),
        created_at: now,
        updated_at: now,
        email_verified_at: None,
    };
    diesel::insert_into(accounts::table).values(&row).execute(conn)?;
    Ok(row.into())
}
