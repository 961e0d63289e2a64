//! The `/metrics` listener (`metrics.bind`, off by default), apart from the public site: reads
//! the gauges that describe shared state (pool use, outbox depth, CRL age) when scraped and
//! answers with every counter of [`crate::metrics`] in the Prometheus text format.

use actix_web::{web, App, HttpResponse, HttpServer};

use crate::error::InfraError;
use crate::metrics;
use crate::state::AppState;

/// Reads the gauges and renders everything in the text format.
pub async fn render(state: &AppState) -> String {
    let mut errors = 0;
    let pool = state.db.pool_state();
    metrics::pool(pool.connections - pool.idle, pool.idle, pool.max);
    match state.db.run(crate::oidc::backchannel::pending).await {
        Ok(n) => metrics::outbox_pending(n),
        Err(e) => {
            errors += 1;
            tracing::warn!(error = %e, "metrics: outbox depth not read");
        }
    }
    if let Some(card) = &state.card {
        let now = crate::error::now();
        for (ca, this_update) in card.crl_issued() {
            metrics::crl_age(&ca, now - this_update);
        }
    }
    metrics::encode(errors)
}

async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(render(&state).await)
}

/// Starts the metrics listener when `metrics.bind` is set; it runs until the process ends.
pub fn serve(state: &AppState, inherited: Option<std::net::TcpListener>) -> Result<(), InfraError> {
    let bind = state.config.metrics.bind.clone();
    if bind.is_empty() {
        if inherited.is_some() {
            // A socket unit that opens a port nobody serves is a mistake to say, not to hide.
            return Err(InfraError::Internal(
                "socket activation: a metrics socket was passed, but metrics.bind is not set".into(),
            ));
        }
        return Ok(());
    }
    let listener = match inherited {
        Some(l) => l,
        None => {
            std::net::TcpListener::bind(&bind).map_err(|e| InfraError::Internal(format!("metrics.bind {bind}: {e}")))?
        }
    };
    let data = web::Data::new(state.clone());
    let server = HttpServer::new(move || App::new().app_data(data.clone()).route("/metrics", web::get().to(scrape)))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .map_err(|e| InfraError::Internal(format!("metrics.bind {bind}: {e}")))?
        .run();
    tracing::info!(%bind, "metrics listening");
    tokio::spawn(server);
    Ok(())
}
