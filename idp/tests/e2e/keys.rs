//! Signing-key rotation: `idp keys list` and `idp keys rotate` against a running server.

use std::time::Duration;

use diesel::prelude::*;
use idp::store::db::schema::{audit_events, signing_keys};
use serde_json::Value;

use crate::harness::*;

const RP: &str = "http://127.0.0.1:9/callback";
const RP_HOME: &str = "http://127.0.0.1:9/";
const PASSWORD: &str = "Civil-Service-2026";

fn epoch() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn kid(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

async fn jwks_kids(idp: &Idp) -> Vec<String> {
    let v: Value = reqwest::get(format!("{}/jwks", idp.base)).await.unwrap().json().await.unwrap();
    v["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
}

/// `idp keys list --json`, as (kid, alg, state).
fn listed(idp: &Idp) -> Vec<(String, String, String)> {
    let v: Value = serde_json::from_str(&idp.cli_ok(&["keys", "list", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let s = |f: &str| k[f].as_str().unwrap().to_string();
            (s("kid"), s("alg"), s("state"))
        })
        .collect()
}

fn kid_in_state(idp: &Idp, alg: &str, state: &str) -> String {
    let all = listed(idp);
    let found: Vec<_> = all.iter().filter(|(_, a, s)| a == alg && s == state).collect();
    assert_eq!(found.len(), 1, "one {alg} key {state}: {all:?}");
    found[0].0.clone()
}

/// A code flow through the existing SSO session; returns the token response.
async fn tokens(idp: &Idp, b: &Browser, client_id: &str, secret: &str) -> Value {
    use base64::Engine;
    use sha2::Digest;
    let verifier = "k".repeat(50);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let r = b
        .get(&format!(
            "/authorize?client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=code&scope=openid&code_challenge={challenge}&code_challenge_method=S256"
        ))
        .await;
    let loc = r.location.unwrap();
    let loc =
        if loc.starts_with("/login") { b.sign_in_at(&loc, "ming.wang", PASSWORD).await.location.unwrap() } else { loc };
    let code = query_param(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"));
    let r = reqwest::Client::new()
        .post(format!("{}/token", idp.base))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Polls (the server reloads its keys every second here) until `done` holds, for at most 20 s.
async fn eventually<F, Fut, T>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..100 {
        if let Some(v) = attempt().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs_and_the_old_one_stays_published() {
    let mut idp = Idp::with_env(&[("IDP_KEYS__RELOAD_INTERVAL", "1s")]);
    idp.import_register();
    let (client_id, secret) = idp.create_client(RP, RP_HOME);
    idp.start().await;
    idp.activate(MING, "ming.wang", PASSWORD).await;
    let b = Browser::new(&idp.base);

    let first = tokens(&idp, &b, &client_id, &secret).await;
    let k0 = kid(first["id_token"].as_str().unwrap());
    assert_eq!(k0, kid_in_state(&idp, "ES256", "active"));
    assert!(jwks_kids(&idp).await.contains(&k0));

    // A rotation publishes the new key; the old one keeps signing until activation.
    let out = idp.cli_ok(&["keys", "rotate", "--alg", "ES256"]);
    let k1 = kid_in_state(&idp, "ES256", "next");
    assert!(out.contains(&k1) && out.contains(&k0), "{out}");
    eventually("the new key in the JWKS", || async { jwks_kids(&idp).await.contains(&k1).then_some(()) }).await;
    let t = tokens(&idp, &b, &client_id, &secret).await;
    assert_eq!(kid(t["id_token"].as_str().unwrap()), k0, "a next key does not sign");
    assert_eq!(kid_in_state(&idp, "RS256", "active").len(), 16, "RS256 untouched");

    // Activation time comes (moved into the past rather than waited for): the running server
    // signs with the new key, and still publishes the old one.
    let db = idp.db();
    diesel::update(signing_keys::table.find(&k1))
        .set(signing_keys::activates_at.eq(epoch() - 1))
        .execute(&mut *db.get().unwrap())
        .unwrap();
    eventually("ID tokens signed by the new key", || async {
        let t = tokens(&idp, &b, &client_id, &secret).await;
        (kid(t["id_token"].as_str().unwrap()) == k1).then_some(())
    })
    .await;
    let published = jwks_kids(&idp).await;
    assert!(published.contains(&k0) && published.contains(&k1), "{published:?}");
    assert_eq!(kid_in_state(&idp, "ES256", "retiring"), k0);
    assert_eq!(kid_in_state(&idp, "ES256", "active"), k1);
    // What the old key signed is still accepted.
    let r = reqwest::Client::new()
        .get(format!("{}/userinfo", idp.base))
        .bearer_auth(first["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "an access token signed by the retiring key");

    // Emergency rotation: the new key signs at once; both older keys stay published.
    idp.cli_ok(&["keys", "rotate", "--alg", "ES256", "--now"]);
    let k2 = kid_in_state(&idp, "ES256", "active");
    assert!(k2 != k0 && k2 != k1);
    eventually("ID tokens signed by the emergency key", || async {
        let t = tokens(&idp, &b, &client_id, &secret).await;
        (kid(t["id_token"].as_str().unwrap()) == k2).then_some(())
    })
    .await;
    let published = jwks_kids(&idp).await;
    for k in [&k0, &k1, &k2] {
        assert!(published.contains(k), "{k} in {published:?}");
    }

    // Both rotations are in the audit trail.
    let rotations: i64 = audit_events::table
        .filter(audit_events::event.eq("key.rotate"))
        .count()
        .get_result(&mut *db.get().unwrap())
        .unwrap();
    assert_eq!(rotations, 2);

    // No private key material reached the log.
    idp.stop();
    let log = std::fs::read_to_string(idp.log_path()).unwrap();
    assert!(log.contains("signing key loaded"), "reloads are logged");
    assert!(!log.contains("PRIVATE KEY"), "no PEM private key in the log");
    let sealed: Vec<String> =
        signing_keys::table.select(signing_keys::private_sealed).load(&mut *db.get().unwrap()).unwrap();
    assert!(sealed.len() >= 3);
    // Open each key as the server does, and look for its plaintext in every usual encoding.
    let protector = idp::crypto::DataProtector::load_or_create(&idp.dir.path().join("data").join("data.key")).unwrap();
    for s in sealed {
        assert!(!log.contains(&s));
        let private = protector.open(&s).unwrap();
        assert!(private.len() > 32);
        let hex: String = private.iter().map(|b| format!("{b:02x}")).collect();
        // Any 24-byte run of the key, in base64 (standard or URL-safe) or hex, is a leak.
        for chunk in private.chunks(24).filter(|c| c.len() == 24) {
            use base64::Engine;
            for enc in [
                base64::engine::general_purpose::STANDARD.encode(chunk),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(chunk),
            ] {
                assert!(!log.contains(&enc), "private key bytes in the log");
            }
        }
        assert!(!log.contains(&hex[..48]), "private key bytes in the log (hex)");
    }
}

#[test]
fn keys_are_listed_and_rotated_from_the_command_line() {
    let idp = Idp::new();
    // On a fresh database the first keys are made, and the rotation takes over from them.
    let out = idp.cli_ok(&["keys", "rotate"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("ES256: new key") && out.contains("RS256: new key"), "{out}");
    let all = listed(&idp);
    assert_eq!(all.len(), 4, "{all:?}");
    for alg in ["ES256", "RS256"] {
        kid_in_state(&idp, alg, "active");
        kid_in_state(&idp, alg, "next");
    }
    let table = idp.cli_ok(&["keys", "list"]);
    let header = table.lines().next().unwrap();
    for col in ["kid", "alg", "state", "created", "activates", "retires"] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(table.lines().count(), 5);

    // Rotating again before activation supersedes the pending key (it never signed).
    let pending = kid_in_state(&idp, "RS256", "next");
    let out = idp.cli_ok(&["keys", "rotate", "--alg", "rs256"]);
    assert!(out.contains(&format!("withdrew pending {pending}")), "{out}");
    assert_eq!(listed(&idp).len(), 4);

    let bad = idp.cli(&["keys", "rotate", "--alg", "HS256"]);
    assert!(!bad.status.success());

    let short = Idp::with_env(&[("IDP_KEYS__ACTIVATION_DELAY", "10s")]);
    let out = short.cli(&["keys", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keys.activation_delay"));
}
