//! `card-simulator`: plays the local card component that government pages talk to (docs/cards-and-pki.md:
//! the HiPKI Local Sign Server on `localhost:61161`), with a software card from `idp dev pki`.
//! It speaks the same API — `/pkcs11info`, `/popupForm` with `postMessage`, `/sign` — checks a
//! PIN and locks the card after three wrong ones, so demos and browser tests run the real page
//! flow end to end. Never for production: the "card" is a key file.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Mutex;

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Parser;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Simulated local card component (HiPKI Local Sign Server API) for demos and tests")]
struct Args {
    /// Address to listen on (the real component listens on localhost:61161).
    /// Port 0 picks a free one; a socket passed by socket activation (`LISTEN_FDS`) is used
    /// instead. Standard output gets one `listening on ADDR` line.
    #[arg(long, default_value = "127.0.0.1:61161")]
    bind: String,
    /// The certificate (PEM) of the software card; its key is the `.key.pem` beside it.
    #[arg(long)]
    card: PathBuf,
    /// The card's PIN (6–8 digits, as the seeds ask).
    #[arg(long, default_value = "123456")]
    pin: String,
}

/// The software card and its PIN counter.
struct Card {
    cert: Vec<u8>,
    key: Vec<u8>,
    pin: String,
    wrong: Mutex<u32>,
}

/// the component's return codes (docs/cards-and-pki.md).
const LOGIN_FAILED: u32 = 0x7610_0006;
const WRONG_PIN: u32 = 0xA0;
const BAD_PIN_LENGTH: u32 = 0xA2;
const LOCKED: u32 = 0xA4;

fn result(ret_code: u32, last_error: u32) -> serde_json::Value {
    json!({ "func": "sign", "ret_code": ret_code, "last_error": last_error })
}

#[derive(Deserialize)]
struct TbsPackage {
    tbs: String,
    #[serde(rename = "tbsEncoding", default)]
    tbs_encoding: String,
    #[serde(default)]
    pin: String,
    #[serde(rename = "signatureType", default)]
    signature_type: String,
}

/// Signs a tbsPackage the way the component does: PIN first, then a PKCS#7 signature.
fn sign(card: &Card, package: &str) -> serde_json::Value {
    let Ok(p) = serde_json::from_str::<TbsPackage>(package) else { return result(0x7610_0001, 0) };
    let mut wrong = card.wrong.lock().unwrap_or_else(|e| e.into_inner());
    if *wrong >= 3 {
        return result(LOGIN_FAILED, LOCKED);
    }
    if !(6..=8).contains(&p.pin.len()) || !p.pin.bytes().all(|b| b.is_ascii_digit()) {
        return result(LOGIN_FAILED, BAD_PIN_LENGTH);
    }
    if p.pin != card.pin {
        *wrong += 1;
        return result(LOGIN_FAILED, if *wrong >= 3 { LOCKED } else { WRONG_PIN });
    }
    *wrong = 0;
    let content = if p.tbs_encoding.eq_ignore_ascii_case("base64") {
        match STANDARD.decode(&p.tbs) {
            Ok(b) => b,
            Err(_) => return result(0x7610_0001, 0),
        }
    } else {
        p.tbs.into_bytes()
    };
    if !p.signature_type.is_empty() && p.signature_type != "PKCS7" {
        return result(0x7610_0001, 0);
    }
    match test_pki::pkcs7::sign_pkcs7(&card.cert, &card.key, &content) {
        Ok(cms) => json!({
            "func": "sign", "ret_code": 0, "last_error": 0,
            "signature": STANDARD.encode(cms), "certb64": STANDARD.encode(&card.cert),
        }),
        Err(_) => result(0x7610_0001, 0),
    }
}

async fn pkcs11info(card: web::Data<Card>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "func": "pkcs11info", "ret_code": 0, "last_error": 0,
        "slots": [{ "slotDescription": "Simulated card reader", "token": {
            "serialNumber": "TTAJ000000000321",
            "certs": [{ "certb64": STANDARD.encode(&card.cert) }]
        }}]
    }))
}

#[derive(Deserialize)]
struct SignForm {
    #[serde(rename = "tbsPackage")]
    tbs_package: String,
}

async fn sign_endpoint(card: web::Data<Card>, form: web::Form<SignForm>) -> HttpResponse {
    HttpResponse::Ok().json(sign(&card, &form.tbs_package))
}

/// The popup: tells the opener it is ready, receives the tbsPackage, signs it through `/sign`
/// on its own origin, and answers the opener with the result.
const POPUP: &str = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Card component (simulated)</title></head>
<body><p>模擬憑證元件 / Simulated card component</p><script>
window.addEventListener("message", function (event) {
  var data = typeof event.data === "string" ? event.data : JSON.stringify(event.data);
  fetch("/sign", { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" },
                   body: "tbsPackage=" + encodeURIComponent(data) })
    .then(function (r) { return r.json(); })
    .then(function (result) { window.opener.postMessage(JSON.stringify(result), event.origin); });
});
if (window.opener) { window.opener.postMessage(JSON.stringify({ func: "getTbs" }), "*"); }
</script></body></html>"#;

async fn popup() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(POPUP)
}

fn load(args: &Args) -> Result<Card, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let cert =
        rustls_pki_types::CertificateDer::from_pem_slice(&read(&args.card)?).map_err(|e| format!("card: {e}"))?;
    let key_path = PathBuf::from(args.card.to_string_lossy().replace(".pem", ".key.pem"));
    let key =
        rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&read(&key_path)?).map_err(|e| format!("key: {e}"))?;
    Ok(Card { cert: cert.to_vec(), key: key.secret_pkcs8_der().to_vec(), pin: args.pin.clone(), wrong: Mutex::new(0) })
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let card = match load(&args) {
        Ok(c) => web::Data::new(c),
        Err(e) => {
            eprintln!("card-simulator: {e}");
            std::process::exit(2);
        }
    };
    let listener = card_simulator::listener_or_bind(&args.bind)?;
    eprintln!("card-simulator: card {} on http://{}", args.card.display(), listener.local_addr()?);
    HttpServer::new(move || {
        App::new()
            .app_data(card.clone())
            .route("/pkcs11info", web::get().to(pkcs11info))
            .route("/popupForm", web::get().to(popup))
            .route("/sign", web::post().to(sign_endpoint))
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await
}
