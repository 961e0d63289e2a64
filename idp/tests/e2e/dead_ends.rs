//! No page is a dead end: error pages lead back to sign-in and home, the logout confirmation can
//! be cancelled, and the language switch on 帳號密碼設定完成 leads on instead of to an ended
//! activation.

use crate::harness::*;

const PW: &str = "Personnel-Office-2026";

#[tokio::test]
async fn error_pages_lead_back_to_sign_in_and_home_in_their_language() {
    let mut idp = Idp::new();
    idp.start().await;
    let b = Browser::new(&idp.base);
    for (path, back, home) in
        [("/no-such-page", "返回登入", "回首頁"), ("/no-such-page?ui_locales=en", "Back to sign-in", "Home page")]
    {
        let r = b.get(path).await;
        assert_eq!(r.status, 404);
        assert!(r.body.contains(back) && r.body.contains(home), "{path}: {}", r.body);
        assert!(r.body.contains("href=\"/login?ui_locales=") && r.body.contains("href=\"/?ui_locales="));
    }
}

#[tokio::test]
async fn the_logout_confirmation_can_be_cancelled() {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let b = Browser::new(&idp.base);
    assert_eq!(b.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let confirm = b.get("/logout").await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains("id=\"logout-cancel\"") && confirm.body.contains("取消"), "{}", confirm.body);
    assert_eq!(b.get("/me").await.status, 200, "cancelling (not posting) keeps the session");
}

#[tokio::test]
async fn the_language_switch_after_activation_leads_to_sign_in_not_to_an_ended_activation() {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    let otp = idp.reset_password(MING, "ming@example.gov.tw");
    let b = Browser::new(&idp.base);
    assert_eq!(b.sign_in_at("/login", MING, &otp).await.status, 303);
    let done = b.activate("ming.wang", "ming@example.gov.tw", PW).await;
    assert_eq!(done.status, 200, "{}", done.body);
    // Handlebars escapes `=` in the attribute: &#x3D;.
    assert!(done.body.contains("href=\"/login?ui_locales&#x3D;en\""), "{}", done.body);
    let english = b.get("/login?ui_locales=en").await;
    assert_eq!(english.status, 200);
    assert!(english.body.contains("Sign in"));
}

/// Whether a page carries the site navigation of a signed-in person.
fn has_navigation(body: &str) -> bool {
    body.contains("class=\"portal\"") && body.contains("href=\"/me\"")
}

#[tokio::test]
async fn error_pages_keep_the_navigation_of_a_signed_in_person() {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    idp.activate(MEIHUA, "meihua.lee", "Meihua-Personnel-2026").await;
    let anonymous = Browser::new(&idp.base);
    let r = anonymous.get("/no-such-page").await;
    assert_eq!(r.status, 404);
    assert!(!has_navigation(&r.body), "nobody is signed in, so no navigation: {}", r.body);

    let ming = Browser::new(&idp.base);
    assert_eq!(ming.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    // 404 from no route, 403 from a page his roles do not open, 400 from a request that names no
    // login transaction: each keeps 我的專區 and the way back.
    for (path, status) in
        [("/no-such-page", 404), ("/admin", 403), ("/hr/reset-password", 403), ("/consent?tx=gone", 400)]
    {
        let r = ming.get(path).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert!(has_navigation(&r.body), "{path}: a signed-in person keeps the navigation: {}", r.body);
        assert!(r.body.contains("我的專區") && r.body.contains("返回登入") && r.body.contains("回首頁"), "{path}");
        assert!(!r.body.contains("href=\"/admin\""), "{path}: 系統管理 only for operators");
    }
    let english = ming.get("/no-such-page?ui_locales=en").await;
    assert!(has_navigation(&english.body) && english.body.contains("Home page"), "{}", english.body);

    let id = crate::portal::account_id(&idp, "李美華");
    {
        let db = idp.db();
        let mut c = db.get().unwrap();
        idp::accounts::roles::grant(&mut c, &id, "operator", "test", idp::error::now()).unwrap();
    }
    let operator = Browser::new(&idp.base);
    assert_eq!(operator.sign_in_at("/login", "meihua.lee", "Meihua-Personnel-2026").await.status, 303);
    let r = operator.get("/admin/clients/no-such-client").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(has_navigation(&r.body) && r.body.contains("href=\"/admin\""), "an operator keeps 系統管理: {}", r.body);
}

#[tokio::test]
async fn a_form_over_the_size_limit_is_a_localized_413_page_and_json_for_clients() {
    let mut idp = Idp::new();
    idp.start().await;
    let http = reqwest::Client::new();
    let big = format!("username=a&password={}", "x".repeat(70 * 1024));
    let post = |path: &str, accept: &str| {
        http.post(format!("{}{path}", idp.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", accept)
            .body(big.clone())
            .send()
    };
    let html = "text/html,application/xhtml+xml,*/*;q=0.8";
    for (path, words) in [("/login", "送出的資料過大"), ("/login?ui_locales=en", "The request is too large")] {
        let r = post(path, html).await.unwrap();
        assert_eq!(r.status(), 413, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(words) && body.contains("href=\"/?ui_locales="), "{path}: {body}");
        assert!(!body.contains("payload reached size limit"), "{path}: not the framework's text");
    }
    let r = post("/token", "application/json").await.unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "a client gets RFC 6749 JSON: {body}");
}
