//! Mail delivery over SMTP, against a real SMTP server (aiosmtpd, `tests/support/smtp_server.py`)
//! started per test on a free port: plain, implicit TLS with AUTH, STARTTLS, and one that
//! refuses the message. The IdP mails a one-time password with `idp users reset-password`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::harness::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/requirements.txt");

#[derive(Clone, Copy)]
pub(crate) enum Mode {
    Plain,
    Smtps,
    StartTls,
    Refuse,
}

/// A message as the server saw it at the end of DATA.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Received {
    pub(crate) rcpt_tos: Vec<String>,
    pub(crate) content: String,
    /// `implicit`, `starttls` or none.
    tls: Option<String>,
    auth_login: Option<String>,
    accepted: bool,
}

impl Received {
    pub(crate) fn one_time_password(&self) -> String {
        self.content
            .lines()
            .find_map(|l| l.trim().strip_prefix("一次性密碼: ").map(|p| p.trim().to_string()))
            .unwrap_or_else(|| panic!("no one-time password line in {}", self.content))
    }
}

pub(crate) struct SmtpServer {
    pub(crate) port: u16,
    child: Child,
    // Held open: the server exits when it closes, so a test that dies leaves nothing running.
    _stdin: ChildStdin,
    out: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether aiosmtpd is installed; without it the tests skip on a workstation and fail in CI.
pub(crate) fn smtp_server_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let how = format!("python3 -m pip install -r {REQUIREMENTS}");
        assert!(std::env::var_os("CI").is_none(), "the SMTP tests need aiosmtpd in CI: {how}");
        eprintln!("skipped: the SMTP tests need aiosmtpd: {how}");
    }
    found
}

impl SmtpServer {
    pub(crate) fn start(mode: Mode, cert: Option<&ServerCert>, auth: Option<&str>) -> Self {
        let out = tempfile::tempdir().unwrap();
        let mode_arg = match mode {
            Mode::Plain => "plain",
            Mode::Smtps => "smtps",
            Mode::StartTls => "starttls",
            Mode::Refuse => "refuse",
        };
        let mut cmd = Command::new("python3");
        cmd.arg(SCRIPT).arg(mode_arg).arg("--out").arg(out.path());
        if let Some(c) = cert {
            cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
        }
        if let Some(a) = auth {
            cmd.args(["--auth", a]);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        // The first line is the port; it comes only once the server accepts connections, and
        // end of file (the script failed) ends the read instead of hanging it.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("port ").and_then(|p| p.parse().ok());
        let port = port.unwrap_or_else(|| panic!("the SMTP server did not start: {line:?}"));
        Self { port, child, _stdin: stdin, out }
    }

    /// Every message that reached the end of DATA, in order.
    pub(crate) fn received(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort_by_key(|p| p.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u32>().ok()));
        files.iter().map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()).collect()
    }
}

/// A CA certificate, and a server certificate it issued for `127.0.0.1` and `localhost`.
pub(crate) struct ServerCert {
    _dir: tempfile::TempDir,
    ca: String,
    cert: PathBuf,
    key: PathBuf,
}

fn test_ca(name: &str) -> ServerCert {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    server.distinguished_name.push(DnType::CommonName, "mail.test");
    let cert = server.signed_by(&key, &issuer).unwrap();
    let write = |file: &str, text: String| {
        let p = dir.path().join(file);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca = write("ca.pem", ca_cert.pem()).display().to_string();
    let (cert, key) = (write("server.pem", cert.pem()), write("server.key.pem", key.serialize_pem()));
    ServerCert { _dir: dir, ca, cert, key }
}

fn reset(idp: &Idp, settings: &[(&str, &str)]) -> std::process::Output {
    idp.cli_with(settings, &["users", "reset-password", "--national-id", MING, "--email", "ming@example.gov.tw"])
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_succeeded(out: &std::process::Output) {
    assert!(out.status.success(), "reset-password failed: {}", stderr(out));
}

/// How many one-time passwords are stored (at most one per account).
fn stored_passwords(idp: &Idp) -> i64 {
    use diesel::prelude::*;
    let db = idp.db();
    let mut conn = db.get().unwrap();
    idp::store::db::schema::one_time_passwords::table.count().get_result(&mut *conn).unwrap()
}

async fn signs_in(idp: &Idp, password: &str) -> bool {
    let r = Browser::new(&idp.base).sign_in_at("/login", MING, password).await;
    r.status == 303 && r.location.as_deref().is_some_and(|l| l.starts_with("/activate"))
}

#[tokio::test]
async fn plain_smtp_delivers_the_one_time_password_to_its_recipient() {
    if !smtp_server_available() {
        return;
    }
    let server = SmtpServer::start(Mode::Plain, None, None);
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let mut idp = Idp::with_env(&[("IDP_MAIL__SMTP_URL", url.as_str())]);
    idp.import_register();
    assert_succeeded(&reset(&idp, &[]));
    let received = server.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let mail = &received[0];
    assert_eq!(mail.rcpt_tos, ["ming@example.gov.tw"]);
    assert!(mail.content.contains("To: ming@example.gov.tw"), "{}", mail.content);
    assert!(mail.tls.is_none() && mail.auth_login.is_none());
    assert!(!idp.outbox().exists(), "nothing goes to the outbox when SMTP is set");
    // The password in the mail is the one the IdP stored.
    idp.start().await;
    assert!(signs_in(&idp, &mail.one_time_password()).await, "the mailed one-time password signs in");
}

#[test]
fn smtps_delivers_over_implicit_tls_after_auth_and_checks_the_extra_roots() {
    if !smtp_server_available() {
        return;
    }
    let cert = test_ca("Test mail CA");
    let server = SmtpServer::start(Mode::Smtps, Some(&cert), Some("mailer:S3cret-pw"));
    let url = format!("smtps://mailer:S3cret-pw@127.0.0.1:{}", server.port);
    let idp = Idp::with_env(&[("IDP_MAIL__SMTP_URL", url.as_str()), ("IDP_MAIL__TLS_CA_FILE", cert.ca.as_str())]);
    idp.import_register();
    let out = reset(&idp, &[]);
    assert_succeeded(&out);
    let received = server.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].tls.as_deref(), Some("implicit"));
    assert_eq!(received[0].auth_login.as_deref(), Some("mailer"), "the server required AUTH and saw it");
    assert_eq!(received[0].rcpt_tos, ["ming@example.gov.tw"]);
    assert!(received[0].one_time_password().len() >= 12);
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!printed.contains("S3cret-pw"), "the SMTP password is not printed: {printed}");
    // A wrong password is refused by the server, so the command fails and nothing is sent.
    let wrong = format!("smtps://mailer:wrong@127.0.0.1:{}", server.port);
    let out = reset(&idp, &[("IDP_MAIL__SMTP_URL", wrong.as_str())]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("mail delivery failed"), "{}", stderr(&out));
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn tls_required_delivers_after_starttls_and_never_in_the_clear() {
    if !smtp_server_available() {
        return;
    }
    let cert = test_ca("Test mail CA");
    let starttls = SmtpServer::start(Mode::StartTls, Some(&cert), None);
    let url = format!("smtp://127.0.0.1:{}?tls=required", starttls.port);
    let mut idp = Idp::with_env(&[("IDP_MAIL__SMTP_URL", url.as_str()), ("IDP_MAIL__TLS_CA_FILE", cert.ca.as_str())]);
    idp.import_register();
    assert_succeeded(&reset(&idp, &[]));
    let received = starttls.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].tls.as_deref(), Some("starttls"));
    let first = received[0].one_time_password();

    // A server that does not offer STARTTLS: the command fails and nothing reaches it.
    let plain = SmtpServer::start(Mode::Plain, None, None);
    let no_starttls = format!("smtp://127.0.0.1:{}?tls=required", plain.port);
    let out = reset(&idp, &[("IDP_MAIL__SMTP_URL", no_starttls.as_str())]);
    assert!(!out.status.success(), "a tls=required mail went out without TLS");
    assert!(stderr(&out).contains("mail delivery failed"), "{}", stderr(&out));
    assert!(plain.received().is_empty(), "nothing is sent in the clear: {:?}", plain.received());
    // Nothing half-done: the earlier one-time password is still the one that works.
    assert_eq!(stored_passwords(&idp), 1);
    idp.start().await;
    assert!(signs_in(&idp, &first).await, "the earlier one-time password still signs in");
}

#[tokio::test]
async fn a_refused_message_fails_the_reset_and_its_password_never_works() {
    if !smtp_server_available() {
        return;
    }
    let mut idp = Idp::new();
    idp.import_register();
    let first = idp.reset_password(MING, "ming@example.gov.tw");
    let server = SmtpServer::start(Mode::Refuse, None, None);
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let out = reset(&idp, &[("IDP_MAIL__SMTP_URL", url.as_str())]);
    assert!(!out.status.success(), "a refused message is not a reset");
    let err = stderr(&out);
    assert!(err.contains("mail delivery failed") && err.contains("550"), "{err}");
    assert!(err.contains("nothing was reset"), "the helpdesk is told no password went out: {err}");
    // The server did get the message, so the failure is its 550 and not a connection problem.
    let received = server.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(!received[0].accepted);
    let refused = received[0].one_time_password();
    assert_ne!(refused, first);
    assert_eq!(stored_passwords(&idp), 1);
    idp.start().await;
    assert!(!signs_in(&idp, &refused).await, "the password in the refused mail does not sign in");
    assert!(signs_in(&idp, &first).await, "the earlier one-time password still signs in");
}

#[test]
fn a_server_certificate_from_an_untrusted_ca_is_refused() {
    if !smtp_server_available() {
        return;
    }
    let cert = test_ca("Test mail CA");
    let other = test_ca("Another CA");
    let server = SmtpServer::start(Mode::Smtps, Some(&cert), None);
    let url = format!("smtps://127.0.0.1:{}", server.port);
    let idp = Idp::with_env(&[("IDP_MAIL__SMTP_URL", url.as_str())]);
    idp.import_register();
    // Neither the built-in roots nor another CA's certificate vouch for this server.
    for settings in [vec![], vec![("IDP_MAIL__TLS_CA_FILE", other.ca.as_str())]] {
        let out = reset(&idp, &settings);
        assert!(!out.status.success(), "delivered to an untrusted server with {settings:?}");
        assert!(stderr(&out).contains("mail delivery failed"), "{}", stderr(&out));
    }
    assert!(server.received().is_empty(), "{:?}", server.received());
    assert_eq!(stored_passwords(&idp), 0);
    // The same server with its own CA configured: delivered, so the refusals were about trust.
    assert_succeeded(&reset(&idp, &[("IDP_MAIL__TLS_CA_FILE", cert.ca.as_str())]));
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_ca_file_that_cannot_take_effect_stops_the_command() {
    let cert = test_ca("Test mail CA");
    let idp = Idp::new();
    idp.import_register();
    let not_pem = idp.file("not-a-cert.pem", b"just text\n");
    let missing = idp.dir.path().join("missing.pem").display().to_string();
    let cases = [
        ("smtp://127.0.0.1:1", cert.ca.as_str(), "needs an smtps://"),
        ("", cert.ca.as_str(), "needs an smtps://"),
        ("smtps://127.0.0.1:1", not_pem.as_str(), "no PEM certificate"),
        ("smtps://127.0.0.1:1", missing.as_str(), "missing.pem"),
    ];
    for (url, file, why) in cases {
        let out = reset(&idp, &[("IDP_MAIL__SMTP_URL", url), ("IDP_MAIL__TLS_CA_FILE", file)]);
        assert!(!out.status.success(), "{url} with {file}");
        let err = stderr(&out);
        assert!(err.contains("mail.tls_ca_file") && err.contains(why), "{url} with {file}: {err}");
    }
    assert_eq!(stored_passwords(&idp), 0);
    assert!(!Path::new(&idp.outbox()).exists());
}
