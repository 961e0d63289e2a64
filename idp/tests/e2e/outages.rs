//! Dependency outages and graceful shutdown, against the real server.
//!
//! The server reaches PostgreSQL or Redis through a TCP relay this file owns, so a test can cut
//! the dependency (close live connections, refuse new ones), make it hang (connections accepted
//! and bytes taken, but nothing forwarded), drop live connections once, and restore it. While a
//! dependency is out every answer must be a 503 of the right shape within the time bound; after
//! it returns the node must serve again without a restart, with nothing a person did lost.
//!
//! The PostgreSQL cases need `IDP_TEST_DATABASE_URL`, the Redis ones `IDP_TEST_CACHE_URL`; without
//! them they say so and pass — unless `IDP_TEST_EXPECT=postgres-redis` asked for them, then they
//! fail, so a CI run that lost its servers cannot skip them silently.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const PW: &str = "Civil-Service-2026";
/// The bounds the server runs with here (the defaults, spelled out): a dependency that is out
/// costs a request `checkout_timeout` (PostgreSQL) or two attempts of `cache.timeout` (Redis).
pub(crate) const BOUNDS: [(&str, &str); 3] =
    [("IDP_DATABASE__CHECKOUT_TIMEOUT", "1s"), ("IDP_DATABASE__CONNECT_TIMEOUT", "2s"), ("IDP_CACHE__TIMEOUT", "1s")];
/// No answer may take longer than this while a dependency is out: the bounds above plus a
/// generous margin for a loaded machine (an upper bound that only a hang can exceed).
pub(crate) const LIMIT: Duration = Duration::from_secs(5);

/// What the relay does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    /// Nothing listens: connections are refused.
    Refuse,
    /// Connections are accepted and held, bytes are neither forwarded nor answered.
    Hang,
}

/// A TCP relay in front of a real server, on its own runtime (the harness runs blocking CLI
/// commands on the test's thread, which must not stop the relay).
pub(crate) struct Relay {
    port: u16,
    target: SocketAddr,
    mode: watch::Sender<Mode>,
    shared: Arc<Mutex<Shared>>,
    rt: Option<tokio::runtime::Runtime>,
}

#[derive(Default)]
struct Shared {
    /// The accept loop, aborted (closing the listener) while connections are refused.
    acceptor: Option<tokio::task::AbortHandle>,
    /// Every connection's task; aborting one closes both of its sockets.
    conns: Vec<tokio::task::AbortHandle>,
}

impl Relay {
    pub(crate) fn start(target: SocketAddr) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(Mode::Forward);
        let relay = Relay { port, target, mode, shared: Arc::default(), rt: Some(rt) };
        relay.listen(listener);
        relay
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().unwrap()
    }

    fn listen(&self, listener: std::net::TcpListener) {
        let (target, shared, mode) = (self.target, self.shared.clone(), self.mode.clone());
        listener.set_nonblocking(true).unwrap();
        let task = self.rt().spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((inbound, _)) = listener.accept().await else { return };
                let watch = mode.subscribe();
                let conn = tokio::spawn(async move {
                    if *watch.borrow() == Mode::Hang {
                        // Held open, never read: the client's bytes are taken by the kernel
                        // and nothing ever answers.
                        let _held = &inbound;
                        std::future::pending::<()>().await;
                    }
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    pump(inbound, outbound, watch).await;
                });
                let mut s = shared.lock().unwrap();
                s.conns.retain(|c| !c.is_finished());
                s.conns.push(conn.abort_handle());
            }
        });
        self.shared.lock().unwrap().acceptor = Some(task.abort_handle());
    }

    /// Closes every live connection; how many there were.
    fn close_all(&self) -> usize {
        let mut s = self.shared.lock().unwrap();
        let live = s.conns.iter().filter(|c| !c.is_finished()).count();
        for c in s.conns.drain(..) {
            c.abort();
        }
        live
    }

    /// The server goes away: live connections closed, new ones refused.
    pub(crate) fn cut(&self) {
        self.mode.send_replace(Mode::Refuse);
        if let Some(a) = self.shared.lock().unwrap().acceptor.take() {
            a.abort();
        }
        self.close_all();
    }

    /// The server stops answering: live connections stall, new ones are accepted and stall.
    pub(crate) fn hang(&self) {
        self.mode.send_replace(Mode::Hang);
    }

    /// One network hiccup: live connections closed, forwarding goes on. How many were closed.
    pub(crate) fn drop_connections(&self) -> usize {
        self.close_all()
    }

    /// The server is back: what was stalled is closed (the state a middlebox dropped) and new
    /// connections are forwarded.
    pub(crate) fn restore(&self) {
        self.close_all();
        let previous = self.mode.send_replace(Mode::Forward);
        if previous == Mode::Refuse {
            // The same port again: the server's configuration names it.
            let listener = (0..50)
                .find_map(|_| {
                    let l = std::net::TcpListener::bind(("127.0.0.1", self.port)).ok();
                    if l.is_none() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    l
                })
                .unwrap_or_else(|| panic!("relay port {} could not be bound again", self.port));
            self.listen(listener);
        }
    }

    /// `url` with its host and port replaced by the relay's.
    pub(crate) fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(self.port)).unwrap();
        u.to_string()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Forwards both ways until either side closes; stops reading while the relay hangs.
async fn pump(inbound: TcpStream, outbound: TcpStream, watch: watch::Receiver<Mode>) {
    let (ir, iw) = inbound.into_split();
    let (or, ow) = outbound.into_split();
    tokio::select! {
        _ = copy(ir, ow, watch.clone()) => {}
        _ = copy(or, iw, watch) => {}
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut watch: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while *watch.borrow_and_update() == Mode::Hang {
            if watch.changed().await.is_err() {
                return;
            }
        }
        let n = tokio::select! {
            n = from.read(&mut buf) => n,
            _ = watch.changed() => continue,
        };
        match n {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The URL of a dependency this run has, or `None` (and a note) when it has none. Fails when
/// the run asked for PostgreSQL and Redis and this one is missing.
pub(crate) fn dependency(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) => {
            assert_ne!(
                std::env::var("IDP_TEST_EXPECT").as_deref(),
                Ok("postgres-redis"),
                "IDP_TEST_EXPECT=postgres-redis but {var} is not set: the outage tests would be skipped"
            );
            eprintln!("skipped: {var} is not set (this outage case needs the real server)");
            None
        }
    }
}

pub(crate) fn address_of(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).unwrap();
    let host = u.host_str().unwrap();
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    format!("{host}:{}", u.port().unwrap()).parse().unwrap()
}

/// A signed-in person, a client with refresh tokens, and the tokens of a first sign-in.
struct World {
    idp: Idp,
    relay: Relay,
    browser: Browser,
    client_id: String,
    secret: String,
    access: String,
    refresh: String,
    http: reqwest::Client,
}

/// Starts the server with the dependency named by `key` (`IDP_DATABASE__URL` or
/// `IDP_CACHE__URL`) reached through a relay, and signs a person in.
async fn world(key: &str, real_url: &str) -> World {
    let mut idp = Idp::with_env(&BOUNDS);
    let url = idp.env_value(key).unwrap_or_else(|| real_url.to_string());
    let relay = Relay::start(address_of(&url));
    idp.set_env(key, &relay.url_for(&url));
    idp.import_register();
    let (client_id, secret) = idp.create_refresh_client("Outage app", CB);
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    assert_eq!(browser.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut w = World { idp, relay, browser, client_id, secret, access: String::new(), refresh: String::new(), http };
    let code = w.code().await;
    let (status, t) = w.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)]).await;
    assert_eq!(status, 200, "{t}");
    w.access = t["access_token"].as_str().unwrap().to_string();
    w.refresh = t["refresh_token"].as_str().unwrap().to_string();
    w
}

/// An answer, and how long it took.
pub(crate) struct Timed {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) body: String,
    pub(crate) took: Duration,
}

/// Sends a request; its answer and how long it took.
pub(crate) async fn timed(req: reqwest::RequestBuilder) -> Timed {
    let started = Instant::now();
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let (retry_after, location) = (header("retry-after"), header("location"));
    let body = r.text().await.unwrap();
    Timed { status, retry_after, location, body, took: started.elapsed() }
}

impl World {
    fn authorize_path(&self) -> String {
        format!(
            "/authorize?client_id={}&redirect_uri={CB_ENC}&response_type=code&scope=openid%20offline_access&state=s-1&nonce=n-1",
            self.client_id
        )
    }

    async fn code(&self) -> String {
        let r = self.browser.get(&self.authorize_path()).await;
        let loc = r.location.unwrap_or_else(|| panic!("no redirect: {} {}", r.status, r.body));
        query_param(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"))
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/token", self.idp.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn timed(&self, req: reqwest::RequestBuilder) -> Timed {
        timed(req).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.idp.base)
    }

    /// The browser's request (with its session cookie).
    async fn page(&self, path: &str) -> Timed {
        self.timed(self.browser.http.get(self.url(path))).await
    }

    async fn token_timed(&self, form: &[(&str, &str)]) -> Timed {
        self.timed(self.http.post(self.url("/token")).basic_auth(&self.client_id, Some(&self.secret)).form(form)).await
    }

    async fn userinfo(&self) -> Timed {
        self.timed(self.http.get(self.url("/userinfo")).bearer_auth(&self.access)).await
    }

    async fn introspect(&self) -> Timed {
        self.timed(
            self.http
                .post(self.url("/introspect"))
                .basic_auth(&self.client_id, Some(&self.secret))
                .form(&[("token", self.access.as_str())]),
        )
        .await
    }

    async fn readyz(&self) -> Timed {
        self.timed(self.http.get(self.url("/readyz"))).await
    }

    async fn healthz(&self) -> Timed {
        self.timed(self.http.get(self.url("/healthz"))).await
    }

    /// Waits until `/readyz` says ready again; how long that took.
    async fn until_ready(&self, within: Duration) -> Duration {
        let started = Instant::now();
        while started.elapsed() < within {
            if self.readyz().await.status == 200 {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "not ready {within:?} after the dependency came back: {}",
            std::fs::read_to_string(self.idp.log_path()).unwrap_or_default()
        );
    }
}

pub(crate) fn in_time(what: &str, t: &Timed) {
    assert!(t.took < LIMIT, "{what} took {:?} (limit {LIMIT:?})", t.took);
}

/// A 503 page in the seeds' words, with `Retry-After`.
pub(crate) fn unavailable_page(what: &str, t: &Timed) {
    in_time(what, t);
    assert_eq!(t.status, 503, "{what}: {}", t.body);
    assert!(t.retry_after.is_some(), "{what}: Retry-After");
    assert!(t.body.contains("系統暫時無法使用，請稍後再試"), "{what}: {}", t.body);
}

/// 503 `temporarily_unavailable` JSON, with `Retry-After`.
pub(crate) fn unavailable_json(what: &str, t: &Timed) {
    in_time(what, t);
    assert_eq!(t.status, 503, "{what}: {}", t.body);
    assert!(t.retry_after.is_some(), "{what}: Retry-After");
    let v: Value = serde_json::from_str(&t.body).unwrap_or_else(|_| panic!("{what}: not JSON: {}", t.body));
    assert_eq!(v["error"], "temporarily_unavailable", "{what}: {v}");
}

/// The authorization endpoint, with the client and redirect URI known: the error goes back to
/// the client with its `state`.
fn unavailable_redirect(what: &str, t: &Timed) {
    in_time(what, t);
    assert_eq!(t.status, 302, "{what}: {} {:?}", t.body, t.location);
    let loc = t.location.as_deref().unwrap();
    assert!(loc.starts_with(CB), "{what}: {loc}");
    assert_eq!(query_param(loc, "error").as_deref(), Some("temporarily_unavailable"), "{what}: {loc}");
    assert_eq!(query_param(loc, "state").as_deref(), Some("s-1"));
    assert!(t.retry_after.is_some(), "{what}: Retry-After");
}

/// `/readyz` says 503 within about a second; `/healthz` stays 200.
async fn probes_while_out(w: &World) {
    let r = w.readyz().await;
    assert_eq!(r.status, 503, "readyz: {}", r.body);
    assert!(r.took < Duration::from_secs(2), "readyz took {:?}", r.took);
    let h = w.healthz().await;
    assert_eq!(h.status, 200);
    in_time("healthz", &h);
}

/// What must hold after the dependency is back: the earlier session signs in to the client
/// without a password, the earlier refresh token still works (a refresh refused during the
/// outage was refused whole: the token was not half rotated), and so does the access token.
async fn nothing_lost(w: &mut World) {
    let code = w.code().await;
    let (status, t) = w.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)]).await;
    assert_eq!(status, 200, "{t}");
    let (status, t) = w.token(&[("grant_type", "refresh_token"), ("refresh_token", &w.refresh.clone())]).await;
    assert_eq!(status, 200, "the refresh token issued before the outage: {t}");
    w.refresh = t["refresh_token"].as_str().unwrap().to_string();
    let u = w.userinfo().await;
    assert_eq!(u.status, 200, "{}", u.body);
}

#[tokio::test]
async fn postgresql_cut_or_hanging_gives_503s_within_the_bound_and_service_resumes_with_nothing_lost() {
    let Some(admin) = dependency("IDP_TEST_DATABASE_URL") else { return };
    let mut w = world("IDP_DATABASE__URL", &admin).await;

    for mode in ["cut", "hang"] {
        match mode {
            "cut" => w.relay.cut(),
            _ => w.relay.hang(),
        }
        // Pages, OAuth endpoints, the authorization endpoint.
        let a = w.page(&w.authorize_path()).await;
        // The client is trusted from the node's short-lived client cache, or not known at all
        // once that has expired: then there is no redirect URI to trust, and the page answers.
        if a.status == 302 {
            unavailable_redirect(&format!("{mode}: /authorize"), &a);
        } else {
            unavailable_page(&format!("{mode}: /authorize"), &a);
        }
        unavailable_page(&format!("{mode}: /"), &w.page("/").await);
        unavailable_page(&format!("{mode}: /me"), &w.page("/me").await);
        let refresh = w.refresh.clone();
        unavailable_json(
            &format!("{mode}: refresh"),
            &w.token_timed(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await,
        );
        unavailable_json(&format!("{mode}: userinfo"), &w.userinfo().await);
        unavailable_json(&format!("{mode}: introspection"), &w.introspect().await);
        let revoke = w
            .timed(
                w.http
                    .post(w.url("/revoke"))
                    .basic_auth(&w.client_id, Some(&w.secret))
                    .form(&[("token", refresh.as_str()), ("token_type_hint", "refresh_token")]),
            )
            .await;
        unavailable_json(&format!("{mode}: revocation"), &revoke);
        let register = w
            .timed(
                w.http
                    .post(w.url("/register"))
                    .bearer_auth("some-registration-token")
                    .json(&serde_json::json!({"redirect_uris": [CB], "client_name": "x"})),
            )
            .await;
        unavailable_json(&format!("{mode}: registration"), &register);
        probes_while_out(&w).await;

        w.relay.restore();
        let took = w.until_ready(Duration::from_secs(10)).await;
        eprintln!("{mode}: ready again {took:?} after PostgreSQL came back");
        nothing_lost(&mut w).await;
    }

    // One broken connection (a PostgreSQL restart, a firewall's idle timeout): the pool replaces
    // it before any request sees it.
    assert!(w.relay.drop_connections() > 0, "the server held connections through the relay");
    assert_eq!(w.page("/").await.status, 200);
    nothing_lost(&mut w).await;
    let log = std::fs::read_to_string(w.idp.log_path()).unwrap();
    assert!(!log.contains(PW), "no password in the log");
}

#[tokio::test]
async fn redis_cut_or_hanging_gives_503s_within_the_bound_and_service_resumes_with_nothing_lost() {
    let Some(real) = dependency("IDP_TEST_CACHE_URL") else { return };
    let mut w = world("IDP_CACHE__URL", &real).await;

    for mode in ["cut", "hang"] {
        // A code issued before the outage, redeemed after it: a redemption refused while Redis
        // was out must not have spent it.
        let code = w.code().await;
        match mode {
            "cut" => w.relay.cut(),
            _ => w.relay.hang(),
        }
        // The client and redirect URI are trusted (the database is up): the error goes back.
        unavailable_redirect(&format!("{mode}: /authorize"), &w.page(&w.authorize_path()).await);
        // A new sign-in needs a login transaction in Redis.
        let tx_start = w
            .timed(w.http.get(w.url(&format!(
                "/authorize?client_id={}&redirect_uri={CB_ENC}&response_type=code&scope=openid&state=s-1",
                w.client_id
            ))))
            .await;
        unavailable_redirect(&format!("{mode}: /authorize without a session"), &tx_start);
        unavailable_json(
            &format!("{mode}: code redemption"),
            &w.token_timed(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)]).await,
        );
        unavailable_json(&format!("{mode}: userinfo"), &w.userinfo().await);
        unavailable_json(&format!("{mode}: introspection"), &w.introspect().await);
        let login = w.page("/login").await;
        assert_eq!(login.status, 200, "the plain sign-in page needs no Redis: {}", login.body);
        let csrf = {
            let p = w.browser.get("/login").await;
            p.input("csrf_token").unwrap()
        };
        let signin = w
            .timed(w.browser.http.post(w.url("/login")).form(&[
                ("csrf_token", csrf.as_str()),
                ("tx", ""),
                ("username", "ming.wang"),
                ("password", PW),
            ]))
            .await;
        unavailable_page(&format!("{mode}: sign-in (throttle counters are in Redis)"), &signin);
        probes_while_out(&w).await;

        w.relay.restore();
        let took = w.until_ready(Duration::from_secs(10)).await;
        eprintln!("{mode}: ready again {took:?} after Redis came back");
        let (status, t) = w.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)]).await;
        assert_eq!(status, 200, "the code issued before the outage is still good: {t}");
        nothing_lost(&mut w).await;
    }

    // One broken connection: the next request is answered normally, not with an error. (Its
    // first Redis command stores the code: sent on the old connection before the server noticed
    // the close, it fails and is sent again on a new one; noticed first, it goes to a new one.)
    assert!(w.relay.drop_connections() > 0, "the server held a connection through the relay");
    let r = w.page(&w.authorize_path()).await;
    let loc = r.location.clone().unwrap_or_default();
    assert!(
        r.status == 302 && query_param(&loc, "code").is_some(),
        "right after a dropped connection: {} {loc} {}",
        r.status,
        r.body
    );
    let code = query_param(&loc, "code").unwrap();
    let (status, t) = w.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)]).await;
    assert_eq!(status, 200, "{t}");
    nothing_lost(&mut w).await;
}

/// SIGTERM while a request is in flight: `/readyz` turns 503 while the node still serves, new
/// connections are refused after the drain, the request in flight is answered, the process
/// exits 0.
#[tokio::test]
async fn sigterm_drains_then_finishes_the_request_in_flight_and_exits_0() {
    // A generous shutdown bound: on a loaded machine the steps below may take a while, and the
    // server must not give up on the request in flight meanwhile.
    let mut idp = Idp::with_env(&[("IDP_HTTP__DRAIN_DELAY", "3s"), ("IDP_HTTP__SHUTDOWN_TIMEOUT", "120s")]);
    idp.start().await;
    // Only the server holds the listening socket, so closing it refuses new connections.
    idp.release_port();
    let addr = idp.base.trim_start_matches("http://").to_string();
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{}/readyz", idp.base)).send().await.unwrap().status(), 200);

    // A request whose body is still arriving: the server holds it in flight until it has all.
    let body = b"grant_type=client_credentials&client_id=nobody";
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..10]).await.unwrap();
    slow.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A kept-alive connection, as a balancer holds one: before the signal it stays open.
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    let get = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    kept.write_all(get.as_bytes()).await.unwrap();
    let before = read_answer(&mut kept).await;
    assert!(before.starts_with("HTTP/1.1 200") && !closes(&before), "{before}");

    let pid = idp.pid().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());

    // Not ready, while still answering on new connections (the drain).
    let fresh = || reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut saw_not_ready = false;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        match fresh().get(format!("{}/readyz", idp.base)).send().await {
            Ok(r) if r.status() == 503 => {
                saw_not_ready = true;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("refused before readiness turned 503: {e}"),
        }
    }
    assert!(saw_not_ready, "/readyz did not turn 503 after SIGTERM");
    let h = fresh().get(format!("{}/healthz", idp.base)).send().await.unwrap();
    assert_eq!(h.status(), 200, "still serving during the drain");
    // During the drain every answer closes its connection, so no idle connection is left for
    // the stop to close under a request the balancer is sending on it.
    kept.write_all(get.as_bytes()).await.unwrap();
    let during = read_answer(&mut kept).await;
    assert!(during.starts_with("HTTP/1.1 200") && closes(&during), "{during}");
    let mut rest = Vec::new();
    kept.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the connection closes after that answer");

    // After the drain, new connections are refused, while the request in flight keeps the
    // process alive.
    let started = Instant::now();
    let mut refused = false;
    while started.elapsed() < Duration::from_secs(15) {
        if TcpStream::connect(&addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "new connections still accepted after the drain");
    assert!(idp.wait_exit(Duration::from_millis(10)).await.is_none(), "exited with a request in flight");

    // The rest of the body: the request is answered in full.
    slow.write_all(&body[10..]).await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "the request in flight was answered: {answer}");
    assert!(answer.contains("invalid_client"), "{answer}");

    let status = idp.wait_exit(Duration::from_secs(30)).await.expect("the server exits once the request is done");
    let log = std::fs::read_to_string(idp.log_path()).unwrap();
    assert!(status.success(), "exit status {status}; the server said:\n{log}");
    assert!(log.contains("stopping"), "{log}");
}

/// Reads one HTTP/1.1 answer with a `Content-Length` body, leaving the connection open.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed mid-answer: {}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// Whether an answer's head says the connection closes after it.
fn closes(answer: &str) -> bool {
    answer.lines().any(|l| l.eq_ignore_ascii_case("connection: close"))
}

/// TLS to Redis is not built in: a `rediss://` URL stops the server at start with a message
/// that says so and what to do instead, not at the first request.
#[test]
fn a_rediss_url_is_refused_at_start_with_a_clear_message() {
    let idp = Idp::new();
    let out = idp.cli_with(&[("IDP_CACHE__URL", "rediss://:pw-not-shown@127.0.0.1:6380/0")], &["serve"]);
    assert!(!out.status.success(), "serve started with rediss://");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("cache.url") && said.contains("rediss:// (TLS to Redis) is not supported"), "{said}");
    assert!(!said.contains("pw-not-shown"), "the URL's password is not shown: {said}");
}
