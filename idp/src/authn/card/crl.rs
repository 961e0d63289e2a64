//! A certificate revocation list read once into what a sign-in asks of it: is this serial listed?
//!
//! A national CA's complete CRL runs to 20 MB and 412,000 entries. Handing it to a path builder
//! that re-verifies its signature on every check would hash 20 MB per sign-in; a parsed copy per
//! entry would cost hundreds of bytes each. Here the DER is walked once, without copies: the
//! signature is verified once per issuer key, each serial goes into a hash set (constant-time
//! lookup, about 25 bytes an entry), and the DER itself is dropped unless its signer is not a
//! configured CA (then it is kept to verify against the issuer a path turns up, once per key).
//!
//! What is refused at load, because believing it could let a revoked card through or apply a
//! list to certificates it does not speak for: delta CRLs, indirect CRLs, CRLs limited to some
//! reasons, to CA or attribute certificates, or named relative to the issuer, and any critical
//! extension (of the list or of an entry) not understood here. A CRL with an issuing distribution
//! point names the partition it covers; it is used only for certificates that point to it.

use std::collections::HashSet;
use std::sync::Mutex;

use rustls_pki_types::SignatureVerificationAlgorithm;
use sha2::{Digest, Sha256};

/// Serials up to this many bytes (after leading zeros) are kept inline; RFC 5280 allows 20.
const INLINE: usize = 23;
/// Issuer keys whose verdict on an unconfigured signer's CRL is remembered.
const VERDICTS_MAX: usize = 16;

/// Why bytes are not a CRL the validator can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CrlError(pub String);

fn bad<T>(message: impl Into<String>) -> Result<T, CrlError> {
    Err(CrlError(message.into()))
}

/// A serial as its big-endian bytes without leading zeros, inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Serial([u8; INLINE + 1]);

impl Serial {
    fn new(trimmed: &[u8]) -> Option<Self> {
        let len = u8::try_from(trimmed.len()).ok().filter(|l| usize::from(*l) <= INLINE)?;
        let mut s = [0u8; INLINE + 1];
        s[0] = len;
        s[1..=trimmed.len()].copy_from_slice(trimmed);
        Some(Serial(s))
    }
}

/// The bytes of a serial without leading zero bytes (one zero stays for the serial 0).
pub fn trim_serial(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    &bytes[start..]
}

/// What is kept of a CRL whose signer was not among the keys offered at load.
struct Unverified {
    der: Vec<u8>,
    tbs: std::ops::Range<usize>,
    signature: std::ops::Range<usize>,
    algorithm: std::ops::Range<usize>,
    verdicts: Mutex<Vec<(Vec<u8>, bool)>>,
}

/// A CRL, parsed and indexed.
pub struct RevocationList {
    /// The issuer name's DER (tag included), as certificates carry it.
    pub issuer_der: Vec<u8>,
    /// Which CA key it names, when it says.
    pub authority_key_id: Option<Vec<u8>>,
    pub this_update: i64,
    pub next_update: i64,
    /// SHA-256 of the DER: tells a download of the same CRL apart from a new one.
    pub digest: [u8; 32],
    /// The partition it covers (issuing distribution point URIs); `None` for a complete CRL.
    pub scope: Option<Vec<String>>,
    entries: usize,
    serials: HashSet<Serial>,
    long_serials: HashSet<Box<[u8]>>,
    /// Issuer keys (SPKI DER) its signature verified with at load.
    signers: Vec<Vec<u8>>,
    unverified: Option<Unverified>,
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationList")
            .field("entries", &self.entries)
            .field("this_update", &self.this_update)
            .field("next_update", &self.next_update)
            .finish()
    }
}

/// A CA certificate's key as CRL checking needs it: a CRL is tried only with the keys of CAs
/// whose name it carries (and whose key identifier it names, when both say).
#[derive(Debug, Clone)]
pub struct CaKey {
    /// Subject name DER (tag included).
    pub subject_der: Vec<u8>,
    /// Subject key identifier, when the certificate has one.
    pub key_id: Option<Vec<u8>>,
    /// SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
}

impl CaKey {
    /// Reads a CA certificate (DER); `None` when it does not parse.
    pub fn from_certificate(der: &[u8]) -> Option<CaKey> {
        use x509_parser::prelude::FromDer;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
        let key_id = cert.iter_extensions().find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
        Some(CaKey { subject_der: cert.subject().as_raw().to_vec(), key_id, spki: cert.public_key().raw.to_vec() })
    }
}

impl RevocationList {
    /// Reads a DER CRL and verifies its signature with the key of each CA in `cas` that could
    /// have made it; the ones that verify are remembered. When none does, the DER is kept so
    /// [`RevocationList::signed_by`] can try the issuer a path turns up.
    pub fn parse(der: &[u8], cas: &[CaKey]) -> Result<Self, CrlError> {
        let parts = Parts::read(der)?;
        let mut signers = Vec::new();
        let candidates = cas.iter().filter(|ca| {
            ca.subject_der == parts.issuer
                && match (&ca.key_id, &parts.authority_key_id) {
                    (Some(ski), Some(aki)) => ski == aki,
                    _ => true,
                }
        });
        for ca in candidates {
            if verify(&ca.spki, parts.algorithm(der), parts.tbs(der), parts.signature(der)) {
                signers.push(ca.spki.clone());
            }
        }
        let unverified = signers.is_empty().then(|| Unverified {
            der: der.to_vec(),
            tbs: parts.tbs.clone(),
            signature: parts.signature.clone(),
            algorithm: parts.algorithm.clone(),
            verdicts: Mutex::new(Vec::new()),
        });
        Ok(RevocationList {
            issuer_der: parts.issuer,
            authority_key_id: parts.authority_key_id,
            this_update: parts.this_update,
            next_update: parts.next_update.ok_or_else(|| CrlError("no nextUpdate".into()))?,
            digest: Sha256::digest(der).into(),
            scope: parts.scope,
            entries: parts.entries,
            serials: parts.serials,
            long_serials: parts.long_serials,
            signers,
            unverified,
        })
    }

    /// Whether a CA offered at load verified its signature.
    pub fn verified_at_load(&self) -> bool {
        !self.signers.is_empty()
    }

    /// How many certificates it lists.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether it lists no certificate.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Whether the certificate with this serial (big-endian bytes, leading zeros or not) is
    /// listed. Constant time in the size of the list.
    pub fn lists(&self, serial: &[u8]) -> bool {
        let serial = trim_serial(serial);
        match Serial::new(serial) {
            Some(s) => self.serials.contains(&s),
            None => self.long_serials.contains(serial),
        }
    }

    /// Whether its signature verifies with this issuer key (SPKI DER). Keys offered at load
    /// answer at once; another key is checked once against the kept DER and remembered.
    pub fn signed_by(&self, issuer_spki: &[u8]) -> bool {
        if self.signers.iter().any(|s| s == issuer_spki) {
            return true;
        }
        let Some(u) = &self.unverified else { return false };
        let mut verdicts = u.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, ok)) = verdicts.iter().find(|(k, _)| k == issuer_spki) {
            return *ok;
        }
        let ok = verify(issuer_spki, &u.der[u.algorithm.clone()], &u.der[u.tbs.clone()], &u.der[u.signature.clone()]);
        if verdicts.len() < VERDICTS_MAX {
            verdicts.push((issuer_spki.to_vec(), ok));
        }
        ok
    }

    /// Whether it speaks for a certificate with these CRL distribution point URIs: a complete
    /// CRL for every certificate of its issuer, a partition only for those that point to it.
    pub fn covers(&self, distribution_points: &[String]) -> bool {
        match &self.scope {
            None => true,
            Some(uris) => distribution_points.iter().any(|d| uris.contains(d)),
        }
    }
}

/// The signature algorithms of the card profiles (RSA PKCS#1 v1.5, docs/cards-and-pki.md) plus ECDSA, which the
/// fast test fixtures and newer CAs use.
pub static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_3072_8192_SHA384,
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
];

/// Verifies `signature` over `message` with the key in `spki` (SPKI DER) by the algorithm named
/// `algorithm` (AlgorithmIdentifier contents), among those card validation accepts.
fn verify(spki: &[u8], algorithm: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok((key_algorithm, key)) = spki_parts(spki) else { return false };
    ALGORITHMS
        .iter()
        .filter(|a| a.signature_alg_id().as_ref() == algorithm && a.public_key_alg_id().as_ref() == key_algorithm)
        .any(|a| a.verify_signature(key, message, signature).is_ok())
}

/// The algorithm (AlgorithmIdentifier contents) and key bits of an SPKI.
fn spki_parts(spki: &[u8]) -> Result<(&[u8], &[u8]), CrlError> {
    let mut outer = Reader::new(spki);
    let mut inner = Reader::new(outer.expect(SEQUENCE)?);
    outer.end()?;
    let algorithm = inner.expect(SEQUENCE)?;
    let key = bit_string(inner.expect(BIT_STRING)?)?;
    inner.end()?;
    Ok((algorithm, key))
}

const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const SEQUENCE: u8 = 0x30;
const EXTENSIONS: u8 = 0xA0;

// Extension OIDs (contents of the OBJECT IDENTIFIER), id-ce 2.5.29.x.
const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1D, 0x23];
const CRL_NUMBER: &[u8] = &[0x55, 0x1D, 0x14];
const DELTA_CRL_INDICATOR: &[u8] = &[0x55, 0x1D, 0x1B];
const ISSUING_DISTRIBUTION_POINT: &[u8] = &[0x55, 0x1D, 0x1C];
const REASON_CODE: &[u8] = &[0x55, 0x1D, 0x15];
const INVALIDITY_DATE: &[u8] = &[0x55, 0x1D, 0x18];
const CERTIFICATE_ISSUER: &[u8] = &[0x55, 0x1D, 0x1D];

/// One pass over a CertificateList (RFC 5280 §5.1).
struct Parts {
    tbs: std::ops::Range<usize>,
    algorithm: std::ops::Range<usize>,
    signature: std::ops::Range<usize>,
    issuer: Vec<u8>,
    this_update: i64,
    next_update: Option<i64>,
    authority_key_id: Option<Vec<u8>>,
    scope: Option<Vec<String>>,
    entries: usize,
    serials: HashSet<Serial>,
    long_serials: HashSet<Box<[u8]>>,
}

impl Parts {
    fn tbs<'a>(&self, der: &'a [u8]) -> &'a [u8] {
        &der[self.tbs.clone()]
    }
    fn algorithm<'a>(&self, der: &'a [u8]) -> &'a [u8] {
        &der[self.algorithm.clone()]
    }
    fn signature<'a>(&self, der: &'a [u8]) -> &'a [u8] {
        &der[self.signature.clone()]
    }

    fn read(der: &[u8]) -> Result<Self, CrlError> {
        let range = |part: &[u8]| {
            let start = part.as_ptr() as usize - der.as_ptr() as usize;
            start..start + part.len()
        };
        let mut top = Reader::new(der);
        let mut list = Reader::new(top.expect(SEQUENCE)?);
        top.end()?;
        let tbs_tlv = list.read()?;
        if tbs_tlv.tag != SEQUENCE {
            return bad("tbsCertList is not a SEQUENCE");
        }
        let algorithm = list.expect(SEQUENCE)?;
        let signature = bit_string(list.expect(BIT_STRING)?)?;
        list.end()?;

        let mut tbs = Reader::new(tbs_tlv.contents);
        if tbs.peek() == Some(INTEGER) && tbs.expect(INTEGER)? != [1] {
            return bad("unsupported CRL version");
        }
        if tbs.expect(SEQUENCE)? != algorithm {
            return bad("the signature algorithm inside differs from the one outside");
        }
        let issuer = tbs.read()?;
        if issuer.tag != SEQUENCE {
            return bad("issuer is not a Name");
        }
        let this_update = time(&tbs.read()?)?;
        let next_update = match tbs.peek() {
            Some(UTC_TIME | GENERALIZED_TIME) => Some(time(&tbs.read()?)?),
            _ => None,
        };
        let mut parts = Parts {
            tbs: range(tbs_tlv.whole),
            algorithm: range(algorithm),
            signature: range(signature),
            issuer: issuer.whole.to_vec(),
            this_update,
            next_update,
            authority_key_id: None,
            scope: None,
            entries: 0,
            serials: HashSet::new(),
            long_serials: HashSet::new(),
        };
        if tbs.peek() == Some(SEQUENCE) {
            parts.read_entries(tbs.expect(SEQUENCE)?)?;
        }
        if tbs.peek() == Some(EXTENSIONS) {
            let mut wrapper = Reader::new(tbs.expect(EXTENSIONS)?);
            let extensions = wrapper.expect(SEQUENCE)?;
            wrapper.end()?;
            parts.read_extensions(extensions)?;
        }
        tbs.end()?;
        Ok(parts)
    }

    fn read_entries(&mut self, mut list: &[u8]) -> Result<(), CrlError> {
        // Entries are about 40 bytes each: reserve once rather than grow a 400,000-entry set
        // by doubling.
        self.serials.reserve(list.len() / 40);
        while !list.is_empty() {
            let mut all = Reader::new(list);
            let mut entry = Reader::new(all.expect(SEQUENCE)?);
            list = all.data;
            let serial = entry.expect(INTEGER)?;
            if serial.is_empty() {
                return bad("an entry has an empty serial");
            }
            time(&entry.read()?)?;
            if !entry.is_empty() {
                for_each_extension(entry.expect(SEQUENCE)?, |oid, critical, _| {
                    if critical && oid != REASON_CODE && oid != INVALIDITY_DATE {
                        return if oid == CERTIFICATE_ISSUER {
                            bad("indirect CRLs are not supported")
                        } else {
                            bad("an entry has a critical extension this server does not know")
                        };
                    }
                    Ok(())
                })?;
            }
            entry.end()?;
            let serial = trim_serial(serial);
            match Serial::new(serial) {
                Some(s) => self.serials.insert(s),
                None => self.long_serials.insert(serial.into()),
            };
            self.entries += 1;
        }
        self.serials.shrink_to_fit();
        Ok(())
    }

    fn read_extensions(&mut self, extensions: &[u8]) -> Result<(), CrlError> {
        for_each_extension(extensions, |oid, critical, value| {
            match oid {
                AUTHORITY_KEY_ID => {
                    let mut outer = Reader::new(value);
                    let mut aki = Reader::new(outer.expect(SEQUENCE)?);
                    if aki.peek() == Some(0x80) {
                        self.authority_key_id = Some(aki.expect(0x80)?.to_vec());
                    }
                }
                CRL_NUMBER => {}
                DELTA_CRL_INDICATOR => return bad("delta CRLs are not supported"),
                ISSUING_DISTRIBUTION_POINT => self.scope = Some(distribution_point_scope(value)?),
                _ if critical => return bad("a critical extension this server does not know"),
                _ => {}
            }
            Ok(())
        })
    }
}

/// The URIs an issuing distribution point names, refusing the restrictions this server does not
/// apply (only some reasons, indirect, CA or attribute certificates only, relative names).
fn distribution_point_scope(value: &[u8]) -> Result<Vec<String>, CrlError> {
    let mut outer = Reader::new(value);
    let mut idp = Reader::new(outer.expect(SEQUENCE)?);
    outer.end()?;
    let mut uris = Vec::new();
    while !idp.is_empty() {
        let field = idp.read()?;
        match field.tag {
            // distributionPoint [0] → fullName [0] GeneralNames (IMPLICIT).
            0xA0 => {
                let mut name = Reader::new(field.contents);
                let full = name.read()?;
                if full.tag != 0xA0 {
                    return bad("a distribution point named relative to the issuer is not supported");
                }
                let mut names = Reader::new(full.contents);
                while !names.is_empty() {
                    let general = names.read()?;
                    // uniformResourceIdentifier [6] IA5String.
                    if general.tag == 0x86 {
                        uris.push(String::from_utf8_lossy(general.contents).into_owned());
                    }
                }
            }
            // onlyContainsUserCerts [1]: every card certificate is a user certificate.
            0x81 => {}
            0x82 if field.contents == [0] => {}
            0x82 => return bad("a CRL of CA certificates only"),
            0x83 => return bad("a CRL limited to some reasons is not supported"),
            0x84 => return bad("indirect CRLs are not supported"),
            _ => return bad("a CRL of attribute certificates only"),
        }
    }
    if uris.is_empty() {
        return bad("an issuing distribution point without a URI");
    }
    Ok(uris)
}

/// Calls `f(oid, critical, value)` for each Extension of a SEQUENCE OF Extension's contents.
fn for_each_extension(
    mut list: &[u8],
    mut f: impl FnMut(&[u8], bool, &[u8]) -> Result<(), CrlError>,
) -> Result<(), CrlError> {
    while !list.is_empty() {
        let mut all = Reader::new(list);
        let mut ext = Reader::new(all.expect(SEQUENCE)?);
        list = all.data;
        let oid = ext.expect(OID)?;
        let critical = if ext.peek() == Some(BOOLEAN) {
            match ext.expect(BOOLEAN)? {
                [0xFF] => true,
                [0x00] => false,
                _ => return bad("a BOOLEAN that is not DER"),
            }
        } else {
            false
        };
        let value = ext.expect(OCTET_STRING)?;
        ext.end()?;
        f(oid, critical, value)?;
    }
    Ok(())
}

fn bit_string(contents: &[u8]) -> Result<&[u8], CrlError> {
    match contents.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => bad("a BIT STRING with unused bits"),
    }
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix
/// seconds.
fn time(tlv: &Tlv<'_>) -> Result<i64, CrlError> {
    let text = tlv.contents;
    let (year, rest) = match (tlv.tag, text.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&text[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&text[..4])?, &text[4..]),
        _ => return bad("a time that is neither UTCTime nor GeneralizedTime in DER"),
    };
    if rest[10] != b'Z' {
        return bad("a time not in UTC");
    }
    let (month, day) = (digits(&rest[0..2])?, digits(&rest[2..4])?);
    let (hour, minute, second) = (digits(&rest[4..6])?, digits(&rest[6..8])?, digits(&rest[8..10])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return bad("a time out of range");
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second)
}

fn digits(text: &[u8]) -> Result<i64, CrlError> {
    text.iter().try_fold(0i64, |n, b| match b {
        b'0'..=b'9' => Ok(n * 10 + i64::from(b - b'0')),
        _ => bad("a time with a non-digit"),
    })
}

/// One DER element.
struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
    /// Tag, length and contents.
    whole: &'a [u8],
}

/// Reads DER elements off the front of a slice, borrowing: nothing is copied.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.data.first().copied()
    }

    fn end(&self) -> Result<(), CrlError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            bad("trailing data")
        }
    }

    fn read(&mut self) -> Result<Tlv<'a>, CrlError> {
        let d = self.data;
        let (&tag, rest) = d.split_first().ok_or_else(|| CrlError("truncated".into()))?;
        if tag & 0x1F == 0x1F {
            return bad("a high tag number");
        }
        let (&first, rest) = rest.split_first().ok_or_else(|| CrlError("truncated".into()))?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 || rest.len() < n {
                return bad("a length that is not DER");
            }
            let len = rest[..n].iter().fold(0usize, |l, b| (l << 8) | usize::from(*b));
            if rest[0] == 0 || len < 0x80 {
                return bad("a length that is not minimal");
            }
            (len, &rest[n..])
        };
        if rest.len() < len {
            return bad("truncated");
        }
        let header = d.len() - rest.len();
        self.data = &rest[len..];
        Ok(Tlv { tag, contents: &rest[..len], whole: &d[..header + len] })
    }

    fn expect(&mut self, tag: u8) -> Result<&'a [u8], CrlError> {
        let tlv = self.read()?;
        if tlv.tag != tag {
            return bad(format!("expected tag {tag:#04x}, found {:#04x}", tlv.tag));
        }
        Ok(tlv.contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_pki::fixtures::{self as fx, FixtureOptions};
    use x509_parser::prelude::FromDer;

    fn ca(dir: &std::path::Path, file: &str) -> CaKey {
        CaKey::from_certificate(fx::read_cert(dir, file).unwrap().as_ref()).unwrap()
    }

    #[test]
    fn crl_index_reads_what_x509_parser_reads_and_verifies_once() {
        let dir = tempfile::tempdir().unwrap();
        fx::generate_with(dir.path(), &FixtureOptions::fast()).unwrap();
        let der = std::fs::read(dir.path().join(fx::CRL_MOICA_G2)).unwrap();
        let (g2, g3) = (ca(dir.path(), fx::MOICA_G2), ca(dir.path(), fx::MOICA_G3));
        let list = RevocationList::parse(&der, &[g3.clone(), g2.clone()]).unwrap();
        let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
        assert_eq!(list.issuer_der, parsed.issuer().as_raw());
        assert_eq!(list.this_update, parsed.last_update().timestamp());
        assert_eq!(Some(list.next_update), parsed.next_update().map(|t| t.timestamp()));
        assert_eq!(list.len(), parsed.iter_revoked_certificates().count());
        for entry in parsed.iter_revoked_certificates() {
            assert!(list.lists(entry.raw_serial()));
            let mut padded = vec![0, 0];
            padded.extend_from_slice(entry.raw_serial());
            assert!(list.lists(&padded), "leading zeros do not matter");
        }
        assert!(!list.lists(&[0x7f; 16]));
        assert!(list.signed_by(&g2.spki) && !list.signed_by(&g3.spki));
        assert!(list.verified_at_load() && list.unverified.is_none(), "verified at load: the DER is not kept");
        // Offered no key: the DER is kept and the issuer a path finds is tried.
        let later = RevocationList::parse(&der, &[]).unwrap();
        assert!(!later.verified_at_load());
        assert!(!later.signed_by(&g3.spki) && later.signed_by(&g2.spki) && later.signed_by(&g2.spki));
    }

    #[test]
    fn crl_index_refuses_truncation_trailing_data_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        fx::generate_with(dir.path(), &FixtureOptions::fast()).unwrap();
        let der = std::fs::read(dir.path().join(fx::CRL_MOICA_G2)).unwrap();
        assert!(RevocationList::parse(&der[..der.len() - 1], &[]).is_err());
        let mut longer = der.clone();
        longer.push(0);
        assert!(RevocationList::parse(&longer, &[]).is_err());
        assert!(RevocationList::parse(b"<html>", &[]).is_err());
        assert!(RevocationList::parse(&[], &[]).is_err());
    }

    #[test]
    fn crl_index_times_and_serials() {
        let utc = |s: &str| time(&Tlv { tag: UTC_TIME, contents: s.as_bytes(), whole: &[] });
        let gen = |s: &str| time(&Tlv { tag: GENERALIZED_TIME, contents: s.as_bytes(), whole: &[] });
        assert_eq!(utc("700101000000Z"), Ok(0));
        assert_eq!(utc("261202073315Z"), Ok(1_796_196_795));
        assert_eq!(gen("20261202073315Z"), Ok(1_796_196_795));
        assert_eq!(utc("490101000000Z").unwrap(), gen("20490101000000Z").unwrap());
        assert!(utc("261302073315Z").is_err());
        assert!(utc("2612020733150").is_err());
        assert_eq!(trim_serial(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(trim_serial(&[0, 0]), &[0]);
        assert!(Serial::new(&[1; INLINE]).is_some() && Serial::new(&[1; INLINE + 1]).is_none());
    }
}
