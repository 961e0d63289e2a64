//! Resets and password changes, played by someone who wants more out of them than the rules
//! give: HR staff, an agency card or the helpdesk resetting a privileged account to take it over;
//! a thief who keeps using the old password, a session or a refresh token after the owner's
//! password was reset or changed; a reset mailed to an address of the attacker's choosing,
//! hoping the owner never hears of it; and a failed mail that should change nothing.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use diesel::prelude::*;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::harness::*;
use crate::hr::{reset, search};

const PW: &str = "Personnel-Office-2026";
const NEW_PW: &str = "Another-Long-Pass-77";
const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
/// 王小明's address once activated (the harness activates everyone with it).
const MING_OWN: &str = "someone@example.gov.tw";

/// A national ID with the right check digit.
fn nid(first_nine: &str) -> String {
    idp::national_id::NationalId::with_check_digit(first_nine).unwrap().expose().to_string()
}

/// 林志明 of the same agency as 李美華 (HR staff), who will hold the helpdesk role.
fn keeper() -> String {
    nid("G12345678")
}

struct World {
    idp: Idp,
    client_id: String,
    secret: String,
    logouts: UnboundedReceiver<String>,
}

/// A started IdP: the register plus 林志明, an application with a back-channel logout URI that
/// may ask for refresh tokens, and 李美華 (HR staff) and 王小明 activated with [`PW`].
async fn world() -> World {
    let (port, logouts) = logout_receiver(0).await;
    let mut idp = Idp::new();
    idp.import_register();
    let extra = format!(
        "national_id,name,agency_code,unit,person_category,concurrent_duty,status,email\n\
         {},林志明,A21000000I,資訊處,01,,active,keeper@example.gov.tw\n",
        keeper()
    );
    let f = idp.file("extra.csv", extra.as_bytes());
    idp.cli_ok(&["personnel", "import", &f]);
    let uri = format!("http://127.0.0.1:{port}/backchannel");
    let out = idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "請假系統",
        "--redirect-uri",
        CB,
        "--scope",
        "openid profile offline_access",
        "--backchannel-logout-uri",
        &uri,
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let (client_id, secret) =
        (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string());
    idp.start().await;
    idp.activate(MEIHUA, "meihua.lee", PW).await;
    idp.activate(MING, "ming.wang", PW).await;
    World { idp, client_id, secret, logouts }
}

fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

impl World {
    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/token", self.idp.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Signs in to the application in `b`'s SSO session; returns the session's `sid` and a
    /// refresh token.
    async fn use_app(&self, b: &Browser) -> (String, String) {
        let r = b
            .get(&format!(
                "/authorize?client_id={}&redirect_uri={CB_ENC}&response_type=code&scope=openid%20offline_access",
                self.client_id
            ))
            .await;
        let loc = r.location.unwrap_or_else(|| panic!("no redirect: {} {}", r.status, r.body));
        let code = query_param(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"));
        let (status, t) =
            self.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)]).await;
        assert_eq!(status, 200, "{t}");
        let sid = claims(t["id_token"].as_str().unwrap())["sid"].as_str().unwrap().to_string();
        (sid, t["refresh_token"].as_str().expect("a refresh token").to_string())
    }

    /// Uses a refresh token; returns the status and the answer (a rotated token on success).
    async fn refresh(&self, rt: &str) -> (u16, Value) {
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)]).await
    }

    /// Waits for the logout token of session `sid`; other sessions' tokens are skipped.
    async fn logout_of(&mut self, sid: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let body = tokio::time::timeout_at(deadline, self.logouts.recv())
                .await
                .unwrap_or_else(|_| panic!("no back-channel logout for session {sid}"))
                .unwrap();
            let token =
                url::form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == "logout_token").unwrap().1.into_owned();
            let c = claims(&token);
            if c["sid"] == sid {
                assert_eq!(c["aud"], self.client_id.as_str());
                assert!(c["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
                return c;
            }
        }
    }

    /// Asserts that no logout token arrives for a while (longer than a sweep of the queue).
    async fn no_logout(&mut self) {
        let got = tokio::time::timeout(Duration::from_secs(7), self.logouts.recv()).await;
        assert!(got.is_err(), "an application was logged out: {got:?}");
    }
}

async fn signed_in(idp: &Idp, account: &str, password: &str) -> Browser {
    let b = Browser::new(&idp.base);
    let r = b.sign_in_at("/login", account, password).await;
    assert_eq!(r.status, 303, "sign-in as {account}: {}", r.body);
    b
}

async fn password_works(idp: &Idp, account: &str, password: &str) -> bool {
    Browser::new(&idp.base).sign_in_at("/login", account, password).await.status == 303
}

/// Whether `b` is still signed in (我的專區 opens instead of sending to the sign-in page).
async fn still_signed_in(b: &Browser) -> bool {
    let r = b.get("/me").await;
    match r.status {
        200 => true,
        303 if r.location.as_deref() == Some("/login") => false,
        other => panic!("/me answered {other}: {}", r.body),
    }
}

/// Posts the issue step directly for a register entry, as a forged form would.
async fn forged_issue(b: &Browser, person_id: &str, email: &str) -> Page {
    let csrf = b.get("/hr/reset-password").await.input("csrf_token").unwrap();
    b.post("/hr/reset-password/issue", &[("csrf_token", &csrf), ("person", person_id), ("email", email)]).await
}

fn person_id_of(idp: &Idp, person_name: &str) -> String {
    use idp::store::db::schema::people::dsl::*;
    let db = idp.db();
    let mut conn = db.get().unwrap();
    people.filter(name.eq(person_name)).select(id).first(&mut *conn).unwrap()
}

fn account_id_of(idp: &Idp, account: &str) -> String {
    use idp::store::db::schema::accounts::dsl::*;
    let db = idp.db();
    let mut conn = db.get().unwrap();
    accounts.filter(account_name_key.eq(account)).select(id).first(&mut *conn).unwrap()
}

/// Every mail in the outbox.
fn mails(idp: &Idp) -> Vec<String> {
    match std::fs::read_dir(idp.outbox()) {
        Ok(d) => d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect(),
        Err(_) => vec![],
    }
}

/// `(actor, outcome, detail)` of the `password.reset` events made from the web pages.
fn web_resets(idp: &Idp) -> Vec<(Option<String>, String, String)> {
    crate::hr::reset_events(idp).into_iter().map(|(actor, _, outcome, _, detail)| (actor, outcome, detail)).collect()
}

/// A browser holding an agency-card session of 李美華 acting for her agency, opened directly in
/// the database: the card sign-in itself is tested with the card tests; here it is only what
/// such a session may reset.
fn agency_card_session(idp: &Idp) -> Browser {
    let holder = account_id_of(idp, "meihua.lee");
    let db = idp.db();
    let mut conn = db.get().unwrap();
    let now = idp::error::now();
    let (token, _) =
        idp::authn::session::create_acting(&mut conn, &holder, "loa-2", &["sc", "pin"], Some("A21000000I"), now, 3600)
            .unwrap();
    let jar = Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(&format!("idp_session={token}; Path=/"), &idp.base.parse().unwrap());
    let http =
        reqwest::Client::builder().cookie_provider(jar).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Browser { http, base: idp.base.clone() }
}

const PRIVILEGED_MESSAGE: &str = "此帳號具有系統管理或客服人員權限，無法由網頁重設密碼";

#[tokio::test]
async fn hr_staff_of_the_same_agency_cannot_reset_an_operator_or_a_helpdesk_account() {
    let w = world().await;
    let idp = &w.idp;
    idp.cli_ok(&["users", "grant", "--national-id", MING, "--role", "operator"]);
    idp.cli_ok(&["users", "grant", "--national-id", &keeper(), "--role", "helpdesk"]);
    let hr = signed_in(idp, "meihua.lee", PW).await;
    let before = mails(idp).len();

    // The search already refuses, with its own message, and shows no e-mail field to fill in.
    let r = search(&hr, MING).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains(PRIVILEGED_MESSAGE), "{}", r.body);
    assert!(r.input("person").is_none(), "no reset form for an operator");
    let r = search(&hr, &keeper()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains(PRIVILEGED_MESSAGE));

    // A forged confirmation or issue step straight to the account is refused too.
    for person in [person_id_of(idp, "王小明"), person_id_of(idp, "林志明")] {
        let r = forged_issue(&hr, &person, "attacker@evil.example").await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains(PRIVILEGED_MESSAGE));
    }
    assert_eq!(mails(idp).len(), before, "nothing was mailed");

    // Audited as such, with who did it; the operator's password still works.
    let hr_id = account_id_of(idp, "meihua.lee");
    let refused: Vec<_> = web_resets(idp).into_iter().filter(|e| e.1 == "privileged").collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(refused.iter().all(|e| e.0.as_deref() == Some(hr_id.as_str())));
    assert!(password_works(idp, "ming.wang", PW).await, "the operator's password is untouched");

    // In English too.
    let r = hr.get("/hr/reset-password?ui_locales=en").await;
    let csrf = r.input("csrf_token").unwrap();
    let r = hr.post("/hr/reset-password/search?ui_locales=en", &[("csrf_token", &csrf), ("national_id", MING)]).await;
    assert!(r.body.contains("cannot be reset from the web pages"), "{}", r.body);
}

#[tokio::test]
async fn neither_the_helpdesk_page_nor_an_agency_card_resets_a_privileged_account_only_the_server_does() {
    let w = world().await;
    let idp = &w.idp;
    idp.cli_ok(&["users", "grant", "--national-id", MING, "--role", "operator"]);
    idp.cli_ok(&["users", "grant", "--national-id", &keeper(), "--role", "helpdesk"]);
    idp.activate(&keeper(), "keeper.lin", PW).await;
    let helpdesk = signed_in(idp, "keeper.lin", PW).await;
    let before = mails(idp).len();

    // The helpdesk resets anyone, but not an operator, and not a helpdesk account (its own).
    for target in [MING.to_string(), keeper()] {
        let r = search(&helpdesk, &target).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains(PRIVILEGED_MESSAGE));
    }
    let r = forged_issue(&helpdesk, &person_id_of(idp, "王小明"), "attacker@evil.example").await;
    assert_eq!(r.status, 403);

    // An agency-card session acting for the agency: refused the same way.
    let card = agency_card_session(idp);
    let r = search(&card, MING).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains(PRIVILEGED_MESSAGE));
    let r = forged_issue(&card, &person_id_of(idp, "林志明"), "attacker@evil.example").await;
    assert_eq!(r.status, 403);
    assert_eq!(mails(idp).len(), before, "nothing was mailed");
    let outcomes: Vec<String> = web_resets(idp).into_iter().map(|e| e.1).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "privileged").count(), 5, "{outcomes:?}");
    assert!(password_works(idp, "ming.wang", PW).await);
    assert!(password_works(idp, "keeper.lin", PW).await);

    // The refusal is about the target, not the page: an ordinary employee is reset by both.
    assert_eq!(reset(&helpdesk, MEIHUA, "meihua@example.gov.tw").await.status, 200);

    // On the server, the operator is reset.
    let out = idp.cli_ok(&["users", "reset-password", "--national-id", MING, "--email", MING_OWN]);
    assert!(out.contains("mailed"), "{out}");
    assert!(!password_works(idp, "ming.wang", PW).await, "the CLI reset ended the old password");
}

#[tokio::test]
async fn after_a_reset_the_old_password_sessions_and_refresh_tokens_stop_working_and_applications_are_told() {
    let mut w = world().await;
    let thief = signed_in(&w.idp, "ming.wang", PW).await;
    let (sid, refresh) = w.use_app(&thief).await;
    let hr = signed_in(&w.idp, "meihua.lee", PW).await;

    let done = reset(&hr, MING, MING_OWN).await;
    assert_eq!(done.status, 200, "{}", done.body);

    assert!(!password_works(&w.idp, "ming.wang", PW).await, "the old password is refused at once");
    assert!(!still_signed_in(&thief).await, "the session opened before the reset is over");
    let (status, e) = w.refresh(&refresh).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    let logout = w.logout_of(&sid).await;
    assert!(logout["sub"].is_string());

    // The owner gets in with the one-time password, and the reset is audited with what it ended.
    let otp = newest_one_time_password(&w.idp.outbox());
    let r = Browser::new(&w.idp.base).sign_in_at("/login", MING, &otp).await;
    assert!(r.location.unwrap().starts_with("/activate"));
    let success = web_resets(&w.idp).into_iter().find(|e| e.1 == "success").unwrap();
    assert!(
        success.2.contains("1 session(s) ended") && success.2.contains("1 refresh token(s) revoked"),
        "{success:?}"
    );
}

#[tokio::test]
async fn a_cli_reset_ends_the_old_password_sessions_and_refresh_tokens_too() {
    let mut w = world().await;
    let thief = signed_in(&w.idp, "ming.wang", PW).await;
    let (sid, refresh) = w.use_app(&thief).await;

    let out = w.idp.cli_ok(&["users", "reset-password", "--national-id", MING, "--email", MING_OWN]);
    assert!(out.contains("1 session(s) ended, 1 refresh token(s) revoked"), "{out}");

    assert!(!password_works(&w.idp, "ming.wang", PW).await);
    assert!(!still_signed_in(&thief).await);
    let (status, e) = w.refresh(&refresh).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    // The CLI has no keys or outbound HTTP: the running server sends it from the queue.
    w.logout_of(&sid).await;
}

#[tokio::test]
async fn a_reset_mailed_to_another_address_is_announced_to_the_accounts_own_without_the_password() {
    let w = world().await;
    let idp = &w.idp;
    let hr = signed_in(idp, "meihua.lee", PW).await;

    let before = mails(idp);
    let done = reset(&hr, MING, "attacker@evil.example").await;
    assert_eq!(done.status, 200, "{}", done.body);
    let new: Vec<String> = mails(idp).into_iter().filter(|m| !before.contains(m)).collect();
    assert_eq!(new.len(), 2, "the password and the notice");
    let otp = newest_one_time_password(&idp.outbox());
    let notice = new.iter().find(|m| m.contains(&format!("To: {MING_OWN}"))).expect("a mail to the account's own");
    assert!(!notice.contains(&otp) && !notice.contains("一次性密碼: "), "no password in the notice: {notice}");
    assert!(notice.contains("李美華") && notice.contains("人事人員"), "who reset: {notice}");
    assert!(notice.contains("臺灣時間") && notice.contains("人事單位"), "when, and whom to contact: {notice}");
    assert!(notice.contains("a***@evil.example") && !notice.contains("attacker@"), "where, masked: {notice}");
    let password_mail = new.iter().find(|m| m.contains(&otp)).unwrap();
    assert!(password_mail.contains("To: attacker@evil.example"));

    // A never-activated account is told at the register's address.
    let before = mails(idp);
    assert_eq!(reset(&hr, &keeper(), "attacker@evil.example").await.status, 200);
    let new: Vec<String> = mails(idp).into_iter().filter(|m| !before.contains(m)).collect();
    assert_eq!(new.len(), 2);
    assert!(new.iter().any(|m| m.contains("To: keeper@example.gov.tw") && !m.contains("一次性密碼: ")));

    // To the account's own address (in any letter case) there is nothing to announce.
    let before = mails(idp).len();
    assert_eq!(reset(&hr, MING, "SomeOne@Example.gov.tw").await.status, 200);
    assert_eq!(mails(idp).len(), before + 1, "the password only");
    let success = web_resets(idp).into_iter().filter(|e| e.1 == "success").collect::<Vec<_>>();
    assert!(success[0].2.contains("notice sent"), "{success:?}");
}

#[tokio::test]
async fn a_reset_whose_mail_fails_leaves_the_old_password_sessions_and_tokens_working() {
    let mut w = world().await;
    let owner = signed_in(&w.idp, "ming.wang", PW).await;
    let (_, refresh) = w.use_app(&owner).await;
    let hr = signed_in(&w.idp, "meihua.lee", PW).await;
    // The mail system is down: every delivery fails from now on.
    std::fs::remove_dir_all(w.idp.outbox()).unwrap();
    std::fs::write(w.idp.outbox(), b"not a folder").unwrap();

    for to in [MING_OWN, "attacker@evil.example"] {
        let r = reset(&hr, MING, to).await;
        assert_eq!(r.status, 502, "{}", r.body);
    }
    assert!(password_works(&w.idp, "ming.wang", PW).await, "the old password still works");
    assert!(still_signed_in(&owner).await, "the session is still there");
    let (status, t) = w.refresh(&refresh).await;
    assert_eq!(status, 200, "the refresh token still works: {t}");
    w.no_logout().await;
    let outcomes: Vec<String> = web_resets(&w.idp).into_iter().map(|e| e.1).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "mail_failed").count(), 2, "{outcomes:?}");
    assert!(!outcomes.contains(&"success".to_string()));
}

/// Changes the password from `b`; `sign_out_others` is the box 「同時登出其他裝置」.
async fn change_password(b: &Browser, current: &str, new: &str, sign_out_others: bool) -> Page {
    let page = b.get("/me").await;
    assert!(page.body.contains("同時登出其他裝置"), "the box is on the page");
    assert!(page.body.contains("name=\"sign_out_others\" value=\"1\" checked"), "ticked by default");
    let csrf = page.input("csrf_token").unwrap();
    let mut form = vec![
        ("csrf_token", csrf.as_str()),
        ("current_password", current),
        ("password", new),
        ("password_confirm", new),
        ("sign_out_offered", "1"),
    ];
    if sign_out_others {
        form.push(("sign_out_others", "1"));
    }
    let r = b.post("/me/password", &form).await;
    assert_eq!(r.status, 303, "{}", r.body);
    r
}

#[tokio::test]
async fn a_password_change_signs_a_thief_out_everywhere_unless_the_owner_unticks_the_box() {
    let mut w = world().await;
    let owner = signed_in(&w.idp, "ming.wang", PW).await;
    let (_, owner_refresh) = w.use_app(&owner).await;
    let thief = signed_in(&w.idp, "ming.wang", PW).await;
    let (thief_sid, thief_refresh) = w.use_app(&thief).await;

    let r = change_password(&owner, PW, NEW_PW, true).await;
    assert!(owner.get(r.location.as_deref().unwrap()).await.body.contains("其他裝置及應用系統的登入已結束"));
    assert!(!still_signed_in(&thief).await, "the other session is over");
    let (status, e) = w.refresh(&thief_refresh).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    w.logout_of(&thief_sid).await;
    assert!(still_signed_in(&owner).await, "the session that changed it stays");
    let (status, t) = w.refresh(&owner_refresh).await;
    assert_eq!(status, 200, "so do its own tokens: {t}");

    // Unticked: the other devices stay signed in.
    let laptop = signed_in(&w.idp, "ming.wang", NEW_PW).await;
    let (_, laptop_refresh) = w.use_app(&laptop).await;
    change_password(&owner, NEW_PW, PW, false).await;
    assert!(still_signed_in(&laptop).await);
    assert_eq!(w.refresh(&laptop_refresh).await.0, 200);
    assert!(!password_works(&w.idp, "ming.wang", NEW_PW).await);
    w.no_logout().await;
    let details: Vec<String> = {
        use idp::store::db::schema::audit_events::dsl::*;
        let db = w.idp.db();
        let mut conn = db.get().unwrap();
        audit_events
            .filter(event.eq("account.password_change"))
            .filter(outcome.eq("success"))
            .select(detail)
            .load(&mut *conn)
            .unwrap()
    };
    assert!(details.iter().any(|d| d.contains("other sessions ended: 1")), "{details:?}");
    assert!(details.iter().any(|d| d == "other sessions kept"), "{details:?}");
}

#[tokio::test]
async fn separation_on_import_ends_sessions_and_tokens_and_tells_their_applications() {
    let mut w = world().await;
    let b = signed_in(&w.idp, "ming.wang", PW).await;
    let (sid, refresh) = w.use_app(&b).await;
    let separated = PERSONNEL.replace(
        "A123456789,王小明,A21000000I,資訊處,01,,active,",
        "A123456789,王小明,A21000000I,資訊處,01,,separated,",
    );
    let f = w.idp.file("separation.csv", separated.as_bytes());
    w.idp.cli_ok(&["personnel", "import", &f]);
    assert!(!still_signed_in(&b).await);
    let (status, e) = w.refresh(&refresh).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    w.logout_of(&sid).await;
}

#[tokio::test]
async fn parallel_guesses_at_the_current_password_count_in_the_sign_in_throttle() {
    let w = world().await;
    // Someone at an unlocked browser guesses the current password twenty times at once.
    let borrowed = signed_in(&w.idp, "ming.wang", PW).await;
    let csrf = borrowed.get("/me").await.input("csrf_token").unwrap();
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let (b, csrf) = (&borrowed, csrf.clone());
            async move {
                let guess = format!("Wrong-Current-{i:02}-x");
                let form = [
                    ("csrf_token", csrf.as_str()),
                    ("current_password", guess.as_str()),
                    ("password", NEW_PW),
                    ("password_confirm", NEW_PW),
                ];
                b.post("/me/password", &form).await.status
            }
        })
        .collect();
    let statuses = join_all(guesses).await;
    let checked = w.idp.audit_count("account.password_change", "wrong_password");
    assert!(checked <= 5, "{checked} guesses reached the password check: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 422 || *s == 429), "{statuses:?}");
    // The same count as sign-in: the owner's next sign-in waits too, and the password is unchanged.
    assert_eq!(Browser::new(&w.idp.base).sign_in_at("/login", "ming.wang", PW).await.status, 429);
}
