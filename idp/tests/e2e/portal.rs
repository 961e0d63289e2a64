//! The portal: home figures and announcements, and 應用系統 by audience and category.

use diesel::prelude::*;

use crate::harness::*;

const PW_MING: &str = "Civil-Service-2026";
const PW_MEIHUA: &str = "Personnel-Office-2026";
const RP: &str = "http://127.0.0.1:9/callback";

/// A figure of the home page, by its label.
pub fn figure(body: &str, label: &str) -> i64 {
    let marker = format!("<dt>{label}</dt><dd>");
    let at = body.find(&marker).unwrap_or_else(|| panic!("no {label} on: {body}")) + marker.len();
    body[at..].split('<').next().unwrap().trim().parse().unwrap()
}

fn figures(body: &str) -> (i64, i64, i64) {
    (figure(body, "目前線上人數"), figure(body, "今日總計人數"), figure(body, "累積上線人數"))
}

/// The opaque account id of a person in the standard register, by name.
pub fn account_id(idp: &Idp, name: &str) -> String {
    use idp::store::db::schema::{accounts, people};
    let db = idp.db();
    let mut c = db.get().unwrap();
    accounts::table.inner_join(people::table).filter(people::name.eq(name)).select(accounts::id).first(&mut *c).unwrap()
}

pub async fn signed_in(idp: &Idp, account: &str, password: &str) -> Browser {
    let b = Browser::new(&idp.base);
    let r = b.sign_in_at("/login", account, password).await;
    assert_eq!(r.status, 303, "sign-in of {account}: {}", r.body);
    b
}

async fn sign_out(b: &Browser) {
    let page = b.get("/logout").await;
    let csrf = page.input("csrf_token").unwrap();
    let r = b.post("/logout", &[("csrf_token", &csrf), ("confirm", "yes")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn home_figures_follow_sign_ins_and_sign_outs() {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    let anonymous = Browser::new(&idp.base);
    assert_eq!(figures(&anonymous.get("/").await.body), (0, 0, 0));

    // Activation starts with a one-time-password sign-in: it counts, but opens no session.
    idp.activate(MING, "ming.wang", PW_MING).await;
    idp.activate(MEIHUA, "meihua.lee", PW_MEIHUA).await;
    assert_eq!(figures(&anonymous.get("/").await.body), (0, 2, 2));

    let ming = signed_in(&idp, "ming.wang", PW_MING).await;
    assert_eq!(figures(&anonymous.get("/").await.body), (1, 2, 3));
    let meihua = signed_in(&idp, "meihua.lee", PW_MEIHUA).await;
    // The same person on a second browser is still one person online.
    let ming_again = signed_in(&idp, MING, PW_MING).await;
    let home = meihua.get("/").await.body;
    assert_eq!(figures(&home), (2, 2, 5));
    assert!(home.contains("李美華"), "{home}");

    sign_out(&ming).await;
    assert_eq!(figures(&anonymous.get("/").await.body).0, 2, "Ming still has a session elsewhere");
    sign_out(&meihua).await;
    assert_eq!(figures(&anonymous.get("/").await.body), (1, 2, 5));

    // A session that has run out is not online; a sign-in of yesterday (Taipei) is not today's,
    // and failures never count.
    {
        use idp::store::db::schema::{audit_events, sessions};
        let db = idp.db();
        let mut c = db.get().unwrap();
        diesel::update(sessions::table).set(sessions::expires_at.eq(now() - 1)).execute(&mut *c).unwrap();
        let yesterday = idp::portal::taipei::start_of_day(now()) - 60;
        for (id, outcome, at) in [("old", "success", yesterday), ("bad", "failure", now())] {
            diesel::insert_into(audit_events::table)
                .values((
                    audit_events::id.eq(id),
                    audit_events::at.eq(at),
                    audit_events::event.eq("login.password"),
                    audit_events::outcome.eq(outcome),
                    audit_events::account_id.eq("someone-else"),
                    audit_events::detail.eq(""),
                ))
                .execute(&mut *c)
                .unwrap();
        }
    }
    assert_eq!(figures(&anonymous.get("/").await.body), (0, 2, 6));
    drop(ming_again);
}

#[tokio::test]
async fn announcements_appear_when_published_and_leave_when_expired() {
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    let t = now();
    let ids: Vec<String> = {
        let db = idp.db();
        let mut c = db.get().unwrap();
        [
            ("older notice 舊公告", t - 3600, None),
            ("newest notice 新公告", t - 60, None),
            ("scheduled notice", t + 3600, None),
            ("expired notice", t - 7200, Some(t - 10)),
        ]
        .into_iter()
        .map(|(title, published_at, expires_at)| {
            let input = idp::portal::AnnouncementInput {
                title: title.into(),
                body: "內容 <b>not markup</b>".into(),
                published_at,
                expires_at,
            };
            idp::portal::create_announcement_by(&mut c, input, &idp::audit::Actor::named("test"), t).unwrap()
        })
        .collect()
    };
    let b = Browser::new(&idp.base);
    let home = b.get("/").await.body;
    assert!(home.contains("最新公告"));
    let (older, newest) = (home.find("older notice").unwrap(), home.find("newest notice").unwrap());
    assert!(newest < older, "newest first");
    assert!(!home.contains("scheduled notice"));
    assert!(!home.contains("expired notice"));
    assert!(home.contains("&lt;b&gt;not markup"), "text is escaped");

    {
        let db = idp.db();
        let mut c = db.get().unwrap();
        assert!(idp::portal::expire_announcement_by(&mut c, &ids[1], &idp::audit::Actor::named("test"), now()).unwrap());
    }
    let home = b.get("/").await.body;
    assert!(!home.contains("newest notice"));
    assert!(home.contains("older notice"));
    // English second.
    let en = b.get("/?ui_locales=en").await.body;
    assert!(en.contains("Latest announcements") && en.contains("Signed in now"), "{en}");
}

fn create_app(idp: &Idp, id: &str, name: &str, audience: &str, category: Option<&str>) -> (String, String) {
    let mut args = vec![
        "clients",
        "create",
        "--client-id",
        id,
        "--name",
        name,
        "--redirect-uri",
        RP,
        "--audience",
        audience,
        "--portal-description",
        "說明文字",
        "--portal-url",
        "https://apps.example.gov.tw/start",
        "--json",
    ];
    if let Some(c) = category {
        args.extend(["--portal-category", c]);
    }
    let v: serde_json::Value = serde_json::from_str(&idp.cli_ok(&args)).unwrap();
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn applications_follow_audience_category_and_state() {
    let mut idp = Idp::new();
    idp.import_register();
    create_app(&idp, "elearning", "e等公務園", "everyone", Some("D.其他人事總處業務"));
    create_app(&idp, "webhr", "WebHR人力資源管理資訊系統", "hr-staff", Some("A.人事資料填報及考核"));
    create_app(&idp, "mydata", "公務人員個人資料校對網站", "agency:A21000000I", Some("B.人事資料服務"));
    create_app(&idp, "other", "他機關系統", "agency:X99000000A", Some("非人事總處機關及系統"));
    create_app(&idp, "local", "本機關差勤", "everyone", Some("非人事總處機關及系統"));
    create_app(&idp, "hidden", "未分類系統", "everyone", None);
    create_app(&idp, "retired", "停用系統", "everyone", Some("B.人事資料服務"));
    {
        let db = idp.db();
        let mut c = db.get().unwrap();
        assert!(idp::oidc::clients::set_disabled(&mut c, "retired", true, now()).unwrap());
    }
    idp.start().await;
    assert_eq!(Browser::new(&idp.base).get("/apps").await.location.as_deref(), Some("/login"));
    idp.activate(MING, "ming.wang", PW_MING).await;
    idp.activate(MEIHUA, "meihua.lee", PW_MEIHUA).await;

    let ming = signed_in(&idp, "ming.wang", PW_MING).await.get("/apps").await;
    assert_eq!(ming.status, 200);
    assert!(!ming.body.contains("WebHR"), "HR-only for HR staff: {}", ming.body);
    assert!(ming.body.contains("公務人員個人資料校對網站"), "own agency");
    assert!(!ming.body.contains("他機關系統"), "another agency's");
    assert!(!ming.body.contains("未分類系統") && !ming.body.contains("停用系統"));
    assert!(ming.body.contains("https://apps.example.gov.tw/start") && ming.body.contains("說明文字"));

    let meihua = signed_in(&idp, "meihua.lee", PW_MEIHUA).await;
    let page = meihua.get("/apps").await.body;
    let pos = |s: &str| page.find(s).unwrap_or_else(|| panic!("{s} missing: {page}"));
    assert!(pos("A.人事資料填報及考核") < pos("B.人事資料服務"));
    assert!(pos("B.人事資料服務") < pos("D.其他人事總處業務"));
    assert!(pos("D.其他人事總處業務") < pos("非人事總處機關及系統"));
    assert!(pos("WebHR") > pos("A.人事資料填報及考核"));
    assert!(!page.contains("他機關系統"));
    // HR staff get the delegation link; nobody here is an operator.
    assert!(page.contains("href=\"/hr/reset\"") && !page.contains("href=\"/admin\""), "{page}");
    assert!(!ming.body.contains("href=\"/hr/reset\""));
}

fn authorize_url(client_id: &str) -> String {
    format!(
        "/authorize?client_id={client_id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&response_type=code&scope=openid&state=s1"
    )
}

#[tokio::test]
async fn people_outside_an_audience_cannot_sign_in_to_it() {
    let mut idp = Idp::new();
    idp.import_register();
    create_app(&idp, "webhr", "WebHR", "hr-staff", Some("A.人事資料填報及考核"));
    create_app(&idp, "other", "他機關系統", "agency:X99000000A", Some("非人事總處機關及系統"));
    idp.start().await;
    idp.activate(MING, "ming.wang", PW_MING).await;
    idp.activate(MEIHUA, "meihua.lee", PW_MEIHUA).await;

    // 王小明 (not HR staff) asks for the HR-only application: access_denied back to it.
    let b = Browser::new(&idp.base);
    let login = b.get(&authorize_url("webhr")).await.location.unwrap();
    let r = b.sign_in_at(&login, "ming.wang", PW_MING).await;
    let loc = r.location.unwrap();
    assert!(loc.starts_with(RP), "{loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("s1"));
    // With a session already open too.
    let loc = b.get(&authorize_url("webhr")).await.location.unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));

    // 李美華 (HR staff) gets a code; another agency's application still refuses her.
    let m = signed_in(&idp, "meihua.lee", PW_MEIHUA).await;
    let loc = m.get(&authorize_url("webhr")).await.location.unwrap();
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    let loc = m.get(&authorize_url("other")).await.location.unwrap();
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
}
