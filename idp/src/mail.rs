//! Outgoing mail: SMTP in production, an outbox folder of `.eml` files by default.

use std::path::PathBuf;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Message};
use lettre::{FileTransport, SmtpTransport, Transport};

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
            let transport = SmtpTransport::from_url(config.mail.smtp_url.expose())
                .map_err(|e| InfraError::Mail(format!("mail.smtp_url: {e}")))?
                .timeout(Some(std::time::Duration::from_secs(20)))
                .build();
            Ok(Mailer::Smtp { transport, from })
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
