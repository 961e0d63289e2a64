//! `idp-load`: drives a running IdP on this machine and reports requests/s and latency
//! percentiles for discovery, JWKS, the client_credentials grant, introspection and the full
//! SSO round trip.
//!
//! It refuses any base URL that is not loopback, never follows a redirect, and every run is
//! bounded in time and request count. By default its runtime has a single worker thread,
//! because on the two-core machine it shares the CPU with the server it measures: every cycle
//! the tool burns is one the server cannot use.
#![forbid(unsafe_code)]

mod browser;
mod report;
mod runner;
mod scenario;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::browser::Browser;
use crate::report::Row;
use crate::runner::Bounds;
use crate::scenario::{ClientCreds, Prepared, Scenario, SsoSetup};
use crate::target::Endpoints;

#[derive(Parser, Debug)]
#[command(name = "idp-load", version, about = "Load tool for the IdP (loopback only)")]
struct Cli {
    /// Tokio worker threads for the tool itself (the server needs the other cores).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run scenarios and print the results.
    Run(Box<RunArgs>),
    /// First sign-in with a one-time password and account activation, through the pages.
    Activate(ActivateArgs),
    /// Wait until the server answers /healthz.
    Wait {
        #[arg(long)]
        base_url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Print a free TCP port on 127.0.0.1 (for scripts starting a server).
    FreePort,
    /// Write the card test PKI with P-256 keys into DIR (`idp dev pki` writes RSA ones): the
    /// tool signs every challenge itself, and an RSA-2048 signature per sign-in would make the
    /// card scenario measure the tool instead of the server.
    Pki {
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a CRL as large as a national CA's complete one, signed by a CA of the test PKI
    /// in DIR (default: MOICA G2's, 412,000 entries, about MOICA's 20 MB), with the
    /// certificates named by `--list` revoked at `--at` and after.
    Crl {
        /// The test PKI (`idp-load pki` or `idp dev pki`).
        #[arg(long)]
        pki: PathBuf,
        /// The signing CA's certificate file in the PKI (its key is the `.key.pem` beside it).
        #[arg(long, default_value = "moica-g2.pem")]
        ca: String,
        #[arg(long, default_value_t = 412_000)]
        entries: usize,
        /// Certificate files in the PKI to revoke (repeat or separate with commas).
        #[arg(long = "list", value_delimiter = ',')]
        list: Vec<String>,
        /// Entry position of the first listed certificate.
        #[arg(long, default_value_t = 400_000)]
        at: usize,
        /// Days until its nextUpdate.
        #[arg(long, default_value_t = 7)]
        days: i64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a personnel register of `--people` generated people (valid check digits, all of
    /// the demo agency A21000000I) to `--out`, and with `--changed-out` the same register with
    /// every hundredth row's unit changed (a re-import with 1 % changed rows).
    Register {
        #[arg(long, default_value_t = 1_000_000)]
        people: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        changed_out: Option<PathBuf>,
    },
    /// Measure the Argon2id bound alone: password verifications per second on all cores.
    Argon2Bound {
        /// Seconds to measure.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The IdP, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long)]
    base_url: String,
    /// Scenarios to run, in order (repeat the flag or separate with commas); default: all.
    #[arg(long = "scenario", value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Measured seconds per run (at most 600).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured lead-in seconds per run (at most 60).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Closed loop: concurrent workers (and connections).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Open loop at this many iterations per second instead of the closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// After each closed-loop run, an open-loop run at this fraction of the throughput it
    /// reached (0.5 = "latency at half the maximum load").
    #[arg(long)]
    open_fraction: Option<f64>,
    /// Open loop: at most this many outstanding requests; beyond that the schedule slips
    /// (and the slip is counted in the latency).
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Open loop: the dispatcher wakes at most once per this many microseconds and sends
    /// everything due (each request is then late by less than a tick, and that lateness is
    /// counted); 0 wakes for every request (most precise, most CPU).
    #[arg(long, default_value_t = 200)]
    tick_us: u64,
    /// At most this many measured iterations per run.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// JSON from `idp clients create --json` for a client allowed client_credentials (also
    /// used to authenticate at the introspection endpoint).
    #[arg(long)]
    cc_client: Option<PathBuf>,
    /// JSON from `idp clients create --json` for the SSO scenario's confidential client.
    #[arg(long)]
    sso_client: Option<PathBuf>,
    /// The SSO client's registered redirect URI (never contacted: redirects are not followed).
    #[arg(long, default_value = "http://127.0.0.1:9/cb")]
    redirect_uri: String,
    /// Scopes of the SSO authorization request.
    #[arg(long, default_value = "openid profile email")]
    scope: String,
    /// Account (custom account or national ID) for the SSO sessions. (The variables are not
    /// named `IDP_…`: the idp refuses unknown `IDP_*` variables, and scripts export these next
    /// to its own.)
    #[arg(long, env = "LOADTEST_USERNAME")]
    username: Option<String>,
    /// Its password (prefer the environment variable: command lines are visible to others).
    #[arg(long, env = "LOADTEST_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Browser sessions for the SSO scenario; default: one per closed-loop worker.
    #[arg(long)]
    sessions: Option<usize>,
    /// A software card (certificate PEM, key in the `.key.pem` beside it) for the card
    /// scenario; it is bound to `--username` at setup.
    #[arg(long)]
    card: Option<PathBuf>,
    /// The target is the peer provider set up by `scripts/bench` (its interaction pages sign
    /// in by themselves; there is no password form or card).
    #[arg(long)]
    peer: bool,
    /// Seconds of the Argon2id bound measured right before the password scenario (same
    /// build, all cores); 0 skips it.
    #[arg(long, default_value_t = 5.0)]
    argon2_seconds: f64,
    /// The server's process id, to report its CPU use next to the tool's.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON results to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ActivateArgs {
    #[arg(long)]
    base_url: String,
    /// National ID (or account) to sign in with.
    #[arg(long)]
    username: String,
    #[arg(long, env = "LOADTEST_ONE_TIME_PASSWORD", hide_env_values = true)]
    one_time_password: String,
    /// The custom account to choose.
    #[arg(long)]
    account: String,
    #[arg(long)]
    email: String,
    /// The new password.
    #[arg(long, env = "LOADTEST_PASSWORD", hide_env_values = true)]
    password: String,
}

fn main() {
    let cli = Cli::parse();
    let threads = cli.threads.clamp(1, 64);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run(cli.command, threads)),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        eprintln!("idp-load: {e:#}");
        std::process::exit(1);
    }
}

/// The HTTP client of the timed path: keep-alive and connection reuse, no proxy, no redirects,
/// no compression, Nagle off (small request/answer pairs).
fn load_client(timeout: Duration, connections: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections.max(1))
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(timeout)
        .user_agent("idp-load")
        .build()?)
}

async fn run(command: Command, threads: usize) -> Result<()> {
    match command {
        Command::FreePort => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            Ok(())
        }
        Command::Wait { base_url, timeout } => {
            let base = target::loopback_base(&base_url).await?;
            let http = load_client(Duration::from_secs(2), 1)?;
            let until = Instant::now() + Duration::from_secs(timeout.min(600));
            let health = base.join("healthz")?;
            while Instant::now() < until {
                if let Ok(r) = http.get(health.clone()).send().await {
                    if r.status().is_success() {
                        return Ok(());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            bail!("{health} did not answer within {timeout} s")
        }
        Command::Activate(a) => {
            let base = target::loopback_base(&a.base_url).await?;
            let http = load_client(Duration::from_secs(30), 1)?;
            let ep = Endpoints::discover(&http, &base).await?;
            Browser::new(&base)?
                .activate(&ep, &a.username, &a.one_time_password, &a.account, &a.email, &a.password)
                .await?;
            eprintln!("idp-load: account {} activated", a.account);
            Ok(())
        }
        Command::Run(args) => run_scenarios(*args, threads).await,
        Command::Pki { out } => {
            let m = test_pki::fixtures::generate_with(&out, &test_pki::fixtures::FixtureOptions::fast())?;
            println!("{}", serde_json::to_string(&m)?);
            Ok(())
        }
        Command::Crl { pki, ca, entries, list, at, days, out } => {
            let read =
                |f: &str| std::fs::read_to_string(pki.join(f)).with_context(|| format!("{}", pki.join(f).display()));
            let mut listed = Vec::new();
            for (i, file) in list.iter().enumerate() {
                let der = test_pki::fixtures::pem_to_der(&read(file)?)?;
                let serial = test_pki::cert_serial_hex(&der).and_then(|h| test_pki::unhex(&h));
                listed.push((at + i, serial.with_context(|| format!("{file} is not a certificate"))?));
            }
            let now = test_pki::now();
            let key = ca.replace(".pem", ".key.pem");
            let crl = test_pki::fixtures::sign_large_crl(
                &read(&ca)?,
                &read(&key)?,
                entries,
                &listed,
                now - 60,
                now + days * 86_400,
                u64::try_from(now)?,
            )?;
            std::fs::write(&out, &crl).with_context(|| format!("{}", out.display()))?;
            println!("{}", json!({"out": out, "entries": entries.max(listed.len()), "bytes": crl.len()}));
            Ok(())
        }
        Command::Register { people, out, changed_out } => {
            write_register(&out, people, false)?;
            if let Some(changed) = &changed_out {
                write_register(changed, people, true)?;
            }
            println!("{}", json!({"out": out, "changed_out": changed_out, "people": people}));
            Ok(())
        }
        Command::Argon2Bound { seconds } => {
            let b = argon2_bound(Duration::from_secs_f64(seconds.clamp(0.5, 120.0))).await?;
            println!("{}", serde_json::to_string(&b)?);
            Ok(())
        }
    }
}

/// Writes a generated personnel register: person `i` gets a distinct national ID (letter,
/// sex digit and serial from `i`, then the check digit), so the same `people` always give the
/// same file; `changed` moves every hundredth person to another unit.
fn write_register(out: &std::path::Path, people: usize, changed: bool) -> Result<()> {
    use std::io::Write;
    const LETTERS: &[u8; 26] = b"ABCDEFGHJKLMNPQRSTUVXYWZIO";
    if people > 26 * 2 * 10_000_000 {
        bail!("at most 520,000,000 people");
    }
    let file = std::fs::File::create(out).with_context(|| format!("{}", out.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(w, "national_id,name,agency_code,unit,person_category,concurrent_duty,status,email")?;
    for i in 0..people {
        let letter = char::from(LETTERS[i % 26]);
        let sex = if (i / 26) % 2 == 0 { '1' } else { '2' };
        let first_nine = format!("{letter}{sex}{:07}", i / 52);
        let nid = idp::national_id::NationalId::with_check_digit(&first_nine)
            .with_context(|| format!("no check digit for {first_nine}"))?;
        let unit = if changed && i % 100 == 0 { "人事室" } else { "資訊處" };
        writeln!(w, "{},測試人員{i},A21000000I,{unit},01,,active,p{i}@example.gov.tw", nid.expose())?;
    }
    w.flush()?;
    Ok(())
}

/// What password sign-in is bounded by: Argon2id verifications per second with every core
/// hashing (the server's parameters, from the same build).
#[derive(serde::Serialize)]
struct Argon2Bound {
    threads: usize,
    verifications: u64,
    seconds: f64,
    per_s: f64,
}

async fn argon2_bound(span: Duration) -> Result<Argon2Bound> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let hash = idp::authn::password::hash_password("bound-Password-2026").map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let until = started + span;
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..threads {
        let hash = hash.clone();
        pending.spawn_blocking(move || {
            let mut n = 0u64;
            while Instant::now() < until {
                if idp::authn::password::verify_password("bound-Password-2026", &hash) {
                    n += 1;
                }
            }
            n
        });
    }
    let mut verifications = 0;
    while let Some(n) = pending.join_next().await {
        verifications += n?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Argon2Bound { threads, verifications, seconds, per_s: (verifications as f64 / seconds * 10.0).round() / 10.0 })
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3 (`state`);
    // utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// CPU time of the whole machine so far, from `/proc/stat`, in clock ticks: busy (everything
/// but idle and iowait), interrupts (irq + softirq: loopback TCP is largely softirq work, which
/// no process's own counters include), total; and the number of CPUs.
fn machine_ticks() -> Option<(u64, u64, u64, usize)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    let interrupts = v.get(5)? + v.get(6)?;
    let cpus =
        stat.lines().filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit)).count();
    Some((total - idle, interrupts, total, cpus.max(1)))
}

/// Measures the CPU use of this tool, the server (if its pid is known) and the whole machine
/// across one run, so a report can tell whether the cores were saturated and by whom.
struct CpuWatch {
    wall: Instant,
    tool: Option<f64>,
    server: Option<(String, f64)>,
    machine: Option<(u64, u64, u64, usize)>,
}

/// CPU use over a run, in percent of one core (machine: percent of all cores).
pub struct CpuUse {
    pub tool: Option<f64>,
    pub server: Option<f64>,
    pub machine: Option<f64>,
    /// Interrupt handling (mostly the loopback network's softirq), in percent of one core.
    pub interrupts: Option<f64>,
    /// Everything but this tool, the server and interrupts (a build, another test), in
    /// percent of one core: figures taken while this is high are disturbed.
    pub other: Option<f64>,
    /// The wall-clock seconds the percentages are of.
    pub wall_s: f64,
}

impl CpuWatch {
    fn start(server_pid: Option<u32>) -> Self {
        let server = server_pid.map(|p| p.to_string()).and_then(|p| cpu_seconds(&p).map(|s| (p, s)));
        Self { wall: Instant::now(), tool: cpu_seconds("self"), server, machine: machine_ticks() }
    }

    fn stop(&self) -> CpuUse {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-3);
        let pct = |a: f64, b: f64| ((b - a) / wall * 1000.0).round() / 10.0;
        let tool = self.tool.zip(cpu_seconds("self")).map(|(a, b)| pct(a, b));
        let server = self.server.as_ref().and_then(|(p, a)| cpu_seconds(p).map(|b| pct(*a, b)));
        // Shares of all CPU time: busy, and interrupts; then in percent of one core.
        let shares = self.machine.zip(machine_ticks()).and_then(|((b0, i0, t0, cpus), (b1, i1, t1, _))| {
            let span = t1.checked_sub(t0).filter(|s| *s > 0)? as f64;
            Some(((b1 - b0) as f64 / span, (i1 - i0) as f64 / span, cpus as f64))
        });
        let round = |v: f64| (v * 10.0).round() / 10.0;
        let machine = shares.map(|(busy, _, _)| round(busy * 100.0));
        let interrupts = shares.map(|(_, irq, cpus)| round(irq * cpus * 100.0));
        let other = shares
            .zip(tool)
            .zip(server)
            .map(|(((busy, irq, cpus), t), s)| round(((busy - irq) * cpus * 100.0 - t - s).max(0.0)));
        CpuUse { tool, server, machine, interrupts, other, wall_s: wall }
    }
}

/// Above this share of one core taken by other processes, a run's figures are flagged.
const OTHER_CPU_WARN: f64 = 15.0;

async fn run_scenarios(args: RunArgs, threads: usize) -> Result<()> {
    let base = target::loopback_base(&args.base_url).await?;
    if !(args.duration > 0.0 && args.duration <= 600.0) {
        bail!("--duration must be in (0, 600] seconds");
    }
    if !(0.0..=60.0).contains(&args.warmup) {
        bail!("--warmup must be in [0, 60] seconds");
    }
    if !(1..=4096).contains(&args.concurrency) || !(1..=65_536).contains(&args.max_in_flight) {
        bail!("--concurrency must be 1..=4096 and --max-in-flight 1..=65536");
    }
    if let Some(r) = args.rate {
        if !(r > 0.0 && r <= 1_000_000.0) {
            bail!("--rate must be in (0, 1000000]");
        }
    }
    if let Some(f) = args.open_fraction {
        if !(f > 0.0 && f <= 1.0) {
            bail!("--open-fraction must be in (0, 1]");
        }
    }
    let scenarios = if args.scenarios.is_empty() { Scenario::ALL.to_vec() } else { args.scenarios.clone() };
    let timeout = Duration::from_secs(args.timeout.clamp(1, 120));
    // Idle connections kept for reuse: enough for the open loop's peak, or every burst would
    // open (and then close) fresh connections and measure TCP set-up instead of the server.
    let connections = args.concurrency.max(args.max_in_flight);
    let http = load_client(timeout, connections)?;
    let ep = Endpoints::discover(&http, &base).await?;
    let cc = args.cc_client.as_deref().map(ClientCreds::from_file).transpose()?;
    // Username and password may come from the environment, so only the client file decides
    // whether the SSO scenario is configured.
    let sso = match (&args.sso_client, &args.username, &args.password) {
        (Some(file), Some(u), Some(p)) => Some(SsoSetup {
            client: ClientCreds::from_file(file)?,
            redirect_uri: args.redirect_uri.clone(),
            scope: args.scope.clone(),
            username: u.clone(),
            password: p.clone(),
            sessions: args.sessions.unwrap_or(args.concurrency).clamp(1, 4096),
            peer: args.peer,
            card: args.card.as_deref().map(scenario::SoftCard::from_file).transpose()?,
        }),
        (Some(_), _, _) => {
            bail!("--sso-client needs --username and --password (or LOADTEST_USERNAME, LOADTEST_PASSWORD)")
        }
        (None, _, _) => None,
    };
    let bounds = Bounds {
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        max_requests: args.max_requests.max(1),
    };
    let tick = Duration::from_micros(args.tick_us.min(10_000));
    let mut rows = Vec::new();
    let mut bound = None;
    for scenario in scenarios {
        if scenario == Scenario::PasswordSignIn && sso.is_some() && !args.peer && args.argon2_seconds > 0.0 {
            eprintln!("idp-load: Argon2id bound, {} s on all cores …", args.argon2_seconds);
            bound = Some(argon2_bound(Duration::from_secs_f64(args.argon2_seconds.min(120.0))).await?);
        }
        let Some(prepared) = Prepared::setup(scenario, &http, &base, &ep, cc.as_ref(), sso.as_ref())
            .await
            .with_context(|| format!("setting up {scenario}"))?
        else {
            continue;
        };
        let prepared = Arc::new(prepared);
        let steps = scenario.steps();
        let open = |rate: f64| {
            let (prepared, http) = (prepared.clone(), http.clone());
            async move {
                eprintln!("idp-load: {scenario}: open loop at {rate:.0}/s …");
                let cpu = CpuWatch::start(args.server_pid);
                let m = runner::run_open(prepared, http, steps.len(), rate, args.max_in_flight, tick, bounds).await?;
                anyhow::Ok(Row::new(scenario.name(), "open", None, Some(rate), steps, &m, cpu.stop()))
            }
        };
        match args.rate {
            Some(rate) => rows.push(open(rate).await?),
            None => {
                eprintln!("idp-load: {scenario}: closed loop, {} workers …", args.concurrency);
                let cpu = CpuWatch::start(args.server_pid);
                let m =
                    runner::run_closed(prepared.clone(), http.clone(), steps.len(), args.concurrency, bounds).await?;
                let row = Row::new(scenario.name(), "closed", Some(args.concurrency), None, steps, &m, cpu.stop());
                let max = row.requests_per_s;
                rows.push(row);
                if let Some(f) = args.open_fraction {
                    if max > 0.0 {
                        rows.push(open((max * f).round().max(1.0)).await?);
                    }
                }
            }
        }
    }
    let doc = json!({
        "base_url": base.as_str(),
        "tool_threads": threads,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rows": rows,
        "argon2id_bound": bound,
    });
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&doc)?).with_context(|| format!("{}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", report::table(&rows));
        if let Some(b) = &bound {
            let closed = rows.iter().find(|r| r.scenario == Scenario::PasswordSignIn.name() && r.mode == "closed");
            let share = closed
                .map(|r| format!(" — password-sign-in reached {:.0} % of it", r.requests_per_s / b.per_s * 100.0));
            println!(
                "argon2id bound (same build, {} threads, verifications alone): {:.1}/s{}",
                b.threads,
                b.per_s,
                share.unwrap_or_default()
            );
        }
        for r in rows.iter().filter(|r| r.errors > 0) {
            eprintln!("idp-load: {} errors: {}", r.scenario, r.error_kinds);
        }
        for r in rows.iter().filter(|r| r.other_cpu_pct.is_some_and(|o| o > OTHER_CPU_WARN)) {
            eprintln!(
                "idp-load: warning: other processes used {:.0}% of a core during {} ({}): its figures are disturbed",
                r.other_cpu_pct.unwrap_or_default(),
                r.scenario,
                r.mode
            );
        }
    }
    Ok(())
}
