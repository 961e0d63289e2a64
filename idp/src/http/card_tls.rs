//! Card sign-in over a TLS client certificate.
//!
//! A separate TLS listener (`card_login.bind`) asks for a client certificate — the main site
//! never does, so no one else sees a certificate prompt. Its verifier offers the configured
//! anchors' names, accepts any chain at the handshake (so a refused card gets the seeds' page, not
//! a TLS alert) but checks the handshake signature, i.e. possession of the card's key. Session
//! resumption is off: every card login is a fresh handshake. `GET /card/tls-login` validates the
//! chain like the signed-challenge channel and hands the result to the main site with a
//! single-use, 60-second token (`GET /card/handoff`), so the listener may have its own host name.
//!
//! Behind a TLS-terminating proxy, `GET /card/proxy-login` on the main site takes the certificate
//! from the one header `certificates.proxy_header` names (nginx's escaped PEM
//! `X-SSL-Client-Cert`, or RFC 9440 `Client-Cert` with `Client-Cert-Chain`), only from
//! `certificates.trusted_proxies`. Any other certificate header on such a request is refused:
//! it can only be the client's, passed through by a proxy that does not clear it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Extensions, Server};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::NoServerSessionStorage;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::{Deserialize, Serialize};

use super::card::{card_error_key, card_error_outcome, continue_with_card, validate_card};
use super::errors::Failure;
use super::forwarded::{CertHeader, TrustedProxies};
use super::{audit_request, client_address, lang_of};
use crate::accounts::binding::PresentedCard;
use crate::authn::card::validate::{CardKind, TrustSettings};
use crate::config::Config;
use crate::crypto::{random_token, sha256_b64};
use crate::error::InfraError;
use crate::oidc::params::Params;
use crate::oidc::transaction;
use crate::state::AppState;
use crate::store::ephemeral::Key;
use crate::templates::Lang;

/// A handoff token is usable once, within this time.
const HANDOFF_TTL: Duration = Duration::from_secs(60);

/// The client certificates of a TLS connection (end entity first), put in the connection data.
#[derive(Clone)]
struct PeerCertificates(Vec<CertificateDer<'static>>);

/// A validated card on its way from the card listener to the main site.
#[derive(Debug, Serialize, Deserialize)]
struct Handoff {
    card: PresentedCard,
    kind: CardKind,
    tx: Option<String>,
    /// Hash of the CSRF cookie of the browser that showed the login page: the handoff only
    /// works in that browser (no login CSRF with someone else's card).
    bind: String,
}

/// Asks for a client certificate naming the anchors, accepts any chain (validation comes after
/// the handshake, with the seeds' messages), and checks the handshake signature.
#[derive(Debug)]
struct AnyCardVerifier {
    subjects: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyCardVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn infra(what: &str, e: impl std::fmt::Display) -> InfraError {
    InfraError::Internal(format!("card_login: {what}: {e}"))
}

/// The server certificate files: configured, or a self-signed pair generated into
/// `<data_dir>/card-tls/` on first start.
fn server_files(config: &Config) -> Result<(PathBuf, PathBuf), InfraError> {
    let c = &config.card_login;
    if !c.cert_file.as_os_str().is_empty() {
        return Ok((c.cert_file.clone(), c.key_file.clone()));
    }
    let dir = config.data_dir.join("card-tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).map_err(|e| infra(&dir.display().to_string(), e))?;
    let mut names = vec!["localhost".to_string()];
    for base in [c.public_url(), format!("https://{}", c.bind)] {
        if let Some(host) = url::Url::parse(&base).ok().and_then(|u| u.host_str().map(str::to_string)) {
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            if !names.contains(&host) {
                names.push(host);
            }
        }
    }
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| infra("self-signed certificate", e))?;
    let _ = std::fs::remove_file(&key);
    crate::crypto::write_private(&key, generated.signing_key.serialize_pem().as_bytes())
        .map_err(|e| infra(&key.display().to_string(), e))?;
    std::fs::write(&cert, generated.cert.pem()).map_err(|e| infra(&cert.display().to_string(), e))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate for the card listener");
    Ok((cert, key))
}

/// The listener's TLS configuration.
fn tls_config(config: &Config) -> Result<ServerConfig, InfraError> {
    let c = &config.certificates;
    fn refs(v: &[PathBuf]) -> Vec<&Path> {
        v.iter().map(|p| p.as_path()).collect()
    }
    let settings = TrustSettings::load_files(
        &refs(&c.citizen_trust_anchors),
        &refs(&c.agency_trust_anchors),
        &refs(&[]),
        &refs(&[]),
    )
    .map_err(|e| infra("anchors", e))?;
    let mut subjects = Vec::new();
    for der in settings.citizen_anchors.iter().chain(&settings.agency_anchors) {
        let anchor = webpki::anchor_from_trusted_cert(der).map_err(|e| infra("anchor", format!("{e:?}")))?;
        let name = DistinguishedName::in_sequence(anchor.subject.as_ref());
        // MOICA generations share one name: offer it once.
        if !subjects.iter().any(|s: &DistinguishedName| s.as_ref() == name.as_ref()) {
            subjects.push(name);
        }
    }
    let (cert_file, key_file) = server_files(config)?;
    let chain = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| infra(&cert_file.display().to_string(), e))?;
    let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| infra(&key_file.display().to_string(), e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCardVerifier { subjects, provider: provider.clone() });
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| infra("TLS", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| infra("server certificate", e))?;
    // No resumption: a removed card must not log in again from a cached session.
    tls.session_storage = Arc::new(NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    Ok(tls)
}

fn peer_certificates(conn: &dyn std::any::Any, ext: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(tls) = conn.downcast_ref::<Tls>() {
        let (_, session) = tls.get_ref();
        if let Some(certs) = session.peer_certificates() {
            ext.insert(PeerCertificates(certs.iter().map(|c| c.clone().into_owned()).collect()));
        }
    }
}

/// Starts the card listener when `card_login.bind` is set and card sign-in is configured, on
/// `inherited` (a socket passed by socket activation) when there is one, else binding `bind`.
pub fn serve(state: AppState, inherited: Option<std::net::TcpListener>) -> Result<Option<Server>, InfraError> {
    if !state.config.card_login.enabled() || state.card.is_none() {
        if inherited.is_some() {
            // A socket unit that opens a port nobody serves is a mistake to say, not to hide.
            return Err(infra("socket activation", "a card-tls socket was passed, but card login is not configured"));
        }
        return Ok(None);
    }
    let tls = tls_config(&state.config)?;
    let bind = state.config.card_login.bind.clone();
    let listener = match inherited {
        Some(l) => {
            let at = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            if at != bind && state.config.card_login.public_url.is_empty() {
                // The default public URL is made of `bind`: browsers would be sent elsewhere.
                tracing::warn!(%bind, passed = %at, "the passed card-tls socket is not card_login.bind; set card_login.public_url");
            }
            l
        }
        None => std::net::TcpListener::bind(&bind).map_err(|e| infra(&format!("bind {bind}"), e))?,
    };
    tracing::info!(%bind, public_url = %state.config.card_login.public_url(), "card listener");
    let shutdown_timeout = state.config.http.shutdown_secs();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            // As on the main listener: a refusal's page is rendered as the response leaves, in
            // the language the handler chose (the seeds' words for a card that is refused).
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service;
                let fut = srv.call(req);
                async move { Ok(super::error_pages::finish(fut.await?).await) }
            })
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("X-Frame-Options", "DENY"))
                    .add(("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "no-referrer"))
                    .add(("Cache-Control", "no-store")),
            )
            .service(web::resource("/card/tls-login").route(web::get().to(tls_login)))
            .default_service(web::to(|| async { HttpResponse::NotFound().finish() }))
    })
    .workers(2)
    // Stopped with the main listener by `app::stop_on_signal`, after the drain.
    .disable_signals()
    .shutdown_timeout(shutdown_timeout)
    .on_connect(peer_certificates)
    .listen_rustls_0_23(listener, tls)
    .map_err(|e| infra(&format!("listen {bind}"), e))?
    .run();
    Ok(Some(server))
}

/// The transaction named by `tx` in the query, and the page language.
async fn transaction(
    state: &AppState,
    req: &HttpRequest,
) -> Result<(Option<String>, Option<crate::oidc::authorize::AuthRequest>, Lang), Failure> {
    let q = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let tx = q.get("tx").ok().flatten().filter(|t| !t.is_empty()).map(str::to_string);
    let auth = transaction::load(state, tx.as_deref()).await?;
    let lang = lang_of(req, auth.as_ref().and_then(|a| a.ui_locales.as_deref()));
    Ok((tx, auth, lang))
}

/// Validates a presented chain (end entity first); refusals are the seeds' pages and audited.
async fn validate_chain(
    state: &AppState,
    req: &HttpRequest,
    chain: &[CertificateDer<'_>],
) -> Result<(PresentedCard, CardKind), Failure> {
    let Some(trust) = state.card.clone() else {
        return Err(Failure::page(StatusCode::NOT_FOUND, "err_card_disabled", None));
    };
    let Some((end_entity, intermediates)) = chain.split_first() else {
        audit_request(state, "login.card", "no_certificate", None, client_address(req)).await;
        return Err(Failure::page(StatusCode::UNAUTHORIZED, "err_card_no_certificate", None));
    };
    match validate_card(state, &trust, end_entity.as_ref(), intermediates).await? {
        Ok(card) => Ok((PresentedCard::from_validated(&card, end_entity.as_ref()), card.kind)),
        Err(e) => {
            tracing::info!(reason = %e, "card refused");
            audit_request(state, "login.card", card_error_outcome(&e), None, client_address(req)).await;
            Err(Failure::page(StatusCode::FORBIDDEN, card_error_key(&e), None))
        }
    }
}

/// `GET /card/tls-login` (card listener): validates the TLS client certificate and hands the
/// result to the main site.
pub async fn tls_login(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let (tx, _, lang) = transaction(&state, &req).await?;
    let q = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let bind = q.get("bind").ok().flatten().unwrap_or("").to_string();
    if bind.is_empty() || bind.len() > 64 {
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_tx", None));
    }
    let chain = req.conn_data::<PeerCertificates>().map(|p| p.0.clone()).unwrap_or_default();
    let (card, kind) = validate_chain(&state, &req, &chain).await?;
    let token = random_token(32);
    state.eph.put_json(&Key::card_handoff(&token), &Handoff { card, kind, tx, bind }, HANDOFF_TTL).await?;
    let location = format!("{}/card/handoff?token={token}&ui_locales={}", state.config.base(), lang.tag());
    Ok(HttpResponse::SeeOther().insert_header(("Location", location)).finish())
}

/// `GET /card/handoff` (main site): takes the handoff once and continues like the
/// signed-challenge channel.
pub async fn handoff(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let q = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
    let token = q.get("token").ok().flatten().unwrap_or("").to_string();
    let taken = if token.is_empty() || token.len() > 64 {
        None
    } else {
        state.eph.take_json::<Handoff>(&Key::card_handoff(&token)).await?
    };
    let Some(h) = taken else {
        audit_request(&state, "login.card", "stale_handoff", None, client_address(&req)).await;
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_card_handoff", None));
    };
    let (browser, _) = super::csrf::token(&state, &req);
    if !crate::crypto::constant_time_eq(sha256_b64(browser.as_bytes()).as_bytes(), h.bind.as_bytes()) {
        audit_request(&state, "login.card", "handoff_other_browser", None, client_address(&req)).await;
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_card_handoff", None));
    }
    let auth = transaction::load(&state, h.tx.as_deref()).await?;
    let lang = lang_of(&req, auth.as_ref().and_then(|a| a.ui_locales.as_deref()));
    continue_with_card(&state, &req, lang, h.card, h.kind, auth, h.tx.as_deref()).await
}

/// Decodes `%XX` escapes (nginx's `$ssl_client_escaped_cert`); `+` stays a `+`.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// One RFC 8941 byte sequence (`:base64:`).
fn sf_binary(item: &str) -> Option<CertificateDer<'static>> {
    let inner = item.trim().strip_prefix(':')?.strip_suffix(':')?;
    STANDARD.decode(inner).ok().map(CertificateDer::from)
}

/// The chain forwarded in the configured header (end entity first); `None` when it is present
/// but malformed. Other headers are never read.
fn forwarded_chain(req: &HttpRequest, header: CertHeader) -> Option<Vec<CertificateDer<'static>>> {
    let value = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    match header {
        CertHeader::ClientCert => {
            let Some(v) = value("client-cert").filter(|v| !v.is_empty()) else { return Some(Vec::new()) };
            let mut chain = vec![sf_binary(v)?];
            for value in req.headers().get_all("client-cert-chain") {
                for item in value.to_str().ok()?.split(',').filter(|i| !i.trim().is_empty()) {
                    chain.push(sf_binary(item)?);
                }
            }
            Some(chain)
        }
        CertHeader::XSslClientCert => {
            let Some(v) = value("x-ssl-client-cert").filter(|v| !v.is_empty()) else { return Some(Vec::new()) };
            // nginx's `$ssl_client_escaped_cert`; the older `$ssl_client_cert` puts tabs for new lines.
            let pem = percent_decode(v)?.iter().map(|&b| if b == b'\t' { b'\n' } else { b }).collect::<Vec<u8>>();
            let chain = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().ok()?;
            (!chain.is_empty()).then_some(chain)
        }
        CertHeader::None => Some(Vec::new()),
    }
}

/// `GET /card/proxy-login` (main site): a client certificate forwarded by a trusted
/// TLS-terminating proxy, validated exactly like a direct one.
pub async fn proxy_login(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let (tx, auth, lang) = transaction(&state, &req).await?;
    let certs = &state.config.certificates;
    let proxies = TrustedProxies::parse(&certs.trusted_proxies);
    let trusted = req.peer_addr().is_some_and(|a| proxies.contains(a.ip()));
    if !trusted {
        audit_request(&state, "login.card", "untrusted_proxy", None, client_address(&req)).await;
        return Err(Failure::page(StatusCode::FORBIDDEN, "err_card_untrusted_proxy", None));
    }
    let header = match CertHeader::parse(&certs.proxy_header) {
        Some(CertHeader::None) | None => {
            audit_request(&state, "login.card", "proxy_channel_off", None, client_address(&req)).await;
            return Err(Failure::page(StatusCode::FORBIDDEN, "err_card_untrusted_proxy", None));
        }
        Some(h) => h,
    };
    if let Some(other) = header.foreign_header(&req) {
        tracing::warn!(header = other, "certificate header the proxy does not set; refused");
        audit_request(&state, "login.card", "foreign_certificate_header", None, client_address(&req)).await;
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_card_proxy_header", None));
    }
    let Some(chain) = forwarded_chain(&req, header) else {
        audit_request(&state, "login.card", "malformed_certificate", None, client_address(&req)).await;
        return Err(Failure::page(StatusCode::BAD_REQUEST, "err_card_invalid", None));
    };
    let (card, kind) = validate_chain(&state, &req, &chain).await?;
    continue_with_card(&state, &req, lang, card, kind, auth, tx.as_deref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_escapes_decode() {
        assert_eq!(percent_decode("a%0Ab+c%2F").as_deref(), Some(&b"a\nb+c/"[..]));
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("cut%0"), None);
    }

    #[test]
    fn sf_binary_items_decode() {
        assert_eq!(sf_binary(" :AQID: ").map(|c| c.as_ref().to_vec()), Some(vec![1, 2, 3]));
        assert!(sf_binary("AQID").is_none());
    }
}
