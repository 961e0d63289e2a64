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
