//! 使用說明, 常見問題 and 環境檢測 are open to everyone, in both languages, with the seeds'
//! wording and the configured official links; the navigation marks the page you are on.

use crate::harness::*;

const PW: &str = "Personnel-Office-2026";

#[tokio::test]
async fn the_guide_and_the_faq_tell_the_three_first_sign_ins_binding_and_unlocking_with_the_configured_links() {
    let mut idp = Idp::with_env(&[
        ("IDP_SITE__HELPDESK_PHONE", "049-2359108 按4"),
        ("IDP_LINKS__MOICA_UNBLOCK", "https://moica.example.gov.tw/unblock"),
    ]);
    idp.start().await;
    let b = Browser::new(&idp.base);
    let guide = b.get("/help").await;
    assert_eq!(guide.status, 200, "{}", guide.body);
    for seed in [
        "作法一：使用自然人憑證登入",
        "作法二：由人事人員重設密碼",
        "作法三：洽客服人員",
        "049-2359108 按4",
        "方法一（自然人及機關憑證皆適用）",
        "方法二（僅適用於自然人憑證）",
        "如連續錯誤3次將會鎖卡",
        "本系統之個人資料僅供作必要人事資料管理之用",
    ] {
        assert!(guide.body.contains(seed), "使用說明 says {seed}");
    }
    assert!(guide.body.contains("href=\"https://moica.example.gov.tw/unblock\""), "the configured MOICA link");
    assert!(guide.body.contains("href=\"https://gcaweb.nat.gov.tw/gcacms/04-04.html\""), "GCA's page by default");
    assert!(guide.body.contains("aria-current=\"page\">使用說明</a>"), "the navigation marks the guide");
    let english = b.get("/help?ui_locales=en").await;
    assert!(english.body.contains("Way 1: sign in with your citizen certificate card"), "{}", english.body);
    let faq = b.get("/faq").await;
    assert_eq!(faq.status, 200);
    assert!(faq.body.contains("找不到對應的憑證資訊") && faq.body.contains("請勿提供"), "{}", faq.body);
    assert!(faq.body.contains("aria-current=\"page\">常見問題</a>"));
    assert!(!faq.body.contains("aria-current=\"page\">使用說明</a>"), "only the current page is marked");
    // Without card sign-in configured, the environment check still checks pop-ups, not the card.
    let env = b.get("/environment").await;
    assert_eq!(env.status, 200);
    assert!(env.body.contains("id=\"check-popup\"") && !env.body.contains("id=\"check-component\""));
    // Every page links the help pages, the login page too.
    let login = b.get("/login").await;
    assert!(
        login.body.contains("href=\"/help?ui_locales=zh-TW\"") && login.body.contains("href=\"/faq?ui_locales=zh-TW\"")
    );
    assert!(login.body.contains(">帳號密碼登入</button>"), "the password button says what it does");
}

#[tokio::test]
async fn pages_that_talk_to_the_components_allow_exactly_their_origins_and_still_forbid_framing() {
    let mut idp = Idp::with_env(&[
        ("IDP_CERTIFICATES__COMPONENT_URL", "http://localhost:61161/"),
        ("IDP_CERTIFICATES__HEALTH_COMPONENT_URL", "http://localhost:59001"),
    ]);
    idp.start().await;
    let http = reqwest::Client::new();
    let csp = |path: &'static str| {
        let http = http.clone();
        let url = format!("{}{path}", idp.base);
        async move {
            let r = http.get(url).send().await.unwrap();
            r.headers().get("content-security-policy").unwrap().to_str().unwrap().to_string()
        }
    };
    for path in ["/login", "/environment"] {
        let policy = csp(path).await;
        assert!(policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"), "{path}: {policy}");
        assert!(policy.contains("img-src 'self' http://localhost:61161;"), "{path}: {policy}");
        assert!(policy.contains("connect-src 'self' http://localhost:59001;"), "{path}: {policy}");
    }
    for path in ["/", "/help", "/faq"] {
        let policy = csp(path).await;
        assert!(!policy.contains("localhost"), "{path} reaches no component: {policy}");
    }
}

#[tokio::test]
async fn the_navigation_marks_the_current_page_for_a_signed_in_person() {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let b = Browser::new(&idp.base);
    assert_eq!(b.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    for (path, marked) in [("/", "/"), ("/apps", "/apps"), ("/me", "/me"), ("/help", "/help?ui_locales=zh-TW")] {
        let page = b.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        let marks: Vec<&str> = page.body.match_indices("aria-current=\"page\"").map(|(i, _)| &page.body[..i]).collect();
        assert_eq!(marks.len(), 1, "{path} marks exactly one entry");
        let before = marks[0];
        let href = &before[before.rfind("href=\"").unwrap() + 6..];
        let href = html_href(&href[..href.find('"').unwrap()]);
        assert_eq!(href, marked, "{path} marks its own entry");
    }
    let guide = b.get("/help").await;
    assert!(guide.body.contains("href=\"/me\""), "the guide keeps the navigation of a signed-in person");
}

fn html_href(s: &str) -> String {
    s.replace("&#x3D;", "=")
}
