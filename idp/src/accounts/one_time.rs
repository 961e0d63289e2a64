//! One-time passwords issued by the helpdesk or HR staff: random, mailed, stored only as a
//! hash, single use, expiring, and replaced by the next one. There is no default password.

use diesel::prelude::*;
use rand::Rng;

use crate::crypto::{sha256_b64, DataProtector};
use crate::error::InfraError;
use crate::mail::Mailer;
use crate::national_id::NationalId;
use crate::store::db::models::OneTimePasswordRow;
use crate::store::db::schema::one_time_passwords;
use crate::store::db::DbConn;

use super::{ensure_account, person_by_national_id, Account, Person, PersonStatus};

/// Characters of a one-time password: no look-alikes (0/O, 1/l/I) so it can be typed from mail.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
/// 16 characters of 57 symbols: about 93 bits, far beyond guessing within the throttle.
const LENGTH: usize = 16;

/// Generates a one-time password from the operating system's CSPRNG.
pub fn generate() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..LENGTH).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// Why a one-time password was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("no one with this national ID is in the personnel register")]
    NotInRegister,
    #[error("this person is separated (not currently employed); no password can be issued")]
    Separated,
    #[error("`{0}` is not a valid e-mail address")]
    BadEmail(String),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<diesel::result::Error> for IssueError {
    fn from(e: diesel::result::Error) -> Self {
        IssueError::Infra(e.into())
    }
}

/// Who gets a one-time password, where it is mailed, and by whom.
#[derive(Debug, Clone, Copy)]
pub struct IssueRequest<'a> {
    pub national_id: &'a NationalId,
    pub email: &'a str,
    /// `helpdesk:cli`, an HR staff account id, …: recorded with the password.
    pub issued_by: &'a str,
    pub ttl_secs: i64,
}

/// A one-time password that was stored and mailed.
#[derive(Debug)]
pub struct Issued {
    pub account: Account,
    pub person: Person,
    pub expires_at: i64,
}

/// Issues a one-time password for a person and mails it to `email`.
///
/// The password is stored (hashed) and mailed inside one transaction: if the mail cannot be
/// delivered the transaction rolls back, so no usable password exists that nobody received,
/// and any earlier one stays as it was.
pub fn issue(
    conn: &mut DbConn,
    protector: &DataProtector,
    mailer: &Mailer,
    request: &IssueRequest<'_>,
    now: i64,
) -> Result<Issued, IssueError> {
    let IssueRequest { national_id: nid, email, issued_by, ttl_secs } = *request;
    let email = email.trim();
    if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
        return Err(IssueError::BadEmail(email.to_string()));
    }
    conn.transaction(|conn| {
        let person = person_by_national_id(conn, protector, nid)?.ok_or(IssueError::NotInRegister)?;
        if person.status == PersonStatus::Separated {
            return Err(IssueError::Separated);
        }
        let account = ensure_account(conn, &person, now)?;
        let password = generate();
        let row = OneTimePasswordRow {
            account_id: account.id.clone(),
            password_hash: sha256_b64(password.as_bytes()),
            issued_by: issued_by.to_string(),
            created_at: now,
            expires_at: now + ttl_secs,
        };
        diesel::delete(one_time_passwords::table.find(&account.id)).execute(conn).map_err(InfraError::from)?;
        diesel::insert_into(one_time_passwords::table).values(&row).execute(conn).map_err(InfraError::from)?;
        mailer.send(email, "人事服務網一次性密碼 / One-time password", body(&person, &password, ttl_secs))?;
        Ok(Issued { account, person, expires_at: row.expires_at })
    })
}

fn body(person: &Person, password: &str, ttl_secs: i64) -> String {
    let hours = ttl_secs / 3600;
    format!(
        "{name} 您好：\n\n\
         人事人員已為您重設人事服務網的登入密碼。請於登入頁面的帳號欄輸入身分證號，密碼欄輸入下列一次性密碼，\
         登入後需設定自訂帳號、電子郵件及登入密碼，輸入新密碼兩次後，點選【送出】，即完成帳號密碼設定。\n\
         此密碼僅能使用一次，{hours} 小時後失效，且無法再提供查詢，請妥善保管。\n\n\
         一次性密碼: {password}\n\n\
         Your HR staff have reset your sign-in password. Sign in with your national ID and the one-time\n\
         password above; you will then choose a custom account, e-mail and password. It works once and\n\
         expires in {hours} hours.\n",
        name = person.name,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = super::generate();
        assert_eq!(a.chars().count(), 16);
        assert_ne!(a, super::generate());
        assert!(a.bytes().all(|b| super::ALPHABET.contains(&b)));
    }
}
