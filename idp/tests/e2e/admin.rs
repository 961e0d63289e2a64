//! Operator pages: refused to everyone but operators, and every operator action audited.

use diesel::prelude::*;

use crate::harness::*;
use crate::portal::{account_id, signed_in};

const PW_MING: &str = "Civil-Service-2026";
const PW_MEIHUA: &str = "Personnel-Office-2026";
const RP: &str = "http://127.0.0.1:9/callback";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A running IdP with both standard people activated and 李美華 made an operator; returns her
/// signed-in browser and account id.
async fn with_operator() -> (Idp, Browser, String) {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    idp.activate(MING, "ming.wang", PW_MING).await;
    idp.activate(MEIHUA, "meihua.lee", PW_MEIHUA).await;
    let id = account_id(&idp, "李美華");
    {
        let db = idp.db();
        let mut c = db.get().unwrap();
        idp::accounts::roles::grant(&mut c, &id, "operator", "test", now()).unwrap();
    }
    let b = signed_in(&idp, "meihua.lee", PW_MEIHUA).await;
    (idp, b, id)
}

/// Posts a form from `page`, with the CSRF token the page carries.
async fn submit(b: &Browser, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
    let p = b.get(page).await;
    assert_eq!(p.status, 200, "{page}: {}", p.body);
    let csrf = p.input("csrf_token").unwrap();
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    b.post(action, &form).await
}

/// The value of a read-only field on a page (secrets shown once).
fn shown(page: &Page, id: &str) -> String {
    let marker = format!("id=\"{id}\" readonly value=\"");
    let at = page.body.find(&marker).unwrap_or_else(|| panic!("no {id}: {}", page.body)) + marker.len();
    page.body[at..].split('"').next().unwrap().to_string()
}

/// Whether a secret authenticates the client at /token (a bogus code then gives invalid_grant).
pub(crate) async fn secret_works(idp: &Idp, client_id: &str, secret: &str) -> bool {
    let r = reqwest::Client::new()
        .post(format!("{}/token", idp.base))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", "bogus"), ("redirect_uri", RP)])
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        400 => true,
        401 => false,
        s => panic!("unexpected {s}"),
    }
}

#[tokio::test]
async fn operator_pages_refuse_everyone_else() {
    let (idp, _operator, _) = with_operator().await;
    let anonymous = Browser::new(&idp.base);
    assert_eq!(anonymous.get("/admin/clients").await.location.as_deref(), Some("/login"));
    let ming = signed_in(&idp, "ming.wang", PW_MING).await;
    for path in ["/admin", "/admin/clients", "/admin/clients/new", "/admin/audit", "/admin/keys", "/admin/imports"] {
        let r = ming.get(path).await;
        assert_eq!(r.status, 403, "{path}");
        assert!(r.body.contains("您沒有使用此功能的權限"));
    }
    let csrf = ming.get("/login").await.input("csrf_token").unwrap();
    let r = ming.post("/admin/clients", &[("csrf_token", &csrf), ("name", "x"), ("redirect_uris", RP)]).await;
    assert_eq!(r.status, 403);
    let r = ming.post("/admin/keys/rotate", &[("csrf_token", &csrf)]).await;
    assert_eq!(r.status, 403);
    let csv = "code,name,parent_code,oid\nB1,X,,\n";
    let r = ming.post("/admin/imports/agencies", &[("csrf_token", &csrf), ("csv", csv)]).await;
    assert_eq!(r.status, 403);
    assert!(!ming.get("/").await.body.contains("href=\"/admin\""), "no link for non-operators");
    // The probes are on record.
    let n = idp.audit_count("admin.access", "forbidden");
    assert!(n >= 8, "{n}");
}

#[tokio::test]
async fn operators_create_edit_rotate_disable_and_delete_clients() {
    let (idp, op, operator) = with_operator().await;
    assert!(op.get("/").await.body.contains("href=\"/admin\""));

    // Without the CSRF token nothing happens.
    let r = op.post("/admin/clients", &[("name", "x"), ("redirect_uris", RP)]).await;
    assert_eq!(r.status, 403);
    // A bad redirect URI comes back with the problem and what was typed.
    let r = submit(
        &op,
        "/admin/clients/new",
        "/admin/clients",
        &[("name", "人事資料校對"), ("redirect_uris", "http://example.com/cb"), ("audience", "everyone")],
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("plain http is only allowed for localhost"), "{}", r.body);
    assert_eq!(r.input("name").as_deref(), Some("人事資料校對"));

    let r = submit(
        &op,
        "/admin/clients/new",
        "/admin/clients",
        &[
            ("client_id", "mydata"),
            ("name", "人事資料校對"),
            ("redirect_uris", &format!("{RP}\r\nhttp://127.0.0.1:9/other")),
            ("audience", "everyone"),
            ("portal_category", "B.人事資料服務"),
            ("portal_description", "校對個人資料"),
            ("portal_url", "https://mydata.example.gov.tw/"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = shown(&r, "secret");
    assert!(secret.len() >= 32);
    assert!(secret_works(&idp, "mydata", &secret).await);
    // Shown once: neither the list nor the client's page has it.
    assert!(!op.get("/admin/clients").await.body.contains(&secret));
    let edit = op.get("/admin/clients/mydata").await;
    assert_eq!(edit.status, 200);
    assert!(!edit.body.contains(&secret));
    assert!(op.get("/apps").await.body.contains("人事資料校對"));

    // Edit: HR staff only, consent required; 王小明 loses it from his portal.
    let r = submit(
        &op,
        "/admin/clients/mydata",
        "/admin/clients/mydata",
        &[
            ("name", "人事資料校對網站"),
            ("redirect_uris", RP),
            ("audience", "hr-staff"),
            ("portal_category", "B.人事資料服務"),
            ("scope", "openid profile"),
            ("consent_required", "1"),
            ("resource_server", "1"),
            ("resource_uri", "https://mydata-api.example.gov.tw/v1"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    {
        let db = idp.db();
        let mut c = db.get().unwrap();
        let client = idp::oidc::clients::get(&mut c, "mydata").unwrap().unwrap();
        assert_eq!(client.client_name, "人事資料校對網站");
        assert_eq!(client.redirect_uris, vec![RP.to_string()]);
        assert_eq!(client.audience, idp::oidc::clients::Audience::HrStaff);
        assert!(client.consent_required);
        assert!(client.resource_server && !client.client_credentials_allowed);
        assert_eq!(client.scope, vec!["openid", "profile"]);
        assert_eq!(client.resource_uri.as_deref(), Some("https://mydata-api.example.gov.tw/v1"));
        assert!(!client.fapi2);
    }
    // The FAPI 2.0 profile is refused for a client that authenticates with a secret, on the page
    // as on the command line; nothing of the form is kept.
    let r = submit(
        &op,
        "/admin/clients/mydata",
        "/admin/clients/mydata",
        &[("name", "人事資料校對網站"), ("redirect_uris", RP), ("audience", "hr-staff"), ("fapi2", "1")],
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("private_key_jwt"), "{}", r.body);
    {
        let db = idp.db();
        let mut c = db.get().unwrap();
        let client = idp::oidc::clients::get(&mut c, "mydata").unwrap().unwrap();
        assert!(!client.fapi2 && client.resource_server, "a refused form changed the client");
    }
    let ming = signed_in(&idp, "ming.wang", PW_MING).await;
    assert!(!ming.get("/apps").await.body.contains("人事資料校對網站"));

    // Rotate: the new secret is shown once, the old one is refused at /token.
    let r = submit(&op, "/admin/clients/mydata", "/admin/clients/mydata/secret", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rotated = shown(&r, "secret");
    assert_ne!(rotated, secret);
    assert!(!secret_works(&idp, "mydata", &secret).await);
    assert!(secret_works(&idp, "mydata", &rotated).await);
    // With an overlap the old one keeps working beside the new one, and the page says until when.
    assert!(op.get("/admin/clients/mydata").await.body.contains("name=\"old_secret_valid_for\""));
    let r =
        submit(&op, "/admin/clients/mydata", "/admin/clients/mydata/secret", &[("old_secret_valid_for", "1h")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("舊密鑰有效至") && r.body.contains("id=\"old-valid-until\""), "{}", r.body);
    let overlapping = shown(&r, "secret");
    assert!(secret_works(&idp, "mydata", &rotated).await && secret_works(&idp, "mydata", &overlapping).await);
    let r =
        submit(&op, "/admin/clients/mydata", "/admin/clients/mydata/secret", &[("old_secret_valid_for", "99d")]).await;
    assert_eq!(r.status, 400, "an overlap beyond 30 days is refused");
    assert!(secret_works(&idp, "mydata", &overlapping).await, "and changed nothing");

    // Disable: /authorize refuses it and it leaves the portal; enable brings it back.
    let authorize = "/authorize?client_id=mydata&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=code&scope=openid";
    let r = submit(&op, "/admin/clients/mydata", "/admin/clients/mydata/state", &[("disabled", "1")]).await;
    assert_eq!(r.status, 303);
    let r = op.get(authorize).await;
    assert_eq!(r.status, 400, "{:?}", r.location);
    assert!(!secret_works(&idp, "mydata", &rotated).await);
    assert!(!op.get("/apps").await.body.contains("人事資料校對網站"));
    let r = submit(&op, "/admin/clients/mydata", "/admin/clients/mydata/state", &[("disabled", "0")]).await;
    assert_eq!(r.status, 303);
    assert_eq!(op.get(authorize).await.status, 302);

    // Delete needs the confirmation.
    let r = submit(&op, "/admin/clients/mydata", "/admin/clients/mydata/delete", &[]).await;
    assert_eq!(r.status, 422);
    let r = submit(&op, "/admin/clients/mydata", "/admin/clients/mydata/delete", &[("confirm", "1")]).await;
    assert_eq!(r.status, 303);
    assert_eq!(op.get("/admin/clients/mydata").await.status, 404);

    // Every step is on record under the operator.
    let log = op.get("/admin/audit?client_id=mydata").await.body;
    let rows = audit_rows(&log);
    for event in
        ["client.create", "client.update", "client.rotate_secret", "client.disable", "client.enable", "client.delete"]
    {
        assert!(
            rows.iter().any(|r| r.event == event
                && r.outcome == "success"
                && r.actor == operator
                && r.client_id == "mydata"
                && !r.at.is_empty()),
            "{event} by the operator missing: {rows:?}"
        );
    }
    assert!(!log.contains(&rotated) && !log.contains(&secret));
}

#[tokio::test]
async fn registration_tokens_are_shown_once_and_work() {
    let (idp, op, _) = with_operator().await;
    let r = submit(&op, "/admin/registration-tokens", "/admin/registration-tokens", &[("ttl_hours", "1")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = shown(&r, "token");
    let register = |t: String| {
        let url = format!("{}/register", idp.base);
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(t)
                .json(&serde_json::json!({ "redirect_uris": [RP], "client_name": "dyn" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(register(token.clone()).await, 201);
    assert_eq!(register(token).await, 401, "single use");
}

#[tokio::test]
async fn operators_publish_edit_and_expire_announcements() {
    let (idp, op, _) = with_operator().await;
    let anonymous = Browser::new(&idp.base);
    let r = submit(&op, "/admin/announcements", "/admin/announcements", &[("title", ""), ("body", "x")]).await;
    assert_eq!(r.status, 422);
    let r = submit(
        &op,
        "/admin/announcements",
        "/admin/announcements",
        &[("title", "系統維護公告"), ("body", "本週六停機維護。"), ("expires_at", "2026-01-01T00:00")],
    )
    .await;
    assert_eq!(r.status, 422, "an expiry before publication is refused");
    let r = submit(
        &op,
        "/admin/announcements",
        "/admin/announcements",
        &[("title", "系統維護公告"), ("body", "本週六停機維護。")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(anonymous.get("/").await.body.contains("系統維護公告"));
    // A scheduled one waits.
    let r = submit(
        &op,
        "/admin/announcements",
        "/admin/announcements",
        &[("title", "明年的公告"), ("published_at", "2099-01-01T08:00")],
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(!anonymous.get("/").await.body.contains("明年的公告"));

    let id: String = {
        use idp::store::db::schema::announcements;
        let db = idp.db();
        let mut c = db.get().unwrap();
        announcements::table
            .filter(announcements::title.eq("系統維護公告"))
            .select(announcements::id)
            .first(&mut *c)
            .unwrap()
    };
    let edit = format!("/admin/announcements/{id}");
    let r = submit(&op, &edit, &edit, &[("title", "系統維護公告（更新）"), ("body", "改為週日。")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(anonymous.get("/").await.body.contains("改為週日"));
    let r = submit(&op, &edit, &format!("{edit}/expire"), &[]).await;
    assert_eq!(r.status, 303);
    assert!(!anonymous.get("/").await.body.contains("系統維護公告"));
    let rows = audit_rows(&op.get("/admin/audit?event=announcement.expire").await.body);
    assert!(rows.iter().any(|r| r.event == "announcement.expire" && r.detail.contains(&id)), "{rows:?}");
}

#[tokio::test]
async fn imports_report_problems_by_line_and_apply_nothing() {
    let (idp, op, _) = with_operator().await;
    let bad = "national_id,name,agency_code,unit,person_category,concurrent_duty,status,email\n\
D123456782,林小華,A21000000I,資訊處,01,,active,hua@example.gov.tw\n\
A123456788,錯號碼,A21000000I,資訊處,01,,active,\n\
E123456783,張三,NOPE,資訊處,01,,active,\n";
    let r = submit(&op, "/admin/imports", "/admin/imports/personnel", &[("csv", bad)]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("<td>3</td>") && r.body.contains("<td>4</td>"), "{}", r.body);
    assert!(!r.body.contains("<td>2</td>"));
    assert!(!r.body.contains("A123456788"), "national IDs are never echoed");
    let cli = idp.cli(&["users", "reset-password", "--national-id", "D123456782", "--email", "hua@example.gov.tw"]);
    assert!(!cli.status.success(), "the valid row was not applied either");

    let good = "national_id,name,agency_code,unit,person_category,concurrent_duty,status,email\n\
D123456782,林小華,A21000000I,資訊處,01,,active,hua@example.gov.tw\n";
    let r = submit(&op, "/admin/imports", "/admin/imports/personnel", &[("csv", good)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<dt>新增</dt><dd>1</dd>"), "{}", r.body);
    idp.cli_ok(&["users", "reset-password", "--national-id", "D123456782", "--email", "hua@example.gov.tw"]);

    let r = submit(&op, "/admin/imports", "/admin/imports/agencies", &[("csv", "code,name\nX,Y\n")]).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("<td>1</td>"));
    let rows = audit_rows(&op.get("/admin/audit?event=personnel.import").await.body);
    assert!(rows.iter().any(|r| r.event == "personnel.import" && r.outcome == "rejected"), "{rows:?}");
    assert!(rows.iter().any(|r| r.event == "personnel.import" && r.outcome == "success"), "{rows:?}");
}

#[tokio::test]
async fn operators_list_and_rotate_signing_keys() {
    let (_idp, op, _) = with_operator().await;
    let before = op.get("/admin/keys").await;
    assert_eq!(before.status, 200);
    assert!(before.body.contains("ES256") && before.body.contains("簽章中"));
    let r = submit(&op, "/admin/keys", "/admin/keys/rotate", &[("alg", "ES256")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("待啟用"), "the new key waits: {}", r.body);
    let rows = audit_rows(&op.get("/admin/audit?event=key.rotate").await.body);
    assert!(rows.iter().any(|r| r.event == "key.rotate" && r.detail.contains("ES256: new key")), "{rows:?}");
}

#[tokio::test]
async fn the_audit_log_finds_operator_actions_pages_and_never_shows_a_national_id() {
    let (idp, op, operator) = with_operator().await;
    let r = submit(&op, "/admin/announcements", "/admin/announcements", &[("title", "公告")]).await;
    assert_eq!(r.status, 303);
    {
        use idp::store::db::schema::audit_events;
        let db = idp.db();
        let mut c = db.get().unwrap();
        // A careless detail from some future caller, and enough events for three pages.
        let mut rows = vec![(
            "careless".to_string(),
            now() - 5,
            "password.reset".to_string(),
            "for B223344554 by phone".to_string(),
        )];
        for i in 0..120 {
            rows.push((format!("bulk{i}"), now() - 10 - i, "bulk.event".into(), String::new()));
        }
        for (id, at, event, detail) in rows {
            diesel::insert_into(audit_events::table)
                .values((
                    audit_events::id.eq(id),
                    audit_events::at.eq(at),
                    audit_events::event.eq(event),
                    audit_events::outcome.eq("success"),
                    audit_events::actor.eq("cli"),
                    audit_events::detail.eq(detail),
                ))
                .execute(&mut *c)
                .unwrap();
        }
    }
    let mine = audit_rows(&op.get(&format!("/admin/audit?account_id={operator}")).await.body);
    assert!(mine.iter().any(|r| r.event == "announcement.create" && r.actor == operator), "{mine:?}");
    assert!(!mine.iter().any(|r| r.event == "bulk.event"));

    let all = op.get("/admin/audit").await.body;
    for nid in [MING, MEIHUA, CHIH] {
        assert!(!all.contains(nid), "{nid} shown in full");
    }
    let careless = op.get("/admin/audit?event=password.reset").await.body;
    assert!(careless.contains("B22*****54"), "{careless}");
    assert!(!careless.contains("B223344554"));

    // Newest first, fifty a page.
    let p1 = op.get("/admin/audit?event=bulk.event").await.body;
    assert!(p1.find(">bulk.event<").is_some());
    assert_eq!(p1.matches("<td>bulk.event</td>").count(), 50);
    assert!(p1.contains("rel=\"next\""));
    let p3 = op.get("/admin/audit?event=bulk.event&page=3").await.body;
    assert_eq!(p3.matches("<td>bulk.event</td>").count(), 20);
    assert!(!p3.contains("rel=\"next\"") && p3.contains("rel=\"prev\""));
    // A date range: yesterday and today (Taipei) have them all; days long past have none.
    let today = idp::portal::taipei::format(now())[..10].to_string();
    let yesterday = idp::portal::taipei::format(now() - 86_400)[..10].to_string();
    let r = op.get(&format!("/admin/audit?event=bulk.event&from={yesterday}&to={today}")).await.body;
    assert_eq!(r.matches("<td>bulk.event</td>").count(), 50);
    let r = op.get("/admin/audit?event=bulk.event&from=2020-01-01&to=2020-01-02").await.body;
    assert_eq!(r.matches("<td>bulk.event</td>").count(), 0);
    // Searching is itself recorded.
    let r = audit_rows(&op.get("/admin/audit?event=audit.search").await.body);
    assert!(r.iter().any(|r| r.event == "audit.search" && r.actor == operator), "{r:?}");
}

/// A client's stored settings, without what differs between any two clients (id, times).
fn settings(idp: &Idp, client_id: &str) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&idp.cli_ok(&["clients", "show", client_id, "--json"])).unwrap();
    let o = v.as_object_mut().unwrap();
    // `client_id_issued_at` is when each was made, a second apart at times.
    for k in ["client_id", "client_id_issued_at", "created_at", "updated_at"] {
        o.remove(k);
    }
    v
}

#[tokio::test]
async fn a_client_made_on_the_command_line_is_the_one_the_operator_page_makes() {
    let (idp, op, _) = with_operator().await;
    // The blank form as a browser sends it: the default radio, select option and scope text.
    let default_scope = op.get("/admin/clients/new").await.input("scope").unwrap();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: [Case; 4] = [
        (&[], &[]),
        // Scopes as typed, on both: nothing added, any white space separates.
        (&["--scope", "profile  email"], &[("scope", "profile  email")]),
        (&["--public"], &[("token_endpoint_auth_method", "none")]),
        (
            &["--require-par", "--dpop-bound-access-tokens"],
            &[("require_pushed_authorization_requests", "1"), ("dpop_bound_access_tokens", "1")],
        ),
    ];
    for (i, (options, fields)) in cases.iter().enumerate() {
        let (cli_id, page_id) = (format!("cli-{i}"), format!("page-{i}"));
        let mut args = vec!["clients", "create", "--name", "同一應用", "--redirect-uri", RP, "--client-id", &cli_id];
        args.extend_from_slice(options);
        idp.cli_ok(&args);
        let mut form = vec![
            ("client_id", page_id.as_str()),
            ("name", "同一應用"),
            ("redirect_uris", RP),
            ("audience", "everyone"),
            ("scope", default_scope.as_str()),
            ("token_endpoint_auth_method", "client_secret_basic"),
        ];
        for (k, v) in fields.iter() {
            form.retain(|(f, _)| f != k);
            form.push((k, v));
        }
        let r = submit(&op, "/admin/clients/new", "/admin/clients", &form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(settings(&idp, &cli_id), settings(&idp, &page_id), "case {i}: {options:?}");
    }
}
