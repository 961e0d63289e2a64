//! The `claims` request parameter (OpenID Connect Core §5.5), named after the certification
//! suite's modules: claims asked for at userinfo and in the ID token, released only as far as
//! the client's scopes allow, and an essential `acr` that the sign-in must meet.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const PW: &str = "Civil-Service-2026";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn jwt_claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A started IdP, Ming signed in with his password, and a pre-approved client.
struct World {
    idp: Idp,
    browser: Browser,
    client_id: String,
    secret: String,
}

async fn world(scope: &str) -> World {
    let mut idp = Idp::new();
    idp.import_register();
    let out = idp.cli_ok(&["clients", "create", "--name", "Claims", "--redirect-uri", CB, "--scope", scope, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let client_id = v["client_id"].as_str().unwrap().to_string();
    let secret = v["client_secret"].as_str().unwrap().to_string();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    assert_eq!(browser.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    World { idp, browser, client_id, secret }
}

impl World {
    async fn authorize(&self, claims: &str, extra: &str) -> String {
        let p = self
            .browser
            .get(&format!(
                "/authorize?client_id={}&response_type=code&scope=openid&redirect_uri={CB_ENC}&state=st&nonce=n&claims={}{extra}",
                self.client_id,
                enc(claims)
            ))
            .await;
        p.location.clone().unwrap_or_else(|| panic!("no redirect: {} {}", p.status, p.body))
    }

    /// The token response and the userinfo answer for a request with `claims`.
    async fn tokens(&self, claims: &str) -> (Value, Value) {
        let loc = self.authorize(claims, "").await;
        let code = query_param(&loc, "code").unwrap_or_else(|| panic!("no code: {loc}"));
        let r = http()
            .post(format!("{}/token", self.idp.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&[("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CB)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let tokens: Value = r.json().await.unwrap();
        let r = http()
            .get(format!("{}/userinfo", self.idp.base))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        (tokens, r.json().await.unwrap())
    }
}

#[tokio::test]
async fn oidcc_claims_essential() {
    // Only `openid` in scope: the claims parameter alone asks for the e-mail at userinfo.
    let w = world("openid profile email agency roles").await;
    let (tokens, userinfo) = w.tokens(r#"{"userinfo":{"email":{"essential":true}}}"#).await;
    assert_eq!(userinfo["email"], "someone@example.gov.tw", "{userinfo}");
    // Asking for the e-mail by name asks for the scope that releases it, and a granted scope's
    // claims are in the ID token too (as in Keycloak's default mappers); nothing else is.
    assert!(tokens["scope"].as_str().unwrap().split(' ').any(|s| s == "email"), "{tokens}");
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["email"], userinfo["email"], "{id}");
    assert!(id.get("name").is_none(), "nothing that was not asked for: {id}");
    assert!(userinfo.get("name").is_none(), "nothing that was not asked for: {userinfo}");
}

#[tokio::test]
async fn oidcc_id_token_claims_are_released_only_within_the_clients_scopes() {
    // The client may not have national_id: asking for it by name releases nothing.
    let w = world("openid profile email agency roles").await;
    let (tokens, userinfo) = w.tokens(r#"{"id_token":{"name":null,"national_id":{"essential":true}}}"#).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["name"], userinfo["name"], "{id}");
    assert!(id["name"].is_string(), "{id}");
    assert!(id.get("national_id").is_none() && userinfo.get("national_id").is_none(), "{id} {userinfo}");
    assert!(!tokens["scope"].as_str().unwrap().contains("national_id"));
}

#[tokio::test]
async fn oidcc_claims_essential_acr_not_met_is_refused() {
    let w = world("openid profile").await;
    // A password session cannot meet an essential loa-2 without interaction …
    let loc = w.authorize(r#"{"id_token":{"acr":{"essential":true,"values":["loa-2"]}}}"#, "&prompt=none").await;
    assert!(loc.starts_with(CB), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("unmet_authentication_requirements"), "{loc}");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st"));
    // … nor can anything meet a value this provider does not offer.
    let loc = w.authorize(r#"{"id_token":{"acr":{"essential":true,"value":"urn:gold"}}}"#, "").await;
    assert_eq!(query_param(&loc, "error").as_deref(), Some("unmet_authentication_requirements"), "{loc}");
    // An essential loa-1 is met by the password session; a voluntary loa-2 changes nothing.
    for claims in [
        r#"{"id_token":{"acr":{"essential":true,"values":["loa-1"]}}}"#,
        r#"{"id_token":{"acr":{"values":["loa-2"]}}}"#,
    ] {
        let (tokens, _) = w.tokens(claims).await;
        assert_eq!(jwt_claims(tokens["id_token"].as_str().unwrap())["acr"], "loa-1", "{claims}");
    }
}

#[tokio::test]
async fn oidcc_claims_malformed_is_invalid_request_and_discovery_says_it_is_supported() {
    let w = world("openid profile").await;
    for bad in ["not json", "[]", r#"{"userinfo":{"email":"yes"}}"#] {
        let loc = w.authorize(bad, "").await;
        assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"), "{bad}: {loc}");
    }
    let d: Value = http()
        .get(format!("{}/.well-known/openid-configuration", w.idp.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["claims_parameter_supported"], json!(true));
}
