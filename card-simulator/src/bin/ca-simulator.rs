//! `ca-simulator`: plays the certificate authorities' online services for a test PKI written by
//! `idp dev pki` — CRL downloads and OCSP for every CA in it, and the ownership check that
//! government relying parties may ask a CA (docs/cards-and-pki.md, "The same-person check on first card login").
//! Switches under `/control/` let tests revoke a certificate while the IdP runs, make a service
//! fail, or have it serve answers that must be refused, and count the downloads so a test can see
//! a background refresh happen. Never for production: it signs with unprotected key files.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use clap::Parser;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use test_pki::fixtures::{self as pki_fixtures, EntryKind, Expectation, Manifest};
use test_pki::ocsp_responder::CertStatus;
use test_pki::ocsp_responder::{self, ErrorStatus, ResponderError, ResponderKey};

/// How long an OCSP answer stays fresh (its `nextUpdate`).
const OCSP_VALIDITY_SECS: i64 = 3600;

#[derive(Parser, Debug)]
#[command(about = "Simulated certificate authority services (CRL, OCSP, ownership check) for a test PKI")]
struct Args {
    /// Directory written by `idp dev pki --out DIR`.
    #[arg(long)]
    pki: PathBuf,
    /// Address to listen on; port 0 picks a free one. A socket passed by socket activation
    /// (`LISTEN_FDS`) is used instead. Standard output gets one `listening on ADDR` line.
    #[arg(long, default_value = "127.0.0.1:9555")]
    bind: String,
    /// How long each CRL served stays fresh (its nextUpdate), e.g. 90s, 30m, 12h, 1d.
    #[arg(long, default_value = "1d", value_parser = parse_duration)]
    crl_lifetime: i64,
    /// Bearer token the ownership service requires; without one it refuses every request.
    #[arg(long)]
    ownership_token: Option<String>,
}

/// `90`, `90s`, `30m`, `12h`, `1d` → seconds.
fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: i64 = number.parse().map_err(|_| format!("not a duration: {text:?}"))?;
    let unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit in {text:?} (s, m, h, d)")),
    };
    match number.checked_mul(unit) {
        Some(secs) if secs > 0 => Ok(secs),
        _ => Err(format!("out of range: {text:?}")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum CrlMode {
    Ok,
    /// nextUpdate an hour in the past.
    Stale,
    /// Names the CA and its key identifier, signed with another CA's key.
    BadSignature,
    /// 503.
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum OcspMode {
    Ok,
    /// 503.
    Unavailable,
    /// An unsigned `tryLater` answer.
    TryLater,
    /// Presents the CA's certificate, signed with another CA's key.
    BadSignature,
}

/// One CA of the test PKI.
struct Ca {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
    responder: ResponderKey,
    /// Another CA's key, for answers that must not verify.
    forged_key_pem: String,
    forged_responder: ResponderKey,
    /// Serials (normalised hex) of the certificates it issued.
    issued: BTreeSet<String>,
}

struct Sim {
    /// By file stem (`moica-g2`), as the URLs name them.
    cas: BTreeMap<String, Ca>,
    /// (serial, national ID) of every person's certificate.
    owners: Vec<(String, String)>,
    /// CA stem → serial → revoked at (Unix seconds).
    revoked: Mutex<BTreeMap<String, BTreeMap<String, i64>>>,
    crl_mode: Mutex<CrlMode>,
    ocsp_mode: Mutex<OcspMode>,
    /// The last CRL number served. Starts at the start time, so numbers also grow across restarts
    /// and an IdP that kept an earlier CRL sees each new one as newer.
    crl_number: AtomicU64,
    crl_downloads: AtomicU64,
    ocsp_requests: AtomicU64,
    crl_lifetime: i64,
    ownership_token: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now() -> i64 {
    test_pki::now()
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: String = text.trim().chars().filter(|c| *c != ':').collect();
    let digits = if digits.len() % 2 == 1 { format!("0{digits}") } else { digits };
    if digits.is_empty() {
        return None;
    }
    test_pki::unhex(&digits)
}

fn load(args: &Args) -> Result<Sim, String> {
    let read = |file: &str| {
        let path = args.pki.join(file);
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let manifest: Manifest =
        serde_json::from_str(&read(pki_fixtures::MANIFEST)?).map_err(|e| format!("manifest: {e}"))?;
    let ca_entries: Vec<_> =
        manifest.files.iter().filter(|e| matches!(e.kind, EntryKind::RootCa | EntryKind::IssuingCa)).collect();
    let key_of = |file: &str| -> Result<String, String> {
        let entry = manifest.entry(file).ok_or_else(|| format!("{file} is not in the manifest"))?;
        read(entry.key_file.as_deref().ok_or_else(|| format!("{file} has no key file"))?)
    };
    let mut cas = BTreeMap::new();
    let mut revoked: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for entry in &ca_entries {
        let stem = entry.file.trim_end_matches(".pem").to_owned();
        let cert_pem = read(&entry.file)?;
        let key_pem = key_of(&entry.file)?;
        // The impostor CA copies MOICA's name: its key is the natural forger. For the impostor
        // itself, the root's key serves.
        let forger =
            if entry.file == pki_fixtures::UNTRUSTED_CA { pki_fixtures::ROOT } else { pki_fixtures::UNTRUSTED_CA };
        let forged_key_pem = key_of(forger)?;
        let responder = ResponderKey::from_pem(&cert_pem, &key_pem).map_err(|e| format!("{}: {e}", entry.file))?;
        let forged_responder =
            ResponderKey::from_pem(&cert_pem, &forged_key_pem).map_err(|e| format!("{forger}: {e}"))?;
        let issued_here = manifest.files.iter().filter(|e| e.issuer.as_deref() == Some(entry.file.as_str()));
        let mut issued = BTreeSet::new();
        for cert in issued_here.filter(|e| e.kind != EntryKind::Crl) {
            let Some(serial) = cert.serial.as_deref().and_then(parse_hex) else { continue };
            let serial = test_pki::serial_hex(&serial);
            if cert.expect == Some(Expectation::Revoked) {
                // Revoked before the PKI was written, as far as anyone can tell.
                revoked.entry(stem.clone()).or_default().insert(serial.clone(), manifest.generated_at);
            }
            issued.insert(serial);
        }
        let cert_der = responder.certificate().to_vec();
        cas.insert(stem, Ca { cert_pem, cert_der, key_pem, responder, forged_key_pem, forged_responder, issued });
    }
    if cas.is_empty() {
        return Err("the manifest lists no CA".into());
    }
    let owners = manifest
        .files
        .iter()
        .filter(|e| e.kind == EntryKind::PersonCertificate)
        .filter_map(|e| {
            let serial = test_pki::serial_hex(&parse_hex(e.serial.as_deref()?)?);
            Some((serial, e.national_id.clone()?))
        })
        .collect();
    Ok(Sim {
        cas,
        owners,
        revoked: Mutex::new(revoked),
        crl_mode: Mutex::new(CrlMode::Ok),
        ocsp_mode: Mutex::new(OcspMode::Ok),
        crl_number: AtomicU64::new(u64::try_from(now()).unwrap_or(0)),
        crl_downloads: AtomicU64::new(0),
        ocsp_requests: AtomicU64::new(0),
        crl_lifetime: args.crl_lifetime,
        ownership_token: args.ownership_token.clone().filter(|t| !t.is_empty()),
    })
}

fn error(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message }))
}

fn bad_request(message: &str) -> HttpResponse {
    error(actix_web::http::StatusCode::BAD_REQUEST, message)
}

fn unavailable() -> HttpResponse {
    error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "service unavailable (simulated)")
}

/// `GET /crl/{name}.crl`: a CRL signed now, listing the CA's revoked serials.
async fn crl(sim: web::Data<Sim>, file: web::Path<String>) -> HttpResponse {
    sim.crl_downloads.fetch_add(1, Ordering::SeqCst);
    let Some(ca) = file.strip_suffix(".crl").and_then(|stem| sim.cas.get(stem)) else {
        return error(actix_web::http::StatusCode::NOT_FOUND, "no such CRL");
    };
    let stem = file.trim_end_matches(".crl");
    let now = now();
    let lifetime = sim.crl_lifetime;
    let (key_pem, this_update, next_update) = match *lock(&sim.crl_mode) {
        CrlMode::Unavailable => return unavailable(),
        CrlMode::Ok => (&ca.key_pem, now - 60, now + lifetime),
        CrlMode::Stale => (&ca.key_pem, now - 3600 - lifetime, now - 3600),
        CrlMode::BadSignature => (&ca.forged_key_pem, now - 60, now + lifetime),
    };
    let revoked: Vec<(Vec<u8>, i64)> = lock(&sim.revoked)
        .get(stem)
        .into_iter()
        .flatten()
        .filter_map(|(serial, at)| Some((parse_hex(serial)?, *at)))
        .collect();
    let number = sim.crl_number.fetch_add(1, Ordering::SeqCst) + 1;
    match pki_fixtures::sign_crl(&ca.cert_pem, key_pem, &revoked, this_update, next_update, number) {
        Ok(der) => HttpResponse::Ok().content_type("application/pkix-crl").body(der),
        Err(e) => error(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn ocsp_body(der: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/ocsp-response").body(der)
}

/// Answers one OCSP request for the CA `stem`, per the current mode.
fn ocsp_answer(sim: &Sim, stem: &str, request: &[u8]) -> HttpResponse {
    sim.ocsp_requests.fetch_add(1, Ordering::SeqCst);
    let Some(ca) = sim.cas.get(stem) else { return error(actix_web::http::StatusCode::NOT_FOUND, "no such CA") };
    let key = match *lock(&sim.ocsp_mode) {
        OcspMode::Unavailable => return unavailable(),
        OcspMode::TryLater => return ocsp_body(ocsp_responder::error_response(ErrorStatus::TryLater)),
        OcspMode::Ok => &ca.responder,
        OcspMode::BadSignature => &ca.forged_responder,
    };
    let revoked = lock(&sim.revoked).get(stem).cloned().unwrap_or_default();
    let status_of = |serial: &[u8]| {
        let serial = test_pki::serial_hex(serial);
        match revoked.get(&serial) {
            Some(at) => CertStatus::Revoked { revoked_at: *at },
            None if ca.issued.contains(&serial) => CertStatus::Good,
            None => CertStatus::Unknown,
        }
    };
    match ocsp_responder::respond(request, &ca.cert_der, key, status_of, now(), OCSP_VALIDITY_SECS) {
        Ok(der) => ocsp_body(der),
        Err(ResponderError::MalformedRequest) => {
            ocsp_body(ocsp_responder::error_response(ErrorStatus::MalformedRequest))
        }
        Err(_) => ocsp_body(ocsp_responder::error_response(ErrorStatus::InternalError)),
    }
}

/// `POST /ocsp/{name}` (RFC 6960 appendix A.1).
async fn ocsp_post(sim: web::Data<Sim>, stem: web::Path<String>, body: web::Bytes) -> HttpResponse {
    ocsp_answer(&sim, &stem, &body)
}

/// `GET /ocsp/{name}/{url-encoded base64 request}` (RFC 6960 appendix A.1). Read from the raw
/// path: the base64 may contain `/`, escaped or not, depending on the client.
async fn ocsp_get(sim: web::Data<Sim>, req: HttpRequest) -> HttpResponse {
    let rest = req.uri().path().strip_prefix("/ocsp/").unwrap_or_default();
    let Some((stem, encoded)) = rest.split_once('/') else { return bad_request("no request in the URL") };
    let text = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
    let request = STANDARD.decode(text.trim()).or_else(|_| URL_SAFE.decode(text.trim()));
    match request {
        Ok(request) => ocsp_answer(&sim, stem, &request),
        Err(_) => {
            sim.ocsp_requests.fetch_add(1, Ordering::SeqCst);
            ocsp_body(ocsp_responder::error_response(ErrorStatus::MalformedRequest))
        }
    }
}

#[derive(Deserialize)]
struct OwnershipQuery {
    certificate: String,
    national_id: String,
}

/// `POST /ownership/verify`: whether the certificate belongs to the national ID, per the manifest.
async fn ownership(sim: web::Data<Sim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let presented =
        req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match (&sim.ownership_token, presented) {
        (Some(expected), Some(token)) if expected.as_bytes() == token.trim().as_bytes() => {}
        _ => return error(actix_web::http::StatusCode::UNAUTHORIZED, "unauthorized"),
    }
    let Ok(query) = serde_json::from_slice::<OwnershipQuery>(&body) else { return bad_request("malformed JSON") };
    let Ok(der) = STANDARD.decode(query.certificate.trim()) else { return bad_request("certificate is not base64") };
    let Some(serial_of_cert) = test_pki::cert_serial_hex(&der) else {
        return bad_request("certificate does not parse");
    };
    let national_id = query.national_id.trim();
    let owner = sim.owners.iter().any(|(serial, id)| *serial == serial_of_cert && id.eq_ignore_ascii_case(national_id));
    HttpResponse::Ok().json(json!({ "owner": owner }))
}

/// A control request's JSON; unknown fields and values are errors, so a typo in a test fails
/// loudly instead of leaving the simulator as it was.
fn control_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    serial: String,
    issuer: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetMode<M> {
    mode: M,
}

/// `POST /control/revoke {"serial": "hex", "issuer": "moica-g2.pem"}`: revoked from now on.
async fn control_revoke(sim: web::Data<Sim>, body: web::Bytes) -> HttpResponse {
    let revoke: Revoke = match control_body(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    let stem = revoke.issuer.trim().trim_end_matches(".pem");
    if !sim.cas.contains_key(stem) {
        return bad_request("unknown issuer");
    }
    let Some(serial) = parse_hex(&revoke.serial) else { return bad_request("serial is not hex") };
    lock(&sim.revoked).entry(stem.to_owned()).or_default().entry(test_pki::serial_hex(&serial)).or_insert_with(now);
    HttpResponse::NoContent().finish()
}

/// `POST /control/crl {"mode": "ok" | "stale" | "bad-signature" | "unavailable"}`.
async fn control_crl(sim: web::Data<Sim>, body: web::Bytes) -> HttpResponse {
    match control_body::<SetMode<CrlMode>>(&body) {
        Ok(set) => {
            *lock(&sim.crl_mode) = set.mode;
            HttpResponse::NoContent().finish()
        }
        Err(e) => bad_request(&e),
    }
}

/// `POST /control/ocsp {"mode": "ok" | "unavailable" | "try-later" | "bad-signature"}`.
async fn control_ocsp(sim: web::Data<Sim>, body: web::Bytes) -> HttpResponse {
    match control_body::<SetMode<OcspMode>>(&body) {
        Ok(set) => {
            *lock(&sim.ocsp_mode) = set.mode;
            HttpResponse::NoContent().finish()
        }
        Err(e) => bad_request(&e),
    }
}

/// `GET /control/stats`: requests served so far, so a test can wait for a background refresh.
async fn control_stats(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "crl_downloads": sim.crl_downloads.load(Ordering::SeqCst),
        "ocsp_requests": sim.ocsp_requests.load(Ordering::SeqCst),
    }))
}

fn describe(dir: &Path, sim: &Sim) -> String {
    format!("{} CAs from {} ({})", sim.cas.len(), dir.display(), sim.cas.keys().cloned().collect::<Vec<_>>().join(", "))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let sim = match load(&args) {
        Ok(s) => web::Data::new(s),
        Err(e) => {
            eprintln!("ca-simulator: {e}");
            std::process::exit(2);
        }
    };
    let listener = card_simulator::listener_or_bind(&args.bind)?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new({
        let sim = sim.clone();
        move || {
            App::new()
                .app_data(sim.clone())
                .route("/crl/{file}", web::get().to(crl))
                .route("/ocsp/{name}", web::post().to(ocsp_post))
                .route("/ocsp/{name}/{request:.*}", web::get().to(ocsp_get))
                .route("/ownership/verify", web::post().to(ownership))
                .route("/control/revoke", web::post().to(control_revoke))
                .route("/control/crl", web::post().to(control_crl))
                .route("/control/ocsp", web::post().to(control_ocsp))
                .route("/control/stats", web::get().to(control_stats))
        }
    })
    .workers(1)
    .listen(listener)?;
    eprintln!("ca-simulator: {} on http://{}", describe(&args.pki, &sim), addr);
    server.run().await
}
