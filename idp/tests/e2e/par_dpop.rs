//! Pushed authorization requests (RFC 9126) and DPoP (RFC 9449) against the real server: the
//! flows a FAPI 2.0 client runs, and the ways around them an attacker tries — a replayed proof,
//! a proof for another URL or method, a stale one, another key at refresh, a request_uri used
//! twice (on two nodes at once) or by another client, and pushed requests the authorization
//! endpoint would refuse.

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const PW: &str = "Civil-Service-2026";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A client's DPoP key (P-256) and the proofs it makes.
pub(crate) struct DpopKey {
    pkcs8: Vec<u8>,
    jwk: Value,
}

/// What a proof claims; each test changes the one thing it tries.
struct Proof<'a> {
    htm: &'a str,
    htu: String,
    iat: i64,
    nonce: Option<&'a str>,
    access_token: Option<&'a str>,
}

impl DpopKey {
    pub(crate) fn new() -> Self {
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let p = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])});
        Self { pkcs8: pkcs8.as_ref().to_vec(), jwk }
    }

    /// RFC 7638: the required members in order, SHA-256, base64url.
    pub(crate) fn jkt(&self) -> String {
        use sha2::Digest;
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().unwrap(),
            self.jwk["y"].as_str().unwrap()
        );
        b64(&sha2::Sha256::digest(canonical.as_bytes()))
    }

    fn sign(&self, p: &Proof<'_>) -> String {
        let mut claims = json!({"jti": random_name(), "htm": p.htm, "htu": p.htu, "iat": p.iat});
        if let Some(n) = p.nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(t) = p.access_token {
            use sha2::Digest;
            claims["ath"] = json!(b64(&sha2::Sha256::digest(t.as_bytes())));
        }
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.typ = Some("dpop+jwt".into());
        h.jwk = Some(serde_json::from_value(self.jwk.clone()).unwrap());
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }

    /// A good proof for `POST {base}{path}` with the server's nonce.
    pub(crate) fn post(&self, base: &str, path: &str, nonce: &str) -> String {
        self.sign(&Proof {
            htm: "POST",
            htu: format!("{base}{path}"),
            iat: now(),
            nonce: Some(nonce),
            access_token: None,
        })
    }
}

fn random_name() -> String {
    use rand::Rng;
    let n: u128 = rand::thread_rng().gen();
    format!("{n:x}")
}

/// An answer of a back-end endpoint: status, JSON body and the DPoP-Nonce header.
struct Answer {
    status: u16,
    body: Value,
    nonce: Option<String>,
    www_authenticate: Option<String>,
}

async fn answer(r: reqwest::Response) -> Answer {
    let status = r.status().as_u16();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let (nonce, www_authenticate) = (header("dpop-nonce"), header("www-authenticate"));
    Answer { status, body: r.json().await.unwrap_or(Value::Null), nonce, www_authenticate }
}

/// A relying party's credentials: a secret (Basic), or none for a public client.
struct Rp {
    client_id: String,
    secret: String,
}

impl Rp {
    /// A back-end POST as this client (Basic, or `client_id` for a public one), with proofs.
    async fn post(&self, base: &str, path: &str, form: &[(&str, &str)], proofs: &[&str]) -> Answer {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        let mut r = http().post(format!("{base}{path}"));
        if self.secret.is_empty() {
            form.push(("client_id", &self.client_id));
        } else {
            r = r.basic_auth(&self.client_id, Some(&self.secret));
        }
        for p in proofs {
            r = r.header("DPoP", *p);
        }
        answer(r.form(&form).send().await.unwrap()).await
    }
}

/// A started IdP with Ming signed in and one client made with `args`.
struct World {
    idp: Idp,
    browser: Browser,
    client_id: String,
    rp: Rp,
}

async fn world(args: &[&str]) -> World {
    let mut idp = Idp::new();
    idp.import_register();
    let client = create(&idp, "PAR app", args);
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    assert_eq!(browser.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    World { idp, browser, client_id: client.0.clone(), rp: Rp { client_id: client.0, secret: client.1 } }
}

/// `idp clients create` with `args`; returns (id, secret or "").
fn create(idp: &Idp, name: &str, args: &[&str]) -> (String, String) {
    let scope = "openid profile offline_access";
    let mut cmd = vec!["clients", "create", "--name", name, "--redirect-uri", CB, "--scope", scope, "--json"];
    cmd.extend_from_slice(args);
    let v: Value = serde_json::from_str(&idp.cli_ok(&cmd)).unwrap();
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap_or("").to_string())
}

impl World {
    async fn post(&self, base: &str, path: &str, form: &[(&str, &str)], proofs: &[&str]) -> Answer {
        self.rp.post(base, path, form, proofs).await
    }

    /// The server's current nonce, as a client learns it: from the first refusal.
    async fn nonce(&self) -> String {
        let a = self.post(&self.idp.base, "/par", &[], &[]).await;
        a.nonce.expect("every PAR answer carries DPoP-Nonce")
    }

    /// Pushes a code-flow request (PKCE S256) with the `extra` parameters and proofs.
    async fn push(&self, extra: &[(&str, &str)], proofs: &[&str]) -> Answer {
        let mut form = vec![
            ("response_type", "code"),
            ("scope", "openid profile offline_access"),
            ("redirect_uri", CB),
            ("state", "st-1"),
            ("nonce", "n-1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        form.extend_from_slice(extra);
        self.post(&self.idp.base, "/par", &form, proofs).await
    }

    /// The code `/authorize` answers a pushed request with.
    async fn code_for(&self, request_uri: &str) -> String {
        let r = self.authorize_uri(&self.idp.base, request_uri, "").await;
        let loc = r.location.unwrap_or_else(|| panic!("no redirect: {} {}", r.status, r.body));
        assert!(loc.starts_with(CB), "to the registered redirect URI: {loc}");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("st-1"), "the pushed state");
        query_param(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"))
    }

    async fn authorize_uri(&self, base: &str, request_uri: &str, extra: &str) -> Page {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("request_uri", request_uri)
            .finish();
        self.browser.get(&format!("{base}/authorize?{q}{extra}")).await
    }

    async fn redeem(&self, code: &str, proofs: &[&str]) -> Answer {
        let form =
            [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB), ("code_verifier", VERIFIER)];
        self.post(&self.idp.base, "/token", &form, proofs).await
    }

    async fn userinfo(&self, scheme: &str, token: &str, proofs: &[&str]) -> Answer {
        let mut r =
            http().get(format!("{}/userinfo", self.idp.base)).header("Authorization", format!("{scheme} {token}"));
        for p in proofs {
            r = r.header("DPoP", *p);
        }
        answer(r.send().await.unwrap()).await
    }
}

#[tokio::test]
async fn config_discovery_names_the_par_endpoint_and_the_dpop_algorithms_in_both_documents() {
    let mut idp = Idp::new();
    idp.start().await;
    for doc in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let d: Value = http().get(format!("{}{doc}", idp.base)).send().await.unwrap().json().await.unwrap();
        assert_eq!(d["pushed_authorization_request_endpoint"], json!(format!("{}/par", idp.base)), "{doc}");
        assert_eq!(d["require_pushed_authorization_requests"], json!(false), "{doc}: per client, not for all");
        let algs = d["dpop_signing_alg_values_supported"].as_array().unwrap();
        for alg in ["ES256", "RS256", "PS256"] {
            assert!(algs.contains(&json!(alg)), "{doc} lists {alg}");
        }
        assert!(!algs.contains(&json!("HS256")) && !algs.contains(&json!("none")), "{doc}: asymmetric only");
    }
}

/// FAPI 2.0 Security Profile, as its certification plan runs it: PAR with PKCE, a DPoP proof
/// at the push (binding the code), the server nonce, DPoP-bound tokens, userinfo with the
/// proof and `ath`, and introspection that reports the binding.
#[tokio::test]
async fn fapi2_security_profile_par_dpop_code_flow_gets_dpop_bound_tokens_and_userinfo() {
    let w = world(&["--require-par", "--dpop-bound-access-tokens"]).await;
    let base = w.idp.base.clone();
    let key = DpopKey::new();

    // Without the server's nonce the push is refused with use_dpop_nonce, and the nonce given.
    let stale =
        key.sign(&Proof { htm: "POST", htu: format!("{base}/par"), iat: now(), nonce: None, access_token: None });
    let first = w.push(&[], &[&stale]).await;
    assert_eq!((first.status, first.body["error"].as_str()), (400, Some("use_dpop_nonce")), "{}", first.body);
    let nonce = first.nonce.expect("the nonce comes with the refusal");

    let pushed = w.push(&[], &[&key.post(&base, "/par", &nonce)]).await;
    assert_eq!(pushed.status, 201, "{}", pushed.body);
    let request_uri = pushed.body["request_uri"].as_str().unwrap().to_string();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{request_uri}");
    assert_eq!(pushed.body["expires_in"], json!(60));
    assert_eq!(w.idp.audit_count("par.push", "success"), 1);

    let code = w.code_for(&request_uri).await;
    let tokens = w.redeem(&code, &[&key.post(&base, "/token", &nonce)]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.body["token_type"], "DPoP");
    assert!(tokens.nonce.is_some(), "the token endpoint hands out the nonce too");
    let at = tokens.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_part(&at, 1)["cnf"], json!({"jkt": key.jkt()}), "the access token names the key");

    let proof = |token: &str| {
        key.sign(&Proof {
            htm: "GET",
            htu: format!("{base}/userinfo"),
            iat: now(),
            nonce: Some(&nonce),
            access_token: Some(token),
        })
    };
    let me = w.userinfo("DPoP", &at, &[&proof(&at)]).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert!(me.body["sub"].is_string() && me.body["name"].is_string(), "{}", me.body);

    let intro = w.post(&base, "/introspect", &[("token", &at)], &[]).await;
    assert_eq!(intro.body["active"], json!(true), "{}", intro.body);
    assert_eq!(intro.body["token_type"], "DPoP");
    assert_eq!(intro.body["cnf"], json!({"jkt": key.jkt()}));
}

#[tokio::test]
async fn a_request_uri_is_used_once_even_on_two_nodes_at_once_and_only_by_its_client() {
    let mut w = world(&[]).await;
    let (other_id, _) = create(&w.idp, "Other app", &[]);
    let mut peer = None;
    if Idp::several_nodes_possible("a_request_uri_is_used_once_even_on_two_nodes_at_once_and_only_by_its_client") {
        let mut p = w.idp.peer(&[]);
        p.start().await;
        peer = Some(p);
    }
    let request_uri = w.push(&[], &[]).await.body["request_uri"].as_str().unwrap().to_string();

    // Another client cannot use it, and its attempt does not spend it.
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &other_id)
        .append_pair("request_uri", &request_uri)
        .finish();
    let stolen = w.browser.get(&format!("/authorize?{q}")).await;
    assert_eq!(stolen.status, 400, "{:?}", stolen.location);
    assert!(stolen.body.contains("授權請求已逾時或已使用"), "Chinese first: {}", stolen.body);
    let english = w
        .browser
        .http
        .get(format!("{}/authorize?{q}", w.idp.base))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    assert_eq!(english.status(), 400);
    assert!(english.text().await.unwrap().contains("The authorization request has expired"), "in English when asked");
    assert_eq!(w.idp.audit_count("par.use", "refused"), 2);

    // Two uses at once, on two nodes where there are two: exactly one gets a code.
    let bases: Vec<String> = match &peer {
        Some(p) => vec![w.idp.base.clone(), p.base.clone()],
        None => vec![w.idp.base.clone(), w.idp.base.clone()],
    };
    let tries = bases.iter().map(|b| w.authorize_uri(b, &request_uri, "")).collect();
    let pages = join_all(tries).await;
    let codes: Vec<_> =
        pages.iter().filter_map(|p| p.location.as_deref().and_then(|l| query_param(l, "code"))).collect();
    assert_eq!(codes.len(), 1, "one use only: {:?}", pages.iter().map(|p| (p.status, &p.location)).collect::<Vec<_>>());
    assert!(pages.iter().any(|p| p.status == 400), "the other is refused");
    // And later, once more: gone.
    assert_eq!(w.authorize_uri(&w.idp.base, &request_uri, "").await.status, 400);
    // A made-up one is as unknown.
    let made_up = format!("urn:ietf:params:oauth:request_uri:{}", random_name());
    assert_eq!(w.authorize_uri(&w.idp.base, &made_up, "").await.status, 400);
    w.idp.stop();
}

#[tokio::test]
async fn a_request_uri_stops_working_when_it_expires() {
    let mut idp = Idp::with_env(&[("IDP_TOKENS__REQUEST_URI_TTL", "1s")]);
    idp.import_register();
    let (client_id, secret) = create(&idp, "PAR app", &[]);
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    assert_eq!(browser.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let w = World { idp, browser, client_id: client_id.clone(), rp: Rp { client_id, secret } };
    let pushed = w.push(&[], &[]).await;
    assert_eq!(pushed.body["expires_in"], json!(1));
    let request_uri = pushed.body["request_uri"].as_str().unwrap();
    // Past its lifetime for certain (the clock moves on; no race decides the outcome).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let late = w.authorize_uri(&w.idp.base, request_uri, "").await;
    assert_eq!(late.status, 400, "expired: {:?}", late.location);
    assert!(late.location.is_none(), "nothing is sent to the client");
}

#[tokio::test]
async fn a_pushed_request_is_checked_as_the_authorization_endpoint_checks_it_and_outside_parameters_are_ignored() {
    let w = world(&["--require-par"]).await;
    // A client that requires PAR gets no code from a plain request, only an error at its URI.
    let plain = w
        .browser
        .get(&format!(
            "/authorize?client_id={}&redirect_uri={}&response_type=code&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256",
            w.client_id,
            url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
        ))
        .await;
    let loc = plain.location.expect("an error sent back to the registered redirect URI");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"), "{loc}");
    assert!(query_param(&loc, "code").is_none());

    // What /authorize refuses is refused at the push, with its error code, and audited.
    for (name, value, error) in [
        ("redirect_uri", "http://127.0.0.1:9/evil", "invalid_request"),
        ("response_type", "token", "unsupported_response_type"),
        ("code_challenge_method", "plain", "invalid_request"),
        ("scope", "profile", "invalid_scope"),
        ("request_uri", "urn:ietf:params:oauth:request_uri:x", "invalid_request"),
        ("dpop_jkt", "not-a-thumbprint", "invalid_request"),
    ] {
        // The value replaces the good one (a repeated parameter is refused on its own).
        let mut form = vec![
            ("response_type", "code"),
            ("scope", "openid"),
            ("redirect_uri", CB),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        form.retain(|(k, _)| *k != name);
        form.push((name, value));
        let a = w.post(&w.idp.base, "/par", &form, &[]).await;
        assert_eq!((a.status, a.body["error"].as_str()), (400, Some(error)), "{name}={value}: {}", a.body);
    }
    assert_eq!(w.idp.audit_count("par.push", "refused"), 5, "every refusal but request_uri's is audited");
    // Without client authentication nothing is pushed.
    let anonymous = answer(
        http()
            .post(format!("{}/par", w.idp.base))
            .form(&[("response_type", "code"), ("scope", "openid"), ("redirect_uri", CB)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((anonymous.status, anonymous.body["error"].as_str()), (401, Some("invalid_client")));
    let wrong = answer(
        http()
            .post(format!("{}/par", w.idp.base))
            .basic_auth(&w.client_id, Some("not-the-secret"))
            .form(&[("response_type", "code"), ("scope", "openid"), ("redirect_uri", CB)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, 401);

    // Parameters beside client_id and request_uri are ignored: the pushed ones count.
    let request_uri = w.push(&[], &[]).await.body["request_uri"].as_str().unwrap().to_string();
    let evil = "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fevil&state=forged&scope=openid%20national_id";
    let r = w.authorize_uri(&w.idp.base, &request_uri, evil).await;
    let loc = r.location.unwrap_or_else(|| panic!("{} {}", r.status, r.body));
    assert!(loc.starts_with(CB), "the pushed redirect URI: {loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-1"), "the pushed state");
    let tokens = w.redeem(&query_param(&loc, "code").unwrap(), &[]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.body["token_type"], "Bearer", "no proof, no binding");
    assert!(!tokens.body["scope"].as_str().unwrap().contains("national_id"), "the pushed scope");
}

#[tokio::test]
async fn oidcc_dpop_proofs_replayed_for_another_url_or_method_or_stale_are_refused_at_the_token_endpoint() {
    let mut w = world(&["--dpop-bound-access-tokens"]).await;
    let base = w.idp.base.clone();
    let key = DpopKey::new();
    let nonce = w.nonce().await;
    let code = || async {
        let pushed = w.push(&[], &[]).await;
        w.code_for(pushed.body["request_uri"].as_str().unwrap()).await
    };

    // A client whose tokens are DPoP-bound gets nothing without a proof (and keeps its code).
    let c = code().await;
    let none = w.redeem(&c, &[]).await;
    assert_eq!(none.body["error"], "invalid_dpop_proof", "{}", none.body);
    let at = |htm: &'static str, path: &str, iat: i64| {
        key.sign(&Proof { htm, htu: format!("{base}{path}"), iat, nonce: Some(&nonce), access_token: None })
    };
    for (proof, what) in [
        (at("GET", "/token", now()), "another method"),
        (at("POST", "/userinfo", now()), "another URL"),
        (
            key.sign(&Proof {
                htm: "POST",
                htu: "http://other.example/token".into(),
                iat: now(),
                nonce: Some(&nonce),
                access_token: None,
            }),
            "another host",
        ),
        (at("POST", "/token", now() - 3600), "an hour old"),
        (at("POST", "/token", now() + 3600), "from the future"),
        (at("POST", "/token", now()).replacen('.', ".x", 1), "a broken signature"),
    ] {
        let a = w.redeem(&c, &[&proof]).await;
        assert_eq!((a.status, a.body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{what}: {}", a.body);
    }
    let two = at("POST", "/token", now());
    let a = w.redeem(&c, &[&two, &at("POST", "/token", now())]).await;
    assert_eq!(a.body["error"], "invalid_dpop_proof", "two DPoP headers");
    // None of that spent the code: a good proof still redeems it.
    let good = at("POST", "/token", now());
    assert_eq!(w.redeem(&c, &[&good]).await.status, 200);

    // The same proof again, here or on another node, is refused.
    let replay = w.redeem(&code().await, &[&good]).await;
    assert_eq!(replay.body["error"], "invalid_dpop_proof", "replayed: {}", replay.body);
    if Idp::several_nodes_possible(
        "oidcc_dpop_proofs_replayed_for_another_url_or_method_or_stale_are_refused_at_the_token_endpoint",
    ) {
        // Both nodes answer for one issuer, so a proof names the issuer's URL on either; used on
        // one node, it is refused on the other (the jti is remembered in Redis).
        let mut peer = w.idp.peer(&[]);
        peer.start().await;
        let proof = at("POST", "/token", now());
        assert_eq!(w.redeem(&code().await, &[&proof]).await.status, 200);
        let c = code().await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", c.as_str()),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ];
        let replayed = w.post(&peer.base, "/token", &form, &[&proof]).await;
        assert_eq!(replayed.body["error"], "invalid_dpop_proof", "replayed on the other node: {}", replayed.body);
        let fresh = at("POST", "/token", now());
        assert_eq!(w.post(&peer.base, "/token", &form, &[&fresh]).await.status, 200, "the code was not spent");
        peer.stop();
    }
    w.idp.stop();
}

#[tokio::test]
async fn a_public_clients_dpop_bound_refresh_token_is_refused_without_a_proof_of_the_same_key() {
    let w = world(&["--public"]).await;
    let base = w.idp.base.clone();
    let (key, thief) = (DpopKey::new(), DpopKey::new());
    let nonce = w.nonce().await;
    // dpop_jkt at the push binds the code: another key cannot redeem it.
    let pushed = w.push(&[("dpop_jkt", &key.jkt())], &[]).await;
    assert_eq!(pushed.status, 201, "{}", pushed.body);
    let code = w.code_for(pushed.body["request_uri"].as_str().unwrap()).await;
    let stolen = w.redeem(&code, &[&thief.post(&base, "/token", &nonce)]).await;
    assert_eq!(stolen.body["error"], "invalid_grant", "{}", stolen.body);
    // A proof at the push that disagrees with dpop_jkt is refused there.
    let mismatch = w.push(&[("dpop_jkt", &key.jkt())], &[&thief.post(&base, "/par", &nonce)]).await;
    assert_eq!(mismatch.body["error"], "invalid_dpop_proof", "{}", mismatch.body);

    // The key's own proof at the push binds the code to it too.
    let pushed = w.push(&[], &[&key.post(&base, "/par", &nonce)]).await;
    let code = w.code_for(pushed.body["request_uri"].as_str().unwrap()).await;
    let without = w.redeem(&code, &[]).await;
    assert_eq!(without.body["error"], "invalid_grant", "a bound code without a proof: {}", without.body);
    let pushed = w.push(&[], &[&key.post(&base, "/par", &nonce)]).await;
    let code = w.code_for(pushed.body["request_uri"].as_str().unwrap()).await;
    let tokens = w.redeem(&code, &[&key.post(&base, "/token", &nonce)]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let rt = tokens.body["refresh_token"].as_str().unwrap().to_string();

    let refresh = |proofs: Vec<String>| {
        let rt = rt.clone();
        let w = &w;
        async move {
            let p: Vec<&str> = proofs.iter().map(String::as_str).collect();
            w.post(&w.idp.base, "/token", &[("grant_type", "refresh_token"), ("refresh_token", &rt)], &p).await
        }
    };
    let no_proof = refresh(vec![]).await;
    assert_eq!(no_proof.body["error"], "invalid_grant", "{}", no_proof.body);
    let other_key = refresh(vec![thief.post(&base, "/token", &nonce)]).await;
    assert_eq!(other_key.body["error"], "invalid_grant", "{}", other_key.body);
    assert_eq!(w.idp.audit_count("token.dpop_refused", "wrong_key"), 2);
    // The refusals neither spent the token nor revoked its family: the key holder refreshes.
    let ok = refresh(vec![key.post(&base, "/token", &nonce)]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["token_type"], "DPoP");
    let intro_rt = ok.body["refresh_token"].as_str().unwrap();
    // The next refresh token carries the binding on.
    let again = w
        .post(
            &base,
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", intro_rt)],
            &[&thief.post(&base, "/token", &nonce)],
        )
        .await;
    assert_eq!(again.body["error"], "invalid_grant");
}

#[tokio::test]
async fn userinfo_takes_a_dpop_bound_token_only_with_a_fresh_proof_of_its_key_and_its_hash() {
    let w = world(&[]).await;
    let base = w.idp.base.clone();
    let (key, thief) = (DpopKey::new(), DpopKey::new());
    let nonce = w.nonce().await;
    let pushed = w.push(&[], &[]).await;
    let code = w.code_for(pushed.body["request_uri"].as_str().unwrap()).await;
    let tokens = w.redeem(&code, &[&key.post(&base, "/token", &nonce)]).await;
    let at = tokens.body["access_token"].as_str().unwrap().to_string();
    let url = format!("{base}/userinfo");
    let proof = |k: &DpopKey, htm: &'static str, token: Option<&str>, nonce: Option<&str>| {
        k.sign(&Proof { htm, htu: url.clone(), iat: now(), nonce, access_token: token })
    };

    let bearer = w.userinfo("Bearer", &at, &[]).await;
    assert_eq!(bearer.status, 401, "a bound token as a bearer token: {}", bearer.body);
    for (p, what, error) in [
        (proof(&thief, "GET", Some(&at), Some(&nonce)), "another key", "invalid_dpop_proof"),
        (proof(&key, "GET", None, Some(&nonce)), "no ath", "invalid_dpop_proof"),
        (proof(&key, "GET", Some("another-token"), Some(&nonce)), "another token's ath", "invalid_dpop_proof"),
        (proof(&key, "POST", Some(&at), Some(&nonce)), "another method", "invalid_dpop_proof"),
        (proof(&key, "GET", Some(&at), None), "no nonce", "use_dpop_nonce"),
    ] {
        let a = w.userinfo("DPoP", &at, &[&p]).await;
        assert_eq!((a.status, a.body["error"].as_str()), (401, Some(error)), "{what}: {}", a.body);
        let challenge = a.www_authenticate.unwrap_or_default();
        assert!(challenge.starts_with("DPoP ") && challenge.contains(error), "{what}: {challenge}");
        assert!(a.nonce.is_some(), "{what}: the nonce comes with the refusal");
    }
    let missing = w.userinfo("DPoP", &at, &[]).await;
    assert_eq!(missing.status, 401);
    let good = proof(&key, "GET", Some(&at), Some(&nonce));
    assert_eq!(w.userinfo("DPoP", &at, &[&good]).await.status, 200);
    let replay = w.userinfo("DPoP", &at, &[&good]).await;
    assert_eq!((replay.status, replay.body["error"].as_str()), (401, Some("invalid_dpop_proof")), "replayed");

    // An unbound token is a bearer token and nothing else.
    let pushed = w.push(&[], &[]).await;
    let code = w.code_for(pushed.body["request_uri"].as_str().unwrap()).await;
    let plain = w.redeem(&code, &[]).await.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(w.userinfo("Bearer", &plain, &[]).await.status, 200);
    let as_dpop = proof(&key, "GET", Some(&plain), Some(&nonce));
    assert_eq!(w.userinfo("DPoP", &plain, &[&as_dpop]).await.status, 401, "a bearer token as DPoP");
}

#[tokio::test]
async fn the_par_and_dpop_settings_come_from_the_cli_and_dynamic_registration_and_an_update_cannot_drop_them() {
    let w = world(&[]).await;
    // Switched on later by an operator, on the command line: plain requests stop at once
    // (the clients cache lives seconds, the CLI writes the database; the next request reloads).
    let out = w.idp.cli_ok(&["clients", "update", &w.client_id, "--require-par", "--dpop-bound-access-tokens"]);
    assert!(out.contains("require_pushed_authorization_requests: yes"), "{out}");
    let shown: Value = serde_json::from_str(&w.idp.cli_ok(&["clients", "show", &w.client_id, "--json"])).unwrap();
    assert_eq!(shown["require_pushed_authorization_requests"], json!(true));
    assert_eq!(shown["dpop_bound_access_tokens"], json!(true));
    let events = w.idp.audit_events("client.update");
    assert!(events.last().unwrap().3.contains("require_pushed_authorization_requests true"), "{events:?}");
    w.idp.cli_ok(&["clients", "update", &w.client_id, "--require-par=false", "--dpop-bound-access-tokens=false"]);
    let shown: Value = serde_json::from_str(&w.idp.cli_ok(&["clients", "show", &w.client_id, "--json"])).unwrap();
    assert!(shown.get("require_pushed_authorization_requests").is_none(), "off again: {shown}");

    // A client registers itself with both on; an RFC 7592 update cannot switch them off.
    let iat: Value = serde_json::from_str(&w.idp.cli_ok(&["clients", "issue-registration-token", "--json"])).unwrap();
    let meta = json!({
        "client_name": "FAPI app", "redirect_uris": [CB], "token_endpoint_auth_method": "client_secret_basic",
        "require_pushed_authorization_requests": true, "dpop_bound_access_tokens": true,
    });
    let reg: Value = http()
        .post(format!("{}/register", w.idp.base))
        .bearer_auth(iat["initial_access_token"].as_str().unwrap())
        .json(&meta)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reg["require_pushed_authorization_requests"], json!(true), "{reg}");
    assert_eq!(reg["dpop_bound_access_tokens"], json!(true), "{reg}");
    let mut update = meta.clone();
    update["client_id"] = reg["client_id"].clone();
    update["require_pushed_authorization_requests"] = json!(false);
    update["dpop_bound_access_tokens"] = json!(false);
    let updated: Value = http()
        .put(reg["registration_client_uri"].as_str().unwrap())
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .json(&update)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["require_pushed_authorization_requests"], json!(true), "not switched off: {updated}");
    assert_eq!(updated["dpop_bound_access_tokens"], json!(true), "not switched off: {updated}");
    // And the server holds it to them: no token request without a proof, no plain request.
    let rp = Rp {
        client_id: reg["client_id"].as_str().unwrap().into(),
        secret: reg["client_secret"].as_str().unwrap().into(),
    };
    let form = [("grant_type", "authorization_code"), ("code", "x"), ("redirect_uri", CB)];
    let plain = rp.post(&w.idp.base, "/token", &form, &[]).await;
    assert_eq!(plain.body["error"], "invalid_dpop_proof", "{}", plain.body);
    let q = format!(
        "/authorize?client_id={}&response_type=code&scope=openid&redirect_uri={}",
        rp.client_id, "http%3A%2F%2F127.0.0.1%3A9%2Fcb"
    );
    let loc = w.browser.get(&q).await.location.expect("an error to the redirect URI");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"), "{loc}");
}
