//! 我的專區, as a signed-in employee uses it: profile, custom account and e-mail, password,
//! sessions, connected applications.

use diesel::prelude::*;
use serde_json::Value;

use crate::harness::*;

const PW: &str = "Civil-Service-2026";
const NEW_PW: &str = "Another-Long-Pass-77";
const CB: &str = "http://127.0.0.1:9/cb";
const CB_ENC: &str = "http%3A%2F%2F127.0.0.1%3A9%2Fcb";

/// A started IdP with 王小明 activated as `ming.wang`.
async fn world() -> Idp {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW).await;
    idp
}

async fn signed_in(idp: &Idp, account: &str, password: &str) -> Browser {
    let b = Browser::new(&idp.base);
    let r = b.sign_in_at("/login", account, password).await;
    assert_eq!(r.status, 303, "sign-in as {account}: {}", r.body);
    b
}

fn events(idp: &Idp, name: &str) -> Vec<(String, Option<String>)> {
    use idp::store::db::schema::audit_events::dsl::*;
    let db = idp.db();
    let mut conn = db.get().unwrap();
    audit_events.filter(event.eq(name)).select((outcome, account_id)).load(&mut *conn).unwrap()
}

#[tokio::test]
async fn the_profile_comes_from_the_register_with_the_national_id_masked() {
    let idp = world().await;
    let b = signed_in(&idp, "ming.wang", PW).await;
    let page = b.get("/me").await;
    assert_eq!(page.status, 200, "{}", page.body);
    for text in ["我的專區", "王小明", "行政院人事行政總處", "資訊處", "A12*****89", "ming.wang"] {
        assert!(page.body.contains(text), "{text} on the page: {}", page.body);
    }
    assert!(!page.body.contains(MING), "the full national ID never appears");
    // Cards: a labelled section listing bound cards (none yet); binding needs card sign-in
    // configured, which this instance has not, so no card script either.
    assert!(page.body.contains("已綁定的憑證") && page.body.contains("尚未綁定任何憑證"));
    // Every input has a label.
    for id in ["account", "email", "current_password", "password", "password_confirm"] {
        assert!(page.body.contains(&format!("<label for=\"{id}\">")), "label for {id}");
    }
    assert!(!page.body.contains("<script"), "no JavaScript");
    let en = b.get("/me?ui_locales=en").await;
    assert!(en.body.contains("My area") && en.body.contains("No card is bound yet"));
    // Not signed in: to the sign-in page.
    assert_eq!(Browser::new(&idp.base).get("/me").await.location.as_deref(), Some("/login"));
}

#[tokio::test]
async fn custom_account_and_email_change_under_the_activation_rules() {
    let idp = world().await;
    idp.activate(MEIHUA, "meihua.lee", PW).await;
    let b = signed_in(&idp, "ming.wang", PW).await;
    let csrf = b.get("/me").await.input("csrf_token").unwrap();
    // Taken by someone else (case does not matter), shaped like a national ID, bad e-mail.
    for (account, email, message) in [
        ("MEIHUA.LEE", "ming@example.gov.tw", "此自訂帳號已有人使用"),
        ("D123456780", "ming@example.gov.tw", "不可為身分證號格式"),
        ("ming.w", "not-an-address", "電子郵件格式不正確"),
    ] {
        let r = b.post("/me/account", &[("csrf_token", &csrf), ("account", account), ("email", email)]).await;
        assert_eq!(r.status, 422, "{account}: {}", r.body);
        assert!(r.body.contains(message), "{message}: {}", r.body);
    }
    // Without the CSRF token nothing changes.
    let r = b.post("/me/account", &[("account", "forged.name"), ("email", "x@example.gov.tw")]).await;
    assert_eq!(r.status, 403);

    let r = b
        .post("/me/account", &[("csrf_token", &csrf), ("account", "Ming.W"), ("email", "ming.w@example.gov.tw")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = b.get(r.location.as_deref().unwrap()).await;
    assert!(page.body.contains("自訂帳號與電子郵件已更新"), "{}", page.body);
    assert_eq!(page.input("account").as_deref(), Some("Ming.W"));
    assert_eq!(page.input("email").as_deref(), Some("ming.w@example.gov.tw"));
    // The new account signs in (any case); the old one no longer does.
    signed_in(&idp, "ming.w", PW).await;
    assert_eq!(Browser::new(&idp.base).sign_in_at("/login", "ming.wang", PW).await.status, 401);
    assert!(events(&idp, "account.change").iter().any(|e| e.0 == "success"));
}

#[tokio::test]
async fn the_password_changes_only_with_the_current_one() {
    let idp = world().await;
    let b = signed_in(&idp, "ming.wang", PW).await;
    let csrf = b.get("/me").await.input("csrf_token").unwrap();
    let change = |current: &'static str, new: &'static str, confirm: &'static str| {
        let (b, csrf) = (&b, csrf.clone());
        async move {
            b.post(
                "/me/password",
                &[
                    ("csrf_token", &csrf),
                    ("current_password", current),
                    ("password", new),
                    ("password_confirm", confirm),
                ],
            )
            .await
        }
    };
    let r = change("Wrong-Current-Pass-1", NEW_PW, NEW_PW).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("目前密碼不正確"), "{}", r.body);
    let r = change(PW, "short", "short").await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("密碼至少需要 12 個字元"));
    // Personal passwords: one containing the national ID, one equal to the e-mail on record.
    for personal in ["A123456789-Pass", "someone@example.gov.tw"] {
        let r = change(PW, personal, personal).await;
        assert_eq!(r.status, 422, "{personal}");
        assert!(r.body.contains("亦不可包含身分證號"), "{personal}: {}", r.body);
    }
    let r = change(PW, NEW_PW, "Another-Long-Pass-78").await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("兩次輸入的新密碼不一致"));
    // The refusals changed nothing.
    signed_in(&idp, "ming.wang", PW).await;

    let r = change(PW, NEW_PW, NEW_PW).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(b.get(r.location.as_deref().unwrap()).await.body.contains("密碼已變更"));
    assert_eq!(Browser::new(&idp.base).sign_in_at("/login", "ming.wang", PW).await.status, 401);
    signed_in(&idp, "ming.wang", NEW_PW).await;
    let outcomes: Vec<String> = events(&idp, "account.password_change").into_iter().map(|e| e.0).collect();
    assert!(outcomes.contains(&"wrong_password".to_string()) && outcomes.contains(&"success".to_string()));
    let log = std::fs::read_to_string(idp.log_path()).unwrap();
    assert!(!log.contains(NEW_PW) && !log.contains(PW), "no password in the log");
}

#[tokio::test]
async fn sessions_are_listed_and_others_can_be_signed_out() {
    let idp = world().await;
    let here = signed_in(&idp, "ming.wang", PW).await;
    let laptop = signed_in(&idp, "ming.wang", PW).await;
    let phone = signed_in(&idp, "ming.wang", PW).await;
    let page = here.get("/me").await;
    assert_eq!(page.body.matches("name=\"sid\"").count(), 2, "the two other sessions can be ended: {}", page.body);
    assert!(page.body.contains("目前使用中"));

    // End one: the laptop's. Find its sid from its own page (the row marked current there).
    let laptop_page = laptop.get("/me").await;
    let sid_of = |body: &str| -> Vec<String> {
        body.split("name=\"sid\" value=\"").skip(1).map(|s| s.split('"').next().unwrap().to_string()).collect()
    };
    let seen_from_laptop = sid_of(&laptop_page.body);
    let seen_from_here = sid_of(&page.body);
    let laptop_sid = seen_from_here.iter().find(|s| !seen_from_laptop.contains(s)).unwrap().clone();
    let csrf = page.input("csrf_token").unwrap();
    let r = here.post("/me/sessions/end", &[("csrf_token", &csrf), ("sid", &laptop_sid)]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(laptop.get("/me").await.location.as_deref(), Some("/login"), "the laptop is signed out");
    assert_eq!(phone.get("/me").await.status, 200, "the phone is not");

    // A sid of someone else's session ends nothing.
    idp.activate(MEIHUA, "meihua.lee", PW).await;
    let meihua = signed_in(&idp, "meihua.lee", PW).await;
    let meihua_page = meihua.get("/me").await;
    assert!(sid_of(&meihua_page.body).is_empty());
    let meihua_sid = {
        use idp::store::db::schema::sessions::dsl::*;
        let db = idp.db();
        let mut conn = db.get().unwrap();
        let acct: String = {
            use idp::store::db::schema::accounts::dsl as a;
            a::accounts.filter(a::account_name_key.eq("meihua.lee")).select(a::id).first(&mut *conn).unwrap()
        };
        sessions.filter(account_id.eq(acct)).select(sid).first::<String>(&mut *conn).unwrap()
    };
    here.post("/me/sessions/end", &[("csrf_token", &csrf), ("sid", &meihua_sid)]).await;
    assert_eq!(meihua.get("/me").await.status, 200, "someone else's session is untouched");

    // All others: the phone goes, this one stays.
    let r = here.post("/me/sessions/end", &[("csrf_token", &csrf), ("all", "others")]).await;
    assert_eq!(r.status, 303);
    assert_eq!(phone.get("/me").await.location.as_deref(), Some("/login"));
    let page = here.get("/me").await;
    assert_eq!(page.status, 200);
    assert!(sid_of(&page.body).is_empty());
    assert!(events(&idp, "session.end").len() >= 2);
}

#[tokio::test]
async fn a_connected_application_can_be_revoked_and_its_refresh_token_stops_working() {
    let idp = world().await;
    let out = idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "請假系統",
        "--redirect-uri",
        CB,
        "--require-consent",
        "--scope",
        "openid profile email offline_access",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let (client_id, secret) =
        (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string());
    let b = signed_in(&idp, "ming.wang", PW).await;
    assert!(b.get("/me").await.body.contains("目前沒有已連結的應用系統"));

    // Sign in to the application: consent, code, tokens with a refresh token.
    let r = b
        .get(&format!(
            "/authorize?client_id={client_id}&redirect_uri={CB_ENC}&response_type=code&scope=openid%20email%20offline_access"
        ))
        .await;
    let consent = r.location.unwrap();
    assert!(consent.starts_with("/consent"), "{consent}");
    let page = b.get(&consent).await;
    let (csrf, tx) = (page.input("csrf_token").unwrap(), page.input("tx").unwrap());
    let r = b.post("/consent", &[("csrf_token", &csrf), ("tx", &tx), ("decision", "allow")]).await;
    let code = query_param(&r.location.unwrap(), "code").unwrap();
    let http = reqwest::Client::new();
    let token = |form: Vec<(&'static str, String)>| {
        let (http, base, id, secret) = (http.clone(), idp.base.clone(), client_id.clone(), secret.clone());
        async move {
            let r = http.post(format!("{base}/token")).basic_auth(id, Some(secret)).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, t) =
        token(vec![("grant_type", "authorization_code".into()), ("code", code), ("redirect_uri", CB.into())]).await;
    assert_eq!(status, 200, "{t}");
    let refresh = t["refresh_token"].as_str().expect("a refresh token").to_string();

    // 我的專區 lists it with what was allowed.
    let page = b.get("/me").await;
    assert!(page.body.contains("請假系統") && page.body.contains("電子郵件"), "{}", page.body);
    let csrf = page.input("csrf_token").unwrap();
    let r = b.post("/me/apps/revoke", &[("csrf_token", &csrf), ("client_id", &client_id)]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = b.get(r.location.as_deref().unwrap()).await;
    assert!(page.body.contains("已撤銷此應用系統的授權") && page.body.contains("目前沒有已連結的應用系統"));

    // Consent is gone, and the refresh token is refused.
    {
        use idp::store::db::schema::consents::dsl::*;
        let db = idp.db();
        let mut conn = db.get().unwrap();
        let n: i64 = consents.count().get_result(&mut *conn).unwrap();
        assert_eq!(n, 0);
    }
    let (status, e) = token(vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh)]).await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"], "invalid_grant");
    // The next sign-in to it asks for consent again.
    let r = b
        .get(&format!("/authorize?client_id={client_id}&redirect_uri={CB_ENC}&response_type=code&scope=openid%20email"))
        .await;
    assert!(r.location.unwrap().starts_with("/consent"));
    assert!(events(&idp, "consent.revoke").iter().any(|e| e.0 == "success"));
}

#[tokio::test]
async fn forms_trim_identifiers_never_passwords_and_refuse_repeated_fields() {
    let idp = world().await;
    // The account name is an identifier: surrounding spaces are not part of it.
    signed_in(&idp, "  ming.wang\t", PW).await;
    // The password is a secret: a space around it makes it another password.
    let r = Browser::new(&idp.base).sign_in_at("/login", "ming.wang", &format!(" {PW}")).await;
    assert_eq!(r.status, 401, "{}", r.body);

    let b = signed_in(&idp, "ming.wang", PW).await;
    let csrf = b.get("/me").await.input("csrf_token").unwrap();
    // A repeated field is refused, not read as its first or last value.
    let r = b
        .post(
            "/me/account",
            &[
                ("csrf_token", &csrf),
                ("account", "first.name"),
                ("account", "second.name"),
                ("email", "a@example.gov.tw"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("要求的參數有誤"), "{}", r.body);
    let page = b.get("/me").await;
    assert_eq!(page.input("account").as_deref(), Some("ming.wang"), "nothing changed");
    // A repeated CSRF token is refused too, even when both copies are right.
    let r = b.post("/me/account", &[("csrf_token", &csrf), ("csrf_token", &csrf), ("account", "x.y")]).await;
    assert_eq!(r.status, 400, "{}", r.body);

    let r = b
        .post("/me/account", &[("csrf_token", &csrf), ("account", " Ming.W "), ("email", " ming.w@example.gov.tw\n")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = b.get("/me").await;
    assert_eq!(page.input("account").as_deref(), Some("Ming.W"));
    assert_eq!(page.input("email").as_deref(), Some("ming.w@example.gov.tw"));
}
