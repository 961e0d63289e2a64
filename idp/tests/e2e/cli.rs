//! The operator's command line.

use crate::harness::*;

#[test]
fn invalid_register_rows_are_reported_by_line_and_nothing_is_imported() {
    let idp = Idp::new();
    let a = idp.file("agencies.csv", AGENCIES.as_bytes());
    idp.cli_ok(&["agencies", "import", &a]);
    let mut bad = String::from("national_id,name,agency_code,unit,person_category,concurrent_duty,status,email\n");
    bad.push_str("A123456789,王小明,A21000000I,資訊處,01,,active,ming@example.gov.tw\n"); // line 2: fine
    bad.push_str("A123456788,錯誤,A21000000I,資訊處,01,,active,\n"); // 3: check digit
    bad.push_str("B223344554,李美華,Z99999999Z,人事室,08,,active,\n"); // 4: unknown agency
    bad.push_str("C123456709,陳志強,A21000000I,秘書室,01,,retired,\n"); // 5: bad status
    bad.push_str("F131104093,林,A21000000I,秘書室\n"); // 6: columns
    let mut bytes = bad.into_bytes();
    bytes.extend_from_slice(b"F131104093,\xff\xfe,A21000000I,x,01,,active,\n"); // 7: not UTF-8
    let f = idp.file("bad.csv", &bytes);
    let out = idp.cli(&["personnel", "import", &f]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for line in ["line 3:", "line 4:", "line 5:", "line 6:", "line 7:"] {
        assert!(err.contains(line), "missing {line} in {err}");
    }
    assert!(!err.contains("line 2:"));
    assert!(!err.contains("A123456788"), "national IDs are not echoed");
    // Nothing was applied: the valid row on line 2 is not in the register.
    let out = idp.cli(&["users", "reset-password", "--national-id", MING, "--email", "ming@example.gov.tw"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no one with this national ID is in the personnel register"), "{err}");
}

#[test]
fn agency_imports_check_parents_and_are_idempotent() {
    let idp = Idp::new();
    let a = idp.file("agencies.csv", AGENCIES.as_bytes());
    assert!(idp.cli_ok(&["agencies", "import", &a]).contains("inserted 2"));
    assert!(idp.cli_ok(&["agencies", "import", &a]).contains("unchanged 2"));
    let bad = idp.file("bad.csv", b"code,name,parent_code,oid\nX1,Orphan,NOPE,\nX2,,,\nX3,Bad oid,,abc\n");
    let out = idp.cli(&["agencies", "import", &bad]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2:") && err.contains("line 3:") && err.contains("line 4:"), "{err}");
    let wrong_header = idp.file("h.csv", b"id,name\n");
    assert!(!idp.cli(&["agencies", "import", &wrong_header]).status.success());
}

#[test]
fn reset_password_mails_a_one_time_password_and_never_prints_it() {
    let idp = Idp::new();
    idp.import_register();
    let out = idp.cli_ok(&["users", "reset-password", "--national-id", MING, "--email", "ming@example.gov.tw"]);
    let otp = newest_one_time_password(&idp.outbox());
    assert!(otp.chars().count() >= 12);
    assert!(!out.contains(&otp));
    assert!(!out.contains(MING), "the national ID is masked: {out}");
    for (nid, why) in [("D123456780", "register"), (CHIH, "separated")] {
        let nid = idp::national_id::NationalId::with_check_digit(&nid[..9]).unwrap();
        let out = idp.cli(&["users", "reset-password", "--national-id", nid.expose(), "--email", "x@example.gov.tw"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = idp.cli(&["users", "reset-password", "--national-id", "A123456788", "--email", "x@example.gov.tw"]);
    assert!(!out.status.success());
    let out = idp.cli(&["users", "reset-password", "--national-id", MING, "--email", "not-an-address"]);
    assert!(!out.status.success());
}

#[test]
fn clients_are_created_listed_shown_and_deleted() {
    let idp = Idp::new();
    let (id, secret) = idp.create_client("https://app.example.gov.tw/cb", "https://app.example.gov.tw/");
    assert!(secret.len() >= 40);
    assert!(idp.cli_ok(&["clients", "list"]).contains(&id));
    let shown = idp.cli_ok(&["clients", "show", &id]);
    assert!(shown.contains("https://app.example.gov.tw/cb"));
    assert!(!shown.contains(&secret), "the secret is shown once only");
    let public = idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "SPA",
        "--redirect-uri",
        "http://localhost:3000/cb",
        "--public",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&public).unwrap();
    assert!(v.get("client_secret").is_none());
    assert!(!idp
        .cli(&["clients", "create", "--name", "Bad", "--redirect-uri", "http://evil.example/cb"])
        .status
        .success());
    assert!(!idp
        .cli(&["clients", "create", "--name", "Bad", "--redirect-uri", "https://a.example/cb#frag"])
        .status
        .success());
    idp.cli_ok(&["clients", "delete", &id]);
    assert!(!idp.cli(&["clients", "show", &id]).status.success());
}

#[test]
fn configuration_errors_name_the_key() {
    let idp = Idp::with_env(&[("IDP_HTTP__BINDD", "x")]);
    let out = idp.cli(&["migrate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bindd"), "{}", String::from_utf8_lossy(&out.stderr));
    let idp = Idp::with_env(&[("IDP_CACHE__URL", "memcached://x")]);
    let out = idp.cli(&["migrate"]);
    assert!(!out.status.success(), "an unknown cache scheme is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cache.url"));
    let idp = Idp::new();
    let file = idp.file("idp.toml", b"issuer = \"http://127.0.0.1:1\"\n[mail]\nsmtp = \"x\"\n");
    let out = idp.cli(&["--config", &file, "migrate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("smtp"));
    let good = idp.file("good.toml", b"[login]\none_time_password_ttl = \"24h\"\n");
    idp.cli_ok(&["--config", &good, "migrate"]);
}

#[test]
fn a_failed_delivery_leaves_no_usable_password() {
    use diesel::prelude::*;
    let closed = closed_port();
    let url = format!("smtp://127.0.0.1:{closed}");
    let idp = Idp::with_env(&[("IDP_MAIL__SMTP_URL", url.as_str())]);
    idp.import_register();
    let out = idp.cli(&["users", "reset-password", "--national-id", MING, "--email", "ming@example.gov.tw"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mail"));
    let db = idp.db();
    let mut conn = db.get().unwrap();
    let stored: i64 = idp::store::db::schema::one_time_passwords::table.count().get_result(&mut *conn).unwrap();
    assert_eq!(stored, 0);
}

/// `(actor, event, outcome)` of every audit event, oldest first.
fn audit_trail(idp: &Idp) -> Vec<(Option<String>, String, String)> {
    use diesel::prelude::*;
    use idp::store::db::schema::audit_events::dsl::*;
    let db = idp.db();
    let mut conn = db.get().unwrap();
    audit_events.order((at.asc(), id.asc())).select((actor, event, outcome)).load(&mut *conn).unwrap()
}

#[test]
fn every_change_made_on_the_command_line_is_audited_with_its_actor_and_outcome() {
    let idp = Idp::new();
    idp.import_register();
    let bad = idp.file("bad.csv", b"code,name,parent_code,oid\nX1,Orphan,NOPE,\n");
    assert!(!idp.cli(&["agencies", "import", &bad]).status.success());
    idp.cli_ok(&["users", "reset-password", "--national-id", MING, "--email", "ming@example.gov.tw"]);
    assert!(!idp
        .cli(&["users", "reset-password", "--national-id", CHIH, "--email", "x@example.gov.tw"])
        .status
        .success());
    idp.cli_ok(&["users", "grant", "--national-id", MING, "--role", "helpdesk"]);
    idp.cli_ok(&["users", "grant", "--national-id", MING, "--role", "helpdesk"]);
    idp.cli_ok(&["users", "revoke-role", "--national-id", MING, "--role", "operator"]);
    assert!(!idp.cli(&["users", "grant", "--national-id", CHIH, "--role", "operator"]).status.success());
    let (id, _) = idp.create_client("https://app.example.gov.tw/cb", "https://app.example.gov.tw/");
    idp.cli_ok(&["clients", "update", &id, "--audience", "hr-staff"]);
    idp.cli_ok(&["clients", "delete", &id]);
    idp.cli_ok(&["clients", "issue-registration-token"]);
    idp.cli_ok(&["keys", "rotate", "--alg", "ES256"]);
    let trail = audit_trail(&idp);
    let cli =
        |actor: &str, event: &str, outcome: &str| (Some(actor.to_string()), event.to_string(), outcome.to_string());
    for expected in [
        cli("cli", "agencies.import", "success"),
        cli("cli", "personnel.import", "success"),
        cli("cli", "agencies.import", "rejected"),
        cli("helpdesk:cli", "password.reset", "success"),
        cli("helpdesk:cli", "password.reset", "separated"),
        cli("cli", "role.grant", "success"),
        cli("cli", "role.grant", "already_held"),
        cli("cli", "role.revoke", "not_held"),
        cli("cli", "role.grant", "separated"),
        cli("cli", "client.create", "success"),
        cli("cli", "client.update", "success"),
        cli("cli", "client.delete", "success"),
        cli("cli", "registration_token.issue", "success"),
        cli("cli", "key.rotate", "success"),
    ] {
        assert!(trail.contains(&expected), "missing {expected:?} in {trail:?}");
    }
    // Nothing recorded twice (once by the command, once by the domain).
    let events: Vec<&str> = trail.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(events.iter().filter(|e| **e == "password.reset").count(), 2, "{events:?}");
    assert_eq!(events.iter().filter(|e| **e == "client.create").count(), 1, "{events:?}");
}

/// The one-time password in the newest mail to `to` (the demo mails three people at once).
fn one_time_password_to(outbox: &std::path::Path, to: &str) -> String {
    let mut files: Vec<_> = std::fs::read_dir(outbox).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    files
        .iter()
        .rev()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .filter(|text| text.lines().any(|l| l.starts_with("To: ") && l.contains(to)))
        .find_map(|text| text.lines().find_map(|l| l.trim().strip_prefix("一次性密碼: ").map(|p| p.trim().to_string())))
        .unwrap_or_else(|| panic!("no one-time password mailed to {to}"))
}

fn mails(outbox: &std::path::Path) -> usize {
    std::fs::read_dir(outbox).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn the_demo_loads_people_applications_announcements_and_an_operator_once_and_says_what_exists() {
    const PW: &str = "Demo-Password-2026";
    let mut idp = Idp::new();
    let first = idp.cli(&["demo", "--no-serve"]);
    let said = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(first.status.success(), "{said}");
    for part in [
        "application relying-party-example registered",
        "application demo-webhr registered",
        "announcement published",
        "is granted the operator role",
        "a one-time password for 王小明",
        "a one-time password for 李美華",
        "a one-time password for 張雅婷",
    ] {
        assert!(said.contains(part), "the first run does not say {part:?}: {said}");
    }
    assert!(!said.contains("A123456789") && !said.contains("E223456785"), "national IDs are masked: {said}");
    let mailed = mails(&idp.outbox());
    assert_eq!(mailed, 3, "one mail per demo person who signs in");

    let second = idp.cli(&["demo", "--no-serve"]);
    let said = String::from_utf8_lossy(&second.stderr).to_string();
    assert!(second.status.success(), "{said}");
    assert_eq!(said.matches("already registered").count(), 2, "{said}");
    assert_eq!(said.matches("announcement already there").count(), 2, "{said}");
    assert_eq!(said.matches("still has an unused one-time password").count(), 3, "{said}");
    assert!(said.contains("already holds the operator role"), "{said}");
    assert!(!said.contains("example registered") && !said.contains("webhr registered"), "registered twice: {said}");
    assert!(!said.contains("published"), "nothing is published twice: {said}");
    assert_eq!(mails(&idp.outbox()), mailed, "nothing is mailed again");

    idp.start().await;
    let home = Browser::new(&idp.base).get("/").await;
    assert_eq!(home.body.matches("人事服務網單一登入示範上線").count(), 1, "{}", home.body);
    assert!(home.body.contains("首次登入請設定自訂帳號及密碼"), "{}", home.body);
    let sign_in = |nid: &'static str, email: &'static str, account: &'static str| {
        let otp = one_time_password_to(&idp.outbox(), email);
        let base = idp.base.clone();
        async move {
            let b = Browser::new(&base);
            assert_eq!(b.sign_in_at("/login", nid, &otp).await.status, 303);
            let done = b.activate(account, email, PW).await;
            assert_eq!(done.status, 200, "{}", done.body);
            assert_eq!(b.sign_in_at("/login", account, PW).await.status, 303);
            b
        }
    };
    let hr = sign_in(MEIHUA, "meihua@example.gov.tw", "meihua.li").await;
    let apps = hr.get("/apps").await;
    for part in ["範例應用系統", "B. 人事資料服務", "顯示 ID token 與 userinfo", "WebHR", "A. 人事資料填報及考核"]
    {
        assert!(apps.body.contains(part), "the HR person's 應用系統 lacks {part:?}: {}", apps.body);
    }
    let ming = sign_in(MING, "ming@example.gov.tw", "ming.wang").await;
    let apps = ming.get("/apps").await;
    assert!(apps.body.contains("範例應用系統") && !apps.body.contains("WebHR"), "{}", apps.body);
    assert_eq!(ming.get("/admin").await.status, 403);
    let operator = sign_in("E223456785", "yating@example.gov.tw", "yating.chang").await;
    assert_eq!(operator.get("/admin").await.status, 200, "the demo operator reaches 系統管理");

    let third = idp.cli(&["demo", "--no-serve"]);
    let said = String::from_utf8_lossy(&third.stderr).to_string();
    assert_eq!(said.matches("already activated the account").count(), 3, "{said}");
}
