//! Card sign-in over the signed-challenge channel, with the test PKI that `idp dev pki` makes:
//! first-login identify and bind, every refusal, replay and step-up.

use std::path::{Path, PathBuf};

use base64::Engine;
use idp::authn::card::challenge::sign_pkcs7;
use idp::authn::card::pki_fixtures::{self, pem_to_der};
use serde_json::Value;

use crate::harness::*;

const PW: &str = "Civil-Service-2026";

/// A fresh test PKI (generated once per test) and an IdP that trusts it.
struct CardWorld {
    idp: Idp,
    pki: PathBuf,
    _pki_dir: tempfile::TempDir,
}

fn list(pki: &Path, files: &[String]) -> String {
    let quoted: Vec<String> = files.iter().map(|f| format!("\"{}\"", pki.join(f).display())).collect();
    format!("[{}]", quoted.join(","))
}

async fn card_world() -> CardWorld {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().to_path_buf();
    // ECDSA keys keep the test fast; the RSA profile is covered by the validator's own tests.
    let m = pki_fixtures::generate_with(&pki, &pki_fixtures::FixtureOptions::fast()).unwrap();
    let env = [
        ("IDP_CERTIFICATES__CITIZEN_TRUST_ANCHORS", list(&pki, &m.citizen_trust_anchors)),
        ("IDP_CERTIFICATES__AGENCY_TRUST_ANCHORS", list(&pki, &m.agency_trust_anchors)),
        ("IDP_CERTIFICATES__CRL_FILES", list(&pki, &m.crl_files)),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut idp = Idp::with_env(&env);
    idp.import_register();
    idp.start().await;
    CardWorld { idp, pki, _pki_dir: dir }
}

impl CardWorld {
    fn der(&self, file: &str) -> Vec<u8> {
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
    async fn card_login(&self, b: &Browser, cert: &str, tx: &str) -> Page {
        let login = b.get(&if tx.is_empty() { "/login".to_string() } else { format!("/login?tx={tx}") }).await;
        let csrf = login.input("csrf_token").unwrap();
        let ch: Value =
            b.http.get(format!("{}/card/challenge", self.idp.base)).send().await.unwrap().json().await.unwrap();
        let key = cert.replace(".pem", ".key.pem");
        let cms = sign_pkcs7(&self.der(cert), &self.der(&key), ch["challenge"].as_str().unwrap().as_bytes()).unwrap();
        let sig = base64::engine::general_purpose::STANDARD.encode(cms);
        b.post(
            "/card/login",
            &[
                ("csrf_token", &csrf),
                ("tx", tx),
                ("challenge_id", ch["id"].as_str().unwrap()),
                ("signature", &sig),
                ("ret_code", "0"),
            ],
        )
        .await
    }

    async fn identify(&self, b: &Browser, identifier: &str) -> Page {
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
    // 王小明 cannot bind the agency card: not HR staff.
    let b = Browser::new(&w.idp.base);
    let r = w.card_login(&b, pki_fixtures::AGENCY_DGPA, "").await;
    assert!(r.location.unwrap().starts_with("/card/identify"));
    let r = w.identify(&b, MING).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("人事人員"));
    // 李美華 (HR staff of that agency) can; the session acts for the agency.
    w.idp.activate(MEIHUA, "meihua.li", PW).await;
    let r = w.identify(&b, "meihua.li").await;
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
    let csrf = me.input("csrf_token").unwrap();
    let bind = |cert: &'static str| {
        let (w, b, csrf) = (&w, &b, csrf.clone());
        async move {
            let ch: Value =
                b.http.get(format!("{}/card/challenge", w.idp.base)).send().await.unwrap().json().await.unwrap();
            let key = cert.replace(".pem", ".key.pem");
            let cms = sign_pkcs7(&w.der(cert), &w.der(&key), ch["challenge"].as_str().unwrap().as_bytes()).unwrap();
            let sig = base64::engine::general_purpose::STANDARD.encode(cms);
            b.post(
                "/card/login",
                &[
                    ("csrf_token", &csrf),
                    ("purpose", "bind"),
                    ("challenge_id", ch["id"].as_str().unwrap()),
                    ("signature", &sig),
                ],
            )
            .await
        }
    };
    let r = bind(pki_fixtures::CITIZEN_LI).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("並非同一個使用者"));
    let r = bind(pki_fixtures::CITIZEN_WANG).await;
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
fn health_simulator(nid: &str) -> (String, std::process::Child) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    assert!(std::process::Command::new(cargo)
        .args(["build", "-q", "-p", "card-simulator"])
        .status()
        .unwrap()
        .success());
    let child = std::process::Command::new(dir.join("health-simulator"))
        .args(["--bind", &format!("127.0.0.1:{port}"), "--national-id", nid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (format!("http://127.0.0.1:{port}"), child)
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
    let _ = child.kill();
    let _ = child.wait();
    let b3 = Browser::new(&idp.base);
    let csrf = b3.get("/login").await.input("csrf_token").unwrap();
    let r = b3.post("/card/health", &[("csrf_token", &csrf), ("card_token", &token)]).await;
    assert_eq!(r.status, 502);
    assert!(r.body.contains("健保卡驗證服務暫時無法使用"));
}
