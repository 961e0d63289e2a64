//! Binding smart-card certificates to accounts (first-login identity proof, README, "Card sign-in").
//!
//! A binding is found by issuer + serial, or by the public-key hash recorded at binding time so
//! a renewed certificate for the same card key still signs its holder in. An unbound card leads
//! to the identify step: the person types their custom account or national ID, which is checked
//! against the register in the seeds' order — unknown, separated, not the certificate's owner.
//! Where the certificate authority's online service is configured ([`super::ownership`]), it is
//! asked between [`identify`] and [`bind_identified`]: outside any database transaction, so a
//! slow service holds no connection or lock.
//!
//! **Agency cards name no person** (README, "Card sign-in"): the certificate says which agency, not who
//! holds it, so typing a colleague's national ID proves nothing. Binding one at the identify step
//! therefore needs the account's own password (seed 004's 憑證上傳 page asks for ECPA 帳號 and
//! 密碼); a one-time password is not it, and a never-activated account is never claimed by an
//! agency card. Every later sign-in with the card checks again that the holder is still HR staff
//! of the card's agency ([`agency_holder_check`]).

use diesel::prelude::*;

use super::{account_of_person, ensure_account, person_by_id, roles, Account, AccountState, Person, PersonStatus};
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
    /// An agency card of one agency, and a person of another.
    #[error("the person is not of the card's agency")]
    OtherAgency,
    /// Agency cards: the identify step was posted without the account's password.
    #[error("the account's password is required")]
    PasswordRequired,
    /// Agency cards: the account was never activated (or does not exist yet), so it has no
    /// password of its own to prove; it is activated with a one-time password first.
    #[error("the account was never activated")]
    NotActivated,
    /// Agency cards: the password is not the account's (a one-time password never is).
    #[error("wrong password")]
    BadPassword {
        /// The account the attempt was against, for its audit trail.
        account_id: String,
    },
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

/// Why a person may not use (or bind) an agency card; also the re-check at every agency-card
/// sign-in, since register imports change who is HR staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgencyRefusal {
    /// The account was never activated: no agency card claims it.
    NotActivated,
    /// Not (or no longer) HR staff by the register's rule.
    NotHrStaff,
    /// HR staff, but of another agency than the card's.
    OtherAgency,
}

impl From<AgencyRefusal> for IdentifyError {
    fn from(r: AgencyRefusal) -> Self {
        match r {
            AgencyRefusal::NotActivated => IdentifyError::NotActivated,
            AgencyRefusal::NotHrStaff => IdentifyError::NotHrStaff,
            AgencyRefusal::OtherAgency => IdentifyError::OtherAgency,
        }
    }
}

/// Whether the holder of an agency card may act with it: an activated account (`account`, `None`
/// when none exists yet) of a person who is HR staff of the agency the certificate stands for.
/// `card_agency` is the agency code the presented certificate maps to *now*.
pub fn agency_holder_check(
    card_agency: Option<&str>,
    account: Option<AccountState>,
    person: &Person,
) -> Result<(), AgencyRefusal> {
    if account != Some(AccountState::Active) {
        return Err(AgencyRefusal::NotActivated);
    }
    if !roles::is_hr_staff(person) {
        return Err(AgencyRefusal::NotHrStaff);
    }
    if card_agency != Some(person.agency_code.as_str()) {
        return Err(AgencyRefusal::OtherAgency);
    }
    Ok(())
}

/// A register entry the identify step accepted, with the account found for it.
#[derive(Debug, Clone)]
pub struct Identified {
    pub person: Person,
    pub account: Option<Account>,
}

/// The checks on a register entry, in the seeds' order after the look-up: separated, then
/// citizen and health cards: not the card's owner; agency cards: an activated account whose own
/// password was given, HR staff, of the card's agency. The password is checked before anything
/// about the person's role is revealed.
fn check_person(
    protector: &DataProtector,
    card: &PresentedCard,
    person: &Person,
    account: Option<&Account>,
    password: Option<&str>,
) -> Result<(), IdentifyError> {
    if person.status == PersonStatus::Separated {
        return Err(IdentifyError::Separated);
    }
    if card.is_agency() {
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            return Err(IdentifyError::PasswordRequired);
        };
        let state = account.map(|a| a.state);
        let (Some(account), Some(AccountState::Active)) = (account, state) else {
            return Err(IdentifyError::NotActivated);
        };
        // The same Argon2id check as password sign-in, against the account's own password only:
        // a one-time password lives elsewhere and is neither accepted nor spent here.
        let hash = account.password_hash.as_deref().unwrap_or("");
        if !crate::authn::password::verify_password(password, hash) {
            return Err(IdentifyError::BadPassword { account_id: account.id.clone() });
        }
        return Ok(agency_holder_check(card.agency_code.as_deref(), state, person)?);
    }
    if !card_matches(protector, card, person) {
        return Err(IdentifyError::NotOwner);
    }
    Ok(())
}

/// First half of the identify step: the register entry (and account) that `identifier` named,
/// as [`crate::accounts::find_by_identifier`] found it, checked as far as the IdP can itself
/// (for agency cards, `password` must be the account's own). Binds nothing, so the online
/// service can be asked before [`bind_identified`]. No database here: an agency card's
/// password check is Argon2id, which runs off the async threads and must not hold a pooled
/// connection.
pub fn identify(
    found: Option<(Person, Option<Account>)>,
    protector: &DataProtector,
    card: &PresentedCard,
    password: Option<&str>,
) -> Result<Identified, IdentifyError> {
    let Some((person, account)) = found else {
        return Err(IdentifyError::NotInRegister);
    };
    check_person(protector, card, &person, account.as_ref(), password)?;
    Ok(Identified { person, account })
}

/// Second half: binds the card to the person [`identify`] found (creating a pending account on a
/// first identity proof, citizen and health cards only), in one transaction so nothing is
/// half-bound. The entry is read and checked again inside it, because the register may have
/// changed while the service was asked; for agency cards the account must still be active with
/// the very password that was checked (a reset in between voids the proof).
pub fn bind_identified(
    conn: &mut DbConn,
    protector: &DataProtector,
    card: &PresentedCard,
    identified: &Identified,
    now: i64,
) -> Result<(Account, Person), IdentifyError> {
    conn.transaction(|conn| {
        let Some(person) = person_by_id(conn, protector, &identified.person.id)? else {
            return Err(IdentifyError::NotInRegister);
        };
        if person.status == PersonStatus::Separated {
            return Err(IdentifyError::Separated);
        }
        let account = if card.is_agency() {
            let current = account_of_person(conn, &person.id)?;
            let proven = identified.account.as_ref().and_then(|a| a.password_hash.as_deref());
            let Some(account) = current.filter(|a| proven.is_some() && a.password_hash.as_deref() == proven) else {
                return Err(IdentifyError::NotActivated);
            };
            agency_holder_check(card.agency_code.as_deref(), Some(account.state), &person)?;
            account
        } else {
            check_person(protector, card, &person, None, None)?;
            ensure_account(conn, &person, now)?
        };
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

/// Releases an agency card from an account whose holder may no longer use it (moved out of HR, or
/// to another agency), so the agency's current HR staff can bind it; returns whether it was bound.
pub fn release(conn: &mut DbConn, account_id: &str, card: &PresentedCard) -> Result<bool, InfraError> {
    let same_card = card_bindings::issuer
        .eq(&card.issuer)
        .and(card_bindings::serial.eq(&card.serial))
        .or(card_bindings::spki_sha256.eq(&card.spki_sha256).and(card_bindings::kind.eq(&card.kind)));
    Ok(diesel::delete(card_bindings::table.filter(card_bindings::account_id.eq(account_id)).filter(same_card))
        .execute(conn)?
        > 0)
}

/// A card number shown in lists: the last four characters only.
fn mask_card_number(n: &str) -> String {
    let tail: String = n.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::national_id::NationalId;

    fn hr_person(agency: &str, unit: &str, category: &str, duty: &str, status: PersonStatus) -> Person {
        Person {
            id: "p".into(),
            national_id: NationalId::parse("B223344554").unwrap(),
            name: "李美華".into(),
            agency_code: agency.into(),
            unit: unit.into(),
            person_category: category.into(),
            concurrent_duty: duty.into(),
            status,
            email: "".into(),
        }
    }

    const ACTIVE: Option<AccountState> = Some(AccountState::Active);

    /// The card's agency, the account's state, the register entry, and the decision.
    type Row = (Option<&'static str>, Option<AccountState>, Person, Result<(), AgencyRefusal>);

    #[test]
    fn an_agency_card_is_used_only_by_an_activated_account_of_hr_staff_of_that_agency() {
        use AgencyRefusal::*;
        let hr = hr_person("A21000000I", "人事室", "08", "", PersonStatus::Active);
        let rows: [Row; 9] = [
            (Some("A21000000I"), ACTIVE, hr.clone(), Ok(())),
            // Never activated, or no account yet: no agency card claims it.
            (Some("A21000000I"), Some(AccountState::Pending), hr.clone(), Err(NotActivated)),
            (Some("A21000000I"), None, hr.clone(), Err(NotActivated)),
            // Each of the three HR-staff conditions alone is enough.
            (Some("A21000000I"), ACTIVE, hr_person("A21000000I", "資訊處", "08", "", PersonStatus::Active), Ok(())),
            (Some("A21000000I"), ACTIVE, hr_person("A21000000I", "資訊處", "01", "5", PersonStatus::Active), Ok(())),
            // Moved out of HR by a register import.
            (
                Some("A21000000I"),
                ACTIVE,
                hr_person("A21000000I", "資訊處", "01", "", PersonStatus::Active),
                Err(NotHrStaff),
            ),
            (
                Some("A21000000I"),
                ACTIVE,
                hr_person("A21000000I", "人事室", "08", "", PersonStatus::Separated),
                Err(NotHrStaff),
            ),
            // HR staff of another agency, or a card whose agency is not known.
            (Some("A00000000A"), ACTIVE, hr.clone(), Err(OtherAgency)),
            (None, ACTIVE, hr.clone(), Err(OtherAgency)),
        ];
        for (i, (card_agency, account, person, want)) in rows.iter().enumerate() {
            assert_eq!(agency_holder_check(*card_agency, *account, person), *want, "row {i}");
        }
    }
}
