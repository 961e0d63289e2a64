//! Back-channel logout deliveries are durable: they live in the outbox table, not in a node's
//! memory, so a node killed (or restarted) while deliveries are pending delays them but drops
//! none, and no delivery is accepted twice.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const PW: &str = "Civil-Service-2026";

/// One post a receiver saw: the status it answered and the logout token.
#[derive(Debug)]
struct Post {
    accepted: bool,
    token: String,
    at: Instant,
}

/// A back-channel logout endpoint that refuses (500) its first `refuse` posts and accepts the
/// rest, reporting every post.
async fn receiver(refuse: usize) -> (String, mpsc::UnboundedReceiver<Post>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://127.0.0.1:{}/backchannel", listener.local_addr().unwrap().port());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let body = loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0usize);
                    if buf.len() >= end + 4 + length {
                        break Some(text[end + 4..].to_string());
                    }
                }
                if n == 0 {
                    break None;
                }
            };
            let Some(body) = body else { continue };
            seen += 1;
            let accepted = seen > refuse;
            let status = if accepted { "200 OK" } else { "500 Internal Server Error" };
            let _ = s
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
                .await;
            let token = url::form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "logout_token")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let _ = tx.send(Post { accepted, token, at: Instant::now() });
        }
    });
    (uri, rx)
}

fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part).unwrap())
        .unwrap()
}

fn create_client(idp: &Idp, backchannel: &str) -> (String, String) {
    let out = idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "Outbox app",
        "--redirect-uri",
        CB,
        "--post-logout-redirect-uri",
        "http://127.0.0.1:9/",
        "--backchannel-logout-uri",
        backchannel,
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string())
}

/// Signs Ming in on `idp`, gets a code for each client (which records it with the session),
/// redeems the first client's for an ID token, and signs out with it: the session ends with a
/// delivery owed to every client. Returns the session's `sid`.
async fn sign_in_and_out(idp: &Idp, clients: &[(String, String)]) -> String {
    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    assert_eq!(browser.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let mut id_token = None;
    for (id, secret) in clients {
        let r = browser
            .get(&format!("/authorize?client_id={id}&redirect_uri={CB_ENC}&response_type=code&scope=openid"))
            .await;
        let code = query_param(&r.location.expect("a redirect with a code"), "code").unwrap();
        if id_token.is_none() {
            let t: Value = reqwest::Client::new()
                .post(format!("{}/token", idp.base))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            id_token = Some(t["id_token"].as_str().unwrap().to_string());
        }
    }
    let id_token = id_token.unwrap();
    let sid = claims(&id_token)["sid"].as_str().unwrap().to_string();
    let r = browser
        .get(&format!("/logout?id_token_hint={id_token}&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2F"))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    sid
}

async fn next_post(rx: &mut mpsc::UnboundedReceiver<Post>, within: Duration, what: &str) -> Post {
    tokio::time::timeout(within, rx.recv()).await.unwrap_or_else(|_| panic!("{what} within {within:?}")).unwrap()
}

/// Reads each receiver's posts until one is accepted; returns them all.
async fn until_accepted(rx: &mut mpsc::UnboundedReceiver<Post>, within: Duration) -> Vec<Post> {
    let deadline = Instant::now() + within;
    let mut posts = Vec::new();
    while !posts.last().is_some_and(|p: &Post| p.accepted) {
        let left = deadline.saturating_duration_since(Instant::now());
        posts.push(next_post(rx, left, "an accepted back-channel logout").await);
    }
    posts
}

/// (attempts, outcome) of each outbox row, by client.
fn outbox_rows(idp: &Idp) -> Vec<(String, i32, Option<String>)> {
    use idp::store::db::schema::logout_outbox as o;
    let db = idp.db();
    let mut c = db.get().unwrap();
    o::table.select((o::client_id, o::attempts, o::outcome)).order(o::client_id).load(&mut *c).unwrap()
}

#[tokio::test]
async fn a_node_killed_with_deliveries_pending_leaves_them_to_the_other_node_which_delivers_each_once() {
    if !Idp::several_nodes_possible("outbox: killed node") {
        return;
    }
    // Each receiver refuses twice: the first refusal is the killed node's, so the accepted
    // third attempt (5 s later by the schedule) can only come from the node still running.
    let (uri1, mut rx1) = receiver(2).await;
    let (uri2, mut rx2) = receiver(2).await;
    let mut a = Idp::new();
    a.import_register();
    let clients = vec![create_client(&a, &uri1), create_client(&a, &uri2)];
    a.start().await;
    let mut b = a.peer(&[]);
    b.start().await;
    let sid = sign_in_and_out(&a, &clients).await;

    let first1 = next_post(&mut rx1, Duration::from_secs(10), "the first attempt").await;
    let first2 = next_post(&mut rx2, Duration::from_secs(10), "the first attempt").await;
    assert!(!first1.accepted && !first2.accepted);
    a.kill();
    let killed_at = Instant::now();

    let later1 = until_accepted(&mut rx1, Duration::from_secs(60)).await;
    let later2 = until_accepted(&mut rx2, Duration::from_secs(60)).await;
    for (posts, (client_id, _)) in [(&later1, &clients[0]), (&later2, &clients[1])] {
        let accepted: Vec<&Post> = posts.iter().filter(|p| p.accepted).collect();
        assert_eq!(accepted.len(), 1);
        assert!(accepted[0].at > killed_at, "delivered by the node that is still running");
        let c = claims(&accepted[0].token);
        assert_eq!(c["sid"], sid.as_str());
        assert_eq!(c["aud"], client_id.as_str());
        assert_eq!(posts.len(), 2, "the second attempt refused, the third accepted: {posts:?}");
    }
    // Done is done: nothing more arrives, and the rows say so.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(rx1.try_recv().is_err() && rx2.try_recv().is_err(), "no delivery is sent again once accepted");
    let rows = outbox_rows(&b);
    assert_eq!(rows.len(), 2);
    for (_, attempts, outcome) in rows {
        assert_eq!((attempts, outcome.as_deref()), (3, Some("delivered")));
    }
}

#[tokio::test]
async fn a_restart_with_a_delivery_pending_delivers_it_once_after_the_restart() {
    let (uri, mut rx) = receiver(1).await;
    let mut idp = Idp::new();
    idp.import_register();
    let clients = vec![create_client(&idp, &uri)];
    idp.start().await;
    let sid = sign_in_and_out(&idp, &clients).await;
    assert!(!next_post(&mut rx, Duration::from_secs(10), "the first attempt").await.accepted);
    idp.kill();
    let stopped_at = Instant::now();
    idp.start().await;
    let posts = until_accepted(&mut rx, Duration::from_secs(60)).await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(posts[0].at > stopped_at);
    assert_eq!(claims(&posts[0].token)["sid"], sid.as_str());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(rx.try_recv().is_err(), "no delivery is sent again once accepted");
    assert_eq!(outbox_rows(&idp), vec![(clients[0].0.clone(), 2, Some("delivered".to_string()))]);
}
