//! Adversarial: cards. An agency card (機關憑證) names an agency, never a person, so whoever holds
//! an unbound one tries to make it sign in as an HR colleague: by typing the colleague's national
//! ID, by guessing the password, with a one-time password, by claiming a never-activated account,
//! or by keeping a card bound after the register moved its holder out of HR.

use diesel::prelude::*;
use test_pki::fixtures as pki_fixtures;

use crate::card::{card_world, CardWorld};
use crate::harness::*;

const PW: &str = "Civil-Service-2026";

impl CardWorld {
    /// The identify step with a password (agency cards), after the card login led there.
    async fn identify_with_password(&self, b: &Browser, identifier: &str, password: &str) -> Page {
        let form = b.get("/card/identify").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.input("csrf_token").unwrap();
        b.post("/card/identify", &[("csrf_token", &csrf), ("identifier", identifier), ("password", password)]).await
    }

    /// A fresh browser whose agency-card login reached the identify step.
    async fn at_identify(&self, cert: &str) -> Browser {
        let b = Browser::new(&self.idp.base);
        let r = self.card_login(&b, cert, "").await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert!(r.location.unwrap().starts_with("/card/identify"), "the card is not bound yet");
        b
    }

    fn sessions(&self) -> i64 {
        use idp::store::db::schema::sessions::dsl::*;
        sessions.count().get_result(&mut *self.idp.db().get().unwrap()).unwrap()
    }

    fn accounts(&self) -> i64 {
        use idp::store::db::schema::accounts::dsl::*;
        accounts.count().get_result(&mut *self.idp.db().get().unwrap()).unwrap()
    }

    /// The register re-imported with 李美華's entry changed to `row` (after her national ID).
    fn move_meihua(&self, row: &str) {
        let csv =
            format!("national_id,name,agency_code,unit,person_category,concurrent_duty,status,email\n{MEIHUA},{row}\n");
        let file = self.idp.file("moved.csv", csv.as_bytes());
        self.idp.cli_ok(&["personnel", "import", &file]);
    }

    /// 李美華 (HR staff of A21000000I) binds the agency card the right way: her own password.
    async fn meihua_binds_the_agency_card(&self) {
        self.idp.activate(MEIHUA, "meihua.li", PW).await;
        let b = self.at_identify(pki_fixtures::AGENCY_DGPA).await;
        let r = self.identify_with_password(&b, "meihua.li", PW).await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(r.location.as_deref(), Some("/"));
        assert_eq!(self.bindings(), 1);
        // Later, the card alone signs her in.
        let again = Browser::new(&self.idp.base);
        assert_eq!(self.card_login(&again, pki_fixtures::AGENCY_DGPA, "").await.location.as_deref(), Some("/"));
    }
}

#[tokio::test]
async fn an_agency_card_is_not_bound_by_typing_a_colleagues_national_id_without_her_password() {
    let w = card_world().await;
    w.idp.activate(MEIHUA, "meihua.li", PW).await;
    let b = w.at_identify(pki_fixtures::AGENCY_DGPA).await;
    let form = b.get("/card/identify").await;
    assert!(form.body.contains("name=\"password\""), "the agency identify page asks for the password");
    // Today's hole: the colleague's national ID alone.
    let csrf = form.input("csrf_token").unwrap();
    let r = b.post("/card/identify", &[("csrf_token", &csrf), ("identifier", MEIHUA)]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("機關憑證上傳：請輸入帳號密碼登入"), "{}", r.body);
    // An empty password field is no password either, with her custom account as well.
    let r = w.identify_with_password(&b, "meihua.li", "").await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.sessions(), 0, "no session was opened");
    assert_eq!(w.idp.audit_count("card.bind", "password_required"), 2);
    assert_eq!(w.idp.audit_count("card.bind", "success"), 0);
}

#[tokio::test]
async fn guessing_the_password_at_the_identify_step_binds_nothing_is_audited_and_throttled_like_sign_in() {
    let w = card_world().await;
    w.idp.activate(MEIHUA, "meihua.li", PW).await;
    let b = w.at_identify(pki_fixtures::AGENCY_DGPA).await;
    // The default throttle allows 5 failures per account within the window.
    for guess in ["123456", "password", "Civil-Service-2025", "meihua", "Civil-Service-2027"] {
        let r = w.identify_with_password(&b, MEIHUA, guess).await;
        assert_eq!(r.status, 401, "{guess}: {}", r.body);
        assert!(r.body.contains("帳號或密碼錯誤"), "{}", r.body);
    }
    assert_eq!(w.bindings(), 0);
    // Each wrong password is on record, against the account it tried.
    use idp::store::db::schema::audit_events::dsl::*;
    let ids: Vec<Option<String>> = audit_events
        .filter(event.eq("card.bind"))
        .filter(outcome.eq("bad_password"))
        .select(account_id)
        .load(&mut *w.idp.db().get().unwrap())
        .unwrap();
    assert_eq!(ids.len(), 5);
    assert!(ids.iter().all(|a| a.is_some()), "{ids:?}");
    // Now even the right password waits: the throttle has counted the guesses...
    let r = w.identify_with_password(&b, MEIHUA, PW).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("登入失敗次數過多"));
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.idp.audit_count("card.bind", "throttled"), 1);
    // ...and they are the same throttle as password sign-in.
    let login = Browser::new(&w.idp.base);
    assert_eq!(login.sign_in_at("/login", MEIHUA, PW).await.status, 429);
    let log = std::fs::read_to_string(w.idp.log_path()).unwrap();
    assert!(!log.contains(MEIHUA) && !log.contains("Civil-Service-2025"), "no national ID or password in the log");
}

#[tokio::test]
async fn a_one_time_password_is_not_the_accounts_password_for_an_agency_card() {
    let w = card_world().await;
    // Never activated: HR issued a one-time password; the card holder read it over her shoulder.
    let otp = w.idp.reset_password(MEIHUA, "meihua@example.gov.tw");
    let b = w.at_identify(pki_fixtures::AGENCY_DGPA).await;
    let r = w.identify_with_password(&b, MEIHUA, &otp).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("請先以人事人員核發之一次性密碼登入並完成帳號啟用"), "{}", r.body);
    assert_eq!(w.bindings(), 0);
    // The one-time password was not spent: its owner still signs in with it (to activation).
    let owner = Browser::new(&w.idp.base);
    let r = owner.sign_in_at("/login", MEIHUA, &otp).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with("/activate"));

    // Activated, then a new one-time password is issued: still not her password here.
    let w = card_world().await;
    w.idp.activate(MEIHUA, "meihua.li", PW).await;
    let otp = w.idp.reset_password(MEIHUA, "meihua@example.gov.tw");
    let b = w.at_identify(pki_fixtures::AGENCY_DGPA).await;
    let r = w.identify_with_password(&b, "meihua.li", &otp).await;
    assert!(r.status == 401 || r.status == 403, "{}: {}", r.status, r.body);
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.sessions(), 0);
    assert_eq!(w.idp.audit_count("card.bind", "success"), 0);
}

#[tokio::test]
async fn a_never_activated_colleague_is_not_claimed_by_an_agency_card() {
    let w = card_world().await;
    // 李美華 is HR staff but has never signed in: today the card holder would go straight to
    // activation and set her password.
    let b = w.at_identify(pki_fixtures::AGENCY_DGPA).await;
    let r = w.identify_with_password(&b, MEIHUA, "anything-at-all").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.location.is_none(), "not sent to activation");
    assert!(r.body.contains("尚未啟用之帳號不得以機關憑證綁定或登入"), "{}", r.body);
    assert!(r.body.contains("我的專區"), "the page says how to bind instead");
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.accounts(), 0, "no account was created for her");
    assert_eq!(b.get("/activate").await.status, 400, "no activation is pending in this browser");
    assert_eq!(w.idp.audit_count("card.bind", "not_activated"), 1);
}

#[tokio::test]
async fn an_agency_card_left_bound_to_a_never_activated_account_signs_nobody_in() {
    // A binding the old rule allowed: an agency card on an account that was never activated.
    let w = card_world().await;
    w.meihua_binds_the_agency_card().await;
    {
        use idp::store::db::schema::accounts::dsl::*;
        diesel::update(accounts).set(state.eq("pending")).execute(&mut *w.idp.db().get().unwrap()).unwrap();
    }
    let before = w.sessions();
    let b = Browser::new(&w.idp.base);
    let r = w.card_login(&b, pki_fixtures::AGENCY_DGPA, "").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("尚未啟用之帳號不得以機關憑證綁定或登入"), "{}", r.body);
    assert_eq!(b.get("/activate").await.status, 400, "the card holder does not get to set her password");
    assert_eq!(w.sessions(), before);
    assert_eq!(w.bindings(), 0, "the binding is released");
    assert_eq!(w.idp.audit_count("login.card", "not_activated"), 1);
}

#[tokio::test]
async fn an_agency_card_holder_moved_out_of_hr_by_a_register_reimport_can_no_longer_sign_in_with_it() {
    let w = card_world().await;
    w.meihua_binds_the_agency_card().await;
    // The register moves her from 人事室 (category 08) to 資訊處 (category 01).
    w.move_meihua("李美華,A21000000I,資訊處,01,,active,meihua@example.gov.tw");
    let before = w.sessions();
    let b = Browser::new(&w.idp.base);
    let r = w.card_login(&b, pki_fixtures::AGENCY_DGPA, "").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("此機關憑證綁定之人員已非本系統定義之人事人員"), "{}", r.body);
    assert_eq!(w.sessions(), before, "no session was opened");
    assert_eq!(w.idp.audit_count("login.card", "not_hr_staff"), 1);
    // The card is free again for the agency's current HR staff, who bind it with their password.
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.idp.audit_count("card.unbind", "not_hr_staff"), 1);
    let b = w.at_identify(pki_fixtures::AGENCY_DGPA).await;
    let r = w.identify_with_password(&b, "meihua.li", PW).await;
    assert_eq!(r.status, 403, "she cannot bind it again: {}", r.body);
    assert!(r.body.contains("機關憑證僅限人事人員上傳"));
}

#[tokio::test]
async fn an_agency_card_holder_moved_to_another_agency_can_no_longer_sign_in_with_it() {
    let w = card_world().await;
    w.meihua_binds_the_agency_card().await;
    // Still HR staff, but of 行政院 now: the card stands for 行政院人事行政總處.
    w.move_meihua("李美華,A00000000A,人事處,08,,active,meihua@example.gov.tw");
    let before = w.sessions();
    let b = Browser::new(&w.idp.base);
    let r = w.card_login(&b, pki_fixtures::AGENCY_DGPA, "").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("此機關憑證綁定之人員已非該機關之人員"), "{}", r.body);
    assert_eq!(w.sessions(), before);
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.idp.audit_count("login.card", "other_agency"), 1);
}

#[tokio::test]
async fn an_agency_card_is_not_bound_to_hr_staff_of_another_agency() {
    let w = card_world().await;
    w.idp.activate(MEIHUA, "meihua.li", PW).await;
    // The 行政院 card, and 李美華 of 行政院人事行政總處 with her right password.
    let b = w.at_identify(pki_fixtures::AGENCY_EY_STRING_OID).await;
    let r = w.identify_with_password(&b, "meihua.li", PW).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("您的服務機關與此機關憑證所屬機關不同"), "{}", r.body);
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.sessions(), 0);
    assert_eq!(w.idp.audit_count("card.bind", "other_agency"), 1);
    // Nor from 我的專區 after a password sign-in.
    let me = Browser::new(&w.idp.base);
    assert_eq!(me.sign_in_at("/login", "meihua.li", PW).await.status, 303);
    let r = w.bind_from_my_area(&me, pki_fixtures::AGENCY_EY_STRING_OID).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("您的服務機關與此機關憑證所屬機關不同"), "{}", r.body);
    assert_eq!(w.bindings(), 0);
}

#[tokio::test]
async fn binding_an_agency_card_from_my_area_needs_a_live_session_of_hr_staff() {
    let w = card_world().await;
    // No session: sent to sign in, nothing bound.
    let anon = Browser::new(&w.idp.base);
    let csrf = anon.get("/login").await.input("csrf_token").unwrap();
    let r = w.post_signed(&anon, pki_fixtures::AGENCY_DGPA, &[("csrf_token", &csrf), ("purpose", "bind")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with("/login"));
    assert_eq!(w.bindings(), 0);
    // A signed-in colleague who is not HR staff.
    w.idp.activate(MING, "ming.wang", PW).await;
    let ming = Browser::new(&w.idp.base);
    assert_eq!(ming.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let r = w.bind_from_my_area(&ming, pki_fixtures::AGENCY_DGPA).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("機關憑證僅限人事人員上傳"));
    assert_eq!(w.bindings(), 0);
    // A session that ended (signed out elsewhere) binds nothing either.
    w.idp.activate(MEIHUA, "meihua.li", PW).await;
    let meihua = Browser::new(&w.idp.base);
    assert_eq!(meihua.sign_in_at("/login", "meihua.li", PW).await.status, 303);
    let csrf = meihua.get("/me").await.input("csrf_token").unwrap();
    {
        use idp::store::db::schema::sessions::dsl::*;
        diesel::delete(sessions).execute(&mut *w.idp.db().get().unwrap()).unwrap();
    }
    let r = w.post_signed(&meihua, pki_fixtures::AGENCY_DGPA, &[("csrf_token", &csrf), ("purpose", "bind")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with("/login"));
    assert_eq!(w.bindings(), 0);
    // HR staff with a live session: bound, and the card then signs her in.
    assert_eq!(meihua.sign_in_at("/login", "meihua.li", PW).await.status, 303);
    let r = w.bind_from_my_area(&meihua, pki_fixtures::AGENCY_DGPA).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(w.bindings(), 1);
    let card = Browser::new(&w.idp.base);
    assert_eq!(w.card_login(&card, pki_fixtures::AGENCY_DGPA, "").await.location.as_deref(), Some("/"));
}

#[tokio::test]
async fn the_hr_staff_re_check_holds_on_the_tls_listener_and_the_proxy_channel_too() {
    let (dir, m) = crate::card::test_pki();
    let env = [
        ("IDP_CERTIFICATES__CRL_FILES", crate::card::list(dir.path(), &m.crl_files)),
        ("IDP_CARD_LOGIN__BIND", "127.0.0.1:0".to_string()),
        ("IDP_CERTIFICATES__TRUSTED_PROXIES", "[\"127.0.0.1\"]".to_string()),
        ("IDP_CERTIFICATES__PROXY_HEADER", "client-cert".to_string()),
    ];
    let w = crate::card::card_world_on(dir.path(), &m, &env).await;
    w.meihua_binds_the_agency_card().await;
    let bound: Vec<idp::store::db::models::CardBindingRow> = {
        use idp::store::db::schema::card_bindings::dsl::*;
        card_bindings
            .select(idp::store::db::models::CardBindingRow::as_select())
            .load(&mut *w.idp.db().get().unwrap())
            .unwrap()
    };
    w.move_meihua("李美華,A21000000I,資訊處,01,,active,meihua@example.gov.tw");
    let before = w.sessions();
    // The card listener (TLS client certificate), then the handoff to the main site.
    let b = Browser::new(&w.idp.base);
    let login = b.get("/login").await;
    let marker = "id=\"card-tls-login\" href=\"";
    let rest = &login.body[login.body.find(marker).expect("the login page links the card listener") + marker.len()..];
    let url = rest[..rest.find('"').unwrap()].replace("&amp;", "&").replace("&#x3D;", "=").replace("&#x2F;", "/");
    let mut pem = std::fs::read(dir.path().join(pki_fixtures::AGENCY_DGPA)).unwrap();
    pem.extend(std::fs::read(dir.path().join(pki_fixtures::AGENCY_DGPA.replace(".pem", ".key.pem"))).unwrap());
    let card = reqwest::Client::builder()
        .use_rustls_tls()
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut handoff = None;
    for _ in 0..50 {
        if let Ok(r) = card.get(&url).send().await {
            assert_eq!(r.status().as_u16(), 303);
            handoff = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = b.get(&handoff.expect("the card listener answered")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("此機關憑證綁定之人員已非本系統定義之人事人員"), "{}", r.body);
    assert_eq!(w.bindings(), 0, "the binding is released");
    // Bound again in the database (as if the release were lost): the proxy channel refuses too.
    {
        use idp::store::db::schema::card_bindings::dsl::*;
        for row in &bound {
            diesel::insert_into(card_bindings).values(row).execute(&mut *w.idp.db().get().unwrap()).unwrap();
        }
    }
    let der =
        test_pki::fixtures::pem_to_der(&std::fs::read_to_string(dir.path().join(pki_fixtures::AGENCY_DGPA)).unwrap())
            .unwrap();
    use base64::Engine;
    let header = format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&der));
    let r = b.http.get(format!("{}/card/proxy-login", w.idp.base)).header("Client-Cert", header).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("此機關憑證綁定之人員已非本系統定義之人事人員"));
    assert_eq!(w.sessions(), before, "no channel opened a session");
    assert_eq!(w.idp.audit_count("login.card", "not_hr_staff"), 2);
}

#[tokio::test]
async fn an_agency_card_session_loses_the_agencys_authority_when_the_register_moves_its_holder() {
    let w = card_world().await;
    w.idp.activate(MEIHUA, "meihua.li", PW).await;
    let b = w.at_identify(pki_fixtures::AGENCY_DGPA).await;
    assert_eq!(w.identify_with_password(&b, "meihua.li", PW).await.status, 303);
    // The agency-card session may reset the agency's passwords...
    assert_eq!(b.get("/hr/reset-password").await.status, 200);
    // ...until an import moves her out of HR: the open session keeps no agency authority.
    w.move_meihua("李美華,A21000000I,資訊處,01,,active,meihua@example.gov.tw");
    let r = b.get("/hr/reset-password").await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[tokio::test]
async fn agency_cards_bound_before_the_password_rule_are_released_by_the_upgrade() {
    let w = card_world().await;
    w.meihua_binds_the_agency_card().await;
    w.idp.activate(MING, "ming.wang", PW).await;
    let ming = Browser::new(&w.idp.base);
    assert_eq!(ming.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    assert_eq!(w.bind_from_my_area(&ming, pki_fixtures::CITIZEN_WANG).await.status, 303);
    assert_eq!(w.bindings(), 2);
    // The database as it was before the upgrade: the release has not run yet.
    let mut w = w;
    w.idp.stop();
    {
        use diesel::connection::SimpleConnection;
        let db = w.idp.db();
        let mut c = db.get().unwrap();
        c.batch_execute("DELETE FROM __diesel_schema_migrations WHERE version = '20261201000002'").unwrap();
    }
    w.idp.start().await;
    // The agency card, bound when anyone could bind it, is unknown again; the citizen card stays.
    assert_eq!(w.bindings(), 1);
    let b = Browser::new(&w.idp.base);
    assert!(w.card_login(&b, pki_fixtures::AGENCY_DGPA, "").await.location.unwrap().starts_with("/card/identify"));
    let b = Browser::new(&w.idp.base);
    assert_eq!(w.card_login(&b, pki_fixtures::CITIZEN_WANG, "").await.location.as_deref(), Some("/"));
}

#[tokio::test]
async fn parallel_guesses_at_the_identify_step_reach_the_password_check_no_more_than_the_limit() {
    let w = card_world().await;
    w.idp.activate(MEIHUA, "meihua.li", PW).await;
    let b = w.at_identify(pki_fixtures::AGENCY_DGPA).await;
    // Twenty wrong passwords at once, half by national ID and half by custom account: one count.
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let who = if i % 2 == 0 { MEIHUA } else { "meihua.li" };
            let guess = format!("Wrong-Guess-{i:02}-xyz");
            let (w, b) = (&w, &b);
            async move { w.identify_with_password(b, who, &guess).await.status }
        })
        .collect();
    let statuses = join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked <= 5, "{checked} guesses reached the password check: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    assert_eq!(w.idp.audit_count("card.bind", "bad_password") as usize, checked);
    assert_eq!(w.bindings(), 0);
}
