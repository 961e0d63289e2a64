//! Headless Chromium walks the real pages with the card simulator: the login page's script asks
//! the simulated local card component to sign the server's challenge after the PIN, exactly as
//! with a real card, then the person identifies, activates, and later signs in with the card
//! alone. Screenshots go to `target/screenshots/` (CI artifacts, not committed).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::harness::*;

const PW: &str = "Civil-Service-2026";

pub(crate) fn screenshots() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) async fn wait_for_url(c: &fantoccini::Client, part: &str) -> String {
    for _ in 0..100 {
        let url = c.current_url().await.unwrap().to_string();
        if url.contains(part) {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = c.source().await.unwrap_or_default();
    panic!("the browser never reached {part}: at {} showing {body}", c.current_url().await.unwrap());
}

/// Waits until the page shows `needle` (pages load after clicks and redirects).
pub(crate) async fn wait_for_text(c: &fantoccini::Client, needle: &str) -> String {
    for _ in 0..100 {
        if let Ok(source) = c.source().await {
            if source.contains(needle) {
                return source;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page never showed {needle}: {}", c.source().await.unwrap_or_default());
}

#[tokio::test]
async fn a_person_signs_in_with_the_card_component_in_a_real_browser() {
    // Only plain http to chromedriver is spoken, but the client library wants a TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chromium = chromium_path();
    // The test PKI and the simulator's software card.
    let pki = tempfile::tempdir().unwrap();
    let m = test_pki::fixtures::generate_with(pki.path(), &test_pki::fixtures::FixtureOptions::fast()).unwrap();
    let list = |files: &[String]| {
        format!(
            "[{}]",
            files.iter().map(|f| format!("\"{}\"", pki.path().join(f).display())).collect::<Vec<_>>().join(",")
        )
    };
    // The simulated component first, on a port of its choosing: the IdP is told where it is.
    let card = pki.path().join(test_pki::fixtures::CITIZEN_WANG);
    let mut sim = Command::new(workspace_binary("card-simulator"));
    sim.args(["--bind", "127.0.0.1:0", "--card"]).arg(&card).args(["--pin", "123456"]).stderr(Stdio::null());
    let (_sim, component) = Proc::spawn_listening("card-simulator", &mut sim);
    let (anchors, agency, crls) = (list(&m.citizen_trust_anchors), list(&m.agency_trust_anchors), list(&m.crl_files));
    let mut idp = Idp::with_env(&[
        ("IDP_CERTIFICATES__CITIZEN_TRUST_ANCHORS", anchors.as_str()),
        ("IDP_CERTIFICATES__AGENCY_TRUST_ANCHORS", agency.as_str()),
        ("IDP_CERTIFICATES__CRL_FILES", crls.as_str()),
        ("IDP_CERTIFICATES__COMPONENT_URL", component.as_str()),
    ]);
    idp.import_register();
    idp.start().await;
    let chrome = Chrome::start(chromium).await;
    let c = chrome.client.clone();
    let shots = screenshots();
    let shot = |name: &'static str| {
        let c = c.clone();
        let path = shots.join(name);
        async move {
            if let Ok(png) = c.screenshot().await {
                let _ = std::fs::write(path, png);
            }
        }
    };

    // First card sign-in: PIN into the page, the component signs, the IdP asks who we are.
    c.goto(&format!("{}/login", idp.base)).await.unwrap();
    shot("card-01-login.png").await;
    c.find(Locator::Id("pin")).await.unwrap().send_keys("123456").await.unwrap();
    c.find(Locator::Id("card-login")).await.unwrap().click().await.unwrap();
    wait_for_url(&c, "/card/identify").await;
    shot("card-02-identify.png").await;
    c.find(Locator::Id("identifier")).await.unwrap().send_keys(MING).await.unwrap();
    c.find(Locator::Css("form[action='/card/identify'] button")).await.unwrap().click().await.unwrap();
    // Never activated: set custom account, e-mail and password.
    wait_for_url(&c, "/activate").await;
    c.find(Locator::Id("account")).await.unwrap().send_keys("ming.wang").await.unwrap();
    let email = c.find(Locator::Id("email")).await.unwrap();
    email.clear().await.unwrap();
    email.send_keys("ming@example.gov.tw").await.unwrap();
    c.find(Locator::Id("password")).await.unwrap().send_keys(PW).await.unwrap();
    c.find(Locator::Id("password_confirm")).await.unwrap().send_keys(PW).await.unwrap();
    shot("card-03-activate.png").await;
    c.find(Locator::Css("form[action='/activate'] button")).await.unwrap().click().await.unwrap();
    wait_for_text(&c, "請重新登入").await;
    // Later: the card alone signs the person in.
    c.goto(&format!("{}/login", idp.base)).await.unwrap();
    c.find(Locator::Id("pin")).await.unwrap().send_keys("123456").await.unwrap();
    c.find(Locator::Id("card-login")).await.unwrap().click().await.unwrap();
    wait_for_text(&c, "王小明").await;
    shot("card-04-signed-in.png").await;
    // A wrong PIN gets the seeds' guidance.
    c.goto(&format!("{}/login", idp.base)).await.unwrap();
    c.find(Locator::Id("pin")).await.unwrap().send_keys("654321").await.unwrap();
    c.find(Locator::Id("card-login")).await.unwrap().click().await.unwrap();
    wait_for_text(&c, "連續錯誤3次將會鎖卡").await;
    shot("card-05-wrong-pin.png").await;
    c.close().await.unwrap();
}

/// The installed Chromium, after checking everything the browser tests need; what is missing is
/// named in one line with the command that installs it.
pub(crate) fn chromium_path() -> &'static str {
    browser_prerequisites().unwrap_or_else(|missing| panic!("{missing}"))
}

/// The installed Chromium, or one line naming what the browser tests lack (Chromium,
/// chromedriver, a CJK font for the screenshots) and the command that installs it.
pub(crate) fn browser_prerequisites() -> Result<&'static str, String> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists());
    let on_path = |name: &str| {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    let font =
        ["/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"]
            .into_iter()
            .any(|p| Path::new(p).exists());
    let mut missing = Vec::new();
    if chromium.is_none() {
        missing.push(("Chromium", "chromium"));
    }
    if !on_path("chromedriver") {
        missing.push(("chromedriver", "chromium-driver"));
    }
    if !font {
        missing.push(("a CJK font", "fonts-wqy-microhei"));
    }
    match chromium {
        Some(path) if missing.is_empty() => Ok(path),
        _ => {
            let what: Vec<&str> = missing.iter().map(|m| m.0).collect();
            let packages: Vec<&str> = missing.iter().map(|m| m.1).collect();
            Err(format!("browser tests need {}: apt-get install {}", what.join(", "), packages.join(" ")))
        }
    }
}

/// Headless Chromium under chromedriver with a fresh profile.
pub(crate) struct Chrome {
    pub(crate) client: fantoccini::Client,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

impl Chrome {
    /// A browser set to Traditional Chinese.
    pub(crate) async fn start(chromium: &str) -> Self {
        Self::start_in(chromium, "zh-TW").await
    }

    /// A browser whose person reads `lang` (`zh-TW` or `en`): its `Accept-Language` and
    /// interface language, so every page, including the answer to a form, comes in it.
    pub(crate) async fn start_in(chromium: &str, lang: &str) -> Self {
        let accept = if lang == "en" { "en-US,en" } else { "zh-TW,zh" };
        // Only plain http to chromedriver is spoken, but the client library wants a TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Port 0: chromedriver picks one and says which. Its guard also ends the Chromium it starts.
        let mut driver = Command::new("chromedriver");
        driver.arg("--port=0").stderr(Stdio::null());
        let (_driver, driver_port) = Proc::spawn_announcing("chromedriver", &mut driver, |line| {
            line.strip_prefix("ChromeDriver was started successfully on port ")
                .and_then(|p| p.trim_end_matches('.').parse::<u16>().ok())
        });
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({ "goog:chromeOptions": { "binary": chromium, "prefs": { "intl.accept_languages": accept }, "args": [
            format!("--lang={lang}"),
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
            "--no-first-run", "--disable-component-update", "--disable-sync", "--window-size=1024,900",
            format!("--user-data-dir={}", profile.path().display())
        ]}});
        let caps = caps.as_object().unwrap().clone();
        // A loaded machine can take long to start Chromium: wait up to 90 s, and say why not.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let client = loop {
            match ClientBuilder::rustls()
                .unwrap()
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{driver_port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) if std::time::Instant::now() > deadline => panic!("chromedriver did not start a browser: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        Chrome { client, _driver, _profile: profile }
    }
}

/// Signs in through the login form.
pub(crate) async fn sign_in(c: &fantoccini::Client, base: &str, username: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Id("username")).await.unwrap().send_keys(username).await.unwrap();
    c.find(Locator::Id("password")).await.unwrap().send_keys(password).await.unwrap();
    c.find(Locator::Css("form[action='/login'] button")).await.unwrap().click().await.unwrap();
}

async fn visit(c: &fantoccini::Client, url: &str, expect: &str, shot: std::path::PathBuf) {
    c.goto(url).await.unwrap();
    wait_for_text(c, expect).await;
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(shot, png);
    }
}

#[tokio::test]
async fn an_employee_hr_staff_and_an_operator_walk_their_pages_in_a_real_browser() {
    let chromium = chromium_path();
    let mut idp = Idp::new();
    idp.import_register();
    idp.cli_ok(&["users", "grant", "--national-id", MEIHUA, "--role", "operator"]);
    idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "公務人員個人資料服務網(MyData)",
        "--redirect-uri",
        "https://mydata.example.gov.tw/cb",
        "--portal-category",
        "B. 人事資料服務",
        "--portal-url",
        "https://mydata.example.gov.tw/",
        "--portal-description",
        "個人資料查詢",
    ]);
    idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "WebHR人力資源管理資訊系統",
        "--redirect-uri",
        "https://webhr.example.gov.tw/cb",
        "--audience",
        "hr-staff",
        "--portal-category",
        "A. 人事資料填報及考核",
        "--portal-url",
        "https://webhr.example.gov.tw/",
    ]);
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    idp.activate(MEIHUA, "meihua.li", PW).await;
    let shots = screenshots();

    // The employee: home, 應用系統 (no HR-only application), 我的專區.
    let chrome = Chrome::start(chromium).await;
    let c = chrome.client.clone();
    sign_in(&c, &idp.base, "ming.wang", PW).await;
    wait_for_text(&c, "王小明").await;
    visit(&c, &format!("{}/", idp.base), "目前線上人數", shots.join("employee-01-home.png")).await;
    visit(&c, &format!("{}/apps", idp.base), "MyData", shots.join("employee-02-apps.png")).await;
    assert!(!c.source().await.unwrap().contains("WebHR"), "HR-only applications are hidden from employees");
    // Texts only the page itself has (the navigation names every page on every page).
    visit(&c, &format!("{}/me", idp.base), "A12*****89", shots.join("employee-03-me.png")).await;
    let me = c.source().await.unwrap();
    assert!(me.contains("登入中的工作階段") && !me.contains(MING), "我的專區 with the national ID masked");
    c.close().await.unwrap();

    // HR staff and operator: the HR-only application, the reset page for a colleague, the operator pages.
    let chrome = Chrome::start(chromium).await;
    let c = chrome.client.clone();
    sign_in(&c, &idp.base, "meihua.li", PW).await;
    wait_for_text(&c, "李美華").await;
    visit(&c, &format!("{}/apps", idp.base), "WebHR", shots.join("hr-01-apps.png")).await;
    visit(&c, &format!("{}/hr/reset-password", idp.base), "重設員工密碼", shots.join("hr-02-reset.png")).await;
    c.find(Locator::Id("national_id")).await.unwrap().send_keys(MING).await.unwrap();
    c.find(Locator::Css("form[action^='/hr/reset-password/search'] button")).await.unwrap().click().await.unwrap();
    wait_for_text(&c, "王小明").await;
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(shots.join("hr-03-found.png"), png);
    }
    visit(&c, &format!("{}/admin", idp.base), "href=\"/admin/keys\"", shots.join("operator-01-admin.png")).await;
    visit(&c, &format!("{}/admin/clients", idp.base), "MyData", shots.join("operator-02-clients.png")).await;
    visit(&c, &format!("{}/admin/audit", idp.base), "<tbody>", shots.join("operator-03-audit.png")).await;
    let audit = c.source().await.unwrap();
    let rows = audit_rows(&audit);
    assert!(
        rows.iter().any(|r| r.event == "login.password" && r.outcome == "success"),
        "the operator's own sign-in is a row of the audit log: {rows:?}"
    );
    assert!(!audit.contains(MING), "the audit log never shows a full national ID");
    c.close().await.unwrap();
}
