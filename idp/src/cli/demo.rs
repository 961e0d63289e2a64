//! `idp demo`: demo data, then the server.

use super::{fail, Failure};
use crate::accounts::one_time::{self, IssueRequest, ResetBy};
use crate::accounts::register::{self, ImportError, Register};
use crate::accounts::roles::{self, RoleChange};
use crate::audit::Actor;
use crate::config::Config;
use crate::error::now;
use crate::national_id::NationalId;
use crate::oidc::clients::{self, Audience, NewClient, Portal};
use crate::portal::AnnouncementInput;
use crate::state::Core;
use crate::store::db::DbConn;

/// The example application's client id in the demo.
pub const DEMO_CLIENT_ID: &str = "relying-party-example";

/// The demo trusts a test PKI made once in `<data_dir>/pki`, so card sign-in can be tried with
/// the card simulator (`card-simulator --card <data_dir>/pki/citizen-A123456789.pem`).
#[cfg(feature = "dev-pki")]
pub(super) fn demo_pki(config: &mut Config) -> Result<(), Failure> {
    use test_pki::fixtures::{self as pki_fixtures, FixtureOptions};
    let dir = config.data_dir.join("pki");
    let manifest_file = dir.join("manifest.json");
    let manifest: pki_fixtures::Manifest = if manifest_file.exists() {
        let text =
            std::fs::read_to_string(&manifest_file).map_err(|e| fail(format!("{}: {e}", manifest_file.display())))?;
        serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", manifest_file.display())))?
    } else {
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        pki_fixtures::generate_with(&dir, &FixtureOptions::fast()).map_err(|e| fail(e.to_string()))?
    };
    let paths = |files: &[String]| files.iter().map(|f| dir.join(f)).collect::<Vec<_>>();
    config.certificates.citizen_trust_anchors = paths(&manifest.citizen_trust_anchors);
    config.certificates.agency_trust_anchors = paths(&manifest.agency_trust_anchors);
    config.certificates.crl_files = paths(&manifest.crl_files);
    // Its CRLs are short-lived test data; a demo older than a week should still let people in.
    config.certificates.revocation = "best-effort".into();
    eprintln!("demo: card sign-in trusts the test PKI in {}", dir.display());
    Ok(())
}

/// Without the `dev-pki` feature there is no test PKI to make: the demo needs `certificates.*`.
#[cfg(not(feature = "dev-pki"))]
pub(super) fn demo_pki(_: &mut Config) -> Result<(), Failure> {
    Err(fail(format!("the demo needs certificates.* configured: {}", super::dev::NO_DEV_PKI)))
}

/// The second demo application: listed in 應用系統 for HR staff only (a WebHR stand-in, served
/// by a second relying-party example on port 8082).
pub const DEMO_HR_CLIENT_ID: &str = "demo-webhr";

/// Gives the demo a helpdesk to name when none is configured (footer, 忘記密碼), so the pages
/// look as they will in production; an operator's `site.helpdesk_*` are kept as they are.
pub(super) fn demo_site(config: &mut Config) {
    let site = &mut config.site;
    if site.helpdesk_phone.is_empty() && site.helpdesk_hours.is_empty() && site.helpdesk_email.is_empty() {
        site.helpdesk_phone = "02-2397-9108".into();
        site.helpdesk_hours = "週一至週五 09:00–12:00、14:00–17:00".into();
        site.helpdesk_email = "helpdesk@example.gov.tw".into();
    }
}

/// One demo application: its registration and the file its credentials go to.
struct DemoClient {
    id: &'static str,
    file: &'static str,
    name: &'static str,
    port: u16,
    audience: Audience,
    category: &'static str,
    description: &'static str,
}

const DEMO_CLIENTS: [DemoClient; 2] = [
    DemoClient {
        id: DEMO_CLIENT_ID,
        file: "demo-client.json",
        name: "Relying party example / 範例應用系統",
        port: 8081,
        audience: Audience::Everyone,
        category: "B. 人事資料服務",
        description: "範例應用系統：登入後顯示 ID token 與 userinfo 的內容。The example application: shows the ID token and userinfo claims after sign-in.",
    },
    DemoClient {
        id: DEMO_HR_CLIENT_ID,
        file: "demo-webhr-client.json",
        name: "WebHR 人事管理 (示範) / WebHR (demo)",
        port: 8082,
        audience: Audience::HrStaff,
        category: "A. 人事資料填報及考核",
        description: "僅人事人員可見的示範系統。A demo system only HR staff see and may sign in to.",
    },
];

impl DemoClient {
    fn registration(&self) -> NewClient {
        let base = format!("http://127.0.0.1:{}/", self.port);
        NewClient {
            client_id: Some(self.id.into()),
            post_logout_redirect_uris: vec![base.clone()],
            audience: self.audience.clone(),
            portal: Portal {
                category: Some(self.category.into()),
                description: Some(self.description.into()),
                url: Some(base.clone()),
            },
            ..NewClient::new(self.name, vec![format!("{base}callback")])
        }
    }
}

/// The two demo announcements (最新公告), by title.
const DEMO_ANNOUNCEMENTS: [(&str, &str); 2] = [
    (
        "人事服務網單一登入示範上線 / Single sign-on demo is live",
        "請以帳號密碼或自然人憑證登入，登入後可於「應用系統」使用各系統。Sign in with your account or citizen certificate card, then open the systems under 應用系統 (Applications).",
    ),
    (
        "首次登入請設定自訂帳號及密碼 / First sign-in: set your account and password",
        "首次登入請以身分證號及一次性密碼登入，並設定自訂帳號、電子郵件及登入密碼。On first sign-in use your national ID and the one-time password, then choose a custom account, e-mail and password.",
    ),
];

/// The demo people who get a one-time password, and how the README names them.
const DEMO_PEOPLE: [(&str, &str, &str); 3] =
    [("A123456789", "王小明", "employee"), ("B223344554", "李美華", "HR staff"), (DEMO_OPERATOR, "張雅婷", "operator")];

/// The demo operator: granted `operator` on every run (idempotent).
const DEMO_OPERATOR: &str = "E223456785";

/// Loads the demo agency table, people, applications, announcements and the operator's role,
/// and mails a one-time password to each demo person who needs one. Idempotent: a second run
/// says what is already there and changes nothing that exists.
pub(super) fn load_demo(config: Config) -> Result<(), Failure> {
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let now = now();
    let invalid = |e: ImportError| match e {
        ImportError::Invalid(errs) => fail(errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")),
        ImportError::Infra(e) => e.into(),
    };
    let demo_actor = Actor::named("demo");
    for (which, file) in [
        (Register::Agencies, &include_bytes!("../../../deploy/demo/agencies.csv")[..]),
        (Register::Personnel, &include_bytes!("../../../deploy/demo/personnel.csv")[..]),
    ] {
        register::import(&mut conn, &core.protector, which, file, &demo_actor, now).map_err(invalid)?;
    }
    for client in &DEMO_CLIENTS {
        demo_client(&core, &mut conn, client, &demo_actor, now)?;
    }
    let existing: Vec<String> = crate::portal::all_announcements(&mut conn)?.into_iter().map(|a| a.title).collect();
    for (title, body) in DEMO_ANNOUNCEMENTS {
        if existing.iter().any(|t| t == title) {
            eprintln!("demo: announcement already there: {title}");
            continue;
        }
        let input = AnnouncementInput { title: title.into(), body: body.into(), published_at: now, expires_at: None };
        crate::portal::create_announcement_by(&mut conn, input, &demo_actor, now).map_err(|e| fail(e.to_string()))?;
        eprintln!("demo: announcement published: {title}");
    }
    let operator = NationalId::parse(DEMO_OPERATOR).map_err(|e| fail(e.to_string()))?;
    match roles::change_by(&mut conn, &core.protector, &operator, "operator", true, &demo_actor, now) {
        Ok(RoleChange::AlreadyHeld) => eprintln!("demo: 張雅婷 ({operator}) already holds the operator role"),
        Ok(_) => eprintln!("demo: 張雅婷 ({operator}) is granted the operator role"),
        Err(e) => return Err(fail(e.to_string())),
    }
    for (nid, name, what) in DEMO_PEOPLE {
        demo_password(&core, &mut conn, nid, name, what, &demo_actor, now)?;
    }
    Ok(())
}

/// Registers a demo application unless it is there with its credentials file; an application
/// registered by an earlier demo without its portal listing gets it.
fn demo_client(core: &Core, conn: &mut DbConn, c: &DemoClient, actor: &Actor, now: i64) -> Result<(), Failure> {
    let file = core.config.data_dir.join(c.file);
    match clients::get(conn, c.id)? {
        Some(existing) if file.exists() => {
            if existing.portal.category.as_deref() == Some(c.category) {
                eprintln!("demo: application {} already registered; its credentials are in {}", c.id, file.display());
            } else {
                clients::edit_by(conn, c.id, c.registration(), actor, now).map_err(|e| fail(e.to_string()))?;
                eprintln!("demo: application {} already registered; listed in 應用系統 under {}", c.id, c.category);
            }
            return Ok(());
        }
        _ => {}
    }
    // Registered without its file, the secret is lost: register it again.
    clients::delete_by(conn, c.id, actor, now)?;
    let (client, secret) = clients::create_by(conn, c.registration(), actor, now).map_err(|e| fail(e.to_string()))?;
    let json = serde_json::json!({ "client_id": client.client_id, "client_secret": secret });
    let _ = std::fs::remove_file(&file);
    crate::crypto::write_private(&file, json.to_string().as_bytes())
        .map_err(|e| fail(format!("{}: {e}", file.display())))?;
    eprintln!("demo: application {} registered; its credentials are in {}", c.id, file.display());
    Ok(())
}

/// Mails a one-time password to a demo person, unless they activated their account already or
/// hold a one-time password that still works (then the run says so and mails nothing).
fn demo_password(
    core: &Core,
    conn: &mut DbConn,
    nid: &str,
    name: &str,
    what: &str,
    actor: &Actor,
    now: i64,
) -> Result<(), Failure> {
    let nid = NationalId::parse(nid).map_err(|e| fail(e.to_string()))?;
    let person = crate::accounts::person_by_national_id(conn, &core.protector, &nid)?
        .ok_or_else(|| fail(format!("{nid} is not in the demo register")))?;
    let account = crate::accounts::account_of_person(conn, &person.id)?;
    let outbox = core.config.outbox_dir();
    if let Some(a) = &account {
        if a.state == crate::accounts::AccountState::Active {
            eprintln!(
                "demo: {name} ({nid}, {what}) already activated the account: sign in with the custom account or \
                 national ID and the password chosen then"
            );
            return Ok(());
        }
        if one_time::has_live(conn, &a.id, now)? {
            eprintln!(
                "demo: {name} ({nid}, {what}) still has an unused one-time password, mailed earlier into {}",
                outbox.display()
            );
            return Ok(());
        }
    }
    let ttl = core.config.login.one_time_password_ttl.as_secs() as i64;
    let request =
        IssueRequest { national_id: &nid, email: &person.email, issued_by: "demo", by: ResetBy::Server, ttl_secs: ttl };
    one_time::issue_by(conn, &core.protector, &core.mailer, &request, actor, now).map_err(|e| fail(e.to_string()))?;
    eprintln!(
        "demo: a one-time password for {name} ({nid}, {what}) is mailed to {} in {}",
        person.email,
        outbox.display()
    );
    Ok(())
}
