//! Revocation from the certificate authority's online services, played by `ca-simulator` over
//! real HTTP: CRLs downloaded from `certificates.crl_urls` and refreshed in the background, a
//! cached copy across restarts, forged downloads refused, and OCSP where a responder is configured.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use test_pki::fixtures::{self as pki_fixtures, Manifest};

use crate::card::{card_world_on, test_pki, CardWorld};
use crate::harness::*;

const INVALID: &str = "插入之自然人憑證或機關憑證無效";

/// The CA simulator serving one test PKI, stopped when dropped.
pub(crate) struct CaSim {
    base: String,
    _child: Proc,
    http: reqwest::Client,
}

impl CaSim {
    /// Starts it on a port of its own choosing (port 0, read back from its output).
    async fn start(pki: &Path) -> Self {
        let (child, base) =
            Proc::spawn_listening("ca-simulator", Self::command(pki, &[]).args(["--bind", "127.0.0.1:0"]));
        Self::ready(CaSim { base, _child: child, http: reqwest::Client::new() }).await
    }

    /// Starts it on `socket` (kept by the test, so the address is known before and after) with
    /// further arguments, and waits until it answers.
    pub(crate) async fn start_on(pki: &Path, socket: &std::net::TcpListener, args: &[&str]) -> Self {
        let mut cmd = Self::command(pki, args);
        hand_over(&mut cmd, &[(socket, "http")]);
        let (child, base) = Proc::spawn_listening("ca-simulator", &mut cmd);
        assert_eq!(base, format!("http://{}", socket.local_addr().unwrap()), "the simulator took the socket given");
        Self::ready(CaSim { base, _child: child, http: reqwest::Client::new() }).await
    }

    fn command(pki: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(workspace_binary("ca-simulator"));
        cmd.args(["--pki", &pki.display().to_string()]).args(args).stderr(Stdio::null());
        cmd
    }

    async fn ready(sim: Self) -> Self {
        for _ in 0..200 {
            if sim.http.get(format!("{}/control/stats", sim.base)).send().await.is_ok() {
                return sim;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("ca-simulator did not start");
    }

    async fn control(&self, what: &str, body: Value) {
        let r = self.http.post(format!("{}/control/{what}", self.base)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 204, "control/{what} {body}");
    }

    async fn crl_downloads(&self) -> u64 {
        let v: Value =
            self.http.get(format!("{}/control/stats", self.base)).send().await.unwrap().json().await.unwrap();
        v["crl_downloads"].as_u64().unwrap()
    }

    /// `certificates.crl_urls` for every issuing CA of the PKI.
    fn crl_urls(&self, m: &Manifest) -> String {
        let urls: Vec<String> = m
            .citizen_trust_anchors
            .iter()
            .chain(&m.agency_trust_anchors)
            .map(|ca| format!("\"{}/crl/{}\"", self.base, ca.replace(".pem", ".crl")))
            .collect();
        format!("[{}]", urls.join(","))
    }

    /// `certificates.ocsp_responders` for every issuing CA of the PKI.
    fn ocsp_responders(&self, pki: &Path, m: &Manifest) -> String {
        let entries: Vec<String> = m
            .citizen_trust_anchors
            .iter()
            .chain(&m.agency_trust_anchors)
            .map(|ca| {
                format!(
                    "{{issuer=\"{}\", url=\"{}/ocsp/{}\"}}",
                    pki.join(ca).display(),
                    self.base,
                    ca.trim_end_matches(".pem")
                )
            })
            .collect();
        format!("[{}]", entries.join(","))
    }

    /// Revokes a certificate of the PKI from now on.
    async fn revoke(&self, m: &Manifest, file: &str) {
        let e = m.entry(file).unwrap();
        self.control("revoke", json!({"serial": e.serial, "issuer": e.issuer})).await;
    }
}

/// A card login's outcome: `true` when the card was accepted (an unbound card goes on to the
/// identify step), `false` when refused as invalid.
async fn accepted(w: &CardWorld, cert: &str) -> bool {
    let b = Browser::new(&w.idp.base);
    let r = w.card_login(&b, cert, "").await;
    match r.status {
        303 => {
            assert!(r.location.as_deref().unwrap_or("").starts_with("/card/identify"), "{:?}", r.location);
            true
        }
        403 => {
            assert!(r.body.contains(INVALID), "{}", r.body);
            false
        }
        other => panic!("unexpected {other}: {}", r.body),
    }
}

/// Waits (up to a minute) for something the background refresh brings about.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..120 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("never happened: {what}");
}

/// Waits for the background refresh to make a card's login come out `want`.
async fn until_accepted_is(w: &CardWorld, cert: &str, want: bool) {
    eventually(&format!("{cert} accepted={want}"), || async move { accepted(w, cert).await == want }).await;
}

/// Waits until the IdP has fetched the CRLs `more` more times.
async fn until_downloads(sim: &CaSim, more: u64) {
    let start = sim.crl_downloads().await;
    eventually("the IdP fetched the CRLs again", || async move { sim.crl_downloads().await >= start + more }).await;
}

/// An IdP that takes its CRLs from the simulator and fetches them again every second.
async fn refreshing_every_second(pki: &Path, m: &Manifest, sim: &CaSim) -> CardWorld {
    let env =
        [("IDP_CERTIFICATES__CRL_URLS", sim.crl_urls(m)), ("IDP_CERTIFICATES__CRL_REFRESH_INTERVAL", "1s".to_string())];
    card_world_on(pki, m, &env).await
}

#[tokio::test]
async fn revocation_crl_urls_are_downloaded_at_start_and_a_new_revocation_arrives_without_restart() {
    let (dir, m) = test_pki();
    let sim = CaSim::start(dir.path()).await;
    let w = refreshing_every_second(dir.path(), &m, &sim).await;
    // No CRL file is configured: strict mode accepts only because the downloads arrived.
    assert!(accepted(&w, pki_fixtures::CITIZEN_WANG).await);
    assert!(!accepted(&w, pki_fixtures::CITIZEN_LI_REVOKED).await, "listed in the downloaded CRL");
    sim.revoke(&m, pki_fixtures::CITIZEN_WANG).await;
    until_accepted_is(&w, pki_fixtures::CITIZEN_WANG, false).await;
    assert!(accepted(&w, pki_fixtures::CITIZEN_LI).await, "another CA's card is unaffected");
}

#[tokio::test]
async fn revocation_a_forged_crl_download_is_refused_audited_and_the_crl_held_stays() {
    let (dir, m) = test_pki();
    let sim = CaSim::start(dir.path()).await;
    let w = refreshing_every_second(dir.path(), &m, &sim).await;
    assert!(accepted(&w, pki_fixtures::CITIZEN_WANG).await);
    // A CRL with MOICA's name, signed by the impostor's key, that lists 王小明.
    sim.control("crl", json!({"mode": "bad-signature"})).await;
    sim.revoke(&m, pki_fixtures::CITIZEN_WANG).await;
    until_downloads(&sim, 6).await;
    assert!(accepted(&w, pki_fixtures::CITIZEN_WANG).await, "a forged CRL must not be believed");
    assert!(!accepted(&w, pki_fixtures::CITIZEN_LI_REVOKED).await, "the genuine CRL held still revokes");
    assert!(w.idp.audit_count("certificates.crl_refresh", "bad_signature") > 0);
    // The CA's site publishing garbage or going down changes nothing either.
    sim.control("crl", json!({"mode": "unavailable"})).await;
    until_downloads(&sim, 3).await;
    assert!(accepted(&w, pki_fixtures::CITIZEN_WANG).await);
    // The genuine CRL with the revocation arrives.
    sim.control("crl", json!({"mode": "ok"})).await;
    until_accepted_is(&w, pki_fixtures::CITIZEN_WANG, false).await;
}

#[tokio::test]
async fn revocation_strict_mode_refuses_without_a_current_crl_and_a_cached_crl_survives_a_restart() {
    let (dir, m) = test_pki();
    let sim = CaSim::start(dir.path()).await;
    let pki = dir.path().to_path_buf();
    let urls = sim.crl_urls(&m);
    let mut w = card_world_on(dir.path(), &m, &[("IDP_CERTIFICATES__CRL_URLS", urls.clone())]).await;
    assert!(accepted(&w, pki_fixtures::CITIZEN_WANG).await);
    // The CA's site goes down; after a restart the copy cached under the data directory serves.
    sim.control("crl", json!({"mode": "unavailable"})).await;
    w.idp.stop();
    w.idp.start().await;
    assert!(accepted(&w, pki_fixtures::CITIZEN_WANG).await, "the cached CRL is used");
    assert!(!accepted(&w, pki_fixtures::CITIZEN_LI_REVOKED).await);

    // A fresh node that never got a CRL: strict refuses, best-effort lets the card through.
    let fresh = |mode: &str| {
        vec![("IDP_CERTIFICATES__CRL_URLS", urls.clone()), ("IDP_CERTIFICATES__REVOCATION", mode.to_string())]
    };
    let strict = card_world_on(&pki, &m, &fresh("strict")).await;
    assert!(!accepted(&strict, pki_fixtures::CITIZEN_WANG).await, "no CRL: refused in strict mode");
    let lenient = card_world_on(&pki, &m, &fresh("best-effort")).await;
    assert!(accepted(&lenient, pki_fixtures::CITIZEN_WANG).await, "best-effort accepts without a CRL");

    // A CRL past its nextUpdate: strict refuses.
    sim.control("crl", json!({"mode": "stale"})).await;
    let stale = card_world_on(&pki, &m, &fresh("strict")).await;
    assert!(!accepted(&stale, pki_fixtures::CITIZEN_WANG).await, "a stale CRL refuses in strict mode");
}

#[tokio::test]
async fn revocation_ocsp_answers_decide_where_a_responder_is_configured() {
    let (dir, m) = test_pki();
    let sim = CaSim::start(dir.path()).await;
    let pki = dir.path().to_path_buf();
    let responders = sim.ocsp_responders(&pki, &m);
    // Strict mode and no CRL at all: only the responder can vouch.
    let w = card_world_on(&pki, &m, &[("IDP_CERTIFICATES__OCSP_RESPONDERS", responders.clone())]).await;
    assert!(accepted(&w, pki_fixtures::CITIZEN_WANG).await, "good");
    assert!(!accepted(&w, pki_fixtures::CITIZEN_LI_REVOKED).await, "revoked");
    // Revoked a moment ago: the responder knows at once.
    sim.revoke(&m, pki_fixtures::CITIZEN_CHEN).await;
    assert!(!accepted(&w, pki_fixtures::CITIZEN_CHEN).await, "revoked just now");
    // This setup accepts 李 while the responder vouches; the answer is then reused (for up to
    // five minutes), so the responder going down does not refuse 李 on this node.
    assert!(accepted(&w, pki_fixtures::CITIZEN_LI).await, "good answer for 李");
    sim.control("ocsp", json!({"mode": "unavailable"})).await;
    assert!(accepted(&w, pki_fixtures::CITIZEN_LI).await, "the good answer is reused");
    // On a node with no answer held, a responder that signs with another key, or is down,
    // gives no usable answer: refused.
    sim.control("ocsp", json!({"mode": "bad-signature"})).await;
    let fresh_node = card_world_on(&pki, &m, &[("IDP_CERTIFICATES__OCSP_RESPONDERS", responders.clone())]).await;
    assert!(!accepted(&fresh_node, pki_fixtures::CITIZEN_LI).await, "answer signed by another CA");
    sim.control("ocsp", json!({"mode": "unavailable"})).await;
    let fresh_node = card_world_on(&pki, &m, &[("IDP_CERTIFICATES__OCSP_RESPONDERS", responders.clone())]).await;
    assert!(!accepted(&fresh_node, pki_fixtures::CITIZEN_LI).await, "responder down, no CRL");

    // Responder down, but a current CRL speaks for the certificate.
    let env =
        [("IDP_CERTIFICATES__OCSP_RESPONDERS", responders.clone()), ("IDP_CERTIFICATES__CRL_URLS", sim.crl_urls(&m))];
    let with_crl = card_world_on(&pki, &m, &env).await;
    assert!(accepted(&with_crl, pki_fixtures::CITIZEN_LI).await, "the CRL decides");
    assert!(!accepted(&with_crl, pki_fixtures::CITIZEN_LI_REVOKED).await);

    // Best-effort: a responder that is down does not block sign-in.
    let env = [
        ("IDP_CERTIFICATES__OCSP_RESPONDERS", responders),
        ("IDP_CERTIFICATES__REVOCATION", "best-effort".to_string()),
    ];
    let lenient = card_world_on(&pki, &m, &env).await;
    assert!(accepted(&lenient, pki_fixtures::CITIZEN_LI).await);
}

#[tokio::test]
async fn revocation_a_start_while_the_ca_hangs_has_the_cached_crl_at_once() {
    let (dir, m) = test_pki();
    let socket = listener();
    let sim = CaSim::start_on(dir.path(), &socket, &[]).await;
    let env = [
        ("IDP_CERTIFICATES__CRL_URLS", sim.crl_urls(&m)),
        // Longer than the harness waits for a start: a start that downloads first never comes up.
        ("IDP_CERTIFICATES__CRL_DOWNLOAD_TIMEOUT", "120s".to_string()),
    ];
    let mut w = card_world_on(dir.path(), &m, &env).await;
    assert!(!accepted(&w, pki_fixtures::CITIZEN_LI_REVOKED).await);
    w.idp.stop();
    drop(sim);
    // The CA's address now takes connections and never answers: the socket is still open here,
    // and nobody accepts on it.
    let started = std::time::Instant::now();
    w.idp.start().await;
    assert!(started.elapsed() < Duration::from_secs(20), "the start waited for the CA");
    assert!(accepted(&w, pki_fixtures::CITIZEN_WANG).await, "the cached CRL is in use at once");
    assert!(!accepted(&w, pki_fixtures::CITIZEN_LI_REVOKED).await, "the cached CRL still revokes");
}

/// A CRL the size of MOICA's complete one (412,000 entries, about 20 MB): a card listed deep
/// inside it is refused, the same holder's renewed card (another serial, not listed) and a card
/// of the other generation are accepted.
#[tokio::test]
async fn revocation_a_complete_crl_of_412000_entries_refuses_the_card_at_entry_400000_only() {
    let (dir, m) = test_pki();
    let pki = dir.path();
    let pem = |f: &str| std::fs::read_to_string(pki.join(f)).unwrap();
    let serial = |f: &str| {
        test_pki::unhex(&test_pki::cert_serial_hex(&pki_fixtures::pem_to_der(&pem(f)).unwrap()).unwrap()).unwrap()
    };
    let now = idp::error::now();
    let listed = [(400_000, serial(pki_fixtures::CITIZEN_WANG)), (400_001, serial(pki_fixtures::CITIZEN_LI_REVOKED))];
    let crl = pki_fixtures::sign_large_crl(
        &pem(pki_fixtures::MOICA_G2),
        &pem("moica-g2.key.pem"),
        412_000,
        &listed,
        now - 60,
        now + 86_400,
        3,
    )
    .unwrap();
    assert!(crl.len() > 15_000_000, "as large as the real one: {} bytes", crl.len());
    std::fs::write(pki.join("moica-g2-complete.crl"), crl).unwrap();
    let files = ["moica-g2-complete.crl".to_string(), pki_fixtures::CRL_MOICA_G3.into(), pki_fixtures::CRL_GCA.into()];
    let w = card_world_on(pki, &m, &[("IDP_CERTIFICATES__CRL_FILES", crate::card::list(pki, &files))]).await;
    assert!(!accepted(&w, pki_fixtures::CITIZEN_WANG).await, "listed at entry 400,000");
    assert!(!accepted(&w, pki_fixtures::CITIZEN_LI_REVOKED).await, "listed at entry 400,001");
    assert!(accepted(&w, pki_fixtures::CITIZEN_WANG_RENEWED).await, "same CA, not listed");
    assert!(accepted(&w, pki_fixtures::CITIZEN_LI).await, "the other generation's CRL decides for it");
    assert!(w.idp.audit_count("login.card", "invalid_certificate") >= 2);
}
