//! Signed request objects (RFC 9101, OpenID Connect Core §6.1), named after the certification
//! suite's modules where one applies, and the ways around them: unsigned, wrongly signed,
//! expired, another client's, replayed, and a plain request from a client that must sign.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::client_key::ClientKey;
use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const PW: &str = "Civil-Service-2026";
/// A request object's media type (RFC 9101 §10.8).
const TYP: Option<&str> = Some("oauth-authz-req+jwt");

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A started IdP with Ming signed in and a client that registered `key`'s public half.
struct World {
    idp: Idp,
    browser: Browser,
    client_id: String,
    secret: String,
    issuer: String,
}

async fn world(key: &ClientKey, args: &[&str]) -> World {
    let mut idp = Idp::new();
    idp.import_register();
    let file = idp.file("client-jwks.json", key.jwks().to_string().as_bytes());
    let mut cmd = vec!["clients", "create", "--name", "Signed requests", "--redirect-uri", CB, "--jwks-file", &file];
    cmd.extend_from_slice(args);
    cmd.push("--json");
    let v: Value = serde_json::from_str(&idp.cli_ok(&cmd)).unwrap();
    let client_id = v["client_id"].as_str().unwrap().to_string();
    let secret = v["client_secret"].as_str().unwrap_or("").to_string();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    assert_eq!(browser.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let d: Value = http()
        .get(format!("{}/.well-known/openid-configuration", idp.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = d["issuer"].as_str().unwrap().to_string();
    World { idp, browser, client_id, secret, issuer }
}

impl World {
    /// Claims of a request object of this client: every parameter, a short life and a jti.
    fn claims(&self, jti: &str) -> Value {
        let now = now();
        json!({
            "iss": self.client_id, "aud": self.issuer, "iat": now, "nbf": now, "exp": now + 300, "jti": jti,
            "client_id": self.client_id, "response_type": "code", "scope": "openid profile",
            "redirect_uri": CB, "state": "st-object", "nonce": "nonce-object",
        })
    }

    /// GET /authorize with `client_id`, `response_type` and `extra` in the query.
    async fn authorize(&self, extra: &str) -> Page {
        self.browser.get(&format!("/authorize?client_id={}&response_type=code{extra}", self.client_id)).await
    }

    async fn authorize_with(&self, request: &str, extra: &str) -> Page {
        self.authorize(&format!("&request={request}{extra}")).await
    }

    async fn exchange(&self, code: &str) -> Value {
        let r = http()
            .post(format!("{}/token", self.idp.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

fn location(p: &Page) -> String {
    p.location.clone().unwrap_or_else(|| panic!("no redirect: {} {}", p.status, p.body))
}

fn jwt_claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The error the client is sent back, with the state it was sent with.
fn redirected_error(p: &Page) -> (String, Option<String>) {
    let loc = location(p);
    assert!(loc.starts_with(CB), "the error goes to the registered redirect URI: {loc}");
    (query_param(&loc, "error").unwrap_or_else(|| panic!("no error in {loc}")), query_param(&loc, "state"))
}

#[tokio::test]
async fn oidcc_request_object_signed_rs256_is_honoured_and_its_parameters_win() {
    let key = ClientKey::rsa("rs-1", jsonwebtoken::Algorithm::RS256);
    let w = world(&key, &["--request-object-signing-alg", "RS256"]).await;
    let object = key.sign_typed(TYP, &w.claims("jti-1"));
    // The query says other things (another state, nonce and scope): only the object counts.
    let p = w.authorize_with(&object, "&scope=openid%20email&state=st-query&nonce=nonce-query").await;
    let loc = location(&p);
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-object"), "{loc}");
    let tokens = w.exchange(&query_param(&loc, "code").unwrap()).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "nonce-object");
    assert_eq!(tokens["scope"], "openid profile", "the object's scope, not the query's");
}

#[tokio::test]
async fn oidcc_ensure_request_object_with_redirect_uri() {
    // The redirect URI is only in the object; ES256 with a key of its own.
    let key = ClientKey::ec("ec-1");
    let w = world(&key, &[]).await;
    let p = w.authorize_with(&key.sign_typed(TYP, &w.claims("jti-ec")), "&scope=openid").await;
    let loc = location(&p);
    assert!(loc.starts_with(CB), "{loc}");
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    // Discovery says what is accepted.
    let d: Value = http()
        .get(format!("{}/.well-known/openid-configuration", w.idp.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["request_parameter_supported"], json!(true));
    assert_eq!(d["request_object_signing_alg_values_supported"], json!(["RS256", "PS256", "ES256"]));
}

#[tokio::test]
async fn oidcc_request_object_ps256_over_post_and_the_same_jti_twice_is_a_replay() {
    let key = ClientKey::rsa("ps-1", jsonwebtoken::Algorithm::PS256);
    let w = world(&key, &[]).await;
    let object = key.sign_typed(TYP, &w.claims("jti-once"));
    let form = [("client_id", w.client_id.as_str()), ("request", object.as_str()), ("redirect_uri", CB)];
    let first = w.browser.post("/authorize", &form).await;
    assert!(query_param(&location(&first), "code").is_some());
    let again = w.browser.post("/authorize", &form).await;
    assert_eq!(redirected_error(&again).0, "invalid_request_object");
    assert_eq!(w.idp.audit_count("authorize.request_object", "replayed"), 1);
}

#[tokio::test]
async fn oidcc_unsigned_wrongly_signed_expired_and_other_clients_request_objects_are_refused() {
    let key = ClientKey::rsa("rs-1", jsonwebtoken::Algorithm::RS256);
    let w = world(&key, &[]).await;
    let q = format!("&redirect_uri={CB_ENC}&state=st-query");

    // alg=none.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(w.claims("jti-none").to_string());
    let (error, state) = redirected_error(&w.authorize_with(&format!("{header}.{body}."), &q).await);
    assert_eq!(error, "invalid_request_object");
    assert_eq!(state.as_deref(), Some("st-query"), "nothing of an unverified object is used");

    // Signed by a key the client never registered.
    let stranger = ClientKey::rsa("rs-1", jsonwebtoken::Algorithm::RS256);
    let forged = stranger.sign_typed(TYP, &w.claims("jti-forged"));
    assert_eq!(redirected_error(&w.authorize_with(&forged, &q).await).0, "invalid_request_object");

    // Expired, not yet valid, or made to live for a day.
    let mut expired = w.claims("jti-expired");
    expired["iat"] = json!(now() - 600);
    expired["nbf"] = json!(now() - 600);
    expired["exp"] = json!(now() - 300);
    assert_eq!(
        redirected_error(&w.authorize_with(&key.sign_typed(TYP, &expired), &q).await).0,
        "invalid_request_object"
    );
    let mut early = w.claims("jti-early");
    early["nbf"] = json!(now() + 600);
    early["exp"] = json!(now() + 900);
    assert_eq!(redirected_error(&w.authorize_with(&key.sign_typed(TYP, &early), &q).await).0, "invalid_request_object");
    let mut long = w.claims("jti-long");
    long["exp"] = json!(now() + 86_400);
    assert_eq!(redirected_error(&w.authorize_with(&key.sign_typed(TYP, &long), &q).await).0, "invalid_request_object");

    // For another audience, or naming another client as its issuer or client_id.
    let mut aud = w.claims("jti-aud");
    aud["aud"] = json!("https://other-idp.example");
    assert_eq!(redirected_error(&w.authorize_with(&key.sign_typed(TYP, &aud), &q).await).0, "invalid_request_object");
    let other = w.idp.cli_ok(&["clients", "create", "--name", "Other", "--redirect-uri", CB, "--json"]);
    let other_id = serde_json::from_str::<Value>(&other).unwrap()["client_id"].as_str().unwrap().to_string();
    let mut iss = w.claims("jti-iss");
    iss["iss"] = json!(other_id);
    assert_eq!(redirected_error(&w.authorize_with(&key.sign_typed(TYP, &iss), &q).await).0, "invalid_request_object");
    let mut cid = w.claims("jti-cid");
    cid["client_id"] = json!(other_id);
    assert_eq!(redirected_error(&w.authorize_with(&key.sign_typed(TYP, &cid), &q).await).0, "invalid_request_object");
    // This client's object sent under the other client's id is checked with the other's
    // (absent) keys, and its redirect URI is not trusted: a page, not a code.
    let borrowed = key.sign_typed(TYP, &w.claims("jti-borrowed"));
    let p = w.browser.get(&format!("/authorize?client_id={other_id}&response_type=code&request={borrowed}")).await;
    assert_eq!(p.status, 400, "{:?}", p.location);
    assert!(p.body.contains("request object"), "the page names the request object: {}", p.body);

    // A nested request, and an unregistered redirect URI inside a valid object.
    let mut nested = w.claims("jti-nested");
    nested["request_uri"] = json!("https://app.example/req.jwt");
    assert_eq!(
        redirected_error(&w.authorize_with(&key.sign_typed(TYP, &nested), &q).await).0,
        "invalid_request_object"
    );
    let mut evil = w.claims("jti-evil");
    evil["redirect_uri"] = json!("https://evil.example/cb");
    let p = w.authorize_with(&key.sign_typed(TYP, &evil), &q).await;
    assert_eq!(p.status, 400, "never redirected to an unregistered URI: {:?}", p.location);

    // Every refusal is audited, none issued a code.
    let refused: usize = ["unsigned", "signature", "validity", "mismatch", "malformed", "no_keys"]
        .iter()
        .map(|r| w.idp.audit_count("authorize.request_object", r) as usize)
        .sum();
    assert_eq!(refused, 10, "{:?}", w.idp.audit_events("authorize.request_object"));
}

#[tokio::test]
async fn oidcc_request_object_with_another_algorithm_than_registered_is_refused() {
    // Registered for RS256, signed with PS256 by the same key.
    let key = ClientKey::rsa("rs-1", jsonwebtoken::Algorithm::PS256);
    let w = world(&key, &["--request-object-signing-alg", "RS256"]).await;
    let p = w.authorize_with(&key.sign_typed(TYP, &w.claims("jti-ps")), &format!("&redirect_uri={CB_ENC}")).await;
    assert_eq!(redirected_error(&p).0, "invalid_request_object");
    assert_eq!(w.idp.audit_count("authorize.request_object", "algorithm"), 1);
}

#[tokio::test]
async fn a_client_that_must_sign_gets_nothing_from_a_plain_request() {
    let key = ClientKey::rsa("rs-1", jsonwebtoken::Algorithm::RS256);
    let mut w = world(&key, &[]).await;
    let plain = format!("&redirect_uri={CB_ENC}&scope=openid&state=s1");
    assert!(query_param(&location(&w.authorize(&plain).await), "code").is_some(), "allowed before");
    let shown = w.idp.cli_ok(&["clients", "update", &w.client_id, "--require-signed-request-object"]);
    assert!(shown.contains("require_signed_request_object: yes"), "{shown}");
    // A restarted node reads the client afresh (others within their few-second client cache).
    w.idp.stop();
    w.idp.start().await;
    let (error, state) = redirected_error(&w.authorize(&plain).await);
    assert_eq!((error.as_str(), state.as_deref()), ("invalid_request", Some("s1")));
    let object = key.sign_typed(TYP, &w.claims("jti-signed"));
    assert!(query_param(&location(&w.authorize_with(&object, "").await), "code").is_some());
    assert_eq!(w.idp.audit_count("authorize.request_object", "missing"), 1);
    // Without keys the setting cannot be switched on.
    w.idp.cli_ok(&["clients", "create", "--name", "Plain", "--client-id", "plain-app", "--redirect-uri", CB]);
    let out = w.idp.cli(&["clients", "update", "plain-app", "--require-signed-request-object"]);
    assert!(!out.status.success(), "a client without keys cannot be made to sign");
    let out =
        w.idp.cli(&["clients", "create", "--name", "No keys", "--redirect-uri", CB, "--require-signed-request-object"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("jwks"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = w.idp.cli(&[
        "clients",
        "create",
        "--name",
        "None",
        "--redirect-uri",
        CB,
        "--request-object-signing-alg",
        "none",
    ]);
    assert!(!out.status.success(), "alg none is never registered");
}

#[tokio::test]
async fn oidcc_request_uri_is_refused_and_not_advertised() {
    let key = ClientKey::rsa("rs-1", jsonwebtoken::Algorithm::RS256);
    let w = world(&key, &[]).await;
    let p = w.authorize(&format!("&redirect_uri={CB_ENC}&request_uri=https%3A%2F%2Fapp.example%2Freq.jwt")).await;
    assert_eq!(redirected_error(&p).0, "request_uri_not_supported");
}
