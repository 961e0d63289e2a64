//! Every page a person, an HR staff member or an operator can reach, walked in headless Chromium
//! once by a person who reads Traditional Chinese and once by one who reads English. On each page
//! axe-core (`idp/tests/support/package.json`, installed with `npm ci --prefix idp/tests/support`)
//! checks the page at 1280 and at 390 pixels wide, and the walk fails on any serious or critical
//! violation, naming the rule, the element and the rule's help page. Each page is also photographed
//! at both widths into `target/screenshots/` as `page-lang-width.png`.
//!
//! Forms sent back with an error are checked to put the focus on the field in error, marked
//! `aria-invalid` and described by the message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

use crate::browser::{browser_prerequisites, screenshots, wait_for_url, Chrome};
use crate::harness::*;

const PW: &str = "Civil-Service-2026";
const WIDTHS: [u32; 2] = [1280, 390];

/// Where `npm ci --prefix idp/tests/support` puts axe-core.
fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/node_modules/axe-core/axe.min.js")
}

/// What the walk needs: Chromium and its driver, and axe-core. Outside CI a missing one is named
/// in one line and the test does nothing more; in CI (`CI` set) it is a failure.
pub(crate) fn prerequisites() -> Option<(&'static str, String)> {
    let axe = std::fs::read_to_string(axe_path())
        .map_err(|_| "accessibility tests need axe-core: npm ci --prefix idp/tests/support".to_string());
    match (browser_prerequisites(), axe) {
        (Ok(chromium), Ok(axe)) => Some((chromium, axe)),
        (Err(missing), _) | (_, Err(missing)) => {
            assert!(std::env::var_os("CI").is_none(), "{missing}");
            eprintln!("{missing}");
            None
        }
    }
}

/// Runs axe-core on the page and answers its serious and critical violations, and how many
/// rules the page passed (none means axe checked nothing, which is a failure too).
const RUN_AXE: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document).then(
  (r) => done({ passed: r.passes.length, violations: r.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                   nodes: v.nodes.map((n) => n.target.join(" ") + "  " + n.html.slice(0, 200)) })) }),
  (e) => done({ passed: 0, violations: [{ id: "axe-error", impact: "critical", help: String(e), helpUrl: "", nodes: [] }] }));
"#;

/// The touch targets smaller than 44 by 44 CSS pixels (24 for check boxes and radio buttons):
/// buttons, button-styled links, form controls and the links of the navigation bars.
const SMALL_TARGETS: &str = r#"
const small = [];
for (const e of document.querySelectorAll("button, a.button, input, select, textarea, header nav a, nav.portal a")) {
  if (e.type === "hidden") continue;
  const r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  const least = (e.type === "checkbox" || e.type === "radio") ? 24 : 44;
  if (r.width < least - 0.5 || r.height < least - 0.5) {
    small.push(`${e.outerHTML.slice(0, 120)} is ${Math.round(r.width)}x${Math.round(r.height)}, under ${least}x${least}`);
  }
}
return small;
"#;

/// One language's walk: checks pages and keeps every finding until [`Audit::finish`].
pub(crate) struct Audit {
    client: Client,
    axe: String,
    lang: &'static str,
    dir: PathBuf,
    findings: Vec<String>,
    pages: usize,
}

impl Audit {
    pub(crate) fn new(client: &Client, axe: &str, lang: &'static str) -> Self {
        Self { client: client.clone(), axe: axe.to_string(), lang, dir: screenshots(), findings: vec![], pages: 0 }
    }

    /// Opens `path` and checks the page.
    pub(crate) async fn at(&mut self, base: &str, path: &str, name: &str) {
        self.client.goto(&format!("{base}{path}")).await.unwrap();
        self.check(name).await;
    }

    /// Checks the page the browser shows now: its language, then axe-core and a screenshot at
    /// each width.
    pub(crate) async fn check(&mut self, name: &str) {
        let c = &self.client;
        self.pages += 1;
        let lang = c.execute("return document.documentElement.lang;", vec![]).await.unwrap();
        if lang.as_str() != Some(self.lang) {
            self.findings.push(format!("{name} ({}): <html lang> is {lang}, expected {}", self.lang, self.lang));
        }
        for width in WIDTHS {
            c.set_window_size(width, 900).await.unwrap();
            // The whole page in one picture: the window as tall as the document.
            let height = c.execute("return document.documentElement.scrollHeight;", vec![]).await.unwrap();
            let height = height.as_u64().unwrap_or(900).clamp(600, 8000) as u32;
            c.set_window_size(width, height + 100).await.unwrap();
            c.execute(&self.axe, vec![]).await.unwrap();
            let found = c.execute_async(RUN_AXE, vec![]).await.unwrap();
            if found["passed"].as_u64().unwrap_or(0) == 0 {
                self.findings.push(format!("{name} ({}, {width}px): axe-core passed no rule: {found}", self.lang));
            }
            for v in found["violations"].as_array().into_iter().flatten() {
                let nodes: Vec<&str> = v["nodes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                self.findings.push(format!(
                    "{name} ({}, {width}px): {} [{}] {} — {}\n      {}",
                    self.lang,
                    v["id"].as_str().unwrap_or_default(),
                    v["impact"].as_str().unwrap_or_default(),
                    v["help"].as_str().unwrap_or_default(),
                    v["helpUrl"].as_str().unwrap_or_default(),
                    nodes.join("\n      ")
                ));
            }
            let small = c.execute(SMALL_TARGETS, vec![]).await.unwrap();
            for target in small.as_array().into_iter().flatten().filter_map(Value::as_str) {
                self.findings.push(format!("{name} ({}, {width}px): touch target {target}", self.lang));
            }
            let png = c.screenshot().await.unwrap();
            std::fs::write(self.dir.join(format!("{name}-{}-{width}.png", self.lang)), png).unwrap();
        }
        c.set_window_size(1280, 900).await.unwrap();
    }

    /// The page came back from a form with an error about `field`: the focus is on it, it is
    /// marked invalid and its description includes the page's error message.
    pub(crate) async fn expect_focus_on_error(&mut self, name: &str, field: &str) {
        let got = self
            .client
            .execute(
                "const e = document.activeElement; const m = document.getElementById('page-error');
                 return [e.id, e.getAttribute('aria-invalid'), e.getAttribute('aria-describedby') || '',
                         m ? m.textContent : null];",
                vec![],
            )
            .await
            .unwrap();
        let ok = got[0] == json!(field)
            && got[1] == json!("true")
            && got[2].as_str().is_some_and(|d| d.split(' ').any(|id| id == "page-error"))
            && got[3].as_str().is_some_and(|m| !m.trim().is_empty());
        if !ok {
            self.findings.push(format!(
                "{name} ({}): after the error the focus should be on #{field}, invalid and described by the \
                 message; got [focused id, aria-invalid, aria-describedby, message] = {got}",
                self.lang
            ));
        }
        self.check(name).await;
    }

    /// On a page just loaded with no field to fill (so nothing has the focus), the first Tab
    /// reaches the skip link, shown on the page, and following it puts the focus on the main
    /// content. (Pages with a form focus their first field, which is in the main content.)
    pub(crate) async fn expect_skip_link(&mut self) {
        let c = &self.client;
        press(c, Key::Tab).await;
        let first = c
            .execute(
                "const e = document.activeElement; const r = e.getBoundingClientRect();
                 return [e.getAttribute('href'), e.textContent, r.top >= 0 && r.height > 0];",
                vec![],
            )
            .await
            .unwrap();
        let text = if self.lang == "en" { "Skip to main content" } else { "跳到主要內容" };
        if first != json!(["#main", text, true]) {
            self.findings
                .push(format!("({}) the first Tab should show the skip link «{text}»: got {first}", self.lang));
        }
        press(c, Key::Enter).await;
        let then = c.execute("return document.activeElement.id;", vec![]).await.unwrap();
        if then != json!("main") {
            self.findings.push(format!("({}) following the skip link should focus <main>: focus on {then}", self.lang));
        }
    }

    /// Fails with every finding of the walk, one per line.
    pub(crate) fn finish(self) {
        assert!(self.pages > 0, "the walk checked no page");
        assert!(
            self.findings.is_empty(),
            "{} accessibility problems on {} pages:\n  {}",
            self.findings.len(),
            self.pages,
            self.findings.join("\n  ")
        );
    }
}

/// Presses one key on the keyboard, wherever the focus is.
async fn press(c: &Client, key: Key) {
    let key = char::from(key);
    let keys =
        KeyActions::new("keyboard".into()).then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
    c.perform_actions(keys).await.unwrap();
}

/// Types into the field with this id, replacing what it holds.
async fn fill(c: &Client, id: &str, text: &str) {
    let Ok(e) = c.find(Locator::Id(id)).await else {
        panic!("no field #{id} on {}", c.current_url().await.unwrap());
    };
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

/// Sets a field's value directly (date pickers and long texts that typing would not enter as is).
async fn set_value(c: &Client, id: &str, value: &str) {
    c.execute("document.getElementById(arguments[0]).value = arguments[1];", vec![json!(id), json!(value)])
        .await
        .unwrap();
}

/// Clicks the submit button matching `css` and waits until the next page has loaded.
async fn submit(c: &Client, css: &str) {
    c.execute("window.__before_submit = true;", vec![]).await.unwrap();
    c.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("no {css}")).click().await.unwrap();
    for _ in 0..200 {
        let gone = c
            .execute("return window.__before_submit === undefined && document.readyState === 'complete';", vec![])
            .await;
        if gone.ok().and_then(|v| v.as_bool()) == Some(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{css} did not lead to a new page: {}", c.source().await.unwrap_or_default());
}

/// Signs in through the login form and waits for the page after it.
async fn sign_in(c: &Client, base: &str, username: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(c, "username", username).await;
    fill(c, "password", password).await;
    submit(c, "form[action='/login'] button").await;
}

/// Signs out through the confirmation page.
async fn sign_out(c: &Client, base: &str) {
    c.goto(&format!("{base}/logout")).await.unwrap();
    submit(c, "form[action='/logout'] button[type='submit']").await;
}

#[tokio::test]
async fn every_page_passes_axe_in_traditional_chinese() {
    walk("zh-TW").await;
}

#[tokio::test]
async fn every_page_passes_axe_in_english() {
    walk("en").await;
}

/// The whole walk in one language, on a fresh server: anonymous pages and error pages, a first
/// sign-in with its activation, an employee's pages, consent and logout, then HR staff and the
/// operator console.
async fn walk(lang: &'static str) {
    let Some((chromium, axe)) = prerequisites() else { return };
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
    let out = idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "差勤管理系統",
        "--redirect-uri",
        "http://127.0.0.1:9/cb",
        "--require-consent",
        "--scope",
        "openid profile email",
        "--json",
    ]);
    let consent_client = serde_json::from_str::<Value>(&out).unwrap()["client_id"].as_str().unwrap().to_string();
    idp.start().await;
    idp.activate(MEIHUA, "meihua.li", PW).await;
    let otp = idp.reset_password(MING, "ming@example.gov.tw");
    let base = idp.base.clone();

    let chrome = Chrome::start_in(chromium, lang).await;
    let c = chrome.client.clone();
    let mut a = Audit::new(&c, &axe, lang);

    // Anonymous: sign-in, a wrong password, 忘記密碼, and the error pages.
    a.at(&base, "/login", "login").await;
    fill(&c, "username", MING).await;
    fill(&c, "password", "not-the-password").await;
    submit(&c, "form[action='/login'] button").await;
    a.expect_focus_on_error("login-error", "username").await;
    a.at(&base, "/forgot-password", "forgot").await;
    fill(&c, "national_id", "A000000000").await;
    fill(&c, "email", "ming@example.gov.tw").await;
    submit(&c, "form[action^='/forgot-password'] button").await;
    a.expect_focus_on_error("forgot-error", "national_id").await;
    fill(&c, "national_id", CHIH).await;
    fill(&c, "email", "nobody@example.gov.tw").await;
    submit(&c, "form[action^='/forgot-password'] button").await;
    a.check("forgot-sent").await;
    a.at(&base, "/no-such-page", "not-found").await;
    a.expect_skip_link().await;
    a.at(&base, "/authorize?response_type=code&scope=openid", "bad-request").await;

    // First sign-in with the one-time password: activation, with a mistake first.
    a.at(&base, "/login", "login-again").await;
    fill(&c, "username", MING).await;
    fill(&c, "password", &otp).await;
    submit(&c, "form[action='/login'] button").await;
    wait_for_url(&c, "/activate").await;
    a.check("activate").await;
    fill(&c, "account", "ming.wang").await;
    fill(&c, "email", "ming@example.gov.tw").await;
    fill(&c, "password", PW).await;
    fill(&c, "password_confirm", "Civil-Service-2027").await;
    submit(&c, "form[action='/activate'] button").await;
    a.expect_focus_on_error("activate-error", "password_confirm").await;
    fill(&c, "account", "ming.wang").await;
    fill(&c, "email", "ming@example.gov.tw").await;
    fill(&c, "password", PW).await;
    fill(&c, "password_confirm", PW).await;
    submit(&c, "form[action='/activate'] button").await;
    a.check("activated").await;

    // The employee: home, 應用系統, 我的專區 (and a wrong current password), no operator pages,
    // an application's consent, the logout confirmation and the page after it.
    sign_in(&c, &base, "ming.wang", PW).await;
    a.at(&base, "/", "home").await;
    a.at(&base, "/apps", "apps").await;
    a.at(&base, "/me", "me").await;
    fill(&c, "current_password", "not-the-password").await;
    fill(&c, "password", "Civil-Service-2028").await;
    fill(&c, "password_confirm", "Civil-Service-2028").await;
    submit(&c, "form[action^='/me/password'] button[type='submit']").await;
    a.expect_focus_on_error("me-error", "current_password").await;
    a.at(&base, "/admin", "forbidden").await;
    let authorize = format!(
        "/authorize?client_id={consent_client}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&response_type=code\
         &scope=openid%20profile%20email&state=s1&nonce=n1"
    );
    c.goto(&format!("{base}{authorize}")).await.unwrap();
    wait_for_url(&c, "/consent").await;
    a.check("consent").await;
    a.at(&base, "/logout", "logout").await;
    submit(&c, "form[action='/logout'] button[type='submit']").await;
    a.check("logged-out").await;

    // HR staff: the reset pages, with a malformed national ID first.
    sign_in(&c, &base, "meihua.li", PW).await;
    a.at(&base, "/hr/reset-password", "hr-reset").await;
    fill(&c, "national_id", "A000000000").await;
    submit(&c, "form[action^='/hr/reset-password/search'] button").await;
    a.expect_focus_on_error("hr-reset-error", "national_id").await;
    fill(&c, "national_id", MING).await;
    submit(&c, "form[action^='/hr/reset-password/search'] button").await;
    a.check("hr-reset-found").await;
    submit(&c, "form[action^='/hr/reset-password/confirm'] button").await;
    a.check("hr-reset-confirm").await;
    submit(&c, "form[action^='/hr/reset-password/issue'] button").await;
    a.check("hr-reset-done").await;

    // The operator console, each page and the answers of its forms.
    a.at(&base, "/admin", "admin").await;
    a.at(&base, "/admin/clients", "admin-clients").await;
    a.at(&base, &format!("/admin/clients/{consent_client}"), "admin-client").await;
    a.at(&base, "/admin/clients/new", "admin-client-new").await;
    fill(&c, "name", "請假系統").await;
    set_value(&c, "redirect_uris", "https://leave.example.gov.tw/cb").await;
    submit(&c, "form[action='/admin/clients'] button[type='submit']").await;
    a.check("admin-client-created").await;
    a.at(&base, "/admin/registration-tokens", "admin-registration-tokens").await;
    submit(&c, "form[action='/admin/registration-tokens'] button").await;
    a.check("admin-registration-token-issued").await;
    a.at(&base, "/admin/announcements", "admin-announcements").await;
    fill(&c, "title", "系統維護公告").await;
    set_value(&c, "body", "本週六 08:00 至 12:00 系統維護。").await;
    set_value(&c, "published_at", "2026-05-02T08:00").await;
    set_value(&c, "expires_at", "2026-05-01T08:00").await;
    submit(&c, "form[action='/admin/announcements'] button").await;
    a.expect_focus_on_error("admin-announcements-error", "expires_at").await;
    set_value(&c, "published_at", "").await;
    set_value(&c, "expires_at", "").await;
    submit(&c, "form[action='/admin/announcements'] button").await;
    let edit = c.find(Locator::Css("a[href^='/admin/announcements/']")).await.unwrap().attr("href").await.unwrap();
    a.at(&base, &edit.unwrap(), "admin-announcement").await;
    a.at(&base, "/admin/imports", "admin-imports").await;
    set_value(&c, "agencies-csv", AGENCIES).await;
    submit(&c, "form[action='/admin/imports/agencies'] button").await;
    a.check("admin-import-report").await;
    a.at(&base, "/admin/keys", "admin-keys").await;
    a.at(&base, "/admin/audit", "admin-audit").await;
    c.goto(&format!("{base}/admin/audit?from=2026-02-30")).await.unwrap();
    a.expect_focus_on_error("admin-audit-error", "from").await;
    sign_out(&c, &base).await;
    c.close().await.unwrap();
    a.finish();
}
