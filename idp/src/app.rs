//! Builds the HTTP server from the state: routes, security headers, request logging, limits.

use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpResponse, HttpServer};

use crate::crypto::random_token;
use crate::http;
use crate::state::AppState;

/// Request bodies larger than this are refused with 413 (forms and token requests are small).
pub const MAX_BODY: usize = 64 * 1024;

/// Starts serving on an already-bound listener (so tests can bind port 0 first).
pub fn serve(state: AppState, listener: std::net::TcpListener) -> std::io::Result<Server> {
    let workers = match state.config.http.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        n => n,
    };
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
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
            .wrap_fn(|req, srv| {
                // One structured line per request. The path only: query strings can carry
                // codes, hints and tokens, and bodies are never logged.
                let started = Instant::now();
                let method = req.method().to_string();
                let path = req.path().chars().take(200).collect::<String>();
                let request_id = random_token(9);
                let fut = srv.call(req);
                async move {
                    let mut res = fut.await?;
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
    .listen(listener)?
    .run();
    Ok(server)
}

async fn not_found(state: web::Data<AppState>, req: actix_web::HttpRequest) -> HttpResponse {
    let lang = http::lang_of(&req, None);
    use actix_web::ResponseError;
    http::errors::page(&state, lang, actix_web::http::StatusCode::NOT_FOUND, "err_not_found", None).error_response()
}
