//! Builds the HTTP server from the state: routes, security headers, request logging, limits;
//! and stops it gracefully (see [`stop_on_signal`]).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpResponse, HttpServer};

use crate::crypto::random_token;
use crate::http;
use crate::http::form::MAX_BODY;
use crate::state::AppState;

/// Starts serving on an already-bound listener (so tests can bind port 0 first).
pub fn serve(state: AppState, listener: std::net::TcpListener) -> std::io::Result<Server> {
    let workers = match state.config.http.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        n => n,
    };
    let shutdown_timeout = state.config.http.shutdown_secs();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        let draining = data.draining.clone();
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            // Innermost: error pages are rendered before the security headers are added.
            .wrap_fn(|req, srv| {
                let fut = srv.call(req);
                async move { Ok(http::error_pages::finish(fut.await?).await) }
            })
            .wrap(
                DefaultHeaders::new()
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    .add((
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
                    ))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::REFERRER_POLICY, "no-referrer")),
            )
            .wrap_fn(move |req, srv| {
                // One structured line per request. The path only: query strings can carry
                // codes, hints and tokens, and bodies are never logged.
                let started = Instant::now();
                let method = req.method().to_string();
                let path = req.path().chars().take(200).collect::<String>();
                let request_id = random_token(9);
                let form_page = crate::http::lang_switch::form_page(req.method(), req.path());
                let fut = crate::http::lang_switch::scope(form_page, srv.call(req));
                let draining = draining.clone();
                async move {
                    let mut res = fut.await?;
                    if draining.load(Ordering::Acquire) {
                        // While draining, every answer closes its connection, so the balancer
                        // holds no idle connection to this node when the stop closes them: one it
                        // reused at that instant would lose a POST sent on it (nginx answers 502
                        // and does not retry a request it already sent). An idle connection from
                        // before the drain is closed by the balancer's shorter keep-alive.
                        res.response_mut().head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
                    }
                    if let Ok(v) = HeaderValue::from_str(&request_id) {
                        res.headers_mut().insert(header::HeaderName::from_static("x-request-id"), v);
                    }
                    crate::metrics::request(
                        res.request().match_pattern().as_deref(),
                        res.request().method(),
                        res.status().as_u16(),
                        started.elapsed(),
                    );
                    tracing::info!(
                        target: "http",
                        request_id = %request_id,
                        method = %method,
                        path = %path,
                        status = res.status().as_u16(),
                        latency_us = started.elapsed().as_micros() as u64,
                        "request"
                    );
                    Ok(res)
                }
            })
            .configure(http::routes)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    // SIGTERM is handled by `stop_on_signal`: readiness first, then the drain, then the stop.
    .disable_signals()
    .shutdown_timeout(shutdown_timeout)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Waits for SIGTERM (or SIGINT), then stops the way a balancer needs it to:
/// 1. `/readyz` answers 503 at once, while requests are still served as before, each answer
///    closing its connection (so the balancer is left with no idle one to this node);
/// 2. after `http.drain_delay` — time for the balancer's readiness checks to notice and send
///    traffic elsewhere — the listeners close, so new connections are refused (with an
///    `inherited` socket, accepting stops and the socket is left to the next process);
/// 3. requests in flight finish, for at most `http.shutdown_timeout`; then the servers end and
///    the process exits with status 0.
pub async fn stop_on_signal(state: AppState, servers: Vec<ServerHandle>, inherited: bool) {
    let signal = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = tokio::signal::ctrl_c() => "SIGINT",
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "SIGTERM handler not installed; stopping on SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    };
    let which = signal.await;
    let drain = state.config.http.drain_delay;
    state.draining.store(true, Ordering::Release);
    tracing::info!(
        signal = which,
        drain_ms = drain.as_millis() as u64,
        "stopping: not ready; still serving while the balancer notices"
    );
    tokio::time::sleep(drain).await;
    if inherited {
        // Accepting stops first, and the stop comes only once the connections already accepted
        // have reached their worker: a worker told to stop drops the connections still queued
        // for it, and a request sent on one of those would be lost. Connections the kernel takes
        // meanwhile wait in the inherited socket for the next process. (A socket of our own
        // closes with the stop, resetting whatever the kernel holds: the pause would only widen
        // that instant, so there is none.)
        for h in &servers {
            h.pause().await;
        }
        tokio::time::sleep(HANDOVER).await;
    }
    tracing::info!(
        shutdown_timeout_s = state.config.http.shutdown_secs(),
        "stopping: new connections refused; finishing requests in flight"
    );
    let stops: Vec<_> = servers.iter().map(|h| h.stop(true)).collect();
    for s in stops {
        s.await;
    }
    tracing::info!("stopped");
}

/// After accepting stops, how long before the stop: time for connections the acceptor had
/// already handed over to be taken up by their worker (a matter of microseconds unless every
/// worker is busy).
const HANDOVER: Duration = Duration::from_millis(200);

/// How long the runtime waits, once the servers have stopped, for background work (a database
/// call stuck on a server that never answers) before the process exits anyway.
pub const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(2);

async fn not_found() -> Result<HttpResponse, http::errors::Failure> {
    Err(http::errors::Failure::not_found())
}
