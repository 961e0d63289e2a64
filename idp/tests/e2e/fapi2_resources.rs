//! The FAPI 2.0 Security Profile as a per-client operator setting, and resource indicators
//! (RFC 8707): what the profile demands of a client, and a token asked for one API being that
//! API's alone — its `aud`, its introspection, and no userinfo with it.

use serde_json::{json, Value};

use crate::client_key::ClientKey;
use crate::harness::*;
use crate::par_dpop::DpopKey;

const CB: &str = "http://127.0.0.1:9/cb";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const HR_API: &str = "https://hr-api.example.gov.tw/v1";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn payload(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn assertion(key: &ClientKey, client_id: &str, aud: &str) -> String {
    use rand::Rng;
    let n = now();
    key.sign(&json!({
        "iss": client_id, "sub": client_id, "aud": aud, "iat": n, "exp": n + 60,
        "jti": format!("jti-{:016x}", rand::thread_rng().gen::<u64>()),
    }))
}

async fn post(base: &str, path: &str, form: &[(&str, &str)], dpop: Option<&str>) -> (u16, Value, Option<String>) {
    let mut r = http().post(format!("{base}{path}")).form(form);
    if let Some(p) = dpop {
        r = r.header("DPoP", p);
    }
    let r = r.send().await.unwrap();
    let nonce = r.headers().get("dpop-nonce").map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null), nonce)
}

fn json_of(out: &str) -> (String, String) {
    let v: Value = serde_json::from_str(out).unwrap();
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn fapi2_security_profile_client_needs_private_key_jwt_par_pkce_dpop_and_the_issuer_as_audience() {
    let mut idp = Idp::new();
    let key = ClientKey::ec("fapi-1");
    let jwks = idp.file("jwks.json", key.jwks().to_string().as_bytes());
    // No shared secret under the profile.
    let out = idp.cli(&["clients", "create", "--name", "FAPI", "--redirect-uri", CB, "--fapi2"]);
    assert!(!out.status.success(), "a FAPI 2.0 client with a secret was created");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("private_key_jwt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base_args = ["clients", "create", "--name", "FAPI", "--redirect-uri", CB, "--token-endpoint-auth-method"];
    let mut args = base_args.to_vec();
    args.extend(["private_key_jwt", "--jwks-file", &jwks, "--grant-type", "authorization_code"]);
    args.extend(["--grant-type", "client_credentials", "--fapi2", "--json"]);
    let (id, secret) = json_of(&idp.cli_ok(&args));
    assert!(secret.is_empty(), "no secret for a FAPI 2.0 client");
    let shown = idp.cli_ok(&["clients", "show", &id]);
    for line in ["fapi2:", "require_pushed_authorization_requests: yes", "dpop_bound_access_tokens:   yes"] {
        assert!(shown.contains(line), "the profile switches PAR and DPoP on: {shown}");
    }
    let off = idp.cli(&["clients", "update", &id, "--require-par=false"]);
    assert!(!off.status.success(), "PAR switched off under the profile");
    assert!(idp.cli_ok(&["clients", "show", &id]).contains("require_pushed_authorization_requests: yes"));
    idp.start().await;
    let base = idp.base.clone();

    // A plain authorization request is not taken: the profile's requests are pushed.
    let q = format!("/authorize?client_id={id}&response_type=code&scope=openid&redirect_uri={CB}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256");
    let r = Browser::new(&base).get(&q).await;
    let loc = r.location.unwrap_or_default();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"), "{loc}");

    // The server's DPoP nonce, from a first refusal.
    let dpop = DpopKey::new();
    let (_, _, nonce) = post(&base, "/par", &[], None).await;
    let nonce = nonce.expect("DPoP-Nonce");
    let push = |aud: String, pkce: bool| {
        let (dpop, base, id, key, nonce) = (&dpop, base.clone(), id.clone(), &key, nonce.clone());
        async move {
            let a = assertion(key, &id, &aud);
            let mut form = vec![
                ("response_type", "code"),
                ("scope", "openid"),
                ("redirect_uri", CB),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", a.as_str()),
            ];
            if pkce {
                form.push(("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
                form.push(("code_challenge_method", "S256"));
            }
            post(&base, "/par", &form, Some(&dpop.post(&base, "/par", &nonce))).await
        }
    };
    // Without PKCE: refused.
    let (status, body, _) = push(base.clone(), false).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert!(body["error_description"].as_str().unwrap_or_default().contains("PKCE"), "{body}");
    // An assertion addressed to the endpoint, which others accept, is not the issuer: refused.
    let (status, body, _) = push(format!("{base}/par"), true).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    // Everything the profile asks for: the push is taken.
    let (status, body, _) = push(base.clone(), true).await;
    assert_eq!(status, 201, "{body}");

    // The token endpoint likewise: no proof, no token; the issuer as audience and a proof: DPoP.
    let a = assertion(&key, &id, &base);
    let form = [("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER), ("client_assertion", &a)];
    let (status, body, _) = post(&base, "/token", &form, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{body}");
    let a = assertion(&key, &id, &format!("{base}/token"));
    let form = [("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER), ("client_assertion", &a)];
    let (status, body, _) = post(&base, "/token", &form, Some(&dpop.post(&base, "/token", &nonce))).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    let a = assertion(&key, &id, &base);
    let form = [("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER), ("client_assertion", &a)];
    let (status, body, _) = post(&base, "/token", &form, Some(&dpop.post(&base, "/token", &nonce))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(payload(body["access_token"].as_str().unwrap())["cnf"]["jkt"], json!(dpop.jkt()));
}

#[tokio::test]
async fn resource_indicators_give_a_token_for_one_registered_api_that_only_that_api_may_read() {
    let mut idp = Idp::new();
    let create = |name: &str, extra: &[&str]| {
        let mut args =
            vec!["clients", "create", "--name", name, "--redirect-uri", CB, "--grant-type", "client_credentials"];
        args.extend_from_slice(extra);
        args.push("--json");
        json_of(&idp.cli_ok(&args))
    };
    let app = create("Caller", &[]);
    let hr_api = create("HR API", &["--resource-server", "--resource-uri", HR_API]);
    let mail_api = create("Mail API", &["--resource-server", "--resource-uri", "https://mail-api.example.gov.tw/"]);
    // One API per URI, and a URI only for a resource server.
    let taken = idp.cli(&[
        "clients",
        "create",
        "--name",
        "Twin",
        "--redirect-uri",
        CB,
        "--resource-server",
        "--resource-uri",
        HR_API,
    ]);
    assert!(!taken.status.success(), "two APIs under one URI");
    let not_rs =
        idp.cli(&["clients", "create", "--name", "X", "--redirect-uri", CB, "--resource-uri", "https://x.example/"]);
    assert!(!not_rs.status.success(), "a resource URI on a client that is no resource server");
    idp.start().await;
    let base = idp.base.clone();
    let token = |resource: Vec<&'static str>| {
        let (base, app) = (base.clone(), app.clone());
        async move {
            let mut form = vec![("grant_type", "client_credentials")];
            for r in resource {
                form.push(("resource", r));
            }
            let r =
                http().post(format!("{base}/token")).basic_auth(&app.0, Some(&app.1)).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    for (bad, why) in [
        (vec!["https://unknown.example/"], "not registered"),
        (vec!["/relative"], "not absolute"),
        (vec!["https://hr-api.example.gov.tw/v1#x"], "a fragment"),
        (vec![HR_API, "https://mail-api.example.gov.tw/"], "two at once"),
    ] {
        let (status, body) = token(bad).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")), "{why}: {body}");
    }
    let (status, body) = token(vec![HR_API]).await;
    assert_eq!(status, 200, "{body}");
    let at = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(payload(&at)["aud"], json!(HR_API), "the token's audience is the API");
    let (_, plain) = token(vec![]).await;
    assert_eq!(payload(plain["access_token"].as_str().unwrap())["aud"], json!(base), "without resource: the issuer");

    let introspect = |who: (String, String), t: String| {
        let base = base.clone();
        async move {
            let r = http().post(format!("{base}/introspect")).basic_auth(&who.0, Some(&who.1)).form(&[("token", t)]);
            r.send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    assert_eq!(introspect(hr_api.clone(), at.clone()).await["active"], json!(true), "the API it is for reads it");
    assert_eq!(introspect(hr_api.clone(), at.clone()).await["aud"], json!(HR_API));
    assert_eq!(introspect(mail_api.clone(), at.clone()).await["active"], json!(false), "another API does not");
    assert_eq!(introspect(app.clone(), at.clone()).await["active"], json!(true), "its own client does");
    let plain_at = plain["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        introspect(mail_api.clone(), plain_at).await["active"],
        json!(true),
        "a token for the provider, as before"
    );

    // Its URI withdrawn, the API is asked for no more tokens.
    idp.cli_ok(&["clients", "update", &hr_api.0, "--resource-uri", "none"]);
    let (status, body) = token(vec![HR_API]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")), "{body}");
}

#[tokio::test]
async fn a_signed_in_person_s_token_for_an_api_keeps_that_api_through_refresh_and_is_no_key_to_userinfo() {
    const PW: &str = "Civil-Service-2026";
    let mut idp = Idp::new();
    idp.import_register();
    let (client_id, secret) = idp.create_refresh_client("Rolling app", CB);
    let args = ["clients", "create", "--name", "HR API", "--redirect-uri", CB, "--grant-type", "client_credentials"];
    let mut args = args.to_vec();
    args.extend(["--resource-server", "--resource-uri", HR_API, "--json"]);
    json_of(&idp.cli_ok(&args));
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    let browser = Browser::new(&idp.base);
    assert_eq!(browser.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let base = idp.base.clone();
    let authorize = |resource: &str| {
        format!(
            "/authorize?client_id={client_id}&redirect_uri={CB}&response_type=code&scope=openid%20offline_access&state=s&nonce=n&resource={}",
            url_escape(resource)
        )
    };
    // An unknown API is refused at the authorization endpoint, back at the client.
    let loc = browser.get(&authorize("https://unknown.example/")).await.location.unwrap_or_default();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_target"), "{loc}");

    let token = |form: Vec<(&'static str, String)>| {
        let (base, id, secret) = (base.clone(), client_id.clone(), secret.clone());
        async move {
            let r =
                http().post(format!("{base}/token")).basic_auth(&id, Some(&secret)).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let code_for = |resource: &'static str| {
        let (browser, path) = (&browser, authorize(resource));
        async move {
            let loc = browser.get(&path).await.location.expect("a redirect");
            query_param(&loc, "code").unwrap_or_else(|| panic!("no code: {loc}"))
        }
    };
    let redeem = |code: String, resource: Option<&'static str>| {
        let mut form: Vec<(&'static str, String)> =
            vec![("grant_type", "authorization_code".into()), ("code", code), ("redirect_uri", CB.into())];
        if let Some(r) = resource {
            form.push(("resource", r.to_string()));
        }
        form
    };
    // The code is for the API it was asked for: redeeming it for another is refused.
    let (status, body) = token(redeem(code_for(HR_API).await, Some("https://unknown.example/"))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")), "{body}");

    let (status, body) = token(redeem(code_for(HR_API).await, None)).await;
    assert_eq!(status, 200, "{body}");
    let at = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(payload(&at)["aud"], json!(HR_API));
    assert_eq!(payload(body["id_token"].as_str().unwrap())["aud"], json!(client_id), "the ID token stays the client's");
    // The API's token is not the provider's: userinfo does not take it.
    let r = http().get(format!("{base}/userinfo")).bearer_auth(&at).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "userinfo took a token for another audience");

    // Refreshed, it stays the API's; asking a refresh for another target is refused.
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let (status, body) = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh.clone()),
        ("resource", "https://mail-api.example.gov.tw/".into()),
    ])
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")), "{body}");
    let (status, body) = token(vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh)]).await;
    assert_eq!(status, 200, "a refused target spends nothing: {body}");
    assert_eq!(payload(body["access_token"].as_str().unwrap())["aud"], json!(HR_API));
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
