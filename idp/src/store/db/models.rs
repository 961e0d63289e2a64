//! Rows as diesel reads and writes them. Domain modules turn these into their own types.

use diesel::prelude::*;

use super::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = agencies)]
pub struct AgencyRow {
    pub code: String,
    pub name: String,
    pub parent_code: Option<String>,
    pub oid: Option<String>,
    pub updated_at: i64,
}

#[derive(Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = people)]
pub struct PersonRow {
    pub id: String,
    pub national_id_index: String,
    pub national_id_sealed: String,
    pub name: String,
    pub agency_code: String,
    pub unit: String,
    pub person_category: String,
    pub concurrent_duty: String,
    pub status: String,
    pub email: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = accounts)]
pub struct AccountRow {
    pub id: String,
    pub person_id: String,
    pub account_name: Option<String>,
    pub account_name_key: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the current e-mail was proven by a followed link; `None` while it is not.
    pub email_verified_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_verifications)]
pub struct EmailVerificationRow {
    pub token_hash: String,
    pub account_id: String,
    pub email: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = one_time_passwords)]
pub struct OneTimePasswordRow {
    pub account_id: String,
    pub password_hash: String,
    pub issued_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub kind: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub id_token_alg: String,
    pub created_at: i64,
    pub token_endpoint_auth_method: String,
    pub grant_types: String,
    pub scope: String,
    pub subject_type: String,
    pub consent: String,
    pub min_acr: Option<String>,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub registration_token_hash: Option<String>,
    pub updated_at: i64,
    pub audience: String,
    pub portal_category: Option<String>,
    pub portal_description: Option<String>,
    pub portal_url: Option<String>,
    pub disabled_at: Option<i64>,
    pub client_credentials_allowed: bool,
    pub resource_server: bool,
    pub request_object_signing_alg: Option<String>,
    pub require_signed_request_object: bool,
    pub require_pushed_authorization_requests: bool,
    pub dpop_bound_access_tokens: bool,
    pub fapi2: bool,
    pub resource_uri: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = consents)]
pub struct ConsentRow {
    pub account_id: String,
    pub client_id: String,
    pub scope: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub id: String,
    pub family_id: String,
    pub account_id: String,
    pub client_id: String,
    pub scope: String,
    pub sid: String,
    pub auth_time: i64,
    pub acr: String,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub dpop_jkt: Option<String>,
    pub resource: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = session_clients)]
pub struct SessionClientRow {
    pub sid: String,
    pub client_id: String,
    pub account_id: String,
    pub created_at: i64,
    /// Set when the session was ended and its back-channel logout is still to be sent.
    pub ended_at: Option<i64>,
}

/// One owed back-channel logout delivery (see `oidc::backchannel`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = logout_outbox)]
pub struct OutboxRow {
    pub sid: String,
    pub client_id: String,
    pub account_id: String,
    pub created_at: i64,
    /// When the row is next due; while a node holds it, the end of that node's lease.
    pub next_attempt_at: i64,
    /// Attempts claimed so far, the current one included.
    pub attempts: i32,
    pub done_at: Option<i64>,
    /// `delivered`, `given_up` or `no_endpoint`, once done.
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub sid: String,
    pub account_id: String,
    pub auth_time: i64,
    pub acr: String,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub acting_agency: Option<String>,
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_sealed: String,
    pub public_jwk: String,
    pub created_at: i64,
    /// When the key stopped (or will stop) signing: its successor's activation.
    pub retired_at: Option<i64>,
    /// When the key starts signing; published from `created_at`, before it signs.
    pub activates_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub id: String,
    pub at: i64,
    pub event: String,
    pub outcome: String,
    pub actor: Option<String>,
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    pub address: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = account_roles)]
pub struct AccountRoleRow {
    pub account_id: String,
    pub role: String,
    pub granted_by: String,
    pub granted_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = announcements)]
pub struct AnnouncementRow {
    pub id: String,
    pub title: String,
    pub body: String,
    pub published_at: i64,
    pub expires_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = card_bindings)]
pub struct CardBindingRow {
    pub id: String,
    pub account_id: String,
    pub kind: String,
    pub issuer: String,
    pub serial: String,
    pub spki_sha256: String,
    pub subject: String,
    pub agency_code: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}
