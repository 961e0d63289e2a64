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
