//! What the README promises about tokens, headers and mail, each played once so the promise
//! cannot quietly stop being true.

use serde_json::{json, Value};

use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const PW: &str = "Civil-Service-2026";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn client(idp: &Idp, id: &str) -> (String, String) {
    let out = idp.cli_ok(&[
        "clients",
        "create",
        "--client-id",
        id,
        "--name",
        id,
        "--redirect-uri",
        CB,
        "--scope",
        "openid profile offline_access",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string())
}

/// Ming signs in and the client redeems a code: (access token, refresh token).
async fn tokens(idp: &Idp, b: &Browser, (id, secret): &(String, String)) -> (String, String) {
    let r = b
        .get(&format!(
            "/authorize?client_id={id}&redirect_uri={CB_ENC}&response_type=code&scope=openid%20offline_access&state=s"
        ))
        .await;
    let loc = r.location.unwrap();
    let loc = if loc.starts_with("/login") { b.sign_in_at(&loc, "ming.wang", PW).await.location.unwrap() } else { loc };
    let code = query_param(&loc, "code").unwrap_or_else(|| panic!("no code: {loc}"));
    let t: Value = http()
        .post(format!("{}/token", idp.base))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (t["access_token"].as_str().unwrap().to_string(), t["refresh_token"].as_str().unwrap().to_string())
}

async fn post(idp: &Idp, path: &str, (id, secret): &(String, String), form: &[(&str, &str)]) -> (u16, Value) {
    let r = http().post(format!("{}{path}", idp.base)).basic_auth(id, Some(secret)).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn userinfo(idp: &Idp, token: &str) -> u16 {
    http().get(format!("{}/userinfo", idp.base)).bearer_auth(token).send().await.unwrap().status().as_u16()
}

async fn world() -> (Idp, Browser, (String, String), (String, String)) {
    let mut idp = Idp::new();
    idp.import_register();
    let a = client(&idp, "app-a");
    let b = client(&idp, "app-b");
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    (idp, browser, a, b)
}

#[tokio::test]
async fn a_client_revokes_only_its_own_tokens() {
    let (idp, browser, a, b) = world().await;
    let (at, rt) = tokens(&idp, &browser, &a).await;
    for token in [&at, &rt] {
        let (status, body) = post(&idp, "/revoke", &b, &[("token", token)]).await;
        assert_eq!(status, 400, "another client's token: {body}");
        assert_eq!(body["error"], "unauthorized_client");
    }
    assert_eq!(userinfo(&idp, &at).await, 200, "the access token still works");
    let (status, t) = post(&idp, "/token", &a, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(status, 200, "the refresh token still works: {t}");
    // Its own client can revoke it.
    let (status, _) = post(&idp, "/revoke", &a, &[("token", &at)]).await;
    assert_eq!(status, 200);
    assert_eq!(userinfo(&idp, &at).await, 401);
}

#[tokio::test]
async fn userinfo_and_introspection_refuse_once_the_person_is_separated() {
    let (idp, browser, a, _) = world().await;
    let (at, rt) = tokens(&idp, &browser, &a).await;
    assert_eq!(userinfo(&idp, &at).await, 200);
    let (_, i) = post(&idp, "/introspect", &a, &[("token", &at)]).await;
    assert_eq!(i["active"], true);
    let f = idp.file("p.csv", PERSONNEL.replace("資訊處,01,,active", "資訊處,01,,separated").as_bytes());
    idp.cli_ok(&["personnel", "import", &f]);
    assert_eq!(userinfo(&idp, &at).await, 401, "separated: the access token speaks for no one");
    let (_, i) = post(&idp, "/introspect", &a, &[("token", &at)]).await;
    assert_eq!(i, json!({ "active": false }));
    let (_, e) = post(&idp, "/token", &a, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(e["error"], "invalid_grant");
}

#[tokio::test]
async fn every_kind_of_response_forbids_framing() {
    let (idp, browser, a, _) = world().await;
    let get = |path: &'static str| {
        let base = idp.base.clone();
        async move { http().get(format!("{base}{path}")).send().await.unwrap() }
    };
    let mut responses = vec![
        ("page", get("/login").await),
        ("discovery", get("/.well-known/openid-configuration").await),
        ("jwks", get("/jwks").await),
        ("static", get("/static/style.css").await),
        ("not found", get("/no-such-page").await),
        ("error page", get("/authorize?client_id=nobody").await),
        ("health", get("/healthz").await),
    ];
    responses.push((
        "oauth error",
        http().post(format!("{}/token", idp.base)).form(&[("grant_type", "password")]).send().await.unwrap(),
    ));
    for (what, r) in &responses {
        let csp = r.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_string());
        assert!(csp.as_deref().is_some_and(|c| c.contains("frame-ancestors 'none'")), "{what}: {csp:?}");
        assert_eq!(r.headers().get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{what}");
    }
    // The form-post answer carries its own policy, still without framing.
    let (id, _) = &a;
    let r = browser
        .get(&format!(
            "/authorize?client_id={id}&redirect_uri={CB_ENC}&response_type=code&scope=openid&response_mode=form_post"
        ))
        .await;
    let login = r.location.unwrap();
    let page = browser.get(&login).await;
    let csrf = page.input("csrf_token").unwrap();
    let tx = page.input("tx").unwrap();
    let r = browser
        .http
        .post(format!("{}/login", idp.base))
        .form(&[("csrf_token", csrf.as_str()), ("tx", tx.as_str()), ("username", "ming.wang"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers().get("content-security-policy").unwrap().to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'nonce-"), "{csp}");
}

#[tokio::test]
async fn a_failed_mail_keeps_the_earlier_one_time_password() {
    let mut idp = Idp::new();
    idp.import_register();
    let first = idp.reset_password(MING, "ming@example.gov.tw");
    // The mail server is down for the second reset: it fails, and the first password stays.
    let closed = closed_port();
    let smtp = format!("smtp://127.0.0.1:{closed}");
    let out = idp.cli_with(
        &[("IDP_MAIL__SMTP_URL", smtp.as_str())],
        &["users", "reset-password", "--national-id", MING, "--email", "ming@example.gov.tw"],
    );
    assert!(!out.status.success());
    idp.start().await;
    let r = Browser::new(&idp.base).sign_in_at("/login", MING, &first).await;
    assert_eq!(r.status, 303, "the earlier one-time password still signs in: {}", r.body);
    assert_eq!(r.location.as_deref(), Some("/activate?ui_locales=zh-TW"));
}
