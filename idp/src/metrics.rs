//! The counters and gauges that `/metrics` shows; its listener is in `metrics_server.rs`.
//!
//! Counters live in one process-wide registry so any module counts with one call. Labels are
//! fixed vocabularies (route patterns, methods, grant types, audit event and outcome names):
//! never a raw path, a client's input, an account or a national ID. Gauges that describe shared
//! state (pool use, outbox depth, CRL age) are read when scraped.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

struct Metrics {
    registry: Registry,
    requests: HistogramVec,
    sign_ins: IntCounterVec,
    audit: IntCounterVec,
    tokens: IntCounterVec,
    token_refusals: IntCounterVec,
    dependency_errors: IntCounterVec,
    dependency_timeouts: IntCounterVec,
    pool: IntGaugeVec,
    crl_age: GaugeVec,
    outbox_pending: IntGauge,
    backchannel: IntCounterVec,
    scrape_errors: Gauge,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable!("{name}: {e}"));
    registry.register(Box::new(c.clone())).unwrap_or_else(|e| unreachable!("{name}: {e}"));
    c
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let requests = HistogramVec::new(
        HistogramOpts::new("idp_http_request_duration_seconds", "HTTP requests by route pattern, method and status")
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        &["route", "method", "status"],
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    registry.register(Box::new(requests.clone())).unwrap_or_else(|e| unreachable!("{e}"));
    let pool = IntGaugeVec::new(
        Opts::new("idp_db_pool_connections", "Database pool connections: in_use, idle, max"),
        &["state"],
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    registry.register(Box::new(pool.clone())).unwrap_or_else(|e| unreachable!("{e}"));
    let crl_age = GaugeVec::new(
        Opts::new("idp_crl_age_seconds", "Seconds since thisUpdate of the newest CRL held, per issuing CA"),
        &["ca"],
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    registry.register(Box::new(crl_age.clone())).unwrap_or_else(|e| unreachable!("{e}"));
    let outbox_pending =
        IntGauge::new("idp_backchannel_outbox_pending", "Back-channel logout deliveries owed and not finished")
            .unwrap_or_else(|e| unreachable!("{e}"));
    registry.register(Box::new(outbox_pending.clone())).unwrap_or_else(|e| unreachable!("{e}"));
    let scrape_errors = Gauge::new("idp_metrics_scrape_errors", "Gauges that could not be read at this scrape")
        .unwrap_or_else(|e| unreachable!("{e}"));
    registry.register(Box::new(scrape_errors.clone())).unwrap_or_else(|e| unreachable!("{e}"));
    Metrics {
        sign_ins: counter(
            &registry,
            "idp_sign_ins_total",
            "Sign-in attempts by method and outcome",
            &["method", "outcome"],
        ),
        audit: counter(
            &registry,
            "idp_audit_events_total",
            "Audited events by event and outcome",
            &["event", "outcome"],
        ),
        tokens: counter(&registry, "idp_tokens_issued_total", "Token responses issued by grant type", &["grant"]),
        token_refusals: counter(
            &registry,
            "idp_token_refusals_total",
            "Token requests refused, by grant type and OAuth error",
            &["grant", "error"],
        ),
        dependency_errors: counter(
            &registry,
            "idp_dependency_errors_total",
            "Failures of a dependency (database, ephemeral store, mail, …) seen by a request or background task",
            &["dependency"],
        ),
        dependency_timeouts: counter(
            &registry,
            "idp_dependency_timeouts_total",
            "Calls to a dependency that ran out of their time bound: database pool checkout (also when no connection can be opened) or query, ephemeral store command; each attempt counted",
            &["dependency"],
        ),
        backchannel: counter(
            &registry,
            "idp_backchannel_attempts_total",
            "Back-channel logout attempts by outcome (delivered, failed, no_endpoint; given_up per row)",
            &["outcome"],
        ),
        registry,
        requests,
        pool,
        crl_age,
        outbox_pending,
        scrape_errors,
    }
});

/// A label value from a fixed vocabulary of names; anything else (which would only come from a
/// bug) is folded into `other`, so no free text ever becomes a label.
fn name(v: &str) -> &str {
    let ok = !v.is_empty()
        && v.len() <= 48
        && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        v
    } else {
        "other"
    }
}

/// One answered request. `route` is the matched route pattern (`/clients/{id}`), never the path.
pub fn request(route: Option<&str>, method: &actix_web::http::Method, status: u16, elapsed: Duration) {
    let method = match method.as_str() {
        m @ ("GET" | "POST" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "PATCH") => m,
        _ => "other",
    };
    let route = route.filter(|r| r.len() <= 80).unwrap_or("unmatched");
    METRICS.requests.with_label_values(&[route, method, &status.to_string()]).observe(elapsed.as_secs_f64());
}

/// An audited event; `login.*` events are also the sign-ins by method.
pub fn audited(event: &str, outcome: &str) {
    let (event, outcome) = (name(event), name(outcome));
    METRICS.audit.with_label_values(&[event, outcome]).inc();
    if let Some(method) = event.strip_prefix("login.") {
        METRICS.sign_ins.with_label_values(&[method, outcome]).inc();
    }
}

/// The outcome of a token request.
pub fn token(grant: &str, refused: Option<&str>) {
    let grant = match grant {
        g @ ("authorization_code" | "refresh_token" | "client_credentials") => g,
        _ => "other",
    };
    match refused {
        None => METRICS.tokens.with_label_values(&[grant]).inc(),
        Some(error) => METRICS.token_refusals.with_label_values(&[grant, name(error)]).inc(),
    }
}

/// A dependency failed (`database`, `ephemeral`, `mail`, …).
pub fn dependency_error(dependency: &str) {
    METRICS.dependency_errors.with_label_values(&[name(dependency)]).inc();
}

/// A call to a dependency (`database`, `ephemeral`) ran out of its time bound: a server that
/// hangs, told apart from one that refuses (counted by [`dependency_error`] when the failure
/// reaches a request).
pub fn dependency_timeout(dependency: &str) {
    METRICS.dependency_timeouts.with_label_values(&[name(dependency)]).inc();
}

/// One back-channel logout attempt.
pub fn backchannel_attempt(outcome: &str) {
    METRICS.backchannel.with_label_values(&[name(outcome)]).inc();
}

/// The database pool's connections now (set when scraped).
pub fn pool(in_use: u32, idle: u32, max: u32) {
    let m = &METRICS;
    m.pool.with_label_values(&["in_use"]).set(i64::from(in_use));
    m.pool.with_label_values(&["idle"]).set(i64::from(idle));
    m.pool.with_label_values(&["max"]).set(i64::from(max));
}

/// Back-channel logout deliveries owed now (set when scraped).
pub fn outbox_pending(n: i64) {
    METRICS.outbox_pending.set(n);
}

/// Seconds since `thisUpdate` of the newest CRL held from `ca` (set when scraped).
pub fn crl_age(ca: &str, seconds: i64) {
    METRICS.crl_age.with_label_values(&[ca]).set(seconds as f64);
}

/// Everything in the text format, with the number of gauges this scrape could not read.
pub fn encode(scrape_errors: u32) -> String {
    let m = &*METRICS;
    m.scrape_errors.set(f64::from(scrape_errors));
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
        tracing::error!(error = %e, "metrics not encoded");
    }
    String::from_utf8(out).unwrap_or_default()
}
