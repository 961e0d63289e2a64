//! OCSP (RFC 6960), the client side: asks the issuing CA's responder whether one certificate is
//! revoked, and believes the answer only when it is provably the CA's, about this certificate,
//! for this request, and current.
//!
//! Each GPKI CA runs an OCSP responder beside its CRLs (docs/cards-and-pki.md, "Certificate authorities"). A CRL
//! is a large file fetched ahead of time; OCSP answers for one certificate at the moment of login,
//! so a card revoked an hour ago is refused without waiting for the next CRL.
//!
//! [`check_response`] is a pure function of its inputs (`now` is passed in), [`build_request`] is
//! one apart from its random nonce, and [`fetch`] is the one network call. What
//! [`check_response`] enforces, in order:
//! 1. `responseStatus` is `successful` and the body is an `id-pkix-ocsp-basic` response.
//! 2. The signature over `tbsResponseData` — the bytes exactly as received — verifies with the
//!    issuing CA's key, or with the key of a delegated responder certificate carried in `certs`
//!    that the same CA signed (by key, not by name: MOICA generations share one name), that has
//!    the extended key usage id-kp-OCSPSigning, and that is valid at `now`. Revocation of a
//!    delegated responder certificate is not checked: RFC 6960 §4.2.2.2.1 lets CAs exempt them
//!    (id-pkix-ocsp-nocheck) and keep them short-lived instead, which the validity check covers.
//! 3. A `SingleResponse` whose CertID equals the request's (hash algorithm, issuer name and key
//!    hashes, serial).
//! 4. If the response carries a nonce it equals the request's; a missing nonce is accepted, because
//!    real responders often serve pre-signed answers without one.
//! 5. `thisUpdate` at most five minutes ahead of `now` (clock skew); `nextUpdate`, when present,
//!    not in the past; without `nextUpdate`, `thisUpdate` at most one hour old.
//!
//! Requests use SHA-1 CertIDs: that is what the MOICA and GRCA responders expect (and what
//! RFC 5019 profiles mandate); SHA-1 serves here only as an identifier, not as a signature hash.

use std::time::Duration;

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode, Reader, Tagged};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{BasicOcspResponse, CertId, OcspGeneralizedTime, OcspRequest, OcspResponse, OcspResponseStatus};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Largest OCSP response accepted. Answers for one certificate are a few kilobytes even with a
/// responder certificate chain; anything far larger is not an OCSP response worth parsing.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How far `thisUpdate` may lie in the future: the responder's clock and ours differ.
pub const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;
/// How old a response without `nextUpdate` may be: such a responder promises nothing about
/// freshness, so only a recent answer says anything about now.
pub const MAX_AGE_WITHOUT_NEXT_UPDATE_SECS: i64 = 60 * 60;

/// Object identifiers of OCSP and of the signature algorithms accepted.
pub(crate) use pki_oids::asn1 as oid;

/// A request for one certificate's status: the DER to send and what the answer must match.
#[derive(Debug, Clone)]
pub struct OcspQuery {
    /// The DER `OCSPRequest`, for the POST body (or the GET URL of RFC 6960 appendix A).
    pub der: Vec<u8>,
    cert_id: CertId,
    /// The nonce extension's `extnValue` as sent (the DER OCTET STRING holding the random bytes).
    nonce: Vec<u8>,
}

/// What the responder says about the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    /// Revoked at this time (Unix seconds).
    Revoked {
        revoked_at: i64,
    },
    /// The responder does not know the certificate: it was not issued by this CA (or the CA keeps
    /// no record of it). Never as good as `Good`.
    Unknown,
}

/// A verified answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspAnswer {
    pub status: CertStatus,
    /// When the status was known to be correct (Unix seconds).
    pub this_update: i64,
    /// When newer status will be available; an answer may be cached until then.
    pub next_update: Option<i64>,
}

/// Why no usable answer was obtained. None of these says anything about the certificate itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    #[error("the issuing CA's certificate does not parse")]
    Issuer,
    #[error("the OCSP message does not encode or decode: {0}")]
    Encoding(String),
    #[error("the responder did not answer: {0}")]
    Unreachable(String),
    #[error("the responder answered HTTP status {0}")]
    HttpStatus(u16),
    #[error("the responder answered content type {0:?}, not application/ocsp-response")]
    ContentType(String),
    #[error("the responder's answer exceeds 64 KiB")]
    TooLarge,
    #[error("the responder refused the request: {0}")]
    NotSuccessful(&'static str),
    #[error("the response is not a basic OCSP response")]
    NotBasic,
    #[error("signature algorithm {0} is not supported")]
    UnsupportedAlgorithm(String),
    #[error("the response's signature verifies with neither the issuer's key nor an included certificate")]
    BadSignature,
    #[error("the response is signed by a certificate the issuing CA did not authorise for OCSP")]
    UnauthorizedSigner,
    #[error("the response has no answer for the requested certificate")]
    NoAnswerForCertificate,
    #[error("the response's nonce is not the request's")]
    NonceMismatch,
    #[error("the response's thisUpdate is in the future")]
    NotYetValid,
    #[error("the response is past its nextUpdate, or too old")]
    Stale,
}

impl From<der::Error> for OcspError {
    fn from(e: der::Error) -> Self {
        OcspError::Encoding(e.to_string())
    }
}

/// Builds a request for the certificate with serial `serial` issued by `issuer_der` (DER): a SHA-1
/// CertID and a random 16-byte nonce, so that a replayed old answer cannot pass for a fresh one.
/// `serial` is the big-endian magnitude, with or without the leading zero byte DER adds before a
/// high bit (x509-parser's `raw_serial()` and the profile's `serial_hex` both fit): RFC 5280
/// serials are positive.
pub fn build_request(issuer_der: &[u8], serial: &[u8]) -> Result<OcspQuery, OcspError> {
    let issuer = parse_certificate(issuer_der).ok_or(OcspError::Issuer)?;
    let cert_id = cert_id(&issuer, &oid::SHA1, serial)?;
    let random: [u8; 16] = rand::random();
    let nonce = OctetString::new(random.to_vec())?.to_der()?;
    let extension =
        Extension { extn_id: oid::OCSP_NONCE, critical: false, extn_value: OctetString::new(nonce.clone())? };
    let request = OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request { req_cert: cert_id.clone(), single_request_extensions: None }],
            request_extensions: Some(vec![extension]),
        },
        optional_signature: None,
    };
    Ok(OcspQuery { der: request.to_der()?, cert_id, nonce })
}

/// Verifies a response (DER) for `query` about a certificate of `issuer_der` at `now` (Unix
/// seconds); see the module documentation for the rules.
pub fn check_response(der: &[u8], query: &OcspQuery, issuer_der: &[u8], now: i64) -> Result<OcspAnswer, OcspError> {
    if der.len() > MAX_RESPONSE_BYTES {
        return Err(OcspError::TooLarge);
    }
    let response = OcspResponse::from_der(der)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(OcspError::NotSuccessful(status_name(response.response_status)));
    }
    let bytes =
        response.response_bytes.ok_or_else(|| OcspError::Encoding("successful without responseBytes".into()))?;
    if bytes.response_type != oid::OCSP_BASIC {
        return Err(OcspError::NotBasic);
    }
    let basic_der = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der)?;
    let (tbs, certs) = split_basic(basic_der)?;
    let issuer = parse_certificate(issuer_der).ok_or(OcspError::Issuer)?;
    let signature = basic.signature.as_bytes().ok_or_else(|| OcspError::Encoding("signature bit string".into()))?;
    authenticate(&basic.signature_algorithm.oid, tbs, signature, &issuer, &certs, now)?;

    let data = &basic.tbs_response_data;
    let single = data
        .responses
        .iter()
        .find(|r| same_cert_id(&r.cert_id, &query.cert_id))
        .ok_or(OcspError::NoAnswerForCertificate)?;
    if let Some(nonce) = data.response_extensions.iter().flatten().find(|e| e.extn_id == oid::OCSP_NONCE) {
        if !nonce_matches(nonce.extn_value.as_bytes(), &query.nonce) {
            return Err(OcspError::NonceMismatch);
        }
    }
    let this_update = unix(&single.this_update)?;
    let next_update = single.next_update.as_ref().map(unix).transpose()?;
    if this_update > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(OcspError::NotYetValid);
    }
    match next_update {
        Some(next) if next < now => return Err(OcspError::Stale),
        None if this_update < now.saturating_sub(MAX_AGE_WITHOUT_NEXT_UPDATE_SECS) => return Err(OcspError::Stale),
        _ => {}
    }
    let status = match &single.cert_status {
        x509_ocsp::CertStatus::Good(_) => CertStatus::Good,
        x509_ocsp::CertStatus::Revoked(info) => CertStatus::Revoked { revoked_at: unix(&info.revocation_time)? },
        x509_ocsp::CertStatus::Unknown(_) => CertStatus::Unknown,
    };
    Ok(OcspAnswer { status, this_update, next_update })
}

/// POSTs the request (RFC 6960 appendix A.1) and returns the body of a 200 answer of type
/// `application/ocsp-response`, at most [`MAX_RESPONSE_BYTES`]; `timeout` bounds the whole
/// exchange, body included, so a slow responder cannot hold a login.
pub async fn fetch(
    http: &reqwest::Client,
    url: &str,
    query: &OcspQuery,
    timeout: Duration,
) -> Result<Vec<u8>, OcspError> {
    use reqwest::header::{ACCEPT, CONTENT_TYPE};
    let unreachable =
        |e: reqwest::Error| OcspError::Unreachable(if e.is_timeout() { "timed out".into() } else { e.to_string() });
    let response = http
        .post(url)
        .timeout(timeout)
        .header(CONTENT_TYPE, "application/ocsp-request")
        .header(ACCEPT, "application/ocsp-response")
        .body(query.der.clone())
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(OcspError::HttpStatus(status));
    }
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if !mime.eq_ignore_ascii_case("application/ocsp-response") {
        return Err(OcspError::ContentType(content_type.chars().take(100).collect()));
    }
    crate::outbound::read_limited(response, MAX_RESPONSE_BYTES).await.map_err(|e| match e {
        crate::outbound::BodyError::TooLarge(_) => OcspError::TooLarge,
        crate::outbound::BodyError::Transport(e) => OcspError::Unreachable(e),
    })
}

/// The RFC 6960 name of a response status, as operators see it in responder logs.
fn status_name(status: OcspResponseStatus) -> &'static str {
    match status {
        OcspResponseStatus::Successful => "successful",
        OcspResponseStatus::MalformedRequest => "malformedRequest",
        OcspResponseStatus::InternalError => "internalError",
        OcspResponseStatus::TryLater => "tryLater",
        OcspResponseStatus::SigRequired => "sigRequired",
        OcspResponseStatus::Unauthorized => "unauthorized",
    }
}

pub(crate) fn parse_certificate(der: &[u8]) -> Option<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Some(cert),
        _ => None,
    }
}

/// The CertID of `serial` under `issuer`, hashed with `hash` (SHA-1 or SHA-256): the hash of the
/// issuer's name as encoded in its certificate and of its subjectPublicKey bits (RFC 6960 §4.1.1).
pub(crate) fn cert_id(
    issuer: &X509Certificate<'_>,
    hash: &ObjectIdentifier,
    serial: &[u8],
) -> Result<CertId, OcspError> {
    let (name_hash, key_hash) =
        issuer_hashes(issuer, hash).ok_or_else(|| OcspError::UnsupportedAlgorithm(hash.to_string()))?;
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned { oid: *hash, parameters: Some(der::asn1::Null.into()) },
        issuer_name_hash: OctetString::new(name_hash)?,
        issuer_key_hash: OctetString::new(key_hash)?,
        serial_number: SerialNumber::new(serial)?,
    })
}

/// The issuer's name and key hashes with `hash`, or `None` for a hash this code does not speak.
pub(crate) fn issuer_hashes(issuer: &X509Certificate<'_>, hash: &ObjectIdentifier) -> Option<(Vec<u8>, Vec<u8>)> {
    let algorithm = if *hash == oid::SHA1 {
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY
    } else if *hash == oid::SHA256 {
        &ring::digest::SHA256
    } else {
        return None;
    };
    let name = ring::digest::digest(algorithm, issuer.subject().as_raw());
    let key = ring::digest::digest(algorithm, &issuer.public_key().subject_public_key.data);
    Some((name.as_ref().to_vec(), key.as_ref().to_vec()))
}

/// CertIDs are equal when every field is; absent and NULL hash parameters are the same thing
/// (RFC 5754), and responders differ in which they send.
fn same_cert_id(a: &CertId, b: &CertId) -> bool {
    let null_params = |id: &CertId| id.hash_algorithm.parameters.as_ref().is_none_or(|p| p.tag() == der::Tag::Null);
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && null_params(a)
        && null_params(b)
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number == b.serial_number
}

/// RFC 6960 wraps the nonce in an OCTET STRING inside `extnValue`; some older responders echo the
/// bare bytes. Either form carries our random bytes, so either proves freshness.
fn nonce_matches(received: &[u8], sent: &[u8]) -> bool {
    received == sent || OctetString::from_der(sent).is_ok_and(|inner| received == inner.as_bytes())
}

fn unix(t: &OcspGeneralizedTime) -> Result<i64, OcspError> {
    i64::try_from(t.0.to_unix_duration().as_secs()).map_err(|_| OcspError::Encoding("time out of range".into()))
}

/// The raw `tbsResponseData` and `certs` of a BasicOCSPResponse, sliced from the received bytes:
/// the signature covers exactly those bytes, and re-encoding a decoded value could differ from
/// them (the decoder sorts SETs, for one).
fn split_basic(basic: &[u8]) -> Result<(&[u8], Vec<&[u8]>), OcspError> {
    let mut reader = der::SliceReader::new(basic)?;
    let parts = reader.sequence(|r| {
        let tbs = r.tlv_bytes()?;
        r.tlv_bytes()?; // signatureAlgorithm
        r.tlv_bytes()?; // signature
        let mut certs = Vec::new();
        if !r.is_finished() {
            let explicit = der::Header::decode(r)?;
            explicit.tag.assert_eq(der::Tag::ContextSpecific { constructed: true, number: der::TagNumber::N0 })?;
            r.read_nested(explicit.length, |r| {
                r.sequence(|r| {
                    while !r.is_finished() {
                        certs.push(r.tlv_bytes()?);
                    }
                    Ok(())
                })
            })?;
        }
        Ok((tbs, certs))
    })?;
    Ok(reader.finish(parts)?)
}

/// Finds who signed `tbs`: the issuer itself, or an included certificate the issuer authorised.
/// A certificate whose key verifies but that lacks the authorisation is reported as such, so an
/// operator can tell a misconfigured responder from a forged answer.
fn authenticate(
    algorithm: &ObjectIdentifier,
    tbs: &[u8],
    signature: &[u8],
    issuer: &X509Certificate<'_>,
    certs: &[&[u8]],
    now: i64,
) -> Result<(), OcspError> {
    if verify_signature(algorithm, issuer.public_key(), tbs, signature)? {
        return Ok(());
    }
    let mut unauthorized = false;
    for raw in certs {
        let Some(cert) = parse_certificate(raw) else { continue };
        if !verify_signature(algorithm, cert.public_key(), tbs, signature)? {
            continue;
        }
        if is_authorized_responder(&cert, issuer, now) {
            return Ok(());
        }
        unauthorized = true;
    }
    Err(if unauthorized { OcspError::UnauthorizedSigner } else { OcspError::BadSignature })
}

/// A delegated responder (RFC 6960 §4.2.2.2): issued by the CA itself (its name, and its key's
/// signature — the name alone would admit another MOICA generation), marked for OCSP signing,
/// and valid now.
fn is_authorized_responder(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>, now: i64) -> bool {
    if cert.issuer().as_raw() != issuer.subject().as_raw() {
        return false;
    }
    let Ok(algorithm) = ObjectIdentifier::from_bytes(cert.signature_algorithm.algorithm.as_bytes()) else {
        return false;
    };
    let signed_by_issuer =
        verify_signature(&algorithm, issuer.public_key(), cert.tbs_certificate.as_ref(), &cert.signature_value.data);
    if signed_by_issuer != Ok(true) {
        return false;
    }
    let ocsp_signing = match cert.extended_key_usage() {
        Ok(Some(eku)) => eku.value.ocsp_signing,
        _ => false,
    };
    let validity = cert.validity();
    ocsp_signing && validity.not_before.timestamp() <= now && now <= validity.not_after.timestamp()
}

/// Whether `signature` over `message` verifies with `key` under `algorithm`. A key of another type
/// than the algorithm needs is simply not the signer (`false`); an algorithm outside the accepted
/// set is an error, because no key could verify it.
fn verify_signature(
    algorithm: &ObjectIdentifier,
    key: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, OcspError> {
    let rsa = [
        (oid::SHA256_WITH_RSA, &signature::RSA_PKCS1_2048_8192_SHA256),
        (oid::SHA384_WITH_RSA, &signature::RSA_PKCS1_2048_8192_SHA384),
        (oid::SHA512_WITH_RSA, &signature::RSA_PKCS1_2048_8192_SHA512),
    ];
    let ecdsa: [(ObjectIdentifier, ObjectIdentifier, &signature::EcdsaVerificationAlgorithm); 4] = [
        (oid::ECDSA_SHA256, oid::P256, &signature::ECDSA_P256_SHA256_ASN1),
        (oid::ECDSA_SHA384, oid::P256, &signature::ECDSA_P256_SHA384_ASN1),
        (oid::ECDSA_SHA256, oid::P384, &signature::ECDSA_P384_SHA256_ASN1),
        (oid::ECDSA_SHA384, oid::P384, &signature::ECDSA_P384_SHA384_ASN1),
    ];
    if !rsa.iter().any(|(o, _)| o == algorithm) && !ecdsa.iter().any(|(o, _, _)| o == algorithm) {
        return Err(OcspError::UnsupportedAlgorithm(algorithm.to_string()));
    }
    let Ok(key_type) = ObjectIdentifier::from_bytes(key.algorithm.algorithm.as_bytes()) else { return Ok(false) };
    let chosen: Option<&dyn VerificationAlgorithm> = if key_type == oid::RSA_ENCRYPTION {
        rsa.iter().find(|(o, _)| o == algorithm).map(|(_, a)| *a as &dyn VerificationAlgorithm)
    } else if key_type == oid::EC_PUBLIC_KEY {
        let curve = key
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .and_then(|c| ObjectIdentifier::from_bytes(c.as_bytes()).ok());
        ecdsa
            .iter()
            .find(|(o, c, _)| o == algorithm && Some(*c) == curve)
            .map(|(_, _, a)| *a as &dyn VerificationAlgorithm)
    } else {
        None
    };
    Ok(chosen.is_some_and(|alg| {
        UnparsedPublicKey::new(alg, &key.subject_public_key.data).verify(message, signature).is_ok()
    }))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    use super::*;
    use test_pki::fixtures::{self as pki_fixtures, FixtureOptions, KeyAlgorithm, Manifest};
    use test_pki::ocsp_responder::{self, CertStatus as Said, ErrorStatus, ResponderKey};

    /// What the test responder is told to say, for the status the client should then read.
    fn said(status: CertStatus) -> Said {
        match status {
            CertStatus::Good => Said::Good,
            CertStatus::Revoked { revoked_at } => Said::Revoked { revoked_at },
            CertStatus::Unknown => Said::Unknown,
        }
    }

    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;

    struct Pki {
        _dir: tempfile::TempDir,
        path: PathBuf,
        manifest: Manifest,
        now: i64,
    }

    impl Pki {
        fn new(key_algorithm: KeyAlgorithm) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_path_buf();
            let now = crate::error::now();
            let manifest = pki_fixtures::generate_with(&path, &FixtureOptions { now, key_algorithm }).unwrap();
            Pki { _dir: dir, path, manifest, now }
        }

        fn pem(&self, file: &str) -> String {
            std::fs::read_to_string(self.path.join(file)).unwrap()
        }

        fn der(&self, file: &str) -> Vec<u8> {
            pki_fixtures::read_cert(&self.path, file).unwrap().to_vec()
        }

        fn key_pem(&self, cert_file: &str) -> String {
            self.pem(self.manifest.entry(cert_file).unwrap().key_file.as_deref().unwrap())
        }

        /// The CA's own key and certificate, as the CA simulator signs.
        fn ca_key(&self, ca_file: &str) -> ResponderKey {
            ResponderKey::from_pem(&self.pem(ca_file), &self.key_pem(ca_file)).unwrap()
        }

        fn serial(&self, file: &str) -> Vec<u8> {
            let der = self.der(file);
            parse_certificate(&der).unwrap().raw_serial().to_vec()
        }

        /// Asks about `cert_file` (issued by MOICA G2) and checks an answer signed by `key`.
        fn ask(&self, cert_file: &str, key: &ResponderKey, status: CertStatus, at: i64, validity: i64) -> Answer {
            let issuer = self.der(pki_fixtures::MOICA_G2);
            let query = build_request(&issuer, &self.serial(cert_file)).unwrap();
            let der = ocsp_responder::respond(&query.der, &issuer, key, |_| said(status), at, validity).unwrap();
            check_response(&der, &query, &issuer, self.now)
        }

        /// A delegated responder certificate from `ca_file`, valid over `(from, to)`.
        fn delegated(&self, ca_file: &str, ocsp_signing: bool, (from, to): (i64, i64)) -> ResponderKey {
            use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
            let ca_key = KeyPair::from_pem(&self.key_pem(ca_file)).unwrap();
            let issuer = Issuer::from_ca_cert_pem(&self.pem(ca_file), ca_key).unwrap();
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, "OCSP responder");
            params.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
            params.not_after = time::OffsetDateTime::from_unix_timestamp(to).unwrap();
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            if ocsp_signing {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
            }
            params.use_authority_key_identifier_extension = true;
            let cert = params.signed_by(&key, &issuer).unwrap();
            ResponderKey::from_pem(&cert.pem(), &key.serialize_pem()).unwrap()
        }
    }

    type Answer = Result<OcspAnswer, OcspError>;

    fn assert_statuses(pki: &Pki) {
        let key = pki.ca_key(pki_fixtures::MOICA_G2);
        let now = pki.now;
        let good = pki.ask(pki_fixtures::CITIZEN_WANG, &key, CertStatus::Good, now, HOUR).unwrap();
        assert_eq!(good, OcspAnswer { status: CertStatus::Good, this_update: now, next_update: Some(now + HOUR) });
        let revoked = CertStatus::Revoked { revoked_at: now - 10 * DAY };
        let answer = pki.ask(pki_fixtures::CITIZEN_LI_REVOKED, &key, revoked, now, HOUR).unwrap();
        assert_eq!(answer.status, revoked);
        let unknown = pki.ask(pki_fixtures::CITIZEN_CHEN, &key, CertStatus::Unknown, now, HOUR).unwrap();
        assert_eq!(unknown.status, CertStatus::Unknown);
    }

    #[test]
    fn ocsp_reports_good_revoked_and_unknown() {
        assert_statuses(&Pki::new(KeyAlgorithm::EcdsaP256));
    }

    #[test]
    fn ocsp_works_with_the_rsa_pki() {
        assert_statuses(&Pki::new(KeyAlgorithm::Rsa2048));
    }

    #[test]
    fn ocsp_refuses_answers_signed_by_another_key() {
        let pki = Pki::new(KeyAlgorithm::EcdsaP256);
        let (wang, now) = (pki_fixtures::CITIZEN_WANG, pki.now);
        // G2's certificate with G3's key: names the right CA, signature does not verify.
        let forged =
            ResponderKey::from_pem(&pki.pem(pki_fixtures::MOICA_G2), &pki.key_pem(pki_fixtures::MOICA_G3)).unwrap();
        assert_eq!(pki.ask(wang, &forged, CertStatus::Good, now, HOUR), Err(OcspError::BadSignature));
        // Another CA signing as itself: its key verifies, but MOICA G2 never authorised it.
        for other in [pki_fixtures::GCA, pki_fixtures::MOICA_G3, pki_fixtures::ROOT] {
            let key = pki.ca_key(other);
            assert_eq!(pki.ask(wang, &key, CertStatus::Good, now, HOUR), Err(OcspError::UnauthorizedSigner), "{other}");
        }
    }

    #[test]
    fn ocsp_accepts_only_authorised_delegated_responders() {
        let pki = Pki::new(KeyAlgorithm::EcdsaP256);
        let (wang, now) = (pki_fixtures::CITIZEN_WANG, pki.now);
        let valid = (now - DAY, now + 30 * DAY);
        let delegated = pki.delegated(pki_fixtures::MOICA_G2, true, valid);
        let answer = pki.ask(wang, &delegated, CertStatus::Good, now, HOUR).unwrap();
        assert_eq!(answer.status, CertStatus::Good);

        let no_eku = pki.delegated(pki_fixtures::MOICA_G2, false, valid);
        assert_eq!(pki.ask(wang, &no_eku, CertStatus::Good, now, HOUR), Err(OcspError::UnauthorizedSigner));
        let expired = pki.delegated(pki_fixtures::MOICA_G2, true, (now - 30 * DAY, now - DAY));
        assert_eq!(pki.ask(wang, &expired, CertStatus::Good, now, HOUR), Err(OcspError::UnauthorizedSigner));
        // G3 carries G2's exact name: only the signature on the responder certificate tells them apart.
        let other_generation = pki.delegated(pki_fixtures::MOICA_G3, true, valid);
        assert_eq!(pki.ask(wang, &other_generation, CertStatus::Good, now, HOUR), Err(OcspError::UnauthorizedSigner));
    }

    #[test]
    fn ocsp_checks_the_nonce_when_the_responder_sends_one() {
        let pki = Pki::new(KeyAlgorithm::EcdsaP256);
        let issuer = pki.der(pki_fixtures::MOICA_G2);
        let key = pki.ca_key(pki_fixtures::MOICA_G2);
        let serial = pki.serial(pki_fixtures::CITIZEN_WANG);
        let first = build_request(&issuer, &serial).unwrap();
        let second = build_request(&issuer, &serial).unwrap();
        assert_ne!(first.nonce, second.nonce);
        let der = ocsp_responder::respond(&first.der, &issuer, &key, |_| Said::Good, pki.now, HOUR).unwrap();
        assert!(check_response(&der, &first, &issuer, pki.now).is_ok());
        assert_eq!(check_response(&der, &second, &issuer, pki.now), Err(OcspError::NonceMismatch));

        // A responder that ignores nonces: the answer carries none and is accepted.
        let mut request = OcspRequest::from_der(&first.der).unwrap();
        request.tbs_request.request_extensions = None;
        let without = request.to_der().unwrap();
        let der = ocsp_responder::respond(&without, &issuer, &key, |_| Said::Good, pki.now, HOUR).unwrap();
        assert_eq!(check_response(&der, &first, &issuer, pki.now).unwrap().status, CertStatus::Good);
    }

    #[test]
    fn ocsp_refuses_stale_and_future_answers() {
        let pki = Pki::new(KeyAlgorithm::EcdsaP256);
        let key = pki.ca_key(pki_fixtures::MOICA_G2);
        let (wang, now) = (pki_fixtures::CITIZEN_WANG, pki.now);
        let ask = |at, validity| pki.ask(wang, &key, CertStatus::Good, at, validity);
        assert_eq!(ask(now - 2 * HOUR, HOUR), Err(OcspError::Stale), "nextUpdate an hour ago");
        assert!(ask(now - 2 * HOUR, 3 * HOUR).is_ok(), "old, but nextUpdate still ahead");
        assert_eq!(ask(now + 10 * 60, HOUR), Err(OcspError::NotYetValid));
        assert!(ask(now + 4 * 60, HOUR).is_ok(), "within the clock skew");
        // Without nextUpdate only a recent answer counts.
        let fresh = ask(now - 30 * 60, 0).unwrap();
        assert_eq!(fresh.next_update, None);
        assert_eq!(ask(now - 2 * HOUR, 0), Err(OcspError::Stale));
    }

    #[test]
    fn ocsp_refuses_an_answer_about_another_certificate() {
        let pki = Pki::new(KeyAlgorithm::EcdsaP256);
        let issuer = pki.der(pki_fixtures::MOICA_G2);
        let key = pki.ca_key(pki_fixtures::MOICA_G2);
        let asked = build_request(&issuer, &pki.serial(pki_fixtures::CITIZEN_CHEN)).unwrap();
        let wanted = build_request(&issuer, &pki.serial(pki_fixtures::CITIZEN_WANG)).unwrap();
        let der = ocsp_responder::respond(&asked.der, &issuer, &key, |_| Said::Good, pki.now, HOUR).unwrap();
        assert_eq!(check_response(&der, &wanted, &issuer, pki.now), Err(OcspError::NoAnswerForCertificate));
        // Same serial, other CA generation (same name, other key): another certificate too.
        let g3 = pki.der(pki_fixtures::MOICA_G3);
        let under_g3 = build_request(&g3, &pki.serial(pki_fixtures::CITIZEN_WANG)).unwrap();
        let der = ocsp_responder::respond(
            &under_g3.der,
            &g3,
            &pki.ca_key(pki_fixtures::MOICA_G3),
            |_| Said::Good,
            pki.now,
            HOUR,
        )
        .unwrap();
        assert_eq!(check_response(&der, &wanted, &g3, pki.now), Err(OcspError::NoAnswerForCertificate));
    }

    #[test]
    fn ocsp_reports_error_answers_and_garbage() {
        let pki = Pki::new(KeyAlgorithm::EcdsaP256);
        let issuer = pki.der(pki_fixtures::MOICA_G2);
        let query = build_request(&issuer, &pki.serial(pki_fixtures::CITIZEN_WANG)).unwrap();
        let check = |der: &[u8]| check_response(der, &query, &issuer, pki.now);
        assert_eq!(
            check(&ocsp_responder::error_response(ErrorStatus::TryLater)),
            Err(OcspError::NotSuccessful("tryLater"))
        );
        assert_eq!(
            check(&ocsp_responder::error_response(ErrorStatus::MalformedRequest)),
            Err(OcspError::NotSuccessful("malformedRequest"))
        );
        assert_eq!(
            check(&ocsp_responder::error_response(ErrorStatus::Unauthorized)),
            Err(OcspError::NotSuccessful("unauthorized"))
        );
        assert!(matches!(check(b"<html>busy</html>"), Err(OcspError::Encoding(_))));
        assert!(matches!(check(&[]), Err(OcspError::Encoding(_))));
        assert!(matches!(check(&vec![0x30; MAX_RESPONSE_BYTES + 1]), Err(OcspError::TooLarge)));
        let key = pki.ca_key(pki_fixtures::MOICA_G2);
        assert!(matches!(
            ocsp_responder::respond(b"nonsense", &issuer, &key, |_| Said::Good, pki.now, HOUR),
            Err(ocsp_responder::ResponderError::MalformedRequest)
        ));
        assert_eq!(build_request(b"not a certificate", &[1]).err(), Some(OcspError::Issuer));
    }

    #[actix_web::test]
    async fn ocsp_fetch_posts_the_request_and_refuses_odd_answers() {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let pki = Pki::new(KeyAlgorithm::EcdsaP256);
        let issuer = pki.der(pki_fixtures::MOICA_G2);
        let (cert_pem, key_pem) = (pki.pem(pki_fixtures::MOICA_G2), pki.key_pem(pki_fixtures::MOICA_G2));
        let (issuer_for_server, now) = (issuer.clone(), pki.now);
        let server = HttpServer::new(move || {
            let issuer = issuer_for_server.clone();
            let key = std::sync::Arc::new(ResponderKey::from_pem(&cert_pem, &key_pem).unwrap());
            let answer = move |req: actix_web::HttpRequest, body: web::Bytes| {
                let sent_type = req.headers().get("content-type").map(|v| v.as_bytes().to_vec());
                let der = ocsp_responder::respond(&body, &issuer, &key, |_| Said::Good, now, HOUR).unwrap();
                let ok = sent_type.as_deref() == Some(b"application/ocsp-request".as_slice());
                async move {
                    if ok {
                        HttpResponse::Ok().content_type("application/ocsp-response").body(der)
                    } else {
                        HttpResponse::UnsupportedMediaType().finish()
                    }
                }
            };
            App::new()
                .route("/ocsp", web::post().to(answer))
                .route("/html", web::post().to(|| async { HttpResponse::Ok().content_type("text/html").body("<p>") }))
                .route("/down", web::post().to(|| async { HttpResponse::ServiceUnavailable().finish() }))
                .route(
                    "/big",
                    web::post().to(|| async {
                        HttpResponse::Ok()
                            .content_type("application/ocsp-response")
                            .body(vec![0u8; MAX_RESPONSE_BYTES + 1])
                    }),
                )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let base = format!("http://{}", server.addrs()[0]);
        let running = server.run();
        let handle = running.handle();
        actix_web::rt::spawn(running);

        let http = reqwest::Client::new();
        let query = build_request(&issuer, &pki.serial(pki_fixtures::CITIZEN_WANG)).unwrap();
        let timeout = Duration::from_secs(5);
        let der = fetch(&http, &format!("{base}/ocsp"), &query, timeout).await.unwrap();
        assert_eq!(check_response(&der, &query, &issuer, now).unwrap().status, CertStatus::Good);
        let url = |path: &str| format!("{base}{path}");
        let html = fetch(&http, &url("/html"), &query, timeout).await;
        assert!(matches!(html, Err(OcspError::ContentType(t)) if t == "text/html"));
        assert_eq!(fetch(&http, &url("/down"), &query, timeout).await, Err(OcspError::HttpStatus(503)));
        assert_eq!(fetch(&http, &url("/big"), &query, timeout).await, Err(OcspError::TooLarge));
        handle.stop(false).await;
        assert!(matches!(fetch(&http, &url("/ocsp"), &query, timeout).await, Err(OcspError::Unreachable(_))));
    }

    // Interoperability vectors from OpenSSL 3.0 (`openssl ocsp` as client and as responder, with
    // an index file listing GOOD_SERIAL as valid and REVOKED_SERIAL as revoked on 2024-01-01 for
    // keyCompromise). The CA is a throwaway ECDSA P-256 key made for these vectors only.
    const VECTOR_CA: &str = "-----BEGIN CERTIFICATE-----
MIIB0DCCAXegAwIBAgIUeM++8yZkfCZEI0ogKOL/C80W4wwwCgYIKoZIzj0EAwIw
NTELMAkGA1UEBhMCVFcxDTALBgNVBAoMBFRlc3QxFzAVBgNVBAsMDk9DU1AgVmVj
dG9yIENBMCAXDTI2MTEyNDE4MzMzNloYDzIxMjYxMDMxMTgzMzM2WjA1MQswCQYD
VQQGEwJUVzENMAsGA1UECgwEVGVzdDEXMBUGA1UECwwOT0NTUCBWZWN0b3IgQ0Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARMwrGLJ1sdepp1v7PTQ2pP1sS1+aD2
3noKzdzUMtHUq96/bGiHu8fv5TkQOQyLIqzwtvJO3fkaqSQx4kCcgmLEo2MwYTAd
BgNVHQ4EFgQUUl4wSg98KPrxpw3VngXaBQv1C50wHwYDVR0jBBgwFoAUUl4wSg98
KPrxpw3VngXaBQv1C50wDgYDVR0PAQH/BAQDAgEGMA8GA1UdEwEB/wQFMAMBAf8w
CgYIKoZIzj0EAwIDRwAwRAIgbUsJfL5otgAPYvR19JtO6YCumgyFN/5oI9En+rle
XLQCIG8X9BJF8x2WdEaZgfRTMahQhf84gHnfsbAh6EABHLJA
-----END CERTIFICATE-----
";
    const VECTOR_CA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgIGkQuz2rRFuuwUd9
JIdnFRJbTPFweCRHXHpALxNwBpahRANCAARMwrGLJ1sdepp1v7PTQ2pP1sS1+aD2
3noKzdzUMtHUq96/bGiHu8fv5TkQOQyLIqzwtvJO3fkaqSQx4kCcgmLE
-----END PRIVATE KEY-----
";
    /// When the responses were produced (2026-11-24 18:33:36 UTC); their nextUpdate is in 2126.
    const VECTOR_NOW: i64 = 1_795_545_216 + 60;
    const GOOD_SERIAL: &str = "46b7a3b363f635d3fb43093c3f11b970";
    const REVOKED_SERIAL: &str = "8015f604cb068aff11cf0a2e40c69c1f";
    const REVOKED_AT: i64 = 1_704_067_200;
    /// `openssl ocsp -issuer ca.pem -cert good.pem -reqout` (with OpenSSL's nonce).
    const OPENSSL_REQUEST_NONCE: &str =
        "MHYwdDBNMEswSTAJBgUrDgMCGgUABBQZzypNTciuv/VHnowdcoTICwa8WwQUUl4wSg98KPrxpw3VngXaBQv1C50CEEa3o7Nj9jXT\
+0MJPD8RuXCiIzAhMB8GCSsGAQUFBzABAgQSBBCHWPlwFuNuHdnzLk0R4zv2";
    /// OpenSSL's answer to it, signed by the CA.
    const OPENSSL_RESPONSE_NONCE: &str =
        "MIIDNgoBAKCCAy8wggMrBgkrBgEFBQcwAQEEggMcMIIDGDCB5KE3MDUxCzAJBgNVBAYTAlRXMQ0wCwYDVQQKDARUZXN0MRcwFQYD\
VQQLDA5PQ1NQIFZlY3RvciBDQRgPMjAyNjExMjQxODMzMzZaMHMwcTBJMAkGBSsOAwIaBQAEFBnPKk1NyK6/9UeejB1yhMgLBrxb\
BBRSXjBKD3wo+vGnDdWeBdoFC/ULnQIQRrejs2P2NdP7Qwk8PxG5cIAAGA8yMDI2MTEyNDE4MzMzNlqgERgPMjEyNjEwMzExODMz\
MzZaoSMwITAfBgkrBgEFBQcwAQIEEgQQh1j5cBbjbh3Z8y5NEeM79jAKBggqhkjOPQQDAgNHADBEAiB4Rszrp+YVBtd52fiKbwVE\
9fmYraTupFQpaY5ygCsirwIgUc8CbCYkZ0SClGG/Vwy8v9NYDyU78rdx0QQdzertcPWgggHYMIIB1DCCAdAwggF3oAMCAQICFHjP\
vvMmZHwmRCNKICji/wvNFuMMMAoGCCqGSM49BAMCMDUxCzAJBgNVBAYTAlRXMQ0wCwYDVQQKDARUZXN0MRcwFQYDVQQLDA5PQ1NQ\
IFZlY3RvciBDQTAgFw0yNjExMjQxODMzMzZaGA8yMTI2MTAzMTE4MzMzNlowNTELMAkGA1UEBhMCVFcxDTALBgNVBAoMBFRlc3Qx\
FzAVBgNVBAsMDk9DU1AgVmVjdG9yIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAETMKxiydbHXqadb+z00NqT9bEtfmg9t56\
Cs3c1DLR1Kvev2xoh7vH7+U5EDkMiyKs8LbyTt35GqkkMeJAnIJixKNjMGEwHQYDVR0OBBYEFFJeMEoPfCj68acN1Z4F2gUL9Qud\
MB8GA1UdIwQYMBaAFFJeMEoPfCj68acN1Z4F2gUL9QudMA4GA1UdDwEB/wQEAwIBBjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49\
BAMCA0cAMEQCIG1LCXy+aLYAD2L0dfSbTumArpoMhTf+aCPRJ/q5Xly0AiBvF/QSRfMdlnRGmYH0UzGoUIX/OIB537GwIehAARyy\
QA==";
    /// `openssl ocsp -issuer ca.pem -cert good.pem -cert revoked.pem -no_nonce -reqout`.
    const OPENSSL_REQUEST_TWO: &str =
        "MIGhMIGeMIGbMEswSTAJBgUrDgMCGgUABBQZzypNTciuv/VHnowdcoTICwa8WwQUUl4wSg98KPrxpw3VngXaBQv1C50CEEa3o7Nj\
9jXT+0MJPD8RuXAwTDBKMAkGBSsOAwIaBQAEFBnPKk1NyK6/9UeejB1yhMgLBrxbBBRSXjBKD3wo+vGnDdWeBdoFC/ULnQIRAIAV\
9gTLBor/Ec8KLkDGnB8=";
    /// OpenSSL's answer to it: no nonce, one good and one revoked certificate.
    const OPENSSL_RESPONSE_TWO: &str =
        "MIIDngoBAKCCA5cwggOTBgkrBgEFBQcwAQEEggOEMIIDgDCCAUuhNzA1MQswCQYDVQQGEwJUVzENMAsGA1UECgwEVGVzdDEXMBUG\
A1UECwwOT0NTUCBWZWN0b3IgQ0EYDzIwMjYxMTI0MTgzMzM2WjCB/jBxMEkwCQYFKw4DAhoFAAQUGc8qTU3Irr/1R56MHXKEyAsG\
vFsEFFJeMEoPfCj68acN1Z4F2gUL9QudAhBGt6OzY/Y10/tDCTw/EblwgAAYDzIwMjYxMTI0MTgzMzM2WqARGA8yMTI2MTAzMTE4\
MzMzNlowgYgwSjAJBgUrDgMCGgUABBQZzypNTciuv/VHnowdcoTICwa8WwQUUl4wSg98KPrxpw3VngXaBQv1C50CEQCAFfYEywaK\
/xHPCi5AxpwfoRYYDzIwMjQwMTAxMDAwMDAwWqADCgEBGA8yMDI2MTEyNDE4MzMzNlqgERgPMjEyNjEwMzExODMzMzZaMAoGCCqG\
SM49BAMCA0cAMEQCIHZgtKV645rOKgIRSbBQtoNsrCr8c0u3K0V1HnjJgO8IAiAPRpsZMelQz3uH3pwEkv9qj65KKN1ygIGdJc3l\
nJOzMqCCAdgwggHUMIIB0DCCAXegAwIBAgIUeM++8yZkfCZEI0ogKOL/C80W4wwwCgYIKoZIzj0EAwIwNTELMAkGA1UEBhMCVFcx\
DTALBgNVBAoMBFRlc3QxFzAVBgNVBAsMDk9DU1AgVmVjdG9yIENBMCAXDTI2MTEyNDE4MzMzNloYDzIxMjYxMDMxMTgzMzM2WjA1\
MQswCQYDVQQGEwJUVzENMAsGA1UECgwEVGVzdDEXMBUGA1UECwwOT0NTUCBWZWN0b3IgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMB\
BwNCAARMwrGLJ1sdepp1v7PTQ2pP1sS1+aD23noKzdzUMtHUq96/bGiHu8fv5TkQOQyLIqzwtvJO3fkaqSQx4kCcgmLEo2MwYTAd\
BgNVHQ4EFgQUUl4wSg98KPrxpw3VngXaBQv1C50wHwYDVR0jBBgwFoAUUl4wSg98KPrxpw3VngXaBQv1C50wDgYDVR0PAQH/BAQD\
AgEGMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgbUsJfL5otgAPYvR19JtO6YCumgyFN/5oI9En+rleXLQCIG8X\
9BJF8x2WdEaZgfRTMahQhf84gHnfsbAh6EABHLJA";

    fn b64(s: &str) -> Vec<u8> {
        STANDARD.decode(s).unwrap()
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        crate::authn::card::profile::unhex(hex).unwrap()
    }

    /// The query OpenSSL's request stands for, request by request.
    fn openssl_queries(request: &[u8]) -> Vec<OcspQuery> {
        let parsed = OcspRequest::from_der(request).unwrap();
        let nonce = parsed
            .tbs_request
            .request_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == oid::OCSP_NONCE)
            .map(|e| e.extn_value.as_bytes().to_vec())
            .unwrap_or_default();
        parsed
            .tbs_request
            .request_list
            .iter()
            .map(|r| OcspQuery { der: request.to_vec(), cert_id: r.req_cert.clone(), nonce: nonce.clone() })
            .collect()
    }

    #[test]
    fn ocsp_accepts_openssl_responder_answers() {
        let issuer = pki_fixtures::pem_to_der(VECTOR_CA).unwrap();
        let [query] = &openssl_queries(&b64(OPENSSL_REQUEST_NONCE))[..] else { panic!("one request") };
        let answer = check_response(&b64(OPENSSL_RESPONSE_NONCE), query, &issuer, VECTOR_NOW).unwrap();
        assert_eq!(answer.status, CertStatus::Good);
        assert_eq!(answer.this_update, VECTOR_NOW - 60);

        let [good, revoked] = &openssl_queries(&b64(OPENSSL_REQUEST_TWO))[..] else { panic!("two requests") };
        let response = b64(OPENSSL_RESPONSE_TWO);
        assert_eq!(check_response(&response, good, &issuer, VECTOR_NOW).unwrap().status, CertStatus::Good);
        assert_eq!(
            check_response(&response, revoked, &issuer, VECTOR_NOW).unwrap().status,
            CertStatus::Revoked { revoked_at: REVOKED_AT }
        );
        // Our own requests name the certificates as OpenSSL does, whether the serial comes with
        // DER's leading zero byte (raw_serial) or without (serial_hex).
        let ours = build_request(&issuer, &hex_bytes(GOOD_SERIAL)).unwrap();
        assert_eq!(ours.cert_id, good.cert_id);
        let with_zero = [&[0u8][..], &hex_bytes(REVOKED_SERIAL)].concat();
        for serial in [hex_bytes(REVOKED_SERIAL), with_zero] {
            let ours = build_request(&issuer, &serial).unwrap();
            assert_eq!(ours.cert_id, revoked.cert_id);
            assert_eq!(
                check_response(&response, &ours, &issuer, VECTOR_NOW).unwrap().status,
                CertStatus::Revoked { revoked_at: REVOKED_AT }
            );
        }
        // OpenSSL's answer carries OpenSSL's nonce, not ours.
        assert_eq!(
            check_response(&b64(OPENSSL_RESPONSE_NONCE), &ours, &issuer, VECTOR_NOW),
            Err(OcspError::NonceMismatch)
        );
    }

    #[test]
    fn ocsp_responder_answers_openssl_requests() {
        let issuer = pki_fixtures::pem_to_der(VECTOR_CA).unwrap();
        let key = ResponderKey::from_pem(VECTOR_CA, VECTOR_CA_KEY).unwrap();
        let status_of = |serial: &[u8]| {
            let trimmed: Vec<u8> = serial.iter().copied().skip_while(|b| *b == 0).collect();
            if trimmed == hex_bytes(REVOKED_SERIAL) {
                Said::Revoked { revoked_at: REVOKED_AT }
            } else if trimmed == hex_bytes(GOOD_SERIAL) {
                Said::Good
            } else {
                Said::Unknown
            }
        };
        for request in [OPENSSL_REQUEST_NONCE, OPENSSL_REQUEST_TWO] {
            let request = b64(request);
            let der = ocsp_responder::respond(&request, &issuer, &key, status_of, VECTOR_NOW, HOUR).unwrap();
            let statuses: Vec<CertStatus> = openssl_queries(&request)
                .iter()
                .map(|q| check_response(&der, q, &issuer, VECTOR_NOW).unwrap().status)
                .collect();
            assert_eq!(statuses[0], CertStatus::Good);
            if let Some(revoked) = statuses.get(1) {
                assert_eq!(*revoked, CertStatus::Revoked { revoked_at: REVOKED_AT });
            }
        }
    }
}
