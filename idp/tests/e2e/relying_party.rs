//! The relying-party example signs a person in through the IdP.

use std::process::{Command, Stdio};

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
    // The example's socket, bound here: its URL is registered with the IdP before it starts.
    let rp_socket = listener();
    let rp = format!("http://{}", rp_socket.local_addr().unwrap());
    let mut idp = Idp::new();
    idp.import_register();
    let (client_id, secret) = idp.create_client(&format!("{rp}/callback"), &format!("{rp}/"));
    idp.start().await;
    let b = Browser::new(&idp.base);
    idp.activate(MING, "ming.wang", "Civil-Service-2026").await;

    let mut cmd = Command::new(rp_binary());
    cmd.env("RP_ISSUER", &idp.base)
        .env("RP_BASE_URL", &rp)
        .env("RP_CLIENT_ID", &client_id)
        .env("RP_CLIENT_SECRET", &secret)
        .stderr(Stdio::null());
    hand_over(&mut cmd, &[(&rp_socket, "http")]);
    let (_child, at) = Proc::spawn_listening("relying-party-example", &mut cmd);
    assert_eq!(at, rp, "the example serves the socket it was given");
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
    // Each claim is shown with where it came from: the ID token carries the granted scopes'
    // claims as userinfo does, so the name is in both (no dash where userinfo has it).
    assert!(
        home.body.contains("<tr><th>name</th><td>王小明</td><td>王小明</td><td>ID token + userinfo</td></tr>"),
        "the name is shown from userinfo: {}",
        home.body
    );
    assert!(home.body.contains("<tr><th>sub</th>") && home.body.contains("<td>ID token + userinfo</td>"));
    assert!(home.body.contains("<tr><th>acr</th><td>loa-1</td><td>—</td><td>ID token</td></tr>"));
    // Sign out through the IdP and come back.
    let r = b.get(&format!("{rp}/logout")).await;
    let to_idp = r.location.unwrap();
    assert!(to_idp.starts_with(&format!("{}/logout", idp.base)));
    let r = b.get(&to_idp).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with(&format!("{rp}/")));
}

/// The example with `RP_USE_PAR` and `RP_USE_DPOP`, against a client that requires both: the
/// browser carries only a `request_uri`, the example's tokens are DPoP-bound (it retries with the
/// IdP's nonce on its own), and userinfo answers its proof.
#[tokio::test]
async fn the_example_application_signs_in_with_par_and_dpop_switched_on() {
    let rp_socket = listener();
    let rp = format!("http://{}", rp_socket.local_addr().unwrap());
    let mut idp = Idp::new();
    idp.import_register();
    let callback = format!("{rp}/callback");
    let out = idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "FAPI example",
        "--redirect-uri",
        &callback,
        "--post-logout-redirect-uri",
        &format!("{rp}/"),
        "--require-par",
        "--dpop-bound-access-tokens",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (client_id, secret) = (v["client_id"].as_str().unwrap(), v["client_secret"].as_str().unwrap());
    idp.start().await;
    let b = Browser::new(&idp.base);
    idp.activate(MING, "ming.wang", "Civil-Service-2026").await;

    let mut cmd = Command::new(rp_binary());
    cmd.env("RP_ISSUER", &idp.base)
        .env("RP_BASE_URL", &rp)
        .env("RP_CLIENT_ID", client_id)
        .env("RP_CLIENT_SECRET", secret)
        .env("RP_USE_PAR", "1")
        .env("RP_USE_DPOP", "1")
        .stderr(Stdio::null());
    hand_over(&mut cmd, &[(&rp_socket, "http")]);
    let (_child, _) = Proc::spawn_listening("relying-party-example", &mut cmd);
    let r = b.get(&format!("{rp}/login")).await;
    let to_idp = r.location.unwrap_or_else(|| panic!("{} {}", r.status, r.body));
    assert!(to_idp.starts_with(&format!("{}/authorize", idp.base)), "{to_idp}");
    assert!(query_param(&to_idp, "request_uri").unwrap().starts_with("urn:ietf:params:oauth:request_uri:"));
    assert!(query_param(&to_idp, "redirect_uri").is_none(), "the browser carries only the reference: {to_idp}");
    let login = b.get(&to_idp).await.location.unwrap();
    let r = b.sign_in_at(&login, "ming.wang", "Civil-Service-2026").await;
    let back = r.location.unwrap();
    assert!(back.starts_with(&callback), "{back}");
    let r = b.get(&back).await;
    assert!(r.status == 302 || r.status == 303, "callback: {} {}", r.status, r.body);
    let home = b.get(&format!("{rp}/")).await;
    assert!(home.body.contains("王小明"), "the example shows the claims: {}", home.body);
    // The userinfo claims came through too (only the DPoP proof gets them for a bound token).
    assert!(!home.body.contains("Could not fetch userinfo"), "userinfo answered the DPoP-bound token: {}", home.body);
    assert_eq!(idp.audit_count("par.push", "success"), 1);
}
