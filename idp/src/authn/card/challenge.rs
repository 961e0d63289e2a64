//! The signed-challenge channel: the page asks the local card component (HiPKI-style signing
//! server on the person's machine) to sign a fresh server challenge with the card after the PIN,
//! and posts back a CMS (PKCS#7) SignedData. We verify that the signature covers exactly our
//! challenge and return the signer's certificate (and any others sent along) for validation.
//! The challenge itself is single use and short-lived (see the HTTP layer); the PIN never
//! reaches the server.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::OctetString;
use der::{Decode, Encode};
use ring::signature::{self, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// Object identifiers used in CMS.
use pki_oids::asn1 as oid;

/// Why a signed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("the signed message is not a CMS SignedData")]
    Malformed,
    #[error("the signed message covers other content than the challenge")]
    WrongContent,
    #[error("the signer's certificate is missing from the signed message")]
    NoSignerCertificate,
    #[error("only SHA-256 with RSA or ECDSA P-256 is accepted")]
    Algorithm,
    #[error("the signature does not verify")]
    BadSignature,
}

/// A verified signature: the signer's certificate and the other certificates sent along
/// (intermediates), all DER.
#[derive(Debug, Clone)]
pub struct SignedChallenge {
    pub signer: Vec<u8>,
    pub others: Vec<Vec<u8>>,
}

/// Verifies a CMS SignedData (DER) over exactly `challenge`.
pub fn verify(cms_der: &[u8], challenge: &[u8]) -> Result<SignedChallenge, ChallengeError> {
    if cms_der.len() > 64 * 1024 {
        return Err(ChallengeError::Malformed);
    }
    let ci = ContentInfo::from_der(cms_der).map_err(|_| ChallengeError::Malformed)?;
    if ci.content_type != oid::SIGNED_DATA {
        return Err(ChallengeError::Malformed);
    }
    let sd: SignedData = ci.content.decode_as().map_err(|_| ChallengeError::Malformed)?;
    // Attached content must be the challenge itself; detached content is taken to be it.
    if let Some(econtent) = &sd.encap_content_info.econtent {
        let content: OctetString = econtent.decode_as().map_err(|_| ChallengeError::Malformed)?;
        if content.as_bytes() != challenge {
            return Err(ChallengeError::WrongContent);
        }
    }
    let certs: Vec<Certificate> = sd
        .certificates
        .as_ref()
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let [si] = sd.signer_infos.0.as_slice() else { return Err(ChallengeError::Malformed) };
    let signer = certs
        .iter()
        .find(|c| match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                c.tbs_certificate.issuer == ias.issuer && c.tbs_certificate.serial_number == ias.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => c
                .tbs_certificate
                .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
                .ok()
                .flatten()
                .is_some_and(|(_, k)| k == *ski),
        })
        .ok_or(ChallengeError::NoSignerCertificate)?;
    if si.digest_alg.oid != oid::SHA256 {
        return Err(ChallengeError::Algorithm);
    }
    // With signed attributes the signature covers their DER (as a SET), and the message-digest
    // attribute must be the hash of the challenge; without, it covers the challenge itself.
    let signed_bytes = match &si.signed_attrs {
        Some(attrs) => {
            let digest = Sha256::digest(challenge);
            let mut digest_ok = false;
            for attr in attrs.iter() {
                if attr.oid == oid::MESSAGE_DIGEST {
                    let v = attr.values.iter().next().and_then(|v| v.decode_as::<OctetString>().ok());
                    digest_ok = v.is_some_and(|v| v.as_bytes() == digest.as_slice());
                }
                if attr.oid == oid::CONTENT_TYPE {
                    let v = attr.values.iter().next().and_then(|v| v.decode_as::<der::asn1::ObjectIdentifier>().ok());
                    if v != Some(oid::DATA) {
                        return Err(ChallengeError::WrongContent);
                    }
                }
            }
            if !digest_ok {
                return Err(ChallengeError::WrongContent);
            }
            attrs.to_der().map_err(|_| ChallengeError::Malformed)?
        }
        None => challenge.to_vec(),
    };
    let spki = &signer.tbs_certificate.subject_public_key_info;
    let key_bytes = spki.subject_public_key.raw_bytes();
    let sig = si.signature.as_bytes();
    let alg = si.signature_algorithm.oid;
    let ok = if spki.algorithm.oid == oid::RSA_ENCRYPTION && (alg == oid::RSA_ENCRYPTION || alg == oid::SHA256_WITH_RSA)
    {
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key_bytes).verify(&signed_bytes, sig).is_ok()
    } else if alg == oid::ECDSA_SHA256 {
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, key_bytes).verify(&signed_bytes, sig).is_ok()
    } else {
        return Err(ChallengeError::Algorithm);
    };
    if !ok {
        return Err(ChallengeError::BadSignature);
    }
    let der = |c: &Certificate| c.to_der().map_err(|_| ChallengeError::Malformed);
    let signer_der = der(signer)?;
    let mut others = Vec::new();
    for c in &certs {
        let d = der(c)?;
        if d != signer_der {
            others.push(d);
        }
    }
    Ok(SignedChallenge { signer: signer_der, others })
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_pki::pkcs7::sign_pkcs7;

    fn card() -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), key.serialize_der())
    }

    #[test]
    fn a_signature_over_the_challenge_verifies_and_returns_the_signer() {
        let (cert, key) = card();
        let cms = sign_pkcs7(&cert, &key, b"challenge-123").unwrap();
        let verified = verify(&cms, b"challenge-123").unwrap();
        assert_eq!(verified.signer, cert);
    }

    #[test]
    fn another_challenge_or_a_tampered_signature_is_refused() {
        let (cert, key) = card();
        let cms = sign_pkcs7(&cert, &key, b"challenge-123").unwrap();
        assert_eq!(verify(&cms, b"challenge-456").unwrap_err(), ChallengeError::WrongContent);
        let mut bad = cms.clone();
        let n = bad.len();
        bad[n - 5] ^= 0x55;
        assert!(verify(&bad, b"challenge-123").is_err());
        assert_eq!(verify(b"garbage", b"x").unwrap_err(), ChallengeError::Malformed);
        // A signature made by another key with this certificate attached does not verify.
        let (_, other_key) = card();
        let forged = sign_pkcs7(&cert, &other_key, b"challenge-123").unwrap();
        assert_eq!(verify(&forged, b"challenge-123").unwrap_err(), ChallengeError::BadSignature);
    }
}
