//! Account activation: after a first identity proof, the person chooses a custom account,
//! an e-mail address and a password (typed twice) before reaching anything else.

use diesel::prelude::*;

use crate::authn::password::hash_password;
use crate::error::InfraError;
use crate::national_id::NationalId;
use crate::store::db::schema::accounts;
use crate::store::db::DbConn;

use super::Person;

/// Commonly used passwords of the allowed length, refused outright. Short ones are already
/// refused by the length rule.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Minimum password length.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Maximum password length (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// What the activation form sends.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ActivationForm {
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub password_confirm: String,
}

/// Why the form was refused; each variant is a message key in the page translations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    #[error("account_format")]
    AccountFormat,
    #[error("account_like_national_id")]
    AccountLikeNationalId,
    #[error("account_taken")]
    AccountTaken,
    #[error("email_invalid")]
    EmailInvalid,
    #[error("password_short")]
    PasswordTooShort,
    #[error("password_long")]
    PasswordTooLong,
    #[error("password_personal")]
    PasswordPersonal,
    #[error("password_common")]
    PasswordCommon,
    #[error("password_mismatch")]
    PasswordMismatch,
}

impl ActivationError {
    /// The translation key of the message.
    pub fn key(self) -> String {
        format!("err_{self}")
    }
}

/// Checks the form's rules that need no database.
pub fn check(form: &ActivationForm, person: &Person) -> Result<(), ActivationError> {
    check_account(&form.account)?;
    check_email(&form.email)?;
    check_password(&form.password, &form.password_confirm, &form.account, &form.email, person)
}

/// The custom-account rule, shared by activation and 我的專區 so the two can never disagree.
pub fn check_account(account: &str) -> Result<(), ActivationError> {
    let account = account.trim();
    let len = account.chars().count();
    if !(4..=32).contains(&len) || !account.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(ActivationError::AccountFormat);
    }
    if NationalId::looks_like(account) {
        return Err(ActivationError::AccountLikeNationalId);
    }
    Ok(())
}

/// The e-mail rule, shared by activation and 我的專區.
pub fn check_email(email: &str) -> Result<(), ActivationError> {
    let email = email.trim();
    if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
        return Err(ActivationError::EmailInvalid);
    }
    Ok(())
}

/// The password rules (length, not personal, not common, typed twice the same), shared by
/// activation and the password change in 我的專區; `account` and `email` are the ones the
/// password must differ from.
pub fn check_password(
    password: &str,
    confirm: &str,
    account: &str,
    email: &str,
    person: &Person,
) -> Result<(), ActivationError> {
    let (account, email) = (account.trim(), email.trim());
    let pw = password;
    let chars = pw.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(ActivationError::PasswordTooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(ActivationError::PasswordTooLong);
    }
    let lower = pw.to_lowercase();
    // A national ID is 10 characters, shorter than any allowed password: containing it is the
    // rule that can bite (A123456789 with a suffix is the classic guess).
    if lower == account.to_lowercase()
        || lower == email.to_lowercase()
        || lower.contains(&person.national_id.expose().to_lowercase())
    {
        return Err(ActivationError::PasswordPersonal);
    }
    let distinct: std::collections::HashSet<char> = pw.chars().collect();
    if distinct.len() < 4 || COMMON_PASSWORDS.lines().any(|c| c.trim() == lower) {
        return Err(ActivationError::PasswordCommon);
    }
    if pw != confirm {
        return Err(ActivationError::PasswordMismatch);
    }
    Ok(())
}

/// Whether another account already uses this custom account (compared case-insensitively).
pub fn account_taken(conn: &mut DbConn, account: &str, except_account_id: &str) -> Result<bool, InfraError> {
    let taken: i64 = accounts::table
        .filter(accounts::account_name_key.eq(account.trim().to_lowercase()))
        .filter(accounts::id.ne(except_account_id))
        .count()
        .get_result(conn)?;
    Ok(taken > 0)
}

/// Why activation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("{0}")]
    Rule(#[from] ActivationError),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// The password's Argon2id hash, for [`activate`], after the form's rules pass. CPU-bound: run
/// it off the async threads and outside any database call, so no pooled connection waits on it.
pub fn prepare(form: &ActivationForm, person: &Person) -> Result<String, ActivateError> {
    check(form, person)?;
    Ok(hash_password(&form.password)?)
}

/// Checks the form again (cheap) and, if it passes and the account name is free, activates the
/// account with the `hash` from [`prepare`].
pub fn activate(
    conn: &mut DbConn,
    account_id: &str,
    person: &Person,
    form: &ActivationForm,
    hash: &str,
    now: i64,
) -> Result<(), ActivateError> {
    check(form, person)?;
    let account = form.account.trim();
    let key = account.to_lowercase();
    if account_taken(conn, account, account_id)? {
        return Err(ActivationError::AccountTaken.into());
    }
    let verified = super::email_verification::verified_after_change(conn, account_id, &form.email)?;
    let updated = diesel::update(accounts::table.find(account_id))
        .set((
            accounts::account_name.eq(account),
            accounts::account_name_key.eq(&key),
            accounts::email.eq(form.email.trim()),
            accounts::email_verified_at.eq(verified),
            accounts::password_hash.eq(hash),
            accounts::state.eq("active"),
            accounts::updated_at.eq(now),
        ))
        .execute(conn);
    name_claimed(updated)
}

/// The outcome of an update that sets an account name. Two people racing for one name can
/// both pass [`account_taken`]; the unique index decides, and the loser is told it is taken.
pub(crate) fn name_claimed(updated: diesel::QueryResult<usize>) -> Result<(), ActivateError> {
    match updated {
        Ok(_) => Ok(()),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(ActivationError::AccountTaken.into())
        }
        Err(e) => Err(InfraError::from(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::PersonStatus;

    fn person() -> Person {
        Person {
            id: "p".into(),
            national_id: NationalId::parse("A123456789").unwrap(),
            name: "王小明".into(),
            agency_code: "A".into(),
            unit: "秘書室".into(),
            person_category: "01".into(),
            concurrent_duty: "".into(),
            status: PersonStatus::Active,
            email: "".into(),
        }
    }

    fn form(account: &str, pw: &str, confirm: &str) -> ActivationForm {
        ActivationForm {
            account: account.into(),
            email: "ming@example.gov.tw".into(),
            password: pw.into(),
            password_confirm: confirm.into(),
        }
    }

    #[test]
    fn activation_rules() {
        let p = person();
        assert_eq!(check(&form("ming.wang", "Tr0ub4dor&3xyz", "Tr0ub4dor&3xyz"), &p), Ok(()));
        assert_eq!(check(&form("abc", "Tr0ub4dor&3xyz", "Tr0ub4dor&3xyz"), &p), Err(ActivationError::AccountFormat));
        assert_eq!(
            check(&form("ming wang", "Tr0ub4dor&3xyz", "Tr0ub4dor&3xyz"), &p),
            Err(ActivationError::AccountFormat)
        );
        assert_eq!(
            check(&form("B123456789", "Tr0ub4dor&3xyz", "Tr0ub4dor&3xyz"), &p),
            Err(ActivationError::AccountLikeNationalId)
        );
        assert_eq!(check(&form("ming.wang", "short", "short"), &p), Err(ActivationError::PasswordTooShort));
        assert_eq!(
            check(&form("ming.wang.1234", "Ming.Wang.1234", "Ming.Wang.1234"), &p),
            Err(ActivationError::PasswordPersonal)
        );
        assert_eq!(
            check(&form("ming.wang", "a123456789-2026", "a123456789-2026"), &p),
            Err(ActivationError::PasswordPersonal),
            "contains the national ID"
        );
        assert_eq!(
            check(&form("ming.wang", "Ming@Example.gov.tw", "Ming@Example.gov.tw"), &p),
            Err(ActivationError::PasswordPersonal),
            "equals the e-mail"
        );
        assert_eq!(
            check(&form("ming.wang", "2026-B123456789", "2026-B123456789"), &p),
            Ok(()),
            "another person's national ID is not personal"
        );
        assert_eq!(check(&form("ming.wang", "password1234", "password1234"), &p), Err(ActivationError::PasswordCommon));
        assert_eq!(
            check(&form("ming.wang", "aaaaaaaaaaaaaa", "aaaaaaaaaaaaaa"), &p),
            Err(ActivationError::PasswordCommon)
        );
        assert_eq!(
            check(&form("ming.wang", "Tr0ub4dor&3xyz", "Tr0ub4dor&3xyw"), &p),
            Err(ActivationError::PasswordMismatch)
        );
    }

    #[test]
    fn password_lengths_are_counted_in_characters_and_both_limits_are_allowed() {
        let p = person();
        let pw = |s: &str| check_password(s, s, "ming.wang", "ming@example.gov.tw", &p);
        assert_eq!(pw("Tr0ub4dor&3x"), Ok(()), "12 characters");
        assert_eq!(pw("Tr0ub4dor&3"), Err(ActivationError::PasswordTooShort), "11 characters");
        assert_eq!(pw("人事行政總處密碼很安全吧"), Ok(()), "12 Chinese characters, 36 bytes");
        let long = "Tr0ub4dor&3xyz-".repeat(9);
        assert_eq!(pw(&long[..128]), Ok(()), "128 characters");
        assert_eq!(pw(&long[..129]), Err(ActivationError::PasswordTooLong), "129 characters");
    }

    #[test]
    fn four_different_characters_are_enough_and_three_are_not() {
        let p = person();
        let pw = |s: &str| check_password(s, s, "ming.wang", "ming@example.gov.tw", &p);
        assert_eq!(pw("abcdabcdabcd"), Ok(()));
        assert_eq!(pw("abcabcabcabc"), Err(ActivationError::PasswordCommon));
    }

    #[test]
    fn the_e_mail_must_be_an_address_of_at_most_254_characters() {
        assert_eq!(check_email(" ming@example.gov.tw "), Ok(()));
        for bad in ["", "ming", "ming@", "@example.gov.tw", "ming wang@example.gov.tw"] {
            assert_eq!(check_email(bad), Err(ActivationError::EmailInvalid), "{bad:?}");
        }
        // A valid address of 254 characters, and the same with one more.
        let domain = format!("{}.{}.{}.gov.tw", "a".repeat(63), "b".repeat(63), "c".repeat(63));
        let at_limit = format!("{}@{domain}", "m".repeat(254 - 1 - domain.len()));
        assert_eq!(at_limit.len(), 254);
        assert_eq!(check_email(&at_limit), Ok(()));
        assert_eq!(check_email(&format!("m{at_limit}")), Err(ActivationError::EmailInvalid));
    }

    #[test]
    fn each_refusal_names_its_message() {
        assert_eq!(ActivationError::PasswordMismatch.key(), "err_password_mismatch");
        assert_eq!(ActivationError::AccountLikeNationalId.key(), "err_account_like_national_id");
    }
}
