//! E-mail verification, against the real SMTP server of the mail tests: activation and a change
//! in 我的專區 mail a link; `email_verified` (ID token and userinfo) turns true only when it is
//! followed; a used link, an expired link and a link for an address the account no longer has
//! do nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::harness::*;
use crate::mail::{smtp_server_available, Mode, SmtpServer};

const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const PW: &str = "Civil-Service-2026";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// An IdP mailing through a fresh SMTP server, with a client asking for `email`, and 王小明
/// signed in with the one-time password the server received, at the activation form.
async fn world() -> (SmtpServer, Idp, Browser, (String, String)) {
    let server = SmtpServer::start(Mode::Plain, None, None);
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let mut idp = Idp::with_env(&[("IDP_MAIL__SMTP_URL", url.as_str())]);
    idp.import_register();
    let out = idp.cli_ok(&[
        "clients",
        "create",
        "--client-id",
        "hr-app",
        "--name",
        "HR app",
        "--redirect-uri",
        CB,
        "--scope",
        "openid profile email",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let client = (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string());
    idp.start().await;
    idp.cli_ok(&["users", "reset-password", "--national-id", MING, "--email", "ming@example.gov.tw"]);
    let otp = server.received().last().unwrap().one_time_password();
    let b = Browser::new(&idp.base);
    assert_eq!(b.sign_in_at("/login", MING, &otp).await.status, 303);
    (server, idp, b, client)
}

/// The verification link in the newest mail to `to`, and that mail's text.
fn link_to(server: &SmtpServer, to: &str) -> (String, String) {
    let mail = server
        .received()
        .into_iter()
        .rev()
        .find(|m| m.rcpt_tos.iter().any(|r| r == to) && m.content.contains("/verify-email?token="))
        .unwrap_or_else(|| panic!("no verification mail to {to}"));
    let link = mail.content.lines().find(|l| l.contains("/verify-email?token=")).unwrap().trim().to_string();
    (link, mail.content)
}

fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// What the client learns now: `email_verified` in a fresh ID token and in userinfo.
async fn email_verified(idp: &Idp, b: &Browser, (id, secret): &(String, String)) -> (Value, Value) {
    let r = b
        .get(&format!(
            "/authorize?client_id={id}&redirect_uri={CB_ENC}&response_type=code&scope=openid%20email&state=s"
        ))
        .await;
    let loc = r.location.unwrap();
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
    let id_token = jwt_claims(t["id_token"].as_str().unwrap());
    assert!(id_token.get("national_id").is_none());
    let info: Value = http()
        .get(format!("{}/userinfo", idp.base))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(id_token["email"], info["email"], "the ID token and userinfo name the same address");
    (id_token["email_verified"].clone(), info["email_verified"].clone())
}

/// Opens a link (the confirmation page) and presses 確認 — posting the token with a valid CSRF
/// token even when the page refused to offer the button; the answer to the press, after
/// checking that the page said the same.
async fn follow(b: &Browser, link: &str) -> Page {
    let page = b.get(link).await;
    let csrf = b.get("/login").await.input("csrf_token").unwrap();
    let token = query_param(link, "token").unwrap();
    let pressed = b.post("/verify-email", &[("csrf_token", &csrf), ("token", &token)]).await;
    let expected = if pressed.status == 200 { 200 } else { pressed.status };
    assert_eq!(page.status, expected, "the page and the press agree: {}", page.body);
    pressed
}

/// Changes the e-mail in 我的專區 (the custom account stays).
async fn change_email(b: &Browser, email: &str) -> Page {
    let csrf = b.get("/me").await.input("csrf_token").unwrap();
    b.post("/me/account", &[("csrf_token", &csrf), ("account", "ming.wang"), ("email", email)]).await
}

#[tokio::test]
async fn activation_mails_a_link_and_email_verified_turns_true_only_when_it_is_followed_once() {
    if !smtp_server_available() {
        return;
    }
    let (server, idp, b, client) = world().await;
    let done = b.activate("ming.wang", "ming.new@example.gov.tw", PW).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("驗證信已寄至您設定的電子郵件信箱"), "{}", done.body);
    let (link, mail) = link_to(&server, "ming.new@example.gov.tw");
    assert!(link.starts_with(&format!("{}/verify-email?token=", idp.base)), "the link is one whole line: {mail}");
    // Lines break between Chinese characters, never inside an English word or the link.
    let joined: String = mail.lines().collect::<Vec<_>>().join("");
    assert!(joined.contains("以完成電子郵件驗證") && joined.contains("王小明 您好"), "{mail}");
    assert!(mail.split_whitespace().any(|w| w == "Confirm"), "{mail}");
    let long: Vec<&str> = mail.lines().filter(|l| l.len() > 76).collect();
    assert!(long.is_empty(), "every line fits: {long:?}");
    assert_eq!(idp.audit_count("email.verification_sent", "success"), 1);

    assert_eq!(b.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(false), Value::Bool(false)));
    assert!(b.get("/me").await.body.contains("尚未驗證"));
    // Opening the link only asks; a scanner that follows it verifies nothing.
    let page = b.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"verify-email-confirm\""), "{}", page.body);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(false), Value::Bool(false)));
    // Pressing 確認 without the form's CSRF token does nothing either.
    let token = page.input("token").unwrap();
    let forged = Browser::new(&idp.base).post("/verify-email", &[("token", token.as_str())]).await;
    assert!((400..500).contains(&forged.status), "{}", forged.status);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(false), Value::Bool(false)));

    // Followed from another browser (the phone the mail was read on): no session needed.
    let phone = Browser::new(&idp.base);
    let verified = follow(&phone, &link).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert!(verified.body.contains("已完成驗證"), "{}", verified.body);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(true), Value::Bool(true)));
    assert!(b.get("/me").await.body.contains("已驗證"));

    // A replay finds the link used, by GET or by POST, and says so.
    let again = phone.get(&link).await;
    assert_eq!(again.status, 410, "{}", again.body);
    assert!(again.body.contains("已使用過"), "{}", again.body);
    let csrf = verified_csrf(&phone).await;
    let replay = phone.post("/verify-email", &[("csrf_token", &csrf), ("token", &token)]).await;
    assert_eq!(replay.status, 410, "{}", replay.body);
    let english = phone.get(&format!("{link}&ui_locales=en")).await;
    assert!(english.body.contains("already used"), "{}", english.body);
    assert_eq!(idp.audit_count("email.verify", "success"), 1);
    assert_eq!(idp.audit_count("email.verify", "used"), 1, "a POST is audited, a look is not");
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(true), Value::Bool(true)));
}

/// A CSRF token for this browser, from any page with a form.
async fn verified_csrf(b: &Browser) -> String {
    b.get("/login").await.input("csrf_token").unwrap()
}

#[tokio::test]
async fn a_link_for_an_old_address_does_nothing_after_a_change_and_a_new_address_needs_its_own() {
    if !smtp_server_available() {
        return;
    }
    let (server, idp, b, client) = world().await;
    assert_eq!(b.activate("ming.wang", "first@example.gov.tw", PW).await.status, 200);
    let (first, _) = link_to(&server, "first@example.gov.tw");
    assert_eq!(b.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let changed = change_email(&b, "second@example.gov.tw").await;
    assert_eq!(changed.status, 303);
    assert!(changed.location.unwrap().contains("done=account_verify"));
    let (second, _) = link_to(&server, "second@example.gov.tw");

    let stale = follow(&Browser::new(&idp.base), &first).await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(stale.body.contains("已非您帳號目前設定的信箱"), "{}", stale.body);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(false), Value::Bool(false)));

    assert_eq!(follow(&Browser::new(&idp.base), &second).await.status, 200);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(true), Value::Bool(true)));
    // Saving the same address (any case) keeps it verified and mails nothing.
    let mails = server.received().len();
    let same = change_email(&b, "Second@Example.gov.tw").await;
    assert!(same.location.unwrap().contains("done=account&"), "no new link for the same address");
    assert_eq!(server.received().len(), mails);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(true), Value::Bool(true)));
    // A verified address changed again: unverified, and the used link does not bring it back.
    assert_eq!(change_email(&b, "third@example.gov.tw").await.status, 303);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(false), Value::Bool(false)));
    let used = follow(&Browser::new(&idp.base), &second).await;
    assert_eq!(used.status, 410, "the second link was used: {}", used.body);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(false), Value::Bool(false)));
    assert_eq!(idp.audit_count("email.verify", "address_changed"), 1);
}

#[tokio::test]
async fn an_expired_link_does_nothing_and_my_area_sends_a_new_one() {
    if !smtp_server_available() {
        return;
    }
    let (server, idp, b, client) = world().await;
    assert_eq!(b.activate("ming.wang", "ming@example.gov.tw", PW).await.status, 200);
    let (old, _) = link_to(&server, "ming@example.gov.tw");
    {
        use diesel::prelude::*;
        use idp::store::db::schema::email_verifications::dsl::*;
        let db = idp.db();
        let mut conn = db.get().unwrap();
        let now = idp::error::now();
        diesel::update(email_verifications).set(expires_at.eq(now - 1)).execute(&mut *conn).unwrap();
    }
    let expired = follow(&Browser::new(&idp.base), &old).await;
    assert_eq!(expired.status, 410, "{}", expired.body);
    assert!(expired.body.contains("已逾期") && expired.body.contains("重新寄送驗證信"), "{}", expired.body);
    assert_eq!(b.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(false), Value::Bool(false)));

    let me = b.get("/me").await;
    assert!(me.body.contains("id=\"resend-verification\""), "{}", me.body);
    let csrf = me.input("csrf_token").unwrap();
    assert!((400..500).contains(&b.post("/me/verify-email", &[]).await.status), "the resend form needs its CSRF token");
    let sent = b.post("/me/verify-email", &[("csrf_token", &csrf)]).await;
    assert_eq!(sent.status, 303);
    assert!(sent.location.unwrap().contains("done=verify_sent"));
    let (fresh, _) = link_to(&server, "ming@example.gov.tw");
    assert_ne!(fresh, old);
    assert_eq!(follow(&Browser::new(&idp.base), &fresh).await.status, 200);
    assert_eq!(email_verified(&idp, &b, &client).await, (Value::Bool(true), Value::Bool(true)));
    assert!(!b.get("/me").await.body.contains("id=\"resend-verification\""), "nothing to resend once verified");
    assert_eq!(idp.audit_count("email.verify", "expired"), 1);
}
