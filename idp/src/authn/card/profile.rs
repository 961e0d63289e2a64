//! What the IdP reads from a card certificate (docs/cards-and-pki.md), as plain data.
//!
//! Parsing is separate from validation on purpose: the profile says what a certificate *claims*,
//! [`super::validate`] decides whether to believe it. Nothing here checks a signature, so nothing
//! here may decide a card kind or an identity on its own.

use sha2::{Digest, Sha256};
use x509_parser::asn1_rs::{Any, Class, FromDer, Oid, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::x509::X509Name;

use super::oids;

/// A certificate or extension that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Not a DER X.509 certificate (or trailing bytes after one).
    #[error("not an X.509 certificate: {0}")]
    Certificate(String),
    /// The Subject Directory Attributes extension is not `SEQUENCE OF Attribute`.
    #[error("malformed Subject Directory Attributes: {0}")]
    DirectoryAttributes(String),
    /// An extension the IdP relies on (key usage, policies) is malformed or repeated.
    #[error("malformed extension {0}")]
    Extension(String),
}

/// The key usage bits that matter for a card certificate; `None` in [`CertProfile::key_usage`]
/// means the extension is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyUsage {
    pub digital_signature: bool,
    pub non_repudiation: bool,
    pub key_encipherment: bool,
    pub data_encipherment: bool,
    pub key_cert_sign: bool,
    pub crl_sign: bool,
}

/// The holder identifiers GPKI puts in Subject Directory Attributes (extension 2.5.29.9).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectoryAttributes {
    /// Subject type OID (`oids::SUBJECT_TYPE_*`), dotted.
    pub subject_type: Option<String>,
    /// Last four characters of the holder's national ID (citizen certificates).
    pub national_id_last_four: Option<String>,
    /// The agency OID (agency certificates), dotted, whichever way it was encoded.
    pub agency_oid: Option<String>,
}

/// What the IdP needs from one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertProfile {
    /// Subject common name: the person's name on a citizen certificate.
    pub subject_cn: Option<String>,
    /// Subject `serialNumber` attribute (16 digits on citizen certificates; not the national ID).
    pub subject_serial_number: Option<String>,
    /// Subject organisation names (`O`), in order.
    pub subject_organizations: Vec<String>,
    /// Subject organisational units (`OU`), in order; the agency name on agency certificates.
    pub subject_org_units: Vec<String>,
    /// The subject name as text, for logs.
    pub subject_dn: String,
    /// The issuer name as text, for logs and the test-issuer check.
    pub issuer_dn: String,
    /// Every string value in the issuer name, so a marker can be matched per attribute rather than
    /// across the `, ` joins of the text form.
    pub issuer_values: Vec<String>,
    /// The issuer name's DER: with the serial, the byte-exact key of a certificate (two CA
    /// generations share one name, so this alone does not identify the CA).
    pub issuer_der: Vec<u8>,
    /// Certificate serial, lowercase hex without leading zero bytes.
    pub serial_hex: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo: a renewed certificate for the same card key keeps
    /// it, so a binding can follow the card across renewals (docs/cards-and-pki.md "Renewal").
    pub spki_sha256: [u8; 32],
    /// Key usage, `None` when the extension is absent.
    pub key_usage: Option<KeyUsage>,
    /// Validity, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Certificate policy OIDs, dotted.
    pub policies: Vec<String>,
    /// Authority key identifier, when present: which CA key signed it (generations share a name).
    pub authority_key_id: Option<Vec<u8>>,
    /// Subject Directory Attributes.
    pub directory: DirectoryAttributes,
    /// CRL distribution point URIs: which partition of its CA's CRLs speaks for it.
    pub crl_distribution_points: Vec<String>,
}

impl CertProfile {
    /// The SPKI hash as lowercase hex, the form stored with a binding.
    pub fn spki_sha256_hex(&self) -> String {
        hex(&self.spki_sha256)
    }

    /// Whether the key usage permits signatures (login is a signature). An absent extension does
    /// not count: every GPKI signing certificate carries it, and the card's other certificate
    /// (encryption) must not log in.
    pub fn permits_digital_signature(&self) -> bool {
        self.key_usage.is_some_and(|ku| ku.digital_signature)
    }

    /// The agency name an agency certificate names: its last `OU`, else its last `O`.
    pub fn agency_name(&self) -> Option<&str> {
        self.subject_org_units.last().or(self.subject_organizations.last()).map(String::as_str)
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of [`hex`] text (either case); `None` for odd lengths or other characters.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Reads a DER certificate into a [`CertProfile`].
pub fn parse(der: &[u8]) -> Result<CertProfile, ProfileError> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| ProfileError::Certificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ProfileError::Certificate("trailing data".into()));
    }
    from_certificate(&cert)
}

/// Builds the profile from an already parsed certificate.
pub fn from_certificate(cert: &X509Certificate<'_>) -> Result<CertProfile, ProfileError> {
    let subject = cert.subject();
    let attr = |name: &X509Name<'_>, dotted: &str| -> Vec<String> {
        name.iter_attributes()
            .filter(|a| a.attr_type().to_id_string() == dotted)
            .filter_map(|a| directory_string(a.attr_value()))
            .collect()
    };
    let key_usage =
        cert.key_usage().map_err(|e| ProfileError::Extension(format!("key usage: {e}")))?.map(|ext| KeyUsage {
            digital_signature: ext.value.digital_signature(),
            non_repudiation: ext.value.non_repudiation(),
            key_encipherment: ext.value.key_encipherment(),
            data_encipherment: ext.value.data_encipherment(),
            key_cert_sign: ext.value.key_cert_sign(),
            crl_sign: ext.value.crl_sign(),
        });
    let mut policies = Vec::new();
    let mut authority_key_id = None;
    let mut directory = DirectoryAttributes::default();
    let mut seen_directory = false;
    let mut crl_distribution_points = Vec::new();
    for ext in cert.iter_extensions() {
        let oid = ext.oid.to_id_string();
        match ext.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(points) => {
                for point in points.iter() {
                    if let Some(x509_parser::extensions::DistributionPointName::FullName(names)) =
                        &point.distribution_point
                    {
                        crl_distribution_points.extend(names.iter().filter_map(|n| match n {
                            x509_parser::extensions::GeneralName::URI(uri) => Some(uri.to_string()),
                            _ => None,
                        }));
                    }
                }
            }
            ParsedExtension::CertificatePolicies(list) => {
                policies.extend(list.iter().map(|p| p.policy_id.to_id_string()));
            }
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            ParsedExtension::ParseError { error } if oid == oids::EXT_CERTIFICATE_POLICIES => {
                return Err(ProfileError::Extension(format!("certificate policies: {error}")));
            }
            _ if oid == oids::EXT_SUBJECT_DIRECTORY_ATTRIBUTES => {
                if seen_directory {
                    return Err(ProfileError::DirectoryAttributes("extension repeated".into()));
                }
                seen_directory = true;
                directory = parse_directory_attributes(ext.value)?;
            }
            _ => {}
        }
    }
    Ok(CertProfile {
        subject_cn: attr(subject, "2.5.4.3").into_iter().next(),
        subject_serial_number: attr(subject, oids::DN_SERIAL_NUMBER).into_iter().next(),
        subject_organizations: attr(subject, "2.5.4.10"),
        subject_org_units: attr(subject, "2.5.4.11"),
        subject_dn: name_text(subject),
        issuer_dn: name_text(cert.issuer()),
        issuer_values: cert.issuer().iter_attributes().filter_map(|a| directory_string(a.attr_value())).collect(),
        issuer_der: cert.issuer().as_raw().to_vec(),
        serial_hex: hex(super::crl::trim_serial(cert.raw_serial())),
        spki_sha256: Sha256::digest(cert.public_key().raw).into(),
        key_usage,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        policies,
        authority_key_id,
        directory,
        crl_distribution_points,
    })
}

/// A distinguished name as `C=TW, O=…, OU=…`, with short names from the OID table.
pub fn name_text(name: &X509Name<'_>) -> String {
    name.iter_attributes()
        .map(|a| {
            let oid = a.attr_type().to_id_string();
            let value = directory_string(a.attr_value()).unwrap_or_else(|| format!("#{}", hex(a.as_slice())));
            format!("{}={value}", oids::dn_short_name(&oid))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes an X.500 DirectoryString (and the other string types names use). GPKI names are
/// mostly UTF8String, but older certificates use BMPString for Chinese, so both are read.
fn directory_string(value: &Any<'_>) -> Option<String> {
    if value.header.class() != Class::Universal {
        return None;
    }
    let data = value.data;
    match value.header.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString | Tag::VisibleString => {
            std::str::from_utf8(data).ok().map(str::to_owned)
        }
        Tag::BmpString => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => {
            if data.len() % 4 != 0 {
                return None;
            }
            data.chunks_exact(4).map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect()
        }
        // T.61 in practice carries Latin-1 in old certificates.
        Tag::TeletexString => Some(data.iter().map(|b| char::from(*b)).collect()),
        _ => None,
    }
}

/// An attribute value that should hold an OID: an OBJECT IDENTIFIER, or (docs/cards-and-pki.md: the encoding is
/// unconfirmed) a string holding the dotted form.
fn oid_or_string(value: &Any<'_>) -> Option<String> {
    if value.header.class() == Class::Universal && value.header.tag() == Tag::Oid {
        return Oid::try_from(value).ok().map(|o| o.to_id_string());
    }
    let text = directory_string(value)?;
    let text = text.trim();
    oids::arcs(text).map(|_| text.to_owned())
}

/// Reads a Subject Directory Attributes extension value:
/// `SEQUENCE SIZE (1..MAX) OF Attribute`, `Attribute ::= SEQUENCE { type OID, values SET OF ANY }`.
/// Attributes the IdP does not use are skipped; the first value of a known attribute is taken.
pub fn parse_directory_attributes(value: &[u8]) -> Result<DirectoryAttributes, ProfileError> {
    let bad = |what: &str| ProfileError::DirectoryAttributes(what.to_owned());
    let (rest, outer) = Any::from_der(value).map_err(|e| bad(&e.to_string()))?;
    if !rest.is_empty() || outer.header.tag() != Tag::Sequence {
        return Err(bad("not a single SEQUENCE"));
    }
    let mut out = DirectoryAttributes::default();
    let mut input = outer.data;
    while !input.is_empty() {
        let (next, attribute) = Any::from_der(input).map_err(|e| bad(&e.to_string()))?;
        input = next;
        if attribute.header.tag() != Tag::Sequence {
            return Err(bad("Attribute is not a SEQUENCE"));
        }
        let (after_type, attr_type) = Oid::from_der(attribute.data).map_err(|e| bad(&e.to_string()))?;
        let (after_values, values) = Any::from_der(after_type).map_err(|e| bad(&e.to_string()))?;
        if !after_values.is_empty() || values.header.tag() != Tag::Set {
            return Err(bad("Attribute values are not a single SET"));
        }
        let mut first = None;
        let mut vals = values.data;
        while !vals.is_empty() {
            let (n, v) = Any::from_der(vals).map_err(|e| bad(&e.to_string()))?;
            vals = n;
            first.get_or_insert(v);
        }
        let Some(first) = first else { return Err(bad("Attribute without a value")) };
        let (target, value) = match attr_type.to_id_string().as_str() {
            oids::ATTR_SUBJECT_TYPE => (&mut out.subject_type, oid_or_string(&first)),
            oids::ATTR_NATIONAL_ID_LAST_FOUR => (&mut out.national_id_last_four, directory_string(&first)),
            oids::ATTR_AGENCY_OID => (&mut out.agency_oid, oid_or_string(&first)),
            _ => continue,
        };
        if target.is_some() {
            return Err(bad("attribute repeated"));
        }
        *target = Some(value.ok_or_else(|| bad("attribute value of the wrong type"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_unhex_refuses_odd_lengths_and_other_characters() {
        assert_eq!(unhex("00ff7A"), Some(vec![0x00, 0xff, 0x7a]));
        assert_eq!(unhex(&hex(&[1, 2, 254])), Some(vec![1, 2, 254]));
        assert_eq!(unhex(""), Some(vec![]));
        for bad in ["abc", "zz", "0g", "+1", " 1"] {
            assert_eq!(unhex(bad), None, "{bad}");
        }
    }
    use test_pki::fixtures::{self as pki_fixtures, der, FixtureOptions};

    fn fixtures() -> (tempfile::TempDir, pki_fixtures::Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let manifest = pki_fixtures::generate_with(dir.path(), &FixtureOptions::fast()).unwrap();
        (dir, manifest)
    }

    fn load(dir: &tempfile::TempDir, file: &str) -> CertProfile {
        let pem = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let der = pki_fixtures::pem_to_der(&pem).unwrap();
        parse(&der).unwrap()
    }

    #[test]
    fn card_profile_reads_a_citizen_certificate() {
        let (dir, manifest) = fixtures();
        let p = load(&dir, pki_fixtures::CITIZEN_WANG);
        assert_eq!(p.subject_cn.as_deref(), Some("王小明"));
        let serial = p.subject_serial_number.clone().unwrap();
        assert_eq!(serial.len(), 16);
        assert!(serial.chars().all(|c| c.is_ascii_digit()));
        assert!(p.issuer_dn.contains("OU=內政部憑證管理中心"), "{}", p.issuer_dn);
        assert!(p.subject_dn.starts_with("C=TW, CN=王小明, serialNumber="), "{}", p.subject_dn);
        assert_eq!(p.directory.subject_type.as_deref(), Some(oids::SUBJECT_TYPE_NATURAL_PERSON));
        assert_eq!(p.directory.national_id_last_four.as_deref(), Some("6789"));
        assert_eq!(p.directory.agency_oid, None);
        assert!(p.permits_digital_signature());
        assert!(p.policies.iter().any(|o| o == oids::POLICY_GPKI_LEVEL_3));
        assert!(p.not_before < p.not_after);
        assert!(p.authority_key_id.is_some());
        let entry = manifest.entry(pki_fixtures::CITIZEN_WANG).unwrap();
        assert_eq!(entry.serial.as_deref(), Some(p.serial_hex.as_str()));
        assert_eq!(entry.national_id.as_deref(), Some("A123456789"));
        assert_eq!(p.spki_sha256_hex().len(), 64);
    }

    #[test]
    fn card_profile_reads_agency_oid_in_both_encodings() {
        let (dir, _) = fixtures();
        let p = load(&dir, pki_fixtures::AGENCY_DGPA);
        assert_eq!(p.directory.agency_oid.as_deref(), Some("2.16.886.101.20003.20001"));
        assert_eq!(p.directory.subject_type.as_deref(), Some(oids::SUBJECT_TYPE_GOVERNMENT_AGENCY));
        assert_eq!(p.agency_name(), Some("行政院人事行政總處"));
        assert_eq!(p.directory.national_id_last_four, None);
        // The second agency certificate carries its OID as a PrintableString.
        let p = load(&dir, pki_fixtures::AGENCY_EY_STRING_OID);
        assert_eq!(p.directory.agency_oid.as_deref(), Some("2.16.886.101.20003"));
    }

    #[test]
    fn card_profile_key_identity_follows_the_key_not_the_certificate() {
        let (dir, _) = fixtures();
        let sign = load(&dir, pki_fixtures::CITIZEN_WANG);
        let enc = load(&dir, pki_fixtures::CITIZEN_WANG_ENCRYPTION);
        let other = load(&dir, pki_fixtures::CITIZEN_LI);
        assert_ne!(sign.spki_sha256, other.spki_sha256);
        assert_ne!(sign.spki_sha256, enc.spki_sha256);
        assert_ne!(sign.serial_hex, other.serial_hex);
        assert!(!enc.permits_digital_signature());
        assert!(enc.key_usage.unwrap().key_encipherment);
    }

    #[test]
    fn card_profile_second_generation_ca_shares_the_name_byte_for_byte() {
        let (dir, _) = fixtures();
        let wang = load(&dir, pki_fixtures::CITIZEN_WANG); // MOICA G2
        let li = load(&dir, pki_fixtures::CITIZEN_LI); // MOICA G3
        assert_eq!(wang.issuer_der, li.issuer_der);
        assert_ne!(wang.authority_key_id, li.authority_key_id);
    }

    #[test]
    fn card_profile_directory_attributes_accept_string_and_oid_forms() {
        use pki_fixtures::der::AttrValue;
        let ext = der::subject_directory_attributes(&[
            (oids::ATTR_SUBJECT_TYPE, AttrValue::Utf8(oids::SUBJECT_TYPE_GOVERNMENT_UNIT)),
            (oids::ATTR_NATIONAL_ID_LAST_FOUR, AttrValue::Utf8("4554")),
            (oids::ATTR_BUSINESS_NUMBER, AttrValue::Printable("12345678")),
            (oids::ATTR_AGENCY_OID, AttrValue::Oid("2.16.886.101.20003.20001")),
        ])
        .unwrap();
        let d = parse_directory_attributes(&ext).unwrap();
        assert_eq!(d.subject_type.as_deref(), Some(oids::SUBJECT_TYPE_GOVERNMENT_UNIT));
        assert_eq!(d.national_id_last_four.as_deref(), Some("4554"));
        assert_eq!(d.agency_oid.as_deref(), Some("2.16.886.101.20003.20001"));

        let bmp: Vec<u8> = "2.16.886.101.20003".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let ext = der::seq(&[der::seq(&[der::oid(oids::ATTR_AGENCY_OID).unwrap(), der::set(&[der::tlv(0x1e, &bmp)])])]);
        assert_eq!(parse_directory_attributes(&ext).unwrap().agency_oid.as_deref(), Some("2.16.886.101.20003"));
    }

    #[test]
    fn card_profile_directory_attributes_refuse_malformed_values() {
        use pki_fixtures::der::AttrValue;
        // Not a SEQUENCE.
        assert!(parse_directory_attributes(&der::set(&[])).is_err());
        // Trailing bytes.
        let mut ext =
            der::subject_directory_attributes(&[(oids::ATTR_NATIONAL_ID_LAST_FOUR, AttrValue::Utf8("6789"))]).unwrap();
        ext.push(0);
        assert!(parse_directory_attributes(&ext).is_err());
        // An agency "OID" that is not one.
        let ext = der::subject_directory_attributes(&[(oids::ATTR_AGENCY_OID, AttrValue::Utf8("A21000000I"))]).unwrap();
        assert!(parse_directory_attributes(&ext).is_err());
        // The same attribute twice.
        let ext = der::subject_directory_attributes(&[
            (oids::ATTR_NATIONAL_ID_LAST_FOUR, AttrValue::Utf8("6789")),
            (oids::ATTR_NATIONAL_ID_LAST_FOUR, AttrValue::Utf8("4554")),
        ])
        .unwrap();
        assert!(parse_directory_attributes(&ext).is_err());
        // An empty value set.
        let ext = der::seq(&[der::seq(&[der::oid(oids::ATTR_SUBJECT_TYPE).unwrap(), der::set(&[])])]);
        assert!(parse_directory_attributes(&ext).is_err());
        // Values in a SEQUENCE instead of a SET, and a SET followed by something else: each on
        // its own, so neither half of the "a single SET" rule stands in for the other.
        let value = || der::tlv(0x0c, b"6789");
        let last_four = || der::oid(oids::ATTR_NATIONAL_ID_LAST_FOUR).unwrap();
        let ext = der::seq(&[der::seq(&[last_four(), der::seq(&[value()])])]);
        assert!(parse_directory_attributes(&ext).is_err(), "values in a SEQUENCE");
        let ext = der::seq(&[der::seq(&[last_four(), der::set(&[value()]), value()])]);
        assert!(parse_directory_attributes(&ext).is_err(), "something after the SET");
    }

    #[test]
    fn card_profile_refuses_what_is_not_a_certificate() {
        assert!(matches!(parse(b"not a certificate"), Err(ProfileError::Certificate(_))));
        let (dir, _) = fixtures();
        let pem = std::fs::read_to_string(dir.path().join(pki_fixtures::CITIZEN_WANG)).unwrap();
        let mut der = pki_fixtures::pem_to_der(&pem).unwrap();
        der.push(0);
        assert!(matches!(parse(&der), Err(ProfileError::Certificate(_))));
    }

    /// Changes one byte of a certificate: the byte `offset` places after the first occurrence of
    /// `needle`. The signature no longer verifies, which the profile does not look at.
    fn patched(der: &[u8], needle: &[u8], offset: usize, byte: u8) -> Vec<u8> {
        let at = der.windows(needle.len()).position(|w| w == needle).expect("needle in certificate");
        let mut der = der.to_vec();
        der[at + offset] = byte;
        der
    }

    #[test]
    fn card_profile_refuses_malformed_certificate_policies_but_not_other_malformed_extensions() {
        let (dir, _) = fixtures();
        let pem = std::fs::read_to_string(dir.path().join(pki_fixtures::CITIZEN_WANG)).unwrap();
        let der = pki_fixtures::pem_to_der(&pem).unwrap();
        // The PolicyInformation SEQUENCE turned into a SET.
        let policy = der::oid(oids::POLICY_GPKI_LEVEL_3).unwrap();
        let bad_policies = patched(&der, &der::seq(&[policy]), 0, 0x31);
        assert!(
            matches!(parse(&bad_policies), Err(ProfileError::Extension(ref m)) if m.starts_with("certificate policies")),
            "{:?}",
            parse(&bad_policies).map(|_| ())
        );
        // The authority key identifier's SEQUENCE turned into a SET: a malformed extension the
        // profile only reads, so the certificate is read without it (the validator finds the
        // issuer by name).
        let aki_oid = der::oid("2.5.29.35").unwrap();
        let octets_header = 2;
        let bad_aki = patched(&der, &aki_oid, aki_oid.len() + octets_header, 0x31);
        let profile = parse(&bad_aki).unwrap();
        assert_eq!(profile.authority_key_id, None);
        assert!(profile.policies.iter().any(|p| p == oids::POLICY_GPKI_LEVEL_3));
    }

    #[test]
    fn card_profile_reads_every_directory_string_kind_old_certificates_use() {
        let text = |tag: Tag, data: &[u8]| directory_string(&Any::from_tag_and_data(tag, data));
        let universal: Vec<u8> = "王a".chars().flat_map(|c| (c as u32).to_be_bytes()).collect();
        assert_eq!(text(Tag::UniversalString, &universal).as_deref(), Some("王a"));
        assert_eq!(text(Tag::UniversalString, &universal[..7]), None, "not whole 4-byte units");
        assert_eq!(text(Tag::UniversalString, &[0, 0x11, 0, 0]), None, "beyond Unicode");
        assert_eq!(text(Tag::TeletexString, b"Caf\xe9").as_deref(), Some("Caf\u{e9}"));
        assert_eq!(text(Tag::BmpString, &[0x73, 0x8b]).as_deref(), Some("王"));
        assert_eq!(text(Tag::BmpString, &[0x73]), None);
        assert_eq!(text(Tag::Integer, b"1"), None);
        let context =
            Any::new(x509_parser::asn1_rs::Header::new(Class::ContextSpecific, false, Tag::Utf8String, 1.into()), b"a");
        assert_eq!(directory_string(&context), None, "only universal string types");
    }

    #[test]
    fn card_profile_serial_hex_has_no_leading_zero_bytes() {
        assert_eq!(hex(super::super::crl::trim_serial(&[0, 0x8f, 1])), "8f01");
        assert_eq!(hex(super::super::crl::trim_serial(&[0])), "00");
    }

    #[test]
    fn card_fixtures_ca_profiles_match_pki_md() {
        use test_pki::fixtures::*;
        use x509_parser::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        generate_with(dir.path(), &FixtureOptions::fast()).unwrap();
        let g2 = read_cert(dir.path(), MOICA_G2).unwrap();
        let g3 = read_cert(dir.path(), MOICA_G3).unwrap();
        let (_, g2) = X509Certificate::from_der(&g2).unwrap();
        let (_, g3) = X509Certificate::from_der(&g3).unwrap();
        assert_eq!(g2.subject().as_raw(), g3.subject().as_raw(), "generations share one name");
        assert_ne!(g2.public_key().raw, g3.public_key().raw);
        let bc = g2.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let profile = crate::authn::card::profile::from_certificate(&g2).unwrap();
        assert!(profile.policies.iter().any(|p| p == oids::POLICY_GPKI_LEVEL_3));
        assert!(profile.subject_dn.contains("OU=內政部憑證管理中心"));
        let gca = read_cert(dir.path(), GCA).unwrap();
        assert!(crate::authn::card::profile::parse(&gca).unwrap().subject_dn.contains("OU=政府憑證管理中心"));
        let test = read_cert(dir.path(), GTESTCA).unwrap();
        assert!(crate::authn::card::profile::parse(&test).unwrap().subject_dn.contains("OU=政府測試憑證管理中心"));
        let test_agency = read_cert(dir.path(), AGENCY_TEST).unwrap();
        let (_, test_agency) = X509Certificate::from_der(&test_agency).unwrap();
        let (test_root, root) = (read_cert(dir.path(), TEST_ROOT).unwrap(), read_cert(dir.path(), ROOT).unwrap());
        let (_, test_root) = X509Certificate::from_der(&test_root).unwrap();
        let (_, root) = X509Certificate::from_der(&root).unwrap();
        assert_ne!(test_root.subject().as_raw(), root.subject().as_raw());
        assert!(test_agency.issuer().to_string().contains("政府測試憑證管理中心"));
    }
}
