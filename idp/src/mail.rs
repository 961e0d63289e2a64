//! Outgoing mail: SMTP in production, an outbox folder of `.eml` files by default.

use std::path::PathBuf;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Message};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{FileTransport, SmtpTransport, Transport};
use rustls_pki_types::pem::PemObject;

use crate::config::{tls_mode, Config, TlsMode};
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
            // 8bit keeps the text readable as-is in the outbox (and in any mail client); only a
            // link too long for any line (a long issuer URL) sends the body quoted-printable,
            // whose soft breaks mail clients join again, so the link still works.
            .body({
                let text = wrap(&body);
                let encoding = if text.lines().all(|l| l.len() <= WIDTH) {
                    ContentTransferEncoding::EightBit
                } else {
                    ContentTransferEncoding::QuotedPrintable
                };
                Body::new_with_encoding(text, encoding).map_err(|_| InfraError::Mail("body".into()))?
            })
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

/// How long a wrapped line may be, in bytes: 8bit bodies are sent only while every line stays
/// under 76 (a CJK character takes three).
const WIDTH: usize = 72;

/// Whether a line may break between `a` and `b`: at a space, or next to a CJK (non-ASCII)
/// character; never inside a run of ASCII letters, digits or symbols (a word, an address, a
/// password), never before closing punctuation and never after opening punctuation.
fn may_break(a: char, b: char) -> bool {
    let closing = "，。、；：？！）」』》〉】".contains(b);
    let opening = "（「『《〈【".contains(a);
    !closing && !opening && (a == ' ' || b == ' ' || !a.is_ascii() || !b.is_ascii())
}

/// Whether the text starts with a web link.
fn starts_with_link(text: &[char]) -> bool {
    let head: String = text.iter().take(8).collect();
    head.starts_with("http://") || head.starts_with("https://")
}

/// Wraps lines to at most 72 bytes, so the text can travel as 8bit (RFC 5322 line limits)
/// instead of base64 and stays readable in the outbox and in any mail client. Lines break at
/// the last place [`may_break`] allows, so no English word and no password is split; only a
/// single word longer than a whole line is cut, where it must be.
pub(crate) fn wrap(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + body.len() / 24);
    for line in body.lines() {
        let mut rest: Vec<char> = line.chars().collect();
        while rest.iter().map(|c| c.len_utf8()).sum::<usize>() > WIDTH {
            let (mut width, mut cut, mut hard) = (0, None, 1);
            for i in 1..rest.len() {
                width += rest[i - 1].len_utf8();
                if width > WIDTH {
                    break;
                }
                hard = i;
                if may_break(rest[i - 1], rest[i]) {
                    cut = Some(i);
                }
            }
            // A link longer than a line is never cut: cut, it would lead nowhere.
            let Some(cut) = cut.or_else(|| (!starts_with_link(&rest)).then_some(hard)) else {
                // It runs to the next space (or the line's end), alone on its line.
                let end = rest.iter().position(|c| *c == ' ').unwrap_or(rest.len());
                let head: String = rest[..end].iter().collect();
                out.push_str(&head);
                rest.drain(..end);
                while rest.first() == Some(&' ') {
                    rest.remove(0);
                }
                if !rest.is_empty() {
                    out.push('\n');
                }
                continue;
            };
            let head: String = rest[..cut].iter().collect();
            out.push_str(head.trim_end());
            out.push('\n');
            rest.drain(..cut);
            while rest.first() == Some(&' ') {
                rest.remove(0);
            }
        }
        out.extend(rest);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn width(line: &str) -> usize {
        line.len()
    }

    #[test]
    fn wrapped_lines_fit_and_short_lines_stay_whole() {
        let text = format!("{}\n一次性密碼: abcdEFGH2345jkmn\n", "人事".repeat(40));
        let wrapped = wrap(&text);
        assert!(wrapped.lines().all(|l| width(l) <= WIDTH), "{wrapped}");
        assert!(wrapped.lines().any(|l| l == "一次性密碼: abcdEFGH2345jkmn"));
    }

    #[test]
    fn no_english_word_is_split_and_every_word_survives() {
        let text = "Sign in with your national ID and the one-time password above; you will then choose a \
                    custom account, e-mail and password. It works once and expires in 72 hours.";
        let wrapped = wrap(text);
        assert!(wrapped.lines().count() > 1);
        assert!(wrapped.lines().all(|l| width(l) <= WIDTH && !l.starts_with(' ') && !l.ends_with(' ')));
        let words: Vec<&str> = wrapped.split_whitespace().collect();
        assert_eq!(words, text.split_whitespace().collect::<Vec<_>>(), "{wrapped}");
    }

    #[test]
    fn chinese_breaks_between_characters_but_never_before_closing_punctuation() {
        let text = "登入後需設定自訂帳號、電子郵件及登入密碼，輸入新密碼兩次後，點選【送出】，即完成帳號密碼設定。請於登入頁面輸入 abcdEFGH2345jkmn 登入。";
        let wrapped = wrap(text);
        assert!(wrapped.lines().count() > 1);
        for l in wrapped.lines() {
            assert!(width(l) <= WIDTH, "{l}");
            assert!(!l.starts_with(['，', '。', '、', '】']) && !l.ends_with('【'), "{wrapped}");
        }
        let letters = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert_eq!(letters(&wrapped), letters(text), "only the breaks are new: {wrapped}");
        assert!(wrapped.contains("abcdEFGH2345jkmn"));
    }

    #[test]
    fn only_a_word_longer_than_a_line_is_cut() {
        let long = "x".repeat(100);
        let (head, tail) = long.split_at(WIDTH);
        assert_eq!(wrap(&format!("see {long} now")), format!("see\n{head}\n{tail} now\n"));
    }

    #[test]
    fn a_link_is_never_cut_even_when_longer_than_a_line() {
        let link = format!("https://sso.example.gov.tw/{}/verify-email?token=AAAAAAAAAAAAAAAAAAAAAA", "x".repeat(40));
        let short = "https://sso.example.gov.tw/verify-email?token=AAAAAAAAAAAAAAAAAAAAAA";
        let wrapped = wrap(&format!("請點選下列連結：{link} 完成驗證。Open {short} to verify it."));
        assert!(wrapped.lines().any(|l| l == link), "{wrapped}");
        assert!(wrapped.lines().any(|l| l.contains(short)), "{wrapped}");
        let long_line = format!("{link}\n");
        assert_eq!(wrap(&long_line), long_line);
    }

    #[test]
    fn every_wrapped_body_can_travel_as_8bit() {
        let text = format!("{}\n{}\n", "人事服務網，".repeat(30), "word ".repeat(60));
        let body = lettre::message::Body::new_with_encoding(
            wrap(&text),
            lettre::message::header::ContentTransferEncoding::EightBit,
        );
        assert!(body.is_ok());
    }
}
