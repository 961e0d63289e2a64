//! The two load models.
//!
//! * **Closed loop** (`run_closed`): N workers, each sends its next request when the previous
//!   answer arrives. Finds the maximum throughput, but its latencies hide queueing: a slow
//!   answer delays the requests that would have been sent meanwhile ("coordinated omission").
//! * **Open loop** (`run_open`): requests are scheduled at a fixed rate regardless of answers,
//!   and latency is measured from each request's *scheduled* send time, so a stall shows up in
//!   every request it delayed. This is the model for "p99 at half the maximum load".
//!
//! Both are bounded by a duration and a request count, and stop by themselves.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use reqwest::Client;

use crate::scenario::Prepared;

/// Latencies are recorded in microseconds, up to a minute, with 3 significant digits.
fn histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant, valid bounds
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// Samples of one run (or one worker's part of it).
pub struct Recorder {
    /// Per iteration: from the (scheduled, in open loop) start to the last byte.
    pub latency: Histogram<u64>,
    /// Open loop only: from the actual send to the last byte (what the server alone took,
    /// plus any wait for a free connection).
    pub service: Histogram<u64>,
    /// Per step of a multi-step scenario.
    pub steps: Vec<Histogram<u64>>,
    pub ok: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// When the last measured iteration finished.
    pub last_done: Option<Instant>,
    /// Successful iterations during the warm-up (not in the figures, but they used CPU).
    pub warmup_ok: u64,
}

impl Recorder {
    pub fn new(steps: usize) -> Self {
        Self {
            latency: histogram(),
            service: histogram(),
            steps: (0..steps).map(|_| histogram()).collect(),
            ok: 0,
            errors: 0,
            error_kinds: BTreeMap::new(),
            last_done: None,
            warmup_ok: 0,
        }
    }

    fn record(
        &mut self,
        outcome: &Result<(), crate::scenario::IterError>,
        done: Instant,
        latency: Duration,
        steps: &[Duration],
    ) {
        self.last_done = self.last_done.max(Some(done));
        match outcome {
            Ok(()) => {
                self.ok += 1;
                self.latency.saturating_record(micros(latency));
                for (h, d) in self.steps.iter_mut().zip(steps) {
                    h.saturating_record(micros(*d));
                }
            }
            Err(e) => {
                self.errors += 1;
                *self.error_kinds.entry(e.0.clone()).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: Recorder) {
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        for (a, b) in self.steps.iter_mut().zip(&other.steps) {
            let _ = a.add(b);
        }
        self.ok += other.ok;
        self.last_done = self.last_done.max(other.last_done);
        self.warmup_ok += other.warmup_ok;
        self.errors += other.errors;
        for (k, v) in other.error_kinds {
            *self.error_kinds.entry(k).or_default() += v;
        }
    }
}

/// Limits common to both models.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Untimed lead-in (connections opened, caches warm); its samples are dropped.
    pub warmup: Duration,
    /// The measured period.
    pub duration: Duration,
    /// At most this many measured iterations.
    pub max_requests: u64,
}

/// What a run measured.
pub struct Measured {
    pub recorder: Recorder,
    /// Length of the measured period actually used (shorter if `max_requests` ran out).
    pub elapsed: Duration,
    /// Open loop: iterations that could not start on time because `max_in_flight` were
    /// already outstanding (they were still sent, late, and their lateness is in `latency`).
    pub delayed_starts: u64,
    /// Open loop: the dispatcher's own lateness behind schedule (timer granularity), p99, µs.
    pub dispatch_lag_p99_us: u64,
}

/// Gives up early on a scenario that only produces errors (a misconfigured run should not
/// hammer the server for its whole duration).
fn hopeless(ok: u64, errors: u64) -> bool {
    errors >= 1000 && errors > ok.saturating_mul(10)
}

/// Closed loop: `concurrency` workers, each issuing its next request when the last finished.
pub async fn run_closed(
    prepared: Arc<Prepared>,
    http: Client,
    steps: usize,
    concurrency: usize,
    bounds: Bounds,
) -> Result<Measured> {
    let start = Instant::now();
    let measure_from = start + bounds.warmup;
    let deadline = measure_from + bounds.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (prepared, http, issued, failures) = (prepared.clone(), http.clone(), issued.clone(), failures.clone());
        tasks.spawn(async move {
            let mut rec = Recorder::new(steps);
            let mut step_times = [Duration::ZERO; 3];
            loop {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                let measured = t0 >= measure_from;
                if measured && issued.fetch_add(1, Ordering::Relaxed) >= bounds.max_requests {
                    break;
                }
                let outcome = prepared.once(&http, worker, &mut step_times).await;
                let done = Instant::now();
                if measured {
                    rec.record(&outcome, done, done - t0, &step_times);
                } else if outcome.is_ok() {
                    rec.warmup_ok += 1;
                }
                if outcome.is_err() {
                    let f = failures.fetch_add(1, Ordering::Relaxed) + 1;
                    if hopeless(issued.load(Ordering::Relaxed).saturating_sub(f), f) {
                        break;
                    }
                }
            }
            rec
        });
    }
    let mut total = Recorder::new(steps);
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined?);
    }
    let end = total.last_done.unwrap_or(measure_from);
    // Requests started just before the deadline finish a little after it; count the period
    // as ending at the deadline unless the run stopped earlier (request bound reached).
    let elapsed = end.min(deadline).saturating_duration_since(measure_from).max(Duration::from_millis(1));
    Ok(Measured { recorder: total, elapsed, delayed_starts: 0, dispatch_lag_p99_us: 0 })
}

/// Open loop: one request every `1/rate` seconds, whatever the answers do; at most
/// `max_in_flight` outstanding (beyond that the schedule slips, and the slip is measured).
pub async fn run_open(
    prepared: Arc<Prepared>,
    http: Client,
    steps: usize,
    rate: f64,
    max_in_flight: usize,
    tick: Duration,
    bounds: Bounds,
) -> Result<Measured> {
    let period = Duration::from_secs_f64(1.0 / rate);
    let sessions = prepared.sessions();
    let start = Instant::now();
    let measure_from = start + bounds.warmup;
    let deadline = measure_from + bounds.duration;
    let shared = Arc::new(Mutex::new(Recorder::new(steps)));
    let failures = Arc::new(AtomicU64::new(0));
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    // The schedule is kept by a plain thread sleeping with the OS's high-resolution timer:
    // tokio's timer has a 1 ms tick, which would release requests in bursts and add up to a
    // millisecond of the tool's own lateness to every latency.
    let handle = tokio::runtime::Handle::current();
    let dispatcher = {
        let (shared, failures, slots) = (shared.clone(), failures.clone(), slots.clone());
        tokio::task::spawn_blocking(move || -> Result<(u64, Histogram<u64>)> {
            let mut lag = histogram();
            let mut delayed_starts = 0u64;
            let mut measured_count = 0u64;
            let mut i: u64 = 0;
            let mut last_wake = start;
            loop {
                // Computed from the start each time, so rounding never accumulates into drift.
                let scheduled = start + period.mul_f64(i as f64);
                if scheduled >= deadline {
                    break;
                }
                let measured = scheduled >= measure_from;
                if measured {
                    if measured_count >= bounds.max_requests {
                        break;
                    }
                    measured_count += 1;
                }
                let now = Instant::now();
                if scheduled > now {
                    // Wake no more often than once per tick; everything due is then sent.
                    let wake = scheduled.max(last_wake + tick);
                    std::thread::sleep(wake - now);
                    last_wake = Instant::now();
                }
                let permit = match slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        delayed_starts += 1;
                        handle.block_on(slots.clone().acquire_owned())?
                    }
                };
                if measured {
                    lag.saturating_record(micros(Instant::now().saturating_duration_since(scheduled)));
                }
                let (prepared, http, shared, task_failures) =
                    (prepared.clone(), http.clone(), shared.clone(), failures.clone());
                let worker = (i % sessions as u64) as usize;
                handle.spawn(async move {
                    let _permit = permit;
                    let mut step_times = [Duration::ZERO; 3];
                    let sent = Instant::now();
                    let outcome = prepared.once(&http, worker, &mut step_times).await;
                    let done = Instant::now();
                    if outcome.is_err() {
                        task_failures.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut rec = shared.lock().unwrap_or_else(|p| p.into_inner());
                    if measured {
                        rec.record(&outcome, done, done - scheduled, &step_times);
                        if outcome.is_ok() {
                            rec.service.saturating_record(micros(done - sent));
                        }
                    } else if outcome.is_ok() {
                        rec.warmup_ok += 1;
                    }
                });
                i += 1;
                let failed = failures.load(Ordering::Relaxed);
                if i % 1024 == 0 && hopeless(i.saturating_sub(failed), failed) {
                    break;
                }
            }
            Ok((delayed_starts, lag))
        })
    };
    let (delayed_starts, lag) = dispatcher.await??;
    // Wait for every outstanding request (each is bounded by the client's timeout).
    let _all = slots.acquire_many(max_in_flight as u32).await?;
    let recorder = std::mem::replace(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()), Recorder::new(steps));
    // Achieved throughput counts until the last answer: if the server falls behind the
    // schedule, the run takes longer and the figure comes out below the requested rate.
    let elapsed = recorder.last_done.unwrap_or(measure_from).saturating_duration_since(measure_from);
    Ok(Measured {
        recorder,
        elapsed: elapsed.max(Duration::from_millis(1)),
        delayed_starts,
        dispatch_lag_p99_us: lag.value_at_quantile(0.99),
    })
}
