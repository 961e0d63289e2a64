//! Adversarial: the one authorization gate. Each test tries to reach a code by a path around the
//! audience, the card requirement or consent: a login transaction posted straight to `/consent`,
//! a consent page carried to another session, an answer replayed or sent twice at once.

use serde_json::Value;

use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const PW: &str = "Civil-Service-2026";

fn client(idp: &Idp, id: &str, args: &[&str]) {
    let mut cmd = vec!["clients", "create", "--client-id", id, "--name", id, "--redirect-uri", CB, "--json"];
    cmd.extend_from_slice(args);
    let _: Value = serde_json::from_str(&idp.cli_ok(&cmd)).unwrap();
}

fn authorize_url(client_id: &str, extra: &str) -> String {
    format!("/authorize?client_id={client_id}&redirect_uri={CB_ENC}&response_type=code&scope=openid&state=s1{extra}")
}

async fn signed_in(idp: &Idp, account: &str) -> Browser {
    let b = Browser::new(&idp.base);
    assert_eq!(b.sign_in_at("/login", account, PW).await.status, 303);
    b
}

/// A login transaction for `client_id`, as `/authorize` hands one out to a browser with no session.
async fn login_transaction(b: &Browser, client_id: &str) -> String {
    let login = b.get(&authorize_url(client_id, "")).await.location.expect("a redirect to the login page");
    assert!(login.starts_with("/login?tx="), "{login}");
    query_param(&format!("http://x{login}"), "tx").unwrap()
}

fn has_code(p: &Page) -> bool {
    p.location.as_deref().and_then(|l| query_param(l, "code")).is_some()
}

/// The CSRF token of the browser (from any page with a form).
async fn csrf(b: &Browser) -> String {
    b.get("/login").await.input("csrf_token").unwrap()
}

async fn world() -> Idp {
    let mut idp = Idp::new();
    idp.import_register();
    client(&idp, "webhr", &["--audience", "hr-staff"]);
    client(&idp, "mydata", &["--min-acr", "loa-2"]);
    client(&idp, "thirdparty", &["--require-consent", "--scope", "openid profile"]);
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    idp.activate(MEIHUA, "meihua.lee", PW).await;
    idp
}

#[tokio::test]
async fn a_login_transaction_posted_to_consent_gets_no_code_outside_the_audience_or_below_the_card_requirement() {
    let idp = world().await;
    for client_id in ["webhr", "mydata"] {
        // Signed out, /authorize hands out a login transaction; then the person signs in on the
        // plain login page and posts that transaction to /consent as an approval.
        let b = Browser::new(&idp.base);
        let tx = login_transaction(&b, client_id).await;
        assert_eq!(b.sign_in_at("/login", "ming.wang", PW).await.status, 303);
        let token = csrf(&b).await;
        let shown = b.get(&format!("/consent?tx={tx}")).await;
        assert_eq!(shown.status, 400, "{client_id}: a consent page for a login transaction: {}", shown.body);
        let r = b.post("/consent", &[("csrf_token", &token), ("tx", &tx), ("decision", "allow")]).await;
        assert_eq!(r.status, 400, "{client_id}: {:?} {}", r.location, r.body);
        assert!(!has_code(&r), "{client_id}: a code through /consent");
        // The regular path still refuses, and says why.
        let r = b.get(&authorize_url(client_id, "")).await;
        let error = query_param(r.location.as_deref().unwrap(), "error");
        let want = if client_id == "webhr" { "access_denied" } else { "unmet_authentication_requirements" };
        assert_eq!(error.as_deref(), Some(want), "{client_id}");
    }
    assert!(idp.audit_count("consent.refused", "not_asked") >= 2);
    assert_eq!(idp.audit_count("consent.grant", "success"), 0);
    assert!(idp.audit_count("authorize.refused", "access_denied") >= 1);
}

#[tokio::test]
async fn the_authorization_endpoint_by_post_goes_through_the_same_gate() {
    let idp = world().await;
    let b = signed_in(&idp, "ming.wang").await;
    let form =
        [("client_id", "webhr"), ("redirect_uri", CB), ("response_type", "code"), ("scope", "openid"), ("state", "s1")];
    let r = b.post("/authorize", &form).await;
    assert_eq!(query_param(r.location.as_deref().unwrap(), "error").as_deref(), Some("access_denied"));
    // HR staff pass the same gate.
    let m = signed_in(&idp, "meihua.lee").await;
    assert!(has_code(&m.post("/authorize", &form).await));
}

#[tokio::test]
async fn a_consent_page_belongs_to_the_session_it_was_asked_in_and_is_answered_once() {
    let idp = world().await;
    let a = signed_in(&idp, "ming.wang").await;
    let consent = a.get(&authorize_url("thirdparty", "")).await.location.unwrap();
    assert!(consent.starts_with("/consent?tx="), "{consent}");
    let tx = query_param(&format!("http://x{consent}"), "tx").unwrap();

    // Another session (here the same person in another browser) can neither see nor answer it.
    let other = signed_in(&idp, "ming.wang").await;
    assert_eq!(other.get(&consent).await.status, 400);
    let token = csrf(&other).await;
    let r = other.post("/consent", &[("csrf_token", &token), ("tx", &tx), ("decision", "allow")]).await;
    assert_eq!(r.status, 400);
    assert!(!has_code(&r));

    // Answering without having been shown the page does not work either (the other session's
    // attempt took the transaction: a new one is asked for).
    let consent = a.get(&authorize_url("thirdparty", "")).await.location.unwrap();
    let tx = query_param(&format!("http://x{consent}"), "tx").unwrap();
    let token = csrf(&a).await;
    let r = a.post("/consent", &[("csrf_token", &token), ("tx", &tx), ("decision", "allow")]).await;
    assert_eq!(r.status, 400, "an answer to a page never shown");
    assert_eq!(idp.audit_count("consent.refused", "not_shown"), 2);

    // Shown, then approved: one code. The same answer again gets nothing.
    let consent = a.get(&authorize_url("thirdparty", "")).await.location.unwrap();
    let page = a.get(&consent).await;
    assert_eq!(page.status, 200);
    let (token, tx) = (page.input("csrf_token").unwrap(), page.input("tx").unwrap());
    let answer = [("csrf_token", token.as_str()), ("tx", tx.as_str()), ("decision", "allow")];
    assert!(has_code(&a.post("/consent", &answer).await));
    let replay = a.post("/consent", &answer).await;
    assert_eq!(replay.status, 400);
    assert!(!has_code(&replay));
}

#[tokio::test]
async fn two_answers_to_one_consent_page_at_once_give_at_most_one_code() {
    let idp = world().await;
    let a = signed_in(&idp, "ming.wang").await;
    let consent = a.get(&authorize_url("thirdparty", "&prompt=consent")).await.location.unwrap();
    let page = a.get(&consent).await;
    let (token, tx) = (page.input("csrf_token").unwrap(), page.input("tx").unwrap());
    let answer = [("csrf_token", token.as_str()), ("tx", tx.as_str()), ("decision", "allow")];
    let (r1, r2) = tokio::join!(a.post("/consent", &answer), a.post("/consent", &answer));
    let codes = [&r1, &r2].iter().filter(|r| has_code(r)).count();
    assert_eq!(codes, 1, "{:?} / {:?}", r1.location, r2.location);
}

#[tokio::test]
async fn prompt_login_is_answered_only_by_a_sign_in_made_for_the_request() {
    let idp = world().await;
    let b = signed_in(&idp, "ming.wang").await;
    // An existing session does not answer prompt=login, and neither does a plain sign-in in
    // between: only the sign-in that continues the request's own transaction.
    let login = b.get(&authorize_url("thirdparty", "&prompt=login")).await.location.unwrap();
    assert!(login.starts_with("/login?tx="), "{login}");
    assert_eq!(b.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let again = b.get(&authorize_url("thirdparty", "&prompt=login")).await.location.unwrap();
    assert!(again.starts_with("/login?tx="), "{again}");
    let r = b.sign_in_at(&again, "ming.wang", PW).await;
    // Signed in for the request: the gate moves on to consent.
    assert!(r.location.as_deref().unwrap().starts_with("/consent?tx="), "{:?}", r.location);
}
