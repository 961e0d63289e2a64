//! 忘記密碼 on the sign-in page, as a person who forgot their password meets it — and as someone
//! who tries to use it to find out who is registered, to lock a colleague out, to flood them
//! with mail, or to get more than the account already had.

use std::time::Duration;

use diesel::prelude::*;

use crate::harness::*;

const PW: &str = "Personnel-Office-2026";
/// A well-formed national ID that is not in the register.
const STRANGER: &str = "D223456784";
/// The address `Idp::activate` gives the accounts it activates.
const OWN: &str = "someone@example.gov.tw";

/// Limits far from anything a test reaches unless it means to, and waits no test outlives.
const ROOMY: [(&str, &str); 4] = [
    ("IDP_FORGOT__PER_PERSON", "50"),
    ("IDP_FORGOT__PER_ADDRESS", "500"),
    ("IDP_FORGOT__DELAY", "1h"),
    ("IDP_FORGOT__MAX_DELAY", "1h"),
];

async fn started(extra: &[(&str, &str)]) -> Idp {
    let mut env: Vec<(&str, &str)> = ROOMY.to_vec();
    env.extend_from_slice(extra);
    let mut idp = Idp::with_env(&env);
    idp.import_register();
    idp.start().await;
    idp
}

/// Fills in and sends the form from a fresh page, as a browser would.
async fn ask(b: &Browser, nid: &str, email: &str) -> Page {
    let form = b.get("/forgot-password").await;
    assert_eq!(form.status, 200, "the form: {}", form.body);
    let csrf = form.input("csrf_token").unwrap();
    b.post("/forgot-password", &[("csrf_token", &csrf), ("national_id", nid), ("email", email)]).await
}

/// `password.forgot` events by outcome.
fn outcomes(idp: &Idp) -> Vec<String> {
    use idp::store::db::schema::audit_events::dsl::*;
    let db = idp.db();
    let mut conn = db.get().unwrap();
    audit_events.filter(event.eq("password.forgot")).order(at.asc()).select(outcome).load(&mut *conn).unwrap()
}

/// Waits until `n` requests have been worked through (the work runs after the answer, so that
/// its duration says nothing); each leaves exactly one audit event.
async fn settled(idp: &Idp, n: usize) -> Vec<String> {
    for _ in 0..600 {
        let seen: Vec<String> = outcomes(idp).into_iter().filter(|o| o != "throttled").collect();
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} forgotten-password requests were never worked through: {:?}", outcomes(idp));
}

fn mails(idp: &Idp) -> Vec<String> {
    let mut files: Vec<_> = match std::fs::read_dir(idp.outbox()) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => return vec![],
    };
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect()
}

#[tokio::test]
async fn a_match_mails_a_one_time_password_to_the_address_on_record_and_the_old_password_keeps_working() {
    let idp = started(&[]).await;
    idp.activate(MING, "ming.wang", PW).await;
    let before = mails(&idp).len();
    let login = Browser::new(&idp.base).get("/login").await;
    assert!(login.body.contains("href=\"/forgot-password?ui_locales=zh-TW\"") && login.body.contains("忘記密碼"));

    // The register's address matches too, but the password goes to the account's own.
    let b = Browser::new(&idp.base);
    let answer = ask(&b, MING, "Ming@Example.gov.tw").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("若您輸入的身分證字號與電子郵件相符") && answer.body.contains("返回登入"));
    assert_eq!(settled(&idp, 1).await, ["issued"]);
    let all = mails(&idp);
    assert_eq!(all.len(), before + 1, "exactly one mail");
    let mail = all.last().unwrap();
    assert!(mail.contains(&format!("To: {OWN}")), "{mail}");
    let body = &mail[mail.find("\r\n\r\n").unwrap_or(0)..];
    let (joined, words) = (body.replace("\r\n", ""), body.split_whitespace().collect::<Vec<_>>().join(" "));
    assert!(joined.contains("原密碼在您使用下列一次性密碼之前仍可使用"), "{body}");
    assert!(words.contains("Your old password keeps working until you use this one."), "{body}");
    let otp = newest_one_time_password(&idp.outbox());
    assert!(body.lines().any(|l| l.trim_end() == format!("一次性密碼: {otp}")), "the password on a line of its own");
    for l in body.lines() {
        assert!(l.trim_end().len() <= 72, "a line too long for an 8bit mail: {l}");
    }
    for word in ["one-time", "password", "national", "account,", "expires"] {
        assert!(body.split_whitespace().any(|w| w == word), "`{word}` arrived whole: {body}");
    }

    // Asking changed nothing yet: the old password still signs in.
    assert_eq!(Browser::new(&idp.base).sign_in_at("/login", "ming.wang", PW).await.status, 303);
    // The one-time password leads to the activation form, where a new password replaces the old.
    let c = Browser::new(&idp.base);
    let r = c.sign_in_at("/login", MING, &otp).await;
    assert_eq!(r.location.as_deref(), Some("/activate?ui_locales=zh-TW"), "{}", r.body);
    let new = "Another-Password-2026";
    assert_eq!(c.activate("ming.wang", OWN, new).await.status, 200);
    assert_eq!(Browser::new(&idp.base).sign_in_at("/login", "ming.wang", PW).await.status, 401, "the old one ended");
    assert_eq!(Browser::new(&idp.base).sign_in_at("/login", "ming.wang", new).await.status, 303);
    assert_eq!(Browser::new(&idp.base).sign_in_at("/login", MING, &otp).await.status, 401, "used once");
}

#[tokio::test]
async fn the_answer_says_nothing_about_who_is_registered() {
    let idp = started(&[]).await;
    idp.activate(MING, "ming.wang", PW).await;
    let before = mails(&idp).len();
    let mut answers = Vec::new();
    for (nid, email) in [
        (MING, OWN),                       // matches the account
        (MING, "guess@example.com"),       // a registered person, a wrong address
        (STRANGER, "guess@example.com"),   // nobody
        (CHIH, "chih@example.gov.tw"),     // separated, with the register's address
        (MEIHUA, "meihua@example.gov.tw"), // never activated: the register's address
    ] {
        let r = ask(&Browser::new(&idp.base), nid, email).await;
        answers.push((nid, email, r.status, r.body));
    }
    let (_, _, status, body) = &answers[0];
    for (nid, email, s, b) in &answers {
        assert_eq!((s, b), (status, body), "{nid}/{email} got another answer than a match does");
    }
    let mut seen = settled(&idp, 5).await;
    seen.sort();
    assert_eq!(seen, ["issued", "issued", "mismatch", "not_in_register", "separated"]);
    let new: Vec<String> = mails(&idp).split_off(before);
    assert_eq!(new.len(), 2, "mail only for the matches");
    assert!(new.iter().any(|m| m.contains(&format!("To: {OWN}"))));
    assert!(new.iter().any(|m| m.contains("To: meihua@example.gov.tw")));
    assert!(!new.iter().any(|m| m.contains("chih@") || m.contains("guess@")), "nothing to the separated or a guess");
    // The audit trail names no national ID in clear.
    let db = idp.db();
    let mut conn = db.get().unwrap();
    use idp::store::db::schema::audit_events::dsl::*;
    let details: Vec<String> =
        audit_events.filter(event.eq("password.forgot")).select(detail).load(&mut *conn).unwrap();
    assert!(details.iter().all(|d| !d.contains(MING) && !d.contains(STRANGER) && !d.contains(CHIH)), "{details:?}");
}

#[tokio::test]
async fn asking_for_a_colleague_again_and_again_locks_nobody_out() {
    let idp = started(&[("IDP_FORGOT__PER_PERSON", "3")]).await;
    idp.activate(MING, "ming.wang", PW).await;
    let signed_in = Browser::new(&idp.base);
    assert_eq!(signed_in.sign_in_at("/login", "ming.wang", PW).await.status, 303);
    let attacker = Browser::new(&idp.base);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(ask(&attacker, MING, OWN).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    settled(&idp, 3).await;
    // The old password, the session and the sign-in throttle are untouched.
    assert_eq!(signed_in.get("/me").await.status, 200, "still signed in");
    for _ in 0..3 {
        assert_eq!(Browser::new(&idp.base).sign_in_at("/login", "ming.wang", PW).await.status, 303);
    }
    // A later one-time password replaces the earlier ones: only the newest works.
    let newest = newest_one_time_password(&idp.outbox());
    let otps: Vec<String> = mails(&idp)
        .iter()
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("一次性密碼: ").map(|p| p.trim().to_string())))
        .collect();
    let older = otps.iter().rev().find(|p| **p != newest).unwrap();
    assert_eq!(Browser::new(&idp.base).sign_in_at("/login", MING, older).await.status, 401);
}

#[tokio::test]
async fn requests_are_throttled_per_person_and_per_address_typed_and_counted_once() {
    let idp = started(&[("IDP_FORGOT__PER_PERSON", "2")]).await;
    let b = Browser::new(&idp.base);
    // Per person, whatever address is typed.
    assert_eq!(ask(&b, MING, "a@example.com").await.status, 200);
    assert_eq!(ask(&b, MING, "b@example.com").await.status, 200);
    let refused = ask(&b, MING, "c@example.com").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("申請次數過多") && refused.body.contains("人事"), "says whom to ask");
    // Per address, whoever is named, in any case.
    assert_eq!(ask(&b, MEIHUA, "a@example.com").await.status, 200);
    assert_eq!(ask(&b, STRANGER, "A@Example.com").await.status, 429);
    // A refused request was not counted: another person with a fresh address still gets through.
    assert_eq!(ask(&b, CHIH, "d@example.com").await.status, 200);
    settled(&idp, 4).await;
    assert_eq!(idp.audit_count("password.forgot", "throttled"), 2);
}

#[tokio::test]
async fn one_client_address_cannot_sweep_the_register() {
    let idp = started(&[("IDP_FORGOT__PER_ADDRESS", "3")]).await;
    let b = Browser::new(&idp.base);
    for (nid, email) in [(MING, "a@example.com"), (MEIHUA, "b@example.com"), (CHIH, "c@example.com")] {
        assert_eq!(ask(&b, nid, email).await.status, 200);
    }
    let r = ask(&b, STRANGER, "d@example.com").await;
    assert_eq!(r.status, 429);
    assert!(r.body.contains("申請次數過多"));
}

#[tokio::test]
async fn privileged_accounts_get_nothing_and_a_one_time_password_opens_no_more_than_the_account() {
    let idp = started(&[]).await;
    idp.activate(MEIHUA, "meihua.lee", PW).await;
    idp.cli_ok(&["users", "grant", "--national-id", MEIHUA, "--role", "operator"]);
    let before = mails(&idp).len();
    let r = ask(&Browser::new(&idp.base), MEIHUA, OWN).await;
    assert_eq!(r.status, 200, "the same answer");
    assert_eq!(settled(&idp, 1).await, ["privileged"]);
    assert_eq!(mails(&idp).len(), before, "no password for an operator from a web page");

    // 王小明 (no role) asks; his one-time password opens the activation form and nothing else.
    let ask_b = Browser::new(&idp.base);
    ask(&ask_b, MING, "ming@example.gov.tw").await;
    settled(&idp, 2).await;
    let otp = newest_one_time_password(&idp.outbox());
    let c = Browser::new(&idp.base);
    assert_eq!(c.sign_in_at("/login", MING, &otp).await.status, 303);
    for path in ["/me", "/admin", "/hr/reset-password"] {
        let r = c.get(path).await;
        assert_ne!(r.status, 200, "{path} opened to a one-time password before activation: {}", r.body);
    }
    assert_eq!(c.get("/activate").await.status, 200);
}

#[tokio::test]
async fn the_form_refuses_forged_and_malformed_posts_without_doing_anything() {
    let idp = started(&[]).await;
    let b = Browser::new(&idp.base);
    let form = b.get("/forgot-password?ui_locales=en").await;
    assert!(form.body.contains("Forgot password") && form.body.contains("Back to sign-in"));
    let forged = b
        .post(
            "/forgot-password",
            &[("csrf_token", "x".repeat(43).as_str()), ("national_id", MING), ("email", "ming@example.gov.tw")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let csrf = form.input("csrf_token").unwrap();
    let bad_id = b
        .post("/forgot-password", &[("csrf_token", &csrf), ("national_id", "A123456788"), ("email", "x@example.com")])
        .await;
    assert_eq!(bad_id.status, 422);
    assert!(bad_id.body.contains("身分證字號格式不正確"));
    let bad_mail =
        b.post("/forgot-password", &[("csrf_token", &csrf), ("national_id", MING), ("email", "not-an-address")]).await;
    assert_eq!(bad_mail.status, 422);
    // A well-formed one afterwards is the first and only request worked through.
    assert_eq!(ask(&b, MING, "ming@example.gov.tw").await.status, 200);
    assert_eq!(settled(&idp, 1).await, ["issued"]);
    assert_eq!(mails(&idp).len(), 1);
}
