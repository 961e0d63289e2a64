//! Binding smart-card certificates to accounts (first-login identity proof, PRODUCT.md §5).
//!
//! A binding is found by issuer + serial, or by the public-key hash recorded at binding time so
//! a renewed certificate for the same card key still signs its holder in. An unbound card leads
//! to the identify step: the person types their custom account or national ID, which is checked
//! against the register in the seeds' order — unknown, separated, not the certificate's owner.
//! Where the certificate authority's online service is configured ([`super::ownership`]), it is
//! asked between [`identify`] and [`bind_identified`]: outside any database transaction, so a
//! slow service holds no connection or lock.

use diesel::prelude::*;

use super::{ensure_account, find_by_identifier, person_by_id, roles, Account, Person, PersonStatus};
use crate::authn::card::profile::hex;
use crate::authn::card::validate::{CardKind, ValidatedCard};
use crate::crypto::{random_token, DataProtector};
use crate::error::InfraError;
use crate::store::db::models::CardBindingRow;
use crate::store::db::schema::card_bindings;
use crate::store::db::DbConn;

/// What the IdP keeps of a presented, validated card while the person identifies themselves.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PresentedCard {
    /// `citizen` or `agency`.
    pub kind: String,
    /// Issuer name DER (hex): with the serial, the exact certificate.
    pub issuer: String,
    pub serial: String,
    pub spki_sha256: String,
    /// The subject as text (for the person's own list of bound cards).
    pub subject: String,
    /// Citizen certificates: the holder's name (CN) and the last four national-ID characters.
    pub holder_name: Option<String>,
    pub last_four: Option<String>,
    /// Agency certificates: the agency code the certificate's agency OID maps to.
    pub agency_code: Option<String>,
    /// Health cards: the keyed index of the national ID the verification service vouched for
    /// (never the national ID itself, which must not sit in the ephemeral store).
    #[serde(default)]
    pub national_id_index: Option<String>,
    /// Certificate cards: the end-entity certificate (base64 DER), which the CA's online ownership
    /// service needs; kept with the card by every channel, for as long as the card is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

impl PresentedCard {
    /// A validated certificate card; `der` is the end-entity certificate it was validated from.
    pub fn from_validated(card: &ValidatedCard, der: &[u8]) -> Self {
        use base64::Engine;
        let p = &card.profile;
        Self {
            kind: match card.kind {
                CardKind::Citizen => "citizen",
                CardKind::Agency => "agency",
            }
            .into(),
            issuer: hex(&p.issuer_der),
            serial: p.serial_hex.clone(),
            spki_sha256: p.spki_sha256_hex(),
            subject: p.subject_dn.clone(),
            holder_name: p.subject_cn.clone(),
            last_four: p.directory.national_id_last_four.clone(),
            agency_code: card.agency_code.clone(),
            national_id_index: None,
            certificate: Some(base64::engine::general_purpose::STANDARD.encode(der)),
        }
    }

    /// A health-insurance card as NHI's verification service vouched for it.
    pub fn health(card_number: &str, national_id_index: String) -> Self {
        Self {
            kind: "health".into(),
            issuer: "nhi".into(),
            serial: card_number.to_string(),
            spki_sha256: crate::crypto::sha256_b64(format!("nhi:{card_number}").as_bytes()),
            subject: format!("健保卡 {}", mask_card_number(card_number)),
            holder_name: None,
            last_four: None,
            agency_code: None,
            national_id_index: Some(national_id_index),
            certificate: None,
        }
    }

    pub fn is_agency(&self) -> bool {
        self.kind == "agency"
    }
}

/// The account a card is bound to, if any (and records its use).
pub fn bound_account(conn: &mut DbConn, card: &PresentedCard, now: i64) -> Result<Option<String>, InfraError> {
    let exact: Option<CardBindingRow> = card_bindings::table
        .filter(card_bindings::issuer.eq(&card.issuer))
        .filter(card_bindings::serial.eq(&card.serial))
        .select(CardBindingRow::as_select())
        .first(conn)
        .optional()?;
    let found = match exact {
        Some(b) => Some(b),
        // Renewal: a new certificate (new serial) for the same key on the same card.
        None => card_bindings::table
            .filter(card_bindings::spki_sha256.eq(&card.spki_sha256))
            .filter(card_bindings::kind.eq(&card.kind))
            .select(CardBindingRow::as_select())
            .first(conn)
            .optional()?,
    };
    let Some(b) = found else { return Ok(None) };
    diesel::update(card_bindings::table.find(&b.id)).set(card_bindings::last_used_at.eq(now)).execute(conn)?;
    Ok(Some(b.account_id))
}

/// The same-person check the card itself allows. Citizen certificates: the name (CN) and the last
/// four characters of the national ID it carries must both match the register entry. Agency
/// certificates: the person is HR staff of the agency the certificate stands for. Health cards:
/// the full national ID NHI's service vouched for (kept as its keyed index) is the person's.
pub fn card_matches(protector: &DataProtector, card: &PresentedCard, person: &Person) -> bool {
    if let Some(index) = &card.national_id_index {
        return crate::crypto::constant_time_eq(
            protector.index(person.national_id.expose()).as_bytes(),
            index.as_bytes(),
        );
    }
    if card.kind == "health" {
        return false;
    }
    if card.is_agency() {
        return card.agency_code.as_deref() == Some(person.agency_code.as_str()) && roles::is_hr_staff(person);
    }
    card.holder_name.as_deref() == Some(person.name.as_str())
        && card.last_four.as_deref() == Some(person.national_id.last_four())
}

/// Why a card was not bound; each maps to the seeds' message.
#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    /// 自訂帳號或身分證號驗證不存在於本總處公務人力資料庫中…
    #[error("not in the personnel register")]
    NotInRegister,
    /// 驗證之公務人員為卸職狀態…
    #[error("separated")]
    Separated,
    /// 自訂帳號或身分證號與自然人憑證擁有者並非同一個使用者…
    #[error("not the certificate's owner")]
    NotOwner,
    /// An agency card may be bound only by HR staff of that agency.
    #[error("only HR staff may bind an agency card")]
    NotHrStaff,
    /// The certificate is already bound to someone else.
    #[error("the card is bound to another account")]
    BoundElsewhere,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<diesel::result::Error> for IdentifyError {
    fn from(e: diesel::result::Error) -> Self {
        IdentifyError::Infra(e.into())
    }
}

/// The checks on a register entry, in the seeds' order after the look-up: separated, (agency
/// cards) not HR staff, not the card's owner.
fn check_person(protector: &DataProtector, card: &PresentedCard, person: &Person) -> Result<(), IdentifyError> {
    if person.status == PersonStatus::Separated {
        return Err(IdentifyError::Separated);
    }
    if card.is_agency() && !roles::is_hr_staff(person) {
        return Err(IdentifyError::NotHrStaff);
    }
    if !card_matches(protector, card, person) {
        return Err(IdentifyError::NotOwner);
    }
    Ok(())
}

/// First half of the identify step: finds `identifier` in the register and runs the checks the
/// IdP can make itself. Binds nothing, so the online service can be asked before [`bind_identified`].
pub fn identify(
    conn: &mut DbConn,
    protector: &DataProtector,
    card: &PresentedCard,
    identifier: &str,
) -> Result<Person, IdentifyError> {
    let Some((person, _)) = find_by_identifier(conn, protector, identifier)? else {
        return Err(IdentifyError::NotInRegister);
    };
    check_person(protector, card, &person)?;
    Ok(person)
}

/// Second half: binds the card to the person [`identify`] found (creating a pending account on a
/// first identity proof), in one transaction so nothing is half-bound. The entry is read and
/// checked again inside it, because the register may have changed while the service was asked.
pub fn bind_identified(
    conn: &mut DbConn,
    protector: &DataProtector,
    card: &PresentedCard,
    person_id: &str,
    now: i64,
) -> Result<(Account, Person), IdentifyError> {
    conn.transaction(|conn| {
        let Some(person) = person_by_id(conn, protector, person_id)? else {
            return Err(IdentifyError::NotInRegister);
        };
        check_person(protector, card, &person)?;
        let account = ensure_account(conn, &person, now)?;
        bind(conn, &account.id, card, now)?;
        Ok((account, person))
    })
}

/// Records a binding for an account (also used from 我的專區 to bind a card later).
pub fn bind(conn: &mut DbConn, account_id: &str, card: &PresentedCard, now: i64) -> Result<(), IdentifyError> {
    if let Some(other) = bound_account(conn, card, now)? {
        return if other == account_id { Ok(()) } else { Err(IdentifyError::BoundElsewhere) };
    }
    let row = CardBindingRow {
        id: random_token(12),
        account_id: account_id.into(),
        kind: card.kind.clone(),
        issuer: card.issuer.clone(),
        serial: card.serial.clone(),
        spki_sha256: card.spki_sha256.clone(),
        subject: card.subject.clone(),
        agency_code: card.agency_code.clone(),
        created_at: now,
        last_used_at: Some(now),
    };
    diesel::insert_into(card_bindings::table).values(&row).execute(conn)?;
    Ok(())
}

/// The cards bound to an account, newest first.
pub fn list(conn: &mut DbConn, account_id: &str) -> Result<Vec<CardBindingRow>, InfraError> {
    Ok(card_bindings::table
        .filter(card_bindings::account_id.eq(account_id))
        .order(card_bindings::created_at.desc())
        .select(CardBindingRow::as_select())
        .load(conn)?)
}

/// Removes one of an account's bindings; returns whether it existed.
pub fn unbind(conn: &mut DbConn, account_id: &str, binding_id: &str) -> Result<bool, InfraError> {
    Ok(diesel::delete(
        card_bindings::table.filter(card_bindings::id.eq(binding_id)).filter(card_bindings::account_id.eq(account_id)),
    )
    .execute(conn)?
        > 0)
}

/// A card number shown in lists: the last four characters only.
fn mask_card_number(n: &str) -> String {
    let tail: String = n.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("****{tail}")
}
