//! `health-simulator`: plays both sides of the health-insurance card for demos and tests —
//! NHI's local card component (`GET /token`: a card token for the inserted card) and NHI's
//! verification service (`POST /verify`: whose card a token belongs to). The token is MACed with
//! a key only this process knows, so a token the page alters is refused, as the real service
//! refuses anything its security module did not sign. Never for production.
#![forbid(unsafe_code)]

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Parser;
use ring::hmac;
use serde::Deserialize;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Simulated NHI health-card component and verification service")]
struct Args {
    /// Address to listen on; port 0 picks a free one. A socket passed by socket activation
    /// (`LISTEN_FDS`) is used instead. Standard output gets one `listening on ADDR` line.
    #[arg(long, default_value = "127.0.0.1:59001")]
    bind: String,
    /// The national ID on the simulated card.
    #[arg(long)]
    national_id: String,
    /// The simulated card's number.
    #[arg(long, default_value = "000012345678")]
    card_number: String,
}

struct Card {
    national_id: String,
    card_number: String,
    key: hmac::Key,
}

fn mac(key: &hmac::Key, card_number: &str, national_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac::sign(key, format!("{card_number}\u{0}{national_id}").as_bytes()))
}

/// The component: a token for the inserted card (what NHI's cloud module would sign).
async fn token(card: web::Data<Card>) -> HttpResponse {
    let body = json!({ "card_number": card.card_number, "national_id": card.national_id,
                       "mac": mac(&card.key, &card.card_number, &card.national_id) });
    HttpResponse::Ok()
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .json(json!({ "card_token": URL_SAFE_NO_PAD.encode(body.to_string()) }))
}

#[derive(Deserialize)]
struct VerifyRequest {
    card_token: String,
}

#[derive(Deserialize)]
struct Token {
    card_number: String,
    national_id: String,
    mac: String,
}

/// The verification service: checks the token's MAC and answers whose card it is.
async fn verify(card: web::Data<Card>, body: web::Json<VerifyRequest>) -> HttpResponse {
    let parsed = URL_SAFE_NO_PAD
        .decode(body.card_token.as_bytes())
        .ok()
        .and_then(|b| serde_json::from_slice::<Token>(&b).ok())
        .filter(|t| {
            let tag = URL_SAFE_NO_PAD.decode(t.mac.as_bytes()).unwrap_or_default();
            hmac::verify(&card.key, format!("{}\u{0}{}", t.card_number, t.national_id).as_bytes(), &tag).is_ok()
        });
    match parsed {
        Some(t) => HttpResponse::Ok().json(json!({ "national_id": t.national_id, "card_number": t.card_number })),
        None => HttpResponse::Forbidden().json(json!({ "error": "invalid card token" })),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let rng = ring::rand::SystemRandom::new();
    let key = match hmac::Key::generate(hmac::HMAC_SHA256, &rng) {
        Ok(k) => k,
        Err(_) => {
            eprintln!("health-simulator: no randomness for the key");
            std::process::exit(2);
        }
    };
    let card =
        web::Data::new(Card { national_id: args.national_id.clone(), card_number: args.card_number.clone(), key });
    let listener = card_simulator::listener_or_bind(&args.bind)?;
    eprintln!("health-simulator: card {} on http://{}", args.card_number, listener.local_addr()?);
    HttpServer::new(move || {
        App::new().app_data(card.clone()).route("/token", web::get().to(token)).route("/verify", web::post().to(verify))
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await
}
