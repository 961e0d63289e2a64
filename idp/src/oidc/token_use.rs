//! "May this person still use a token?" — one answer for the token endpoint (code and refresh
//! grants), introspection and userinfo. A token outlives nothing it was issued on: once the
//! register marks the person separated, or the account is gone, every token of theirs stops
//! working at once, whatever its expiry says. (Session and consent state are checked where they
//! are kept: a refresh token is revoked with its consent or session, see `refresh`.)

use crate::accounts::{self, Account, Person, PersonStatus};
use crate::crypto::DataProtector;
use crate::error::InfraError;
use crate::state::AppState;
use crate::store::db::DbConn;

/// The decision itself: only a person the register lists as active may use a token.
pub fn allowed(person: Option<&Person>) -> bool {
    person.is_some_and(|p| p.status == PersonStatus::Active)
}

/// The account and register entry behind a token, when the person may still use it.
pub fn usable_account(
    conn: &mut DbConn,
    protector: &DataProtector,
    account_id: &str,
) -> Result<Option<(Account, Person)>, InfraError> {
    Ok(accounts::account_with_person(conn, protector, account_id)?.filter(|(_, p)| allowed(Some(p))))
}

/// Whether the person behind `account_id` may still use a token.
pub async fn may_use(state: &AppState, account_id: &str) -> Result<bool, InfraError> {
    let id = account_id.to_string();
    let protector = state.protector.clone();
    state.db.run(move |c| Ok(usable_account(c, &protector, &id)?.is_some())).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::national_id::NationalId;

    fn person(status: PersonStatus) -> Person {
        Person {
            id: "p-1".into(),
            national_id: NationalId::parse("A123456789").unwrap(),
            name: "王小明".into(),
            agency_code: "A01".into(),
            unit: "資訊室".into(),
            person_category: "正式".into(),
            concurrent_duty: String::new(),
            status,
            email: "ming@example.gov.tw".into(),
        }
    }

    #[test]
    fn only_an_active_person_may_use_a_token() {
        assert!(allowed(Some(&person(PersonStatus::Active))));
        assert!(!allowed(Some(&person(PersonStatus::Separated))), "separated by the register");
        assert!(!allowed(None), "account or register entry gone");
    }
}
