//! The language switch on every page, including the answers to POSTs: a POST-only path's
//! answer switches on the page its form belongs to (never the POST's URL, which GET cannot
//! show, and never a repeated POST); a form with a GET page of its own switches there.

use crate::harness::*;

const PW: &str = "Personnel-Office-2026";

/// The href of the layout's language link (`lang="en"` or `lang="zh-TW"`).
fn switch_href(page: &Page) -> String {
    let at = page.body.find("\" lang=\"").unwrap_or_else(|| panic!("no language link: {}", page.body));
    let before = &page.body[..at];
    let href = &before[before.rfind("href=\"").unwrap() + 6..];
    href.replace("&#x3D;", "=").replace("&amp;", "&")
}

#[tokio::test]
async fn answers_to_posts_switch_language_on_their_forms_page_without_posting_again() {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    idp.activate(MEIHUA, "meihua.lee", PW).await;
    idp.activate(MING, "ming.wang", "Civil-Service-2026").await;
    let b = Browser::new(&idp.base);
    assert_eq!(b.sign_in_at("/login", "meihua.lee", PW).await.status, 303);

    // 重設員工密碼's search answer (POST-only) switches on the search page.
    let form = b.get("/hr/reset-password").await;
    let csrf = form.input("csrf_token").unwrap();
    let found = b.post("/hr/reset-password/search", &[("csrf_token", &csrf), ("national_id", MING)]).await;
    assert_eq!(found.status, 200, "{}", found.body);
    let href = switch_href(&found);
    assert_eq!(href, "/hr/reset-password?ui_locales=en");
    let english = b.get(&href).await;
    assert_eq!(english.status, 200, "{}", english.body);
    assert!(english.body.contains("<html lang=\"en\">") && english.body.contains("Reset"), "{}", english.body);
    let outbox = std::fs::read_dir(idp.outbox()).map(|d| d.count()).unwrap_or(0);

    // A refused change in 我的專區 (wrong current password) switches on 我的專區.
    let me = b.get("/me").await;
    let csrf = me.input("csrf_token").unwrap();
    let refused = b
        .post(
            "/me/password",
            &[
                ("csrf_token", &csrf),
                ("current_password", "not-the-password"),
                ("password", "Another-Long-Passphrase-1"),
                ("password_confirm", "Another-Long-Passphrase-1"),
            ],
        )
        .await;
    assert!((400..500).contains(&refused.status), "{} {}", refused.status, refused.body);
    assert_eq!(switch_href(&refused), "/me?ui_locales=en");
    assert_eq!(b.get("/me?ui_locales=en").await.status, 200);

    // A form with a GET page of its own (忘記密碼) keeps the relative switch: the form again.
    let forgot = b.get("/forgot-password").await;
    let csrf = forgot.input("csrf_token").unwrap();
    let sent = b
        .post("/forgot-password", &[("csrf_token", &csrf), ("national_id", MING), ("email", "x@example.gov.tw")])
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(switch_href(&sent), "?ui_locales=en");
    // Following the switches sent no mail and changed nothing: only GETs were made.
    assert_eq!(std::fs::read_dir(idp.outbox()).map(|d| d.count()).unwrap_or(0), outbox);
}
