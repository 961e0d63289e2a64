//! Micro-benchmarks of the two per-request costs on the token endpoint's path that do not
//! depend on HTTP: signing an ID token, and redeeming an authorization code (store, then take
//! atomically) in the in-process store and, when `IDP_TEST_CACHE_URL` names one, in Redis.
//!
//! `cargo bench -p idp --bench tokens`. The load tool (`loadtest/`) measures whole requests;
//! these isolate the parts so a regression can be pinned to one of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use idp::config::Config;
use idp::crypto::DataProtector;
use idp::oidc::authorize::{new_code, CodeGrant};
use idp::oidc::keys::{KeyPolicy, KeySet};
use idp::store::db::Db;
use idp::store::ephemeral::Ephemeral;
use serde_json::json;

const NOW: i64 = 1_790_000_000;

/// Claims the size of a real ID token (see `oidc::token`).
fn id_token_claims() -> serde_json::Value {
    json!({
        "iss": "https://sso.example.gov.tw",
        "sub": "Vb1y3mJ2u0kq8l7Zc4Xf9A",
        "aud": "relying-party-example",
        "azp": "relying-party-example",
        "iat": NOW,
        "exp": NOW + 3600,
        "auth_time": NOW - 60,
        "acr": "loa-1",
        "amr": ["pwd"],
        "sid": "q9Xw2c7vQm1R4tYp8sLk3A",
        "nonce": "n-0S6_WzA2Mj",
        "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
    })
}

fn grant() -> CodeGrant {
    CodeGrant {
        client_id: "relying-party-example".into(),
        redirect_uri: "https://app.example.gov.tw/callback".into(),
        account_id: "Vb1y3mJ2u0kq8l7Zc4Xf9A".into(),
        sid: "q9Xw2c7vQm1R4tYp8sLk3A".into(),
        auth_time: NOW - 60,
        acr: "loa-1".into(),
        amr: vec!["pwd".into()],
        nonce: Some("n-0S6_WzA2Mj".into()),
        scope: vec!["openid".into(), "profile".into(), "email".into()],
        code_challenge: None,
        id_token_claims: vec![],
        dpop_jkt: None,
        resource: None,
    }
}

/// A key set made the way the server makes it, in a throw-away SQLite database.
fn key_set() -> (tempfile::TempDir, KeySet) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("bench.sqlite3").display()), 1).unwrap();
    db.migrate().unwrap();
    let protector = DataProtector::from_key(&[7u8; 32]);
    let mut conn = db.get().unwrap();
    let policy = KeyPolicy::from_config(&Config::default());
    let keys = KeySet::load_or_generate(&mut conn, &protector, policy, NOW).unwrap();
    (dir, keys)
}

fn signing(c: &mut Criterion) {
    let (_dir, keys) = key_set();
    let claims = id_token_claims();
    let mut g = c.benchmark_group("id_token_sign");
    g.bench_function("ES256", |b| b.iter(|| keys.sign("ES256", Some("JWT"), &claims, NOW).unwrap()));
    g.bench_function("RS256", |b| b.iter(|| keys.sign("RS256", Some("JWT"), &claims, NOW).unwrap()));
    g.finish();
    // Every introspection and userinfo call verifies a token; compare with signing.
    let es = keys.sign("ES256", Some("JWT"), &claims, NOW).unwrap();
    c.bench_function("id_token_verify/ES256", |b| b.iter(|| keys.verify_own(&es, NOW).unwrap()));
    es256_breakdown(c, &claims);
}

/// Where ES256 signing time goes. `jsonwebtoken::encode` (what `KeySet::sign` calls) parses
/// the PKCS#8 key into a ring `EcdsaKeyPair` on every call, which costs about as much as the
/// signature itself (a base-point multiplication and a field inversion); a key pair parsed
/// once and kept shows what signing alone costs.
fn es256_breakdown(c: &mut Criterion, claims: &serde_json::Value) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING as P256};

    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&P256, &rng).unwrap();
    let encoding = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    let pair = EcdsaKeyPair::from_pkcs8(&P256, pkcs8.as_ref(), &rng).unwrap();
    let mut g = c.benchmark_group("es256_breakdown");
    g.bench_function("jsonwebtoken_encode", |b| b.iter(|| jsonwebtoken::encode(&header, claims, &encoding).unwrap()));
    g.bench_function("parse_pkcs8_only", |b| b.iter(|| EcdsaKeyPair::from_pkcs8(&P256, pkcs8.as_ref(), &rng).unwrap()));
    g.bench_function("cached_key_pair_encode", |b| {
        b.iter(|| {
            let head = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
            let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
            let input = format!("{head}.{body}");
            let sig = pair.sign(&rng, input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        })
    });
    g.finish();
}

/// One redemption as the server does it: a fresh code stored under its hash, then taken.
fn redemption(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut stores = vec![("memory", rt.block_on(Ephemeral::open("memory://", "b:")).unwrap())];
    if let Ok(url) = std::env::var("IDP_TEST_CACHE_URL") {
        let prefix = format!("bench:{}:", idp::crypto::random_token(6));
        stores.push(("redis", rt.block_on(Ephemeral::open(&url, &prefix)).unwrap()));
    }
    let grant = &grant();
    let mut g = c.benchmark_group("code_redemption");
    for (name, store) in &stores {
        g.bench_function(*name, |b| {
            b.to_async(&rt).iter_batched(
                new_code,
                |(_code, key)| async move {
                    store.put_json(&key, &grant, Duration::from_secs(60)).await.unwrap();
                    let taken: CodeGrant = store.take_json(&key).await.unwrap().unwrap();
                    taken
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, signing, redemption);
criterion_main!(benches);
