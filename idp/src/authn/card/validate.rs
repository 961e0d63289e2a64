//! Whether to believe a presented card certificate (README, "Card sign-in").
//!
//! The order of the checks is part of the contract:
//! 1. The certificate must parse.
//! 2. A *test* certificate (issuer name containing a configured marker, by default GTestCA's
//!    `政府測試憑證管理中心`, or a configured test policy OID) is refused as
//!    [`CardError::TestCertificate`] before anything else: it never chains to a production anchor,
//!    so without this it would only get the generic message, and the seeds want the user told why.
//!    Trusting an unverified claim is safe here because the claim can only lead to a refusal.
//! 3. The chain is built and verified by `rustls-webpki`, once against the citizen anchors and once
//!    against the agency anchors. The card kind is the anchor set that verified — never a name the
//!    certificate carries — and a chain that verifies against both is refused, because then the
//!    kind would be a guess. Path building picks among CAs with one name (MOICA generations) by
//!    signature, so the right generation is found whatever order the anchors are in.
//! 4. Validity at `now`, revocation from CRLs (webpki checks each CRL's signature with the issuing
//!    CA's key and its `nextUpdate`), and an extended key usage, if present, allowing client
//!    authentication — all during path building. Where the issuing CA has an OCSP responder, a
//!    missing or stale CRL is not a refusal here: the result says so, and the caller
//!    ([`super::trust`]) asks the responder and decides.
//! 5. Key usage must include digitalSignature (the card's encryption certificate must not log in).
//! 6. Per kind: a citizen certificate names a person; an agency certificate carries an agency OID
//!    that the agency table knows ([`CardError::UnknownAgency`] otherwise).
//!
//! Everything is a pure function of its inputs: `now` is passed in, the agency table is a lookup
//! function, CRLs are bytes that the caller keeps fresh.

use std::path::Path;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor, UnixTime};
use std::sync::Arc;

use webpki::{
    EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeId, KeyPurposeIdIter, KeyUsage as EkuPolicy,
    RequiredEkuNotFoundContext,
};
use x509_parser::prelude::FromDer;

use super::crl::{CaKey, RevocationList, ALGORITHMS};
use super::oids;
use super::profile::{self, CertProfile};

/// Which card a certificate is, decided by the anchor set its chain reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardKind {
    /// Citizen certificate (自然人憑證), MOICA.
    Citizen,
    /// Agency certificate (機關憑證), GCA.
    Agency,
}

/// What to do when revocation status cannot be established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationMode {
    /// A missing or stale CRL refuses the login (the default).
    #[default]
    Required,
    /// A missing CRL, or one past its `nextUpdate`, lets the login through (a revoked serial in a
    /// stale CRL still refuses). For an operator who knows CRL distribution is down.
    BestEffort,
}

/// How revocation was established for an accepted certificate (for the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationStatus {
    /// A current CRL from the issuing CA does not list it.
    Checked,
    /// Best-effort only: the CRL is past its `nextUpdate` and does not list it.
    Stale,
    /// Best-effort only: no CRL from the issuing CA was available.
    Unknown,
    /// The issuing CA's OCSP responder answered "good".
    OcspGood,
}

/// What configuration supplies, already read into memory.
#[derive(Debug, Clone)]
pub struct TrustSettings {
    /// Anchors for citizen cards: the MOICA CA certificates, every current generation.
    pub citizen_anchors: Vec<CertificateDer<'static>>,
    /// Anchors for agency cards: the GCA CA certificates.
    pub agency_anchors: Vec<CertificateDer<'static>>,
    /// CA certificates offered to path building in addition to what the client sends.
    pub intermediates: Vec<CertificateDer<'static>>,
    /// Complete CRLs (DER) of the issuing CAs, read when the validator is built.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// CRLs already read (downloads, or files read once at start), shared between validators
    /// so a refresh of one CA's list does not read the others again.
    pub crl_lists: Vec<Arc<RevocationList>>,
    pub revocation: RevocationMode,
    /// Issuer-name values containing one of these mark a test certificate.
    pub test_issuer_markers: Vec<String>,
    /// Policy OIDs that mark a test certificate (none is publicly known; docs/cards-and-pki.md).
    pub test_policy_oids: Vec<String>,
    /// Subject public keys (SPKI DER) of issuing CAs that have an OCSP responder: for their
    /// certificates a missing or stale CRL defers to the responder instead of refusing.
    pub ocsp_issuers: Vec<Vec<u8>>,
}

impl Default for TrustSettings {
    fn default() -> Self {
        TrustSettings {
            citizen_anchors: Vec::new(),
            agency_anchors: Vec::new(),
            intermediates: Vec::new(),
            crls: Vec::new(),
            crl_lists: Vec::new(),
            revocation: RevocationMode::Required,
            test_issuer_markers: vec![oids::OU_GTESTCA.to_owned()],
            test_policy_oids: Vec::new(),
            ocsp_issuers: Vec::new(),
        }
    }
}

/// A configuration that cannot be used; reported at start, never at login.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {message}", path.display())]
    File { path: std::path::PathBuf, message: String },
    #[error("trust anchor {index} of the {kind:?} set: {message}")]
    Anchor { kind: CardKind, index: usize, message: String },
    #[error("trust anchor {0} of the citizen set is also an agency anchor: the card kind would be ambiguous")]
    SharedAnchor(usize),
    #[error("CRL {index}: {message}")]
    Crl { index: usize, message: String },
    #[error("test policy {0:?} is not a dotted OID")]
    TestPolicy(String),
}

impl TrustSettings {
    /// Reads PEM certificate files (each may hold several certificates) and CRL files (DER or
    /// PEM), as configuration names them.
    pub fn load_files<P: AsRef<Path>>(
        citizen_anchor_files: &[P],
        agency_anchor_files: &[P],
        intermediate_files: &[P],
        crl_files: &[P],
    ) -> Result<Self, ConfigError> {
        let certs = |files: &[P]| -> Result<Vec<CertificateDer<'static>>, ConfigError> {
            let mut out = Vec::new();
            for path in files {
                out.extend(read_certificates(path.as_ref())?);
            }
            Ok(out)
        };
        let mut crls = Vec::new();
        for path in crl_files {
            let path = path.as_ref();
            let bytes = read(path)?;
            let crl = if bytes.starts_with(b"-----") {
                CertificateRevocationListDer::from_pem_slice(&bytes)
                    .map_err(|e| ConfigError::File { path: path.to_path_buf(), message: e.to_string() })?
            } else {
                CertificateRevocationListDer::from(bytes)
            };
            crls.push(crl);
        }
        Ok(TrustSettings {
            citizen_anchors: certs(citizen_anchor_files)?,
            agency_anchors: certs(agency_anchor_files)?,
            intermediates: certs(intermediate_files)?,
            crls,
            ..Default::default()
        })
    }
}

/// The certificates of a PEM file (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = read(path)?;
    let found = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::File { path: path.to_path_buf(), message: e.to_string() })?;
    if found.is_empty() {
        return Err(ConfigError::File { path: path.to_path_buf(), message: "no PEM certificate".into() });
    }
    Ok(found)
}

impl TrustSettings {
    /// The keys of every configured CA (anchors and intermediates), which CRLs are checked with.
    pub fn ca_keys(&self) -> Vec<CaKey> {
        let certs = self.citizen_anchors.iter().chain(&self.agency_anchors).chain(&self.intermediates);
        certs.filter_map(|c| CaKey::from_certificate(c.as_ref())).collect()
    }

    /// Reads the CRL files into [`TrustSettings::crl_lists`] once, so validators rebuilt later
    /// (a download arrived) share them instead of reading them again.
    pub fn read_crls(&mut self) -> Result<(), ConfigError> {
        let cas = self.ca_keys();
        for (index, der) in std::mem::take(&mut self.crls).iter().enumerate() {
            let list = RevocationList::parse(der, &cas).map_err(|e| ConfigError::Crl { index, message: e.0 })?;
            self.crl_lists.push(Arc::new(list));
        }
        Ok(())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::File { path: path.to_path_buf(), message: e.to_string() })
}

/// Why a certificate is invalid: one user-facing message (the seeds' "invalid certificate"), many
/// reasons for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    #[error("malformed certificate: {0}")]
    Malformed(String),
    #[error("does not chain to a configured trust anchor")]
    Untrusted,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("revoked")]
    Revoked,
    #[error("no CRL from the issuing CA")]
    RevocationUnknown,
    #[error("the issuing CA's CRL is past its nextUpdate")]
    CrlStale,
    #[error("the issuing CA's CRL is unusable: {0}")]
    CrlInvalid(String),
    #[error("the issuing CA's OCSP responder does not know the certificate")]
    OcspUnknown,
    #[error("no current CRL and no usable OCSP answer: {0}")]
    OcspUnavailable(String),
    #[error("key usage does not allow digital signatures")]
    KeyUsage,
    #[error("extended key usage does not allow client authentication")]
    ExtendedKeyUsage,
    #[error("chains to both citizen and agency anchors")]
    AmbiguousKind,
    #[error("subject type {0:?} does not fit the card kind")]
    SubjectType(Option<String>),
    #[error("citizen certificate without a holder name")]
    MissingHolderName,
    #[error("agency certificate without an agency OID")]
    MissingAgencyOid,
    #[error("chain rejected: {0}")]
    Chain(String),
}

/// A refusal. Each variant is one of the seeds' messages (README, "Card sign-in").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// 插入之自然人憑證或機關憑證無效，可能為憑證已過期、廢止…等情形，請確認所持憑證之有效性。
    #[error("invalid certificate: {0}")]
    Invalid(InvalidReason),
    /// 請勿使用測試之機關憑證登入，因其無法代表正式之機關。
    #[error("test certificate")]
    TestCertificate,
    /// 機關憑證驗證回傳之代碼不存在於本總處機關代碼檔中…
    #[error("agency OID {agency_oid} is not in the agency table")]
    UnknownAgency { agency_oid: String },
}

impl From<InvalidReason> for CardError {
    fn from(r: InvalidReason) -> Self {
        CardError::Invalid(r)
    }
}

/// An accepted certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCard {
    pub kind: CardKind,
    pub profile: CertProfile,
    /// For agency cards: the agency code the agency OID maps to.
    pub agency_code: Option<String>,
    pub revocation: RevocationStatus,
    /// The issuing CA's public key (SPKI DER), from the verified path: which OCSP responder, if
    /// any, speaks for this certificate.
    pub issuer_spki: Vec<u8>,
}

/// The validator, built once from configuration and shared.
pub struct CardValidator {
    citizen: Vec<TrustAnchor<'static>>,
    agency: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    crls: Vec<Arc<RevocationList>>,
    revocation: RevocationMode,
    test_issuer_markers: Vec<String>,
    test_policy_oids: Vec<String>,
    ocsp_issuers: Vec<Vec<u8>>,
}

/// What a verified chain says: how revocation was established and who issued the certificate.
struct ChainResult {
    revocation: RevocationStatus,
    issuer_spki: Vec<u8>,
}

impl std::fmt::Debug for CardValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardValidator")
            .field("citizen_anchors", &self.citizen.len())
            .field("agency_anchors", &self.agency.len())
            .field("intermediates", &self.intermediates.len())
            .field("crls", &self.crls.len())
            .field("revocation", &self.revocation)
            .finish()
    }
}

impl CardValidator {
    /// Checks and indexes the configuration. Refuses an anchor present in both sets (the card kind
    /// would then depend on nothing), unreadable certificates and CRLs webpki cannot use.
    pub fn new(settings: TrustSettings) -> Result<Self, ConfigError> {
        let anchors =
            |kind: CardKind, certs: &[CertificateDer<'static>]| -> Result<Vec<TrustAnchor<'static>>, ConfigError> {
                certs
                    .iter()
                    .enumerate()
                    .map(|(index, der)| {
                        webpki::anchor_from_trusted_cert(der).map(|a| a.to_owned()).map_err(|e| ConfigError::Anchor {
                            kind,
                            index,
                            message: format!("{e:?}"),
                        })
                    })
                    .collect()
            };
        let citizen = anchors(CardKind::Citizen, &settings.citizen_anchors)?;
        let agency = anchors(CardKind::Agency, &settings.agency_anchors)?;
        if let Some(index) =
            citizen.iter().position(|c| agency.iter().any(|a| a.subject_public_key_info == c.subject_public_key_info))
        {
            return Err(ConfigError::SharedAnchor(index));
        }
        if let Some(bad) = settings.test_policy_oids.iter().find(|p| oids::arcs(p).is_none()) {
            return Err(ConfigError::TestPolicy(bad.clone()));
        }
        let mut settings = settings;
        settings.read_crls()?;
        let crls = settings.crl_lists;
        Ok(CardValidator {
            citizen,
            agency,
            intermediates: settings.intermediates,
            crls,
            revocation: settings.revocation,
            test_issuer_markers: settings.test_issuer_markers,
            test_policy_oids: settings.test_policy_oids,
            ocsp_issuers: settings.ocsp_issuers,
        })
    }

    /// For each CRL issuer (by name), the `thisUpdate` of the newest CRL held.
    pub fn crl_issued(&self) -> Vec<(String, i64)> {
        let mut newest: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for c in &self.crls {
            let name = x509_parser::x509::X509Name::from_der(&c.issuer_der)
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|_| "unknown".into());
            let at = newest.entry(name).or_insert(c.this_update);
            *at = (*at).max(c.this_update);
        }
        newest.into_iter().collect()
    }

    /// What to do when revocation status cannot be established.
    pub fn revocation_mode(&self) -> RevocationMode {
        self.revocation
    }

    /// Whether the certificate claims to be a test certificate (issuer marker or test policy).
    pub fn is_test_certificate(&self, profile: &CertProfile) -> bool {
        let by_issuer = profile
            .issuer_values
            .iter()
            .any(|v| self.test_issuer_markers.iter().any(|m| !m.is_empty() && v.contains(m.as_str())));
        by_issuer || profile.policies.iter().any(|p| self.test_policy_oids.contains(p))
    }

    /// Validates an end-entity certificate (DER) with the intermediates the client sent, at `now`
    /// (Unix seconds). `agency_code_for_oid` is the agency table: agency OID → agency code.
    pub fn validate(
        &self,
        end_entity: &[u8],
        presented_intermediates: &[CertificateDer<'_>],
        now: i64,
        agency_code_for_oid: impl Fn(&str) -> Option<String>,
    ) -> Result<ValidatedCard, CardError> {
        let profile = profile::parse(end_entity).map_err(|e| InvalidReason::Malformed(e.to_string()))?;
        if self.is_test_certificate(&profile) {
            return Err(CardError::TestCertificate);
        }
        let der = CertificateDer::from(end_entity);
        let ee = EndEntityCert::try_from(&der).map_err(|e| InvalidReason::Malformed(format!("{e:?}")))?;
        let intermediates: Vec<CertificateDer<'_>> = self
            .intermediates
            .iter()
            .chain(presented_intermediates)
            .map(|c| CertificateDer::from(c.as_ref()))
            .collect();
        let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).unwrap_or(0)));
        let crls = self.crls_for(&profile);
        let serial = profile::unhex(&profile.serial_hex).unwrap_or_default();
        let subject = Subject { serial: &serial, crls: &crls, time, now };

        let citizen = self.chain(&ee, &self.citizen, &intermediates, &subject);
        let agency = self.chain(&ee, &self.agency, &intermediates, &subject);
        let (kind, ChainResult { revocation, issuer_spki }) = match (citizen, agency) {
            (Ok(r), Err(_)) => (CardKind::Citizen, r),
            (Err(_), Ok(r)) => (CardKind::Agency, r),
            (Ok(_), Ok(_)) => return Err(InvalidReason::AmbiguousKind.into()),
            (Err(a), Err(b)) => {
                // The more useful reason: a set that found no issuer at all says less than one that
                // found the chain and then refused it (expired, revoked…).
                let e = if a == webpki::Error::UnknownIssuer { b } else { a };
                return Err(invalid_from_webpki(e).into());
            }
        };
        if !profile.permits_digital_signature() {
            return Err(InvalidReason::KeyUsage.into());
        }
        let subject_type = profile.directory.subject_type.as_deref();
        let agency_code = match kind {
            CardKind::Citizen => {
                if subject_type.is_some_and(|t| t != oids::SUBJECT_TYPE_NATURAL_PERSON) {
                    return Err(InvalidReason::SubjectType(subject_type.map(str::to_owned)).into());
                }
                if profile.subject_cn.as_deref().is_none_or(|cn| cn.trim().is_empty()) {
                    return Err(InvalidReason::MissingHolderName.into());
                }
                None
            }
            CardKind::Agency => {
                if subject_type.is_some_and(|t| {
                    t != oids::SUBJECT_TYPE_GOVERNMENT_AGENCY && t != oids::SUBJECT_TYPE_GOVERNMENT_UNIT
                }) {
                    return Err(InvalidReason::SubjectType(subject_type.map(str::to_owned)).into());
                }
                let oid = profile.directory.agency_oid.clone().ok_or(InvalidReason::MissingAgencyOid)?;
                match agency_code_for_oid(&oid) {
                    Some(code) => Some(code),
                    None => return Err(CardError::UnknownAgency { agency_oid: oid }),
                }
            }
        };
        Ok(ValidatedCard { kind, profile, agency_code, revocation, issuer_spki })
    }

    /// The CRLs that can speak for this certificate, newest first: same issuer name, the same
    /// authority key when both say, and a partition the certificate points to. Two MOICA
    /// generations share a name; which of the remaining lists the issuing key signed is decided
    /// once the path is known ([`CardValidator::revocation`]).
    fn crls_for(&self, profile: &CertProfile) -> Vec<&RevocationList> {
        let mut found: Vec<&RevocationList> = self
            .crls
            .iter()
            .map(|c| &**c)
            .filter(|c| c.issuer_der == profile.issuer_der)
            .filter(|c| match (&c.authority_key_id, &profile.authority_key_id) {
                (Some(crl), Some(cert)) => crl == cert,
                _ => true,
            })
            .filter(|c| c.covers(&profile.crl_distribution_points))
            .collect();
        found.sort_by_key(|c| std::cmp::Reverse(c.this_update));
        found
    }

    /// Builds and verifies a path to one anchor set, then decides revocation of the end entity
    /// from its issuer's CRLs ([`CardValidator::revocation`]).
    fn chain(
        &self,
        ee: &EndEntityCert<'_>,
        anchors: &[TrustAnchor<'static>],
        intermediates: &[CertificateDer<'_>],
        subject: &Subject<'_>,
    ) -> Result<ChainResult, webpki::Error> {
        if anchors.is_empty() {
            return Err(webpki::Error::UnknownIssuer);
        }
        let path = ee.verify_for_usage(ALGORITHMS, anchors, intermediates, subject.time, CardEku, None, None)?;
        let issuer_spki = path.issuer_spki().as_ref().to_vec();
        // A CA certificate whose key usage leaves out cRLSign may not sign CRLs (an anchor
        // carries no key usage and is trusted as configured).
        let may_sign_crls = path.intermediate_certificates().next().is_none_or(|issuer| {
            x509_parser::certificate::X509Certificate::from_der(issuer.der().as_ref())
                .ok()
                .and_then(|(_, c)| c.key_usage().ok().flatten().map(|ku| ku.value.crl_sign()))
                .unwrap_or(true)
        });
        let revocation = self.revocation(subject, &issuer_spki, may_sign_crls)?;
        Ok(ChainResult { revocation, issuer_spki })
    }

    /// Revocation of a certificate whose issuer (a verified path's) has key `issuer_spki`, from
    /// the newest of the candidate CRLs that key signed. A listed serial always refuses. No CRL
    /// at all, or (strict mode) a stale one, refuses unless the mode is best-effort or the
    /// issuer has an OCSP responder (the caller then asks it). Candidates that name the issuer
    /// but that its key did not sign refuse: a CRL that does not verify decides nothing.
    fn revocation(
        &self,
        subject: &Subject<'_>,
        issuer_spki: &[u8],
        may_sign_crls: bool,
    ) -> Result<RevocationStatus, webpki::Error> {
        let tolerant =
            self.revocation == RevocationMode::BestEffort || self.ocsp_issuers.iter().any(|k| k == issuer_spki);
        let newest = subject.crls.iter().find(|c| c.signed_by(issuer_spki));
        let Some(crl) = newest else {
            if !subject.crls.is_empty() {
                return Err(webpki::Error::InvalidCrlSignatureForPublicKey);
            }
            return if tolerant { Ok(RevocationStatus::Unknown) } else { Err(webpki::Error::UnknownRevocationStatus) };
        };
        if !may_sign_crls {
            return Err(webpki::Error::IssuerNotCrlSigner);
        }
        if crl.lists(subject.serial) {
            return Err(webpki::Error::CertRevoked);
        }
        if crl.next_update <= subject.now {
            if tolerant {
                return Ok(RevocationStatus::Stale);
            }
            let next_update =
                UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(crl.next_update).unwrap_or(0)));
            return Err(webpki::Error::CrlExpired { time: subject.time, next_update });
        }
        Ok(RevocationStatus::Checked)
    }
}

/// What revocation is decided on: the certificate's serial, the CRLs that may speak for it,
/// and the time.
struct Subject<'a> {
    serial: &'a [u8],
    crls: &'a [&'a RevocationList],
    time: UnixTime,
    now: i64,
}

fn invalid_from_webpki(e: webpki::Error) -> InvalidReason {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => InvalidReason::Untrusted,
        E::CertExpired { .. } => InvalidReason::Expired,
        E::CertNotValidYet { .. } => InvalidReason::NotYetValid,
        E::CertRevoked => InvalidReason::Revoked,
        E::UnknownRevocationStatus => InvalidReason::RevocationUnknown,
        E::CrlExpired { .. } => InvalidReason::CrlStale,
        E::InvalidCrlSignatureForPublicKey
        | E::UnsupportedCrlSignatureAlgorithmContext(_)
        | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_)
        | E::IssuerNotCrlSigner => InvalidReason::CrlInvalid(format!("{e:?}")),
        E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => InvalidReason::ExtendedKeyUsage,
        // A signature that does not verify under the only candidate key is, for the user, a
        // certificate no configured CA issued.
        E::InvalidSignatureForPublicKey => InvalidReason::Untrusted,
        other => InvalidReason::Chain(format!("{other:?}")),
    }
}

/// Extended key usage: absent (the usual card profile), or including client authentication or
/// any purpose. Real card EKUs are unconfirmed (docs/cards-and-pki.md), so only what RFC 5280 allows is accepted.
struct CardEku;

impl ExtendedKeyUsageValidator for CardEku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let client_auth = KeyPurposeId::new(oids::EKU_CLIENT_AUTH_DER);
        let any = KeyPurposeId::new(oids::EKU_ANY_DER);
        let mut present = Vec::new();
        for id in iter {
            let id = id?;
            if id == client_auth || id == any {
                return Ok(());
            }
            present.push(id.to_decoded_oid());
        }
        if present.is_empty() {
            return Ok(());
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(RequiredEkuNotFoundContext {
            required: EkuPolicy::client_auth(),
            present,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_pki::fixtures::{self as fx, FixtureOptions};

    struct Pki {
        dir: tempfile::TempDir,
        manifest: fx::Manifest,
    }

    impl Pki {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let manifest = fx::generate_with(dir.path(), &FixtureOptions::fast()).unwrap();
            Pki { dir, manifest }
        }
        fn cert(&self, file: &str) -> CertificateDer<'static> {
            fx::read_cert(self.dir.path(), file).unwrap()
        }
        fn crl(&self, file: &str) -> CertificateRevocationListDer<'static> {
            CertificateRevocationListDer::from(std::fs::read(self.dir.path().join(file)).unwrap())
        }
        /// The configuration the manifest suggests: issuing CAs as anchors, every CRL.
        fn settings(&self) -> TrustSettings {
            TrustSettings {
                citizen_anchors: self.manifest.citizen_trust_anchors.iter().map(|f| self.cert(f)).collect(),
                agency_anchors: self.manifest.agency_trust_anchors.iter().map(|f| self.cert(f)).collect(),
                crls: self.manifest.crl_files.iter().map(|f| self.crl(f)).collect(),
                ..Default::default()
            }
        }
        fn validator(&self) -> CardValidator {
            CardValidator::new(self.settings()).unwrap()
        }
        fn now(&self) -> i64 {
            self.manifest.generated_at
        }
    }

    /// The demo agency table (deploy/demo/agencies.csv): OID → code.
    fn agencies(oid: &str) -> Option<String> {
        match oid {
            "2.16.886.101.20003" => Some("A00000000A".into()),
            "2.16.886.101.20003.20001" => Some("A21000000I".into()),
            _ => None,
        }
    }

    fn check(v: &CardValidator, pki: &Pki, file: &str, now: i64) -> Result<ValidatedCard, CardError> {
        v.validate(&pki.cert(file), &[], now, agencies)
    }

    #[test]
    fn card_validate_accepts_a_citizen_certificate() {
        let pki = Pki::new();
        let card = check(&pki.validator(), &pki, fx::CITIZEN_WANG, pki.now()).unwrap();
        assert_eq!(card.kind, CardKind::Citizen);
        assert_eq!(card.revocation, RevocationStatus::Checked);
        assert_eq!(card.agency_code, None);
        assert_eq!(card.profile.subject_cn.as_deref(), Some("王小明"));
        assert_eq!(card.profile.directory.national_id_last_four.as_deref(), Some("6789"));
    }

    #[test]
    fn card_validate_accepts_agency_certificates_and_maps_the_agency() {
        let pki = Pki::new();
        let v = pki.validator();
        let card = check(&v, &pki, fx::AGENCY_DGPA, pki.now()).unwrap();
        assert_eq!(card.kind, CardKind::Agency);
        assert_eq!(card.agency_code.as_deref(), Some("A21000000I"));
        assert_eq!(card.profile.agency_name(), Some("行政院人事行政總處"));
        // The OID carried as a string maps the same way.
        let card = check(&v, &pki, fx::AGENCY_EY_STRING_OID, pki.now()).unwrap();
        assert_eq!(card.agency_code.as_deref(), Some("A00000000A"));
    }

    #[test]
    fn card_validate_refuses_an_unknown_agency() {
        let pki = Pki::new();
        assert_eq!(
            check(&pki.validator(), &pki, fx::AGENCY_UNKNOWN, pki.now()),
            Err(CardError::UnknownAgency { agency_oid: fx::UNKNOWN_AGENCY_OID.into() })
        );
    }

    #[test]
    fn card_validate_refuses_expired_and_not_yet_valid() {
        let pki = Pki::new();
        let v = pki.validator();
        assert_eq!(
            check(&v, &pki, fx::CITIZEN_WANG_EXPIRED, pki.now()),
            Err(CardError::Invalid(InvalidReason::Expired))
        );
        assert_eq!(
            check(&v, &pki, fx::CITIZEN_WANG, pki.now() - 40 * 86_400),
            Err(CardError::Invalid(InvalidReason::NotYetValid))
        );
    }

    #[test]
    fn card_validate_refuses_a_revoked_certificate() {
        let pki = Pki::new();
        assert_eq!(
            check(&pki.validator(), &pki, fx::CITIZEN_LI_REVOKED, pki.now()),
            Err(CardError::Invalid(InvalidReason::Revoked))
        );
        // Best-effort never lets a listed serial through.
        let mut s = pki.settings();
        s.revocation = RevocationMode::BestEffort;
        let v = CardValidator::new(s).unwrap();
        assert_eq!(
            check(&v, &pki, fx::CITIZEN_LI_REVOKED, pki.now() + 30 * 86_400),
            Err(CardError::Invalid(InvalidReason::Revoked))
        );
    }

    #[test]
    fn card_validate_refuses_an_untrusted_ca_even_with_moica_s_name() {
        let pki = Pki::new();
        let v = pki.validator();
        let impostor = pki.cert(fx::CITIZEN_WANG_UNTRUSTED);
        assert_eq!(
            profile::parse(&impostor).unwrap().issuer_der,
            profile::parse(&pki.cert(fx::CITIZEN_WANG)).unwrap().issuer_der
        );
        assert_eq!(
            check(&v, &pki, fx::CITIZEN_WANG_UNTRUSTED, pki.now()),
            Err(CardError::Invalid(InvalidReason::Untrusted))
        );
        // Sending the impostor CA along does not help.
        assert_eq!(
            v.validate(&impostor, &[pki.cert(fx::UNTRUSTED_CA)], pki.now(), agencies),
            Err(CardError::Invalid(InvalidReason::Untrusted))
        );
    }

    #[test]
    fn card_validate_refuses_a_test_certificate_before_anything_else() {
        let pki = Pki::new();
        // Not trusted at all: still the test-certificate refusal, not the generic one.
        assert_eq!(check(&pki.validator(), &pki, fx::AGENCY_TEST, pki.now()), Err(CardError::TestCertificate));
        // Even if an operator put the test root among the anchors.
        let mut s = pki.settings();
        s.agency_anchors.push(pki.cert(fx::GTESTCA));
        let v = CardValidator::new(s).unwrap();
        assert_eq!(check(&v, &pki, fx::AGENCY_TEST, pki.now()), Err(CardError::TestCertificate));
        // A configured test policy OID marks a certificate too.
        let mut s = pki.settings();
        s.test_policy_oids = vec![oids::POLICY_GPKI_LEVEL_3.into()];
        let v = CardValidator::new(s).unwrap();
        assert_eq!(check(&v, &pki, fx::AGENCY_DGPA, pki.now()), Err(CardError::TestCertificate));
        let mut s = pki.settings();
        s.test_policy_oids = vec!["not an oid".into()];
        assert!(matches!(CardValidator::new(s), Err(ConfigError::TestPolicy(_))));
    }

    #[test]
    fn card_validate_stale_crl_refuses_unless_best_effort() {
        let pki = Pki::new();
        let later = pki.now() + fx::CRL_LIFETIME_SECS + 86_400;
        assert_eq!(
            check(&pki.validator(), &pki, fx::CITIZEN_WANG, later),
            Err(CardError::Invalid(InvalidReason::CrlStale))
        );
        let mut s = pki.settings();
        s.revocation = RevocationMode::BestEffort;
        let card = check(&CardValidator::new(s).unwrap(), &pki, fx::CITIZEN_WANG, later).unwrap();
        assert_eq!(card.revocation, RevocationStatus::Stale);
    }

    #[test]
    fn card_validate_missing_crl_refuses_unless_best_effort() {
        let pki = Pki::new();
        let mut s = pki.settings();
        s.crls.clear();
        assert_eq!(
            check(&CardValidator::new(s.clone()).unwrap(), &pki, fx::CITIZEN_WANG, pki.now()),
            Err(CardError::Invalid(InvalidReason::RevocationUnknown))
        );
        // An untrusted certificate still says "untrusted", not "no CRL".
        assert_eq!(
            check(&CardValidator::new(s.clone()).unwrap(), &pki, fx::CITIZEN_WANG_UNTRUSTED, pki.now()),
            Err(CardError::Invalid(InvalidReason::Untrusted))
        );
        assert_eq!(CardValidator::new(s.clone()).unwrap().revocation_mode(), RevocationMode::Required);
        s.revocation = RevocationMode::BestEffort;
        let v = CardValidator::new(s).unwrap();
        // The mode is what the background refresher and the metrics read back.
        assert_eq!(v.revocation_mode(), RevocationMode::BestEffort);
        let card = check(&v, &pki, fx::CITIZEN_WANG, pki.now()).unwrap();
        assert_eq!(card.revocation, RevocationStatus::Unknown);
    }

    /// The CRL age per CA that `/metrics` reports: one entry per issuer, named, with the
    /// `thisUpdate` of the newest CRL held; and the validator's debug form shows counts only.
    #[test]
    fn card_validate_tells_each_crl_issuer_and_its_newest_this_update() {
        use x509_parser::prelude::{CertificateRevocationList, FromDer};
        let pki = Pki::new();
        let v = pki.validator();
        let issued = v.crl_issued();
        let mut expected: Vec<(String, i64)> = pki
            .manifest
            .crl_files
            .iter()
            .map(|f| {
                let der = std::fs::read(pki.dir.path().join(f)).unwrap();
                let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
                (crl.issuer().to_string(), crl.last_update().timestamp())
            })
            .collect();
        expected.sort();
        let all = expected.clone();
        expected.dedup_by(|a, b| a.0 == b.0);
        assert_eq!(issued.len(), expected.len());
        for ((name, at), (want_name, _)) in issued.iter().zip(&expected) {
            assert_eq!(name, want_name);
            assert!(!name.is_empty() && *at > 0 && *at <= pki.now(), "{name} {at}");
        }
        let newest = |n: &str| all.iter().filter(|(e, _)| e == n).map(|(_, t)| *t).max();
        for (name, at) in &issued {
            assert_eq!(Some(*at), newest(name));
        }
        let debug = format!("{v:?}");
        assert!(debug.starts_with("CardValidator") && debug.contains("crls: 3"), "{debug}");
    }

    #[test]
    fn card_validate_refuses_a_crl_with_a_bad_signature() {
        let pki = Pki::new();
        let mut s = pki.settings();
        let mut bytes = std::fs::read(pki.dir.path().join(fx::CRL_MOICA_G2)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        s.crls = vec![CertificateRevocationListDer::from(bytes)];
        assert!(matches!(
            check(&CardValidator::new(s).unwrap(), &pki, fx::CITIZEN_WANG, pki.now()),
            Err(CardError::Invalid(InvalidReason::CrlInvalid(_)))
        ));
    }

    #[test]
    fn card_validate_refuses_the_encryption_certificate() {
        let pki = Pki::new();
        assert_eq!(
            check(&pki.validator(), &pki, fx::CITIZEN_WANG_ENCRYPTION, pki.now()),
            Err(CardError::Invalid(InvalidReason::KeyUsage))
        );
    }

    #[test]
    fn card_validate_takes_an_extended_key_usage_only_with_client_authentication_or_any_purpose() {
        let pki = Pki::new();
        let v = pki.validator();
        assert_eq!(
            check(&v, &pki, fx::CITIZEN_WANG_EKU_SERVER, pki.now()).map(|c| c.kind),
            Err(CardError::Invalid(InvalidReason::ExtendedKeyUsage)),
            "server and e-mail protection only"
        );
        for file in [fx::CITIZEN_WANG_EKU_CLIENT, fx::CITIZEN_WANG_EKU_ANY] {
            let card = check(&v, &pki, file, pki.now()).unwrap_or_else(|e| panic!("{file}: {e:?}"));
            assert_eq!(card.kind, CardKind::Citizen, "{file}");
        }
    }

    #[test]
    fn card_validate_second_generation_ca_with_the_same_name() {
        let pki = Pki::new();
        // Both generations as anchors, in either order: each certificate finds its own CA by key.
        for order in [[fx::MOICA_G2, fx::MOICA_G3], [fx::MOICA_G3, fx::MOICA_G2]] {
            let mut s = pki.settings();
            s.citizen_anchors = order.iter().map(|f| pki.cert(f)).collect();
            let v = CardValidator::new(s).unwrap();
            assert_eq!(check(&v, &pki, fx::CITIZEN_LI, pki.now()).unwrap().kind, CardKind::Citizen); // G3
            assert_eq!(check(&v, &pki, fx::CITIZEN_WANG, pki.now()).unwrap().kind, CardKind::Citizen); // G2
            assert_eq!(
                check(&v, &pki, fx::CITIZEN_LI_REVOKED, pki.now()),
                Err(CardError::Invalid(InvalidReason::Revoked))
            );
        }
        // Only G2 trusted: the G3 certificate, same issuer name, is untrusted.
        let mut s = pki.settings();
        s.citizen_anchors = vec![pki.cert(fx::MOICA_G2)];
        let v = CardValidator::new(s).unwrap();
        assert_eq!(check(&v, &pki, fx::CITIZEN_LI, pki.now()), Err(CardError::Invalid(InvalidReason::Untrusted)));
        // Only G2's CRL loaded: the G3 certificate's status is unknown — G2's CRL, same name, is
        // not mistaken for G3's.
        let mut s = pki.settings();
        s.crls = vec![pki.crl(fx::CRL_MOICA_G2)];
        let v = CardValidator::new(s).unwrap();
        assert_eq!(
            check(&v, &pki, fx::CITIZEN_LI, pki.now()),
            Err(CardError::Invalid(InvalidReason::RevocationUnknown))
        );
    }

    #[test]
    fn card_validate_builds_paths_through_intermediates_to_a_root() {
        let pki = Pki::new();
        let s = TrustSettings {
            citizen_anchors: vec![pki.cert(fx::ROOT)],
            intermediates: vec![pki.cert(fx::MOICA_G2), pki.cert(fx::MOICA_G3)],
            crls: pki.settings().crls,
            ..Default::default()
        };
        let v = CardValidator::new(s).unwrap();
        assert_eq!(check(&v, &pki, fx::CITIZEN_LI, pki.now()).unwrap().kind, CardKind::Citizen);
        assert_eq!(check(&v, &pki, fx::CITIZEN_WANG, pki.now()).unwrap().kind, CardKind::Citizen);
        // Intermediates sent by the client work the same way.
        let s = TrustSettings {
            citizen_anchors: vec![pki.cert(fx::ROOT)],
            crls: pki.settings().crls,
            ..Default::default()
        };
        let v = CardValidator::new(s).unwrap();
        let li = pki.cert(fx::CITIZEN_LI);
        assert_eq!(
            v.validate(&li, &[pki.cert(fx::MOICA_G2), pki.cert(fx::MOICA_G3)], pki.now(), agencies).unwrap().kind,
            CardKind::Citizen
        );
        assert_eq!(v.validate(&li, &[], pki.now(), agencies), Err(CardError::Invalid(InvalidReason::Untrusted)));
    }

    #[test]
    fn card_validate_kind_comes_from_the_anchor_set_not_the_name() {
        let pki = Pki::new();
        // Anchor sets swapped by mistake: 王小明's MOICA certificate now reaches the *agency* set,
        // and is refused as an agency card, whatever its issuer name says.
        let mut s = pki.settings();
        std::mem::swap(&mut s.citizen_anchors, &mut s.agency_anchors);
        let v = CardValidator::new(s).unwrap();
        assert_eq!(
            check(&v, &pki, fx::CITIZEN_WANG, pki.now()),
            Err(CardError::Invalid(InvalidReason::SubjectType(Some(oids::SUBJECT_TYPE_NATURAL_PERSON.into()))))
        );
        // A root in one set reaching a CA anchored in the other: ambiguous, refused.
        let s = TrustSettings {
            citizen_anchors: vec![pki.cert(fx::ROOT)],
            agency_anchors: vec![pki.cert(fx::GCA)],
            intermediates: vec![pki.cert(fx::GCA)],
            crls: pki.settings().crls,
            ..Default::default()
        };
        let v = CardValidator::new(s).unwrap();
        assert_eq!(check(&v, &pki, fx::AGENCY_DGPA, pki.now()), Err(CardError::Invalid(InvalidReason::AmbiguousKind)));
        // The same anchor in both sets is a configuration error.
        let mut s = pki.settings();
        s.agency_anchors.push(pki.cert(fx::MOICA_G3));
        assert!(matches!(CardValidator::new(s), Err(ConfigError::SharedAnchor(1))));
    }

    #[test]
    fn card_validate_refuses_garbage() {
        let pki = Pki::new();
        assert!(matches!(
            pki.validator().validate(b"garbage", &[], pki.now(), agencies),
            Err(CardError::Invalid(InvalidReason::Malformed(_)))
        ));
        let mut s = pki.settings();
        s.crls.push(CertificateRevocationListDer::from(b"not a crl".to_vec()));
        assert!(matches!(CardValidator::new(s), Err(ConfigError::Crl { index: 3, .. })));
    }

    #[test]
    fn card_validate_loads_configuration_files() {
        let pki = Pki::new();
        let p = |f: &str| pki.dir.path().join(f);
        let crls: Vec<_> = pki.manifest.crl_files.iter().map(|f| p(f)).collect();
        let s = TrustSettings::load_files(&[p(fx::MOICA_G2), p(fx::MOICA_G3)], &[p(fx::GCA)], &[], &crls).unwrap();
        assert_eq!((s.citizen_anchors.len(), s.agency_anchors.len(), s.crls.len()), (2, 1, 3));
        // Intermediates from their own files: a path from the root through them is built.
        let s = TrustSettings::load_files(&[p(fx::ROOT)], &[], &[p(fx::MOICA_G2), p(fx::MOICA_G3)], &crls).unwrap();
        assert_eq!(s.intermediates.len(), 2);
        let v = CardValidator::new(s).unwrap();
        assert_eq!(check(&v, &pki, fx::CITIZEN_LI, pki.now()).unwrap().kind, CardKind::Citizen);
        let s = TrustSettings::load_files(&[p(fx::MOICA_G2), p(fx::MOICA_G3)], &[p(fx::GCA)], &[], &crls).unwrap();
        let v = CardValidator::new(s).unwrap();
        assert!(check(&v, &pki, fx::CITIZEN_WANG, pki.now()).is_ok());
        assert!(matches!(TrustSettings::load_files(&[p("missing.pem")], &[], &[], &[]), Err(ConfigError::File { .. })));
        // A key file holds no certificate.
        let key = p(&fx::CITIZEN_WANG.replace(".pem", ".key.pem"));
        assert!(matches!(TrustSettings::load_files(&[key], &[], &[], &[]), Err(ConfigError::File { .. })));
    }

    /// The default generator (the CLI's): RSA-2048 keys and PKCS#1 v1.5 SHA-256 signatures, as on
    /// the cards. One test only: RSA key generation takes seconds.
    #[test]
    fn card_validate_rsa_cards_like_the_real_ones() {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let dir = tempfile::tempdir().unwrap();
        let manifest = fx::generate(dir.path()).unwrap();
        assert_eq!(manifest.key_algorithm, fx::KeyAlgorithm::Rsa2048);
        let pki = Pki { dir, manifest };
        let der = pki.cert(fx::CITIZEN_WANG);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        match cert.public_key().parsed().unwrap() {
            x509_parser::public_key::PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 2048),
            other => panic!("expected RSA, got {other:?}"),
        }
        assert_eq!(cert.signature_algorithm.algorithm.to_id_string(), "1.2.840.113549.1.1.11");
        let v = pki.validator();
        assert_eq!(check(&v, &pki, fx::CITIZEN_WANG, pki.now()).unwrap().kind, CardKind::Citizen);
        assert_eq!(check(&v, &pki, fx::CITIZEN_LI, pki.now()).unwrap().kind, CardKind::Citizen);
        assert_eq!(check(&v, &pki, fx::CITIZEN_LI_REVOKED, pki.now()), Err(CardError::Invalid(InvalidReason::Revoked)));
        assert_eq!(check(&v, &pki, fx::AGENCY_DGPA, pki.now()).unwrap().agency_code.as_deref(), Some("A21000000I"));
    }

    #[test]
    fn card_fixtures_sign_crl_on_demand() {
        use rustls_pki_types::CertificateRevocationListDer;
        use test_pki::fixtures::*;
        use x509_parser::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let manifest = generate_with(dir.path(), &FixtureOptions::fast()).unwrap();
        let now = manifest.generated_at;
        let pem = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        let key = |f: &str| pem(manifest.entry(f).unwrap().key_file.as_deref().unwrap());
        let wang = read_cert(dir.path(), CITIZEN_WANG).unwrap();
        let (_, parsed) = X509Certificate::from_der(&wang).unwrap();
        let revoked = [(parsed.raw_serial().to_vec(), now - 60)];
        let crl = sign_crl(&pem(MOICA_G2), &key(MOICA_G2), &revoked, now - 60, now + 3600, 7).unwrap();
        // The right issuer, the right authority key, but another CA's signature.
        let forged = sign_crl(&pem(MOICA_G2), &key(UNTRUSTED_CA), &revoked, now - 60, now + 3600, 8).unwrap();
        let g2 = read_cert(dir.path(), MOICA_G2).unwrap();
        let (_, g2) = X509Certificate::from_der(&g2).unwrap();
        for der in [&crl, &forged] {
            let (_, parsed) = CertificateRevocationList::from_der(der).unwrap();
            assert_eq!(parsed.issuer().as_raw(), g2.subject().as_raw());
            assert_eq!(parsed.iter_revoked_certificates().count(), 1);
            assert_eq!(parsed.next_update().map(|t| t.timestamp()), Some(now + 3600));
            let aki = parsed.extensions().iter().find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
                _ => None,
            });
            let ski = g2.extensions().iter().find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            });
            assert_eq!(aki, ski);
        }
        let validate = |crl: &[u8]| {
            let settings = TrustSettings {
                citizen_anchors: vec![read_cert(dir.path(), MOICA_G2).unwrap()],
                crls: vec![CertificateRevocationListDer::from(crl.to_vec())],
                ..Default::default()
            };
            CardValidator::new(settings).unwrap().validate(&wang, &[], now, |_| None)
        };
        assert_eq!(validate(&crl).unwrap_err(), CardError::Invalid(InvalidReason::Revoked));
        assert!(matches!(validate(&forged), Err(CardError::Invalid(InvalidReason::CrlInvalid(_)))));
    }
}
