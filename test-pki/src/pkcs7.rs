//! A software card's signature: what the local card component returns for `signatureType: PKCS7`.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::OctetString;
use der::{Decode, Encode};
use pki_oids::asn1 as oid;
use ring::signature;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// A software card: signs content as the local component does with `signatureType: PKCS7`
/// (RSA PKCS#1 v1.5 SHA-256, signed attributes, signer certificate included). Used by the
/// card simulator and the tests; the real component does this inside the card.
pub fn sign_pkcs7(cert_der: &[u8], key_pkcs8_der: &[u8], content: &[u8]) -> Result<Vec<u8>, String> {
    use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
    use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignerInfo, SignerInfos};
    use der::asn1::{Any, SetOfVec};
    use x509_cert::attr::Attribute;
    use x509_cert::spki::AlgorithmIdentifierOwned;

    let e = |e: der::Error| e.to_string();
    let cert = Certificate::from_der(cert_der).map_err(e)?;
    let digest = Sha256::digest(content);
    let attr = |oid, value: Any| -> Result<Attribute, String> {
        let mut values = SetOfVec::new();
        values.insert(value).map_err(e)?;
        Ok(Attribute { oid, values })
    };
    let mut attrs = SetOfVec::new();
    attrs.insert(attr(oid::CONTENT_TYPE, Any::encode_from(&oid::DATA).map_err(e)?)?).map_err(e)?;
    attrs
        .insert(attr(
            oid::MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.to_vec()).map_err(e)?).map_err(e)?,
        )?)
        .map_err(e)?;
    let to_sign = attrs.to_der().map_err(e)?;
    let rng = ring::rand::SystemRandom::new();
    let (sig, sig_alg) = if let Ok(pair) = signature::RsaKeyPair::from_pkcs8(key_pkcs8_der) {
        let mut sig = vec![0u8; pair.public().modulus_len()];
        pair.sign(&signature::RSA_PKCS1_SHA256, &rng, &to_sign, &mut sig).map_err(|e| e.to_string())?;
        (sig, oid::RSA_ENCRYPTION)
    } else {
        let pair = signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, key_pkcs8_der, &rng)
            .map_err(|e| format!("the key is neither RSA nor P-256: {e}"))?;
        (pair.sign(&rng, &to_sign).map_err(|e| e.to_string())?.as_ref().to_vec(), oid::ECDSA_SHA256)
    };
    let alg = |oid| AlgorithmIdentifierOwned { oid, parameters: None };
    let si = SignerInfo {
        version: cms::content_info::CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: alg(oid::SHA256),
        signed_attrs: Some(attrs),
        signature_algorithm: alg(sig_alg),
        signature: OctetString::new(sig).map_err(e)?,
        unsigned_attrs: None,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms.insert(alg(oid::SHA256)).map_err(e)?;
    let mut certs = SetOfVec::new();
    certs.insert(CertificateChoices::Certificate(cert)).map_err(e)?;
    let mut infos = SetOfVec::new();
    infos.insert(si).map_err(e)?;
    let sd = SignedData {
        version: cms::content_info::CmsVersion::V1,
        digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::DATA,
            econtent: Some(Any::encode_from(&OctetString::new(content.to_vec()).map_err(e)?).map_err(e)?),
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(infos),
    };
    let ci = ContentInfo { content_type: oid::SIGNED_DATA, content: Any::encode_from(&sd).map_err(e)? };
    ci.to_der().map_err(e)
}
