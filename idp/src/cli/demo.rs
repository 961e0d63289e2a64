//! `idp demo`: demo data, then the server.

use super::{fail, Failure};
use crate::accounts::one_time::{self, IssueRequest, ResetBy};
use crate::accounts::register::{self, ImportError, Register};
use crate::audit::Actor;
use crate::config::Config;
use crate::error::now;
use crate::national_id::NationalId;
use crate::oidc::clients::{self, NewClient};
use crate::state::Core;

/// The example application's client id in the demo.
pub const DEMO_CLIENT_ID: &str = "relying-party-example";

/// The demo trusts a test PKI made once in `<data_dir>/pki`, so card sign-in can be tried with
/// the card simulator (`card-simulator --card <data_dir>/pki/citizen-A123456789.pem`).
#[cfg(feature = "dev-pki")]
pub(super) fn demo_pki(config: &mut Config) -> Result<(), Failure> {
    use test_pki::fixtures::{self as pki_fixtures, FixtureOptions};
    let dir = config.data_dir.join("pki");
    let manifest_file = dir.join("manifest.json");
    let manifest: pki_fixtures::Manifest = if manifest_file.exists() {
        let text =
            std::fs::read_to_string(&manifest_file).map_err(|e| fail(format!("{}: {e}", manifest_file.display())))?;
        serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", manifest_file.display())))?
    } else {
        std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        pki_fixtures::generate_with(&dir, &FixtureOptions::fast()).map_err(|e| fail(e.to_string()))?
    };
    let paths = |files: &[String]| files.iter().map(|f| dir.join(f)).collect::<Vec<_>>();
    config.certificates.citizen_trust_anchors = paths(&manifest.citizen_trust_anchors);
    config.certificates.agency_trust_anchors = paths(&manifest.agency_trust_anchors);
    config.certificates.crl_files = paths(&manifest.crl_files);
    // Its CRLs are short-lived test data; a demo older than a week should still let people in.
    config.certificates.revocation = "best-effort".into();
    eprintln!("demo: card sign-in trusts the test PKI in {}", dir.display());
    Ok(())
}

/// Without the `dev-pki` feature there is no test PKI to make: the demo needs `certificates.*`.
#[cfg(not(feature = "dev-pki"))]
pub(super) fn demo_pki(_: &mut Config) -> Result<(), Failure> {
    Err(fail(format!("the demo needs certificates.* configured: {}", super::dev::NO_DEV_PKI)))
}

/// Loads the demo agency table, people and client; idempotent.
pub(super) fn load_demo(config: Config) -> Result<(), Failure> {
    let core = Core::open(config)?;
    let mut conn = core.db.get()?;
    let now = now();
    let invalid = |e: ImportError| match e {
        ImportError::Invalid(errs) => fail(errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")),
        ImportError::Infra(e) => e.into(),
    };
    let demo_actor = Actor::named("demo");
    for (which, file) in [
        (Register::Agencies, &include_bytes!("../../../deploy/demo/agencies.csv")[..]),
        (Register::Personnel, &include_bytes!("../../../deploy/demo/personnel.csv")[..]),
    ] {
        register::import(&mut conn, &core.protector, which, file, &demo_actor, now).map_err(invalid)?;
    }
    let file = core.config.data_dir.join("demo-client.json");
    if clients::get(&mut conn, DEMO_CLIENT_ID)?.is_none() || !file.exists() {
        clients::delete_by(&mut conn, DEMO_CLIENT_ID, &demo_actor, now)?;
        let (client, secret) = clients::create_by(
            &mut conn,
            NewClient {
                client_id: Some(DEMO_CLIENT_ID.into()),
                post_logout_redirect_uris: vec!["http://127.0.0.1:8081/".into()],
                ..NewClient::new("Relying party example / 範例應用系統", vec!["http://127.0.0.1:8081/callback".into()])
            },
            &demo_actor,
            now,
        )
        .map_err(|e| fail(e.to_string()))?;
        let json = serde_json::json!({ "client_id": client.client_id, "client_secret": secret });
        let _ = std::fs::remove_file(&file);
        crate::crypto::write_private(&file, json.to_string().as_bytes())
            .map_err(|e| fail(format!("{}: {e}", file.display())))?;
    }
    let demo = NationalId::parse("A123456789").map_err(|e| fail(e.to_string()))?;
    let person = crate::accounts::person_by_national_id(&mut conn, &core.protector, &demo)?;
    let activated = match &person {
        Some(p) => crate::accounts::account_of_person(&mut conn, &p.id)?
            .is_some_and(|a| a.state == crate::accounts::AccountState::Active),
        None => false,
    };
    if !activated {
        let ttl = core.config.login.one_time_password_ttl.as_secs() as i64;
        one_time::issue_by(
            &mut conn,
            &core.protector,
            &core.mailer,
            &IssueRequest {
                national_id: &demo,
                email: "ming@example.gov.tw",
                issued_by: "demo",
                by: ResetBy::Server,
                ttl_secs: ttl,
            },
            &demo_actor,
            now,
        )
        .map_err(|e| fail(e.to_string()))?;
        eprintln!(
            "demo: a one-time password for A123456789 (王小明) is in the newest .eml file of {}",
            core.config.outbox_dir().display()
        );
    }
    eprintln!("demo: the example application's credentials are in {}", file.display());
    Ok(())
}
