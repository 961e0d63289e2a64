//! `idp serve` (and the server part of `idp demo`).

use std::time::{Duration, Instant};

use super::{fail, Failure};
use crate::config::Config;
use crate::state::AppState;

/// Runs the server; `demo` loads the demo data first.
pub(super) fn serve(mut config: Config, demo: bool) -> Result<(), Failure> {
    // Before any thread exists: taking them clears the protocol's environment variables.
    let inherited = crate::listen_fds::take().map_err(|e| fail(format!("socket activation: {e}")))?;
    if demo {
        super::demo::demo_site(&mut config);
    }
    if demo && !config.certificates.enabled() {
        super::demo::demo_pki(&mut config)?;
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| fail(e.to_string()))?;
    let served = runtime.block_on(async move {
        if demo {
            let c = config.clone();
            tokio::task::spawn_blocking(move || super::demo::load_demo(c)).await.map_err(|e| fail(e.to_string()))??;
        }
        let (listener, activated) = match inherited.http {
            Some(l) => (l, true),
            None => (
                std::net::TcpListener::bind(&config.http.bind)
                    .map_err(|e| fail(format!("http.bind {}: {e}", config.http.bind)))?,
                false,
            ),
        };
        let addr = listener.local_addr().map_err(|e| fail(e.to_string()))?;
        let state = AppState::build(config).await?;
        crate::oidc::backchannel::spawn_pending_delivery(state.clone());
        crate::cleanup::spawn(state.clone());
        crate::metrics_server::serve(&state, inherited.metrics)?;
        tracing::info!(%addr, issuer = %state.config.issuer, database = if state.config.database_url().starts_with("sqlite") { "sqlite" } else { "postgresql" }, shared_cache = state.eph.is_shared(), socket_activation = activated, "listening");
        let card_server = crate::http::card_tls::serve(state.clone(), inherited.card_tls)?;
        let server = crate::app::serve(state.clone(), listener).map_err(|e| fail(e.to_string()))?;
        let handles = std::iter::once(server.handle()).chain(card_server.as_ref().map(|c| c.handle())).collect();
        tokio::spawn(crate::app::stop_on_signal(state.clone(), handles, activated));
        let ended = match card_server {
            Some(card) => {
                let (main, card) = tokio::join!(server, card);
                main.and(card).map_err(|e| fail(e.to_string()))
            }
            None => server.await.map_err(|e| fail(e.to_string())),
        };
        ended.map(|()| state)
    });
    // Background work still running (a database call on a server that never answers cannot be
    // interrupted) must not keep a stopped server from exiting.
    runtime.shutdown_timeout(crate::app::RUNTIME_SHUTDOWN);
    served.map(release_last)
}

/// How long the process waits, once the runtime is down, for the HTTP workers' threads to let
/// go of the state.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Drops the state on this thread, once nothing else holds it, before the process exits.
///
/// actix-server reports a worker stopped before its thread has dropped the application (and the
/// state with it), and never joins that thread. Left alone, the last holder could be a worker
/// thread closing the pooled PostgreSQL connections (libpq, over TLS) while this thread is
/// already in `exit`, whose handlers tear down the TLS library under it: the process then ends
/// by a signal instead of status 0. Waiting here for the others and closing the connections on
/// this thread makes the end orderly; a holder stuck longer than [`RELEASE_WAIT`] (a database
/// call on a server that never answers) does not keep the process from exiting.
fn release_last(state: AppState) {
    let started = Instant::now();
    while state.holders() > 1 && started.elapsed() < RELEASE_WAIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    if state.holders() > 1 {
        tracing::warn!(others = state.holders() - 1, "exiting while background work still holds the state");
    }
    drop(state);
}
