//! Starts the real `idp` binary on a socket bound here (port 0, handed over by socket activation)
//! with a fresh database, and plays a browser. Every child process is owned by a [`Proc`] guard.
//!
//! Storage: the embedded default (a SQLite file in a temporary folder, in-process store) unless
//! `IDP_TEST_DATABASE_URL` (a PostgreSQL server URL; a new database is created per test and
//! dropped afterwards) and/or `IDP_TEST_CACHE_URL` (Redis; keys get a per-test prefix) are set.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection;

pub const AGENCIES: &str = "code,name,parent_code,oid\nA00000000A,行政院,,2.16.886.101.20003\nA21000000I,行政院人事行政總處,A00000000A,2.16.886.101.20003.20001\n";
pub const MING: &str = "A123456789";
pub const MEIHUA: &str = "B223344554";
pub const CHIH: &str = "C123456709";
pub const PERSONNEL: &str = "national_id,name,agency_code,unit,person_category,concurrent_duty,status,email\n\
A123456789,王小明,A21000000I,資訊處,01,,active,ming@example.gov.tw\n\
B223344554,李美華,A21000000I,人事室,08,,active,meihua@example.gov.tw\n\
C123456709,陳志強,A21000000I,秘書室,01,,separated,chih@example.gov.tw\n";

pub struct Idp {
    pub dir: tempfile::TempDir,
    pub base: String,
    child: Option<Proc>,
    env: Vec<(String, String)>,
    pg_admin: Option<(String, String)>,
    /// The main site's socket, bound here and kept for the instance's life: every start of the
    /// server gets it (socket activation), so the port is known before the first start and no
    /// other test can take it between a stop and the next start.
    http: Option<TcpListener>,
    /// The main site's port, fixed when the instance is made.
    port: u16,
    /// The card TLS listener's socket, when the test asked for one (`IDP_CARD_LOGIN__BIND`
    /// given as `127.0.0.1:0`).
    card: Option<TcpListener>,
    /// The metrics listener's socket, likewise (`IDP_METRICS__BIND` given as `127.0.0.1:0`).
    metrics: Option<TcpListener>,
}

fn random_name() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..12).map(|_| (b'a' + rng.gen_range(0..26)) as char).collect()
}

/// A loopback port that nothing listens on, for "the service is down" cases: bound and let go,
/// so a connection to it is refused. (Another process may take it later; these cases only ever
/// expect refusals or errors from it, never a particular server.)
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A listening socket on a loopback port the system picked, to hand to a server as it starts.
pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// A loopback port held without listening: connections to it are refused, as to a service
/// that is down, and no other process can take the port, until [`listen`] opens it (for the
/// service to come up on the same address later).
pub fn reserved() -> TcpListener {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    TcpListener::from(fd)
}

/// Starts listening on a [`reserved`] socket.
pub fn listen(socket: &TcpListener) {
    nix::sys::socket::listen(socket, nix::sys::socket::Backlog::new(128).unwrap()).unwrap();
}

/// Hands listening sockets to a command the way systemd does (socket activation): the n-th as
/// fd 3+n, named in `LISTEN_FDNAMES`. `LISTEN_PID` is left out: it is not known before the
/// fork, and the servers accept its absence. The sockets stay open here too.
pub fn hand_over(cmd: &mut Command, sockets: &[(&TcpListener, &str)]) {
    use command_fds::{CommandFdExt, FdMapping};
    let mappings = sockets
        .iter()
        .enumerate()
        .map(|(i, (l, _))| FdMapping { parent_fd: l.try_clone().unwrap().into(), child_fd: 3 + i as i32 })
        .collect();
    cmd.fd_mappings(mappings).unwrap();
    let names: Vec<&str> = sockets.iter().map(|(_, n)| *n).collect();
    cmd.env("LISTEN_FDS", sockets.len().to_string()).env("LISTEN_FDNAMES", names.join(":"));
}

/// A child process owned by the test: dropping the guard (at the end of the test, on a failed
/// assertion or a panic alike) kills it and every process it started, and reaps it, so no test
/// leaves a server, a browser or a proxy behind.
pub struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { child, name: name.to_string() }
    }

    /// Starts a server that prints its address (`listening on ADDR`, or any line `parse`
    /// recognises) on standard output, and waits for that line.
    pub fn spawn_announcing<T>(name: &str, cmd: &mut Command, parse: impl Fn(&str) -> Option<T>) -> (Self, T) {
        cmd.stdout(Stdio::piped());
        let mut proc = Self::spawn(name, cmd);
        let out = proc.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads every line to the end, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(v) = parse(&line) {
                        return (proc, v);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("{name} closed its output without saying where it listens: {:?}", proc.child.wait())
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if std::time::Instant::now() > deadline => {
                    panic!("{name} did not say where it listens within 60 s")
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Starts one of our servers with port 0 and returns its `http://ADDR` base.
    pub fn spawn_listening(name: &str, cmd: &mut Command) -> (Self, String) {
        let (proc, addr) = Self::spawn_announcing(name, cmd, |l| {
            l.strip_prefix("listening on ").and_then(|a| a.trim().parse::<std::net::SocketAddr>().ok())
        });
        (proc, format!("http://{addr}"))
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Kills the process and its descendants and reaps it (again on drop: harmless).
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill_tree(self.child.id());
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{} (pid {}) killed by its guard", self.name, self.child.id());
        }
    }
}

/// Kills a process and all its descendants (chromedriver's Chromium, nginx's workers). Each is
/// stopped before its children are read, so none can start another or be reaped (and its pid
/// reused) while the tree is walked; then all are killed.
fn kill_tree(root: u32) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let mut seen = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if seen.contains(&pid) {
            continue;
        }
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGSTOP);
        seen.push(pid);
        todo.extend(children_of(pid));
    }
    for pid in seen {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

/// The children of a process, from Linux's /proc (every thread's list).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return vec![] };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

impl Idp {
    /// Prepares configuration and a fresh database, without starting the server.
    pub fn new() -> Self {
        Self::with_env(&[])
    }

    pub fn with_env(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let http = listener();
        let port = http.local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let mut env = vec![
            ("IDP_DATA_DIR".to_string(), dir.path().join("data").display().to_string()),
            // What the server would bind; it is handed `http` instead (and says so in its log).
            ("IDP_HTTP__BIND".into(), format!("127.0.0.1:{port}")),
            ("IDP_ISSUER".into(), base.clone()),
            ("IDP_HTTP__WORKERS".into(), "2".into()),
            ("IDP_LOG__LEVEL".into(), "info".into()),
        ];
        let mut pg_admin = None;
        if let Ok(admin) = std::env::var("IDP_TEST_DATABASE_URL") {
            let name = format!("idp_test_{}", random_name());
            let mut conn =
                diesel::PgConnection::establish(&admin).expect("IDP_TEST_DATABASE_URL must reach PostgreSQL");
            conn.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
            let mut url = url::Url::parse(&admin).unwrap();
            url.set_path(&format!("/{name}"));
            env.push(("IDP_DATABASE__URL".into(), url.to_string()));
            pg_admin = Some((admin, name));
        }
        if let Ok(cache) = std::env::var("IDP_TEST_CACHE_URL") {
            env.push(("IDP_CACHE__URL".into(), cache));
            env.push(("IDP_CACHE__KEY_PREFIX".into(), format!("test:{}:", random_name())));
        }
        let (mut card, mut metrics) = (None, None);
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            let slot = match *k {
                "IDP_CARD_LOGIN__BIND" => Some(&mut card),
                "IDP_METRICS__BIND" => Some(&mut metrics),
                _ => None,
            };
            let v = match slot {
                Some(slot) if *v == "127.0.0.1:0" => {
                    let l = listener();
                    let at = l.local_addr().unwrap().to_string();
                    *slot = Some(l);
                    at
                }
                _ => v.to_string(),
            };
            env.push((k.to_string(), v));
        }
        let port = http.local_addr().unwrap().port();
        Self { dir, base, child: None, env, pg_admin, http: Some(http), port, card, metrics }
    }

    /// The main site's port (known before the server starts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes this process's copy of the main site's listening socket, so that once the server
    /// closes its own the port refuses connections (as without socket activation). The instance
    /// cannot be started again afterwards.
    pub fn release_port(&mut self) {
        self.http = None;
    }

    /// The metrics listener's address, when the instance has one.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(|l| l.local_addr().unwrap())
    }

    /// The card TLS listener's base URL, when the instance has one.
    pub fn card_base(&self) -> Option<String> {
        self.card.as_ref().map(|l| format!("https://{}", l.local_addr().unwrap()))
    }

    /// Changes a setting for the next start and the next commands.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Gives `idp serve` this instance's sockets.
    fn hand_over_sockets(&self, cmd: &mut Command) {
        let mut sockets = Vec::new();
        if let Some(http) = &self.http {
            sockets.push((http, "http"));
        }
        if let Some(card) = &self.card {
            sockets.push((card, "card-tls"));
        }
        if let Some(metrics) = &self.metrics {
            sockets.push((metrics, "metrics"));
        }
        hand_over(cmd, &sockets);
    }

    /// Another node of the same deployment: its own port and folder, the same database, cache
    /// (and key prefix), data key and issuer. Meaningful on PostgreSQL, where nodes share rows.
    pub fn peer(&self, extra: &[(&str, &str)]) -> Self {
        let key = self.dir.path().join("data").join("data.key").display().to_string();
        let mut shared: Vec<(String, String)> = vec![("IDP_SECRETS__DATA_KEY_FILE".into(), key)];
        for k in [
            "IDP_DATABASE__URL",
            "IDP_CACHE__URL",
            "IDP_CACHE__KEY_PREFIX",
            "IDP_ISSUER",
            "IDP_OUTBOUND__ALLOW_PRIVATE_ADDRESSES",
        ] {
            if let Some(v) = self.env_value(k) {
                shared.push((k.into(), v));
            }
        }
        let mut all: Vec<(&str, &str)> = shared.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        Self::with_env(&all)
    }

    /// Whether the run has PostgreSQL for the tests that need several nodes; panics when the
    /// run was meant to (`IDP_TEST_EXPECT=postgres-redis`) and does not, so a skip cannot hide.
    pub fn several_nodes_possible(test: &str) -> bool {
        if std::env::var_os("IDP_TEST_DATABASE_URL").is_some() {
            return true;
        }
        assert_ne!(
            std::env::var("IDP_TEST_EXPECT").as_deref(),
            Ok("postgres-redis"),
            "{test} needs IDP_TEST_DATABASE_URL in the PostgreSQL run"
        );
        eprintln!("skipped {test}: several nodes need PostgreSQL (IDP_TEST_DATABASE_URL)");
        false
    }

    /// Kills the server at once (SIGKILL): no shutdown, nothing finished.
    pub fn kill(&mut self) {
        self.stop();
    }

    /// A setting this instance runs with (as given to the server).
    pub fn env_value(&self, key: &str) -> Option<String> {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    /// Waits for the server to exit by itself, up to `within`; its exit status if it did.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + within;
        while std::time::Instant::now() < until {
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub fn bin() -> &'static str {
        env!("CARGO_BIN_EXE_idp")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("data").join("outbox")
    }

    /// Runs an `idp` command with this instance's configuration.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(Self::bin());
        cmd.args(args).current_dir(self.dir.path()).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if matches!(args.first(), Some(&"serve") | Some(&"demo")) {
            self.hand_over_sockets(&mut cmd);
        }
        cmd.output().unwrap()
    }

    /// Runs an `idp` command with this instance's configuration and some settings changed.
    pub fn cli_with(&self, settings: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = Command::new(Self::bin());
        cmd.args(args).current_dir(self.dir.path()).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in settings {
            cmd.env(k, v);
        }
        if matches!(args.first(), Some(&"serve") | Some(&"demo")) {
            self.hand_over_sockets(&mut cmd);
        }
        cmd.output().unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "idp {args:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes a file into the temporary folder.
    pub fn file(&self, name: &str, contents: &[u8]) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p.display().to_string()
    }

    /// Imports the standard agencies and people.
    pub fn import_register(&self) {
        let a = self.file("agencies.csv", AGENCIES.as_bytes());
        self.cli_ok(&["agencies", "import", &a]);
        let p = self.file("personnel.csv", PERSONNEL.as_bytes());
        self.cli_ok(&["personnel", "import", &p]);
    }

    /// Starts the server on this instance's sockets and waits until it answers.
    pub async fn start(&mut self) {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = Command::new(Self::bin());
        cmd.arg("serve")
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.hand_over_sockets(&mut cmd);
        cmd.stdout(Stdio::null()).stderr(log);
        self.child = Some(Proc::spawn("idp serve", &mut cmd));
        // The socket is open from the start, so a request waits for the server instead of being
        // refused: each try is bounded, and a server that exited ends the wait.
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait()) {
                panic!(
                    "idp serve exited with {status}: {}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("idp did not start: {}", std::fs::read_to_string(self.log_path()).unwrap_or_default());
    }

    /// The running server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Proc::id)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// A direct database connection, for the few tests that must move time (expiry).
    pub fn db(&self) -> idp::store::db::Db {
        let url = self
            .env
            .iter()
            .find(|(k, _)| k == "IDP_DATABASE__URL")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("sqlite://{}", self.dir.path().join("data").join("idp.sqlite3").display()));
        idp::store::db::Db::connect(&url, 1).unwrap()
    }

    /// How many audit events of a kind and outcome are on record.
    pub fn audit_count(&self, event: &str, outcome: &str) -> i64 {
        use diesel::prelude::*;
        use idp::store::db::schema::audit_events;
        let db = self.db();
        let mut c = db.get().unwrap();
        audit_events::table
            .filter(audit_events::event.eq(event))
            .filter(audit_events::outcome.eq(outcome))
            .count()
            .get_result(&mut *c)
            .unwrap()
    }

    /// The audit events of a kind on record, oldest first: (outcome, account, client, detail).
    pub fn audit_events(&self, event: &str) -> Vec<(String, Option<String>, Option<String>, String)> {
        use diesel::prelude::*;
        use idp::store::db::schema::audit_events;
        let db = self.db();
        let mut c = db.get().unwrap();
        audit_events::table
            .filter(audit_events::event.eq(event))
            .order(audit_events::at.asc())
            .select((audit_events::outcome, audit_events::account_id, audit_events::client_id, audit_events::detail))
            .load(&mut *c)
            .unwrap()
    }

    /// Creates a confidential client; returns (id, secret).
    pub fn create_client(&self, redirect: &str, post_logout: &str) -> (String, String) {
        let out = self.cli_ok(&[
            "clients",
            "create",
            "--name",
            "Test app",
            "--redirect-uri",
            redirect,
            "--post-logout-redirect-uri",
            post_logout,
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string())
    }

    /// Creates a confidential client that may get refresh tokens (`openid profile
    /// offline_access`); returns (id, secret).
    pub fn create_refresh_client(&self, name: &str, redirect: &str) -> (String, String) {
        let scope = "openid profile offline_access";
        let out =
            self.cli_ok(&["clients", "create", "--name", name, "--redirect-uri", redirect, "--scope", scope, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string())
    }

    /// Issues a one-time password through the CLI and reads it from the newest mail.
    pub fn reset_password(&self, nid: &str, email: &str) -> String {
        self.cli_ok(&["users", "reset-password", "--national-id", nid, "--email", email]);
        newest_one_time_password(&self.outbox())
    }
}

impl Idp {
    /// Issues a one-time password, signs in with it and activates the account.
    pub async fn activate(&self, nid: &str, account: &str, password: &str) {
        let otp = self.reset_password(nid, "someone@example.gov.tw");
        let b = Browser::new(&self.base);
        assert_eq!(b.sign_in_at("/login", nid, &otp).await.status, 303);
        let csrf = b.get("/activate").await.input("csrf_token").unwrap();
        let fields = [
            ("csrf_token", csrf.as_str()),
            ("account", account),
            ("email", "someone@example.gov.tw"),
            ("password", password),
            ("password_confirm", password),
        ];
        let r = b.post("/activate", &fields).await;
        assert_eq!(r.status, 200, "activation failed: {}", r.body);
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
        if let Some((admin, name)) = &self.pg_admin {
            if let Ok(mut conn) = diesel::PgConnection::establish(admin) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// The password on the `一次性密碼: ` line of the most recent mail in the outbox that has one
/// (a reset to another address also sends a notice, without a password, to the account's own).
pub fn newest_one_time_password(outbox: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(outbox).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    files
        .iter()
        .rev()
        .find_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines().find_map(|l| l.trim().strip_prefix("一次性密碼: ").map(|p| p.trim().to_string()))
        })
        .expect("a mail with a one-time password line in the outbox")
}

/// A browser: keeps cookies, does not follow redirects (the tests look at each one).
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The value of a hidden or text input.
    pub fn input(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\"");
        let at = self.body.find(&marker)?;
        let rest = &self.body[at..];
        let v = rest.find("value=\"")?;
        let rest = &rest[v + 7..];
        let end = rest.find('"')?;
        Some(html_unescape(&rest[..end]))
    }
}

fn html_unescape(s: &str) -> String {
    s.replace("&#x3D;", "=")
        .replace("&#x2F;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Browser {
    pub fn new(base: &str) -> Self {
        let http =
            reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, base: base.to_string() }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    async fn page(r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        Page { status, location, body: r.text().await.unwrap() }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Self::page(self.http.post(self.url(path)).form(form).send().await.unwrap()).await
    }

    /// Fills in the activation form (custom account, e-mail, the password twice) and posts it.
    pub async fn activate(&self, account: &str, email: &str, password: &str) -> Page {
        let csrf = self.get("/activate").await.input("csrf_token").unwrap();
        let fields = [
            ("csrf_token", csrf.as_str()),
            ("account", account),
            ("email", email),
            ("password", password),
            ("password_confirm", password),
        ];
        self.post("/activate", &fields).await
    }

    /// Opens the login page (following the authorize redirect) and signs in.
    pub async fn sign_in_at(&self, login_path: &str, username: &str, password: &str) -> Page {
        let page = self.get(login_path).await;
        assert_eq!(page.status, 200, "login page: {}", page.body);
        let csrf = page.input("csrf_token").unwrap();
        let tx = page.input("tx").unwrap_or_default();
        self.post("/login", &[("csrf_token", &csrf), ("tx", &tx), ("username", username), ("password", password)]).await
    }
}

/// The value of a query parameter in a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A workspace binary (a simulator), built on demand so a test does not depend on build order.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo).args(["build", "-q", "-p", "card-simulator"]).status().unwrap();
    assert!(status.success(), "building the simulators failed");
    dir.join(name)
}

/// One row of the audit page's table, by column (the account and address columns are not read).
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: String,
    pub event: String,
    pub outcome: String,
    pub actor: String,
    pub client_id: String,
    pub detail: String,
}

/// The rows of the audit page's results table (not its search form, help texts or navigation,
/// which name events and outcomes too).
pub fn audit_rows(body: &str) -> Vec<AuditRow> {
    let Some(start) = body.find("<tbody>") else { return vec![] };
    let end = body[start..].find("</tbody>").map_or(body.len(), |e| start + e);
    body[start..end]
        .split("<tr>")
        .filter_map(|row| {
            let cells: Vec<String> =
                row.split("<td>").skip(1).map(|c| html_unescape(c.split("</td>").next().unwrap_or(""))).collect();
            (cells.len() == 8).then(|| AuditRow {
                at: cells[0].clone(),
                event: cells[1].clone(),
                outcome: cells[2].clone(),
                actor: cells[3].clone(),
                client_id: cells[5].clone(),
                detail: cells[7].clone(),
            })
        })
        .collect()
}

/// Runs futures concurrently on this task and collects their results in order.
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// Receives back-channel logout posts; the first `fail_first` get a 500. Yields the bodies of
/// the accepted ones.
pub async fn logout_receiver(fail_first: usize) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (port, mut attempts) = logout_attempts(fail_first).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(a) = attempts.recv().await {
            if a.accepted && tx.send(a.body).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// One post a [`logout_attempts`] receiver got: when it had arrived in full, its body, and
/// whether it was answered 200 (else 500).
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at: std::time::Instant,
    pub body: String,
    pub accepted: bool,
}

/// Receives back-channel logout posts and reports every one, refused or not; the first
/// `fail_first` get a 500 (`usize::MAX`: all of them).
pub async fn logout_attempts(fail_first: usize) -> (u16, tokio::sync::mpsc::UnboundedReceiver<Attempt>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let mut buf = vec![0u8; 65536];
            let mut len = 0;
            loop {
                let n = s.read(&mut buf[len..]).await.unwrap_or(0);
                len += n;
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let cl = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if len >= end + 4 + cl || n == 0 {
                        // Stamped before answering, so the sender's next attempt comes after it.
                        let at = std::time::Instant::now();
                        seen += 1;
                        let accepted = seen > fail_first;
                        let status = if accepted { "200 OK" } else { "500 Internal Server Error" };
                        let _ = s
                            .write_all(
                                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                    .as_bytes(),
                            )
                            .await;
                        let _ = tx.send(Attempt { at, body: text[end + 4..].to_string(), accepted });
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
        }
    });
    (port, rx)
}
