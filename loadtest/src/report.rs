//! Results as a table for people and as JSON for scripts.

use serde::Serialize;
use serde_json::{json, Value};

use crate::runner::Measured;
use crate::CpuUse;

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &hdrhistogram::Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Self {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        })
    }
}

/// One row of the results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    /// `closed` or `open`.
    pub mode: &'static str,
    pub concurrency: Option<usize>,
    /// The requested rate (open loop).
    pub target_rate: Option<f64>,
    /// Successful iterations per second over the measured period.
    pub requests_per_s: f64,
    pub ok: u64,
    pub errors: u64,
    pub error_kinds: Value,
    pub duration_s: f64,
    /// Per iteration; in open loop from the scheduled send time.
    pub latency_us: Option<Percentiles>,
    /// Open loop: from the actual send.
    pub service_latency_us: Option<Percentiles>,
    /// Per step of the SSO round trip.
    pub steps_us: Value,
    pub delayed_starts: u64,
    pub dispatch_lag_p99_us: u64,
    /// CPU used by this tool during the run, in percent of one core.
    pub tool_cpu_pct: Option<f64>,
    /// CPU used by the server process (`--server-pid`), in percent of one core.
    pub server_cpu_pct: Option<f64>,
    /// CPU used by the whole machine, in percent of all its cores.
    pub machine_cpu_pct: Option<f64>,
    /// Interrupt (softirq) time, in percent of one core: the loopback network's share.
    pub interrupt_cpu_pct: Option<f64>,
    /// CPU used by other processes, in percent of one core (see `CpuUse::other`).
    pub other_cpu_pct: Option<f64>,
    /// Server CPU time per successful iteration, µs: unlike throughput, hardly moved by other
    /// processes sharing the machine, so the figure to compare between builds.
    pub server_cpu_us_per_op: Option<f64>,
    /// The same for this tool.
    pub tool_cpu_us_per_op: Option<f64>,
}

impl Row {
    pub fn new(
        scenario: &str,
        mode: &'static str,
        concurrency: Option<usize>,
        target_rate: Option<f64>,
        step_names: &[&str],
        m: &Measured,
        cpu: CpuUse,
    ) -> Self {
        let r = &m.recorder;
        let secs = m.elapsed.as_secs_f64();
        let steps: serde_json::Map<String, Value> =
            step_names.iter().zip(&r.steps).map(|(n, h)| ((*n).to_string(), json!(Percentiles::of(h)))).collect();
        // CPU use covers the whole run, warm-up included, so divide by every iteration.
        let per_op = |pct: Option<f64>| {
            let ops = (r.ok + r.warmup_ok) as f64;
            pct.filter(|_| ops > 0.0).map(|p| (p / 100.0 * cpu.wall_s / ops * 1e6 * 10.0).round() / 10.0)
        };
        Self {
            server_cpu_us_per_op: per_op(cpu.server),
            tool_cpu_us_per_op: per_op(cpu.tool),
            scenario: scenario.to_string(),
            mode,
            concurrency,
            target_rate,
            requests_per_s: (r.ok as f64 / secs * 10.0).round() / 10.0,
            ok: r.ok,
            errors: r.errors,
            error_kinds: json!(r.error_kinds),
            duration_s: (secs * 1000.0).round() / 1000.0,
            latency_us: Percentiles::of(&r.latency),
            service_latency_us: if mode == "open" { Percentiles::of(&r.service) } else { None },
            steps_us: Value::Object(steps),
            delayed_starts: m.delayed_starts,
            dispatch_lag_p99_us: m.dispatch_lag_p99_us,
            tool_cpu_pct: cpu.tool,
            server_cpu_pct: cpu.server,
            machine_cpu_pct: cpu.machine,
            interrupt_cpu_pct: cpu.interrupts,
            other_cpu_pct: cpu.other,
        }
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// The table: one line per run, latencies in milliseconds; `tool%`, `idp%` and `other%` (every
/// other process) are percent of one core; `idp µs/op` is server CPU per iteration.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<20} {:<14} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>9}\n",
        "scenario",
        "load",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "tool%",
        "idp%",
        "other%",
        "idp µs/op"
    );
    for r in rows {
        let load = match (r.mode, r.concurrency, r.target_rate) {
            ("open", _, Some(rate)) => format!("open {rate:.0}/s"),
            (_, Some(c), _) => format!("closed c={c}"),
            _ => r.mode.to_string(),
        };
        let (p50, p90, p99, max) = match &r.latency_us {
            Some(p) => (ms(p.p50), ms(p.p90), ms(p.p99), ms(p.max)),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let pct = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<20} {:<14} {:>10.0} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>9}\n",
            r.scenario,
            load,
            r.requests_per_s,
            p50,
            p90,
            p99,
            max,
            r.errors,
            pct(r.tool_cpu_pct),
            pct(r.server_cpu_pct),
            pct(r.other_cpu_pct),
            r.server_cpu_us_per_op.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
        ));
    }
    out
}
