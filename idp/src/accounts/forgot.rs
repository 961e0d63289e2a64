//! 忘記密碼 (seed 000, 作法二): a person gives their national ID and an e-mail address; if the
//! address is the one in their register entry or on their account, a one-time password is mailed
//! to the address on record (the account's own once activated, else the register's; never the
//! typed one as such).
//!
//! Unlike a reset by HR staff, nothing the person already has ends: asking proves nothing about
//! who asks, so the old password, the sessions and the refresh tokens stay as they were until
//! the one-time password is used (then the activation form replaces the password). Nobody can
//! lock a colleague out by asking for them. Accounts holding a privileged role are never served
//! here, and neither are separated people. The caller gives the same answer whatever the
//! [`Outcome`], and runs this off the request path, so neither the page nor its timing says
//! whether anything matched.

use diesel::Connection;

use super::one_time::{self, Why, PRIVILEGED_ROLES};
use super::{account_of_person, ensure_account, person_by_national_id, roles, PersonStatus};
use crate::crypto::DataProtector;
use crate::error::InfraError;
use crate::mail::Mailer;
use crate::national_id::NationalId;
use crate::store::db::DbConn;

/// `issued_by` of the one-time passwords asked for on the sign-in page.
pub const ISSUED_BY: &str = "self:forgot";

/// What became of a request; for the audit log only, never for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Mailed to the address on record.
    Issued { account_id: String },
    /// No register entry has this national ID.
    NotInRegister,
    /// The person is separated: no password for them.
    Separated { account_id: Option<String> },
    /// The address is neither the register's nor the account's.
    Mismatch { account_id: Option<String> },
    /// The account holds `operator` or `helpdesk`: reset only on the server.
    Privileged { account_id: String },
    /// The address matched, but there is no address on record to mail to.
    NoAddress { account_id: Option<String> },
}

impl Outcome {
    /// The audit outcome.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Issued { .. } => "issued",
            Outcome::NotInRegister => "not_in_register",
            Outcome::Separated { .. } => "separated",
            Outcome::Mismatch { .. } => "mismatch",
            Outcome::Privileged { .. } => "privileged",
            Outcome::NoAddress { .. } => "no_address",
        }
    }

    /// The account concerned, if there is one.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Outcome::Issued { account_id } | Outcome::Privileged { account_id } => Some(account_id),
            Outcome::Separated { account_id }
            | Outcome::Mismatch { account_id }
            | Outcome::NoAddress { account_id } => account_id.as_deref(),
            Outcome::NotInRegister => None,
        }
    }
}

/// Whether a typed address names one on record (compared without case, as mail systems treat
/// them in practice); an empty record never matches.
pub fn matches(typed: &str, on_record: &[Option<&str>]) -> bool {
    let typed = typed.trim();
    !typed.is_empty()
        && on_record.iter().flatten().map(|a| a.trim()).any(|a| !a.is_empty() && a.eq_ignore_ascii_case(typed))
}

/// Handles one request: checks, and if everything holds stores and mails a one-time password
/// in one transaction (a mail that cannot be sent leaves no password behind).
pub fn request(
    conn: &mut DbConn,
    protector: &DataProtector,
    mailer: &Mailer,
    national_id: &NationalId,
    email: &str,
    ttl_secs: i64,
    now: i64,
) -> Result<Outcome, InfraError> {
    conn.transaction(|conn| {
        let Some(person) = person_by_national_id(conn, protector, national_id)? else {
            return Ok(Outcome::NotInRegister);
        };
        let existing = account_of_person(conn, &person.id)?;
        let account_id = existing.as_ref().map(|a| a.id.clone());
        if person.status == PersonStatus::Separated {
            return Ok(Outcome::Separated { account_id });
        }
        if !matches(email, &[Some(person.email.as_str()), existing.as_ref().and_then(|a| a.email.as_deref())]) {
            return Ok(Outcome::Mismatch { account_id });
        }
        if let Some(id) = &account_id {
            if roles::granted(conn, id)?.iter().any(|r| PRIVILEGED_ROLES.contains(&r.as_str())) {
                return Ok(Outcome::Privileged { account_id: id.clone() });
            }
        }
        let Some(to) = one_time::current_address(existing.as_ref(), &person) else {
            return Ok(Outcome::NoAddress { account_id });
        };
        let account = ensure_account(conn, &person, now)?;
        let (password, _) = one_time::store(conn, &account.id, ISSUED_BY, ttl_secs, now)?;
        mailer.send(&to, one_time::SUBJECT, one_time::body(&person, Why::Requested, &password, ttl_secs))?;
        Ok(Outcome::Issued { account_id: account.id })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_matches_one_on_record_whatever_its_case_and_never_an_empty_one() {
        let record = [Some("ming@example.gov.tw"), Some("own@example.com")];
        assert!(matches(" Ming@Example.gov.tw ", &record));
        assert!(matches("own@example.com", &record));
        assert!(!matches("other@example.com", &record));
        assert!(!matches("", &[Some(""), None]));
        assert!(!matches(" ", &[Some(" ")]));
        assert!(!matches("ming@example.gov.tw", &[None, Some("")]));
    }
}
