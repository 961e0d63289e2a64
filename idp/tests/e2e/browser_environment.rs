//! 環境檢測 and the login page's component detection, in headless Chromium against the card and
//! health-card simulators: with the components running every check passes and shows what it
//! found (the component's version, the reader and card); without them the page says 未偵測到…
//! and links the official download, and 憑證登入 explains instead of opening a popup that
//! cannot load.

use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, Locator};

use crate::browser::{chromium_path, screenshots, Chrome};
use crate::harness::*;

/// A fresh test PKI in `dir`.
fn test_pki(dir: &std::path::Path) -> test_pki::fixtures::Manifest {
    test_pki::fixtures::generate_with(dir, &test_pki::fixtures::FixtureOptions::fast()).unwrap()
}

/// The IdP with card sign-in configured (the test PKI `m` in `pki`) and the card component at
/// `component`; with `health`, also health-card sign-in with NHI's component and verifier there.
async fn idp_with_components(
    pki: &std::path::Path,
    m: &test_pki::fixtures::Manifest,
    component: &str,
    health: Option<&str>,
) -> Idp {
    let list = |files: &[String]| {
        format!("[{}]", files.iter().map(|f| format!("\"{}\"", pki.join(f).display())).collect::<Vec<_>>().join(","))
    };
    let (anchors, agency, crls) = (list(&m.citizen_trust_anchors), list(&m.agency_trust_anchors), list(&m.crl_files));
    let verifier = health.map(|h| format!("{h}/verify")).unwrap_or_default();
    let mut env = vec![
        ("IDP_CERTIFICATES__CITIZEN_TRUST_ANCHORS", anchors.as_str()),
        ("IDP_CERTIFICATES__AGENCY_TRUST_ANCHORS", agency.as_str()),
        ("IDP_CERTIFICATES__CRL_FILES", crls.as_str()),
        ("IDP_CERTIFICATES__COMPONENT_URL", component),
    ];
    if let Some(h) = health {
        env.push(("IDP_CERTIFICATES__HEALTH_COMPONENT_URL", h));
        env.push(("IDP_CERTIFICATES__HEALTH_VERIFIER_URL", verifier.as_str()));
    }
    let mut idp = Idp::with_env(&env);
    idp.import_register();
    idp.start().await;
    idp
}

/// Waits until the check `id` has left `pending` and returns the state it settled in.
async fn settled(c: &Client, id: &str) -> String {
    for _ in 0..150 {
        if let Ok(e) = c.find(Locator::Id(id)).await {
            if let Ok(Some(state)) = e.attr("data-state").await {
                if state != "pending" && state != "idle" {
                    return state;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the check {id} never finished: {}", c.source().await.unwrap_or_default());
}

/// The text a person sees in an element (hidden children are not part of it).
async fn visible(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

async fn shot(c: &Client, name: &str) {
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(screenshots().join(name), png);
    }
}

#[tokio::test]
async fn the_environment_check_finds_the_components_the_version_the_reader_and_the_card_in_a_real_browser() {
    let chromium = chromium_path();
    let pki = tempfile::tempdir().unwrap();
    let m = test_pki(pki.path());
    let card = pki.path().join(test_pki::fixtures::CITIZEN_WANG);
    let mut sim = Command::new(workspace_binary("card-simulator"));
    sim.args(["--bind", "127.0.0.1:0", "--server-version", "1.3.4.103399", "--card"])
        .arg(&card)
        .args(["--pin", "123456"])
        .stderr(Stdio::null());
    let (_sim, component) = Proc::spawn_listening("card-simulator", &mut sim);
    let mut nhi = Command::new(workspace_binary("health-simulator"));
    nhi.args(["--bind", "127.0.0.1:0", "--national-id", MING]).stderr(Stdio::null());
    let (_nhi, health) = Proc::spawn_listening("health-simulator", &mut nhi);
    let idp = idp_with_components(pki.path(), &m, &component, Some(&health)).await;
    let chrome = Chrome::start(chromium).await;
    let c = chrome.client.clone();

    c.goto(&format!("{}/environment", idp.base)).await.unwrap();
    assert_eq!(settled(&c, "check-component").await, "ok");
    let found = visible(&c, "#check-component").await;
    assert!(found.contains("已偵測到憑證元件") && found.contains("1.3.4.103399"), "the version is shown: {found}");
    assert!(!found.contains("未偵測到"), "only the result that applies is shown: {found}");
    assert_eq!(settled(&c, "check-card").await, "ok");
    let card_text = visible(&c, "#check-card").await;
    assert!(card_text.contains("Simulated card reader") && card_text.contains("TTAJ000000000321"), "{card_text}");
    assert_eq!(settled(&c, "check-health").await, "ok");
    assert!(visible(&c, "#check-health").await.contains("已偵測到健保卡元件"));
    // Pop-ups: the check opens a window of this site, which answers and closes.
    c.find(Locator::Id("check-popup-button")).await.unwrap().click().await.unwrap();
    assert_eq!(settled(&c, "check-popup").await, "ok");
    assert!(visible(&c, "#check-popup").await.contains("彈出式視窗已允許"));
    // The navigation marks this page; the language switch keeps it.
    let current = c.find(Locator::Css("nav.help-links a[aria-current='page']")).await.unwrap();
    assert_eq!(current.attr("href").await.unwrap().as_deref(), Some("/environment?ui_locales=zh-TW"));
    shot(&c, "environment-01-all-found.png").await;
    c.find(Locator::Css("header nav a[lang='en']")).await.unwrap().click().await.unwrap();
    assert_eq!(settled(&c, "check-component").await, "ok");
    assert!(visible(&c, "#check-component").await.contains("The card component answers. Version: 1.3.4.103399"));
    c.close().await.unwrap();
}

#[tokio::test]
async fn without_the_components_the_check_and_the_login_page_say_what_to_install_and_open_no_popup() {
    let chromium = chromium_path();
    let pki = tempfile::tempdir().unwrap();
    let nothing = format!("http://127.0.0.1:{}", closed_port());
    let no_nhi = format!("http://127.0.0.1:{}", closed_port());
    let m = test_pki(pki.path());
    let idp = idp_with_components(pki.path(), &m, &nothing, Some(&no_nhi)).await;
    let chrome = Chrome::start(chromium).await;
    let c = chrome.client.clone();

    c.goto(&format!("{}/environment", idp.base)).await.unwrap();
    assert_eq!(settled(&c, "check-component").await, "fail");
    let missing = visible(&c, "#check-component").await;
    assert!(missing.contains("未偵測到憑證元件") && missing.contains("跨平台網頁元件"), "{missing}");
    let download = c.find(Locator::Id("card-component-download")).await.unwrap();
    assert_eq!(download.attr("href").await.unwrap().as_deref(), Some("https://moica.nat.gov.tw/rac_plugin.html"));
    assert!(download.is_displayed().await.unwrap(), "the download link is shown with the failure");
    assert_eq!(settled(&c, "check-card").await, "fail");
    assert!(visible(&c, "#check-card").await.contains("須先偵測到憑證元件"));
    assert_eq!(settled(&c, "check-health").await, "fail");
    assert!(visible(&c, "#check-health").await.contains("未偵測到健保卡元件"));
    let nhi = c.find(Locator::Id("health-component-download")).await.unwrap();
    assert_eq!(
        nhi.attr("href").await.unwrap().as_deref(),
        Some("https://cloudicweb.nhi.gov.tw/cloudic/system/SMC/mEventesting.htm")
    );
    shot(&c, "environment-02-nothing-found.png").await;

    // The login page offers the download and the check, and 憑證登入 explains instead of a popup.
    c.goto(&format!("{}/login", idp.base)).await.unwrap();
    let env = c.find(Locator::Id("environment-link")).await.unwrap();
    assert_eq!(env.text().await.unwrap(), "人事服務網環境檢測程式");
    assert!(c.find(Locator::Id("card-component-download")).await.unwrap().is_displayed().await.unwrap());
    c.find(Locator::Id("pin")).await.unwrap().send_keys("123456").await.unwrap();
    let login = c.find(Locator::Id("card-login")).await.unwrap();
    assert_eq!(login.text().await.unwrap(), "憑證登入", "the button says what it does");
    login.click().await.unwrap();
    assert_eq!(settled(&c, "card-status").await, "fail");
    let said = visible(&c, "#card-status").await;
    assert!(said.contains("未偵測到憑證元件") && said.contains("環境檢測"), "{said}");
    assert_eq!(c.windows().await.unwrap().len(), 1, "no popup was opened");
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    shot(&c, "login-component-missing.png").await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_reader_without_a_card_is_named_by_the_check_and_by_the_login_page() {
    let chromium = chromium_path();
    let mut sim = Command::new(workspace_binary("card-simulator"));
    sim.args(["--bind", "127.0.0.1:0", "--no-card"]).stderr(Stdio::null());
    let (_sim, component) = Proc::spawn_listening("card-simulator", &mut sim);
    let pki = tempfile::tempdir().unwrap();
    let m = test_pki(pki.path());
    let idp = idp_with_components(pki.path(), &m, &component, None).await;
    let chrome = Chrome::start(chromium).await;
    let c = chrome.client.clone();

    c.goto(&format!("{}/environment", idp.base)).await.unwrap();
    assert_eq!(settled(&c, "check-component").await, "ok");
    assert_eq!(settled(&c, "check-card").await, "no-card");
    assert!(visible(&c, "#check-card").await.contains("未插入卡片"));
    assert!(c.find(Locator::Id("check-health")).await.is_err(), "no health check where health cards are not offered");
    c.goto(&format!("{}/login", idp.base)).await.unwrap();
    c.find(Locator::Id("pin")).await.unwrap().send_keys("123456").await.unwrap();
    c.find(Locator::Id("card-login")).await.unwrap().click().await.unwrap();
    assert_eq!(settled(&c, "card-status").await, "no-card");
    assert!(visible(&c, "#card-status").await.contains("讀卡機中沒有卡片"));
    assert_eq!(c.windows().await.unwrap().len(), 1, "no popup was opened");
    c.close().await.unwrap();
}
