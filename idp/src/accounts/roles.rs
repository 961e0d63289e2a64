//! Roles derived from the personnel register.

use super::{Person, PersonStatus};

/// The HR-staff rule (register "table 2"): not separated, and at least one of person category
/// `08` (人事人員), a unit whose name contains 人事, or concurrent duty `5` (兼辦人事).
pub fn is_hr_staff(p: &Person) -> bool {
    p.status == PersonStatus::Active
        && (p.person_category == "08" || p.unit.contains("人事") || p.concurrent_duty == "5")
}

/// The `roles` claim for a person.
pub fn roles(p: &Person) -> Vec<&'static str> {
    let mut roles = vec!["employee"];
    if is_hr_staff(p) {
        roles.push("hr_staff");
    }
    roles
}

/// Roles an operator can grant; the others come from the register.
pub const GRANTABLE: [&str; 2] = ["helpdesk", "operator"];

/// Grants a role to an account (idempotent).
pub fn grant(
    conn: &mut crate::store::db::DbConn,
    account_id: &str,
    role: &str,
    by: &str,
    now: i64,
) -> Result<(), crate::error::InfraError> {
    use crate::store::db::models::AccountRoleRow;
    use crate::store::db::schema::account_roles;
    use diesel::prelude::*;
    let exists: i64 = account_roles::table.find((account_id, role)).count().get_result(conn)?;
    if exists == 0 {
        let row =
            AccountRoleRow { account_id: account_id.into(), role: role.into(), granted_by: by.into(), granted_at: now };
        diesel::insert_into(account_roles::table).values(&row).execute(conn)?;
    }
    Ok(())
}

/// Withdraws a granted role; returns whether it was held.
pub fn revoke(
    conn: &mut crate::store::db::DbConn,
    account_id: &str,
    role: &str,
) -> Result<bool, crate::error::InfraError> {
    use crate::store::db::schema::account_roles;
    use diesel::prelude::*;
    Ok(diesel::delete(account_roles::table.find((account_id, role))).execute(conn)? > 0)
}

/// The roles granted to an account.
pub fn granted(conn: &mut crate::store::db::DbConn, account_id: &str) -> Result<Vec<String>, crate::error::InfraError> {
    use crate::store::db::schema::account_roles;
    use diesel::prelude::*;
    Ok(account_roles::table.filter(account_roles::account_id.eq(account_id)).select(account_roles::role).load(conn)?)
}

/// What [`change_by`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Granted,
    AlreadyHeld,
    Withdrawn,
    NotHeld,
}

impl RoleChange {
    /// The audit outcome.
    pub fn outcome(self) -> &'static str {
        match self {
            RoleChange::Granted | RoleChange::Withdrawn => "success",
            RoleChange::AlreadyHeld => "already_held",
            RoleChange::NotHeld => "not_held",
        }
    }
}

/// Why a role was not granted or withdrawn.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("no one with this national ID is in the personnel register")]
    NotInRegister,
    #[error("this person is separated (not in service); no role can be granted")]
    Separated,
    #[error(transparent)]
    Infra(#[from] crate::error::InfraError),
}

impl RoleError {
    /// The audit outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            RoleError::NotInRegister => "not_in_register",
            RoleError::Separated => "separated",
            RoleError::Infra(_) => "error",
        }
    }
}

impl From<diesel::result::Error> for RoleError {
    fn from(e: diesel::result::Error) -> Self {
        RoleError::Infra(e.into())
    }
}

/// Grants (`grant`) or withdraws a role by national ID for `actor`, audited as `role.grant` /
/// `role.revoke` in the same transaction, the national ID only masked. The helpdesk and
/// operator roles are not in the register, so they are given by national ID; the account is
/// created (pending) if the person never signed in, so the role is there at their first sign-in.
pub fn change_by(
    conn: &mut crate::store::db::DbConn,
    protector: &crate::crypto::DataProtector,
    national_id: &crate::national_id::NationalId,
    role: &str,
    grant: bool,
    actor: &crate::audit::Actor,
    now: i64,
) -> Result<RoleChange, RoleError> {
    use crate::audit::{self, Event};
    use diesel::Connection;
    let event = if grant { "role.grant" } else { "role.revoke" };
    let detail = format!("{role} for {national_id}");
    let changed = conn.transaction(|conn| {
        let person = super::person_by_national_id(conn, protector, national_id)?.ok_or(RoleError::NotInRegister)?;
        if grant && person.status == PersonStatus::Separated {
            return Err(RoleError::Separated);
        }
        let (account, change) = if grant {
            let account = super::ensure_account(conn, &person, now)?;
            let held = granted(conn, &account.id)?.iter().any(|r| r == role);
            self::grant(conn, &account.id, role, &actor.id, now)?;
            (Some(account), if held { RoleChange::AlreadyHeld } else { RoleChange::Granted })
        } else {
            match super::account_of_person(conn, &person.id)? {
                Some(account) => {
                    let held = revoke(conn, &account.id, role)?;
                    (Some(account), if held { RoleChange::Withdrawn } else { RoleChange::NotHeld })
                }
                None => (None, RoleChange::NotHeld),
            }
        };
        let e = Event {
            account_id: account.as_ref().map(|a| a.id.as_str()),
            detail: detail.clone(),
            ..actor.event(event, change.outcome())
        };
        audit::record(conn, e, now)?;
        Ok(change)
    });
    if let Err(e @ (RoleError::NotInRegister | RoleError::Separated)) = &changed {
        audit::record(conn, Event { detail, ..actor.event(event, e.outcome()) }, now)?;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::national_id::NationalId;

    fn person(category: &str, unit: &str, duty: &str, status: PersonStatus) -> Person {
        Person {
            id: "p-1".into(),
            national_id: NationalId::parse("A123456789").expect("valid"),
            name: "王小明".into(),
            agency_code: "A21000000I".into(),
            unit: unit.into(),
            person_category: category.into(),
            concurrent_duty: duty.into(),
            status,
            email: String::new(),
        }
    }

    #[test]
    fn hr_staff_is_any_one_mark_of_table_2_and_never_a_separated_person() {
        use PersonStatus::{Active, Separated};
        let rows = [
            ("an employee with none of the marks", person("01", "資訊處", "", Active), false),
            ("person category 08 alone", person("08", "資訊處", "", Active), true),
            ("a unit named 人事室 alone", person("01", "人事室", "", Active), true),
            ("a unit containing 人事 anywhere", person("01", "秘書處人事科", "", Active), true),
            ("concurrent duty 5 alone", person("01", "資訊處", "5", Active), true),
            ("another category", person("09", "資訊處", "", Active), false),
            ("another concurrent duty", person("01", "資訊處", "4", Active), false),
            ("separated, with every mark", person("08", "人事室", "5", Separated), false),
            ("separated, category 08 only", person("08", "資訊處", "", Separated), false),
        ];
        for (rule, p, want) in &rows {
            assert_eq!(is_hr_staff(p), *want, "{rule}");
        }
    }

    #[test]
    fn the_roles_claim_is_employee_plus_hr_staff_when_the_rule_holds() {
        assert_eq!(roles(&person("01", "資訊處", "", PersonStatus::Active)), ["employee"]);
        assert_eq!(roles(&person("01", "資訊處", "5", PersonStatus::Active)), ["employee", "hr_staff"]);
        assert_eq!(roles(&person("08", "人事室", "5", PersonStatus::Separated)), ["employee"]);
    }

    #[test]
    fn only_a_real_change_is_a_success() {
        assert_eq!(RoleChange::Granted.outcome(), "success");
        assert_eq!(RoleChange::Withdrawn.outcome(), "success");
        assert_eq!(RoleChange::AlreadyHeld.outcome(), "already_held");
        assert_eq!(RoleChange::NotHeld.outcome(), "not_held");
        assert_eq!(RoleError::NotInRegister.outcome(), "not_in_register");
        assert_eq!(RoleError::Separated.outcome(), "separated");
    }
}
