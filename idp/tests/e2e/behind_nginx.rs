//! Several nodes on the real PostgreSQL and Redis behind the shipped nginx site file
//! (deploy/nginx/idp.conf), with Debian's nginx run by the test: a rolling restart under load
//! fails no request.
//!
//! Ports: nginx gets its two listening sockets from the test, bound here before anything starts
//! and inherited the way nginx itself passes them on a binary upgrade (the `NGINX` environment
//! variable names the descriptors; nginx uses an inherited socket for the `listen` directive of
//! the same address instead of binding). No port is chosen in advance and let go, so no other
//! process can take one. The nodes get theirs by socket activation, as every harness server does.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::outages::{address_of, dependency, timed, unavailable_json, unavailable_page, Relay, Timed, BOUNDS, LIMIT};

pub const CB: &str = "http://127.0.0.1:9/cb";
pub const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
pub const PW: &str = "Civil-Service-2026";

fn site_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/idp.conf")
}

pub fn nginx_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nginx")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path.into_iter().chain([PathBuf::from("/usr/sbin/nginx")]).find(|p| p.is_file())
}

/// nginx's listening sockets, bound before the nodes are made (their issuer is nginx's address).
pub struct NginxSockets {
    site: TcpListener,
    card: TcpListener,
}

impl NginxSockets {
    pub fn bind() -> Self {
        Self { site: listener(), card: listener() }
    }

    /// The site's public address, the nodes' issuer.
    pub fn base(&self) -> String {
        format!("https://{}", self.site.local_addr().unwrap())
    }
}

/// Debian's nginx running the shipped site file in front of some nodes.
pub struct Nginx {
    /// The site, `https://127.0.0.1:PORT`.
    pub base: String,
    /// The card port (client certificates), `https://127.0.0.1:PORT`.
    pub card_base: String,
    pub dir: tempfile::TempDir,
    _proc: Proc,
    _sockets: NginxSockets,
}

impl Nginx {
    /// Renders the shipped site file for this test — its upstream line becomes one line per node,
    /// its `listen` ports the inherited sockets' addresses, its certificate a throw-away one —
    /// starts nginx and waits until it answers. `None` (after a note) without nginx outside CI.
    pub async fn start(sockets: NginxSockets, upstreams: &[String]) -> Option<Self> {
        let Some(bin) = nginx_binary() else {
            assert!(std::env::var_os("CI").is_none(), "nginx is required in CI (apt-get install nginx)");
            eprintln!("skipped: nginx is not installed (apt-get install nginx)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        std::fs::write(d.join("server.crt"), cert.cert.pem()).unwrap();
        std::fs::write(d.join("server.key"), cert.signing_key.serialize_pem()).unwrap();
        let shipped = std::fs::read_to_string(site_file()).unwrap();
        let servers: String = upstreams.iter().map(|a| format!("server {a};\n    ")).collect();
        let mut site = shipped.clone();
        for (from, to) in [
            ("server 127.0.0.1:8080;", servers.trim_end().to_string()),
            ("listen 443 ssl;", format!("listen {} ssl;", sockets.site.local_addr().unwrap())),
            ("listen 8443 ssl;", format!("listen {} ssl;", sockets.card.local_addr().unwrap())),
            ("/etc/nginx/tls/sso.example.gov.tw.crt", d.join("server.crt").display().to_string()),
            ("/etc/nginx/tls/sso.example.gov.tw.key", d.join("server.key").display().to_string()),
        ] {
            assert!(site.contains(from), "deploy/nginx/idp.conf no longer has `{from}`, which this test rewrites");
            site = site.replace(from, &to);
        }
        std::fs::write(d.join("idp.conf"), site).unwrap();
        let p = d.display();
        let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
        let user = if root { "user root;\n" } else { "" };
        std::fs::write(
            d.join("nginx.conf"),
            format!(
                "{user}daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
                 events {{}}\nhttp {{\n  access_log {p}/access.log;\n  client_body_temp_path {p}/body;\n  \
                 proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  \
                 scgi_temp_path {p}/scgi;\n  include {p}/idp.conf;\n}}\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(["-p", &p.to_string(), "-e", &format!("{p}/error.log"), "-c", &format!("{p}/nginx.conf")]);
        hand_over(&mut cmd, &[(&sockets.site, "site"), (&sockets.card, "card")]);
        // nginx's own socket inheritance: descriptors 3 and 4, matched to `listen` by address.
        cmd.env("NGINX", "3;4;");
        let proc = Proc::spawn("nginx", &mut cmd);
        let card_base = format!("https://{}", sockets.card.local_addr().unwrap());
        let nginx = Self { base: sockets.base(), card_base, dir, _proc: proc, _sockets: sockets };
        let client = client(false);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = |base: &str| client.get(format!("{base}/healthz")).send();
            if let (Ok(a), Ok(b)) = (up(&nginx.base).await, up(&nginx.card_base).await) {
                if a.status() == 200 && b.status() == 200 {
                    return Some(nginx);
                }
            }
            assert!(Instant::now() < deadline, "nginx did not answer: {}", nginx.error_log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// A client of the site through nginx (its certificate is the test's own): with a cookie store
/// when it plays a browser. Every request is bounded, so a hang is a failure, not a stuck test.
pub fn client(cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A node's settings behind nginx: nginx's address is the issuer, nginx the one trusted proxy.
pub fn node_settings(issuer: &str) -> Vec<(&'static str, String)> {
    vec![
        ("IDP_ISSUER", issuer.to_string()),
        ("IDP_CERTIFICATES__TRUSTED_PROXIES", "[\"127.0.0.1\"]".to_string()),
        ("IDP_CERTIFICATES__PROXY_HEADER", "x-ssl-client-cert".to_string()),
    ]
}

/// What a load loop found wrong, and how many rounds went right.
#[derive(Default)]
pub struct Tally {
    pub failures: Mutex<Vec<String>>,
    pub rounds: AtomicUsize,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

/// The site as a relying party and a person see it, through nginx.
#[derive(Clone)]
pub struct Site {
    pub base: String,
    pub client_id: String,
    pub secret: String,
    pub http: reqwest::Client,
}

/// A step's answer: status, `Location`, body.
type Answer = (u16, Option<String>, String);

impl Site {
    pub fn authorize_path(&self) -> String {
        format!(
            "/authorize?client_id={}&redirect_uri={CB_ENC}&response_type=code&scope=openid%20offline_access&state=s-1&nonce=n-1",
            self.client_id
        )
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn answer(r: Result<reqwest::Response, reqwest::Error>) -> Result<Answer, String> {
        let r = r.map_err(|e| format!("no answer: {e:?}"))?;
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        let body = r.text().await.map_err(|e| format!("body cut: {e:?}"))?;
        Ok((status, location, body))
    }

    pub async fn get(&self, browser: &reqwest::Client, path: &str) -> Result<Answer, String> {
        Self::answer(browser.get(self.url(path)).send().await).await
    }

    pub async fn post(&self, browser: &reqwest::Client, path: &str, form: &[(&str, &str)]) -> Result<Answer, String> {
        Self::answer(browser.post(self.url(path)).form(form).send().await).await
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> Result<(u16, Value), String> {
        let r = self
            .http
            .post(self.url("/token"))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .map_err(|e| format!("token: no answer: {e:?}"))?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| format!("token: body cut: {e:?}"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// A code for a browser with a session, through the authorization endpoint.
    pub async fn code(&self, browser: &reqwest::Client) -> Result<String, String> {
        let (status, location, body) = self.get(browser, &self.authorize_path()).await?;
        let loc = location.ok_or_else(|| format!("authorize: {status} without a redirect: {body}"))?;
        query_param(&loc, "code").ok_or_else(|| format!("authorize: {status} to {loc}"))
    }

    /// Redeems a code: (access, refresh).
    pub async fn redeem(&self, code: &str) -> Result<(String, String), String> {
        let (status, t) =
            self.token(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)]).await?;
        match (status, t["access_token"].as_str(), t["refresh_token"].as_str()) {
            (200, Some(a), Some(r)) => Ok((a.to_string(), r.to_string())),
            _ => Err(format!("code redemption: {status} {t}")),
        }
    }

    pub async fn refresh(&self, refresh: &str) -> Result<String, String> {
        let (status, t) = self.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await?;
        match (status, t["refresh_token"].as_str()) {
            (200, Some(r)) => Ok(r.to_string()),
            _ => Err(format!("refresh: {status} {t}")),
        }
    }

    pub async fn userinfo(&self, access: &str) -> Result<(), String> {
        let r = self
            .http
            .get(self.url("/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .map_err(|e| format!("userinfo: no answer: {e:?}"))?;
        match r.status().as_u16() {
            200 => Ok(()),
            s => Err(format!("userinfo: {s} {}", r.text().await.unwrap_or_default())),
        }
    }

    /// A whole sign-in from a fresh browser: authorize, the login page, the password, back to
    /// the authorization endpoint, a code. Returns the signed-in browser and the code.
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<(reqwest::Client, String), String> {
        let browser = client(true);
        let (status, location, body) = self.get(&browser, &self.authorize_path()).await?;
        let login = location.ok_or_else(|| format!("authorize without a session: {status} {body}"))?;
        let (status, _, body) = self.get(&browser, &login).await?;
        let page = Page { status, location: None, body };
        let csrf = page.input("csrf_token").ok_or_else(|| format!("login page: {status} {}", page.body))?;
        let tx = page.input("tx").unwrap_or_default();
        let (status, mut location, body) = self
            .post(
                &browser,
                "/login",
                &[("csrf_token", &csrf), ("tx", &tx), ("username", username), ("password", password)],
            )
            .await?;
        if status != 303 {
            return Err(format!("sign-in: {status} {body}"));
        }
        for _ in 0..5 {
            let loc = location.ok_or("a redirect without a location")?;
            if loc.starts_with(CB) {
                let code =
                    query_param(&loc, "code").ok_or_else(|| format!("back to the client without a code: {loc}"))?;
                return Ok((browser, code));
            }
            let (status, next, body) = self.get(&browser, &loc).await?;
            if !(300..400).contains(&status) {
                return Err(format!("after sign-in, {loc}: {status} {body}"));
            }
            location = next;
        }
        Err("too many redirects after sign-in".into())
    }
}

/// The load: `sso` loops of single sign-on (a code for a signed-in browser, redeemed, the
/// refresh token used, userinfo asked) and one loop of whole sign-ins with a password, until
/// `stop`. Every failed step is tallied, with what was answered.
pub fn load(
    site: &Site,
    browser: &reqwest::Client,
    refresh: String,
    sso: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..sso {
        let (site, browser, stop, tally) = (site.clone(), browser.clone(), stop.clone(), tally.clone());
        let mut refresh = if i == 0 { Some(refresh.clone()) } else { None };
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                let round = async {
                    let code = site.code(&browser).await?;
                    let (access, new_refresh) = site.redeem(&code).await?;
                    // The first loop keeps rotating one refresh token for the whole test.
                    let r = site.refresh(refresh.as_deref().unwrap_or(&new_refresh)).await?;
                    if refresh.is_some() {
                        refresh = Some(r);
                    }
                    site.userinfo(&access).await
                };
                match round.await {
                    Ok(()) => _ = tally.rounds.fetch_add(1, Ordering::AcqRel),
                    Err(e) => tally.fail(format!("sso loop {i}: {e}")),
                }
            }
        }));
    }
    let (site, stop, tally) = (site.clone(), stop.clone(), tally.clone());
    tasks.push(tokio::spawn(async move {
        while !stop.load(Ordering::Acquire) {
            let round = async {
                let (_, code) = site.sign_in("ming.wang", PW).await?;
                site.redeem(&code).await.map(|_| ())
            };
            match round.await {
                Ok(()) => _ = tally.rounds.fetch_add(1, Ordering::AcqRel),
                Err(e) => tally.fail(format!("sign-in loop: {e}")),
            }
        }
    }));
    tasks
}

/// Three nodes on one PostgreSQL and Redis behind nginx, Ming activated, a client with refresh
/// tokens, a signed-in browser and its first tokens.
pub struct Deployment {
    pub nodes: Vec<Idp>,
    pub nginx: Nginx,
    pub site: Site,
    pub browser: reqwest::Client,
    pub access: String,
    pub refresh: String,
}

/// `extra` settings go to every node; with `through`, every node reaches the dependency that
/// setting names (`IDP_DATABASE__URL`, `IDP_CACHE__URL`) through that relay.
pub async fn deployment(count: usize, extra: &[(&str, &str)], through: Option<(&str, &Relay)>) -> Option<Deployment> {
    let sockets = NginxSockets::bind();
    let base = sockets.base();
    let settings = node_settings(&base);
    let mut all: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    let mut first = Idp::with_env(&all);
    if let Some((key, relay)) = through {
        // peer() copies the URL, so every node goes through the relay.
        let url = first.env_value(key).expect("the dependency's URL");
        first.set_env(key, &relay.url_for(&url));
    }
    first.import_register();
    let (client_id, secret) = first.create_refresh_client("Rolling app", CB);
    first.start().await;
    let mut nodes = vec![first];
    for _ in 1..count {
        let mut n = nodes[0].peer(&all);
        n.start().await;
        nodes.push(n);
    }
    let upstreams: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
    let nginx = Nginx::start(sockets, &upstreams).await?;
    let site = Site { base, client_id, secret, http: client(false) };
    activate(&nodes[0], &site).await;
    let (browser, code) = site.sign_in("ming.wang", PW).await.unwrap();
    let (access, refresh) = site.redeem(&code).await.unwrap();
    Some(Deployment { nodes, nginx, site, browser, access, refresh })
}

/// Activates Ming's account through nginx (the site's cookies are `Secure`: https only).
async fn activate(node: &Idp, site: &Site) {
    let otp = node.reset_password(MING, "someone@example.gov.tw");
    let b = client(true);
    let (_, _, body) = site.get(&b, "/login").await.unwrap();
    let page = Page { status: 200, location: None, body };
    let csrf = page.input("csrf_token").unwrap();
    let (status, _, body) = site
        .post(&b, "/login", &[("csrf_token", &csrf), ("tx", ""), ("username", MING), ("password", &otp)])
        .await
        .unwrap();
    assert_eq!(status, 303, "{body}");
    let (_, _, body) = site.get(&b, "/activate").await.unwrap();
    let csrf = Page { status: 200, location: None, body }.input("csrf_token").unwrap();
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("account", "ming.wang"),
        ("email", "someone@example.gov.tw"),
        ("password", PW),
        ("password_confirm", PW),
    ];
    let (status, _, body) = site.post(&b, "/activate", &fields).await.unwrap();
    assert_eq!(status, 200, "activation failed: {body}");
}

/// Waits until a node says it is ready on its own address.
pub async fn until_ready(node: &Idp, within: Duration) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let started = Instant::now();
    while started.elapsed() < within {
        if let Ok(r) = http.get(format!("{}/readyz", node.base)).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node not ready within {within:?}: {}", std::fs::read_to_string(node.log_path()).unwrap_or_default());
}

/// Waits until the load has completed `more` rounds beyond `from`.
async fn rounds_past(tally: &Tally, from: usize, more: usize) {
    let started = Instant::now();
    while tally.rounds.load(Ordering::Acquire) < from + more {
        assert!(started.elapsed() < Duration::from_secs(120), "the load made no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_three_nodes_behind_the_shipped_nginx_fails_no_request_under_load() {
    if !Idp::several_nodes_possible("rolling restart behind nginx") {
        return;
    }
    let Some(mut d) = deployment(3, &[], None).await else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let tasks = load(&d.site, &d.browser, d.refresh.clone(), 2, stop.clone(), tally.clone());
    rounds_past(&tally, 0, 3).await;

    for i in 0..d.nodes.len() {
        let during = tally.rounds.load(Ordering::Acquire);
        let node = &mut d.nodes[i];
        let pid = node.pid().unwrap().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = node.wait_exit(Duration::from_secs(60)).await.expect("the node exits after its drain");
        assert!(status.success(), "node {i} exit status {status}");
        assert!(tally.rounds.load(Ordering::Acquire) > during, "the load went on while node {i} drained and stopped");
        node.start().await;
        until_ready(node, Duration::from_secs(30)).await;
        // The load reaches the restarted node before the next one stops.
        rounds_past(&tally, tally.rounds.load(Ordering::Acquire), 3).await;
    }
    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {} rounds failed during the rolling restart:\n{}\nnginx: {}",
        failures.len(),
        failures.len() + tally.rounds.load(Ordering::Acquire),
        failures.join("\n"),
        d.nginx.error_log()
    );
    // Nothing from before is lost: the first browser's session and the first refresh token.
    let code = d.site.code(&d.browser).await.unwrap();
    d.site.redeem(&code).await.unwrap();
    d.site.userinfo(&d.access).await.unwrap();
}

/// A dependency of every node goes away, then hangs, mid-flow, behind nginx: each answer through
/// nginx is the node's 503 (page or JSON, with `Retry-After`) within the bound — nginx passes a
/// 503 on and does not retry it elsewhere, every node being as cut off as the others — and when
/// the dependency is back every node serves again without a restart, with the sign-in that was
/// under way, the session and the refresh token from before all still good.
async fn outage_behind_nginx(key: &str, real_url: &str) {
    let relay = Relay::start(address_of(real_url));
    let Some(mut d) = deployment(3, &BOUNDS, Some((key, &relay))).await else { return };
    for mode in ["cut", "hang"] {
        // A sign-in under way: its login page was shown before the outage.
        let browser = client(true);
        let (_, login, _) = d.site.get(&browser, &d.site.authorize_path()).await.unwrap();
        let (_, _, body) = d.site.get(&browser, &login.unwrap()).await.unwrap();
        let page = Page { status: 200, location: None, body };
        let (csrf, tx) = (page.input("csrf_token").unwrap(), page.input("tx").unwrap());
        let form = [("csrf_token", csrf.as_str()), ("tx", tx.as_str()), ("username", "ming.wang"), ("password", PW)];
        match mode {
            "cut" => relay.cut(),
            _ => relay.hang(),
        }
        let url = |path: &str| format!("{}{path}", d.site.base);
        // Several of each, so every node behind nginx answers some.
        for round in 0..3 {
            let what = |w: &str| format!("{key} {mode}, round {round}: {w} through nginx");
            unavailable_page(&what("sign-in"), &timed(browser.post(url("/login")).form(&form)).await);
            if key == "IDP_DATABASE__URL" {
                // Sessions and refresh tokens are rows: without Redis these still work.
                unavailable_page(&what("/me"), &timed(d.browser.get(url("/me"))).await);
                let refresh = [("grant_type", "refresh_token"), ("refresh_token", d.refresh.as_str())];
                let basic = d.site.http.post(url("/token")).basic_auth(&d.site.client_id, Some(&d.site.secret));
                unavailable_json(&what("refresh"), &timed(basic.form(&refresh)).await);
            }
            unavailable_json(&what("userinfo"), &timed(d.site.http.get(url("/userinfo")).bearer_auth(&d.access)).await);
            let h: Timed = timed(d.site.http.get(url("/healthz"))).await;
            assert!(h.status == 200 && h.took < LIMIT, "{}: {} in {:?}", what("healthz"), h.status, h.took);
        }
        relay.restore();
        for node in &d.nodes {
            until_ready(node, Duration::from_secs(10)).await;
        }
        // The sign-in under way goes on where it stopped.
        let (status, location, body) = d.site.post(&browser, "/login", &form).await.unwrap();
        assert_eq!(status, 303, "{key} {mode}: the sign-in after the outage: {body}");
        assert!(location.is_some());
        // Nothing lost: the session signs in to the client, the refresh token from before
        // rotates (a refresh refused during the outage was refused whole), the access token
        // still answers.
        let code = d.site.code(&d.browser).await.unwrap();
        d.site.redeem(&code).await.unwrap();
        d.refresh = d.site.refresh(&d.refresh).await.unwrap();
        d.site.userinfo(&d.access).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_cut_or_hanging_behind_nginx_gives_503s_in_time_and_three_nodes_resume_with_nothing_lost() {
    let Some(admin) = dependency("IDP_TEST_DATABASE_URL") else { return };
    outage_behind_nginx("IDP_DATABASE__URL", &admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cut_or_hanging_behind_nginx_gives_503s_in_time_and_three_nodes_resume_with_nothing_lost() {
    let Some(cache) = dependency("IDP_TEST_CACHE_URL") else { return };
    if !Idp::several_nodes_possible("Redis outage behind nginx") {
        return;
    }
    outage_behind_nginx("IDP_CACHE__URL", &cache).await;
}
