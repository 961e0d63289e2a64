//! Conformance tests modelled on the OpenID Foundation's Config, Basic, RP-initiated-logout and
//! back-channel-logout test plans; each test is named after the behaviour it checks.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::*;

const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";
const PW: &str = "Civil-Service-2026";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A started IdP with the register, Ming activated, a signed-in browser and one client.
struct World {
    idp: Idp,
    browser: Browser,
    client_id: String,
    secret: String,
}

async fn world_with(args: &[&str]) -> World {
    let mut idp = Idp::new();
    idp.import_register();
    let mut cmd = vec!["clients", "create", "--name", "Conformance", "--redirect-uri", CB, "--json"];
    cmd.extend_from_slice(args);
    let v: Value = serde_json::from_str(&idp.cli_ok(&cmd)).unwrap();
    let client_id = v["client_id"].as_str().unwrap().to_string();
    let secret = v["client_secret"].as_str().unwrap_or("").to_string();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    assert_eq!(browser.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    World { idp, browser, client_id, secret }
}

async fn world() -> World {
    world_with(&[]).await
}

impl World {
    /// GET /authorize with the signed-in browser; returns the Location it answers with.
    async fn authorize(&self, extra: &str) -> Page {
        self.browser
            .get(&format!("/authorize?client_id={}&redirect_uri={CB_ENC}&response_type=code{extra}", self.client_id))
            .await
    }

    async fn code(&self, extra: &str) -> String {
        let r = self.authorize(&format!("&scope=openid{extra}")).await;
        let loc = r.location.unwrap_or_else(|| panic!("no redirect: {} {}", r.status, r.body));
        query_param(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"))
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = http()
            .post(format!("{}/token", self.idp.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn exchange(&self, code: &str) -> Value {
        let (status, v) =
            self.token(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)]).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    async fn userinfo(&self, token: &str) -> (u16, Value) {
        let r = http().get(format!("{}/userinfo", self.idp.base)).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = http()
            .post(format!("{}{path}", self.idp.base))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn config_discovery_advertises_only_working_endpoints_and_matches_the_issuer() {
    let mut idp = Idp::new();
    idp.start().await;
    let d: Value = http()
        .get(format!("{}/.well-known/openid-configuration", idp.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], idp.base);
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "registration_endpoint",
    ] {
        let url = d[endpoint].as_str().unwrap();
        assert!(url.starts_with(&idp.base), "{endpoint}");
    }
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], json!(true));
    assert_eq!(d["request_parameter_supported"], json!(true));
    assert_eq!(d["request_uri_parameter_supported"], json!(false), "request_uri is fetched by nobody");
    assert_eq!(d["request_object_signing_alg_values_supported"], json!(["RS256", "PS256", "ES256"]));
    let jwks: Value = http().get(d["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    for alg in ["ES256", "RS256"] {
        assert!(keys.iter().any(|k| k["alg"] == alg), "a {alg} signing key is published: {jwks}");
    }
    for k in keys {
        assert!(k["kid"].is_string() && k["use"] == "sig" && k.get("d").is_none(), "public keys only: {k}");
        assert!(k.get("p").is_none() && k.get("q").is_none() && k.get("dp").is_none(), "public keys only: {k}");
    }
}

#[tokio::test]
async fn config_oauth_authorization_server_metadata_agrees_with_the_openid_configuration() {
    let mut idp = Idp::new();
    idp.start().await;
    let get = |path: &str| {
        let url = format!("{}{path}", idp.base);
        async move {
            let r = http().get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/json");
            r.json::<Value>().await.unwrap()
        }
    };
    let oidc = get("/.well-known/openid-configuration").await;
    let oauth = get("/.well-known/oauth-authorization-server").await;
    // RFC 8414 §3.3: the issuer is exactly the one the metadata was asked of.
    assert_eq!(oauth["issuer"], idp.base);
    for (k, v) in oauth.as_object().unwrap() {
        assert_eq!(&oidc[k], v, "{k}");
    }
    for member in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "registration_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "response_types_supported",
        "grant_types_supported",
        "token_endpoint_auth_methods_supported",
        "code_challenge_methods_supported",
    ] {
        assert!(oauth.get(member).is_some(), "{member}: {oauth}");
    }
    // OpenID Connect's own members stay in the OpenID configuration.
    for member in ["userinfo_endpoint", "end_session_endpoint", "id_token_signing_alg_values_supported"] {
        assert!(oauth.get(member).is_none() && oidc.get(member).is_some(), "{member}");
    }
}

#[tokio::test]
async fn basic_id_token_access_token_and_userinfo_agree_and_carry_the_required_claims() {
    let w = world().await;
    let code = w.code("%20profile&nonce=n-0S6_WzA2Mj").await;
    let t = w.exchange(&code).await;
    let id = jwt_part(t["id_token"].as_str().unwrap(), 1);
    // An operator's client keeps ES256 (only self-registered ones default to RS256).
    assert_eq!(jwt_part(t["id_token"].as_str().unwrap(), 0)["alg"], "ES256");
    for claim in ["iss", "sub", "aud", "exp", "iat", "auth_time", "acr", "amr", "sid", "at_hash"] {
        assert!(id.get(claim).is_some(), "ID token lacks {claim}");
    }
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at, 0)["typ"], "at+jwt", "RFC 9068 access token");
    let (status, info) = w.userinfo(at).await;
    assert_eq!(status, 200);
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["name"], "王小明");
    // POST with the token in the body works as well as the header.
    let r = http().post(format!("{}/userinfo", w.idp.base)).form(&[("access_token", at)]).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn basic_request_without_nonce_succeeds_and_other_scope_orders_work() {
    let w = world().await;
    let code = w.code("%20email%20profile").await;
    let t = w.exchange(&code).await;
    assert!(jwt_part(t["id_token"].as_str().unwrap(), 1).get("nonce").is_none());
    let (_, info) = w.userinfo(t["access_token"].as_str().unwrap()).await;
    assert!(info.get("email").is_some() && info.get("name").is_some());
}

#[tokio::test]
async fn basic_prompt_login_asks_again_and_prompt_none_answers_silently() {
    let w = world().await;
    let r = w.authorize("&scope=openid&prompt=login").await;
    assert!(r.location.unwrap().starts_with("/login?tx="));
    let r = w.authorize("&scope=openid&prompt=none&state=quiet").await;
    let loc = r.location.unwrap();
    assert!(query_param(&loc, "code").is_some());
    assert_eq!(query_param(&loc, "state").as_deref(), Some("quiet"));
    let stranger = Browser::new(&w.idp.base);
    let r = stranger
        .get(&format!(
            "/authorize?client_id={}&redirect_uri={CB_ENC}&response_type=code&scope=openid&prompt=none",
            w.client_id
        ))
        .await;
    assert_eq!(query_param(&r.location.unwrap(), "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn basic_max_age_forces_a_new_sign_in_when_exceeded() {
    let w = world().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = w.authorize("&scope=openid&max_age=0").await;
    assert!(r.location.unwrap().starts_with("/login?tx="), "the sign-in is older than max_age");
    let code = w.code("&max_age=3600").await;
    let t = w.exchange(&code).await;
    assert!(jwt_part(t["id_token"].as_str().unwrap(), 1)["auth_time"].is_i64());
}

#[tokio::test]
async fn basic_id_token_hint_selects_the_signed_in_person_and_refuses_garbage() {
    let w = world().await;
    let t = w.exchange(&w.code("").await).await;
    let hint = t["id_token"].as_str().unwrap();
    let r = w.authorize(&format!("&scope=openid&prompt=none&id_token_hint={hint}")).await;
    assert!(query_param(&r.location.unwrap(), "code").is_some());
    let r = w.authorize("&scope=openid&id_token_hint=not.a.token").await;
    assert_eq!(query_param(&r.location.unwrap(), "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn basic_login_hint_and_ui_locales_shape_the_login_page() {
    let w = world().await;
    let b = Browser::new(&w.idp.base);
    let r = b.get(&format!("/authorize?client_id={}&redirect_uri={CB_ENC}&response_type=code&scope=openid&login_hint=ming.wang&ui_locales=en", w.client_id)).await;
    let page = b.get(&r.location.unwrap()).await;
    assert_eq!(page.input("username").as_deref(), Some("ming.wang"));
    assert!(page.body.contains("Sign in with account"));
}

#[tokio::test]
async fn basic_code_reuse_is_refused_and_revokes_the_tokens_it_issued() {
    let w = world_with(&["--scope", "openid profile offline_access"]).await;
    let code = w.code("%20offline_access").await;
    let t = w.exchange(&code).await;
    let at = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    assert_eq!(w.userinfo(at).await.0, 200);
    let (status, e) = w.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(w.userinfo(at).await.0, 401, "the access token of the first redemption is revoked");
    let (_, e) = w.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(e["error"], "invalid_grant", "so is the refresh token");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family() {
    let w = world_with(&["--scope", "openid profile offline_access"]).await;
    let t = w.exchange(&w.code("%20offline_access").await).await;
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let (status, t2) = w.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!(status, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "rotated");
    assert!(t2["id_token"].is_string());
    // Narrowing the scope is allowed, and the new token carries the narrower scope.
    let (status, t3) = w.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt2), ("scope", "openid")]).await;
    assert_eq!(status, 200, "{t3}");
    assert_eq!(t3["scope"], "openid", "{t3}");
    let rt3 = t3["refresh_token"].as_str().unwrap().to_string();
    // The old token again: the whole family is revoked, including the newest, never-used one.
    let (_, e) = w.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!(e["error"], "invalid_grant");
    let (_, e) = w.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt3)]).await;
    assert_eq!(e["error"], "invalid_grant", "the family's newest token is revoked too");
    // The reuse is on record: who, which client, what happened.
    let events = w.idp.audit_events("token.refresh_reuse");
    assert_eq!(events.len(), 1, "{events:?}");
    let (outcome, account, client, detail) = &events[0];
    assert_eq!(outcome, "family_revoked");
    assert!(account.as_deref().is_some_and(|a| !a.is_empty()), "{events:?}");
    assert_eq!(client.as_deref(), Some(w.client_id.as_str()), "{events:?}");
    assert!(detail.contains("family was revoked"), "{events:?}");
    // Widening is refused, in a family of its own.
    let t = w.exchange(&w.code("%20offline_access").await).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let (_, e) = w.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt), ("scope", "openid email")]).await;
    assert_eq!(e["error"], "invalid_scope");
    let (status, t) = w.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(status, 200, "a refused scope spends nothing: {t}");
    // Without offline_access no refresh token is issued.
    let t = w.exchange(&w.code("").await).await;
    assert!(t.get("refresh_token").is_none());
}

#[tokio::test]
async fn form_post_response_mode_returns_an_auto_submitting_form() {
    let w = world().await;
    let r = w.authorize("&scope=openid&response_mode=form_post&state=fp").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&format!("action=\"{CB}\"")), "the form goes to the registered redirect URI: {}", r.body);
    assert!(r.body.contains("name=\"code\""));
    assert_eq!(r.input("state").as_deref(), Some("fp"));
    assert_eq!(r.input("iss").as_deref(), Some(w.idp.base.as_str()));
}

#[tokio::test]
async fn consent_is_asked_remembered_and_deny_gives_access_denied() {
    let w = world_with(&["--require-consent", "--scope", "openid profile email"]).await;
    let r = w.authorize("&scope=openid%20profile&state=c1").await;
    let consent = r.location.unwrap();
    assert!(consent.starts_with("/consent?tx="));
    let page = w.browser.get(&consent).await;
    assert!(page.body.contains("Conformance") && page.body.contains("name=\"decision\""));
    let (csrf, tx) = (page.input("csrf_token").unwrap(), page.input("tx").unwrap());
    let r = w.browser.post("/consent", &[("csrf_token", &csrf), ("tx", &tx), ("decision", "deny")]).await;
    let loc = r.location.unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("c1"));
    // prompt=none cannot ask.
    let r = w.authorize("&scope=openid&prompt=none").await;
    assert_eq!(query_param(&r.location.unwrap(), "error").as_deref(), Some("consent_required"));
    // Allow, and the next request goes straight through.
    let page = w.browser.get(&w.authorize("&scope=openid%20profile").await.location.unwrap()).await;
    let (csrf, tx) = (page.input("csrf_token").unwrap(), page.input("tx").unwrap());
    let r = w.browser.post("/consent", &[("csrf_token", &csrf), ("tx", &tx), ("decision", "allow")]).await;
    assert!(query_param(&r.location.unwrap(), "code").is_some());
    // The grant is audited with the client and the scopes, in the transaction that recorded it.
    let granted = w.idp.audit_events("consent.grant");
    assert_eq!(granted.len(), 1, "{granted:?}");
    let (outcome, account, client, detail) = &granted[0];
    assert_eq!((outcome.as_str(), client.as_deref()), ("success", Some(w.client_id.as_str())));
    assert!(account.is_some() && detail == "openid profile", "{granted:?}");
    assert!(query_param(&w.authorize("&scope=openid%20profile").await.location.unwrap(), "code").is_some());
    // A wider scope or prompt=consent asks again.
    assert!(w.authorize("&scope=openid%20email").await.location.unwrap().starts_with("/consent"));
    assert!(w.authorize("&scope=openid&prompt=consent").await.location.unwrap().starts_with("/consent"));
}

#[tokio::test]
async fn client_credentials_introspection_and_revocation() {
    let w = world_with(&[
        "--grant-type",
        "client_credentials",
        "--grant-type",
        "authorization_code",
        "--scope",
        "openid roles",
    ])
    .await;
    let (status, t) = w.token(&[("grant_type", "client_credentials"), ("scope", "roles")]).await;
    assert_eq!(status, 200, "{t}");
    let at = t["access_token"].as_str().unwrap();
    assert!(t.get("id_token").is_none() && t.get("refresh_token").is_none());
    let (_, e) = w.token(&[("grant_type", "client_credentials"), ("scope", "openid")]).await;
    assert_eq!(e["error"], "invalid_scope");
    let (_, i) = w.post_form("/introspect", &[("token", at)]).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], w.client_id.as_str());
    assert_eq!(w.userinfo(at).await.0, 403, "a service token speaks for no person");
    let (status, _) = w.post_form("/revoke", &[("token", at)]).await;
    assert_eq!(status, 200);
    let (_, i) = w.post_form("/introspect", &[("token", at)]).await;
    assert_eq!(i, json!({ "active": false }));
    let (status, _) = w.post_form("/revoke", &[("token", "unknown")]).await;
    assert_eq!(status, 200, "unknown tokens are not an error");
    // Both endpoints need client authentication.
    let r = http().post(format!("{}/introspect", w.idp.base)).form(&[("token", at)]).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A code-flow-only client may not use client_credentials.
    let (id, secret) = w.idp.create_client(CB, "http://127.0.0.1:9/");
    let r = http()
        .post(format!("{}/token", w.idp.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized_client");
}

#[tokio::test]
async fn private_key_jwt_authenticates_and_refuses_a_replayed_assertion() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({ "keys": [{ "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be()) }] });
    let mut idp = Idp::new();
    let file = idp.file("client-jwks.json", jwks.to_string().as_bytes());
    let v: Value = serde_json::from_str(&idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "Signed",
        "--redirect-uri",
        CB,
        "--token-endpoint-auth-method",
        "private_key_jwt",
        "--jwks-file",
        &file,
        "--grant-type",
        "client_credentials",
        "--json",
    ]))
    .unwrap();
    assert!(v.get("client_secret").is_none());
    let client_id = v["client_id"].as_str().unwrap().to_string();
    idp.start().await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({ "iss": client_id, "sub": client_id, "aud": format!("{}/token", idp.base), "exp": now + 60, "iat": now, "jti": "assertion-1" });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("k1".into());
    let der = key.to_pkcs1_der().unwrap();
    let assertion =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes())).unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    let r = http().post(format!("{}/token", idp.base)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = http().post(format!("{}/token", idp.base)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 401, "the same jti twice is a replay");
    // A key the client never registered is refused.
    let other = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let claims = json!({ "iss": client_id, "sub": client_id, "aud": format!("{}/token", idp.base), "exp": now + 60, "jti": "assertion-2" });
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_der(other.to_pkcs1_der().unwrap().as_bytes()),
    )
    .unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", forged.as_str()),
    ];
    let r = http().post(format!("{}/token", idp.base)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn pairwise_subjects_differ_between_sectors_and_national_id_needs_the_scope() {
    let w = world_with(&["--subject-type", "pairwise", "--scope", "openid profile national_id"]).await;
    let t = w.exchange(&w.code("%20national_id").await).await;
    let sub = jwt_part(t["id_token"].as_str().unwrap(), 1)["sub"].as_str().unwrap().to_string();
    let (_, info) = w.userinfo(t["access_token"].as_str().unwrap()).await;
    assert_eq!(info["sub"], sub.as_str());
    assert_eq!(info["national_id"], MING, "released to a client allowed the scope");
    // Another client (public subjects, no national_id) sees a different sub and no national ID.
    let v: Value = serde_json::from_str(&w.idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "Other",
        "--redirect-uri",
        "https://other.example.gov.tw/cb",
        "--json",
    ]))
    .unwrap();
    let other = v["client_id"].as_str().unwrap();
    let r = w.browser.get(&format!("/authorize?client_id={other}&redirect_uri=https%3A%2F%2Fother.example.gov.tw%2Fcb&response_type=code&scope=openid%20national_id")).await;
    let code = query_param(&r.location.unwrap(), "code").unwrap();
    let r = http()
        .post(format!("{}/token", w.idp.base))
        .basic_auth(other, Some(v["client_secret"].as_str().unwrap()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://other.example.gov.tw/cb"),
        ])
        .send()
        .await
        .unwrap();
    let t2: Value = r.json().await.unwrap();
    let other_sub = jwt_part(t2["id_token"].as_str().unwrap(), 1)["sub"].as_str().unwrap().to_string();
    assert_ne!(sub, other_sub);
    assert!(!t2["scope"].as_str().unwrap().contains("national_id"));
    let (_, info) = w.userinfo(t2["access_token"].as_str().unwrap()).await;
    assert!(info.get("national_id").is_none());
}

#[tokio::test]
async fn a_client_requiring_card_assurance_refuses_a_password_session() {
    let w = world_with(&["--min-acr", "loa-2"]).await;
    let r = w.authorize("&scope=openid&state=s").await;
    let loc = r.location.unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("unmet_authentication_requirements"));
}

#[tokio::test]
async fn rp_initiated_logout_refuses_unregistered_return_addresses_and_confirms_without_a_hint() {
    let w = world().await;
    let r = w
        .browser
        .get(&format!("/logout?client_id={}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F", w.client_id))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.location.is_none());
    let r = w.browser.get("/logout").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("name=\"confirm\""), "without a hint the person confirms");
    let csrf = r.input("csrf_token").unwrap();
    let r = w.browser.post("/logout", &[("csrf_token", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status, 200);
    let r = w.authorize("&scope=openid&prompt=none").await;
    assert_eq!(query_param(&r.location.unwrap(), "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn backchannel_logout_notifies_each_client_of_the_session_with_a_signed_logout_token_and_retries() {
    let (port, mut rx) = logout_receiver(1).await;
    let uri = format!("http://127.0.0.1:{port}/backchannel");
    let w = world_with(&["--backchannel-logout-uri", &uri, "--post-logout-redirect-uri", "http://127.0.0.1:9/"]).await;
    let t = w.exchange(&w.code("").await).await;
    let id_token = t["id_token"].as_str().unwrap();
    let id = jwt_part(id_token, 1);
    let r = w
        .browser
        .get(&format!("/logout?id_token_hint={id_token}&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2F"))
        .await;
    assert_eq!(r.status, 303);
    let body = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a logout token within the retries")
        .unwrap();
    let token = url::form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == "logout_token").unwrap().1.into_owned();
    assert_eq!(jwt_part(&token, 0)["typ"], "logout+jwt");
    let claims = jwt_part(&token, 1);
    assert_eq!(claims["iss"], w.idp.base.as_str());
    assert_eq!(claims["aud"], w.client_id.as_str());
    assert_eq!(claims["sub"], id["sub"]);
    assert_eq!(claims["sid"], id["sid"]);
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none(), "a logout token never carries a nonce");
    assert!(claims["jti"].is_string());
    // Signed by a key the JWKS publishes; a changed signature does not verify.
    let jwks: Value = http().get(format!("{}/jwks", w.idp.base)).send().await.unwrap().json().await.unwrap();
    assert!(verifies(&token, &jwks, &w.idp.base, &w.client_id), "the logout token's signature verifies");
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(!verifies(&forged, &jwks, &w.idp.base, &w.client_id), "a changed signature is caught");
}

/// Whether a JWT's signature verifies with the published key its `kid` names.
fn verifies(token: &str, jwks: &Value, issuer: &str, audience: &str) -> bool {
    let header = jwt_part(token, 0);
    let Some(jwk) = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]) else {
        return false;
    };
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let alg: jsonwebtoken::Algorithm = header["alg"].as_str().unwrap().parse().unwrap();
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &key, &v).is_ok()
}
