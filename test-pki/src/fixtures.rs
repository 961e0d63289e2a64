//! The test PKI generator behind `idp dev pki`: a PKI shaped like Taiwan's government PKI (docs/cards-and-pki.md).
//!
//! Real citizen and agency cards cannot be used in tests or demos, so this builds hierarchies with
//! the same *shape*: a GRCA-like root; MOICA-like citizen CAs (two generations with one
//! byte-identical name and different keys, because path building must tell them apart by key); a
//! GCA-like agency CA; a GTestCA-like test CA under its own root; people's and agencies'
//! certificates with GPKI's Subject Directory Attributes; an expired, a revoked and an encryption
//! certificate; an impostor CA that copies MOICA's name; and signed CRLs. File names are fixed so
//! tests, the demo and the card simulators can name them; keys are fresh on every run.
//!
//! Nothing here is for production: it writes private keys unprotected.

use std::path::{Path, PathBuf};

use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint, CustomExtension,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use pki_oids as oids;

/// GRCA-like production root.
pub const ROOT: &str = "grca-root.pem";
/// MOICA-like citizen CA, generation 2.
pub const MOICA_G2: &str = "moica-g2.pem";
/// MOICA-like citizen CA, generation 3: the same subject name as G2, another key.
pub const MOICA_G3: &str = "moica-g3.pem";
/// GCA-like agency CA.
pub const GCA: &str = "gca.pem";
/// The test root above GTestCA (never a production anchor).
pub const TEST_ROOT: &str = "gtest-root.pem";
/// GTestCA-like test CA.
pub const GTESTCA: &str = "gtestca.pem";
/// An unrelated self-signed CA that copies MOICA's name: trusted by nobody.
pub const UNTRUSTED_CA: &str = "untrusted-ca.pem";

/// 王小明's signing certificate (MOICA G2).
pub const CITIZEN_WANG: &str = "citizen-A123456789.pem";
/// 王小明's encryption certificate (key usage keyEncipherment only; must not log in).
pub const CITIZEN_WANG_ENCRYPTION: &str = "citizen-A123456789-encryption.pem";
/// 王小明's signing certificate with an extended key usage for servers and e-mail only: not for
/// signing in (RFC 5280 §4.2.1.12).
pub const CITIZEN_WANG_EKU_SERVER: &str = "citizen-A123456789-eku-server.pem";
/// 王小明's signing certificate whose extended key usage lists server, then client
/// authentication: good for signing in.
pub const CITIZEN_WANG_EKU_CLIENT: &str = "citizen-A123456789-eku-client.pem";
/// 王小明's signing certificate with the any-purpose extended key usage: good for signing in.
pub const CITIZEN_WANG_EKU_ANY: &str = "citizen-A123456789-eku-any.pem";
/// 王小明's old, expired card.
pub const CITIZEN_WANG_EXPIRED: &str = "citizen-A123456789-expired.pem";
/// 王小明's renewed signing certificate: a new serial for the same key and subject as
/// [`CITIZEN_WANG`], as a renewal on the same card gives (the binding follows the key).
pub const CITIZEN_WANG_RENEWED: &str = "citizen-A123456789-renewed.pem";
/// A valid certificate with [`CITIZEN_WANG`]'s subject and another key: a new card, which a
/// binding of the old one must not sign in.
pub const CITIZEN_WANG_NEW_KEY: &str = "citizen-A123456789-new-key.pem";
/// A certificate for 王小明 from the untrusted impostor CA.
pub const CITIZEN_WANG_UNTRUSTED: &str = "citizen-A123456789-untrusted.pem";
/// 李美華's signing certificate (MOICA G3, the second generation).
pub const CITIZEN_LI: &str = "citizen-B223344554.pem";
/// 李美華's old card, revoked in the MOICA G2 CRL.
pub const CITIZEN_LI_REVOKED: &str = "citizen-B223344554-revoked.pem";
/// 陳志強's signing certificate (valid; he is separated in the demo register).
pub const CITIZEN_CHEN: &str = "citizen-C123456709.pem";
/// 行政院人事行政總處's agency certificate; agency OID encoded as an OID.
pub const AGENCY_DGPA: &str = "agency-A21000000I.pem";
/// 行政院's agency certificate; agency OID encoded as a PrintableString.
pub const AGENCY_EY_STRING_OID: &str = "agency-A00000000A.pem";
/// An agency certificate whose agency OID is in no agency table.
pub const AGENCY_UNKNOWN: &str = "agency-unknown.pem";
/// A GTestCA test certificate for 行政院人事行政總處.
pub const AGENCY_TEST: &str = "agency-test-A21000000I.pem";

/// CRL of MOICA G2 (lists [`CITIZEN_LI_REVOKED`]).
pub const CRL_MOICA_G2: &str = "moica-g2.crl";
/// CRL of MOICA G3 (empty).
pub const CRL_MOICA_G3: &str = "moica-g3.crl";
/// CRL of GCA (empty).
pub const CRL_GCA: &str = "gca.crl";
/// CRL of the root, covering the issuing CAs (empty).
pub const CRL_ROOT: &str = "grca-root.crl";

/// Organisation of the GRCA-like root (the real GPKI root's name).
pub const ORG_GRCA: &str = "Government Root Certification Authority";
/// Organisation of the separate test root, standing in for the root above GTestCA.
pub const ORG_GTEST_ROOT: &str = "Government Test Root Certification Authority";
/// Organisation of the unrelated, never-trusted CA.
pub const ORG_UNTRUSTED: &str = "Untrusted Example Certification Authority";

/// The manifest's own file name.
pub const MANIFEST: &str = "manifest.json";

/// How long a generated CRL stays fresh (its `nextUpdate`).
pub const CRL_LIFETIME_SECS: i64 = 7 * DAY;

const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;

/// The agency code and OID pair used by the demo (deploy/demo/agencies.csv).
const DGPA: (&str, &str, &str) = ("A21000000I", "行政院人事行政總處", "2.16.886.101.20003.20001");
const EXECUTIVE_YUAN: (&str, &str, &str) = ("A00000000A", "行政院", "2.16.886.101.20003");
/// An agency OID no agency table has.
pub const UNKNOWN_AGENCY_OID: &str = "2.16.886.101.99999.99999";

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("key generation: {0}")]
    Key(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("not an OID: {0}")]
    Oid(String),
    #[error("time out of range: {0}")]
    Time(i64),
    #[error("PEM: {0}")]
    Pem(String),
    #[error("manifest: {0}")]
    Json(#[from] serde_json::Error),
}

/// The key type of every generated key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// RSA-2048 with PKCS#1 v1.5 SHA-256 signatures, as on the real cards (the CLI default).
    Rsa2048,
    /// ECDSA P-256: instant to generate, for tests that only need the shapes.
    EcdsaP256,
}

/// Generation parameters.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    /// The moment validity periods and CRL dates are counted from (Unix seconds).
    pub now: i64,
    pub key_algorithm: KeyAlgorithm,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions { now: crate::now(), key_algorithm: KeyAlgorithm::Rsa2048 }
    }
}

impl FixtureOptions {
    /// ECDSA keys at the current time: for tests, where RSA key generation would dominate.
    pub fn fast() -> Self {
        FixtureOptions { key_algorithm: KeyAlgorithm::EcdsaP256, ..Default::default() }
    }
}

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    RootCa,
    IssuingCa,
    PersonCertificate,
    AgencyCertificate,
    PrivateKey,
    Crl,
}

/// What card validation should conclude about an end-entity certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    Valid,
    Expired,
    Revoked,
    Untrusted,
    TestCertificate,
    WrongKeyUsage,
    UnknownAgency,
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub file: String,
    pub kind: EntryKind,
    pub description: String,
    /// The person's or agency's name the certificate is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_name: Option<String>,
    /// The full national ID the certificate stands for (the certificate itself carries only the
    /// last four characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub national_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency_oid: Option<String>,
    /// File of the issuing CA's certificate (for a CRL: of the CA that signed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// File of the private key (PKCS#8 PEM) for a certificate; for a key, the certificate's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Certificate serial, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expectation>,
}

/// `manifest.json`: every file, and the configuration that trusts this PKI the way production
/// should trust the real one (issuing CAs as anchors per card kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub generated_at: i64,
    pub key_algorithm: KeyAlgorithm,
    /// Anchors for citizen cards: both MOICA generations (docs/cards-and-pki.md "configure every current
    /// generation as an anchor").
    pub citizen_trust_anchors: Vec<String>,
    /// Anchors for agency cards.
    pub agency_trust_anchors: Vec<String>,
    /// CA certificates that may help path building when anchors are roots.
    pub intermediates: Vec<String>,
    pub crl_files: Vec<String>,
    pub files: Vec<ManifestEntry>,
}

impl Manifest {
    /// The entry for a file name.
    pub fn entry(&self, file: &str) -> Option<&ManifestEntry> {
        self.files.iter().find(|e| e.file == file)
    }
}

/// Writes the test PKI into `dir` (created if needed) with RSA-2048 keys at the current time.
pub fn generate(dir: &Path) -> Result<Manifest, FixtureError> {
    generate_with(dir, &FixtureOptions::default())
}

/// Writes the test PKI into `dir` with the given options.
pub fn generate_with(dir: &Path, options: &FixtureOptions) -> Result<Manifest, FixtureError> {
    std::fs::create_dir_all(dir).map_err(|source| FixtureError::Io { path: dir.to_owned(), source })?;
    let mut g = Generator { dir, options, files: Vec::new() };
    let now = options.now;

    // Roots.
    let root = g.ca(
        ROOT,
        None,
        dn(&[(DnType::OrganizationName, ORG_GRCA)])?,
        (now - 10 * YEAR, now + 20 * YEAR),
        None,
        "GRCA-like production root (self-signed)",
    )?;
    let test_root = g.ca(
        TEST_ROOT,
        None,
        dn(&[(DnType::OrganizationName, ORG_GTEST_ROOT)])?,
        (now - 10 * YEAR, now + 20 * YEAR),
        None,
        "root above GTestCA; separate from the production root",
    )?;
    // The impostor deliberately copies MOICA's name: only keys and signatures may tell it apart.
    let untrusted = g.ca(
        UNTRUSTED_CA,
        None,
        moica_name()?,
        (now - YEAR, now + 10 * YEAR),
        None,
        "unrelated self-signed CA that copies MOICA's name; trusted by nobody",
    )?;

    // Issuing CAs.
    let issuing = (now - 5 * YEAR, now + 15 * YEAR);
    let moica_g2 =
        g.ca(MOICA_G2, Some(&root), moica_name()?, issuing, Some(0), "MOICA-like citizen CA, generation 2")?;
    let moica_g3 = g.ca(
        MOICA_G3,
        Some(&root),
        moica_name()?,
        issuing,
        Some(0),
        "MOICA-like citizen CA, generation 3: byte-identical name to generation 2, different key",
    )?;
    let gca = g.ca(GCA, Some(&root), gov_ca_name(oids::OU_GCA)?, issuing, Some(0), "GCA-like agency CA")?;
    let gtestca =
        g.ca(GTESTCA, Some(&test_root), gov_ca_name(oids::OU_GTESTCA)?, issuing, Some(0), "GTestCA-like test CA")?;

    // People.
    let card = (now - 30 * DAY, now + 5 * YEAR - 30 * DAY);
    let wang = Person { name: "王小明", national_id: "A123456789" };
    let li = Person { name: "李美華", national_id: "B223344554" };
    let chen = Person { name: "陳志強", national_id: "C123456709" };
    let wang_card =
        g.person(CITIZEN_WANG, &moica_g2, &wang, card, Signing::Yes, Expectation::Valid, "signing certificate")?;
    g.reissue(
        CITIZEN_WANG_RENEWED,
        &moica_g2,
        &wang,
        &wang_card,
        Some(&wang_card.key),
        card,
        "renewed signing certificate: new serial, same key and subject",
    )?;
    g.reissue(
        CITIZEN_WANG_NEW_KEY,
        &moica_g2,
        &wang,
        &wang_card,
        None,
        card,
        "signing certificate with the same subject and another key (a new card)",
    )?;
    g.person(
        CITIZEN_WANG_ENCRYPTION,
        &moica_g2,
        &wang,
        card,
        Signing::No,
        Expectation::WrongKeyUsage,
        "encryption certificate of the same card (keyEncipherment only)",
    )?;
    use ExtendedKeyUsagePurpose::{Any, ClientAuth, EmailProtection, ServerAuth};
    let (server, client) = ([ServerAuth, EmailProtection], [ServerAuth, ClientAuth]);
    let wrong = Expectation::WrongKeyUsage;
    g.person_for(CITIZEN_WANG_EKU_SERVER, &moica_g2, &wang, card, &server, wrong, "EKU server and e-mail only")?;
    g.person_for(CITIZEN_WANG_EKU_CLIENT, &moica_g2, &wang, card, &client, Expectation::Valid, "EKU server, client")?;
    g.person_for(CITIZEN_WANG_EKU_ANY, &moica_g2, &wang, card, &[Any], Expectation::Valid, "EKU any purpose")?;
    g.person(
        CITIZEN_WANG_EXPIRED,
        &moica_g2,
        &wang,
        (now - 5 * YEAR - 60 * DAY, now - 60 * DAY),
        Signing::Yes,
        Expectation::Expired,
        "old card, expired",
    )?;
    g.person(
        CITIZEN_WANG_UNTRUSTED,
        &untrusted,
        &wang,
        card,
        Signing::Yes,
        Expectation::Untrusted,
        "from the untrusted impostor CA",
    )?;
    g.person(
        CITIZEN_LI,
        &moica_g3,
        &li,
        card,
        Signing::Yes,
        Expectation::Valid,
        "signing certificate (generation 3 CA)",
    )?;
    let revoked = g.person(
        CITIZEN_LI_REVOKED,
        &moica_g2,
        &li,
        (now - YEAR, now + 4 * YEAR),
        Signing::Yes,
        Expectation::Revoked,
        "old card, revoked (listed in the MOICA G2 CRL)",
    )?;
    g.person(
        CITIZEN_CHEN,
        &moica_g2,
        &chen,
        card,
        Signing::Yes,
        Expectation::Valid,
        "signing certificate (valid; the demo register lists him as separated)",
    )?;

    // Agencies.
    g.agency(AGENCY_DGPA, &gca, DGPA, OidEncoding::Oid, Expectation::Valid, card, "agency certificate")?;
    g.agency(
        AGENCY_EY_STRING_OID,
        &gca,
        EXECUTIVE_YUAN,
        OidEncoding::PrintableString,
        Expectation::Valid,
        card,
        "agency certificate; agency OID encoded as a PrintableString",
    )?;
    g.agency(
        AGENCY_UNKNOWN,
        &gca,
        ("", "未登錄機關", UNKNOWN_AGENCY_OID),
        OidEncoding::Oid,
        Expectation::UnknownAgency,
        card,
        "agency certificate whose agency OID is in no agency table",
    )?;
    g.agency(
        AGENCY_TEST,
        &gtestca,
        DGPA,
        OidEncoding::Oid,
        Expectation::TestCertificate,
        card,
        "agency TEST certificate from GTestCA",
    )?;

    // CRLs.
    g.crl(CRL_MOICA_G2, &moica_g2, &[(revoked.serial, now - 10 * DAY)], "MOICA G2 CRL; lists the revoked certificate")?;
    g.crl(CRL_MOICA_G3, &moica_g3, &[], "MOICA G3 CRL (empty)")?;
    g.crl(CRL_GCA, &gca, &[], "GCA CRL (empty)")?;
    g.crl(CRL_ROOT, &root, &[], "root CRL covering the issuing CAs (empty)")?;

    let manifest = Manifest {
        generated_at: now,
        key_algorithm: options.key_algorithm,
        citizen_trust_anchors: vec![MOICA_G2.into(), MOICA_G3.into()],
        agency_trust_anchors: vec![GCA.into()],
        intermediates: vec![MOICA_G2.into(), MOICA_G3.into(), GCA.into()],
        crl_files: vec![CRL_MOICA_G2.into(), CRL_MOICA_G3.into(), CRL_GCA.into()],
        files: g.files,
    };
    let json = serde_json::to_string_pretty(&manifest)?;
    write(&dir.join(MANIFEST), json.as_bytes())?;
    Ok(manifest)
}

/// The first certificate in a PEM text, as DER.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, FixtureError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map(|c| c.to_vec()).map_err(|e| FixtureError::Pem(e.to_string()))
}

/// The serial of entry `index` of a generated large CRL: 16 bytes like MOICA's 128-bit serials,
/// distinct for every index (a multiplication by an odd constant is a bijection modulo 2^120),
/// never with a leading zero byte, and starting with 0x4C (cards' serials are random).
pub fn filler_serial(index: u64) -> Vec<u8> {
    const K: u128 = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835;
    let mixed = (u128::from(index).wrapping_mul(K)) & ((1u128 << 120) - 1);
    let mut serial = mixed.to_be_bytes().to_vec();
    serial[0] = 0x4C;
    serial
}

/// Signs a CRL with `entries` entries shaped like a national CA's complete CRL (MOICA's is about
/// 20 MB with 412,000 entries): filler serials from [`filler_serial`], with each `(position,
/// serial)` of `listed` put at that position, so a real certificate can be revoked deep inside.
pub fn sign_large_crl(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    entries: usize,
    listed: &[(usize, Vec<u8>)],
    this_update: i64,
    next_update: i64,
    number: u64,
) -> Result<Vec<u8>, FixtureError> {
    let mut revoked = Vec::with_capacity(entries.max(listed.len()));
    let mut filler = 0u64;
    for position in 0..entries.max(listed.len()) {
        let serial = match listed.iter().find(|(p, _)| *p == position) {
            Some((_, serial)) => serial.clone(),
            None => {
                filler += 1;
                filler_serial(filler)
            }
        };
        // Spread over the year before, as a real list accumulates.
        let at = this_update - 365 * DAY + (position as i64 * 365 * DAY) / entries.max(1) as i64;
        revoked.push((serial, at.min(this_update)));
    }
    sign_crl(ca_cert_pem, ca_key_pem, &revoked, this_update, next_update, number)
}

/// Reads a generated certificate file as DER.
pub fn read_cert(dir: &Path, file: &str) -> Result<CertificateDer<'static>, FixtureError> {
    let path = dir.join(file);
    CertificateDer::from_pem_file(&path).map_err(|e| FixtureError::Pem(format!("{}: {e}", path.display())))
}

/// Signs a CRL as the CA of `ca_cert_pem` with the PKCS#8 key `ca_key_pem`: issuer name and
/// authority key identifier come from the certificate, the signature from the key. `revoked` holds
/// serials (big-endian bytes) with their revocation times; times are Unix seconds. Used by the
/// generator and by the CA simulator, which signs a fresh CRL on every download. The key is not
/// matched against the certificate, so a CRL that names the right CA but does not verify can be
/// made on purpose.
pub fn sign_crl(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    revoked: &[(Vec<u8>, i64)],
    this_update: i64,
    next_update: i64,
    number: u64,
) -> Result<Vec<u8>, FixtureError> {
    let key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, &key)?;
    // The authority key identifier names the certificate's key (its subject key identifier), not
    // the signing key: the two differ only in a deliberately bad CRL, which must still point at
    // the right CA.
    let cert_der = pem_to_der(ca_cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).map_err(|e| FixtureError::Pem(e.to_string()))?;
    let key_identifier_method = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
            }
            _ => None,
        })
        .unwrap_or(KeyIdMethod::Sha256);
    let params = CertificateRevocationListParams {
        this_update: time(this_update)?,
        next_update: time(next_update)?,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|(serial, at)| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: time(*at)?,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
            })
            .collect::<Result<_, FixtureError>>()?,
        key_identifier_method,
    };
    Ok(params.signed_by(&issuer)?.der().to_vec())
}

/// The name both MOICA generations (and the impostor) carry.
fn moica_name() -> Result<DistinguishedName, FixtureError> {
    gov_ca_name(oids::OU_MOICA)
}

fn gov_ca_name(ou: &str) -> Result<DistinguishedName, FixtureError> {
    dn(&[(DnType::OrganizationName, oids::ORG_EXECUTIVE_YUAN), (DnType::OrganizationalUnitName, ou)])
}

/// `C=TW` followed by the given attributes (UTF8String), as GPKI names are.
fn dn(rest: &[(DnType, &str)]) -> Result<DistinguishedName, FixtureError> {
    let mut name = DistinguishedName::new();
    name.push(DnType::CountryName, DnValue::PrintableString("TW".try_into()?));
    for (ty, value) in rest {
        name.push(ty.clone(), *value);
    }
    Ok(name)
}

fn time(t: i64) -> Result<time::OffsetDateTime, FixtureError> {
    time::OffsetDateTime::from_unix_timestamp(t).map_err(|_| FixtureError::Time(t))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), FixtureError> {
    std::fs::write(path, bytes).map_err(|source| FixtureError::Io { path: path.to_owned(), source })
}

fn key_file(cert_file: &str) -> String {
    format!("{}.key.pem", cert_file.trim_end_matches(".pem"))
}

/// A positive 128-bit serial, like the real cards' (docs/cards-and-pki.md).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::thread_rng().gen();
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn extension(dotted: &str, content: Vec<u8>) -> Result<CustomExtension, FixtureError> {
    let arcs = oids::arcs(dotted).ok_or_else(|| FixtureError::Oid(dotted.into()))?;
    Ok(CustomExtension::from_oid_content(&arcs, content))
}

fn new_key(alg: KeyAlgorithm) -> Result<KeyPair, FixtureError> {
    match alg {
        KeyAlgorithm::EcdsaP256 => Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?),
        KeyAlgorithm::Rsa2048 => {
            // ring (rcgen's backend here) cannot generate RSA keys; the `rsa` crate can.
            use rsa::pkcs8::EncodePrivateKey;
            let key =
                rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| FixtureError::Key(e.to_string()))?;
            let der = key.to_pkcs8_der().map_err(|e| FixtureError::Key(e.to_string()))?;
            Ok(KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der.as_bytes()),
                &rcgen::PKCS_RSA_SHA256,
            )?)
        }
    }
}

struct Ca {
    file: String,
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

impl Ca {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

struct Person {
    name: &'static str,
    national_id: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Signing {
    Yes,
    No,
}

#[derive(Clone, Copy)]
enum OidEncoding {
    Oid,
    PrintableString,
}

/// A person's issued certificate: its serial (for a CRL), and its subject and key (for a
/// certificate reissued to the same holder).
struct Holder {
    serial: SerialNumber,
    name: DistinguishedName,
    key: KeyPair,
}

/// The same key pair again (rcgen's `KeyPair` is not `Clone`).
fn copy_key(key: &KeyPair) -> Result<KeyPair, FixtureError> {
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(key.serialize_der()), key.algorithm())?)
}

/// A freshly issued end-entity certificate (the serial goes into a CRL when revoked).
struct Issued {
    serial: SerialNumber,
    entry: ManifestEntry,
    cert_pem: String,
    key: KeyPair,
}

struct Generator<'a> {
    dir: &'a Path,
    options: &'a FixtureOptions,
    files: Vec<ManifestEntry>,
}

impl Generator<'_> {
    fn entry(&self, file: &str, kind: EntryKind, description: &str) -> ManifestEntry {
        ManifestEntry {
            file: file.into(),
            kind,
            description: description.into(),
            holder_name: None,
            national_id: None,
            agency_code: None,
            agency_oid: None,
            issuer: None,
            key_file: None,
            serial: None,
            expect: None,
        }
    }

    /// Writes a certificate and its key; records both.
    fn write_pair(&mut self, mut entry: ManifestEntry, cert_pem: &str, key: &KeyPair) -> Result<(), FixtureError> {
        let key_name = key_file(&entry.file);
        write(&self.dir.join(&entry.file), cert_pem.as_bytes())?;
        write(&self.dir.join(&key_name), key.serialize_pem().as_bytes())?;
        let mut key_entry =
            self.entry(&key_name, EntryKind::PrivateKey, &format!("PKCS#8 private key of {}", entry.file));
        key_entry.key_file = Some(entry.file.clone());
        key_entry.holder_name.clone_from(&entry.holder_name);
        entry.key_file = Some(key_name);
        self.files.push(entry);
        self.files.push(key_entry);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn ca(
        &mut self,
        file: &str,
        parent: Option<&Ca>,
        name: DistinguishedName,
        (from, to): (i64, i64),
        path_len: Option<u8>,
        description: &str,
    ) -> Result<Ca, FixtureError> {
        let key = new_key(self.options.key_algorithm)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name;
        params.not_before = time(from)?;
        params.not_after = time(to)?;
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::Ca(path_len.map_or(BasicConstraints::Unconstrained, BasicConstraints::Constrained));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.key_identifier_method = KeyIdMethod::Sha256;
        params.use_authority_key_identifier_extension = parent.is_some();
        if parent.is_some() {
            params.custom_extensions.push(extension(
                oids::EXT_CERTIFICATE_POLICIES,
                der::certificate_policies(&[oids::POLICY_GPKI_LEVEL_3])?,
            )?);
        }
        let cert = match parent {
            Some(p) => params.signed_by(&key, &p.issuer())?,
            None => params.self_signed(&key)?,
        };
        let mut entry =
            self.entry(file, if parent.is_some() { EntryKind::IssuingCa } else { EntryKind::RootCa }, description);
        entry.issuer = parent.map(|p| p.file.clone());
        entry.serial = params.serial_number.as_ref().map(|s| crate::serial_hex(&s.to_bytes()));
        let cert_pem = cert.pem();
        self.write_pair(entry, &cert_pem, &key)?;
        Ok(Ca { file: file.into(), params, key, cert_pem })
    }

    #[allow(clippy::too_many_arguments)]
    fn person(
        &mut self,
        file: &str,
        ca: &Ca,
        person: &Person,
        (from, to): (i64, i64),
        signing: Signing,
        expect: Expectation,
        description: &str,
    ) -> Result<Holder, FixtureError> {
        let name = card_name(person)?;
        self.person_named(file, ca, person, name, None, (from, to), signing, &[], expect, description)
    }

    /// A signing certificate with an extended-key-usage extension listing `purposes` (the usual
    /// card profile has none).
    #[allow(clippy::too_many_arguments)]
    fn person_for(
        &mut self,
        file: &str,
        ca: &Ca,
        person: &Person,
        validity: (i64, i64),
        purposes: &[ExtendedKeyUsagePurpose],
        expect: Expectation,
        description: &str,
    ) -> Result<Holder, FixtureError> {
        let name = card_name(person)?;
        self.person_named(file, ca, person, name, None, validity, Signing::Yes, purposes, expect, description)
    }

    /// Another valid signing certificate for the holder of `of`, with its exact subject: with
    /// `key` (a renewal keeps the card's key) or a fresh one.
    #[allow(clippy::too_many_arguments)]
    fn reissue(
        &mut self,
        file: &str,
        ca: &Ca,
        person: &Person,
        of: &Holder,
        key: Option<&KeyPair>,
        validity: (i64, i64),
        description: &str,
    ) -> Result<Holder, FixtureError> {
        let key = key.map(copy_key).transpose()?;
        let name = of.name.clone();
        self.person_named(file, ca, person, name, key, validity, Signing::Yes, &[], Expectation::Valid, description)
    }

    #[allow(clippy::too_many_arguments)]
    fn person_named(
        &mut self,
        file: &str,
        ca: &Ca,
        person: &Person,
        name: DistinguishedName,
        key: Option<KeyPair>,
        (from, to): (i64, i64),
        signing: Signing,
        purposes: &[ExtendedKeyUsagePurpose],
        expect: Expectation,
        description: &str,
    ) -> Result<Holder, FixtureError> {
        let last_four = person.national_id.get(6..).unwrap_or_default();
        let directory = der::subject_directory_attributes(&[
            (oids::ATTR_SUBJECT_TYPE, der::AttrValue::Oid(oids::SUBJECT_TYPE_NATURAL_PERSON)),
            (oids::ATTR_NATIONAL_ID_LAST_FOUR, der::AttrValue::Printable(last_four)),
        ])?;
        let usages = match signing {
            Signing::Yes => vec![KeyUsagePurpose::DigitalSignature],
            Signing::No => vec![KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::DataEncipherment],
        };
        let usages = (usages, purposes);
        let issued = self.end_entity(file, ca, name.clone(), (from, to), usages, directory, key, description)?;
        let mut entry = issued.entry;
        entry.kind = EntryKind::PersonCertificate;
        entry.holder_name = Some(person.name.into());
        entry.national_id = Some(person.national_id.into());
        entry.expect = Some(expect);
        self.write_pair(entry, &issued.cert_pem, &issued.key)?;
        Ok(Holder { serial: issued.serial, name, key: issued.key })
    }

    #[allow(clippy::too_many_arguments)]
    fn agency(
        &mut self,
        file: &str,
        ca: &Ca,
        (code, agency_name, agency_oid): (&str, &str, &str),
        encoding: OidEncoding,
        expect: Expectation,
        validity: (i64, i64),
        description: &str,
    ) -> Result<(), FixtureError> {
        let name =
            dn(&[(DnType::OrganizationName, oids::ORG_EXECUTIVE_YUAN), (DnType::OrganizationalUnitName, agency_name)])?;
        // 行政院 itself is the top organisation: no OU, like the real name form.
        let name = if agency_name == oids::ORG_EXECUTIVE_YUAN {
            dn(&[(DnType::OrganizationName, agency_name)])?
        } else {
            name
        };
        let oid_value = match encoding {
            OidEncoding::Oid => der::AttrValue::Oid(agency_oid),
            OidEncoding::PrintableString => der::AttrValue::Printable(agency_oid),
        };
        let directory = der::subject_directory_attributes(&[
            (oids::ATTR_SUBJECT_TYPE, der::AttrValue::Oid(oids::SUBJECT_TYPE_GOVERNMENT_AGENCY)),
            (oids::ATTR_AGENCY_OID, oid_value),
        ])?;
        let usages = vec![KeyUsagePurpose::DigitalSignature];
        let issued = self.end_entity(file, ca, name, validity, (usages, &[]), directory, None, description)?;
        let mut entry = issued.entry;
        entry.kind = EntryKind::AgencyCertificate;
        entry.holder_name = Some(agency_name.into());
        entry.agency_code = (!code.is_empty()).then(|| code.into());
        entry.agency_oid = Some(agency_oid.into());
        entry.expect = Some(expect);
        self.write_pair(entry, &issued.cert_pem, &issued.key)
    }

    /// Issues an end-entity certificate with GPKI's extensions; the caller completes the entry.
    #[allow(clippy::too_many_arguments)]
    fn end_entity(
        &mut self,
        file: &str,
        ca: &Ca,
        name: DistinguishedName,
        (from, to): (i64, i64),
        (key_usages, purposes): (Vec<KeyUsagePurpose>, &[ExtendedKeyUsagePurpose]),
        directory: Vec<u8>,
        key: Option<KeyPair>,
        description: &str,
    ) -> Result<Issued, FixtureError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name;
        params.not_before = time(from)?;
        params.not_after = time(to)?;
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        params.is_ca = IsCa::NoCa;
        params.key_usages = key_usages;
        params.extended_key_usages = purposes.to_vec();
        params.use_authority_key_identifier_extension = true;
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![format!("http://crl.pki-fixtures.invalid/{}", ca.file.replace(".pem", ".crl"))],
        }];
        params.custom_extensions = vec![
            extension(oids::EXT_CERTIFICATE_POLICIES, der::certificate_policies(&[oids::POLICY_GPKI_LEVEL_3])?)?,
            extension(oids::EXT_SUBJECT_DIRECTORY_ATTRIBUTES, directory)?,
        ];
        let mut entry = self.entry(file, EntryKind::PersonCertificate, description);
        entry.issuer = Some(ca.file.clone());
        entry.serial = Some(crate::serial_hex(&serial.to_bytes()));
        let key = match key {
            Some(key) => key,
            None => new_key(self.options.key_algorithm)?,
        };
        let cert = params.signed_by(&key, &ca.issuer())?;
        Ok(Issued { serial, entry, cert_pem: cert.pem(), key })
    }

    fn crl(
        &mut self,
        file: &str,
        ca: &Ca,
        revoked: &[(SerialNumber, i64)],
        description: &str,
    ) -> Result<(), FixtureError> {
        let now = self.options.now;
        let revoked: Vec<(Vec<u8>, i64)> = revoked.iter().map(|(serial, at)| (serial.to_bytes(), *at)).collect();
        let crl = sign_crl(&ca.cert_pem, &ca.key.serialize_pem(), &revoked, now - 3600, now + CRL_LIFETIME_SECS, 1)?;
        write(&self.dir.join(file), &crl)?;
        let mut entry = self.entry(file, EntryKind::Crl, description);
        entry.issuer = Some(ca.file.clone());
        self.files.push(entry);
        Ok(())
    }
}

/// A citizen card's subject: the holder's name and a card serial number.
fn card_name(person: &Person) -> Result<DistinguishedName, FixtureError> {
    let digits: String = (0..16).map(|_| char::from(b'0' + rand::thread_rng().gen_range(0..10u8))).collect();
    let mut name = dn(&[(DnType::CommonName, person.name)])?;
    name.push(DnType::CustomDnType(arcs(oids::DN_SERIAL_NUMBER)?), DnValue::PrintableString(digits.try_into()?));
    Ok(name)
}

fn arcs(dotted: &str) -> Result<Vec<u64>, FixtureError> {
    oids::arcs(dotted).ok_or_else(|| FixtureError::Oid(dotted.into()))
}

/// A minimal DER writer for the two extensions `rcgen` has no builder for (Subject Directory
/// Attributes, Certificate Policies). Public so tests can build odd encodings on purpose.
pub mod der {
    use super::FixtureError;
    use pki_oids as oids;

    /// An attribute value in one of the encodings GPKI uses (docs/cards-and-pki.md: OIDs may also come as
    /// strings).
    #[derive(Debug, Clone, Copy)]
    pub enum AttrValue<'a> {
        Oid(&'a str),
        Printable(&'a str),
        Utf8(&'a str),
    }

    /// Tag, definite length, content.
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// SEQUENCE of already encoded elements.
    pub fn seq(items: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &items.concat())
    }

    /// SET of already encoded elements (DER sorts them).
    pub fn set(items: &[Vec<u8>]) -> Vec<u8> {
        let mut sorted = items.to_vec();
        sorted.sort();
        tlv(0x31, &sorted.concat())
    }

    /// OBJECT IDENTIFIER from dotted form.
    pub fn oid(dotted: &str) -> Result<Vec<u8>, FixtureError> {
        let arcs = oids::arcs(dotted).ok_or_else(|| FixtureError::Oid(dotted.into()))?;
        if arcs[0] > 2 || (arcs[0] < 2 && arcs[1] >= 40) {
            return Err(FixtureError::Oid(dotted.into()));
        }
        let mut body = Vec::new();
        let first = arcs[0] * 40 + arcs[1];
        for arc in std::iter::once(first).chain(arcs[2..].iter().copied()) {
            let mut chunk = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                chunk.push(0x80 | (rest & 0x7f) as u8);
                rest >>= 7;
            }
            chunk.reverse();
            body.extend(chunk);
        }
        Ok(tlv(0x06, &body))
    }

    fn value(v: AttrValue<'_>) -> Result<Vec<u8>, FixtureError> {
        Ok(match v {
            AttrValue::Oid(dotted) => oid(dotted)?,
            AttrValue::Printable(s) => tlv(0x13, s.as_bytes()),
            AttrValue::Utf8(s) => tlv(0x0c, s.as_bytes()),
        })
    }

    /// Subject Directory Attributes: `SEQUENCE OF Attribute { type, SET OF value }`.
    pub fn subject_directory_attributes(attrs: &[(&str, AttrValue<'_>)]) -> Result<Vec<u8>, FixtureError> {
        let encoded = attrs
            .iter()
            .map(|(ty, v)| Ok(seq(&[oid(ty)?, set(&[value(*v)?])])))
            .collect::<Result<Vec<_>, FixtureError>>()?;
        Ok(seq(&encoded))
    }

    /// Certificate Policies: `SEQUENCE OF PolicyInformation { policyIdentifier }`.
    pub fn certificate_policies(policies: &[&str]) -> Result<Vec<u8>, FixtureError> {
        let encoded = policies.iter().map(|p| Ok(seq(&[oid(p)?]))).collect::<Result<Vec<_>, FixtureError>>()?;
        Ok(seq(&encoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_fixtures_der_writer_matches_known_encodings() {
        // 2.5.29.9 → 06 03 55 1d 09; 2.16.886.1.100.2.51 → 06 08 60 86 76 01 64 02 33 (886 = 0x86 0x76).
        assert_eq!(der::oid("2.5.29.9").unwrap(), vec![0x06, 0x03, 0x55, 0x1d, 0x09]);
        assert_eq!(
            der::oid("2.16.886.1.100.2.51").unwrap(),
            vec![0x06, 0x07, 0x60, 0x86, 0x76, 0x01, 0x64, 0x02, 0x33]
        );
        assert!(der::oid("4.1").is_err());
        assert_eq!(der::tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der::tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn card_fixtures_generate_every_file_with_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = generate_with(dir.path(), &FixtureOptions::fast()).unwrap();
        for entry in &manifest.files {
            assert!(dir.path().join(&entry.file).is_file(), "{}", entry.file);
        }
        let written: Manifest =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(MANIFEST)).unwrap()).unwrap();
        assert_eq!(written, manifest);
        for file in [CITIZEN_WANG, CITIZEN_LI, CITIZEN_LI_REVOKED, AGENCY_DGPA, AGENCY_TEST, CRL_MOICA_G2, ROOT] {
            assert!(manifest.entry(file).is_some(), "{file}");
        }
        let wang = manifest.entry(CITIZEN_WANG).unwrap();
        assert_eq!(wang.holder_name.as_deref(), Some("王小明"));
        assert_eq!(wang.national_id.as_deref(), Some("A123456789"));
        assert_eq!(wang.issuer.as_deref(), Some(MOICA_G2));
        assert_eq!(wang.expect, Some(Expectation::Valid));
        let key = std::fs::read_to_string(dir.path().join(wang.key_file.as_deref().unwrap())).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM expected");
        let dgpa = manifest.entry(AGENCY_DGPA).unwrap();
        assert_eq!(dgpa.agency_code.as_deref(), Some("A21000000I"));
        assert_eq!(dgpa.agency_oid.as_deref(), Some("2.16.886.101.20003.20001"));
        // The demo register and agency table are what the fixtures stand for.
        let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/demo");
        let people = std::fs::read_to_string(demo.join("personnel.csv")).unwrap();
        for e in manifest.files.iter().filter(|e| e.kind == EntryKind::PersonCertificate) {
            let line = format!("{},{},", e.national_id.as_deref().unwrap(), e.holder_name.as_deref().unwrap());
            assert!(people.contains(&line), "{line}");
        }
        let agencies = std::fs::read_to_string(demo.join("agencies.csv")).unwrap();
        assert!(agencies.contains("A21000000I,行政院人事行政總處,A00000000A,2.16.886.101.20003.20001"));
        assert!(agencies.contains("A00000000A,行政院,,2.16.886.101.20003"));
    }

    #[test]
    fn card_fixtures_crls_are_signed_by_their_ca() {
        use x509_parser::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let manifest = generate_with(dir.path(), &FixtureOptions::fast()).unwrap();
        let crl = std::fs::read(dir.path().join(CRL_MOICA_G2)).unwrap();
        let (_, crl) = CertificateRevocationList::from_der(&crl).unwrap();
        let revoked = manifest.entry(CITIZEN_LI_REVOKED).unwrap().serial.clone().unwrap();
        let listed: Vec<String> = crl.iter_revoked_certificates().map(|r| crate::hex(r.raw_serial())).collect();
        assert!(listed.iter().any(|s| s.trim_start_matches("00") == revoked), "{listed:?} / {revoked}");
        assert!(crl.next_update().is_some());
        let empty = std::fs::read(dir.path().join(CRL_GCA)).unwrap();
        let (_, empty) = CertificateRevocationList::from_der(&empty).unwrap();
        assert_eq!(empty.iter_revoked_certificates().count(), 0);
    }
}
