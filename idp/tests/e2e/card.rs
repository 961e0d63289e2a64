//! Card sign-in over the signed-challenge channel, with the test PKI that `idp dev pki` makes:
//! first-login identify and bind, every refusal, replay and step-up.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;
use test_pki::fixtures::{self as pki_fixtures, pem_to_der};
use test_pki::pkcs7::sign_pkcs7;

use crate::harness::*;

const PW: &str = "Civil-Service-2026";

/// A fresh test PKI (generated once per test) and an IdP that trusts it.
pub(crate) struct CardWorld {
    pub(crate) idp: Idp,
    pub(crate) pki: PathBuf,
    /// The PKI's folder, when this world owns it.
    _pki_dir: Option<tempfile::TempDir>,
}

pub(crate) fn list(pki: &Path, files: &[String]) -> String {
    let quoted: Vec<String> = files.iter().map(|f| format!("\"{}\"", pki.join(f).display())).collect();
    format!("[{}]", quoted.join(","))
}

/// A fresh test PKI. ECDSA keys keep the tests fast; the RSA profile is covered by the
/// validator's own tests.
pub(crate) fn test_pki() -> (tempfile::TempDir, pki_fixtures::Manifest) {
    let dir = tempfile::tempdir().unwrap();
    let m = pki_fixtures::generate_with(dir.path(), &pki_fixtures::FixtureOptions::fast()).unwrap();
    (dir, m)
}

/// The test PKI with its CRL files.
pub(crate) async fn card_world() -> CardWorld {
    let (dir, m) = test_pki();
    let crls = list(dir.path(), &m.crl_files);
    let mut w = card_world_on(dir.path(), &m, &[("IDP_CERTIFICATES__CRL_FILES", crls)]).await;
    w._pki_dir = Some(dir);
    w
}

/// An IdP trusting the PKI in `dir`, with revocation configured by `revocation` (environment).
pub(crate) async fn card_world_on(pki: &Path, m: &pki_fixtures::Manifest, revocation: &[(&str, String)]) -> CardWorld {
    let pki = pki.to_path_buf();
    let mut env = vec![
        ("IDP_CERTIFICATES__CITIZEN_TRUST_ANCHORS", list(&pki, &m.citizen_trust_anchors)),
        ("IDP_CERTIFICATES__AGENCY_TRUST_ANCHORS", list(&pki, &m.agency_trust_anchors)),
    ];
    env.extend(revocation.iter().map(|(k, v)| (*k, v.clone())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut idp = Idp::with_env(&env);
    idp.import_register();
    idp.start().await;
    CardWorld { idp, pki, _pki_dir: None }
}

impl CardWorld {
    pub(crate) fn der(&self, file: &str) -> Vec<u8> {
        let text = std::fs::read_to_string(self.pki.join(file)).unwrap();
        if file.ends_with(".key.pem") {
            use rustls_pki_types::pem::PemObject;
            return rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(text.as_bytes())
                .unwrap()
                .secret_pkcs8_der()
                .to_vec();
        }
        pem_to_der(&text).unwrap()
    }

    /// Plays the login page's script with a software card: challenge, CMS signature, post.
    pub(crate) async fn card_login(&self, b: &Browser, cert: &str, tx: &str) -> Page {
        let login = b.get(&if tx.is_empty() { "/login".to_string() } else { format!("/login?tx={tx}") }).await;
        let csrf = login.input("csrf_token").unwrap();
        self.post_signed(b, cert, &[("csrf_token", &csrf), ("tx", tx), ("ret_code", "0")]).await
    }

    /// Signs a fresh challenge with a software card and posts it to `/card/login` with `fields`.
    pub(crate) async fn post_signed(&self, b: &Browser, cert: &str, fields: &[(&str, &str)]) -> Page {
        let ch: Value =
            b.http.get(format!("{}/card/challenge", self.idp.base)).send().await.unwrap().json().await.unwrap();
        let key = cert.replace(".pem", ".key.pem");
        let cms = sign_pkcs7(&self.der(cert), &self.der(&key), ch["challenge"].as_str().unwrap().as_bytes()).unwrap();
        let sig = base64::engine::general_purpose::STANDARD.encode(cms);
        let mut form = fields.to_vec();
        form.push(("challenge_id", ch["id"].as_str().unwrap()));
        form.push(("signature", &sig));
        b.post("/card/login", &form).await
    }

    pub(crate) async fn identify(&self, b: &Browser, identifier: &str) -> Page {
        let form = b.get("/card/identify").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.input("csrf_token").unwrap();
        b.post("/card/identify", &[("csrf_token", &csrf), ("identifier", identifier)]).await
    }
}

#[tokio::test]
async fn card_first_login_identifies_binds_activates_and_later_needs_only_the_card() {
    let w = card_world().await;
    let b = Browser::new(&w.idp.base);
    let login = b.get("/login").await;
    assert!(
        login.body.contains("憑證登入") && login.body.contains("/static/card.js"),
        "the login page offers the card"
    );
    // Unbound card: 找不到對應的憑證資訊 → identify.
    let r = w.card_login(&b, pki_fixtures::CITIZEN_WANG, "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with("/card/identify"));
    // A citizen certificate names its holder: no password is asked for.
    let form = b.get("/card/identify").await;
    assert!(!form.body.contains("name=\"password\""), "{}", form.body);
    // The seeds' order: unknown, separated, not the owner.
    let r = w.identify(&b, "D123456780").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("不存在於本總處公務人力資料庫中"));
    let r = w.identify(&b, CHIH).await;
    assert!(r.body.contains("卸職狀態"));
    let r = w.identify(&b, MEIHUA).await;
    assert!(r.body.contains("與自然人憑證擁有者並非同一個使用者"));
    // The owner: bound, and a never-activated account goes to activation.
    let r = w.identify(&b, MING).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with("/activate"));
    let csrf = b.get("/activate").await.input("csrf_token").unwrap();
    let r = b
        .post(
            "/activate",
            &[
                ("csrf_token", &csrf),
                ("account", "ming.wang"),
                ("email", "ming@example.gov.tw"),
                ("password", PW),
                ("password_confirm", PW),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    // Later logins need only the card.
    let b2 = Browser::new(&w.idp.base);
    let r = w.card_login(&b2, pki_fixtures::CITIZEN_WANG, "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/"));
    assert!(b2.get("/").await.body.contains("王小明"));
}

#[tokio::test]
async fn invalid_expired_revoked_untrusted_test_and_unknown_agency_cards_are_refused_with_the_seeds_words() {
    let w = card_world().await;
    let b = Browser::new(&w.idp.base);
    for cert in [
        pki_fixtures::CITIZEN_WANG_EXPIRED,
        pki_fixtures::CITIZEN_LI_REVOKED,
        pki_fixtures::CITIZEN_WANG_UNTRUSTED,
        pki_fixtures::CITIZEN_WANG_ENCRYPTION,
    ] {
        let r = w.card_login(&b, cert, "").await;
        assert_eq!(r.status, 403, "{cert}");
        assert!(r.body.contains("插入之自然人憑證或機關憑證無效"), "{cert}: {}", r.body);
    }
    let r = w.card_login(&b, pki_fixtures::AGENCY_TEST, "").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("請勿使用測試之機關憑證登入"));
    let r = w.card_login(&b, pki_fixtures::AGENCY_UNKNOWN, "").await;
    assert!(r.body.contains("機關憑證驗證回傳之代碼不存在於本總處機關代碼檔中"));
    // Each refusal is audited.
    use diesel::prelude::*;
    use idp::store::db::schema::audit_events::dsl::*;
    let db = w.idp.db();
    let mut conn = db.get().unwrap();
    let n: i64 = audit_events
        .filter(event.eq("login.card"))
        .filter(outcome.ne("success"))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert!(n >= 6, "{n}");
}

#[tokio::test]
async fn a_challenge_works_once_and_a_signature_over_another_challenge_is_refused() {
    let w = card_world().await;
    let b = Browser::new(&w.idp.base);
    let csrf = b.get("/login").await.input("csrf_token").unwrap();
    let ch: Value = b.http.get(format!("{}/card/challenge", w.idp.base)).send().await.unwrap().json().await.unwrap();
    let other: Value = b.http.get(format!("{}/card/challenge", w.idp.base)).send().await.unwrap().json().await.unwrap();
    let cert = w.der(pki_fixtures::CITIZEN_WANG);
    let key = w.der(&pki_fixtures::CITIZEN_WANG.replace(".pem", ".key.pem"));
    // Signed the other challenge but names this one.
    let wrong = sign_pkcs7(&cert, &key, other["challenge"].as_str().unwrap().as_bytes()).unwrap();
    let sig = base64::engine::general_purpose::STANDARD.encode(wrong);
    let r = b
        .post(
            "/card/login",
            &[("csrf_token", &csrf), ("challenge_id", ch["id"].as_str().unwrap()), ("signature", &sig)],
        )
        .await;
    assert_eq!(r.status, 400);
    // The challenge is now spent: even the right signature is refused.
    let right = sign_pkcs7(&cert, &key, ch["challenge"].as_str().unwrap().as_bytes()).unwrap();
    let sig = base64::engine::general_purpose::STANDARD.encode(right);
    let r = b
        .post(
            "/card/login",
            &[("csrf_token", &csrf), ("challenge_id", ch["id"].as_str().unwrap()), ("signature", &sig)],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("已逾時或已使用過"));
    // PIN errors reported by the component get the seeds' guidance.
    let r = b.post("/card/login", &[("csrf_token", &csrf), ("ret_code", "0x76100006"), ("last_error", "0xA0")]).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("連續錯誤3次將會鎖卡"));
    let r = b.post("/card/login", &[("csrf_token", &csrf), ("ret_code", "0x76100006"), ("last_error", "0xA4")]).await;
    assert!(r.body.contains("鎖卡"));
}

#[tokio::test]
async fn a_card_bound_to_someone_else_signs_in_that_person_only_and_agency_cards_need_hr_staff() {
    let w = card_world().await;
    // 王小明 cannot bind the agency card, even with his own password: not HR staff.
    w.idp.activate(MING, "ming.wang", PW).await;
    let b = Browser::new(&w.idp.base);
    let r = w.card_login(&b, pki_fixtures::AGENCY_DGPA, "").await;
    assert!(r.location.unwrap().starts_with("/card/identify"));
    let with_password = |identifier: &'static str| {
        let b = &b;
        async move {
            let csrf = b.get("/card/identify").await.input("csrf_token").unwrap();
            b.post("/card/identify", &[("csrf_token", &csrf), ("identifier", identifier), ("password", PW)]).await
        }
    };
    let r = with_password(MING).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("人事人員"));
    // 李美華 (HR staff of that agency) can, with her password; the session acts for the agency.
    w.idp.activate(MEIHUA, "meihua.li", PW).await;
    let r = with_password("meihua.li").await;
    assert_eq!(r.status, 303, "{}", r.body);
    use diesel::prelude::*;
    use idp::store::db::schema::sessions::dsl::*;
    let db = w.idp.db();
    let mut conn = db.get().unwrap();
    let acting: Vec<Option<String>> = sessions.select(acting_agency).load(&mut *conn).unwrap();
    assert!(acting.iter().any(|a| a.as_deref() == Some("A21000000I")), "{acting:?}");
    // The agency-card session may use 重設員工密碼 for its agency.
    let r = b.get("/hr/reset-password").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn step_up_asks_a_password_session_for_a_card_before_a_loa_2_client_gets_a_code() {
    let w = card_world().await;
    let v: Value = serde_json::from_str(&w.idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "MyData",
        "--redirect-uri",
        "http://127.0.0.1:9/cb",
        "--min-acr",
        "loa-2",
        "--json",
    ]))
    .unwrap();
    let (client_id, secret) =
        (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string());
    let d: Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", w.idp.base)).await.unwrap().json().await.unwrap();
    assert_eq!(d["acr_values_supported"], serde_json::json!(["loa-1", "loa-2"]));
    // Bind the card first (first login), activate.
    let b = Browser::new(&w.idp.base);
    w.card_login(&b, pki_fixtures::CITIZEN_WANG, "").await;
    w.identify(&b, MING).await;
    let csrf = b.get("/activate").await.input("csrf_token").unwrap();
    b.post(
        "/activate",
        &[
            ("csrf_token", &csrf),
            ("account", "ming.wang"),
            ("email", "ming@example.gov.tw"),
            ("password", PW),
            ("password_confirm", PW),
        ],
    )
    .await;
    // A password session...
    let p = Browser::new(&w.idp.base);
    assert_eq!(p.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let r = p.get(&format!("/authorize?client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&response_type=code&scope=openid")).await;
    let to_login = r.location.unwrap();
    assert!(to_login.contains("card=required"), "{to_login}");
    let page = p.get(&to_login).await;
    assert!(page.body.contains("此應用系統需以憑證登入"));
    // ...steps up with the card and the request continues.
    let tx = query_param(&format!("http://x{to_login}"), "tx").unwrap();
    let r = w.card_login(&p, pki_fixtures::CITIZEN_WANG, &tx).await;
    let callback = r.location.unwrap();
    let code = query_param(&callback, "code").unwrap_or_else(|| panic!("{callback}"));
    let t: Value = reqwest::Client::new()
        .post(format!("{}/token", w.idp.base))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = t["id_token"].as_str().unwrap().split('.').nth(1).unwrap().to_string();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    assert_eq!(claims["acr"], "loa-2");
    assert_eq!(claims["amr"], serde_json::json!(["sc", "pin"]));
}

#[tokio::test]
async fn a_signed_in_person_binds_a_card_from_my_area_and_unbinds_it() {
    let w = card_world().await;
    w.idp.activate(MING, "ming.wang", PW).await;
    let b = Browser::new(&w.idp.base);
    assert_eq!(b.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let me = b.get("/me").await;
    assert!(me.body.contains("綁定憑證") && me.body.contains("/static/card.js"));
    // Someone else's card is refused: the ownership check is against the signed-in person.
    let r = w.bind_from_my_area(&b, pki_fixtures::CITIZEN_LI).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("並非同一個使用者"));
    let r = w.bind_from_my_area(&b, pki_fixtures::CITIZEN_WANG).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let me = b.get("/me").await;
    assert!(me.body.contains("自然人憑證") && me.body.contains("解除綁定"));
    // The bound card now signs in alone.
    let other = Browser::new(&w.idp.base);
    assert_eq!(w.card_login(&other, pki_fixtures::CITIZEN_WANG, "").await.location.as_deref(), Some("/"));
    // Unbind: the card is unknown again.
    let binding = me.input("binding").unwrap();
    let csrf = me.input("csrf_token").unwrap();
    assert_eq!(b.post("/me/cards/unbind", &[("csrf_token", &csrf), ("binding", &binding)]).await.status, 303);
    let third = Browser::new(&w.idp.base);
    assert!(w.card_login(&third, pki_fixtures::CITIZEN_WANG, "").await.location.unwrap().starts_with("/card/identify"));
}

/// Starts the health-card simulator (component + verification service) for a national ID.
fn health_simulator(nid: &str) -> (String, crate::harness::Proc) {
    let mut cmd = std::process::Command::new(crate::harness::workspace_binary("health-simulator"));
    cmd.args(["--bind", "127.0.0.1:0", "--national-id", nid]).stderr(std::process::Stdio::null());
    let (child, base) = crate::harness::Proc::spawn_listening("health-simulator", &mut cmd);
    (base, child)
}

#[tokio::test]
async fn health_cards_are_vouched_for_by_the_verification_service_and_bound_by_full_national_id() {
    let (sim, mut child) = health_simulator(MING);
    let verify_url = format!("{sim}/verify");
    let mut idp = Idp::with_env(&[
        ("IDP_CERTIFICATES__HEALTH_VERIFIER_URL", verify_url.as_str()),
        ("IDP_CERTIFICATES__HEALTH_COMPONENT_URL", sim.as_str()),
    ]);
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let http = reqwest::Client::new();
    let mut token = String::new();
    for _ in 0..50 {
        if let Ok(r) = http.get(format!("{sim}/token")).send().await {
            token = r.json::<Value>().await.unwrap()["card_token"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let b = Browser::new(&idp.base);
    let login = b.get("/login").await;
    assert!(login.body.contains("健保卡登入"));
    let csrf = login.input("csrf_token").unwrap();
    // A token the page altered is refused by the service: never a login.
    let r = b.post("/card/health", &[("csrf_token", &csrf), ("card_token", "forged")]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("健保卡驗證未通過"));
    // Unbound: identify; someone else's identifier is not the card's owner.
    let r = b.post("/card/health", &[("csrf_token", &csrf), ("card_token", &token)]).await;
    assert!(r.location.unwrap().starts_with("/card/identify"));
    let form = b.get("/card/identify").await;
    let c2 = form.input("csrf_token").unwrap();
    let r = b.post("/card/identify", &[("csrf_token", &c2), ("identifier", MEIHUA)]).await;
    assert_eq!(r.status, 403);
    let r = b.post("/card/identify", &[("csrf_token", &c2), ("identifier", "ming.wang")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    // Bound: the card alone signs in, at loa-2.
    let b2 = Browser::new(&idp.base);
    let csrf = b2.get("/login").await.input("csrf_token").unwrap();
    let r = b2.post("/card/health", &[("csrf_token", &csrf), ("card_token", &token)]).await;
    assert_eq!(r.location.as_deref(), Some("/"));
    // The service down: a clear error, never a login.
    child.kill();
    let b3 = Browser::new(&idp.base);
    let csrf = b3.get("/login").await.input("csrf_token").unwrap();
    let r = b3.post("/card/health", &[("csrf_token", &csrf), ("card_token", &token)]).await;
    assert_eq!(r.status, 502);
    assert!(r.body.contains("健保卡驗證服務暫時無法使用"));
}

/// Someone else with 王小明's name and the same last four national-ID characters: the certificate
/// alone cannot tell them from the card's owner; only the CA's online service can.
const NAMESAKE: &str = "A100036789";

/// The CA simulator on `socket` (which the IdP was told about before either started).
async fn ca_simulator(pki: &Path, socket: &std::net::TcpListener, token: &str) -> crate::revocation::CaSim {
    crate::revocation::CaSim::start_on(pki, socket, &["--ownership-token", token]).await
}

fn port_of(socket: &std::net::TcpListener) -> u16 {
    socket.local_addr().unwrap().port()
}

/// A card world whose IdP asks the CA's ownership service on `port` with `token`.
async fn ownership_world(port: u16, token: &str) -> CardWorld {
    let (dir, m) = test_pki();
    let token_file = dir.path().join("ownership-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let env = [
        ("IDP_CERTIFICATES__CRL_FILES", list(dir.path(), &m.crl_files)),
        ("IDP_CERTIFICATES__OWNERSHIP_VERIFIER_URL", format!("http://127.0.0.1:{port}/ownership/verify")),
        ("IDP_CERTIFICATES__OWNERSHIP_VERIFIER_TOKEN_FILE", token_file.display().to_string()),
        ("IDP_CERTIFICATES__FETCH_TIMEOUT", "2s".into()),
    ];
    let mut w = card_world_on(dir.path(), &m, &env).await;
    w._pki_dir = Some(dir);
    w
}

impl CardWorld {
    pub(crate) fn bindings(&self) -> i64 {
        use diesel::prelude::*;
        use idp::store::db::schema::card_bindings::dsl::*;
        card_bindings.count().get_result(&mut *self.idp.db().get().unwrap()).unwrap()
    }

    fn audited(&self, what: &str) -> i64 {
        self.idp.audit_count("card.bind", what)
    }

    /// Adds the namesake to the register.
    fn import_namesake(&self) {
        let csv = format!(
            "national_id,name,agency_code,unit,person_category,concurrent_duty,status,email\n\
             {NAMESAKE},王小明,A21000000I,主計室,01,,active,namesake@example.gov.tw\n"
        );
        let file = self.idp.file("namesake.csv", csv.as_bytes());
        self.idp.cli_ok(&["personnel", "import", &file]);
    }

    /// 方法二: binds a card from 我的專區 for the signed-in browser.
    pub(crate) async fn bind_from_my_area(&self, b: &Browser, cert: &str) -> Page {
        let csrf = b.get("/me").await.input("csrf_token").unwrap();
        self.post_signed(b, cert, &[("csrf_token", &csrf), ("purpose", "bind")]).await
    }
}

#[tokio::test]
async fn ownership_confirmed_online_binds_the_card_and_signs_the_owner_in() {
    let socket = listener();
    let w = ownership_world(port_of(&socket), "ca-token").await;
    let _sim = ca_simulator(&w.pki, &socket, "ca-token").await;
    w.idp.activate(MING, "ming.wang", PW).await;
    let b = Browser::new(&w.idp.base);
    let r = w.card_login(&b, pki_fixtures::CITIZEN_WANG, "").await;
    assert!(r.location.unwrap().starts_with("/card/identify"));
    // The seeds' order still holds with the service on.
    let r = w.identify(&b, "D123456780").await;
    assert!(r.body.contains("不存在於本總處公務人力資料庫中"));
    let r = w.identify(&b, CHIH).await;
    assert!(r.body.contains("卸職狀態"));
    let r = w.identify(&b, MEIHUA).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("與自然人憑證擁有者並非同一個使用者"));
    assert_eq!(w.audited("not_owner"), 1, "the local check refused 李美華 before the service was asked");
    // The owner, confirmed by the service: bound and signed in.
    let r = w.identify(&b, MING).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/"));
    assert!(b.get("/").await.body.contains("王小明"));
    assert_eq!(w.bindings(), 1);
}

#[tokio::test]
async fn ownership_service_saying_not_owner_refuses_with_the_not_owner_page_and_binds_nothing() {
    let socket = listener();
    let w = ownership_world(port_of(&socket), "ca-token").await;
    let _sim = ca_simulator(&w.pki, &socket, "ca-token").await;
    w.import_namesake();
    let b = Browser::new(&w.idp.base);
    w.card_login(&b, pki_fixtures::CITIZEN_WANG, "").await;
    // Same name and last four as the certificate: the local check passes, the CA says no.
    let r = w.identify(&b, NAMESAKE).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("與自然人憑證擁有者並非同一個使用者"), "{}", r.body);
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.audited("not_owner_online"), 1);
    // The card is still waiting: the right person can identify.
    let r = w.identify(&b, MING).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with("/activate"));
    assert_eq!(w.bindings(), 1);
}

#[tokio::test]
async fn ownership_service_down_gives_503_binds_nothing_and_a_retry_works_once_it_is_up() {
    // Nothing listens on the port yet: connections are refused.
    let socket = reserved();
    let w = ownership_world(port_of(&socket), "ca-token").await;
    let b = Browser::new(&w.idp.base);
    w.card_login(&b, pki_fixtures::CITIZEN_WANG, "").await;
    let r = w.identify(&b, MING).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("憑證所有人查驗服務暫時無法使用，請稍後再試。"), "{}", r.body);
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.audited("ownership_unavailable"), 1);
    // The service comes back: the same pending card is bound on retry.
    listen(&socket);
    let _sim = ca_simulator(&w.pki, &socket, "ca-token").await;
    let r = w.identify(&b, MING).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with("/activate"));
    assert_eq!(w.bindings(), 1);
}

#[tokio::test]
async fn ownership_service_refusing_the_token_is_treated_as_unavailable() {
    let socket = listener();
    let w = ownership_world(port_of(&socket), "not-the-right-token").await;
    let _sim = ca_simulator(&w.pki, &socket, "ca-token").await;
    let b = Browser::new(&w.idp.base);
    w.card_login(&b, pki_fixtures::CITIZEN_WANG, "").await;
    let r = w.identify(&b, MING).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("憑證所有人查驗服務暫時無法使用"));
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.audited("ownership_unavailable"), 1);
    let log = std::fs::read_to_string(w.idp.log_path()).unwrap();
    assert!(!log.contains("not-the-right-token") && !log.contains(MING), "no token or national ID in the log");
}

#[tokio::test]
async fn ownership_service_refuses_binding_from_my_area_for_someone_who_is_not_the_owner() {
    let socket = listener();
    let w = ownership_world(port_of(&socket), "ca-token").await;
    let _sim = ca_simulator(&w.pki, &socket, "ca-token").await;
    w.import_namesake();
    w.idp.activate(NAMESAKE, "namesake", PW).await;
    let b = Browser::new(&w.idp.base);
    assert_eq!(b.sign_in_at("/login", "namesake", PW).await.status, 303);
    let r = w.bind_from_my_area(&b, pki_fixtures::CITIZEN_WANG).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("並非同一個使用者"));
    assert_eq!(w.bindings(), 0);
    assert_eq!(w.audited("not_owner_online"), 1);
    // The real owner binds the same card from their own 我的專區.
    w.idp.activate(MING, "ming.wang", PW).await;
    let owner = Browser::new(&w.idp.base);
    assert_eq!(owner.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let r = w.bind_from_my_area(&owner, pki_fixtures::CITIZEN_WANG).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(w.bindings(), 1);
}
