//! E-mail verification: the address a person sets at activation or changes in 我的專區 is
//! proven by a mailed link before `email_verified` says so. Each link is single use, expires
//! (`login.email_verification_ttl`), and is bound to the account and to the exact address it
//! was sent for: once the account's address changes, a link for the old one does nothing, and
//! a changed address is unverified until its own link is followed. Only the token's SHA-256 is
//! stored.

use diesel::prelude::*;

use crate::audit::{self, Event};
use crate::crypto::{random_token, sha256_b64};
use crate::error::InfraError;
use crate::mail::Mailer;
use crate::store::db::models::EmailVerificationRow;
use crate::store::db::schema::{accounts, email_verifications};
use crate::store::db::DbConn;

/// Where a verification link points, under the issuer.
pub const PATH: &str = "/verify-email";

/// The subject of the verification mail.
pub const SUBJECT: &str = "人事服務網電子郵件驗證 / Confirm your e-mail address";

/// What following a link found. The keys double as audit outcomes and translation keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The link is good for the account's current address (a look) or has proven it (a use).
    Verified { account_id: String },
    /// No such link.
    Unknown,
    /// Already followed once.
    Used { account_id: String },
    /// Past its lifetime.
    Expired { account_id: String },
    /// The account's address is no longer the one the link was sent for.
    AddressChanged { account_id: String },
}

impl Outcome {
    /// The audit outcome.
    pub fn audit(&self) -> &'static str {
        match self {
            Outcome::Verified { .. } => "success",
            Outcome::Unknown => "unknown",
            Outcome::Used { .. } => "used",
            Outcome::Expired { .. } => "expired",
            Outcome::AddressChanged { .. } => "address_changed",
        }
    }

    /// The account the link was for, when it was one of ours.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Outcome::Verified { account_id }
            | Outcome::Used { account_id }
            | Outcome::Expired { account_id }
            | Outcome::AddressChanged { account_id } => Some(account_id),
            Outcome::Unknown => None,
        }
    }
}

/// The `email_verified_at` an account keeps when its address is set to `new_email`: the old
/// one if the address stays the same (any case), none if it changes — a new address is proven
/// by its own link, never by the old one's.
pub fn verified_after_change(conn: &mut DbConn, account_id: &str, new_email: &str) -> Result<Option<i64>, InfraError> {
    let current: Option<(Option<String>, Option<i64>)> = accounts::table
        .find(account_id)
        .select((accounts::email, accounts::email_verified_at))
        .get_result(conn)
        .optional()?;
    Ok(match current {
        Some((Some(old), at)) if same_address(&old, new_email) => at,
        _ => None,
    })
}

/// Addresses compare without case: the form keeps what was typed, the mailbox is the same.
fn same_address(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Stores a new link for `account_id` and `email`; returns its token (to be mailed, never
/// shown or logged). Earlier links stay as they were: each still needs its own address to
/// be the account's when followed.
pub fn create(conn: &mut DbConn, account_id: &str, email: &str, ttl_secs: i64, now: i64) -> Result<String, InfraError> {
    // 128 bits: unguessable, and the link stays one unbroken line in the mail.
    let token = random_token(16);
    let row = EmailVerificationRow {
        token_hash: sha256_b64(token.as_bytes()),
        account_id: account_id.into(),
        email: email.trim().into(),
        created_at: now,
        expires_at: now + ttl_secs,
        used_at: None,
    };
    diesel::insert_into(email_verifications::table).values(&row).execute(conn)?;
    Ok(token)
}

/// The verification mail, in both languages: whom it greets, the link, how long it works.
pub fn body(name: &str, link: &str, ttl_secs: i64) -> String {
    let hours = (ttl_secs / 3600).max(1);
    format!(
        "{name} 您好：\n\n\
         您已於人事服務網設定此電子郵件信箱。請點選下列連結，並於開啟的網頁按【確認】，以完成電子郵件驗證。此連結僅能使用一次，{hours} 小時後失效；如非您本人設定，請忽略本信，並洽所屬機關人事單位。\n\n\
         {link}\n\n\
         You set this e-mail address on the HR Service Network. Open the link above and press Confirm on the page it opens to verify the address. The link works once and expires in {hours} hours. If this was not you, ignore this mail and tell your HR office.\n"
    )
}

/// Creates a link for the account's address and mails it; audited as `email.verification_sent`
/// (`success` or `mail_failed`). A mail that cannot be sent is not the person's fault and
/// changes nothing they did: the address stays unverified and they can ask again from 我的專區.
/// Blocking (SMTP): run it on a blocking thread.
#[allow(clippy::too_many_arguments)]
pub fn send(
    conn: &mut DbConn,
    mailer: &Mailer,
    issuer: &str,
    account_id: &str,
    name: &str,
    email: &str,
    ttl_secs: i64,
    address: &str,
    now: i64,
) -> Result<bool, InfraError> {
    let token = create(conn, account_id, email, ttl_secs, now)?;
    let link = format!("{}{PATH}?token={token}", issuer.trim_end_matches('/'));
    let sent = mailer.send(email.trim(), SUBJECT, body(name, &link, ttl_secs));
    if let Err(e) = &sent {
        tracing::warn!(account = %account_id, error = %e, "verification mail not sent");
    }
    let outcome = if sent.is_ok() { "success" } else { "mail_failed" };
    audit::record(conn, Event::own("email.verification_sent", outcome, account_id, address), now)?;
    Ok(sent.is_ok())
}

/// What a link would do, without using it (the confirmation page: a mail scanner that opens
/// the link proves nothing and spends nothing).
pub fn look(conn: &mut DbConn, token: &str, now: i64) -> Result<Outcome, InfraError> {
    judge(conn, token, now).map(|(outcome, _)| outcome)
}

/// Follows a link: if it is unused, unexpired and its address is still the account's, marks it
/// used and the address verified, in one transaction; a second use at the same time finds it
/// used (the update only takes an unused row). Audited as `email.verify` with the outcome.
pub fn verify(conn: &mut DbConn, token: &str, address: &str, now: i64) -> Result<Outcome, InfraError> {
    conn.transaction(|c| {
        let (mut outcome, row) = judge(c, token, now)?;
        if let (Outcome::Verified { account_id }, Some(row)) = (&outcome, row) {
            let taken = diesel::update(
                email_verifications::table.find(&row.token_hash).filter(email_verifications::used_at.is_null()),
            )
            .set(email_verifications::used_at.eq(now))
            .execute(c)?;
            if taken == 1 {
                diesel::update(accounts::table.find(account_id)).set(accounts::email_verified_at.eq(now)).execute(c)?;
            } else {
                outcome = Outcome::Used { account_id: account_id.clone() };
            }
        }
        let event = Event {
            event: "email.verify",
            outcome: outcome.audit(),
            account_id: outcome.account_id(),
            address: Some(address),
            ..Default::default()
        };
        audit::record(c, event, now)?;
        Ok(outcome)
    })
}

/// The link's row and what it would do now.
fn judge(conn: &mut DbConn, token: &str, now: i64) -> Result<(Outcome, Option<EmailVerificationRow>), InfraError> {
    if token.is_empty() || token.len() > 100 {
        return Ok((Outcome::Unknown, None));
    }
    let row: Option<EmailVerificationRow> = email_verifications::table
        .find(sha256_b64(token.as_bytes()))
        .select(EmailVerificationRow::as_select())
        .get_result(conn)
        .optional()?;
    let Some(row) = row else { return Ok((Outcome::Unknown, None)) };
    let current: Option<Option<String>> =
        accounts::table.find(&row.account_id).select(accounts::email).get_result(conn).optional()?;
    let account_id = row.account_id.clone();
    let outcome = decide(&row, current.flatten().as_deref(), now);
    let outcome = match outcome {
        Decision::Good => Outcome::Verified { account_id },
        Decision::Used => Outcome::Used { account_id },
        Decision::Expired => Outcome::Expired { account_id },
        Decision::AddressChanged => Outcome::AddressChanged { account_id },
    };
    Ok((outcome, Some(row)))
}

/// The rule for a stored link, in order: used, expired, address changed.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Good,
    Used,
    Expired,
    AddressChanged,
}

fn decide(row: &EmailVerificationRow, current_email: Option<&str>, now: i64) -> Decision {
    if row.used_at.is_some() {
        Decision::Used
    } else if row.expires_at <= now {
        Decision::Expired
    } else if !current_email.is_some_and(|c| same_address(c, &row.email)) {
        Decision::AddressChanged
    } else {
        Decision::Good
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(used_at: Option<i64>, expires_at: i64) -> EmailVerificationRow {
        EmailVerificationRow {
            token_hash: "h".into(),
            account_id: "a".into(),
            email: "ming@example.gov.tw".into(),
            created_at: 0,
            expires_at,
            used_at,
        }
    }

    #[test]
    fn a_link_works_once_before_it_expires_and_only_for_the_address_it_was_sent_for() {
        let now = 1000;
        assert_eq!(decide(&row(None, 2000), Some("ming@example.gov.tw"), now), Decision::Good);
        assert_eq!(decide(&row(None, 2000), Some("Ming@Example.gov.tw"), now), Decision::Good, "any case");
        assert_eq!(decide(&row(Some(900), 2000), Some("ming@example.gov.tw"), now), Decision::Used);
        assert_eq!(
            decide(&row(None, 1000), Some("ming@example.gov.tw"), now),
            Decision::Expired,
            "expiry is exclusive"
        );
        assert_eq!(decide(&row(None, 2000), Some("wang@example.gov.tw"), now), Decision::AddressChanged);
        assert_eq!(decide(&row(None, 2000), None, now), Decision::AddressChanged);
        assert_eq!(decide(&row(Some(900), 500), Some("x@example.gov.tw"), now), Decision::Used, "used comes first");
    }

    #[test]
    fn the_mail_is_bilingual_and_keeps_the_link_on_one_line() {
        let link = "https://sso.example.gov.tw/verify-email?token=AAAAAAAAAAAAAAAAAAAAAA";
        let text = body("王小明", link, 24 * 3600);
        assert!(text.contains("電子郵件驗證") && text.contains("Confirm") && text.contains("24 小時"));
        assert!(text.lines().any(|l| l == link));
    }
}
