//! What the README promises about the protocol, each against the real server: `private_key_jwt`
//! with keys fetched from the client's `jwks_uri` (the five-minute cache, audience, issuer and
//! subject, lifetime, replay), the caching of `/jwks`, and the back-channel logout retry schedule.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::client_key::ClientKey;
use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const PW: &str = "Civil-Service-2026";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

// ---- private_key_jwt by jwks_uri ----

/// The client's own web server: serves a key set at `/jwks` and counts the requests for it.
struct JwksServer {
    url: String,
    served: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(keys: &[&ClientKey]) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/jwks", listener.local_addr().unwrap().port());
        let server = Self { url, served: Arc::default(), fetches: Arc::default() };
        server.serve(keys);
        let (served, fetches) = (server.served.clone(), server.fetches.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                let (served, fetches) = (served.clone(), fetches.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut len = 0;
                    // A GET has no body: the request is complete at the blank line.
                    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf[len..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => len += n,
                        }
                        if len == buf.len() {
                            return;
                        }
                    }
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let body = served.lock().unwrap().clone();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(format!("{head}{body}").as_bytes()).await;
                });
            }
        });
        server
    }

    /// From now on the key set holds only these keys.
    fn serve(&self, keys: &[&ClientKey]) {
        let set = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
        *self.served.lock().unwrap() = set.to_string();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// An operator-created `private_key_jwt` client whose keys are at `jwks_uri`; returns its id.
fn jwks_uri_client(idp: &Idp, jwks_uri: &str) -> String {
    let v: Value = serde_json::from_str(&idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "Signed by jwks_uri",
        "--redirect-uri",
        CB,
        "--token-endpoint-auth-method",
        "private_key_jwt",
        "--jwks-uri",
        jwks_uri,
        "--grant-type",
        "client_credentials",
        "--json",
    ]))
    .unwrap();
    v["client_id"].as_str().unwrap().to_string()
}

/// Assertion claims that are all in order: `iss` = `sub` = the client, `aud` the token endpoint,
/// a minute to live, a fresh `jti`.
fn good_claims(idp: &Idp, client_id: &str) -> Value {
    use rand::Rng;
    let now = now();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": format!("{}/token", idp.base),
        "iat": now,
        "exp": now + 60,
        "jti": format!("jti-{:016x}", rand::thread_rng().gen::<u64>()),
    })
}

/// `client_credentials` at the token endpoint with a client assertion (and `client_id` in the
/// body when given); returns the status and body.
async fn present(idp: &Idp, assertion: &str, client_id: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    let r = http().post(format!("{}/token", idp.base)).form(&form).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A started server with one `jwks_uri` client whose server serves `key`.
async fn signed_world(key: &ClientKey) -> (Idp, JwksServer, String) {
    let jwks = JwksServer::start(&[key]).await;
    let mut idp = Idp::new();
    let id = jwks_uri_client(&idp, &jwks.url);
    idp.start().await;
    (idp, jwks, id)
}

#[tokio::test]
async fn a_jwks_uri_is_fetched_once_and_a_key_added_there_is_not_used_within_five_minutes() {
    let old = ClientKey::ec("old");
    let (idp, jwks, id) = signed_world(&old).await;
    assert_eq!(jwks.fetches(), 0, "nothing is fetched before the first assertion");
    for i in 0..3 {
        let (status, v) = present(&idp, &old.sign(&good_claims(&idp, &id)), None).await;
        assert_eq!(status, 200, "assertion {i}: {v}");
    }
    assert_eq!(jwks.fetches(), 1, "three assertions within five minutes need the key set once");

    // The client rotates: its server now has only a new key. The provider keeps the set it
    // fetched, and does not fetch again for the unknown `kid`.
    let new = ClientKey::ec("new");
    jwks.serve(&[&new]);
    let (status, v) = present(&idp, &new.sign(&good_claims(&idp, &id)), None).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")), "the new key is not known yet: {v}");
    let (status, v) = present(&idp, &old.sign(&good_claims(&idp, &id)), None).await;
    assert_eq!(status, 200, "the old key, still in the cached set, still works: {v}");
    assert_eq!(jwks.fetches(), 1, "an unknown kid does not make the provider fetch again");
}

#[tokio::test]
async fn a_client_assertions_audience_is_the_issuer_or_the_token_endpoint_and_nothing_else() {
    let key = ClientKey::ec("k1");
    let (idp, _jwks, id) = signed_world(&key).await;
    let with_aud = |aud: Value| {
        let mut c = good_claims(&idp, &id);
        c["aud"] = aud;
        key.sign(&c)
    };
    for aud in [json!(idp.base), json!(format!("{}/token", idp.base))] {
        let (status, v) = present(&idp, &with_aud(aud.clone()), None).await;
        assert_eq!(status, 200, "aud {aud}: {v}");
    }
    for aud in [
        json!(format!("{}/userinfo", idp.base)),
        json!(format!("{}/token/other", idp.base)),
        json!("https://hr.example.gov.tw"),
        json!(id),
        json!(""),
    ] {
        let (status, v) = present(&idp, &with_aud(aud.clone()), None).await;
        assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")), "aud {aud}: {v}");
    }
    let mut no_aud = good_claims(&idp, &id);
    no_aud.as_object_mut().unwrap().remove("aud");
    let (status, v) = present(&idp, &key.sign(&no_aud), None).await;
    assert_eq!(status, 401, "an assertion without aud: {v}");
}

#[tokio::test]
async fn a_client_assertions_iss_and_sub_must_both_be_the_client() {
    let key = ClientKey::ec("k1");
    let (idp, jwks, id) = signed_world(&key).await;
    // A second client that publishes the very same key: a signature alone tells them apart not.
    let other = jwks_uri_client(&idp, &jwks.url);
    let with = |iss: &str, sub: &str| {
        let mut c = good_claims(&idp, &id);
        c["iss"] = json!(iss);
        c["sub"] = json!(sub);
        key.sign(&c)
    };
    for (iss, sub) in [(id.as_str(), other.as_str()), (other.as_str(), id.as_str()), ("nobody", id.as_str())] {
        let (status, v) = present(&idp, &with(iss, sub), None).await;
        assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")), "iss {iss}, sub {sub}: {v}");
    }
    // Naming the client in the body does not make another issuer acceptable.
    let (status, v) = present(&idp, &with(&other, &id), Some(&id)).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    // Both in order, for either client: accepted, and the token is the issuer's.
    for client in [&id, &other] {
        let (status, v) = present(&idp, &with(client, client), Some(client)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(jwt_part(v["access_token"].as_str().unwrap(), 1)["sub"], client.as_str());
    }
}

#[tokio::test]
async fn a_client_assertion_lives_at_most_ten_minutes_and_is_accepted_once() {
    let key = ClientKey::ec("k1");
    let (idp, _jwks, id) = signed_world(&key).await;
    let now = now();
    let with = |iat: Option<i64>, exp: i64| {
        let mut c = good_claims(&idp, &id);
        c["exp"] = json!(exp);
        match iat {
            Some(iat) => c["iat"] = json!(iat),
            None => {
                c.as_object_mut().unwrap().remove("iat");
            }
        }
        key.sign(&c)
    };
    let cases = [
        ("nine minutes, no iat", None, now + 540, 200),
        ("eleven minutes from now, no iat", None, now + 660, 401),
        ("eleven minutes from iat", Some(now), now + 660, 401),
        ("issued five minutes ago, eleven minutes' lifetime", Some(now - 300), now + 360, 401),
        ("issued five minutes ago, nine minutes' lifetime", Some(now - 300), now + 240, 200),
        ("iat five minutes ahead, eleven minutes from now", Some(now + 300), now + 660, 401),
        ("expired two minutes ago", Some(now - 180), now - 120, 401),
    ];
    for (what, iat, exp, expected) in cases {
        let (status, v) = present(&idp, &with(iat, exp), None).await;
        assert_eq!(status, expected, "{what}: {v}");
    }

    // A jti is accepted once; without one the assertion is refused.
    let once = key.sign(&good_claims(&idp, &id));
    assert_eq!(present(&idp, &once, None).await.0, 200);
    let (status, v) = present(&idp, &once, None).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")), "a replayed assertion: {v}");
    let mut again = good_claims(&idp, &id);
    again["jti"] = jwt_part(&once, 1)["jti"].clone();
    let (status, v) = present(&idp, &key.sign(&again), None).await;
    assert_eq!(status, 401, "another assertion with a used jti: {v}");
    let mut no_jti = good_claims(&idp, &id);
    no_jti.as_object_mut().unwrap().remove("jti");
    let (status, v) = present(&idp, &key.sign(&no_jti), None).await;
    assert_eq!(status, 401, "an assertion without jti: {v}");
}

// ---- /jwks ----

#[tokio::test]
async fn the_providers_jwks_may_be_cached_for_sixty_seconds() {
    let mut idp = Idp::new();
    idp.start().await;
    let r = http().get(format!("{}/jwks", idp.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cache = r.headers().get("cache-control").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(cache.as_deref(), Some("public, max-age=60"));
    let keys: Value = r.json().await.unwrap();
    assert!(!keys["keys"].as_array().unwrap().is_empty());
}

// ---- back-channel logout ----

/// The `logout_token` of a back-channel post, checked: signed by a key `/jwks` publishes, for
/// this client and session. Panics with what is wrong.
fn check_logout_token(body: &str, jwks: &Value, issuer: &str, client_id: &str, sid: &str) {
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .unwrap_or_else(|| panic!("no logout_token in {body}"))
        .1
        .into_owned();
    let header = jwt_part(&token, 0);
    assert_eq!(header["typ"], "logout+jwt");
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).expect("a published kid");
    let key = jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk.clone()).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(header["alg"].as_str().unwrap().parse().unwrap());
    v.set_issuer(&[issuer]);
    v.set_audience(&[client_id]);
    // The last retry is sent some 21 s after the token was made, within its two minutes.
    let claims = jsonwebtoken::decode::<Value>(&token, &key, &v).expect("a valid logout token").claims;
    assert_eq!(claims["sid"], sid);
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
}

#[tokio::test]
async fn backchannel_logout_retries_after_1_4_and_16_seconds_to_every_client_of_the_session() {
    // Three applications in one session: one refuses the first three deliveries, one accepts at
    // once, one never accepts.
    let (refusing_port, mut refusing) = logout_attempts(3).await;
    let (accepting_port, mut accepting) = logout_attempts(0).await;
    let (never_port, mut never) = logout_attempts(usize::MAX).await;
    let mut idp = Idp::new();
    idp.import_register();
    let mut clients = vec![];
    for port in [refusing_port, accepting_port, never_port] {
        let v: Value = serde_json::from_str(&idp.cli_ok(&[
            "clients",
            "create",
            "--name",
            "HR app",
            "--redirect-uri",
            CB,
            "--post-logout-redirect-uri",
            "http://127.0.0.1:9/",
            "--backchannel-logout-uri",
            &format!("http://127.0.0.1:{port}/backchannel"),
            "--json",
        ]))
        .unwrap();
        clients.push((v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string()));
    }
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    assert_eq!(browser.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let mut id_tokens = vec![];
    for (id, secret) in &clients {
        let r = browser
            .get(&format!("/authorize?client_id={id}&redirect_uri={CB_ENC}&response_type=code&scope=openid&state=s"))
            .await;
        let loc = r.location.unwrap_or_else(|| panic!("authorize: {} {}", r.status, r.body));
        let code = query_param(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"));
        let r = http()
            .post(format!("{}/token", idp.base))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)])
            .send()
            .await
            .unwrap();
        let t: Value = r.json().await.unwrap();
        id_tokens.push(t["id_token"].as_str().unwrap_or_else(|| panic!("no id_token: {t}")).to_string());
    }
    let sid = jwt_part(&id_tokens[0], 1)["sid"].as_str().unwrap().to_string();
    for t in &id_tokens {
        assert_eq!(jwt_part(t, 1)["sid"], sid.as_str(), "one session for all three applications");
    }

    let r = browser
        .get(&format!("/logout?id_token_hint={}&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2F", id_tokens[0]))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);

    // Four attempts each at the two refusing receivers (the fourth is the last retry, after
    // 1 + 4 + 16 s); the deadline only stops a broken provider from hanging the test.
    let deadline = Duration::from_secs(60);
    let mut refused = vec![];
    let mut never_accepted = vec![];
    for (rx, got) in [(&mut refusing, &mut refused), (&mut never, &mut never_accepted)] {
        while got.len() < 4 {
            let a = tokio::time::timeout(deadline, rx.recv()).await.expect("the retries arrive").unwrap();
            got.push(a);
        }
    }
    // Then past one more sweep of the logout queue (every 3 s), in case a failed delivery were
    // queued again: nothing more arrives anywhere.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut accepted = vec![];
    while let Ok(a) = accepting.try_recv() {
        accepted.push(a);
    }
    while let Ok(a) = refusing.try_recv() {
        refused.push(a);
    }
    while let Ok(a) = never.try_recv() {
        never_accepted.push(a);
    }
    assert_eq!(accepted.len(), 1, "the accepting application is sent the logout once");
    assert!(accepted[0].accepted);
    assert_eq!(refused.len(), 4, "refused three times, then accepted: four attempts");
    assert_eq!(refused.iter().map(|a| a.accepted).collect::<Vec<_>>(), [false, false, false, true]);
    assert_eq!(never_accepted.len(), 4, "never accepted: the first attempt and three retries, no more");

    let jwks: Value = http().get(format!("{}/jwks", idp.base)).send().await.unwrap().json().await.unwrap();
    for (attempts, (client_id, _)) in
        [(&refused, &clients[0]), (&accepted, &clients[1]), (&never_accepted, &clients[2])]
    {
        for a in attempts.iter() {
            check_logout_token(&a.body, &jwks, &idp.base, client_id, &sid);
        }
    }
    for (what, attempts) in [("refusing", &refused), ("never accepting", &never_accepted)] {
        for (i, wait) in [1, 4, 16].into_iter().enumerate() {
            let gap = attempts[i + 1].at - attempts[i].at;
            assert!(gap >= Duration::from_secs(wait), "{what}: retry {} came {gap:?} after the attempt before", i + 1);
        }
    }
}
