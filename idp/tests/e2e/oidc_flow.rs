//! The whole story, with the `openidconnect` crate as the relying party.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

use crate::harness::*;

const RP: &str = "http://127.0.0.1:9/callback";
const RP_HOME: &str = "http://127.0.0.1:9/";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test]
async fn import_reset_activate_sign_in_code_flow_userinfo_logout() {
    let mut idp = Idp::new();
    idp.import_register();
    let (client_id, secret) = idp.create_client(RP, RP_HOME);
    let otp = idp.reset_password(MING, "ming@example.gov.tw");
    idp.start().await;

    // The relying party discovers the provider, exactly as an outside team would.
    let http = http();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(idp.base.clone()).unwrap(), &http).await.unwrap();
    let client = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(RP.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf_state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("agency".into()))
        .add_scope(Scope::new("roles".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser is sent to the login page.
    let browser = Browser::new(&idp.base);
    let r = browser.get(auth_url.as_str()).await;
    assert_eq!(r.status, 302);
    let login = r.location.unwrap();
    assert!(login.starts_with("/login?tx="), "{login}");

    // One-time password with the national ID leads straight to activation.
    let r = browser.sign_in_at(&login, MING, &otp).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.as_deref().unwrap().starts_with("/activate"));
    let form = browser.get("/activate").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("首次啟用帳號"), "activation page in Traditional Chinese");
    let csrf = form.input("csrf_token").unwrap();

    // A mismatched confirmation is refused, what was typed (but not the passwords) is kept.
    let r = browser
        .post(
            "/activate",
            &[
                ("csrf_token", &csrf),
                ("account", "ming.wang"),
                ("email", "ming@example.gov.tw"),
                ("password", "Civil-Service-2026"),
                ("password_confirm", "Civil-Service-2027"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("兩次輸入的新密碼不一致"));
    assert_eq!(r.input("account").as_deref(), Some("ming.wang"));
    assert!(!r.body.contains("Civil-Service-2026"));
    // A weak password is refused.
    let r = browser
        .post(
            "/activate",
            &[
                ("csrf_token", &csrf),
                ("account", "ming.wang"),
                ("email", "ming@example.gov.tw"),
                ("password", "password1234"),
                ("password_confirm", "password1234"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("過於常見"));
    let r = browser
        .post(
            "/activate",
            &[
                ("csrf_token", &csrf),
                ("account", "ming.wang"),
                ("email", "ming@example.gov.tw"),
                ("password", "Civil-Service-2026"),
                ("password_confirm", "Civil-Service-2026"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("請重新登入"));

    // The one-time password is spent.
    let again = browser.sign_in_at("/login", MING, &otp).await;
    assert_eq!(again.status, 401);
    assert!(again.body.contains("帳號或密碼錯誤"));

    // Sign in again with the custom account (any case) and the new password: a code comes back.
    let relogin =
        r.body.split("class=\"button\" href=\"").nth(1).map(|s| s.split('"').next().unwrap().to_string()).unwrap();
    let relogin = relogin.replace("&#x3D;", "=");
    assert!(relogin.starts_with("/login?tx="), "{relogin}");
    let r = browser.sign_in_at(&relogin, "Ming.Wang", "Civil-Service-2026").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let callback = r.location.unwrap();
    assert!(callback.starts_with(RP));
    assert_eq!(query_param(&callback, "state").as_deref(), Some(csrf_state.secret().as_str()));
    assert_eq!(query_param(&callback, "iss").as_deref(), Some(idp.base.as_str()));
    let code = query_param(&callback, "code").unwrap();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    let verifier = client.id_token_verifier().set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    assert_ne!(claims.subject().as_str(), MING, "the subject is opaque, never the national ID");
    assert_eq!(claims.auth_context_ref(), Some(&AuthenticationContextClass::new("loa-1".into())));
    assert_eq!(claims.auth_method_refs().unwrap()[0].as_str(), "pwd");
    assert!(claims.auth_time().is_some());

    let info: CoreUserInfoClaims =
        client.user_info(tokens.access_token().to_owned(), None).unwrap().request_async(&http).await.unwrap();
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.preferred_username().unwrap().as_str(), "ming.wang");
    let raw: serde_json::Value = http
        .get(format!("{}/userinfo", idp.base))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["name"], "王小明");
    assert_eq!(raw["agency_code"], "A21000000I");
    assert_eq!(raw["agency_name"], "行政院人事行政總處");
    assert_eq!(raw["roles"], serde_json::json!(["employee"]));

    // A code works once.
    let reuse = http
        .post(format!("{}/token", idp.base))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP)])
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), 400);
    assert_eq!(reuse.json::<serde_json::Value>().await.unwrap()["error"], "invalid_grant");

    // A second application signs in without the form (SSO).
    let (second_id, _) = idp.create_client("http://127.0.0.1:9/second", RP_HOME);
    let r = browser
        .get(&format!("/authorize?client_id={second_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fsecond&response_type=code&scope=openid&state=s2"))
        .await;
    assert_eq!(r.status, 302);
    assert!(r.location.as_deref().unwrap().starts_with("http://127.0.0.1:9/second?code="), "{:?}", r.location);

    // RP-initiated logout with the ID token as hint goes straight back to the application.
    let logout = format!(
        "/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
        id_token,
        url::form_urlencoded::byte_serialize(RP_HOME.as_bytes()).collect::<String>()
    );
    let r = browser.get(&logout).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("http://127.0.0.1:9/?state=bye"));
    // The SSO session is gone: prompt=none now answers login_required.
    let r = browser
        .get(&format!("/authorize?client_id={second_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fsecond&response_type=code&scope=openid&prompt=none&state=s3"))
        .await;
    let loc = r.location.unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("s3"));

    // Nothing secret or personal reached the log.
    idp.stop();
    let log = std::fs::read_to_string(idp.log_path()).unwrap();
    assert!(log.contains("request"), "the log has request lines");
    for secret in [
        MING,
        otp.as_str(),
        "Civil-Service-2026",
        secret.as_str(),
        code.as_str(),
        tokens.access_token().secret().as_str(),
        &id_token.to_string(),
    ] {
        assert!(!log.contains(secret), "the log must not contain a secret or national ID");
    }
}

#[tokio::test]
async fn refuses_unknown_clients_and_unregistered_redirect_uris_without_redirecting() {
    let mut idp = Idp::new();
    let (client_id, _) = idp.create_client(RP, RP_HOME);
    idp.start().await;
    let b = Browser::new(&idp.base);
    let r = b.get("/authorize?client_id=nope&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=code&scope=openid").await;
    assert_eq!(r.status, 400);
    assert!(r.location.is_none());
    assert!(r.body.contains("尚未註冊"));
    for bad in [
        "http%3A%2F%2F127.0.0.1%3A9%2Fcallback%2F",
        "http%3A%2F%2Fevil.example%2Fcallback",
        "http%3A%2F%2F127.0.0.1%3A9%2FCALLBACK",
    ] {
        let r = b
            .get(&format!("/authorize?client_id={client_id}&redirect_uri={bad}&response_type=code&scope=openid"))
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.location.is_none(), "never a redirect to an unregistered URI");
    }
    // A trusted redirect URI gets protocol errors back, with state and iss.
    let r = b.get(&format!("/authorize?client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=token&scope=openid&state=x")).await;
    let loc = r.location.unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("unsupported_response_type"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("x"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(idp.base.as_str()));
    let r = b.get(&format!("/authorize?client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=code&scope=openid&scope=openid")).await;
    assert_eq!(query_param(&r.location.unwrap(), "error").as_deref(), Some("invalid_request"));
    // Garbage never produces a 5xx.
    let r = b.get("/authorize?client_id=%ff%fe").await;
    assert_eq!(r.status, 400);
    let r = b.get("/authorize").await;
    assert_eq!(r.status, 400);
}

/// Signs the standard person in through a fresh authorization request; returns the code and
/// the PKCE verifier used.
async fn code_for(idp: &Idp, browser: &Browser, client_id: &str, password: &str) -> (String, String) {
    let verifier = "v".repeat(50);
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let r = browser
        .get(&format!(
            "/authorize?client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=code&scope=openid&code_challenge={challenge}&code_challenge_method=S256"
        ))
        .await;
    let loc = r.location.unwrap();
    let loc =
        if loc.starts_with("/login") { browser.sign_in_at(&loc, MING, password).await.location.unwrap() } else { loc };
    let _ = idp;
    (query_param(&loc, "code").unwrap(), verifier)
}

#[tokio::test]
async fn token_endpoint_refuses_pkce_mismatch_wrong_secret_and_wrong_redirect() {
    let mut idp = Idp::new();
    idp.import_register();
    let (client_id, secret) = idp.create_client(RP, RP_HOME);
    idp.start().await;
    idp.activate(MING, "ming.wang", "Civil-Service-2026").await;
    let b = Browser::new(&idp.base);
    let http = http();
    let token = |form: Vec<(&'static str, String)>, user: String, pass: String| {
        let http = http.clone();
        let url = format!("{}/token", idp.base);
        async move { http.post(url).basic_auth(user, Some(pass)).form(&form).send().await.unwrap() }
    };

    // Wrong secret: 401 invalid_client with a Basic challenge.
    let (code, verifier) = code_for(&idp, &b, &client_id, "Civil-Service-2026").await;
    let r = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", RP.into()),
            ("code_verifier", verifier.clone()),
        ],
        client_id.clone(),
        "wrong".into(),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "invalid_client");

    // PKCE mismatch.
    let r = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", RP.into()),
            ("code_verifier", "w".repeat(50)),
        ],
        client_id.clone(),
        secret.clone(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "invalid_grant");
    // The failed attempt consumed the code: it cannot be retried with the right verifier either.
    let r = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code),
            ("redirect_uri", RP.into()),
            ("code_verifier", verifier),
        ],
        client_id.clone(),
        secret.clone(),
    )
    .await;
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "invalid_grant");

    // Redirect URI must match the one of the request.
    let (code, verifier) = code_for(&idp, &b, &client_id, "Civil-Service-2026").await;
    let r = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1:9/other".into()),
            ("code_verifier", verifier),
        ],
        client_id.clone(),
        secret.clone(),
    )
    .await;
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "invalid_grant");

    // client_secret_post works too, and responses are not cached.
    let (code, verifier) = code_for(&idp, &b, &client_id, "Civil-Service-2026").await;
    let r = http
        .post(format!("{}/token", idp.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", RP),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");

    // Unsupported grant type and garbage bodies are 400s.
    let r = http
        .post(format!("{}/token", idp.base))
        .basic_auth(&client_id, Some(&secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "unsupported_grant_type");
    let r = http
        .post(format!("{}/token", idp.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("%ff=%fe")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http.get(format!("{}/userinfo", idp.base)).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn separating_a_person_ends_their_session_and_refuses_sign_in() {
    let mut idp = Idp::new();
    idp.import_register();
    let (client_id, _) = idp.create_client(RP, RP_HOME);
    idp.start().await;
    idp.activate(MING, "ming.wang", "Civil-Service-2026").await;
    let b = Browser::new(&idp.base);
    let r = b.sign_in_at("/login", "ming.wang", "Civil-Service-2026").await;
    assert_eq!(r.status, 303);
    let separated = PERSONNEL.replace("資訊處,01,,active", "資訊處,01,,separated");
    let f = idp.file("separation.csv", separated.as_bytes());
    let out = idp.cli_ok(&["personnel", "import", &f]);
    assert!(out.contains("separated 1"), "{out}");
    let r = b
        .get(&format!("/authorize?client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=code&scope=openid&prompt=none"))
        .await;
    assert_eq!(query_param(&r.location.unwrap(), "error").as_deref(), Some("login_required"));
    let r = b.sign_in_at("/login", "ming.wang", "Civil-Service-2026").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("驗證之公務人員為卸職狀態"));
    // The helpdesk cannot issue a password to a separated person either.
    let out = idp.cli(&["users", "reset-password", "--national-id", MING, "--email", "ming@example.gov.tw"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("separated"));
}

#[tokio::test]
async fn a_restart_keeps_accounts_clients_and_sessions() {
    let mut idp = Idp::new();
    idp.import_register();
    let (client_id, _) = idp.create_client(RP, RP_HOME);
    idp.start().await;
    idp.activate(MING, "ming.wang", "Civil-Service-2026").await;
    let b = Browser::new(&idp.base);
    assert_eq!(b.sign_in_at("/login", "ming.wang", "Civil-Service-2026").await.status, 303);
    idp.stop();
    idp.start().await;
    let r = b
        .get(&format!(
            "/authorize?client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=code&scope=openid&prompt=none"
        ))
        .await;
    let loc = r.location.unwrap();
    assert!(query_param(&loc, "code").is_some(), "the SSO session survived the restart: {loc}");
}

#[tokio::test]
async fn clients_may_ask_for_rs256_id_tokens() {
    use openidconnect::PkceCodeVerifier;
    let mut idp = Idp::new();
    idp.import_register();
    let out = idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "Legacy",
        "--redirect-uri",
        RP,
        "--id-token-alg",
        "RS256",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (client_id, secret) =
        (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string());
    idp.start().await;
    idp.activate(MING, "ming.wang", "Civil-Service-2026").await;
    let b = Browser::new(&idp.base);
    let (code, verifier) = code_for(&idp, &b, &client_id, "Civil-Service-2026").await;
    let http = http();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(idp.base.clone()).unwrap(), &http).await.unwrap();
    let client = CoreClient::from_provider_metadata(meta, ClientId::new(client_id), Some(ClientSecret::new(secret)))
        .set_redirect_uri(RedirectUrl::new(RP.into()).unwrap());
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    // The default verifier accepts RS256 only: this passes only for an RS256 token.
    let claims = id_token.claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(())).unwrap();
    assert_eq!(claims.auth_context_ref().unwrap().as_str(), "loa-1");
}
