//! Outgoing mail: SMTP in production, an outbox folder of `.eml` files by default.

use std::path::PathBuf;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Message};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{FileTransport, SmtpTransport, Transport};
use rustls_pki_types::pem::PemObject;

use crate::config::Config;
use crate::error::InfraError;

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    Outbox { dir: PathBuf, from: Mailbox },
    Smtp { transport: SmtpTransport, from: Mailbox },
}

impl Mailer {
    /// Builds the mailer that the configuration asks for.
    pub fn from_config(config: &Config) -> Result<Self, InfraError> {
        let from: Mailbox = config.mail.from.parse().map_err(|e| InfraError::Mail(format!("mail.from: {e}")))?;
        if config.mail.smtp_url.is_empty() {
            Ok(Mailer::Outbox { dir: config.outbox_dir(), from })
        } else {
            let url = config.mail.smtp_url.expose();
            let mut builder = SmtpTransport::from_url(url)
                .map_err(|e| InfraError::Mail(format!("mail.smtp_url: {e}")))?
                .timeout(Some(std::time::Duration::from_secs(20)));
            if !config.mail.tls_ca_file.as_os_str().is_empty() {
                // The URL chose the TLS mode; only the roots it is checked against change.
                builder = builder.tls(tls_with_roots(url, &config.mail.tls_ca_file)?);
            }
            Ok(Mailer::Smtp { transport: builder.build(), from })
        }
    }

    /// Sends a plain-text message; blocking, so async callers use `spawn_blocking`.
    pub fn send(&self, to: &str, subject: &str, body: String) -> Result<(), InfraError> {
        let to: Mailbox = to.parse().map_err(|e| InfraError::Mail(format!("recipient: {e}")))?;
        let from = match self {
            Mailer::Outbox { from, .. } | Mailer::Smtp { from, .. } => from.clone(),
        };
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            // 8bit keeps the text readable as-is in the outbox (and in any mail client).
            .body(
                Body::new_with_encoding(wrap(&body), ContentTransferEncoding::EightBit)
                    .map_err(|_| InfraError::Mail("body".into()))?,
            )
            .map_err(|e| InfraError::Mail(e.to_string()))?;
        match self {
            Mailer::Outbox { dir, .. } => {
                std::fs::create_dir_all(dir).map_err(|e| InfraError::Mail(format!("{}: {e}", dir.display())))?;
                FileTransport::new(dir).send(&message).map(|_| ()).map_err(|e| InfraError::Mail(e.to_string()))
            }
            Mailer::Smtp { transport, .. } => {
                transport.send(&message).map(|_| ()).map_err(|e| InfraError::Mail(e.to_string()))
            }
        }
    }
}

/// The TLS mode an SMTP URL asks for, as lettre reads it: `smtps://` wraps the connection in
/// TLS, `?tls=required` / `?tls=opportunistic` use STARTTLS.
enum TlsMode {
    None,
    Wrapper,
    Required,
    Opportunistic,
}

fn tls_mode(url: &url::Url) -> TlsMode {
    let tls = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    match (url.scheme(), tls.as_deref()) {
        ("smtps", _) => TlsMode::Wrapper,
        ("smtp", Some("required")) => TlsMode::Required,
        ("smtp", Some("opportunistic")) => TlsMode::Opportunistic,
        _ => TlsMode::None,
    }
}

/// Whether an SMTP URL starts TLS at all (so that `mail.tls_ca_file` means something).
pub fn url_uses_tls(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| !matches!(tls_mode(&u), TlsMode::None))
}

/// The URL's TLS mode, checked against the built-in roots plus the certificates in `ca_file`.
fn tls_with_roots(url: &str, ca_file: &std::path::Path) -> Result<Tls, InfraError> {
    let setting = |why: String| InfraError::Internal(format!("mail.tls_ca_file: {}: {why}", ca_file.display()));
    let pem = std::fs::read(ca_file).map_err(|e| setting(e.to_string()))?;
    // lettre accepts a PEM file without any certificate; that would trust nothing new, silently.
    let count = rustls_pki_types::CertificateDer::pem_slice_iter(&pem).filter(Result::is_ok).count();
    if count == 0 {
        return Err(setting("no PEM certificate in the file".into()));
    }
    let roots = Certificate::from_pem(&pem).map_err(|e| setting(e.to_string()))?;
    let parsed = url::Url::parse(url).map_err(|e| InfraError::Internal(format!("mail.smtp_url: {e}")))?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let parameters = TlsParameters::builder(host)
        .add_root_certificate(roots)
        .build()
        .map_err(|e| InfraError::Internal(format!("mail.smtp_url: {e}")))?;
    Ok(match tls_mode(&parsed) {
        TlsMode::Wrapper => Tls::Wrapper(parameters),
        TlsMode::Required => Tls::Required(parameters),
        TlsMode::Opportunistic => Tls::Opportunistic(parameters),
        TlsMode::None => Tls::None,
    })
}

/// An epoch time as Taiwan's local time (UTC+8, no daylight saving), as people there read it.
pub fn local_time(t: i64) -> String {
    let taiwan = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(at) => {
            let at = at.to_offset(taiwan);
            format!("{:04}-{:02}-{:02} {:02}:{:02}", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute())
        }
        Err(_) => "-".into(),
    }
}

/// Wraps lines to at most 72 bytes, so the text can travel as 8bit (RFC 5322 line limits)
/// instead of base64, and stays readable in the outbox and in any mail client.
fn wrap(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + body.len() / 24);
    for line in body.lines() {
        let mut width = 0;
        for c in line.chars() {
            if width + c.len_utf8() > 72 {
                out.push('\n');
                width = 0;
            }
            out.push(c);
            width += c.len_utf8();
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrapped_lines_fit_and_short_lines_stay_whole() {
        let text = format!("{}\n一次性密碼: abcdEFGH2345jkmn\n", "人事".repeat(40));
        let wrapped = super::wrap(&text);
        assert!(wrapped.lines().all(|l| l.len() <= 72));
        assert!(wrapped.lines().any(|l| l == "一次性密碼: abcdEFGH2345jkmn"));
    }
}
