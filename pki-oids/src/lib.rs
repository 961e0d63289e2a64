//! Every object identifier and issuer name the card code knows, in one table: the IdP's card
//! sign-in reads certificates with these, and the test PKI (`test-pki`) writes certificates with
//! them. It is its own crate so that both depend on it and neither on the other.
//!
//! docs/cards-and-pki.md asks that OIDs, issuer names and URLs never be scattered through the code: the real
//! profiles are partly unconfirmed, and when one turns out different it must be one edit here (or a
//! configuration value that defaults to something here). OIDs are kept in dotted form because that
//! is how operators write them in configuration and how `x509-parser` prints them; [`arcs`] turns one
//! into the numeric arcs that `rcgen` wants.

/// X.509 extension Subject Directory Attributes (RFC 5280 §4.2.1.8); GPKI puts the holder's
/// identifiers here rather than in the subject name.
pub const EXT_SUBJECT_DIRECTORY_ATTRIBUTES: &str = "2.5.29.9";
/// X.509 extension Certificate Policies (RFC 5280 §4.2.1.4); `rcgen` has no builder for it.
pub const EXT_CERTIFICATE_POLICIES: &str = "2.5.29.32";

/// Subject Directory Attribute: the subject *type* (its value is one of the `SUBJECT_TYPE_*` OIDs).
pub const ATTR_SUBJECT_TYPE: &str = "2.16.886.1.100.2.1";
/// Subject Directory Attribute: the last four characters of the holder's national ID (citizen
/// certificates) — the only part of the ID the certificate carries (docs/cards-and-pki.md "same-person check").
pub const ATTR_NATIONAL_ID_LAST_FOUR: &str = "2.16.886.1.100.2.51";
/// Subject Directory Attribute: the company number of a business certificate (MOEACA). Not accepted
/// here; listed so that nobody mistakes it for an agency identifier.
pub const ATTR_BUSINESS_NUMBER: &str = "2.16.886.1.100.2.101";
/// Subject Directory Attribute: the agency OID of an agency certificate (also used by organisation
/// certificates, which are told apart by issuer). Encoded as an OID or a string: both are read.
pub const ATTR_AGENCY_OID: &str = "2.16.886.1.100.2.102";

/// Subject type: natural person (citizen certificate).
pub const SUBJECT_TYPE_NATURAL_PERSON: &str = "2.16.886.1.100.3.1.1";
/// Subject type: government agency (政府機關).
pub const SUBJECT_TYPE_GOVERNMENT_AGENCY: &str = "2.16.886.1.100.3.2.1.1";
/// Subject type: government unit (政府單位); accepted like an agency (docs/cards-and-pki.md: "accept both").
pub const SUBJECT_TYPE_GOVERNMENT_UNIT: &str = "2.16.886.1.100.3.2.1.2";

/// GPKI certificate policy, assurance level 3 (carried by the MOICA CAs and their certificates).
pub const POLICY_GPKI_LEVEL_3: &str = "2.16.886.101.0.3.3";

/// X.520 `serialNumber` name attribute: the 16 digits in a citizen certificate's subject (not the
/// national ID; their meaning is unconfirmed, so nothing relies on them).
pub const DN_SERIAL_NUMBER: &str = "2.5.4.5";

/// Short names for the distinguished-name attributes when a name is shown as text (audit log,
/// operator output). Anything else is shown by its dotted OID.
pub const DN_SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.6", "C"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.3", "CN"),
    (DN_SERIAL_NUMBER, "serialNumber"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
];

/// Extended key usage `id-kp-clientAuth` (1.3.6.1.5.5.7.3.2), as the DER content octets that
/// `rustls-webpki` compares. A card certificate with an EKU extension must allow client
/// authentication (or any purpose).
pub const EKU_CLIENT_AUTH_DER: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
/// Extended key usage `anyExtendedKeyUsage` (2.5.29.37.0), as DER content octets.
pub const EKU_ANY_DER: &[u8] = &[0x55, 0x1d, 0x25, 0x00];

/// Organisation of the government CAs' names (行政院, the Executive Yuan).
pub const ORG_EXECUTIVE_YUAN: &str = "行政院";
/// MOICA, the citizen-certificate authority: its issuer name contains `OU=<this>`. Informational:
/// the card kind is decided by trust anchors, never by this name.
pub const OU_MOICA: &str = "內政部憑證管理中心";
/// GCA, the agency-certificate authority (`OU=<this>`). Informational, like [`OU_MOICA`].
pub const OU_GCA: &str = "政府憑證管理中心";
/// GTestCA, GPKI's test CA: a certificate whose issuer name contains this is a test certificate and
/// is refused with its own message (the default of the configurable test-issuer markers).
pub const OU_GTESTCA: &str = "政府測試憑證管理中心";

/// The documented revocation endpoints (docs/cards-and-pki.md), as examples for operators; the code takes CRLs
/// from configuration only.
pub const EXAMPLE_CRL_URLS: &[&str] =
    &["https://crl-moica.moi.gov.tw/crl/MOICA-G3-complete.crl", "http://grca.nat.gov.tw/repository/CRL3/CA.crl"];

/// Object identifiers of the message formats around the certificates — CMS (the signed
/// challenge), OCSP — and of the hash and signature algorithms accepted (RSA PKCS#1 v1.5 as on the
/// GPKI CAs and cards, docs/cards-and-pki.md; ECDSA as in the test PKI and newer CAs).
pub mod asn1 {
    use der::asn1::ObjectIdentifier as Oid;
    pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
    pub const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    pub const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
    pub const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
    pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub const OCSP_BASIC: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.1");
    pub const OCSP_NONCE: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.2");
    pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    pub const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    pub const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    pub const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    pub const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    pub const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    pub const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
}

/// The numeric arcs of a dotted OID; `None` when it is not one (an empty arc or a non-number).
pub fn arcs(dotted: &str) -> Option<Vec<u64>> {
    let arcs: Option<Vec<u64>> = dotted.split('.').map(|a| a.parse().ok()).collect();
    arcs.filter(|a| a.len() >= 2)
}

/// The short name of a distinguished-name attribute, or the dotted OID.
pub fn dn_short_name(dotted: &str) -> &str {
    DN_SHORT_NAMES.iter().find(|(oid, _)| *oid == dotted).map_or(dotted, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_oids_parse_into_arcs() {
        for oid in [
            EXT_SUBJECT_DIRECTORY_ATTRIBUTES,
            EXT_CERTIFICATE_POLICIES,
            ATTR_SUBJECT_TYPE,
            ATTR_NATIONAL_ID_LAST_FOUR,
            ATTR_BUSINESS_NUMBER,
            ATTR_AGENCY_OID,
            SUBJECT_TYPE_NATURAL_PERSON,
            SUBJECT_TYPE_GOVERNMENT_AGENCY,
            SUBJECT_TYPE_GOVERNMENT_UNIT,
            POLICY_GPKI_LEVEL_3,
            DN_SERIAL_NUMBER,
        ] {
            assert!(arcs(oid).is_some(), "{oid}");
        }
        assert_eq!(arcs("2.16.886.1.100.2.51"), Some(vec![2, 16, 886, 1, 100, 2, 51]));
        assert_eq!(arcs("2..5"), None);
        assert_eq!(arcs("x"), None);
        assert_eq!(dn_short_name("2.5.4.11"), "OU");
        assert_eq!(dn_short_name("1.2.3"), "1.2.3");
    }
}
