//! A small web app that signs people in through the IdP with OpenID Connect.
//!
//! It uses only the public `openidconnect` crate, the way a team outside the
//! IdP project would, so it doubles as an end-to-end check that the IdP
//! speaks standard OpenID Connect: discovery, authorization code flow with
//! PKCE, ID token verification, userinfo and RP-initiated logout.
//!
//! Configuration comes from environment variables; see `README.md`.

#![forbid(unsafe_code)]

mod config;
mod dpop;
mod oidc;
mod pages;
mod routes;
mod store;

use std::process::ExitCode;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpServer};

use crate::config::Config;
use crate::oidc::Oidc;
use crate::routes::AppState;

#[actix_web::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole cause chain on one line, so the root
            // cause (e.g. "connection refused") is not hidden.
            eprintln!("relying-party-example: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Arc::new(Config::from_env()?);
    eprintln!(
        "relying-party-example: issuer {}, client_id {} ({}), redirect URI {}",
        config.issuer.as_str(),
        config.client_id.as_str(),
        if config.client_secret.is_some() { "confidential client" } else { "public client, PKCE only" },
        config.redirect_url()?,
    );

    // A socket passed by socket activation (systemd's LISTEN_FDS, fd 3) is used as it is, so a
    // starter that opened it knows the address before the app runs; otherwise RP_BIND is bound.
    let listener = match listenfd::ListenFd::from_env().take_tcp_listener(0)? {
        Some(listener) => listener,
        None => std::net::TcpListener::bind(&config.bind)
            .map_err(|err| anyhow::anyhow!("cannot listen on {} (RP_BIND): {err}", config.bind))?,
    };
    let addr = listener.local_addr()?;

    let oidc = Oidc::discover(config.clone()).await.map_err(|err| {
        err.context(format!(
            "cannot use the IdP at {}: is it running, and is RP_ISSUER exactly its issuer URL?",
            config.issuer.as_str()
        ))
    })?;
    eprintln!("relying-party-example: discovery of {} succeeded", oidc.issuer());

    let app = web::Data::new(AppState::new(config.clone(), oidc));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app.clone())
            // Pages show personal data and carry one-time codes in their URLs:
            // never cache them, never leak the URL in a Referer header, and
            // allow nothing beyond the page's own inline style.
            .wrap(
                DefaultHeaders::new()
                    .add((header::CACHE_CONTROL, "no-store"))
                    .add((header::REFERRER_POLICY, "no-referrer"))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
                         form-action 'none'; base-uri 'none'",
                    )),
            )
            .configure(routes::configure)
    })
    .listen(listener)?;

    // On standard output, for whoever started the app (with port 0) to read the address back.
    println!("listening on {addr}");
    eprintln!("relying-party-example: listening on {addr}, open {} in a browser", config.base_url);
    server.run().await?;
    Ok(())
}
