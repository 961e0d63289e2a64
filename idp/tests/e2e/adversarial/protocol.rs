//! Adversarial: protocol. Clients and third parties trying to link people across clients, undo
//! what an operator decided, read other clients' tokens, point the provider at internal
//! addresses, or redeem one code twice.

use base64::Engine;
use serde_json::{json, Value};

use crate::harness::*;

const PASSWORD: &str = "Civil-Service-2026";
const RP: &str = "http://127.0.0.1:9/callback";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Creates a confidential client through the CLI with extra arguments; returns (id, secret).
fn client(idp: &Idp, redirect: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["clients", "create", "--name", "App", "--redirect-uri", redirect, "--json"];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(&idp.cli_ok(&args)).unwrap();
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap_or_default().to_string())
}

/// A code for the standard person at a first-party client (signing in if the browser has no
/// session yet).
async fn code(b: &Browser, client_id: &str, redirect: &str, scope: &str) -> String {
    let r = b
        .get(&format!(
            "/authorize?client_id={client_id}&redirect_uri={}&response_type=code&scope={}&state=s",
            enc(redirect),
            enc(scope)
        ))
        .await;
    let loc = r.location.unwrap_or_else(|| panic!("authorize: {} {}", r.status, r.body));
    let loc =
        if loc.starts_with("/login") { b.sign_in_at(&loc, "ming.wang", PASSWORD).await.location.unwrap() } else { loc };
    query_param(&loc, "code").unwrap_or_else(|| panic!("no code in {loc}"))
}

async fn token(idp: &Idp, id: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http().post(format!("{}/token", idp.base)).basic_auth(id, Some(secret)).form(form).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn redeem(idp: &Idp, id: &str, secret: &str, code: &str, redirect: &str) -> Value {
    let (status, v) =
        token(idp, id, secret, &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect)])
            .await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn introspect(idp: &Idp, id: &str, secret: &str, token: &str) -> Value {
    let r = http()
        .post(format!("{}/introspect", idp.base))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn claims(jwt: &str) -> serde_json::Map<String, Value> {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn world() -> Idp {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PASSWORD).await;
    idp
}

#[tokio::test]
async fn two_pairwise_clients_find_nothing_in_their_access_tokens_that_links_the_person() {
    let idp = world().await;
    // Two pairwise clients on two sectors, and a public-subject one whose `sub` is the account id.
    let (a, a_secret) = client(&idp, RP, &["--subject-type", "pairwise"]);
    let rp_b = "http://localhost:9/callback";
    let (b_id, b_secret) = client(&idp, rp_b, &["--subject-type", "pairwise"]);
    let (p, p_secret) = client(&idp, RP, &[]);
    let browser = Browser::new(&idp.base);
    let ta = redeem(&idp, &a, &a_secret, &code(&browser, &a, RP, "openid offline_access").await, RP).await;
    let tb = redeem(&idp, &b_id, &b_secret, &code(&browser, &b_id, rp_b, "openid").await, rp_b).await;
    let tp = redeem(&idp, &p, &p_secret, &code(&browser, &p, RP, "openid").await, RP).await;
    let account_id = claims(tp["access_token"].as_str().unwrap())["sub"].as_str().unwrap().to_string();

    let (ca, cb) = (claims(ta["access_token"].as_str().unwrap()), claims(tb["access_token"].as_str().unwrap()));
    // Same issuer, same sign-in: only the standard fields may agree.
    let standard = ["iss", "aud", "iat", "exp", "auth_time", "acr", "scope"];
    for (k, v) in &ca {
        assert!(!["account", "sid"].contains(&k.as_str()), "the access token carries `{k}`");
        if !standard.contains(&k.as_str()) {
            assert_ne!(cb.get(k), Some(v), "`{k}` is the same in both clients' access tokens");
        }
    }
    for c in [&ca, &cb] {
        let text = serde_json::to_string(c).unwrap();
        assert!(!text.contains(&account_id), "an access token carries the account id: {text}");
    }
    assert_ne!(ca["sub"], cb["sub"]);

    // The provider still knows whose token it is: introspection, userinfo, refresh.
    let i = introspect(&idp, &a, &a_secret, ta["access_token"].as_str().unwrap()).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], ca["sub"]);
    let r = http()
        .get(format!("{}/userinfo", idp.base))
        .bearer_auth(tb["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["sub"], cb["sub"]);
    let (status, refreshed) = token(
        &idp,
        &a,
        &a_secret,
        &[("grant_type", "refresh_token"), ("refresh_token", ta["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    let cr = claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(cr["sub"], ca["sub"]);
    assert!(!serde_json::to_string(&cr).unwrap().contains(&account_id));
    let i = introspect(&idp, &a, &a_secret, refreshed["access_token"].as_str().unwrap()).await;
    assert_eq!(i["active"], true, "{i}");
}

// ---- dynamic registration ----

fn registration_token(idp: &Idp) -> String {
    let v: Value = serde_json::from_str(&idp.cli_ok(&["clients", "issue-registration-token", "--json"])).unwrap();
    v["initial_access_token"].as_str().unwrap().to_string()
}

async fn send(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn register(idp: &Idp, body: &Value) -> (u16, Value) {
    send(http().post(format!("{}/register", idp.base)).bearer_auth(registration_token(idp)).json(body)).await
}

async fn put(registered: &Value, body: &Value) -> (u16, Value) {
    let uri = registered["registration_client_uri"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    send(http().put(uri).bearer_auth(token).json(body)).await
}

fn metadata() -> Value {
    json!({
        "client_name": "Third-party app",
        "redirect_uris": [RP],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "openid profile email",
        "default_acr_values": ["loa-1"],
    })
}

#[tokio::test]
async fn an_rfc7592_update_cannot_undo_the_audience_and_assurance_an_operator_set() {
    let mut idp = Idp::new();
    idp.start().await;
    let (status, reg) = register(&idp, &metadata()).await;
    assert_eq!(status, 201, "{reg}");
    let id = reg["client_id"].as_str().unwrap().to_string();
    idp.cli_ok(&["clients", "update", &id, "--audience", "hr-staff", "--min-acr", "loa-2"]);

    // The client sends a complete metadata document of its own, asking for less.
    let mut body = metadata();
    body["client_id"] = json!(id);
    body["client_name"] = json!("Renamed app");
    body["audience"] = json!("everyone");
    let (status, updated) = put(&reg, &body).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["client_name"], "Renamed app", "the client's own metadata did change");
    assert_eq!(updated["default_acr_values"], json!(["loa-2"]), "{updated}");
    let shown = idp.cli_ok(&["clients", "show", &id]);
    assert!(shown.contains("audience:                   hr-staff"), "{shown}");
    assert!(shown.contains("min_acr:                    loa-2"), "{shown}");
}

#[tokio::test]
async fn a_registered_client_gets_client_credentials_only_with_an_operators_permission() {
    let mut idp = Idp::new();
    idp.start().await;
    let mut asking = metadata();
    asking["grant_types"] = json!(["authorization_code", "client_credentials"]);
    let (status, v) = register(&idp, &asking).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_client_metadata")), "{v}");

    let (status, reg) = register(&idp, &metadata()).await;
    assert_eq!(status, 201, "{reg}");
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    asking["client_id"] = json!(id);
    let (status, v) = put(&reg, &asking).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_client_metadata")), "{v}");
    let (status, v) = token(&idp, &id, &secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("unauthorized_client")), "{v}");

    // With the operator's permission the client may add the grant and use it.
    idp.cli_ok(&["clients", "update", &id, "--allow-client-credentials"]);
    let (status, v) = put(&reg, &asking).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = token(&idp, &id, &secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{v}");

    // Withdrawn: the grant still in its metadata is refused (within the few-second client cache).
    idp.cli_ok(&["clients", "update", &id, "--allow-client-credentials=false"]);
    let mut last = (0, Value::Null);
    for _ in 0..40 {
        last = token(&idp, &id, &secret, &[("grant_type", "client_credentials")]).await;
        if last.0 == 400 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!((last.0, last.1["error"].as_str()), (400, Some("unauthorized_client")), "{}", last.1);
}

#[tokio::test]
async fn a_client_cannot_introspect_another_clients_tokens_unless_it_is_a_resource_server() {
    let idp = world().await;
    let (a, a_secret) = client(&idp, RP, &[]);
    let (other, other_secret) = client(&idp, RP, &[]);
    let (api, api_secret) = client(&idp, RP, &["--resource-server"]);
    let b = Browser::new(&idp.base);
    let t = redeem(&idp, &a, &a_secret, &code(&b, &a, RP, "openid offline_access").await, RP).await;
    let (at, rt) = (t["access_token"].as_str().unwrap(), t["refresh_token"].as_str().unwrap());

    for tok in [at, rt] {
        assert_eq!(introspect(&idp, &other, &other_secret, tok).await, json!({"active": false}));
        let own = introspect(&idp, &a, &a_secret, tok).await;
        assert_eq!(own["active"], true, "{own}");
        let by_api = introspect(&idp, &api, &api_secret, tok).await;
        assert_eq!(by_api["active"], true, "{by_api}");
        assert_eq!(by_api["client_id"], a.as_str());
    }
}

#[tokio::test]
async fn two_concurrent_redemptions_of_one_code_one_wins_and_its_tokens_are_revoked() {
    let idp = world().await;
    let (a, secret) = client(&idp, RP, &[]);
    let b = Browser::new(&idp.base);
    for round in 0..3 {
        let code = code(&b, &a, RP, "openid offline_access").await;
        let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", RP)];
        let (one, two) = tokio::join!(token(&idp, &a, &secret, &form), token(&idp, &a, &secret, &form));
        let (won, lost) = match (one.0, two.0) {
            (200, 400) => (one.1, two.1),
            (400, 200) => (two.1, one.1),
            other => panic!("round {round}: exactly one redemption must succeed, got {other:?}"),
        };
        assert_eq!(lost["error"], "invalid_grant", "{lost}");
        let at = won["access_token"].as_str().unwrap();
        assert_eq!(introspect(&idp, &a, &secret, at).await, json!({"active": false}), "round {round}");
        let rt = won["refresh_token"].as_str().unwrap();
        let (status, v) = token(&idp, &a, &secret, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")), "round {round}: {v}");
        assert_eq!(idp.audit_count("token.code_replay", "revoked"), round + 1);
    }
    // Each replay is on record with the client that presented it. (Whose tokens they were is
    // known only once the first redemption has written its refresh token: a replay that wins
    // that race records no account, and its revocation still holds, as the refusals show.)
    for (outcome, _account, client, detail) in idp.audit_events("token.code_replay") {
        assert_eq!(outcome, "revoked");
        assert_eq!(client.as_deref(), Some(a.as_str()));
        assert!(detail.contains("presented twice"), "{detail}");
    }
}

/// The same refresh token sent twice at the same instant: the rotation is one transaction that
/// spends first, so exactly one gets tokens; the other is a reuse, which revokes the family,
/// the winner's new refresh token with it, and is on record.
#[tokio::test]
async fn two_concurrent_refreshes_of_one_token_one_wins_and_the_reuse_revokes_the_family() {
    let idp = world().await;
    let (a, secret) = client(&idp, RP, &[]);
    let b = Browser::new(&idp.base);
    for round in 0..3 {
        let t = redeem(&idp, &a, &secret, &code(&b, &a, RP, "openid offline_access").await, RP).await;
        let rt = t["refresh_token"].as_str().unwrap().to_string();
        let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
        let (one, two) = tokio::join!(token(&idp, &a, &secret, &form), token(&idp, &a, &secret, &form));
        let (won, lost) = match (one.0, two.0) {
            (200, 400) => (one.1, two.1),
            (400, 200) => (two.1, one.1),
            other => panic!("round {round}: exactly one refresh must succeed, got {other:?}"),
        };
        assert_eq!(lost["error"], "invalid_grant", "{lost}");
        let next = won["refresh_token"].as_str().unwrap();
        let (status, v) = token(&idp, &a, &secret, &[("grant_type", "refresh_token"), ("refresh_token", next)]).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")), "round {round}: {v}");
        assert_eq!(idp.audit_count("token.refresh_reuse", "family_revoked"), round + 1);
    }
}

// ---- server-side request forgery ----

#[tokio::test]
async fn a_third_party_cannot_register_urls_that_point_at_internal_addresses() {
    let mut idp = Idp::new();
    idp.start().await;
    for (key, uri) in [
        ("jwks_uri", "https://127.0.0.1/jwks"),
        ("jwks_uri", "https://[::1]/jwks"),
        ("jwks_uri", "https://[::ffff:10.0.0.1]/jwks"),
        ("jwks_uri", "https://localhost:8443/jwks"),
        ("backchannel_logout_uri", "https://169.254.169.254/latest/meta-data/"),
        ("backchannel_logout_uri", "https://192.168.1.10/logout"),
        ("backchannel_logout_uri", "https://[fe80::1]/logout"),
    ] {
        let mut body = metadata();
        body[key] = json!(uri);
        if key == "jwks_uri" {
            body["token_endpoint_auth_method"] = json!("private_key_jwt");
        }
        let (status, v) = register(&idp, &body).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("invalid_client_metadata")), "{key} {uri}: {v}");
    }
    // The switch for tests is what lets them through, not some other rule.
    let mut open = Idp::with_env(&[("IDP_OUTBOUND__ALLOW_PRIVATE_ADDRESSES", "true")]);
    open.start().await;
    let mut body = metadata();
    body["backchannel_logout_uri"] = json!("https://127.0.0.1/logout");
    let (status, v) = register(&open, &body).await;
    assert_eq!(status, 201, "{v}");
    let log = std::fs::read_to_string(open.log_path()).unwrap();
    assert!(log.contains("WARN") && log.contains("outbound.allow_private_addresses"), "{log}");
}

/// A listener that counts the connections made to it.
fn counting_listener() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    (port, count)
}

/// A registered private_key_jwt client whose jwks_uri name now resolves to loopback (as after DNS
/// rebinding), tried at the token endpoint; returns how many connections reached the listener.
async fn rebound_jwks_fetch(env: &[(&str, &str)]) -> usize {
    use diesel::prelude::*;
    let mut idp = Idp::with_env(env);
    idp.start().await;
    let mut body = metadata();
    body["token_endpoint_auth_method"] = json!("private_key_jwt");
    body["jwks_uri"] = json!("https://8.8.8.8/jwks");
    let (status, reg) = register(&idp, &body).await;
    assert_eq!(status, 201, "{reg}");
    let id = reg["client_id"].as_str().unwrap().to_string();
    let (port, count) = counting_listener();
    let db = idp.db();
    let mut c = db.get().unwrap();
    diesel::update(idp::store::db::schema::clients::table.find(&id))
        .set(idp::store::db::schema::clients::jwks_uri.eq(format!("http://localhost:{port}/jwks")))
        .execute(&mut *c)
        .unwrap();
    // A self-made assertion; the provider must fetch the key set to check it.
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","kid":"k1"}"#);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"iss": id, "sub": id, "aud": format!("{}/token", idp.base), "jti": "j1", "exp": now + 60});
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let assertion = format!("{header}.{payload}.c2ln");
    let r = http()
        .post(format!("{}/token", idp.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "{}", r.text().await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    count.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn a_third_partys_jwks_uri_rebound_to_loopback_is_never_connected_to() {
    assert_eq!(rebound_jwks_fetch(&[]).await, 0, "the provider connected to a loopback address");
    // The same story with the check switched off does connect: the listener would have seen it.
    assert!(rebound_jwks_fetch(&[("IDP_OUTBOUND__ALLOW_PRIVATE_ADDRESSES", "true")]).await > 0);
}

// ---- configuration secrets ----

#[tokio::test]
async fn passwords_in_database_cache_and_smtp_urls_never_reach_the_log() {
    const PW: &str = "Pw-never-logged-7391";
    let smtp = format!("smtp://mailer:{PW}@127.0.0.1:2525");
    let mut env = vec![("IDP_LOG__LEVEL".to_string(), "debug".to_string()), ("IDP_MAIL__SMTP_URL".into(), smtp)];
    let mut own_db = None;
    if let Ok(admin) = std::env::var("IDP_TEST_DATABASE_URL") {
        // A database of this test's own, reached with a password (trust authentication ignores it).
        use diesel::{Connection, RunQueryDsl};
        let name = format!("idp_secret_{}", std::process::id());
        let mut conn = diesel::PgConnection::establish(&admin).unwrap();
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}")).execute(&mut conn).unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).unwrap();
        let mut u = url::Url::parse(&admin).unwrap();
        u.set_path(&format!("/{name}"));
        u.set_password(Some(PW)).unwrap();
        env.push(("IDP_DATABASE__URL".into(), u.to_string()));
        own_db = Some((admin, name));
    }
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut idp = Idp::with_env(&refs);
    idp.start().await;
    idp.stop();
    let log = std::fs::read_to_string(idp.log_path()).unwrap();
    assert!(log.contains("effective configuration"), "the configuration is logged at debug level: {log}");
    assert!(!log.contains(PW), "a password reached the log: {log}");

    // A cache URL with a password, on a start that fails (nothing listens there).
    let port = closed_port().to_string();
    let cache = format!("redis://:{PW}@127.0.0.1:{port}");
    let failing = Idp::with_env(&[("IDP_LOG__LEVEL", "debug"), ("IDP_CACHE__URL", cache.as_str())]);
    let out = failing.cli(&["serve"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("effective configuration"), "{text}");
    assert!(!text.contains(PW), "a password reached the log: {text}");
    if let Some((admin, name)) = own_db {
        use diesel::{Connection, RunQueryDsl};
        let mut conn = diesel::PgConnection::establish(&admin).unwrap();
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
    }
}

/// A registered client whose back-channel logout name now resolves to loopback: the person signs
/// in and out; returns how many connections reached the listener.
async fn rebound_backchannel_logout(env: &[(&str, &str)]) -> usize {
    use diesel::prelude::*;
    use idp::store::db::schema::clients;
    let mut idp = Idp::with_env(env);
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PASSWORD).await;
    let mut body = metadata();
    body["backchannel_logout_uri"] = json!("https://8.8.8.8/logout");
    body["post_logout_redirect_uris"] = json!(["http://127.0.0.1:9/"]);
    let (status, reg) = register(&idp, &body).await;
    assert_eq!(status, 201, "{reg}");
    let id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    let (port, count) = counting_listener();
    let db = idp.db();
    let mut c = db.get().unwrap();
    // Approved in advance, so the story needs no consent page; still a third party.
    diesel::update(clients::table.find(&id))
        .set((
            clients::backchannel_logout_uri.eq(format!("http://localhost:{port}/bc")),
            clients::consent.eq("pre-approved"),
        ))
        .execute(&mut *c)
        .unwrap();
    let b = Browser::new(&idp.base);
    let t = redeem(&idp, &id, &secret, &code(&b, &id, RP, "openid").await, RP).await;
    let r = b
        .get(&format!(
            "/logout?id_token_hint={}&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2F",
            t["id_token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    count.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn a_third_partys_backchannel_logout_uri_rebound_to_loopback_is_never_connected_to() {
    assert_eq!(rebound_backchannel_logout(&[]).await, 0, "the provider connected to a loopback address");
    assert!(rebound_backchannel_logout(&[("IDP_OUTBOUND__ALLOW_PRIVATE_ADDRESSES", "true")]).await > 0);
}
