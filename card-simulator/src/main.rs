//! `card-simulator`: plays the local card component that government pages talk to (docs/cards-and-pki.md:
//! the HiPKI Local Sign Server on `localhost:61161`), with a software card from `idp dev pki`.
//! It speaks the same API — `/pkcs11info` (with the component's `serverVersion`), the same answer
//! as pixels of `/p11Image.bmp` (how pages read it without CORS), `/popupForm` with
//! `postMessage`, `/sign` — checks a PIN and locks the card after three wrong ones, so demos and
//! browser tests run the real page flow end to end. `--no-card` and `--no-reader` play a reader
//! without a card and a computer without a reader, for the environment check. Never for
//! production: the "card" is a key file.
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
    #[arg(long, required_unless_present_any = ["no_card", "no_reader"])]
    card: Option<PathBuf>,
    /// The card's PIN (6–8 digits, as the seeds ask).
    #[arg(long, default_value = "123456")]
    pin: String,
    /// The version the component reports (`serverVersion`).
    #[arg(long, default_value = "1.3.4.103327")]
    server_version: String,
    /// A reader with no card in it: `/pkcs11info` lists the slot without a token, and signing fails.
    #[arg(long, conflicts_with = "card")]
    no_card: bool,
    /// No reader at all: `/pkcs11info` lists no slot.
    #[arg(long, conflicts_with = "card")]
    no_reader: bool,
}

/// What the simulated computer has: a reader with a card, an empty reader, or no reader.
struct Device {
    card: Option<Card>,
    reader: bool,
    server_version: String,
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
const CERT_NOT_FOUND: u32 = 0x7610_000C;
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

/// The component's reader and card answer, with its version, as `/pkcs11info` gives it.
fn info(device: &Device) -> serde_json::Value {
    let slots = match (&device.card, device.reader) {
        (_, false) => json!([]),
        (None, true) => json!([{ "slotDescription": "Simulated card reader", "token": null }]),
        (Some(card), true) => json!([{ "slotDescription": "Simulated card reader", "token": {
            "serialNumber": "TTAJ000000000321",
            "certs": [{ "certb64": STANDARD.encode(&card.cert) }]
        }}]),
    };
    json!({
        "func": "pkcs11info", "ret_code": 0, "last_error": 0,
        "serverVersion": device.server_version, "slots": slots,
    })
}

async fn pkcs11info(device: web::Data<Device>) -> HttpResponse {
    HttpResponse::Ok().json(info(&device))
}

/// `/p11Image.bmp`: the `/pkcs11info` answer (without certificates) carried in the pixels of a
/// one-row 24-bit bitmap, three bytes a pixel, ended by a pixel whose first byte is 0. This is
/// how pages on other origins read the component: an image may be loaded cross-origin and, with
/// `Access-Control-Allow-Origin`, drawn on a canvas and read back, where a `fetch` would need
/// CORS on the JSON answer that the component does not give.
async fn p11_image(device: web::Data<Device>) -> HttpResponse {
    let mut answer = info(&device);
    if let Some(slots) = answer["slots"].as_array_mut() {
        for slot in slots {
            if let Some(token) = slot["token"].as_object_mut() {
                token.remove("certs");
            }
        }
    }
    HttpResponse::Ok()
        .content_type("image/bmp")
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .insert_header(("Cache-Control", "no-store"))
        .body(bitmap(answer.to_string().as_bytes()))
}

/// A 24-bit bitmap one pixel high whose pixel bytes are `data` (padded with spaces to whole
/// pixels, so the reader's JSON stays valid) followed by one black pixel.
fn bitmap(data: &[u8]) -> Vec<u8> {
    let mut pixels = data.to_vec();
    while pixels.len() % 3 != 0 {
        pixels.push(b' ');
    }
    pixels.extend_from_slice(&[0, 0, 0]);
    let width = (pixels.len() / 3) as u32;
    while pixels.len() % 4 != 0 {
        pixels.push(0);
    }
    let size = 54 + pixels.len() as u32;
    let mut bmp = Vec::with_capacity(size as usize);
    bmp.extend_from_slice(b"BM");
    bmp.extend_from_slice(&size.to_le_bytes());
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&width.to_le_bytes());
    bmp.extend_from_slice(&1i32.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&0u32.to_le_bytes());
    bmp.extend_from_slice(&(pixels.len() as u32).to_le_bytes());
    bmp.extend_from_slice(&2835i32.to_le_bytes());
    bmp.extend_from_slice(&2835i32.to_le_bytes());
    bmp.extend_from_slice(&[0; 8]);
    bmp.extend_from_slice(&pixels);
    bmp
}

#[derive(Deserialize)]
struct SignForm {
    #[serde(rename = "tbsPackage")]
    tbs_package: String,
}

async fn sign_endpoint(device: web::Data<Device>, form: web::Form<SignForm>) -> HttpResponse {
    match &device.card {
        Some(card) => HttpResponse::Ok().json(sign(card, &form.tbs_package)),
        None => HttpResponse::Ok().json(result(LOGIN_FAILED, CERT_NOT_FOUND)),
    }
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

fn load(path: &std::path::Path, args: &Args) -> Result<Card, String> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let cert = rustls_pki_types::CertificateDer::from_pem_slice(&read(path)?).map_err(|e| format!("card: {e}"))?;
    let key_path = PathBuf::from(path.to_string_lossy().replace(".pem", ".key.pem"));
    let key =
        rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&read(&key_path)?).map_err(|e| format!("key: {e}"))?;
    Ok(Card { cert: cert.to_vec(), key: key.secret_pkcs8_der().to_vec(), pin: args.pin.clone(), wrong: Mutex::new(0) })
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let card = match args.card.as_deref().map(|p| load(p, &args)).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("card-simulator: {e}");
            std::process::exit(2);
        }
    };
    let listener = card_simulator::listener_or_bind(&args.bind)?;
    let what = match (&args.card, args.no_reader) {
        (Some(p), _) => format!("card {}", p.display()),
        (None, false) => "a reader without a card".into(),
        (None, true) => "no reader".into(),
    };
    eprintln!("card-simulator: {what} on http://{}", listener.local_addr()?);
    let device = web::Data::new(Device { card, reader: !args.no_reader, server_version: args.server_version.clone() });
    HttpServer::new(move || {
        App::new()
            .app_data(device.clone())
            .route("/pkcs11info", web::get().to(pkcs11info))
            .route("/p11Image.bmp", web::get().to(p11_image))
            .route("/popupForm", web::get().to(popup))
            .route("/sign", web::post().to(sign_endpoint))
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await
}

#[cfg(test)]
mod tests {
    use super::bitmap;

    /// Reads the pixels back as a page does: three bytes a pixel until a pixel whose first byte is 0.
    fn read_back(bmp: &[u8]) -> Vec<u8> {
        let width = u32::from_le_bytes([bmp[18], bmp[19], bmp[20], bmp[21]]) as usize;
        let mut out = Vec::new();
        for px in bmp[54..54 + 3 * width].chunks(3) {
            if px[0] == 0 {
                break;
            }
            out.extend_from_slice(px);
        }
        out
    }

    #[test]
    fn the_bitmap_carries_the_answer_and_ends_with_a_black_pixel() {
        for text in ["{}", "{\"a\":1}", "{\"serverVersion\":\"1.3.4.103327\"}"] {
            let bmp = bitmap(text.as_bytes());
            assert_eq!(&bmp[..2], b"BM");
            assert_eq!(u32::from_le_bytes([bmp[2], bmp[3], bmp[4], bmp[5]]) as usize, bmp.len());
            let got = String::from_utf8(read_back(&bmp)).unwrap();
            assert_eq!(got.trim_end(), text, "padded with spaces only");
            assert_eq!((bmp.len() - 54) % 4, 0, "rows are padded to four bytes");
        }
    }
}
