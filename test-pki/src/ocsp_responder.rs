//! The responder side of OCSP (RFC 6960), for tests and demos only — the CA simulator and the
//! OCSP tests — like [`crate::fixtures`]. It answers from a callback instead of a CA
//! database, reads its key from an unprotected PEM file, and deliberately does not check that the
//! key belongs to the certificate it names, so tests can produce answers that must be refused.
//! Nothing here is for production.

use std::time::Duration;

use der::asn1::{BitString, GeneralizedTime, OctetString};
use der::{Decode, Encode};
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, OcspGeneralizedTime, OcspRequest, OcspResponse, ResponderId, ResponseData, RevokedInfo,
    SingleResponse,
};

use pki_oids::asn1 as oid;

use crate::fixtures;

/// What to answer about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    /// Revoked at this time (Unix seconds).
    Revoked {
        revoked_at: i64,
    },
    /// Not a certificate of this CA, or one the CA keeps no record of.
    Unknown,
}

/// Why no answer could be produced.
#[derive(Debug, thiserror::Error)]
pub enum ResponderError {
    #[error("PEM: {0}")]
    Pem(String),
    #[error("the key is neither ECDSA P-256 nor RSA (PKCS#8): {0}")]
    Key(String),
    #[error("the request is not an OCSP request")]
    MalformedRequest,
    #[error("the issuing CA's or the signer's certificate does not parse")]
    Issuer,
    #[error("encoding: {0}")]
    Encoding(#[from] der::Error),
    #[error("signing failed")]
    Signing,
}

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// Who signs the answers: a key, the certificate presented as its owner (the CA itself or a
/// delegated responder) and further certificates to include.
pub struct ResponderKey {
    signer: Signer,
    cert_der: Vec<u8>,
    extra_certs: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ResponderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.signer {
            Signer::Ecdsa(_) => "ecdsa-p256",
            Signer::Rsa(_) => "rsa",
        };
        f.debug_struct("ResponderKey").field("key", &kind).field("extra_certs", &self.extra_certs.len()).finish()
    }
}

impl ResponderKey {
    /// Reads the signer certificate and its PKCS#8 key (ECDSA P-256 or RSA), as `idp dev pki`
    /// writes them. The key is not matched against the certificate (see the module comment).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, ResponderError> {
        let cert_der = fixtures::pem_to_der(cert_pem).map_err(|e| ResponderError::Pem(e.to_string()))?;
        let key =
            PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| ResponderError::Pem(e.to_string()))?;
        let pkcs8 = key.secret_pkcs8_der();
        let signer = match RsaKeyPair::from_pkcs8(pkcs8) {
            Ok(pair) => Signer::Rsa(pair),
            Err(_) => Signer::Ecdsa(
                EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    pkcs8,
                    &ring::rand::SystemRandom::new(),
                )
                .map_err(|e| ResponderError::Key(e.to_string()))?,
            ),
        };
        Ok(ResponderKey { signer, cert_der, extra_certs: Vec::new() })
    }

    /// Also includes these certificates (DER) in every answer, e.g. a chain above a delegated
    /// responder.
    pub fn with_certs(mut self, certs: Vec<Vec<u8>>) -> Self {
        self.extra_certs = certs;
        self
    }

    /// The signer certificate (DER).
    pub fn certificate(&self) -> &[u8] {
        &self.cert_der
    }

    fn sign(&self, message: &[u8]) -> Result<(Vec<u8>, AlgorithmIdentifierOwned), ResponderError> {
        let rng = ring::rand::SystemRandom::new();
        match &self.signer {
            Signer::Ecdsa(pair) => {
                let sig = pair.sign(&rng, message).map_err(|_| ResponderError::Signing)?;
                Ok((sig.as_ref().to_vec(), AlgorithmIdentifierOwned { oid: oid::ECDSA_SHA256, parameters: None }))
            }
            Signer::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| ResponderError::Signing)?;
                let parameters = Some(der::asn1::Null.into());
                Ok((sig, AlgorithmIdentifierOwned { oid: oid::SHA256_WITH_RSA, parameters }))
            }
        }
    }

    /// The responder ID (RFC 6960 §4.2.1 byKey): the SHA-1 hash of the signer certificate's public
    /// key — of the certificate, not of the signing key, so that an answer signed with the wrong key
    /// still names the CA and fails only at the signature.
    fn key_hash(&self) -> Result<Vec<u8>, ResponderError> {
        let cert = Certificate::from_der(&self.cert_der).map_err(|_| ResponderError::Issuer)?;
        let public = cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
        Ok(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, public).as_ref().to_vec())
    }
}

/// The unsigned error answers of RFC 6960 §4.2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStatus {
    MalformedRequest,
    InternalError,
    TryLater,
    SigRequired,
    Unauthorized,
}

/// An error answer: `OCSPResponse { responseStatus }` without responseBytes, hence unsigned.
pub fn error_response(status: ErrorStatus) -> Vec<u8> {
    let code = match status {
        ErrorStatus::MalformedRequest => 1,
        ErrorStatus::InternalError => 2,
        ErrorStatus::TryLater => 3,
        ErrorStatus::SigRequired => 5,
        ErrorStatus::Unauthorized => 6,
    };
    vec![0x30, 0x03, 0x0a, 0x01, code]
}

/// Answers `request_der` for the CA `issuer_der`: each requested certificate of that CA gets
/// `status_of(serial)` (the INTEGER's content bytes as requested, so possibly with DER's leading
/// zero byte: compare magnitudes), a CertID naming another CA gets
/// `Unknown`. Echoes the request's nonce. `thisUpdate` is `now`; `nextUpdate` is
/// `now + validity_secs`, or absent when `validity_secs` is not positive (RFC 6960: newer status is
/// always available).
pub fn respond(
    request_der: &[u8],
    issuer_der: &[u8],
    key: &ResponderKey,
    status_of: impl Fn(&[u8]) -> CertStatus,
    now: i64,
    validity_secs: i64,
) -> Result<Vec<u8>, ResponderError> {
    let request = OcspRequest::from_der(request_der).map_err(|_| ResponderError::MalformedRequest)?;
    if request.tbs_request.request_list.is_empty() {
        return Err(ResponderError::MalformedRequest);
    }
    let issuer = Certificate::from_der(issuer_der).map_err(|_| ResponderError::Issuer)?;
    let this_update = time(now)?;
    let next_update = if validity_secs > 0 { Some(time(now.saturating_add(validity_secs))?) } else { None };
    let mut responses = Vec::new();
    for single in &request.tbs_request.request_list {
        let id = &single.req_cert;
        let ours = issuer_hashes(&issuer, &id.hash_algorithm.oid)?.is_some_and(|(name, key)| {
            id.issuer_name_hash.as_bytes() == name.as_slice() && id.issuer_key_hash.as_bytes() == key.as_slice()
        });
        let status = if ours { status_of(id.serial_number.as_bytes()) } else { CertStatus::Unknown };
        let cert_status = match status {
            CertStatus::Good => x509_ocsp::CertStatus::good(),
            CertStatus::Unknown => x509_ocsp::CertStatus::unknown(),
            CertStatus::Revoked { revoked_at } => x509_ocsp::CertStatus::revoked(RevokedInfo {
                revocation_time: time(revoked_at)?,
                revocation_reason: None,
            }),
        };
        responses.push(SingleResponse {
            cert_id: id.clone(),
            cert_status,
            this_update,
            next_update,
            single_extensions: None,
        });
    }
    let nonce: Vec<_> = request
        .tbs_request
        .request_extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == oid::OCSP_NONCE)
        .cloned()
        .collect();
    let tbs_response_data = ResponseData {
        version: x509_ocsp::Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(key.key_hash()?)?),
        produced_at: this_update,
        responses,
        response_extensions: (!nonce.is_empty()).then_some(nonce),
    };
    let (sig, signature_algorithm) = key.sign(&tbs_response_data.to_der()?)?;
    let certs = std::iter::once(&key.cert_der)
        .chain(&key.extra_certs)
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()?;
    let basic = BasicOcspResponse {
        tbs_response_data,
        signature_algorithm,
        signature: BitString::from_bytes(&sig)?,
        certs: Some(certs),
    };
    Ok(OcspResponse::successful(basic)?.to_der()?)
}

/// A CertID's issuer name hash and issuer key hash.
type NameAndKeyHash = (Vec<u8>, Vec<u8>);

/// The CertID hashes (RFC 6960 §4.1.1) of the issuer's name and key with `hash`, `None` for a hash
/// other than SHA-1 and SHA-256. Read with `x509-cert`, apart from the IdP's client, which reads
/// them with `x509-parser`: the two sides check each other instead of sharing a mistake.
fn issuer_hashes(
    issuer: &Certificate,
    hash: &der::asn1::ObjectIdentifier,
) -> Result<Option<NameAndKeyHash>, ResponderError> {
    let algorithm = match *hash {
        h if h == oid::SHA1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        h if h == oid::SHA256 => &ring::digest::SHA256,
        _ => return Ok(None),
    };
    let name = issuer.tbs_certificate.subject.to_der()?;
    let key = issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    Ok(Some((
        ring::digest::digest(algorithm, &name).as_ref().to_vec(),
        ring::digest::digest(algorithm, key).as_ref().to_vec(),
    )))
}

fn time(t: i64) -> Result<OcspGeneralizedTime, ResponderError> {
    let secs = u64::try_from(t).map_err(|_| der::Error::from(der::ErrorKind::DateTime))?;
    Ok(OcspGeneralizedTime(GeneralizedTime::from_unix_duration(Duration::from_secs(secs))?))
}
