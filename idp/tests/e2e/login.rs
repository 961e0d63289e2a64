//! Sign-in and activation rules, as a person meets them.

use diesel::prelude::*;

use crate::harness::*;

#[tokio::test]
async fn an_expired_one_time_password_is_refused_with_its_own_message() {
    let mut idp = Idp::new();
    idp.import_register();
    let otp = idp.reset_password(MING, "ming@example.gov.tw");
    // Move the expiry a minute into the past instead of waiting 72 hours (the clean-up keeps
    // expired ones for 30 days so this message can be given).
    {
        use idp::store::db::schema::one_time_passwords::dsl::*;
        let db = idp.db();
        let mut conn = db.get().unwrap();
        let a_minute_ago = idp::error::now() - 60;
        diesel::update(one_time_passwords).set(expires_at.eq(a_minute_ago)).execute(&mut *conn).unwrap();
    }
    idp.start().await;
    let b = Browser::new(&idp.base);
    let r = b.sign_in_at("/login", MING, &otp).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("一次性密碼已逾期"), "{}", r.body);
}

#[tokio::test]
async fn a_new_one_time_password_replaces_the_old_one() {
    let mut idp = Idp::new();
    idp.import_register();
    let first = idp.reset_password(MING, "ming@example.gov.tw");
    let second = idp.reset_password(MING, "ming@example.gov.tw");
    assert_ne!(first, second);
    assert!(second.len() >= 12);
    idp.start().await;
    let b = Browser::new(&idp.base);
    assert_eq!(b.sign_in_at("/login", MING, &first).await.status, 401);
    assert_eq!(b.sign_in_at("/login", MING, &second).await.status, 303);
}

#[tokio::test]
async fn custom_accounts_are_unique_regardless_of_case_and_never_shaped_like_a_national_id() {
    let mut idp = Idp::new();
    idp.import_register();
    let ming = idp.reset_password(MING, "ming@example.gov.tw");
    let meihua = idp.reset_password(MEIHUA, "meihua@example.gov.tw");
    idp.start().await;
    let activate = |otp: String, nid: &'static str, account: &'static str| {
        let base = idp.base.clone();
        async move {
            let b = Browser::new(&base);
            assert_eq!(b.sign_in_at("/login", nid, &otp).await.status, 303);
            let form = b.get("/activate").await;
            let csrf = form.input("csrf_token").unwrap();
            let post = |account: &'static str| {
                let b = &b;
                let csrf = csrf.clone();
                async move {
                    b.post(
                        "/activate",
                        &[
                            ("csrf_token", &csrf),
                            ("account", account),
                            ("email", "x@example.gov.tw"),
                            ("password", "Long-Enough-Pass-9"),
                            ("password_confirm", "Long-Enough-Pass-9"),
                        ],
                    )
                    .await
                }
            };
            (post(account).await, post("D123456780").await)
        }
    };
    let (ok, _) = activate(ming, MING, "ming.wang").await;
    assert_eq!(ok.status, 200);
    let (taken, shaped) = activate(meihua, MEIHUA, "MING.WANG").await;
    assert_eq!(taken.status, 422);
    assert!(taken.body.contains("此自訂帳號已有人使用"));
    assert_eq!(shaped.status, 422);
    assert!(shaped.body.contains("不可為身分證號格式"));
}

#[tokio::test]
async fn wrong_passwords_are_throttled_per_account() {
    // A long first wait, so the test does not depend on how fast the machine is.
    let mut idp = Idp::with_env(&[
        ("IDP_LOGIN__MAX_FAILURES_PER_ACCOUNT", "3"),
        ("IDP_LOGIN__THROTTLE_DELAY", "10m"),
        ("IDP_LOGIN__THROTTLE_MAX_DELAY", "10m"),
    ]);
    idp.import_register();
    let otp = idp.reset_password(MING, "ming@example.gov.tw");
    idp.start().await;
    let b = Browser::new(&idp.base);
    for _ in 0..3 {
        assert_eq!(b.sign_in_at("/login", MING, "wrong-password-here").await.status, 401);
    }
    // Even the right password waits until the delay has passed.
    let r = b.sign_in_at("/login", MING, &otp).await;
    assert_eq!(r.status, 429);
    assert!(r.body.contains("登入失敗次數過多"));
    // Another account from the same address is not locked out by it.
    let r = b.sign_in_at("/login", MEIHUA, "wrong-password-here").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn forms_need_their_csrf_token_and_pages_are_protected() {
    let mut idp = Idp::new();
    idp.import_register();
    let otp = idp.reset_password(MING, "ming@example.gov.tw");
    idp.start().await;
    let b = Browser::new(&idp.base);
    let page = b.get("/login").await;
    assert!(page.body.contains("name=\"username\"") && page.body.contains("name=\"password\""));
    let r = b
        .post(
            "/login",
            &[("csrf_token", "forged-forged-forged-forged-forged-forged"), ("username", MING), ("password", &otp)],
        )
        .await;
    assert_eq!(r.status, 403);
    // A browser with no cookies yet is given the CSRF cookie, then the session cookie: both
    // carry the flags (Secure only on an https issuer; see `cookies_are_secure_on_an_https_issuer`).
    let fresh = Browser::new(&idp.base);
    let resp = fresh.http.get(format!("{}/login", idp.base)).send().await.unwrap();
    assert_eq!(resp.headers().get("x-frame-options").unwrap(), "DENY");
    let set: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap().to_string()).collect();
    assert!(!set.is_empty(), "the login page sets the CSRF cookie");
    let body = resp.text().await.unwrap();
    let csrf = Page { status: 200, location: None, body }.input("csrf_token").unwrap();
    let otp2 = idp.reset_password(MEIHUA, "meihua@example.gov.tw");
    let signed = fresh
        .http
        .post(format!("{}/login", idp.base))
        .form(&[("csrf_token", csrf.as_str()), ("username", MEIHUA), ("password", &otp2)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let more: Vec<String> =
        signed.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap().to_string()).collect();
    assert!(more.iter().any(|c| c.starts_with("idp_activation=")), "{more:?}");
    for c in set.iter().chain(&more) {
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"), "{c}");
        assert!(!c.contains("Secure"), "an http issuer cannot set Secure cookies: {c}");
    }
    // English on request, Traditional Chinese by default.
    let en = b
        .http
        .get(format!("{}/login", idp.base))
        .header("accept-language", "en-US,en;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(en.contains("Sign in with account"));
    let en = b.get("/login?ui_locales=en").await;
    assert!(en.body.contains("Sign in with account"));
    assert!(b.get("/login").await.body.contains("帳號登入"));
    // Someone separated without an account learns nothing: wrong credentials.
    let r = b.sign_in_at("/login", CHIH, "whatever-password").await;
    assert_eq!(r.status, 401, "no account yet: wrong credentials, nothing revealed");
}

#[tokio::test]
async fn a_separated_person_with_the_right_password_gets_the_seeds_message() {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", "Civil-Service-2026").await;
    let f = idp.file("p.csv", PERSONNEL.replace("資訊處,01,,active", "資訊處,01,,separated").as_bytes());
    idp.cli_ok(&["personnel", "import", &f]);
    let b = Browser::new(&idp.base);
    let r = b.sign_in_at("/login", "ming.wang", "Civil-Service-2026").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("卸職"), "the separated message: {}", r.body);
    // A wrong password still says only that: separation is not revealed to a guesser.
    let r = b.sign_in_at("/login", "ming.wang", "not-the-password-1").await;
    assert_eq!(r.status, 401);
    assert!(!r.body.contains("卸職"));
}

#[tokio::test]
async fn cookies_are_secure_on_an_https_issuer() {
    // The issuer is public over https (TLS ends at the proxy); the node itself speaks http.
    let mut idp = Idp::new();
    let https = format!("https://127.0.0.1:{}", idp.port());
    idp.set_env("IDP_ISSUER", &https);
    idp.import_register();
    idp.start().await;
    idp.cli_ok(&["users", "reset-password", "--national-id", MING, "--email", "ming@example.gov.tw"]);
    let otp = newest_one_time_password(&idp.outbox());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = http.get(format!("{}/login", idp.base)).send().await.unwrap();
    let csrf_cookie = login.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(csrf_cookie.contains("Secure") && csrf_cookie.contains("HttpOnly"), "{csrf_cookie}");
    let body = login.text().await.unwrap();
    let csrf = Page { status: 200, location: None, body }.input("csrf_token").unwrap();
    let pair = csrf_cookie.split(';').next().unwrap().to_string();
    let r = http
        .post(format!("{}/login", idp.base))
        .header("cookie", pair)
        .form(&[("csrf_token", csrf.as_str()), ("username", MING), ("password", &otp)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set: Vec<&str> = r.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap()).collect();
    assert!(!set.is_empty());
    for c in set {
        assert!(c.contains("Secure") && c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
    }
}
