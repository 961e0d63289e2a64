//! One-time passwords issued by the helpdesk or HR staff: random, mailed, stored only as a
//! hash, single use, expiring, and replaced by the next one. There is no default password.
//!
//! A reset ends what the old password opened, in the same transaction as the new password: the
//! old password stops working, the account's SSO sessions end (their applications are owed a
//! back-channel logout) and its refresh tokens are revoked. Nobody gains through a reset more
//! than they hold: accounts with the `operator` or `helpdesk` role are reset only on the server.
//! A password mailed to another address than the account's own is announced to the account's own.

use diesel::prelude::*;
use rand::Rng;

use crate::audit::{self, Actor, Event};
use crate::crypto::{sha256_b64, DataProtector};
use crate::error::InfraError;
use crate::mail::Mailer;
use crate::national_id::NationalId;
use crate::store::db::models::OneTimePasswordRow;
use crate::store::db::schema::one_time_passwords;
use crate::store::db::DbConn;

use super::access::{self, Ended};
use super::{
    account_of_person, ensure_account, person_by_national_id, roles, Account, AccountState, Person, PersonStatus,
};
use crate::mail::local_time;
use crate::store::db::schema::accounts;

/// Roles that a reset from the web pages could hand to whoever reads the mail: an account
/// holding one is reset only by `idp users reset-password` on the server.
pub const PRIVILEGED_ROLES: [&str; 2] = ["operator", "helpdesk"];

/// Characters of a one-time password: no look-alikes (0/O, 1/l/I) so it can be typed from mail.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
/// 16 characters of 57 symbols: about 93 bits, far beyond guessing within the throttle.
const LENGTH: usize = 16;

/// Generates a one-time password from the operating system's CSPRNG.
pub fn generate() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..LENGTH).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// Why a one-time password was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("no one with this national ID is in the personnel register")]
    NotInRegister,
    #[error("this person is separated (not currently employed); no password can be issued")]
    Separated,
    #[error("`{0}` is not a valid e-mail address")]
    BadEmail(String),
    /// The account holds `operator` or `helpdesk`: only the server (CLI) may reset it.
    #[error("this account holds the operator or helpdesk role; it can only be reset on the server")]
    Privileged,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl IssueError {
    /// The audit outcome of a refused or failed reset.
    pub fn outcome(&self) -> &'static str {
        match self {
            IssueError::NotInRegister => "not_in_register",
            IssueError::Separated => "separated",
            IssueError::BadEmail(_) => "bad_email",
            IssueError::Privileged => "privileged",
            IssueError::Infra(InfraError::Mail(_)) => "mail_failed",
            IssueError::Infra(_) => "error",
        }
    }
}

impl From<diesel::result::Error> for IssueError {
    fn from(e: diesel::result::Error) -> Self {
        IssueError::Infra(e.into())
    }
}

/// Who gets a one-time password, where it is mailed, and by whom.
#[derive(Debug, Clone, Copy)]
pub struct IssueRequest<'a> {
    pub national_id: &'a NationalId,
    pub email: &'a str,
    /// `helpdesk:cli`, an HR staff account id, …: recorded with the password.
    pub issued_by: &'a str,
    /// Who asks, as the person whose password it is will read it in the notice; also decides
    /// whether privileged accounts may be reset.
    pub by: ResetBy<'a>,
    pub ttl_secs: i64,
}

/// Who resets a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetBy<'a> {
    /// HR staff from the HR page: their name and agency.
    HrStaff { name: &'a str, agency: &'a str },
    /// An agency-card session: the agency, and the holder the card is bound to.
    AgencyCard { agency: &'a str, holder: &'a str },
    /// The helpdesk from the HR page.
    Helpdesk,
    /// `idp users reset-password` on the server: the only way to reset a privileged account.
    Server,
}

impl ResetBy<'_> {
    /// The channel, as the audit detail names it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetBy::HrStaff { .. } => "hr_staff",
            ResetBy::AgencyCard { .. } => "agency_card",
            ResetBy::Helpdesk => "helpdesk",
            ResetBy::Server => "server",
        }
    }

    /// Whether this channel may reset an account holding a privileged role.
    pub fn may_reset_privileged(self) -> bool {
        self == ResetBy::Server
    }

    /// Who reset, in Chinese then English, for the notice.
    fn describe(self) -> (String, String) {
        match self {
            ResetBy::HrStaff { name, agency } => {
                (format!("{agency}人事人員 {name}"), format!("HR staff {name} of {agency}"))
            }
            ResetBy::AgencyCard { agency, holder } => (
                format!("{agency}機關憑證（持卡人 {holder}）"),
                format!("the agency certificate card of {agency} (held by {holder})"),
            ),
            ResetBy::Helpdesk => ("客服人員".into(), "the helpdesk".into()),
            ResetBy::Server => ("客服人員（系統端）".into(), "the helpdesk (on the server)".into()),
        }
    }
}

/// A one-time password that was stored and mailed.
#[derive(Debug)]
pub struct Issued {
    pub account: Account,
    pub person: Person,
    pub expires_at: i64,
    /// What the old password opened and the reset ended; the caller sends
    /// [`crate::oidc::backchannel::notify_all`] for the sessions after this returns.
    pub ended: Ended,
    /// The account's own address, when the password went elsewhere and it got a notice.
    pub notice_to: Option<String>,
}

/// The address a reset is announced to: the account's current e-mail, or for an account never
/// activated (or none yet) the register entry's; `None` if there is none.
pub fn current_address(account: Option<&Account>, person: &Person) -> Option<String> {
    let address = match account {
        Some(a) if a.state == AccountState::Active => a.email.as_deref().unwrap_or(&person.email),
        _ => &person.email,
    };
    let address = address.trim();
    (!address.is_empty()).then(|| address.to_string())
}

/// Whether a password mailed to `to` must be announced to `current`: when they differ
/// (addresses compared without case, as mail systems treat them in practice).
pub fn needs_notice(current: Option<&str>, to: &str) -> bool {
    current.is_some_and(|c| !c.trim().eq_ignore_ascii_case(to.trim()))
}

/// Issues a one-time password for a person and mails it to `email`.
///
/// The password is stored (hashed) and mailed inside one transaction, together with the end of
/// the old password, sessions and refresh tokens, and the notice to the account's own address:
/// if a mail cannot be delivered the transaction rolls back, so no usable password exists that
/// nobody received, any earlier one stays as it was, and the old password, sessions and tokens
/// still work.
pub fn issue(
    conn: &mut DbConn,
    protector: &DataProtector,
    mailer: &Mailer,
    request: &IssueRequest<'_>,
    now: i64,
) -> Result<Issued, IssueError> {
    let IssueRequest { national_id: nid, email, issued_by, by, ttl_secs } = *request;
    let email = email.trim();
    if email.len() > 254 || email.parse::<lettre::Address>().is_err() {
        return Err(IssueError::BadEmail(email.to_string()));
    }
    conn.transaction(|conn| {
        let person = person_by_national_id(conn, protector, nid)?.ok_or(IssueError::NotInRegister)?;
        if person.status == PersonStatus::Separated {
            return Err(IssueError::Separated);
        }
        let existing = account_of_person(conn, &person.id)?;
        if let Some(a) = &existing {
            let held = roles::granted(conn, &a.id)?;
            if !by.may_reset_privileged() && held.iter().any(|r| PRIVILEGED_ROLES.contains(&r.as_str())) {
                return Err(IssueError::Privileged);
            }
        }
        let current = current_address(existing.as_ref(), &person);
        let account = ensure_account(conn, &person, now)?;
        // The old password stops working now, not when the new one is used.
        diesel::update(accounts::table.find(&account.id))
            .set((accounts::password_hash.eq(None::<String>), accounts::updated_at.eq(now)))
            .execute(conn)
            .map_err(InfraError::from)?;
        let ended = access::end_sessions_and_tokens(conn, &account.id, None, now)?;
        let (password, expires_at) = store(conn, &account.id, issued_by, ttl_secs, now)?;
        // The notice first: a reset to another address is never silent, and of the two mails
        // the one with the password is the last thing that can fail.
        let notice_to = current.filter(|c| needs_notice(Some(c), email));
        if let Some(to) = &notice_to {
            mailer.send(to, "人事服務網密碼重設通知 / Password reset notice", notice(&person, by, email, now))?;
        }
        mailer.send(email, SUBJECT, body(&person, Why::ResetByStaff, &password, ttl_secs))?;
        let account = Account { password_hash: None, ..account };
        Ok(Issued { account, person, expires_at, ended, notice_to })
    })
}

/// Whether the account has a one-time password that is still usable at `now` (unused, since
/// using one removes it, and not expired).
pub fn has_live(conn: &mut DbConn, account_id: &str, now: i64) -> Result<bool, InfraError> {
    let live: i64 = one_time_passwords::table
        .filter(one_time_passwords::account_id.eq(account_id))
        .filter(one_time_passwords::expires_at.gt(now))
        .count()
        .get_result(conn)?;
    Ok(live > 0)
}

/// The subject of the mail that carries a one-time password.
pub(crate) const SUBJECT: &str = "人事服務網一次性密碼 / One-time password";

/// Stores a new one-time password for an account in place of any earlier one; returns it (to
/// be mailed, never shown) and when it expires. Only its hash is kept.
pub(crate) fn store(
    conn: &mut DbConn,
    account_id: &str,
    issued_by: &str,
    ttl_secs: i64,
    now: i64,
) -> Result<(String, i64), InfraError> {
    let password = generate();
    let row = OneTimePasswordRow {
        account_id: account_id.to_string(),
        password_hash: sha256_b64(password.as_bytes()),
        issued_by: issued_by.to_string(),
        created_at: now,
        expires_at: now + ttl_secs,
    };
    diesel::delete(one_time_passwords::table.find(account_id)).execute(conn).map_err(InfraError::from)?;
    diesel::insert_into(one_time_passwords::table).values(&row).execute(conn).map_err(InfraError::from)?;
    Ok((password, row.expires_at))
}

/// [`issue`] for `actor`, audited as `password.reset`: a success in the same transaction as the
/// password (so a reset that rolled back leaves no success behind), a refusal or failure with
/// its own outcome afterwards. The detail names the person by masked national ID only.
pub fn issue_by(
    conn: &mut DbConn,
    protector: &DataProtector,
    mailer: &Mailer,
    request: &IssueRequest<'_>,
    actor: &Actor,
    now: i64,
) -> Result<Issued, IssueError> {
    let whom = format!("for {} as {}", request.national_id, request.by.as_str());
    let issued = conn.transaction(|conn| {
        let issued = issue(conn, protector, mailer, request, now)?;
        let detail = format!(
            "{whom}; old password ended, {} session(s) ended, {} refresh token(s) revoked{}",
            issued.ended.sids.len(),
            issued.ended.refresh_tokens,
            if issued.notice_to.is_some() { ", notice sent to the account's own address" } else { "" }
        );
        let e = Event { account_id: Some(&issued.account.id), detail, ..actor.event("password.reset", "success") };
        audit::record(conn, e, now)?;
        Ok(issued)
    });
    if let Err(e) = &issued {
        // Whose account it concerns, when there is one.
        let account = match e {
            IssueError::NotInRegister | IssueError::Infra(InfraError::Db(_)) => None,
            _ => match person_by_national_id(conn, protector, request.national_id)? {
                Some(p) => account_of_person(conn, &p.id)?.map(|a| a.id),
                None => None,
            },
        };
        let e = Event { account_id: account.as_deref(), detail: whom, ..actor.event("password.reset", e.outcome()) };
        audit::record(conn, e, now)?;
    }
    issued
}

/// `ming@example.gov.tw` → `m***@example.gov.tw`: enough for the owner to recognise, not a
/// full address of someone else's to read in a forwarded mail.
fn mask_address(address: &str) -> String {
    match address.trim().split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// The notice to the account's own address: who, when, where the password went (masked), and
/// what to do if it was not them. Never the password.
fn notice(person: &Person, by: ResetBy<'_>, to: &str, now: i64) -> String {
    let (who_zh, who_en) = by.describe();
    let (at, to) = (local_time(now), mask_address(to));
    format!(
        "{name} 您好：\n\n\
         您在人事服務網的登入密碼已被重設，一次性密碼已寄至另一個電子郵件地址。\n\
         重設者：{who_zh}\n\
         時間：{at}（臺灣時間）\n\
         寄送地址：{to}\n\
         原密碼已失效，您在各裝置的登入也已登出。\n\
         如非您本人申請，請儘速洽所屬機關人事單位。本通知不含密碼。\n\n\
         Your sign-in password was reset, and a one-time password was mailed\n\
         to another address.\n\
         Reset by: {who_en}\n\
         Time: {at} (Taiwan time)\n\
         Sent to: {to}\n\
         Your old password no longer works and you have been signed out\n\
         everywhere. If this was not you, contact your HR office at once.\n\
         This notice contains no password.\n",
        name = person.name,
    )
}

/// Why a one-time password was mailed, as its mail explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// HR staff or the helpdesk reset the password; the old one no longer works.
    ResetByStaff,
    /// The person asked on the sign-in page (忘記密碼); the old password works until this is used.
    Requested,
}

/// The mail with the password: Chinese first, then English, one line per paragraph; the
/// wrapping in [`Mailer::send`] breaks them without splitting a word, and the password stays
/// alone on its line.
pub(crate) fn body(person: &Person, why: Why, password: &str, ttl_secs: i64) -> String {
    let hours = ttl_secs / 3600;
    let (zh, en) = match why {
        Why::ResetByStaff => ("人事人員已為您重設人事服務網的登入密碼。", "Your HR staff have reset your sign-in password."),
        Why::Requested => (
            "您已於人事服務網登入頁面申請「忘記密碼」。原密碼在您使用下列一次性密碼之前仍可使用；如非您本人申請，請忽略本信，並洽所屬機關人事單位。",
            "You asked for a one-time password on the sign-in page (Forgot password). Your old password keeps working until you use this one. If this was not you, ignore this mail and tell your HR office.",
        ),
    };
    format!(
        "{name} 您好：\n\n\
         {zh}請於登入頁面的帳號欄輸入身分證號，密碼欄輸入下列一次性密碼，登入後需設定自訂帳號、電子郵件及登入密碼，輸入新密碼兩次後，點選【送出】，即完成帳號密碼設定。\n\
         此密碼僅能使用一次，{hours} 小時後失效，且無法再提供查詢，請妥善保管。\n\n\
         一次性密碼: {password}\n\n\
         {en} Sign in with your national ID and the one-time password above; you will then choose a custom account, e-mail and password. It works once and expires in {hours} hours.\n",
        name = person.name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::national_id::NationalId;

    fn person(email: &str) -> Person {
        Person {
            id: "p".into(),
            national_id: NationalId::parse("A123456789").unwrap(),
            name: "王小明".into(),
            agency_code: "A21000000I".into(),
            unit: "資訊處".into(),
            person_category: "01".into(),
            concurrent_duty: "".into(),
            status: PersonStatus::Active,
            email: email.into(),
        }
    }

    fn account(state: AccountState, email: Option<&str>) -> Account {
        Account {
            id: "a".into(),
            person_id: "p".into(),
            account_name: None,
            email: email.map(str::to_string),
            password_hash: None,
            state,
            email_verified: false,
        }
    }

    #[test]
    fn the_current_address_is_the_accounts_once_activated_and_the_registers_before() {
        let p = person("reg@example.gov.tw");
        assert_eq!(current_address(None, &p).as_deref(), Some("reg@example.gov.tw"));
        let pending = account(AccountState::Pending, Some("typed@example.gov.tw"));
        assert_eq!(current_address(Some(&pending), &p).as_deref(), Some("reg@example.gov.tw"));
        let active = account(AccountState::Active, Some("own@example.gov.tw"));
        assert_eq!(current_address(Some(&active), &p).as_deref(), Some("own@example.gov.tw"));
        let active_without = account(AccountState::Active, None);
        assert_eq!(current_address(Some(&active_without), &p).as_deref(), Some("reg@example.gov.tw"));
        assert_eq!(current_address(None, &person(" ")), None, "nobody to tell");
    }

    #[test]
    fn a_notice_goes_out_only_when_the_password_goes_elsewhere() {
        assert!(needs_notice(Some("own@example.gov.tw"), "other@example.com"));
        assert!(!needs_notice(Some("own@example.gov.tw"), "Own@Example.gov.tw "));
        assert!(!needs_notice(None, "other@example.com"));
    }

    #[test]
    fn only_the_server_resets_privileged_accounts() {
        assert!(ResetBy::Server.may_reset_privileged());
        for by in [
            ResetBy::Helpdesk,
            ResetBy::HrStaff { name: "李美華", agency: "行政院人事行政總處" },
            ResetBy::AgencyCard { agency: "行政院人事行政總處", holder: "李美華" },
        ] {
            assert!(!by.may_reset_privileged(), "{by:?}");
        }
    }

    #[test]
    fn the_notice_says_who_when_and_where_but_carries_no_password() {
        let text = notice(
            &person(""),
            ResetBy::HrStaff { name: "李美華", agency: "行政院人事行政總處" },
            "x.y@evil.example",
            0,
        );
        assert!(text.contains("李美華") && text.contains("1970-01-01 08:00") && text.contains("x***@evil.example"));
        assert!(text.contains("人事單位") && text.contains("HR office"));
        assert!(!text.contains("一次性密碼:") && !text.contains("x.y@"), "{text}");
    }

    /// A database with 王小明 in the register and an account holding a password, a session and a
    /// refresh token; returns the account id.
    fn world() -> (crate::store::db::Db, DataProtector, String) {
        use crate::accounts::register;
        let db = crate::store::db::Db::connect("sqlite://:memory:", 1).unwrap();
        db.migrate().unwrap();
        let protector = DataProtector::from_key(&[7u8; 32]);
        let mut c = db.get().unwrap();
        register::import_agencies(&mut c, &b"code,name,parent_code,oid\nA21000000I,X,,\n"[..], 0).unwrap();
        let csv = "national_id,name,agency_code,unit,person_category,concurrent_duty,status,email\n\
                   A123456789,王小明,A21000000I,資訊處,01,,active,ming@example.gov.tw\n";
        register::import_personnel(&mut c, &protector, csv.as_bytes(), 0).unwrap();
        let nid = NationalId::parse("A123456789").unwrap();
        let person = person_by_national_id(&mut c, &protector, &nid).unwrap().unwrap();
        let account = ensure_account(&mut c, &person, 0).unwrap();
        diesel::update(accounts::table.find(&account.id))
            .set((accounts::password_hash.eq("old-hash"), accounts::state.eq("active")))
            .execute(&mut *c)
            .unwrap();
        let (_, session) = crate::authn::session::create(&mut c, &account.id, "loa-1", &["pwd"], 0, 3600).unwrap();
        let grant = crate::oidc::refresh::RefreshGrant {
            family_id: "f".into(),
            account_id: account.id.clone(),
            client_id: "app".into(),
            scope: vec!["openid".into()],
            sid: session.sid,
            auth_time: 0,
            acr: "loa-1".into(),
            amr: vec!["pwd".into()],
            expires_at: 10_000,
            dpop_jkt: None,
            resource: None,
        };
        crate::oidc::refresh::issue(&mut c, &grant, 0).unwrap();
        drop(c);
        (db, protector, account.id)
    }

    /// (password hash, live sessions, unrevoked refresh tokens) of the account.
    fn left(c: &mut crate::store::db::DbConn, id: &str) -> (Option<String>, i64, i64) {
        use crate::store::db::schema::{refresh_tokens, sessions};
        let hash = accounts::table.find(id).select(accounts::password_hash).get_result(c).unwrap();
        let live = sessions::table.filter(sessions::account_id.eq(id)).count().get_result(c).unwrap();
        let tokens = refresh_tokens::table
            .filter(refresh_tokens::account_id.eq(id))
            .filter(refresh_tokens::revoked_at.is_null())
            .count()
            .get_result(c)
            .unwrap();
        (hash, live, tokens)
    }

    fn outbox(dir: &std::path::Path) -> Mailer {
        Mailer::Outbox { dir: dir.to_path_buf(), from: "idp@example.gov.tw".parse().unwrap() }
    }

    #[test]
    fn the_domain_refuses_privileged_accounts_to_every_channel_but_the_server() {
        let (db, protector, id) = world();
        let mut c = db.get().unwrap();
        roles::grant(&mut c, &id, "helpdesk", "cli", 0).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mailer = outbox(dir.path());
        let nid = NationalId::parse("A123456789").unwrap();
        let request = |by| IssueRequest { national_id: &nid, email: "x@example.com", issued_by: "t", by, ttl_secs: 60 };
        for by in [
            ResetBy::Helpdesk,
            ResetBy::HrStaff { name: "李美華", agency: "X" },
            ResetBy::AgencyCard { agency: "X", holder: "李美華" },
        ] {
            let r = issue(&mut c, &protector, &mailer, &request(by), 1);
            assert!(matches!(r, Err(IssueError::Privileged)), "{by:?}: {r:?}");
        }
        assert_eq!(left(&mut c, &id), (Some("old-hash".into()), 1, 1), "nothing changed");
        assert!(!dir.path().exists() || std::fs::read_dir(dir.path()).unwrap().count() == 0, "nothing mailed");
        assert!(issue(&mut c, &protector, &mailer, &request(ResetBy::Server), 1).is_ok());
    }

    #[test]
    fn a_reset_ends_password_sessions_and_tokens_only_if_its_mails_go_out() {
        let (db, protector, id) = world();
        let mut c = db.get().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let nid = NationalId::parse("A123456789").unwrap();
        let broken = dir.path().join("not-a-folder");
        std::fs::write(&broken, b"x").unwrap();
        let by = ResetBy::Helpdesk;
        // To another address: the notice, then the password; both fail here.
        let request = IssueRequest { national_id: &nid, email: "x@example.com", issued_by: "t", by, ttl_secs: 60 };
        let r = issue(&mut c, &protector, &outbox(&broken), &request, 1);
        assert!(matches!(r, Err(IssueError::Infra(InfraError::Mail(_)))), "{r:?}");
        assert_eq!(left(&mut c, &id), (Some("old-hash".into()), 1, 1), "a failed mail changes nothing");
        let issued = issue(&mut c, &protector, &outbox(dir.path()), &request, 1).unwrap();
        assert_eq!(left(&mut c, &id), (None, 0, 0), "the old password, session and token are gone");
        assert_eq!((issued.ended.sids.len(), issued.ended.refresh_tokens), (1, 1));
        assert_eq!(issued.notice_to.as_deref(), Some("ming@example.gov.tw"));
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = super::generate();
        assert_eq!(a.chars().count(), 16);
        assert_ne!(a, super::generate());
        assert!(a.bytes().all(|b| super::ALPHABET.contains(&b)));
    }

    /// Every run of ASCII that is not a space (a word, an address, a password, a link, a number).
    fn ascii_runs(text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_ascii() || c.is_whitespace()).filter(|w| !w.is_empty()).map(str::to_string).collect()
    }

    /// The mails as they are sent: each line fits, no English word, address, password or link is
    /// split over two lines, the password line stays whole, and only breaks are added.
    fn assert_wrapped_whole(text: &str, wrapped: &str, long_ok: Option<&str>) {
        for l in wrapped.lines() {
            assert!(l.len() <= 72 || Some(l) == long_ok, "too long: {l}\n{wrapped}");
        }
        for run in ascii_runs(text) {
            assert!(wrapped.lines().any(|l| l.contains(&run)), "{run:?} was split:\n{wrapped}");
        }
        let letters = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert_eq!(letters(wrapped), letters(text), "only breaks are new:\n{wrapped}");
    }

    #[test]
    fn every_mail_is_wrapped_without_breaking_a_word_the_password_line_or_the_link() {
        let mut p = person("ming@example.gov.tw");
        p.name = "歐陽美玲Wang-Richardson".into();
        let password = "abcdEFGH2345jkmn";
        for why in [Why::ResetByStaff, Why::Requested] {
            let text = body(&p, why, password, 72 * 3600);
            let wrapped = crate::mail::wrap(&text);
            assert_wrapped_whole(&text, &wrapped, None);
            assert!(wrapped.lines().any(|l| l == format!("一次性密碼: {password}")), "{wrapped}");
            assert!(wrapped.contains("人事服務網") && wrapped.contains("one-time password"), "both languages");
        }
        let by = ResetBy::HrStaff { name: "林志明", agency: "行政院人事行政總處人力資源處" };
        let text = notice(&p, by, "wang.richardson@personnel.example.gov.tw", 1_790_000_000);
        assert_wrapped_whole(&text, &crate::mail::wrap(&text), None);

        use crate::accounts::email_verification;
        let token = "AAAAAAAAAAAAAAAAAAAAAA";
        let link = format!("https://sso.example.gov.tw{}?token={token}", email_verification::PATH);
        let text = email_verification::body(&p.name, &link, 24 * 3600);
        let wrapped = crate::mail::wrap(&text);
        assert_wrapped_whole(&text, &wrapped, None);
        assert!(wrapped.lines().any(|l| l == link), "{wrapped}");
        // An issuer long enough that the link cannot fit a line: the link alone is longer.
        let link = format!("https://hr-sso.personnel.example.gov.tw/idp{}?token={token}", email_verification::PATH);
        let text = email_verification::body(&p.name, &link, 24 * 3600);
        let wrapped = crate::mail::wrap(&text);
        assert_wrapped_whole(&text, &wrapped, Some(&link));
        assert!(wrapped.lines().any(|l| l == link), "{wrapped}");
    }
}
