//! Adversarial: proxy. Headers only a trusted reverse proxy may set (the client certificate,
//! the client's address), and the sign-in throttle under parallel guessing.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use diesel::prelude::*;
use test_pki::fixtures as pki_fixtures;

use crate::behind_nginx::{Nginx, NginxSockets};
use crate::card::{card_world_on, list, test_pki, CardWorld};
use crate::harness::*;

const PW: &str = "Civil-Service-2026";

/// A card-trusting IdP that believes the proxy at 127.0.0.1, which sets `header`.
async fn behind_proxy(header: &str) -> (CardWorld, tempfile::TempDir) {
    let (dir, m) = test_pki();
    let env = [
        ("IDP_CERTIFICATES__CRL_FILES", list(dir.path(), &m.crl_files)),
        ("IDP_CERTIFICATES__TRUSTED_PROXIES", "[\"127.0.0.1\"]".to_string()),
        ("IDP_CERTIFICATES__PROXY_HEADER", header.to_string()),
    ];
    (card_world_on(dir.path(), &m, &env).await, dir)
}

fn escaped_pem(pki: &Path, file: &str) -> String {
    let pem = std::fs::read_to_string(pki.join(file)).unwrap();
    url::form_urlencoded::byte_serialize(pem.as_bytes()).collect::<String>().replace('+', "%20")
}

fn rfc9440(w: &CardWorld, file: &str) -> String {
    format!(":{}:", base64::engine::general_purpose::STANDARD.encode(w.der(file)))
}

/// A client whose connections come from `ip` (any 127.x address is this machine).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn sets_session(r: &reqwest::Response) -> bool {
    r.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap_or("").starts_with("idp_session="))
}

fn sessions(idp: &Idp) -> i64 {
    use idp::store::db::schema::sessions::dsl::*;
    let db = idp.db();
    let mut c = db.get().unwrap();
    sessions.count().get_result(&mut *c).unwrap()
}

/// The addresses on record for an audit event and outcome.
fn audited_addresses(idp: &Idp, event_is: &str, outcome_is: &str) -> Vec<String> {
    use idp::store::db::schema::audit_events::dsl::*;
    let db = idp.db();
    let mut c = db.get().unwrap();
    audit_events
        .filter(event.eq(event_is))
        .filter(outcome.eq(outcome_is))
        .select(address)
        .load::<Option<String>>(&mut *c)
        .unwrap()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

#[tokio::test]
async fn a_forged_client_cert_beside_the_proxys_empty_header_signs_nobody_in() {
    // The proxy sets X-SSL-Client-Cert (empty: no certificate); the client adds RFC 9440
    // Client-Cert with someone else's public certificate, and the proxy lets it through.
    let (w, _pki) = behind_proxy("x-ssl-client-cert").await;
    let forged = rfc9440(&w, pki_fixtures::CITIZEN_WANG);
    let http = client_from("127.0.0.1");
    let r = http
        .get(format!("{}/card/proxy-login", w.idp.base))
        .header("X-SSL-Client-Cert", "")
        .header("Client-Cert", &forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "the pair is refused, not read");
    assert!(!sets_session(&r));
    assert!(r.text().await.unwrap().contains("代理伺服器轉送了其設定以外之憑證標頭"));
    // Also on its own, and with the certificate in Client-Cert-Chain only.
    for (name, value) in [("Client-Cert", forged.as_str()), ("Client-Cert-Chain", forged.as_str())] {
        let r = http.get(format!("{}/card/proxy-login", w.idp.base)).header(name, value).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{name}");
    }
    assert_eq!(w.idp.audit_count("login.card", "foreign_certificate_header"), 3);
    assert_eq!(sessions(&w.idp), 0, "nobody is signed in");
    // The configured header itself still works.
    let r = http
        .get(format!("{}/card/proxy-login", w.idp.base))
        .header("X-SSL-Client-Cert", escaped_pem(&w.pki, pki_fixtures::CITIZEN_WANG))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
}

#[tokio::test]
async fn the_header_the_proxy_does_not_set_is_refused_even_alone() {
    let (w, _pki) = behind_proxy("client-cert").await;
    let http = client_from("127.0.0.1");
    let r = http
        .get(format!("{}/card/proxy-login", w.idp.base))
        .header("X-SSL-Client-Cert", escaped_pem(&w.pki, pki_fixtures::CITIZEN_WANG))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(!sets_session(&r));
    assert_eq!(w.idp.audit_count("login.card", "foreign_certificate_header"), 1);
    // And the forged pair from a peer that is not the proxy never reaches the header check.
    let r = client_from("127.0.0.2")
        .get(format!("{}/card/proxy-login", w.idp.base))
        .header("Client-Cert", rfc9440(&w, pki_fixtures::CITIZEN_WANG))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(w.idp.audit_count("login.card", "untrusted_proxy"), 1);
    assert_eq!(sessions(&w.idp), 0);
}

#[tokio::test]
async fn trusted_proxies_without_a_named_header_do_not_start() {
    let idp = Idp::with_env(&[("IDP_CERTIFICATES__TRUSTED_PROXIES", "[\"127.0.0.1\"]")]);
    let out = idp.cli(&["migrate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificates.proxy_header"), "{err}");
}

/// Posts a sign-in from `http` with `headers`; returns the status.
async fn sign_in_with(http: &reqwest::Client, base: &str, user: &str, pw: &str, headers: &[(&str, &str)]) -> u16 {
    let page = http.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let csrf = Page { status: 200, location: None, body: page }.input("csrf_token").unwrap();
    let mut req =
        http.post(format!("{base}/login")).form(&[("csrf_token", csrf.as_str()), ("username", user), ("password", pw)]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_forged_forwarded_for_from_a_non_proxy_peer_changes_neither_the_audit_nor_the_limit() {
    let mut idp = Idp::with_env(&[
        ("IDP_CERTIFICATES__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
        ("IDP_CERTIFICATES__PROXY_HEADER", "none"),
        ("IDP_LOGIN__MAX_FAILURES_PER_ADDRESS", "3"),
    ]);
    idp.import_register();
    idp.start().await;
    // Not the proxy: a fresh X-Forwarded-For on each guess, one account each (no per-account wait).
    let attacker = client_from("127.0.0.3");
    for (i, user) in ["guess.one", "guess.two", "guess.three"].iter().enumerate() {
        let xff = format!("10.9.9.{i}");
        assert_eq!(
            sign_in_with(&attacker, &idp.base, user, "wrong-password-here", &[("X-Forwarded-For", &xff)]).await,
            401
        );
    }
    let r = sign_in_with(&attacker, &idp.base, "guess.four", "wrong", &[("X-Forwarded-For", "10.9.9.200")]).await;
    assert_eq!(r, 429, "the per-address limit holds whatever the header says");
    assert_eq!(audited_addresses(&idp, "login.password", "bad_credentials"), vec!["127.0.0.3"; 3]);
    assert_eq!(audited_addresses(&idp, "login.password", "throttled"), vec!["127.0.0.3"]);
    // From the proxy, the address it forwards is the client's (rightmost untrusted entry).
    let proxy = client_from("127.0.0.1");
    let r =
        sign_in_with(&proxy, &idp.base, "guess.five", "wrong", &[("X-Forwarded-For", "10.1.1.1, 198.51.100.7")]).await;
    assert_eq!(r, 401);
    assert!(audited_addresses(&idp, "login.password", "bad_credentials").contains(&"198.51.100.7".to_string()));
}

#[tokio::test]
async fn thirty_parallel_wrong_passwords_reach_the_password_check_at_most_the_limit_times() {
    let mut idp = Idp::with_env(&[
        ("IDP_LOGIN__MAX_FAILURES_PER_ACCOUNT", "5"),
        ("IDP_LOGIN__MAX_FAILURES_PER_ADDRESS", "1000"),
        ("IDP_LOGIN__THROTTLE_DELAY", "10m"),
        ("IDP_LOGIN__THROTTLE_MAX_DELAY", "10m"),
    ]);
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    // Each attacker has its own form; half type the national ID, half the custom account.
    let mut forms = Vec::new();
    for i in 0..30 {
        let b = Browser::new(&idp.base);
        let csrf = b.get("/login").await.input("csrf_token").unwrap();
        forms.push((b, csrf, if i % 2 == 0 { MING } else { "Ming.Wang" }));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (b, csrf, user) in forms {
        tasks.spawn(async move {
            b.post("/login", &[("csrf_token", &csrf), ("username", user), ("password", "wrong-password-guess")])
                .await
                .status
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap());
    }
    let checked = idp.audit_count("login.password", "bad_credentials");
    let throttled = idp.audit_count("login.password", "throttled");
    assert_eq!(checked, 5, "only the free attempts reached the password check: {statuses:?}");
    assert_eq!(throttled, 25);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 25);
    // Both spellings were one count: the right password must wait too.
    let r = Browser::new(&idp.base).sign_in_at("/login", "ming.wang", PW).await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn a_throttled_person_waits_but_is_never_locked_out() {
    let mut idp = Idp::with_env(&[
        ("IDP_LOGIN__MAX_FAILURES_PER_ACCOUNT", "2"),
        ("IDP_LOGIN__THROTTLE_DELAY", "3s"),
        ("IDP_LOGIN__THROTTLE_MAX_DELAY", "6s"),
    ]);
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let b = Browser::new(&idp.base);
    for _ in 0..2 {
        assert_eq!(b.sign_in_at("/login", MING, "wrong-password-guess").await.status, 401);
    }
    // The colleague guessing has used the free attempts: even the right password waits...
    let page = b.get("/login").await;
    let csrf = page.input("csrf_token").unwrap();
    let r = b
        .http
        .post(format!("{}/login", idp.base))
        .form(&[("csrf_token", csrf.as_str()), ("username", MING), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "Retry-After: {retry}");
    // ...but only for the delay, after which the owner's right password works.
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert_eq!(b.sign_in_at("/login", MING, PW).await.status, 303);
    assert_eq!(idp.audit_count("login.password", "success"), 1);
}

/// A browser talking to nginx from 127.0.0.2, optionally holding a card's certificate.
fn nginx_browser(pki: &Path, card: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(cert) = card {
        let mut pem = std::fs::read(pki.join(cert)).unwrap();
        pem.extend(std::fs::read(pki.join(cert.replace(".pem", ".key.pem"))).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// Answers the identify step for the card this browser presented, as `identifier`.
async fn identify_as(browser: &reqwest::Client, site: &str, identifier: &str) -> reqwest::Response {
    let form = browser.get(format!("{site}/card/identify")).send().await.unwrap().text().await.unwrap();
    let csrf = Page { status: 200, location: None, body: form }.input("csrf_token").unwrap();
    browser
        .post(format!("{site}/card/identify"))
        .form(&[("csrf_token", csrf.as_str()), ("identifier", identifier)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn behind_the_deployed_nginx_a_card_signs_in_and_forged_headers_sign_nobody_in() {
    let (w, _pki) = behind_proxy("x-ssl-client-cert").await;
    let upstream = w.idp.base.trim_start_matches("http://").to_string();
    // nginx on sockets bound by the test (no port chosen and let go); None without nginx.
    let Some(nginx) = Nginx::start(NginxSockets::bind(), &[upstream]).await else { return };
    let (card_site, main_site) = (nginx.card_base.clone(), nginx.base.clone());

    // The card holder: the certificate from the TLS handshake reaches the IdP and is accepted.
    let holder = nginx_browser(&w.pki, Some(pki_fixtures::CITIZEN_WANG));
    let r = holder.get(format!("{card_site}/card/proxy-login")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"].to_str().unwrap().split('?').next(), Some("/card/identify"));
    let r = identify_as(&holder, &card_site, MING).await;
    assert_eq!(r.status().as_u16(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/activate"), "the owner is recognised");
    // The address on record is the browser's, as nginx saw it, not nginx's own.
    assert_eq!(audited_addresses(&w.idp, "card.bind", "success"), vec!["127.0.0.2"]);

    // Someone without the card sends its public certificate in every header nginx could pass on.
    let forged = [
        ("X-SSL-Client-Cert", escaped_pem(&w.pki, pki_fixtures::CITIZEN_WANG)),
        ("Client-Cert", rfc9440(&w, pki_fixtures::CITIZEN_WANG)),
        ("X-Forwarded-For", "203.0.113.50".to_string()),
    ];
    let sessions_before = sessions(&w.idp);
    for site in [&card_site, &main_site] {
        let mut req = nginx_browser(&w.pki, None).get(format!("{site}/card/proxy-login"));
        for (k, v) in &forged {
            req = req.header(*k, v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{site}: nginx cleared the headers, the IdP saw no certificate");
        assert!(!sets_session(&r));
    }
    // With a card of their own, the forged header cannot swap in someone else's.
    let li = nginx_browser(&w.pki, Some(pki_fixtures::CITIZEN_LI));
    let mut req = li.get(format!("{card_site}/card/proxy-login"));
    for (k, v) in &forged {
        req = req.header(*k, v);
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 303);
    let r = identify_as(&li, &card_site, MING).await;
    assert_ne!(r.status().as_u16(), 303, "李美華's card is not 王小明's");
    assert_eq!(sessions(&w.idp), sessions_before, "nobody was signed in");
    assert_eq!(w.idp.audit_count("login.card", "no_certificate"), 2);
    assert_eq!(w.idp.audit_count("login.card", "foreign_certificate_header"), 0, "nginx let none through");
    let addresses = audited_addresses(&w.idp, "login.card", "no_certificate");
    assert_eq!(addresses, vec!["127.0.0.2"; 2], "X-Forwarded-For is nginx's, not the client's");
    drop(nginx);
}
