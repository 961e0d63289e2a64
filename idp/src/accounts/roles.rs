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
