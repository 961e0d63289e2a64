//! Card sign-in over a TLS client certificate (the separate card listener and the handoff to
//! the main site), and certificates forwarded by a trusted TLS-terminating proxy.

use std::path::{Path, PathBuf};

use base64::Engine;
use test_pki::fixtures::{self as pki_fixtures, pem_to_der};

use crate::harness::*;

const PW: &str = "Civil-Service-2026";

struct TlsWorld {
    idp: Idp,
    pki: PathBuf,
    card_base: String,
    _pki_dir: tempfile::TempDir,
}

fn list(pki: &Path, files: &[String]) -> String {
    let quoted: Vec<String> = files.iter().map(|f| format!("\"{}\"", pki.join(f).display())).collect();
    format!("[{}]", quoted.join(","))
}

async fn tls_world(extra: &[(&str, &str)]) -> TlsWorld {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().to_path_buf();
    let m = pki_fixtures::generate_with(&pki, &pki_fixtures::FixtureOptions::fast()).unwrap();
    let mut env = vec![
        ("IDP_CERTIFICATES__CITIZEN_TRUST_ANCHORS".to_string(), list(&pki, &m.citizen_trust_anchors)),
        ("IDP_CERTIFICATES__AGENCY_TRUST_ANCHORS".into(), list(&pki, &m.agency_trust_anchors)),
        ("IDP_CERTIFICATES__CRL_FILES".into(), list(&pki, &m.crl_files)),
        // Port 0: the harness binds the card listener's socket and hands it over.
        ("IDP_CARD_LOGIN__BIND".into(), "127.0.0.1:0".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut idp = Idp::with_env(&env);
    idp.import_register();
    idp.start().await;
    let card_base = idp.card_base().unwrap();
    TlsWorld { idp, pki, card_base, _pki_dir: dir }
}

impl TlsWorld {
    /// A browser holding `cert` (and its key) as its TLS client certificate.
    fn card_client(&self, cert: &str) -> reqwest::Client {
        let mut pem = std::fs::read(self.pki.join(cert)).unwrap();
        pem.extend(std::fs::read(self.pki.join(cert.replace(".pem", ".key.pem"))).unwrap());
        reqwest::Client::builder()
            .use_rustls_tls()
            .identity(reqwest::Identity::from_pem(&pem).unwrap())
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// Signs in at the card listener; returns its answer (status, Location, body).
    /// Follows the login page's link to the card listener (as browser `b`).
    async fn tls_login(&self, b: &Browser, cert: &str) -> (u16, Option<String>, String) {
        let login = b.get("/login").await;
        let at = login.body.find("id=\"card-tls-login\" href=\"").expect("the login page links the card listener");
        let rest = &login.body[at + "id=\"card-tls-login\" href=\"".len()..];
        let url = rest[..rest.find('"').unwrap()].replace("&amp;", "&").replace("&#x3D;", "=").replace("&#x2F;", "/");
        assert!(url.starts_with(&format!("{}/card/tls-login?", self.card_base)), "{url}");
        // The card listener may be a moment behind the main site.
        let mut last = None;
        for _ in 0..50 {
            match self.card_client(cert).get(&url).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
                    return (status, location, r.text().await.unwrap());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("card listener: {last:?}");
    }

    fn der(&self, file: &str) -> Vec<u8> {
        pem_to_der(&std::fs::read_to_string(self.pki.join(file)).unwrap()).unwrap()
    }

    async fn identify(&self, b: &Browser, identifier: &str) -> Page {
        let form = b.get("/card/identify").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.input("csrf_token").unwrap();
        b.post("/card/identify", &[("csrf_token", &csrf), ("identifier", identifier)]).await
    }

    fn audit_count(&self, outcome_is: &str) -> i64 {
        use diesel::prelude::*;
        use idp::store::db::schema::audit_events::dsl::*;
        let db = self.idp.db();
        let mut conn = db.get().unwrap();
        audit_events
            .filter(event.eq("login.card"))
            .filter(outcome.eq(outcome_is))
            .count()
            .get_result(&mut *conn)
            .unwrap()
    }
}

#[tokio::test]
async fn tls_card_login_hands_off_to_the_main_site_binds_and_later_signs_in_at_loa_2() {
    let w = tls_world(&[]).await;
    let b = Browser::new(&w.idp.base);
    // Unbound card: the handoff leads to the identify step.
    let (status, location, body) = w.tls_login(&b, pki_fixtures::CITIZEN_WANG).await;
    assert_eq!(status, 303, "{body}");
    let location = location.unwrap();
    assert!(location.starts_with(&format!("{}/card/handoff?token=", w.idp.base)), "{location}");
    let r = b.get(&location).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with("/card/identify"));
    // A handoff works once.
    let r = b.get(&location).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("已逾時或已使用過"), "{}", r.body);
    assert!(w.audit_count("stale_handoff") >= 1);
    // The owner identifies; the never-activated account goes to activation.
    let r = w.identify(&b, MING).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with("/activate"));
    assert_eq!(b.activate("ming.wang", "ming@example.gov.tw", PW).await.status, 200);
    // Bound: the card alone signs in, at loa-2 with amr sc+pin — in the browser that asked only.
    let b2 = Browser::new(&w.idp.base);
    let (_, location, _) = w.tls_login(&b2, pki_fixtures::CITIZEN_WANG).await;
    let r = Browser::new(&w.idp.base).get(&location.unwrap()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(w.audit_count("handoff_other_browser") >= 1);
    let (status, location, body) = w.tls_login(&b2, pki_fixtures::CITIZEN_WANG).await;
    assert_eq!(status, 303, "{body}");
    let r = b2.get(&location.unwrap()).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/"));
    assert!(b2.get("/").await.body.contains("王小明"));
    use diesel::prelude::*;
    use idp::store::db::schema::sessions::dsl::*;
    let db = w.idp.db();
    let mut conn = db.get().unwrap();
    let rows: Vec<(String, String)> = sessions.select((acr, amr)).load(&mut *conn).unwrap();
    assert!(rows.iter().any(|(a, m)| a == "loa-2" && m.contains("sc") && m.contains("pin")), "{rows:?}");
}

#[tokio::test]
async fn tls_card_refusals_use_the_seeds_words() {
    let w = tls_world(&[]).await;
    let b = Browser::new(&w.idp.base);
    let (status, _, body) = w.tls_login(&b, pki_fixtures::CITIZEN_WANG_EXPIRED).await;
    assert_eq!(status, 403);
    assert!(body.contains("插入之自然人憑證或機關憑證無效"), "{body}");
    let (status, _, body) = w.tls_login(&b, pki_fixtures::AGENCY_TEST).await;
    assert_eq!(status, 403);
    assert!(body.contains("請勿使用測試之機關憑證登入"), "{body}");
    // No certificate at all.
    let plain = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let r = plain.get(format!("{}/card/tls-login?bind=somebrowser", w.card_base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(w.audit_count("invalid_certificate") >= 1);
    assert!(w.audit_count("test_certificate") >= 1);
    // A made-up handoff token finds nothing.
    let r = Browser::new(&w.idp.base).get("/card/handoff?token=nothing").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn a_forwarded_certificate_is_accepted_only_from_a_trusted_proxy() {
    // The test's own address (127.0.0.1) is not a trusted proxy here.
    let w = tls_world(&[]).await;
    let der = w.der(pki_fixtures::CITIZEN_WANG);
    let rfc9440 = format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&der));
    let b = Browser::new(&w.idp.base);
    let r =
        b.http.get(format!("{}/card/proxy-login", w.idp.base)).header("Client-Cert", &rfc9440).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(w.audit_count("untrusted_proxy") >= 1);
    drop(w);

    // RFC 9440, when that is the header the proxy is configured to set.
    let w = tls_world(&[
        ("IDP_CERTIFICATES__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
        ("IDP_CERTIFICATES__PROXY_HEADER", "client-cert"),
    ])
    .await;
    let der = w.der(pki_fixtures::CITIZEN_WANG);
    let rfc9440 = format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&der));
    let b = Browser::new(&w.idp.base);
    let r =
        b.http.get(format!("{}/card/proxy-login", w.idp.base)).header("Client-Cert", &rfc9440).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/card/identify"));
    drop(w);

    // nginx's escaped PEM, when that is the header.
    let w = tls_world(&[
        ("IDP_CERTIFICATES__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
        ("IDP_CERTIFICATES__PROXY_HEADER", "x-ssl-client-cert"),
    ])
    .await;
    let b = Browser::new(&w.idp.base);
    let nginx = |file: &'static str| {
        let pem = std::fs::read_to_string(w.pki.join(file)).unwrap();
        let escaped: String =
            url::form_urlencoded::byte_serialize(pem.as_bytes()).collect::<String>().replace('+', "%20");
        b.http.get(format!("{}/card/proxy-login", w.idp.base)).header("X-SSL-Client-Cert", escaped).send()
    };
    let r = nginx(pki_fixtures::CITIZEN_WANG).await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    // Validated exactly like a direct one.
    let r = nginx(pki_fixtures::CITIZEN_WANG_EXPIRED).await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("插入之自然人憑證或機關憑證無效"));
}
