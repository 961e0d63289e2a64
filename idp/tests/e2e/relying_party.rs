//! The relying-party example signs a person in through the IdP.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// The example's binary, built on demand so the test does not depend on build order.
fn rp_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let bin = dir.join("relying-party-example");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo).args(["build", "-q", "-p", "relying-party-example"]).status().unwrap();
    assert!(status.success(), "building the relying-party example failed");
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

#[tokio::test]
async fn the_example_application_signs_in_shows_claims_and_signs_out() {
    let rp_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let rp = format!("http://127.0.0.1:{rp_port}");
    let mut idp = Idp::new();
    idp.import_register();
    let (client_id, secret) = idp.create_client(&format!("{rp}/callback"), &format!("{rp}/"));
    idp.start().await;
    let b = Browser::new(&idp.base);
    idp.activate(MING, "ming.wang", "Civil-Service-2026").await;

    let mut child = Command::new(rp_binary())
        .env("RP_ISSUER", &idp.base)
        .env("RP_BIND", format!("127.0.0.1:{rp_port}"))
        .env("RP_CLIENT_ID", &client_id)
        .env("RP_CLIENT_SECRET", &secret)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rp_browser = Browser::new(&rp);
    let mut up = false;
    for _ in 0..100 {
        if rp_browser.http.get(format!("{rp}/")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the example application did not start");

    // One browser: cookies for both sites live in the same jar.
    let r = b.get(&format!("{rp}/login")).await;
    let to_idp = r.location.unwrap();
    assert!(to_idp.starts_with(&idp.base));
    let login = b.get(&to_idp).await.location.unwrap();
    let r = b.sign_in_at(&login, "ming.wang", "Civil-Service-2026").await;
    let callback = r.location.unwrap();
    assert!(callback.starts_with(&format!("{rp}/callback")));
    let r = b.get(&callback).await;
    assert!(r.status == 302 || r.status == 303, "callback: {} {}", r.status, r.body);
    let home = b.get(&format!("{rp}/")).await;
    assert!(home.body.contains("王小明"), "the example shows the claims: {}", home.body);
    assert!(home.body.contains("loa-1"));
    // Sign out through the IdP and come back.
    let r = b.get(&format!("{rp}/logout")).await;
    let to_idp = r.location.unwrap();
    assert!(to_idp.starts_with(&format!("{}/logout", idp.base)));
    let r = b.get(&to_idp).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with(&format!("{rp}/")));
    let _ = child.kill();
    let _ = child.wait();
}
