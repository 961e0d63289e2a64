//! The storage setup a run asked for is the one it got: with `IDP_TEST_EXPECT=postgres-redis`
//! (as CI's second run sets it), a server started by the harness must keep its rows in
//! PostgreSQL and its ephemeral state in Redis, or this test fails; a run that silently fell back
//! to the embedded default would otherwise look green.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::harness::*;

#[tokio::test]
async fn the_run_uses_the_storage_it_asked_for() {
    let expect = std::env::var("IDP_TEST_EXPECT").unwrap_or_default();
    let db = std::env::var("IDP_TEST_DATABASE_URL").ok();
    let cache = std::env::var("IDP_TEST_CACHE_URL").ok();
    match expect.as_str() {
        "postgres-redis" => {
            assert!(db.as_deref().is_some_and(|u| u.starts_with("postgres")), "PostgreSQL asked for, not configured");
            assert!(cache.as_deref().is_some_and(|u| u.starts_with("redis")), "Redis asked for, not configured");
        }
        "embedded" | "" => {
            assert!(db.is_none() && cache.is_none(), "embedded asked for, but a server URL is set");
        }
        other => panic!("IDP_TEST_EXPECT={other}: expected postgres-redis or embedded"),
    }
    let mut idp = Idp::new();
    idp.import_register();
    idp.start().await;
    // A sign-in page leaves a CSRF cookie; a one-time password sign-in leaves a pending activation
    // in the ephemeral store and an audit row in the database.
    let otp = idp.reset_password(MING, "ming@example.gov.tw");
    assert_eq!(Browser::new(&idp.base).sign_in_at("/login", MING, &otp).await.status, 303);
    if let Some(admin) = db {
        // The audit row is in this test's PostgreSQL database, read straight from PostgreSQL.
        let name = idp_database_name(&idp);
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        let mut conn = diesel::PgConnection::establish(url.as_str()).unwrap();
        conn.batch_execute("SELECT 1").unwrap();
        let n: i64 = idp::store::db::schema::audit_events::table
            .filter(idp::store::db::schema::audit_events::event.eq("login.one_time_password"))
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(n, 1, "the sign-in is recorded in PostgreSQL");
    } else {
        assert!(idp.dir.path().join("data").join("idp.sqlite3").exists(), "the embedded database file");
    }
    if let Some(cache) = cache {
        let prefix = idp_cache_prefix(&idp);
        let client = redis::Client::open(cache).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
        assert!(keys.iter().any(|k| k.contains("act:")), "the pending activation is in Redis: {keys:?}");
    }
}

fn idp_database_name(idp: &Idp) -> String {
    let url = idp.env_value("IDP_DATABASE__URL").expect("a per-test PostgreSQL database");
    url::Url::parse(&url).unwrap().path().trim_start_matches('/').to_string()
}

fn idp_cache_prefix(idp: &Idp) -> String {
    idp.env_value("IDP_CACHE__KEY_PREFIX").expect("a per-test Redis prefix")
}
