//! Claims about a person, released by scope.

use diesel::prelude::*;
use serde_json::{json, Map, Value};

use crate::accounts::{roles, Account, Person};
use crate::error::InfraError;
use crate::store::db::schema::agencies;
use crate::store::db::DbConn;

/// The claims of the userinfo response for the granted scopes.
///
/// `sub` is the subject as this client sees it (public or pairwise). The `national_id` claim is
/// released only when the scope was granted, which only clients allowed it can obtain.
pub fn userinfo(
    conn: &mut DbConn,
    sub: &str,
    account: &Account,
    person: &Person,
    scope: &[String],
) -> Result<Value, InfraError> {
    let has = |s: &str| scope.iter().any(|x| x == s);
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(sub));
    if has("profile") {
        claims.insert("name".into(), json!(person.name));
        if let Some(name) = &account.account_name {
            claims.insert("preferred_username".into(), json!(name));
        }
    }
    if has("email") {
        let own = account.email.clone().filter(|e| !e.is_empty());
        // The account's own address counts as verified once its mailed link was followed; the
        // register's address (shown until the person sets one) never was.
        let verified = own.is_some() && account.email_verified;
        let email = own.or_else(|| Some(person.email.clone()).filter(|e| !e.is_empty()));
        if let Some(email) = email {
            claims.insert("email".into(), json!(email));
            claims.insert("email_verified".into(), json!(verified));
        }
    }
    if has("agency") {
        let name: Option<String> =
            agencies::table.find(&person.agency_code).select(agencies::name).get_result(conn).optional()?;
        claims.insert("agency_code".into(), json!(person.agency_code));
        if let Some(name) = name {
            claims.insert("agency_name".into(), json!(name));
        }
        claims.insert("unit".into(), json!(person.unit));
    }
    if has("roles") {
        claims.insert("roles".into(), json!(roles::roles(person)));
    }
    if has("national_id") {
        claims.insert("national_id".into(), json!(person.national_id.expose()));
    }
    Ok(Value::Object(claims))
}

/// Claims the ID token carries besides the protocol's own: those of [`userinfo`] for the granted
/// scopes, as Keycloak and most providers include them, so an application has `name`, `email`,
/// `email_verified`, … without a second call. Never `national_id`: ID tokens travel back
/// through browsers (`id_token_hint` in logout URLs), so it is released only by userinfo.
pub fn for_id_token(
    conn: &mut DbConn,
    account: &Account,
    person: &Person,
    scope: &[String],
) -> Result<Map<String, Value>, InfraError> {
    let Value::Object(mut claims) = userinfo(conn, "", account, person, scope)? else { return Ok(Map::new()) };
    claims.remove("sub");
    claims.remove("national_id");
    Ok(claims)
}
