//! Sign-in and activation rules, as a person meets them.

use diesel::prelude::*;

use crate::harness::*;

#[tokio::test]
async fn an_expired_one_time_password_is_refused_with_its_own_message() {
    let mut idp = Idp::new();
    idp.import_register();
    let otp = idp.reset_password(MING, "ming@example.gov.tw");
    // Move the expiry into the past instead of waiting 72 hours.
    {
        use idp::store::db::schema::one_time_passwords::dsl::*;
        let db = idp.db();
        let mut conn = db.get().unwrap();
        diesel::update(one_time_passwords).set(expires_at.eq(1i64)).execute(&mut *conn).unwrap();
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
    let resp = b.http.get(format!("{}/login", idp.base)).send().await.unwrap();
    assert_eq!(resp.headers().get("x-frame-options").unwrap(), "DENY");
    for c in resp.headers().get_all("set-cookie") {
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
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
    // A separated person gets the seeds' message, not "wrong password".
    let f = idp.file("p.csv", PERSONNEL.replace("資訊處,01,,active", "資訊處,01,,separated").as_bytes());
    idp.cli_ok(&["personnel", "import", &f]);
    let r = b.sign_in_at("/login", CHIH, "whatever-password").await;
    assert_eq!(r.status, 401, "no account yet: wrong credentials, nothing revealed");
}
