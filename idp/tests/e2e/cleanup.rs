//! The periodic clean-up, through the real server with a one-second interval: expired and
//! finished rows go, live ones stay, and audit events are kept for exactly `audit.retention`.

use std::time::Duration;

use diesel::prelude::*;
use idp::store::db::schema::{
    audit_events, consents, logout_outbox, one_time_passwords, registration_tokens, session_clients, sessions,
};

use crate::harness::*;

const DAY: i64 = 24 * 3600;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

type Conn = idp::store::db::DbConn;

fn session(c: &mut Conn, id: &str, account: &str, expires_at: i64) {
    let row = (
        sessions::id.eq(id.to_string()),
        sessions::sid.eq(format!("sid-{id}")),
        sessions::account_id.eq(account.to_string()),
        sessions::auth_time.eq(now() - 3600),
        sessions::acr.eq("1"),
        sessions::amr.eq("pwd"),
        sessions::created_at.eq(now() - 3600),
        sessions::expires_at.eq(expires_at),
    );
    diesel::insert_into(sessions::table).values(row).execute(c).unwrap();
}

fn outbox(c: &mut Conn, sid: &str, account: &str, done_at: Option<i64>) {
    let row = (
        logout_outbox::sid.eq(sid.to_string()),
        logout_outbox::client_id.eq("gone-client"),
        logout_outbox::account_id.eq(account.to_string()),
        logout_outbox::created_at.eq(now() - 30 * DAY),
        // Not due for a long while: the delivery loop leaves the pending row alone.
        logout_outbox::next_attempt_at.eq(now() + 365 * DAY),
        logout_outbox::attempts.eq(4),
        logout_outbox::done_at.eq(done_at),
        logout_outbox::outcome.eq(done_at.map(|_| "given_up".to_string())),
    );
    diesel::insert_into(logout_outbox::table).values(row).execute(c).unwrap();
}

fn audit(c: &mut Conn, id: &str, at: i64) {
    let row = (
        audit_events::id.eq(id.to_string()),
        audit_events::at.eq(at),
        audit_events::event.eq("test.cleanup"),
        audit_events::outcome.eq("success"),
        audit_events::detail.eq(""),
    );
    diesel::insert_into(audit_events::table).values(row).execute(c).unwrap();
}

#[tokio::test]
async fn the_clean_up_purges_expired_and_finished_rows_keeps_live_ones_and_keeps_audit_for_the_retention() {
    let mut idp = Idp::with_env(&[
        ("IDP_CLEANUP__INTERVAL", "1s"),
        ("IDP_AUDIT__RETENTION", "30days"),
        ("IDP_CLEANUP__OUTBOX_KEEP", "1day"),
    ]);
    idp.import_register();
    let (client_id, _) = idp.create_client("http://127.0.0.1:9/cb", "http://127.0.0.1:9/");
    idp.reset_password(MING, "ming@example.gov.tw");
    idp.reset_password(MEIHUA, "meihua@example.gov.tw");
    let db = idp.db();
    let (ming, meihua) = {
        let mut c = db.get().unwrap();
        let accounts: Vec<(String, i64)> = one_time_passwords::table
            .select((one_time_passwords::account_id, one_time_passwords::created_at))
            .order(one_time_passwords::created_at)
            .load(&mut *c)
            .unwrap();
        assert_eq!(accounts.len(), 2);
        (accounts[0].0.clone(), accounts[1].0.clone())
    };
    {
        let c = &mut *db.get().unwrap();
        let n = now();
        // 李美華's one-time password expired more than 30 days ago (a recently expired one is kept
        // so its own message can be shown: login.rs); 王小明's is live.
        diesel::update(one_time_passwords::table.find(&meihua))
            .set(one_time_passwords::expires_at.eq(n - 31 * 24 * 3600))
            .execute(c)
            .unwrap();
        session(c, "expired", &ming, n - 60);
        session(c, "live", &ming, n + 3600);
        for (sid, created) in [("sid-expired", n - 2 * DAY), ("sid-live", n - 2 * DAY)] {
            diesel::insert_into(session_clients::table)
                .values((
                    session_clients::sid.eq(sid),
                    session_clients::client_id.eq(&client_id),
                    session_clients::account_id.eq(&ming),
                    session_clients::created_at.eq(created),
                ))
                .execute(c)
                .unwrap();
        }
        for (id, expires_at) in [("reg-expired", n - 60), ("reg-live", n + 3600)] {
            diesel::insert_into(registration_tokens::table)
                .values((
                    registration_tokens::id.eq(id),
                    registration_tokens::created_at.eq(n - 7200),
                    registration_tokens::expires_at.eq(expires_at),
                ))
                .execute(c)
                .unwrap();
        }
        for (account, client) in [(&ming, client_id.as_str()), (&meihua, "deleted-client")] {
            diesel::insert_into(consents::table)
                .values((
                    consents::account_id.eq(account),
                    consents::client_id.eq(client),
                    consents::scope.eq("openid"),
                    consents::created_at.eq(n - DAY),
                ))
                .execute(c)
                .unwrap();
        }
        for (sid, done) in [("old-done", Some(n - 2 * DAY)), ("new-done", Some(n - 3600)), ("pending", None)] {
            outbox(c, sid, &ming, done);
        }
        for (id, at) in [("audit-old", n - 31 * DAY), ("audit-kept", n - 29 * DAY)] {
            audit(c, id, at);
        }
    }
    idp.start().await;

    let expired_gone = || {
        let c = &mut *db.get().unwrap();
        sessions::table.find("expired").count().get_result::<i64>(c).unwrap() == 0
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !expired_gone() {
        assert!(std::time::Instant::now() < deadline, "the clean-up did not run within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let c = &mut *db.get().unwrap();
    let sids: Vec<String> = sessions::table.select(sessions::id).order(sessions::id).load(c).unwrap();
    assert_eq!(sids, vec!["live"]);
    let recorded: Vec<String> = session_clients::table.select(session_clients::sid).load(c).unwrap();
    assert_eq!(recorded, vec!["sid-live"], "what expired sessions left behind goes with them");
    let otps: Vec<String> = one_time_passwords::table.select(one_time_passwords::account_id).load(c).unwrap();
    assert_eq!(otps, vec![ming.clone()]);
    let regs: Vec<String> = registration_tokens::table.select(registration_tokens::id).load(c).unwrap();
    assert_eq!(regs, vec!["reg-live"]);
    let consented: Vec<String> = consents::table.select(consents::client_id).load(c).unwrap();
    assert_eq!(consented, vec![client_id.clone()], "only the deleted client's consent goes");
    let owed: Vec<String> = logout_outbox::table.select(logout_outbox::sid).order(logout_outbox::sid).load(c).unwrap();
    assert_eq!(owed, vec!["new-done", "pending"], "finished rows go after outbox_keep; pending ones never");
    let audited: Vec<String> =
        audit_events::table.filter(audit_events::event.eq("test.cleanup")).select(audit_events::id).load(c).unwrap();
    assert_eq!(audited, vec!["audit-kept"], "audit events are kept for audit.retention, not longer");
    assert!(
        audit_events::table.filter(audit_events::event.ne("test.cleanup")).count().get_result::<i64>(c).unwrap() > 0,
        "today's audit events stay"
    );
}
