//! 權限與兼辦管理 → 重設員工密碼, as HR staff and the helpdesk meet it: own agency only for HR
//! staff, anyone for the helpdesk, a confirmation step, the password mailed and never shown,
//! every attempt audited.

use diesel::prelude::*;

use crate::harness::*;

const PW: &str = "Personnel-Office-2026";
/// Another agency with one employee, 林佳慧, and 張志豪 who works at the helpdesk.
const OTHER_AGENCY: &str = "code,name,parent_code,oid\nA15000000I,內政部,A00000000A,2.16.886.101.20003.20015\n";
const OTHER_PEOPLE: &str = "national_id,name,agency_code,unit,person_category,concurrent_duty,status,email\n\
D223456784,林佳慧,A15000000I,戶政司,01,,active,chiahui@example.gov.tw\n\
E123456783,張志豪,A15000000I,資訊處,01,,active,helpdesk@example.gov.tw\n";
const CHIAHUI: &str = "D223456784";
const HELPDESK: &str = "E123456783";

/// A started IdP with both agencies' people and 李美華 (HR staff of A21000000I) activated.
async fn world() -> Idp {
    let mut idp = Idp::new();
    idp.import_register();
    let a = idp.file("other-agencies.csv", OTHER_AGENCY.as_bytes());
    idp.cli_ok(&["agencies", "import", &a]);
    let p = idp.file("other-people.csv", OTHER_PEOPLE.as_bytes());
    idp.cli_ok(&["personnel", "import", &p]);
    idp.start().await;
    idp.activate(MEIHUA, "meihua.lee", PW).await;
    idp
}

async fn signed_in(idp: &Idp, account: &str) -> Browser {
    let b = Browser::new(&idp.base);
    let r = b.sign_in_at("/login", account, PW).await;
    assert_eq!(r.status, 303, "sign-in as {account}: {}", r.body);
    b
}

/// Searches by national ID; returns the answer.
pub(crate) async fn search(b: &Browser, nid: &str) -> Page {
    let form = b.get("/hr/reset-password").await;
    assert_eq!(form.status, 200, "search page: {}", form.body);
    let csrf = form.input("csrf_token").unwrap();
    b.post("/hr/reset-password/search", &[("csrf_token", &csrf), ("national_id", nid)]).await
}

/// Walks search → e-mail → confirmation → issue; returns the final page.
pub(crate) async fn reset(b: &Browser, nid: &str, email: &str) -> Page {
    let found = search(b, nid).await;
    assert_eq!(found.status, 200, "search: {}", found.body);
    let (csrf, person) = (found.input("csrf_token").unwrap(), found.input("person").unwrap());
    let confirm =
        b.post("/hr/reset-password/confirm", &[("csrf_token", &csrf), ("person", &person), ("email", email)]).await;
    assert_eq!(confirm.status, 200, "confirm: {}", confirm.body);
    assert!(confirm.body.contains("確定") && confirm.body.contains("取消"), "{}", confirm.body);
    let (csrf, person, email) =
        (confirm.input("csrf_token").unwrap(), confirm.input("person").unwrap(), confirm.input("email").unwrap());
    b.post("/hr/reset-password/issue", &[("csrf_token", &csrf), ("person", &person), ("email", &email)]).await
}

fn mails(idp: &Idp) -> usize {
    std::fs::read_dir(idp.outbox()).map(|d| d.count()).unwrap_or(0)
}

/// `(actor, account_id, outcome, address, detail)` of an audit event.
pub(crate) type AuditLine = (Option<String>, Option<String>, String, Option<String>, String);

/// Every `password.reset` event made through the pages (not the CLI resets that set the test
/// people up), oldest first.
pub(crate) fn reset_events(idp: &Idp) -> Vec<AuditLine> {
    use idp::store::db::schema::audit_events::dsl::*;
    let db = idp.db();
    let mut conn = db.get().unwrap();
    audit_events
        .filter(event.eq("password.reset"))
        .filter(actor.ne("helpdesk:cli"))
        .order(at.asc())
        .select((actor, account_id, outcome, address, detail))
        .load(&mut *conn)
        .unwrap()
}

fn account_id_of(idp: &Idp, name: &str) -> String {
    use idp::store::db::schema::accounts::dsl::*;
    let db = idp.db();
    let mut conn = db.get().unwrap();
    accounts.filter(account_name_key.eq(name)).select(id).first(&mut *conn).unwrap()
}

#[tokio::test]
async fn hr_staff_reset_an_employee_of_their_agency_who_then_signs_in_and_activates() {
    let idp = world().await;
    let hr = signed_in(&idp, "meihua.lee").await;
    let form = hr.get("/hr/reset-password").await;
    assert!(form.body.contains("權限與兼辦管理") && form.body.contains("重設員工密碼"), "{}", form.body);
    assert!(form.body.contains("<label for=\"national_id\">"), "the input has a label");

    // The search shows the employee, national ID masked, e-mail pre-filled from the register.
    let found = search(&hr, MING).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(
        found.body.contains("王小明") && found.body.contains("資訊處") && found.body.contains("行政院人事行政總處")
    );
    assert!(found.body.contains("A12*****89") && !found.body.contains(MING), "national ID masked: {}", found.body);
    assert_eq!(found.input("email").as_deref(), Some("ming@example.gov.tw"));

    // Confirming is a step of its own: nothing is mailed before 確定.
    let before = mails(&idp);
    let done = reset(&hr, MING, "ming.new@example.gov.tw").await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("已產製一次性密碼並寄出"), "{}", done.body);
    // The password, and a notice (without it) to the register's address, which differs.
    assert_eq!(mails(&idp), before + 2);
    let otp = newest_one_time_password(&idp.outbox());
    assert!(!done.body.contains(&otp), "the password is never shown");
    let mail = std::fs::read_dir(idp.outbox())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains(&otp))
        .unwrap();
    assert!(mail.contains("ming.new@example.gov.tw"), "mailed to the address typed");

    // The employee signs in with national ID + that password and lands on activation.
    let ming = Browser::new(&idp.base);
    let r = ming.sign_in_at("/login", MING, &otp).await;
    assert_eq!(r.status, 303);
    assert!(r.location.unwrap().starts_with("/activate"));

    // Audited: who (李美華's account), whom (王小明's account, masked national ID), from where.
    let hr_id = account_id_of(&idp, "meihua.lee");
    let events = reset_events(&idp);
    let success = events.iter().find(|e| e.2 == "success").expect("a success event");
    assert_eq!(success.0.as_deref(), Some(hr_id.as_str()));
    assert!(success.1.is_some());
    assert_eq!(success.3.as_deref(), Some("127.0.0.1"));
    assert!(success.4.contains("A12*****89") && success.4.contains("hr_staff"), "{}", success.4);
    let log = std::fs::read_to_string(idp.log_path()).unwrap();
    assert!(!log.contains(MING) && !log.contains(&otp), "no national ID or password in the log");
}

#[tokio::test]
async fn hr_staff_are_refused_other_agencies_separated_and_unknown_people_and_each_attempt_is_audited() {
    let idp = world().await;
    let hr = signed_in(&idp, "meihua.lee").await;
    let before = mails(&idp);

    let r = search(&hr, CHIAHUI).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("此員非您服務機關之員工"), "{}", r.body);
    assert!(!r.body.contains("林佳慧"), "nothing about the other agency's person is shown");

    let r = search(&hr, CHIH).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("卸職狀態"), "{}", r.body);

    let unknown = "F131104093";
    let r = search(&hr, unknown).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("不存在於本總處公務人力資料庫中"), "{}", r.body);

    let r = search(&hr, "A123").await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("身分證字號格式不正確"), "{}", r.body);

    // A forged later step for another agency's person is refused too (every step checks again).
    let ming_found = search(&hr, MING).await;
    let csrf = ming_found.input("csrf_token").unwrap();
    let chiahui_person = {
        use idp::store::db::schema::people::dsl::*;
        let db = idp.db();
        let mut conn = db.get().unwrap();
        people.filter(name.eq("林佳慧")).select(id).first::<String>(&mut *conn).unwrap()
    };
    let r = hr
        .post(
            "/hr/reset-password/issue",
            &[("csrf_token", &csrf), ("person", &chiahui_person), ("email", "x@example.gov.tw")],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // And without the CSRF token nothing happens.
    let r = hr.post("/hr/reset-password/issue", &[("person", &chiahui_person), ("email", "x@example.gov.tw")]).await;
    assert_eq!(r.status, 403);
    assert_eq!(mails(&idp), before, "nothing was mailed");

    let hr_id = account_id_of(&idp, "meihua.lee");
    let events = reset_events(&idp);
    let outcomes: Vec<&str> = events.iter().map(|e| e.2.as_str()).collect();
    for expected in ["other_agency", "separated", "not_in_register", "invalid_national_id", "found"] {
        assert!(outcomes.contains(&expected), "{expected} audited: {outcomes:?}");
    }
    assert_eq!(outcomes.iter().filter(|o| **o == "other_agency").count(), 2, "{outcomes:?}");
    for e in &events {
        assert_eq!(e.0.as_deref(), Some(hr_id.as_str()), "who");
        assert_eq!(e.3.as_deref(), Some("127.0.0.1"), "from where");
        assert!(!e.4.contains(CHIAHUI) && !e.4.contains(CHIH) && !e.4.contains(unknown), "masked: {}", e.4);
    }
    let unknown_event = events.iter().find(|e| e.2 == "not_in_register").unwrap();
    assert!(unknown_event.4.contains("F13*****93"), "whom, masked: {}", unknown_event.4);
}

#[tokio::test]
async fn people_who_are_not_hr_staff_get_403_and_it_is_audited() {
    let idp = world().await;
    idp.activate(MING, "ming.wang", PW).await;
    let ming = signed_in(&idp, "ming.wang").await;
    let r = ming.get("/hr/reset-password").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("僅限人事人員及客服人員"), "{}", r.body);
    let r = ming.post("/hr/reset-password/search", &[("csrf_token", "x"), ("national_id", MEIHUA)]).await;
    assert_eq!(r.status, 403);
    let ming_id = account_id_of(&idp, "ming.wang");
    let events = reset_events(&idp);
    assert!(events.iter().any(|e| e.0.as_deref() == Some(ming_id.as_str()) && e.2 == "forbidden"), "{events:?}");
    // Not signed in at all: to the sign-in page.
    let anonymous = Browser::new(&idp.base);
    let r = anonymous.get("/hr/reset-password").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/login"));
}

#[tokio::test]
async fn the_helpdesk_resets_anyone_even_of_another_agency() {
    let idp = world().await;
    // A role the register does not give: granted through the CLI, audited.
    let out = idp.cli_ok(&["users", "grant", "--national-id", HELPDESK, "--role", "helpdesk"]);
    assert!(out.contains("E12*****83") && !out.contains(HELPDESK), "{out}");
    let bad = idp.cli(&["users", "grant", "--national-id", HELPDESK, "--role", "superuser"]);
    assert!(!bad.status.success());
    let unknown = idp.cli(&["users", "grant", "--national-id", "F131104093", "--role", "helpdesk"]);
    assert!(!unknown.status.success());
    idp.activate(HELPDESK, "helpdesk.chang", PW).await;
    let helpdesk = signed_in(&idp, "helpdesk.chang").await;

    // 王小明 is of 行政院人事行政總處, the helpdesk of 內政部: still allowed.
    let done = reset(&helpdesk, MING, "ming@example.gov.tw").await;
    assert_eq!(done.status, 200, "{}", done.body);
    let otp = newest_one_time_password(&idp.outbox());
    let ming = Browser::new(&idp.base);
    assert_eq!(ming.sign_in_at("/login", MING, &otp).await.status, 303);
    // Separated people are refused even to the helpdesk.
    assert_eq!(search(&helpdesk, CHIH).await.status, 403);

    let helpdesk_id = account_id_of(&idp, "helpdesk.chang");
    let events = reset_events(&idp);
    let success = events.iter().find(|e| e.2 == "success").unwrap();
    assert_eq!(success.0.as_deref(), Some(helpdesk_id.as_str()));
    assert!(success.4.contains("helpdesk"), "{}", success.4);
    {
        use idp::store::db::schema::audit_events::dsl::*;
        let db = idp.db();
        let mut conn = db.get().unwrap();
        let granted: Vec<(Option<String>, String, String)> =
            audit_events.filter(event.eq("role.grant")).select((actor, outcome, detail)).load(&mut *conn).unwrap();
        assert!(granted
            .iter()
            .any(|g| g.0.as_deref() == Some("cli") && g.1 == "success" && g.2.contains("E12*****83")));
        assert!(granted.iter().all(|g| !g.2.contains(HELPDESK)));
    }

    // Withdrawn, the helpdesk is an ordinary employee again.
    let out = idp.cli_ok(&["users", "revoke-role", "--national-id", HELPDESK, "--role", "helpdesk"]);
    assert!(out.contains("withdrawn"), "{out}");
    assert_eq!(helpdesk.get("/hr/reset-password").await.status, 403);
}

#[tokio::test]
async fn a_mail_that_cannot_be_delivered_is_reported_and_leaves_no_password() {
    let idp = world().await;
    let hr = signed_in(&idp, "meihua.lee").await;
    // The outbox becomes a file: every delivery fails from now on.
    std::fs::remove_dir_all(idp.outbox()).unwrap();
    std::fs::write(idp.outbox(), b"not a folder").unwrap();
    let r = reset(&hr, MING, "ming@example.gov.tw").await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("設定密碼信件無法寄出，密碼未重設"), "{}", r.body);
    assert_eq!(r.input("email").as_deref(), Some("ming@example.gov.tw"), "the form is there to try again");
    // Nothing usable was stored: 李美華's own one-time password was used up at activation.
    {
        use idp::store::db::schema::one_time_passwords::dsl::*;
        let db = idp.db();
        let mut conn = db.get().unwrap();
        let n: i64 = one_time_passwords.count().get_result(&mut *conn).unwrap();
        assert_eq!(n, 0);
    }
    assert!(reset_events(&idp).iter().any(|e| e.2 == "mail_failed"));
}

#[tokio::test]
async fn the_pages_speak_english_when_asked() {
    let idp = world().await;
    let hr = signed_in(&idp, "meihua.lee").await;
    let r = hr.get("/hr/reset-password?ui_locales=en").await;
    assert!(r.body.contains("Reset an employee&#x27;s password") || r.body.contains("Reset an employee's password"));
    assert!(r.body.contains("action=\"/hr/reset-password/search?ui_locales=en\""), "{}", r.body);
    let r =
        hr.http.get(format!("{}/hr/reset-password", idp.base)).header("accept-language", "en").send().await.unwrap();
    assert!(r.text().await.unwrap().contains("National ID"));
}
