//! Site identity from `site.*`: the agency's name, logo, favicon and the helpdesk's contact
//! appear on every kind of page (sign-in, portal, error), and the images are served as given.

use crate::harness::*;

const PW: &str = "Personnel-Office-2026";
/// A PNG signature and an empty IHDR-sized tail: the server serves bytes, it does not decode them.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-custom-logo";
const ICO: &[u8] = b"\0\0\x01\0\x01\0custom-favicon";

fn custom(idp: &Idp) -> Vec<(&'static str, String)> {
    vec![
        ("IDP_SITE__AGENCY_NAME", "臺南市政府人事處".into()),
        ("IDP_SITE__AGENCY_NAME_EN", "Tainan City Government Department of Personnel".into()),
        ("IDP_SITE__LOGO_FILE", idp.file("emblem.png", PNG)),
        ("IDP_SITE__FAVICON_FILE", idp.file("tab.ico", ICO)),
        ("IDP_SITE__HELPDESK_PHONE", "06-2991111".into()),
        ("IDP_SITE__HELPDESK_HOURS", "週一至週五 08:00–17:00".into()),
        ("IDP_SITE__HELPDESK_EMAIL", "help@tainan.example.gov.tw".into()),
    ]
}

fn assert_identity(what: &str, body: &str, name: &str) {
    for part in
        [name, "06-2991111", "週一至週五 08:00–17:00", "help@tainan.example.gov.tw", "/static/logo?v", "/favicon.ico?v"]
    {
        assert!(body.contains(part), "{what} does not show {part}: {body}");
    }
    let header = format!("<span class=\"agency\">{name}</span>");
    assert!(body.contains(&header), "{what} has no header naming {name}: {body}");
}

#[tokio::test]
async fn a_configured_identity_shows_on_sign_in_portal_and_error_pages() {
    let mut idp = Idp::new();
    for (k, v) in custom(&idp) {
        idp.set_env(k, &v);
    }
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let b = Browser::new(&idp.base);
    let login = b.get("/login").await;
    assert_eq!(login.status, 200);
    assert_identity("the sign-in page", &login.body, "臺南市政府人事處");
    assert!(!login.body.contains("行政院人事行政總處"), "the default agency is gone: {}", login.body);
    let english = b.get("/login?ui_locales=en").await;
    assert_identity("the English sign-in page", &english.body, "Tainan City Government Department of Personnel");
    assert_eq!(b.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    for path in ["/", "/apps", "/me"] {
        let page = b.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert_identity(path, &page.body, "臺南市政府人事處");
    }
    let missing = b.get("/no-such-page").await;
    assert_eq!(missing.status, 404);
    assert_identity("the 404 page", &missing.body, "臺南市政府人事處");
    let forbidden = b.get("/admin").await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert_identity("the 403 page", &forbidden.body, "臺南市政府人事處");
}

#[tokio::test]
async fn the_configured_logo_and_favicon_are_served_with_their_type_and_cache_headers() {
    let mut idp = Idp::new();
    for (k, v) in custom(&idp) {
        idp.set_env(k, &v);
    }
    idp.start().await;
    let http = reqwest::Client::new();
    for (path, bytes, kind) in [("/static/logo", PNG, "image/png"), ("/favicon.ico", ICO, "image/x-icon")] {
        let r = http.get(format!("{}{path}", idp.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert_eq!(header("content-type"), kind, "{path}");
        assert_eq!(header("cache-control"), "public, max-age=86400", "{path}");
        assert!(header("content-security-policy").contains("sandbox"), "an image runs nothing");
        let etag = header("etag");
        assert!(etag.starts_with('"'), "{path}: {etag}");
        assert_eq!(&r.bytes().await.unwrap()[..], bytes, "{path} is the operator's file");
        let again = http.get(format!("{}{path}", idp.base)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}: a revalidation with the current version");
        // The page links the image by the same version, so a new file is fetched at once.
        let login = Browser::new(&idp.base).get("/login").await;
        assert!(login.body.contains(&format!("{path}?v={}", etag.trim_matches('"'))), "{}", login.body);
    }
}

#[tokio::test]
async fn without_configuration_the_built_in_identity_is_shown() {
    let mut idp = Idp::new();
    idp.start().await;
    let login = Browser::new(&idp.base).get("/login").await;
    assert!(login.body.contains("行政院人事行政總處"), "{}", login.body);
    assert!(!login.body.contains("客服："), "no helpdesk line without its contact: {}", login.body);
    let r = reqwest::get(format!("{}/static/logo", idp.base)).await.unwrap();
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.text().await.unwrap().starts_with("<svg"));
}

#[tokio::test]
async fn an_unusable_logo_setting_stops_the_start_naming_the_key() {
    let idp = Idp::new();
    let wrong_type = idp.file("logo.html", b"<script>alert(1)</script>");
    let out = idp.cli_with(&[("IDP_SITE__LOGO_FILE", &wrong_type)], &["migrate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("site.logo_file"), "{out:?}");
    let missing = idp.dir.path().join("absent.png").display().to_string();
    let out = idp.cli_with(&[("IDP_SITE__FAVICON_FILE", &missing.replace(".png", ".ico"))], &["serve"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("site.favicon_file"), "{out:?}");
}
