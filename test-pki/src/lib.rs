//! A test PKI shaped like Taiwan's government PKI, and the parts of the card world around it that
//! only tests and demos play: the certificate generator behind `idp dev pki` ([`fixtures`]), an OCSP
//! responder for it ([`ocsp_responder`]) and a software card's PKCS#7 signature ([`pkcs7`]).
//!
//! Used by the IdP's tests, by `idp dev pki` and `idp demo` (the IdP's default `dev-pki` feature)
//! and by the card simulators. It never depends on the IdP: what both need — OIDs and issuer names —
//! is in `pki-oids`. Nothing here is for production: it writes and reads private keys unprotected.

pub mod fixtures;
pub mod ocsp_responder;
pub mod pkcs7;

/// Lowercase hex, as the manifest writes serials.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current time in Unix seconds (test certificates are made for the real clock).
#[allow(clippy::disallowed_methods)]
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The bytes of [`hex`] text (either case); `None` for odd lengths or other characters.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Serial bytes as the manifest writes them: lowercase hex without leading zero bytes (DER's sign
/// byte, or a control request's padding), as the IdP's certificate profile does.
pub fn serial_hex(serial: &[u8]) -> String {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len().saturating_sub(1));
    hex(&serial[start..])
}

/// A certificate's (DER) serial as [`serial_hex`]; `None` when the certificate does not parse.
pub fn cert_serial_hex(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(serial_hex(cert.raw_serial()))
}
