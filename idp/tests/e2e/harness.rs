//! Starts the real `idp` binary on a free port with a fresh database, and plays a browser.
//!
//! Storage: the embedded default (a SQLite file in a temporary folder, in-process store) unless
//! `IDP_TEST_DATABASE_URL` (a PostgreSQL server URL; a new database is created per test and
//! dropped afterwards) and/or `IDP_TEST_CACHE_URL` (Redis; keys get a per-test prefix) are set.

#![allow(dead_code)]

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
    child: Option<Child>,
    env: Vec<(String, String)>,
    pg_admin: Option<(String, String)>,
}

fn random_name() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..12).map(|_| (b'a' + rng.gen_range(0..26)) as char).collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Idp {
    /// Prepares configuration and a fresh database, without starting the server.
    pub fn new() -> Self {
        Self::with_env(&[])
    }

    pub fn with_env(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut env = vec![
            ("IDP_DATA_DIR".to_string(), dir.path().join("data").display().to_string()),
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
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        Self { dir, base, child: None, env, pg_admin }
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
        cmd.output().unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "idp {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
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

    /// Starts the server and waits until it answers.
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
        cmd.stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().unwrap());
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "idp serve exited with {status}: {}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("idp did not start: {}", std::fs::read_to_string(self.log_path()).unwrap_or_default());
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
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

/// One row of the audit page's table, by column.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: String,
    pub event: String,
    pub outcome: String,
    pub actor: String,
    pub account_id: String,
    pub client_id: String,
    pub address: String,
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
                account_id: cells[4].clone(),
                client_id: cells[5].clone(),
                address: cells[6].clone(),
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

/// Receives back-channel logout posts; the first `fail_first` get a 500.
pub async fn logout_receiver(fail_first: usize) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
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
                        seen += 1;
                        let status = if seen <= fail_first { "500 Internal Server Error" } else { "200 OK" };
                        let _ = s
                            .write_all(
                                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                    .as_bytes(),
                            )
                            .await;
                        if seen > fail_first {
                            let _ = tx.send(text[end + 4..].to_string());
                        }
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
