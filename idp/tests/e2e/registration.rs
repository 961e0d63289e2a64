//! Dynamic client registration (RFC 7591) and management (RFC 7592), gated by an operator's
//! initial access token from `idp clients issue-registration-token`.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::harness::*;

const RP: &str = "http://127.0.0.1:9/callback";
const RP_HOME: &str = "http://127.0.0.1:9/";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// An initial access token from the CLI.
fn registration_token(idp: &Idp) -> String {
    let out = idp.cli_ok(&["clients", "issue-registration-token", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["expires_at"].as_i64().unwrap() > 0);
    v["initial_access_token"].as_str().unwrap().to_string()
}

struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    cache_control: Option<String>,
    json: Value,
}

async fn send(r: reqwest::RequestBuilder) -> Answer {
    let r = r.send().await.unwrap();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let (status, www_authenticate, cache_control) =
        (r.status().as_u16(), header("www-authenticate"), header("cache-control"));
    let text = r.text().await.unwrap();
    let json = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Answer { status, www_authenticate, cache_control, json }
}

async fn register(idp: &Idp, token: Option<&str>, body: &Value) -> Answer {
    let mut r = http().post(format!("{}/register", idp.base)).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    send(r).await
}

/// Sends the same registration several times at once and collects the answers.
async fn register_concurrently(idp: &Idp, token: &str, body: &Value, n: usize) -> Vec<Answer> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let r = http().post(format!("{}/register", idp.base)).json(body).bearer_auth(token);
            tokio::spawn(send(r))
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn metadata() -> Value {
    json!({
        "client_name": "第三方應用 Third-party app",
        "redirect_uris": [RP],
        "post_logout_redirect_uris": [RP_HOME],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile email",
        "id_token_signed_response_alg": "RS256",
        "default_acr_values": ["loa-1"],
        "software_statement_note": "unknown metadata is ignored",
    })
}

fn assert_invalid_token(a: &Answer) {
    assert_eq!(a.status, 401, "{}", a.json);
    assert_eq!(a.json["error"], "invalid_token");
    assert!(a.www_authenticate.as_deref().is_some_and(|w| w.starts_with("Bearer")), "{:?}", a.www_authenticate);
}

#[tokio::test]
async fn registration_then_read_update_delete_with_the_registration_access_token() {
    let mut idp = Idp::new();
    idp.start().await;
    let initial = registration_token(&idp);

    let a = register(&idp, Some(&initial), &metadata()).await;
    assert_eq!(a.status, 201, "{}", a.json);
    assert_eq!(a.cache_control.as_deref(), Some("no-store"));
    let v = &a.json;
    let client_id = v["client_id"].as_str().unwrap().to_string();
    let secret = v["client_secret"].as_str().unwrap().to_string();
    let rat = v["registration_access_token"].as_str().unwrap().to_string();
    assert!(secret.len() >= 43 && rat.len() >= 43);
    assert!(v["client_id_issued_at"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(v["client_secret_expires_at"], 0);
    assert_eq!(v["registration_client_uri"], format!("{}/register/{client_id}", idp.base));
    assert_eq!(v["client_name"], "第三方應用 Third-party app");
    assert_eq!(v["redirect_uris"], json!([RP]));
    assert_eq!(v["post_logout_redirect_uris"], json!([RP_HOME]));
    assert_eq!(v["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(v["response_types"], json!(["code"]));
    assert_eq!(v["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(v["scope"], "openid profile email");
    assert_eq!(v["id_token_signed_response_alg"], "RS256");
    assert_eq!(v["subject_type"], "public");
    assert_eq!(v["default_acr_values"], json!(["loa-1"]));
    assert!(v.get("software_statement_note").is_none());

    // The initial access token was single use.
    assert_invalid_token(&register(&idp, Some(&initial), &metadata()).await);

    // RFC 7592 read: the metadata and where it lives, never the secret again.
    let uri = format!("{}/register/{client_id}", idp.base);
    let a = send(http().get(&uri).bearer_auth(&rat)).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.cache_control.as_deref(), Some("no-store"));
    assert_eq!(a.json["client_id"], client_id.as_str());
    assert_eq!(a.json["registration_client_uri"], uri.as_str());
    assert_eq!(a.json["redirect_uris"], json!([RP]));
    assert!(a.json.get("client_secret").is_none() && a.json.get("registration_access_token").is_none());

    // Without a token, with a wrong one, or for a client that does not exist: the same 401.
    let a = send(http().get(&uri)).await;
    assert_eq!(a.status, 401);
    assert!(a.www_authenticate.as_deref().is_some_and(|w| w.starts_with("Bearer")));
    let wrong = send(http().get(&uri).bearer_auth(&initial)).await;
    assert_invalid_token(&wrong);
    let unknown = send(http().get(format!("{}/register/no-such-client", idp.base)).bearer_auth(&rat)).await;
    assert_invalid_token(&unknown);
    assert_eq!(wrong.json, unknown.json, "an unknown client looks like a wrong token");
    // An operator's client has no registration access token at all.
    let (cli_client, _) = idp.create_client(RP, RP_HOME);
    assert_invalid_token(&send(http().get(format!("{}/register/{cli_client}", idp.base)).bearer_auth(&rat)).await);

    // RFC 7592 update: the body names the client, and may only repeat the current secret.
    let mut update = metadata();
    update["client_id"] = json!("someone-else");
    let a = send(http().put(&uri).bearer_auth(&rat).json(&update)).await;
    assert_eq!((a.status, a.json["error"].as_str()), (400, Some("invalid_request")), "{}", a.json);
    update["client_id"] = json!(client_id);
    update["client_secret"] = json!("not-the-secret");
    let a = send(http().put(&uri).bearer_auth(&rat).json(&update)).await;
    assert_eq!((a.status, a.json["error"].as_str()), (400, Some("invalid_request")), "{}", a.json);
    update["scope"] = json!("openid national_id");
    update["client_secret"] = json!(secret);
    let a = send(http().put(&uri).bearer_auth(&rat).json(&update)).await;
    assert_eq!((a.status, a.json["error"].as_str()), (400, Some("invalid_client_metadata")), "{}", a.json);
    let a =
        send(http().put(&uri).bearer_auth(&rat).header("content-type", "text/plain").body(update.to_string())).await;
    assert_eq!((a.status, a.json["error"].as_str()), (400, Some("invalid_client_metadata")), "{}", a.json);
    update["scope"] = json!("openid email");
    update["client_name"] = json!("Renamed app");
    update["redirect_uris"] = json!([RP, "https://app.example.gov.tw/callback"]);
    let a = send(http().put(&uri).bearer_auth(&initial).json(&update)).await;
    assert_invalid_token(&a);
    let a = send(http().put(&uri).bearer_auth(&rat).json(&update)).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["client_name"], "Renamed app");
    assert_eq!(a.json["scope"], "openid email");
    assert!(a.json.get("client_secret").is_none());
    let a = send(http().get(&uri).bearer_auth(&rat)).await;
    assert_eq!(a.json["redirect_uris"], json!([RP, "https://app.example.gov.tw/callback"]));
    // The operator sees the change too.
    let out = idp.cli_ok(&["clients", "show", &client_id, "--json"]);
    assert!(out.contains("Renamed app"));

    // RFC 7592 delete.
    assert_invalid_token(&send(http().delete(&uri).bearer_auth(&initial)).await);
    let a = send(http().delete(&uri).bearer_auth(&rat)).await;
    assert_eq!(a.status, 204);
    assert_invalid_token(&send(http().get(&uri).bearer_auth(&rat)).await);
    // Gone at the authorization endpoint at once, not after a cache expires.
    let b = Browser::new(&idp.base);
    let r = b.get(&format!("/authorize?response_type=code&client_id={client_id}&redirect_uri={RP}&scope=openid")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!idp.cli(&["clients", "show", &client_id]).status.success());

    // Audited, and no token or secret in the log or the audit trail.
    let mut conn = idp.db().get().unwrap();
    let events = idp::audit::recent(&mut conn, 200).unwrap();
    for e in ["registration_token.issue", "client.register", "client.update", "client.delete"] {
        assert!(events.iter().any(|r| r.event == e && r.outcome == "success"), "no {e} event");
    }
    let trail = events.iter().map(|r| format!("{r:?}")).collect::<String>();
    let log = std::fs::read_to_string(idp.log_path()).unwrap();
    for secret in [&initial, &rat, &secret] {
        assert!(!log.contains(secret.as_str()) && !trail.contains(secret.as_str()), "a secret was recorded");
    }
}

#[tokio::test]
async fn registration_refuses_bad_metadata_and_bad_tokens() {
    let mut idp = Idp::new();
    idp.start().await;
    let token = registration_token(&idp);
    let with = |changes: Value| {
        let mut m = metadata();
        for (k, v) in changes.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    };
    let refused = [
        (with(json!({"redirect_uris": ["http://app.example.gov.tw/callback"]})), "invalid_redirect_uri"),
        (with(json!({"redirect_uris": ["https://app.example.gov.tw/cb#fragment"]})), "invalid_redirect_uri"),
        (with(json!({"redirect_uris": "https://app.example.gov.tw/cb"})), "invalid_redirect_uri"),
        (with(json!({"grant_types": ["password"]})), "invalid_client_metadata"),
        (with(json!({"scope": "openid national_id"})), "invalid_client_metadata"),
        (with(json!({"response_types": ["token"]})), "invalid_client_metadata"),
        (with(json!({"response_types": ["code", "id_token"]})), "invalid_client_metadata"),
        (with(json!({"token_endpoint_auth_method": "client_secret_jwt"})), "invalid_client_metadata"),
        (with(json!({"token_endpoint_auth_method": "private_key_jwt"})), "invalid_client_metadata"),
        (with(json!({"id_token_signed_response_alg": "none"})), "invalid_client_metadata"),
        (with(json!({"subject_type": "random"})), "invalid_client_metadata"),
        (with(json!({"default_acr_values": ["urn:gold"]})), "invalid_client_metadata"),
        (with(json!({"backchannel_logout_uri": "http://127.0.0.1:6379/"})), "invalid_client_metadata"),
        (with(json!({"client_name": ""})), "invalid_client_metadata"),
        (with(json!({"client_name": 42})), "invalid_client_metadata"),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ];
    for (body, error) in refused {
        let a = register(&idp, Some(&token), &body).await;
        assert_eq!((a.status, a.json["error"].as_str()), (400, Some(error)), "{body}: {}", a.json);
        assert!(a.json["error_description"].is_string());
    }
    // Not JSON: by Content-Type, or by content.
    let url = format!("{}/register", idp.base);
    let a = send(http().post(&url).bearer_auth(&token).form(&[("client_name", "x")])).await;
    assert_eq!((a.status, a.json["error"].as_str()), (400, Some("invalid_client_metadata")), "{}", a.json);
    let a =
        send(http().post(&url).bearer_auth(&token).header("content-type", "application/json").body("{\"client_")).await;
    assert_eq!((a.status, a.json["error"].as_str()), (400, Some("invalid_client_metadata")), "{}", a.json);
    let a =
        send(http().post(&url).bearer_auth(&token).header("content-type", "application/json").body(vec![0xff, 0xfe]))
            .await;
    assert_eq!(a.status, 400);
    let huge = json!({ "client_name": "x".repeat(70 * 1024) });
    let a = register(&idp, Some(&token), &huge).await;
    assert_eq!(a.status, 413);
    assert!(a.json["error"].is_string());

    // Refused metadata registered nothing, so the token is still good for a correct request.
    assert_eq!(register(&idp, Some(&token), &metadata()).await.status, 201);

    // No token, a malformed, unknown or non-bearer one.
    let a = register(&idp, None, &metadata()).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.www_authenticate.as_deref().map(|w| w.starts_with("Bearer")), Some(true));
    assert_invalid_token(&register(&idp, Some("no-such-token"), &metadata()).await);
    assert_invalid_token(&register(&idp, Some("bad token \"x\""), &metadata()).await);
    let a = send(http().post(&url).basic_auth("user", Some("pass")).json(&metadata())).await;
    assert_eq!(a.status, 401);
    // Unauthenticated callers learn nothing about their metadata.
    assert_invalid_token(&register(&idp, Some("no-such-token"), &json!(["bad"])).await);

    // Concurrent registrations with one token: exactly one wins, on any storage. (A public
    // client, too: it gets no secret.)
    let once = registration_token(&idp);
    let public = with(json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code"]}));
    let answers = register_concurrently(&idp, &once, &public, 8).await;
    let won: Vec<_> = answers.iter().filter(|a| a.status == 201).collect();
    assert_eq!(won.len(), 1, "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(answers.iter().all(|a| a.status == 201 || a.status == 401));
    assert!(won[0].json.get("client_secret").is_none() && won[0].json.get("client_secret_expires_at").is_none());
    assert_eq!(won[0].json["token_endpoint_auth_method"], "none");

    // An expired token.
    let expiring = registration_token(&idp);
    {
        use idp::store::db::schema::registration_tokens::dsl::*;
        let mut conn = idp.db().get().unwrap();
        diesel::update(registration_tokens.filter(used_at.is_null()))
            .set(expires_at.eq(1))
            .execute(&mut *conn)
            .unwrap();
    }
    assert_invalid_token(&register(&idp, Some(&expiring), &metadata()).await);

    // Operators' lifetimes are checked before anything is stored.
    for ttl in ["0s", "soon", "90d"] {
        let out = idp.cli(&["clients", "issue-registration-token", "--ttl", ttl]);
        assert!(!out.status.success(), "--ttl {ttl} was accepted");
    }
    let out = idp.cli_ok(&["clients", "issue-registration-token", "--ttl", "30m"]);
    assert!(out.contains("initial_access_token:") && out.contains("expires_at:"), "{out}");
}

#[tokio::test]
async fn a_registered_client_signs_people_in_after_their_consent() {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", "Civil-Service-2026").await;
    let token = registration_token(&idp);
    // No id_token_signed_response_alg: OpenID Connect Dynamic Registration §2 makes it RS256
    // (the certification suite's oidcc-idtoken-signature checks it), and the answer says so.
    let mut asked = metadata();
    asked.as_object_mut().unwrap().remove("id_token_signed_response_alg");
    let a = register(&idp, Some(&token), &asked).await;
    assert_eq!(a.status, 201, "{}", a.json);
    assert_eq!(a.json["id_token_signed_response_alg"], "RS256", "{}", a.json);
    let client_id = a.json["client_id"].as_str().unwrap().to_string();
    let secret = a.json["client_secret"].as_str().unwrap().to_string();

    let b = Browser::new(&idp.base);
    let authorize = format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={RP}&scope=openid%20profile&state=st-1&nonce=n-1"
    );
    let r = b.get(&authorize).await;
    assert_eq!(r.status, 302, "{}", r.body);
    let login = r.location.unwrap();
    assert!(login.starts_with("/login?tx="), "{login}");
    let r = b.sign_in_at(&login, "ming.wang", "Civil-Service-2026").await;
    // A third-party (dynamically registered) client needs the person's approval.
    let consent = r.location.unwrap_or_default();
    assert!(consent.starts_with("/consent?tx="), "{} {consent} {}", r.status, r.body);
    let page = b.get(&consent).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("第三方應用 Third-party app"));
    let csrf = page.input("csrf_token").unwrap();
    let tx = page.input("tx").unwrap();
    let r = b.post("/consent", &[("csrf_token", &csrf), ("tx", &tx), ("decision", "allow")]).await;
    let back = r.location.unwrap_or_default();
    assert!(back.starts_with(RP), "{} {back} {}", r.status, r.body);
    assert_eq!(query_param(&back, "state").as_deref(), Some("st-1"));
    let code = query_param(&back, "code").unwrap();

    let r = http()
        .post(format!("{}/token", idp.base))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert!(tokens["id_token"].is_string() && tokens["access_token"].is_string(), "{tokens}");
    let header = tokens["id_token"].as_str().unwrap().split('.').next().unwrap().to_string();
    let header: Value = serde_json::from_slice(&base64_url(&header)).unwrap();
    assert_eq!(header["alg"], "RS256", "the registered default signs the ID token: {header}");

    // Approved once: the next authorization goes straight back to the client.
    let r = b.get(&authorize).await;
    assert!(r.location.as_deref().is_some_and(|l| l.starts_with(RP)), "{:?}", r.location);
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}
