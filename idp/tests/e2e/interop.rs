//! Interoperability with relying-party libraries other people wrote: Authlib (Python, PyPI) and
//! openid-client (Node, npm) run the authorization-code flow with PKCE against the real server,
//! plain, with a pushed authorization request (RFC 9126), with DPoP-bound tokens (RFC 9449), and
//! with both — discovery, the authorization request, the callback's state and `iss`, the code
//! exchange with client_secret_basic, the ID token's signature and nonce, userinfo and a refresh,
//! each done by the library.
//!
//! Each library is driven through a small script that speaks one line protocol
//! (`tests/support/interop/authlib_client.py`, `tests/support/node-client/client.mjs`): it prints
//! `AUTHORIZE <url>`, reads the URL the browser was sent back to on one line, and prints
//! `RESULT <json>` (or `ERROR <message>`). The person's part — following the URL, signing in —
//! is played here over HTTP. Authlib comes from `tests/support/requirements.txt`
//! (`python3 -m pip install -r idp/tests/support/requirements.txt`), openid-client from
//! `tests/support/node-client/package-lock.json` (`npm ci --prefix idp/tests/support/node-client`);
//! CI installs both, and a test without its library fails saying how to install it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const PW: &str = "Civil-Service-2026";

/// The four ways the flow runs: (PAR, DPoP).
const MODES: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

fn support(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(path)
}

#[derive(Clone, Copy, Debug)]
enum Library {
    Authlib,
    OpenidClient,
}

impl Library {
    /// Panics, saying how to install it, when the library is missing.
    fn check_installed(self) {
        match self {
            Library::Authlib => {
                let how = "python3 -m pip install -r idp/tests/support/requirements.txt";
                let ok = Command::new("python3")
                    .args(["-c", "import authlib, joserfc, requests"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "the Authlib interoperability test needs python3 with Authlib: run `{how}`");
            }
            Library::OpenidClient => {
                let how = "npm ci --prefix idp/tests/support/node-client";
                let installed = support("node-client/node_modules/openid-client/package.json");
                assert!(
                    installed.exists(),
                    "the openid-client interoperability test needs its node_modules ({} is missing): run `{how}`",
                    installed.display()
                );
                let node = Command::new("node").arg("--version").stdout(Stdio::null()).status();
                assert!(node.is_ok_and(|s| s.success()), "the openid-client interoperability test needs node: {how}");
            }
        }
    }

    fn command(self) -> Command {
        match self {
            Library::Authlib => {
                let mut c = Command::new("python3");
                c.arg(support("interop/authlib_client.py"));
                c
            }
            Library::OpenidClient => {
                let mut c = Command::new("node");
                c.arg(support("node-client/client.mjs"));
                c
            }
        }
    }
}

/// A running client script; dropping it kills it (the scripts start no children of their own).
struct Script {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Script {
    fn start(library: Library, base: &str, client: &(String, String), par: bool, dpop: bool) -> Self {
        let mut cmd = library.command();
        let (id, secret) = (client.0.as_str(), client.1.as_str());
        // `--name=value`: a random secret may begin with `-`, which both scripts' parsers would
        // otherwise take for an option.
        for (name, value) in [("issuer", base), ("client-id", id), ("client-secret", secret), ("redirect-uri", CB)] {
            cmd.arg(format!("--{name}={value}"));
        }
        cmd.arg("--auth-method=client_secret_basic");
        if par {
            cmd.arg("--par");
        }
        if dpop {
            cmd.arg("--dpop");
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let what = format!("{library:?} (par {par}, dpop {dpop})");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let stdin = child.stdin.take();
        Self { what, child, stdin, lines, stderr }
    }

    /// The next line that starts with `prefix`; an `ERROR` line, the end of the output or a
    /// minute's silence fails the test with what the script said.
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                    assert!(
                        !line.starts_with("ERROR"),
                        "{} failed: {line}\nstderr: {}",
                        self.what,
                        self.stderr.lock().unwrap()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{} ended without a {prefix}line ({:?})\nstderr: {}",
                    self.what,
                    self.child.wait(),
                    self.stderr.lock().unwrap()
                ),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no {prefix}line within 60 s\nstderr: {}", self.what, self.stderr.lock().unwrap())
                }
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        self.stdin = None; // one line only
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `idp clients create` with `args` (default scopes, which include offline_access); returns
/// (id, secret).
fn create(idp: &Idp, name: &str, args: &[&str]) -> (String, String) {
    let mut cmd = vec!["clients", "create", "--name", name, "--redirect-uri", CB, "--json"];
    cmd.extend_from_slice(args);
    let v: Value = serde_json::from_str(&idp.cli_ok(&cmd)).unwrap();
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string())
}

/// The person's part: a fresh browser follows the authorization URL, is sent to the login page,
/// signs in, and is sent back to the client; answers the URL it was sent back to.
async fn person_signs_in(base: &str, authorize: &str) -> String {
    let browser = Browser::new(base);
    let r = browser.get(authorize).await;
    let login = r.location.unwrap_or_else(|| panic!("/authorize did not redirect: {} {}", r.status, r.body));
    assert!(login.starts_with("/login"), "to the login page first: {login}");
    let r = browser.sign_in_at(&login, "ming.wang", PW).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let callback = r.location.unwrap();
    assert!(callback.starts_with(CB), "back to the client: {callback}");
    assert_eq!(query_param(&callback, "iss").as_deref(), Some(base), "RFC 9207 iss: {callback}");
    callback
}

/// One server, two clients — an ordinary one and one that must push its requests and have its
/// tokens DPoP-bound (for PAR + DPoP) — and the library run in every mode.
async fn interop(library: Library) {
    library.check_installed();
    let mut idp = Idp::new();
    idp.import_register();
    let plain = create(&idp, "Interop app", &[]);
    let fapi = create(&idp, "Interop FAPI app", &["--require-par", "--dpop-bound-access-tokens"]);
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;

    for (par, dpop) in MODES {
        let what = format!("{library:?} par {par} dpop {dpop}");
        let client = if par && dpop { &fapi } else { &plain };
        let pushed_before = idp.audit_count("par.push", "success");
        let mut script = Script::start(library, &idp.base, client, par, dpop);

        let url = script.expect("AUTHORIZE ");
        assert!(url.starts_with(&format!("{}/authorize?", idp.base)), "{what}: {url}");
        assert_eq!(query_param(&url, "client_id").as_deref(), Some(client.0.as_str()), "{what}: {url}");
        if par {
            // A pushed request: the browser carries only the client and the request_uri.
            let request_uri = query_param(&url, "request_uri").unwrap_or_else(|| panic!("{what}: {url}"));
            assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{what}: {request_uri}");
            for name in ["redirect_uri", "scope", "state", "nonce", "code_challenge"] {
                assert!(query_param(&url, name).is_none(), "{what}: {name} was pushed, not sent: {url}");
            }
            assert_eq!(idp.audit_count("par.push", "success"), pushed_before + 1, "{what}: pushed once");
            let detail = idp.audit_events("par.push").last().unwrap().3.clone();
            assert_eq!(detail.contains("bound to a DPoP key"), dpop, "{what}: the push's proof binds: {detail}");
        } else {
            assert!(query_param(&url, "request_uri").is_none(), "{what}: {url}");
            assert_eq!(query_param(&url, "redirect_uri").as_deref(), Some(CB), "{what}: {url}");
            assert_eq!(query_param(&url, "code_challenge_method").as_deref(), Some("S256"), "{what}: {url}");
            for name in ["code_challenge", "state", "nonce"] {
                assert!(query_param(&url, name).is_some(), "{what}: {name}: {url}");
            }
            assert_eq!(idp.audit_count("par.push", "success"), pushed_before, "{what}: nothing pushed");
        }

        let callback = person_signs_in(&idp.base, &url).await;
        script.send(&callback);
        let result: Value = serde_json::from_str(&script.expect("RESULT ")).unwrap();

        // openid-client (oauth4webapi) lowercases token_type; the server sends "DPoP" / "Bearer".
        let expected = if dpop { "DPoP" } else { "Bearer" };
        let token_type = result["token_type"].as_str().unwrap_or_default();
        assert!(token_type.eq_ignore_ascii_case(expected), "{what}: token_type {result}");
        let sub = result["id_token_sub"].as_str().unwrap_or_default();
        assert!(!sub.is_empty(), "{what}: {result}");
        assert_eq!(result["userinfo_sub"].as_str(), Some(sub), "{what}: {result}");
        assert_eq!(result["userinfo"]["sub"].as_str(), Some(sub), "{what}: {result}");
        assert_eq!(result["userinfo"]["preferred_username"], "ming.wang", "{what}: {result}");
        assert_eq!(result["userinfo"]["name"], "王小明", "{what}: {result}");
        if dpop {
            let jkt = result["dpop_jkt"].as_str().unwrap_or_else(|| panic!("{what}: not bound: {result}"));
            assert_eq!(result["key_jkt"].as_str(), Some(jkt), "{what}: bound to the library's own key: {result}");
        } else {
            assert!(result["dpop_jkt"].is_null(), "{what}: a bearer token names no key: {result}");
        }
        assert_eq!(result["refreshed"], true, "{what}: offline_access brings a refresh token: {result}");
        let refreshed_type = result["refreshed_token_type"].as_str().unwrap_or_default();
        assert!(refreshed_type.eq_ignore_ascii_case(expected), "{what}: the refresh keeps the binding: {result}");
    }
    // Every push the libraries made was accepted; none was refused.
    assert_eq!(idp.audit_count("par.push", "success"), 2);
    assert_eq!(idp.audit_count("par.push", "refused"), 0);
    idp.stop();
}

#[tokio::test]
async fn oidcc_interop_authlib_code_flow_par_and_dpop() {
    interop(Library::Authlib).await;
}

#[tokio::test]
async fn oidcc_interop_openid_client_code_flow_par_and_dpop() {
    interop(Library::OpenidClient).await;
}
