//! README promises about card sign-in that no other test holds the server to: a renewed
//! certificate finding its account by the public-key hash, a CRL listing overruling an OCSP
//! "good", the card listener's server certificate (configured or generated), and no TLS session
//! resumption on that listener.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, SignatureScheme, StreamOwned};
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use test_pki::fixtures as pki_fixtures;

use crate::card::{card_world, card_world_on, list, test_pki, CardWorld};
use crate::harness::*;

const PW: &str = "Civil-Service-2026";
const INVALID: &str = "插入之自然人憑證或機關憑證無效";

/// Serial (DER content) and SubjectPublicKeyInfo of a certificate file of the PKI.
fn serial_and_key(pki: &Path, file: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let der = pki_fixtures::read_cert(pki, file).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    (cert.raw_serial().to_vec(), cert.public_key().raw.to_vec(), cert.subject().as_raw().to_vec())
}

#[tokio::test]
async fn claims_a_renewed_certificate_signs_in_its_account_by_key_and_another_key_with_the_same_name_does_not() {
    let w = card_world().await;
    // The fixtures are what they claim: a new serial for the same key and name, and the same
    // name with another key.
    let (serial, key, subject) = serial_and_key(&w.pki, pki_fixtures::CITIZEN_WANG);
    let (renewed_serial, renewed_key, renewed_subject) = serial_and_key(&w.pki, pki_fixtures::CITIZEN_WANG_RENEWED);
    let (_, other_key, other_subject) = serial_and_key(&w.pki, pki_fixtures::CITIZEN_WANG_NEW_KEY);
    assert_ne!(serial, renewed_serial);
    assert_eq!(key, renewed_key);
    assert_eq!((&subject, &subject), (&renewed_subject, &other_subject));
    assert_ne!(key, other_key);

    // 王小明 binds his card on first login and activates his account.
    let b = Browser::new(&w.idp.base);
    let r = w.card_login(&b, pki_fixtures::CITIZEN_WANG, "").await;
    assert!(r.location.as_deref().unwrap_or("").starts_with("/card/identify"), "{:?}", r.location);
    let r = w.identify(&b, MING).await;
    assert!(r.location.as_deref().unwrap_or("").starts_with("/activate"), "{:?} {}", r.location, r.body);
    assert_eq!(b.activate("ming.wang", "ming@example.gov.tw", PW).await.status, 200);
    assert_eq!(w.bindings(), 1);

    // The renewed certificate signs him straight in: no identify step.
    let renewed = Browser::new(&w.idp.base);
    let r = w.card_login(&renewed, pki_fixtures::CITIZEN_WANG_RENEWED, "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/"), "the renewed card should sign 王小明 in without identifying again");
    assert!(renewed.get("/").await.body.contains("王小明"));

    // A card with another key is a new card, whatever its name says: identify first.
    let other = Browser::new(&w.idp.base);
    let r = w.card_login(&other, pki_fixtures::CITIZEN_WANG_NEW_KEY, "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        r.location.as_deref().unwrap_or("").starts_with("/card/identify"),
        "a certificate with another key must not find the account: {:?}",
        r.location
    );
    assert!(!other.get("/").await.body.contains("王小明"));
    assert_eq!(w.bindings(), 1);
}

/// An OCSP responder for MOICA G2 that says "good" for every certificate it is asked about,
/// signing as the CA with the project's test responder ([`test_pki::ocsp_responder`]),
/// over real HTTP. Returns its port and the number of requests answered so far.
async fn always_good_responder(pki: &Path) -> (u16, Arc<AtomicUsize>) {
    use test_pki::ocsp_responder::CertStatus;
    use test_pki::ocsp_responder::{respond, ResponderKey};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca_pem = std::fs::read_to_string(pki.join(pki_fixtures::MOICA_G2)).unwrap();
    let key = ResponderKey::from_pem(&ca_pem, &std::fs::read_to_string(pki.join("moica-g2.key.pem")).unwrap()).unwrap();
    let ca_der = pki_fixtures::read_cert(pki, pki_fixtures::MOICA_G2).unwrap().to_vec();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let body = loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(buf[end + 4..end + 4 + len].to_vec());
                    }
                }
                if n == 0 {
                    break None;
                }
            };
            let Some(body) = body else { continue };
            let der = respond(&body, &ca_der, &key, |_| CertStatus::Good, idp::error::now(), 3600).unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/ocsp-response\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                der.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&der).await;
        }
    });
    (port, answered)
}

/// The server log's JSON lines that say a card was refused, with their reasons.
fn refusal_reasons(w: &CardWorld) -> Vec<String> {
    std::fs::read_to_string(w.idp.log_path())
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "card refused")
        .map(|v| v["fields"]["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn claims_a_crl_that_lists_a_certificate_refuses_it_though_the_ocsp_responder_says_good() {
    let (dir, m) = test_pki();
    let pki = dir.path();
    let (port, answered) = always_good_responder(pki).await;
    // MOICA G2 revokes 王小明 in a CRL of its own signing; the responder says "good" regardless.
    let pem = |f: &str| std::fs::read_to_string(pki.join(f)).unwrap();
    let now = idp::error::now();
    let (wang_serial, _, _) = serial_and_key(pki, pki_fixtures::CITIZEN_WANG);
    let (li_serial, _, _) = serial_and_key(pki, pki_fixtures::CITIZEN_LI_REVOKED);
    let listing = pki_fixtures::sign_crl(
        &pem(pki_fixtures::MOICA_G2),
        &pem("moica-g2.key.pem"),
        &[(wang_serial, now - 60), (li_serial, now - 86_400)],
        now - 60,
        now + 3600,
        2,
    )
    .unwrap();
    std::fs::write(pki.join("moica-g2-listing-wang.crl"), listing).unwrap();
    let crls = |g2: &str| list(pki, &[g2.to_string(), pki_fixtures::CRL_MOICA_G3.into(), pki_fixtures::CRL_GCA.into()]);
    let responders = format!(
        "[{{issuer=\"{}\", url=\"http://127.0.0.1:{port}/ocsp\"}}]",
        pki.join(pki_fixtures::MOICA_G2).display()
    );
    let m = &m;
    let node = |g2_crl: &'static str| {
        let env = [
            ("IDP_CERTIFICATES__CRL_FILES", crls(g2_crl)),
            ("IDP_CERTIFICATES__OCSP_RESPONDERS", responders.clone()),
            ("IDP_LOG__FORMAT", "json".to_string()),
        ];
        async move { card_world_on(pki, m, &env).await }
    };

    // The CA's own CRL does not list him: the responder is asked, vouches, and the card passes.
    let w = node(pki_fixtures::CRL_MOICA_G2).await;
    let r = w.card_login(&Browser::new(&w.idp.base), pki_fixtures::CITIZEN_WANG, "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.as_deref().unwrap_or("").starts_with("/card/identify"), "{:?}", r.location);
    assert_eq!(answered.load(Ordering::SeqCst), 1, "the responder was asked and said good");
    drop(w);

    // The CRL that lists him: refused, as revoked, whatever the responder says.
    let w = node("moica-g2-listing-wang.crl").await;
    let r = w.card_login(&Browser::new(&w.idp.base), pki_fixtures::CITIZEN_WANG, "").await;
    assert_eq!(r.status, 403, "a CRL-listed certificate must be refused even when OCSP says good: {}", r.body);
    assert!(r.body.contains(INVALID), "{}", r.body);
    assert_eq!(refusal_reasons(&w), vec!["invalid certificate: revoked".to_string()], "refused for the CRL listing");
    assert!(w.idp.audit_count("login.card", "invalid_certificate") >= 1);
}

/// A card of the test PKI as a TLS client certificate that counts how often the server asked
/// for it.
#[derive(Debug)]
struct CountingCard {
    key: Arc<CertifiedKey>,
    asked: AtomicUsize,
}

impl CountingCard {
    fn new(pki: &Path, file: &str) -> Arc<Self> {
        let cert = pki_fixtures::read_cert(pki, file).unwrap();
        let key = PrivateKeyDer::from_pem_file(pki.join(file.replace(".pem", ".key.pem"))).unwrap();
        let signer = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
        Arc::new(Self { key: Arc::new(CertifiedKey::new(vec![cert], signer)), asked: AtomicUsize::new(0) })
    }
}

impl ResolvesClientCert for CountingCard {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Some(self.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A rustls client that trusts only `server_cert`, keeps rustls's default session cache (so it
/// would resume if the server let it), and holds `card` when one is given.
fn tls_client(
    server_cert: &CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
    card: Option<Arc<CountingCard>>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(server_cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match card {
        Some(card) => builder.with_client_cert_resolver(card),
        None => builder.with_no_client_auth(),
    })
}

/// What one connection to the card listener showed.
struct Connection {
    server_certificate: CertificateDer<'static>,
    kind: Option<HandshakeKind>,
    /// The HTTP status line of `GET /card/tls-login`.
    status_line: String,
}

/// Connects to the card listener on `port` (waiting a little for it to come up), completes
/// the handshake, and asks for `/card/tls-login`, reading the whole answer so that any session
/// ticket the server sends after the handshake reaches the client's cache.
fn connect(port: u16, config: &Arc<ClientConfig>) -> Connection {
    let mut tcp = None;
    for _ in 0..100 {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let tcp = tcp.expect("the card listener accepts connections");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake with the card listener");
    }
    let server_certificate = tls.conn.peer_certificates().unwrap()[0].clone().into_owned();
    let kind = tls.conn.handshake_kind();
    tls.write_all(b"GET /card/tls-login?bind=somebrowser HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    // The server may close without close_notify; what arrived before is the answer.
    let _ = tls.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    Connection { server_certificate, kind, status_line: text.lines().next().unwrap_or("").to_string() }
}

/// Runs blocking TLS client code off the test's runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A card world with the TLS card listener on `port` and further settings.
/// A card world with the TLS listener on a port the harness picked (read back with [`card_port`]).
async fn listener_world(extra: &[(&str, String)]) -> (tempfile::TempDir, CardWorld) {
    let (dir, m) = test_pki();
    let mut env = vec![
        ("IDP_CERTIFICATES__CRL_FILES", list(dir.path(), &m.crl_files)),
        ("IDP_CARD_LOGIN__BIND", "127.0.0.1:0".to_string()),
    ];
    env.extend(extra.iter().cloned());
    let w = card_world_on(dir.path(), &m, &env).await;
    (dir, w)
}

fn card_port(w: &CardWorld) -> u16 {
    let base = w.idp.card_base().expect("the card listener was asked for");
    base.rsplit(':').next().unwrap().parse().unwrap()
}

fn generated_dir(w: &CardWorld) -> std::path::PathBuf {
    w.idp.dir.path().join("data").join("card-tls")
}

#[tokio::test]
async fn claims_the_card_listener_serves_the_configured_certificate_and_else_one_generated_into_the_data_dir() {
    // A server certificate and key of the operator's own, made here.
    let made = {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "card listener of the test");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert, key)
    };
    let files = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (files.path().join("card.pem"), files.path().join("card.key.pem"));
    std::fs::write(&cert_file, made.0.pem()).unwrap();
    std::fs::write(&key_file, made.1.serialize_pem()).unwrap();
    let made_der = made.0.der().clone();

    let settings = [
        ("IDP_CARD_LOGIN__CERT_FILE", cert_file.display().to_string()),
        ("IDP_CARD_LOGIN__KEY_FILE", key_file.display().to_string()),
    ];
    let (_pki, w) = listener_world(&settings).await;
    let port = card_port(&w);
    // A client that trusts only that certificate completes the handshake and is shown it.
    let config = tls_client(&made_der, &rustls::version::TLS13, None);
    let seen = blocking(move || connect(port, &config)).await;
    assert_eq!(seen.server_certificate, made_der, "the card listener should present card_login.cert_file");
    assert!(!generated_dir(&w).exists(), "nothing is generated when a certificate is configured");
    drop(w);

    // Without them: a self-signed pair appears under <data_dir>/card-tls/ and is what is served.
    let (_pki, w) = listener_world(&[]).await;
    let port = card_port(&w);
    let cert_pem = generated_dir(&w).join("cert.pem");
    assert!(generated_dir(&w).join("key.pem").is_file(), "the generated key is in <data_dir>/card-tls/");
    let generated = CertificateDer::from_pem_file(&cert_pem).unwrap();
    assert_ne!(generated, made_der);
    let config = tls_client(&generated, &rustls::version::TLS13, None);
    let seen = blocking(move || connect(port, &config)).await;
    assert_eq!(seen.server_certificate, generated, "the card listener should present the generated certificate");
}

#[tokio::test]
async fn claims_the_card_listener_never_resumes_a_tls_session_and_asks_for_the_card_every_time() {
    let (pki, w) = listener_world(&[]).await;
    let port = card_port(&w);
    let server_cert = CertificateDer::from_pem_file(generated_dir(&w).join("cert.pem")).unwrap();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let card = CountingCard::new(pki.path(), pki_fixtures::CITIZEN_WANG);
        // One client config: its session cache carries over from the first connection to the
        // second, as a browser's would.
        let config = tls_client(&server_cert, version, Some(card.clone()));
        let (first, second) = blocking(move || (connect(port, &config), connect(port, &config))).await;
        let v = format!("{:?}", version.version);
        assert_eq!(first.kind, Some(HandshakeKind::Full), "{v}");
        assert_eq!(second.kind, Some(HandshakeKind::Full), "{v}: the second connection must not resume the first");
        assert_eq!(card.asked.load(Ordering::SeqCst), 2, "{v}: the listener asks for the card on each connection");
        for c in [&first, &second] {
            assert!(c.status_line.starts_with("HTTP/1.1 303"), "{v}: the card was read: {}", c.status_line);
        }
    }
}
